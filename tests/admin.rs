//! The admin commands against the real binary: `stats detail`, `stats
//! sizes`, `slabs reassign|automove`, `lru_crawler
//! enable|disable|crawl|metadump`.

mod common;

use std::time::{Duration, Instant};

use common::{bin, Client, Server};

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn stats_detail_counts_gets_hits_sets_and_deletes_by_prefix() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.expect(b"stats detail dump\r\n", b"END\r\n");
    c.expect(b"stats detail on\r\n", b"OK\r\n");
    assert_eq!(server.stats("settings")["detail_enabled"], "yes");
    c.expect(b"set foo:1 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.expect(b"get foo:1 foo:2 nodelimiter\r\n", b"VALUE foo:1 0 1\r\nx\r\nEND\r\n");
    c.expect(b"delete foo:3\r\n", b"NOT_FOUND\r\n");
    c.expect(b"set bar:1 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.expect(
        b"stats detail dump\r\n",
        b"PREFIX bar get 0 hit 0 set 1 del 0\r\nPREFIX foo get 2 hit 1 set 1 del 1\r\nEND\r\n",
    );
    c.expect(b"stats detail off\r\n", b"OK\r\n");
    c.expect(b"get foo:1\r\n", b"VALUE foo:1 0 1\r\nx\r\nEND\r\n");
    c.expect(
        b"stats detail dump\r\n",
        b"PREFIX bar get 0 hit 0 set 1 del 0\r\nPREFIX foo get 2 hit 1 set 1 del 1\r\nEND\r\n",
    );
    c.expect(b"stats reset\r\n", b"RESET\r\n");
    c.expect(b"stats detail dump\r\n", b"END\r\n");
    c.expect(b"stats detail\r\n", b"CLIENT_ERROR usage: stats detail on|off|dump\r\n");
    c.expect(b"stats detail sideways\r\n", b"CLIENT_ERROR usage: stats detail on|off|dump\r\n");
}

#[test]
fn dash_d_sets_the_delimiter_and_turns_detail_on() {
    let server = Server::start(&["-D", "/"]);
    let st = server.stats("settings");
    assert_eq!((st["detail_enabled"].as_str(), st["stat_key_prefix"].as_str()), ("yes", "/"));
    let mut c = server.connect();
    c.expect(b"set a/b:c 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.expect(b"stats detail dump\r\n", b"PREFIX a get 0 hit 0 set 1 del 0\r\nEND\r\n");
}

#[test]
fn binary_stats_detail_on_and_dump() {
    const STAT: u8 = 0x10;
    let server = Server::start(&[]);
    let mut c = server.connect();
    let r = c.bin_call(&bin(STAT, &[], b"detail on", &[], 0, 1));
    assert_eq!((r.status, r.key.len()), (0, 0), "detail on answers only the terminator");
    let r = c.bin_call(&bin(0x01, &[0, 0, 0, 0, 0, 0, 0, 0], b"p:k", b"v", 0, 2));
    assert_eq!(r.status, 0);
    let r = c.bin_call(&bin(STAT, &[], b"detail dump", &[], 0, 3));
    assert_eq!(r.key, b"detailed");
    assert_eq!(r.value, b"PREFIX p get 0 hit 0 set 1 del 0\r\nEND\r\n");
    let end = c.read_bin();
    assert_eq!((end.status, end.key.len()), (0, 0));
    let r = c.bin_call(&bin(STAT, &[], b"detail bogus", &[], 0, 4));
    assert_eq!(r.status, 1, "KEY_ENOENT, as memcached");
}

/// Stores `n` items of `len` bytes (noreply), then waits for them.
fn fill(c: &mut Client, prefix: &str, n: usize, len: usize) {
    let value = "v".repeat(len);
    for i in 0..n {
        c.send(format!("set {prefix}{i} 0 0 {len} noreply\r\n{value}\r\n").as_bytes());
    }
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
}

fn pages(server: &Server) -> std::collections::HashMap<u32, u64> {
    server
        .stats("slabs")
        .into_iter()
        .filter_map(|(k, v)| {
            let id = k.strip_suffix(":total_pages")?;
            Some((id.parse().ok()?, v.parse().ok()?))
        })
        .collect()
}

#[test]
fn slabs_reassign_replies_and_moves_a_page() {
    let server = Server::start(&["-m", "8"]);
    let mut c = server.connect();
    c.expect(b"slabs reassign invalid1 invalid2\r\n", b"CLIENT_ERROR bad command line format\r\n");
    c.expect(b"slabs reassign 0 2\r\n", b"BADCLASS invalid src or dst class id\r\n");
    c.expect(b"slabs reassign 1 200\r\n", b"BADCLASS invalid src or dst class id\r\n");
    c.expect(b"slabs reassign 3 3\r\n", b"SAME src and dst class are identical\r\n");
    c.expect(b"slabs reassign 1 2\r\n", b"NOSPARE source class has no spare pages\r\n");
    fill(&mut c, "k", 3000, 100);
    let before = pages(&server);
    let (&src, &n) = before.iter().max_by_key(|(_, &n)| n).unwrap();
    assert!(n >= 2, "{before:?}");
    let dst = if src == 1 { 2 } else { 1 };
    c.expect(format!("slabs reassign {src} {dst}\r\n").as_bytes(), b"OK\r\n");
    let after = pages(&server);
    assert!(after[&src] < n, "{before:?} -> {after:?}");
    assert_eq!(after.get(&dst), Some(&(before.get(&dst).unwrap_or(&0) + 1)));
    assert!(server.stat("slabs_moved") >= 1);
    // -1: from the class with the most pages (here still `src`).
    c.expect(format!("slabs reassign -1 {dst}\r\n").as_bytes(), b"OK\r\n");
    assert_eq!(pages(&server)[&src], after[&src] - 1);
}

/// `stats reset` zeroes `slabs_moved` and the `log_*` line counters, as
/// memcached's does (they are in the stats it clears); `log_watchers` is a
/// gauge and stays.
#[test]
fn stats_reset_zeroes_slabs_moved_and_the_log_counters() {
    let server = Server::start(&["-m", "8", "-o", "no_lru_crawler"]);
    let mut w = server.connect();
    w.send(b"watch mutations\r\n");
    assert_eq!(w.read_until(b"\r\n"), b"OK\r\n");
    let mut c = server.connect();
    fill(&mut c, "k", 3000, 100);
    let (&src, _) = pages(&server).iter().max_by_key(|(_, &n)| n).unwrap();
    let dst = if src == 1 { 2 } else { 1 };
    c.expect(format!("slabs reassign {src} {dst}\r\n").as_bytes(), b"OK\r\n");
    assert!(server.stat("slabs_moved") >= 1);
    assert!(server.stat("log_worker_written") >= 3000);
    assert!(server.stat("log_watcher_sent") + server.stat("log_watcher_skipped") >= 1);
    c.expect(b"stats reset\r\n", b"RESET\r\n");
    let st = server.stats("");
    let row = |k: &str| st[k].as_str();
    assert_eq!(row("slabs_moved"), "0");
    assert_eq!((row("log_worker_written"), row("log_worker_dropped")), ("0", "0"));
    assert_eq!((row("log_watcher_sent"), row("log_watcher_skipped")), ("0", "0"));
    assert_eq!(row("log_watchers"), "1");
}

#[test]
fn slabs_reassign_is_refused_without_slab_reassign() {
    let server = Server::start(&["-o", "no_modern"]);
    let mut c = server.connect();
    assert_eq!(server.stats("settings")["slab_reassign"], "no");
    c.expect(b"slabs reassign 1 2\r\n", b"CLIENT_ERROR slab reassignment disabled\r\n");
}

#[test]
fn slabs_automove_sets_the_mode() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(server.stats("settings")["slab_automove"], "1");
    for mode in ["0", "2", "1"] {
        c.expect(format!("slabs automove {mode}\r\n").as_bytes(), b"OK\r\n");
        assert_eq!(server.stats("settings")["slab_automove"], mode);
    }
    c.expect(b"slabs automove invalid\r\n", b"CLIENT_ERROR bad command line format\r\n");
    c.expect(b"slabs automove 3\r\n", b"ERROR\r\n");
    c.expect(b"slabs automove\r\n", b"ERROR\r\n");
    c.expect(b"slabs\r\n", b"ERROR\r\n");
}

fn wait_crawler_idle(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stat("lru_crawler_running") != 0 {
        assert!(Instant::now() < deadline, "crawl did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn lru_crawler_enable_crawl_and_disable() {
    let server = Server::start(&["-o", "no_modern"]);
    let mut c = server.connect();
    assert_eq!(server.stats("settings")["lru_crawler"], "no");
    c.expect(b"lru_crawler crawl all\r\n", b"CLIENT_ERROR lru crawler disabled\r\n");
    c.expect(b"lru_crawler metadump all\r\n", b"CLIENT_ERROR lru crawler disabled\r\n");
    for i in 0..10 {
        c.expect(format!("set s{i} 0 1 2\r\nok\r\n").as_bytes(), b"STORED\r\n");
    }
    c.expect(b"set keep 0 0 2\r\nok\r\n", b"STORED\r\n");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(server.stats("items")["items:1:crawler_reclaimed"], "0", "a disabled crawler stays idle");
    c.expect(b"lru_crawler enable\r\n", b"OK\r\n");
    assert_eq!(server.stats("settings")["lru_crawler"], "yes");
    c.expect(b"lru_crawler crawl 0\r\n", b"BADCLASS invalid class id\r\n");
    c.expect(b"lru_crawler crawl 1,x\r\n", b"BADCLASS invalid class id\r\n");
    c.expect(b"lru_crawler crawl 1\r\n", b"OK\r\n");
    wait_crawler_idle(&server);
    assert_eq!(server.stats("items")["items:1:crawler_reclaimed"], "10");
    assert_eq!(server.stats("slabs")["1:used_chunks"], "1");
    assert_eq!(server.stat("lru_crawler_starts"), 1);
    c.expect(b"lru_crawler crawl all\r\n", b"OK\r\n");
    wait_crawler_idle(&server);
    c.expect(b"lru_crawler disable\r\n", b"OK\r\n");
    assert_eq!(server.stats("settings")["lru_crawler"], "no");
    c.expect(b"lru_crawler sideways\r\n", b"ERROR\r\n");
}

#[test]
fn lru_crawler_metadump_lists_live_items() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.expect(b"set plain 0 0 2\r\nok\r\n", b"STORED\r\n");
    c.expect(b"set odd#key/1 0 3600 2\r\nok\r\n", b"STORED\r\n");
    c.expect(b"get plain\r\n", b"VALUE plain 0 2\r\nok\r\nEND\r\n");
    c.send(b"lru_crawler metadump all\r\n");
    let dump = text(c.read_until(b"END\r\n"));
    let mut lines: Vec<&str> = dump.lines().collect();
    assert_eq!(lines.pop(), Some("END"));
    lines.sort();
    assert_eq!(lines.len(), 2, "{dump}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for (line, key, fetched) in [(lines[0], "odd%23key%2F1", "no"), (lines[1], "plain", "yes")] {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 7, "{line}");
        assert_eq!(fields[0], format!("key={key}"));
        let exp = fields[1].strip_prefix("exp=").unwrap();
        if key == "plain" {
            assert_eq!(exp, "-1");
        } else {
            let exp: u64 = exp.parse().unwrap();
            assert!((now + 3590..=now + 3610).contains(&exp), "{line}");
        }
        let la: u64 = fields[2].strip_prefix("la=").unwrap().parse().unwrap();
        assert!(la.abs_diff(now) < 10, "{line}");
        assert!(fields[3].strip_prefix("cas=").unwrap().parse::<u64>().unwrap() > 0);
        assert_eq!(fields[4], format!("fetch={fetched}"));
        assert_eq!(fields[5], "cls=1");
        assert!(fields[6].strip_prefix("size=").unwrap().parse::<u64>().unwrap() > 0);
    }
    // The connection serves requests again after the dump.
    c.expect(b"lru_crawler metadump 2\r\n", b"END\r\n");
    c.expect(b"lru_crawler metadump hash\r\n", &c_dump_again(&server));
    c.expect(b"lru_crawler metadump 0\r\n", b"BADCLASS invalid class id\r\n");
}

fn c_dump_again(server: &Server) -> Vec<u8> {
    let mut other = server.connect();
    other.send(b"lru_crawler metadump all\r\n");
    other.read_until(b"END\r\n")
}

#[test]
fn metadump_refuses_to_follow_pipelined_requests() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.expect(
        b"mg foo v\r\nlru_crawler metadump all\r\n",
        b"EN\r\nERROR cannot pipeline other commands before metadump\r\n",
    );
}

#[test]
fn metadump_is_refused_with_dumping_disabled() {
    let server = Server::start(&["-X"]);
    let mut c = server.connect();
    c.expect(b"lru_crawler metadump all\r\n", b"ERROR metadump not allowed\r\n");
}

/// A client that half-closes right after asking (`... | nc -N`) still gets
/// the whole dump: queued output goes out before the close.
#[test]
fn a_half_closed_client_gets_the_whole_metadump() {
    let server = Server::start(&["-m", "64"]);
    let mut c = server.connect();
    // A dump of about 8 MB into a small receive buffer: the server still
    // has output queued when it reads the end of the input.
    socket2::SockRef::from(&c.stream).set_recv_buffer_size(16 * 1024).unwrap();
    let prefix = format!("half:{}:", "k".repeat(150));
    fill(&mut c, &prefix, 40_000, 1);
    c.send(b"lru_crawler metadump all\r\n");
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut c.stream, &mut all).unwrap();
    let dump = text(all);
    assert!(dump.ends_with("END\r\n"), "{}", &dump[dump.len().saturating_sub(200)..]);
    assert_eq!(dump.lines().filter(|l| l.starts_with("key=half%3Akkk")).count(), 40_000);
}

/// A connection still sending a dump waits for its reader, so `-o
/// idle_timeout` does not cut it, however long the reader pauses.
#[test]
fn a_slowly_read_metadump_is_not_idle() {
    let server = Server::start(&["-m", "64", "-o", "idle_timeout=1"]);
    let mut c = server.connect();
    // A small receive buffer and a dump of about 8 MB: most of it waits
    // in the server while the client pauses.
    socket2::SockRef::from(&c.stream).set_recv_buffer_size(16 * 1024).unwrap();
    let prefix = format!("slow:{}:", "k".repeat(150));
    fill(&mut c, &prefix, 40_000, 1);
    c.send(b"lru_crawler metadump all\r\n");
    let mut buf = vec![0u8; 64 * 1024];
    let first = std::io::Read::read(&mut c.stream, &mut buf).unwrap();
    assert!(first > 0);
    // Past the idle timeout (checked once a second, on a 1 s clock).
    std::thread::sleep(std::time::Duration::from_millis(3500));
    let dump = text([buf[..first].to_vec(), c.read_until(b"END\r\n")].concat());
    assert_eq!(dump.lines().filter(|l| l.starts_with("key=slow%3A")).count(), 40_000);
}

#[test]
fn a_large_metadump_streams_every_item() {
    // 40k items make a dump of about 3 MB, past the 1 MiB output mark: it
    // goes out in parts as the client reads.
    let server = Server::start(&["-m", "64"]);
    let mut c = server.connect();
    fill(&mut c, "bulk:key:", 40_000, 1);
    c.send(b"lru_crawler metadump hash\r\n");
    let dump = text(c.read_until(b"END\r\n"));
    assert_eq!(dump.lines().filter(|l| l.starts_with("key=bulk%3Akey%3A")).count(), 40_000);
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
}

/// `stats sizes` in memcached's format: `STAT <32-byte bucket> <count>`
/// rows, then `END`; `sizes_enable` and `sizes_disable` answer one status
/// line and no `END`, as memcached does. Bucket values follow our item
/// header (34 bytes, no `\r\n` stored): "foo"/"bar" is 40 bytes here.
#[test]
fn stats_sizes_counts_items_in_32_byte_buckets_when_enabled() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    assert_eq!(server.stats("settings")["track_sizes"], "no");
    c.expect(b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n");
    c.expect(b"set old 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.expect(b"stats sizes_enable\r\n", b"STAT sizes_status enabled\r\n");
    assert_eq!(server.stats("settings")["track_sizes"], "yes");
    c.expect(b"stats sizes\r\n", b"END\r\n");
    c.expect(b"set foo 0 0 3\r\nbar\r\n", b"STORED\r\n");
    let hundred = format!("set k2 5 0 100\r\n{}\r\n", "0".repeat(100));
    c.expect(hundred.as_bytes(), b"STORED\r\n");
    c.expect(b"stats sizes\r\n", b"STAT 64 1\r\nSTAT 160 1\r\nEND\r\n");
    c.expect(b"delete old\r\n", b"DELETED\r\n");
    c.expect(b"delete foo\r\n", b"DELETED\r\n");
    c.expect(b"stats sizes extra words\r\n", b"STAT 160 1\r\nEND\r\n");
    c.expect(b"stats sizes_enable\r\n", b"STAT sizes_status enabled\r\n");
    c.expect(b"stats sizes_disable\r\n", b"STAT sizes_status disabled\r\n");
    c.expect(b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n");
    assert_eq!(server.stats("settings")["track_sizes"], "no");
    // Binary: the status packet alone, with no terminating packet.
    let mut b = server.connect();
    let req = bin(0x10, &[], b"sizes_enable", &[], 0, 7);
    let r = b.bin_call(&req);
    assert_eq!((r.status, &r.key[..], &r.value[..]), (0, &b"sizes_status"[..], &b"enabled"[..]));
    b.expect_nothing_more(&req);
}

#[test]
fn track_sizes_option_counts_from_the_start() {
    let server = Server::start(&["-o", "track_sizes"]);
    let mut c = server.connect();
    assert_eq!(server.stats("settings")["track_sizes"], "yes");
    c.expect(b"stats sizes\r\n", b"END\r\n");
    c.expect(b"set foo 1 0 3\r\nbar\r\n", b"STORED\r\n");
    c.expect(b"stats sizes\r\n", b"STAT 64 1\r\nEND\r\n");
}
