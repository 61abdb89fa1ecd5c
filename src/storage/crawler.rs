//! The background expiry crawler (memcached's `crawler.c`, much reduced):
//! each call walks a budget of chunks per shard, resuming where the last
//! call stopped, and unlinks items that are expired or flushed.
//!
//! Reads find dead items anyway (on access, and at the LRU tail when
//! memory is needed); the crawler returns their memory when no one asks
//! for the key again. It is driven by the maintenance thread
//! (`server/mod.rs`); it does not sleep or schedule itself.

use super::hashtable::Loc;
use super::items::Unlink;
use super::Store;

impl Store {
    /// One step of the background crawler: checks up to `budget` chunks per
    /// shard and unlinks dead items. Returns how many it reclaimed.
    pub fn crawl(&self, budget: usize) -> usize {
        self.check_flush();
        let now = self.clock.now();
        let mut reclaimed = 0;
        for shard in self.shards.iter() {
            let mut s = shard.lock();
            let mut left = budget;
            if budget > 0 {
                s.crawler_starts += 1;
            }
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
}
