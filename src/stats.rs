//! Per-event-loop counters, merged on demand for `stats`.
//!
//! Each event loop owns one [`WorkerStats`] and is its only writer, so a
//! bump is a relaxed load and store, no locked instruction; `stats` reads
//! every loop's counters with relaxed loads (a figure may lag by a request,
//! as memcached's do). `stats reset` does not write into other threads'
//! counters: it records the current totals as a baseline that later reports
//! subtract ([`Stats::reset`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::protocol::Request;

/// Declares the counter set once: the struct, a snapshot type and the
/// field list used for merging and reporting.
macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// One event loop's counters.
        #[derive(Debug, Default)]
        pub struct WorkerStats {
            $(pub $name: Counter,)*
            /// Request latency per command kind.
            pub latency: Latency,
        }

        /// A plain copy of counters, summed over loops.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Totals {
            $(pub $name: u64,)*
        }

        impl WorkerStats {
            fn add_to(&self, t: &mut Totals) {
                $(t.$name += self.$name.get();)*
            }
        }

        impl Totals {
            fn minus(&self, base: &Totals) -> Totals {
                Totals { $($name: self.$name.wrapping_sub(base.$name),)* }
            }
        }
    };
}

counters!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    cmd_meta,
    get_hits,
    get_misses,
    delete_hits,
    delete_misses,
    incr_hits,
    incr_misses,
    decr_hits,
    decr_misses,
    cas_hits,
    cas_misses,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
    store_no_memory,
    bytes_read,
    bytes_written,
    total_connections,
    rejected_connections,
    listen_disabled_num,
    conn_yields,
    idle_kicks,
    write_stalls,
    auth_cmds,
    auth_errors,
    ssl_handshake_errors,
);

/// Command kinds timed separately.
pub const COMMAND_KINDS: [&str; 7] = ["get", "set", "delete", "incr_decr", "touch", "meta", "other"];
/// Which latency histogram a request counts in (index in `COMMAND_KINDS`).
pub fn command_kind(req: &Request<'_>) -> usize {
    match req {
        Request::Get { .. } | Request::Gat { .. } => 0,
        Request::Store { .. } => 1,
        Request::Delete { .. } => 2,
        Request::Incr { .. } | Request::Decr { .. } => 3,
        Request::Touch { .. } => 4,
        Request::Meta { .. } | Request::MetaNoop => 5,
        _ => 6,
    }
}

/// Upper bounds of the latency buckets, in microseconds (then +Inf).
pub const LATENCY_BOUNDS_US: [u64; 13] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000];

/// Per command kind: a count per latency bucket (the last is +Inf) and the
/// total in nanoseconds.
#[derive(Debug, Default)]
pub struct Latency {
    buckets: [[Counter; LATENCY_BOUNDS_US.len() + 1]; COMMAND_KINDS.len()],
    sum_ns: [Counter; COMMAND_KINDS.len()],
}

impl Latency {
    /// Records one request of kind `kind` (an index in [`COMMAND_KINDS`]).
    #[inline]
    pub fn record(&self, kind: usize, elapsed: std::time::Duration) {
        let ns = elapsed.as_nanos().min(u128::from(u64::MAX)) as u64;
        let us = ns / 1000;
        let b = LATENCY_BOUNDS_US.iter().position(|&bound| us < bound).unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[kind][b].incr();
        self.sum_ns[kind].add(ns);
    }
}

/// Latency summed over loops: per kind, bucket counts and nanoseconds.
#[derive(Debug, Clone, Default)]
pub struct LatencyTotals {
    pub buckets: Vec<Vec<u64>>,
    pub sum_ns: Vec<u64>,
}

/// A counter with one writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning loop calls this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    #[inline]
    pub fn incr(&self) {
        self.add(1)
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// All loops' counters plus the reset baseline.
#[derive(Debug, Default)]
pub struct Stats {
    workers: Vec<Arc<WorkerStats>>,
    baseline: Mutex<Totals>,
}

impl Stats {
    /// Counters for `n` event loops.
    pub fn new(n: usize) -> Stats {
        Stats { workers: (0..n).map(|_| Arc::new(WorkerStats::default())).collect(), baseline: Mutex::default() }
    }

    /// Loop `i`'s counters.
    pub fn worker(&self, i: usize) -> Arc<WorkerStats> {
        self.workers[i].clone()
    }

    fn raw(&self) -> Totals {
        let mut t = Totals::default();
        for w in &self.workers {
            w.add_to(&mut t);
        }
        t
    }

    /// Sums over loops since the last reset.
    pub fn totals(&self) -> Totals {
        self.raw().minus(&self.baseline.lock())
    }

    /// Latency histograms summed over loops (not affected by `stats reset`:
    /// Prometheus counters only go up).
    pub fn latency(&self) -> LatencyTotals {
        let mut t = LatencyTotals {
            buckets: vec![vec![0; LATENCY_BOUNDS_US.len() + 1]; COMMAND_KINDS.len()],
            sum_ns: vec![0; COMMAND_KINDS.len()],
        };
        for w in &self.workers {
            for k in 0..COMMAND_KINDS.len() {
                for (b, c) in w.latency.buckets[k].iter().enumerate() {
                    t.buckets[k][b] += c.get();
                }
                t.sum_ns[k] += w.latency.sum_ns[k].get();
            }
        }
        t
    }

    /// `stats reset`.
    pub fn reset(&self) {
        *self.baseline.lock() = self.raw();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_loops_and_reset_uses_a_baseline() {
        let s = Stats::new(2);
        s.worker(0).cmd_get.add(3);
        s.worker(1).cmd_get.incr();
        s.worker(1).get_hits.incr();
        assert_eq!(s.totals().cmd_get, 4);
        s.reset();
        assert_eq!(s.totals(), Totals::default());
        s.worker(0).cmd_get.incr();
        assert_eq!(s.totals().cmd_get, 1);
        assert_eq!(s.totals().get_hits, 0);
    }
}
