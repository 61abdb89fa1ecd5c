//! Backups while serving: the `snapshot` command, SIGUSR2, periodic
//! snapshots that survive `kill -9`, `ferrocache restore` into another
//! node, and damaged files refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{Client, Server, TIMEOUT};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ferrocache-backup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A value that proves its own integrity: derived from the index.
fn value_for(i: usize) -> Vec<u8> {
    (0..(i * 37) % 3000).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
}

/// Stores items `range` (flags = index), then waits for the replies.
fn fill(c: &mut Client, range: std::ops::Range<usize>) {
    for i in range {
        let v = value_for(i);
        c.send(&[format!("set key:{i} {i} 0 {} noreply\r\n", v.len()).as_bytes(), &v, b"\r\n"].concat());
    }
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
}

/// Asserts items `range` are all there, byte for byte, with their flags.
fn check(c: &mut Client, range: std::ops::Range<usize>) {
    for i in range {
        let v = value_for(i);
        let want = [format!("VALUE key:{i} {i} {}\r\n", v.len()).as_bytes(), &v, b"\r\nEND\r\n"].concat();
        c.expect(format!("get key:{i}\r\n").as_bytes(), &want);
    }
}

/// The file's identity (inode), if it exists: a new snapshot is a new file
/// renamed into place.
fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Waits (bounded) until `path` has been replaced `times` times.
fn wait_replaced(path: &Path, times: usize) {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = inode(path);
    let mut n = 0;
    while n < times {
        assert!(Instant::now() < deadline, "{} was not written", path.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = inode(path);
        if now.is_some() && now != seen {
            seen = now;
            n += 1;
        }
    }
}

fn kill(server: &mut Server, sig: &str) {
    let st = Command::new("kill").arg(format!("-{sig}")).arg(server.child.id().to_string()).status().unwrap();
    assert!(st.success());
}

#[test]
fn the_snapshot_command_writes_a_file_that_loads() {
    let dir = temp_dir("command");
    let n = 3000;
    let mut a = Server::start(&["--snapshot-dir", dir.to_str().unwrap()]);
    let mut c = a.connect();
    fill(&mut c, 0..n);
    c.expect(b"set ttl 0 1000 2\r\nhi\r\n", b"STORED\r\n");
    // No warm-restart file: a plain `snapshot` has nowhere to go.
    c.expect(b"snapshot\r\n", b"SERVER_ERROR no snapshot file (--snapshot-file); give a name\r\n");
    for bad in ["../escape", ".hidden", "/tmp/abs", "a/b"] {
        c.expect(format!("snapshot {bad}\r\n").as_bytes(), b"CLIENT_ERROR bad snapshot name\r\n");
    }
    c.expect(b"snapshot a b\r\n", b"ERROR\r\n");
    let file = dir.join("first.snap");
    c.expect(b"snapshot first.snap\r\n", b"OK\r\n");
    wait_replaced(&file, 1);
    // The cache served on while the file was written, and still does.
    c.expect(b"get ttl\r\n", b"VALUE ttl 0 2\r\nhi\r\nEND\r\n");
    assert!(!dir.join("first.snap.tmp").exists(), "the temp file was renamed");
    assert!(a.signal_and_wait(15).success());
    assert!(a.stderr_text().contains(&format!("snapshot written to {}: {} items", file.display(), n + 1)));

    let b = Server::start(&["--snapshot-file", file.to_str().unwrap()]);
    let mut c = b.connect();
    check(&mut c, 0..n);
    c.expect(b"get ttl\r\n", b"VALUE ttl 0 2\r\nhi\r\nEND\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigusr2_writes_the_warm_restart_file_while_serving() {
    let dir = temp_dir("usr2");
    let file = dir.join("cache.snap");
    let n = 2000;
    let mut a = Server::start(&["--snapshot-file", file.to_str().unwrap()]);
    let mut c = a.connect();
    fill(&mut c, 0..n);
    kill(&mut a, "USR2");
    wait_replaced(&file, 1);
    check(&mut c, 0..10);
    // kill -9: no shutdown snapshot; the SIGUSR2 one is what comes back.
    kill(&mut a, "KILL");
    a.wait();
    let b = Server::start(&["--snapshot-file", file.to_str().unwrap()]);
    check(&mut b.connect(), 0..n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_periodic_snapshot_survives_kill_9() {
    let dir = temp_dir("interval");
    let file = dir.join("cache.snap");
    let f = file.to_str().unwrap();
    let n = 3000;
    let mut a = Server::start(&["--snapshot-file", f, "--snapshot-interval", "1"]);
    let mut c = a.connect();
    fill(&mut c, 0..n);
    // The first new file may have been copied before the fill ended; the
    // second began after the first was done, so after the fill.
    wait_replaced(&file, 2);
    // Written after the last snapshot: may be lost, as documented.
    fill(&mut c, n..n + 100);
    kill(&mut a, "KILL");
    a.wait();
    assert!(inode(&file).is_some());
    let b = Server::start(&["--snapshot-file", f, "--snapshot-interval", "1"]);
    check(&mut b.connect(), 0..n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_interval_needs_a_snapshot_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-p", "-1", "-l", "127.0.0.1", "--snapshot-interval", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--snapshot-interval"), "{out:?}");
}

fn restore(file: &Path, server: &Server) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["restore", file.to_str().unwrap(), &server.addr().to_string()])
        .output()
        .unwrap()
}

#[test]
fn restore_seeds_another_running_node() {
    let dir = temp_dir("restore");
    let n = 3000;
    let a = Server::start(&["--snapshot-dir", dir.to_str().unwrap()]);
    let mut c = a.connect();
    fill(&mut c, 0..n);
    c.expect(b"set ttl 5 1000 2\r\nhi\r\n", b"STORED\r\n");
    // A key the text protocol cannot carry, stored through meta's base64.
    c.expect(b"ms YSBi 1 b\r\nx\r\n", b"HD\r\n");
    let file = dir.join("backup");
    c.expect(b"snapshot backup\r\n", b"OK\r\n");
    wait_replaced(&file, 1);

    let b = Server::start(&[]);
    let out = restore(&file, &b);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains(&format!("restored {} of {} items", n + 2, n + 2)), "{text}");
    let mut c = b.connect();
    check(&mut c, 0..n);
    c.expect(b"get ttl\r\n", b"VALUE ttl 5 2\r\nhi\r\nEND\r\n");
    // The remaining TTL came along: at most the 1000 s it was set with.
    c.send(b"mg ttl t\r\n");
    let reply = String::from_utf8(c.read_until(b"\r\n")).unwrap();
    let ttl: u64 = reply.trim_end().strip_prefix("HD t").unwrap().parse().unwrap();
    assert!((990..=1000).contains(&ttl), "{reply}");
    c.send(b"mg YSBi b v\r\n");
    let reply = c.read_until(b"\r\nx\r\n");
    assert!(reply.starts_with(b"VA 1"), "{}", String::from_utf8_lossy(&reply));
    assert_eq!(b.stat("curr_items"), n as u64 + 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_file_is_refused_by_restore_and_at_start() {
    let dir = temp_dir("corrupt");
    let file = dir.join("cache.snap");
    let mut a = Server::start(&["--snapshot-file", file.to_str().unwrap()]);
    fill(&mut a.connect(), 0..500);
    assert!(a.signal_and_wait(15).success());
    let mut bytes = std::fs::read(&file).unwrap();
    // Near the end: most records are good and come before the bad one.
    let at = bytes.len() - 100;
    bytes[at] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();

    let b = Server::start(&[]);
    let out = restore(&file, &b);
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("; nothing was sent"), "{out:?}");
    assert_eq!(b.stat("curr_items"), 0);
    assert_eq!(b.stat("cmd_set"), 0);

    let mut c = Server::start(&["--snapshot-file", file.to_str().unwrap()]);
    assert_eq!(c.stat("curr_items"), 0, "the good records loaded before the bad one were taken out");
    c.connect().expect(b"get key:1\r\n", b"END\r\n");
    assert!(c.signal_and_wait(15).success());
    let log = c.stderr_text();
    assert!(log.contains("refused") && log.contains("starting empty"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
