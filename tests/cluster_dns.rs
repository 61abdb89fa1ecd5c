//! Endpoint membership from DNS (`--cluster-dns`) against a real DNS
//! server on loopback: Debian's dnsmasq (package dnsmasq-base, which
//! `make test` installs), serving a hosts file (re-read on SIGHUP) and SRV
//! records, in front of ferrocache nodes on 127.0.0.10-13.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{config_get, temp_dir, Server, TIMEOUT};
use ferrocache::discovery::dns::{wire, Resolver};

/// The tests bind the same loopback addresses: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The dnsmasq binary (root's PATH has /usr/sbin, a user's may not).
fn dnsmasq_binary() -> Option<PathBuf> {
    let works = |p: &Path| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success());
    [PathBuf::from("dnsmasq"), PathBuf::from("/usr/sbin/dnsmasq")].into_iter().find(|p| works(p))
}

/// A dnsmasq answering for `*.test` from `hosts` and `srv` (`name,target,port`
/// entries) on a free UDP port of 127.0.0.1; killed on drop.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Dnsmasq {
    /// Starts it on `port`, or on a free one (another try if that one is
    /// taken for TCP before dnsmasq binds it).
    fn start(bin: &Path, hosts: &Path, srv: &[String], port: Option<u16>) -> Dnsmasq {
        for _ in 0..5 {
            let p = port.unwrap_or_else(|| UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
            if let Some(d) = Dnsmasq::try_start(bin, hosts, srv, p) {
                return d;
            }
            assert!(port.is_none(), "dnsmasq exited: port {p} in use?");
        }
        panic!("dnsmasq did not start on 5 free ports");
    }

    fn try_start(bin: &Path, hosts: &Path, srv: &[String], port: u16) -> Option<Dnsmasq> {
        let mut cmd = Command::new(bin);
        cmd.args(["-k", "--conf-file=/dev/null", "--listen-address=127.0.0.1", "--bind-interfaces"])
            .args(["--no-resolv", "--no-hosts", "--local=/test/", "--pid-file=", "--log-facility=-"])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", hosts.display()))
            .args(srv.iter().map(|s| format!("--srv-host={s}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start dnsmasq");
        let mut d = Dnsmasq { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        // up once it answers
        let quick = Resolver { server: d.addr, timeout: Duration::from_millis(200), attempts: 1 };
        let start = Instant::now();
        while quick.query("up.test", wire::TYPE_A).is_err() {
            if d.child.try_wait().unwrap().is_some() {
                return None;
            }
            assert!(start.elapsed() < TIMEOUT, "dnsmasq does not answer on {}", d.addr);
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(d)
    }

    fn reload(&self) {
        assert!(common::send_signal(self.child.id(), "HUP"));
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup(name: &str) -> Option<(PathBuf, PathBuf)> {
    let Some(bin) = dnsmasq_binary() else {
        eprintln!("skipped: no dnsmasq (Debian: apt-get install dnsmasq-base; `make test` installs it)");
        return None;
    };
    Some((bin, temp_dir(&format!("dns-{name}"))))
}

/// Writes the hosts file dnsmasq serves (readable by the user it drops to).
fn write_hosts(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    let _ = Command::new("chmod").arg("a+r").arg(path).status();
}

/// The endpoint, following `spec` through `dns`, polling and checking
/// every 100 ms (a dead node refuses at once: the long check timeout only
/// spares a slow machine false failures).
fn endpoint(spec: &str, dns: SocketAddr) -> Server {
    let dns = dns.to_string();
    Server::start(&[
        "--config-port",
        "0",
        "--cluster-dns",
        spec,
        "--dns-server",
        &dns,
        "--cluster-poll-ms",
        "100",
        "--health-interval-ms",
        "100",
        "--health-timeout-ms",
        "2000",
        "--health-failures",
        "3",
    ])
}

/// Polls `probe` until it gives Some (bounded).
fn wait_until<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What clients read from `config get cluster` on the config port: the
/// version and the node entries.
fn served(endpoint: &Server) -> (u64, Vec<String>) {
    config_get(endpoint.addrs[1])
}

/// Waits until the endpoint serves exactly `want` (in this order).
fn wait_served(endpoint: &Server, what: &str, want: &[String]) -> u64 {
    wait_until(what, || {
        let configured = endpoint.stats("cluster").get("cluster_version").is_some_and(|v| v != "0");
        let (version, nodes) = if configured { served(endpoint) } else { (0, Vec::new()) };
        (nodes == want).then_some(version)
    })
}

fn dns_stat(endpoint: &Server, name: &str) -> u64 {
    endpoint.stats("cluster").get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Waits for `n` more lookups of kind `counter` (lookups or failures).
fn wait_lookups(endpoint: &Server, counter: &str, n: u64) {
    let from = dns_stat(endpoint, counter);
    wait_until(counter, || (dns_stat(endpoint, counter) >= from + n).then_some(()));
}

#[test]
fn the_endpoint_serves_what_a_records_resolve_to() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((bin, dir)) = setup("a") else { return };
    // four nodes on one port (A records carry no port): the first picks it
    let mut nodes = vec![Server::start_raw(&["-l", "127.0.0.10", "-p", "-1"])];
    let port = nodes[0].port();
    for i in 11..=13 {
        nodes.push(Server::start_raw(&["-l", &format!("127.0.0.{i}"), "-p", &port.to_string()]));
    }
    let node = |i: u8| format!("127.0.0.{i}|127.0.0.{i}|{port}");
    let hosts = dir.join("hosts");
    write_hosts(&hosts, &["127.0.0.11 cache.test".into(), "127.0.0.10 cache.test".into()]);
    let dns = Dnsmasq::start(&bin, &hosts, &[], None);
    let ep = endpoint(&format!("cache.test:{port}"), dns.addr);
    // looked up before the listeners opened: served from the first request
    assert_eq!(served(&ep), (1, vec![node(10), node(11)]));

    // more records: the list follows, sorted, with one version bump
    write_hosts(
        &hosts,
        &["127.0.0.13 cache.test", "127.0.0.11 cache.test", "127.0.0.12 cache.test", "127.0.0.10 cache.test"]
            .map(String::from),
    );
    dns.reload();
    let all = [node(10), node(11), node(12), node(13)];
    assert_eq!(wait_served(&ep, "four nodes", &all), 2);
    // the same answer again and again is no change
    wait_lookups(&ep, "cluster_dns_lookups", 3);
    assert_eq!(served(&ep), (2, all.to_vec()));

    // a record removed: the node leaves
    write_hosts(&hosts, &["127.0.0.10 cache.test", "127.0.0.12 cache.test", "127.0.0.13 cache.test"].map(String::from));
    dns.reload();
    assert_eq!(wait_served(&ep, "node 11 removed", &[node(10), node(12), node(13)]), 3);

    // the DNS server gone: lookups fail and are counted, the list stays
    drop(dns);
    // (waits until two more lookups than now have failed)
    wait_lookups(&ep, "cluster_dns_failures", 2);
    assert_eq!(served(&ep), (3, vec![node(10), node(12), node(13)]));
    let st = ep.stats("cluster");
    assert!(st["cluster_dns_error"].contains("cache.test"), "{st:?}");

    // health checks still apply to resolved nodes: a dead one leaves
    let mut dead = nodes.pop().unwrap();
    assert!(dead.signal_and_wait(9).code().is_none());
    assert_eq!(wait_served(&ep, "node 13 down", &[node(10), node(12)]), 4);
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_endpoint_serves_what_srv_records_name() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((bin, dir)) = setup("srv") else { return };
    let nodes: Vec<Server> =
        (10..=12).map(|i| Server::start_raw(&["-l", &format!("127.0.0.{i}"), "-p", "-1"])).collect();
    let name = |i: usize| format!("node{i}.cache.test");
    let node = |i: usize| format!("{}|{}|{}", name(i), nodes[i].addr().ip(), nodes[i].port());
    let hosts = dir.join("hosts");
    write_hosts(&hosts, &(0..3).map(|i| format!("{} {}", nodes[i].addr().ip(), name(i))).collect::<Vec<_>>());
    let srv = |i: usize| format!("_memcache._tcp.cache.test,{},{}", name(i), nodes[i].port());
    let dns = Dnsmasq::start(&bin, &hosts, &[srv(1), srv(0)], None);
    let ep = endpoint("_memcache._tcp.cache.test", dns.addr);
    assert_eq!(wait_served(&ep, "two SRV targets", &[node(0), node(1)]), 1);

    // a third target (SRV records are command-line options: restart dnsmasq)
    let port = dns.addr.port();
    drop(dns);
    let dns = Dnsmasq::start(&bin, &hosts, &[srv(2), srv(0), srv(1)], Some(port));
    assert_eq!(wait_served(&ep, "three SRV targets", &[node(0), node(1), node(2)]), 2);
    let st = ep.stats("cluster");
    assert_eq!(st["cluster_dns_name"], "_memcache._tcp.cache.test");
    assert_eq!(st["cluster_dns_server"], dns.addr.to_string());
    drop((dns, nodes));
    let _ = std::fs::remove_dir_all(&dir);
}

/// 60 A records take about 1 KB: more than a reply without EDNS carries
/// (512 bytes), so this needs the EDNS(0) offer of the queries.
#[test]
fn an_answer_over_512_bytes_is_read_whole() {
    let Some((bin, dir)) = setup("large") else { return };
    let hosts = dir.join("hosts");
    write_hosts(&hosts, &(1..=60).map(|i| format!("10.1.0.{i} big.test")).collect::<Vec<_>>());
    let dns = Dnsmasq::start(&bin, &hosts, &[], None);
    let ips = Resolver::new(dns.addr).addresses("big.test", wire::TYPE_A).unwrap();
    assert_eq!(ips.len(), 60);
    drop(dns);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_cluster_dns_options_are_refused_at_start() {
    let refused = |args: &[&str], why: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
            .args(["-l", "127.0.0.1", "-p", "-1"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
    };
    refused(&["--cluster-dns", "cache.test"], "the port is needed");
    refused(&["--cluster-dns", "cache.test:0"], "port 0");
    refused(&["--cluster-dns", "a..b:11211"], "a label must have 1 to 63 characters");
    refused(&["--cluster-dns", "cache.test:11211", "--cluster-file", "/dev/null"], "give one");
    refused(&["--cluster-dns", "cache.test:11211", "--dns-server", "127.0.0.1"], "--dns-server");
}
