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
use std::time::Duration;

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
    /// `--cluster-dns`: what the endpoint's list is resolved from.
    pub dns: Option<crate::discovery::dns::Target>,
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
