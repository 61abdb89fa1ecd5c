//! Meta commands against the store: the same store operations as the
//! classic commands (get, store, delete, delta), with the meta options, and
//! the same counters.

use crate::protocol::{MetaCode, MetaCommand, MetaFlags, MetaInfo, Reply, Status};
use crate::stats::WorkerStats;
use crate::storage::{MetaDelete, MetaGet, MetaItem, MetaOrder, StoreMode};

use super::outcome;

use crate::state::Shared;

fn info(m: &MetaItem, value_len: usize) -> MetaInfo {
    MetaInfo {
        flags: m.flags,
        cas: m.cas,
        ttl: m.ttl,
        last_access: m.last_access,
        fetched: m.fetched,
        value_len,
        stale: m.stale,
        token_sent: m.token_sent,
        won: m.won,
        class: m.class,
        size: m.size,
    }
}

/// Sends a status as a meta reply code, or, for the statuses meta commands
/// have no code for (errors), as the classic line.
fn send<R: Reply>(
    reply: &mut R,
    command: MetaCommand,
    status: Status,
    key: &[u8],
    flags: &MetaFlags<'_>,
    item: Option<&MetaInfo>,
) {
    match outcome::meta_code(status) {
        Some(code) => reply.meta(command, code, key, flags, item, None),
        None => reply.status(status, 0),
    }
}

/// Where the flags that set or read the exptime stand among the flags.
fn order(flags: &MetaFlags<'_>) -> MetaOrder {
    let mut o = MetaOrder::default();
    for (i, tok) in flags.tokens().enumerate() {
        let i = u8::try_from(i).unwrap_or(u8::MAX);
        match tok[0] {
            b'N' => o.vivify = i,
            b'T' => o.touch = i,
            b'R' => o.recache = i,
            b't' => o.ttl = i,
            _ => {}
        }
    }
    o
}

/// Runs one meta command; true if it changed the key's item, or was a
/// delete that found none (a write replication copies).
#[allow(clippy::too_many_arguments)]
pub fn run<R: Reply>(
    sh: &Shared,
    w: &WorkerStats,
    fd: i32,
    command: MetaCommand,
    key: &[u8],
    data: &[u8],
    flags: &MetaFlags<'_>,
    reply: &mut R,
) -> bool {
    let store = &sh.store;
    match command {
        MetaCommand::Get => {
            let opts = MetaGet {
                touch: flags.ttl,
                no_bump: flags.no_bump,
                vivify: flags.vivify,
                recache: flags.recache,
                order: order(flags),
            };
            let touching = flags.ttl.is_some();
            let hit = store.get_meta(key, opts, |m, _, value| {
                let code = if flags.value { MetaCode::Va } else { MetaCode::Hd };
                let v = flags.value.then_some(value);
                reply.meta(command, code, key, flags, Some(&info(m, value.len())), v);
                value.len()
            });
            outcome::looked_up(w, touching, hit.is_some());
            if sh.watch.wants(crate::watch::FETCHERS) {
                let found = hit.map(|vlen| (store.peek(key).map_or(0, |p| p.class), vlen));
                super::watch::fetched(sh, key, found, fd);
            }
            if hit.is_none() {
                reply.meta(command, MetaCode::En, key, flags, None, None);
            }
            // A touch changes the item; so may a vivify (it creates one).
            (touching || flags.vivify.is_some()) && hit.is_some()
        }
        MetaCommand::Set => {
            let cas = flags.compare_cas.unwrap_or(0);
            let mode = match (flags.mode, flags.compare_cas) {
                (Some(b'E'), _) => StoreMode::Add,
                (Some(b'A'), _) => StoreMode::Append(cas),
                (Some(b'P'), _) => StoreMode::Prepend(cas),
                (Some(b'R') | Some(b'S') | None, Some(c)) if flags.invalidate => StoreMode::CasInvalidate(c),
                (Some(b'R') | Some(b'S') | None, Some(c)) => StoreMode::Cas(c),
                (Some(b'R'), None) => StoreMode::Replace,
                _ => StoreMode::Set,
            };
            let exptime = flags.ttl.unwrap_or(0);
            let before = super::watch::lookup(sh, key, fd);
            let (result, new_cas) = store.store_cas(mode, key, flags.client_flags, exptime, data);
            super::watch::stored(sh, key, mode, result, exptime, flags.client_flags, data, before, fd);
            let status = outcome::stored(w, mode, result);
            let it = MetaInfo { cas: new_cas, ..MetaInfo::default() };
            send(reply, command, status, key, flags, Some(&it));
            status == Status::Stored
        }
        MetaCommand::Delete => {
            let opts = MetaDelete {
                cas: flags.compare_cas,
                invalidate: flags.invalidate,
                touch: flags.ttl,
                remove_value: flags.remove_value,
            };
            super::watch::lookup(sh, key, fd);
            let status = outcome::deleted(w, store.delete_meta(key, opts));
            send(reply, command, status, key, flags, None);
            // Found nothing: still copied, the successor may hold the key.
            status != Status::Exists
        }
        MetaCommand::Arith => {
            let incr = !matches!(flags.mode, Some(b'D' | b'-'));
            // A created counter gets the TTL of the later of N and T
            // (memcached applies them in order; T counts as success).
            let create = flags.vivify.map(|n| {
                let o = order(flags);
                let ttl = match flags.ttl {
                    Some(t) if o.touch > o.vivify => t,
                    _ => n,
                };
                (flags.initial, ttl)
            });
            let cas = flags.compare_cas.unwrap_or(0);
            let result = store.delta_with(key, incr, flags.delta, cas, create, flags.ttl);
            match outcome::delta(w, incr, result) {
                Ok((v, new_cas, exptime)) => {
                    let now = store.clock().now();
                    let ttl = if exptime == 0 { -1 } else { i64::from(exptime) - i64::from(now) };
                    let it = MetaInfo { cas: new_cas, ttl, ..MetaInfo::default() };
                    let mut buf = [0u8; 20];
                    let digits = crate::num::format_u64(&mut buf, v);
                    let code = if flags.value { MetaCode::Va } else { MetaCode::Hd };
                    reply.meta(command, code, key, flags, Some(&it), flags.value.then_some(digits));
                    true
                }
                Err(status) => {
                    send(reply, command, status, key, flags, None);
                    false
                }
            }
        }
        MetaCommand::Debug => {
            let item = store.debug(key).map(|m| info(&m, 0));
            reply.meta_debug(key, flags, item.as_ref());
            false
        }
    }
}
