//! `--metrics-port`: the counters of `stats` in Prometheus text format over
//! HTTP, named as the widely used memcached exporter names them
//! (`memcached_*`), plus request latency histograms per command
//! (`ferrocache_request_duration_seconds`).
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
use crate::state::Shared;
use crate::stats::{COMMAND_KINDS, LATENCY_BOUNDS_US};

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// The whole scrape.
pub fn render(sh: &Shared) -> String {
    let t = sh.stats.totals();
    let s = sh.store.stats();
    let clock = sh.store.clock();
    let (user, system) = crate::sys::rusage();
    let mut o = String::with_capacity(8192);
    let g = |o: &mut String, name: &str, help: &str, v: u64| metric(o, name, "gauge", help, &[("", v as f64)]);
    let c = |o: &mut String, name: &str, help: &str, v: u64| metric(o, name, "counter", help, &[("", v as f64)]);
    g(&mut o, "memcached_up", "Could the memcached server be reached.", 1);
    c(
        &mut o,
        "memcached_uptime_seconds",
        "Number of seconds since the server started.",
        clock.unix_now() - clock.started_unix(),
    );
    metric(
        &mut o,
        "memcached_version",
        "gauge",
        "The version of this memcached server.",
        &[(&format!("version=\"{MEMCACHED_VERSION}\""), 1.0)],
    );
    let cmd = |command: &str, status: &str| format!("command=\"{command}\",status=\"{status}\"");
    let commands = [
        (cmd("get", "hit"), t.get_hits),
        (cmd("get", "miss"), t.get_misses),
        (cmd("set", "hit"), t.cmd_set),
        (cmd("cas", "hit"), t.cas_hits),
        (cmd("cas", "miss"), t.cas_misses),
        (cmd("cas", "badval"), t.cas_badval),
        (cmd("incr", "hit"), t.incr_hits),
        (cmd("incr", "miss"), t.incr_misses),
        (cmd("decr", "hit"), t.decr_hits),
        (cmd("decr", "miss"), t.decr_misses),
        (cmd("delete", "hit"), t.delete_hits),
        (cmd("delete", "miss"), t.delete_misses),
        (cmd("touch", "hit"), t.touch_hits),
        (cmd("touch", "miss"), t.touch_misses),
        (cmd("flush", "hit"), t.cmd_flush),
    ];
    let samples: Vec<(&str, f64)> = commands.iter().map(|(l, v)| (l.as_str(), *v as f64)).collect();
    metric(
        &mut o,
        "memcached_commands_total",
        "counter",
        "Total number of all requests broken down by command (get, set, etc.) and status.",
        &samples,
    );
    c(
        &mut o,
        "memcached_connections_total",
        "Total number of connections opened since the server started running.",
        t.total_connections,
    );
    c(
        &mut o,
        "memcached_connections_rejected_total",
        "Total number of connections rejected at the -c limit.",
        t.rejected_connections,
    );
    c(
        &mut o,
        "memcached_connections_yielded_total",
        "Total number of connections yielded running due to hitting the -R limit.",
        t.conn_yields,
    );
    g(
        &mut o,
        "memcached_current_connections",
        "Current number of open connections.",
        sh.curr_connections.load(Ordering::Relaxed) as u64,
    );
    g(
        &mut o,
        "memcached_max_connections",
        "Maximum number of clients allowed.",
        sh.config.server.max_connections as u64,
    );
    g(&mut o, "memcached_current_bytes", "Current number of bytes used to store items.", s.bytes);
    g(&mut o, "memcached_limit_bytes", "Number of bytes this server is allowed to use for storage.", s.limit_maxbytes);
    g(&mut o, "memcached_malloced_bytes", "Number of bytes of memory allocated to slab pages.", s.total_malloced);
    g(&mut o, "memcached_current_items", "Current number of items stored by this instance.", s.curr_items);
    c(&mut o, "memcached_items_total", "Total number of items stored during the life of this instance.", s.total_items);
    c(
        &mut o,
        "memcached_items_evicted_total",
        "Total number of valid items removed from cache to free memory for new items.",
        s.evictions,
    );
    c(
        &mut o,
        "memcached_items_reclaimed_total",
        "Total number of times an entry was stored using memory from an expired entry.",
        s.reclaimed,
    );
    c(&mut o, "memcached_read_bytes_total", "Total number of bytes read by this server from network.", t.bytes_read);
    c(
        &mut o,
        "memcached_written_bytes_total",
        "Total number of bytes sent by this server to network.",
        t.bytes_written,
    );
    metric(
        &mut o,
        "memcached_process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        &[("", (user + system).as_secs_f64())],
    );
    let slabs = sh.store.class_stats();
    let active: Vec<_> = slabs.iter().filter(|cs| cs.total_pages > 0).collect();
    let per_slab =
        |o: &mut String, name: &str, kind: &str, help: &str, f: &dyn Fn(&crate::storage::ClassStats) -> u64| {
            let labels: Vec<String> = active.iter().map(|cs| format!("slab=\"{}\"", cs.id)).collect();
            let samples: Vec<(&str, f64)> =
                labels.iter().zip(&active).map(|(l, cs)| (l.as_str(), f(cs) as f64)).collect();
            metric(o, name, kind, help, &samples);
        };
    per_slab(
        &mut o,
        "memcached_slab_chunk_size_bytes",
        "gauge",
        "Number of bytes allocated to each chunk within this slab class.",
        &|cs| cs.chunk_size as u64,
    );
    per_slab(&mut o, "memcached_slab_current_pages", "gauge", "Number of pages allocated to this slab class.", &|cs| {
        cs.total_pages
    });
    per_slab(
        &mut o,
        "memcached_slab_current_items",
        "gauge",
        "Number of items currently stored in this slab class.",
        &|cs| cs.used_chunks,
    );
    per_slab(
        &mut o,
        "memcached_slab_mem_requested_bytes",
        "gauge",
        "Number of bytes of memory actual items take up within a slab.",
        &|cs| cs.mem_requested,
    );
    per_slab(
        &mut o,
        "memcached_slab_items_evicted_total",
        "counter",
        "Total number of times an item had to be evicted from the LRU before it expired.",
        &|cs| cs.counters.evicted,
    );
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
