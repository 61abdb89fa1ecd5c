//! Meta commands over a real socket. Expected replies were recorded from
//! memcached 1.6.18 (CAS values, which differ by design, are read back and
//! used rather than compared).

mod common;

use common::{Client, Server};

/// Sends `req`, reads one line, returns the token after `prefix`.
fn token(c: &mut Client, req: &[u8], flag: char) -> String {
    c.send(req);
    let line = String::from_utf8(c.read_until(b"\r\n")).unwrap();
    line.split_whitespace().find_map(|t| t.strip_prefix(flag)).map(str::to_string).unwrap_or_else(|| panic!("{line}"))
}

const CONVERSATION: &[(&[u8], &[u8])] = &[
    (b"mn\r\n", b"MN\r\n"),
    (b"ms foo 3\r\nbar\r\n", b"HD\r\n"),
    (b"mg foo\r\n", b"HD\r\n"),
    (b"mg foo v\r\n", b"VA 3\r\nbar\r\n"),
    (b"mg foo k v f s t\r\n", b"VA 3 kfoo f0 s3 t-1\r\nbar\r\n"),
    (b"mg foo Oabc q v\r\n", b"VA 3 Oabc\r\nbar\r\n"),
    (b"mg missing v\r\n", b"EN\r\n"),
    (b"mg missing q v\r\nmn\r\n", b"MN\r\n"),
    (b"mg missing Oxx k v\r\n", b"EN Oxx kmissing\r\n"),
    (b"ms foo 3 F5 T100\r\nbaz\r\n", b"HD\r\n"),
    (b"mg foo f v\r\n", b"VA 3 f5\r\nbaz\r\n"),
    (b"mg foo h\r\n", b"HD h1\r\n"),
    (b"ms foo 2 MA\r\n++\r\n", b"HD\r\n"),
    (b"mg foo v\r\n", b"VA 5\r\nbaz++\r\n"),
    (b"ms foo 2 MP\r\n--\r\n", b"HD\r\n"),
    (b"mg foo v\r\n", b"VA 7\r\n--baz++\r\n"),
    (b"ms foo 1 ME\r\nx\r\n", b"NS\r\n"),
    (b"ms new 1 MR\r\nx\r\n", b"NS\r\n"),
    (b"ms new 1 MA\r\nx\r\n", b"NS\r\n"),
    (b"ms foo 1 MS q\r\nx\r\nmn\r\n", b"MN\r\n"),
    (b"ms foo 1 MX\r\nx\r\n", b"CLIENT_ERROR invalid mode for ms M token\r\n"),
    (b"ms foo 1 C1\r\nx\r\n", b"EX\r\n"),
    (b"ms nokey 1 C1\r\nx\r\n", b"NF\r\n"),
    (b"ms foo 1 q C1\r\nx\r\n", b"EX\r\n"),
    (b"md missing\r\n", b"NF\r\n"),
    (b"md missing q\r\n", b"NF\r\n"),
    (b"md foo C1\r\n", b"EX\r\n"),
    (b"md foo q\r\nmg foo v\r\n", b"EN\r\n"),
    (b"ms st 3 T100\r\nold\r\n", b"HD\r\n"),
    (b"md st I T30\r\n", b"HD\r\n"),
    (b"mg st v\r\n", b"VA 3 X W\r\nold\r\n"),
    (b"mg st v\r\n", b"VA 3 Z X\r\nold\r\n"),
    (b"mg st v\r\n", b"VA 3 Z X\r\nold\r\n"),
    (b"ms st 3\r\nnew\r\n", b"HD\r\n"),
    (b"mg st v\r\n", b"VA 3\r\nnew\r\n"),
    (b"mg viv N30 v\r\n", b"VA 0 W\r\n\r\n"),
    (b"mg viv N30 v\r\n", b"VA 0 Z\r\n\r\n"),
    (b"mg viv v\r\n", b"VA 0 Z\r\n\r\n"),
    (b"ms viv 1\r\nz\r\nmg viv v\r\n", b"HD\r\nVA 1\r\nz\r\n"),
    (b"ms rc 1 T10\r\nr\r\n", b"HD\r\n"),
    (b"mg rc R30 v\r\n", b"VA 1 W\r\nr\r\n"),
    (b"mg rc R30 v\r\n", b"VA 1 Z\r\nr\r\n"),
    (b"ma cnt\r\n", b"NF\r\n"),
    (b"ma cnt q\r\n", b"NF\r\n"),
    (b"ma cnt N0 J10 v\r\n", b"VA 2\r\n10\r\n"),
    (b"ma cnt v\r\n", b"VA 2\r\n11\r\n"),
    (b"ma cnt D5 v t\r\n", b"VA 2 t-1\r\n16\r\n"),
    (b"ma cnt MD D100 v\r\n", b"VA 1\r\n0\r\n"),
    (b"ma cnt M- v\r\n", b"VA 1\r\n0\r\n"),
    (b"ma cnt M+ D3\r\n", b"HD\r\n"),
    (b"ma cnt C1 v\r\n", b"EX\r\n"),
    (b"ma foo2 v\r\n", b"NF\r\n"),
    (b"ms txt 3\r\nabc\r\nma txt v\r\n", b"HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
    (b"me missing\r\n", b"EN\r\n"),
    (b"mg Zm9v b k v\r\n", b"EN kZm9v b\r\n"),
    (b"ms YmluYXJ5 2 b\r\nhi\r\nmg binary v\r\n", b"HD\r\nVA 2\r\nhi\r\n"),
    (b"mg !!! b v\r\n", b"CLIENT_ERROR error decoding key\r\n"),
    (b"mg foo zzz\r\n", b"CLIENT_ERROR invalid flag\r\n"),
    (b"mg foo v v\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    (b"mg\r\n", b"ERROR\r\n"),
    (b"ms foo 2 Fabc\r\nxy\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"ms foo 2 Tabc\r\nxy\r\n", b"CLIENT_ERROR bad token in command line format\r\n"),
    (b"mg foo Tabc v\r\n", b"CLIENT_ERROR bad token in command line format\r\n"),
    (b"ma cnt Dabc\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
    (b"md foo Cabc\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
    (b"mx foo\r\n", b"ERROR\r\n"),
    (b"mg foo P L v\r\n", b"EN\r\n"),
    (b"ms foo 2 I\r\nxy\r\n", b"HD\r\n"),
    (b"mg foo v f\r\n", b"VA 2 f0\r\nxy\r\n"),
];

#[test]
fn replies_match_memcached_byte_for_byte() {
    let server = Server::start(&["-t", "2"]);
    server.connect().replay(CONVERSATION);
}

#[test]
fn meta_requests_sent_one_byte_at_a_time() {
    let server = Server::start(&["-t", "1"]);
    server.connect().replay_bytewise(&CONVERSATION[..20]);
}

#[test]
fn a_too_large_meta_set_is_swallowed() {
    let server = Server::start(&["-I", "1k", "-m", "8"]);
    let mut c = server.connect();
    let mut req = b"ms big 5000\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 5000));
    req.extend_from_slice(b"\r\nmn\r\n");
    c.expect(&req, b"SERVER_ERROR object too large for cache\r\nMN\r\n");
}

#[test]
fn cas_compare_uses_the_tokens_the_server_returns() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let cas: u64 = token(&mut c, b"ms k 2 c\r\nv1\r\n", 'c').parse().unwrap();
    assert_eq!(token(&mut c, b"mg k c\r\n", 'c'), cas.to_string());
    c.expect(format!("ms k 2 C{}\r\nv2\r\n", cas + 1).as_bytes(), b"EX\r\n");
    let cas2: u64 = token(&mut c, format!("ms k 2 C{cas} c\r\nv2\r\n").as_bytes(), 'c').parse().unwrap();
    assert!(cas2 > cas);
    c.expect(format!("ms k 2 C{cas}\r\nv3\r\n").as_bytes(), b"EX\r\n");
    // I with an older token stores but marks the item stale
    c.expect(format!("ms k 2 C{cas} I\r\nv4\r\n").as_bytes(), b"HD\r\n");
    c.expect(b"mg k v\r\n", b"VA 2 X W\r\nv4\r\n");
    // delete and arithmetic compare too
    let cas3: u64 = token(&mut c, b"mg k c\r\n", 'c').parse().unwrap();
    c.expect(format!("md k C{}\r\n", cas3 + 1).as_bytes(), b"EX\r\n");
    c.expect(format!("md k C{cas3}\r\n").as_bytes(), b"HD\r\n");
    c.expect(b"ma n N0 J5\r\n", b"HD\r\n");
    let ncas: u64 = token(&mut c, b"mg n c\r\n", 'c').parse().unwrap();
    c.expect(format!("ma n C{ncas} v\r\n").as_bytes(), b"VA 1\r\n6\r\n");
}

#[test]
fn stale_while_revalidate_gives_one_winner() {
    let server = Server::start(&["-t", "2"]);
    let mut a = server.connect();
    let mut b = server.connect();
    a.expect(b"ms page 4 T300\r\nv1.0\r\n", b"HD\r\n");
    a.expect(b"md page I T30 q\r\nmn\r\n", b"MN\r\n");
    // The first reader wins the right to recache, every later one sees Z.
    a.expect(b"mg page v\r\n", b"VA 4 X W\r\nv1.0\r\n");
    b.expect(b"mg page v\r\n", b"VA 4 Z X\r\nv1.0\r\n");
    a.expect(b"mg page v\r\n", b"VA 4 Z X\r\nv1.0\r\n");
    // The winner stores the fresh value: no longer stale, no flags.
    a.expect(b"ms page 4 T300\r\nv2.0\r\n", b"HD\r\n");
    b.expect(b"mg page v\r\n", b"VA 4\r\nv2.0\r\n");
}

#[test]
fn pipelined_quiet_gets_with_opaques_end_at_mn() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.expect(b"ms a 1 q\r\n1\r\nms c 1 q\r\n3\r\nmn\r\n", b"MN\r\n");
    c.expect(b"mg a v q O1\r\nmg b v q O2\r\nmg c v q O3 k\r\nmn\r\n", b"VA 1 O1\r\n1\r\nVA 1 O3 kc\r\n3\r\nMN\r\n");
}

#[test]
fn meta_and_classic_commands_share_items() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.expect(b"set k 7 0 3\r\nabc\r\n", b"STORED\r\n");
    c.expect(b"mg k f v\r\n", b"VA 3 f7\r\nabc\r\n");
    c.expect(b"ms k 3 F9\r\nxyz\r\n", b"HD\r\n");
    c.expect(b"get k\r\n", b"VALUE k 9 3\r\nxyz\r\nEND\r\n");
    c.expect(b"ma n N0 J41\r\nincr n 1\r\n", b"HD\r\n42\r\n");
    c.expect(b"mg n v\r\ndelete n\r\nmg n v\r\n", b"VA 2\r\n42\r\nDELETED\r\nEN\r\n");
    c.expect(b"md k x\r\nget k\r\n", b"HD\r\nVALUE k 0 0\r\n\r\nEND\r\n");
    let me = String::from_utf8({
        c.send(b"me k\r\n");
        c.read_until(b"\r\n")
    })
    .unwrap();
    assert!(me.starts_with("ME k exp=-1 la=") && me.contains(" fetch=yes cls=1 size="), "{me}");
}

#[test]
fn meta_commands_count_in_stats() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.expect(b"ms a 1\r\nx\r\nmg a v\r\nmg b v\r\nmg a T10\r\n", b"HD\r\nVA 1\r\nx\r\nEN\r\nHD\r\n");
    let st = server.stats("");
    assert_eq!((st["cmd_set"].as_str(), st["cmd_get"].as_str()), ("1", "2"));
    assert_eq!((st["get_hits"].as_str(), st["get_misses"].as_str()), ("1", "1"));
    assert_eq!((st["cmd_touch"].as_str(), st["touch_hits"].as_str()), ("1", "1"));
}

/// TTLs are reported in whole seconds by a clock that may tick between two
/// requests, so these accept N or N-1.
#[test]
fn ttl_flags_report_remaining_seconds() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let ttl = |c: &mut Client, req: &[u8]| -> i64 { token(c, req, 't').parse().unwrap() };
    c.expect(b"ms a 1 T100\r\nx\r\n", b"HD\r\n");
    assert!((99..=100).contains(&ttl(&mut c, b"mg a t\r\n")));
    assert!((29..=30).contains(&ttl(&mut c, b"mg a T30 t\r\n")), "T applies before t is read");
    c.expect(b"md a I T10\r\n", b"HD\r\n");
    assert!((9..=10).contains(&ttl(&mut c, b"mg a t\r\n")));
    assert!((49..=50).contains(&ttl(&mut c, b"mg viv N50 t\r\n")), "a vivified item has the N ttl");
    assert!((49..=50).contains(&ttl(&mut c, b"mg viv t\r\n")));
    c.expect(b"ms forever 1\r\nx\r\n", b"HD\r\n");
    assert_eq!(ttl(&mut c, b"mg forever t\r\n"), -1);
    assert!((59..=60).contains(&ttl(&mut c, b"ma cnt N60 t\r\n")));
}
