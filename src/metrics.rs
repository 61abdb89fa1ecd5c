//! `--metrics-port`: the counters of `stats` in Prometheus text format over
//! HTTP, named as the widely used memcached exporter names them
//! (`memcached_*`), plus request latency histograms per command
//! (`ferrocache_request_duration_seconds`). Which figures are exported, and
//! under which names, is the `metric` of each row in `figures`.
//!
//! One small thread serves `GET /metrics` on a blocking listener; requests
//! are read with a timeout and a size bound, so a slow scraper cannot hold
//! it for long.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::MEMCACHED_VERSION;
use crate::figures::{self, Figure, Kind, Metric, Sample};
use crate::state::Shared;
use crate::stats::{COMMAND_KINDS, LATENCY_BOUNDS_US};

/// One metric family: its header, then one sample per `(labels, value)`.
fn family(out: &mut String, m: &Metric, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {} {}", m.name, m.help);
    let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind.as_str());
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{} {v}", m.name);
        } else {
            let _ = writeln!(out, "{}{{{labels}}} {v}", m.name);
        }
    }
}

/// Groups rows into families by metric name, in the order names first
/// appear; `samples` gives a row's samples.
fn families<'r, S>(
    out: &mut String,
    rows: impl Iterator<Item = &'r Figure<S>>,
    samples: impl Fn(&Metric, &Figure<S>) -> Vec<(String, f64)>,
) where
    S: 'r,
{
    let mut order: Vec<(Metric, Vec<(String, f64)>)> = Vec::new();
    for f in rows {
        let Some(m) = f.metric else { continue };
        let found = order.iter().position(|(o, _)| o.name == m.name);
        let i = found.unwrap_or_else(|| {
            order.push((m, Vec::new()));
            order.len() - 1
        });
        order[i].1.extend(samples(&m, f));
    }
    for (m, s) in &order {
        family(out, m, s);
    }
}

/// The whole scrape.
pub fn render(sh: &Shared) -> String {
    let mut o = String::with_capacity(8192);
    let up =
        Metric { name: "memcached_up", labels: "", kind: Kind::Gauge, help: "Could the memcached server be reached." };
    family(&mut o, &up, &[(String::new(), 1.0)]);
    let version = Metric {
        name: "memcached_version",
        labels: "",
        kind: Kind::Gauge,
        help: "The version of this memcached server.",
    };
    family(&mut o, &version, &[(format!("version=\"{MEMCACHED_VERSION}\""), 1.0)]);
    let sample = Sample::take(sh);
    families(&mut o, figures::GENERAL.iter(), |m, f| {
        (f.get)(&sample).as_f64().map(|v| (m.labels.to_string(), v)).into_iter().collect()
    });
    let classes = sh.store.class_stats();
    let active: Vec<_> = classes.iter().filter(|cs| cs.total_pages > 0).collect();
    families(&mut o, figures::SLABS.iter().chain(figures::ITEMS), |m, f| {
        let more = if m.labels.is_empty() { String::new() } else { format!(",{}", m.labels) };
        active.iter().filter_map(|cs| Some((format!("slab=\"{}\"{more}", cs.id), (f.get)(cs).as_f64()?))).collect()
    });
    backups(&mut o, &sh.backup);
    replication(&mut o, sh);
    let lat = sh.stats.latency();
    let name = "ferrocache_request_duration_seconds";
    let _ = writeln!(o, "# HELP {name} Time from the event loop waking for a request (or the end of the one before it) to its queued reply, by command.");
    let _ = writeln!(o, "# TYPE {name} histogram");
    for (k, command) in COMMAND_KINDS.iter().enumerate() {
        let mut cumulative = 0;
        for (b, count) in lat.buckets[k].iter().enumerate() {
            cumulative += count;
            let le = LATENCY_BOUNDS_US.get(b).map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
            let _ = writeln!(o, "{name}_bucket{{command=\"{command}\",le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(o, "{name}_sum{{command=\"{command}\"}} {}", lat.sum_ns[k] as f64 / 1e9);
        let _ = writeln!(o, "{name}_count{{command=\"{command}\"}} {cumulative}");
    }
    o
}

/// The snapshot figures (`crate::backup`): ferrocache's own.
fn backups(o: &mut String, b: &crate::backup::Backups) {
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    let counter = |name, help| Metric { name, labels: "", kind: Kind::Counter, help };
    let gauge = |name, help| Metric { name, labels: "", kind: Kind::Gauge, help };
    family(
        o,
        &counter("ferrocache_snapshots_total", "Snapshot files written while serving or at shutdown, by result."),
        &[("result=\"written\"".into(), get(&b.written)), ("result=\"failed\"".into(), get(&b.failed))],
    );
    let last = [
        (
            "ferrocache_snapshot_last_success_timestamp_seconds",
            "Unix time the last good snapshot was completed (0: none yet).",
            get(&b.last_unix),
        ),
        ("ferrocache_snapshot_last_items", "Items in the last good snapshot.", get(&b.last_items)),
        ("ferrocache_snapshot_last_bytes", "Size of the last good snapshot file.", get(&b.last_bytes)),
        (
            "ferrocache_snapshot_last_duration_seconds",
            "Time the last good snapshot took to write.",
            get(&b.last_duration_us) / 1e6,
        ),
        (
            "ferrocache_snapshot_last_longest_lock_seconds",
            "Longest time one shard was locked while the last good snapshot copied it.",
            get(&b.last_lock_us) / 1e6,
        ),
    ];
    for (name, help, v) in last {
        family(o, &gauge(name, help), &[(String::new(), v)]);
    }
}

/// The cluster view this node follows and its replication queues
/// (`--replicas 1`), one sample per peer: ferrocache's own.
fn replication(o: &mut String, sh: &Shared) {
    if let Some(f) = sh.cluster.get() {
        let m = Metric {
            name: "ferrocache_cluster_view_version",
            labels: "",
            kind: Kind::Gauge,
            help: "Version of the served node list this node follows.",
        };
        family(o, &m, &[(String::new(), f.view().version as f64)]);
    }
    let Some(r) = sh.replication.get() else { return };
    let not_copied = Metric {
        name: "ferrocache_replica_not_copied_total",
        labels: "",
        kind: Kind::Counter,
        help: "Writes not copied: the key is not this node's, or there is no peer to copy to.",
    };
    family(o, &not_copied, &[(String::new(), r.not_copied.load(Ordering::Relaxed) as f64)]);
    let peers = r.peers();
    // Each peer's queue is read once a scrape (its length, and the oldest
    // copy's age that the lag is also taken from), and its label made once.
    let readings: Vec<_> =
        peers.iter().map(|p| (p, p.waiting(), format!("peer=\"{}\"", escape_label(&p.node.address())))).collect();
    type Value = fn(&crate::cluster::replicate::Peer, (usize, std::time::Duration)) -> f64;
    let rows: [(&'static str, Kind, &'static str, Value); 8] = [
        ("ferrocache_replica_queued", Kind::Gauge, "Copies waiting for a peer.", |_, w| w.0 as f64),
        ("ferrocache_replica_queue_bytes", Kind::Gauge, "Bytes of copies queued or in flight to a peer.", |p, _| {
            p.bytes.load(Ordering::Relaxed) as f64
        }),
        ("ferrocache_replica_sent_total", Kind::Counter, "Copies a peer acknowledged.", |p, _| {
            p.sent.load(Ordering::Relaxed) as f64
        }),
        ("ferrocache_replica_dropped_total", Kind::Counter, "Copies dropped: queue full or peer unreachable.", |p, _| {
            p.dropped.load(Ordering::Relaxed) as f64
        }),
        ("ferrocache_replica_refused_total", Kind::Counter, "Copies a peer answered with an error.", |p, _| {
            p.refused.load(Ordering::Relaxed) as f64
        }),
        (
            "ferrocache_replica_lag_seconds",
            Kind::Gauge,
            "Queue-to-acknowledgement time of the last batch's oldest copy, or the age of the oldest copy not yet acknowledged if greater.",
            |p, w| p.lag_given(w.1).as_secs_f64(),
        ),
        (
            "ferrocache_replica_oldest_copy_seconds",
            Kind::Gauge,
            "Age of the oldest copy waiting for a peer or in flight (0: none).",
            |_, w| w.1.as_secs_f64(),
        ),
        ("ferrocache_replica_connected", Kind::Gauge, "Whether the connection to a peer is up.", |p, _| {
            f64::from(u8::from(p.connected.load(Ordering::Relaxed)))
        }),
    ];
    for (name, kind, help, value) in rows {
        let m = Metric { name, labels: "", kind, help };
        let samples: Vec<(String, f64)> = readings.iter().map(|(p, w, label)| (label.clone(), value(p, *w))).collect();
        family(o, &m, &samples);
    }
}

/// A label value as the exposition format writes it: `\`, `"` and a
/// newline escaped.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Answers one scrape.
fn answer(sh: &Shared, mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") && req.len() < 8192 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let (status, body) = if req.starts_with(b"GET /metrics ") || req.starts_with(b"GET /metrics?") {
        ("200 OK", render(sh))
    } else {
        ("404 Not Found", "not found: try /metrics\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body.as_bytes()));
}

/// Serves scrapes on `listener` until the process exits.
pub fn serve(listener: TcpListener, sh: Arc<Shared>) {
    for conn in listener.incoming() {
        if sh.stopping.load(Ordering::Relaxed) {
            return;
        }
        if let Ok(s) = conn {
            answer(&sh, s);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape_label("10.0.0.1:11211"), "10.0.0.1:11211");
        assert_eq!(super::escape_label("a\"b\\c\nd:1"), "a\\\"b\\\\c\\nd:1");
    }
}
