//! Life under systemd without systemd: the environment it gives a
//! `Type=notify` service (`$NOTIFY_SOCKET`, `$JOURNAL_STREAM`) is recreated
//! by hand, and the daemon's side of each protocol is checked: journald
//! priority prefixes, `-d` refused under `Type=notify`, and
//! `EXTEND_TIMEOUT_USEC` around snapshot loads and writes.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{temp_dir, Client, TIMEOUT};

/// The daemon with stderr in `log` (a file, as journald's stream would be a
/// socket), started with `env`; returns it and its TCP address once ready.
fn start(args: &[&str], env: &[(&str, String)], log: &Path) -> (Child, std::net::SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrocache"));
    cmd.args(["-l", "127.0.0.1", "-p", "-1"]).args(args);
    cmd.env_remove("NOTIFY_SOCKET").env_remove("JOURNAL_STREAM").env_remove("INVOCATION_ID").env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let err = std::fs::File::create(log).unwrap();
    let mut child = cmd.stdout(Stdio::piped()).stderr(err).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let Some(addrs) = line.trim().strip_prefix("ferrocache listening on ") else {
        panic!("no ready line ({line:?}); log: {}", std::fs::read_to_string(log).unwrap_or_default())
    };
    (child, addrs.split(',').next().unwrap().parse().unwrap())
}

/// SIGTERM, then waits (bounded) for exit status 0.
fn stop(mut child: Child) {
    common::send_signal(child.id(), "TERM");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "exit status {st}");
            return;
        }
        assert!(Instant::now() < deadline, "ferrocache did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A notify socket as systemd would bind it.
fn notify_socket(dir: &Path) -> (UnixDatagram, String) {
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    (sock, path.to_str().unwrap().to_string())
}

fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    let n = sock.recv(&mut buf).expect("a notification");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn journal_stream_of(file: &Path) -> String {
    let m = std::fs::metadata(file).unwrap();
    format!("{}:{}", m.dev(), m.ino())
}

#[test]
fn log_lines_carry_journald_priorities_when_stderr_is_the_journal() {
    let dir = temp_dir("journal");
    let log = dir.join("stderr");
    std::fs::write(&log, b"").unwrap();
    let (sock, notify) = notify_socket(&dir);
    // -d under Type=notify gives a warning (priority 4) besides the
    // start and stop lines (priority 6).
    let env = [("JOURNAL_STREAM", journal_stream_of(&log)), ("NOTIFY_SOCKET", notify)];
    let (child, _) = start(&["-d"], &env, &log);
    assert!(next(&sock).starts_with("READY=1"));
    stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        let p = l.strip_prefix('<').and_then(|r| r.split_once('>')).map(|(p, _)| p);
        assert!(matches!(p, Some("3" | "4" | "5" | "6" | "7")), "no priority prefix: {l:?}\n{text}");
    }
    assert!(lines.iter().any(|l| l.starts_with("<6>") && l.contains("starting")), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("<4>") && l.contains("ignoring -d")), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn another_streams_journal_variable_leaves_lines_plain() {
    let dir = temp_dir("plain");
    let log = dir.join("stderr");
    std::fs::write(&log, b"").unwrap();
    let other = dir.join("other");
    std::fs::write(&other, b"").unwrap();
    // $JOURNAL_STREAM names some other file: stderr was redirected.
    let (child, _) = start(&[], &[("JOURNAL_STREAM", journal_stream_of(&other))], &log);
    stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("starting"), "{text}");
    assert!(text.lines().all(|l| !l.starts_with('<')), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dash_d_in_a_config_file_stays_in_the_foreground_under_type_notify() {
    let dir = temp_dir("conffile");
    let conf = dir.join("memcached.conf");
    std::fs::write(&conf, "# Debian's file, as shipped\n-d\n-m 16\n").unwrap();
    let log = dir.join("stderr");
    let (sock, notify) = notify_socket(&dir);
    let (child, addr) = start(&["--config-file", conf.to_str().unwrap()], &[("NOTIFY_SOCKET", notify)], &log);
    let ready = next(&sock);
    // The process systemd started is the one serving: MAINPID is its own.
    assert!(ready.starts_with("READY=1"), "{ready}");
    assert!(ready.contains(&format!("MAINPID={}", child.id())), "{ready}");
    Client::connect(addr).expect(b"set a 0 0 1\r\nx\r\nget a\r\n", b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
    stop(child);
    assert_eq!(next(&sock), "STOPPING=1");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("ignoring -d from the configuration file"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn snapshot_loads_and_writes_ask_systemd_for_more_time() {
    let dir = temp_dir("extend");
    let snap = dir.join("snapshot");
    let log = dir.join("stderr");
    let (sock, notify) = notify_socket(&dir);
    let args = ["--snapshot-file", snap.to_str().unwrap()];
    let env = [("NOTIFY_SOCKET", notify)];

    // No snapshot yet: nothing to load, so READY=1 comes first.
    let (child, addr) = start(&args, &env, &log);
    assert!(next(&sock).starts_with("READY=1"));
    Client::connect(addr).expect(b"set k 0 0 2\r\nhi\r\n", b"STORED\r\n");
    stop(child);
    assert_eq!(next(&sock), "STOPPING=1");
    let write = next(&sock);
    assert_eq!(write, format!("EXTEND_TIMEOUT_USEC=30000000\nSTATUS=writing {}", snap.display()));

    // The second start loads it: the request comes before READY=1.
    let (child, addr) = start(&args, &env, &log);
    let load = next(&sock);
    assert_eq!(load, format!("EXTEND_TIMEOUT_USEC=30000000\nSTATUS=loading {}", snap.display()));
    let mut note = next(&sock);
    while note.starts_with("EXTEND_TIMEOUT_USEC=") {
        note = next(&sock);
    }
    assert!(note.starts_with("READY=1"), "{note}");
    Client::connect(addr).expect(b"get k\r\n", b"VALUE k 0 2\r\nhi\r\nEND\r\n");
    stop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reload_signal_keeps_the_daemon_serving() {
    // ExecReload sends SIGHUP; without a cluster file there is nothing to
    // re-read, and the signal must not end the process (its default action).
    let dir = temp_dir("reload");
    let log = dir.join("stderr");
    let (child, addr) = start(&[], &[], &log);
    let mut c = Client::connect(addr);
    c.expect(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    // One at a time: pending signals of one kind merge, so each is sent
    // after the previous one was logged (bounded wait).
    let logged = || std::fs::read_to_string(&log).unwrap().matches("SIGHUP received").count();
    for i in 1..=3 {
        assert!(common::send_signal(child.id(), "HUP"));
        let deadline = Instant::now() + TIMEOUT;
        while logged() < i {
            assert!(Instant::now() < deadline, "SIGHUP {i} not handled: {}", std::fs::read_to_string(&log).unwrap());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    c.expect(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    stop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
