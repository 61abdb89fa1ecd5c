//! Meta commands against the store: the same store operations as the
//! classic commands (get, store, delete, delta), with the meta options, and
//! the same counters.

use crate::protocol::{MetaCode, MetaCommand, MetaFlags, MetaInfo, Reply, Status};
use crate::stats::WorkerStats;
use crate::storage::{DeleteOutcome, DeltaOutcome, MetaDelete, MetaGet, MetaItem, StoreMode, StoreOutcome};

use super::Shared;

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

/// Runs one meta command.
pub fn run<R: Reply>(
    sh: &Shared,
    w: &WorkerStats,
    command: MetaCommand,
    key: &[u8],
    data: &[u8],
    flags: &MetaFlags<'_>,
    reply: &mut R,
) {
    let store = &sh.store;
    match command {
        MetaCommand::Get => {
            let opts =
                MetaGet { touch: flags.ttl, no_bump: flags.no_bump, vivify: flags.vivify, recache: flags.recache };
            let touching = flags.ttl.is_some();
            let hit = store.get_meta(key, opts, |m, _, value| {
                let code = if flags.value { MetaCode::Va } else { MetaCode::Hd };
                let v = flags.value.then_some(value);
                reply.meta(command, code, key, flags, Some(&info(m, value.len())), v);
            });
            let (cmd, hits, misses) = if touching {
                (&w.cmd_touch, &w.touch_hits, &w.touch_misses)
            } else {
                (&w.cmd_get, &w.get_hits, &w.get_misses)
            };
            cmd.incr();
            if hit.is_some() {
                hits.incr();
            } else {
                misses.incr();
                reply.meta(command, MetaCode::En, key, flags, None, None);
            }
        }
        MetaCommand::Set => {
            w.cmd_set.incr();
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
            let (outcome, new_cas) = store.store_cas(mode, key, flags.client_flags, exptime, data);
            super::count_cas(w, mode, outcome);
            let code = match outcome {
                StoreOutcome::Stored => MetaCode::Hd,
                StoreOutcome::NotStored => MetaCode::Ns,
                StoreOutcome::Exists => MetaCode::Ex,
                StoreOutcome::NotFound => MetaCode::Nf,
                StoreOutcome::TooLarge => {
                    w.store_too_large.incr();
                    return reply.status(Status::TooLarge, 0);
                }
                StoreOutcome::OutOfMemory => {
                    w.store_no_memory.incr();
                    return reply.status(Status::OutOfMemory, 0);
                }
            };
            let it = MetaInfo { cas: new_cas, ..MetaInfo::default() };
            reply.meta(command, code, key, flags, Some(&it), None);
        }
        MetaCommand::Delete => {
            let opts = MetaDelete {
                cas: flags.compare_cas,
                invalidate: flags.invalidate,
                touch: flags.ttl,
                remove_value: flags.remove_value,
            };
            let code = match store.delete_meta(key, opts) {
                DeleteOutcome::Deleted => {
                    w.delete_hits.incr();
                    MetaCode::Hd
                }
                DeleteOutcome::NotFound => {
                    w.delete_misses.incr();
                    MetaCode::Nf
                }
                DeleteOutcome::Exists => {
                    w.delete_misses.incr();
                    MetaCode::Ex
                }
            };
            reply.meta(command, code, key, flags, None, None);
        }
        MetaCommand::Arith => {
            let incr = !matches!(flags.mode, Some(b'D' | b'-'));
            let create = flags.vivify.map(|t| (flags.initial, t));
            let cas = flags.compare_cas.unwrap_or(0);
            let outcome = store.delta_with(key, incr, flags.delta, cas, create, flags.ttl);
            let (hits, misses) = if incr { (&w.incr_hits, &w.incr_misses) } else { (&w.decr_hits, &w.decr_misses) };
            match outcome {
                DeltaOutcome::Value(v, new_cas, exptime) => {
                    hits.incr();
                    let now = store.clock().now();
                    let ttl = if exptime == 0 { -1 } else { i64::from(exptime) - i64::from(now) };
                    let it = MetaInfo { cas: new_cas, ttl, ..MetaInfo::default() };
                    let mut buf = [0u8; 20];
                    let digits = crate::num::format_u64(&mut buf, v);
                    let code = if flags.value { MetaCode::Va } else { MetaCode::Hd };
                    reply.meta(command, code, key, flags, Some(&it), flags.value.then_some(digits));
                }
                DeltaOutcome::NotFound => {
                    misses.incr();
                    reply.meta(command, MetaCode::Nf, key, flags, None, None);
                }
                DeltaOutcome::Exists => reply.meta(command, MetaCode::Ex, key, flags, None, None),
                DeltaOutcome::NonNumeric => reply.status(Status::NonNumeric, 0),
                DeltaOutcome::OutOfMemory => reply.status(Status::DeltaOutOfMemory, 0),
            }
        }
        MetaCommand::Debug => {
            let item = store.debug(key).map(|m| info(&m, 0));
            reply.meta_debug(key, flags, item.as_ref());
        }
    }
}
