//! Store tests: every operation's outcomes, LRU and eviction, expiry and
//! flush on a manual clock, and a model check under random operations with
//! TTLs. The meta operations are tested beside them, in `meta/tests.rs`.

use super::*;

fn store_with(memory_pages: usize, page: usize, evictions: bool) -> (Store, Arc<Clock>) {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    let cfg = StoreConfig {
        memory_limit: memory_pages * page,
        item_size_max: page,
        evictions,
        shards: 1,
        hashpower: 4,
        ..StoreConfig::default()
    };
    (Store::new(&cfg, clock.clone()), clock)
}

fn small() -> (Store, Arc<Clock>) {
    store_with(64, 64 * 1024, true)
}

fn get(s: &Store, k: &[u8]) -> Option<Vec<u8>> {
    s.get(k, None, |it| it.value.to_vec())
}

fn gets(s: &Store, k: &[u8]) -> Option<(u32, u64, Vec<u8>)> {
    s.get(k, None, |it| (it.flags, it.cas, it.value.to_vec()))
}

#[test]
fn set_then_get_returns_value_and_flags() {
    let (s, _) = small();
    assert_eq!(s.store(StoreMode::Set, b"k", 42, 0, b"hello"), StoreOutcome::Stored);
    let (flags, cas, v) = gets(&s, b"k").unwrap();
    assert_eq!((flags, v.as_slice()), (42, &b"hello"[..]));
    assert_ne!(cas, 0);
    assert_eq!(get(&s, b"other"), None);
}

#[test]
fn set_replaces_and_frees_the_old_chunk() {
    let (s, _) = small();
    s.store(StoreMode::Set, b"k", 0, 0, b"one");
    s.store(StoreMode::Set, b"k", 0, 0, &[b'x'; 500]);
    assert_eq!(get(&s, b"k").unwrap(), vec![b'x'; 500]);
    let st = s.stats();
    assert_eq!(st.curr_items, 1);
    assert_eq!(st.total_items, 2);
    assert_eq!(st.bytes as usize, item::total_len(1, 500, 0));
}

#[test]
fn add_replace_append_prepend_follow_memcached() {
    let (s, _) = small();
    assert_eq!(s.store(StoreMode::Replace, b"k", 0, 0, b"x"), StoreOutcome::NotStored);
    assert_eq!(s.store(StoreMode::Append(0), b"k", 0, 0, b"x"), StoreOutcome::NotStored);
    assert_eq!(s.store(StoreMode::Prepend(0), b"k", 0, 0, b"x"), StoreOutcome::NotStored);
    assert_eq!(s.store(StoreMode::Add, b"k", 7, 0, b"mid"), StoreOutcome::Stored);
    assert_eq!(s.store(StoreMode::Add, b"k", 0, 0, b"no"), StoreOutcome::NotStored);
    assert_eq!(s.store(StoreMode::Append(0), b"k", 99, 0, b">"), StoreOutcome::Stored);
    assert_eq!(s.store(StoreMode::Prepend(0), b"k", 99, 0, b"<"), StoreOutcome::Stored);
    let (flags, _, v) = gets(&s, b"k").unwrap();
    assert_eq!(v, b"<mid>");
    assert_eq!(flags, 7, "append/prepend keep the original flags");
    assert_eq!(s.store(StoreMode::Replace, b"k", 1, 0, b"new"), StoreOutcome::Stored);
    assert_eq!(get(&s, b"k").unwrap(), b"new");
}

#[test]
fn cas_succeeds_once_per_token() {
    let (s, _) = small();
    assert_eq!(s.store(StoreMode::Cas(1), b"k", 0, 0, b"v"), StoreOutcome::NotFound);
    s.store(StoreMode::Set, b"k", 0, 0, b"v");
    let (_, token, _) = gets(&s, b"k").unwrap();
    assert_eq!(s.store(StoreMode::Cas(token + 1), b"k", 0, 0, b"bad"), StoreOutcome::Exists);
    assert_eq!(s.store(StoreMode::Cas(token), b"k", 0, 0, b"good"), StoreOutcome::Stored);
    assert_eq!(s.store(StoreMode::Cas(token), b"k", 0, 0, b"again"), StoreOutcome::Exists);
    assert_eq!(get(&s, b"k").unwrap(), b"good");
    let (_, token2, _) = gets(&s, b"k").unwrap();
    assert!(token2 > token);
}

#[test]
fn class_cmd_set_counts_every_storage_command_stored_or_not() {
    let (s, _) = small();
    let id = s.sizes().class_for(item::total_len(1, 1, 0)).unwrap();
    let cmd_set = |s: &Store| s.class_stats()[usize::from(id) - 1].counters.cmd_set;
    assert_eq!(s.store(StoreMode::Cas(1), b"k", 0, 0, b"1"), StoreOutcome::NotFound);
    assert_eq!(s.store(StoreMode::Replace, b"k", 0, 0, b"1"), StoreOutcome::NotStored);
    assert_eq!(s.store(StoreMode::Set, b"k", 0, 0, b"1"), StoreOutcome::Stored);
    assert_eq!(s.store(StoreMode::Add, b"k", 0, 0, b"2"), StoreOutcome::NotStored);
    assert_eq!(s.store(StoreMode::Cas(u64::MAX), b"k", 0, 0, b"3"), StoreOutcome::Exists);
    assert_eq!(cmd_set(&s), 5, "as memcached's slab cmd_set");
    // incr/decr are not storage commands, even when they rewrite the item.
    assert!(matches!(s.delta(b"k", true, 100), DeltaOutcome::Value(101, _, _)));
    assert_eq!(cmd_set(&s), 5);
}

#[test]
fn disabled_cas_reads_zero() {
    let clock = Arc::new(Clock::manual(0));
    let s = Store::new(&StoreConfig { use_cas: false, ..StoreConfig::default() }, clock);
    s.store(StoreMode::Set, b"k", 0, 0, b"v");
    assert_eq!(gets(&s, b"k").unwrap().1, 0);
    assert_eq!(s.store(StoreMode::Cas(0), b"k", 0, 0, b"w"), StoreOutcome::Stored);
}

#[test]
fn delete_and_touch() {
    let (s, clock) = small();
    assert!(!s.delete(b"k"));
    assert!(!s.touch(b"k", 10));
    s.store(StoreMode::Set, b"k", 0, 5, b"v");
    assert!(s.touch(b"k", 100));
    clock.advance(50);
    assert_eq!(get(&s, b"k").unwrap(), b"v", "touch extended the TTL");
    assert!(s.delete(b"k"));
    assert!(!s.delete(b"k"));
    assert_eq!(s.stats().curr_items, 0);
}

#[test]
fn peek_and_peek_item_see_the_same_live_item_and_change_nothing() {
    let (s, clock) = small();
    assert_eq!(s.store(StoreMode::Set, b"k", 42, 10, b"hello"), StoreOutcome::Stored);
    let figures = || format!("{:?}", s.class_stats());
    // A second passes, so a peek that touched the item's last access
    // would change the LRU tail's age.
    clock.advance(1);
    let before = figures();
    let p = s.peek(b"k").unwrap();
    assert_eq!((p.class, p.value_len, p.flags), (s.class_of(1, 5, 42), 5, 42));
    assert_ne!(p.exptime, 0);
    let seen =
        s.peek_item(b"k", |it, exptime, stale| (it.key.to_vec(), it.flags, it.cas, it.value.to_vec(), exptime, stale));
    assert_eq!(figures(), before, "peeks leave counters and the LRU alone");
    let cas = gets(&s, b"k").unwrap().1;
    assert_ne!(figures(), before, "a get is counted");
    assert_eq!(seen, Some((b"k".to_vec(), 42, cas, b"hello".to_vec(), p.exptime, false)));
    // an item stored with an older CAS token is stale; both still see it
    assert_eq!(s.store(StoreMode::Set, b"k", 42, 10, b"newer"), StoreOutcome::Stored);
    assert_eq!(s.store(StoreMode::CasInvalidate(cas), b"k", 42, 10, b"older"), StoreOutcome::Stored);
    assert_eq!(s.peek_item(b"k", |it, _, stale| (it.value.to_vec(), stale)), Some((b"older".to_vec(), true)));
    assert!(s.peek(b"k").is_some());
    // expired or absent: neither sees anything
    clock.advance(10);
    assert!(s.peek(b"k").is_none() && s.peek_item(b"k", |_, _, _| ()).is_none());
    assert!(s.peek(b"absent").is_none() && s.peek_item(b"absent", |_, _, _| ()).is_none());
}

#[test]
fn expiry_follows_the_clock() {
    let (s, clock) = small();
    s.store(StoreMode::Set, b"ttl", 0, 10, b"v");
    s.store(StoreMode::Set, b"forever", 0, 0, b"v");
    s.store(StoreMode::Set, b"neg", 0, -1, b"v");
    assert_eq!(get(&s, b"neg"), None, "negative exptime is expired at once");
    clock.advance(9);
    assert!(get(&s, b"ttl").is_some());
    clock.advance(1);
    assert_eq!(get(&s, b"ttl"), None);
    assert!(get(&s, b"forever").is_some());
    assert_eq!(s.stats().get_expired, 2);
    // absolute unix exptime
    let at = clock.unix_now() as i64 + 20;
    s.store(StoreMode::Set, b"abs", 0, at, b"v");
    clock.advance(19);
    assert!(get(&s, b"abs").is_some());
    clock.advance(1);
    assert_eq!(get(&s, b"abs"), None);
}

#[test]
fn expired_items_are_not_replaced_by_add_semantics() {
    let (s, clock) = small();
    s.store(StoreMode::Set, b"k", 0, 1, b"old");
    clock.advance(5);
    assert_eq!(s.store(StoreMode::Add, b"k", 0, 0, b"new"), StoreOutcome::Stored);
    assert_eq!(s.store(StoreMode::Replace, b"gone", 0, 0, b"x"), StoreOutcome::NotStored);
    assert_eq!(get(&s, b"k").unwrap(), b"new");
}

#[test]
fn a_write_over_its_own_dead_item_reclaims_it() {
    let (s, clock) = small();
    s.store(StoreMode::Set, b"exp", 0, 1, b"v");
    s.store(StoreMode::Set, b"fl", 0, 0, b"v");
    s.store(StoreMode::Set, b"read", 0, 1, b"v");
    clock.advance(2);
    assert_eq!(s.store(StoreMode::Set, b"exp", 0, 0, b"new"), StoreOutcome::Stored);
    assert_eq!(s.stats().reclaimed, 1, "the expired item's memory went to the new one");
    assert_eq!(get(&s, b"read"), None);
    let st = s.stats();
    assert_eq!((st.reclaimed, st.get_expired), (1, 1), "a read that finds a dead item does not reclaim it");

    s.flush_all(0);
    assert_eq!(s.store(StoreMode::Replace, b"fl", 0, 0, b"x"), StoreOutcome::NotStored, "flushed: nothing to replace");
    assert_eq!(s.store(StoreMode::Add, b"exp", 0, 0, b"x"), StoreOutcome::Stored, "flushed: add stores");
    let st = s.stats();
    assert_eq!((st.reclaimed, st.get_flushed, st.curr_items), (3, 0, 1));
}

#[test]
fn crawler_reclaims_dead_items_without_traffic() {
    let (s, clock) = small();
    for i in 0..100 {
        s.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, if i % 2 == 0 { 5 } else { 0 }, b"v");
    }
    clock.advance(10);
    let mut reclaimed = 0;
    for _ in 0..10 {
        reclaimed += s.crawl(64);
    }
    assert_eq!(reclaimed, 50);
    let st = s.stats();
    assert_eq!(st.curr_items, 50);
    assert_eq!(st.crawler_reclaimed, 50);
    assert_eq!(st.expired_unfetched, 50);
}

#[test]
fn flush_all_now_and_with_delay() {
    let (s, clock) = small();
    s.store(StoreMode::Set, b"a", 0, 0, b"1");
    s.flush_all(0);
    assert_eq!(get(&s, b"a"), None);
    assert_eq!(s.stats().get_flushed, 1);
    s.store(StoreMode::Set, b"b", 0, 0, b"2");
    assert!(get(&s, b"b").is_some(), "items stored after a flush live");

    s.flush_all(10);
    clock.advance(9);
    assert!(get(&s, b"b").is_some(), "not yet");
    clock.advance(1);
    assert_eq!(get(&s, b"b"), None, "delay passed");
    s.store(StoreMode::Set, b"c", 0, 0, b"3");
    clock.advance(100);
    assert!(get(&s, b"c").is_some(), "a delayed flush fires once");
}

#[test]
fn incr_decr_edges() {
    let (s, _) = small();
    assert_eq!(s.delta(b"n", true, 1), DeltaOutcome::NotFound);
    s.store(StoreMode::Set, b"n", 0, 0, b"10");
    assert!(matches!(s.delta(b"n", true, 5), DeltaOutcome::Value(15, _, _)));
    assert!(matches!(s.delta(b"n", false, 100), DeltaOutcome::Value(0, _, _)), "decr clamps at 0");
    assert_eq!(get(&s, b"n").unwrap(), b"0 ", "shorter result is space padded in place");
    s.store(StoreMode::Set, b"m", 0, 0, b"18446744073709551615");
    assert!(matches!(s.delta(b"m", true, 1), DeltaOutcome::Value(0, _, _)), "incr wraps");
    assert_eq!(get(&s, b"m").unwrap(), b"0                   ");
    s.store(StoreMode::Set, b"g", 3, 0, b"99");
    assert!(matches!(s.delta(b"g", true, 1), DeltaOutcome::Value(100, _, _)));
    assert_eq!(gets(&s, b"g").unwrap().2, b"100", "longer result is a new item");
    assert_eq!(gets(&s, b"g").unwrap().0, 3, "and keeps its flags");
    s.store(StoreMode::Set, b"s", 0, 0, b" 12  ");
    assert!(matches!(s.delta(b"s", true, 1), DeltaOutcome::Value(13, _, _)));
    for bad in [&b"abc"[..], b"", b"-5", b"12abc", b"1234567890123456789012345", b"18446744073709551616"] {
        s.store(StoreMode::Set, b"x", 0, 0, bad);
        assert_eq!(s.delta(b"x", true, 1), DeltaOutcome::NonNumeric, "{:?}", bad);
    }
}

#[test]
fn incr_changes_cas() {
    let (s, _) = small();
    s.store(StoreMode::Set, b"n", 0, 0, b"1");
    let c1 = gets(&s, b"n").unwrap().1;
    s.delta(b"n", true, 1);
    assert_ne!(gets(&s, b"n").unwrap().1, c1);
}

#[test]
fn too_large_items_are_refused_and_a_failed_set_drops_the_old_value() {
    let (s, _) = small();
    s.store(StoreMode::Set, b"k", 0, 0, b"old");
    let big = vec![0u8; 64 * 1024];
    assert_eq!(s.store(StoreMode::Set, b"k", 0, 0, &big), StoreOutcome::TooLarge);
    assert_eq!(get(&s, b"k"), None);
    let fits = vec![0u8; 64 * 1024 - item::HEADER_LEN - 1];
    assert_eq!(s.store(StoreMode::Set, b"k", 0, 0, &fits), StoreOutcome::Stored);
}

#[test]
fn lru_evicts_least_recently_used_first() {
    // One 64 KiB page of class 1 holds 819 chunks of 80 bytes.
    let (s, _) = store_with(1, 64 * 1024, true);
    let per_page = (64 * 1024 / 80) as usize;
    for i in 0..per_page {
        assert_eq!(s.store(StoreMode::Set, format!("k{i:04}").as_bytes(), 0, 0, b"v"), StoreOutcome::Stored);
    }
    assert_eq!(s.stats().evictions, 0);
    // Read the oldest twice (active) and the next once (fetched only, as
    // memcached, which needs two hits to make an item active).
    assert!(get(&s, b"k0000").is_some());
    assert!(get(&s, b"k0000").is_some());
    assert!(get(&s, b"k0001").is_some());
    s.store(StoreMode::Set, b"new1", 0, 0, b"v");
    assert_eq!(get(&s, b"k0001"), None, "read once: still the least recently used");
    assert!(get(&s, b"k0000").is_some(), "used again since it was stored: survives");
    s.store(StoreMode::Set, b"new2", 0, 0, b"v");
    assert_eq!(get(&s, b"k0002"), None);
    assert!(get(&s, b"k0000").is_some());
    let st = s.stats();
    assert_eq!(st.evictions, 2);
    assert_eq!(st.evicted_unfetched, 1);
    assert_eq!(st.curr_items as usize, per_page);
}

#[test]
fn dead_tail_items_are_reclaimed_before_live_ones_are_evicted() {
    let (s, clock) = store_with(1, 64 * 1024, true);
    let per_page = 64 * 1024 / 80;
    s.store(StoreMode::Set, b"short", 0, 1, b"v");
    for i in 1..per_page {
        s.store(StoreMode::Set, format!("k{i:04}").as_bytes(), 0, 0, b"v");
    }
    clock.advance(2);
    s.store(StoreMode::Set, b"new", 0, 0, b"v");
    let st = s.stats();
    assert_eq!((st.evictions, st.reclaimed), (0, 1));
}

#[test]
fn without_evictions_a_full_cache_answers_out_of_memory() {
    let (s, _) = store_with(1, 64 * 1024, false);
    let per_page = 64 * 1024 / 80;
    for i in 0..per_page {
        assert_eq!(s.store(StoreMode::Set, format!("k{i:04}").as_bytes(), 0, 0, b"v"), StoreOutcome::Stored);
    }
    assert_eq!(s.store(StoreMode::Set, b"more", 0, 0, b"v"), StoreOutcome::OutOfMemory);
    assert!(get(&s, b"k0000").is_some(), "nothing was evicted");
    assert_eq!(s.class_stats()[0].counters.outofmemory, 1);
    // A class's cmd_set leaves out stores that found no memory, and counts
    // those that needed none (an add that finds the item).
    let cmd_set = || s.class_stats()[0].counters.cmd_set;
    assert_eq!(cmd_set(), per_page as u64);
    assert_eq!(s.store(StoreMode::Append(0), b"k0000", 0, 0, b"v"), StoreOutcome::OutOfMemory);
    assert_eq!(cmd_set(), per_page as u64);
    assert_eq!(s.store(StoreMode::Add, b"k0000", 0, 0, b"v"), StoreOutcome::NotStored);
    assert_eq!(cmd_set(), per_page as u64 + 1);
}

#[test]
fn memory_stays_within_the_limit_and_a_starved_class_takes_a_page() {
    let (s, _) = store_with(4, 64 * 1024, true);
    for i in 0..20_000 {
        s.store(StoreMode::Set, format!("small{i}").as_bytes(), 0, 0, b"v");
    }
    let st = s.stats();
    assert!(st.pages <= 4);
    assert!(st.bytes <= 4 * 64 * 1024);
    assert!(st.evictions > 0);
    // A class that owns no page still gets room, by taking one.
    let big = vec![7u8; 10_000];
    assert_eq!(s.store(StoreMode::Set, b"big", 0, 0, &big), StoreOutcome::Stored);
    assert_eq!(get(&s, b"big").unwrap(), big);
    assert!(s.stats().pages <= 4);
    // and the small class still works afterwards
    assert_eq!(s.store(StoreMode::Set, b"small-again", 0, 0, b"v"), StoreOutcome::Stored);
    assert!(get(&s, b"small-again").is_some());
}

#[test]
fn pages_move_from_a_cold_class_to_one_that_evicts() {
    // 16 pages of 64 KiB in one shard; 100-byte values take all of them.
    let (s, clock) = store_with(16, 64 * 1024, true);
    for i in 0..20_000 {
        s.store(StoreMode::Set, format!("a{i:05}").as_bytes(), 0, 0, &[1u8; 100]);
    }
    let a = usize::from(s.sizes().class_for(item::total_len(6, 100, 0)).unwrap()) - 1;
    assert_eq!(s.class_stats()[a].total_pages, 16);
    // Later the values grow by a few bytes: a class of their own, with 2000
    // keys rewritten every second. Without moving pages by age it would keep
    // the one page a starved class takes, and lose most of its keys.
    clock.advance(100);
    let b = usize::from(s.sizes().class_for(item::total_len(5, 110, 0)).unwrap()) - 1;
    assert_ne!(a, b);
    for _ in 0..20 {
        for i in 0..2000 {
            s.store(StoreMode::Set, format!("b{i:04}").as_bytes(), 0, 0, &[2u8; 110]);
        }
        clock.advance(1);
    }
    let cs = s.class_stats();
    let needed = (2000 * cs[b].chunk_size).div_ceil(64 * 1024) as u64;
    assert!(cs[b].total_pages >= needed, "{} pages of {needed}", cs[b].total_pages);
    assert_eq!(cs[a].total_pages + cs[b].total_pages, 16);
    assert!(s.stats().slabs_moved >= needed - 1);
    assert!((0..2000).all(|i| get(&s, format!("b{i:04}").as_bytes()).is_some()), "all of the new keys stay");
    assert!(cs[a].used_chunks > 0, "the old class keeps what its remaining pages hold");
    // `stats reset` zeroes the moves and the crawler steps, as memcached's
    // zeroes `slabs_moved` and `lru_crawler_starts`.
    s.crawl(64);
    assert!(s.stats().lru_crawler_starts > 0);
    s.reset_stats();
    let st = s.stats();
    assert_eq!((st.slabs_moved, st.lru_crawler_starts), (0, 0));
}

#[test]
fn a_class_too_small_to_make_up_a_page_is_not_emptied_for_nothing() {
    // -m 2 MiB of 64 KiB pages, shared by four small classes: none holds
    // the 1 MiB that a page of the 100 KB item's class needs.
    let (s, _) = store_with(2, 1 << 20, true);
    for i in 0..20_000 {
        let len = [100, 200, 300, 400][i % 4];
        s.store(StoreMode::Set, format!("k{i:05}").as_bytes(), 0, 0, &vec![1u8; len]);
    }
    let before = s.stats();
    let largest = s.class_stats().iter().map(|c| c.total_pages * 64 * 1024).max().unwrap();
    assert!(largest < 1 << 20, "{largest}");
    assert_eq!(s.store(StoreMode::Set, b"big", 0, 0, &vec![2u8; 100_000]), StoreOutcome::OutOfMemory);
    let after = s.stats();
    assert_eq!((after.evictions, after.pages, after.curr_items), (before.evictions, before.pages, before.curr_items));
}

#[test]
fn class_stats_and_dump_report_items() {
    let (s, _) = small();
    s.store(StoreMode::Set, b"a", 0, 0, b"1");
    s.store(StoreMode::Set, b"b", 0, 0, &[0u8; 100]);
    let cs = s.class_stats();
    assert_eq!(cs[0].used_chunks, 1);
    assert_eq!(cs[0].total_pages, 1);
    let id = s.sizes().class_for(item::total_len(1, 100, 0)).unwrap();
    assert_eq!(cs[usize::from(id) - 1].used_chunks, 1);
    let dump = s.dump_class(1, 10);
    assert_eq!(dump, vec![(b"a".to_vec(), 1, 0)]);
}

#[test]
fn memory_limit_can_be_raised_at_runtime() {
    let (s, _) = store_with(1, 64 * 1024, false);
    let per_page = 64 * 1024 / 80;
    for i in 0..per_page {
        s.store(StoreMode::Set, format!("k{i:04}").as_bytes(), 0, 0, b"v");
    }
    assert_eq!(s.store(StoreMode::Set, b"x", 0, 0, b"v"), StoreOutcome::OutOfMemory);
    s.set_memory_limit(2 * 64 * 1024);
    assert_eq!(s.store(StoreMode::Set, b"x", 0, 0, b"v"), StoreOutcome::Stored);
    assert_eq!(s.stats().limit_maxbytes, 2 * 64 * 1024);
}

/// What the model knows of a key: the latest value stored and when it
/// dies, in the clock's relative seconds (`None`: never).
struct Entry {
    value: Vec<u8>,
    dies_at: Option<u32>,
}

impl Entry {
    fn live(&self, now: u32) -> bool {
        self.dies_at.is_none_or(|t| now < t)
    }
}

/// What a model run saw, for checking that it exercised what it meant to.
struct ModelRun {
    stats: StoreStats,
    /// Reads that returned a value.
    hits: u64,
    /// Reads of a key whose latest value the model saw expire.
    expired_reads: u64,
    /// Appends and touches that succeeded: they keep or set an exptime.
    appends: u64,
    touches: u64,
    /// Relative seconds the clock moved.
    seconds: u32,
}

/// Random operations against the store and a model, with TTLs on a manual
/// clock: `pages` pages of 16 KiB, values up to `max_len` bytes. A cache
/// may forget, so the check is: a read returns nothing or exactly the
/// latest value stored, and only while that value is unexpired; never an
/// older, a foreign or an expired one. Writes that need a live item
/// (append, touch, cas) must fail on an expired one, and CAS never
/// succeeds with an old token.
fn run_model(pages: usize, max_len: u64) -> ModelRun {
    use std::collections::HashMap;
    let (s, clock) = store_with(pages, 16 * 1024, true);
    let start = clock.now();
    let mut model: HashMap<Vec<u8>, Entry> = HashMap::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut hits, mut expired_reads, mut appends, mut touches) = (0u64, 0u64, 0u64, 0u64);
    for step in 0..60_000u64 {
        let now = clock.now();
        // The key and the operation from separate draws: from one, every
        // key would get only the operations congruent with it.
        let key = format!("key{}", rnd() % 300).into_bytes();
        let op = rnd() % 9;
        let len = (rnd() % max_len) as usize;
        let value: Vec<u8> = (0..len).map(|i| (step as usize + i) as u8).collect();
        // A protocol exptime and when the model says it dies: never, a few
        // seconds, already expired, or an absolute unix time.
        let t = rnd();
        let secs = (t >> 8) % 12 + 1;
        let (exptime, dies_at) = match t % 8 {
            0 | 1 => (0, None),
            2 => (-1, Some(now)),
            3 => ((clock.unix_now() + secs) as i64, Some(now + secs as u32)),
            _ => (secs as i64, Some(now + secs as u32)),
        };
        let expired = model.get(&key).is_some_and(|e| !e.live(now));
        if expired {
            model.remove(&key);
        }
        match op {
            0 | 1 => {
                if s.store(StoreMode::Set, &key, 0, exptime, &value) == StoreOutcome::Stored {
                    model.insert(key, Entry { value, dies_at });
                } else {
                    model.remove(&key);
                }
            }
            2 => {
                let tail = &value[..len.min(50)];
                if s.store(StoreMode::Append(0), &key, 0, 0, tail) == StoreOutcome::Stored {
                    let m = model.get_mut(&key).expect("append only succeeds on a live key");
                    m.value.extend_from_slice(tail); // and keeps its exptime
                    appends += 1;
                } else {
                    model.remove(&key);
                }
            }
            3 => {
                s.delete(&key);
                model.remove(&key);
            }
            4 => {
                if let Some((_, cas, _)) = gets(&s, &key) {
                    let out = s.store(StoreMode::Cas(cas), &key, 0, exptime, &value);
                    assert_ne!(out, StoreOutcome::Exists, "no one else wrote in between");
                    if out == StoreOutcome::Stored {
                        model.insert(key.clone(), Entry { value: value.clone(), dies_at });
                    }
                    // a stale token never succeeds
                    assert_ne!(s.store(StoreMode::Cas(cas), &key, 0, 0, b"stale"), StoreOutcome::Stored);
                }
            }
            5 => {
                if s.touch(&key, exptime) {
                    let m = model.get_mut(&key).expect("touch only succeeds on a live key");
                    m.dies_at = dies_at;
                    touches += 1;
                } else {
                    model.remove(&key);
                }
            }
            // One step in 54 moves the clock 1 or 2 s: with 300 keys, a key
            // is used every ~8 s, so TTLs of 1..=12 s run out between uses
            // and while it is being used.
            6 if rnd() % 6 == 0 => clock.advance((rnd() % 2 + 1) as u32),
            _ => match get(&s, &key) {
                Some(v) => {
                    let m = model.get(&key);
                    assert!(m.is_some(), "step {step}: a value for a key that is expired or never stored");
                    assert_eq!(Some(&v), m.map(|m| &m.value), "step {step}: stale or foreign value");
                    hits += 1;
                }
                None => {
                    model.remove(&key);
                    expired_reads += u64::from(expired);
                }
            },
        }
    }
    ModelRun { stats: s.stats(), hits, expired_reads, appends, touches, seconds: clock.now() - start }
}

/// Three pages for values up to 3000 bytes: most values are evicted, some
/// expire first.
#[test]
fn model_check_reads_are_latest_or_absent() {
    let run = run_model(3, 3000);
    assert!(run.stats.pages <= 3);
    assert!(run.stats.evictions > 10_000, "the test exercised eviction: {}", run.stats.evictions);
    assert!(run.hits > 100, "{} hits", run.hits);
}

/// Room for every key: values die by expiry, not eviction, so reads meet
/// items that are in the store but expired.
#[test]
fn model_check_reads_never_return_an_expired_value() {
    let run = run_model(64, 200);
    assert!(run.seconds > 500, "the clock moved {} s", run.seconds);
    assert!(run.appends > 500 && run.touches > 500, "{} appends, {} touches", run.appends, run.touches);
    assert!(run.stats.get_expired > 1000, "reads found expired items: {}", run.stats.get_expired);
    assert!(
        run.hits > 1000 && run.expired_reads > 1000,
        "{} hits, {} reads of expired keys",
        run.hits,
        run.expired_reads
    );
}

#[test]
fn binary_style_delta_creates_and_checks_cas() {
    let (s, _) = small();
    assert_eq!(s.delta_with(b"c", true, 5, 0, None, None), DeltaOutcome::NotFound);
    let DeltaOutcome::Value(10, cas, _) = s.delta_with(b"c", true, 5, 0, Some((10, 0)), None) else { panic!() };
    assert_eq!(get(&s, b"c").unwrap(), b"10", "created with the initial value, not incremented");
    assert_eq!(s.delta_with(b"c", true, 1, cas + 1, None, None), DeltaOutcome::Exists);
    assert!(matches!(s.delta_with(b"c", true, 1, cas, None, None), DeltaOutcome::Value(11, _, _)));
}

#[test]
fn delete_and_append_with_cas() {
    let (s, _) = small();
    let (_, cas) = s.store_cas(StoreMode::Set, b"k", 0, 0, b"v");
    assert_ne!(cas, 0);
    assert_eq!(s.store(StoreMode::Append(cas + 1), b"k", 0, 0, b"x"), StoreOutcome::Exists);
    let (out, cas2) = s.store_cas(StoreMode::Append(cas), b"k", 0, 0, b"x");
    assert_eq!(out, StoreOutcome::Stored);
    assert_eq!(s.delete_cas(b"k", cas), DeleteOutcome::Exists);
    assert_eq!(s.delete_cas(b"k", cas2), DeleteOutcome::Deleted);
    assert_eq!(s.delete_cas(b"k", 0), DeleteOutcome::NotFound);
}

/// Regression: with 8 shards of 8 pages each, 200 items of 4..800 bytes
/// spread over ~12 classes per shard exhausted the page budget and page
/// moves evicted 58 of them from a 64 MB cache (found by pylibmc's
/// set_multi). Pages now go to whichever shard needs them (`alloc.rs`).
#[test]
fn mixed_sizes_fill_without_evicting_while_memory_is_free() {
    let s = Store::new(&StoreConfig::default(), Arc::new(Clock::manual(0)));
    for i in 0..200usize {
        let v = vec![b'v'; 4 * (i + 1)];
        assert_eq!(s.store(StoreMode::Set, format!("m{i}").as_bytes(), 0, 0, &v), StoreOutcome::Stored);
    }
    for i in 0..200usize {
        assert_eq!(get(&s, format!("m{i}").as_bytes()).map(|v| v.len()), Some(4 * (i + 1)), "m{i}");
    }
    assert_eq!(s.stats().evictions, 0);
}

/// The `stats sizes` rows for items of these (key, value, flags) shapes.
fn size_rows(items: &[(usize, usize, u32)]) -> Vec<(usize, u64)> {
    let mut rows: Vec<(usize, u64)> = Vec::new();
    for &(k, v, f) in items {
        let size = item::total_len(k, v, f).div_ceil(SIZE_BUCKET_BYTES) * SIZE_BUCKET_BYTES;
        match rows.iter_mut().find(|r| r.0 == size) {
            Some(r) => r.1 += 1,
            None => rows.push((size, 1)),
        }
    }
    rows.sort();
    rows
}

#[test]
fn size_histogram_follows_set_replace_delete_and_append() {
    let (s, _) = small();
    assert_eq!(s.size_histogram(), None, "off until enabled");
    assert!(!s.tracks_sizes());
    s.enable_size_tracking().unwrap();
    assert!(s.tracks_sizes());
    assert_eq!(s.size_histogram(), Some(vec![]));
    s.store(StoreMode::Set, b"a", 0, 0, b"v");
    s.store(StoreMode::Set, b"b", 9, 0, &[b'x'; 100]);
    assert_eq!(s.size_histogram().unwrap(), size_rows(&[(1, 1, 0), (1, 100, 9)]));
    // Replacing moves the item to its new size; append rewrites it.
    s.store(StoreMode::Replace, b"a", 0, 0, &[b'y'; 300]);
    s.store(StoreMode::Append(0), b"b", 0, 0, b"zz");
    assert_eq!(s.size_histogram().unwrap(), size_rows(&[(1, 300, 0), (1, 102, 9)]));
    assert!(s.delete(b"a"));
    assert_eq!(s.size_histogram().unwrap(), size_rows(&[(1, 102, 9)]));
    // An in-place incr and a meta invalidation change the CAS, not the count.
    s.store(StoreMode::Set, b"n", 0, 0, b"10");
    s.delta(b"n", true, 5);
    s.delete_meta(b"n", MetaDelete { invalidate: true, ..MetaDelete::default() });
    assert_eq!(s.size_histogram().unwrap(), size_rows(&[(1, 102, 9), (1, 2, 0)]));
    s.disable_size_tracking();
    assert_eq!(s.size_histogram(), None);
}

#[test]
fn size_histogram_drops_expired_and_evicted_items_when_unlinked() {
    let (s, clock) = store_with(1, 64 * 1024, true);
    s.enable_size_tracking().unwrap();
    s.store(StoreMode::Set, b"ttl", 0, 5, b"v");
    s.store(StoreMode::Set, b"dead", 0, 5, b"v");
    clock.advance(5);
    // Dead but linked items still count, as in memcached, until unlinked:
    // by a read, or by the crawler.
    assert_eq!(s.size_histogram().unwrap(), size_rows(&[(3, 1, 0), (4, 1, 0)]));
    assert_eq!(get(&s, b"ttl"), None);
    assert_eq!(s.size_histogram().unwrap(), size_rows(&[(4, 1, 0)]));
    while s.crawl(64) > 0 {}
    assert_eq!(s.size_histogram(), Some(vec![]));
    // One page of 80-byte chunks, then one more item: one eviction.
    let per_page = 64 * 1024 / 80;
    for i in 0..=per_page {
        s.store(StoreMode::Set, format!("k{i:04}").as_bytes(), 0, 0, b"v");
    }
    assert!(s.stats().evictions > 0);
    let live = s.stats().curr_items;
    assert_eq!(s.size_histogram().unwrap(), vec![(size_rows(&[(5, 1, 0)])[0].0, live)]);
}

#[test]
fn size_tracking_enabled_on_a_full_cache_counts_only_newer_items() {
    let (s, _) = small();
    s.store(StoreMode::Set, b"old", 0, 0, b"v");
    s.store(StoreMode::Set, b"n", 0, 0, b"1");
    s.enable_size_tracking().unwrap();
    assert_eq!(s.size_histogram(), Some(vec![]));
    // Deleting an uncounted item leaves the counts alone (no underflow)...
    assert!(s.delete(b"old"));
    // ... and an old item whose CAS changes in place is counted from then.
    s.delta(b"n", true, 1);
    assert_eq!(s.size_histogram().unwrap(), size_rows(&[(1, 1, 0)]));
    assert!(s.delete(b"n"));
    assert_eq!(s.size_histogram(), Some(vec![]));
    // Enabling again keeps the counts; re-enabling after a disable starts
    // from nothing.
    s.store(StoreMode::Set, b"x", 0, 0, b"v");
    s.enable_size_tracking().unwrap();
    assert_eq!(s.size_histogram().unwrap(), size_rows(&[(1, 1, 0)]));
    s.disable_size_tracking();
    s.enable_size_tracking().unwrap();
    assert_eq!(s.size_histogram(), Some(vec![]));
    assert!(s.delete(b"x"));
    assert_eq!(s.size_histogram(), Some(vec![]));
}

#[test]
fn track_sizes_at_start_counts_restored_items_with_old_cas_values() {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    let s = Store::new(&StoreConfig { track_sizes: true, shards: 4, ..StoreConfig::default() }, clock);
    assert!(s.tracks_sizes());
    s.raise_cas(1 << 20);
    assert_eq!(s.restore(b"r", b"value", 3, 0, 65), StoreOutcome::Stored);
    assert_eq!(s.size_histogram().unwrap(), size_rows(&[(1, 5, 3)]));
    assert!(s.delete(b"r"));
    assert_eq!(s.size_histogram(), Some(vec![]));
}
