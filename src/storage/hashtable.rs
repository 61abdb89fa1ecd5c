//! Key -> item location: one open-addressing table per shard.
//!
//! Each slot is one `u64`: `hash bits (26) | class id (6) | chunk index (32)`.
//! The table never stores keys; a probe that matches the hash bits asks the
//! caller to compare the key stored in the chunk. The low 26 hash bits are
//! also the slot's home position (masked), so growing and deleting need no
//! rehash of keys. That bounds a shard to 2^26 slots; beyond it the table
//! stops growing and runs fuller (a shard of 50M items is far past any `-m`).
//!
//! Linear probing with backward-shift deletion: no tombstones, so lookups of
//! absent keys stay short after heavy churn. 8 bytes per slot at a load of
//! 0.375-0.75 is 11-21 bytes per item.
//!
//! Not here: locking (the shard mutex covers the table) and key storage.

/// A slot value of 0 is empty; class ids start at 1, so no entry is 0.
const EMPTY: u64 = 0;
const HASH_BITS: u32 = 26;
const HASH_SHIFT: u32 = 38;
const CLASS_SHIFT: u32 = 32;
const MAX_SLOTS_LOG2: u32 = HASH_BITS;

/// Where an item lives: slab class id (1..=63) and chunk index in that class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub class: u8,
    pub idx: u32,
}

#[inline]
fn pack(hash: u64, loc: Loc) -> u64 {
    debug_assert!(loc.class >= 1 && loc.class < 64);
    ((hash & ((1 << HASH_BITS) - 1)) << HASH_SHIFT) | (u64::from(loc.class) << CLASS_SHIFT) | u64::from(loc.idx)
}

#[inline]
fn unpack(entry: u64) -> Loc {
    Loc { class: ((entry >> CLASS_SHIFT) & 0x3f) as u8, idx: entry as u32 }
}

#[inline]
fn hash_bits(entry: u64) -> u64 {
    entry >> HASH_SHIFT
}

/// The table. `len` items in `slots.len()` (a power of two) slots.
pub struct Table {
    slots: Vec<u64>,
    mask: usize,
    len: usize,
}

impl Table {
    /// A table with 2^`power` slots (clamped to 4..=26).
    pub fn with_power(power: u32) -> Table {
        let power = power.clamp(4, MAX_SLOTS_LOG2);
        let n = 1usize << power;
        Table { slots: vec![EMPTY; n], mask: n - 1, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots, for `stats` (`hash_bytes` = slots * 8).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// log2 of the slot count (`hash_power_level`).
    pub fn power(&self) -> u32 {
        self.slots.len().trailing_zeros()
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        (hash as usize) & self.mask
    }

    /// Finds the entry for `hash` whose key `is_key` confirms; returns its
    /// slot position (for [`Table::remove_at`]/[`Table::set_at`]) and location.
    #[inline]
    pub fn find(&self, hash: u64, mut is_key: impl FnMut(Loc) -> bool) -> Option<(usize, Loc)> {
        let want = hash & ((1 << HASH_BITS) - 1);
        let mut pos = self.home(hash);
        loop {
            let e = self.slots[pos];
            if e == EMPTY {
                return None;
            }
            if hash_bits(e) == want {
                let loc = unpack(e);
                if is_key(loc) {
                    return Some((pos, loc));
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// Finds the slot holding exactly `loc` (used when evicting by location).
    pub fn find_loc(&self, hash: u64, loc: Loc) -> Option<usize> {
        self.find(hash, |l| l == loc).map(|(pos, _)| pos)
    }

    /// Inserts a key known to be absent.
    pub fn insert(&mut self, hash: u64, loc: Loc) {
        if (self.len + 1) * 4 > self.slots.len() * 3 && self.slots.len() < (1 << MAX_SLOTS_LOG2) {
            self.grow();
        }
        // A full table cannot happen: we stop growing at 2^26 slots, and a
        // shard holds far fewer items than that before `-m` is reached.
        assert!(self.len < self.slots.len(), "hash table full");
        let mut pos = self.home(hash);
        while self.slots[pos] != EMPTY {
            pos = (pos + 1) & self.mask;
        }
        self.slots[pos] = pack(hash, loc);
        self.len += 1;
    }

    /// Points the entry at `pos` to a new location of the same key.
    pub fn set_at(&mut self, pos: usize, loc: Loc) {
        let e = self.slots[pos];
        debug_assert!(e != EMPTY);
        self.slots[pos] = pack(hash_bits(e), loc);
    }

    /// Removes the entry at `pos`, shifting later entries of the same run
    /// back so that no probe sequence is broken.
    pub fn remove_at(&mut self, pos: usize) {
        debug_assert!(self.slots[pos] != EMPTY);
        let mut hole = pos;
        let mut j = pos;
        loop {
            j = (j + 1) & self.mask;
            let e = self.slots[j];
            if e == EMPTY {
                break;
            }
            let home = self.home(hash_bits(e));
            // Entry j may move into the hole unless its home lies cyclically
            // in (hole, j].
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.slots[hole] = e;
                hole = j;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        let n = old.len() * 2;
        self.slots = vec![EMPTY; n];
        self.mask = n - 1;
        for e in old.into_iter().filter(|&e| e != EMPTY) {
            let mut pos = self.home(hash_bits(e));
            while self.slots[pos] != EMPTY {
                pos = (pos + 1) & self.mask;
            }
            self.slots[pos] = e;
        }
    }

    /// Empties the table, keeping its size.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = EMPTY);
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn loc(i: u32) -> Loc {
        Loc { class: (i % 63 + 1) as u8, idx: i }
    }

    /// Keys are their own index here; the "stored key" lookup compares idx.
    fn find(t: &Table, h: u64, key: u32) -> Option<Loc> {
        t.find(h, |l| l.idx == key).map(|(_, l)| l)
    }

    #[test]
    fn insert_find_remove_with_colliding_hashes() {
        let mut t = Table::with_power(4);
        // Every key hashes to the same home: one long run.
        for i in 0..40 {
            t.insert(7, loc(i));
        }
        assert_eq!(t.len(), 40);
        for i in 0..40 {
            assert_eq!(find(&t, 7, i), Some(loc(i)));
        }
        for i in (0..40).step_by(3) {
            let (pos, _) = t.find(7, |l| l.idx == i).unwrap();
            t.remove_at(pos);
        }
        for i in 0..40 {
            assert_eq!(find(&t, 7, i).is_some(), i % 3 != 0, "key {i}");
        }
    }

    #[test]
    fn matches_a_hashmap_under_random_churn() {
        let mut t = Table::with_power(4);
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = (x % 500) as u32;
            let h = (x >> 20).wrapping_mul(0x100_0000_01b3) % 97; // few distinct hashes: many collisions
            let h = *model.get(&key).unwrap_or(&h);
            match t.find(h, |l| l.idx == key) {
                Some((pos, _)) => {
                    t.remove_at(pos);
                    model.remove(&key);
                }
                None => {
                    t.insert(h, loc(key));
                    model.insert(key, h);
                }
            }
        }
        assert_eq!(t.len(), model.len());
        for (&k, &h) in &model {
            assert_eq!(find(&t, h, k), Some(loc(k)));
        }
    }

    #[test]
    fn set_at_moves_an_entry_and_grow_keeps_all() {
        let mut t = Table::with_power(4);
        for i in 0..1000u32 {
            t.insert(u64::from(i).wrapping_mul(0x9e37_79b9), loc(i));
        }
        assert!(t.capacity() >= 1024);
        let h = 5u64.wrapping_mul(0x9e37_79b9);
        let (pos, _) = t.find(h, |l| l.idx == 5).unwrap();
        t.set_at(pos, Loc { class: 9, idx: 5 });
        assert_eq!(find(&t, h, 5), Some(Loc { class: 9, idx: 5 }));
        assert_eq!(t.find_loc(h, Loc { class: 9, idx: 5 }), Some(pos));
        t.clear();
        assert!(t.is_empty());
        assert_eq!(find(&t, h, 5), None);
    }
}
