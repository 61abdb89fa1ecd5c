//! Per-class LRU lists, linked through the chunks' `prev`/`next` fields by
//! chunk index. The head is the most recently used item, the tail the next
//! to evict. No pointers and no `unsafe`: a link is a `u32`, `NIL` ends a list.
//!
//! The caller holds the shard lock (it has `&mut Class`).

use super::item::NIL;
use super::slab::Class;

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

/// Moves a linked chunk to the head (it was just used).
pub fn bump(c: &mut Class, idx: u32) {
    if c.lru_head != idx {
        unlink(c, idx);
        link_head(c, idx);
    }
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

    #[test]
    fn link_unlink_bump_keep_both_directions_consistent() {
        let mut c = Class::new(64, 640);
        c.add_page(vec![0; 640].into_boxed_slice());
        for _ in 0..5 {
            let i = c.alloc_chunk().unwrap();
            link_head(&mut c, i);
        }
        assert_eq!(order(&c), vec![4, 3, 2, 1, 0]);
        bump(&mut c, 0);
        assert_eq!(order(&c), vec![0, 4, 3, 2, 1]);
        unlink(&mut c, 3);
        assert_eq!(order(&c), vec![0, 4, 2, 1]);
        unlink(&mut c, 1); // tail
        unlink(&mut c, 0); // head
        assert_eq!(order(&c), vec![4, 2]);
        bump(&mut c, 4); // already head
        assert_eq!(order(&c), vec![4, 2]);
        unlink(&mut c, 4);
        unlink(&mut c, 2);
        assert_eq!(order(&c), Vec::<u32>::new());
        assert_eq!(c.lru_tail, NIL);
    }
}
