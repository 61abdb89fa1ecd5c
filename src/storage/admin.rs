//! The store's admin surface: requested page moves (`slabs reassign`),
//! the automover's mode (`slabs automove`), the crawler's switch and
//! requested crawls (`lru_crawler enable|disable|crawl`), and the walk
//! behind `lru_crawler metadump`.
//!
//! Crawls and dumps walk chunks in (shard, class, chunk) order with a
//! [`Cursor`] that the caller keeps between steps, so no step holds a shard
//! lock for more than its budget and a dump never needs more memory than
//! one step's output. A requested crawl is one job for the whole store,
//! stepped by the maintenance thread ([`Store::crawl_job_step`]); a dump is
//! stepped by the connection that asked for it, as its output drains.
//!
//! Lock order: the job mutex, then one shard lock at a time.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use parking_lot::Mutex;

use super::hashtable::Loc;
use super::item::FETCHED;
use super::items::{Shard, Unlink};
use super::Store;

/// Which classes a crawl or dump visits: bit `id` for class `id` (1..=127).
pub type ClassMask = u128;

/// Every class.
pub const ALL_CLASSES: ClassMask = !1;

/// Where a crawl or dump has got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    classes: ClassMask,
    shard: usize,
    class: usize,
    idx: u32,
}

impl Cursor {
    /// A walk over the classes in `classes`, from the start.
    pub fn new(classes: ClassMask) -> Cursor {
        Cursor { classes, shard: 0, class: 0, idx: 0 }
    }
}

/// The outcome of `slabs reassign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reassign {
    Ok,
    /// A class id that does not exist.
    BadClass,
    /// The source holds fewer than two pages (in every shard).
    NoSpare,
    /// Source and destination are the same class.
    Same,
}

/// The outcome of a `lru_crawler crawl` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrawlStart {
    Ok,
    /// A requested crawl is still running.
    Busy,
    /// A class id that does not exist.
    BadClass,
}

/// The admin switches and the requested crawl.
pub(super) struct Admin {
    /// 0: pages move only to a class holding none; 1: also by LRU age, at
    /// most once a second per shard; 2: by age on every eviction.
    pub(super) automove: AtomicU8,
    pub(super) crawler_enabled: AtomicBool,
    pub(super) crawler_starts: AtomicU64,
    job: Mutex<Option<Cursor>>,
}

impl Admin {
    pub(super) fn new(automove: u8) -> Admin {
        Admin {
            automove: AtomicU8::new(automove.min(2)),
            crawler_enabled: AtomicBool::new(true),
            crawler_starts: AtomicU64::new(0),
            job: Mutex::new(None),
        }
    }
}

impl Store {
    /// Class ids `1..=n` as a mask, or `None` if an id is out of range.
    pub fn class_mask(&self, ids: &[u64]) -> Option<ClassMask> {
        let n = self.sizes.count() as u64;
        ids.iter().try_fold(0, |m, &id| (1..=n).contains(&id).then(|| m | 1u128 << id))
    }

    /// Sets the automover's mode (0, 1 or 2; larger values read as 2).
    pub fn set_automove(&self, mode: u8) {
        self.admin.automove.store(mode.min(2), Ordering::Relaxed);
    }

    pub fn automove(&self) -> u8 {
        self.admin.automove.load(Ordering::Relaxed)
    }

    /// Turns the background crawler on or off; off also ends a requested crawl.
    pub fn set_crawler_enabled(&self, on: bool) {
        self.admin.crawler_enabled.store(on, Ordering::Relaxed);
        if !on {
            *self.admin.job.lock() = None;
        }
    }

    pub fn crawler_enabled(&self) -> bool {
        self.admin.crawler_enabled.load(Ordering::Relaxed)
    }

    /// Whether a requested crawl is running (`lru_crawler_running`).
    pub fn crawler_running(&self) -> bool {
        self.admin.job.lock().is_some()
    }

    /// Requested crawls started (`lru_crawler_starts`).
    pub fn crawler_starts(&self) -> u64 {
        self.admin.crawler_starts.load(Ordering::Relaxed)
    }

    /// Moves one page from class `src` (-1: the class with the most pages)
    /// to class `dst`, evicting the items on it (`slabs reassign`). Done
    /// at once, in the shard where the source holds the most pages.
    pub fn reassign(&self, src: i64, dst: i64) -> Reassign {
        let n = self.sizes.count() as i64;
        if !(1..=n).contains(&dst) || !(src == -1 || (1..=n).contains(&src)) {
            return Reassign::BadClass;
        }
        if src == dst {
            return Reassign::Same;
        }
        let (to, now) = (dst as u8, self.clock.now());
        let mut best: Option<(usize, usize, usize)> = None; // (pages, shard, class index)
        for (si, shard) in self.shards.iter().enumerate() {
            let s = shard.lock();
            for (ci, c) in s.classes.iter().enumerate() {
                let wanted = if src == -1 { ci + 1 != to as usize } else { ci + 1 == src as usize };
                if wanted && c.pages.len() >= 2 && best.is_none_or(|(p, _, _)| c.pages.len() > p) {
                    best = Some((c.pages.len(), si, ci));
                }
            }
        }
        let Some((_, si, ci)) = best else { return Reassign::NoSpare };
        let mut s = self.shards[si].lock();
        // The source gives up a page even when the budget has room: the
        // operator asked for memory to move, not to grow.
        if s.release_last_page(ci, &self.pool, now) && s.move_page(ci, to, &self.pool, now) {
            Reassign::Ok
        } else {
            Reassign::NoSpare
        }
    }

    /// Starts a crawl of the classes in `classes` that reclaims expired
    /// and flushed items (`lru_crawler crawl`).
    pub fn start_crawl(&self, classes: ClassMask) -> CrawlStart {
        let mut job = self.admin.job.lock();
        if job.is_some() {
            return CrawlStart::Busy;
        }
        *job = Some(Cursor::new(classes));
        self.admin.crawler_starts.fetch_add(1, Ordering::Relaxed);
        CrawlStart::Ok
    }

    /// One step of the requested crawl: up to `budget` chunks. Returns
    /// whether it is still running.
    pub fn crawl_job_step(&self, budget: usize) -> bool {
        let mut job = self.admin.job.lock();
        let Some(cur) = job.as_mut() else { return false };
        self.check_flush();
        let now = self.clock.now();
        let done = self.walk(cur, budget, |s, loc| {
            s.crawler_items_checked += 1;
            let it = s.item(loc);
            if it.is_linked() && s.dead(it, now).is_some() {
                s.unlink_loc(loc, Unlink::Crawled, now);
            }
            1
        });
        if done {
            *job = None;
        }
        !done
    }

    /// Appends metadump lines for live items to `out`, until the walk ends
    /// (true) or about `budget` bytes were written and chunks visited.
    pub fn metadump_step(&self, cur: &mut Cursor, out: &mut Vec<u8>, budget: usize) -> bool {
        let now = self.clock.now();
        self.walk(cur, budget, |s, loc| {
            let it = s.item(loc);
            if !it.is_linked() || s.dead(it, now).is_some() {
                return 1;
            }
            let start = out.len();
            out.extend_from_slice(b"key=");
            uri_encode(it.key(), out);
            let exp = if it.exptime() == 0 { "-1".to_string() } else { self.clock.to_unix(it.exptime()).to_string() };
            let fetched = if it.iflags() & FETCHED != 0 { "yes" } else { "no" };
            let line = format!(
                " exp={exp} la={} cas={} fetch={fetched} cls={} size={}\n",
                self.clock.to_unix(it.atime()),
                self.shown_cas(it.cas()),
                loc.class,
                it.total_len()
            );
            out.extend_from_slice(line.as_bytes());
            out.len() - start
        })
    }

    /// Visits the chunks of the cursor's classes from where it stopped,
    /// charging each visit what `visit` returns (at least 1) against
    /// `budget`. Returns true when every shard has been walked.
    fn walk(&self, cur: &mut Cursor, mut budget: usize, mut visit: impl FnMut(&mut Shard, Loc) -> usize) -> bool {
        while cur.shard < self.shards.len() {
            let mut s = self.shards[cur.shard].lock();
            while cur.class < s.classes.len() {
                if cur.classes & (1u128 << (cur.class + 1)) == 0 {
                    cur.class += 1;
                    cur.idx = 0;
                    continue;
                }
                let carved = s.classes[cur.class].total_carved();
                while cur.idx < carved {
                    if budget == 0 {
                        return false;
                    }
                    let loc = Loc { class: (cur.class + 1) as u8, idx: cur.idx };
                    cur.idx += 1;
                    budget = budget.saturating_sub(visit(&mut s, loc).max(1));
                }
                cur.class += 1;
                cur.idx = 0;
            }
            drop(s);
            cur.shard += 1;
            cur.class = 0;
        }
        true
    }
}

/// Appends `key` percent-encoded: every byte but letters, digits and
/// `-._~` becomes `%XX` (upper-case hex), as memcached's metadump and log
/// lines write keys.
pub fn uri_encode(key: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_encoding_matches_memcached() {
        let mut out = Vec::new();
        uri_encode(b"a-Z.0_~ #%\xff", &mut out);
        assert_eq!(out, b"a-Z.0_~%20%23%25%FF");
    }
}
