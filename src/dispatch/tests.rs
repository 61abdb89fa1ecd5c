//! Dispatch: reply bytes and counters for requests run against a real store.

use super::*;
use crate::config::Config;
use crate::protocol::text::compose::{self as c, TextReply};
use crate::protocol::text::parse;
use crate::storage::clock::Clock;
use crate::storage::{Store, StoreConfig};
use std::sync::Arc;

fn shared(args: &[&str]) -> Shared {
    let config = Config::parse_from(std::iter::once("ferrocache").chain(args.iter().copied())).unwrap();
    let store =
        Store::new(&StoreConfig { shards: 2, ..config.storage.clone() }, Arc::new(Clock::manual(1_700_000_000)));
    Shared::new(config, store)
}

/// Runs every request in `input` and returns the replies and last action.
fn run(sh: &Shared, input: &[u8]) -> (Vec<u8>, Action) {
    let w = sh.stats.worker(0);
    let mut out = Vec::new();
    let mut at = 0;
    let mut action = Action::Continue;
    let mut session = Session::new(&sh.config, false);
    while at < input.len() {
        let (req, used) = parse(&input[at..], &sh.config.server.limits).expect("whole requests");
        let noreply = req.noreply();
        action = dispatch(sh, &w, &mut session, req, &mut TextReply::new(&mut out, noreply));
        at += used;
    }
    (out, action)
}

#[test]
fn noreply_writes_nothing_for_every_command() {
    let sh = shared(&["-t", "1"]);
    let (out, _) = run(
        &sh,
        b"set a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\ny\r\nappend a 0 0 1 noreply\r\nz\r\n\
incr a 1 noreply\r\ntouch a 10 noreply\r\ndelete a noreply\r\ndelete a noreply\r\nflush_all noreply\r\n\
verbosity 0 noreply\r\nset a 0 0 x noreply\r\n",
    );
    assert_eq!(out, b"");
}

#[test]
fn counters_follow_memcached() {
    let sh = shared(&["-t", "1"]);
    let (out, _) = run(
        &sh,
        b"set a 0 0 1\r\n1\r\nget a b\r\ngets a\r\nincr a 1\r\nincr b 1\r\ndecr a 1\r\ndelete b\r\n\
touch a 0\r\ngat 0 a b\r\ncas a 0 0 1 1\r\nx\r\ncas z 0 0 1 1\r\nx\r\n",
    );
    assert!(out.ends_with(b"EXISTS\r\nNOT_FOUND\r\n"), "{}", String::from_utf8_lossy(&out));
    let t = sh.stats.totals();
    assert_eq!((t.cmd_get, t.get_hits, t.get_misses), (3, 2, 1));
    assert_eq!((t.incr_hits, t.incr_misses, t.decr_hits), (1, 1, 1));
    assert_eq!(t.delete_misses, 1);
    assert_eq!((t.cmd_touch, t.touch_hits, t.touch_misses), (3, 2, 1));
    assert_eq!((t.cmd_set, t.cas_badval, t.cas_misses), (3, 1, 1));
}

#[test]
fn cmd_set_leaves_out_stores_that_found_no_memory() {
    let sh = shared(&["-t", "1", "-m", "2", "-M"]);
    let value = vec![b'v'; 1000];
    let (mut stored, mut no_memory) = (0u64, 0u64);
    let (mut ms_stored, mut ms_no_memory) = (0u64, 0u64);
    for i in 0..3000 {
        let mut req = format!("set k{i} 0 0 1000\r\n").into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\nms m");
        req.extend_from_slice(format!("{i} 1000\r\n").as_bytes());
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        let (out, _) = run(&sh, &req);
        let out = String::from_utf8(out).unwrap();
        let (set, ms) = out.split_once("\r\n").unwrap();
        match set {
            "STORED" => stored += 1,
            "SERVER_ERROR out of memory storing object" => no_memory += 1,
            r => panic!("{r}"),
        }
        match ms {
            "HD\r\n" => ms_stored += 1,
            "SERVER_ERROR out of memory storing object\r\n" => ms_no_memory += 1,
            r => panic!("{r}"),
        }
    }
    assert!(no_memory > 0 && ms_no_memory > 0, "the cache filled");
    assert_eq!(sh.stats.totals().cmd_set, stored + ms_stored);
    let per_class: u64 = sh.store.class_stats().iter().map(|c| c.counters.cmd_set).sum();
    assert_eq!(per_class, stored + ms_stored, "stats slabs cmd_set adds up to cmd_set");
}

#[test]
fn too_large_set_swallows_and_drops_the_old_value() {
    let sh = shared(&["-t", "1", "-I", "1k", "-m", "8"]);
    let (_, _) = run(&sh, b"set k 0 0 1\r\nx\r\n");
    let w = sh.stats.worker(0);
    let mut out = Vec::new();
    let (req, _) = parse(b"set k 0 0 5000\r\n", &sh.config.server.limits).unwrap();
    let mut session = Session::new(&sh.config, false);
    assert_eq!(dispatch(&sh, &w, &mut session, req, &mut TextReply::new(&mut out, false)), Action::Swallow(5002));
    assert_eq!(out, c::TOO_LARGE);
    let (out, _) = run(&sh, b"get k\r\n");
    assert_eq!(out, b"END\r\n");
}

#[test]
fn quit_closes_and_shutdown_needs_the_flag() {
    let sh = shared(&["-t", "1"]);
    assert_eq!(run(&sh, b"quit\r\n"), (Vec::new(), Action::Quit));
    assert_eq!(run(&sh, b"shutdown\r\n").0, c::SHUTDOWN_DISABLED);
    let sh = shared(&["-t", "1", "-A"]);
    assert_eq!(run(&sh, b"shutdown now\r\n").0, c::INVALID_SHUTDOWN);
    assert_eq!(run(&sh, b"shutdown\r\n"), (Vec::new(), Action::Close));
    assert!(sh.stopping.load(Ordering::SeqCst));
}

#[test]
fn flush_all_can_be_disabled_and_memlimit_has_a_floor() {
    let sh = shared(&["-t", "1", "-F"]);
    assert_eq!(run(&sh, b"flush_all\r\n").0, c::FLUSH_DISABLED);
    assert_eq!(run(&sh, b"cache_memlimit 7\r\n").0, c::MEMLIMIT_TOO_SMALL);
    assert_eq!(run(&sh, b"cache_memlimit 100\r\n").0, c::OK);
    assert_eq!(sh.store.stats().limit_maxbytes, 100 * 1024 * 1024);
}

#[test]
fn stats_groups_answer_and_unknown_ones_are_errors() {
    let sh = shared(&["-t", "1"]);
    run(&sh, b"set a 0 0 1\r\nx\r\n");
    for group in ["", " settings", " items", " slabs", " sizes", " conns"] {
        let (out, _) = run(&sh, format!("stats{group}\r\n").as_bytes());
        assert!(out.ends_with(b"END\r\n"), "stats{group}: {}", String::from_utf8_lossy(&out));
    }
    assert_eq!(run(&sh, b"stats bogus\r\n").0, b"ERROR\r\n");
    assert_eq!(run(&sh, b"stats cachedump\r\n").0, b"CLIENT_ERROR bad command line\r\n");
    assert_eq!(run(&sh, b"stats cachedump 0 1\r\n").0, b"CLIENT_ERROR Illegal slab id\r\n");
    assert_eq!(run(&sh, b"stats cachedump 1 0\r\n").0, b"ITEM a [1 b; 0 s]\r\nEND\r\n");
    assert_eq!(run(&sh, b"stats reset\r\n").0, b"RESET\r\n");
    let (out, _) = run(&sh, b"stats\r\n");
    assert!(String::from_utf8_lossy(&out).contains("STAT cmd_set 0\r\n"));
}

#[test]
fn meta_commands_count_as_the_classic_ones() {
    let classic = shared(&["-t", "1"]);
    let (out, _) = run(
        &classic,
        b"set a 0 0 1\r\n1\r\nget a\r\nget b\r\ntouch a 10\r\ntouch b 10\r\nincr a 1\r\nincr b 1\r\n\
decr a 1\r\ndecr b 1\r\ncas a 0 0 1 999\r\nx\r\ncas b 0 0 1 1\r\nx\r\nadd a 0 0 1\r\nx\r\ndelete a\r\ndelete a\r\n",
    );
    assert!(out.ends_with(b"NOT_STORED\r\nDELETED\r\nNOT_FOUND\r\n"), "{}", String::from_utf8_lossy(&out));
    let meta = shared(&["-t", "1"]);
    let (out, _) = run(
        &meta,
        b"ms a 1\r\n1\r\nmg a v\r\nmg b v\r\nmg a T10\r\nmg b T10\r\nma a\r\nma b\r\n\
ma a MD\r\nma b MD\r\nms a 1 C999\r\nx\r\nms b 1 C1\r\nx\r\nms a 1 ME\r\nx\r\nmd a\r\nmd a\r\n",
    );
    assert!(out.ends_with(b"NS\r\nHD\r\nNF\r\n"), "{}", String::from_utf8_lossy(&out));
    let mut totals = meta.stats.totals();
    assert_eq!(totals.cmd_meta, 14, "every meta command counts in cmd_meta");
    totals.cmd_meta = 0;
    assert_eq!(totals, classic.stats.totals());
}

/// A delete refused for its CAS is neither a hit nor a miss, for `md` as
/// for a binary delete (the meta path once counted it as a miss).
#[test]
fn meta_delete_with_a_wrong_cas_is_not_a_miss() {
    let sh = shared(&["-t", "1"]);
    let (out, _) = run(&sh, b"set a 0 0 1\r\n1\r\nmd a C999999\r\n");
    assert_eq!(out, b"STORED\r\nEX\r\n");
    let t = sh.stats.totals();
    assert_eq!((t.delete_hits, t.delete_misses), (0, 0));
}

/// Old auto-discovery clients `get` the node list as an item: golden bytes
/// of the path production takes (dispatch's retrieval, the text composer).
#[test]
fn legacy_discovery_key_answers_with_the_node_list() {
    let sh = shared(&["-t", "1"]);
    let (out, _) = run(&sh, b"get AmazonElastiCache:cluster\r\n");
    assert_eq!(out, b"END\r\n", "no cluster configured: an ordinary miss");
    let (out, _) = run(&sh, b"config set cluster 0 11\r\nh|1.2.3.4|1\r\nget AmazonElastiCache:cluster\r\n");
    let version = sh.discovery.view().expect("configured").0;
    let payload = format!("{version}\nh|1.2.3.4|1\n");
    let want = format!("STORED\r\nVALUE AmazonElastiCache:cluster 0 {}\r\n{payload}\r\nEND\r\n", payload.len());
    assert_eq!(String::from_utf8_lossy(&out), want);
}

#[test]
fn meta_ttl_flags_apply_in_the_order_given() {
    let sh = shared(&["-t", "1"]);
    let (out, _) = run(
        &sh,
        b"set k 0 100 1\r\nx\r\nmg k t T30\r\nmg k T40 t\r\nmg k R50 T60 t\r\nmg k T20 R50 t\r\n\
mg n1 t N30\r\nmg n2 T20 N30 t\r\nmg n3 N30 T20 t\r\nma c1 T20 N30 t\r\nma c2 N30 T20 t\r\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "STORED\r\nHD t100\r\nHD t40\r\nHD t60 W\r\nHD t20 Z\r\n\
HD t-1 W\r\nHD t30 W\r\nHD t20 W\r\nHD t30\r\nHD t20\r\n"
    );
}

#[test]
fn meta_set_invalidating_with_an_older_cas_keeps_the_item_stale() {
    let sh = shared(&["-t", "1"]);
    let (out, _) = run(
        &sh,
        b"set k 0 0 1\r\nx\r\nmd k I T30\r\nmg k t\r\nms k 1 I T90 C1\r\ny\r\nmg k t v\r\n\
ms k 1 I T90 C0\r\nz\r\nme\r\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        "STORED\r\nHD\r\nHD t30 X W\r\nHD\r\nVA 1 t30 Z X\r\ny\r\nEX\r\n\
CLIENT_ERROR bad command line format\r\n"
    );
}
