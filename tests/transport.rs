//! Transports other than TCP: unix sockets (`-s`, `-a`), UDP (`-U`) with
//! its frame header and reply bound, and how `stats conns` lists them.

mod common;

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Server, TIMEOUT};

fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ferrocache-transport-{}-{name}.sock", std::process::id()))
}

/// Sends `bytes` on a unix stream and reads until the reply ends with `end`.
fn unix_round_trip(s: &mut UnixStream, bytes: &[u8], end: &[u8]) -> Vec<u8> {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(end) {
        let n = s.read(&mut buf).expect("reply in time");
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    got
}

#[test]
fn unix_socket_serves_with_its_mask_and_is_removed_at_shutdown() {
    let path = socket_path("serve");
    let p = path.to_str().unwrap();
    let mut server = Server::start_raw(&["-s", p, "-a", "660", "-t", "2"]);
    assert_eq!(server.unix.as_deref(), Some(path.as_path()));
    assert!(server.addrs.is_empty(), "-s turns TCP off: {:?}", server.addrs);
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);

    // Several clients, so that more than one loop accepts from the socket.
    for i in 0..4 {
        let mut c = UnixStream::connect(&path).unwrap();
        let set = format!("set k{i} 0 0 2\r\nv{i}\r\n");
        assert_eq!(unix_round_trip(&mut c, set.as_bytes(), b"\r\n"), b"STORED\r\n");
        let get = format!("get k{i}\r\n");
        assert_eq!(
            unix_round_trip(&mut c, get.as_bytes(), b"END\r\n"),
            format!("VALUE k{i} 0 2\r\nv{i}\r\nEND\r\n").as_bytes()
        );
    }
    let mut c = UnixStream::connect(&path).unwrap();
    let settings = String::from_utf8(unix_round_trip(&mut c, b"stats settings\r\n", b"END\r\n")).unwrap();
    assert!(settings.contains(&format!("STAT domain_socket {p}\r\n")), "{settings}");
    assert!(settings.contains("STAT umask 660\r\n"), "{settings}");

    let st = server.signal_and_wait(15);
    assert!(st.success(), "{st:?}");
    assert!(!path.exists(), "socket file left behind");
}

#[test]
fn a_unix_socket_path_in_use_is_refused_and_a_stale_one_replaced() {
    let path = socket_path("taken");
    let p = path.to_str().unwrap();
    let first = Server::start_raw(&["-s", p]);
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-s", p])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut err = String::new();
    second.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!second.wait().unwrap().success());
    assert!(err.contains("listening there"), "{err}");
    // The refused start left the live socket alone.
    assert!(UnixStream::connect(&path).is_ok());
    drop(first);

    // A socket file nobody accepts on is replaced.
    let stale = std::os::unix::net::UnixListener::bind(socket_path("stale")).unwrap();
    drop(stale);
    let stale_path = socket_path("stale");
    assert!(stale_path.exists());
    let s = Server::start_raw(&["-s", stale_path.to_str().unwrap()]);
    let mut c = UnixStream::connect(&stale_path).unwrap();
    assert_eq!(unix_round_trip(&mut c, b"version\r\n", b"\r\n")[..8], *b"VERSION ");
    drop(s);
}

/// One UDP request: frame header (id, seq 0, 1 datagram, 0) + payload.
/// Returns the reply datagrams by sequence number, checking their headers.
fn udp_request(sock: &UdpSocket, id: u16, payload: &[u8]) -> Vec<Vec<u8>> {
    let mut dg = Vec::new();
    for v in [id, 0, 1, 0] {
        dg.extend_from_slice(&v.to_be_bytes());
    }
    dg.extend_from_slice(payload);
    sock.send(&dg).unwrap();
    let mut parts: Vec<Option<Vec<u8>>> = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 2048];
    loop {
        let n = sock.recv(&mut buf).expect("datagram in time");
        assert!(Instant::now() < deadline);
        assert!(n <= 1400, "datagram of {n} bytes");
        let word = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
        assert_eq!(word(0), id, "request id echoed");
        assert_eq!(word(6), 0, "reserved is 0");
        let (seq, total) = (word(2) as usize, word(4) as usize);
        if parts.is_empty() {
            parts.resize(total, None);
        }
        assert_eq!(parts.len(), total, "the count never changes");
        parts[seq] = Some(buf[8..n].to_vec());
        if parts.iter().all(Option::is_some) {
            return parts.into_iter().map(Option::unwrap).collect();
        }
    }
}

fn udp_client(server: &Server) -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server.udp[0]).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock
}

#[test]
fn udp_get_and_set_with_frame_headers() {
    let server = Server::start(&["-U", "-1"]);
    assert_eq!(server.udp.len(), 1);
    let sock = udp_client(&server);
    assert_eq!(udp_request(&sock, 7, b"set a 5 0 3\r\nabc\r\n"), vec![b"STORED\r\n".to_vec()]);
    assert_eq!(udp_request(&sock, 8, b"get a\r\n"), vec![b"VALUE a 5 3\r\nabc\r\nEND\r\n".to_vec()]);
    // Two requests in one datagram: one reply message.
    assert_eq!(udp_request(&sock, 9, b"incr n 1\r\nget a\r\n").concat(), b"NOT_FOUND\r\nVALUE a 5 3\r\nabc\r\nEND\r\n");
    // Binary: a get miss.
    let mut bin = vec![0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    bin.extend_from_slice(&[0; 8]);
    bin.push(b'z');
    let reply = udp_request(&sock, 10, &bin).concat();
    assert_eq!(reply[0], 0x81);
    assert_eq!(u16::from_be_bytes([reply[6], reply[7]]), 1, "key not found");
    // A datagram claiming to be one of two is dropped; the next one is served.
    let mut two = vec![0, 11, 0, 0, 0, 2, 0, 0];
    two.extend_from_slice(b"get a\r\n");
    sock.send(&two).unwrap();
    assert_eq!(udp_request(&sock, 12, b"get a\r\n").concat(), b"VALUE a 5 3\r\nabc\r\nEND\r\n");
}

#[test]
fn udp_replies_span_datagrams_up_to_the_bound() {
    let server = Server::start(&["-U", "-1"]);
    let sock = udp_client(&server);
    let mut tcp = server.connect();
    let big: Vec<u8> = (0..20_000).map(|i| b'A' + (i % 26) as u8).collect();
    let mut set = b"set big 0 0 20000\r\n".to_vec();
    set.extend_from_slice(&big);
    set.extend_from_slice(b"\r\n");
    tcp.expect(&set, b"STORED\r\n");
    let parts = udp_request(&sock, 53, b"get big\r\n");
    assert_eq!(parts.len(), 15);
    let mut want = b"VALUE big 0 20000\r\n".to_vec();
    want.extend_from_slice(&big);
    want.extend_from_slice(b"\r\nEND\r\n");
    assert_eq!(parts.concat(), want);

    // Past 32 datagrams: one datagram with the error instead.
    let huge = vec![b'x'; 50_000];
    let mut set = b"set huge 0 0 50000\r\n".to_vec();
    set.extend_from_slice(&huge);
    set.extend_from_slice(b"\r\n");
    tcp.expect(&set, b"STORED\r\n");
    assert_eq!(
        udp_request(&sock, 54, b"get huge\r\n"),
        vec![b"SERVER_ERROR out of memory writing get response\r\n".to_vec()]
    );
    // Many keys that each fit: cut at the bound too, never past it.
    assert_eq!(
        udp_request(&sock, 55, b"get big big big\r\n").concat(),
        b"SERVER_ERROR out of memory writing get response\r\n"
    );
    // Three requests in one datagram: the two replies that fit, then the
    // error for the third, which would pass the bound.
    let mut one = b"VALUE big 0 20000\r\n".to_vec();
    one.extend_from_slice(&big);
    one.extend_from_slice(b"\r\nEND\r\n");
    let mut want = [one.clone(), one].concat();
    want.extend_from_slice(b"SERVER_ERROR out of memory writing get response\r\n");
    assert_eq!(udp_request(&sock, 56, b"get big\r\nget big\r\nget big\r\n").concat(), want);
}

/// Commands that stream past one reply are refused over UDP, whole, rather
/// than answered in part or not at all.
#[test]
fn udp_refuses_metadump_and_watch() {
    let server = Server::start(&["-U", "-1"]);
    let sock = udp_client(&server);
    let refused = b"SERVER_ERROR streaming commands need a TCP or unix socket connection\r\n".to_vec();
    assert_eq!(udp_request(&sock, 60, b"set a 0 0 1\r\nx\r\n").concat(), b"STORED\r\n");
    assert_eq!(udp_request(&sock, 61, b"lru_crawler metadump all\r\n").concat(), refused);
    assert_eq!(udp_request(&sock, 62, b"watch\r\n").concat(), refused);
    assert_eq!(udp_request(&sock, 63, b"get a\r\n").concat(), b"VALUE a 0 1\r\nx\r\nEND\r\n");
}

/// `stats conns` as memcached lists it: listeners and UDP sockets, then
/// clients with their state, by descriptor.
#[test]
fn stats_conns_lists_listeners_udp_sockets_and_client_states() {
    let server = Server::start_raw(&["-l", "0.0.0.0", "-p", "-1", "-U", "-1", "-t", "2"]);
    let port = server.addrs[0].port();
    let udp_port = server.udp[0].port();
    let mut waiting = common::Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    waiting.send(b"set foo 0 0 6\r\n");
    std::thread::sleep(Duration::from_millis(200));
    let mut asker = common::Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
    asker.send(b"stats conns\r\n");
    let text = String::from_utf8(asker.read_until(b"END\r\n")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let count = |s: &str| lines.iter().filter(|l| l.ends_with(s)).count();
    assert_eq!(count(&format!(":addr tcp:0.0.0.0:{port}")), 2, "one TCP listener per loop:\n{text}");
    assert_eq!(count(":state conn_listening"), 2, "{text}");
    assert_eq!(count(&format!(":addr udp:0.0.0.0:{udp_port}")), 2, "{text}");
    assert_eq!(count(":UDP UDP"), 2, "{text}");
    assert_eq!(count(":state conn_read"), 2, "{text}");
    assert_eq!(count(":state conn_nread"), 1, "{text}");
    assert_eq!(count(":state conn_parse_cmd"), 1, "{text}");
    assert_eq!(count(&format!(":listen_addr tcp:127.0.0.1:{port}")), 2, "{text}");
    // Sorted by descriptor, listeners before clients.
    let fds: Vec<i32> = lines.iter().filter_map(|l| l.strip_prefix("STAT ")?.split(':').next()?.parse().ok()).collect();
    assert!(fds.windows(2).all(|w| w[0] <= w[1]), "{text}");
    drop(waiting);
}

#[test]
fn port_file_names_the_bound_ports() {
    let file = std::env::temp_dir().join(format!("ferrocache-ports-{}", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ferrocache"));
    cmd.args(["-l", "127.0.0.1", "-p", "-1", "-U", "-1"]).env("MEMCACHED_PORT_FILENAME", &file);
    let server = Server::start_command(&mut cmd);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text, format!("TCP INET: {}\nUDP INET: {}\n", server.port(), server.udp[0].port()));
    let _ = std::fs::remove_file(&file);
}

#[test]
fn port_zero_turns_tcp_off() {
    let server = Server::start_raw(&["-l", "127.0.0.1", "-p", "0"]);
    assert!(server.addrs.is_empty() && server.udp.is_empty() && server.unix.is_none());
}
