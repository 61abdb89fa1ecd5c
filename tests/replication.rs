//! `--replicas 1`: nodes following an endpoint copy the writes they own to
//! each key's successor, on loopback (127.0.0.10, .11, .12).

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{base64, bin, config_set, http, node_list, Client, Server, TIMEOUT};
use ferrocache::cluster::{Ring, Scheme};
use ferrocache::discovery::Node;

fn node_of(addr: SocketAddr) -> Node {
    Node { host: addr.ip().to_string(), ip: addr.ip().to_string(), port: addr.port() }
}

/// Waits (bounded) until `stats cluster` of `s` satisfies `want`.
fn wait_stats(s: &Server, what: &str, want: impl Fn(&HashMap<String, String>) -> bool) -> HashMap<String, String> {
    let start = Instant::now();
    loop {
        let st = s.stats("cluster");
        if want(&st) {
            return st;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}: {st:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn num(st: &HashMap<String, String>, k: &str) -> i64 {
    st.get(k).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no {k} in {st:?}"))
}

/// Sum of `peer:*:<field>`.
fn peers_sum(st: &HashMap<String, String>, field: &str) -> i64 {
    st.iter()
        .filter(|(k, _)| k.starts_with("peer:") && k.ends_with(&format!(":{field}")))
        .map(|(_, v)| v.parse::<i64>().unwrap())
        .sum()
}

/// `mg <key> v f t` (`b`: the key in base64) -> the reply head and the
/// value, or None on a miss.
fn meta_get(c: &mut Client, key_token: &str, b64: bool) -> Option<(String, String)> {
    let flag = if b64 { " b" } else { "" };
    c.send(format!("mg {key_token} v f t{flag}\r\nmn\r\n").as_bytes());
    let reply = String::from_utf8(c.read_until(b"MN\r\n")).unwrap();
    if reply == "EN\r\nMN\r\n" {
        return None;
    }
    let (head, rest) = reply.split_once("\r\n").unwrap();
    assert!(head.starts_with("VA "), "{reply:?}");
    let value = rest.strip_suffix("\r\nMN\r\n").unwrap();
    Some((head.to_string(), value.to_string()))
}

/// Waits (bounded) until the node `c` speaks to has `key_token` and
/// `want` accepts it; returns the reply head and the value.
fn wait_copy(c: &mut Client, key_token: &str, b64: bool, want: impl Fn(&str, &str) -> bool) -> (String, String) {
    let start = Instant::now();
    loop {
        if let Some((head, value)) = meta_get(c, key_token, b64) {
            if want(&head, &value) {
                return (head, value);
            }
        }
        assert!(start.elapsed() < TIMEOUT, "no copy of {key_token} arrived, or not the one expected");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until `key` is gone from the node `c` speaks to.
fn wait_gone(c: &mut Client, key: &str) {
    let start = Instant::now();
    while meta_get(c, key, false).is_some() {
        assert!(start.elapsed() < TIMEOUT, "{key} was not deleted on the copy");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `t` (remaining TTL) of a meta reply head.
fn ttl_of(head: &str) -> i64 {
    head.split(' ').find_map(|t| t.strip_prefix('t')).unwrap().parse().unwrap()
}

fn start_node(ip: &str, endpoint: SocketAddr) -> Server {
    let e = endpoint.to_string();
    Server::start_raw(&["-l", ip, "-p", "-1", "--cluster-endpoint", &e, "--cluster-poll-ms", "50", "--replicas", "1"])
}

#[test]
fn owners_copy_writes_to_successors() {
    let endpoint = Server::start(&["--config-port", "0"]);
    let config_addr = endpoint.addrs[1];
    let servers: Vec<Server> =
        ["127.0.0.10", "127.0.0.11", "127.0.0.12"].iter().map(|ip| start_node(ip, config_addr)).collect();
    let nodes: Vec<Node> = servers.iter().map(|s| node_of(s.addr())).collect();
    config_set(config_addr, &node_list(&nodes));
    for (i, s) in servers.iter().enumerate() {
        let st = wait_stats(s, "the node to find itself", |st| st.get("node_view_self") == Some(&i.to_string()));
        assert_eq!(num(&st, "node_view_nodes"), 3);
        assert_eq!(st["node_id"], format!("{}:{}", nodes[i].host, nodes[i].port));
        assert_eq!(st["replicas"], "1");
    }
    let ring = Ring::from_nodes(Scheme::Ketama, &nodes);
    let mut clients: Vec<Client> = servers.iter().map(Server::connect).collect();

    // sets through the owner, with flags and TTLs; a third of them also
    // written to a node that does not own them (not copied)
    let keys: Vec<String> = (0..90).map(|i| format!("user:{i}")).collect();
    let mut not_owner_writes = [0i64; 3];
    let mut owned_extra = 0;
    for (i, key) in keys.iter().enumerate() {
        let owner = ring.owner(key.as_bytes()).unwrap();
        let ttl = if i % 2 == 0 { 0 } else { 1000 };
        let value = format!("value-{i}");
        let c = &mut clients[owner];
        c.expect(format!("set {key} {i} {ttl} {}\r\n{value}\r\n", value.len()).as_bytes(), b"STORED\r\n");
        if i % 3 == 0 {
            let other = (owner + 1) % 3;
            let v = "elsewhere";
            clients[other].expect(format!("set {key}:x 0 0 {}\r\n{v}\r\n", v.len()).as_bytes(), b"STORED\r\n");
            if ring.owner(format!("{key}:x").as_bytes()) == Some(other) {
                owned_extra += 1;
            } else {
                not_owner_writes[other] += 1;
            }
        }
    }
    for (i, key) in keys.iter().enumerate() {
        let owner = ring.owner(key.as_bytes()).unwrap();
        let succ = ring.successor(key.as_bytes()).unwrap();
        let (head, value) = wait_copy(&mut clients[succ], key, false, |_, _| true);
        assert_eq!(value, format!("value-{i}"), "{key}");
        assert!(head.split(' ').any(|t| t == format!("f{i}")), "{key}: {head}");
        let ttl = ttl_of(&head);
        if i % 2 == 0 {
            assert_eq!(ttl, -1, "{key}: {head}");
        } else {
            assert!((990..=1000).contains(&ttl), "{key}: {head}");
        }
        // the third node has no copy
        let third = 3 - owner - succ;
        clients[third].expect(format!("mg {key} v\r\n").as_bytes(), b"EN\r\n");
    }

    // other writes: append, incr, touch, then delete
    let key = keys.iter().find(|k| ring.owner(k.as_bytes()) == Some(0)).unwrap();
    let succ = ring.successor(key.as_bytes()).unwrap();
    clients[0].expect(format!("append {key} 0 0 2\r\n-a\r\n").as_bytes(), b"STORED\r\n");
    clients[0].expect(format!("touch {key} 500\r\n").as_bytes(), b"TOUCHED\r\n");
    wait_copy(&mut clients[succ], key, false, |head, value| {
        value.ends_with("-a") && (490..=500).contains(&ttl_of(head))
    });
    let counter = (0..).map(|i| format!("counter:{i}")).find(|k| ring.owner(k.as_bytes()) == Some(1)).unwrap();
    let csucc = ring.successor(counter.as_bytes()).unwrap();
    clients[1].expect(format!("set {counter} 0 0 1\r\n5\r\n").as_bytes(), b"STORED\r\n");
    clients[1].expect(format!("incr {counter} 10\r\n").as_bytes(), b"15\r\n");
    wait_copy(&mut clients[csucc], &counter, false, |_, value| value == "15");
    clients[0].expect(format!("delete {key}\r\n").as_bytes(), b"DELETED\r\n");
    wait_gone(&mut clients[succ], key);
    // meta delete too
    let mkey = keys.iter().find(|k| ring.owner(k.as_bytes()) == Some(2)).unwrap();
    clients[2].expect(format!("md {mkey}\r\n").as_bytes(), b"HD\r\n");
    wait_gone(&mut clients[ring.successor(mkey.as_bytes()).unwrap()], mkey);
    // a vivifying mg creates an item on its owner: copied too
    let vkey = (0..).map(|i| format!("viv:{i}")).find(|k| ring.owner(k.as_bytes()) == Some(1)).unwrap();
    clients[1].send(format!("mg {vkey} N30 v\r\n").as_bytes());
    clients[1].read_until(b"\r\n");
    let (head, _) = wait_copy(&mut clients[ring.successor(vkey.as_bytes()).unwrap()], &vkey, false, |_, _| true);
    assert!((20..=30).contains(&ttl_of(&head)), "{head}");

    // a binary-protocol key the text protocol cannot carry goes in base64
    let bkey = (0..).map(|i| format!("bin key {i}")).find(|k| ring.owner(k.as_bytes()) == Some(0)).unwrap();
    let bsucc = ring.successor(bkey.as_bytes()).unwrap();
    let mut extras = 77u32.to_be_bytes().to_vec();
    extras.extend_from_slice(&0u32.to_be_bytes());
    let r = servers[0].connect().bin_call(&bin(0x01, &extras, bkey.as_bytes(), b"binval", 0, 0));
    assert_eq!(r.status, 0);
    let b64 = base64(bkey.as_bytes());
    let (head, value) = wait_copy(&mut clients[bsucc], &b64, true, |_, _| true);
    assert!(value == "binval" && head.split(' ').any(|t| t == "f77"), "{head} {value}");

    // copies are not copied again; writes a node does not own are counted
    let start = Instant::now();
    loop {
        let stats: Vec<_> = servers.iter().map(|s| s.stats("cluster")).collect();
        let settled = stats.iter().all(|st| peers_sum(st, "queued") == 0);
        let enqueued: i64 = stats.iter().map(|st| peers_sum(st, "enqueued")).sum();
        let sent: i64 = stats.iter().map(|st| peers_sum(st, "sent")).sum();
        // 90 sets, append, touch, set+incr, delete, md, vivify, binary set
        if settled && sent == enqueued {
            assert_eq!(enqueued, 90 + owned_extra + 2 + 2 + 2 + 1 + 1, "{stats:?}");
            for (i, st) in stats.iter().enumerate() {
                assert_eq!(num(st, "replica_not_copied"), not_owner_writes[i], "node {i}: {st:?}");
                assert_eq!(peers_sum(st, "dropped"), 0);
                assert_eq!(peers_sum(st, "refused"), 0);
                assert_eq!(num(st, "replica_queue_bytes"), 0);
            }
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "queues did not drain: {stats:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // a write on a replication connection is not copied on
    let mut repl = servers[0].connect();
    repl.expect(b"ferrocache_replica\r\n", b"OK\r\n");
    let k = keys.iter().find(|k| ring.owner(k.as_bytes()) == Some(0)).unwrap();
    let before = peers_sum(&servers[0].stats("cluster"), "enqueued");
    repl.expect(format!("ms {k} 3 T0\r\nnew\r\n").as_bytes(), b"HD\r\n");
    assert_eq!(peers_sum(&servers[0].stats("cluster"), "enqueued"), before);
    assert_eq!(num(&servers[0].stats("cluster"), "replica_not_copied"), not_owner_writes[0]);

    // the endpoint drops node 2: node 0's keys that went to 2 go to 1 now
    config_set(config_addr, &node_list(&nodes[..2]));
    for s in &servers {
        wait_stats(s, "the smaller view", |st| st.get("node_view_nodes").map(String::as_str) == Some("2"));
    }
    let st2 = servers[2].stats("cluster");
    assert_eq!((st2["node_view_self"].as_str(), st2.contains_key("peer:0:addr")), ("-1", false), "{st2:?}");
    let st0 = servers[0].stats("cluster");
    assert!(st0.contains_key("peer:0:addr") && !st0.contains_key("peer:1:addr"), "{st0:?}");
    let smaller = Ring::from_nodes(Scheme::Ketama, &nodes[..2]);
    let moved = (0..)
        .map(|i| format!("after:{i}"))
        .find(|k| smaller.owner(k.as_bytes()) == Some(0) && ring.successor(k.as_bytes()) == Some(2))
        .unwrap();
    clients[0].expect(format!("set {moved} 3 0 5\r\nmoved\r\n").as_bytes(), b"STORED\r\n");
    wait_copy(&mut clients[1], &moved, false, |_, value| value == "moved");

    // the endpoint goes away: nodes keep their last list, and copy by it
    let version = num(&st0, "node_view_version");
    drop(endpoint);
    let st0 = wait_stats(&servers[0], "the endpoint to be missed", |st| {
        st.get("node_endpoint_reachable").map(String::as_str) == Some("0")
    });
    assert_eq!(num(&st0, "node_view_version"), version);
    assert!(num(&st0, "node_poll_failures") > 0);
    let later = (0..).map(|i| format!("later:{i}")).find(|k| smaller.owner(k.as_bytes()) == Some(0)).unwrap();
    clients[0].expect(format!("set {later} 0 0 4\r\nkept\r\n").as_bytes(), b"STORED\r\n");
    wait_copy(&mut clients[1], &later, false, |_, value| value == "kept");

    // an invalidated item reaches the copy stale: the next mg there wins
    // the recache (W) and sees it stale (X)
    clients[0].expect(format!("md {later} I\r\n").as_bytes(), b"HD\r\n");
    let (head, value) = wait_copy(&mut clients[1], &later, false, |head, _| head.split(' ').any(|t| t == "X"));
    assert!(value == "kept" && head.split(' ').any(|t| t == "W"), "{head}");
    clients[1].expect(format!("mg {later} v\r\n").as_bytes(), b"VA 4 Z X\r\nkept\r\n");

    // a delete that finds nothing on the owner still reaches the copy
    let gone = (0..).map(|i| format!("gone:{i}")).find(|k| smaller.owner(k.as_bytes()) == Some(0)).unwrap();
    clients[0].expect(format!("set {gone} 0 0 3\r\nold\r\n").as_bytes(), b"STORED\r\n");
    wait_copy(&mut clients[1], &gone, false, |_, value| value == "old");
    clients[0].expect(b"flush_all\r\n", b"OK\r\n");
    clients[0].expect(format!("delete {gone}\r\n").as_bytes(), b"NOT_FOUND\r\n");
    wait_gone(&mut clients[1], &gone);
    // meta delete too, but not a delete whose CAS is refused
    let mgone = (0..).map(|i| format!("mgone:{i}")).find(|k| smaller.owner(k.as_bytes()) == Some(0)).unwrap();
    clients[0].expect(format!("set {mgone} 0 0 3\r\nold\r\n").as_bytes(), b"STORED\r\n");
    wait_copy(&mut clients[1], &mgone, false, |_, value| value == "old");
    let enqueued = peers_sum(&servers[0].stats("cluster"), "enqueued");
    clients[0].expect(format!("md {mgone} C999999\r\n").as_bytes(), b"EX\r\n");
    assert_eq!(peers_sum(&servers[0].stats("cluster"), "enqueued"), enqueued);
    clients[0].expect(b"flush_all\r\n", b"OK\r\n");
    clients[0].expect(format!("md {mgone}\r\n").as_bytes(), b"NF\r\n");
    wait_gone(&mut clients[1], &mgone);
}

/// A peer on 127.0.0.11 that accepts connections and never reads from them.
fn black_hole() -> SocketAddr {
    let hole = TcpListener::bind("127.0.0.11:0").unwrap();
    let addr = hole.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for s in hole.incoming().flatten() {
            held.push(s);
        }
    });
    addr
}

/// A `--replicas 1` node on 127.0.0.10 with `/metrics`, and the metrics
/// address.
fn start_with_metrics(more: &[&str]) -> (Server, String) {
    let mut args = vec!["-l", "127.0.0.10", "-p", "-1", "--replicas", "1", "--cluster-poll-ms", "50"];
    args.extend_from_slice(more);
    args.extend_from_slice(&["--metrics-port", "0"]);
    let mut node = Server::start_raw(&args);
    let metrics = node.metrics_addr();
    (node, metrics)
}

/// The response (head and body) to `GET /metrics`.
fn scrape(metrics: &str) -> String {
    http(metrics, "GET /metrics HTTP/1.0\r\n\r\n")
}

#[test]
fn a_black_holed_peer_never_slows_clients() {
    let hole_addr = black_hole();
    let (node, metrics) = start_with_metrics(&["-m", "128"]);
    let nodes = vec![node_of(node.addr()), node_of(hole_addr)];
    // the node is its own endpoint here: it follows its local list
    config_set(node.addr(), &node_list(&nodes));
    wait_stats(&node, "the hole as a peer", |st| st.get("peer:0:addr") == Some(&nodes[1].to_string()));
    let ring = Ring::from_nodes(Scheme::Ketama, &nodes);
    let value = vec![b'x'; 64 * 1024];
    let mut c = node.connect();
    let start = Instant::now();
    let mut written = 0;
    // 16 MiB of copies fill the peer's queue: 400 values of 64 KiB pass it
    for i in 0.. {
        let key = format!("big:{i}");
        if ring.owner(key.as_bytes()) != Some(0) {
            continue;
        }
        c.send(format!("set {key} 0 0 {}\r\n", value.len()).as_bytes());
        c.send(&value);
        c.expect(b"\r\n", b"STORED\r\n");
        written += 1;
        if written == 400 {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "400 sets took longer than {TIMEOUT:?}");
    }
    let st = node.stats("cluster");
    assert!(num(&st, "peer:0:dropped") > 0, "{st:?}");
    assert_eq!(num(&st, "peer:0:sent"), 0);
    assert!(num(&st, "peer:0:bytes_queued") <= num(&st, "replica_peer_queue_limit"), "{st:?}");
    assert!(num(&st, "replica_queue_bytes") <= num(&st, "replica_queue_limit"));
    // every set was answered while the peer read nothing (that a full
    // queue refuses a copy without waiting is a unit test of replicate.rs)
    // the node answers at once still
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
    // and the metrics show the drops, by peer
    let body = scrape(&metrics);
    let line = format!("ferrocache_replica_dropped_total{{peer=\"{hole_addr}\"}} ");
    let dropped: f64 =
        body.lines().find_map(|l| l.strip_prefix(&line)).unwrap_or_else(|| panic!("{body}")).parse().unwrap();
    assert!(dropped > 0.0);
    assert!(body.contains("# TYPE ferrocache_replica_queue_bytes gauge"));
    assert!(body.contains("ferrocache_cluster_view_version 1\n"), "{body}");
}

#[test]
fn addresses_listed_twice_get_one_sender_and_one_series() {
    let hole_addr = black_hole();
    let (node, metrics) = start_with_metrics(&[]);
    let me = node_of(node.addr());
    let other = node_of(hole_addr);
    config_set(node.addr(), &node_list(&[me.clone(), other.clone(), me, other.clone()]));
    let st = wait_stats(&node, "the list", |st| st.get("node_view_nodes").map(String::as_str) == Some("4"));
    assert_eq!(st.get("peer:0:addr"), Some(&other.to_string()), "{st:?}");
    assert!(!st.contains_key("peer:1:addr"), "one sender per address, none to this node: {st:?}");
    let body = scrape(&metrics);
    let (_, samples) = body.split_once("\r\n\r\n").unwrap();
    let mut seen = std::collections::HashSet::new();
    for line in samples.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let series = line.rsplit_once(' ').unwrap().0;
        assert!(seen.insert(series.to_string()), "{series} twice in\n{body}");
    }
    assert!(body.contains(&format!("ferrocache_replica_connected{{peer=\"{hole_addr}\"}} ")), "{body}");
    assert!(body.contains(&format!("ferrocache_replica_oldest_copy_seconds{{peer=\"{hole_addr}\"}} ")), "{body}");
}
