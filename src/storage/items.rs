//! Items in a shard: finding a key, linking a written item into the hash
//! table and its class LRU, and unlinking it again (memcached's `items.c`
//! and `assoc.c` glue).
//!
//! [`Shard`] is everything one shard lock guards. Its methods take
//! `&mut self`, so holding the shard's `MutexGuard` is the proof that the
//! lock is held (memcached's `do_item_*` convention, checked by the
//! compiler). This file decides when an item is dead (expired or flushed)
//! and which counter an unlink moves; it does not find memory for a new
//! item (`alloc.rs`) or know any command's rules (`mod.rs`, `meta.rs`).

use super::hashtable::{Chain, Loc, Table, MIGRATE_STEP};
use super::item::{self, ItemRef, FETCHED, LINKED, STALE, TOKEN_SENT};
use super::lru;
use super::sizes::SizeHistogram;
use super::slab::{Class, PagePool, SlabSizes};
use super::{EvictHookCell, Eviction, StoreOutcome};

/// Why an item leaves (decides which counters move).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Unlink {
    /// delete, replacement, flush: no counter.
    Removed,
    /// Live item pushed out for space.
    Evicted,
    /// Dead item found while looking for space.
    Reclaimed,
    /// Dead item found on access.
    Expired,
    /// Dead item found by the crawler.
    Crawled,
}

/// Why a lookup found nothing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Miss {
    Absent,
    Expired,
    Flushed,
}

/// One shard: its hash table, slab classes (pages, free lists, LRUs) and
/// counters, all behind one lock.
pub(super) struct Shard {
    pub(super) table: Table,
    pub(super) classes: Vec<Class>,
    pub(super) hasher: ahash::RandomState,
    /// Next CAS sequence number (the CAS is `seq << SHARD_BITS | shard`).
    pub(super) next_seq: u64,
    pub(super) shard_id: u64,
    /// Items with a CAS below this were flushed.
    pub(super) oldest_cas: u64,
    pub(super) total_items: u64,
    pub(super) get_expired: u64,
    pub(super) get_flushed: u64,
    pub(super) crawler_items_checked: u64,
    /// Crawler steps that checked items here (`lru_crawler_starts`).
    pub(super) crawler_starts: u64,
    /// Live items evicted because their page moved to another class
    /// (`slab_reassign_evictions_nomem`: a move never rescues items).
    pub(super) reassign_evictions: u64,
    /// Live items moved off a page this shard handed to another shard
    /// (`slab_reassign_rescues`).
    pub(super) reassign_rescues: u64,
    /// Crawler position: class index and chunk index.
    pub(super) crawl_class: usize,
    pub(super) crawl_idx: u32,
    /// Relative time of the last page moved between classes by age.
    pub(super) last_move: u32,
    /// Relative time this shard last found no other shard to take a page
    /// from (it looks again the next second, not on every eviction).
    pub(super) no_giver_at: u32,
    /// The same for a class holding no page (tried on every allocation
    /// until an attempt fails, then again the next second).
    pub(super) no_starved_giver_at: u32,
    /// Relative time this shard last found no other shard with a page of
    /// the class it grows whose items are all gone (see `alloc.rs`).
    pub(super) no_spare_at: u32,
    /// The shard offset where the next look for such a page starts.
    pub(super) spare_cursor: usize,
    /// `-o no_hashexpand` clears it: the table never grows.
    pub(super) hash_expand: bool,
    /// The store's eviction hook (one for all shards), called under this
    /// shard's lock.
    pub(super) evict_hook: std::sync::Arc<EvictHookCell>,
    pub(super) slabs_moved: u64,
    /// Bytes of pages each shard holds, indexed by shard id, shared by all
    /// shards: written under the owner's lock, read without it to pick a
    /// shard to take a page from (`alloc.rs`).
    pub(super) holdings: std::sync::Arc<[std::sync::atomic::AtomicUsize]>,
    /// `stats sizes` counts, only while size tracking is on (`sizes.rs`).
    pub(super) size_hist: Option<SizeHistogram>,
}

/// What every write takes from the store besides the item itself: where
/// memory comes from, whether it may evict for it, and the time of the
/// command (read once, so every item it writes carries the same time).
/// `Store::write_ctx` builds one.
#[derive(Clone, Copy)]
pub(super) struct WriteCtx<'a> {
    pub(super) sizes: &'a SlabSizes,
    pub(super) pool: &'a PagePool,
    /// `-M` turns this off: a full class answers out of memory.
    pub(super) evictions: bool,
    /// `-o slab_reassign`: whether a page may move here from another class.
    pub(super) reassign: bool,
    /// `slabs automove` mode (see `alloc.rs`, `Shard::page_to_move`).
    pub(super) automove: u8,
    /// `-o slab_automove_ratio`.
    pub(super) ratio: f64,
    pub(super) now: u32,
    /// Every shard, for taking a page from another one when the budget is
    /// spent (never waited on: see `Shard::page_from_another_shard`).
    pub(super) shards: &'a [ShardLock],
}

/// A shard's lock, alone on its cache lines (128 bytes: two lines, as the
/// adjacent-line prefetcher pairs them), so that one shard's lock word and
/// its busiest fields never share a line with another shard's.
#[repr(align(128))]
pub(super) struct ShardLock(pub(super) parking_lot::Mutex<Shard>);

impl std::ops::Deref for ShardLock {
    type Target = parking_lot::Mutex<Shard>;

    #[inline]
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The item a write creates.
#[derive(Clone, Copy)]
pub(super) struct NewItem<'a> {
    /// The hash of `key`: each command hashes its key once, to pick the
    /// shard, and the table reuses it.
    pub(super) h: u64,
    pub(super) key: &'a [u8],
    pub(super) flags: u32,
    /// Relative exptime, 0 for never.
    pub(super) exptime: u32,
    pub(super) value: &'a [u8],
    /// `STALE` / `TOKEN_SENT` bits the item starts with: a meta set whose
    /// CAS token was older than the item's stores a stale item and keeps
    /// the old item's `TOKEN_SENT`.
    pub(super) marks: u8,
}

/// Where [`Shard::write_item`] put the item, and the CAS it was given.
#[derive(Clone, Copy)]
pub(super) struct Written {
    pub(super) loc: Loc,
    pub(super) cas: u64,
}

/// Shard id bits in a CAS value: 1024 shards at most (4 per thread at
/// `-t 256`), leaving 54 bits of sequence.
pub(super) const SHARD_BITS: u32 = 10;
pub(super) const MAX_SHARDS: usize = 1 << SHARD_BITS;

impl Shard {
    /// An empty shard with one (page-less) class per slab size and a table
    /// of 2^`power` buckets. `id` goes in the low bits of every CAS it
    /// hands out, so CAS values stay unique across shards.
    pub(super) fn new(
        id: u64,
        sizes: &SlabSizes,
        power: u32,
        hasher: ahash::RandomState,
        evict_hook: std::sync::Arc<EvictHookCell>,
        holdings: std::sync::Arc<[std::sync::atomic::AtomicUsize]>,
    ) -> Shard {
        Shard {
            table: Table::with_power(power),
            classes: (1..=sizes.count() as u8)
                .map(|id| Class::new(sizes.chunk_size(id), sizes.page_bytes(id)))
                .collect(),
            hasher,
            next_seq: 1,
            shard_id: id,
            oldest_cas: 0,
            total_items: 0,
            get_expired: 0,
            get_flushed: 0,
            crawler_items_checked: 0,
            crawler_starts: 0,
            reassign_evictions: 0,
            reassign_rescues: 0,
            crawl_class: 0,
            crawl_idx: 0,
            last_move: 0,
            no_giver_at: u32::MAX,
            no_starved_giver_at: u32::MAX,
            no_spare_at: u32::MAX,
            spare_cursor: 0,
            hash_expand: true,
            slabs_moved: 0,
            size_hist: None,
            evict_hook,
            holdings,
        }
    }

    pub(super) fn next_cas(&mut self) -> u64 {
        let cas = (self.next_seq << SHARD_BITS) | self.shard_id;
        self.next_seq += 1;
        cas
    }

    #[inline]
    pub(super) fn class(&self, id: u8) -> &Class {
        &self.classes[usize::from(id) - 1]
    }

    #[inline]
    pub(super) fn class_mut(&mut self, id: u8) -> &mut Class {
        &mut self.classes[usize::from(id) - 1]
    }

    #[inline]
    pub(super) fn item(&self, loc: Loc) -> ItemRef<'_> {
        self.class(loc.class).item(loc.idx)
    }

    /// Why the item is dead, if it is.
    #[inline]
    pub(super) fn dead(&self, it: ItemRef<'_>, now: u32) -> Option<Miss> {
        if it.cas() < self.oldest_cas {
            return Some(Miss::Flushed);
        }
        let exp = it.exptime();
        (exp != 0 && exp <= now).then_some(Miss::Expired)
    }

    /// The location of `key`, whatever its state, and its predecessor in
    /// its hash chain (for [`Shard::unlink_at`]).
    #[inline]
    pub(super) fn find(&self, h: u64, key: &[u8]) -> Option<(u32, Loc)> {
        let classes = &self.classes[..];
        self.table.find(h, classes, |e| entry_item(classes, e).key() == key).map(|(pred, e)| (pred, Loc::unpack(e)))
    }

    /// Finds a live `key`; a dead one found on the way is unlinked.
    pub(super) fn lookup(&mut self, h: u64, key: &[u8], now: u32) -> Result<(u32, Loc), Miss> {
        self.lookup_unlinking(h, key, now, Unlink::Expired)
    }

    /// [`Shard::lookup`] for a storage command, which is about to write
    /// `key` anew: a dead (expired or flushed) item it finds counts as
    /// `reclaimed`, its memory going to the new item, as memcached counts
    /// the dead item its allocation takes back from the LRU tail.
    pub(super) fn lookup_for_write(&mut self, h: u64, key: &[u8], now: u32) -> Result<(u32, Loc), Miss> {
        self.lookup_unlinking(h, key, now, Unlink::Reclaimed)
    }

    fn lookup_unlinking(&mut self, h: u64, key: &[u8], now: u32, dead: Unlink) -> Result<(u32, Loc), Miss> {
        self.migrate_step();
        let (pred, loc) = self.find(h, key).ok_or(Miss::Absent)?;
        match self.dead(self.item(loc), now) {
            None => Ok((pred, loc)),
            Some(why) => {
                self.unlink_at(h, pred, loc, dead, now);
                Err(why)
            }
        }
    }

    /// Links a written item into the table. A full table starts growing
    /// first; while it grows, every insert moves a step of it.
    pub(super) fn link_entry(&mut self, h: u64, loc: Loc) {
        if self.hash_expand && self.table.wants_growth() {
            self.table.start_growth();
        }
        self.table.insert(h, loc.pack(), &mut self.classes[..]);
        self.migrate_step();
    }

    /// While the table grows, moves [`MIGRATE_STEP`] of its old buckets
    /// (rehashing the keys on them): a bounded piece of work, so no
    /// request pays for rehashing the whole shard.
    #[inline]
    pub(super) fn migrate_step(&mut self) {
        if self.table.is_growing() {
            let hasher = &self.hasher;
            self.table.migrate(MIGRATE_STEP, &mut self.classes[..], |classes, e| {
                hasher.hash_one(entry_item(classes, e).key())
            });
        }
    }

    /// Unlinks the item at `loc` (key hash `h`, chain predecessor `pred`
    /// from [`Shard::find`]) and frees its chunk.
    pub(super) fn unlink_at(&mut self, h: u64, pred: u32, loc: Loc, why: Unlink, now: u32) {
        self.table.remove_after(h, pred, loc.pack(), &mut self.classes[..]);
        self.release(loc, why, now);
    }

    /// Tells the eviction hook, if one is set, about the item at `loc`.
    fn report_eviction(&self, loc: Loc, now: u32) {
        let Some(hook) = self.evict_hook.get() else { return };
        let it = self.item(loc);
        hook(&Eviction {
            key: it.key(),
            fetched: it.iflags() & FETCHED != 0,
            exptime: it.exptime(),
            atime: it.atime(),
            now,
            class: loc.class,
            value_len: it.vlen(),
        });
    }

    /// Takes an item already out of the table off its LRU, counts why, and
    /// frees its chunk.
    pub(super) fn release(&mut self, loc: Loc, why: Unlink, now: u32) {
        if why == Unlink::Evicted {
            self.report_eviction(loc, now);
        }
        let oldest_cas = self.oldest_cas;
        let c = self.class_mut(loc.class);
        let it = c.item(loc.idx);
        let (total, iflags, exptime, atime, cas) = (it.total_len(), it.iflags(), it.exptime(), it.atime(), it.cas());
        debug_assert!(iflags & LINKED != 0);
        let unfetched = iflags & FETCHED == 0;
        let flushed = cas < oldest_cas;
        match why {
            Unlink::Removed => {}
            Unlink::Evicted => {
                c.counters.evicted += 1;
                if exptime != 0 {
                    c.counters.evicted_nonzero += 1;
                }
                c.counters.evicted_time = now.saturating_sub(atime);
                if unfetched {
                    c.counters.evicted_unfetched += 1;
                }
            }
            Unlink::Reclaimed | Unlink::Expired | Unlink::Crawled => {
                match why {
                    Unlink::Reclaimed => c.counters.reclaimed += 1,
                    Unlink::Crawled => c.counters.crawler_reclaimed += 1,
                    _ => {}
                }
                if unfetched && !flushed {
                    c.counters.expired_unfetched += 1;
                }
            }
        }
        lru::unlink(c, loc.idx);
        c.items -= 1;
        c.bytes -= total as u64;
        c.free_chunk(loc.idx);
        if let Some(hist) = &mut self.size_hist {
            hist.remove(total, cas);
        }
    }

    /// Gives a linked item a new CAS in place (incr, meta invalidation, a
    /// restored item's old CAS), keeping the size histogram's reckoning of
    /// which items it counted true.
    pub(super) fn set_cas(&mut self, loc: Loc, cas: u64) {
        let it = self.item(loc);
        let (total, old) = (it.total_len(), it.cas());
        if let Some(hist) = &mut self.size_hist {
            hist.remove(total, old);
            hist.add(total, cas);
        }
        self.class_mut(loc.class).item_mut(loc.idx).set_cas(cas);
    }

    /// Unlinks the item at `loc`, finding its hash chain by its key.
    pub(super) fn unlink_loc(&mut self, loc: Loc, why: Unlink, now: u32) {
        let h = self.hasher.hash_one(self.item(loc).key());
        let found = self.table.remove(h, loc.pack(), &mut self.classes[..]);
        assert!(found, "linked item is in the table");
        self.release(loc, why, now);
    }

    /// Writes `new` into a fresh chunk and links it, replacing any item of
    /// the same key (which `alloc` may already have evicted). Returns where
    /// the item now lives and its CAS, so callers that go on to read or
    /// change it need not walk the hash chain again.
    pub(super) fn write_item(&mut self, cx: &WriteCtx<'_>, new: NewItem<'_>) -> Result<Written, StoreOutcome> {
        let NewItem { h, key, flags, exptime, value, marks } = new;
        let now = cx.now;
        let total = item::total_len(key.len(), value.len(), flags);
        let id = cx.sizes.class_for(total).ok_or(StoreOutcome::TooLarge)?;
        let idx = self.alloc(id, cx).ok_or(StoreOutcome::OutOfMemory)?;
        let cas = self.next_cas();
        if let Some((pred, old)) = self.find(h, key) {
            self.unlink_at(h, pred, old, Unlink::Removed, now);
        }
        {
            let mut it = self.class_mut(id).item_mut(idx);
            it.init(key, flags, exptime, now, cas, &[value]);
            it.set_iflags(LINKED | (marks & (STALE | TOKEN_SENT)));
        }
        let loc = Loc { class: id, idx };
        self.link_entry(h, loc);
        let c = self.class_mut(id);
        lru::link_head(c, idx);
        c.items += 1;
        c.bytes += total as u64;
        self.total_items += 1;
        if let Some(hist) = &mut self.size_hist {
            hist.add(total, cas);
        }
        Ok(Written { loc, cas })
    }
}

/// The item a packed table entry points to.
#[inline]
fn entry_item(classes: &[Class], e: u32) -> ItemRef<'_> {
    let loc = Loc::unpack(e);
    classes[usize::from(loc.class) - 1].item(loc.idx)
}

/// The hash chains run through the items' `hnext` fields.
impl Chain for [Class] {
    #[inline]
    fn link(&self, at: u32) -> u32 {
        entry_item(self, at).hnext()
    }

    #[inline]
    fn set_link(&mut self, at: u32, to: u32) {
        let loc = Loc::unpack(at);
        self[usize::from(loc.class) - 1].item_mut(loc.idx).set_hnext(to)
    }
}
