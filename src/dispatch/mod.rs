//! THE seam: a parsed [`Request`] -> store calls -> reply bytes.
//!
//! This is the only module that sees both `protocol` and `storage`; every
//! protocol rule that depends on a store outcome is here, in one place.
//! It counts each command in the calling loop's [`WorkerStats`] and appends
//! the reply to the connection's output buffer; `noreply` writes nothing.
//! The event loop acts on the returned [`Action`].

mod report;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::config::{Config, MEMCACHED_VERSION};
use crate::protocol::text::compose as c;
use crate::protocol::{Request, StoreCommand};
use crate::stats::{Stats, WorkerStats};
use crate::storage::{DeltaOutcome, Store, StoreMode, StoreOutcome, MEGABYTE};

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Discard this many input bytes (a refused value), then go on.
    Swallow(usize),
    /// Send what is queued, then close (quit).
    Close,
}

/// A connection as `stats conns` shows it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub fd: i32,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Relative time of the connection's last command.
    pub last_cmd: Arc<AtomicU32>,
}

/// State shared by every event loop.
pub struct Shared {
    pub store: Store,
    pub stats: Stats,
    pub config: Config,
    /// Client connections open now.
    pub curr_connections: AtomicUsize,
    /// Open connections by id, for `stats conns`.
    pub conns: Mutex<HashMap<u64, ConnInfo>>,
    /// Addresses actually bound (port 0 resolved).
    pub bound: OnceLock<Vec<SocketAddr>>,
    /// Set once shutdown has begun.
    pub stopping: AtomicBool,
    /// Current verbosity (`-v`, changed by the `verbosity` command).
    pub verbosity: AtomicU8,
    /// Runs a shutdown (wakes every loop); installed by the server.
    pub on_shutdown: OnceLock<Box<dyn Fn() + Send + Sync>>,
    pub pid: u32,
}

impl Shared {
    pub fn new(config: Config, store: Store) -> Shared {
        let threads = config.server.threads;
        let verbosity = config.verbosity;
        Shared {
            store,
            stats: Stats::new(threads),
            config,
            curr_connections: AtomicUsize::new(0),
            conns: Mutex::new(HashMap::new()),
            bound: OnceLock::new(),
            stopping: AtomicBool::new(false),
            verbosity: AtomicU8::new(verbosity),
            on_shutdown: OnceLock::new(),
            pid: std::process::id(),
        }
    }

    /// Begins shutdown: loops stop accepting, flush replies and exit.
    pub fn shutdown(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            if let Some(f) = self.on_shutdown.get() {
                f();
            }
        }
    }
}

/// Runs one request. `out` receives the reply.
pub fn dispatch(sh: &Shared, w: &WorkerStats, req: Request<'_>, out: &mut Vec<u8>) -> Action {
    let store = &sh.store;
    match req {
        Request::Get { keys, cas } => {
            for key in keys.iter() {
                w.cmd_get.incr();
                let hit = store.get(key, None, |it| c::value(out, it.key, it.flags, it.value, cas.then_some(it.cas)));
                if hit.is_some() {
                    w.get_hits.incr();
                } else {
                    w.get_misses.incr();
                }
            }
            out.extend_from_slice(c::END);
        }
        Request::Gat { exptime, keys, cas } => {
            let exp = store.clock().exptime_to_rel(exptime);
            for key in keys.iter() {
                w.cmd_touch.incr();
                let hit =
                    store.get(key, Some(exp), |it| c::value(out, it.key, it.flags, it.value, cas.then_some(it.cas)));
                if hit.is_some() {
                    w.touch_hits.incr();
                } else {
                    w.touch_misses.incr();
                }
            }
            out.extend_from_slice(c::END);
        }
        Request::Store { command, key, flags, exptime, data, cas, noreply } => {
            w.cmd_set.incr();
            let mode = match command {
                StoreCommand::Set => StoreMode::Set,
                StoreCommand::Add => StoreMode::Add,
                StoreCommand::Replace => StoreMode::Replace,
                StoreCommand::Append => StoreMode::Append,
                StoreCommand::Prepend => StoreMode::Prepend,
                StoreCommand::Cas => StoreMode::Cas(cas),
            };
            let outcome = store.store(mode, key, flags, exptime, data);
            if command == StoreCommand::Cas {
                match outcome {
                    StoreOutcome::Stored => w.cas_hits.incr(),
                    StoreOutcome::Exists => w.cas_badval.incr(),
                    StoreOutcome::NotFound => w.cas_misses.incr(),
                    _ => {}
                }
            }
            let reply = match outcome {
                StoreOutcome::Stored => c::STORED,
                StoreOutcome::NotStored => c::NOT_STORED,
                StoreOutcome::Exists => c::EXISTS,
                StoreOutcome::NotFound => c::NOT_FOUND,
                StoreOutcome::TooLarge => {
                    w.store_too_large.incr();
                    c::TOO_LARGE
                }
                StoreOutcome::OutOfMemory => {
                    w.store_no_memory.incr();
                    c::OUT_OF_MEMORY
                }
            };
            reply_unless(noreply, out, reply);
        }
        Request::TooLarge { key, set, swallow, noreply } => {
            w.store_too_large.incr();
            if set {
                // As memcached: a failed set must not leave the old value.
                store.delete(key);
            }
            reply_unless(noreply, out, c::TOO_LARGE);
            return Action::Swallow(swallow);
        }
        Request::Delete { key, noreply } => {
            let reply = if store.delete(key) {
                w.delete_hits.incr();
                c::DELETED
            } else {
                w.delete_misses.incr();
                c::NOT_FOUND
            };
            reply_unless(noreply, out, reply);
        }
        Request::Incr { key, delta, noreply } => arithmetic(sh, w, key, true, delta, noreply, out),
        Request::Decr { key, delta, noreply } => arithmetic(sh, w, key, false, delta, noreply, out),
        Request::Touch { key, exptime, noreply } => {
            w.cmd_touch.incr();
            let reply = if store.touch(key, exptime) {
                w.touch_hits.incr();
                c::TOUCHED
            } else {
                w.touch_misses.incr();
                c::NOT_FOUND
            };
            reply_unless(noreply, out, reply);
        }
        Request::FlushAll { exptime, noreply } => {
            w.cmd_flush.incr();
            if !sh.config.server.flush_enabled {
                reply_unless(noreply, out, c::FLUSH_DISABLED);
            } else {
                store.flush_all(exptime);
                reply_unless(noreply, out, c::OK);
            }
        }
        Request::Version => c::version(out, MEMCACHED_VERSION),
        Request::Verbosity { level, noreply } => {
            let level = level.min(3) as u8;
            sh.verbosity.store(level, Ordering::Relaxed);
            log::set_max_level(crate::log_level(level));
            reply_unless(noreply, out, c::OK);
        }
        Request::Quit => return Action::Close,
        Request::Stats { args } => report::stats(sh, args, out),
        Request::Shutdown { graceful: _, valid } => {
            if !sh.config.server.enable_shutdown {
                out.extend_from_slice(c::SHUTDOWN_DISABLED);
            } else if !valid {
                out.extend_from_slice(c::INVALID_SHUTDOWN);
            } else {
                log::info!("shutdown requested by a client");
                sh.shutdown();
                return Action::Close;
            }
        }
        Request::CacheMemlimit { megabytes, noreply } => {
            if megabytes < 8 {
                reply_unless(noreply, out, c::MEMLIMIT_TOO_SMALL);
            } else {
                store.set_memory_limit(megabytes as usize * MEGABYTE);
                reply_unless(noreply, out, c::OK);
            }
        }
        Request::Invalid { error, noreply } => {
            if !noreply {
                c::error(out, error);
            }
        }
    }
    Action::Continue
}

#[inline]
fn reply_unless(noreply: bool, out: &mut Vec<u8>, reply: &[u8]) {
    if !noreply {
        out.extend_from_slice(reply);
    }
}

fn arithmetic(sh: &Shared, w: &WorkerStats, key: &[u8], incr: bool, delta: u64, noreply: bool, out: &mut Vec<u8>) {
    let outcome = sh.store.delta(key, incr, delta);
    let (hits, misses) = if incr { (&w.incr_hits, &w.incr_misses) } else { (&w.decr_hits, &w.decr_misses) };
    match outcome {
        DeltaOutcome::Value(v) => {
            hits.incr();
            if !noreply {
                c::number(out, v);
            }
        }
        DeltaOutcome::NotFound => {
            misses.incr();
            reply_unless(noreply, out, c::NOT_FOUND);
        }
        DeltaOutcome::NonNumeric => reply_unless(noreply, out, c::NON_NUMERIC),
        DeltaOutcome::OutOfMemory => reply_unless(noreply, out, c::DELTA_OUT_OF_MEMORY),
    }
}

#[cfg(test)]
mod tests;
