//! Key -> item location: one chained hash table per shard.
//!
//! The table is an array of bucket heads, each a packed [`Loc`] (`u32`);
//! the chains run through the items themselves (their `hnext` field), as in
//! memcached. So the table costs 4 bytes a bucket plus 4 in each item, and
//! never stores keys: a lookup walks its bucket's chain and asks the caller
//! to compare the key stored in each item.
//!
//! The table grows (doubles) when it holds more than 3/2 items per bucket,
//! as memcached does (so `hash_power_level` moves when memcached's would),
//! so a bucket's chain is 0.75-1.5 items long on average: about 6.7-9.3
//! bytes an item in all, and a lookup compares about 1.4-1.75 keys.
//!
//! Growth is incremental, never stop-the-world: [`Table::start_growth`]
//! allocates the doubled array and keeps the old one; from then on each
//! [`Table::migrate`] call (the shard makes one per insert and per lookup
//! that may unlink) moves [`MIGRATE_STEP`] old buckets into the new array,
//! rehashing the keys on their chains (the caller hashes; see `hash_of`).
//! Old bucket `b` splits into new buckets `b` and `b + old_len`. While it
//! migrates, a hash whose old bucket is not moved yet is looked up, inserted
//! and removed in the old array, any other in the new one, so every entry is
//! in exactly one chain and a lookup reads one of the two arrays. No growth
//! starts before the last one is done; since each insert moves at least one
//! bucket, a migration always ends well before the load reaches 4 again.
//! Bucket heads are stored plus one, so an empty bucket is 0 and a new
//! array comes zeroed from the allocator (no pass over it to fill it).
//!
//! The table does not know where items live: it reaches their links through
//! the [`Chain`] trait. Not here: locking (the shard mutex covers the table)
//! and key storage.

/// "No entry": an empty bucket, the end of a chain, or "the predecessor
/// is the bucket itself".
pub const END: u32 = u32::MAX;

/// Entries a bucket holds on average before the table doubles: 3/2, as
/// memcached (so `hash_power_level` moves when memcached's would).
const MAX_LOAD: (usize, usize) = (3, 2);

/// Whether `len` entries over `buckets` buckets are above [`MAX_LOAD`].
fn over_load(len: usize, buckets: usize) -> bool {
    len * MAX_LOAD.1 > buckets * MAX_LOAD.0
}

/// Old buckets moved per [`Table::migrate`] call while the table grows.
pub const MIGRATE_STEP: usize = 4;

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

/// A bucket head as stored: the entry plus one, 0 for an empty bucket.
#[inline]
fn stored(entry: u32) -> u32 {
    entry.wrapping_add(1)
}

/// The entry a stored bucket head names ([`END`] for an empty bucket).
#[inline]
fn head(slot: u32) -> u32 {
    slot.wrapping_sub(1)
}

/// A zeroed (all empty) bucket array of `n` buckets.
fn empty_buckets(n: usize) -> Vec<u32> {
    vec![0; n]
}

/// The table. `len` entries in `buckets.len()` (a power of two) chains,
/// some of them still in `old` while the table grows.
pub struct Table {
    buckets: Vec<u32>,
    mask: usize,
    /// The array before the last doubling, while its buckets are moved;
    /// empty otherwise.
    old: Vec<u32>,
    /// Old buckets below this were moved into `buckets` (and are empty).
    moved: usize,
    len: usize,
}

impl Table {
    /// A table with 2^`power` buckets (clamped to 4..=31).
    pub fn with_power(power: u32) -> Table {
        let n = 1usize << power.clamp(4, 31);
        Table { buckets: empty_buckets(n), mask: n - 1, old: Vec::new(), moved: 0, len: 0 }
    }

    /// Buckets of the current (new, while growing) array: `stats` reports
    /// `hash_power_level` from it.
    pub fn capacity(&self) -> usize {
        self.buckets.len()
    }

    /// Buckets held in memory: both arrays while the table grows
    /// (`hash_bytes` = this * 4).
    pub fn allocated(&self) -> usize {
        self.buckets.len() + self.old.len()
    }

    /// Entries in the table.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether old buckets are still being moved into the doubled array
    /// (`hash_is_expanding`).
    #[inline]
    pub fn is_growing(&self) -> bool {
        !self.old.is_empty()
    }

    /// The bucket that holds `hash`'s chain: an old one not moved yet, or
    /// one of the current array.
    #[inline]
    fn slot(&self, hash: u64) -> &u32 {
        if !self.old.is_empty() {
            let ob = (hash as usize) & (self.old.len() - 1);
            if ob >= self.moved {
                return &self.old[ob];
            }
        }
        &self.buckets[(hash as usize) & self.mask]
    }

    #[inline]
    fn slot_mut(&mut self, hash: u64) -> &mut u32 {
        if !self.old.is_empty() {
            let ob = (hash as usize) & (self.old.len() - 1);
            if ob >= self.moved {
                return &mut self.old[ob];
            }
        }
        &mut self.buckets[(hash as usize) & self.mask]
    }

    /// Finds the entry for `hash` that `is_key` confirms. Returns its
    /// predecessor in the chain ([`END`]: the bucket) and the entry, for
    /// [`Table::remove_after`] (valid until the next insert or migrate).
    #[inline]
    pub fn find<C: Chain + ?Sized>(
        &self,
        hash: u64,
        chain: &C,
        mut is_key: impl FnMut(u32) -> bool,
    ) -> Option<(u32, u32)> {
        let mut pred = END;
        let mut cur = head(*self.slot(hash));
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
    /// caller starts a growth first when [`Table::wants_growth`] says so.
    #[inline]
    pub fn insert<C: Chain + ?Sized>(&mut self, hash: u64, entry: u32, chain: &mut C) {
        let slot = self.slot_mut(hash);
        let next = head(*slot);
        *slot = stored(entry);
        chain.set_link(entry, next);
        self.len += 1;
    }

    /// Unlinks `entry`, whose predecessor [`Table::find`] returned.
    #[inline]
    pub fn remove_after<C: Chain + ?Sized>(&mut self, hash: u64, pred: u32, entry: u32, chain: &mut C) {
        let next = chain.link(entry);
        if pred == END {
            let slot = self.slot_mut(hash);
            debug_assert_eq!(head(*slot), entry);
            *slot = stored(next);
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

    /// More than 2 entries a bucket, room to double, and no growth under way.
    #[inline]
    pub fn wants_growth(&self) -> bool {
        over_load(self.len, self.buckets.len()) && self.buckets.len() < (1 << 31) && self.old.is_empty()
    }

    /// Doubles the buckets; the entries move over in later
    /// [`Table::migrate`] calls. Does nothing while a growth is under way.
    pub fn start_growth(&mut self) {
        if self.is_growing() {
            return;
        }
        let n = self.buckets.len() * 2;
        self.old = std::mem::replace(&mut self.buckets, empty_buckets(n));
        self.mask = n - 1;
        self.moved = 0;
    }

    /// Mask of the bucket groups a walk in pieces ([`Table::scan_group`])
    /// steps through: the old array's buckets while the table grows (each
    /// old bucket with the two new buckets it splits into), the current
    /// array's otherwise.
    fn scan_mask(&self) -> usize {
        if self.old.is_empty() {
            self.mask
        } else {
            self.old.len() - 1
        }
    }

    /// One piece of a walk over every entry, made in pieces that the
    /// caller may separate by any inserts, removals, migration steps and
    /// growths: calls `f` with each entry of the bucket group at `cursor`
    /// and returns the cursor of the next group, 0 after the last (a walk
    /// starts at 0).
    ///
    /// A group is every bucket whose hashes end in the same low bits (one
    /// bucket; while the table grows, an old bucket not moved yet, or the
    /// two new buckets a moved one split into), so visiting a group sees
    /// all the entries of those hashes at that moment. The groups are
    /// visited in the order of their bits read backwards (the cursor is
    /// counted up from its top bit): when the table doubles, each group
    /// splits into two groups that both come after the groups already
    /// visited and before the ones not visited yet. So an entry that stays
    /// in the table from the walk's first piece to its last is seen exactly
    /// once, whatever growths happen in between; an entry inserted or
    /// removed during the walk is seen once or not at all.
    pub fn scan_group<C: Chain + ?Sized>(&self, cursor: u64, chain: &C, mut f: impl FnMut(u32)) -> u64 {
        let mask = self.scan_mask();
        let b = cursor as usize & mask;
        let mut walk = |slot: u32| {
            let mut cur = head(slot);
            while cur != END {
                f(cur);
                cur = chain.link(cur);
            }
        };
        if self.old.is_empty() {
            walk(self.buckets[b]);
        } else if b >= self.moved {
            walk(self.old[b]);
        } else {
            walk(self.buckets[b]);
            walk(self.buckets[b + self.old.len()]);
        }
        // Count up in the group bits, starting from the top one: set the
        // bits above the mask so the carry runs through them and out.
        let up = (cursor | !(mask as u64)).reverse_bits().wrapping_add(1);
        up.reverse_bits()
    }

    /// Moves up to `buckets` old buckets into the current array, relinking
    /// their entries; `hash_of` gives an entry's hash (the caller rehashes
    /// its key). Returns the buckets moved; the old array is freed after
    /// the last one.
    pub fn migrate<C: Chain + ?Sized>(
        &mut self,
        buckets: usize,
        chain: &mut C,
        hash_of: impl Fn(&C, u32) -> u64,
    ) -> usize {
        let end = (self.moved + buckets).min(self.old.len());
        let done = end - self.moved;
        for ob in self.moved..end {
            let mut cur = head(std::mem::take(&mut self.old[ob]));
            while cur != END {
                let next = chain.link(cur);
                let b = (hash_of(chain, cur) as usize) & self.mask;
                debug_assert_eq!(b & (self.old.len() - 1), ob);
                chain.set_link(cur, head(self.buckets[b]));
                self.buckets[b] = stored(cur);
                cur = next;
            }
        }
        self.moved = end;
        if self.moved == self.old.len() {
            self.old = Vec::new();
            self.moved = 0;
        }
        done
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

    fn hash_of(l: &Links, e: u32) -> u64 {
        l.0[e as usize].0
    }

    /// Inserts as a shard does: start a growth when due, link, then move
    /// a step of old buckets.
    fn insert(t: &mut Table, l: &mut Links, h: u64) -> u32 {
        let e = l.0.len() as u32;
        l.0.push((h, END));
        if t.wants_growth() {
            t.start_growth();
        }
        t.insert(h, e, l);
        t.migrate(MIGRATE_STEP, l, hash_of);
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

    /// Every live entry is found, in exactly one chain, and nothing else is.
    fn check_against(t: &Table, l: &Links, model: &HashMap<u32, u64>) {
        assert_eq!(t.len(), model.len());
        for (&e, &h) in model {
            assert!(has(t, l, h, e), "entry {e} lost (growing: {})", t.is_growing());
        }
        let mut chained = 0;
        for &slot in t.buckets.iter().chain(&t.old) {
            let mut cur = head(slot);
            while cur != END {
                assert!(model.contains_key(&cur), "dead entry {cur} still chained");
                chained += 1;
                cur = l.link(cur);
            }
        }
        assert_eq!(chained, model.len());
    }

    #[test]
    fn matches_a_hashmap_under_random_churn_across_many_growths() {
        let mut t = Table::with_power(4);
        let mut l = Links(Vec::new());
        let mut model: HashMap<u32, u64> = HashMap::new(); // live entry -> hash
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let (mut growths, mut checked_mid_growth) = (0, 0);
        for step in 0..60_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let was_growing = t.is_growing();
            // Mostly inserts, so the table doubles again and again; some
            // hashes repeat (long chains), most are spread.
            if !x.is_multiple_of(3) || model.is_empty() {
                let h = if x.is_multiple_of(5) { (x >> 20) % 997 } else { x.rotate_left(17) };
                let e = insert(&mut t, &mut l, h);
                model.insert(e, h);
            } else {
                let (&e, &h) = model.iter().nth((x % model.len() as u64) as usize).unwrap();
                if x.is_multiple_of(2) {
                    assert!(t.remove(h, e, &mut l));
                } else {
                    let (pred, found) = t.find(h, &l, |c| c == e).unwrap();
                    t.remove_after(h, pred, found, &mut l);
                }
                assert!(!has(&t, &l, h, e));
                model.remove(&e);
                // A lookup that may unlink moves a step too.
                t.migrate(MIGRATE_STEP, &mut l, hash_of);
            }
            if !was_growing && t.is_growing() {
                growths += 1;
            }
            if t.is_growing() && (step % 97 == 0 || checked_mid_growth < growths) {
                checked_mid_growth = growths;
                check_against(&t, &l, &model);
            }
        }
        assert!(growths >= 10, "only {growths} growths");
        assert!(!over_load(t.len(), t.capacity() * 2), "grew as it filled");
        check_against(&t, &l, &model);
        while t.is_growing() {
            t.migrate(MIGRATE_STEP, &mut l, hash_of);
        }
        check_against(&t, &l, &model);
        assert_eq!(t.allocated(), t.capacity(), "the old array is freed");
    }

    /// A walk in pieces with inserts, removals and growths between the
    /// pieces sees each entry that stayed throughout exactly once, and
    /// nothing that was never in the table.
    #[test]
    fn a_walk_in_pieces_sees_every_entry_that_stayed_once() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..20 {
            let mut t = Table::with_power(4);
            let mut l = Links(Vec::new());
            let mut model: HashMap<u32, u64> = HashMap::new();
            for _ in 0..(50 * (round + 1)) {
                let h = next();
                let e = insert(&mut t, &mut l, h);
                model.insert(e, h);
            }
            let stayed: Vec<u32> = model.keys().copied().filter(|e| e % 3 != 0).collect();
            let mut seen: HashMap<u32, usize> = HashMap::new();
            let (mut cursor, mut pieces, mut growths) = (0u64, 0, 0);
            loop {
                cursor = t.scan_group(cursor, &l, |e| *seen.entry(e).or_default() += 1);
                pieces += 1;
                if cursor == 0 {
                    break;
                }
                // Between pieces: many inserts (so the table doubles, often
                // mid-walk), and removals of entries divisible by 3 only.
                for _ in 0..(next() % 8) {
                    let h = next();
                    let was_growing = t.is_growing();
                    let e = insert(&mut t, &mut l, h);
                    model.insert(e, h);
                    growths += usize::from(!was_growing && t.is_growing());
                }
                if let Some((&e, &h)) = model.iter().find(|(e, _)| *e % 3 == 0) {
                    assert!(t.remove(h, e, &mut l));
                    model.remove(&e);
                }
                assert!(pieces < 1 << 20, "the walk ends");
            }
            assert!(growths > 0, "round {round}: the table grew during the walk");
            for e in &stayed {
                assert_eq!(seen.get(e), Some(&1), "round {round}: entry {e}");
            }
            assert!(seen.values().all(|&n| n == 1), "round {round}: an entry seen twice");
            assert!(seen.keys().all(|&e| (e as usize) < l.0.len()));
        }
    }

    #[test]
    fn a_growth_moves_a_bounded_step_per_call_and_then_ends() {
        let mut t = Table::with_power(10);
        let mut l = Links(Vec::new());
        for i in 0..=2048u64 {
            let e = l.0.len() as u32;
            l.0.push((i.wrapping_mul(0x9e37_79b9_7f4a_7c15), END));
            t.insert(l.0[e as usize].0, e, &mut l);
        }
        assert!(t.wants_growth());
        t.start_growth();
        assert!(t.is_growing() && !t.wants_growth());
        assert_eq!((t.capacity(), t.allocated()), (2048, 3072));
        let mut calls = 0;
        while t.is_growing() {
            assert_eq!(t.migrate(MIGRATE_STEP, &mut l, hash_of), MIGRATE_STEP);
            calls += 1;
        }
        assert_eq!(calls, 1024 / MIGRATE_STEP);
        assert_eq!(t.migrate(MIGRATE_STEP, &mut l, hash_of), 0);
        assert_eq!(t.allocated(), 2048);
        assert!((0..=2048u32).all(|e| has(&t, &l, hash_of(&l, e), e)));
    }

    #[test]
    fn growth_keeps_load_at_most_three_halves() {
        let mut t = Table::with_power(4);
        let mut l = Links(Vec::new());
        for i in 0..10_000u64 {
            insert(&mut t, &mut l, i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert!(!over_load(t.len - 1, t.capacity()));
        }
        assert_eq!(t.capacity(), 8192);
        assert!(!t.is_growing(), "each insert moved a step: the last growth is done");
    }
}
