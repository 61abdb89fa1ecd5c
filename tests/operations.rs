//! Operations: the systemd unit's start/stop cycle with warm restart,
//! damaged snapshots, and the Prometheus endpoint.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;

use common::{check_items, fill_items, http, temp_dir, Server, TIMEOUT};

/// What systemd does with dist/ferrocache.service: read the settings file,
/// expand ExecStart, set NOTIFY_SOCKET and STATE_DIRECTORY. PORT is made -1
/// so tests can run side by side.
fn unit_command(state: &Path, notify: &Path) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("dist/ferrocache.service")).unwrap();
    let defaults = std::fs::read_to_string(root.join("dist/ferrocache.default")).unwrap();
    let mut env: Vec<(String, String)> = defaults
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect();
    env.retain(|(k, _)| k != "PORT");
    env.push(("PORT".into(), "-1".into()));
    env.push(("STATE_DIRECTORY".into(), state.to_str().unwrap().into()));
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).unwrap();
    let mut words: Vec<String> = Vec::new();
    for w in exec.split_whitespace() {
        let mut w = w.to_string();
        for (k, v) in &env {
            w = w.replace(&format!("${{{k}}}"), v);
        }
        match w.strip_prefix('$') {
            // $OPTIONS: split into words, dropped when empty
            Some(var) => words
                .extend(env.iter().filter(|(k, _)| k == var).flat_map(|(_, v)| v.split_whitespace().map(String::from))),
            None => words.push(w),
        }
    }
    assert_eq!(words[0], "/usr/local/bin/ferrocache");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrocache"));
    cmd.args(&words[1..]).env("NOTIFY_SOCKET", notify);
    cmd
}

fn next_notification(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn a_restart_under_the_unit_keeps_the_cache_byte_for_byte() {
    let dir = temp_dir("unit");
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(TIMEOUT)).unwrap();
    let n = 5000;

    let mut first = Server::start_command(&mut unit_command(&dir, &notify_path));
    let ready = next_notification(&notify);
    assert!(ready.starts_with("READY=1"), "{ready}");
    let mut c = first.connect();
    fill_items(&mut c, 0..n);
    c.expect(b"set ttl 0 100 2\r\nhi\r\n", b"STORED\r\n");
    assert!(first.signal_and_wait(15).success(), "SIGTERM (KillSignal) exits 0");
    assert_eq!(next_notification(&notify), "STOPPING=1");
    let log = first.stderr_text();
    assert!(log.contains(&format!("snapshot written to {}", dir.join("snapshot").display())), "{log}");

    let second = Server::start_command(&mut unit_command(&dir, &notify_path));
    let mut note = next_notification(&notify);
    while note.starts_with("EXTEND_TIMEOUT_USEC=") {
        note = next_notification(&notify);
    }
    assert!(note.starts_with("READY=1"), "{note}");
    let mut c = second.connect();
    check_items(&mut c, 0..n);
    c.expect(b"get ttl\r\n", b"VALUE ttl 0 2\r\nhi\r\nEND\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_snapshot_is_refused_and_the_daemon_starts_empty() {
    let dir = temp_dir("damaged");
    let snap = dir.join("snapshot");
    let mut first = Server::start(&["--snapshot-file", snap.to_str().unwrap()]);
    first.connect().expect(b"set a 0 0 5\r\nhello\r\n", b"STORED\r\n");
    assert!(first.signal_and_wait(15).success());
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&snap, &bytes).unwrap();
    let mut second = Server::start(&["--snapshot-file", snap.to_str().unwrap()]);
    second.connect().expect(b"get a\r\n", b"END\r\n");
    assert_eq!(second.stat("curr_items"), 0);
    assert!(second.signal_and_wait(15).success());
    let log = second.stderr_text();
    assert!(log.contains("refused") && log.contains("starting empty"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_port_serves_prometheus_text() {
    let mut server = Server::start(&["--metrics-port", "0"]);
    let addr = server.metrics_addr();
    let mut c = server.connect();
    c.expect(
        b"set a 0 0 1\r\nx\r\nget a\r\nget b\r\nincr a 1\r\n",
        b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nEND\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    let body = http(&addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{body}");
    for line in [
        "memcached_up 1",
        "memcached_commands_total{command=\"get\",status=\"hit\"} 1",
        "memcached_commands_total{command=\"get\",status=\"miss\"} 1",
        "memcached_commands_total{command=\"set\",status=\"hit\"} 1",
        "memcached_current_items 1",
        "memcached_current_connections 1",
        "memcached_version{version=\"1.6.18\"} 1",
        "# TYPE ferrocache_request_duration_seconds histogram",
        "ferrocache_request_duration_seconds_count{command=\"get\"} 2",
        "ferrocache_request_duration_seconds_bucket{command=\"set\",le=\"+Inf\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line:?} in\n{body}");
    }
    // anything else is a 404
    let r = http(&addr, "GET / HTTP/1.0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
}

#[test]
fn start_and_stop_are_logged() {
    let mut server = Server::start(&["-m", "32"]);
    assert!(server.signal_and_wait(15).success());
    let log = server.stderr_text();
    assert!(log.contains("ferrocache 0.1.0 starting") && log.contains("32 MB"), "{log}");
    assert!(log.contains("ferrocache stopped after"), "{log}");
}
