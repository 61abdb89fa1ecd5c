//! Backups while serving: the `snapshot` command, SIGUSR2, periodic
//! snapshots that survive `kill -9`, `ferrocache restore` into another
//! node, and damaged files refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{bin, check_items, fill_items, temp_dir, Client, Server, TIMEOUT};

/// The file's identity (inode), if it exists: a new snapshot is a new file
/// renamed into place.
fn inode(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

/// Waits (bounded) until `path` has been replaced `times` times since it
/// was `before` (its [`inode`], read before the snapshot was asked for: a
/// snapshot may be done before this is called).
fn wait_replaced(path: &Path, before: Option<u64>, times: usize) {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = before;
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

/// Sends `snapshot NAME` and waits until its file, returned, is written.
fn snapshot_named(c: &mut Client, dir: &Path, name: &str) -> PathBuf {
    let file = dir.join(if name.ends_with(".snapshot") { name.to_string() } else { format!("{name}.snapshot") });
    let before = inode(&file);
    c.expect(format!("snapshot {name}\r\n").as_bytes(), b"OK\r\n");
    wait_replaced(&file, before, 1);
    file
}

fn kill(server: &mut Server, sig: &str) {
    // The shell's own kill: /usr/bin/kill (procps) is absent on a minimal Debian.
    assert!(common::send_signal(server.child.id(), sig), "kill -{sig}");
}

#[test]
fn the_snapshot_command_writes_a_file_that_loads() {
    let dir = temp_dir("command");
    let n = 3000;
    let mut a = Server::start(&["--snapshot-dir", dir.to_str().unwrap()]);
    let mut c = a.connect();
    fill_items(&mut c, 0..n);
    c.expect(b"set ttl 0 1000 2\r\nhi\r\n", b"STORED\r\n");
    // No warm-restart file: a plain `snapshot` has nowhere to go.
    c.expect(b"snapshot\r\n", b"SERVER_ERROR no snapshot file (--snapshot-file); give a name\r\n");
    for bad in ["../escape", ".hidden", "/tmp/abs", "a/b"] {
        c.expect(format!("snapshot {bad}\r\n").as_bytes(), b"CLIENT_ERROR bad snapshot name\r\n");
    }
    c.expect(b"snapshot a b\r\n", b"ERROR\r\n");
    // Named snapshots get a fixed suffix.
    let file = snapshot_named(&mut c, &dir, "first.snap");
    assert_eq!(file, dir.join("first.snap.snapshot"));
    // The cache served on while the file was written, and still does.
    c.expect(b"get ttl\r\n", b"VALUE ttl 0 2\r\nhi\r\nEND\r\n");
    assert!(!dir.join("first.snap.snapshot.tmp").exists(), "the temp file was renamed");
    assert!(!dir.join("first.snap").exists());
    assert!(a.signal_and_wait(15).success());
    assert!(a.stderr_text().contains(&format!("snapshot written to {}: {} items", file.display(), n + 1)));

    let b = Server::start(&["--snapshot-file", file.to_str().unwrap()]);
    let mut c = b.connect();
    check_items(&mut c, 0..n);
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
    fill_items(&mut c, 0..n);
    let before = inode(&file);
    kill(&mut a, "USR2");
    wait_replaced(&file, before, 1);
    check_items(&mut c, 0..10);
    // kill -9: no shutdown snapshot; the SIGUSR2 one is what comes back.
    kill(&mut a, "KILL");
    a.wait();
    let b = Server::start(&["--snapshot-file", file.to_str().unwrap()]);
    check_items(&mut b.connect(), 0..n);
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
    fill_items(&mut c, 0..n);
    // Counted from after the fill: the first new file may have been copied
    // before the fill ended; the second began after the first was done, so
    // after the fill. (A snapshot done in between is not counted: the
    // interval writes more.)
    let after_fill = inode(&file);
    wait_replaced(&file, after_fill, 2);
    // Written after the last snapshot: may be lost, as documented.
    fill_items(&mut c, n..n + 100);
    kill(&mut a, "KILL");
    a.wait();
    assert!(inode(&file).is_some());
    let b = Server::start(&["--snapshot-file", f, "--snapshot-interval", "1"]);
    check_items(&mut b.connect(), 0..n);
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
    fill_items(&mut c, 0..n);
    c.expect(b"set ttl 5 1000 2\r\nhi\r\n", b"STORED\r\n");
    // A key the text protocol cannot carry, stored through meta's base64.
    c.expect(b"ms YSBi 1 b\r\nx\r\n", b"HD\r\n");
    let file = snapshot_named(&mut c, &dir, "backup");

    let b = Server::start(&[]);
    let out = restore(&file, &b);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains(&format!("restored {} of {} items", n + 2, n + 2)), "{text}");
    let mut c = b.connect();
    check_items(&mut c, 0..n);
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
    fill_items(&mut a.connect(), 0..500);
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

#[test]
fn restore_skips_a_key_ms_cannot_carry_and_never_runs_its_value() {
    let dir = temp_dir("longkey");
    let a = Server::start(&["--snapshot-dir", dir.to_str().unwrap()]);
    // 250 spaces: a binary-protocol key, 336 characters in base64. Sent
    // in an `ms` line it would be refused without its data being read,
    // and `flush_all` would run on the target.
    let key = [b' '; 250];
    let set = bin(0x01, &[0; 8], &key, b"flush_all", 0, 1);
    assert_eq!(a.connect().bin_call(&set).status, 0);
    let mut c = a.connect();
    c.expect(b"set after 0 0 1\r\nz\r\n", b"STORED\r\n");
    let file = snapshot_named(&mut c, &dir, "long");

    let b = Server::start(&[]);
    let mut t = b.connect();
    t.expect(b"set other 3 0 5\r\nthere\r\n", b"STORED\r\n");
    let out = restore(&file, &b);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text.contains("restored 1 of 2 items"), "{text}");
    assert!(text.contains("1 with keys the meta protocol cannot carry, skipped; 0 refused"), "{text}");
    t.expect(b"get other after\r\n", b"VALUE other 3 5\r\nthere\r\nVALUE after 0 1\r\nz\r\nEND\r\n");
    assert_eq!(b.stat("cmd_flush"), 0);
    assert_eq!(b.stat("curr_items"), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_named_snapshot_never_replaces_a_file_the_server_keeps() {
    let dir = temp_dir("reserved");
    let warm = dir.join("cache");
    let mut a = Server::start(&["-e", warm.to_str().unwrap(), "--snapshot-max-named", "2"]);
    let mut c = a.connect();
    c.expect(b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
    // `cache.meta` is a name like any other: it gets the suffix and the
    // warm-restart metadata is left alone.
    snapshot_named(&mut c, &dir, "cache.meta");
    let one = snapshot_named(&mut c, &dir, "one");
    // Two named snapshots: a third name is refused, an old one replaced.
    c.expect(b"snapshot three\r\n", b"SERVER_ERROR too many named snapshots (--snapshot-max-named)\r\n");
    assert_eq!(snapshot_named(&mut c, &dir, "one.snapshot"), one);
    // SIGUSR1 writes the warm-restart file and its .meta; the next start
    // loads them.
    assert!(a.signal_and_wait(libc::SIGUSR1).success());
    assert!(dir.join("cache.meta").exists());
    let b = Server::start(&["-e", warm.to_str().unwrap()]);
    b.connect().expect(b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n");
    drop(b);
    // A warm-restart file that ends in the suffix cannot be named.
    let snap = dir.join("w.snapshot");
    let d = Server::start(&["--snapshot-file", snap.to_str().unwrap()]);
    let mut c = d.connect();
    for name in ["w", "w.snapshot"] {
        c.expect(
            format!("snapshot {name}\r\n").as_bytes(),
            b"CLIENT_ERROR snapshot name is a file the server uses\r\n",
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn restore_counts_the_sets_a_node_refuses_and_goes_on() {
    let dir = temp_dir("refused");
    let a = Server::start(&["--snapshot-dir", dir.to_str().unwrap()]);
    let mut c = a.connect();
    let big = vec![b'b'; 2000];
    for i in 0..3 {
        c.send(&[format!("set big{i} 0 0 {} noreply\r\n", big.len()).as_bytes(), &big, b"\r\n"].concat());
    }
    fill_items(&mut c, 0..5);
    assert_eq!(a.stat("curr_items"), 8);
    let file = snapshot_named(&mut c, &dir, "refused");

    // Items over 1 KiB are too large for this node: each set is refused
    // (its data read and dropped), and the others still land.
    let b = Server::start(&["-I", "1k"]);
    let out = restore(&file, &b);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text.contains("restored 5 of 8 items"), "{text}");
    assert!(text.contains("3 refused by the node, first: SERVER_ERROR object too large for cache"), "{text}");
    assert_eq!(b.stat("curr_items"), 5);
    check_items(&mut b.connect(), 0..5);
    let _ = std::fs::remove_dir_all(&dir);
}
