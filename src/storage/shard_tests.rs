//! Store tests across shards: pages handed between shards on a small
//! `-m`, the budget kept, and tables growing a step at a time.

use super::*;

fn store(memory: usize, shards: usize, evictions: bool) -> Store {
    let cfg = StoreConfig { memory_limit: memory, shards, evictions, hashpower: 4, ..StoreConfig::default() };
    Store::new(&cfg, Arc::new(Clock::manual(1_700_000_000)))
}

/// The shard `key` lives in.
fn shard_of(s: &Store, key: &[u8]) -> usize {
    let h = s.hasher.hash_one(key);
    if s.shard_shift >= 64 {
        0
    } else {
        (h >> s.shard_shift) as usize
    }
}

/// Bytes of pages shard `i` holds, counted from its classes.
fn held(s: &Store, i: usize) -> usize {
    s.shards[i].lock().classes.iter().map(|c| c.pages.len() * c.page_bytes).sum()
}

/// `n` keys of shard `i` (or of any other shard with `other`).
fn keys_in(s: &Store, i: usize, other: bool, n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..).map(|k| format!("{tag}{k}").into_bytes()).filter(|k| (shard_of(s, k) == i) != other).take(n).collect()
}

fn within_budget(s: &Store, limit: usize) {
    let st = s.stats();
    assert!(st.total_malloced as usize <= limit, "{} > {limit}", st.total_malloced);
    let sum: usize = (0..s.shard_count()).map(|i| held(s, i)).sum();
    assert_eq!(sum, st.total_malloced as usize, "the pages the shards hold are what the budget handed out");
    for i in 0..s.shard_count() {
        let counted = s.shards[i].lock().holdings[i].load(Ordering::Relaxed);
        assert_eq!(counted, held(s, i), "shard {i}'s holding is counted");
    }
}

#[test]
fn the_shard_count_follows_the_config_not_the_memory() {
    for (m, t) in [(MEGABYTE, 4), (8 * MEGABYTE, 4), (4096 * MEGABYTE, 2), (64 * MEGABYTE, 3)] {
        let s = store(m, SHARDS_PER_THREAD * t, true);
        assert_eq!(s.shard_count(), (SHARDS_PER_THREAD * t).next_power_of_two(), "-m {m} -t {t}");
    }
    assert_eq!(store(MEGABYTE, 4096, true).shard_count(), MAX_SHARDS);
    assert!(store(MEGABYTE, 0, true).shard_count() >= SHARDS_PER_THREAD);
}

/// The pylibmc regression again, on 16 shards of an 8 MB cache: 200 items
/// of 4..800 bytes in ~60 classes, one partly used page per class and
/// shard, fit without an eviction.
#[test]
fn mixed_sizes_fill_a_small_many_shard_cache_without_evicting() {
    let s = store(8 * MEGABYTE, 16, true);
    for i in 0..200usize {
        let v = vec![b'v'; 4 * (i + 1)];
        assert_eq!(s.store(StoreMode::Set, format!("m{i}").as_bytes(), 0, 0, &v), StoreOutcome::Stored);
    }
    for i in 0..200usize {
        assert_eq!(s.get(format!("m{i}").as_bytes(), None, |it| it.value.len()), Some(4 * (i + 1)), "m{i}");
    }
    assert_eq!(s.stats().evictions, 0);
    within_budget(&s, 8 * MEGABYTE);
}

/// Every key goes to one shard after the others filled the cache: it takes
/// pages from them until it holds about its share, and the total stays
/// within -m.
#[test]
fn a_shard_short_of_its_share_takes_pages_from_the_fullest() {
    let limit = 2 * MEGABYTE;
    let s = store(limit, 8, true);
    let value = [1u8; 100];
    for k in keys_in(&s, 0, true, 40_000, "others") {
        s.store(StoreMode::Set, &k, 0, 0, &value);
    }
    let page = s.sizes().page_bytes(s.class_of(8, 100, 0));
    assert!(s.pool.used() + page > limit, "the budget is spent");
    let before = held(&s, 0);
    assert!(before < limit / 8, "shard 0 starts short: {before}");
    let mine = keys_in(&s, 0, false, 20_000, "mine");
    for k in &mine {
        assert_eq!(s.store(StoreMode::Set, k, 0, 0, &value), StoreOutcome::Stored);
    }
    let after = held(&s, 0);
    assert!(after + page > limit / 8, "shard 0 holds {after} of a {} share", limit / 8);
    assert!(after <= limit / 8 + page, "and no more than its share: {after}");
    assert!(s.stats().slabs_moved > 0);
    within_budget(&s, limit);
    // Its newest keys are all there.
    let fit = after / s.sizes().chunk_size(s.class_of(8, 100, 0)) / 2;
    assert!(mine.iter().rev().take(fit).all(|k| s.get(k, None, |_| ()).is_some()));
}

/// On -m 1 with 16 shards each shard's share is 64 KB, yet a 500 KB item
/// (a 1 MB page) still stores: the starved class takes budget from the
/// shards holding the most.
#[test]
fn a_starved_class_takes_a_large_page_from_other_shards() {
    let s = store(MEGABYTE, 16, true);
    for i in 0..20_000 {
        s.store(StoreMode::Set, format!("small{i}").as_bytes(), 0, 0, b"v");
    }
    within_budget(&s, MEGABYTE);
    let big = vec![7u8; 500_000];
    assert_eq!(s.store(StoreMode::Set, b"big", 0, 0, &big), StoreOutcome::Stored);
    assert_eq!(s.get(b"big", None, |it| it.value.to_vec()), Some(big));
    within_budget(&s, MEGABYTE);
    // The small items come back as the big page's shard is wanted again.
    for i in 0..2000 {
        assert_eq!(s.store(StoreMode::Set, format!("again{i}").as_bytes(), 0, 0, b"v"), StoreOutcome::Stored);
    }
    within_budget(&s, MEGABYTE);
}

/// With -M, a shard whose budget share went elsewhere takes only pages
/// with no item on them: free pages move, live items are never evicted.
#[test]
fn without_evictions_only_empty_pages_change_shards() {
    let limit = MEGABYTE;
    let s = store(limit, 4, false);
    let others = keys_in(&s, 0, true, 20_000, "o");
    let mut stored = Vec::new();
    for k in &others {
        if s.store(StoreMode::Set, k, 0, 0, &[1u8; 100]) == StoreOutcome::Stored {
            stored.push(k.clone());
        }
    }
    let mine = keys_in(&s, 0, false, 1, "m").pop().unwrap();
    // Shard 0 took nothing; the rest is full of live items.
    assert_eq!(s.store(StoreMode::Set, &mine, 0, 0, &[1u8; 100]), StoreOutcome::OutOfMemory);
    assert_eq!(s.stats().evictions, 0);
    for k in &stored {
        s.delete(k);
    }
    // A shard that found no page to take looks again the next second.
    s.clock().advance(1);
    assert_eq!(s.store(StoreMode::Set, &mine, 0, 0, &[1u8; 100]), StoreOutcome::Stored);
    assert_eq!(s.stats().evictions, 0);
    within_budget(&s, limit);
}

/// A shard's table grows while items are stored and read, a few buckets
/// at a time: every item stays readable through each growth, `stats`
/// says when a table is growing, and the growths end.
#[test]
fn tables_grow_in_steps_and_every_item_stays_readable() {
    let s = store(64 * MEGABYTE, 2, true);
    let power = |s: &Store| s.stats().hash_power_level;
    let start = power(&s);
    let (mut seen_growing, mut i) = (false, 0usize);
    while i < 20_000 {
        s.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, b"v");
        i += 1;
        let st = s.stats();
        if st.hash_is_expanding {
            seen_growing = true;
            assert!(st.hash_bytes as usize > 4 << st.hash_power_level, "both arrays are counted");
            for j in (0..i).step_by(97) {
                assert!(s.get(format!("k{j}").as_bytes(), None, |_| ()).is_some(), "k{j} mid-growth");
            }
        }
        if i.is_multiple_of(5000) {
            assert!((0..i).all(|j| s.get(format!("k{j}").as_bytes(), None, |_| ()).is_some()));
        }
    }
    assert!(seen_growing);
    assert!(power(&s) >= start + 8, "{start} -> {}", power(&s));
    // Reads move steps too: a read-only phase finishes the growths.
    for _ in 0..4 {
        for j in 0..i {
            s.get(format!("k{j}").as_bytes(), None, |_| ());
        }
    }
    let st = s.stats();
    assert!(!st.hash_is_expanding);
    assert_eq!(st.hash_bytes as usize, 4 << st.hash_power_level);
}

/// A page handed to another shard costs the giver its coldest items, not
/// the newest ones that happened to sit on its newest page: the items on
/// that page move to chunks freed at the LRU tail.
#[test]
fn a_handed_over_page_costs_the_giver_its_coldest_items() {
    let limit = 2 * MEGABYTE;
    let s = store(limit, 8, true);
    let value = [3u8; 100];
    let mut order: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 8];
    for k in keys_in(&s, 0, true, 40_000, "old") {
        s.store(StoreMode::Set, &k, 0, 0, &value);
        order[shard_of(&s, &k)].push(k);
    }
    for k in keys_in(&s, 0, false, 20_000, "new") {
        s.store(StoreMode::Set, &k, 0, 0, &value);
    }
    assert!(s.stats().reassign_rescues > 0, "items were moved off handed-over pages");
    for (j, keys) in order.iter().enumerate().skip(1) {
        // peek leaves the LRU alone: what is left is a suffix of the
        // shard's writes, newest last.
        let present: Vec<bool> = keys.iter().map(|k| s.peek(k).is_some()).collect();
        let first = present.iter().position(|&p| p).unwrap_or(present.len());
        assert!(present[first..].iter().all(|&p| p), "shard {j} lost an item newer than one it kept");
        assert!(first > 0, "shard {j} gave memory");
    }
    within_budget(&s, limit);
    // Every item still reads back whole after its move.
    for keys in &order {
        for k in keys {
            if let Some(v) = s.get(k, None, |it| it.value.to_vec()) {
                assert_eq!(v, value);
            }
        }
    }
}

/// Threads writing and reading mixed sizes on a small many-shard cache
/// (values up to `largest` bytes): pages change shards under them all the
/// time (items moved, tails evicted, never a wait on a second lock), and a
/// read only ever sees its own key's whole value, while the budget holds.
fn concurrent_mixed_writers(limit: usize, largest: usize) -> StoreStats {
    let s = Arc::new(store(limit, 8, true));
    let sizes: Vec<usize> = [10, 100, 400, 1500, 6000, 20_000].into_iter().filter(|&n| n <= largest).collect();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (s, sizes) = (s.clone(), sizes.clone());
            std::thread::spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 1);
                let (mut hits, mut stored) = (0u64, 0u64);
                for _ in 0..20_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = x % 3000;
                    let key = format!("k{k}");
                    if (x >> 32).is_multiple_of(3) {
                        let len = sizes[(x >> 8) as usize % sizes.len()];
                        let fill = (k % 251) as u8;
                        let mut v = vec![fill; len];
                        v[..8].copy_from_slice(&k.to_le_bytes());
                        stored += u64::from(s.store(StoreMode::Set, key.as_bytes(), 0, 0, &v) == StoreOutcome::Stored);
                    } else if let Some(ok) = s.get(key.as_bytes(), None, |it| {
                        it.value.len() >= 10
                            && it.value[..8] == k.to_le_bytes()
                            && it.value[8..].iter().all(|&b| b == (k % 251) as u8)
                    }) {
                        assert!(ok, "a read of {key} saw another value");
                        hits += 1;
                    }
                }
                (hits, stored)
            })
        })
        .collect();
    let (mut hits, mut stored) = (0, 0);
    for h in threads {
        let (a, b) = h.join().expect("writer thread");
        hits += a;
        stored += b;
    }
    assert!(stored > 10_000 && hits > 0, "stored {stored}, hits {hits}");
    within_budget(&s, limit);
    s.stats()
}

#[test]
fn concurrent_writers_read_only_whole_values_of_their_own_key() {
    // 1 MB pages for 20 KB values on -m 1: pages change shards and classes
    // on almost every large write. Pages up to 512 KB on -m 4: shards hand
    // pages over with their items. Whether a given page move happens, or
    // rescues an item, depends on which thread got which lock first, so
    // only integrity is checked here; the moves and rescues themselves are
    // checked single-threaded above.
    concurrent_mixed_writers(MEGABYTE, 20_000);
    concurrent_mixed_writers(4 * MEGABYTE, 6000);
}

/// memcached's issue 14: items that expired are reused before the budget
/// grows. Here the new keys all fall in a shard that holds no page of
/// their class, while every other shard holds a page of that class whose
/// items expired: it takes one of those pages instead of a fresh one.
#[test]
fn a_page_of_expired_items_in_another_shard_is_reused_before_a_fresh_one() {
    let s = store(64 * MEGABYTE, 8, true);
    let value = vec![b'B'; 66_560];
    for j in 1..8 {
        let k = keys_in(&s, j, false, 1, "old").pop().unwrap();
        assert_eq!(s.store(StoreMode::Set, &k, 0, 2, &value), StoreOutcome::Stored);
    }
    let before = s.stats().total_malloced;
    assert_eq!(before as usize, 7 * s.sizes().page_bytes(s.class_of(4, 66_560, 0)));
    s.clock().advance(4);
    let mine = keys_in(&s, 0, false, 7, "new");
    for k in &mine {
        assert_eq!(s.store(StoreMode::Set, k, 0, 0, &value), StoreOutcome::Stored);
    }
    let st = s.stats();
    assert_eq!(st.total_malloced, before, "no page was taken from the budget");
    assert!(st.reclaimed > 0 && st.evictions == 0, "reclaimed {} evicted {}", st.reclaimed, st.evictions);
    assert!(mine.iter().all(|k| s.get(k, None, |it| it.value.len()) == Some(66_560)));
    within_budget(&s, 64 * MEGABYTE);
    // A page with a live item on it stays where it is.
    let s = store(64 * MEGABYTE, 2, true);
    let live = keys_in(&s, 1, false, 1, "live").pop().unwrap();
    assert_eq!(s.store(StoreMode::Set, &live, 0, 0, &value), StoreOutcome::Stored);
    let k = keys_in(&s, 0, false, 1, "new").pop().unwrap();
    assert_eq!(s.store(StoreMode::Set, &k, 0, 0, &value), StoreOutcome::Stored);
    assert_eq!(s.stats().total_malloced as usize, 2 * s.sizes().page_bytes(s.class_of(4, 66_560, 0)));
    assert!(s.peek(&live).is_some());
}

/// The same within one shard: a class whose page is full of expired items
/// reclaims them at its LRU tail before it takes a fresh page.
#[test]
fn expired_items_at_the_tail_are_reused_before_a_fresh_page() {
    let s = store(64 * MEGABYTE, 1, true);
    let value = vec![b'B'; 66_560];
    let id = s.class_of(4, 66_560, 0);
    let per_page = s.sizes().page_bytes(id) / s.sizes().chunk_size(id);
    for i in 0..per_page {
        assert_eq!(s.store(StoreMode::Set, format!("old{i}").as_bytes(), 0, 2, &value), StoreOutcome::Stored);
    }
    let before = s.stats().total_malloced;
    s.clock().advance(4);
    for i in 0..per_page {
        assert_eq!(s.store(StoreMode::Set, format!("new{i}").as_bytes(), 0, 0, &value), StoreOutcome::Stored);
    }
    let st = s.stats();
    assert_eq!(st.total_malloced, before);
    assert_eq!((st.reclaimed, st.evictions), (per_page as u64, 0));
}

/// A page whose few live items fit in free chunks of its class's other
/// pages is handed to a shard that needs a page, its items moved there
/// (nothing evicted), before the budget grows.
#[test]
fn a_page_whose_items_fit_elsewhere_is_compacted_and_handed_over() {
    let s = store(64 * MEGABYTE, 2, true);
    let value = vec![b'B'; 66_560];
    let id = s.class_of(4, 66_560, 0);
    let per_page = s.sizes().page_bytes(id) / s.sizes().chunk_size(id);
    assert!(per_page > 1);
    let first = keys_in(&s, 1, false, per_page, "first");
    for k in &first {
        assert_eq!(s.store(StoreMode::Set, k, 0, 0, &value), StoreOutcome::Stored);
    }
    let kept = keys_in(&s, 1, false, 1, "kept").pop().unwrap();
    assert_eq!(s.store(StoreMode::Set, &kept, 0, 0, &value), StoreOutcome::Stored);
    let before = s.stats().total_malloced;
    assert_eq!(before as usize, 2 * s.sizes().page_bytes(id));
    for k in &first {
        assert!(s.delete(k));
    }
    let mine = keys_in(&s, 0, false, 1, "mine").pop().unwrap();
    assert_eq!(s.store(StoreMode::Set, &mine, 0, 0, &value), StoreOutcome::Stored);
    let st = s.stats();
    assert_eq!(st.total_malloced, before, "no page was taken from the budget");
    assert_eq!((st.evictions, st.reassign_rescues), (0, 1));
    assert_eq!(s.get(&kept, None, |it| it.value.to_vec()), Some(value.clone()), "the moved item reads back whole");
    assert_eq!(s.get(&mine, None, |it| it.value.len()), Some(66_560));
    within_budget(&s, 64 * MEGABYTE);
}
