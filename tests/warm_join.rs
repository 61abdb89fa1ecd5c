//! Warm join: an endpoint (`--config-port`) over real nodes on
//! 127.0.0.10-12. A node added by `config set cluster` is served only once
//! the keys it will own are on it (checked on the node itself), or when
//! `--warm-timeout-ms` passes; `--warm-rate` bounds the copy. Every wait is
//! bounded; the rate is checked by counting items against elapsed time
//! (an upper bound that a slow machine can only make easier to meet).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{config_get, config_set, node_list, temp_dir, Client, Server, TIMEOUT};
use ferrocache::cluster::{Ring, Scheme};
use ferrocache::discovery::Node;

fn start_node(ip: &str) -> (Server, Node) {
    start_node_with(ip, &[])
}

fn start_node_with(ip: &str, extra: &[&str]) -> (Server, Node) {
    let mut args = vec!["-l", ip, "-p", "-1"];
    args.extend_from_slice(extra);
    let s = Server::start_raw(&args);
    let n = Node { host: ip.to_string(), ip: ip.to_string(), port: s.port() };
    (s, n)
}

/// An endpoint with `extra` options; its config port's address.
fn start_endpoint(extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec![
        "-l",
        "127.0.0.1",
        "-p",
        "-1",
        "--config-port",
        "0",
        "--health-interval-ms",
        "100",
        "--health-timeout-ms",
        "1000",
    ];
    args.extend_from_slice(extra);
    let s = Server::start_raw(&args);
    let config = s.addrs[1];
    (s, config)
}

/// `config set cluster` with `nodes`.
fn set_nodes(addr: SocketAddr, nodes: &[Node]) {
    config_set(addr, &node_list(nodes));
}

/// `config get cluster` -> (version, nodes).
fn served_nodes(addr: SocketAddr) -> (u64, Vec<Node>) {
    let (version, entries) = config_get(addr);
    (version, ferrocache::discovery::format::parse_nodes(&entries.join(" ")).unwrap())
}

#[derive(Clone)]
struct Item {
    key: String,
    value: Vec<u8>,
    flags: u32,
    ttl: u32,
}

/// `n` items: plain keys, keys the metadump must escape, a few large
/// values, some with a TTL.
fn items(n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| Item {
            key: if i % 7 == 3 { format!("k/é{{{i}}}") } else { format!("key:{i}") },
            value: if i % 97 == 5 {
                vec![b'0' + (i % 10) as u8; 150_000]
            } else {
                format!("value {i} ").repeat(4).into()
            },
            flags: i as u32 * 3,
            ttl: if i % 5 == 0 { 3600 } else { 0 },
        })
        .collect()
}

/// Writes each item to its owner on the ring of `list`.
fn fill(servers: &[&Server], list: &[Node], items: &[Item]) {
    let ring = Ring::from_nodes(Scheme::Ketama, list);
    let mut bufs = vec![Vec::new(); servers.len()];
    for it in items {
        let b = &mut bufs[ring.owner(it.key.as_bytes()).unwrap()];
        b.extend_from_slice(
            format!("set {} {} {} {} noreply\r\n", it.key, it.flags, it.ttl, it.value.len()).as_bytes(),
        );
        b.extend_from_slice(&it.value);
        b.extend_from_slice(b"\r\n");
    }
    for (s, mut b) in servers.iter().zip(bufs) {
        b.extend_from_slice(b"mn\r\n");
        let mut c = s.connect();
        c.send(&b);
        assert!(c.read_until(b"MN\r\n").ends_with(b"MN\r\n"));
    }
}

/// `mg <key> v f t` on `c`: (flags, ttl, value) or None.
fn read_item(c: &mut Client, key: &str) -> Option<(u32, i64, Vec<u8>)> {
    c.send(format!("mg {key} v f t\r\n").as_bytes());
    // byte by byte: the value follows the line
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n") {
        head.extend(c.read_exact(1));
    }
    let head = String::from_utf8(head).unwrap();
    if head == "EN\r\n" {
        return None;
    }
    let toks: Vec<&str> = head.trim_end().split(' ').collect();
    assert_eq!(toks[0], "VA", "{head}");
    let len: usize = toks[1].parse().unwrap();
    let (mut flags, mut ttl) = (0, 0);
    for t in &toks[2..] {
        match t.split_at(1) {
            ("f", v) => flags = v.parse().unwrap(),
            ("t", v) => ttl = v.parse().unwrap(),
            _ => {}
        }
    }
    let mut data = c.read_exact(len + 2);
    data.truncate(len);
    Some((flags, ttl, data))
}

fn curr_items(s: &Server) -> u64 {
    s.stat("curr_items")
}

/// Asserts `s` holds `expect` exactly as written, and how many items.
fn assert_holds(s: &Server, expect: &[&Item]) {
    let mut c = s.connect();
    for it in expect {
        let (flags, ttl, value) = read_item(&mut c, &it.key).unwrap_or_else(|| panic!("{} missing", it.key));
        assert_eq!((flags, value.len()), (it.flags, it.value.len()), "{}", it.key);
        assert!(value == it.value, "{}: another value", it.key);
        if it.ttl == 0 {
            assert_eq!(ttl, -1, "{}", it.key);
        } else {
            assert!(ttl > 0 && ttl <= i64::from(it.ttl), "{}: ttl {ttl}", it.key);
        }
    }
    assert_eq!(curr_items(s), expect.len() as u64, "items beyond those expected");
}

/// `stats cluster` of the endpoint, by name.
fn cluster_stats(endpoint: &Server) -> std::collections::HashMap<String, String> {
    endpoint.stats("cluster")
}

/// Two served nodes (127.0.0.10, .11) holding `n` items, each on its
/// owner; a third node (127.0.0.12) not yet in the list; an endpoint
/// started with `extra`.
struct Setup {
    a: Server,
    b: Server,
    j: Server,
    endpoint: Server,
    config: SocketAddr,
    /// The list once J is added.
    future: Vec<Node>,
    items: Vec<Item>,
}

fn setup(extra: &[&str], n: usize) -> Setup {
    setup_with(&[], extra, items(n))
}

/// As [`setup`], the nodes started with `node_args`, holding `items`.
fn setup_with(node_args: &[&str], extra: &[&str], items: Vec<Item>) -> Setup {
    let n = items.len();
    let (a, na) = start_node_with("127.0.0.10", node_args);
    let (b, nb) = start_node_with("127.0.0.11", node_args);
    let (j, nj) = start_node_with("127.0.0.12", node_args);
    let (endpoint, config) = start_endpoint(extra);
    let served = [na.clone(), nb.clone()];
    set_nodes(config, &served);
    assert_eq!(served_nodes(config), (1, served.to_vec()), "the first list is served at once");
    fill(&[&a, &b], &served, &items);
    assert_eq!(curr_items(&a) + curr_items(&b), n as u64);
    Setup { a, b, j, endpoint, config, future: vec![na, nb, nj], items }
}

impl Setup {
    /// Adds J and waits (bounded) for its publication, the one bump.
    fn add_j_and_wait(&self) {
        set_nodes(self.config, &self.future);
        let start = Instant::now();
        while served_nodes(self.config).0 == 1 {
            assert!(start.elapsed() < TIMEOUT, "never published");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(served_nodes(self.config), (2, self.future.clone()));
    }

    /// The items J must hold once served: those it owns, and with
    /// `successor` those it follows.
    fn for_j(&self, successor: bool) -> Vec<&Item> {
        let ring = Ring::from_nodes(Scheme::Ketama, &self.future);
        let mine = |k: &[u8]| ring.owner(k) == Some(2) || (successor && ring.successor(k) == Some(2));
        self.items.iter().filter(|it| mine(it.key.as_bytes())).collect()
    }
}

#[test]
fn an_added_node_is_served_once_it_holds_its_keys() {
    // 200 items/s: J's ~400 keys take at least 2 s, so the joining state
    // is there to be seen.
    let mut s = setup(&["--warm-rate", "200"], 1200);
    let (a_items, b_items) = (curr_items(&s.a), curr_items(&s.b));
    let owned = s.for_j(false);
    assert!(owned.len() > 250, "{}", owned.len());

    let t0 = Instant::now();
    set_nodes(s.config, &s.future);
    let st = cluster_stats(&s.endpoint);
    assert_eq!((st["node:2:state"].as_str(), st["cluster_joining"].as_str()), ("joining", "1"), "{st:?}");
    let mut seen_joining = 0;
    let (version, served) = loop {
        let (v, nodes) = served_nodes(s.config);
        if v != 1 {
            break (v, nodes);
        }
        assert_eq!(nodes, s.future[..2], "not served while joining");
        // the rate bounds what is on J at any time
        let on_j = curr_items(&s.j);
        assert!(on_j as f64 <= 200.0 * t0.elapsed().as_secs_f64() + 1.0, "{on_j} after {:?}", t0.elapsed());
        let st = cluster_stats(&s.endpoint);
        if st.get("node:2:state").map(String::as_str) == Some("joining") {
            seen_joining += 1;
            let copied: u64 = st["node:2:warm_copied"].parse().unwrap();
            let total: u64 = st["node:2:warm_total"].parse().unwrap();
            assert!(copied <= total && total <= owned.len() as u64, "{st:?}");
            assert!(st.contains_key("node:2:warm_elapsed_ms") && st.contains_key("node:2:warm_bytes"));
        }
        assert!(t0.elapsed() < TIMEOUT + Duration::from_secs(10), "never published");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((version, served), (2, s.future.clone()), "published with one bump, in configured order");
    assert!(seen_joining > 0);
    // at the bump J already held every key it owns, and only those
    assert_holds(&s.j, &owned);
    assert!(t0.elapsed() >= Duration::from_secs(owned.len() as u64 / 200), "faster than --warm-rate");
    let st = cluster_stats(&s.endpoint);
    assert_eq!((st["node:2:state"].as_str(), st["cluster_joining"].as_str()), ("up", "0"));
    assert!(st["history:2"].contains("warm join of"), "{st:?}");
    // the sources keep their items
    assert_eq!((curr_items(&s.a), curr_items(&s.b)), (a_items, b_items));
    // the log has the join, the copy's start and its end
    let moved = owned.len();
    s.endpoint.signal_and_wait(15);
    let log = s.endpoint.stderr_text();
    let j = s.future[2].to_string();
    for line in [
        format!("{j} joining: served once its keys are copied"),
        format!("warm join of {j}: copying from 2 node(s), at most 200 items/s"),
        format!("warm join of {j} done: {moved} items, "),
    ] {
        assert!(log.contains(&line), "no {line:?} in the log:\n{log}");
    }
}

#[test]
fn with_replicas_the_joining_node_also_gets_its_successor_copies() {
    let s = setup(&["--replicas", "1"], 600);
    let expect = s.for_j(true);
    assert!(expect.len() > s.for_j(false).len());
    s.add_j_and_wait();
    assert_holds(&s.j, &expect);
}

#[test]
fn the_warm_timeout_publishes_a_copy_the_rate_keeps_from_finishing() {
    // J's ~200 keys need 10 s at 20/s; the timeout is 3 s.
    let s = setup(&["--warm-rate", "20", "--warm-timeout-ms", "3000"], 600);
    let owned = s.for_j(false).len() as u64;
    assert!(owned > 100, "{owned}");

    let t0 = Instant::now();
    set_nodes(s.config, &s.future);
    let bound = |t: Instant| 20.0 * t.elapsed().as_secs_f64() + 1.0;
    loop {
        let on_j = curr_items(&s.j);
        assert!(on_j as f64 <= bound(t0), "{on_j} items after {:?}", t0.elapsed());
        if served_nodes(s.config).0 != 1 {
            break;
        }
        assert!(t0.elapsed() < TIMEOUT + Duration::from_secs(3), "never published");
        std::thread::sleep(Duration::from_millis(100));
    }
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(3000), "published after {waited:?}, before the timeout");
    assert_eq!(served_nodes(s.config), (2, s.future.clone()));
    let on_j = curr_items(&s.j);
    assert!(on_j as f64 <= bound(t0), "{on_j} items after {:?}", t0.elapsed());
    assert!(on_j < owned, "the copy could not have finished: {on_j} of {owned}");
    let st = cluster_stats(&s.endpoint);
    assert!(st["history:2"].contains("joined after the warm timeout (3000 ms)"), "{st:?}");
    // the copy stops once the node is published
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(curr_items(&s.j), on_j);
}

#[test]
fn a_node_added_during_a_copy_is_copied_with_it_and_both_join_together() {
    // 100 items/s: J's ~300 keys take 3 s, time to add a fourth node
    let s = setup(&["--warm-rate", "100"], 900);
    let (k, nk) = start_node("127.0.0.13");
    set_nodes(s.config, &s.future);
    assert_eq!(cluster_stats(&s.endpoint)["node:2:state"], "joining");
    let mut four = s.future.clone();
    four.push(nk);
    set_nodes(s.config, &four);
    let st = cluster_stats(&s.endpoint);
    let t0 = Instant::now();
    let (version, served) = loop {
        let (v, nodes) = served_nodes(s.config);
        if nodes.len() == 4 {
            break (v, nodes);
        }
        assert!(t0.elapsed() < TIMEOUT + Duration::from_secs(10), "never published");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(served, four);
    let ring = Ring::from_nodes(Scheme::Ketama, &four);
    let of = |i: usize| s.items.iter().filter(|it| ring.owner(it.key.as_bytes()) == Some(i)).collect::<Vec<_>>();
    // K came while J's copy (about 3 s) was running: both join in one
    // version bump, each copied against the four-node ring
    assert_eq!(st["cluster_joining"], "2", "{st:?}");
    assert_eq!(version, 2, "J and K published together");
    assert_holds(&s.j, &of(2));
    assert_holds(&k, &of(3));
}

#[test]
fn a_node_back_from_a_warm_restart_gets_what_was_written_while_it_was_down() {
    let dir = temp_dir("warm-join");
    let snap = dir.join("b.snapshot");
    let (a, na) = start_node("127.0.0.10");
    let mut b = Server::start_raw(&["-l", "127.0.0.11", "-p", "-1", "--snapshot-file", snap.to_str().unwrap()]);
    let nb = Node { host: "127.0.0.11".into(), ip: "127.0.0.11".into(), port: b.port() };
    let (_endpoint, config) = start_endpoint(&[]);
    let both = [na.clone(), nb.clone()];
    set_nodes(config, &both);
    let mut all = items(300);
    fill(&[&a, &b], &both, &all);

    // B stops (writing its snapshot) and is dropped
    assert!(b.signal_and_wait(15).success());
    let t0 = Instant::now();
    while served_nodes(config).1.len() != 1 {
        assert!(t0.elapsed() < TIMEOUT, "B never dropped");
        std::thread::sleep(Duration::from_millis(20));
    }
    // meanwhile clients write B's keys to A: updates and new keys
    let ring = Ring::from_nodes(Scheme::Ketama, &both);
    let on_b = |k: &str| ring.owner(k.as_bytes()) == Some(1);
    for (i, it) in all.iter_mut().enumerate().filter(|(i, it)| i % 2 == 0 && on_b(&it.key)) {
        it.value = format!("written while B was down {i}").into_bytes();
    }
    all.extend((0..100).map(|i| Item { key: format!("late:{i}"), value: vec![b'L'; 10 + i], flags: 1, ttl: 0 }));
    let mine: Vec<&Item> = all.iter().filter(|it| on_b(&it.key)).collect();
    let copies: Vec<Item> = mine.iter().map(|it| (*it).clone()).collect();
    fill(&[&a], &[na], &copies);

    // B comes back with its snapshot: joining, then served with the news
    let b =
        Server::start_raw(&["-l", "127.0.0.11", "-p", &nb.port.to_string(), "--snapshot-file", snap.to_str().unwrap()]);
    assert!(curr_items(&b) > 0, "the snapshot was loaded");
    let t0 = Instant::now();
    while served_nodes(config).1.len() != 2 {
        assert!(t0.elapsed() < TIMEOUT, "B never served again");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(served_nodes(config), (3, both.to_vec()));
    assert_holds(&b, &mine);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Nodes close a client that leaves a full output buffer unread past their
/// `write_timeout`: a paced copy must not leave a source's metadump unread
/// while it copies (it lists the keys first, then copies).
#[test]
fn a_slow_copy_never_leaves_a_metadump_unread() {
    // 200,000 keys: each node's metadump (about 7 MB) is far more than a
    // node queues and loopback buffers hold
    let small = (0..200_000).map(|i| Item { key: format!("k{i}"), value: b"12345678".to_vec(), flags: 0, ttl: 0 });
    let mut s =
        setup_with(&["-o", "write_timeout=1"], &["--warm-rate", "50", "--warm-timeout-ms", "4000"], small.collect());
    set_nodes(s.config, &s.future);
    let t0 = Instant::now();
    while served_nodes(s.config).0 == 1 {
        assert!(t0.elapsed() < TIMEOUT + Duration::from_secs(4), "never published");
        std::thread::sleep(Duration::from_millis(100));
    }
    for node in [&s.a, &s.b] {
        assert_eq!(node.stats("ferrocache")["write_stalls"], "0", "a source closed the copy's metadump");
    }
    s.endpoint.signal_and_wait(15);
    let log = s.endpoint.stderr_text();
    assert!(!log.contains("failed"), "{log}");
    assert!(log.contains("joined after the warm timeout"), "{log}");
}

/// A node killed and started again on its address faster than the health
/// checks take it out (a container restart) holds nothing: the endpoint
/// tells the new process by its `stats` and has it join again, served
/// only once its keys are copied back from their copies on its successor.
#[test]
fn a_node_restarted_within_the_health_window_joins_again() {
    let (a, na) = start_node("127.0.0.10");
    let (mut b, nb) = start_node("127.0.0.11");
    // 1000 failed checks 100 ms apart: the restart is never seen as down
    let (endpoint, config) = start_endpoint(&["--health-failures", "1000"]);
    let both = [na.clone(), nb.clone()];
    set_nodes(config, &both);
    let all = items(300);
    fill(&[&a, &b], &both, &all);
    // B's keys also on A, its successor, as --replicas 1 keeps them
    let ring = Ring::from_nodes(Scheme::Ketama, &both);
    let mine: Vec<&Item> = all.iter().filter(|it| ring.owner(it.key.as_bytes()) == Some(1)).collect();
    let copies: Vec<Item> = mine.iter().map(|it| (*it).clone()).collect();
    fill(&[&a], &[na], &copies);
    // the endpoint knows B's process
    let t0 = Instant::now();
    while cluster_stats(&endpoint)["node:1:checks"] == "0" {
        assert!(t0.elapsed() < TIMEOUT, "B never checked");
        std::thread::sleep(Duration::from_millis(20));
    }

    assert!(!b.signal_and_wait(9).success());
    let b = Server::start_raw(&["-l", "127.0.0.11", "-p", &nb.port.to_string()]);
    assert_eq!(curr_items(&b), 0);
    let t0 = Instant::now();
    let mut versions = Vec::new();
    loop {
        let (v, nodes) = served_nodes(config);
        if versions.last() != Some(&v) {
            versions.push(v);
        }
        if v > 1 && nodes.len() == 2 {
            break;
        }
        if v > 1 {
            assert_eq!(nodes, both[..1], "B out while it joins");
        }
        assert!(t0.elapsed() < TIMEOUT + Duration::from_secs(5), "B never rejoined: versions {versions:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(served_nodes(config), (3, both.to_vec()), "out, then back after its copy: versions {versions:?}");
    assert_holds(&b, &mine);
    let st = cluster_stats(&endpoint);
    assert_eq!(st["node:1:restarts"], "1", "{st:?}");
    assert!(st["history:2"].contains("restarted (pid "), "{st:?}");
    assert!(st["history:3"].contains("warm join of"), "{st:?}");
}

/// A value over the endpoint's own `-I` is skipped (read past, not held)
/// and the rest of the copy goes on: nodes with `-I 2m`, an endpoint with
/// the default 1 MiB, a 1.5 MB item among the keys the new node owns.
#[test]
fn a_value_over_the_endpoints_item_limit_is_skipped_and_the_copy_goes_on() {
    let mut all = items(300);
    all.retain(|it| it.value.len() < 100_000);
    // the ring needs the nodes' ports: the big key is picked once they run
    let mut s = setup_with(&["-I", "2m"], &[], all);
    let ring = Ring::from_nodes(Scheme::Ketama, &s.future);
    let big = (0..1000).map(|i| format!("big:{i}")).find(|k| ring.owner(k.as_bytes()) == Some(2)).unwrap();
    let big = Item { key: big, value: vec![b'B'; 1_500_000], flags: 2, ttl: 0 };
    fill(&[&s.a, &s.b], &s.future[..2], std::slice::from_ref(&big));
    let owned = s.for_j(false);
    s.add_j_and_wait();
    assert_holds(&s.j, &owned);
    s.endpoint.signal_and_wait(15);
    let log = s.endpoint.stderr_text();
    assert!(log.contains("sent a value of 1500000 bytes, over -I (1048576): not copied"), "{log}");
    assert!(log.contains("1 over the -I limit"), "{log}");
    assert!(!log.contains("failed after"), "the copy did not fail: {log}");
}
