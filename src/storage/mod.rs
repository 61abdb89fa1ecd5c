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
//!
//! This file holds [`Store`] itself and the classic commands (get, the
//! storage commands, delete, touch, incr/decr, flush) plus the warm-restart
//! hooks `snapshot.rs` uses. The rest is split as memcached splits
//! `items.c`, `slabs.c` and `crawler.c`:
//!
//! - `items.rs`: the `Shard` under one lock; lookup, link,
//!   unlink and writing an item.
//! - `alloc.rs`: a chunk for a new item: free, reclaim, a page of dead
//!   items from another shard, fresh page, a page from another shard or
//!   class, eviction.
//! - `meta.rs`: `mg`/`md` and their types ([`MetaGet`], [`MetaItem`], ...).
//! - `stats.rs`: counters summed over shards, `stats cachedump`.
//! - `crawler.rs`: the background expiry crawler.
//! - `admin.rs`: `slabs reassign|automove`, requested crawls and the
//!   `lru_crawler metadump` walk.
//! - `sizes.rs`: the `stats sizes` histogram.
//! - `snapshot.rs`, `writeback.rs`: snapshot files, written while serving
//!   and read back.
//! - `slab.rs`, `lru.rs`, `hashtable.rs`, `item.rs`, `clock.rs`: the data
//!   structures those build on.

mod admin;
mod alloc;
pub mod clock;
mod crawler;
pub mod hashtable;
pub mod item;
mod items;
pub mod lru;
mod meta;
mod sizes;
pub mod slab;
pub mod snapshot;
mod stats;
mod writeback;

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::num::{format_u64, parse_digits, DigitBuf};

use clock::Clock;
use item::{STALE, TOKEN_SENT};
use items::{Miss, NewItem, Shard, ShardLock, Unlink, WriteCtx, MAX_SHARDS, SHARD_BITS};
use slab::{PagePool, SlabSizes};

pub use admin::{uri_encode, ClassMask, CrawlStart, Cursor, Reassign, ALL_CLASSES};
pub use meta::{MetaDelete, MetaGet, MetaItem, MetaOrder};
pub use sizes::{SizesError, BUCKET_BYTES as SIZE_BUCKET_BYTES};
pub use stats::{ClassStats, StoreStats};

/// memcached refuses to parse a counter stored in 24 or more bytes.
const INCR_MAX_STORAGE_LEN: usize = 24;
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
    /// Shards (locks); rounded up to a power of two, at most 1024. 0 picks
    /// 4 per core (the server passes 4 per `-t` thread).
    pub shards: usize,
    /// How slab pages may move between classes (`-o slab_reassign`,
    /// `slab_automove`, `slab_automove_ratio`).
    pub moves: PageMoves,
    /// `-o no_hashexpand` turns this off: the table keeps its first size.
    pub hash_expand: bool,
    /// `-o track_sizes`: count items by size from the start (`stats sizes`).
    pub track_sizes: bool,
}

/// Whether, and when, a page moves from one slab class to another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PageMoves {
    /// `-o slab_reassign` (default) / `no_slab_reassign`: pages may move.
    pub reassign: bool,
    /// `-o slab_automove=N`, the mode the store starts in (`slabs
    /// automove` changes it at run time; see `alloc.rs`,
    /// `Shard::page_to_move`): 0 only fills a class that holds nothing,
    /// 1 (default) also moves a page to an evicting class whose tail is
    /// much younger than the giver's, 2 moves on every eviction. Without
    /// `reassign` no page ever moves, as in memcached 1.4.
    pub automove: u8,
    /// `-o slab_automove_ratio`: a page moves to an evicting class when its
    /// LRU tail is younger than this fraction of the giver's tail age.
    pub ratio: f64,
}

impl PageMoves {
    /// Pages move on their own beyond filling an empty class.
    pub fn automatic(&self) -> bool {
        self.reassign && self.automove > 0
    }
}

/// The default `slab_automove_ratio`: the giver's tail is over twice as old.
pub const DEFAULT_AUTOMOVE_RATIO: f64 = 0.5;

impl Default for PageMoves {
    fn default() -> Self {
        PageMoves { reassign: true, automove: 1, ratio: DEFAULT_AUTOMOVE_RATIO }
    }
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
            moves: PageMoves::default(),
            hash_expand: true,
            track_sizes: false,
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

/// An item evicted to make room, as the eviction hook sees it.
#[derive(Debug, Clone, Copy)]
pub struct Eviction<'a> {
    pub key: &'a [u8],
    /// The item was read since it was stored.
    pub fetched: bool,
    /// Relative exptime (0: never expires).
    pub exptime: u32,
    /// Relative time of its last access.
    pub atime: u32,
    /// Relative time now.
    pub now: u32,
    /// Its slab class.
    pub class: u8,
    pub value_len: usize,
}

/// What [`Store::peek`] sees of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    pub class: u8,
    pub value_len: usize,
    pub flags: u32,
    /// Relative exptime (0: never expires).
    pub exptime: u32,
}

/// Told of every eviction (see [`Store::on_evict`]).
pub type EvictHook = Box<dyn Fn(&Eviction<'_>) + Send + Sync>;
type EvictHookCell = std::sync::OnceLock<EvictHook>;

/// Shards per event-loop thread (or core) when the config leaves it open.
pub const SHARDS_PER_THREAD: usize = 4;
/// Smallest pages a share of the budget should hold (see `Store::new`).
const PAGES_PER_SHARE: usize = 64;
/// Pages are never smaller than this.
const SMALLEST_PAGE: usize = 4096;
/// The cache. Shared by all event loops (`Arc<Store>`).
pub struct Store {
    shards: Box<[ShardLock]>,
    shard_shift: u32,
    hasher: ahash::RandomState,
    sizes: SlabSizes,
    pool: PagePool,
    clock: Arc<Clock>,
    use_cas: bool,
    evictions: bool,
    moves: PageMoves,
    /// Relative time of a pending delayed `flush_all`, 0 if none.
    flush_at: AtomicU32,
    limit_bytes: AtomicUsize,
    /// Automover mode, crawler switch and requested crawl (`admin.rs`).
    admin: admin::Admin,
    /// The one consumer of eviction events (`watch evictions`).
    evict_hook: Arc<EvictHookCell>,
    /// Whether items are counted by size; held while the shards' size
    /// histograms are turned on or off or summed (taken before a shard).
    track_sizes: Mutex<bool>,
}

impl Store {
    pub fn new(cfg: &StoreConfig, clock: Arc<Clock>) -> Store {
        // The shard count follows the threads, never the memory: every
        // request takes one shard lock, and 4 per thread keep two threads
        // from often wanting the same one.
        let wanted = match cfg.shards {
            0 => SHARDS_PER_THREAD * std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let nshards = wanted.next_power_of_two().min(MAX_SHARDS);
        let mut sizes = SlabSizes::new(cfg.min_space, cfg.growth_factor, cfg.item_size_max);
        if nshards > 1 {
            // Each class of each shard holds a partly used page, and pages
            // go wherever they are needed (`alloc.rs`), but with many
            // shards on a small -m those part pages would be much of the
            // budget: pages shrink until a shard's share holds
            // PAGES_PER_SHARE of the smallest.
            let share = cfg.memory_limit / nshards / PAGES_PER_SHARE;
            let floor = if share == 0 { 1 } else { 1 << (usize::BITS - 1 - share.leading_zeros()) };
            // And a class of large chunks gets pages of at most that share
            // / PAGES_PER_SHARE (whole chunks, at least one), so its memory
            // is spread over the shards in small pages instead of sitting
            // in a few 1 MB ones: an expired item's page can then serve a
            // key of any shard, and a full cache is full in every shard.
            sizes = sizes.with_min_page(floor.clamp(SMALLEST_PAGE, slab::MIN_PAGE)).with_max_page(share);
        }
        let hasher = ahash::RandomState::new();
        let per_shard_power = cfg.hashpower.saturating_sub(nshards.trailing_zeros());
        let evict_hook = Arc::new(EvictHookCell::new());
        let holdings: Arc<[AtomicUsize]> = (0..nshards).map(|_| AtomicUsize::new(0)).collect();
        let shards = (0..nshards)
            .map(|i| {
                let (hook, held) = (evict_hook.clone(), holdings.clone());
                let mut shard = Shard::new(i as u64, &sizes, per_shard_power, hasher.clone(), hook, held);
                shard.hash_expand = cfg.hash_expand;
                ShardLock(Mutex::new(shard))
            })
            .collect();
        let store = Store {
            shards,
            shard_shift: 64 - nshards.trailing_zeros(),
            hasher,
            sizes,
            pool: PagePool::new(cfg.memory_limit.max(cfg.item_size_max)),
            clock,
            use_cas: cfg.use_cas,
            evictions: cfg.evictions,
            moves: cfg.moves,
            flush_at: AtomicU32::new(0),
            limit_bytes: AtomicUsize::new(cfg.memory_limit),
            admin: admin::Admin::new(cfg.moves.automove),
            evict_hook,
            track_sizes: Mutex::new(false),
        };
        if cfg.track_sizes {
            // Without the memory, tracking stays off (`stats settings`
            // says so), as in memcached.
            let _ = store.enable_sizes(true);
        }
        store
    }

    /// Sets the one function told of every eviction (once; later calls
    /// are ignored). It runs on the evicting thread with the item's shard
    /// locked, so it must be short and must not call into the store.
    pub fn on_evict(&self, hook: EvictHook) {
        let _ = self.evict_hook.set(hook);
    }

    /// The slab class an item of this key, value and flags is stored in
    /// (0 if it is too large for any).
    pub fn class_of(&self, key_len: usize, value_len: usize, flags: u32) -> u8 {
        self.sizes.class_for(item::total_len(key_len, value_len, flags)).unwrap_or(0)
    }

    /// A glance at `key`'s live item that leaves its LRU position,
    /// access time and counters alone (what a watcher is told a command
    /// found before acting).
    pub fn peek(&self, key: &[u8]) -> Option<Peek> {
        self.peek_with(key, |it, class| Peek { class, value_len: it.vlen(), flags: it.flags(), exptime: it.exptime() })
    }

    /// `key`'s live item and its relative exptime (0: never expires), as
    /// [`Store::peek`] sees it (LRU position, access time and counters left
    /// alone), with its value and whether it is stale (invalidated by a
    /// meta command): `f` reads it while the shard is locked. Replication
    /// copies an item this way after a write.
    pub fn peek_item<R>(&self, key: &[u8], f: impl FnOnce(ItemView<'_>, u32, bool) -> R) -> Option<R> {
        self.peek_with(key, |it, _| {
            let cas = if self.use_cas { it.cas() } else { 0 };
            let stale = it.iflags() & STALE != 0;
            f(ItemView { key: it.key(), flags: it.flags(), cas, value: it.value() }, it.exptime(), stale)
        })
    }

    /// What `peek` and `peek_item` share: `f` reads `key`'s live item and
    /// its slab class under the shard lock; nothing about the item changes.
    fn peek_with<R>(&self, key: &[u8], f: impl FnOnce(item::ItemRef<'_>, u8) -> R) -> Option<R> {
        let (h, shard) = self.locate(key);
        let now = self.clock.now();
        let s = shard.lock();
        let (_, loc) = s.find(h, key)?;
        let it = s.item(loc);
        s.dead(it, now).is_none().then(|| f(it, loc.class))
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

    /// What a write needs from the store, at relative time `now`.
    #[inline]
    fn write_ctx(&self, now: u32) -> WriteCtx<'_> {
        WriteCtx {
            sizes: &self.sizes,
            pool: &self.pool,
            evictions: self.evictions,
            reassign: self.moves.reassign,
            automove: self.automove(),
            ratio: self.moves.ratio,
            now,
            shards: &self.shards,
        }
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
            // A hit writes the item only where something changes: within
            // the same second, and once the item is ACTIVE, a get leaves its
            // cache line clean, so loops reading the same items on other
            // cores keep their copies (memcached also bumps at most once a
            // period).
            let mut it = c.item_mut(loc.idx);
            if let Some(exp) = touch {
                it.set_exptime(exp);
            }
            let (atime, fl) = (it.as_ref().atime(), it.as_ref().iflags());
            if atime != now {
                it.set_atime(now);
            }
            let bumped = lru::after_fetch(fl);
            if bumped != fl {
                it.set_iflags(bumped);
            }
        }
        if touch.is_some() {
            c.counters.touch_hits += 1;
        } else {
            c.counters.get_hits += 1;
        }
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
        let class = self.sizes.class_for(item::total_len(key.len(), value.len(), flags));
        let mut s = shard.lock();
        let outcome = 'outcome: {
            let found = s.lookup_for_write(h, key, now).ok();
            let mut combined = None;
            let mut marks = 0;
            let (mut flags, mut exp) = (flags, exp);
            match (mode, found) {
                (StoreMode::Add, Some((_, loc))) => {
                    // memcached bumps an item that an add found.
                    lru::bump(s.class_mut(loc.class), loc.idx);
                    break 'outcome (StoreOutcome::NotStored, 0);
                }
                (StoreMode::Replace | StoreMode::Append(_) | StoreMode::Prepend(_), None) => {
                    break 'outcome (StoreOutcome::NotStored, 0)
                }
                (StoreMode::Cas(_) | StoreMode::CasInvalidate(_), None) => break 'outcome (StoreOutcome::NotFound, 0),
                (StoreMode::CasInvalidate(want), Some((_, loc))) => {
                    let old = s.item(loc);
                    let have = self.shown_cas(old.cas());
                    // A token of 0 compares as "no CAS given", which a CAS store
                    // refuses; a newer token than the item's never matches.
                    if want == 0 || want > have {
                        s.class_mut(loc.class).counters.cas_badval += 1;
                        break 'outcome (StoreOutcome::Exists, 0);
                    }
                    if want < have {
                        // An older token stores the value but leaves the item
                        // as it was: stale, with its TTL, and with the recache
                        // token still counted as sent if it was.
                        marks = STALE | (old.iflags() & TOKEN_SENT);
                        exp = old.exptime();
                    }
                    s.class_mut(loc.class).counters.cas_hits += 1;
                }
                (StoreMode::Cas(want), Some((_, loc))) => {
                    let have = self.shown_cas(s.item(loc).cas());
                    let c = s.class_mut(loc.class);
                    if have != want {
                        c.counters.cas_badval += 1;
                        break 'outcome (StoreOutcome::Exists, 0);
                    }
                    c.counters.cas_hits += 1;
                }
                (StoreMode::Append(want) | StoreMode::Prepend(want), Some((_, loc))) => {
                    if want != 0 && self.shown_cas(s.item(loc).cas()) != want {
                        break 'outcome (StoreOutcome::Exists, 0);
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
            let value = combined.as_deref().unwrap_or(value);
            let new = NewItem { h, key, flags, exptime: exp, value, marks };
            match s.write_item(&self.write_ctx(now), new) {
                Ok(w) => (StoreOutcome::Stored, self.shown_cas(w.cas)),
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
        };
        // As memcached's `stats slabs` `cmd_set`: every storage command
        // whose data fits an item counts in the class of that item, stored
        // or not (a cas that finds no item or another CAS, an add that
        // finds one), unless there was no memory for it; incr/decr and
        // restores are not storage commands.
        if let Some(id) = class.filter(|_| outcome.0 != StoreOutcome::OutOfMemory) {
            s.class_mut(id).counters.cmd_set += 1;
        }
        outcome
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
            let new = NewItem { h, key, flags: 0, exptime: exp, value: digits, marks: 0 };
            return match s.write_item(&self.write_ctx(now), new) {
                Ok(w) => DeltaOutcome::Value(initial, self.shown_cas(w.cas), exp),
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
            s.set_cas(loc, new_cas);
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
        let grown = NewItem { h, key, flags, exptime, value: &digits, marks: 0 };
        match s.write_item(&self.write_ctx(now), grown) {
            Ok(w) => DeltaOutcome::Value(new, self.shown_cas(w.cas), exptime),
            Err(_) => DeltaOutcome::OutOfMemory,
        }
    }

    /// Changes the memory limit (`cache_memlimit`), in bytes.
    pub fn set_memory_limit(&self, bytes: usize) {
        self.limit_bytes.store(bytes, Ordering::Relaxed);
        self.pool.set_limit(bytes.max(self.sizes.page_size()));
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
        match s.write_item(&self.write_ctx(now), NewItem { h, key, flags, exptime: exp, value, marks: 0 }) {
            Ok(w) => {
                s.set_cas(w.loc, cas);
                StoreOutcome::Stored
            }
            Err(e) => e,
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

#[cfg(test)]
mod shard_tests;
#[cfg(test)]
mod tests;
