//! The text protocol over a real socket, byte for byte. The expected replies
//! were taken from memcached 1.6.18 on loopback (see docs/protocol-notes.md
//! for the few places where ferrocache refuses what memcached truncates).

mod common;

use common::Server;

/// (request, exact reply), run in order on one connection.
const CONVERSATION: &[(&[u8], &[u8])] = &[
    (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
    (b"get a b a\r\n", b"VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
    (b"get\r\n", b"ERROR\r\n"),
    (b"gets\r\n", b"ERROR\r\n"),
    (b"set a 0 0 1 noreply\r\ny\r\nget a\r\n", b"VALUE a 0 1\r\ny\r\nEND\r\n"),
    (b"set a 4294967295 0 1\r\nx\r\nget a\r\n", b"STORED\r\nVALUE a 4294967295 1\r\nx\r\nEND\r\n"),
    (b"add a 0 0 1\r\nz\r\n", b"NOT_STORED\r\n"),
    (b"add n 0 0 1\r\nz\r\n", b"STORED\r\n"),
    (b"replace zz 0 0 1\r\nz\r\n", b"NOT_STORED\r\n"),
    (b"append zz 0 0 1\r\nz\r\n", b"NOT_STORED\r\n"),
    (b"prepend a 0 0 1\r\nq\r\n", b"STORED\r\n"),
    (b"append a 0 0 1\r\nw\r\n", b"STORED\r\n"),
    (b"get a\r\n", b"VALUE a 4294967295 3\r\nqxw\r\nEND\r\n"),
    (b"cas zz 0 0 1 999\r\nx\r\n", b"NOT_FOUND\r\n"),
    // The data of a refused line with a good length is swallowed, never run
    // (memcached 1.6.18 runs "x" as a command and answers ERROR).
    (b"cas a 0 0 1 abc\r\nx\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"delete a\r\n", b"DELETED\r\n"),
    (b"delete a\r\n", b"NOT_FOUND\r\n"),
    (b"delete a 0\r\n", b"NOT_FOUND\r\n"),
    (b"delete a 5\r\n", b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"),
    (b"delete a noreply\r\ndelete\r\n", b"ERROR\r\n"),
    (b"set n 5 0 2\r\n10\r\n", b"STORED\r\n"),
    (b"incr n 5\r\n", b"15\r\n"),
    (b"decr n 100\r\n", b"0\r\n"),
    (b"incr n 18446744073709551615\r\n", b"18446744073709551615\r\n"),
    (b"incr n 18446744073709551616\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
    (b"incr n -1\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
    (b"incr zz 1\r\n", b"NOT_FOUND\r\n"),
    (b"decr zz 1\r\n", b"NOT_FOUND\r\n"),
    (b"set s 0 0 3\r\nabc\r\n", b"STORED\r\n"),
    (b"incr s 1\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
    (b"incr\r\n", b"ERROR\r\n"),
    (b"set big 0 0 2\r\n99\r\nincr big 1\r\nget big\r\n", b"STORED\r\n100\r\nVALUE big 0 3\r\n100\r\nEND\r\n"),
    (b"set m 0 0 20\r\n18446744073709551615\r\nincr m 1\r\n", b"STORED\r\n0\r\n"),
    (b"get m\r\n", b"VALUE m 0 20\r\n0                   \r\nEND\r\n"),
    (b"set d 0 0 3\r\n100\r\ndecr d 1\r\nget d\r\n", b"STORED\r\n99\r\nVALUE d 0 3\r\n99 \r\nEND\r\n"),
    (b"touch n 10\r\n", b"TOUCHED\r\n"),
    (b"touch zz 10\r\n", b"NOT_FOUND\r\n"),
    (b"touch n abc\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"touch n\r\n", b"ERROR\r\n"),
    (b"gat 10 n\r\n", b"VALUE n 5 20\r\n18446744073709551615\r\nEND\r\n"),
    (b"gat n\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"gat\r\n", b"ERROR\r\n"),
    (b"verbosity 1\r\n", b"OK\r\n"),
    (b"verbosity\r\n", b"ERROR\r\n"),
    (b"verbosity abc\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"flush_all abc\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
    (b"bogus\r\n", b"ERROR\r\n"),
    (b"GET a\r\n", b"ERROR\r\n"),
    (b"\r\n", b"ERROR\r\n"),
    (b"set a  0 0 1\r\nx\r\nget a \r\n", b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"),
    (b"get a\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
    (b"stats bogus\r\n", b"ERROR\r\n"),
    (b"stats detail\r\n", b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"),
    (b"stats cachedump\r\n", b"CLIENT_ERROR bad command line\r\n"),
    (b"cache_memlimit 2\r\n", b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"),
    (b"cache_memlimit\r\n", b"ERROR\r\n"),
    (b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n"),
    (b"stats reset\r\n", b"RESET\r\n"),
    (b"set t 0 -1 1\r\nx\r\nget t\r\n", b"STORED\r\nEND\r\n"),
    (b"version\r\n", b"VERSION 1.6.18\r\n"),
    (b"flush_all\r\nget a\r\n", b"OK\r\nEND\r\n"),
    (b"flush_all 0 noreply\r\nflush_all 10\r\n", b"OK\r\n"),
];

#[test]
fn replies_match_memcached_byte_for_byte() {
    let server = Server::start(&["-t", "2"]);
    server.connect().replay(CONVERSATION);
}

#[test]
fn requests_sent_one_byte_at_a_time_get_the_same_replies() {
    let server = Server::start(&["-t", "1"]);
    server.connect().replay_bytewise(&CONVERSATION[..25]);
}

#[test]
fn a_pipeline_in_one_write_is_answered_in_order() {
    let server = Server::start(&["-t", "2"]);
    let mut c = server.connect();
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..500 {
        req.extend_from_slice(format!("set k{i} {i} 0 {}\r\nv{i}\r\n", format!("v{i}").len()).as_bytes());
        want.extend_from_slice(b"STORED\r\n");
    }
    for i in 0..500 {
        req.extend_from_slice(format!("get k{i}\r\n").as_bytes());
        want.extend_from_slice(format!("VALUE k{i} {i} {}\r\nv{i}\r\nEND\r\n", format!("v{i}").len()).as_bytes());
    }
    c.expect(&req, &want);
    // More requests than one -R budget (20) were answered: the loop came
    // back to this connection without a new event.
    assert!(server.stats("")["conn_yields"].parse::<u64>().unwrap() > 0);
}

#[test]
fn gets_returns_a_cas_that_cas_accepts_once() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.expect(b"set k 3 0 2\r\nhi\r\n", b"STORED\r\n");
    c.send(b"gets k\r\n");
    let reply = String::from_utf8(c.read_until(b"END\r\n")).unwrap();
    let header = reply.lines().next().unwrap();
    let cas: u64 = header.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(header.starts_with("VALUE k 3 2 "), "{header}");
    c.expect(format!("cas k 0 0 1 {}\r\nx\r\n", cas + 1).as_bytes(), b"EXISTS\r\n");
    c.expect(format!("cas k 0 0 1 {cas}\r\nx\r\n").as_bytes(), b"STORED\r\n");
    c.expect(format!("cas k 0 0 1 {cas}\r\ny\r\n").as_bytes(), b"EXISTS\r\n");
    c.expect(b"get k\r\n", b"VALUE k 0 1\r\nx\r\nEND\r\n");
}

#[test]
fn too_large_values_are_swallowed_and_the_connection_goes_on() {
    let server = Server::start(&["-I", "1k", "-m", "8"]);
    let mut c = server.connect();
    c.expect(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    let mut req = b"set k 0 0 5000\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'z', 5000));
    req.extend_from_slice(b"\r\nget k\r\n");
    // The data (which holds no command) is discarded; the old value went too.
    c.expect(&req, b"SERVER_ERROR object too large for cache\r\nEND\r\n");
    c.expect(b"set k 0 0 2\r\nok\r\nget k\r\n", b"STORED\r\nVALUE k 0 2\r\nok\r\nEND\r\n");
    let st = server.stats("");
    assert_eq!(st["store_too_large"], "1");
}

#[test]
fn values_up_to_the_item_limit_round_trip() {
    let server = Server::start(&["-m", "16"]);
    let mut c = server.connect();
    for len in [0usize, 1, 1000, 100_000, 1024 * 1024 - 100] {
        let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut req = format!("set big 1 0 {len}\r\n").into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        c.expect(&req, b"STORED\r\n");
        let mut want = format!("VALUE big 1 {len}\r\n").into_bytes();
        want.extend_from_slice(&value);
        want.extend_from_slice(b"\r\nEND\r\n");
        c.expect(b"get big\r\n", &want);
    }
}

#[test]
fn a_command_line_without_newline_is_refused_not_buffered() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.send(&[b'x'; 3000]);
    assert!(c.closed(), "memcached closes after 2048 bytes without a newline");
    // A long multiget is still fine.
    let mut c = server.connect();
    let mut req = b"get".to_vec();
    for i in 0..1000 {
        req.extend_from_slice(format!(" key{i}").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    c.expect(&req, b"END\r\n");
}

#[test]
fn http_requests_are_hung_up_on() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(c.closed());
}

#[test]
fn quit_closes_after_earlier_replies() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    c.send(b"set a 0 0 1\r\nx\r\nget a\r\nquit\r\nget a\r\n");
    let want = b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n";
    assert_eq!(c.read_exact(want.len()), want);
    assert!(c.closed());
}

#[test]
fn noreply_commands_stay_silent() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    // No reply at all: the sentinel's reply must be the next bytes.
    c.expect(b"set a 0 0 1 noreply\r\nx\r\nincr a 1 noreply\r\ndelete zz noreply\r\ntouch a 1 noreply\r\n", b"");
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
}

/// Storage command lines whose data cannot be framed, as memcached answers
/// them by default: the error, then the connection reads on (the declared
/// bytes skipped where a length was read, else from the next line).
#[test]
fn unframeable_storage_commands_answer_and_go_on() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    for (req, want) in [
        (&b"set a 0 0 2\r\nxyz\nversion\r\n"[..], &b"CLIENT_ERROR bad data chunk\r\nVERSION 1.6.18\r\n"[..]),
        (b"set a 0 0 -1\r\nversion\r\n", b"CLIENT_ERROR bad command line format\r\nVERSION 1.6.18\r\n"),
        (b"set a 0 0 abc\r\nversion\r\n", b"CLIENT_ERROR bad command line format\r\nVERSION 1.6.18\r\n"),
        (b"set a 0 0\r\nversion\r\n", b"ERROR\r\nVERSION 1.6.18\r\n"),
        (b"cas a 0 0 1\r\nversion\r\n", b"ERROR\r\nVERSION 1.6.18\r\n"),
        (b"ms a\r\nversion\r\n", b"CLIENT_ERROR bad command line format\r\nVERSION 1.6.18\r\n"),
        (b"ms a 2\r\nxyz\nversion\r\n", b"CLIENT_ERROR bad data chunk\r\nVERSION 1.6.18\r\n"),
    ] {
        c.expect(req, want);
    }
}

/// With `-o strict_protocol`, the same lines are answered and the
/// connection is closed, so the bytes that follow never run as commands.
#[test]
fn unframeable_storage_commands_close_under_strict_protocol() {
    let server = Server::start(&["-o", "strict_protocol"]);
    for (req, want) in [
        (&b"set a 0 0 2\r\nxyz\r\nflush_all\r\n"[..], &b"CLIENT_ERROR bad data chunk\r\n"[..]),
        (b"set a 0 0 -1\r\nflush_all\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (b"set a 0 0 abc\r\nflush_all\r\n", b"CLIENT_ERROR bad command line format\r\n"),
        (b"set a 0 0\r\nflush_all\r\n", b"ERROR\r\n"),
        (b"set a 0 0 1 2 3 4\r\nflush_all\r\n", b"ERROR\r\n"),
        (b"cas a 0 0 1\r\nflush_all\r\n", b"ERROR\r\n"),
        (b"ms a\r\nflush_all\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    ] {
        let mut keep = server.connect();
        keep.expect(b"set keep 0 0 1\r\nk\r\n", b"STORED\r\n");
        let mut c = server.connect();
        c.expect_then_close(req, want);
        keep.expect(b"get keep\r\n", b"VALUE keep 0 1\r\nk\r\nEND\r\n");
    }
    // A refused line with a good length: its data (here a command) is
    // swallowed and the connection goes on.
    let mut c = server.connect();
    let long_key = "k".repeat(251);
    c.expect(
        format!("set {long_key} 0 0 9\r\nflush_all\r\nget keep\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\nVALUE keep 0 1\r\nk\r\nEND\r\n",
    );
}
