//! Per-class LRU lists, linked through the chunks' `prev`/`next` fields by
//! chunk index. The head is the most recently stored or used item, the tail
//! the next to evict. No pointers and no `unsafe`: a link is a `u32`, `NIL`
//! ends a list.
//!
//! A hit does not relink its item: it only changes the item's flags, one
//! byte of a header the lookup has just read ([`after_fetch`]). As in
//! memcached's segmented LRU, the first read marks an item `FETCHED` and a
//! later one `ACTIVE`; [`bump`] (an `add` that found the item, an in-place
//! incr) marks it `ACTIVE`. An `ACTIVE` item moves to the head when eviction
//! reaches it at the tail ([`victim`]: a second chance, as memcached moves
//! an active item out of its cold LRU instead of evicting it). So an item
//! used again since it was stored or last reached the tail outlives one
//! that was not, and a hit writes nothing in two neighbouring chunks
//! (memcached's flat LRU saves the same writes by relinking an item at most
//! once a minute, `ITEM_UPDATE_INTERVAL`).
//!
//! The caller holds the shard lock (it has `&mut Class`).

use super::item::{ACTIVE, FETCHED, NIL};
use super::slab::Class;

/// Used items [`victim`] moves from the tail to the head before it gives
/// up and evicts the tail anyway, which bounds an eviction's work.
const SECOND_CHANCES: usize = 8;

/// Puts an unlinked chunk at the head.
pub fn link_head(c: &mut Class, idx: u32) {
    let old = c.lru_head;
    {
        let mut it = c.item_mut(idx);
        it.set_prev(NIL);
        it.set_next(old);
    }
    if old != NIL {
        c.item_mut(old).set_prev(idx);
    } else {
        c.lru_tail = idx;
    }
    c.lru_head = idx;
}

/// Takes a chunk out of the list.
pub fn unlink(c: &mut Class, idx: u32) {
    let (prev, next) = {
        let it = c.item(idx);
        (it.prev(), it.next())
    };
    if prev != NIL {
        c.item_mut(prev).set_next(next);
    } else {
        debug_assert_eq!(c.lru_head, idx);
        c.lru_head = next;
    }
    if next != NIL {
        c.item_mut(next).set_prev(prev);
    } else {
        debug_assert_eq!(c.lru_tail, idx);
        c.lru_tail = prev;
    }
    let mut it = c.item_mut(idx);
    it.set_prev(NIL);
    it.set_next(NIL);
}

/// An item's flags after a read: the first marks it `FETCHED`, a later
/// one `ACTIVE` (memcached: an item must be hit twice to become active).
#[inline]
pub fn after_fetch(iflags: u8) -> u8 {
    if iflags & FETCHED == 0 {
        iflags | FETCHED
    } else {
        iflags | ACTIVE
    }
}

/// Marks a linked chunk used: it moves to the head instead of being
/// evicted when it reaches the tail (see the module doc).
#[inline]
pub fn bump(c: &mut Class, idx: u32) {
    let mut it = c.item_mut(idx);
    let flags = it.as_ref().iflags();
    if flags & ACTIVE == 0 {
        it.set_iflags(flags | ACTIVE);
    }
}

/// The chunk to evict (`NIL` if the list is empty): the tail, once up to
/// [`SECOND_CHANCES`] used chunks found there have moved to the head with
/// their mark cleared.
pub fn victim(c: &mut Class) -> u32 {
    for _ in 0..SECOND_CHANCES {
        let tail = c.lru_tail;
        if tail == NIL {
            return NIL;
        }
        let flags = c.item(tail).iflags();
        if flags & ACTIVE == 0 {
            return tail;
        }
        c.item_mut(tail).set_iflags(flags & !ACTIVE);
        unlink(c, tail);
        link_head(c, tail);
    }
    c.lru_tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(c: &Class) -> Vec<u32> {
        let mut v = Vec::new();
        let mut cur = c.lru_head;
        while cur != NIL {
            v.push(cur);
            cur = c.item(cur).next();
        }
        // and the reverse walk agrees
        let mut back = Vec::new();
        let mut cur = c.lru_tail;
        while cur != NIL {
            back.push(cur);
            cur = c.item(cur).prev();
        }
        back.reverse();
        assert_eq!(v, back);
        v
    }

    fn class_of_five() -> Class {
        let mut c = Class::new(64, 640);
        c.add_page(vec![0; 640].into_boxed_slice());
        for _ in 0..5 {
            let i = c.alloc_chunk().unwrap();
            link_head(&mut c, i);
        }
        c
    }

    #[test]
    fn link_and_unlink_keep_both_directions_consistent() {
        let mut c = class_of_five();
        assert_eq!(order(&c), vec![4, 3, 2, 1, 0]);
        unlink(&mut c, 3);
        assert_eq!(order(&c), vec![4, 2, 1, 0]);
        unlink(&mut c, 0); // tail
        unlink(&mut c, 4); // head
        assert_eq!(order(&c), vec![2, 1]);
        unlink(&mut c, 1);
        unlink(&mut c, 2);
        assert_eq!(order(&c), Vec::<u32>::new());
        assert_eq!((c.lru_head, c.lru_tail), (NIL, NIL));
        assert_eq!(victim(&mut c), NIL);
    }

    #[test]
    fn a_bump_only_marks_and_the_victim_skips_marked_tails_once() {
        let mut c = class_of_five();
        bump(&mut c, 0);
        bump(&mut c, 1);
        bump(&mut c, 3);
        assert_eq!(order(&c), vec![4, 3, 2, 1, 0], "a hit does not relink");
        assert_eq!(victim(&mut c), 2, "0 and 1 were used since they were stored");
        assert_eq!(order(&c), vec![1, 0, 4, 3, 2]);
        assert_eq!(c.item(0).iflags() & ACTIVE, 0, "the second chance is spent");
        assert_ne!(c.item(3).iflags() & ACTIVE, 0, "not reached yet");
        unlink(&mut c, 2);
        assert_eq!(victim(&mut c), 4, "3 moves up, 4 was never used");
        assert_eq!(order(&c), vec![3, 1, 0, 4]);
    }

    #[test]
    fn the_second_read_makes_an_item_active() {
        let once = after_fetch(0);
        assert_eq!(once, FETCHED);
        assert_eq!(after_fetch(once), FETCHED | ACTIVE);
        assert_eq!(after_fetch(FETCHED | ACTIVE), FETCHED | ACTIVE);
    }

    #[test]
    fn when_every_tail_is_marked_the_victim_is_found_within_a_bound() {
        let mut c = Class::new(64, 64 * 32);
        c.add_page(vec![0; 64 * 32].into_boxed_slice());
        for _ in 0..32 {
            let i = c.alloc_chunk().unwrap();
            link_head(&mut c, i);
            bump(&mut c, i);
        }
        // Chunk 0 is the tail; SECOND_CHANCES of them move up, and the
        // next tail goes even though it was used.
        let v = victim(&mut c);
        assert_eq!(v, SECOND_CHANCES as u32);
        assert_eq!(order(&c).len(), 32);
        // A small list whose items were all used: each moves up once.
        let mut small = class_of_five();
        for i in 0..5 {
            bump(&mut small, i);
        }
        assert_eq!(victim(&mut small), 0);
        assert_eq!(order(&small), vec![4, 3, 2, 1, 0]);
    }
}
