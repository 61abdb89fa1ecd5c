//! THE seam: a parsed [`Request`] -> store calls -> reply bytes.
//!
//! This is the only module that sees both `protocol` and `storage`; every
//! protocol rule that depends on a store outcome is here, in one place.
//! It counts each command in the calling loop's [`WorkerStats`] and appends
//! the reply to the connection's output buffer; `noreply` writes nothing.
//! The event loop acts on the returned [`Action`].

mod admin;
mod meta;
mod outcome;
mod report;
mod watch;

use std::sync::atomic::Ordering;

use crate::config::{Config, ProtocolChoice, MEMCACHED_VERSION};
use crate::detail::Event;
use crate::protocol::{Keys, MetaCode, MetaCommand, MetaFlags, ProtocolError, Reply, Request, Status, StoreCommand};
use crate::state::Shared;
use crate::stats::WorkerStats;
use crate::storage::{StoreMode, MEGABYTE};

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Discard this many input bytes (a refused value), then go on.
    Swallow(usize),
    /// Send what is queued, then close (an error the connection cannot
    /// go on from, or `shutdown`).
    Close,
    /// Send what is queued, then close: the client asked to (`quit`).
    Quit,
    /// The connection becomes a log stream of these [`crate::watch`]
    /// classes; it runs no more requests.
    Watch(u8),
    /// Stream a `lru_crawler metadump` from this cursor (see
    /// [`metadump_step`]); requests after it wait until it has ended.
    Dump(crate::storage::Cursor),
}

pub use admin::metadump_step;

/// Per-connection state dispatch reads and changes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Session {
    /// The connection speaks the binary protocol.
    pub binary: bool,
    /// SASL or text authentication succeeded (or none is required).
    pub authenticated: bool,
    /// The connection's socket descriptor (`cfd=` in watch lines).
    pub fd: i32,
    /// The connection carries copies from another node (`ferrocache_replica`):
    /// its writes are not copied again.
    pub replica: bool,
}

impl Session {
    /// A new connection's state under `config`.
    pub fn new(config: &Config, binary: bool) -> Session {
        Session { binary, authenticated: config.server.auth.is_none(), fd: -1, replica: false }
    }

    /// The state of a connection (or datagram) whose first byte is
    /// `first`: `0x80` picks the binary protocol unless `-B` fixed one.
    pub fn for_first_byte(config: &Config, first: u8) -> Session {
        let binary = match config.server.protocol {
            ProtocolChoice::Auto => first == crate::protocol::binary::REQUEST_MAGIC,
            ProtocolChoice::Ascii => false,
            ProtocolChoice::Binary => true,
        };
        Session::new(config, binary)
    }
}

/// After a write of `key` (`ok`: it succeeded): with `--replicas 1`,
/// hands it to replication (unless the connection itself carries copies).
/// Without replication this is one load and one branch: `ok` is only
/// looked at behind it.
#[inline]
fn written(sh: &Shared, session: &Session, ok: bool, key: &[u8]) {
    if let Some(r) = sh.replication.get() {
        if ok && !session.replica {
            r.written(&sh.store, key);
        }
    }
}

/// Runs one request; the reply goes to `reply`, which applies the
/// request's noreply/quiet flag.
pub fn dispatch<R: Reply>(
    sh: &Shared,
    w: &WorkerStats,
    session: &mut Session,
    req: Request<'_>,
    reply: &mut R,
) -> Action {
    if !session.authenticated {
        if let Some(action) = authenticate(sh, w, session, &req, reply) {
            return action;
        }
    }
    let store = &sh.store;
    match req {
        Request::Get { keys, cas } => return retrieve(sh, w, session, keys, None, cas, reply),
        Request::Gat { exptime, keys, cas } => {
            let exp = store.clock().exptime_to_rel(exptime);
            return retrieve(sh, w, session, keys, Some(exp), cas, reply);
        }
        Request::Store { command, key, flags, exptime, data, cas, noreply: _ } => {
            sh.detail.record(key, Event::Set);
            let mode = match command {
                StoreCommand::Set => StoreMode::Set,
                StoreCommand::Add => StoreMode::Add,
                StoreCommand::Replace => StoreMode::Replace,
                StoreCommand::Append => StoreMode::Append(cas),
                StoreCommand::Prepend => StoreMode::Prepend(cas),
                StoreCommand::Cas => StoreMode::Cas(cas),
            };
            // memcached looks the key up before storing, and logs that.
            let before = watch::lookup(sh, key, session.fd);
            let (outcome, new_cas) = store.store_cas(mode, key, flags, exptime, data);
            watch::stored(sh, key, mode, outcome, exptime, flags, data, before, session.fd);
            written(sh, session, outcome == crate::storage::StoreOutcome::Stored, key);
            reply.status(outcome::stored(w, mode, outcome), new_cas);
        }
        Request::TooLarge { key, set, swallow, noreply: _ } => {
            w.store_too_large.incr();
            if set {
                // As memcached: a failed set must not leave the old value.
                // Copied whatever it found: the successor may hold one.
                store.delete(key);
                written(sh, session, true, key);
            }
            reply.status(Status::TooLarge, 0);
            return Action::Swallow(swallow);
        }
        Request::Delete { key, cas, noreply: _ } => {
            sh.detail.record(key, Event::Delete);
            watch::lookup(sh, key, session.fd);
            let status = outcome::deleted(w, store.delete_cas(key, cas));
            // Copied unless the CAS was refused: a delete that finds
            // nothing here (flushed, evicted) must still reach a copy.
            written(sh, session, status != Status::Exists, key);
            reply.status(status, 0);
        }
        Request::Incr { key, delta, initial, cas, noreply: _ } => {
            watch::lookup(sh, key, session.fd);
            let result = outcome::delta(w, true, store.delta_with(key, true, delta, cas, initial, None));
            written(sh, session, result.is_ok(), key);
            arithmetic_reply(result, reply)
        }
        Request::Decr { key, delta, initial, cas, noreply: _ } => {
            watch::lookup(sh, key, session.fd);
            let result = outcome::delta(w, false, store.delta_with(key, false, delta, cas, initial, None));
            written(sh, session, result.is_ok(), key);
            arithmetic_reply(result, reply)
        }
        Request::Touch { key, exptime, noreply: _ } => {
            let exp = store.clock().exptime_to_rel(exptime);
            let hit = store.get(key, Some(exp), |it| (it.flags, it.cas, it.key.len(), it.value.len()));
            outcome::looked_up(w, true, hit.is_some());
            let found = hit.map(|(flags, _, klen, vlen)| (store.class_of(klen, vlen, flags), vlen));
            watch::fetched(sh, key, found, session.fd);
            match hit {
                Some((flags, cas, ..)) => {
                    written(sh, session, true, key);
                    reply.touched(flags, cas)
                }
                None => reply.status(Status::NotFound, 0),
            }
        }
        Request::FlushAll { exptime, noreply: _ } => {
            w.cmd_flush.incr();
            if !sh.config.server.flush_enabled {
                reply.status(Status::FlushDisabled, 0);
            } else {
                store.flush_all(exptime);
                reply.status(Status::Ok, 0);
            }
        }
        Request::Version => reply.version(MEMCACHED_VERSION),
        Request::Verbosity { level, noreply: _ } => {
            let level = level.min(3) as u8;
            sh.verbosity.store(level, Ordering::Relaxed);
            log::set_max_level(crate::log_level(level));
            reply.status(Status::Ok, 0);
        }
        Request::Noop => reply.status(Status::Ok, 0),
        Request::Quit => {
            reply.quit();
            return Action::Quit;
        }
        Request::Stats { args } => report::stats(sh, args, reply),
        Request::Shutdown { graceful: _, valid } => {
            if !sh.config.server.enable_shutdown {
                reply.status(Status::ShutdownDisabled, 0);
            } else if !valid {
                reply.status(Status::InvalidShutdown, 0);
            } else {
                log::info!("shutdown requested by a client");
                sh.shutdown();
                return Action::Close;
            }
        }
        Request::RefreshCerts { noreply: _ } => {
            // memcached's replies: OK, or its error line (sent even with
            // noreply).
            let outcome = match sh.tls.get() {
                Some(tls) => tls.refresh(store.clock().now()).map_err(|e| {
                    log::warn!("refresh_certs: {e}");
                    e
                }),
                None => Err("Error TLS not enabled".to_string()),
            };
            match outcome {
                Ok(()) => reply.status(Status::Ok, 0),
                Err(e) => {
                    // One line: the error may quote OpenSSL-like text.
                    let line: String = e.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
                    reply.raw(format!("{line}\r\n").as_bytes());
                }
            }
        }
        Request::CacheMemlimit { megabytes, noreply: _ } => {
            if megabytes < 8 {
                reply.status(Status::MemlimitTooSmall, 0);
            } else {
                store.set_memory_limit(megabytes as usize * MEGABYTE);
                reply.status(Status::Ok, 0);
            }
        }
        Request::SaslListMechs => match sh.config.server.auth {
            Some(_) if session.binary => reply.sasl_mechs(SASL_MECHS),
            _ => reply.error(ProtocolError::UnknownCommand),
        },
        Request::SaslAuth { mech, data, step } => {
            let Some(creds) = sh.config.server.auth.as_ref().filter(|_| session.binary) else {
                reply.error(ProtocolError::UnknownCommand);
                return Action::Continue;
            };
            // PLAIN completes in one step; a step has nothing to continue.
            let ok = !step && mech == SASL_MECHS.as_bytes() && creds.check_plain(data);
            w.auth_cmds.incr();
            if ok {
                session.authenticated = true;
                reply.status(Status::AuthOk, 0);
            } else {
                w.auth_errors.incr();
                log::warn!("SASL authentication failed");
                reply.status(Status::AuthFailed, 0);
            }
        }
        Request::Meta { command, key, data, flags } => {
            w.cmd_meta.incr();
            let changed = meta::run(sh, w, session.fd, command, &key, data, &flags, reply);
            written(sh, session, changed, &key);
        }
        Request::ConfigGet => match sh.discovery.view() {
            Some((version, nodes)) => reply.raw(&crate::discovery::format::config_reply(version, &nodes)),
            None => reply.error(ProtocolError::UnknownCommand),
        },
        Request::ConfigSet { data } => match sh.discovery.config_set(data) {
            Ok(()) => reply.status(Status::Stored, 0),
            Err(e) => {
                log::warn!("config set cluster refused: {e}");
                reply.error(ProtocolError::BadFormat)
            }
        },
        Request::ConfigDelete => {
            let status = if sh.discovery.config_delete() { Status::Deleted } else { Status::NotFound };
            reply.status(status, 0);
        }
        Request::ReplicaMark => {
            session.replica = true;
            reply.status(Status::Ok, 0);
        }
        Request::Admin(cmd) => return admin::run(sh, cmd, reply),
        Request::MetaNoop => {
            w.cmd_meta.incr();
            reply.meta(MetaCommand::Get, MetaCode::Mn, &[], &MetaFlags::default(), None, None)
        }
        Request::InvalidData { error, swallow, noreply: _ } => {
            reply.error(error);
            return Action::Swallow(swallow);
        }
        Request::Fatal { error, noreply: _ } => {
            reply.error(error);
            return Action::Close;
        }
        Request::Invalid { error, noreply: _ } => reply.error(error),
    }
    Action::Continue
}

/// get/gets/gat/gats. A reply that would queue more than the connection's
/// output cap is abandoned: the values already written for it are dropped,
/// memcached's error for a get it cannot answer is sent, and the connection
/// closes (a multiget of large values must not take unbounded memory).
fn retrieve<R: Reply>(
    sh: &Shared,
    w: &WorkerStats,
    session: &Session,
    keys: Keys<'_>,
    touch: Option<u32>,
    cas: bool,
    reply: &mut R,
) -> Action {
    let mark = reply.queued();
    let cap = sh.config.server.output_cap;
    let fd = session.fd;
    for key in keys.iter() {
        if key == crate::discovery::format::LEGACY_KEY {
            // Old auto-discovery clients read the node list as an item.
            if let Some((version, nodes)) = sh.discovery.view() {
                outcome::looked_up(w, touch.is_some(), true);
                let payload = crate::discovery::format::payload(version, &nodes);
                reply.value(key, 0, cas.then_some(0), &payload);
                continue;
            }
        }
        let hit = sh.store.get(key, touch, |it| {
            reply.value(it.key, it.flags, cas.then_some(it.cas), it.value);
            (it.flags, it.value.len())
        });
        outcome::looked_up(w, touch.is_some(), hit.is_some());
        written(sh, session, touch.is_some() && hit.is_some(), key);
        if sh.watch.wants(crate::watch::FETCHERS) {
            let found = hit.map(|(flags, vlen)| (sh.store.class_of(key.len(), vlen, flags), vlen));
            watch::fetched(sh, key, found, fd);
        }
        sh.detail.record(key, Event::Get(hit.is_some()));
        if hit.is_none() {
            reply.miss(key);
        }
        if reply.queued() > cap {
            reply.truncate(mark);
            reply.status(Status::ReplyTooLarge, 0);
            log::warn!("closing a connection whose get reply passed the output cap ({cap} bytes)");
            return Action::Close;
        }
    }
    reply.end();
    Action::Continue
}

/// The one SASL mechanism offered.
const SASL_MECHS: &str = "PLAIN";

/// Handles a request on a connection that has not authenticated yet.
/// Returns `None` if the request may run as usual.
fn authenticate<R: Reply>(
    sh: &Shared,
    w: &WorkerStats,
    session: &mut Session,
    req: &Request<'_>,
    reply: &mut R,
) -> Option<Action> {
    let creds = sh.config.server.auth.as_ref()?;
    if session.binary {
        // As memcached: only SASL and version before authentication; any
        // other command gets an auth error and the connection closes. A
        // packet of the wrong shape gets its own status first (EINVAL or
        // unknown command), as memcached checks the frame before the
        // session.
        if matches!(req, Request::SaslListMechs | Request::SaslAuth { .. } | Request::Version | Request::Fatal { .. }) {
            return None;
        }
        reply.status(Status::Unauthenticated, 0);
        return Some(Action::Close);
    }
    // Text (-Y): the first set carries "user password" as its data.
    let mut reply_text = |status| reply.status(status, 0);
    match req {
        Request::Store { command: StoreCommand::Set, data, .. } => {
            let mut words = data.split(|&b| b == b' ').filter(|w| !w.is_empty());
            let (Some(user), Some(pass)) = (words.next(), words.next()) else {
                reply_text(Status::AuthBadFormat);
                return Some(Action::Continue);
            };
            w.auth_cmds.incr();
            if creds.check(user, pass) {
                session.authenticated = true;
                reply_text(Status::Stored);
            } else {
                w.auth_errors.incr();
                log::warn!("text protocol authentication failed");
                reply_text(Status::AuthFailed);
            }
        }
        Request::Fatal { error: ProtocolError::BadDataChunk, .. }
        | Request::Invalid { error: ProtocolError::BadDataChunk, .. } => {
            // Strict either way: a client that cannot frame its credentials
            // is hung up on.
            reply_text(Status::AuthBadTermination);
            return Some(Action::Close);
        }
        Request::InvalidData { swallow, .. } => {
            reply_text(Status::Unauthenticated);
            return Some(Action::Swallow(*swallow));
        }
        Request::Fatal { .. } => {
            reply_text(Status::Unauthenticated);
            return Some(Action::Close);
        }
        Request::TooLarge { swallow, .. } => {
            reply_text(Status::Unauthenticated);
            return Some(Action::Swallow(*swallow));
        }
        _ => reply_text(Status::Unauthenticated),
    }
    Some(Action::Continue)
}

/// The classic reply to incr/decr: the number, or the status.
fn arithmetic_reply<R: Reply>(result: Result<(u64, u64, u32), Status>, reply: &mut R) {
    match result {
        Ok((value, cas, _)) => reply.number(value, cas),
        Err(status) => reply.status(status, 0),
    }
}

#[cfg(test)]
mod tests;
