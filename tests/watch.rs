//! `watch` log streams against the real binary: what a watcher is sent,
//! that a watcher which never reads stays bounded, and `-W`.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{Client, Server};

/// A watcher connection read line by line.
struct Watcher {
    c: Client,
    buf: Vec<u8>,
}

impl Watcher {
    /// Connects and sends `cmd`, expecting `OK`.
    fn start(server: &Server, cmd: &[u8]) -> Watcher {
        let mut c = server.connect();
        c.send(cmd);
        let mut w = Watcher { c, buf: Vec::new() };
        assert_eq!(w.line(), "OK\r\n");
        w
    }

    /// Reads one `\n`-ended line.
    fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let l: Vec<u8> = self.buf.drain(..=i).collect();
                return String::from_utf8(l).unwrap();
            }
            let mut chunk = [0u8; 4096];
            let n = self.c.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "watcher closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads lines until one contains `want`.
    fn until(&mut self, want: &str) -> String {
        loop {
            let l = self.line();
            if l.contains(want) {
                return l;
            }
        }
    }
}

fn fields(l: &str) -> Vec<&str> {
    l.trim_end().split(' ').collect()
}

#[test]
fn a_watcher_sees_a_set_and_a_get_from_another_connection() {
    let server = Server::start(&["-t", "2"]);
    let mut watcher = Watcher::start(&server, b"watch fetchers mutations\r\n");
    let mut c = server.connect();
    c.expect(b"set k%ey 0 100 5\r\nhello\r\n", b"STORED\r\n");
    c.expect(b"get k%ey\r\n", b"VALUE k%ey 0 5\r\nhello\r\nEND\r\n");

    let get = watcher.line();
    let f = fields(&get);
    assert!(f[0].starts_with("ts=") && f[0].contains('.'), "{get}");
    assert!(f[1].starts_with("gid="), "{get}");
    assert_eq!(&f[2..5], ["type=item_get", "key=k%25ey", "status=not_found"], "{get}");
    assert_eq!(&f[5..], ["clsid=0", f[6], "size=0"]);
    assert!(f[6].starts_with("cfd="));
    let cfd = f[6];

    let store = watcher.line();
    let f = fields(&store);
    assert_eq!(&f[2..6], ["type=item_store", "key=k%25ey", "status=stored", "cmd=set"], "{store}");
    let ttl: u32 = f[6].strip_prefix("ttl=").unwrap().parse().unwrap();
    assert!((99..=100).contains(&ttl), "{store}");
    assert_eq!(f[8], cfd);
    assert_eq!(f[9], "size=5");

    let hit = watcher.line();
    let f = fields(&hit);
    assert_eq!(&f[2..5], ["type=item_get", "key=k%25ey", "status=found"], "{hit}");
    assert_eq!(&f[6..], [cfd, "size=5"]);
    assert_ne!(f[5], "clsid=0");
}

#[test]
fn a_watcher_only_gets_its_classes_and_connection_events_say_why() {
    let server = Server::start(&[]);
    let mut watcher = Watcher::start(&server, b"watch connevents\r\n");
    let mut c = server.connect();
    c.expect(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.send(b"quit\r\n");
    let new = watcher.line();
    assert!(new.contains(" type=conn_new rip=127.0.0.1 rport=") && new.contains(" transport=tcp cfd="), "{new}");
    let close = watcher.line();
    assert!(close.contains(" type=conn_close ") && close.contains(" reason=normal "), "{close}");
    let mut bad = server.connect();
    bad.send(b"GET / HTTP/1.1\r\n");
    watcher.until("type=conn_new");
    let close = watcher.line();
    assert!(close.contains(" reason=error "), "{close}");
    // No item lines reached a connevents watcher.
    assert!(watcher.buf.is_empty() && watcher.c.silent_for(Duration::from_millis(200)));
}

#[test]
fn evictions_are_streamed_from_the_store() {
    let server = Server::start(&["-m", "8"]);
    let mut watcher = Watcher::start(&server, b"watch evictions\r\n");
    let mut c = server.connect();
    let value = vec![b'v'; 100_000];
    for i in 0..200 {
        let mut req = format!("set big{i} 0 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        c.expect(&req, b"STORED\r\n");
    }
    let ev = watcher.line();
    let f = fields(&ev);
    assert_eq!(f[2], "type=eviction", "{ev}");
    assert!(f[3].starts_with("key=big"), "{ev}");
    assert_eq!(&f[4..6], ["fetch=no", "ttl=-1"], "{ev}");
    assert_eq!(f[8], "size=100000", "{ev}");
}

#[test]
fn a_watcher_that_never_reads_is_bounded_and_its_losses_counted() {
    let server = Server::start(&["-t", "1", "-o", "watcher_logbuf_size=8,worker_logbuf_size=16"]);
    let mut watcher = server.connect();
    watcher.send(b"watch\r\n");
    assert_eq!(watcher.read_until(b"\r\n"), b"OK\r\n");
    let before = server.rss();
    let mut c = server.connect();
    let key = "k".repeat(200);
    let batch: Vec<u8> = (0..200).flat_map(|_| format!("get {key}\r\n").into_bytes()).collect();
    let want: Vec<u8> = (0..200).flat_map(|_| b"END\r\n".to_vec()).collect();
    // About 60 MB of log lines: far past any socket buffer.
    for _ in 0..1000 {
        c.send(&batch);
        assert_eq!(c.read_exact(want.len()), want);
    }
    assert_eq!(server.stat("log_watchers"), 1);
    assert_eq!(server.stat("log_worker_written"), 200_000);
    // Bounded: lines went missing instead of memory growing.
    let grown = server.rss().saturating_sub(before);
    assert!(grown < 16 << 20, "grew by {grown} bytes");

    // Reading again: each loss is reported before the lines after it,
    // and the `skipped=` lines add up to what `stats` counts.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0; 1 << 16];
    let mut text = Vec::new();
    c.expect(b"get after\r\n", b"END\r\n");
    while !text.windows(10).any(|w| w == b"key=after ") {
        assert!(Instant::now() < deadline, "never caught up");
        let n = watcher.stream.read(&mut buf).unwrap();
        text.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(text).unwrap();
    let mut reported = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(l) = lines.next() {
        if let Some(n) = l.strip_prefix("skipped=") {
            reported += n.trim_end().parse::<u64>().unwrap();
            assert!(lines.peek().is_some_and(|next| next.starts_with("ts=")), "a line follows a skip");
        } else {
            assert!(l.starts_with("ts=") && l.contains(" type=item_get "), "{l:.80}");
        }
    }
    let skipped = server.stat("log_watcher_skipped");
    assert!(skipped > 100_000, "skipped {skipped}");
    assert_eq!(reported, skipped);
    let sent = server.stat("log_watcher_sent");
    assert_eq!(sent + skipped, 200_001, "every line was sent or skipped");
}

#[test]
fn closing_a_watcher_unregisters_it() {
    let server = Server::start(&[]);
    let mut w = server.connect();
    w.send(b"watch fetchers\r\n");
    assert_eq!(w.read_until(b"\r\n"), b"OK\r\n");
    assert_eq!(server.stat("log_watchers"), 1);
    drop(w);
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.stat("log_watchers") != 0 {
        assert!(Instant::now() < deadline, "watcher still counted");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn watch_refusals() {
    let server = Server::start(&["-W"]);
    let mut c = server.connect();
    c.expect(b"watch mutations\r\n", b"CLIENT_ERROR watch commands not allowed\r\n");
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.expect(b"watch bogus\r\n", b"ERROR\r\n");
    // A reply still queued ahead of the stream is refused, as memcached does.
    c.send(b"version\r\nwatch\r\n");
    let got = c.read_until(b"before watch\r\n");
    assert!(got.ends_with(b"ERROR cannot pipeline other commands before watch\r\n"));
}
