//! Auto-discovery: a configuration endpoint over real nodes on loopback.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{config_get, temp_dir, Client, Server, TIMEOUT};

fn node_line(addr: SocketAddr, name: &str) -> String {
    format!("{name}|{}|{}", addr.ip(), addr.port())
}

fn wait_for(what: &str, addr: SocketAddr, want: impl Fn(&(u64, Vec<String>)) -> bool) -> (u64, Vec<String>, Duration) {
    let start = Instant::now();
    loop {
        let view = config_get(addr);
        if want(&view) {
            return (view.0, view.1, start.elapsed());
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}: {view:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn endpoint_follows_membership_failures_and_edits() {
    let d = temp_dir("disc-flow");
    let nodes: Vec<Server> =
        (1..=3).map(|i| Server::start_raw(&["-l", &format!("127.0.0.{}", 10 + i), "-p", "-1"])).collect();
    let file = d.join("cluster");
    let lines: Vec<String> =
        nodes.iter().enumerate().map(|(i, n)| node_line(n.addr(), &format!("node{}", i + 1))).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let args = [
        "--config-port",
        "0",
        "--cluster-file",
        file.to_str().unwrap(),
        "--health-interval-ms",
        "100",
        "--health-timeout-ms",
        "200",
        "--health-failures",
        "3",
    ];
    let mut full = vec!["-l", "127.0.0.1", "-p", "-1"];
    full.extend_from_slice(&args);
    let endpoint = Server::start_raw(&full);
    let config_port = endpoint.addrs[1];
    let (v1, listed) = config_get(config_port);
    assert_eq!((v1, listed.clone()), (1, lines.clone()));
    // the cache port answers too, and version stays plain
    assert_eq!(config_get(endpoint.addr()), (1, lines.clone()));
    Client::connect(config_port).expect(b"version\r\n", b"VERSION 1.6.18\r\n");
    // legacy form
    let mut c = Client::connect(config_port);
    c.send(b"get AmazonElastiCache:cluster\r\n");
    let legacy = String::from_utf8(c.read_until(b"END\r\n")).unwrap();
    assert!(legacy.starts_with("VALUE AmazonElastiCache:cluster 0 ") && legacy.contains(&lines[2]), "{legacy}");

    // kill node 2: out after 3 failed checks, version + 1
    let mut nodes = nodes;
    let port2 = nodes[1].addr();
    let mut killed = nodes.remove(1);
    assert!(killed.signal_and_wait(9).code().is_none());
    let (v2, left, took) = wait_for("node2 removed", config_port, |(_, n)| n.len() == 2);
    assert_eq!(v2, 2);
    assert!(!left.contains(&lines[1]));
    assert!(took < Duration::from_secs(5), "{took:?}");
    // restart it on the same address: back, version + 1
    let back = Server::start_raw(&["-l", &port2.ip().to_string(), "-p", &port2.port().to_string()]);
    let (v3, all, _) = wait_for("node2 back", config_port, |(_, n)| n.len() == 3);
    assert_eq!((v3, all), (3, lines.clone()));

    // SIGHUP after an edit: a fourth node
    let fourth = Server::start_raw(&["-l", "127.0.0.14", "-p", "-1"]);
    let mut edited = lines.clone();
    edited.push(node_line(fourth.addr(), "node4"));
    std::fs::write(&file, edited.join("\n") + "\n").unwrap();
    common::send_signal(endpoint.child.id(), "HUP");
    let (v4, four, _) = wait_for("node4 joined", config_port, |(_, n)| n.len() == 4);
    assert_eq!((v4, four), (4, edited.clone()));

    // stats show the view and its history
    let st = endpoint.stats("cluster");
    assert_eq!(st["cluster_version"], "4");
    assert!(st.values().any(|v| v.contains("down after 3 failed checks")), "{st:?}");

    // the version survives an endpoint restart
    drop(endpoint);
    let endpoint = Server::start_raw(&full);
    let (v, _) = config_get(endpoint.addrs[1]);
    assert!(v >= 4, "version went back to {v}");
    drop((back, fourth, nodes));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn config_set_and_delete_as_admin_clients_use_them() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.expect(b"config get cluster\r\n", b"ERROR\r\n");
    let data = "a.local|127.0.0.1|11211 b.local||11212";
    c.expect(format!("config set cluster 0 {}\r\n{data}\r\n", data.len()).as_bytes(), b"STORED\r\n");
    let (v, nodes) = config_get(server.addr());
    assert_eq!((v, nodes), (1, vec!["a.local|127.0.0.1|11211".to_string(), "b.local||11212".to_string()]));
    // with a final \n and a version line: served with one \n
    let data = "9\nc|127.0.0.1|1\n";
    c.expect(format!("config set cluster 0 {}\r\n{data}\r\n", data.len()).as_bytes(), b"STORED\r\n");
    c.expect(b"config get cluster\r\n", b"CONFIG cluster 0 16\r\n9\nc|127.0.0.1|1\n\r\nEND\r\n");
    c.expect(b"config delete cluster\r\n", b"DELETED\r\n");
    c.expect(b"config delete cluster\r\n", b"NOT_FOUND\r\n");
    c.expect(b"config get cluster\r\n", b"ERROR\r\n");
    c.expect(b"config set cluster 0 5\r\nxxxxx\r\n", b"CLIENT_ERROR bad command line format\r\n");
    c.expect(b"config bogus cluster\r\n", b"ERROR\r\n");
}
