//! Key -> item location: one chained hash table per shard.
//!
//! The table is an array of bucket heads, each a packed [`Loc`] (`u32`);
//! the chains run through the items themselves (their `hnext` field), as in
//! memcached. So the table costs 4 bytes a bucket plus 4 in each item, and
//! never stores keys: a lookup walks its bucket's chain and asks the caller
//! to compare the key stored in each item.
//!
//! The table grows (doubles) when it holds more than 2 items per bucket
//! (memcached grows at 3/2), so a bucket's chain is 1-2 items long on
//! average: 6-8 bytes an item in all, and a lookup compares about 1.5-2
//! keys. A cache is bounded by memory, so the half key compare (a cache miss
//! when the key is absent) buys 1-1.3 bytes an item. Growing walks every
//! chain once and rehashes the keys (the caller hashes; see [`Table::grow`]).
//!
//! The table does not know where items live: it reaches their links through
//! the [`Chain`] trait. Not here: locking (the shard mutex covers the table)
//! and key storage.

/// "No entry": an empty bucket, the end of a chain, or "the predecessor
/// is the bucket itself".
pub const END: u32 = u32::MAX;

/// Entries a bucket holds on average before the table doubles.
const MAX_LOAD: usize = 2;

/// Bits of a packed location that hold the chunk index.
const IDX_BITS: u32 = 25;
/// Chunks a class of one shard may hold: indexes must fit `IDX_BITS`.
pub const MAX_CHUNKS: u32 = 1 << IDX_BITS;
/// Class ids must fit the 7 bits above the index, leaving `END` unused.
pub const MAX_CLASS_ID: u8 = 126;

/// Where an item lives: slab class id (1..=126) and chunk index in that class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub class: u8,
    pub idx: u32,
}

impl Loc {
    /// The location as one `u32`: class in the top 7 bits.
    #[inline]
    pub fn pack(self) -> u32 {
        debug_assert!(self.class >= 1 && self.class <= MAX_CLASS_ID && self.idx < MAX_CHUNKS);
        (u32::from(self.class) << IDX_BITS) | self.idx
    }

    #[inline]
    pub fn unpack(e: u32) -> Loc {
        Loc { class: (e >> IDX_BITS) as u8, idx: e & (MAX_CHUNKS - 1) }
    }
}

/// Access to the `hnext` links of the entries (items) a table points to.
pub trait Chain {
    /// The entry after `at` in its chain.
    fn link(&self, at: u32) -> u32;
    /// Sets the entry after `at`.
    fn set_link(&mut self, at: u32, to: u32);
}

/// The table. `len` entries in `buckets.len()` (a power of two) chains.
pub struct Table {
    buckets: Vec<u32>,
    mask: usize,
    len: usize,
}

impl Table {
    /// A table with 2^`power` buckets (clamped to 4..=31).
    pub fn with_power(power: u32) -> Table {
        let n = 1usize << power.clamp(4, 31);
        Table { buckets: vec![END; n], mask: n - 1, len: 0 }
    }

    /// Buckets, for `stats` (`hash_bytes` = buckets * 4).
    pub fn capacity(&self) -> usize {
        self.buckets.len()
    }

    #[inline]
    fn bucket(&self, hash: u64) -> usize {
        (hash as usize) & self.mask
    }

    /// Finds the entry for `hash` that `is_key` confirms. Returns its
    /// predecessor in the chain ([`END`]: the bucket) and the entry, for
    /// [`Table::remove_after`].
    #[inline]
    pub fn find<C: Chain + ?Sized>(
        &self,
        hash: u64,
        chain: &C,
        mut is_key: impl FnMut(u32) -> bool,
    ) -> Option<(u32, u32)> {
        let mut pred = END;
        let mut cur = self.buckets[self.bucket(hash)];
        while cur != END {
            if is_key(cur) {
                return Some((pred, cur));
            }
            pred = cur;
            cur = chain.link(cur);
        }
        None
    }

    /// Links `entry` (not in the table) at the head of its bucket. The
    /// caller grows the table first when [`Table::wants_growth`] says so.
    #[inline]
    pub fn insert<C: Chain + ?Sized>(&mut self, hash: u64, entry: u32, chain: &mut C) {
        let b = self.bucket(hash);
        chain.set_link(entry, self.buckets[b]);
        self.buckets[b] = entry;
        self.len += 1;
    }

    /// Unlinks `entry`, whose predecessor [`Table::find`] returned.
    #[inline]
    pub fn remove_after<C: Chain + ?Sized>(&mut self, hash: u64, pred: u32, entry: u32, chain: &mut C) {
        let next = chain.link(entry);
        if pred == END {
            let b = self.bucket(hash);
            debug_assert_eq!(self.buckets[b], entry);
            self.buckets[b] = next;
        } else {
            debug_assert_eq!(chain.link(pred), entry);
            chain.set_link(pred, next);
        }
        chain.set_link(entry, END);
        self.len -= 1;
    }

    /// Unlinks `entry`, looking for it in the chain of `hash`. False if it
    /// is not there.
    pub fn remove<C: Chain + ?Sized>(&mut self, hash: u64, entry: u32, chain: &mut C) -> bool {
        match self.find(hash, chain, |e| e == entry) {
            Some((pred, _)) => {
                self.remove_after(hash, pred, entry, chain);
                true
            }
            None => false,
        }
    }

    /// More than 2 entries a bucket (and room to double).
    #[inline]
    pub fn wants_growth(&self) -> bool {
        self.len > self.buckets.len() * MAX_LOAD && self.buckets.len() < (1 << 31)
    }

    /// Doubles the buckets and relinks every entry; `hash_of` gives an
    /// entry's hash (the caller rehashes its key).
    pub fn grow<C: Chain + ?Sized>(&mut self, chain: &mut C, hash_of: impl Fn(&C, u32) -> u64) {
        let old = std::mem::take(&mut self.buckets);
        let n = old.len() * 2;
        self.buckets = vec![END; n];
        self.mask = n - 1;
        for head in old {
            let mut cur = head;
            while cur != END {
                let next = chain.link(cur);
                let b = self.bucket(hash_of(chain, cur));
                chain.set_link(cur, self.buckets[b]);
                self.buckets[b] = cur;
                cur = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Entries are indexes into a vector of (hash, link).
    struct Links(Vec<(u64, u32)>);

    impl Chain for Links {
        fn link(&self, at: u32) -> u32 {
            self.0[at as usize].1
        }
        fn set_link(&mut self, at: u32, to: u32) {
            self.0[at as usize].1 = to;
        }
    }

    fn insert(t: &mut Table, l: &mut Links, h: u64) -> u32 {
        let e = l.0.len() as u32;
        l.0.push((h, END));
        if t.wants_growth() {
            t.grow(l, |l, e| l.0[e as usize].0);
        }
        t.insert(h, e, l);
        e
    }

    fn has(t: &Table, l: &Links, h: u64, e: u32) -> bool {
        t.find(h, l, |x| x == e).is_some()
    }

    #[test]
    fn locations_pack_into_32_bits() {
        for loc in
            [Loc { class: 1, idx: 0 }, Loc { class: MAX_CLASS_ID, idx: MAX_CHUNKS - 1 }, Loc { class: 7, idx: 12345 }]
        {
            assert_eq!(Loc::unpack(loc.pack()), loc);
            assert_ne!(loc.pack(), END);
        }
    }

    #[test]
    fn insert_find_remove_with_colliding_hashes() {
        let mut t = Table::with_power(4);
        let mut l = Links(Vec::new());
        // Every entry hashes to the same bucket: one long chain.
        let all: Vec<u32> = (0..40).map(|_| insert(&mut t, &mut l, 7)).collect();
        assert_eq!(t.len, 40);
        assert!(all.iter().all(|&e| has(&t, &l, 7, e)));
        for &e in all.iter().step_by(3) {
            let (pred, found) = t.find(7, &l, |x| x == e).unwrap();
            assert_eq!(found, e);
            t.remove_after(7, pred, e, &mut l);
        }
        for (i, &e) in all.iter().enumerate() {
            assert_eq!(has(&t, &l, 7, e), i % 3 != 0, "entry {e}");
        }
        assert!(t.remove(7, all[1], &mut l));
        assert!(!t.remove(7, all[1], &mut l));
        assert_eq!(t.len, 40 - 14 - 1);
    }

    #[test]
    fn matches_a_hashmap_under_random_churn_and_growth() {
        let mut t = Table::with_power(4);
        let mut l = Links(Vec::new());
        let mut model: HashMap<u32, u64> = HashMap::new(); // live entry -> hash
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !x.is_multiple_of(3) || model.is_empty() {
                let h = (x >> 20).wrapping_mul(0x100_0000_01b3) % 997; // few hashes: long chains
                let e = insert(&mut t, &mut l, h);
                model.insert(e, h);
            } else {
                let (&e, &h) = model.iter().nth((x % model.len() as u64) as usize).unwrap();
                assert!(t.remove(h, e, &mut l));
                model.remove(&e);
            }
        }
        assert_eq!(t.len, model.len());
        assert!(t.capacity() * MAX_LOAD >= t.len, "grew as it filled");
        for (&e, &h) in &model {
            assert!(has(&t, &l, h, e));
        }
    }

    #[test]
    fn growth_keeps_load_at_most_two() {
        let mut t = Table::with_power(4);
        let mut l = Links(Vec::new());
        for i in 0..10_000u64 {
            insert(&mut t, &mut l, i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert!(t.len <= t.capacity() * MAX_LOAD + 1);
        }
        assert_eq!(t.capacity(), 8192);
    }
}
