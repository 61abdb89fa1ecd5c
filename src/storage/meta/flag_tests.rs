//! Every flag of the meta commands in memcached 1.6's `doc/protocol.txt`
//! (mg, ms, md, ma, me), checked against the store itself: one test per
//! command, one block per flag. Flags that only shape the reply (`O`
//! opaque, `q` quiet, `k` key echo, `b` base64 on the wire) have no store
//! side beyond handing back the key; the parser and composer tests cover
//! them. The store sees what the flags become: options of
//! [`Store::get_meta`] and [`Store::delete_meta`], a [`StoreMode`] for
//! ms, and the arguments of [`Store::delta_with`] for ma.

use std::sync::Arc;

use crate::storage::clock::Clock;
use crate::storage::{
    DeleteOutcome, DeltaOutcome, MetaDelete, MetaGet, MetaItem, MetaOrder, Store, StoreConfig, StoreMode, StoreOutcome,
};

fn store_cfg(use_cas: bool) -> (Store, Arc<Clock>) {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    let cfg = StoreConfig {
        memory_limit: 16 * 64 * 1024,
        item_size_max: 64 * 1024,
        shards: 1,
        hashpower: 4,
        use_cas,
        ..StoreConfig::default()
    };
    (Store::new(&cfg, clock.clone()), clock)
}

fn store() -> (Store, Arc<Clock>) {
    store_cfg(true)
}

/// A meta get: the item as reported, the key and the value handed back.
fn mg(s: &Store, key: &[u8], opts: MetaGet) -> Option<(MetaItem, Vec<u8>, Vec<u8>)> {
    s.get_meta(key, opts, |m, k, v| (*m, k.to_vec(), v.to_vec()))
}

fn plain() -> MetaGet {
    MetaGet::default()
}

fn set(s: &Store, key: &[u8], flags: u32, ttl: i64, value: &[u8]) -> u64 {
    let (out, cas) = s.store_cas(StoreMode::Set, key, flags, ttl, value);
    assert_eq!(out, StoreOutcome::Stored);
    cas
}

fn value(s: &Store, key: &[u8]) -> Option<Vec<u8>> {
    mg(s, key, plain()).map(|(_, _, v)| v)
}

/// Flag order as the dispatcher derives it from a request's flags.
fn order(flags: &str) -> MetaOrder {
    let mut o = MetaOrder::default();
    for (i, f) in flags.split(' ').enumerate() {
        let i = i as u8;
        match f.as_bytes()[0] {
            b'N' => o.vivify = i,
            b'T' => o.touch = i,
            b'R' => o.recache = i,
            b't' => o.ttl = i,
            _ => {}
        }
    }
    o
}

#[test]
fn mg_every_flag() {
    let (s, clock) = store();
    let cas = set(&s, b"k", 42, 100, b"hello");

    // v, s, k: the value, its length, the key.
    let (m, key, v) = mg(&s, b"k", plain()).unwrap();
    assert_eq!((key.as_slice(), v.as_slice()), (&b"k"[..], &b"hello"[..]));
    // c, f: CAS and client flags.
    assert_eq!((m.cas, m.flags), (cas, 42));
    // t: seconds left; -1 for never.
    assert_eq!(m.ttl, 100);
    set(&s, b"forever", 0, 0, b"x");
    assert_eq!(mg(&s, b"forever", plain()).unwrap().0.ttl, -1);

    // h, l: hit before and seconds since the last access, both as they
    // were before this access.
    set(&s, b"h", 0, 0, b"x");
    clock.advance(7);
    let (m, _, _) = mg(&s, b"h", plain()).unwrap();
    assert_eq!((m.fetched, m.last_access), (false, 7));
    clock.advance(2);
    let (m, _, _) = mg(&s, b"h", plain()).unwrap();
    assert_eq!((m.fetched, m.last_access), (true, 2));

    // u: no bump: neither the access time nor the hit mark change.
    set(&s, b"u", 0, 0, b"x");
    clock.advance(3);
    let quiet = MetaGet { no_bump: true, ..plain() };
    mg(&s, b"u", quiet).unwrap();
    let (m, _, _) = mg(&s, b"u", quiet).unwrap();
    assert_eq!((m.fetched, m.last_access), (false, 3));

    // T: new TTL; t reports it when it comes after T, the old one before.
    set(&s, b"t", 0, 100, b"x");
    let (m, _, _) = mg(&s, b"t", MetaGet { touch: Some(30), order: order("t T30"), ..plain() }).unwrap();
    assert_eq!((m.ttl, m.exptime), (100, clock.now() + 30), "t before T: the TTL before the touch");
    let (m, _, _) = mg(&s, b"t", MetaGet { touch: Some(40), order: order("T40 t"), ..plain() }).unwrap();
    assert_eq!(m.ttl, 40);
    mg(&s, b"t", MetaGet { touch: Some(0), ..plain() }).unwrap();
    assert_eq!(mg(&s, b"t", plain()).unwrap().0.ttl, -1, "T0: never expires");

    // N: vivify on a miss with a TTL; the creator wins (W), others see Z.
    let viv = MetaGet { vivify: Some(30), ..plain() };
    let (m, _, v) = mg(&s, b"n", viv).unwrap();
    assert!(v.is_empty() && m.won && !m.token_sent && !m.stale);
    assert_eq!((m.ttl, m.flags), (30, 0));
    let (m, _, _) = mg(&s, b"n", viv).unwrap();
    assert!(!m.won && m.token_sent);
    // N with T: the later of the two sets the new item's TTL; a t before
    // both sees the new item's "never".
    let both = MetaGet { vivify: Some(30), touch: Some(20), ..plain() };
    assert_eq!(mg(&s, b"n1", MetaGet { order: order("N30 T20 t"), ..both }).unwrap().0.ttl, 20);
    assert_eq!(mg(&s, b"n2", MetaGet { order: order("T20 N30 t"), ..both }).unwrap().0.ttl, 30);
    let (m, _, _) = mg(&s, b"n3", MetaGet { order: order("t N30"), ..viv }).unwrap();
    assert_eq!((m.ttl, m.exptime), (-1, clock.now() + 30));

    // R: win once fewer seconds than the token are left; never for a
    // never-expiring item; R before T compares the TTL before the touch.
    set(&s, b"r", 0, 10, b"x");
    let r = |t: &str| MetaGet { recache: Some(30), touch: Some(100), order: order(t), ..plain() };
    assert!(!mg(&s, b"r", r("T100 R30")).unwrap().0.won, "T first: 100 s left");
    set(&s, b"r", 0, 10, b"x");
    let (m, _, _) = mg(&s, b"r", r("R30 T100 t")).unwrap();
    assert!(m.won, "R first: 10 s left");
    assert_eq!(m.ttl, 100);
    let (m, _, _) = mg(&s, b"r", r("R30 T100")).unwrap();
    assert!(!m.won && m.token_sent, "Z: one winner");
    assert!(!mg(&s, b"forever", MetaGet { recache: Some(30), ..plain() }).unwrap().0.won);

    // X, W, Z: a stale item is won by its first reader only.
    s.delete_meta(b"k", MetaDelete { invalidate: true, ..MetaDelete::default() });
    let (m, _, _) = mg(&s, b"k", plain()).unwrap();
    assert!(m.stale && m.won && !m.token_sent);
    let (m, _, _) = mg(&s, b"k", plain()).unwrap();
    assert!(m.stale && !m.won && m.token_sent);

    // b: a decoded binary key is any bytes.
    let binary = [0u8, 1, b' ', b'\r', b'\n', 0xff];
    set(&s, &binary, 0, 0, b"bin");
    let (_, key, v) = mg(&s, &binary, plain()).unwrap();
    assert_eq!((key.as_slice(), v.as_slice()), (&binary[..], &b"bin"[..]));

    // A miss without N.
    assert!(mg(&s, b"absent", plain()).is_none());
}

#[test]
fn mg_c_is_zero_with_cas_off() {
    let (s, _) = store_cfg(false);
    set(&s, b"k", 0, 0, b"v");
    assert_eq!(mg(&s, b"k", plain()).unwrap().0.cas, 0);
}

#[test]
fn ms_every_flag() {
    let (s, clock) = store();

    // F, T, c: client flags, TTL, and the stored item's CAS.
    let (out, cas) = s.store_cas(StoreMode::Set, b"k", 9, 50, b"v1");
    assert_eq!(out, StoreOutcome::Stored);
    let (m, _, _) = mg(&s, b"k", plain()).unwrap();
    assert_eq!((m.flags, m.ttl, m.cas), (9, 50, cas));

    // C: compare CAS (M S and M R with C are a cas).
    assert_eq!(s.store_cas(StoreMode::Cas(cas + 1), b"k", 0, 0, b"no"), (StoreOutcome::Exists, 0));
    assert_eq!(s.store_cas(StoreMode::Cas(cas), b"nokey", 0, 0, b"no"), (StoreOutcome::NotFound, 0));
    let (out, cas2) = s.store_cas(StoreMode::Cas(cas), b"k", 0, 0, b"v2");
    assert_eq!(out, StoreOutcome::Stored);
    assert!(cas2 > cas, "a store gives a new CAS");
    assert_eq!(s.store_cas(StoreMode::Cas(cas), b"k", 0, 0, b"no").0, StoreOutcome::Exists, "the old token is spent");

    // M E: add. M R: replace. M S: set.
    assert_eq!(s.store(StoreMode::Add, b"k", 0, 0, b"no"), StoreOutcome::NotStored);
    assert_eq!(s.store(StoreMode::Add, b"e", 0, 0, b"add"), StoreOutcome::Stored);
    assert_eq!(s.store(StoreMode::Replace, b"r", 0, 0, b"no"), StoreOutcome::NotStored);
    assert_eq!(s.store(StoreMode::Replace, b"e", 0, 0, b"rep"), StoreOutcome::Stored);
    assert_eq!(value(&s, b"e").unwrap(), b"rep");

    // M A / M P: append and prepend keep flags and TTL; with C the CAS
    // must match; a missing item is not stored.
    set(&s, b"a", 3, 40, b"mid");
    assert_eq!(s.store(StoreMode::Append(0), b"a", 0, 0, b">"), StoreOutcome::Stored);
    assert_eq!(s.store(StoreMode::Prepend(0), b"a", 0, 0, b"<"), StoreOutcome::Stored);
    let (m, _, v) = mg(&s, b"a", plain()).unwrap();
    assert_eq!((v.as_slice(), m.flags, m.ttl), (&b"<mid>"[..], 3, 40));
    assert_eq!(s.store(StoreMode::Append(m.cas + 1), b"a", 0, 0, b"x"), StoreOutcome::Exists);
    assert_eq!(s.store(StoreMode::Append(m.cas), b"a", 0, 0, b"!"), StoreOutcome::Stored);
    assert_eq!(s.store(StoreMode::Prepend(0), b"none", 0, 0, b"x"), StoreOutcome::NotStored);

    // I with C: an older token stores, but the item stays stale with its
    // TTL, and a recache token already handed out stays handed out.
    set(&s, b"i", 0, 0, b"v");
    let old = mg(&s, b"i", plain()).unwrap().0.cas;
    s.delete_meta(b"i", MetaDelete { invalidate: true, touch: Some(30), ..MetaDelete::default() });
    let (m, _, _) = mg(&s, b"i", plain()).unwrap();
    assert!(m.stale && m.won);
    let current = m.cas;
    clock.advance(5);
    let (out, new_cas) = s.store_cas(StoreMode::CasInvalidate(old), b"i", 1, 90, b"late");
    assert_eq!(out, StoreOutcome::Stored);
    let (m, _, v) = mg(&s, b"i", plain()).unwrap();
    assert_eq!((v.as_slice(), m.flags, m.cas), (&b"late"[..], 1, new_cas));
    assert!(m.stale && m.token_sent && !m.won, "still stale; the win was already sent");
    assert_eq!(m.ttl, 25, "the TTL was not refreshed");
    // The current token, or one from the future, or none.
    assert_eq!(s.store(StoreMode::CasInvalidate(new_cas + 1), b"i", 0, 0, b"x"), StoreOutcome::Exists);
    assert_eq!(s.store(StoreMode::CasInvalidate(0), b"i", 0, 0, b"x"), StoreOutcome::Exists);
    assert_eq!(s.store(StoreMode::CasInvalidate(current), b"nokey", 0, 0, b"x"), StoreOutcome::NotFound);
    assert_eq!(s.store(StoreMode::CasInvalidate(new_cas), b"i", 0, 90, b"fresh"), StoreOutcome::Stored);
    let (m, _, _) = mg(&s, b"i", plain()).unwrap();
    assert!(!m.stale && !m.token_sent && !m.won, "the matching token stores a fresh item");
    assert_eq!(m.ttl, 90);

    // T with a negative TTL: stored already expired.
    set(&s, b"neg", 0, -1, b"v");
    assert!(mg(&s, b"neg", plain()).is_none());
}

#[test]
fn md_every_flag() {
    let (s, clock) = store();

    // No flags: delete; NF after.
    set(&s, b"k", 0, 0, b"v");
    assert_eq!(s.delete_meta(b"k", MetaDelete::default()), DeleteOutcome::Deleted);
    assert_eq!(s.delete_meta(b"k", MetaDelete::default()), DeleteOutcome::NotFound);

    // C: only the matching CAS deletes.
    let cas = set(&s, b"c", 0, 0, b"v");
    let wrong = MetaDelete { cas: Some(cas + 1), ..MetaDelete::default() };
    assert_eq!(s.delete_meta(b"c", wrong), DeleteOutcome::Exists);
    assert_eq!(s.delete_meta(b"c", MetaDelete { cas: Some(cas), ..MetaDelete::default() }), DeleteOutcome::Deleted);

    // I: stale, new CAS, value kept; a win already sent is reset so the
    // next reader wins again.
    let cas = set(&s, b"i", 0, 0, b"v");
    let inv = MetaDelete { invalidate: true, ..MetaDelete::default() };
    assert_eq!(s.delete_meta(b"i", inv), DeleteOutcome::Deleted);
    let (m, _, v) = mg(&s, b"i", plain()).unwrap();
    assert_eq!(v, b"v");
    assert!(m.stale && m.won && m.cas != cas);
    assert_eq!(m.ttl, -1, "I without T keeps the TTL");
    assert!(mg(&s, b"i", plain()).unwrap().0.token_sent);
    let cas = m.cas;
    assert_eq!(s.delete_meta(b"i", inv), DeleteOutcome::Deleted);
    let (m, _, _) = mg(&s, b"i", plain()).unwrap();
    assert!(m.stale && m.won && !m.token_sent, "invalidating again lets a new reader win");
    assert_ne!(m.cas, cas);
    // I with C: both must hold.
    assert_eq!(s.delete_meta(b"i", MetaDelete { cas: Some(cas), ..inv }), DeleteOutcome::Exists);

    // T with I: the new TTL; T alone changes nothing and deletes.
    let ti = MetaDelete { invalidate: true, touch: Some(10), ..MetaDelete::default() };
    assert_eq!(s.delete_meta(b"i", ti), DeleteOutcome::Deleted);
    assert_eq!(mg(&s, b"i", plain()).unwrap().0.ttl, 10);
    clock.advance(10);
    assert!(mg(&s, b"i", plain()).is_none());
    set(&s, b"t", 0, 0, b"v");
    assert_eq!(s.delete_meta(b"t", MetaDelete { touch: Some(10), ..MetaDelete::default() }), DeleteOutcome::Deleted);
    assert!(mg(&s, b"t", plain()).is_none());

    // x: keep the item, empty its value and client flags.
    set(&s, b"x", 5, 60, b"value");
    assert_eq!(s.delete_meta(b"x", MetaDelete { remove_value: true, ..MetaDelete::default() }), DeleteOutcome::Deleted);
    let (m, _, v) = mg(&s, b"x", plain()).unwrap();
    assert_eq!((v.len(), m.flags, m.ttl), (0, 0, 60));

    // A dead item is not found.
    set(&s, b"dead", 0, 1, b"v");
    clock.advance(1);
    assert_eq!(s.delete_meta(b"dead", inv), DeleteOutcome::NotFound);
}

#[test]
fn ma_every_flag() {
    let (s, clock) = store();
    let value_of = |o: DeltaOutcome| match o {
        DeltaOutcome::Value(v, cas, exp) => (v, cas, exp),
        other => panic!("{other:?}"),
    };

    // No flags: incr by 1 (D defaults to 1 in the parser); a miss is NF.
    assert_eq!(s.delta_with(b"n", true, 1, 0, None, None), DeltaOutcome::NotFound);
    set(&s, b"n", 0, 0, b"5");
    let (v, cas, exp) = value_of(s.delta_with(b"n", true, 1, 0, None, None));
    // v, c, t: the new value, its CAS, and the exptime behind t.
    assert_eq!((v, exp), (6, 0));
    assert_eq!(mg(&s, b"n", plain()).unwrap().0.cas, cas);

    // D and M: delta; decrement stops at 0, increment wraps.
    assert_eq!(value_of(s.delta_with(b"n", true, 10, 0, None, None)).0, 16);
    assert_eq!(value_of(s.delta_with(b"n", false, 100, 0, None, None)).0, 0);
    set(&s, b"max", 0, 0, b"18446744073709551615");
    assert_eq!(value_of(s.delta_with(b"max", true, 2, 0, None, None)).0, 1);

    // C: the CAS must match.
    let cas = mg(&s, b"n", plain()).unwrap().0.cas;
    assert_eq!(s.delta_with(b"n", true, 1, cas + 1, None, None), DeltaOutcome::Exists);
    let (_, new_cas, _) = value_of(s.delta_with(b"n", true, 1, cas, None, None));
    assert_ne!(new_cas, cas, "a delta gives a new CAS");

    // N and J: create a miss with the initial value and a TTL.
    let (v, _, exp) = value_of(s.delta_with(b"new", true, 5, 0, Some((10, 30)), None));
    assert_eq!((v, exp), (10, clock.now() + 30), "created with J, not incremented");
    assert_eq!(value(&s, b"new").unwrap(), b"10");
    assert_eq!(value_of(s.delta_with(b"new", true, 5, 0, Some((10, 30)), None)).0, 15, "then N does nothing");

    // T: on success, a new TTL.
    let (_, _, exp) = value_of(s.delta_with(b"new", true, 1, 0, None, Some(100)));
    assert_eq!(exp, clock.now() + 100);
    assert_eq!(mg(&s, b"new", plain()).unwrap().0.ttl, 100);

    // A value that is not a number.
    set(&s, b"text", 0, 0, b"abc");
    assert_eq!(s.delta_with(b"text", true, 1, 0, None, None), DeltaOutcome::NonNumeric);
}

#[test]
fn me_reports_without_touching() {
    let (s, clock) = store();
    set(&s, b"k", 0, 100, b"value");
    clock.advance(4);
    let d = s.debug(b"k").unwrap();
    assert_eq!((d.ttl, d.last_access, d.fetched), (96, 4, false));
    assert!(d.class >= 1 && d.size > 5);
    let d = s.debug(b"k").unwrap();
    assert_eq!((d.last_access, d.fetched, d.won), (4, false, false), "me changed nothing");
    assert!(s.debug(b"absent").is_none());
}
