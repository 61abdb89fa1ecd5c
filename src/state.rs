//! The process-wide state every thread reads: the store, the counters,
//! the validated configuration, the discovery view, and the few run-time
//! facts of the server (open connections, bound addresses, shutdown).
//!
//! It sits apart from `server` and `dispatch` because both use it: the
//! server owns and changes the connection figures, and dispatch reports
//! them in `stats` and starts a shutdown. `metrics` reads it too. Keeping it
//! in either of those modules would make the two import each other.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::config::Config;
use crate::detail::Detail;
use crate::discovery::{Discovery, DiscoveryConfig};
use crate::stats::Stats;
use crate::storage::Store;
use crate::watch::{self, Watch};

/// A connection as `stats conns` shows it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub fd: i32,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Relative time of the connection's last command.
    pub last_cmd: Arc<AtomicU32>,
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
    /// Addresses actually bound (port 0 resolved).
    pub bound: OnceLock<Vec<SocketAddr>>,
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
        store.set_automove(srv.slab_automove);
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
