//! Memory for a new item: a free chunk, a dead item reclaimed at the LRU
//! tail, a page of dead items taken from another shard, a fresh page from
//! the budget, a page freed in another shard, a page moved off a colder
//! class, or an eviction (memcached's `slabs.c` allocation and
//! `slab_automove.c`).
//!
//! These are methods on [`Shard`], called with its lock held. The budget is
//! the global [`PagePool`]: a shard takes pages from it as its classes need
//! them, whatever the other shards hold, so an almost empty cache never
//! evicts; but memory already handed out that holds nothing is used first
//! (an expired item at this class's tail, or another shard's newest page
//! of this class whose live items, if any, fit in free chunks of that
//! class's other pages), so the budget does not grow while expired or
//! deleted items lie in shards the new keys do not hash to. Once the
//! budget is spent, a shard holding less than its share (`-m` / shards),
//! or one whose class holds no page at all, frees a page's worth of budget
//! in the shards holding the most: it empties the newest page of that
//! shard's class with the coldest LRU tail (a class holding pages but no
//! item first) and takes the bytes for its own class, freeing at most as
//! many pages as its page is made of the smallest pages. The other shard
//! is only ever `try_lock`ed, never waited for, so two shards doing this
//! at once cannot deadlock; a shard that finds no giver free falls back to
//! moving a page between its own classes or evicting its own LRU tail, and
//! looks for a giver again the next second. So memory follows demand
//! across shards and the total stays within `-m`. This file only makes
//! room: linking the new item into the table and LRU is `items.rs`.

use std::sync::atomic::Ordering;

use super::hashtable::Loc;
use super::item::NIL;
use super::items::{Shard, Unlink, WriteCtx};
use super::slab::{Class, PagePool};

/// Dead items looked for at an LRU tail before evicting a live one.
const TAIL_SEARCH: usize = 5;
/// Other shards tried (by `try_lock`) for one page.
const GIVERS_TRIED: usize = 4;
/// Other shards looked at (by `try_lock`) for a page of dead items before
/// a class takes a fresh page from the budget.
const SPARE_SHARDS_TRIED: usize = 16;

impl Class {
    /// The chunk indexes of the newest page carved so far (first, end), if
    /// the class has a page.
    fn last_page_chunks(&self) -> Option<(u32, u32)> {
        let first = (self.pages.len().checked_sub(1)? as u32) * self.per_page;
        Some((first, first + self.carved))
    }
}

impl Shard {
    /// A chunk of class `id`: free, reclaimed from a dead item, on a page
    /// of dead items taken from another shard, fresh from the pool, from
    /// another shard's or class's page, or evicted. Memory already handed
    /// out is reused before the budget grows (memcached reclaims expired
    /// items at the LRU tail before it allocates a page), but only once the
    /// class has no free chunk: the common path is the free list.
    pub(super) fn alloc(&mut self, id: u8, cx: &WriteCtx<'_>) -> Option<u32> {
        let (pool, now) = (cx.pool, cx.now);
        if let Some(idx) = self.class_mut(id).alloc_chunk() {
            return Some(idx);
        }
        if self.reclaim_at_tail(id, now) {
            return self.class_mut(id).alloc_chunk();
        }
        let can_grow = self.class(id).can_grow();
        if can_grow && (self.spare_page_from_another_shard(id, cx) || self.add_page(id, pool)) {
            return self.class_mut(id).alloc_chunk();
        }
        if can_grow && self.page_from_another_shard(id, cx) {
            return self.class_mut(id).alloc_chunk();
        }
        if !cx.evictions {
            self.class_mut(id).counters.outofmemory += 1;
            return None;
        }
        if can_grow && cx.reassign {
            if let Some(victim) = self.page_to_move(id, pool, now, cx.automove, cx.ratio) {
                if self.move_page(victim, id, pool, now) {
                    return self.class_mut(id).alloc_chunk();
                }
            }
        }
        let tail = super::lru::victim(self.class_mut(id));
        if tail != NIL {
            self.unlink_loc(Loc { class: id, idx: tail }, Unlink::Evicted, now);
            return self.class_mut(id).alloc_chunk();
        }
        self.class_mut(id).counters.outofmemory += 1;
        None
    }

    /// Frees the first dead (expired or flushed) item within
    /// [`TAIL_SEARCH`] of class `id`'s LRU tail (`reclaimed`); true if one was.
    fn reclaim_at_tail(&mut self, id: u8, now: u32) -> bool {
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
                return true;
            }
            cur = prev;
        }
        false
    }

    /// Takes, instead of a fresh page, another shard's newest page of class
    /// `id` whose items are dead or gone or fit elsewhere in that class
    /// (`free_last_page_if_spare`): the page goes back to the budget and
    /// comes straight out again here, so the budget does not grow while
    /// memory that holds nothing lies in other shards (keys spread over
    /// shards, and an item that expired in one shard is no use to a key of
    /// another). Up to
    /// [`SPARE_SHARDS_TRIED`] shards are `try_lock`ed, starting where the
    /// last look ended; a look that finds none is not repeated within the
    /// second, so a filling cache pays for at most one look a second per
    /// shard. True if this shard now holds the page.
    fn spare_page_from_another_shard(&mut self, id: u8, cx: &WriteCtx<'_>) -> bool {
        let n = cx.shards.len();
        if n < 2 || self.no_spare_at == cx.now {
            return false;
        }
        let me = self.shard_id as usize;
        let tries = (n - 1).min(SPARE_SHARDS_TRIED);
        for k in 0..tries {
            let j = (me + 1 + (self.spare_cursor + k) % (n - 1)) % n;
            let Some(mut giver) = cx.shards[j].try_lock() else { continue };
            if !giver.free_last_page_if_spare(usize::from(id) - 1, cx.pool, cx.now) {
                continue;
            }
            drop(giver);
            self.spare_cursor = (self.spare_cursor + k) % (n - 1);
            if self.add_page(id, cx.pool) {
                self.slabs_moved += 1;
                return true;
            }
            return false; // Another shard took the bytes first.
        }
        self.spare_cursor = (self.spare_cursor + tries) % (n - 1);
        self.no_spare_at = cx.now;
        false
    }

    /// If the live items on the newest page of class index `from` fit in
    /// the free chunks of the class's other pages (none alive is the
    /// usual case), reclaims the page's dead items, moves its live ones
    /// there, keeping their LRU places (`slab_reassign_rescues`), and
    /// returns the page to the budget: nothing is evicted. The scan stops
    /// as soon as the live items outnumber those free chunks.
    fn free_last_page_if_spare(&mut self, from: usize, pool: &PagePool, now: u32) -> bool {
        let id = (from + 1) as u8;
        let Some((first, end)) = self.classes[from].last_page_chunks() else { return false };
        // The free chunks are an upper bound of the room on the other
        // pages, known at once: a full class fails at its first live item.
        let most = self.classes[from].free_count as usize;
        let (mut live, mut linked) = (0usize, 0u32);
        for idx in first..end {
            let it = self.item(Loc { class: id, idx });
            if it.is_linked() {
                linked += 1;
                if self.dead(it, now).is_none() {
                    live += 1;
                    if live > most {
                        return false;
                    }
                }
            }
        }
        // Pages before the newest are fully carved (`first` chunks); those
        // of their chunks that hold no item are on the free list.
        let before = self.classes[from].items.saturating_sub(linked);
        if live > first.saturating_sub(before) as usize {
            return false;
        }
        for idx in first..end {
            let loc = Loc { class: id, idx };
            let it = self.item(loc);
            if it.is_linked() && self.dead(it, now).is_some() {
                self.unlink_loc(loc, Unlink::Reclaimed, now);
            }
        }
        if live == 0 {
            self.drop_last_page(from, pool);
            true
        } else {
            self.hand_over_last_page(from, pool, now)
        }
    }

    /// The class that should give a page to class `id`, which is about to
    /// evict: the memory is all handed out, so it comes from another class.
    ///
    /// Only a class whose pages, with what the budget has left, make up a
    /// page of `id`'s size can give (it keeps one page when `id` merely
    /// evicts), so a move never empties a class and then fails. A class
    /// holding nothing takes from the class with the most bytes at once.
    /// Otherwise, at most once a second per shard, a page
    /// moves from the class whose LRU tail is oldest when this class's tail
    /// is younger than `ratio` of that age (by default 0.5: over twice as
    /// old; `-o slab_automove_ratio`; memcached's automover compares the
    /// same ages): a class that items outgrew, or whose items grew a few
    /// bytes into the next class, does not keep its pages while its
    /// neighbour evicts fresh items.
    ///
    /// `automove` is the `slabs automove` mode: 0 keeps only the move to a
    /// class holding nothing (without it that class could never store an
    /// item once the budget is spent); 1 is the above; 2 (aggressive)
    /// drops the once-a-second limit and the twice-as-old test, so every
    /// eviction takes a page from the class with the oldest tail instead.
    /// `ratio` (`-o slab_automove_ratio`): in mode 1 a page moves when this
    /// class's tail age is under `ratio` times the giver's.
    pub(super) fn page_to_move(
        &mut self,
        id: u8,
        pool: &PagePool,
        now: u32,
        automove: u8,
        ratio: f64,
    ) -> Option<usize> {
        let me = usize::from(id) - 1;
        let short = self.classes[me].page_bytes.saturating_sub(pool.limit().saturating_sub(pool.used()));
        let bytes = |c: &Class| c.pages.len() * c.page_bytes;
        let others = (0..self.classes.len()).filter(|&i| i != me);
        if self.classes[me].lru_tail == NIL {
            return others
                .filter(|&i| !self.classes[i].pages.is_empty() && bytes(&self.classes[i]) >= short)
                .max_by_key(|&i| bytes(&self.classes[i]));
        }
        if automove == 0 || (automove == 1 && now <= self.last_move) {
            return None;
        }
        let age = |c: &Class| if c.lru_tail == NIL { u32::MAX } else { now.saturating_sub(c.item(c.lru_tail).atime()) };
        let mine = age(&self.classes[me]);
        let spare = |c: &Class| c.pages.len() >= 2 && bytes(c) - c.page_bytes >= short;
        let victim = others.filter(|&i| spare(&self.classes[i])).max_by_key(|&i| age(&self.classes[i]))?;
        let theirs = age(&self.classes[victim]);
        // Half a second of slack, so that two tails of about the same
        // recent age never trade pages.
        if automove == 1 && f64::from(theirs) * ratio <= f64::from(mine) + 0.5 {
            return None;
        }
        self.last_move = now;
        Some(victim)
    }

    /// Bytes of pages this shard holds.
    #[inline]
    fn held(&self) -> usize {
        self.holdings[self.shard_id as usize].load(Ordering::Relaxed)
    }

    fn set_held(&self, bytes: usize) {
        self.holdings[self.shard_id as usize].store(bytes, Ordering::Relaxed);
    }

    /// A fresh page for class `id`, if the budget has room for it.
    pub(super) fn add_page(&mut self, id: u8, pool: &PagePool) -> bool {
        let bytes = self.class(id).page_bytes;
        if !pool.try_take(bytes) {
            return false;
        }
        self.class_mut(id).add_page(vec![0u8; bytes].into_boxed_slice());
        self.set_held(self.held() + bytes);
        true
    }

    /// With the budget spent, frees budget in other shards for a page of
    /// class `id` and takes it (see the module doc). Only a shard under
    /// its share of `-m`, or whose class `id` holds no page, takes; it
    /// takes from the shards holding the most, the starved class from any
    /// shard, otherwise only from one over its share. With `-M` only pages
    /// with no item on them are taken; with `-o no_slab_reassign` only
    /// pages of class `id` itself, so each class keeps the memory it got,
    /// as in memcached, whichever shards hold it, except that a class this
    /// shard holds no page of may take from any class (memcached's single
    /// page of that class would have served every shard). A shard whose
    /// attempt failed does not try again within the second (a starved
    /// class and the others are timed apart), so a class that cannot get a
    /// page does not `try_lock` and scan every other shard on each write.
    pub(super) fn page_from_another_shard(&mut self, id: u8, cx: &WriteCtx<'_>) -> bool {
        let n = cx.shards.len();
        if n < 2 {
            return false;
        }
        let share = cx.pool.limit() / n;
        let starved = self.class(id).pages.is_empty();
        let failed_at = if starved { self.no_starved_giver_at } else { self.no_giver_at };
        if failed_at == cx.now || (!starved && self.held() >= share) {
            return false;
        }
        let got = self.take_from_givers(id, starved, share, cx);
        if !got {
            if starved {
                self.no_starved_giver_at = cx.now;
            } else {
                self.no_giver_at = cx.now;
            }
        }
        got
    }

    /// The work of [`Shard::page_from_another_shard`]: frees pages in the
    /// givers until the budget holds a page of class `id`, freeing at most
    /// as many pages in all as the smallest pages that page is made of
    /// (each freed page is at least that large), so one call's work is
    /// bounded by the size of the page it makes room for.
    fn take_from_givers(&mut self, id: u8, starved: bool, share: usize, cx: &WriteCtx<'_>) -> bool {
        let (pool, me, n) = (cx.pool, self.shard_id as usize, cx.shards.len());
        // The likeliest givers: the shards holding the most.
        let mut givers: Vec<(usize, usize)> = (0..n)
            .filter(|&j| j != me)
            .map(|j| (self.holdings[j].load(Ordering::Relaxed), j))
            .filter(|&(held, _)| held > 0 && (starved || held > share))
            .collect();
        givers.sort_unstable_by(|a, b| b.cmp(a));
        let need = self.class(id).page_bytes;
        let free = pool.limit().saturating_sub(pool.used());
        if free + self.held() + givers.iter().map(|g| g.0).sum::<usize>() < need {
            return false; // Not even all of it would make up the page.
        }
        let mut releases = need.div_ceil(cx.sizes.smallest_page());
        // A starved class may need a page larger than one shard holds
        // (-m 1, a 1 MB page): it may take from every shard, and then from
        // its own classes (the caller's page move).
        let tried = if starved { givers.len() } else { GIVERS_TRIED };
        // Without slab_reassign a class keeps the pages it got, but a
        // class this shard has never held a page of takes from any class:
        // memcached's one page of it would serve every shard here.
        let only = (!cx.reassign && !starved).then_some(usize::from(id) - 1);
        for &(_, j) in givers.iter().take(tried) {
            let Some(mut giver) = cx.shards[j].try_lock() else { continue };
            loop {
                if self.add_page(id, pool) {
                    self.slabs_moved += 1;
                    return true;
                }
                if releases == 0 {
                    return false;
                }
                if !starved && giver.held() <= share {
                    break;
                }
                let Some(from) = giver.coldest_class(cx.now, cx.evictions, only) else { break };
                giver.hand_over_last_page(from, pool, cx.now);
                releases -= 1;
            }
        }
        false
    }

    /// The class index whose newest page this shard gives up first: one
    /// holding pages but no item, else (if `evict`) the one whose LRU tail
    /// has been idle longest; `only` that class index, if given.
    fn coldest_class(&self, now: u32, evict: bool, only: Option<usize>) -> Option<usize> {
        let idle = |c: &Class| match c.lru_tail {
            NIL => u32::MAX,
            tail => now.saturating_sub(c.item(tail).atime()),
        };
        let (i, c) = self
            .classes
            .iter()
            .enumerate()
            .filter(|&(i, c)| !c.pages.is_empty() && only.is_none_or(|o| o == i))
            .max_by_key(|(_, c)| idle(c))?;
        (evict || c.items == 0).then_some(i)
    }

    /// Gives class `to` a page taken from class index `from`: the newest
    /// pages of `from` are emptied (their items evicted) and freed until the
    /// budget holds a page of `to`'s size. False if `from` ran out first.
    pub(super) fn move_page(&mut self, from: usize, to: u8, pool: &PagePool, now: u32) -> bool {
        loop {
            if self.add_page(to, pool) {
                self.slabs_moved += 1;
                return true;
            }
            if !self.release_last_page(from, pool, now) {
                return false;
            }
        }
    }

    /// Frees the newest page of class index `from` for another shard,
    /// keeping the class's newest items: each live item on the page moves
    /// to a chunk on the class's other pages, made free by evicting the
    /// class's LRU tail if need be, keeping its place in the LRU. So what
    /// the class loses is its coldest page's worth of items, wherever they
    /// were. Returns the bytes to the budget; false if the class has no page.
    pub(super) fn hand_over_last_page(&mut self, from: usize, pool: &PagePool, now: u32) -> bool {
        let id = (from + 1) as u8;
        let Some((first, end)) = self.classes[from].last_page_chunks() else { return false };
        let mut buf = Vec::new();
        for idx in first..end {
            if !self.class(id).item(idx).is_linked() {
                continue;
            }
            // A free chunk off the page; chunks on it are dropped with it.
            let dest = loop {
                match self.class_mut(id).alloc_chunk() {
                    Some(d) if d < first => break Some(d),
                    Some(_) => continue,
                    None => {}
                }
                let tail = self.class(id).lru_tail;
                self.unlink_loc(Loc { class: id, idx: tail }, Unlink::Evicted, now);
                if tail == idx {
                    break None; // It was the coldest item itself.
                }
            };
            if let Some(dest) = dest {
                self.relocate(id, idx, dest, &mut buf);
                self.reassign_rescues += 1;
            }
        }
        self.drop_last_page(from, pool);
        true
    }

    /// Detaches the newest page of class index `from`, its items already
    /// gone, and returns its bytes to the budget.
    fn drop_last_page(&mut self, from: usize, pool: &PagePool) {
        if let Some(page) = self.classes[from].take_last_page() {
            pool.give_back(page.len());
            self.set_held(self.held() - page.len());
        }
    }

    /// Moves the linked item in chunk `idx` of class `id` to the unlinked
    /// chunk `dest`, relinking its LRU neighbours and its hash chain.
    fn relocate(&mut self, id: u8, idx: u32, dest: u32, buf: &mut Vec<u8>) {
        let h = self.hasher.hash_one(self.item(Loc { class: id, idx }).key());
        let c = self.class_mut(id);
        buf.clear();
        buf.extend_from_slice(c.chunk(idx));
        c.chunk_mut(dest).copy_from_slice(buf);
        let (prev, next) = (c.item(dest).prev(), c.item(dest).next());
        match prev {
            NIL => c.lru_head = dest,
            p => c.item_mut(p).set_next(dest),
        }
        match next {
            NIL => c.lru_tail = dest,
            n => c.item_mut(n).set_prev(dest),
        }
        let (old, new) = (Loc { class: id, idx }.pack(), Loc { class: id, idx: dest }.pack());
        let found = self.table.remove(h, old, &mut self.classes[..]);
        debug_assert!(found, "a linked item is in the table");
        self.table.insert(h, new, &mut self.classes[..]);
        self.class_mut(id).item_mut(idx).set_iflags(0);
    }

    /// Empties the newest page of class index `from` (evicting its items)
    /// and returns it to the budget. False if the class has no page.
    pub(super) fn release_last_page(&mut self, from: usize, pool: &PagePool, now: u32) -> bool {
        let vid = (from + 1) as u8;
        let Some((first, end)) = self.classes[from].last_page_chunks() else { return false };
        for idx in first..end {
            let loc = Loc { class: vid, idx };
            if self.item(loc).is_linked() {
                self.reassign_evictions += 1;
                self.unlink_loc(loc, Unlink::Evicted, now);
            }
        }
        self.drop_last_page(from, pool);
        true
    }
}
