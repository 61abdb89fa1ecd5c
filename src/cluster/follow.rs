//! The node's view of the served node list, kept as clients keep theirs.
//!
//! Two sources: `--cluster-endpoint HOST:PORT`, polled with `config get
//! cluster` every `--cluster-poll-ms` by the `cluster-follow` thread; or,
//! without it, the node's own [`Discovery`] (`--cluster-file`, `config set
//! cluster`), read locally at the same interval. A list is taken only when
//! its version is greater than the one held, as clients do, with one
//! exception: the first list read over a new connection to the endpoint is
//! taken whenever it differs from the one held, whatever its version (an
//! endpoint restarted without its version file counts from 1 again). A list
//! of more than [`MAX_NODES`] nodes is refused with a logged error. An
//! unreachable endpoint leaves the last list in place: it is logged once per
//! outage and counted. A local list deleted (`config delete cluster`)
//! becomes the empty view, version 0.
//!
//! The view is an immutable snapshot ([`View`]) behind a read-write lock:
//! readers clone an `Arc`, the follower swaps in a new one.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::ring::{ring_name, Ring, Scheme};
use crate::discovery::{format, Discovery, Node};

/// Largest `config get cluster` reply read (a list of thousands of nodes).
const MAX_REPLY: usize = 1 << 20;

/// Most nodes a list may hold: a larger one is refused (its ring would cost
/// up to 3 MiB of points per thousand nodes, built on every change).
pub const MAX_NODES: usize = 1024;

/// One served list, its ring, and where this node is in it.
#[derive(Debug, Default)]
pub struct View {
    pub version: u64,
    pub nodes: Vec<Node>,
    pub ring: Ring,
    /// This node's first index in `nodes`, if it is listed.
    pub me: Option<usize>,
    /// Every index of `nodes` naming this node, ascending (a node listed
    /// twice has two).
    mine: Vec<usize>,
}

impl View {
    /// The view of `nodes` at `version` for the node that `id` names (or
    /// that listens on `listen`).
    pub fn new(version: u64, nodes: Vec<Node>, scheme: Scheme, id: Option<&str>, listen: &[SocketAddr]) -> View {
        let ring = Ring::from_nodes(scheme, &nodes);
        let mine = find_selves(&nodes, scheme, id, listen);
        View { version, nodes, ring, me: mine.first().copied(), mine }
    }

    /// True if entry `idx` of the list names this node.
    pub fn is_me(&self, idx: usize) -> bool {
        self.mine.binary_search(&idx).is_ok()
    }

    /// Where this node copies `key` to: None unless the key's owner is one
    /// of this node's entries; then the first node past the owner on the
    /// ring that is not this node under any of its entries (None if there
    /// is no other node).
    pub fn copy_target(&self, key: &[u8]) -> Option<usize> {
        if self.mine.is_empty() {
            return None;
        }
        let (owner, next) = self.ring.placement_skipping(key, |i| self.is_me(i))?;
        if self.is_me(owner) {
            next
        } else {
            None
        }
    }
}

/// The first index of this node in `nodes` (see [`find_selves`]).
pub fn find_self(nodes: &[Node], scheme: Scheme, id: Option<&str>, listen: &[SocketAddr]) -> Option<usize> {
    find_selves(nodes, scheme, id, listen).first().copied()
}

/// Every index of this node in `nodes`: those `id` names (its ring name,
/// `host:port` or `ip:port`), or without an id those whose `ip:port` (or
/// `host:port`, the host an IP) is one of the listen addresses. A listen
/// address of all interfaces (`0.0.0.0`, `::`) matches an entry on its port
/// whose IP is one of this host's (one it can bind).
pub fn find_selves(nodes: &[Node], scheme: Scheme, id: Option<&str>, listen: &[SocketAddr]) -> Vec<usize> {
    let same = |text: &str, a: &SocketAddr| text.parse::<IpAddr>().is_ok_and(|ip| ip == a.ip());
    let id_addr: Option<SocketAddr> = id.and_then(|id| id.parse().ok());
    let is_me = |n: &Node| match id {
        Some(id) => {
            ring_name(scheme, n) == id
                || format!("{}:{}", n.host, n.port) == id
                || (!n.ip.is_empty() && format!("{}:{}", n.ip, n.port) == id)
                || id_addr.is_some_and(|a| a.port() == n.port && (same(&n.ip, &a) || same(&n.host, &a)))
        }
        None => {
            let ip = if n.ip.is_empty() { &n.host } else { &n.ip };
            let ip: Option<IpAddr> = ip.parse().ok();
            listen.iter().any(|a| {
                a.port() == n.port && ip.is_some_and(|ip| ip == a.ip() || (a.ip().is_unspecified() && is_local_ip(ip)))
            })
        }
    };
    nodes.iter().enumerate().filter(|(_, n)| is_me(n)).map(|(i, _)| i).collect()
}

/// True if `ip` is one of this host's addresses: a socket can be bound to
/// it.
fn is_local_ip(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Parses a `config get cluster` reply: `Ok(None)` until it is complete,
/// then the version, the nodes and the bytes it took.
pub fn parse_config_reply(buf: &[u8]) -> Result<Option<(u64, Vec<Node>, usize)>, String> {
    let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() > 256 { Err("no line end in the reply head".into()) } else { Ok(None) };
    };
    let head = std::str::from_utf8(&buf[..eol]).map_err(|_| "reply head not UTF-8".to_string())?;
    let n: usize = match head.strip_prefix("CONFIG cluster 0 ") {
        Some(n) => n.trim().parse().map_err(|_| format!("bad length in {head:?}"))?,
        None => return Err(format!("unexpected reply {head:?}")),
    };
    if n > MAX_REPLY {
        return Err(format!("reply of {n} bytes refused"));
    }
    let body_start = eol + 2;
    let end = body_start + n + b"\r\nEND\r\n".len();
    if buf.len() < end {
        return Ok(None);
    }
    if &buf[body_start + n..end] != b"\r\nEND\r\n" {
        return Err("reply does not end with END".into());
    }
    let body = std::str::from_utf8(&buf[body_start..body_start + n]).map_err(|_| "list not UTF-8".to_string())?;
    let mut lines = body.lines();
    let version = lines.next().and_then(|v| v.trim().parse().ok()).ok_or("no version line")?;
    let nodes = format::parse_nodes(lines.next().unwrap_or(""))?;
    Ok(Some((version, nodes, end)))
}

/// Where the follower reads the list from.
enum Source {
    Endpoint { addr: String, conn: Mutex<Option<TcpStream>> },
    Local,
}

/// Called with each new view (from the follower thread).
pub type OnChange = Box<dyn Fn(&Arc<View>) + Send + Sync>;

/// This node's view and how it keeps it up to date.
pub struct Follower {
    view: RwLock<Arc<View>>,
    source: Source,
    scheme: Scheme,
    id: Option<String>,
    listen: Vec<SocketAddr>,
    timeout: Duration,
    /// Polls of the endpoint, and those that failed.
    pub polls: AtomicU64,
    pub poll_failures: AtomicU64,
    /// False from a failed poll to the next good one.
    reachable: AtomicBool,
    /// Set when this node must find itself in the list (`--replicas 1`): a
    /// view without it is logged as an error.
    require_self: AtomicBool,
    /// The version of the last list refused for its size (logged once).
    refused: AtomicU64,
    on_change: OnceLock<OnChange>,
}

impl Follower {
    /// A follower of `endpoint` (or, when None, of the local discovery
    /// view), for the node named `id` or listening on `listen`.
    pub fn new(
        endpoint: Option<String>,
        scheme: Scheme,
        id: Option<String>,
        listen: Vec<SocketAddr>,
        poll: Duration,
    ) -> Follower {
        let source = match endpoint {
            Some(addr) => Source::Endpoint { addr, conn: Mutex::new(None) },
            None => Source::Local,
        };
        Follower {
            view: RwLock::new(Arc::new(View::default())),
            source,
            scheme,
            id,
            listen,
            timeout: poll.clamp(Duration::from_millis(200), Duration::from_secs(2)),
            polls: AtomicU64::new(0),
            poll_failures: AtomicU64::new(0),
            reachable: AtomicBool::new(true),
            require_self: AtomicBool::new(false),
            refused: AtomicU64::new(u64::MAX),
            on_change: OnceLock::new(),
        }
    }

    /// The current view (a cheap `Arc` clone).
    pub fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// Logs each view this node is not in as an error (with `--replicas
    /// 1`, nothing is copied then) rather than a warning.
    pub fn require_self(&self) {
        self.require_self.store(true, Ordering::Relaxed);
    }

    /// Registers the one function told of each new view.
    pub fn set_on_change(&self, f: OnChange) {
        let _ = self.on_change.set(f);
    }

    /// The endpoint followed, if any.
    pub fn endpoint(&self) -> Option<&str> {
        match &self.source {
            Source::Endpoint { addr, .. } => Some(addr),
            Source::Local => None,
        }
    }

    /// This node's name in the view: its `--node-id`, or the ring name of
    /// the entry it found itself in.
    pub fn node_id(&self) -> Option<String> {
        let v = self.view();
        self.id.clone().or_else(|| v.me.map(|i| ring_name(self.scheme, &v.nodes[i])))
    }

    /// Takes `nodes` if `version` is newer than the view's; true if taken.
    pub fn offer(&self, version: u64, nodes: Vec<Node>) -> bool {
        self.take(version, nodes, false)
    }

    /// Takes `nodes` if `version` is newer than the view's or, with
    /// `any_version` (the first list of a new connection), if the version
    /// or the list differs from the view's; never a list of more than
    /// [`MAX_NODES`]. True if taken.
    fn take(&self, version: u64, nodes: Vec<Node>, any_version: bool) -> bool {
        if nodes.len() > MAX_NODES {
            if self.refused.swap(version, Ordering::Relaxed) != version {
                log::error!(
                    "cluster view {version}: {} nodes, more than the {MAX_NODES} a list may hold; refused, keeping view {}",
                    nodes.len(),
                    self.view.read().version
                );
            }
            return false;
        }
        let wanted = |held: &View, nodes: &[Node]| {
            if any_version {
                held.version != version || held.nodes != nodes
            } else {
                version > held.version
            }
        };
        if !wanted(&self.view.read(), &nodes) {
            return false;
        }
        let v = Arc::new(View::new(version, nodes, self.scheme, self.id.as_deref(), &self.listen));
        let held = {
            let mut w = self.view.write();
            if !wanted(&w, &v.nodes) {
                return false;
            }
            std::mem::replace(&mut *w, v.clone()).version
        };
        if version <= held {
            log::warn!("cluster view {version} taken over view {held}: first list of a new connection to the endpoint");
        }
        self.announce(&v);
        true
    }

    /// Forgets the list: the local one was deleted. True if a list was
    /// held.
    fn clear(&self) -> bool {
        let v = Arc::new(View::default());
        {
            let mut w = self.view.write();
            if w.version == 0 && w.nodes.is_empty() {
                return false;
            }
            *w = v.clone();
        }
        log::warn!("cluster list deleted: following an empty list");
        self.announce(&v);
        true
    }

    /// Logs a new view and tells the listener of it.
    fn announce(&self, v: &Arc<View>) {
        let (version, count) = (v.version, v.nodes.len());
        match v.me {
            Some(i) => log::info!("cluster view {version}: {count} node(s), this node is {}", v.nodes[i]),
            None if self.require_self.load(Ordering::Relaxed) => log::error!(
                "cluster view {version}: {count} node(s), this node is not among them (give --node-id): nothing is copied"
            ),
            None => log::warn!("cluster view {version}: {count} node(s), this node is not among them"),
        }
        if let Some(f) = self.on_change.get() {
            f(v);
        }
    }

    /// One round: asks the endpoint, or reads the local discovery view.
    pub fn poll(&self, discovery: &Discovery) {
        match &self.source {
            Source::Local => match discovery.view() {
                Some((version, nodes)) => {
                    self.offer(version, nodes);
                }
                None => {
                    self.clear();
                }
            },
            Source::Endpoint { addr, conn } => {
                self.polls.fetch_add(1, Ordering::Relaxed);
                let mut conn = conn.lock();
                match self.ask(addr, &mut conn) {
                    Ok((version, nodes, fresh)) => {
                        if !self.reachable.swap(true, Ordering::Relaxed) {
                            log::info!("cluster endpoint {addr} answers again");
                        }
                        self.take(version, nodes, fresh);
                    }
                    Err(e) => {
                        *conn = None;
                        self.poll_failures.fetch_add(1, Ordering::Relaxed);
                        if self.reachable.swap(false, Ordering::Relaxed) {
                            log::warn!("cluster endpoint {addr}: {e}; keeping view {}", self.view.read().version);
                        }
                    }
                }
            }
        }
    }

    /// One `config get cluster` over the kept connection (opened if
    /// needed): the version, the nodes, and whether the connection is new.
    fn ask(&self, addr: &str, conn: &mut Option<TcpStream>) -> Result<(u64, Vec<Node>, bool), String> {
        let fresh = conn.is_none();
        if fresh {
            *conn = Some(crate::discovery::connect(addr, self.timeout)?);
        }
        let s = conn.as_mut().ok_or("no connection")?;
        s.write_all(b"config get cluster\r\n").map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 4096];
        loop {
            if buf.starts_with(b"ERROR\r\n") {
                return Err("no cluster configured there".into());
            }
            if let Some((version, nodes, used)) = parse_config_reply(&buf)? {
                if used != buf.len() {
                    return Err("bytes after the reply".into());
                }
                return Ok((version, nodes, fresh));
            }
            match s.read(&mut chunk) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// `stats cluster` lines of the node side.
    pub fn stats(&self) -> Vec<(String, String)> {
        let v = self.view();
        let mut out = vec![
            ("node_id".to_string(), self.node_id().unwrap_or_default()),
            ("node_source".to_string(), self.endpoint().unwrap_or("local").to_string()),
            ("node_view_version".to_string(), v.version.to_string()),
            ("node_view_nodes".to_string(), v.nodes.len().to_string()),
            ("node_view_self".to_string(), v.me.map_or("-1".to_string(), |i| i.to_string())),
        ];
        if self.endpoint().is_some() {
            out.push(("node_polls".to_string(), self.polls.load(Ordering::Relaxed).to_string()));
            out.push(("node_poll_failures".to_string(), self.poll_failures.load(Ordering::Relaxed).to_string()));
            let reachable = u8::from(self.reachable.load(Ordering::Relaxed));
            out.push(("node_endpoint_reachable".to_string(), reachable.to_string()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::DiscoveryConfig;

    fn n(host: &str, ip: &str, port: u16) -> Node {
        Node { host: host.into(), ip: ip.into(), port }
    }

    #[test]
    fn a_node_finds_itself_by_id_or_listen_address() {
        let nodes = [n("a.local", "127.0.0.10", 7000), n("b.local", "127.0.0.11", 7000), n("127.0.0.12", "", 7001)];
        let k = Scheme::Ketama;
        assert_eq!(find_self(&nodes, k, Some("b.local:7000"), &[]), Some(1));
        assert_eq!(find_self(&nodes, k, Some("127.0.0.11:7000"), &[]), Some(1));
        assert_eq!(find_self(&nodes, k, Some("127.0.0.12:7001"), &[]), Some(2));
        assert_eq!(find_self(&nodes, k, Some("c.local:7000"), &[]), None);
        let listen: Vec<SocketAddr> = vec!["127.0.0.1:1".parse().unwrap(), "127.0.0.11:7000".parse().unwrap()];
        assert_eq!(find_self(&nodes, k, None, &listen), Some(1));
        assert_eq!(find_self(&nodes, k, None, &["127.0.0.12:7001".parse().unwrap()]), Some(2));
        assert_eq!(find_self(&nodes, k, None, &["127.0.0.10:7001".parse().unwrap()]), None, "port differs");
        // an id wins over the listen address
        assert_eq!(find_self(&nodes, k, Some("a.local:7000"), &listen), Some(0));
    }

    #[test]
    fn a_node_on_all_interfaces_finds_itself_by_a_local_ip_and_its_port() {
        let nodes = [n("a", "127.0.0.10", 7000), n("b", "192.0.2.1", 7000), n("127.0.0.12", "", 7001)];
        let k = Scheme::Ketama;
        for any in ["0.0.0.0", "[::]"] {
            let at = |port: u16| -> Vec<SocketAddr> { vec![format!("{any}:{port}").parse().unwrap()] };
            // 192.0.2.1 (a documentation address) is not this host's
            assert_eq!(find_selves(&nodes, k, None, &at(7000)), vec![0], "{any}");
            assert_eq!(find_self(&nodes, k, None, &at(7001)), Some(2), "{any}: an IP given as host");
            assert_eq!(find_self(&nodes, k, None, &at(7002)), None, "{any}: port differs");
        }
        assert_eq!(find_self(&nodes[1..], k, None, &["0.0.0.0:7000".parse().unwrap()]), None);
        assert!(is_local_ip("127.0.0.1".parse().unwrap()) && !is_local_ip("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn a_node_listed_twice_is_me_at_both_and_copies_past_both() {
        let listen: Vec<SocketAddr> = vec!["127.0.0.11:7000".parse().unwrap()];
        let nodes = vec![n("a", "127.0.0.10", 7000), n("b", "127.0.0.11", 7000), n("b2", "127.0.0.11", 7000)];
        let v = View::new(1, nodes, Scheme::Ketama, None, &listen);
        assert_eq!((v.me, v.is_me(0), v.is_me(1), v.is_me(2), v.is_me(3)), (Some(1), false, true, true, false));
        let (mut owned, mut others) = (0, 0);
        for i in 0..600 {
            let key = format!("k{i}");
            match v.ring.owner(key.as_bytes()) {
                Some(1 | 2) => {
                    owned += 1;
                    assert_eq!(v.copy_target(key.as_bytes()), Some(0), "{key}: never to this node's other entry");
                }
                _ => {
                    others += 1;
                    assert_eq!(v.copy_target(key.as_bytes()), None, "{key}: not owned");
                }
            }
        }
        assert!(owned > 0 && others > 0);
        // alone in the list under two entries: no one to copy to
        let alone =
            View::new(1, vec![n("b", "127.0.0.11", 7000), n("b", "127.0.0.11", 7000)], Scheme::Ketama, None, &listen);
        assert!((0..50).all(|i| alone.copy_target(format!("k{i}").as_bytes()).is_none()));
        assert!(View::default().copy_target(b"k").is_none());
    }

    #[test]
    fn lists_past_the_node_cap_are_refused_and_the_view_kept() {
        let f = Follower::new(None, Scheme::Uhashring, None, vec![], Duration::from_millis(100));
        let list = |count: usize| (0..count).map(|i| n(&format!("h{i}"), "", 7000)).collect::<Vec<_>>();
        assert!(f.offer(2, list(3)));
        assert!(!f.offer(3, list(MAX_NODES + 1)));
        assert_eq!((f.view().version, f.view().nodes.len()), (2, 3));
        assert!(f.offer(4, list(MAX_NODES)));
        assert_eq!(f.view().ring.len(), MAX_NODES);
    }

    #[test]
    fn config_replies_parse_whole_or_wait() {
        let nodes = [n("a", "127.0.0.10", 1), n("b", "", 2)];
        let reply = format::config_reply(9, &nodes);
        for cut in 0..reply.len() {
            assert_eq!(parse_config_reply(&reply[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(parse_config_reply(&reply).unwrap(), Some((9, nodes.to_vec(), reply.len())));
        assert_eq!(parse_config_reply(&format::config_reply(1, &[])).unwrap().unwrap().1, vec![]);
        for bad in [&b"VALUE x 0 1\r\n"[..], b"CONFIG cluster 0 x\r\n", b"CONFIG cluster 0 3\r\n1\n\nXXXXXXX"] {
            assert!(parse_config_reply(bad).is_err(), "{bad:?}");
        }
        assert!(parse_config_reply(format!("CONFIG cluster 0 {}\r\n", MAX_REPLY + 1).as_bytes()).is_err());
    }

    #[test]
    fn only_newer_versions_are_taken_and_listeners_hear_of_them() {
        let me: SocketAddr = "127.0.0.11:7000".parse().unwrap();
        let f = Follower::new(None, Scheme::Ketama, None, vec![me], Duration::from_millis(100));
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        f.set_on_change(Box::new(move |v| s.store(v.version, Ordering::SeqCst)));
        assert!(f.offer(3, vec![n("a", "127.0.0.10", 7000), n("b", "127.0.0.11", 7000)]));
        assert_eq!((f.view().version, f.view().me, seen.load(Ordering::SeqCst)), (3, Some(1), 3));
        assert_eq!(f.view().ring.len(), 2);
        assert!(!f.offer(3, vec![]), "same version");
        assert!(!f.offer(2, vec![]), "older version");
        assert_eq!(f.view().nodes.len(), 2);
        assert!(f.offer(4, vec![n("a", "127.0.0.10", 7000)]));
        assert_eq!((f.view().me, f.node_id()), (None, None));
        // the local source follows discovery
        let d = Discovery::new(DiscoveryConfig::default()).unwrap();
        d.config_set(b"9\nb|127.0.0.11|7000").unwrap();
        f.poll(&d);
        assert_eq!((f.view().version, f.view().me), (9, Some(0)));
        assert_eq!(f.node_id().as_deref(), Some("b:7000"));
    }

    #[test]
    fn a_deleted_local_list_becomes_the_empty_view() {
        let me: SocketAddr = "127.0.0.11:7000".parse().unwrap();
        let f = Follower::new(None, Scheme::Ketama, None, vec![me], Duration::from_millis(100));
        let seen = Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        f.set_on_change(Box::new(move |v| {
            s.store(v.nodes.len() as u64 + 100 * u64::from(v.me.is_some()), Ordering::SeqCst)
        }));
        let d = Discovery::new(DiscoveryConfig::default()).unwrap();
        d.config_set(b"4\na|127.0.0.10|7000 b|127.0.0.11|7000").unwrap();
        f.poll(&d);
        assert_eq!((f.view().version, f.view().me, seen.load(Ordering::SeqCst)), (4, Some(1), 102));
        assert!(d.config_delete());
        f.poll(&d);
        let v = f.view();
        assert_eq!((v.version, v.nodes.len(), v.me, seen.load(Ordering::SeqCst)), (0, 0, None, 0));
        assert!(!f.clear(), "already empty");
        // set again: discovery's version goes on from where it was
        d.config_set(b"b|127.0.0.11|7000").unwrap();
        f.poll(&d);
        let version = d.view().unwrap().0;
        assert!(version > 4);
        assert_eq!((f.view().version, f.view().me), (version, Some(0)));
    }

    /// An endpoint answering `config get cluster` from a script: one list
    /// of replies per connection, closed once its replies are sent.
    fn scripted_endpoint(script: Vec<Vec<(u64, Vec<Node>)>>) -> (String, std::thread::JoinHandle<()>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = std::thread::spawn(move || {
            for replies in script {
                let (mut s, _) = l.accept().unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                for (version, nodes) in replies {
                    let mut req = [0u8; 20];
                    s.read_exact(&mut req).unwrap();
                    assert_eq!(&req, b"config get cluster\r\n");
                    s.write_all(&format::config_reply(version, &nodes)).unwrap();
                }
            }
        });
        (addr, h)
    }

    #[test]
    fn the_first_list_of_a_new_connection_is_taken_whatever_its_version() {
        let (a, b, c) = (n("a", "127.0.0.10", 7000), n("b", "127.0.0.11", 7000), n("c", "127.0.0.12", 7000));
        let (addr, endpoint) = scripted_endpoint(vec![
            vec![(7, vec![a.clone(), b.clone()])],
            // restarted without its version file
            vec![(1, vec![a.clone()]), (1, vec![a.clone(), c.clone()]), (2, vec![a.clone(), c.clone()])],
        ]);
        let f = Follower::new(Some(addr), Scheme::Ketama, None, vec![], Duration::from_secs(2));
        let d = Discovery::new(DiscoveryConfig::default()).unwrap();
        f.poll(&d);
        assert_eq!((f.view().version, f.view().nodes.len()), (7, 2));
        f.poll(&d); // the endpoint closed the connection: fails, view kept
        assert_eq!((f.view().version, f.poll_failures.load(Ordering::Relaxed)), (7, 1));
        f.poll(&d); // a new connection: version 1 taken over 7
        assert_eq!((f.view().version, f.view().nodes.clone()), (1, vec![a.clone()]));
        f.poll(&d); // same connection: the same version is not taken
        assert_eq!(f.view().nodes.len(), 1);
        f.poll(&d); // a greater one is
        assert_eq!((f.view().version, f.view().nodes.clone()), (2, vec![a, c]));
        endpoint.join().unwrap();
        assert_eq!(f.poll_failures.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_unreachable_endpoint_keeps_the_last_list() {
        // a port nothing listens on
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let f = Follower::new(Some(format!("127.0.0.1:{port}")), Scheme::Ketama, None, vec![], Duration::ZERO);
        f.offer(5, vec![n("a", "127.0.0.10", 7000)]);
        let d = Discovery::new(DiscoveryConfig::default()).unwrap();
        f.poll(&d);
        f.poll(&d);
        assert_eq!(f.view().version, 5);
        assert_eq!((f.polls.load(Ordering::Relaxed), f.poll_failures.load(Ordering::Relaxed)), (2, 2));
        assert!(f.stats().iter().any(|(k, v)| k == "node_endpoint_reachable" && v == "0"));
    }
}
