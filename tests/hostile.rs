//! Hostile clients: every input is bounded, slow and silent clients are
//! reaped, churn leaks nothing, UDP stays off, and memory stays within the
//! bound docs/security.md states. Every loop here is bounded in time.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{bin, Client, Server, TIMEOUT};

const MB: usize = 1024 * 1024;

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn slowloris_is_reaped_by_idle_timeout() {
    let server = Server::start(&["-o", "idle_timeout=1"]);
    let mut slow = server.connect();
    slow.stream.set_nonblocking(true).unwrap();
    // One byte every 200 ms of a line that never ends: activity, but no
    // request ever completes, so the connection is idle.
    let start = Instant::now();
    let mut closed = false;
    while start.elapsed() < TIMEOUT {
        if slow.stream.write_all(b"g").is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut b = [0u8; 16];
        match std::io::Read::read(&mut slow.stream, &mut b) {
            Ok(0) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "a drip-fed line is reaped");
    assert!(server.stat("idle_kicks") >= 1);
}

#[test]
fn a_client_that_never_reads_is_capped_then_closed() {
    let server = Server::start(&["-t", "2", "-o", "write_timeout=1"]);
    let mut setup = server.connect();
    let value = vec![b'v'; 1000];
    setup.send(&[&b"set k 0 0 1000\r\n"[..], &value, b"\r\n"].concat());
    assert_eq!(setup.read_until(b"\r\n"), b"STORED\r\n");
    let base_rss = server.rss();
    // 100k pipelined gets, never reading a reply (about 100 MB of replies).
    let addr = server.addr();
    let writer = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let batch = b"get k\r\n".repeat(1000);
        let mut sent = 0;
        for _ in 0..100 {
            if s.write_all(&batch).is_err() {
                break;
            }
            sent += 1000;
        }
        // Keep the socket open: the server must be the one to close it.
        (sent, s)
    });
    // Meanwhile other clients are served promptly.
    let mut other = server.connect();
    for _ in 0..50 {
        let t = Instant::now();
        other.expect(b"get k\r\n", &[&b"VALUE k 0 1000\r\n"[..], &value, b"\r\nEND\r\n"].concat());
        assert!(t.elapsed() < Duration::from_secs(1), "another client was slowed down");
    }
    eventually("the silent client is closed", || {
        server.stats("ferrocache")["write_stalls"].parse::<u64>().unwrap() >= 1
    });
    let (_sent, _socket) = writer.join().unwrap();
    let rss = server.rss();
    assert!(rss < base_rss + 8 * MB, "RSS grew from {base_rss} to {rss}");
}

#[test]
fn a_multiget_past_the_output_cap_is_refused_and_closed() {
    let server = Server::start(&["-m", "64"]);
    let mut c = server.connect();
    let value = vec![b'x'; 1000 * 1000];
    c.send(&[&b"set big 0 0 1000000\r\n"[..], &value, b"\r\n"].concat());
    assert_eq!(c.read_until(b"\r\n"), b"STORED\r\n");
    // 20 x 1 MB is past the 16 MiB output cap.
    let req = format!("get{}\r\n", " big".repeat(20));
    c.expect_then_close(req.as_bytes(), b"SERVER_ERROR out of memory writing get response\r\n");
    // Within the cap it works.
    let mut d = server.connect();
    d.send(format!("get{}\r\n", " big".repeat(5)).as_bytes());
    let reply = d.read_until(b"END\r\n");
    assert_eq!(reply.len(), 5 * (b"VALUE big 0 1000000\r\n".len() + value.len() + 2) + 5);
}

#[test]
fn declared_lengths_cost_no_memory() {
    let server = Server::start(&["-m", "64"]);
    let before = server.rss();
    let mut conns = Vec::new();
    for i in 0..20u32 {
        let mut c = server.connect();
        if i % 2 == 0 {
            // text: a value "of" 1 GiB-ish (over -I: refused, swallowed)
            // (no sentinel: it would be swallowed with the refused value)
            c.expect_reply(b"set k 0 0 1073741000\r\n", b"SERVER_ERROR object too large for cache\r\n");
        } else {
            // binary: a 4 GiB body
            let mut p = bin(0x01, &[0; 8], b"k", b"", 0, 0);
            p[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
            c.send(&p);
            assert_eq!(c.read_bin().status, 0x03);
        }
        c.send(&vec![0u8; 256 * 1024]);
        conns.push(c);
    }
    let mut probe = server.connect();
    probe.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
    let after = server.rss();
    assert!(after < before + 16 * MB, "RSS grew from {before} to {after}");
    // A huge multiget line without a newline is cut off at 1 MiB.
    let mut g = server.connect();
    let _ = g.stream.write_all(&[b"get ".to_vec(), vec![b'k'; 2 * MB]].concat());
    assert!(g.closed());
}

#[test]
fn churn_leaves_no_state_behind() {
    let server = Server::start(&["-t", "2", "-c", "4096"]);
    for i in 0..2000 {
        let mut s = TcpStream::connect(server.addr()).unwrap();
        // Half leave a request half-sent: the next connection must not
        // inherit it, even if it reuses the slot.
        if i % 2 == 0 {
            let _ = s.write_all(b"set leak 0 0 10\r\nabc");
        } else {
            let _ = s.write_all(b"get lea");
        }
    }
    let mut c = server.connect();
    c.expect(b"get leak\r\n", b"END\r\n");
    c.expect(b"set fresh 0 0 1\r\nx\r\n", b"STORED\r\n");
    eventually("every churned connection is closed", || server.stat("curr_connections") == 2);
    assert!(server.stat("total_connections") >= 2001);
    assert_eq!(server.stat("rejected_connections"), 0);
}

#[test]
fn udp_is_off_unless_asked_for() {
    let server = Server::start(&[]);
    let port = server.port();
    let udp = std::fs::read_to_string("/proc/net/udp").unwrap_or_default()
        + &std::fs::read_to_string("/proc/net/udp6").unwrap_or_default();
    let needle = format!(":{port:04X} ");
    assert!(!udp.lines().skip(1).any(|l| l.split_whitespace().nth(1).is_some_and(|a| a.ends_with(needle.trim()))));
    // and a memcached UDP request gets no answer
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let _ = sock.send_to(b"\0\x01\0\x01\0\0\0\0stats\r\n", ("127.0.0.1", port));
    let mut buf = [0u8; 64];
    assert!(sock.recv_from(&mut buf).is_err());
}

#[test]
fn memory_stays_within_the_documented_bound_under_attack() {
    // docs/security.md: RSS <= -m + conns x (input cap + output cap) + 32 MiB.
    let server = Server::start(&["-m", "64", "-t", "2", "-o", "write_timeout=2"]);
    let mut c = server.connect();
    // Overfill the cache twice over.
    let value = vec![b'v'; 10_000];
    for batch in 0..130 {
        let mut req = Vec::new();
        for i in 0..100 {
            req.extend_from_slice(format!("set k{batch}-{i} 0 0 10000 noreply\r\n").as_bytes());
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n");
        }
        c.send(&req);
    }
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
    assert!(server.stat("evictions") > 0);
    // 10 clients that never read their multiget replies.
    let addr = server.addr();
    let attackers: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
                let keys: String = (0..100).map(|i| format!(" k129-{i}")).collect();
                let req = format!("get{keys}\r\n").repeat(50);
                let _ = s.write_all(req.as_bytes());
                s
            })
        })
        .collect();
    let held: Vec<TcpStream> = attackers.into_iter().map(|h| h.join().unwrap()).collect();
    let conns = held.len() + 2;
    let bound = 64 * MB + conns * (MB + 16 * 1024 + 16 * MB + MB) + 32 * MB;
    let rss = server.rss();
    println!("hostile: RSS {} MiB under attack, documented bound {} MiB", rss / MB, bound / MB);
    assert!(rss < bound, "RSS {rss} over the documented bound {bound}");
    drop(held);
    let mut probe = Client::connect(server.addr());
    probe.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
}
