//! Reading the store's counters: store-wide ([`Store::stats`]), per class
//! ([`Store::class_stats`], `stats slabs|items`), the reset, and
//! `stats cachedump` ([`Store::dump_class`]).
//!
//! Counters are kept per shard and per class under the shard lock, where
//! they are bumped; this file only visits the shards one after another and
//! sums. It does not format: `dispatch/report.rs` and `metrics.rs` do.

use std::sync::atomic::Ordering;

use super::item::NIL;
use super::slab::ClassCounters;
use super::Store;

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
    pub reassign_evictions: u64,
    pub reassign_rescues: u64,
    pub get_expired: u64,
    pub get_flushed: u64,
    pub hash_bytes: u64,
    pub hash_power_level: u32,
    /// Some shard's table is moving its buckets into a doubled array.
    pub hash_is_expanding: bool,
    pub slabs_moved: u64,
    /// A requested crawl (`lru_crawler crawl`) is running.
    pub lru_crawler_running: bool,
    /// Crawls started: requested ones, plus the background crawler's
    /// passes (the most any shard saw).
    pub lru_crawler_starts: u64,
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

impl Store {
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
            lru_crawler_running: self.crawler_running(),
            lru_crawler_starts: self.crawler_starts(),
            ..StoreStats::default()
        };
        // Buckets of the current arrays (the power level) and held in
        // memory (also the old arrays of tables still growing).
        let (mut slots, mut allocated) = (0u64, 0u64);
        let mut background = 0;
        for shard in self.shards.iter() {
            let s = shard.lock();
            slots += s.table.capacity() as u64;
            allocated += s.table.allocated() as u64;
            st.hash_is_expanding |= s.table.is_growing();
            st.total_items += s.total_items;
            st.get_expired += s.get_expired;
            st.get_flushed += s.get_flushed;
            st.crawler_items_checked += s.crawler_items_checked;
            background = background.max(s.crawler_starts);
            st.reassign_evictions += s.reassign_evictions;
            st.reassign_rescues += s.reassign_rescues;
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
        st.lru_crawler_starts += background;
        st.hash_bytes = allocated * 4;
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
                cs.counters.merge(&c.counters);
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
            s.reassign_evictions = 0;
            s.reassign_rescues = 0;
            s.slabs_moved = 0;
            s.crawler_starts = 0;
            for c in s.classes.iter_mut() {
                c.counters = ClassCounters::default();
            }
        }
        self.admin.crawler_starts.store(0, Ordering::Relaxed);
    }
}
