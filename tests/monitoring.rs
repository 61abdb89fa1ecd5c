//! Monitoring: `/metrics` serves memcached_exporter's names with its
//! meanings, and every metric that dist/grafana-dashboard.json and
//! dist/prometheus-alerts.yml use is one the daemon really serves.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::{http, temp_dir, Server};

/// The body of a `GET /metrics` (the reply checked to be a 200).
fn scrape(server: &mut Server) -> String {
    let reply = http(&server.metrics_addr(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    body.to_string()
}

/// Every series name the scrape can hold: each `# TYPE` family, with a
/// histogram's `_bucket`, `_sum` and `_count`.
fn served(body: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').unwrap();
        names.insert(name.to_string());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// The metric names a dashboard or rule file uses: identifiers starting
/// with `memcached_` or `ferrocache_`.
fn referenced(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
        if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
            let end = (i..bytes.len()).find(|&j| !ident(bytes[j])).unwrap_or(bytes.len());
            let word = &text[i..end];
            if word.starts_with("memcached_") || word.starts_with("ferrocache_") {
                names.insert(word.to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    names
}

/// Brackets and braces balance outside strings, and the text is one value.
fn json_shape_ok(text: &str) -> bool {
    let mut stack = Vec::new();
    let (mut in_str, mut escaped) = (false, false);
    for c in text.chars() {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => stack.push(c),
            '}' if stack.pop() != Some('{') => return false,
            ']' if stack.pop() != Some('[') => return false,
            _ => {}
        }
    }
    stack.is_empty() && !in_str && text.trim_start().starts_with('{') && text.trim_end().ends_with('}')
}

fn line_value(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn dashboard_and_alerts_use_only_served_metrics() {
    let mut server = Server::start(&["--metrics-port", "0"]);
    // Traffic, so that per-slab families have classes to report.
    server.connect().expect(b"set a 0 0 1\r\nx\r\nget a\r\n", b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
    let body = scrape(&mut server);
    let have = served(&body);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut total = 0;
    for file in ["dist/grafana-dashboard.json", "dist/prometheus-alerts.yml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let used = referenced(&text);
        assert!(used.len() >= 10, "{file}: only {used:?}");
        let missing: Vec<_> = used.iter().filter(|n| !have.contains(*n)).collect();
        assert!(missing.is_empty(), "{file} uses metrics /metrics does not serve: {missing:?}\nserved: {have:?}");
        total += used.len();
    }
    assert!(total >= 30, "{total}");
    let dashboard = std::fs::read_to_string(root.join("dist/grafana-dashboard.json")).unwrap();
    assert!(json_shape_ok(&dashboard), "the dashboard is not one JSON object");
    let rules = std::fs::read_to_string(root.join("dist/prometheus-alerts.yml")).unwrap();
    assert!(rules.starts_with('#') && rules.contains("\ngroups:\n"), "not a rule file");
    assert_eq!(rules.matches("- alert: ").count(), rules.matches("\n        expr: ").count(), "each alert has an expr");
}

#[test]
fn names_and_meanings_are_memcached_exporters() {
    let mut server = Server::start(&["--metrics-port", "0", "-I", "1k", "-m", "8"]);
    let mut c = server.connect();
    c.send(b"set a 0 0 1\r\nx\r\ngets a\r\n");
    let reply = String::from_utf8(c.read_until(b"END\r\n")).unwrap();
    let cas: u64 = reply.lines().nth(1).unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    c.expect(
        format!("cas a 0 0 1 {cas}\r\ny\r\ncas a 0 0 1 {cas}\r\nz\r\ncas nope 0 0 1 1\r\nz\r\n").as_bytes(),
        b"STORED\r\nEXISTS\r\nNOT_FOUND\r\n",
    );
    let big = vec![b'v'; 2000];
    c.expect(
        &[b"set big 0 0 2000\r\n".as_slice(), &big, b"\r\n"].concat(),
        b"SERVER_ERROR object too large for cache\r\n",
    );
    let body = scrape(&mut server);
    let have = served(&body);
    for name in [
        "memcached_up",
        "memcached_uptime_seconds",
        "memcached_time_seconds",
        "memcached_version",
        "memcached_process_user_cpu_seconds_total",
        "memcached_process_system_cpu_seconds_total",
        "memcached_read_bytes_total",
        "memcached_written_bytes_total",
        "memcached_current_connections",
        "memcached_max_connections",
        "memcached_connections_total",
        "memcached_connections_rejected_total",
        "memcached_connections_yielded_total",
        "memcached_connections_listener_disabled_total",
        "memcached_current_bytes",
        "memcached_limit_bytes",
        "memcached_commands_total",
        "memcached_current_items",
        "memcached_items_total",
        "memcached_items_evicted_total",
        "memcached_items_reclaimed_total",
        "memcached_item_too_large_total",
        "memcached_item_no_memory_total",
        "memcached_lru_crawler_enabled",
        "memcached_lru_crawler_starts_total",
        "memcached_lru_crawler_reclaimed_total",
        "memcached_lru_crawler_items_checked_total",
        "memcached_malloced_bytes",
        "memcached_accepting_connections",
        "memcached_slab_current_items",
        "memcached_slab_items_age_seconds",
        "memcached_slab_items_crawler_reclaimed_total",
        "memcached_slab_items_evicted_total",
        "memcached_slab_items_evicted_nonzero_total",
        "memcached_slab_items_evicted_time_seconds",
        "memcached_slab_items_evicted_unfetched_total",
        "memcached_slab_items_expired_unfetched_total",
        "memcached_slab_items_outofmemory_total",
        "memcached_slab_items_reclaimed_total",
        "memcached_slab_chunk_size_bytes",
        "memcached_slab_chunks_per_page",
        "memcached_slab_current_pages",
        "memcached_slab_current_chunks",
        "memcached_slab_chunks_used",
        "memcached_slab_chunks_free",
        "memcached_slab_chunks_free_end",
        "memcached_slab_mem_requested_bytes",
        "memcached_slab_commands_total",
    ] {
        assert!(have.contains(name), "{name} not served:\n{body}");
    }
    // The old combined CPU figure is gone: user and system are separate.
    assert!(!have.contains("memcached_process_cpu_seconds_total"));
    let cmd = |command: &str, status: &str| {
        line_value(&body, &format!("memcached_commands_total{{command=\"{command}\",status=\"{status}\"}}"))
    };
    // cmd_set counts the set and the three cas commands; set/hit is the set
    // alone, as the exporter splits it.
    assert_eq!(server.stat("cmd_set"), 4);
    assert_eq!(cmd("set", "hit"), Some(1.0));
    assert_eq!((cmd("cas", "hit"), cmd("cas", "badval"), cmd("cas", "miss")), (Some(1.0), Some(1.0), Some(1.0)));
    assert_eq!(cmd("get", "hit"), Some(1.0));
    assert_eq!(line_value(&body, "memcached_item_too_large_total"), Some(1.0));
    assert_eq!(line_value(&body, "memcached_accepting_connections"), Some(1.0));
    assert!(body.contains("# TYPE memcached_time_seconds gauge"), "{body}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((line_value(&body, "memcached_time_seconds").unwrap() - now).abs() < 5.0);
    // Per slab: the class label comes first, then the command's.
    let slab_set = body
        .lines()
        .find(|l| {
            l.starts_with("memcached_slab_commands_total{slab=\"") && l.contains(",command=\"set\",status=\"hit\"}")
        })
        .unwrap_or_else(|| panic!("no per-slab set/hit in\n{body}"));
    // The class's cmd_set counts the set and the three cas commands, as
    // memcached's; the exporter takes out cas hits and badvals, not the
    // miss (no per-class figure says how many there were).
    assert!(slab_set.ends_with(" 2"), "{slab_set}");
    for l in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = l.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
        assert!(!series.contains("{,") && !series.contains(",}"), "{l}");
    }
}

#[test]
fn snapshot_figures_follow_the_backups() {
    let dir = temp_dir("monitoring");
    let mut server = Server::start(&["--metrics-port", "0", "--snapshot-dir", dir.to_str().unwrap()]);
    let mut c = server.connect();
    c.expect(b"set a 0 0 1\r\nx\r\nsnapshot one\r\n", b"STORED\r\nOK\r\n");
    let addr = server.metrics_addr();
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    let body = loop {
        let body = http(&addr, "GET /metrics HTTP/1.0\r\n\r\n");
        if line_value(&body, "ferrocache_snapshots_total{result=\"written\"}") == Some(1.0) {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "no snapshot counted:\n{body}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(line_value(&body, "ferrocache_snapshot_last_items"), Some(1.0));
    assert_eq!(line_value(&body, "ferrocache_snapshots_total{result=\"failed\"}"), Some(0.0));
    assert!(line_value(&body, "ferrocache_snapshot_last_success_timestamp_seconds").unwrap() > 1e9);
    let _ = std::fs::remove_dir_all(&dir);
}
