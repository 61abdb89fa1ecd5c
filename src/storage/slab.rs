//! Slab classes, pages and chunks.
//!
//! Memory for items comes in pages from one global budget of `-m` megabytes
//! ([`PagePool`], counted in bytes). A page is handed to one slab class of
//! one shard and carved into equal chunks of that class's size; an item
//! lives in the smallest class whose chunk holds it. A class's pages hold at
//! least [`CHUNKS_PER_PAGE`] chunks, in a power of two of bytes between
//! [`MIN_PAGE`] and `-I` ([`SlabSizes::page_bytes`]): chunks up to 1 KiB
//! take 64 KiB pages, so the many small classes of a shard each hold a
//! partly carved page without taking 1 MiB of budget apiece; larger chunks
//! take 128, 256 or 512 KiB pages, and chunks over 8 KiB (with the default
//! 1 MiB `-I`) take `-I` pages, the size all of memcached's pages are.
//! A store of many shards on a small `-m` lowers both bounds
//! ([`SlabSizes::with_min_page`], [`SlabSizes::with_max_page`]): a class
//! whose pages would pass the upper one gets pages of as many whole chunks
//! as fit in it (at least one), not a power of two.
//!
//! Class sizes: the first holds the header (without its CAS field) plus
//! `-n` bytes, rounded up to 8: memcached counts its 8-byte CAS inside the
//! `-n` space, and so do we. Classes below [`FINE_LIMIT`] bytes are 8 bytes
//! apart, so a small item wastes at most 7 bytes of its chunk (with `-f`
//! steps alone it wastes up to a fifth); from there sizes grow by `-f`, and
//! the last class is one chunk per page, as memcached's `slabs_init` builds
//! them. More classes mean more pages partly used, which the page mover in
//! `Shard::alloc` (`alloc.rs`) rebalances.
//!
//! A [`Class`] owns its pages (`Box<[u8]>`, allocated zeroed so untouched
//! parts cost no RSS), a free list threaded through the chunks' `next`
//! field, and the carve point of its newest page. Pages are carved in order,
//! so every page but the last is fully carved. LRU links live in the chunks
//! too (see `lru.rs`); this module only hands chunks out and takes them back.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::hashtable::{MAX_CHUNKS, MAX_CLASS_ID};
use super::item::{ItemMut, ItemRef, HEADER_LEN, NIL};

/// Class ids are 1..=126: they must fit a packed location (`hashtable::Loc`).
pub const MAX_CLASSES: usize = MAX_CLASS_ID as usize;
/// Chunk sizes are multiples of this (memcached's CHUNK_ALIGN_BYTES).
const CHUNK_ALIGN: usize = 8;
/// Below this chunk size, classes are `CHUNK_ALIGN` bytes apart.
pub const FINE_LIMIT: usize = 512;
/// Header bytes counted outside `-n` (the CAS is counted inside, as memcached does).
const CAS_LEN: usize = 8;
/// The smallest page, in bytes (unless `-I` is smaller).
pub const MIN_PAGE: usize = 64 * 1024;
/// A page holds at least this many chunks, unless it is `-I` bytes.
pub const CHUNKS_PER_PAGE: usize = 64;

/// The chunk size of every class, shared by all shards.
#[derive(Debug, Clone)]
pub struct SlabSizes {
    sizes: Vec<usize>,
    page_size: usize,
    /// The smallest page ([`MIN_PAGE`] unless [`SlabSizes::with_min_page`]).
    min_page: usize,
    /// The largest page of a class whose chunks are smaller (`-I` unless
    /// [`SlabSizes::with_max_page`]).
    max_page: usize,
}

impl SlabSizes {
    /// Builds classes from `min_space` (`-n`), `factor` (`-f`) and
    /// `page_size` (`-I`).
    pub fn new(min_space: usize, factor: f64, page_size: usize) -> SlabSizes {
        let align = |n: usize| n.div_ceil(CHUNK_ALIGN) * CHUNK_ALIGN;
        let mut sizes = Vec::new();
        let mut size = align(HEADER_LEN - CAS_LEN + min_space);
        while sizes.len() < MAX_CLASSES - 1 && (size as f64) <= page_size as f64 / factor {
            sizes.push(size);
            let next = if size < FINE_LIMIT { size } else { align((size as f64 * factor) as usize) };
            size = next.max(size + CHUNK_ALIGN);
        }
        sizes.push(page_size);
        SlabSizes { sizes, page_size, min_page: MIN_PAGE, max_page: page_size }
    }

    /// The same classes with pages of at least `bytes` (a power of two)
    /// instead of [`MIN_PAGE`]: a store of many shards on a small `-m`
    /// uses smaller pages, so the partly used page each class of each
    /// shard holds strands less of the budget.
    pub fn with_min_page(mut self, bytes: usize) -> SlabSizes {
        debug_assert!(bytes.is_power_of_two());
        self.min_page = bytes;
        self
    }

    /// The same classes with pages of at most about `bytes`: a class whose
    /// pages would be larger gets pages of as many whole chunks as fit in
    /// `bytes`, at least one. A store of many shards on a small `-m` uses
    /// it, so that a large-item class's memory is not a few big pages in a
    /// few shards (a page serves only its shard's keys): each chunk of
    /// such a class can be its own page, and a page of items that expired
    /// in one shard can serve a key of another (`alloc.rs`).
    pub fn with_max_page(mut self, bytes: usize) -> SlabSizes {
        self.max_page = bytes.max(self.min_page);
        self
    }

    /// The smallest page of any class.
    pub fn smallest_page(&self) -> usize {
        (1..=self.count() as u8).map(|id| self.page_bytes(id)).min().unwrap_or(self.min_page)
    }

    /// Number of classes.
    pub fn count(&self) -> usize {
        self.sizes.len()
    }

    /// `-I`: the largest page.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Bytes in one page of class `id`.
    pub fn page_bytes(&self, id: u8) -> usize {
        let chunk = self.chunk_size(id);
        let want = (chunk * CHUNKS_PER_PAGE).next_power_of_two().max(self.min_page).min(self.page_size);
        if want <= self.max_page {
            want
        } else {
            chunk * (self.max_page / chunk).max(1)
        }
    }

    /// Largest item (header + key + value) a chunk can hold.
    pub fn max_item(&self) -> usize {
        self.page_size
    }

    /// Chunk size of class `id` (1-based).
    pub fn chunk_size(&self, id: u8) -> usize {
        self.sizes[usize::from(id) - 1]
    }

    /// The class (1-based) for an item of `total` bytes, if any holds it.
    #[inline]
    pub fn class_for(&self, total: usize) -> Option<u8> {
        let i = self.sizes.partition_point(|&s| s < total);
        (i < self.sizes.len()).then_some(i as u8 + 1)
    }
}

/// The global page budget: `-m`, in bytes.
#[derive(Debug)]
pub struct PagePool {
    limit: AtomicUsize,
    used: AtomicUsize,
}

impl PagePool {
    pub fn new(limit_bytes: usize) -> PagePool {
        PagePool { limit: AtomicUsize::new(limit_bytes), used: AtomicUsize::new(0) }
    }

    /// Claims `bytes` of the budget for one page.
    pub fn try_take(&self, bytes: usize) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| (u + bytes <= limit).then_some(u + bytes))
            .is_ok()
    }

    /// Returns a page's `bytes` to the budget.
    pub fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the budget (`cache_memlimit`), in bytes. Pages already handed
    /// out stay where they are; a lower limit takes effect as no new pages
    /// are given.
    pub fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Relaxed);
    }
}

/// Declares the per-class counters once: the struct and the merge of one
/// shard's counters into a total (`figures` says how each is reported).
macro_rules! class_counters {
    ($($name:ident),* $(,)?) => {
        /// Per-class counters for `stats items` and `stats slabs`.
        #[derive(Debug, Default, Clone, Copy)]
        pub struct ClassCounters {
            $(pub $name: u64,)*
            /// Seconds the last evicted item had been idle (the largest
            /// over shards when merged).
            pub evicted_time: u32,
        }

        impl ClassCounters {
            /// Adds another shard's counters to these.
            pub fn merge(&mut self, other: &ClassCounters) {
                $(self.$name += other.$name;)*
                self.evicted_time = self.evicted_time.max(other.evicted_time);
            }
        }
    };
}

class_counters!(
    evicted,
    evicted_nonzero,
    evicted_unfetched,
    outofmemory,
    reclaimed,
    expired_unfetched,
    crawler_reclaimed,
    get_hits,
    cmd_set,
    delete_hits,
    incr_hits,
    decr_hits,
    cas_hits,
    cas_badval,
    touch_hits,
);

/// One slab class inside one shard.
pub struct Class {
    pub chunk: usize,
    /// Bytes in each of this class's pages.
    pub page_bytes: usize,
    pub per_page: u32,
    pub pages: Vec<Box<[u8]>>,
    /// Chunks carved from the newest page.
    pub carved: u32,
    pub free_head: u32,
    pub free_count: u32,
    pub lru_head: u32,
    pub lru_tail: u32,
    /// Linked items.
    pub items: u32,
    /// Sum of linked items' total lengths (`mem_requested`).
    pub bytes: u64,
    pub counters: ClassCounters,
}

impl Class {
    pub fn new(chunk: usize, page_bytes: usize) -> Class {
        Class {
            chunk,
            page_bytes,
            per_page: (page_bytes / chunk).max(1) as u32,
            pages: Vec::new(),
            carved: 0,
            free_head: NIL,
            free_count: 0,
            lru_head: NIL,
            lru_tail: NIL,
            items: 0,
            bytes: 0,
            counters: ClassCounters::default(),
        }
    }

    #[inline]
    fn locate(&self, idx: u32) -> (usize, usize) {
        let page = (idx / self.per_page) as usize;
        let off = (idx % self.per_page) as usize * self.chunk;
        (page, off)
    }

    /// The bytes of chunk `idx`.
    #[inline]
    pub fn chunk(&self, idx: u32) -> &[u8] {
        let (p, off) = self.locate(idx);
        &self.pages[p][off..off + self.chunk]
    }

    /// Mutable bytes of chunk `idx`.
    #[inline]
    pub fn chunk_mut(&mut self, idx: u32) -> &mut [u8] {
        let (p, off) = self.locate(idx);
        &mut self.pages[p][off..off + self.chunk]
    }

    #[inline]
    pub fn item(&self, idx: u32) -> ItemRef<'_> {
        ItemRef(self.chunk(idx))
    }

    #[inline]
    pub fn item_mut(&mut self, idx: u32) -> ItemMut<'_> {
        ItemMut(self.chunk_mut(idx))
    }

    /// Whether one more page keeps every chunk index within a packed
    /// location's reach.
    pub fn can_grow(&self) -> bool {
        (self.pages.len() as u64 + 1) * u64::from(self.per_page) <= u64::from(MAX_CHUNKS)
    }

    /// Chunks carved so far, over all pages.
    pub fn total_carved(&self) -> u32 {
        match self.pages.len() {
            0 => 0,
            n => (n as u32 - 1) * self.per_page + self.carved,
        }
    }

    /// Chunks the class's pages hold in all.
    pub fn total_chunks(&self) -> u32 {
        self.pages.len() as u32 * self.per_page
    }

    /// A chunk from the free list or the newest page, if either has one.
    pub fn alloc_chunk(&mut self) -> Option<u32> {
        if self.free_head != NIL {
            let idx = self.free_head;
            self.free_head = self.item(idx).next();
            self.free_count -= 1;
            return Some(idx);
        }
        if !self.pages.is_empty() && self.carved < self.per_page {
            let idx = (self.pages.len() as u32 - 1) * self.per_page + self.carved;
            self.carved += 1;
            return Some(idx);
        }
        None
    }

    /// Adds a fresh page; its chunks are carved on demand. Chunks of the
    /// newest page not carved yet go to the free list first (only a page
    /// given by `slabs reassign` arrives before the newest page is used up).
    pub fn add_page(&mut self, page: Box<[u8]>) {
        debug_assert_eq!(page.len(), self.page_bytes);
        while !self.pages.is_empty() && self.carved < self.per_page {
            let idx = (self.pages.len() as u32 - 1) * self.per_page + self.carved;
            self.carved += 1;
            self.free_chunk(idx);
        }
        self.pages.push(page);
        self.carved = 0;
    }

    /// Puts an unlinked chunk on the free list.
    pub fn free_chunk(&mut self, idx: u32) {
        let head = self.free_head;
        let mut it = self.item_mut(idx);
        it.set_iflags(0);
        it.set_next(head);
        self.free_head = idx;
        self.free_count += 1;
    }

    /// Detaches the newest page. The caller has already unlinked every
    /// item in it; this drops its chunks from the free list.
    pub fn take_last_page(&mut self) -> Option<Box<[u8]>> {
        let last = self.pages.len().checked_sub(1)?;
        let first = last as u32 * self.per_page;
        // Rebuild the free list without chunks of the last page.
        let mut keep = Vec::new();
        let mut cur = self.free_head;
        while cur != NIL {
            let next = self.item(cur).next();
            if cur < first {
                keep.push(cur);
            }
            cur = next;
        }
        self.free_head = NIL;
        self.free_count = 0;
        let page = self.pages.pop();
        for idx in keep.into_iter().rev() {
            self.free_chunk(idx);
        }
        self.carved = if self.pages.is_empty() { 0 } else { self.per_page };
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_counters_merge_sums_and_keeps_the_longest_idle_time() {
        let mut total = ClassCounters { evicted: 2, touch_hits: 1, evicted_time: 30, ..ClassCounters::default() };
        let shard = ClassCounters { evicted: 3, touch_hits: 4, evicted_time: 10, ..ClassCounters::default() };
        total.merge(&shard);
        assert_eq!((total.evicted, total.touch_hits, total.evicted_time), (5, 5, 30));
    }

    #[test]
    fn default_classes_are_fine_then_grow_by_the_factor() {
        let s = SlabSizes::new(48, 1.25, 1 << 20);
        assert_eq!(s.chunk_size(1), 80); // 34 - 8 (CAS) + 48 = 74, aligned to 8
        assert_eq!(s.chunk_size(2), 88);
        let first_coarse = (1..=s.count() as u8).find(|&id| s.chunk_size(id) >= FINE_LIMIT).unwrap();
        assert_eq!(s.chunk_size(first_coarse), FINE_LIMIT);
        assert_eq!(s.chunk_size(first_coarse + 1), 640); // 512 * 1.25
        assert_eq!(s.chunk_size(first_coarse + 2), 800);
        assert_eq!(s.chunk_size(s.count() as u8), 1 << 20);
        for id in 2..=s.count() as u8 {
            assert!(s.chunk_size(id) > s.chunk_size(id - 1));
            assert_eq!(s.chunk_size(id) % CHUNK_ALIGN, 0);
        }
        assert!(s.count() <= MAX_CLASSES);
        // Any item under FINE_LIMIT wastes less than CHUNK_ALIGN bytes.
        for total in 80..FINE_LIMIT {
            let id = s.class_for(total).unwrap();
            assert!(s.chunk_size(id) - total < CHUNK_ALIGN, "{total}");
        }
    }

    #[test]
    fn class_selection_picks_the_smallest_chunk_that_fits() {
        let s = SlabSizes::new(48, 1.25, 1 << 20);
        assert_eq!(s.class_for(1), Some(1));
        assert_eq!(s.class_for(80), Some(1));
        assert_eq!(s.class_for(81), Some(2));
        assert_eq!(s.class_for(1 << 20), Some(s.count() as u8));
        assert_eq!(s.class_for((1 << 20) + 1), None);
    }

    #[test]
    fn tiny_factor_is_capped_at_max_classes() {
        let s = SlabSizes::new(48, 1.01, 1 << 20);
        assert_eq!(s.count(), MAX_CLASSES);
        assert_eq!(s.chunk_size(MAX_CLASSES as u8), 1 << 20);
    }

    #[test]
    fn pool_hands_out_at_most_its_limit() {
        let p = PagePool::new(200);
        assert!(p.try_take(100));
        assert!(p.try_take(64));
        assert!(!p.try_take(64));
        assert!(p.try_take(36));
        p.give_back(100);
        assert!(p.try_take(100));
        p.set_limit(500);
        assert!(p.try_take(300));
        assert_eq!(p.used(), 500);
    }

    #[test]
    fn small_classes_take_small_pages() {
        let s = SlabSizes::new(48, 1.25, 1 << 20);
        assert_eq!(s.page_bytes(1), MIN_PAGE);
        for id in 1..=s.count() as u8 {
            let (chunk, page) = (s.chunk_size(id), s.page_bytes(id));
            assert!(page.is_power_of_two() || page == 1 << 20);
            assert!(page / chunk >= CHUNKS_PER_PAGE || page == 1 << 20, "class {id}");
        }
        assert_eq!(s.page_bytes(s.count() as u8), 1 << 20);
        // The thresholds the module doc gives: up to 1 KiB, 64 KiB pages;
        // over 8 KiB, `-I` pages; between, 128 to 512 KiB.
        for id in 1..=s.count() as u8 {
            let (chunk, page) = (s.chunk_size(id), s.page_bytes(id));
            match chunk {
                0..=1024 => assert_eq!(page, 64 * 1024, "chunk {chunk}"),
                1025..=8192 => assert!((128 * 1024..=512 * 1024).contains(&page), "chunk {chunk}"),
                _ => assert_eq!(page, 1 << 20, "chunk {chunk}"),
            }
        }
        // A small -I caps every page.
        let tiny = SlabSizes::new(48, 1.25, 4096);
        assert!((1..=tiny.count() as u8).all(|id| tiny.page_bytes(id) == 4096));
    }

    #[test]
    fn a_page_cap_gives_large_classes_pages_of_whole_chunks() {
        let s = SlabSizes::new(48, 1.25, 1 << 20).with_min_page(16 * 1024).with_max_page(128 * 1024);
        for id in 1..=s.count() as u8 {
            let (chunk, page) = (s.chunk_size(id), s.page_bytes(id));
            if chunk * CHUNKS_PER_PAGE <= 128 * 1024 {
                assert!(page.is_power_of_two() && page >= 16 * 1024 && page / chunk >= CHUNKS_PER_PAGE, "class {id}");
            } else if chunk <= 128 * 1024 {
                assert_eq!(page, chunk * (128 * 1024 / chunk), "class {id}: whole chunks up to the cap");
            } else {
                assert_eq!(page, chunk, "class {id}: one chunk a page");
            }
        }
        assert_eq!(s.page_bytes(s.count() as u8), 1 << 20);
        assert_eq!(s.smallest_page(), 16 * 1024);
        // A cap below the smallest page is the smallest page.
        let low = SlabSizes::new(48, 1.25, 1 << 20).with_min_page(4096).with_max_page(100);
        let chunk = low.chunk_size(1);
        assert_eq!(low.page_bytes(1), chunk * (4096 / chunk));
        assert!(low.smallest_page() >= 2048, "a capped page holds over half the cap");
    }

    #[test]
    fn carve_free_and_take_last_page() {
        let mut c = Class::new(100, 1000); // 10 chunks a page
        assert_eq!(c.alloc_chunk(), None);
        c.add_page(vec![0; 1000].into_boxed_slice());
        let a: Vec<u32> = (0..10).map(|_| c.alloc_chunk().unwrap()).collect();
        assert_eq!(a, (0..10).collect::<Vec<_>>());
        assert_eq!(c.alloc_chunk(), None);
        c.add_page(vec![0; 1000].into_boxed_slice());
        let b = c.alloc_chunk().unwrap();
        assert_eq!(b, 10);
        c.free_chunk(3);
        c.free_chunk(b);
        assert_eq!(c.free_count, 2);
        let page = c.take_last_page().unwrap();
        assert_eq!(page.len(), 1000);
        assert_eq!(c.free_count, 1, "chunk 10 left with its page");
        assert_eq!(c.alloc_chunk(), Some(3));
        assert_eq!(c.alloc_chunk(), None);
        assert_eq!(c.total_carved(), 10);
    }
}
