//! Auto-discovery: the cluster's node list for ElastiCache-style clients
//! (`config get cluster`), its version, and failure detection.
//!
//! The configured nodes come from `--cluster-file` (one `host|ip|port` per
//! line; re-read on SIGHUP and when its modification time changes) or from
//! `config set cluster`. A health-check thread sends `version` to every
//! configured node each `--health-interval-ms`; a node that fails
//! `--health-failures` checks in a row leaves the served list, and comes
//! back at its first good check. The same round trip asks `stats`, whose
//! `pid`, `uptime` and `time` tell a restarted process: a node restarted
//! faster than the failures take it out (a container restarted on the
//! same address) is *returning* too, as if it had been down. Every change to the served list bumps the
//! version by one and is logged and kept in a short history (`stats
//! cluster`). The version is persisted to `<cluster-file>.version`, so it
//! never goes backwards across a restart.
//!
//! A node added to a running cluster, or back after being down, is
//! *joining* until its future keys have been copied to it (`warm.rs`).
//! With `--cluster-dns` the configured list is what a DNS name resolves to
//! instead (`dns.rs`), looked up again every `--cluster-poll-ms`.
//!
//! Not here: the reply bytes (`format.rs`) and the listener (the config
//! port is an ordinary listener of the event loops).

pub mod dns;
pub mod format;
pub mod warm;

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

pub use format::Node;
pub use warm::WarmConfig;

/// History entries kept for `stats cluster`.
const HISTORY: usize = 32;

/// The `discovery` section of the configuration.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    pub cluster_file: Option<PathBuf>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive failed checks that take a node out.
    pub failures: u32,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            cluster_file: None,
            interval: Duration::from_millis(1000),
            timeout: Duration::from_millis(500),
            failures: 3,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Health {
    down: bool,
    failures: u32,
    checks: u64,
    /// The process that answered the last check that said who it is.
    identity: Option<Identity>,
    /// Restarts seen without the node going down.
    restarts: u64,
}

/// Who answered a health check, from its `stats`: enough to tell that
/// the process behind an address changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub pid: u64,
    /// Seconds since the process started.
    pub uptime: u64,
    /// The node's unix time, when it says (memcached does).
    pub time: Option<u64>,
}

impl Identity {
    /// The unix time the process started at, when known.
    fn started(&self) -> Option<u64> {
        self.time.map(|t| t.saturating_sub(self.uptime))
    }

    /// Why `now` is another process than `self`, if it is: another pid
    /// (a container restarted as pid 1 keeps it), an uptime gone down, or
    /// a later start (memcached's `time - uptime` is its start time; a
    /// second of slack for nodes that read the two apart).
    pub fn restart(&self, now: &Identity) -> Option<String> {
        if now.pid != self.pid {
            return Some(format!("pid {} -> {}", self.pid, now.pid));
        }
        if now.uptime < self.uptime {
            return Some(format!("uptime {} -> {} s", self.uptime, now.uptime));
        }
        match (self.started(), now.started()) {
            (Some(was), Some(is)) if is > was + 1 => Some(format!("started at {was} -> {is}")),
            _ => None,
        }
    }

    /// Reads `pid`, `uptime` and `time` from `STAT` lines; None without
    /// the first two (a node whose `stats` says neither).
    pub fn from_stats(text: &[u8]) -> Option<Identity> {
        let (mut pid, mut uptime, mut time) = (None, None, None);
        for line in text.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let mut words = line.split(|&b| b == b' ');
            if words.next() != Some(b"STAT") {
                continue;
            }
            let (Some(name), Some(value)) = (words.next(), words.next()) else { continue };
            let value = crate::num::parse_unsigned(value);
            match name {
                b"pid" => pid = value,
                b"uptime" => uptime = value,
                b"time" => time = value,
                _ => {}
            }
        }
        Some(Identity { pid: pid?, uptime: uptime?, time })
    }
}

#[derive(Debug, Default)]
struct State {
    /// None until a cluster is configured (or after `config delete`).
    configured: Option<Vec<Node>>,
    health: HashMap<Node, Health>,
    served: Vec<Node>,
    version: u64,
    history: VecDeque<(u64, u64, String)>,
    file_mtime: Option<SystemTime>,
    /// Configured, up, not yet served: their keys are being copied.
    joining: HashMap<Node, warm::Join>,
    next_join: u64,
}

/// The cluster view, shared by the event loops and the health checker.
#[derive(Debug)]
pub struct Discovery {
    cfg: DiscoveryConfig,
    state: Mutex<State>,
    /// With `-Z`: health checks speak TLS and verify the node.
    tls: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>>,
    /// Warm join settings.
    warm: WarmConfig,
    /// Wakes the warm thread when a node starts joining.
    wake: Condvar,
    /// With `--cluster-dns`: where the configured list comes from.
    dns: std::sync::OnceLock<dns::Membership>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Discovery {
    /// Loads the persisted version and the cluster file, if any.
    pub fn new(cfg: DiscoveryConfig) -> Result<Discovery, String> {
        Discovery::with_warm(cfg, WarmConfig::default())
    }

    /// As [`Discovery::new`], with the warm-join settings.
    pub fn with_warm(cfg: DiscoveryConfig, warm: WarmConfig) -> Result<Discovery, String> {
        let d = Discovery {
            cfg,
            state: Mutex::new(State::default()),
            tls: std::sync::OnceLock::new(),
            warm,
            wake: Condvar::new(),
            dns: std::sync::OnceLock::new(),
        };
        if let Some(path) = d.version_path() {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let v = text.lines().next().and_then(|l| l.trim().parse().ok());
                let v = v.ok_or_else(|| format!("{}: not a version number", path.display()))?;
                let mut s = d.state.lock();
                s.version = v;
                s.served = text.lines().nth(1).map(format::parse_nodes).transpose()?.unwrap_or_default();
            }
        }
        if d.cfg.cluster_file.is_some() {
            d.reload_file("start")?;
        }
        Ok(d)
    }

    fn version_path(&self) -> Option<PathBuf> {
        self.cfg.cluster_file.as_ref().map(|f| {
            let mut p = f.as_os_str().to_owned();
            p.push(".version");
            PathBuf::from(p)
        })
    }

    /// The health-check settings.
    pub fn config(&self) -> &DiscoveryConfig {
        &self.cfg
    }

    /// The served view: version and nodes, if a cluster is configured.
    pub fn view(&self) -> Option<(u64, Vec<Node>)> {
        let s = self.state.lock();
        s.configured.as_ref().map(|_| (s.version, s.served.clone()))
    }

    /// Recomputes the served list; bumps and persists the version if it
    /// changed. Caller holds the lock.
    fn publish(&self, s: &mut State, reason: String, at_least: u64) {
        let served: Vec<Node> = match &s.configured {
            Some(nodes) => nodes
                .iter()
                .filter(|n| !s.health.get(*n).is_some_and(|h| h.down) && !s.joining.contains_key(*n))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        if served == s.served && s.version > 0 && at_least <= s.version {
            return;
        }
        s.served = served;
        s.version = (s.version + 1).max(at_least);
        log::info!("cluster version {}: {reason}; serving {} node(s)", s.version, s.served.len());
        s.history.push_back((s.version, unix_now(), reason));
        while s.history.len() > HISTORY {
            s.history.pop_front();
        }
        if let Some(path) = self.version_path() {
            let list: Vec<String> = s.served.iter().map(Node::to_string).collect();
            let tmp = path.with_extension("version.tmp");
            let ok = std::fs::write(&tmp, format!("{}\n{}\n", s.version, list.join(" ")))
                .and_then(|_| std::fs::rename(&tmp, &path));
            if let Err(e) = ok {
                log::error!("cannot persist the cluster version to {}: {e}", path.display());
            }
        }
    }

    fn set_nodes(&self, s: &mut State, nodes: Vec<Node>, reason: String, at_least: u64) {
        s.health.retain(|n, _| nodes.contains(n));
        self.joins_for_new_list(s, &nodes);
        s.configured = Some(nodes);
        self.publish(s, reason, at_least);
    }

    /// Re-reads the cluster file (SIGHUP, a changed mtime, start).
    pub fn reload_file(&self, why: &str) -> Result<(), String> {
        let Some(path) = &self.cfg.cluster_file else { return Ok(()) };
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let nodes = format::parse_nodes(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut s = self.state.lock();
        s.file_mtime = meta.modified().ok();
        let changed = s.configured.as_ref() != Some(&nodes);
        if changed || s.version == 0 {
            self.set_nodes(&mut s, nodes, format!("cluster file read ({why})"), 0);
        }
        Ok(())
    }

    /// Re-reads the cluster file if its modification time changed.
    pub fn poll_file(&self) {
        let Some(path) = &self.cfg.cluster_file else { return };
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if mtime.is_some() && mtime != self.state.lock().file_mtime {
            if let Err(e) = self.reload_file("file changed") {
                log::error!("cluster file not reloaded: {e}");
            }
        }
    }

    /// `config set cluster`: `data` is a node list, optionally after a
    /// version line; a given version is honoured if it is higher.
    pub fn config_set(&self, data: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
        let mut lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let mut given = 0;
        if lines.len() > 1 {
            if let Ok(v) = lines[0].parse::<u64>() {
                given = v;
                lines.remove(0);
            }
        }
        let nodes = format::parse_nodes(&lines.join("\n"))?;
        let mut s = self.state.lock();
        self.set_nodes(&mut s, nodes, "config set".into(), given);
        Ok(())
    }

    /// `config delete cluster`: true if there was a configuration.
    pub fn config_delete(&self) -> bool {
        let mut s = self.state.lock();
        if s.configured.is_none() {
            return false;
        }
        s.configured = None;
        s.health.clear();
        s.joining.clear();
        self.publish(&mut s, "config delete".into(), 0);
        true
    }

    /// With `-Z`: health checks from now on speak TLS with `config`.
    pub fn set_tls(&self, config: std::sync::Arc<rustls::ClientConfig>) {
        let _ = self.tls.set(config);
    }

    /// With `--cluster-dns`: the configured list follows `membership`
    /// from the next [`Discovery::poll_dns`] on.
    pub fn follow_dns(&self, membership: dns::Membership) {
        let _ = self.dns.set(membership);
    }

    /// Whether the configured list comes from DNS.
    pub fn follows_dns(&self) -> bool {
        self.dns.get().is_some()
    }

    /// One `--cluster-dns` lookup: a new answer becomes the configured
    /// list; a failed one keeps the last (`dns::Membership::lookup` counts
    /// and logs it).
    pub fn poll_dns(&self) {
        let Some(m) = self.dns.get() else { return };
        let Ok(nodes) = m.lookup() else { return };
        let mut s = self.state.lock();
        if s.configured.as_ref() != Some(&nodes) {
            self.set_nodes(&mut s, nodes, format!("DNS {} resolved", m.name()), 0);
        }
    }

    /// One round of health checks (run by the health thread).
    pub fn check_all(&self) {
        let nodes = match &self.state.lock().configured {
            Some(n) => n.clone(),
            None => return,
        };
        let results: Vec<(Node, Option<Option<Identity>>)> = nodes
            .into_iter()
            .map(|n| {
                let answer = check(&n, self.cfg.timeout, self.tls.get());
                (n, answer)
            })
            .collect();
        let mut guard = self.state.lock();
        let s = &mut *guard;
        let (mut changes, mut back, mut restarted) = (Vec::new(), Vec::new(), Vec::new());
        for (node, answer) in results {
            if !s.configured.as_ref().is_some_and(|c| c.contains(&node)) {
                continue; // removed while we probed
            }
            let h = s.health.entry(node.clone()).or_default();
            h.checks += 1;
            if let Some(identity) = answer {
                h.failures = 0;
                let restart = h.identity.zip(identity).and_then(|(was, is)| was.restart(&is));
                h.identity = identity.or(h.identity);
                if h.down {
                    h.down = false;
                    back.push(node.clone());
                    changes.push(format!("{node} is back"));
                } else if let Some(why) = restart {
                    h.restarts += 1;
                    restarted.push((node.clone(), why));
                }
            } else {
                h.failures += 1;
                if !h.down && h.failures >= self.cfg.failures {
                    h.down = true;
                    s.joining.remove(&node);
                    changes.push(format!("{node} down after {} failed checks", h.failures));
                }
            }
        }
        for node in back {
            self.start_join(s, &node);
        }
        for (node, why) in restarted {
            // It holds nothing it held: out of the list (its successor
            // holds the copies) until its keys are copied back. A join
            // under way starts again: what it copied went with the process.
            s.joining.remove(&node);
            let joins = self.start_join(s, &node);
            let what = if joins { "joining again" } else { "served as it is (no warm join)" };
            changes.push(format!("{node} restarted ({why}): {what}"));
        }
        for reason in changes {
            log::warn!("cluster: {reason}");
            self.publish(s, reason, 0);
        }
    }

    /// `stats cluster`: name/value pairs.
    pub fn stats(&self) -> Vec<(String, String)> {
        let s = self.state.lock();
        let mut out = vec![
            ("cluster_version".to_string(), s.version.to_string()),
            ("cluster_configured".to_string(), s.configured.as_ref().map_or(0, Vec::len).to_string()),
            ("cluster_serving".to_string(), s.served.len().to_string()),
            ("cluster_joining".to_string(), s.joining.len().to_string()),
        ];
        if let Some(m) = self.dns.get() {
            out.extend(m.stats());
        }
        for (i, n) in s.configured.iter().flatten().enumerate() {
            let h = s.health.get(n).cloned().unwrap_or_default();
            let state = if h.down {
                "down"
            } else if s.joining.contains_key(n) {
                "joining"
            } else {
                "up"
            };
            out.push((format!("node:{i}:addr"), n.to_string()));
            out.push((format!("node:{i}:state"), state.to_string()));
            out.push((format!("node:{i}:failures"), h.failures.to_string()));
            out.push((format!("node:{i}:checks"), h.checks.to_string()));
            out.push((format!("node:{i}:restarts"), h.restarts.to_string()));
            self.join_stats(&s, i, n, &mut out);
        }
        for (v, at, why) in &s.history {
            out.push((format!("history:{v}"), format!("{at} {why}")));
        }
        out
    }
}

/// One health check: `version` answered with `VERSION ` within `timeout`,
/// over a connection made by [`open`].
pub fn probe(node: &Node, timeout: Duration, tls: Option<&std::sync::Arc<rustls::ClientConfig>>) -> bool {
    check(node, timeout, tls).is_some()
}

/// One health check, as [`probe`], that also asks who answered: None if
/// the check failed, else the node's [`Identity`] if its `stats` said it.
pub fn check(
    node: &Node,
    timeout: Duration,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Option<Option<Identity>> {
    open(node, timeout, tls).ok().and_then(ask_version)
}

/// A connection to a node: plain TCP or TLS.
pub trait Stream: Read + Write + Send {}

impl<T: Read + Write + Send> Stream for T {}

/// A TCP connection to `addr` (`host:port`, its first address) made
/// within `timeout`, whose reads and writes time out after it too, with
/// Nagle off: how the endpoint, the follower and the replicator reach a
/// node.
pub fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, String> {
    let to = addr.to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
    let tcp = TcpStream::connect_timeout(&to, timeout).map_err(|e| e.to_string())?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Connects to `node` within `timeout`, reads and writes timing out after
/// it too ([`connect`]); over TLS when `tls` is given, the node's certificate verified
/// against its host name (or its IP when the host is not a DNS name).
pub fn open(
    node: &Node,
    timeout: Duration,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<Box<dyn Stream>, String> {
    let tcp = connect(&node.address(), timeout)?;
    match tls {
        None => Ok(Box::new(tcp)),
        Some(config) => {
            let name = rustls::pki_types::ServerName::try_from(node.host.clone())
                .ok()
                .filter(|n| matches!(n, rustls::pki_types::ServerName::DnsName(_)) || node.ip.is_empty())
                .or_else(|| Some(rustls::pki_types::ServerName::IpAddress(tcp.peer_addr().ok()?.ip().into())))
                .ok_or("no peer address")?;
            let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
            Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
        }
    }
}

/// Most bytes of a health check's reply read (memcached's `stats` is
/// about 3 KB, ferrocache's about 2 KB).
const CHECK_REPLY_MAX: usize = 32 * 1024;
/// A health check's reads: the reply grows by at most this much a read,
/// so a usual one takes a single allocation of about its size.
const CHECK_READ: usize = 4096;

/// Sends `version` and `stats` in one write; None unless the reply starts
/// with `VERSION `. Whatever `stats` gives before its `END`, an error
/// line, the connection's end, its timeout or [`CHECK_REPLY_MAX`] is read
/// for the [`Identity`].
fn ask_version(mut s: Box<dyn Stream>) -> Option<Option<Identity>> {
    s.write_all(b"version\r\nstats\r\n").and_then(|()| s.flush()).ok()?;
    let mut buf = Vec::with_capacity(CHECK_READ);
    let mut chunk = [0u8; CHECK_READ];
    // `stats` answered: its last line is END or an error
    let complete = |b: &[u8]| {
        let Some(after_version) = b.iter().position(|&c| c == b'\n').map(|nl| &b[nl + 1..]) else { return false };
        let Some(body) = after_version.strip_suffix(b"\n") else { return false };
        let last = body.iter().rposition(|&c| c == b'\n').map_or(body, |nl| &body[nl + 1..]);
        last == b"END\r" || [&b"ERROR"[..], b"CLIENT_ERROR", b"SERVER_ERROR"].iter().any(|e| last.starts_with(e))
    };
    while buf.len() < CHECK_REPLY_MAX {
        let room = chunk.len().min(CHECK_REPLY_MAX - buf.len());
        match s.read(&mut chunk[..room]) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let head = buf.len().min(8);
        if !buf[..head].starts_with(&b"VERSION "[..head]) || complete(&buf) {
            break;
        }
    }
    let reply = &buf[..];
    let nl = reply.iter().position(|&c| c == b'\n')?;
    reply.starts_with(b"VERSION ").then(|| Identity::from_stats(&reply[nl + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a warm thread expected (none runs in these tests).
    fn disc(file: Option<PathBuf>) -> Discovery {
        let cfg = DiscoveryConfig { cluster_file: file, failures: 2, ..DiscoveryConfig::default() };
        Discovery::with_warm(cfg, WarmConfig { copier: true, ..WarmConfig::default() }).unwrap()
    }

    #[test]
    fn config_set_and_delete_bump_the_version() {
        let d = disc(None);
        assert_eq!(d.view(), None);
        d.config_set(b"a|127.0.0.1|1 b|127.0.0.1|2").unwrap();
        let (v, nodes) = d.view().unwrap();
        assert_eq!((v, nodes.len()), (1, 2));
        d.config_set(b"a|127.0.0.1|1 b|127.0.0.1|2\n").unwrap();
        assert_eq!(d.view().unwrap().0, 1, "the same list is no change");
        d.config_set(b"7\na|127.0.0.1|1\n").unwrap();
        assert_eq!(d.view().unwrap().0, 7, "a higher given version is honoured");
        d.config_set(b"3\nb|127.0.0.1|2").unwrap();
        assert_eq!(d.view().unwrap().0, 8, "a lower one is not: versions never go back");
        assert!(d.config_delete());
        assert_eq!(d.view(), None);
        assert!(!d.config_delete());
        assert!(d.config_set(b"not a node").is_err());
    }

    #[test]
    fn failed_nodes_leave_and_come_back() {
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let live_port = live.local_addr().unwrap().port();
        // a port nothing listens on
        let dead_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in live.incoming().flatten() {
                let mut c = c;
                let mut b = [0u8; 64];
                let _ = c.read(&mut b);
                let _ = c.write_all(b"VERSION 1.6.18\r\n");
            }
        });
        let d = disc(None);
        d.config_set(format!("live|127.0.0.1|{live_port} dead|127.0.0.1|{dead_port}").as_bytes()).unwrap();
        assert_eq!(d.view().unwrap().1.len(), 2);
        d.check_all();
        assert_eq!(d.view().unwrap(), (1, d.view().unwrap().1), "one failure is not enough");
        assert_eq!(d.view().unwrap().1.len(), 2);
        d.check_all();
        let (v, nodes) = d.view().unwrap();
        assert_eq!((v, nodes.len()), (2, 1), "two failures take it out");
        assert_eq!(nodes[0].port, live_port);
        let stats = d.stats();
        assert!(stats.iter().any(|(k, v)| k == "node:1:state" && v == "down"));
        assert!(stats.iter().any(|(k, v)| k == "history:2" && v.contains("down after 2 failed checks")));
    }

    fn parse_nodes(text: &str) -> Vec<Node> {
        format::parse_nodes(text).unwrap()
    }

    fn stat(d: &Discovery, name: &str) -> String {
        d.stats().into_iter().find(|(k, _)| k == name).map(|(_, v)| v).unwrap_or_default()
    }

    /// A node answering each connection's first read with `reply()`
    /// (nothing when None), then closing it.
    fn fake_node(reply: impl Fn() -> Option<String> + Send + 'static) -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut c in l.incoming().flatten() {
                let mut b = [0u8; 64];
                let _ = c.read(&mut b);
                if let Some(r) = reply() {
                    let _ = c.write_all(r.as_bytes());
                }
            }
        });
        port
    }

    /// A node whose health checks pass while `up` is set (it says no more
    /// than `VERSION`).
    fn node_with_switch() -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let u = up.clone();
        let port = fake_node(move || u.load(std::sync::atomic::Ordering::SeqCst).then(|| "VERSION 1.6.18\r\n".into()));
        (port, up)
    }

    /// A node answering `version` and `stats` with the pid in `pid`.
    fn node_with_pid(first: u64) -> (u16, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        let pid = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(first));
        let p = pid.clone();
        let port = fake_node(move || {
            let pid = p.load(std::sync::atomic::Ordering::SeqCst);
            Some(format!("VERSION 1.6.18\r\nSTAT pid {pid}\r\nSTAT uptime 10\r\nSTAT time 1700000000\r\nEND\r\n"))
        });
        (port, pid)
    }

    #[test]
    fn a_long_stats_reply_is_read_up_to_its_bound() {
        let node = |port| parse_nodes(&format!("n|127.0.0.1|{port}")).remove(0);
        // `filler` bytes of STAT lines before the pid and uptime
        let reply = |filler: usize| {
            let mut r = String::from("VERSION 1.6.18\r\n");
            while r.len() < filler {
                r.push_str("STAT filler_stat_with_a_long_name 1234567890\r\n");
            }
            r + "STAT pid 7\r\nSTAT uptime 3\r\nEND\r\n"
        };
        let found = Some(Some(Identity { pid: 7, uptime: 3, time: None }));
        let timeout = Duration::from_secs(10);
        // several reads' worth, under the bound: all read
        let port = fake_node(move || Some(reply(5 * CHECK_READ)));
        assert_eq!(check(&node(port), timeout, None), found);
        // past the bound: the check passes, the identity is not reached
        let port = fake_node(move || Some(reply(CHECK_REPLY_MAX)));
        assert_eq!(check(&node(port), timeout, None), Some(None));
    }

    #[test]
    fn identities_tell_a_restarted_process() {
        let id = |pid, uptime, time| Identity { pid, uptime, time };
        let was = id(40, 5, Some(1000));
        assert_eq!(was.restart(&id(40, 65, Some(1060))), None, "the same process a minute later");
        assert_eq!(was.restart(&id(40, 6, Some(1002))), None, "a second of slack");
        assert_eq!(was.restart(&id(41, 65, Some(1060))).unwrap(), "pid 40 -> 41");
        // a container's pid 1, restarted
        assert_eq!(was.restart(&id(40, 2, Some(1060))).unwrap(), "uptime 5 -> 2 s");
        assert_eq!(was.restart(&id(40, 30, Some(1060))).unwrap(), "started at 995 -> 1030", "checks far apart");
        assert_eq!(id(1, 5, None).restart(&id(1, 30, None)), None, "without time: pid and uptime only");
        let stats = b"STAT pid 321\r\nSTAT uptime 77\r\nSTAT time 1700000000\r\nSTAT version 1.6.18\r\nEND\r\n";
        assert_eq!(Identity::from_stats(stats), Some(id(321, 77, Some(1_700_000_000))));
        assert_eq!(Identity::from_stats(b"STAT pid 321\r\nEND\r\n"), None, "no uptime");
        assert_eq!(Identity::from_stats(b"ERROR\r\n"), None);
        assert_eq!(Identity::from_stats(b"STAT pid x\r\nSTAT uptime 1\r\n"), None);
    }

    #[test]
    fn a_node_restarted_between_checks_joins_again() {
        let (pa, _) = node_with_switch(); // says no more than VERSION
        let (pb, b_pid) = node_with_pid(100);
        let d = disc(None);
        d.config_set(format!("a|127.0.0.1|{pa} b|127.0.0.1|{pb}").as_bytes()).unwrap();
        for _ in 0..3 {
            d.check_all();
        }
        assert_eq!(d.view().unwrap().0, 1, "the same processes: no change");
        // b restarts between two checks: never down, but not what it was
        b_pid.store(200, std::sync::atomic::Ordering::SeqCst);
        d.check_all();
        let (v, nodes) = d.view().unwrap();
        assert_eq!((v, nodes), (2, parse_nodes(&format!("a|127.0.0.1|{pa}"))), "out while its keys are copied");
        assert_eq!((stat(&d, "node:1:state"), stat(&d, "node:1:restarts")), ("joining".into(), "1".into()));
        assert!(stat(&d, "history:2").contains("restarted (pid 100 -> 200): joining again"), "{:?}", d.stats());
        let first = d.state.lock().joining[&parse_nodes(&format!("b|127.0.0.1|{pb}"))[0]].id;
        d.check_all();
        assert_eq!(stat(&d, "node:1:restarts"), "1", "the new process is known now");
        // restarted again while joining: the join starts over
        b_pid.store(300, std::sync::atomic::Ordering::SeqCst);
        d.check_all();
        let again = d.state.lock().joining[&parse_nodes(&format!("b|127.0.0.1|{pb}"))[0]].id;
        assert!(again > first);
        assert_eq!(d.view().unwrap().0, 2, "still out: no bump");
        d.expire_joins(std::time::Instant::now() + Duration::from_secs(61));
        assert_eq!(d.view().unwrap().1.len(), 2);
        assert_eq!(stat(&d, "node:0:restarts"), "0", "a node without stats is only health-checked");
        assert_eq!(stat(&d, "node:0:state"), "up");
    }

    #[test]
    fn added_and_returning_nodes_join_before_they_are_served() {
        let (pa, _) = node_with_switch();
        let (pb, b_up) = node_with_switch();
        let (pc, _) = node_with_switch();
        let d = disc(None);
        // the first list is served at once
        d.config_set(format!("a|127.0.0.1|{pa} b|127.0.0.1|{pb}").as_bytes()).unwrap();
        assert_eq!(d.view().unwrap().1.len(), 2);
        // an added node joins: configured, checked, not served, no bump
        d.config_set(format!("a|127.0.0.1|{pa} b|127.0.0.1|{pb} c|127.0.0.1|{pc}").as_bytes()).unwrap();
        assert_eq!(d.view().unwrap().0, 1);
        assert_eq!(d.view().unwrap().1.len(), 2);
        assert_eq!((stat(&d, "cluster_joining"), stat(&d, "node:2:state")), ("1".into(), "joining".into()));
        assert_eq!(stat(&d, "node:2:warm_copied"), "0");
        d.check_all();
        assert_eq!(stat(&d, "node:2:checks"), "1", "a joining node is health-checked");
        d.expire_joins(std::time::Instant::now());
        assert_eq!(d.view().unwrap().0, 1, "not before --warm-timeout-ms");
        d.expire_joins(std::time::Instant::now() + Duration::from_secs(61));
        let (v, nodes) = d.view().unwrap();
        assert_eq!((v, nodes.len()), (2, 3));
        assert!(stat(&d, "history:2").contains("joined after the warm timeout"), "{:?}", d.stats());
        assert_eq!(stat(&d, "node:2:state"), "up");
        // b fails and comes back: it joins again
        b_up.store(false, std::sync::atomic::Ordering::SeqCst);
        d.check_all();
        d.check_all();
        assert_eq!(d.view().unwrap().0, 3, "b down");
        b_up.store(true, std::sync::atomic::Ordering::SeqCst);
        d.check_all();
        assert_eq!(d.view().unwrap().0, 3, "b back, joining");
        assert_eq!(stat(&d, "node:1:state"), "joining");
        // down while joining: it stops joining
        b_up.store(false, std::sync::atomic::Ordering::SeqCst);
        d.check_all();
        d.check_all();
        assert_eq!((stat(&d, "node:1:state"), stat(&d, "cluster_joining")), ("down".into(), "0".into()));
        // removed while joining: forgotten
        b_up.store(true, std::sync::atomic::Ordering::SeqCst);
        d.check_all();
        assert_eq!(stat(&d, "cluster_joining"), "1");
        d.config_set(format!("a|127.0.0.1|{pa} c|127.0.0.1|{pc}").as_bytes()).unwrap();
        assert_eq!(stat(&d, "cluster_joining"), "0");
        // nodes replacing every served one are served at once
        d.config_set(format!("b|127.0.0.1|{pb}").as_bytes()).unwrap();
        assert_eq!(d.view().unwrap().1, parse_nodes(&format!("b|127.0.0.1|{pb}")));
    }

    #[test]
    fn without_warm_timeout_or_warm_thread_added_nodes_are_served_at_once() {
        for warm in [
            WarmConfig { timeout: Duration::ZERO, copier: true, ..WarmConfig::default() },
            // no warm thread (a node given its list by `config set`)
            WarmConfig::default(),
        ] {
            let d = Discovery::with_warm(DiscoveryConfig::default(), warm).unwrap();
            d.config_set(b"a|127.0.0.1|1").unwrap();
            d.config_set(b"a|127.0.0.1|1 b|127.0.0.1|2").unwrap();
            assert_eq!(d.view().unwrap().0, 2);
            assert_eq!(stat(&d, "cluster_joining"), "0");
        }
    }

    #[test]
    fn the_version_survives_a_restart_and_the_file_is_followed() {
        let dir = std::env::temp_dir().join(format!("ferrocache-disc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("cluster");
        std::fs::write(&file, "a|127.0.0.1|1\n").unwrap();
        let d = disc(Some(file.clone()));
        assert_eq!(d.view().unwrap().0, 1);
        std::fs::write(&file, "a|127.0.0.1|1\nb|127.0.0.1|2\n").unwrap();
        d.reload_file("SIGHUP").unwrap();
        assert_eq!(d.view().unwrap(), (1, parse_nodes("a|127.0.0.1|1")), "b joins before it is served");
        d.expire_joins(std::time::Instant::now() + Duration::from_secs(61));
        assert_eq!(d.view().unwrap().0, 2);
        drop(d);
        // restart with the same file: same list, same version
        let d = disc(Some(file.clone()));
        assert_eq!(d.view().unwrap().0, 2);
        // restart with a changed file: one more, never back to 1
        std::fs::write(&file, "c|127.0.0.1|3\n").unwrap();
        let d = disc(Some(file.clone()));
        assert_eq!(d.view().unwrap().0, 3);
        drop(d);
        // a node added while the endpoint was down joins: clients still
        // use the list served before the restart
        std::fs::write(&file, "c|127.0.0.1|3\nd|127.0.0.1|4\n").unwrap();
        let d = disc(Some(file.clone()));
        assert_eq!(d.view().unwrap(), (3, parse_nodes("c|127.0.0.1|3")));
        assert_eq!(stat(&d, "node:1:state"), "joining");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
