//! The store: keys to items, in slab-allocated memory bounded by `-m`,
//! with an LRU per slab class.
//!
//! The key space is split into shards by hash. Each shard is one
//! `parking_lot::Mutex<Shard>` holding its hash table, its slab classes
//! (pages, free lists, LRUs) and its counters, so every operation takes
//! exactly one lock and never holds two (`flush_all` and `stats` visit the
//! shards one after another). Pages come from one global [`PagePool`].
//!
//! The store speaks outcomes ([`StoreOutcome`], [`DeltaOutcome`]), never
//! protocol: `dispatch.rs` turns them into replies. Values are copied once in
//! (from the caller's slice into the chunk) and read out through a callback
//! while the shard is locked, so the caller copies them once out.
//!
//! Item lifetime: an item is *linked* (in the table and its class LRU) or its
//! chunk is free. It dies by replacement, `delete`, expiry or `flush_all`
//! (checked on access, and by the background [`Store::crawl`]), or eviction
//! when its class needs a chunk and no page can be had.

pub mod clock;
pub mod hashtable;
pub mod item;
pub mod lru;
pub mod slab;
pub mod snapshot;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::num::{format_u64, parse_digits, DigitBuf};

use clock::Clock;
use hashtable::{Chain, Loc, Table};
use item::{ItemRef, FETCHED, LINKED, NIL, STALE, TOKEN_SENT};
use slab::{Class, ClassCounters, PagePool, SlabSizes};

/// Largest key, in bytes (memcached's KEY_MAX_LENGTH).
pub const MAX_KEY_LEN: usize = 250;
/// memcached refuses to parse a counter stored in 24 or more bytes.
const INCR_MAX_STORAGE_LEN: usize = 24;
/// Dead items looked for at an LRU tail before evicting a live one.
const TAIL_SEARCH: usize = 5;
/// Bytes in a megabyte, as `-m` counts them.
pub const MEGABYTE: usize = 1024 * 1024;

/// What the store is built from (the `storage` section of the config).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `-m`, in bytes.
    pub memory_limit: usize,
    /// `-I`: page size and largest item.
    pub item_size_max: usize,
    /// `-f`.
    pub growth_factor: f64,
    /// `-n`.
    pub min_space: usize,
    /// `-C` turns this off: CAS values read as 0.
    pub use_cas: bool,
    /// `-M` turns this off: a full class answers out of memory.
    pub evictions: bool,
    /// `-o hashpower=N`: initial table size (2^N buckets over all shards).
    pub hashpower: u32,
    /// 0 picks a count from the page budget.
    pub shards: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory_limit: 64 * MEGABYTE,
            item_size_max: MEGABYTE,
            growth_factor: 1.25,
            min_space: 48,
            use_cas: true,
            evictions: true,
            hashpower: 16,
            shards: 0,
        }
    }
}

/// How a storage command treats an existing item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    /// Append; a non-zero CAS must match the item's (binary protocol).
    Append(u64),
    /// Prepend; a non-zero CAS must match the item's (binary protocol).
    Prepend(u64),
    /// Store only if the item's CAS equals this.
    Cas(u64),
    /// Meta set with `C` and `I`: as `Cas`, but a token older than the
    /// item's CAS still stores, marking the new item stale.
    CasInvalidate(u64),
}

/// Result of a storage command (memcached's `store_item_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    NotStored,
    Exists,
    NotFound,
    TooLarge,
    OutOfMemory,
}

/// Result of incr/decr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOutcome {
    /// The new value, the item's new CAS and its relative exptime.
    Value(u64, u64, u32),
    NotFound,
    NonNumeric,
    /// A CAS was given and did not match.
    Exists,
    OutOfMemory,
}

/// Result of delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// A CAS was given and did not match.
    Exists,
}

/// An item as a reader sees it, borrowed from its chunk.
#[derive(Debug, Clone, Copy)]
pub struct ItemView<'a> {
    pub key: &'a [u8],
    pub flags: u32,
    pub cas: u64,
    pub value: &'a [u8],
}

/// What a meta get reports about an item, as it was before this access
/// (`fetched`, `last_access`) or after it (`exptime`, `won`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetaItem {
    pub flags: u32,
    pub cas: u64,
    /// Relative expiry, 0 = never.
    pub exptime: u32,
    /// Seconds left to live, -1 for never.
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

/// Store-wide counters for `stats`.
#[derive(Debug, Default, Clone)]
pub struct StoreStats {
    pub curr_items: u64,
    pub total_items: u64,
    pub bytes: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    pub get_expired: u64,
    pub get_flushed: u64,
    pub hash_bytes: u64,
    pub hash_power_level: u32,
    pub slabs_moved: u64,
    pub pages: u64,
    pub limit_maxbytes: u64,
    pub total_malloced: u64,
}

/// One class's figures summed over shards, for `stats slabs|items`.
#[derive(Debug, Default, Clone)]
pub struct ClassStats {
    pub id: u8,
    pub chunk_size: usize,
    pub chunks_per_page: u32,
    pub total_pages: u64,
    pub total_chunks: u64,
    pub used_chunks: u64,
    pub free_chunks: u64,
    pub free_chunks_end: u64,
    pub mem_requested: u64,
    /// Seconds since the oldest item in the class was used.
    pub age: u32,
    pub counters: ClassCounters,
}

/// Why an item leaves (decides which counters move).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unlink {
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
enum Miss {
    Absent,
    Expired,
    Flushed,
}

struct Shard {
    table: Table,
    classes: Vec<Class>,
    hasher: ahash::RandomState,
    /// Next CAS sequence number (the CAS is `seq << SHARD_BITS | shard`).
    next_seq: u64,
    shard_id: u64,
    /// Items with a CAS below this were flushed.
    oldest_cas: u64,
    total_items: u64,
    get_expired: u64,
    get_flushed: u64,
    crawler_items_checked: u64,
    /// Crawler position: class index and chunk index.
    crawl_class: usize,
    crawl_idx: u32,
    /// Relative time of the last page moved between classes by age.
    last_move: u32,
    slabs_moved: u64,
}

/// Pages of budget each shard gets at least (see `Store::new`).
const PAGES_PER_SHARD: usize = 64;

/// Shard id bits in a CAS value: 64 shards at most.
const SHARD_BITS: u32 = 6;
const MAX_SHARDS: usize = 1 << SHARD_BITS;

impl Shard {
    fn next_cas(&mut self) -> u64 {
        let cas = (self.next_seq << SHARD_BITS) | self.shard_id;
        self.next_seq += 1;
        cas
    }

    #[inline]
    fn class(&self, id: u8) -> &Class {
        &self.classes[usize::from(id) - 1]
    }

    #[inline]
    fn class_mut(&mut self, id: u8) -> &mut Class {
        &mut self.classes[usize::from(id) - 1]
    }

    #[inline]
    fn item(&self, loc: Loc) -> ItemRef<'_> {
        self.class(loc.class).item(loc.idx)
    }

    /// Why the item is dead, if it is.
    #[inline]
    fn dead(&self, it: ItemRef<'_>, now: u32) -> Option<Miss> {
        if it.cas() < self.oldest_cas {
            return Some(Miss::Flushed);
        }
        let exp = it.exptime();
        (exp != 0 && exp <= now).then_some(Miss::Expired)
    }

    /// The location of `key`, whatever its state, and its predecessor in
    /// its hash chain (for [`Shard::unlink_at`]).
    #[inline]
    fn find(&self, h: u64, key: &[u8]) -> Option<(u32, Loc)> {
        let classes = &self.classes[..];
        self.table.find(h, classes, |e| entry_item(classes, e).key() == key).map(|(pred, e)| (pred, Loc::unpack(e)))
    }

    /// Finds a live `key`; a dead one found on the way is unlinked.
    fn lookup(&mut self, h: u64, key: &[u8], now: u32) -> Result<(u32, Loc), Miss> {
        let (pred, loc) = self.find(h, key).ok_or(Miss::Absent)?;
        match self.dead(self.item(loc), now) {
            None => Ok((pred, loc)),
            Some(why) => {
                self.unlink_at(h, pred, loc, Unlink::Expired, now);
                Err(why)
            }
        }
    }

    /// Links a written item into the table, growing the table first when
    /// it is full.
    fn link_entry(&mut self, h: u64, loc: Loc) {
        if self.table.wants_growth() {
            let hasher = &self.hasher;
            self.table.grow(&mut self.classes[..], |classes, e| hasher.hash_one(entry_item(classes, e).key()));
        }
        self.table.insert(h, loc.pack(), &mut self.classes[..]);
    }

    /// Unlinks the item at `loc` (key hash `h`, chain predecessor `pred`
    /// from [`Shard::find`]) and frees its chunk.
    fn unlink_at(&mut self, h: u64, pred: u32, loc: Loc, why: Unlink, now: u32) {
        self.table.remove_after(h, pred, loc.pack(), &mut self.classes[..]);
        self.release(loc, why, now);
    }

    /// Takes an item already out of the table off its LRU, counts why, and
    /// frees its chunk.
    fn release(&mut self, loc: Loc, why: Unlink, now: u32) {
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
    }

    /// Unlinks the item at `loc`, finding its hash chain by its key.
    fn unlink_loc(&mut self, loc: Loc, why: Unlink, now: u32) {
        let h = self.hasher.hash_one(self.item(loc).key());
        let found = self.table.remove(h, loc.pack(), &mut self.classes[..]);
        assert!(found, "linked item is in the table");
        self.release(loc, why, now);
    }

    /// A chunk of class `id`: free, fresh from the pool, reclaimed from a
    /// dead item, from a page moved off a colder class, or evicted.
    fn alloc(&mut self, id: u8, pool: &PagePool, evictions: bool, now: u32) -> Option<u32> {
        if let Some(idx) = self.class_mut(id).alloc_chunk() {
            return Some(idx);
        }
        let can_grow = self.class(id).can_grow();
        if can_grow && self.add_page(id, pool) {
            return self.class_mut(id).alloc_chunk();
        }
        // Look for a dead item near the tail first.
        let mut cur = self.class(id).lru_tail;
        for _ in 0..TAIL_SEARCH {
            if cur == NIL {
                break;
            }
            let loc = Loc { class: id, idx: cur };
            let it = self.item(loc);
            let prev = it.prev();
            if self.dead(it, now).is_some() {
                self.unlink_loc(loc, Unlink::Reclaimed, now);
                return self.class_mut(id).alloc_chunk();
            }
            cur = prev;
        }
        if !evictions {
            self.class_mut(id).counters.outofmemory += 1;
            return None;
        }
        if can_grow {
            if let Some(victim) = self.page_to_move(id, pool, now) {
                if self.move_page(victim, id, pool, now) {
                    return self.class_mut(id).alloc_chunk();
                }
            }
        }
        let tail = self.class(id).lru_tail;
        if tail != NIL {
            self.unlink_loc(Loc { class: id, idx: tail }, Unlink::Evicted, now);
            return self.class_mut(id).alloc_chunk();
        }
        self.class_mut(id).counters.outofmemory += 1;
        None
    }

    /// The class that should give a page to class `id`, which is about to
    /// evict: the memory is all handed out, so it comes from another class.
    ///
    /// Only a class whose pages, with what the budget has left, make up a
    /// page of `id`'s size can give (it keeps one page when `id` merely
    /// evicts), so a move never empties a class and then fails. A class
    /// holding nothing takes from the class with the most bytes at once.
    /// Otherwise, at most once a second per shard, a page
    /// moves from the class whose LRU tail is oldest when that tail is over
    /// twice as old as this class's (memcached's automover compares the
    /// same ages): a class that items outgrew, or whose items grew a few
    /// bytes into the next class, does not keep its pages while its
    /// neighbour evicts fresh items.
    fn page_to_move(&mut self, id: u8, pool: &PagePool, now: u32) -> Option<usize> {
        let me = usize::from(id) - 1;
        let short = self.classes[me].page_bytes.saturating_sub(pool.limit().saturating_sub(pool.used()));
        let bytes = |c: &Class| c.pages.len() * c.page_bytes;
        let others = (0..self.classes.len()).filter(|&i| i != me);
        if self.classes[me].lru_tail == NIL {
            return others
                .filter(|&i| !self.classes[i].pages.is_empty() && bytes(&self.classes[i]) >= short)
                .max_by_key(|&i| bytes(&self.classes[i]));
        }
        if now <= self.last_move {
            return None;
        }
        let age = |c: &Class| if c.lru_tail == NIL { u32::MAX } else { now.saturating_sub(c.item(c.lru_tail).atime()) };
        let mine = age(&self.classes[me]);
        let spare = |c: &Class| c.pages.len() >= 2 && bytes(c) - c.page_bytes >= short;
        let victim = others.filter(|&i| spare(&self.classes[i])).max_by_key(|&i| age(&self.classes[i]))?;
        let theirs = age(&self.classes[victim]);
        if u64::from(theirs) <= 2 * u64::from(mine) + 1 {
            return None;
        }
        self.last_move = now;
        Some(victim)
    }

    /// A fresh page for class `id`, if the budget has room for it.
    fn add_page(&mut self, id: u8, pool: &PagePool) -> bool {
        let c = self.class_mut(id);
        if !pool.try_take(c.page_bytes) {
            return false;
        }
        c.add_page(vec![0u8; c.page_bytes].into_boxed_slice());
        true
    }

    /// Gives class `to` a page taken from class index `from`: the newest
    /// pages of `from` are emptied (their items evicted) and freed until the
    /// budget holds a page of `to`'s size. False if `from` ran out first.
    fn move_page(&mut self, from: usize, to: u8, pool: &PagePool, now: u32) -> bool {
        let vid = (from + 1) as u8;
        loop {
            if self.add_page(to, pool) {
                self.slabs_moved += 1;
                return true;
            }
            let c = &self.classes[from];
            if c.pages.is_empty() {
                return false;
            }
            let first = (c.pages.len() as u32 - 1) * c.per_page;
            let end = first + c.carved;
            for idx in first..end {
                let loc = Loc { class: vid, idx };
                if self.item(loc).is_linked() {
                    self.unlink_loc(loc, Unlink::Evicted, now);
                }
            }
            if let Some(page) = self.classes[from].take_last_page() {
                pool.give_back(page.len());
            }
        }
    }

    /// Writes a new item for `key` and links it, replacing any item of the
    /// same key (which `alloc` may already have evicted).
    #[allow(clippy::too_many_arguments)]
    fn write_item(
        &mut self,
        h: u64,
        key: &[u8],
        flags: u32,
        exptime: u32,
        value: &[&[u8]],
        now: u32,
        sizes: &SlabSizes,
        pool: &PagePool,
        evictions: bool,
        extra_iflags: u8,
    ) -> Result<u64, StoreOutcome> {
        let vlen: usize = value.iter().map(|v| v.len()).sum();
        let total = item::total_len(key.len(), vlen, flags);
        let id = sizes.class_for(total).ok_or(StoreOutcome::TooLarge)?;
        let idx = self.alloc(id, pool, evictions, now).ok_or(StoreOutcome::OutOfMemory)?;
        let cas = self.next_cas();
        if let Some((pred, old)) = self.find(h, key) {
            self.unlink_at(h, pred, old, Unlink::Removed, now);
        }
        {
            let mut it = self.class_mut(id).item_mut(idx);
            it.init(key, flags, exptime, now, cas, value);
            it.set_iflags(LINKED | extra_iflags);
        }
        self.link_entry(h, Loc { class: id, idx });
        let c = self.class_mut(id);
        lru::link_head(c, idx);
        c.items += 1;
        c.bytes += total as u64;
        c.counters.cmd_set += 1;
        self.total_items += 1;
        Ok(cas)
    }
}

/// The cache. Shared by all event loops (`Arc<Store>`).
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    shard_shift: u32,
    hasher: ahash::RandomState,
    sizes: SlabSizes,
    pool: PagePool,
    clock: Arc<Clock>,
    use_cas: bool,
    evictions: bool,
    /// Relative time of a pending delayed `flush_all`, 0 if none.
    flush_at: AtomicU32,
    limit_bytes: AtomicUsize,
}

impl Store {
    pub fn new(cfg: &StoreConfig, clock: Arc<Clock>) -> Store {
        let sizes = SlabSizes::new(cfg.min_space, cfg.growth_factor, cfg.item_size_max);
        let pages = (cfg.memory_limit / cfg.item_size_max).max(1);
        let nshards = if cfg.shards > 0 {
            cfg.shards.next_power_of_two().min(MAX_SHARDS)
        } else {
            // Every shard owns whole pages per slab class, so a shard needs
            // about a page for each of its ~40 classes before it is full:
            // give each shard at least PAGES_PER_SHARD pages. Fewer shards
            // mean more lock sharing; pages stranded in a half-used shard
            // mean evictions while memory is still free, which is worse.
            let mut n = MAX_SHARDS;
            while n > 1 && pages / n < PAGES_PER_SHARD {
                n /= 2;
            }
            n
        };
        let hasher = ahash::RandomState::new();
        let per_shard_power = cfg.hashpower.saturating_sub(nshards.trailing_zeros());
        let shards = (0..nshards)
            .map(|i| {
                Mutex::new(Shard {
                    table: Table::with_power(per_shard_power),
                    classes: (1..=sizes.count() as u8)
                        .map(|id| Class::new(sizes.chunk_size(id), sizes.page_bytes(id)))
                        .collect(),
                    hasher: hasher.clone(),
                    next_seq: 1,
                    shard_id: i as u64,
                    oldest_cas: 0,
                    total_items: 0,
                    get_expired: 0,
                    get_flushed: 0,
                    crawler_items_checked: 0,
                    crawl_class: 0,
                    crawl_idx: 0,
                    last_move: 0,
                    slabs_moved: 0,
                })
            })
            .collect();
        Store {
            shards,
            shard_shift: 64 - nshards.trailing_zeros(),
            hasher,
            sizes,
            pool: PagePool::new(cfg.memory_limit.max(cfg.item_size_max)),
            clock,
            use_cas: cfg.use_cas,
            evictions: cfg.evictions,
            flush_at: AtomicU32::new(0),
            limit_bytes: AtomicUsize::new(cfg.memory_limit),
        }
    }

    /// The clock items are timed by.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// The slab class sizes.
    pub fn sizes(&self) -> &SlabSizes {
        &self.sizes
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    #[inline]
    fn locate(&self, key: &[u8]) -> (u64, &Mutex<Shard>) {
        let h = self.hasher.hash_one(key);
        let i = if self.shard_shift >= 64 { 0 } else { (h >> self.shard_shift) as usize };
        (h, &self.shards[i])
    }

    #[inline]
    fn shown_cas(&self, cas: u64) -> u64 {
        if self.use_cas {
            cas
        } else {
            0
        }
    }

    /// Runs a delayed `flush_all` whose time has come.
    #[inline]
    fn check_flush(&self) {
        let at = self.flush_at.load(Ordering::Relaxed);
        if at != 0
            && self.clock.now() >= at
            && self.flush_at.compare_exchange(at, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            self.flush_now();
        }
    }

    fn flush_now(&self) {
        for s in self.shards.iter() {
            let mut s = s.lock();
            s.oldest_cas = (s.next_seq << SHARD_BITS) | s.shard_id;
        }
    }

    /// `flush_all`: every item stored before now (or before `exptime`, a
    /// protocol exptime > 0) becomes invalid.
    pub fn flush_all(&self, exptime: i64) {
        if exptime > 0 {
            let at = self.clock.exptime_to_rel(exptime).max(1);
            self.flush_at.store(at, Ordering::Relaxed);
            self.check_flush();
        } else {
            self.flush_at.store(0, Ordering::Relaxed);
            self.flush_now();
        }
    }

    /// Reads `key`; `f` sees the item while the shard is locked. With
    /// `touch`, the item's exptime is set to it (gat). Updates LRU position.
    pub fn get<R>(&self, key: &[u8], touch: Option<u32>, f: impl FnOnce(ItemView<'_>) -> R) -> Option<R> {
        self.check_flush();
        let (h, shard) = self.locate(key);
        let now = self.clock.now();
        let mut s = shard.lock();
        let (_, loc) = match s.lookup(h, key, now) {
            Ok(found) => found,
            Err(Miss::Absent) => return None,
            Err(Miss::Expired) => {
                s.get_expired += 1;
                return None;
            }
            Err(Miss::Flushed) => {
                s.get_flushed += 1;
                return None;
            }
        };
        let c = s.class_mut(loc.class);
        {
            let mut it = c.item_mut(loc.idx);
            if let Some(exp) = touch {
                it.set_exptime(exp);
            }
            it.set_atime(now);
            let fl = it.as_ref().iflags();
            it.set_iflags(fl | FETCHED);
        }
        if touch.is_some() {
            c.counters.touch_hits += 1;
        } else {
            c.counters.get_hits += 1;
        }
        lru::bump(c, loc.idx);
        let it = c.item(loc.idx);
        let cas = if self.use_cas { it.cas() } else { 0 };
        Some(f(ItemView { key: it.key(), flags: it.flags(), cas, value: it.value() }))
    }

    /// set/add/replace/append/prepend/cas. `exptime` is a protocol exptime.
    pub fn store(&self, mode: StoreMode, key: &[u8], flags: u32, exptime: i64, value: &[u8]) -> StoreOutcome {
        self.store_cas(mode, key, flags, exptime, value).0
    }

    /// Like [`Store::store`], also returning the stored item's CAS (0 if
    /// nothing was stored).
    pub fn store_cas(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
    ) -> (StoreOutcome, u64) {
        self.check_flush();
        let (h, shard) = self.locate(key);
        let now = self.clock.now();
        let exp = self.clock.exptime_to_rel(exptime);
        let mut s = shard.lock();
        let found = s.lookup(h, key, now).ok();
        let mut combined = None;
        let mut stale = false;
        let (mut flags, mut exp) = (flags, exp);
        match (mode, found) {
            (StoreMode::Add, Some((_, loc))) => {
                // memcached bumps an item that an add found.
                lru::bump(s.class_mut(loc.class), loc.idx);
                return (StoreOutcome::NotStored, 0);
            }
            (StoreMode::Replace | StoreMode::Append(_) | StoreMode::Prepend(_), None) => {
                return (StoreOutcome::NotStored, 0)
            }
            (StoreMode::Cas(_) | StoreMode::CasInvalidate(_), None) => return (StoreOutcome::NotFound, 0),
            (StoreMode::CasInvalidate(want), Some((_, loc))) => {
                let have = self.shown_cas(s.item(loc).cas());
                if want > have {
                    s.class_mut(loc.class).counters.cas_badval += 1;
                    return (StoreOutcome::Exists, 0);
                }
                s.class_mut(loc.class).counters.cas_hits += 1;
                stale = want < have;
            }
            (StoreMode::Cas(want), Some((_, loc))) => {
                let have = self.shown_cas(s.item(loc).cas());
                let c = s.class_mut(loc.class);
                if have != want {
                    c.counters.cas_badval += 1;
                    return (StoreOutcome::Exists, 0);
                }
                c.counters.cas_hits += 1;
            }
            (StoreMode::Append(want) | StoreMode::Prepend(want), Some((_, loc))) => {
                if want != 0 && self.shown_cas(s.item(loc).cas()) != want {
                    return (StoreOutcome::Exists, 0);
                }
                // The old value is copied out: allocating the new chunk may
                // evict or move the old one.
                let it = s.item(loc);
                flags = it.flags();
                exp = it.exptime();
                let mut v = Vec::with_capacity(it.vlen() + value.len());
                if matches!(mode, StoreMode::Append(_)) {
                    v.extend_from_slice(it.value());
                    v.extend_from_slice(value);
                } else {
                    v.extend_from_slice(value);
                    v.extend_from_slice(it.value());
                }
                combined = Some(v);
            }
            _ => {}
        }
        let data = combined.as_deref().unwrap_or(value);
        let extra = if stale { STALE } else { 0 };
        match s.write_item(h, key, flags, exp, &[data], now, &self.sizes, &self.pool, self.evictions, extra) {
            Ok(cas) => (StoreOutcome::Stored, self.shown_cas(cas)),
            Err(e) => {
                // A failed set must not leave the old value readable.
                if mode == StoreMode::Set {
                    if let Some((pred, loc)) = s.find(h, key) {
                        s.unlink_at(h, pred, loc, Unlink::Removed, now);
                    }
                }
                (e, 0)
            }
        }
    }

    /// delete: true if a live item was removed.
    pub fn delete(&self, key: &[u8]) -> bool {
        self.delete_cas(key, 0) == DeleteOutcome::Deleted
    }

    /// delete, only if the item's CAS is `cas` (0: any).
    pub fn delete_cas(&self, key: &[u8], cas: u64) -> DeleteOutcome {
        self.check_flush();
        let (h, shard) = self.locate(key);
        let now = self.clock.now();
        let mut s = shard.lock();
        match s.lookup(h, key, now) {
            Ok((_, loc)) if cas != 0 && self.shown_cas(s.item(loc).cas()) != cas => DeleteOutcome::Exists,
            Ok((pred, loc)) => {
                s.class_mut(loc.class).counters.delete_hits += 1;
                s.unlink_at(h, pred, loc, Unlink::Removed, now);
                DeleteOutcome::Deleted
            }
            Err(_) => DeleteOutcome::NotFound,
        }
    }

    /// touch: sets a live item's exptime (a protocol exptime).
    pub fn touch(&self, key: &[u8], exptime: i64) -> bool {
        let exp = self.clock.exptime_to_rel(exptime);
        self.get(key, Some(exp), |_| ()).is_some()
    }

    /// incr (wrapping at 2^64) or decr (stopping at 0).
    pub fn delta(&self, key: &[u8], incr: bool, delta: u64) -> DeltaOutcome {
        self.delta_with(key, incr, delta, 0, None, None)
    }

    /// incr/decr as the binary and meta protocols have it: a non-zero
    /// `cas` must match; a missing key is created with `create` = (initial
    /// value, protocol exptime) when given; `touch` sets a new protocol
    /// exptime on success.
    pub fn delta_with(
        &self,
        key: &[u8],
        incr: bool,
        delta: u64,
        cas: u64,
        create: Option<(u64, i64)>,
        touch: Option<i64>,
    ) -> DeltaOutcome {
        self.check_flush();
        let (h, shard) = self.locate(key);
        let now = self.clock.now();
        let mut s = shard.lock();
        let Ok((_, loc)) = s.lookup(h, key, now) else {
            let Some((initial, exptime)) = create else {
                return DeltaOutcome::NotFound;
            };
            let mut buf: DigitBuf = [0; 20];
            let digits = format_u64(&mut buf, initial);
            let exp = self.clock.exptime_to_rel(exptime);
            return match s.write_item(h, key, 0, exp, &[digits], now, &self.sizes, &self.pool, self.evictions, 0) {
                Ok(new_cas) => DeltaOutcome::Value(initial, self.shown_cas(new_cas), exp),
                Err(_) => DeltaOutcome::OutOfMemory,
            };
        };
        let it = s.item(loc);
        if cas != 0 && self.shown_cas(it.cas()) != cas {
            return DeltaOutcome::Exists;
        }
        let Some(old) = parse_counter(it.value()) else {
            return DeltaOutcome::NonNumeric;
        };
        let new = if incr { old.wrapping_add(delta) } else { old.saturating_sub(delta) };
        let mut buf: DigitBuf = [0; 20];
        let digits = format_u64(&mut buf, new);
        let (vlen, flags) = (it.vlen(), it.flags());
        let exptime = touch.map_or(it.exptime(), |t| self.clock.exptime_to_rel(t));
        if digits.len() <= vlen {
            // Rewrite in place, padded with spaces as memcached does.
            let new_cas = s.next_cas();
            let c = s.class_mut(loc.class);
            if incr {
                c.counters.incr_hits += 1;
            } else {
                c.counters.decr_hits += 1;
            }
            let mut it = c.item_mut(loc.idx);
            let v = it.value_mut();
            v[..digits.len()].copy_from_slice(digits);
            v[digits.len()..].fill(b' ');
            it.set_cas(new_cas);
            it.set_atime(now);
            it.set_exptime(exptime);
            lru::bump(c, loc.idx);
            return DeltaOutcome::Value(new, self.shown_cas(new_cas), exptime);
        }
        let digits = digits.to_vec();
        {
            let c = s.class_mut(loc.class);
            if incr {
                c.counters.incr_hits += 1;
            } else {
                c.counters.decr_hits += 1;
            }
        }
        match s.write_item(h, key, flags, exptime, &[&digits], now, &self.sizes, &self.pool, self.evictions, 0) {
            Ok(new_cas) => DeltaOutcome::Value(new, self.shown_cas(new_cas), exptime),
            Err(_) => DeltaOutcome::OutOfMemory,
        }
    }

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
                s.write_item(h, key, 0, exp, &[], now, &self.sizes, &self.pool, self.evictions, 0).ok()?;
                created = true;
                s.find(h, key)?.1
            }
        };
        let touch = opts.touch.map(|t| self.clock.exptime_to_rel(t));
        let recache = opts.recache.map(|t| self.clock.exptime_to_rel(t));
        let use_cas = self.use_cas;
        let c = s.class_mut(loc.class);
        let meta = {
            let mut it = c.item_mut(loc.idx);
            let r = it.as_ref();
            let (iflags, atime) = (r.iflags(), r.atime());
            if let Some(exp) = touch {
                it.set_exptime(exp);
            }
            let exptime = it.as_ref().exptime();
            let token_sent = iflags & TOKEN_SENT != 0;
            let stale = iflags & STALE != 0;
            let recache_due = recache.is_some_and(|r| exptime != 0 && exptime < r);
            let won = (created || stale || recache_due) && !token_sent;
            let mut new_flags = iflags;
            if won {
                new_flags |= TOKEN_SENT;
            }
            if !opts.no_bump {
                it.set_atime(now);
                new_flags |= FETCHED;
            }
            it.set_iflags(new_flags);
            let r = it.as_ref();
            MetaItem {
                flags: r.flags(),
                cas: if use_cas { r.cas() } else { 0 },
                exptime,
                ttl: if exptime == 0 { -1 } else { i64::from(exptime) - i64::from(now) },
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
        if !opts.no_bump {
            lru::bump(c, loc.idx);
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
            let mut it = s.class_mut(loc.class).item_mut(loc.idx);
            let fl = it.as_ref().iflags();
            it.set_iflags((fl | STALE) & !TOKEN_SENT);
            it.set_cas(cas);
            if let Some(exp) = exp {
                it.set_exptime(exp);
            }
            return DeleteOutcome::Deleted;
        }
        if opts.remove_value {
            let exp = s.item(loc).exptime();
            return match s.write_item(h, key, 0, exp, &[], now, &self.sizes, &self.pool, self.evictions, 0) {
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

    /// Changes the memory limit (`cache_memlimit`), in bytes.
    pub fn set_memory_limit(&self, bytes: usize) {
        self.limit_bytes.store(bytes, Ordering::Relaxed);
        self.pool.set_limit(bytes.max(self.sizes.page_size()));
    }

    /// One step of the background crawler: checks up to `budget` chunks per
    /// shard and unlinks dead items. Returns how many it reclaimed.
    pub fn crawl(&self, budget: usize) -> usize {
        self.check_flush();
        let now = self.clock.now();
        let mut reclaimed = 0;
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            let mut left = budget;
            let nclasses = s.classes.len();
            let mut classes_seen = 0;
            while left > 0 && classes_seen <= nclasses {
                let ci = s.crawl_class;
                let carved = s.classes[ci].total_carved();
                if s.crawl_idx >= carved {
                    s.crawl_class = (ci + 1) % nclasses;
                    s.crawl_idx = 0;
                    classes_seen += 1;
                    continue;
                }
                let loc = Loc { class: (ci + 1) as u8, idx: s.crawl_idx };
                s.crawl_idx += 1;
                left -= 1;
                s.crawler_items_checked += 1;
                let it = s.item(loc);
                if it.is_linked() && s.dead(it, now).is_some() {
                    s.unlink_loc(loc, Unlink::Crawled, now);
                    reclaimed += 1;
                }
            }
        }
        reclaimed
    }

    /// Calls `f` with every live item (key, value, flags, unix exptime or
    /// 0, CAS), one shard at a time with that shard locked.
    pub fn for_each_item(&self, mut f: impl FnMut(&[u8], &[u8], u32, u64, u64)) {
        let now = self.clock.now();
        for shard in self.shards.iter() {
            let s = shard.lock();
            for c in &s.classes {
                let mut cur = c.lru_tail;
                while cur != NIL {
                    let it = c.item(cur);
                    if s.dead(it, now).is_none() {
                        let exp = if it.exptime() == 0 { 0 } else { self.clock.to_unix(it.exptime()) };
                        f(it.key(), it.value(), it.flags(), exp, it.cas());
                    }
                    cur = it.prev();
                }
            }
        }
    }

    /// Makes every CAS handed out from now on greater than `cas`.
    pub fn raise_cas(&self, cas: u64) {
        let seq = (cas >> SHARD_BITS) + 1;
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            s.next_seq = s.next_seq.max(seq);
        }
    }

    /// Stores an item read back from a snapshot with its own CAS and unix
    /// exptime (0: never). Call [`Store::raise_cas`] with the largest
    /// restored CAS first.
    pub fn restore(&self, key: &[u8], value: &[u8], flags: u32, exptime_unix: u64, cas: u64) -> StoreOutcome {
        let (h, shard) = self.locate(key);
        let now = self.clock.now();
        let exp =
            if exptime_unix == 0 { 0 } else { self.clock.exptime_to_rel(exptime_unix.min(i64::MAX as u64) as i64) };
        let mut s = shard.lock();
        match s.write_item(h, key, flags, exp, &[value], now, &self.sizes, &self.pool, self.evictions, 0) {
            Ok(_) => {
                if let Some((_, loc)) = s.find(h, key) {
                    s.class_mut(loc.class).item_mut(loc.idx).set_cas(cas);
                }
                StoreOutcome::Stored
            }
            Err(e) => e,
        }
    }

    /// Keys, value lengths and unix expiry times of up to `limit` items of
    /// class `id`, most recent first (`stats cachedump`).
    pub fn dump_class(&self, id: u8, limit: usize) -> Vec<(Vec<u8>, usize, u64)> {
        let mut out = Vec::new();
        let limit = if limit == 0 { usize::MAX } else { limit };
        for shard in self.shards.iter() {
            let s = shard.lock();
            let c = s.class(id);
            let mut cur = c.lru_head;
            while cur != NIL && out.len() < limit {
                let it = c.item(cur);
                let exp = if it.exptime() == 0 { 0 } else { self.clock.to_unix(it.exptime()) };
                out.push((it.key().to_vec(), it.vlen(), exp));
                cur = it.next();
            }
        }
        out
    }

    /// Store-wide counters.
    pub fn stats(&self) -> StoreStats {
        let mut st = StoreStats {
            limit_maxbytes: self.limit_bytes.load(Ordering::Relaxed) as u64,
            total_malloced: self.pool.used() as u64,
            ..StoreStats::default()
        };
        let mut slots = 0u64;
        for shard in self.shards.iter() {
            let s = shard.lock();
            slots += s.table.capacity() as u64;
            st.total_items += s.total_items;
            st.get_expired += s.get_expired;
            st.get_flushed += s.get_flushed;
            st.crawler_items_checked += s.crawler_items_checked;
            st.slabs_moved += s.slabs_moved;
            for c in &s.classes {
                st.pages += c.pages.len() as u64;
                st.curr_items += u64::from(c.items);
                st.bytes += c.bytes;
                st.evictions += c.counters.evicted;
                st.reclaimed += c.counters.reclaimed;
                st.expired_unfetched += c.counters.expired_unfetched;
                st.evicted_unfetched += c.counters.evicted_unfetched;
                st.crawler_reclaimed += c.counters.crawler_reclaimed;
            }
        }
        st.hash_bytes = slots * 4;
        st.hash_power_level = 63 - slots.max(1).leading_zeros();
        st
    }

    /// Per-class figures, for classes that hold or held pages.
    pub fn class_stats(&self) -> Vec<ClassStats> {
        let now = self.clock.now();
        let mut out: Vec<ClassStats> = (1..=self.sizes.count() as u8)
            .map(|id| ClassStats { id, chunk_size: self.sizes.chunk_size(id), ..ClassStats::default() })
            .collect();
        for shard in self.shards.iter() {
            let s = shard.lock();
            for (cs, c) in out.iter_mut().zip(&s.classes) {
                cs.chunks_per_page = c.per_page;
                cs.total_pages += c.pages.len() as u64;
                cs.total_chunks += u64::from(c.total_chunks());
                cs.used_chunks += u64::from(c.items);
                cs.free_chunks += u64::from(c.free_count + (c.total_chunks() - c.total_carved()));
                cs.free_chunks_end += u64::from(c.total_chunks() - c.total_carved());
                cs.mem_requested += c.bytes;
                if c.lru_tail != NIL {
                    cs.age = cs.age.max(now.saturating_sub(c.item(c.lru_tail).atime()));
                }
                let (a, b) = (&mut cs.counters, &c.counters);
                a.evicted += b.evicted;
                a.evicted_nonzero += b.evicted_nonzero;
                a.evicted_time = a.evicted_time.max(b.evicted_time);
                a.evicted_unfetched += b.evicted_unfetched;
                a.outofmemory += b.outofmemory;
                a.reclaimed += b.reclaimed;
                a.expired_unfetched += b.expired_unfetched;
                a.crawler_reclaimed += b.crawler_reclaimed;
                a.get_hits += b.get_hits;
                a.cmd_set += b.cmd_set;
                a.delete_hits += b.delete_hits;
                a.incr_hits += b.incr_hits;
                a.decr_hits += b.decr_hits;
                a.cas_hits += b.cas_hits;
                a.cas_badval += b.cas_badval;
                a.touch_hits += b.touch_hits;
            }
        }
        out
    }

    /// Zeroes the per-class and store-wide counters (`stats reset`).
    pub fn reset_stats(&self) {
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            s.total_items = 0;
            s.get_expired = 0;
            s.get_flushed = 0;
            s.crawler_items_checked = 0;
            for c in s.classes.iter_mut() {
                c.counters = ClassCounters::default();
            }
        }
    }
}

/// Parses a stored counter as memcached's `safe_strtoull` does: leading
/// whitespace, an optional `+`, digits, then the end or whitespace.
fn parse_counter(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() >= INCR_MAX_STORAGE_LEN {
        return None;
    }
    let mut i = 0;
    while i < v.len() && v[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < v.len() && v[i] == b'+' {
        i += 1;
    }
    let start = i;
    while i < v.len() && v[i].is_ascii_digit() {
        i += 1;
    }
    if i < v.len() && !v[i].is_ascii_whitespace() {
        return None;
    }
    parse_digits(&v[start..i])
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

#[cfg(test)]
mod tests;
