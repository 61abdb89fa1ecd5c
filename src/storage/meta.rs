//! The meta commands' storage side: `mg` ([`Store::get_meta`]) and `md`
//! ([`Store::delete_meta`]) with their option and result types.
//!
//! Meta commands add stale-while-revalidate to the classic ones: `md` with
//! `I` marks an item stale under a new CAS instead of removing it, and the
//! first `mg` to see a stale item, a vivified miss or one near its end
//! (`R`) *wins* the right to recache it, while later readers are told a
//! token was already sent. The flags for this live in the item header
//! (`STALE`, `TOKEN_SENT`). Meta set is a classic store with
//! [`StoreMode::CasInvalidate`](super::StoreMode::CasInvalidate) (`mod.rs`);
//! turning these results into `HD`/`VA`/`W`/`X`/`Z` is `dispatch/meta.rs`.

use super::item::{FETCHED, STALE, TOKEN_SENT};
use super::items::{Miss, NewItem, Unlink};
use super::{lru, DeleteOutcome, Store};

/// What a meta get reports about an item, as it was before this access
/// (`fetched`, `last_access`) or after it (`exptime`, `won`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaItem {
    pub flags: u32,
    pub cas: u64,
    /// Relative expiry after this access, 0 = never.
    pub exptime: u32,
    /// Seconds left to live, -1 for never, as `t` reports it: at its place
    /// among the flags ([`MetaOrder`]).
    pub ttl: i64,
    /// Seconds since the previous access.
    pub last_access: u32,
    /// Read before this access.
    pub fetched: bool,
    pub stale: bool,
    /// Another client was already told it won the recache.
    pub token_sent: bool,
    /// This client wins the recache.
    pub won: bool,
    /// Slab class and total bytes (`me`).
    pub class: u8,
    pub size: usize,
}

/// Options of a meta get.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaGet {
    /// `T`: new protocol exptime.
    pub touch: Option<i64>,
    /// `u`: leave LRU position, access time and fetched mark alone.
    pub no_bump: bool,
    /// `N`: on a miss, create an empty item with this protocol exptime.
    pub vivify: Option<i64>,
    /// `R`: win the recache if fewer seconds than this are left.
    pub recache: Option<i64>,
    /// Where the flags that set or read the exptime stand.
    pub order: MetaOrder,
}

/// Where a meta get's `T`, `N`, `R` and `t` stand among its flags.
/// memcached applies them in the order given: `mg k t T30` reports the TTL
/// before the touch, `mg k T30 t` after it; `R` compares the exptime as
/// it is at its place; of `N` and `T` on an item the get creates, the
/// later sets the TTL, and a `t` before both sees a new item's "never".
/// The default order is `N T R t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaOrder {
    pub vivify: u8,
    pub touch: u8,
    pub recache: u8,
    pub ttl: u8,
}

impl Default for MetaOrder {
    fn default() -> Self {
        MetaOrder { vivify: 0, touch: 1, recache: 2, ttl: 3 }
    }
}

/// Options of a meta delete.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaDelete {
    /// `C`: the item's CAS must equal this.
    pub cas: Option<u64>,
    /// `I`: mark stale (new CAS) instead of removing.
    pub invalidate: bool,
    /// `T` with `I`: new protocol exptime.
    pub touch: Option<i64>,
    /// `x`: keep the item but empty its value and flags.
    pub remove_value: bool,
}

impl Store {
    /// A meta get (`mg`). `f` sees the item (as [`MetaItem`]), its key and
    /// value while the shard is locked. A miss with `vivify` creates an
    /// empty item and reports it as won.
    pub fn get_meta<R>(&self, key: &[u8], opts: MetaGet, f: impl FnOnce(&MetaItem, &[u8], &[u8]) -> R) -> Option<R> {
        self.check_flush();
        let (h, shard) = self.locate(key);
        let now = self.clock.now();
        let mut s = shard.lock();
        let mut created = false;
        let loc = match s.lookup(h, key, now) {
            Ok((_, loc)) => loc,
            Err(miss) => {
                match miss {
                    Miss::Expired => s.get_expired += 1,
                    Miss::Flushed => s.get_flushed += 1,
                    Miss::Absent => {}
                }
                let exp = self.clock.exptime_to_rel(opts.vivify?);
                let new = NewItem { h, key, flags: 0, exptime: exp, value: b"", marks: 0 };
                let written = s.write_item(&self.write_ctx(now), new).ok()?;
                created = true;
                written.loc
            }
        };
        let touch = opts.touch.map(|t| self.clock.exptime_to_rel(t));
        let recache = opts.recache.map(|t| self.clock.exptime_to_rel(t));
        // The exptime changes in flag order: `T`, and `N` when it created
        // the item (which starts as "never").
        let o = opts.order;
        let mut changes = [(o.touch, touch), (o.vivify, None)];
        if created {
            changes[1].1 = opts.vivify.map(|t| self.clock.exptime_to_rel(t));
        }
        changes.sort_by_key(|c| c.0);
        let use_cas = self.use_cas;
        let c = s.class_mut(loc.class);
        let meta = {
            let mut it = c.item_mut(loc.idx);
            let r = it.as_ref();
            let (iflags, atime, old_exptime) = (r.iflags(), r.atime(), r.exptime());
            let start = if created { 0 } else { old_exptime };
            let exptime_at = |place: u8| changes.iter().filter(|c| c.0 < place).fold(start, |e, c| c.1.unwrap_or(e));
            let exptime = exptime_at(u8::MAX);
            if exptime != old_exptime {
                it.set_exptime(exptime);
            }
            let token_sent = iflags & TOKEN_SENT != 0;
            let stale = iflags & STALE != 0;
            let seen = exptime_at(o.recache);
            let recache_due = !created && recache.is_some_and(|r| seen != 0 && seen < r);
            let won = (created || stale || recache_due) && !token_sent;
            let mut new_flags = iflags;
            if won {
                new_flags |= TOKEN_SENT;
            }
            if !opts.no_bump {
                if atime != now {
                    it.set_atime(now);
                }
                new_flags = lru::after_fetch(new_flags);
            }
            if new_flags != iflags {
                it.set_iflags(new_flags);
            }
            let r = it.as_ref();
            MetaItem {
                flags: r.flags(),
                cas: if use_cas { r.cas() } else { 0 },
                exptime,
                ttl: match exptime_at(o.ttl) {
                    0 => -1,
                    e => i64::from(e) - i64::from(now),
                },
                last_access: now.saturating_sub(atime),
                fetched: iflags & FETCHED != 0,
                stale,
                token_sent,
                won,
                class: loc.class,
                size: r.total_len(),
            }
        };
        if touch.is_some() {
            c.counters.touch_hits += 1;
        } else {
            c.counters.get_hits += 1;
        }
        let it = c.item(loc.idx);
        Some(f(&meta, it.key(), it.value()))
    }

    /// A meta delete (`md`).
    pub fn delete_meta(&self, key: &[u8], opts: MetaDelete) -> DeleteOutcome {
        self.check_flush();
        let (h, shard) = self.locate(key);
        let now = self.clock.now();
        let mut s = shard.lock();
        let Ok((pred, loc)) = s.lookup(h, key, now) else {
            return DeleteOutcome::NotFound;
        };
        if opts.cas.is_some_and(|want| self.shown_cas(s.item(loc).cas()) != want) {
            return DeleteOutcome::Exists;
        }
        if opts.invalidate {
            let cas = s.next_cas();
            let exp = opts.touch.map(|t| self.clock.exptime_to_rel(t));
            s.set_cas(loc, cas);
            let mut it = s.class_mut(loc.class).item_mut(loc.idx);
            let fl = it.as_ref().iflags();
            it.set_iflags((fl | STALE) & !TOKEN_SENT);
            if let Some(exp) = exp {
                it.set_exptime(exp);
            }
            return DeleteOutcome::Deleted;
        }
        if opts.remove_value {
            let exp = s.item(loc).exptime();
            let new = NewItem { h, key, flags: 0, exptime: exp, value: b"", marks: 0 };
            return match s.write_item(&self.write_ctx(now), new) {
                Ok(_) => DeleteOutcome::Deleted,
                Err(_) => DeleteOutcome::NotFound,
            };
        }
        s.class_mut(loc.class).counters.delete_hits += 1;
        s.unlink_at(h, pred, loc, Unlink::Removed, now);
        DeleteOutcome::Deleted
    }

    /// What `me` shows of a live item, without touching it.
    pub fn debug(&self, key: &[u8]) -> Option<MetaItem> {
        self.get_meta(key, MetaGet { no_bump: true, ..MetaGet::default() }, |m, _, _| *m)
    }
}

#[cfg(test)]
mod flag_tests;
#[cfg(test)]
mod tests;
