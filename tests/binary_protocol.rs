//! The binary protocol over a real socket: every opcode, quiet variants,
//! pipelining beside text connections, malformed packets, SASL and text
//! authentication.

mod common;

use common::{bin, BinResponse, Server};

const GET: u8 = 0x00;
const SET: u8 = 0x01;
const ADD: u8 = 0x02;
const REPLACE: u8 = 0x03;
const DELETE: u8 = 0x04;
const INCR: u8 = 0x05;
const DECR: u8 = 0x06;
const QUIT: u8 = 0x07;
const FLUSH: u8 = 0x08;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
const VERSION: u8 = 0x0b;
const GETK: u8 = 0x0c;
const GETKQ: u8 = 0x0d;
const APPEND: u8 = 0x0e;
const PREPEND: u8 = 0x0f;
const STAT: u8 = 0x10;
const SETQ: u8 = 0x11;
const ADDQ: u8 = 0x12;
const DELETEQ: u8 = 0x14;
const INCRQ: u8 = 0x15;
const QUITQ: u8 = 0x17;
const VERBOSITY: u8 = 0x1b;
const TOUCH: u8 = 0x1c;
const GAT: u8 = 0x1d;
const GATQ: u8 = 0x1e;
const SASL_LIST: u8 = 0x20;
const SASL_AUTH: u8 = 0x21;
const SASL_STEP: u8 = 0x22;
const GATK: u8 = 0x23;

const ENOENT: u16 = 0x01;
const EEXISTS: u16 = 0x02;
const E2BIG: u16 = 0x03;
const EINVAL: u16 = 0x04;
const NOT_STORED: u16 = 0x05;
const DELTA_BADVAL: u16 = 0x06;
const AUTH_ERROR: u16 = 0x20;
const UNKNOWN: u16 = 0x81;

fn set_extras(flags: u32, exp: u32) -> Vec<u8> {
    [flags.to_be_bytes(), exp.to_be_bytes()].concat()
}

fn incr_extras(delta: u64, initial: u64, exp: u32) -> Vec<u8> {
    [&delta.to_be_bytes()[..], &initial.to_be_bytes(), &exp.to_be_bytes()].concat()
}

fn ok(r: &BinResponse) -> &BinResponse {
    assert_eq!(r.status, 0, "{r:?}");
    r
}

#[test]
fn every_opcode_answers_as_memcached() {
    let server = Server::start(&["-t", "2"]);
    let mut c = server.connect();
    ok(&c.bin_call(&bin(FLUSH, &[], &[], &[], 0, 1)));
    let r = c.bin_call(&bin(SET, &set_extras(5, 0), b"k", b"val", 0, 0xabcd));
    assert_eq!((r.opcode, r.status, r.opaque), (SET, 0, 0xabcd));
    let set_cas = r.cas;
    assert_ne!(set_cas, 0);

    let r = ok(&c.bin_call(&bin(GET, &[], b"k", &[], 0, 2))).clone();
    assert_eq!((r.extras, r.key.len(), r.value, r.cas), (5u32.to_be_bytes().to_vec(), 0, b"val".to_vec(), set_cas));
    let r = ok(&c.bin_call(&bin(GETK, &[], b"k", &[], 0, 3))).clone();
    assert_eq!(r.key, b"k");
    let r = c.bin_call(&bin(GET, &[], b"missing", &[], 0, 4));
    assert_eq!((r.status, r.value.as_slice()), (ENOENT, &b"Not found"[..]));
    let r = c.bin_call(&bin(GETK, &[], b"missing", &[], 0, 4));
    assert_eq!((r.status, r.key.as_slice()), (ENOENT, &b"missing"[..]));

    assert_eq!(c.bin_call(&bin(ADD, &set_extras(0, 0), b"k", b"x", 0, 0)).status, EEXISTS);
    ok(&c.bin_call(&bin(ADD, &set_extras(0, 0), b"k2", b"x", 0, 0)));
    assert_eq!(c.bin_call(&bin(REPLACE, &set_extras(0, 0), b"nope", b"x", 0, 0)).status, ENOENT);
    ok(&c.bin_call(&bin(REPLACE, &set_extras(0, 0), b"k2", b"y", 0, 0)));
    assert_eq!(c.bin_call(&bin(APPEND, &[], b"nope", b"x", 0, 0)).status, NOT_STORED);
    ok(&c.bin_call(&bin(APPEND, &[], b"k", b"++", 0, 0)));
    ok(&c.bin_call(&bin(PREPEND, &[], b"k", b"--", 0, 0)));
    assert_eq!(c.bin_call(&bin(GET, &[], b"k", &[], 0, 0)).value, b"--val++");

    // CAS on set and delete
    let cur = c.bin_call(&bin(GET, &[], b"k", &[], 0, 0)).cas;
    assert_eq!(c.bin_call(&bin(SET, &set_extras(0, 0), b"k", b"z", cur + 1, 0)).status, EEXISTS);
    assert_eq!(c.bin_call(&bin(SET, &set_extras(0, 0), b"nokey", b"z", 5, 0)).status, ENOENT);
    let r = ok(&c.bin_call(&bin(SET, &set_extras(0, 0), b"k", b"z", cur, 0))).clone();
    assert_eq!(c.bin_call(&bin(DELETE, &[], b"k", &[], r.cas + 1, 0)).status, EEXISTS);
    ok(&c.bin_call(&bin(DELETE, &[], b"k", &[], r.cas, 0)));
    assert_eq!(c.bin_call(&bin(DELETE, &[], b"k", &[], 0, 0)).status, ENOENT);

    // incr/decr: create with the initial value, then count; no-create flag
    let r = ok(&c.bin_call(&bin(INCR, &incr_extras(1, 10, 0), b"n", &[], 0, 0))).clone();
    assert_eq!(r.value, 10u64.to_be_bytes());
    let r = ok(&c.bin_call(&bin(INCR, &incr_extras(5, 10, 0), b"n", &[], 0, 0))).clone();
    assert_eq!(r.value, 15u64.to_be_bytes());
    let r = ok(&c.bin_call(&bin(DECR, &incr_extras(100, 0, 0), b"n", &[], 0, 0))).clone();
    assert_eq!(r.value, 0u64.to_be_bytes());
    assert_eq!(c.bin_call(&bin(INCR, &incr_extras(1, 0, u32::MAX), b"absent", &[], 0, 0)).status, ENOENT);
    ok(&c.bin_call(&bin(SET, &set_extras(0, 0), b"text", b"abc", 0, 0)));
    assert_eq!(c.bin_call(&bin(INCR, &incr_extras(1, 0, 0), b"text", &[], 0, 0)).status, DELTA_BADVAL);

    // touch and gat
    let r = ok(&c.bin_call(&bin(TOUCH, &100u32.to_be_bytes(), b"n", &[], 0, 0))).clone();
    assert_eq!(r.value.len(), 0);
    assert_eq!(c.bin_call(&bin(TOUCH, &100u32.to_be_bytes(), b"none", &[], 0, 0)).status, ENOENT);
    let r = ok(&c.bin_call(&bin(GAT, &100u32.to_be_bytes(), b"n", &[], 0, 0))).clone();
    assert_eq!(r.value, b"0 ");
    let r = ok(&c.bin_call(&bin(GATK, &100u32.to_be_bytes(), b"n", &[], 0, 0))).clone();
    assert_eq!(r.key, b"n");

    let r = ok(&c.bin_call(&bin(VERSION, &[], &[], &[], 0, 0))).clone();
    assert_eq!(r.value, b"1.6.18");
    ok(&c.bin_call(&bin(VERBOSITY, &0u32.to_be_bytes(), &[], &[], 0, 0)));
    ok(&c.bin_call(&bin(NOOP, &[], &[], &[], 0, 0)));
    assert_eq!(c.bin_call(&bin(0x55, &[], b"k", b"v", 0, 0)).status, UNKNOWN);
    assert_eq!(c.bin_call(&bin(SASL_LIST, &[], &[], &[], 0, 0)).status, UNKNOWN, "no SASL without -S");

    // stats: key/value packets, then an empty one
    c.send(&bin(STAT, &[], &[], &[], 0, 9));
    let mut names = Vec::new();
    loop {
        let r = c.read_bin();
        assert_eq!((r.status, r.opaque), (0, 9));
        if r.key.is_empty() {
            break;
        }
        names.push(String::from_utf8(r.key).unwrap());
    }
    assert!(names.iter().any(|n| n == "curr_items") && names.iter().any(|n| n == "cmd_get"));
    assert_eq!(c.bin_call(&bin(STAT, &[], b"bogus", &[], 0, 0)).status, ENOENT);

    let r = c.bin_call(&bin(QUIT, &[], &[], &[], 0, 77));
    assert_eq!((r.status, r.opaque), (0, 77));
    assert!(c.closed());
}

#[test]
fn quiet_variants_answer_only_hits_and_errors_until_noop() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let mut batch = Vec::new();
    batch.extend(bin(SETQ, &set_extras(0, 0), b"a", b"1", 0, 1)); // silent
    batch.extend(bin(ADDQ, &set_extras(0, 0), b"a", b"2", 0, 2)); // error: sent
    batch.extend(bin(GETKQ, &[], b"a", &[], 0, 3)); // hit: sent
    batch.extend(bin(GETKQ, &[], b"zz", &[], 0, 4)); // miss: silent
    batch.extend(bin(GETQ, &[], b"a", &[], 0, 5)); // hit: sent
    batch.extend(bin(INCRQ, &incr_extras(1, 7, 0), b"c", &[], 0, 6)); // silent
    batch.extend(bin(DELETEQ, &[], b"zz", &[], 0, 7)); // error: sent
    batch.extend(bin(GATQ, &5u32.to_be_bytes(), b"zz", &[], 0, 8)); // miss: silent
    batch.extend(bin(NOOP, &[], &[], &[], 0, 9));
    c.send(&batch);
    let got: Vec<(u32, u16)> = (0..5)
        .map(|_| {
            let r = c.read_bin();
            (r.opaque, r.status)
        })
        .collect();
    assert_eq!(got, vec![(2, EEXISTS), (3, 0), (5, 0), (7, ENOENT), (9, 0)]);
    assert_eq!(c.bin_call(&bin(GET, &[], b"c", &[], 0, 0)).value, b"7");
    c.send(&bin(QUITQ, &[], &[], &[], 0, 0));
    assert!(c.closed(), "quitq closes without a reply");
}

#[test]
fn binary_and_text_clients_share_a_port_and_the_data() {
    let server = Server::start(&["-t", "2"]);
    let mut b = server.connect();
    let mut t = server.connect();
    let mut batch = Vec::new();
    for i in 0..200u32 {
        batch.extend(bin(SETQ, &set_extras(i, 0), format!("key{i}").as_bytes(), format!("v{i}").as_bytes(), 0, i));
    }
    batch.extend(bin(NOOP, &[], &[], &[], 0, 1000));
    let r = b.bin_call(&batch);
    assert_eq!(r.opaque, 1000, "all sets were silent");
    for i in (0..200).step_by(37) {
        let v = format!("v{i}");
        t.expect(
            format!("get key{i}\r\n").as_bytes(),
            format!("VALUE key{i} {i} {}\r\n{v}\r\nEND\r\n", v.len()).as_bytes(),
        );
    }
    t.expect(b"set fromtext 3 0 2\r\nhi\r\n", b"STORED\r\n");
    let r = b.bin_call(&bin(GET, &[], b"fromtext", &[], 0, 0));
    assert_eq!((r.extras, r.value), (3u32.to_be_bytes().to_vec(), b"hi".to_vec()));
}

#[test]
fn malformed_headers_are_refused_without_buffering_and_closed() {
    let server = Server::start(&[]);
    // extras + key longer than the body
    let mut c = server.connect();
    let mut p = bin(SET, &set_extras(0, 0), b"key", b"", 0, 0);
    p[8..12].copy_from_slice(&4u32.to_be_bytes());
    let r = c.bin_call(&p[..24]);
    assert_eq!(r.status, UNKNOWN);
    assert!(c.closed());
    // a get whose body is longer than its key: EINVAL, closed
    let mut c = server.connect();
    let mut p = bin(GET, &[], b"k", &[], 0, 0);
    p[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(c.bin_call(&p).status, EINVAL);
    assert!(c.closed());
    // a key over 250 bytes
    let mut c = server.connect();
    assert_eq!(c.bin_call(&bin(GET, &[], &[b'k'; 251], &[], 0, 0)).status, EINVAL);
    assert!(c.closed());
}

/// A packet with the wrong magic closes the connection, but only after the
/// replies to every request before it, byte for byte.
#[test]
fn a_bad_packet_closes_after_the_replies_before_it() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    let mut p = bin(SET, &set_extras(0, 0), b"k", b"v", 0, 1);
    p.extend(bin(GET, &[], b"k", &[], 0, 2));
    p.extend(b"\x42garbage that is not a request packet at all..");
    c.send(&p);
    let set = c.read_bin();
    assert_eq!((set.status, set.opaque), (0, 1));
    let get = c.read_bin();
    assert_eq!((get.status, get.opaque, get.value.as_slice()), (0, 2, &b"v"[..]));
    assert!(c.closed());
}

/// SASL frames of the wrong shape on an unauthenticated connection get
/// memcached's frame error (EINVAL, or unknown command for lengths that do
/// not fit), not an authentication error, and then the close.
#[test]
fn malformed_sasl_frames_get_the_frame_error_before_the_close() {
    let pw = password_file("sasl-frames");
    let server = Server::start(&["-S", "--sasl-pwdb", pw.to_str().unwrap()]);
    let mut key_over_body = bin(SASL_AUTH, &[], b"PLAIN", b"", 0, 0);
    key_over_body[8..12].copy_from_slice(&2u32.to_be_bytes());
    for (packet, status) in [
        (bin(SASL_AUTH, &[0, 0, 0, 0], b"PLAIN", b"\0alice\0secret", 0, 0), EINVAL),
        (bin(SASL_AUTH, &[], b"", b"\0alice\0secret", 0, 0), EINVAL),
        (bin(SASL_LIST, &[], &[], b"body", 0, 0), EINVAL),
        (key_over_body[..24].to_vec(), UNKNOWN),
    ] {
        let mut c = server.connect();
        assert_eq!(c.bin_call(&packet).status, status, "{packet:02x?}");
        assert!(c.closed());
    }
    let _ = std::fs::remove_file(pw);
}

#[test]
fn a_too_large_value_is_swallowed_and_the_connection_goes_on() {
    let server = Server::start(&["-I", "1k", "-m", "8"]);
    let mut c = server.connect();
    ok(&c.bin_call(&bin(SET, &set_extras(0, 0), b"k", b"old", 0, 0)));
    let mut p = bin(SET, &set_extras(0, 0), b"k", &vec![b'x'; 5000], 0, 1);
    p.extend(bin(GET, &[], b"k", &[], 0, 2));
    c.send(&p);
    let r = c.read_bin();
    assert_eq!((r.status, r.opaque, r.value.as_slice()), (E2BIG, 1, &b"Too large."[..]));
    let r = c.read_bin();
    assert_eq!((r.status, r.opaque), (ENOENT, 2), "a failed set drops the old value");
    // A declared 4 GiB value costs no memory: the connection swallows what
    // arrives and the daemon stays responsive.
    let mut c2 = server.connect();
    let mut huge = bin(SET, &set_extras(0, 0), b"h", b"", 0, 3);
    huge[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    c2.send(&huge);
    assert_eq!(c2.read_bin().status, E2BIG);
    c2.send(&vec![0u8; 1 << 20]);
    ok(&c.bin_call(&bin(NOOP, &[], &[], &[], 0, 0)));
}

fn password_file(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("ferrocache-{name}-{}.pw", std::process::id()));
    std::fs::write(&path, "alice:secret\nbob:hunter2\n").unwrap();
    path
}

#[test]
fn sasl_plain_gates_every_command_but_version() {
    let pw = password_file("sasl");
    let server = Server::start(&["-S", "--sasl-pwdb", pw.to_str().unwrap()]);
    // A text command on a SASL server is refused: the connection closes.
    let mut t = server.connect();
    t.send(b"get a\r\n");
    assert!(t.closed());
    // Before authentication: version works, anything else closes.
    let mut c = server.connect();
    ok(&c.bin_call(&bin(VERSION, &[], &[], &[], 0, 0)));
    assert_eq!(c.bin_call(&bin(GET, &[], b"a", &[], 0, 0)).status, AUTH_ERROR);
    assert!(c.closed());
    let mut c = server.connect();
    let r = ok(&c.bin_call(&bin(SASL_LIST, &[], &[], &[], 0, 0))).clone();
    assert_eq!(r.value, b"PLAIN");
    assert_eq!(c.bin_call(&bin(SASL_AUTH, &[], b"PLAIN", b"\0alice\0wrong", 0, 0)).status, AUTH_ERROR);
    assert_eq!(c.bin_call(&bin(SASL_AUTH, &[], b"CRAM-MD5", b"alice", 0, 0)).status, AUTH_ERROR);
    assert_eq!(c.bin_call(&bin(SASL_STEP, &[], b"PLAIN", b"x", 0, 0)).status, AUTH_ERROR);
    let r = ok(&c.bin_call(&bin(SASL_AUTH, &[], b"PLAIN", b"\0alice\0secret", 0, 0))).clone();
    assert_eq!(r.value, b"Authenticated");
    ok(&c.bin_call(&bin(SET, &set_extras(0, 0), b"a", b"1", 0, 0)));
    assert_eq!(c.bin_call(&bin(GET, &[], b"a", &[], 0, 0)).value, b"1");
    // counted
    c.send(&bin(STAT, &[], &[], &[], 0, 0));
    let mut stats = std::collections::HashMap::new();
    loop {
        let r = c.read_bin();
        if r.key.is_empty() {
            break;
        }
        stats.insert(String::from_utf8(r.key).unwrap(), String::from_utf8(r.value).unwrap());
    }
    assert_eq!(stats["auth_cmds"], "4");
    assert_eq!(stats["auth_errors"], "3");
    let _ = std::fs::remove_file(pw);
}

#[test]
fn sasl_refuses_ascii_on_the_command_line() {
    let pw = password_file("sasl-ascii");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-S", "-B", "ascii", "--sasl-pwdb", pw.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ASCII protocol while using SASL"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .arg("-S")
        .env_remove("MEMCACHED_SASL_PWDB")
        .output()
        .unwrap();
    assert!(!out.status.success(), "SASL without a password file");
    let _ = std::fs::remove_file(pw);
}

#[test]
fn text_authentication_with_an_auth_file() {
    let pw = password_file("ascii");
    let server = Server::start(&["-Y", pw.to_str().unwrap()]);
    let mut c = server.connect();
    // Until it authenticates, a connection answers `mn` like any command.
    let unauthenticated = (b"mn\r\n".to_vec(), b"CLIENT_ERROR unauthenticated\r\n".to_vec());
    c.sentinel = unauthenticated.clone();
    c.expect(b"get a\r\n", b"CLIENT_ERROR unauthenticated\r\n");
    c.expect(b"version\r\n", b"CLIENT_ERROR unauthenticated\r\n");
    c.expect(b"set x 0 0 5\r\nalice\r\n", b"CLIENT_ERROR bad authentication token format\r\n");
    c.expect(b"set x 0 0 11\r\nalice wrong\r\n", b"CLIENT_ERROR authentication failure\r\n");
    c.expect(b"get a\r\n", b"CLIENT_ERROR unauthenticated\r\n");
    // Data not ending where declared: answered, and the connection closes
    // (memcached would run the leftover "\n" as a line).
    let mut bad = server.connect();
    bad.expect_then_close(b"set x 0 0 3\r\nabcd\r\n", b"CLIENT_ERROR bad command line termination\r\n");
    // Authenticated by this request, the connection answers `mn` after it.
    c.sentinel = (b"mn\r\n".to_vec(), b"MN\r\n".to_vec());
    c.expect(b"set x 0 0 12\r\nalice secret\r\n", b"STORED\r\n");
    c.expect(b"set a 0 0 1\r\nx\r\nget a\r\n", b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n");
    // Another connection starts unauthenticated.
    let mut d = server.connect();
    d.sentinel = unauthenticated;
    d.expect(b"get a\r\n", b"CLIENT_ERROR unauthenticated\r\n");
    // A binary connection must authenticate with SASL against the same file.
    let mut b = server.connect();
    assert_eq!(b.bin_call(&bin(GET, &[], b"a", &[], 0, 0)).status, AUTH_ERROR);
    let mut b = server.connect();
    ok(&b.bin_call(&bin(SASL_AUTH, &[], b"PLAIN", b"\0bob\0hunter2", 0, 0)));
    assert_eq!(b.bin_call(&bin(GET, &[], b"a", &[], 0, 0)).value, b"x");
    let (cmds, errors) = auth_stats(&server);
    assert_eq!(cmds, 3, "auth_cmds");
    assert_eq!(errors, 1, "auth_errors");
    // As memcached, `stats settings` names the -Y file.
    let mut s = server.connect();
    s.expect(b"set x 0 0 12\r\nalice secret\r\n", b"STORED\r\n");
    s.send(b"stats settings\r\n");
    let text = String::from_utf8(s.read_until(b"END\r\n")).unwrap();
    let want = format!("STAT auth_enabled_ascii {}\r\n", pw.display());
    assert!(text.contains(&want), "{text}");
    let _ = std::fs::remove_file(pw);
}

/// auth_cmds and auth_errors, read over an authenticated text connection
/// (whose own authentication is taken off again).
fn auth_stats(server: &Server) -> (u64, u64) {
    let mut c = server.connect();
    c.expect(b"set x 0 0 12\r\nalice secret\r\n", b"STORED\r\n");
    c.send(b"stats\r\n");
    let text = String::from_utf8(c.read_until(b"END\r\n")).unwrap();
    let get = |name: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(&format!("STAT {name} "))).unwrap().parse().unwrap()
    };
    (get("auth_cmds") - 1, get("auth_errors"))
}

#[test]
fn a_binary_only_server_hangs_up_on_text() {
    let server = Server::start(&["-B", "binary"]);
    let mut t = server.connect();
    t.send(b"get a\r\n");
    assert!(t.closed());
    let mut b = server.connect();
    ok(&b.bin_call(&bin(NOOP, &[], &[], &[], 0, 0)));
}
