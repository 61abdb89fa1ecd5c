//! Meta command tests on a manual clock: stale-while-revalidate (`md I`,
//! then one recache winner), vivify on miss, touch and no-bump through
//! `get_meta`, `delete_meta` with a CAS and with `x`, and the `R` threshold.

use std::sync::Arc;

use crate::storage::clock::Clock;
use crate::storage::{DeleteOutcome, MetaDelete, MetaGet, MetaItem, Store, StoreConfig, StoreMode, StoreOutcome};

/// One shard of `pages` 64 KiB pages, so LRU order is one list per class.
fn store_with(pages: usize) -> (Store, Arc<Clock>) {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    let cfg = StoreConfig {
        memory_limit: pages * 64 * 1024,
        item_size_max: 64 * 1024,
        shards: 1,
        hashpower: 4,
        ..StoreConfig::default()
    };
    (Store::new(&cfg, clock.clone()), clock)
}

fn store() -> (Store, Arc<Clock>) {
    store_with(16)
}

fn mg(s: &Store, key: &[u8], opts: MetaGet) -> Option<(MetaItem, Vec<u8>)> {
    s.get_meta(key, opts, |m, _, v| (*m, v.to_vec()))
}

fn plain() -> MetaGet {
    MetaGet::default()
}

fn recache(secs: i64) -> MetaGet {
    MetaGet { recache: Some(secs), ..MetaGet::default() }
}

fn cas_of(s: &Store, key: &[u8]) -> u64 {
    s.get(key, None, |it| it.cas).expect("present")
}

#[test]
fn invalidate_marks_stale_with_a_new_cas_and_one_reader_wins_the_recache() {
    let (s, _) = store();
    s.store(StoreMode::Set, b"k", 3, 100, b"v");
    // A recache win before the invalidation: its token must not stop the
    // stale item from being won again.
    assert!(mg(&s, b"k", recache(200)).unwrap().0.won);
    let before = cas_of(&s, b"k");

    let md = MetaDelete { invalidate: true, ..MetaDelete::default() };
    assert_eq!(s.delete_meta(b"k", md), DeleteOutcome::Deleted);

    let (first, v) = mg(&s, b"k", recache(30)).expect("an invalidated item stays readable");
    assert_eq!(v, b"v");
    assert!(first.stale);
    assert_ne!(first.cas, before, "invalidation gives a new CAS");
    assert!(first.won, "the first reader wins the recache");
    assert!(!first.token_sent);
    assert_eq!(s.store(StoreMode::Cas(before), b"k", 0, 0, b"old"), StoreOutcome::Exists, "the old token is spent");

    for _ in 0..3 {
        let (later, _) = mg(&s, b"k", recache(30)).unwrap();
        assert!(later.stale);
        assert!(later.token_sent, "later readers learn a token is out");
        assert!(!later.won, "and do not win a second time");
    }

    assert_eq!(s.store(StoreMode::Set, b"k", 0, 0, b"fresh"), StoreOutcome::Stored);
    let (after, v) = mg(&s, b"k", plain()).unwrap();
    assert_eq!(v, b"fresh");
    assert!(!after.stale, "a plain store clears stale");
    assert!(!after.token_sent && !after.won);
}

#[test]
fn invalidate_with_touch_sets_the_exptime() {
    let (s, clock) = store();
    s.store(StoreMode::Set, b"k", 0, 0, b"v");
    let md = MetaDelete { invalidate: true, touch: Some(5), ..MetaDelete::default() };
    assert_eq!(s.delete_meta(b"k", md), DeleteOutcome::Deleted);
    clock.advance(4);
    assert!(mg(&s, b"k", plain()).unwrap().0.stale);
    clock.advance(1);
    assert_eq!(mg(&s, b"k", plain()), None);
}

#[test]
fn meta_set_with_an_older_token_and_invalidate_stores_stale() {
    let (s, _) = store();
    s.store(StoreMode::Set, b"k", 0, 0, b"one");
    let old = cas_of(&s, b"k");
    s.store(StoreMode::Set, b"k", 0, 0, b"two");
    let now = cas_of(&s, b"k");
    assert_eq!(s.store(StoreMode::CasInvalidate(now + 1), b"k", 0, 0, b"x"), StoreOutcome::Exists, "a future token");
    assert_eq!(s.store(StoreMode::CasInvalidate(old), b"k", 0, 0, b"three"), StoreOutcome::Stored);
    let (m, v) = mg(&s, b"k", plain()).unwrap();
    assert_eq!(v, b"three");
    assert!(m.stale && m.won);
    let fresh = cas_of(&s, b"k");
    assert_eq!(s.store(StoreMode::CasInvalidate(fresh), b"k", 0, 0, b"four"), StoreOutcome::Stored);
    assert!(!mg(&s, b"k", plain()).unwrap().0.stale, "the current token stores a fresh item");
}

#[test]
fn vivify_on_miss_creates_an_empty_item_that_one_reader_wins() {
    let (s, clock) = store();
    assert_eq!(mg(&s, b"k", plain()), None, "no vivify: a plain miss");
    let viv = MetaGet { vivify: Some(30), ..MetaGet::default() };
    let (m, v) = mg(&s, b"k", viv).expect("vivified");
    assert!(v.is_empty());
    assert_eq!((m.flags, m.ttl), (0, 30));
    assert!(m.won && !m.token_sent && !m.stale);

    let (again, _) = mg(&s, b"k", viv).unwrap();
    assert!(!again.won, "the item exists now: nobody else wins");
    assert!(again.token_sent);
    assert_eq!(s.get(b"k", None, |it| it.value.len()), Some(0), "a classic get sees the empty item");

    clock.advance(30);
    assert_eq!(mg(&s, b"k", plain()), None, "it lives for the vivify TTL");
}

#[test]
fn touch_via_get_meta_sets_the_exptime_and_counts_a_touch() {
    let (s, clock) = store();
    s.store(StoreMode::Set, b"k", 0, 10, b"v");
    let (m, _) = mg(&s, b"k", MetaGet { touch: Some(100), ..MetaGet::default() }).unwrap();
    assert_eq!(m.ttl, 100, "the reply shows the new TTL");
    let counters = &s.class_stats()[usize::from(m.class) - 1].counters;
    assert_eq!((counters.touch_hits, counters.get_hits), (1, 0));
    clock.advance(50);
    assert_eq!(mg(&s, b"k", plain()).unwrap().0.ttl, 50, "outlived its first TTL");
    mg(&s, b"k", MetaGet { touch: Some(-1), ..MetaGet::default() }).unwrap();
    assert_eq!(mg(&s, b"k", plain()), None, "a negative touch expires it");
}

#[test]
fn no_bump_leaves_access_time_and_fetched_alone() {
    let (s, clock) = store();
    s.store(StoreMode::Set, b"k", 0, 0, b"v");
    clock.advance(10);
    let quiet = MetaGet { no_bump: true, ..MetaGet::default() };
    for _ in 0..2 {
        let (m, _) = mg(&s, b"k", quiet).unwrap();
        assert_eq!(m.last_access, 10);
        assert!(!m.fetched);
    }
    assert_eq!(s.debug(b"k").unwrap().last_access, 10, "debug does not touch either");
    let (m, _) = mg(&s, b"k", plain()).unwrap();
    assert_eq!((m.last_access, m.fetched), (10, false), "fields are as before this access");
    let (m, _) = mg(&s, b"k", plain()).unwrap();
    assert_eq!((m.last_access, m.fetched), (0, true), "the plain read bumped");
}

#[test]
fn no_bump_leaves_the_lru_position_alone() {
    // One 64 KiB page of class 1 holds 819 chunks of 80 bytes.
    let (s, _) = store_with(1);
    let per_page = 64 * 1024 / 80;
    for i in 0..per_page {
        assert_eq!(s.store(StoreMode::Set, format!("k{i:04}").as_bytes(), 0, 0, b"v"), StoreOutcome::Stored);
    }
    // Two no-bump reads leave k0000 as it was; two plain reads make k0001
    // active (a second chance at the tail).
    for _ in 0..2 {
        assert!(mg(&s, b"k0000", MetaGet { no_bump: true, ..MetaGet::default() }).is_some());
        assert!(mg(&s, b"k0001", plain()).is_some());
    }
    s.store(StoreMode::Set, b"new1", 0, 0, b"v");
    assert_eq!(mg(&s, b"k0000", plain()), None, "no-bump reads left it at the tail");
    s.store(StoreMode::Set, b"new2", 0, 0, b"v");
    assert!(mg(&s, b"k0001", plain()).is_some(), "plain reads moved it to the head");
    assert_eq!(mg(&s, b"k0002", plain()), None);
}

#[test]
fn delete_meta_with_a_wrong_cas_is_exists_and_keeps_the_item() {
    let (s, _) = store();
    s.store(StoreMode::Set, b"k", 0, 0, b"v");
    let cas = cas_of(&s, b"k");
    for invalidate in [false, true] {
        let md = MetaDelete { cas: Some(cas + 1), invalidate, ..MetaDelete::default() };
        assert_eq!(s.delete_meta(b"k", md), DeleteOutcome::Exists);
        let (m, v) = mg(&s, b"k", plain()).expect("kept");
        assert_eq!((v.as_slice(), m.cas, m.stale), (&b"v"[..], cas, false), "untouched");
    }
    assert_eq!(s.delete_meta(b"k", MetaDelete { cas: Some(cas), ..MetaDelete::default() }), DeleteOutcome::Deleted);
    assert_eq!(mg(&s, b"k", plain()), None);
    assert_eq!(s.delete_meta(b"k", MetaDelete::default()), DeleteOutcome::NotFound);
}

#[test]
fn delete_meta_remove_value_keeps_an_empty_item_with_its_ttl() {
    let (s, _) = store();
    s.store(StoreMode::Set, b"k", 7, 100, b"value");
    let md = MetaDelete { remove_value: true, ..MetaDelete::default() };
    assert_eq!(s.delete_meta(b"k", md), DeleteOutcome::Deleted);
    let (m, v) = mg(&s, b"k", plain()).expect("the item stays");
    assert!(v.is_empty());
    assert_eq!((m.flags, m.ttl), (0, 100), "flags emptied, exptime kept");
    assert_eq!(s.delete_meta(b"absent", md), DeleteOutcome::NotFound);
}

#[test]
fn recache_wins_once_fewer_seconds_than_asked_are_left() {
    let (s, clock) = store();
    s.store(StoreMode::Set, b"k", 0, 100, b"v");
    s.store(StoreMode::Set, b"forever", 0, 0, b"v");
    assert!(!mg(&s, b"k", recache(30)).unwrap().0.won, "100 s left");
    clock.advance(70);
    assert!(!mg(&s, b"k", recache(30)).unwrap().0.won, "exactly 30 s left is not fewer");
    clock.advance(1);
    let (m, _) = mg(&s, b"k", recache(30)).unwrap();
    assert!(m.won && !m.stale, "29 s left: this reader recaches");
    let (m, _) = mg(&s, b"k", recache(30)).unwrap();
    assert!(!m.won && m.token_sent, "one winner");
    assert!(!mg(&s, b"forever", recache(30)).unwrap().0.won, "an item that never expires is never due");
}
