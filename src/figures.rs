//! Every figure that `stats` and `/metrics` report, declared once.
//!
//! Each row of [`GENERAL`], [`ITEMS`] and [`SLABS`] names a figure as
//! `stats` prints it (memcached's name, in memcached's order), as the
//! Prometheus memcached_exporter names it (when it exports it: same name,
//! labels, type and meaning, so its dashboards and alerts work unchanged),
//! and how to read it from a [`Sample`] or a [`ClassStats`]. `dispatch::report`
//! prints the rows in order; `metrics` renders the rows that have a metric.
//! A new counter is a field in `stats::counters!` (or the store's) and one
//! row here. memcached does the same with its `*_STATS_FIELDS` lists.
//!
//! Figures that are not counters (`stats settings`, `stats conns`) stay
//! where they are printed: they are configuration and connection lists,
//! with no metric and nothing to merge.

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use crate::config::MEMCACHED_VERSION;
use crate::state::Shared;
use crate::stats::Totals;
use crate::storage::{ClassStats, StoreStats};

/// What a `stats` call or a scrape reads, once, for every row to pick from.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Loop counters summed (since `stats reset`).
    pub t: Totals,
    /// Store counters summed over shards.
    pub s: StoreStats,
    pub pid: u32,
    pub now_unix: u64,
    pub started_unix: u64,
    pub user: Duration,
    pub system: Duration,
    pub max_connections: usize,
    pub curr_connections: usize,
    pub threads: usize,
    pub accepting: bool,
    /// Settings that decide which rows `stats` shows, as in memcached.
    pub idle_timeout: bool,
    pub slab_reassign: bool,
    pub lru_crawler: bool,
    /// Descriptors open that are not client connections.
    pub reserved_fds: u64,
    /// `-I`: the unit memcached counts free pages in.
    pub page_size: u64,
    /// `watch` log stream counters.
    pub watch: crate::watch::Figures,
    /// With `-Z`: whether sessions are cached, new sessions, and seconds
    /// since the certificates were loaded.
    pub tls: Option<(bool, u64, u64)>,
}

impl Sample {
    /// Reads every source once.
    pub fn take(sh: &Shared) -> Sample {
        let clock = sh.store.clock();
        let now_unix =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(clock.unix_now());
        let (user, system) = crate::sys::rusage();
        Sample {
            t: sh.stats.totals(),
            s: sh.store.stats(),
            pid: sh.pid,
            now_unix,
            started_unix: clock.started_unix(),
            user,
            system,
            max_connections: sh.config.server.max_connections,
            curr_connections: sh.curr_connections.load(Ordering::Relaxed),
            threads: sh.config.server.threads,
            accepting: !sh.stopping.load(Ordering::Relaxed),
            idle_timeout: sh.config.server.idle_timeout > 0,
            slab_reassign: sh.config.storage.moves.reassign,
            lru_crawler: sh.store.crawler_enabled(),
            reserved_fds: crate::sys::open_fds().map_or(0, |n| n.saturating_sub(curr_connections_of(sh)) as u64),
            page_size: sh.config.storage.item_size_max as u64,
            watch: sh.watch.figures(),
            tls: sh
                .tls
                .get()
                .map(|t| (t.options.session_cache, t.new_sessions(), u64::from(t.since_refresh(clock.now())))),
        }
    }
}

fn curr_connections_of(sh: &Shared) -> usize {
    sh.curr_connections.load(Ordering::Relaxed)
}

/// A figure's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Num(u64),
    /// Printed as memcached prints rusage: seconds and microseconds.
    Secs(Duration),
    Text(&'static str),
    /// Not reported under the current settings (memcached leaves the
    /// row out, e.g. `idle_kicks` without `-o idle_timeout`).
    Absent,
}

impl Value {
    /// The value as a Prometheus sample (text has none).
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(n as f64),
            Value::Secs(d) => Some(d.as_secs_f64()),
            Value::Text(_) | Value::Absent => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Secs(d) => write!(f, "{}.{:06}", d.as_secs(), d.subsec_micros()),
            Value::Text(s) => f.write_str(s),
            Value::Absent => Ok(()),
        }
    }
}

/// Prometheus metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// How a figure is exported. Rows that share a name are one metric with
/// one sample per row, told apart by `labels`.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    /// `key="value",...`, or empty.
    pub labels: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// One reported figure of a source `S`.
pub struct Figure<S> {
    /// The name in `stats` (`None`: exported only).
    pub stat: Option<&'static str>,
    pub metric: Option<Metric>,
    pub get: fn(&S) -> Value,
}

const fn stat<S>(name: &'static str, get: fn(&S) -> Value) -> Figure<S> {
    Figure { stat: Some(name), metric: None, get }
}

const fn both<S>(name: &'static str, metric: Metric, get: fn(&S) -> Value) -> Figure<S> {
    Figure { stat: Some(name), metric: Some(metric), get }
}

const fn counter(name: &'static str, help: &'static str) -> Metric {
    Metric { name, labels: "", kind: Kind::Counter, help }
}

const fn gauge(name: &'static str, help: &'static str) -> Metric {
    Metric { name, labels: "", kind: Kind::Gauge, help }
}

/// A sample of `memcached_commands_total`.
macro_rules! command {
    ($command:literal, $status:literal) => {
        Metric {
            name: "memcached_commands_total",
            labels: concat!("command=\"", $command, "\",status=\"", $status, "\""),
            kind: Kind::Counter,
            help: "Total number of all requests broken down by command (get, set, etc.) and status.",
        }
    };
}

/// A sample of `memcached_slab_commands_total` (the `slab` label is added
/// per class).
macro_rules! slab_command {
    ($command:literal, $status:literal) => {
        Metric {
            name: "memcached_slab_commands_total",
            labels: concat!("command=\"", $command, "\",status=\"", $status, "\""),
            kind: Kind::Counter,
            help: "Total number of requests broken down by slab class, command and status.",
        }
    };
}

fn n(v: u64) -> Value {
    Value::Num(v)
}

/// `v` when `shown`, else left out.
fn when(shown: bool, v: u64) -> Value {
    if shown {
        Value::Num(v)
    } else {
        Value::Absent
    }
}

/// `stats`, in memcached 1.6's order, and the general metrics.
pub static GENERAL: &[Figure<Sample>] = &[
    stat("pid", |x| n(u64::from(x.pid))),
    both("uptime", counter("memcached_uptime_seconds", "Number of seconds since the server started."), |x| {
        n(x.now_unix.saturating_sub(x.started_unix))
    }),
    both("time", gauge("memcached_time_seconds", "Current UNIX time according to the server."), |x| n(x.now_unix)),
    stat("version", |_| Value::Text(MEMCACHED_VERSION)),
    // The event library: mio, not libevent.
    stat("libevent", |_| Value::Text("mio")),
    stat("pointer_size", |_| n(u64::from(usize::BITS))),
    both(
        "rusage_user",
        counter("memcached_process_user_cpu_seconds_total", "Accumulated user CPU time of this process, in seconds."),
        |x| Value::Secs(x.user),
    ),
    both(
        "rusage_system",
        counter(
            "memcached_process_system_cpu_seconds_total",
            "Accumulated system CPU time of this process, in seconds.",
        ),
        |x| Value::Secs(x.system),
    ),
    both("max_connections", gauge("memcached_max_connections", "Maximum number of clients allowed."), |x| {
        n(x.max_connections as u64)
    }),
    both("curr_connections", gauge("memcached_current_connections", "Current number of open connections."), |x| {
        n(x.curr_connections as u64)
    }),
    both(
        "total_connections",
        counter("memcached_connections_total", "Total number of connections opened since the server started running."),
        |x| n(x.t.total_connections),
    ),
    both(
        "rejected_connections",
        counter("memcached_connections_rejected_total", "Total number of connections rejected at the -c limit."),
        |x| n(x.t.rejected_connections),
    ),
    stat("connection_structures", |x| n(x.curr_connections as u64)),
    // Connections own their buffers; there are no shared response-object
    // or read-buffer pools to count (docs/protocol-notes.md).
    stat("response_obj_oom", |_| n(0)),
    stat("response_obj_count", |_| n(0)),
    stat("response_obj_bytes", |_| n(0)),
    stat("read_buf_count", |_| n(0)),
    stat("read_buf_bytes", |_| n(0)),
    stat("read_buf_bytes_free", |_| n(0)),
    stat("read_buf_oom", |_| n(0)),
    stat("reserved_fds", |x| n(x.reserved_fds)),
    stat("cmd_get", |x| n(x.t.cmd_get)),
    // cmd_set counts cas commands too; the exporter's set/hit leaves them
    // out (they are cas/hit|miss|badval).
    stat("cmd_set", |x| n(x.t.cmd_set)),
    Figure {
        stat: None,
        metric: Some(command!("set", "hit")),
        get: |x| n(x.t.cmd_set.saturating_sub(x.t.cas_hits + x.t.cas_misses + x.t.cas_badval)),
    },
    both("cmd_flush", command!("flush", "hit"), |x| n(x.t.cmd_flush)),
    stat("cmd_touch", |x| n(x.t.cmd_touch)),
    stat("cmd_meta", |x| n(x.t.cmd_meta)),
    both("get_hits", command!("get", "hit"), |x| n(x.t.get_hits)),
    both("get_misses", command!("get", "miss"), |x| n(x.t.get_misses)),
    stat("get_expired", |x| n(x.s.get_expired)),
    stat("get_flushed", |x| n(x.s.get_flushed)),
    both("delete_misses", command!("delete", "miss"), |x| n(x.t.delete_misses)),
    both("delete_hits", command!("delete", "hit"), |x| n(x.t.delete_hits)),
    both("incr_misses", command!("incr", "miss"), |x| n(x.t.incr_misses)),
    both("incr_hits", command!("incr", "hit"), |x| n(x.t.incr_hits)),
    both("decr_misses", command!("decr", "miss"), |x| n(x.t.decr_misses)),
    both("decr_hits", command!("decr", "hit"), |x| n(x.t.decr_hits)),
    both("cas_misses", command!("cas", "miss"), |x| n(x.t.cas_misses)),
    both("cas_hits", command!("cas", "hit"), |x| n(x.t.cas_hits)),
    both("cas_badval", command!("cas", "badval"), |x| n(x.t.cas_badval)),
    both("touch_hits", command!("touch", "hit"), |x| n(x.t.touch_hits)),
    both("touch_misses", command!("touch", "miss"), |x| n(x.t.touch_misses)),
    both(
        "store_too_large",
        counter(
            "memcached_item_too_large_total",
            "The number of times an item exceeded the max-item-size when being stored.",
        ),
        |x| n(x.t.store_too_large),
    ),
    both(
        "store_no_memory",
        counter(
            "memcached_item_no_memory_total",
            "The number of times an item could not be stored due to no more memory.",
        ),
        |x| n(x.t.store_no_memory),
    ),
    stat("auth_cmds", |x| n(x.t.auth_cmds)),
    stat("auth_errors", |x| n(x.t.auth_errors)),
    stat("idle_kicks", |x| when(x.idle_timeout, x.t.idle_kicks)),
    both(
        "bytes_read",
        counter("memcached_read_bytes_total", "Total number of bytes read by this server from network."),
        |x| n(x.t.bytes_read),
    ),
    both(
        "bytes_written",
        counter("memcached_written_bytes_total", "Total number of bytes sent by this server to network."),
        |x| n(x.t.bytes_written),
    ),
    both(
        "limit_maxbytes",
        gauge("memcached_limit_bytes", "Number of bytes this server is allowed to use for storage."),
        |x| n(x.s.limit_maxbytes),
    ),
    both(
        "accepting_conns",
        gauge("memcached_accepting_connections", "Whether the server is currently accepting new connections."),
        |x| n(u64::from(x.accepting)),
    ),
    // Times accept(2) failed for want of descriptors (the listener waits
    // for the next connection); how long it waited is not measured.
    both(
        "listen_disabled_num",
        counter(
            "memcached_connections_listener_disabled_total",
            "Number of times the server hit its connection limit and could not accept.",
        ),
        |x| n(x.t.listen_disabled_num),
    ),
    stat("time_in_listen_disabled_us", |_| n(0)),
    stat("threads", |x| n(x.threads as u64)),
    both(
        "conn_yields",
        counter(
            "memcached_connections_yielded_total",
            "Total number of connections yielded running due to hitting the -R limit.",
        ),
        |x| n(x.t.conn_yields),
    ),
    stat("hash_power_level", |x| n(u64::from(x.s.hash_power_level))),
    stat("hash_bytes", |x| n(x.s.hash_bytes)),
    // 1 while some shard's table moves buckets into its doubled array.
    stat("hash_is_expanding", |x| n(u64::from(x.s.hash_is_expanding))),
    // A page moved between classes evicts its items at once under the shard
    // lock; a page handed to another shard first moves its items to chunks
    // freed at its class's LRU tail (rescues). Nothing is ever busy, no
    // mover runs in between.
    stat("slab_reassign_rescues", |x| when(x.slab_reassign, x.s.reassign_rescues)),
    stat("slab_reassign_chunk_rescues", |x| when(x.slab_reassign, 0)),
    stat("slab_reassign_evictions_nomem", |x| when(x.slab_reassign, x.s.reassign_evictions)),
    stat("slab_reassign_inline_reclaim", |x| when(x.slab_reassign, 0)),
    stat("slab_reassign_busy_items", |x| when(x.slab_reassign, 0)),
    stat("slab_reassign_busy_deletes", |x| when(x.slab_reassign, 0)),
    stat("slab_reassign_running", |x| when(x.slab_reassign, 0)),
    stat("slabs_moved", |x| when(x.slab_reassign, x.s.slabs_moved)),
    // Shown while the crawler is enabled (`lru_crawler enable|disable`).
    stat("lru_crawler_running", |x| when(x.lru_crawler, u64::from(x.s.lru_crawler_running))),
    both(
        "lru_crawler_starts",
        counter("memcached_lru_crawler_starts_total", "Times an LRU crawler was started."),
        |x| when(x.lru_crawler, x.s.lru_crawler_starts),
    ),
    // Allocation failure aborts the process.
    stat("malloc_fails", |_| n(0)),
    // `watch` log streams (see `crate::watch`).
    stat("log_worker_dropped", |x| n(x.watch.worker_dropped)),
    stat("log_worker_written", |x| n(x.watch.worker_written)),
    stat("log_watcher_skipped", |x| n(x.watch.watcher_skipped)),
    stat("log_watcher_sent", |x| n(x.watch.watcher_sent)),
    stat("log_watchers", |x| n(x.watch.watchers)),
    // With -Z, as memcached's TLS build.
    stat("ssl_new_sessions", |x| match x.tls {
        Some((true, new, _)) => n(new),
        _ => Value::Absent,
    }),
    both(
        "ssl_handshake_errors",
        counter("memcached_ssl_handshake_errors_total", "Number of TLS handshakes that failed."),
        |x| when(x.tls.is_some(), x.t.ssl_handshake_errors),
    ),
    stat("time_since_server_cert_refresh", |x| x.tls.map_or(Value::Absent, |(_, _, age)| n(age))),
    // No NAPI ids.
    stat("unexpected_napi_ids", |_| n(0)),
    stat("round_robin_fallback", |_| n(0)),
    both("bytes", gauge("memcached_current_bytes", "Current number of bytes used to store items."), |x| n(x.s.bytes)),
    both("curr_items", gauge("memcached_current_items", "Current number of items stored by this instance."), |x| {
        n(x.s.curr_items)
    }),
    both(
        "total_items",
        counter("memcached_items_total", "Total number of items stored during the life of this instance."),
        |x| n(x.s.total_items),
    ),
    // Page budget not yet given to a class, in -I pages.
    stat("slab_global_page_pool", |x| n(x.s.limit_maxbytes.saturating_sub(x.s.total_malloced) / x.page_size.max(1))),
    stat("expired_unfetched", |x| n(x.s.expired_unfetched)),
    stat("evicted_unfetched", |x| n(x.s.evicted_unfetched)),
    both(
        "evictions",
        counter(
            "memcached_items_evicted_total",
            "Total number of valid items removed from cache to free memory for new items.",
        ),
        |x| n(x.s.evictions),
    ),
    both(
        "reclaimed",
        counter(
            "memcached_items_reclaimed_total",
            "Total number of times an entry was stored using memory from an expired entry.",
        ),
        |x| n(x.s.reclaimed),
    ),
    both(
        "crawler_reclaimed",
        counter("memcached_lru_crawler_reclaimed_total", "Total items freed by the LRU crawler."),
        |x| n(x.s.crawler_reclaimed),
    ),
    both(
        "crawler_items_checked",
        counter("memcached_lru_crawler_items_checked_total", "Total items examined by the LRU crawler."),
        |x| n(x.s.crawler_items_checked),
    ),
    // Items are referenced only under their shard lock: never locked at
    // the LRU tail.
    stat("lrutail_reflocked", |_| n(0)),
    Figure {
        stat: None,
        metric: Some(gauge("memcached_malloced_bytes", "Number of bytes of memory allocated to slab pages.")),
        get: |x| n(x.s.total_malloced),
    },
    // From `stats settings` in the exporter.
    Figure {
        stat: None,
        metric: Some(gauge("memcached_lru_crawler_enabled", "Whether the LRU crawler is enabled.")),
        get: |x| n(u64::from(x.lru_crawler)),
    },
];

/// `stats ferrocache`: figures memcached's `stats` does not have, kept out
/// of it so that tools (and memcached's tests) counting its rows see
/// memcached's rows only.
pub static FERROCACHE: &[Figure<Sample>] = &[
    stat("ferrocache_version", |_| Value::Text(env!("CARGO_PKG_VERSION"))),
    stat("total_malloced", |x| n(x.s.total_malloced)),
    stat("idle_kicks", |x| n(x.t.idle_kicks)),
    stat("write_stalls", |x| n(x.t.write_stalls)),
];

/// `stats items` (`items:<class>:<name>`), for classes holding items.
pub static ITEMS: &[Figure<ClassStats>] = &[
    both(
        "number",
        gauge("memcached_slab_current_items", "Number of items currently stored in this slab class."),
        |c| n(c.used_chunks),
    ),
    both(
        "age",
        gauge("memcached_slab_items_age_seconds", "Number of seconds the oldest item has been in the slab class."),
        |c| n(u64::from(c.age)),
    ),
    both(
        "mem_requested",
        gauge("memcached_slab_mem_requested_bytes", "Number of bytes of memory actual items take up within a slab."),
        |c| n(c.mem_requested),
    ),
    both(
        "evicted",
        counter(
            "memcached_slab_items_evicted_total",
            "Total number of times an item had to be evicted from the LRU before it expired.",
        ),
        |c| n(c.counters.evicted),
    ),
    both(
        "evicted_nonzero",
        counter(
            "memcached_slab_items_evicted_nonzero_total",
            "Total number of items with an explicit expire time evicted from the LRU before they expired.",
        ),
        |c| n(c.counters.evicted_nonzero),
    ),
    // A counter in the exporter, though it is a last value.
    both(
        "evicted_time",
        counter(
            "memcached_slab_items_evicted_time_seconds",
            "Seconds since the last access for the most recent item evicted from this class.",
        ),
        |c| n(u64::from(c.counters.evicted_time)),
    ),
    both(
        "outofmemory",
        counter(
            "memcached_slab_items_outofmemory_total",
            "Total number of items for this slab class that have triggered an out of memory error.",
        ),
        |c| n(c.counters.outofmemory),
    ),
    both("reclaimed", counter("memcached_slab_items_reclaimed_total", "Total number of items reclaimed."), |c| {
        n(c.counters.reclaimed)
    }),
    both(
        "expired_unfetched",
        counter(
            "memcached_slab_items_expired_unfetched_total",
            "Total number of items that expired and were never fetched after being set.",
        ),
        |c| n(c.counters.expired_unfetched),
    ),
    both(
        "evicted_unfetched",
        counter("memcached_slab_items_evicted_unfetched_total", "Total number of items evicted and never fetched."),
        |c| n(c.counters.evicted_unfetched),
    ),
    both(
        "crawler_reclaimed",
        counter("memcached_slab_items_crawler_reclaimed_total", "Number of items freed by the LRU crawler."),
        |c| n(c.counters.crawler_reclaimed),
    ),
];

/// `stats slabs` (`<class>:<name>`), for classes holding pages.
pub static SLABS: &[Figure<ClassStats>] = &[
    both(
        "chunk_size",
        gauge("memcached_slab_chunk_size_bytes", "Number of bytes allocated to each chunk within this slab class."),
        |c| n(c.chunk_size as u64),
    ),
    both(
        "chunks_per_page",
        gauge("memcached_slab_chunks_per_page", "Number of chunks within a single page for this slab class."),
        |c| n(u64::from(c.chunks_per_page)),
    ),
    both("total_pages", gauge("memcached_slab_current_pages", "Number of pages allocated to this slab class."), |c| {
        n(c.total_pages)
    }),
    both(
        "total_chunks",
        gauge("memcached_slab_current_chunks", "Number of chunks allocated to this slab class."),
        |c| n(c.total_chunks),
    ),
    both("used_chunks", gauge("memcached_slab_chunks_used", "Number of chunks allocated to an item."), |c| {
        n(c.used_chunks)
    }),
    both("free_chunks", gauge("memcached_slab_chunks_free", "Number of chunks not yet allocated to items."), |c| {
        n(c.free_chunks)
    }),
    both(
        "free_chunks_end",
        gauge("memcached_slab_chunks_free_end", "Number of free chunks at the end of the last allocated page."),
        |c| n(c.free_chunks_end),
    ),
    both("get_hits", slab_command!("get", "hit"), |c| n(c.counters.get_hits)),
    // Storage commands whose item falls in this class, stored or not, cas
    // among them; the exporter's set/hit takes cas hits and badvals out
    // (there is no per-class cas miss to take out).
    stat("cmd_set", |c| n(c.counters.cmd_set)),
    Figure {
        stat: None,
        metric: Some(slab_command!("set", "hit")),
        get: |c| n(c.counters.cmd_set.saturating_sub(c.counters.cas_hits + c.counters.cas_badval)),
    },
    both("delete_hits", slab_command!("delete", "hit"), |c| n(c.counters.delete_hits)),
    both("incr_hits", slab_command!("incr", "hit"), |c| n(c.counters.incr_hits)),
    both("decr_hits", slab_command!("decr", "hit"), |c| n(c.counters.decr_hits)),
    both("cas_hits", slab_command!("cas", "hit"), |c| n(c.counters.cas_hits)),
    both("cas_badval", slab_command!("cas", "badval"), |c| n(c.counters.cas_badval)),
    both("touch_hits", slab_command!("touch", "hit"), |c| n(c.counters.touch_hits)),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn names<S>(rows: &[Figure<S>]) -> Vec<&'static str> {
        rows.iter().filter_map(|f| f.stat).collect()
    }

    #[test]
    fn no_name_is_reported_twice() {
        for rows in [names(GENERAL), names(ITEMS), names(SLABS), names(FERROCACHE)] {
            let mut sorted = rows.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), rows.len(), "{rows:?}");
        }
    }

    #[test]
    fn a_metric_name_has_one_type_and_distinct_labels() {
        let mut seen: Vec<Metric> = Vec::new();
        let all = GENERAL
            .iter()
            .map(|f| f.metric)
            .chain(ITEMS.iter().map(|f| f.metric))
            .chain(SLABS.iter().map(|f| f.metric));
        for m in all.flatten() {
            for other in seen.iter().filter(|o| o.name == m.name) {
                assert_eq!(other.kind, m.kind, "{}", m.name);
                assert_ne!(other.labels, m.labels, "{}", m.name);
            }
            // Prometheus' rule, with the exporter's two exceptions.
            let exception = ["memcached_uptime_seconds", "memcached_slab_items_evicted_time_seconds"];
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total") || exception.contains(&m.name),
                "{}",
                m.name
            );
            seen.push(m);
        }
    }

    #[test]
    fn values_print_as_memcached_prints_them() {
        assert_eq!(Value::Secs(Duration::from_micros(1_000_042)).to_string(), "1.000042");
        assert_eq!(Value::Num(7).to_string(), "7");
        assert_eq!(Value::Text("1.6.18").as_f64(), None);
    }
}
