//! The process-wide state every thread reads: the store, the counters,
//! the validated configuration, the discovery view, and the few run-time
//! facts of the server (open connections, bound addresses, shutdown).
//!
//! It sits apart from `server` and `dispatch` because both use it: the
//! server owns and changes the connection figures, and dispatch reports
//! them in `stats` and starts a shutdown. `metrics` reads it too. Keeping it
//! in either of those modules would make the two import each other.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::config::Config;
use crate::detail::Detail;
use crate::discovery::{Discovery, DiscoveryConfig};
use crate::stats::Stats;
use crate::storage::Store;
use crate::watch::{self, Watch};

/// A socket address as `stats conns` writes it, memcached's way:
/// `tcp:1.2.3.4:5`, `tcp6:[::1]:5`, `udp:...`, `unix:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Unix(Arc<Path>),
    /// A unix-socket client: it has no name.
    UnixUnnamed,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(a) if a.is_ipv6() => write!(f, "tcp6:{a}"),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
            Endpoint::Udp(a) if a.is_ipv6() => write!(f, "udp6:{a}"),
            Endpoint::Udp(a) => write!(f, "udp:{a}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::UnixUnnamed => f.write_str("unix:<unnamed>"),
        }
    }
}

impl Endpoint {
    /// The IP address and port, for TCP and UDP.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Endpoint::Tcp(a) | Endpoint::Udp(a) => Some(*a),
            Endpoint::Unix(_) | Endpoint::UnixUnnamed => None,
        }
    }
}

/// What a client connection is doing, as `stats conns` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnState {
    /// Idle: waiting for a command.
    NewCmd = 0,
    /// Running commands (the connection asking for `stats conns` is here).
    ParseCmd = 1,
    /// A command line is in, its data is still arriving.
    Nread = 2,
}

impl ConnState {
    pub fn from_u8(v: u8) -> ConnState {
        match v {
            1 => ConnState::ParseCmd,
            2 => ConnState::Nread,
            _ => ConnState::NewCmd,
        }
    }

    /// memcached's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            ConnState::NewCmd => "conn_new_cmd",
            ConnState::ParseCmd => "conn_parse_cmd",
            ConnState::Nread => "conn_nread",
        }
    }
}

/// A connection as `stats conns` shows it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub fd: i32,
    /// The client's address.
    pub addr: Endpoint,
    /// The server's end of the connection.
    pub listen_addr: Endpoint,
    /// A [`ConnState`], written by the connection's loop.
    pub state: Arc<AtomicU8>,
    /// Relative time of the connection's last command.
    pub last_cmd: Arc<AtomicU32>,
    /// The subject of the TLS client certificate, once verified.
    pub tls_subject: Arc<OnceLock<String>>,
}

/// A listening socket (or a UDP socket) as `stats conns` shows it.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    pub fd: i32,
    pub addr: Endpoint,
}

/// The sockets the server serves, once bound (ports resolved).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    /// TCP addresses, `-l` ones first, then `--config-port` ones.
    pub tcp: Vec<SocketAddr>,
    pub udp: Vec<SocketAddr>,
    pub unix: Option<PathBuf>,
    /// Every listening and UDP socket, for `stats conns`.
    pub listeners: Vec<ListenerInfo>,
}

/// State shared by every event loop.
pub struct Shared {
    pub store: Store,
    pub stats: Stats,
    pub config: Config,
    /// Client connections open now.
    pub curr_connections: AtomicUsize,
    /// Open connections by id, for `stats conns`.
    pub conns: Mutex<HashMap<u64, ConnInfo>>,
    /// Sockets actually bound (ports resolved).
    pub bound: OnceLock<Bound>,
    /// Set once shutdown has begun.
    pub stopping: AtomicBool,
    /// Current verbosity (`-v`, changed by the `verbosity` command).
    pub verbosity: AtomicU8,
    /// Runs a shutdown (wakes every loop); installed by the server.
    pub on_shutdown: OnceLock<Box<dyn Fn() + Send + Sync>>,
    pub pid: u32,
    /// The auto-discovery view (config get cluster).
    pub discovery: Discovery,
    /// `stats detail` per-prefix counts.
    pub detail: Detail,
    /// `watch` log streams; the store reports evictions to it.
    pub watch: Arc<Watch>,
    /// Snapshot requests and figures (`snapshot`, SIGUSR2, the interval).
    pub backup: crate::backup::Backups,
    /// `-Z`: the TLS state (set by the server before the loops start).
    pub tls: OnceLock<Arc<crate::tls::Tls>>,
    /// The served list this node follows (`crate::cluster::start`).
    pub cluster: OnceLock<Arc<crate::cluster::Follower>>,
    /// `--replicas 1`: where writes are copied; unset otherwise, so the
    /// write path's check is one load and one branch.
    pub replication: OnceLock<Arc<crate::cluster::Replicator>>,
}

impl Shared {
    pub fn new(config: Config, store: Store) -> Shared {
        let discovery = Discovery::new(DiscoveryConfig::default()).expect("no cluster file, nothing to read");
        Shared::with_discovery(config, store, discovery)
    }

    /// As [`Shared::new`], with a loaded discovery view.
    pub fn with_discovery(config: Config, store: Store, discovery: Discovery) -> Shared {
        let threads = config.server.threads;
        let verbosity = config.verbosity;
        let srv = &config.server;
        let detail = Detail::new(srv.prefix_delimiter.unwrap_or(b':'), srv.prefix_delimiter.is_some());
        store.set_crawler_enabled(srv.lru_crawler);
        let watch = Arc::new(Watch::new(threads, srv.worker_logbuf_size, srv.watcher_logbuf_size));
        let w = watch.clone();
        store.on_evict(Box::new(move |e| w.log(watch::EVICTIONS, &watch::Event::Evicted(e))));
        Shared {
            store,
            stats: Stats::new(threads),
            config,
            curr_connections: AtomicUsize::new(0),
            conns: Mutex::new(HashMap::new()),
            bound: OnceLock::new(),
            stopping: AtomicBool::new(false),
            verbosity: AtomicU8::new(verbosity),
            on_shutdown: OnceLock::new(),
            pid: std::process::id(),
            discovery,
            detail,
            watch,
            backup: crate::backup::Backups::default(),
            tls: OnceLock::new(),
            cluster: OnceLock::new(),
            replication: OnceLock::new(),
        }
    }

    /// Begins shutdown: loops stop accepting, flush replies and exit.
    pub fn shutdown(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            if let Some(f) = self.on_shutdown.get() {
                f();
            }
        }
    }
}
