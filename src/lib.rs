//! ferrocache: a memcached-compatible, multi-threaded cache daemon.
//!
//! ```text
//!  clients (text, meta and binary protocols over TCP, unix sockets, UDP)
//!                 |          |          |
//!   SO_REUSEPORT  v          v          v
//!            +---------+ +---------+ +---------+
//!            | loop-0  | | loop-1  | | loop-N  |   server::event_loop
//!            | mio Poll| | mio Poll| | mio Poll|   one per -t thread
//!            +----+----+ +----+----+ +----+----+
//!                 | bytes -> protocol::{text,binary}::parse -> Request
//!                 | Request -> dispatch -> Store calls -> Reply (text/binary)
//!                 v
//!   +--------------------------------------------------+
//!   | storage::Store: shards by key hash, each one      |
//!   | Mutex<Shard> = hash table + slab classes + LRUs   |
//!   | pages of -I bytes from one PagePool of -m bytes   |
//!   +--------------------------------------------------+
//!        ^ maintenance thread: clock tick, expiry crawler
//!   watch: per-loop log rings that `watch` connections read (fed by
//!          dispatch, the loops and the store's eviction hook)
//!   other threads: signals, discovery health checks, warm join, metrics HTTP,
//!   cluster-dns lookups
//!   cluster: a follower thread keeps the served list; with --replicas 1,
//!            dispatch queues owned writes for per-peer sender threads
//! ```
//!
//! Module rules: `protocol` and `storage` depend on nothing else in the
//! crate but the leaves `num` and `sys` and [`MAX_KEY_LEN`]; `dispatch` is the only
//! module that turns requests into store calls; `state` holds what every
//! thread shares; `server` drives `protocol` and `dispatch` and uses
//! `storage` only for the store's life cycle (clock, crawler, snapshots).
//! No two modules import each other. See `docs/architecture.md`.
#![deny(unsafe_code)]
// Every `unsafe` block (all in `sys`) states the invariant it relies on.
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod auth;
pub mod backup;
pub mod cluster;
pub mod config;
pub mod detail;
pub mod discovery;
pub mod dispatch;
pub mod error;
pub mod figures;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod num;
pub mod protocol;
pub mod restore;
pub mod server;
pub mod state;
pub mod stats;
pub mod storage;
pub mod sys;
pub mod tls;
pub mod watch;

/// Largest key, in bytes (memcached's `KEY_MAX_LENGTH`): the parsers refuse
/// longer keys and the store's item header counts key bytes in one byte.
pub const MAX_KEY_LEN: usize = 250;

/// Maps memcached's verbosity (0..=3) to a log level. Without `-v`: start,
/// shutdown, warnings and errors (info); `-v` adds per-connection events
/// (debug); `-vv` everything (trace).
pub fn log_level(verbosity: u8) -> log::LevelFilter {
    match verbosity {
        0 => log::LevelFilter::Info,
        1 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}
