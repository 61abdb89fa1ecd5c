//! Every figure that `stats` and `/metrics` report, declared once.
//!
//! Each row of [`GENERAL`], [`ITEMS`] and [`SLABS`] names a figure as
//! `stats` prints it (memcached's name, in memcached's order), as the
//! Prometheus exporter for memcached names it (when it exports it), and how
//! to read it from a [`Sample`] or a [`ClassStats`]. `dispatch::report`
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
    stat("time", |x| n(x.now_unix)),
    stat("version", |_| Value::Text(MEMCACHED_VERSION)),
    // The event library: mio, not libevent.
    stat("libevent", |_| Value::Text("mio")),
    stat("pointer_size", |_| n(u64::from(usize::BITS))),
    stat("rusage_user", |x| Value::Secs(x.user)),
    stat("rusage_system", |x| Value::Secs(x.system)),
    Figure {
        stat: None,
        metric: Some(counter(
            "memcached_process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        )),
        get: |x| Value::Secs(x.user + x.system),
    },
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
    both("cmd_set", command!("set", "hit"), |x| n(x.t.cmd_set)),
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
    stat("store_too_large", |x| n(x.t.store_too_large)),
    stat("store_no_memory", |x| n(x.t.store_no_memory)),
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
    stat("accepting_conns", |x| n(u64::from(x.accepting))),
    // Times accept(2) failed for want of descriptors (the listener waits
    // for the next connection); how long it waited is not measured.
    stat("listen_disabled_num", |x| n(x.t.listen_disabled_num)),
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
    stat("lru_crawler_starts", |x| when(x.lru_crawler, x.s.lru_crawler_starts)),
    // Allocation failure aborts the process.
    stat("malloc_fails", |_| n(0)),
    // `watch` log streams (see `crate::watch`).
    stat("log_worker_dropped", |x| n(x.watch.worker_dropped)),
    stat("log_worker_written", |x| n(x.watch.worker_written)),
    stat("log_watcher_skipped", |x| n(x.watch.watcher_skipped)),
    stat("log_watcher_sent", |x| n(x.watch.watcher_sent)),
    stat("log_watchers", |x| n(x.watch.watchers)),
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
    stat("crawler_reclaimed", |x| n(x.s.crawler_reclaimed)),
    stat("crawler_items_checked", |x| n(x.s.crawler_items_checked)),
    // Items are referenced only under their shard lock: never locked at
    // the LRU tail.
    stat("lrutail_reflocked", |_| n(0)),
    Figure {
        stat: None,
        metric: Some(gauge("memcached_malloced_bytes", "Number of bytes of memory allocated to slab pages.")),
        get: |x| n(x.s.total_malloced),
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
    stat("age", |c| n(u64::from(c.age))),
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
    stat("evicted_nonzero", |c| n(c.counters.evicted_nonzero)),
    stat("evicted_time", |c| n(u64::from(c.counters.evicted_time))),
    stat("outofmemory", |c| n(c.counters.outofmemory)),
    stat("reclaimed", |c| n(c.counters.reclaimed)),
    stat("expired_unfetched", |c| n(c.counters.expired_unfetched)),
    stat("evicted_unfetched", |c| n(c.counters.evicted_unfetched)),
    stat("crawler_reclaimed", |c| n(c.counters.crawler_reclaimed)),
];

/// `stats slabs` (`<class>:<name>`), for classes holding pages.
pub static SLABS: &[Figure<ClassStats>] = &[
    both(
        "chunk_size",
        gauge("memcached_slab_chunk_size_bytes", "Number of bytes allocated to each chunk within this slab class."),
        |c| n(c.chunk_size as u64),
    ),
    stat("chunks_per_page", |c| n(u64::from(c.chunks_per_page))),
    both("total_pages", gauge("memcached_slab_current_pages", "Number of pages allocated to this slab class."), |c| {
        n(c.total_pages)
    }),
    stat("total_chunks", |c| n(c.total_chunks)),
    stat("used_chunks", |c| n(c.used_chunks)),
    stat("free_chunks", |c| n(c.free_chunks)),
    stat("free_chunks_end", |c| n(c.free_chunks_end)),
    stat("get_hits", |c| n(c.counters.get_hits)),
    stat("cmd_set", |c| n(c.counters.cmd_set)),
    stat("delete_hits", |c| n(c.counters.delete_hits)),
    stat("incr_hits", |c| n(c.counters.incr_hits)),
    stat("decr_hits", |c| n(c.counters.decr_hits)),
    stat("cas_hits", |c| n(c.counters.cas_hits)),
    stat("cas_badval", |c| n(c.counters.cas_badval)),
    stat("touch_hits", |c| n(c.counters.touch_hits)),
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
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total") || m.name.ends_with("_seconds"),
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
