//! What dispatch tells `watch` streams: the lookup a command makes
//! (`fetchers`) and a storage command's outcome (`mutations`), in the
//! words memcached logs them. Each helper returns at once (one relaxed
//! load) when nobody watches that class.

use crate::state::Shared;
use crate::storage::{Peek, StoreMode, StoreOutcome};
use crate::watch::{self, Event};

/// Logs the lookup of `key` a command makes before it acts (delete,
/// incr/decr, a storage command), and returns what it found for
/// [`stored`].
pub fn lookup(sh: &Shared, key: &[u8], fd: i32) -> Option<Peek> {
    if !sh.watch.wants(watch::FETCHERS | watch::MUTATIONS) {
        return None;
    }
    let found = sh.store.peek(key);
    let ev = Event::Get { key, found: found.map(|p| (p.class, p.value_len)), fd };
    sh.watch.log(watch::FETCHERS, &ev);
    found
}

/// Logs a looked-up item (`found`: its class and value length).
pub fn fetched(sh: &Shared, key: &[u8], found: Option<(u8, usize)>, fd: i32) {
    sh.watch.log(watch::FETCHERS, &Event::Get { key, found, fd });
}

/// Logs a storage command's outcome. `before` is what [`lookup`] found:
/// an append or prepend that stored reports the joined item (its length,
/// flags and TTL are the old item's), as memcached does.
#[allow(clippy::too_many_arguments)]
pub fn stored(
    sh: &Shared,
    key: &[u8],
    mode: StoreMode,
    outcome: StoreOutcome,
    exptime: i64,
    flags: u32,
    data: &[u8],
    before: Option<Peek>,
    fd: i32,
) {
    if !sh.watch.wants(watch::MUTATIONS) {
        return;
    }
    let clock = sh.store.clock();
    let (mut size, mut flags, mut exp) = (data.len(), flags, clock.exptime_to_rel(exptime));
    if let (StoreMode::Append(_) | StoreMode::Prepend(_), StoreOutcome::Stored, Some(old)) = (mode, outcome, before) {
        (size, flags, exp) = (old.value_len + data.len(), old.flags, old.exptime);
    }
    let ttl = if exp == 0 { 0 } else { exp.saturating_sub(clock.now()) };
    let class = sh.store.class_of(key.len(), size, flags);
    sh.watch.log(watch::MUTATIONS, &Event::Store { key, mode, outcome, ttl, class, size, fd });
}
