//! The node side of a cluster: the hash ring clients place keys with.
//!
//! Nodes do not form a cluster of their own: the node list comes from the
//! discovery endpoint (`crate::discovery`). This module computes, for that
//! list, where clients will look for a key ([`ring::Ring::owner`]) and where
//! they will look once its owner has left the list
//! ([`ring::Ring::successor`]).
//!
//! A node follows the served list ([`follow`]) when it is given
//! `--cluster-endpoint`, `--node-id` or `--replicas 1`; with `--replicas 1`
//! it copies the writes it owns to their successors ([`replicate`]).

pub mod follow;
pub mod replicate;
pub mod ring;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use follow::{Follower, View};
pub use replicate::Replicator;

pub use ring::{Ring, Scheme};

/// The cluster options (`--cluster-endpoint`, `--replicas`, ...).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `--cluster-endpoint`: the discovery endpoint this node follows.
    pub endpoint: Option<String>,
    /// `--cluster-poll-ms`.
    pub poll: Duration,
    /// `--node-id`: this node's `host:port` in the list.
    pub node_id: Option<String>,
    /// `--replicas`: 0 or 1.
    pub replicas: u8,
    /// `--cluster-hash`: the clients' ring.
    pub hash: Scheme,
    /// `--warm-rate`: items/s copied to a joining node (0: no limit).
    pub warm_rate: u64,
    /// `--warm-timeout-ms`.
    pub warm_timeout: Duration,
    /// `--cluster-dns`: NAME:PORT the endpoint's list is resolved from.
    pub dns: Option<String>,
    /// `--dns-server`.
    pub dns_server: Option<SocketAddr>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            endpoint: None,
            poll: Duration::from_millis(1000),
            node_id: None,
            replicas: 0,
            hash: Scheme::Ketama,
            warm_rate: 0,
            warm_timeout: Duration::from_millis(60_000),
            dns: None,
            dns_server: None,
        }
    }
}

/// Starts following the cluster, and replicating with `--replicas 1`, when
/// the options ask for it; the `cluster-follow` thread polls every
/// `--cluster-poll-ms`. Call once the listeners are bound.
pub fn start(sh: &Arc<crate::state::Shared>) -> Result<(), String> {
    let c = &sh.config.cluster;
    if c.endpoint.is_none() && c.node_id.is_none() && c.replicas == 0 {
        return Ok(());
    }
    if c.replicas > 0 && (sh.config.server.auth.is_some() || sh.config.server.tls.is_some()) {
        return Err(
            "--replicas 1 cannot be used with -S, -Y or -Z: copies travel in plain text, without credentials".into()
        );
    }
    let listen = sh.bound.get().map(|b| b.tcp.clone()).unwrap_or_default();
    let follower = Arc::new(Follower::new(c.endpoint.clone(), c.hash, c.node_id.clone(), listen, c.poll));
    if c.replicas > 0 {
        let r = Arc::new(Replicator::new(sh.store.clock().clone()));
        let installer = r.clone();
        follower.set_on_change(Box::new(move |v| installer.install(v)));
        let _ = sh.replication.set(r);
    }
    let _ = sh.cluster.set(follower.clone());
    let (sh, poll) = (sh.clone(), c.poll);
    std::thread::Builder::new()
        .name("cluster-follow".into())
        .spawn(move || {
            while !sh.stopping.load(Ordering::Relaxed) {
                follower.poll(&sh.discovery);
                let next = Instant::now() + poll;
                while Instant::now() < next && !sh.stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(poll.min(Duration::from_millis(100)));
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("starting the cluster-follow thread: {e}"))
}

/// `stats cluster` lines of the node side (none on a node that does not
/// follow a cluster).
pub fn stats(sh: &crate::state::Shared) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(f) = sh.cluster.get() {
        out.extend(f.stats());
        out.push(("replicas".to_string(), u8::from(sh.replication.get().is_some()).to_string()));
    }
    if let Some(r) = sh.replication.get() {
        out.extend(r.stats());
    }
    out
}
