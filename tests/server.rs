//! The daemon as an operator sees it: flags, stats, memory bound,
//! connection limits, signals, many threads and clients at once.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Client, Server};

#[test]
fn stats_has_memcacheds_fields() {
    let server = Server::start(&["-t", "3", "-m", "32", "-c", "77"]);
    let mut c = server.connect();
    c.expect(b"set a 0 0 1\r\nx\r\nget a\r\nget b\r\n", b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nEND\r\n");
    let st = server.stats("");
    for field in [
        "pid",
        "uptime",
        "time",
        "version",
        "pointer_size",
        "rusage_user",
        "rusage_system",
        "curr_connections",
        "total_connections",
        "rejected_connections",
        "cmd_get",
        "cmd_set",
        "cmd_flush",
        "cmd_touch",
        "get_hits",
        "get_misses",
        "get_expired",
        "delete_misses",
        "delete_hits",
        "incr_misses",
        "incr_hits",
        "decr_misses",
        "decr_hits",
        "cas_misses",
        "cas_hits",
        "cas_badval",
        "touch_hits",
        "touch_misses",
        "bytes_read",
        "bytes_written",
        "limit_maxbytes",
        "threads",
        "bytes",
        "curr_items",
        "total_items",
        "evictions",
        "reclaimed",
        "expired_unfetched",
        "evicted_unfetched",
    ] {
        assert!(st.contains_key(field), "stats lacks {field}");
    }
    assert_eq!(st["pid"], server.child.id().to_string());
    assert_eq!(st["threads"], "3");
    assert_eq!(st["limit_maxbytes"], (32 * 1024 * 1024).to_string());
    assert_eq!(st["max_connections"], "77");
    assert_eq!((st["cmd_get"].as_str(), st["get_hits"].as_str(), st["get_misses"].as_str()), ("2", "1", "1"));
    assert_eq!(st["curr_items"], "1");
    assert_eq!(st["curr_connections"], "2", "this stats connection and the one above");
    let settings = server.stats("settings");
    assert_eq!(settings["tcpport"], server.port().to_string());
    assert_eq!(settings["maxconns"], "77");
    // Named and formatted as memcached 1.6.18's rows.
    assert_eq!(settings["inter"], "127.0.0.1", "the -l list as given");
    assert_eq!(
        (settings["watcher_logbuf_size"].as_str(), settings["worker_logbuf_size"].as_str()),
        ("262144", "65536")
    );
    assert_eq!(settings["inline_ascii_response"], "no");
    assert_eq!(settings["auth_enabled_ascii"], "no");
    let slabs = server.stats("slabs");
    assert_eq!(slabs["1:used_chunks"], "1");
    let items = server.stats("items");
    assert_eq!(items["items:1:number"], "1");
    let conns = server.stats("conns");
    assert!(conns.keys().any(|k| k.ends_with(":secs_since_last_cmd")));
}

#[test]
fn memory_stays_bounded_when_filled_four_times_over() {
    let server = Server::start(&["-m", "8", "-t", "2"]);
    let mut c = server.connect();
    let value = vec![b'v'; 1000];
    let limit = 8 * 1024 * 1024usize;
    let per_batch = 200;
    let total = 4 * limit / value.len();
    let mut i = 0;
    while i < total {
        let mut req = Vec::new();
        for _ in 0..per_batch {
            req.extend_from_slice(format!("set key:{i} 0 0 {} noreply\r\n", value.len()).as_bytes());
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n");
            i += 1;
        }
        c.send(&req);
    }
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
    let st = server.stats("");
    let bytes: usize = st["bytes"].parse().unwrap();
    let evictions: u64 = st["evictions"].parse().unwrap();
    assert!(bytes <= limit, "bytes {bytes} over -m {limit}");
    assert!(bytes > limit / 2, "the cache is used: {bytes}");
    assert!(evictions > 0);
    assert!(server.stats("ferrocache")["total_malloced"].parse::<usize>().unwrap() <= limit);
    // The newest keys survive, the oldest were evicted.
    c.expect(
        format!("get key:{}\r\n", total - 1).as_bytes(),
        &[format!("VALUE key:{} 0 1000\r\n", total - 1).as_bytes(), &value, b"\r\nEND\r\n"].concat(),
    );
    c.expect(b"get key:0\r\n", b"END\r\n");
}

#[test]
fn disabled_evictions_answer_out_of_memory() {
    let server = Server::start(&["-m", "2", "-I", "1m", "-M"]);
    let mut c = server.connect();
    let value = vec![b'v'; 100_000];
    let mut replies = Vec::new();
    for i in 0..40 {
        let mut req = format!("set k{i} 0 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        c.send(&req);
        replies.push(String::from_utf8(c.read_until(b"\r\n")).unwrap());
    }
    assert!(replies.contains(&"STORED\r\n".to_string()));
    assert!(replies.contains(&"SERVER_ERROR out of memory storing object\r\n".to_string()), "{replies:?}");
    assert_eq!(server.stats("")["evictions"], "0");
}

#[test]
fn concurrent_clients_lose_no_increments_and_see_no_foreign_values() {
    let server = Server::start(&["-t", "4"]);
    let addr = server.addr();
    let mut setup = server.connect();
    setup.expect(b"set counter 0 0 1\r\n0\r\n", b"STORED\r\n");
    let threads = 8;
    let rounds = 500;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for r in 0..rounds {
                    c.send(b"incr counter 1\r\n");
                    c.read_until(b"\r\n");
                    // Each thread writes its own keys and a shared one; a read
                    // of the shared key must be one of the values written.
                    let own = format!("t{t}-r{r}");
                    c.expect(format!("set own{t} 0 0 {}\r\n{own}\r\n", own.len()).as_bytes(), b"STORED\r\n");
                    c.expect(
                        format!("get own{t}\r\n").as_bytes(),
                        format!("VALUE own{t} 0 {}\r\n{own}\r\nEND\r\n", own.len()).as_bytes(),
                    );
                    c.expect(format!("set shared 0 0 8\r\nthread{t:02}\r\n").as_bytes(), b"STORED\r\n");
                    c.send(b"get shared\r\n");
                    let got = String::from_utf8(c.read_until(b"END\r\n")).unwrap();
                    assert!(got.starts_with("VALUE shared 0 8\r\nthread") && got.len() == 33, "{got:?}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = threads * rounds;
    setup.expect(
        b"get counter\r\n",
        format!("VALUE counter 0 {}\r\n{total}\r\nEND\r\n", total.to_string().len()).as_bytes(),
    );
}

#[test]
fn connections_past_the_limit_get_memcacheds_error() {
    let server = Server::start(&["-c", "3", "-t", "1"]);
    let mut held: Vec<Client> = (0..3).map(|_| server.connect()).collect();
    for c in held.iter_mut() {
        c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
    }
    let mut extra = server.connect();
    assert_eq!(extra.read_exact(33), b"ERROR Too many open connections\r\n");
    assert!(extra.closed());
    // A slot frees up once the server has seen a close; `stats` then
    // connects (retried: the close is seen asynchronously).
    drop(held.pop());
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    loop {
        let mut c = server.connect();
        // A refused connection may be reset before the request is read.
        let _ = std::io::Write::write_all(&mut c.stream, b"stats\r\n");
        let got = c.try_read_until(b"\r\n").unwrap_or_default();
        if got.starts_with(b"STAT ") {
            let mut all = got;
            if !all.ends_with(b"END\r\n") {
                all.extend(c.read_until(b"END\r\n"));
            }
            let rest = String::from_utf8(all).unwrap();
            let rejected = rest.lines().find_map(|l| l.strip_prefix("STAT rejected_connections ")).unwrap();
            assert!(rejected.parse::<u64>().unwrap() >= 1);
            break;
        }
        assert!(got.is_empty() || got == b"ERROR Too many open connections\r\n", "{got:?}");
        assert!(std::time::Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_and_sigint_exit_cleanly() {
    for sig in [15, 2] {
        let mut server = Server::start(&[]);
        let mut c = server.connect();
        c.expect(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
        let status = server.signal_and_wait(sig);
        assert!(status.success(), "signal {sig}: {status:?}");
        assert!(c.closed());
    }
}

#[test]
fn the_shutdown_command_works_when_enabled() {
    let mut server = Server::start(&["-A"]);
    let mut c = server.connect();
    c.send(b"shutdown\r\n");
    assert!(c.closed());
    assert!(server.wait().success());
}

#[test]
fn listens_on_several_addresses() {
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let list = if v6 { "127.0.0.1,::1" } else { "127.0.0.1,127.0.0.2" };
    let server = Server::start_raw(&["-l", list, "-p", "-1", "-t", "2"]);
    assert_eq!(server.addrs.len(), 2);
    for &addr in &server.addrs {
        let mut c = Client::connect(addr);
        c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
    }
}

#[test]
fn idle_connections_are_closed_after_idle_timeout() {
    let server = Server::start(&["-o", "idle_timeout=1"]);
    // A connection that never sends a request. (A request first would race
    // the one-second timeout on a machine too loaded to serve it in time.)
    let mut idle = server.connect();
    // The server counts the kick: wait for it (bounded), each `stats` on a
    // connection of its own that is never idle long enough to be kicked.
    let started = Instant::now();
    while server.stats("")["idle_kicks"] == "0" {
        assert!(started.elapsed() < Duration::from_secs(15), "no idle kick after {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }
    // Then the kicked connection reads its end.
    assert!(idle.closed(), "kicked, yet still open after {:?}", started.elapsed());
}

#[test]
fn bad_flags_exit_non_zero_with_a_message() {
    for args in [&["-m", "abc"][..], &["-t", "0"], &["-I", "100"], &["--bogus"], &["-B", "udp"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrocache")).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} printed no message");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ferrocache")).arg("-V").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ferrocache "));
    let out = Command::new(env!("CARGO_BIN_EXE_ferrocache")).arg("-h").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--max-item-size"));
}

#[test]
fn memcached_command_lines_start() {
    let mut server =
        Server::start(&["-U", "0", "-k", "-o", "modern,lru_crawler,slab_reassign,relaxed_privileges", "-vv"]);
    let mut c = server.connect();
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
    drop(c);
    assert!(server.signal_and_wait(15).success());
    let err = server.stderr_text();
    assert!(!err.contains("ignoring"), "nothing is ignored: {err}");
}

/// Which event loop accepted each connection, from the `-v` log lines
/// "accepted <peer> on loop <n>", read off the daemon's stderr.
struct AcceptLog {
    lines: std::sync::mpsc::Receiver<String>,
    seen: HashMap<SocketAddr, usize>,
}

impl AcceptLog {
    fn new(stderr: std::process::ChildStderr) -> AcceptLog {
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        AcceptLog { lines, seen: HashMap::new() }
    }

    /// The loop serving the connection from `peer`. A loop logs the accept
    /// before it serves the connection, so once a request on it has been
    /// answered the line is in the pipe; the wait is only bounded.
    fn loop_of(&mut self, peer: SocketAddr) -> usize {
        while !self.seen.contains_key(&peer) {
            let line = self.lines.recv_timeout(common::TIMEOUT).expect("an accept line for every connection");
            if let Some((addr, n)) = line.split_once("accepted ").and_then(|(_, rest)| rest.split_once(" on loop ")) {
                self.seen.insert(addr.trim_start_matches("tcp:").parse().unwrap(), n.trim().parse().unwrap());
            }
        }
        self.seen[&peer]
    }
}

#[test]
fn many_threads_share_one_cache() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrocache"));
    cmd.args(["-l", "127.0.0.1", "-p", "-1", "-t", "4", "-v"]).env_remove("RUST_LOG");
    let mut server = Server::start_command(&mut cmd);
    let mut log = AcceptLog::new(server.stderr.take().unwrap());
    // The kernel spreads connections over the loops' listeners by a hash
    // of the addresses: connect until at least two loops serve some (all
    // on one loop 63 times running would be a (1/4)^63 chance).
    let mut conns: Vec<(Client, usize)> = Vec::new();
    let mut loops = BTreeSet::new();
    while conns.len() < 16 || loops.len() < 2 {
        assert!(conns.len() < 64, "64 connections all on loop {loops:?}");
        let mut c = server.connect();
        let i = conns.len();
        c.expect(format!("set k{i} 0 0 3\r\nv{i:02}\r\n").as_bytes(), b"STORED\r\n");
        let n = log.loop_of(c.stream.local_addr().unwrap());
        loops.insert(n);
        conns.push((c, n));
    }
    // Each connection reads the keys written on every other loop.
    let on: Vec<usize> = conns.iter().map(|(_, n)| *n).collect();
    for (c, mine) in &mut conns {
        let others: Vec<usize> = (0..on.len()).filter(|&j| on[j] != *mine).collect();
        let keys: String = others.iter().map(|j| format!(" k{j}")).collect();
        let mut want: String = others.iter().map(|j| format!("VALUE k{j} 0 3\r\nv{j:02}\r\n")).collect();
        want.push_str("END\r\n");
        let req = format!("get{keys}\r\n");
        c.send(req.as_bytes());
        let got = c.read_until(b"END\r\n");
        assert_eq!(String::from_utf8_lossy(&got), want, "a connection on loop {mine}");
        c.expect_nothing_more(req.as_bytes());
    }
}

#[test]
fn pidfile_is_written_and_removed() {
    let path = std::env::temp_dir().join(format!("ferrocache-test-{}.pid", std::process::id()));
    let p = path.to_str().unwrap();
    let mut server = Server::start(&["-P", p]);
    let written = std::fs::read_to_string(&path).unwrap();
    assert_eq!(written.trim(), server.child.id().to_string());
    assert!(server.signal_and_wait(15).success());
    assert!(!path.exists(), "pid file removed at exit");
}

#[test]
fn dash_u_drops_root_privileges() {
    let uid = |pid: u32| -> u32 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap() // effective uid
    };
    if uid(std::process::id()) != 0 {
        eprintln!("not root: -u has nothing to drop here");
        return;
    }
    let server = Server::start(&["-u", "nobody"]);
    let mut c = server.connect();
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
    assert_ne!(uid(server.child.id()), 0, "still root after -u nobody");
    // An unknown user: memcached's message and EX_NOUSER (67).
    let out = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-l", "127.0.0.1", "-p", "-1", "-u", "no-such-user-here"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(67));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("can't find the user no-such-user-here to switch to"), "{err}");
}

/// `-k` never keeps the daemon from serving: under a locked-memory limit
/// too small for the cache and its threads it locks nothing and says so,
/// as memcached warns and runs on (locking anyway would leave the loops'
/// stacks unmappable). With `-u` as root the limit is the user's.
#[test]
fn dash_k_serves_under_a_small_memlock_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u64>().ok());
    let root = running_as_root();
    let args: &[&str] = if root { &["-k", "-t", "2", "-u", "nobody"] } else { &["-k", "-t", "2"] };
    let server = Server::start(args);
    let mut c = server.connect();
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
    c.expect(b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
    if soft.is_some_and(|b| b < 64 << 20) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
        let locked = status.lines().find(|l| l.starts_with("VmLck:")).unwrap();
        assert!(locked.split_whitespace().nth(1) == Some("0"), "locked under a small limit: {locked}");
    }
}

/// Whether this test runs as root (its effective uid, from /proc).
fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2) == Some("0")
}

/// One process per port, as with memcached: a second daemon on a port
/// already served exits with "address already in use" instead of joining
/// the first one's SO_REUSEPORT group (which would split clients between
/// two caches).
#[test]
fn a_second_daemon_on_a_served_port_is_refused() {
    let server = Server::start(&["-t", "2"]);
    let port = server.port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-l", "127.0.0.1", "-p", &port, "-t", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");
    let mut c = server.connect();
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
}

/// A 100 KB value stored under `big` (text protocol); returns its bytes.
fn store_big(c: &mut Client) -> Vec<u8> {
    let value: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut req = b"set big 7 0 100000\r\n".to_vec();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    c.expect(&req, b"STORED\r\n");
    value
}

/// Sends `n` text gets of `big` then `version`, in one write; returns the
/// request and the exact bytes that answer it.
fn send_gets(c: &mut Client, n: usize, value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut req = Vec::new();
    let mut want = Vec::new();
    for _ in 0..n {
        req.extend_from_slice(b"get big\r\n");
        want.extend_from_slice(format!("VALUE big 7 {}\r\n", value.len()).as_bytes());
        want.extend_from_slice(value);
        want.extend_from_slice(b"\r\nEND\r\n");
    }
    req.extend_from_slice(b"version\r\n");
    want.extend_from_slice(b"VERSION 1.6.18\r\n");
    c.send(&req);
    (req, want)
}

/// A one-loop server with `big` stored, and a connection that has sent 30
/// gets of it and `version` in one write: about 3 MB of replies.
fn thirty_gets_sent() -> (Server, Client, Vec<u8>, Vec<u8>) {
    let server = Server::start(&["-t", "1"]);
    let mut c = server.connect();
    let value = store_big(&mut c);
    let (req, want) = send_gets(&mut c, 30, &value);
    (server, c, req, want)
}

/// Replies to one write of pipelined requests add up to more than the
/// 1 MiB of output after which a connection stops parsing. The loopback
/// socket takes all of it at once, so the socket never blocks and no new
/// input comes: the connection must go back to what it has buffered
/// without waiting for an event (it used to answer 11 of 12 gets, then
/// nothing). Each reply must come, in order, within the read timeout.
#[test]
fn replies_past_the_output_mark_to_one_write_all_come() {
    // One loop, one connection, the default -R 20 and a smaller one.
    for args in [&["-t", "1"][..], &["-t", "1", "-R", "3"][..]] {
        let server = Server::start(args);
        let mut c = server.connect();
        let value = store_big(&mut c);
        for n in [10, 11, 12, 30] {
            let (req, want) = send_gets(&mut c, n, &value);
            let got = c.read_exact(want.len());
            assert!(got == want, "{args:?}: {n} gets: the replies differ");
            c.expect_nothing_more(&req);
        }
        // 31 requests, more than one budget: the connection parsed on
        // past the mark only within its budget, then yielded to the loop.
        assert!(server.stat("conn_yields") > 0, "{args:?}: no yield");
    }
}

/// The same over the binary protocol: 30 GETs (told apart by opaque) and
/// a VERSION in one write.
#[test]
fn binary_replies_past_the_output_mark_to_one_write_all_come() {
    let server = Server::start(&["-t", "1"]);
    let mut c = server.connect();
    let value: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let set = c.bin_call(&common::bin(0x01, &[0, 0, 0, 9, 0, 0, 0, 0], b"big", &value, 0, 1));
    assert_eq!(set.status, 0);
    let mut req = Vec::new();
    for i in 0..30 {
        req.extend_from_slice(&common::bin(0x00, &[], b"big", &[], 0, 100 + i));
    }
    req.extend_from_slice(&common::bin(0x0b, &[], &[], &[], 0, 7));
    c.send(&req);
    for i in 0..30 {
        let r = c.read_bin();
        assert_eq!((r.opcode, r.status, r.opaque), (0x00, 0, 100 + i));
        assert_eq!(r.extras, [0, 0, 0, 9]);
        assert!(r.value == value, "get {i}: the value differs");
    }
    let v = c.read_bin();
    assert_eq!((v.opcode, v.status, v.opaque, &v.value[..]), (0x0b, 0, 7, &b"1.6.18"[..]));
    c.expect_nothing_more(&req);
}

/// A client that reads slowly gets the same bytes: the connection stops
/// at the mark while its socket is full, and resumes on the writable edge.
/// (The pauses only make that path likely; the bytes must be right on
/// any path.)
#[test]
fn a_slow_reader_gets_every_reply_to_a_pipeline() {
    let (_server, mut c, req, want) = thirty_gets_sent();
    std::thread::sleep(Duration::from_millis(100));
    let mut got = Vec::with_capacity(want.len());
    let mut buf = [0u8; 1000];
    // At most want.len() / 1000 + 1 reads of up to 1000 bytes, a pause of
    // 1 ms every 64 of them: about 50 ms of pauses in all.
    for round in 0.. {
        if got.len() == want.len() {
            break;
        }
        let room = (want.len() - got.len()).min(buf.len());
        let n = std::io::Read::read(&mut c.stream, &mut buf[..room]).expect("read");
        assert!(n > 0, "closed after {} of {} bytes", got.len(), want.len());
        got.extend_from_slice(&buf[..n]);
        if round % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(got == want, "the replies differ");
    c.expect_nothing_more(&req);
}

/// A client that sends a pipeline and then shuts down its side still gets
/// every reply before the connection closes.
#[test]
fn a_half_closed_client_gets_every_reply_past_the_output_mark() {
    let (_server, mut c, _, want) = thirty_gets_sent();
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::with_capacity(want.len());
    std::io::Read::read_to_end(&mut c.stream, &mut got).expect("read to the end");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the replies differ");
}
