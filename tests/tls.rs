//! TLS (`-Z`): real TLS clients (rustls here, `openssl s_client` when the
//! machine has it) against the real binary, with certificates made at
//! test time (rcgen).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{temp_dir, Server, TIMEOUT};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A certificate authority and what it signed, written under a fresh
/// directory.
struct Pki {
    dir: PathBuf,
    ca: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = temp_dir(&format!("tls-{name}"));
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        let ca_der = cert.der().clone();
        Pki { dir, ca: Issuer::new(params, key), ca_der }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Writes `<name>.pem` and `<name>.key`, signed by the CA, for
    /// 127.0.0.1; returns the certificate and key.
    fn issue(&self, name: &str, cn: &str) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let names = ["localhost", "127.0.0.1", "127.0.0.11", "127.0.0.12", "127.0.0.13"];
        let mut params = CertificateParams::new(names.map(String::from).to_vec()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.distinguished_name.push(DnType::OrganizationName, "ferrocache tests");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        std::fs::write(self.dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        (cert.der().clone(), PrivateKeyDer::try_from(key.serialize_der()).unwrap())
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        roots
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(pki: &Pki, identity: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots());
    Arc::new(match identity {
        Some((cert, key)) => b.with_client_auth_cert(vec![cert], key).unwrap(),
        None => b.with_no_client_auth(),
    })
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake (or says why it failed).
fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(TIMEOUT))?;
    tcp.set_write_timeout(Some(TIMEOUT))?;
    let conn = ClientConnection::new(config, ServerName::IpAddress(addr.ip().into())).unwrap();
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    // TLS 1.3: a refused client certificate is reported after the
    // client's side of the handshake is done; a round trip shows it.
    Ok(s)
}

/// Sends `req` and reads until the reply ends with `end`.
fn call(s: &mut Tls, req: &[u8], end: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(req)?;
    s.flush()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + TIMEOUT;
    while !out.ends_with(end) {
        assert!(Instant::now() < deadline, "no reply to {:?}", String::from_utf8_lossy(req));
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}

/// `stats [group]` over a TLS connection, as name -> value.
fn stats(c: &mut Tls, group: &str) -> std::collections::HashMap<String, String> {
    let cmd = if group.is_empty() { "stats\r\n".to_string() } else { format!("stats {group}\r\n") };
    let text = String::from_utf8(call(c, cmd.as_bytes(), b"END\r\n").unwrap()).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn server(pki: &Pki, extra: &[&str]) -> Server {
    let opts = format!("ssl_chain_cert={},ssl_key={}", pki.path("server.pem"), pki.path("server.key"));
    let mut args = vec!["-Z", "-o", &opts];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Whether a plain TCP connection to `addr` is closed by the server
/// within the timeout (after sending `bytes`).
fn closed_after(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut t = TcpStream::connect(addr).unwrap();
    t.set_read_timeout(Some(TIMEOUT)).unwrap();
    let _ = t.write_all(bytes);
    let mut buf = [0u8; 1024];
    loop {
        match t.read(&mut buf) {
            Ok(0) => return true,
            // An alert may come first; then the close.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn text_meta_and_binary_over_tls() {
    let pki = Pki::new("basic");
    pki.issue("server", "server");
    let srv = server(&pki, &[]);
    let mut c = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    assert_eq!(call(&mut c, b"set k 5 0 3\r\nabc\r\n", b"\r\n").unwrap(), b"STORED\r\n");
    assert_eq!(call(&mut c, b"get k\r\n", b"END\r\n").unwrap(), b"VALUE k 5 3\r\nabc\r\nEND\r\n");
    assert_eq!(call(&mut c, b"mg k v f\r\n", b"abc\r\n").unwrap(), b"VA 3 f5\r\nabc\r\n");
    // A value larger than one TLS record (16 KiB) both ways.
    let big = vec![b'x'; 200_000];
    let mut req = b"set big 0 0 200000\r\n".to_vec();
    req.extend_from_slice(&big);
    req.extend_from_slice(b"\r\n");
    assert_eq!(call(&mut c, &req, b"\r\n").unwrap(), b"STORED\r\n");
    let got = call(&mut c, b"get big\r\n", b"END\r\n").unwrap();
    assert_eq!(got.len(), "VALUE big 0 200000\r\n".len() + 200_000 + 2 + 5);
    // Pipelined requests in one write.
    let mut many: Vec<u8> = b"get k\r\n".repeat(50);
    many.extend_from_slice(b"version\r\n");
    let got = call(&mut c, &many, b"VERSION 1.6.18\r\n").unwrap();
    let mut want = b"VALUE k 5 3\r\nabc\r\nEND\r\n".repeat(50);
    want.extend_from_slice(b"VERSION 1.6.18\r\n");
    assert_eq!(got, want);

    // Binary: a fresh connection picks the protocol from its first byte.
    let mut b = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    assert_eq!(bin_call(&mut b, &common::bin(0x0b, &[], b"", b"", 0, 7)), (0, b"1.6.18".to_vec()));

    let settings = call(&mut c, b"stats settings\r\n", b"END\r\n").unwrap();
    let settings = String::from_utf8(settings).unwrap();
    assert!(settings.contains("STAT ssl_enabled yes\r\n"), "{settings}");
    assert!(settings.contains(&format!("STAT ssl_chain_cert {}\r\n", pki.path("server.pem"))));
    assert!(settings.contains("STAT ssl_verify_mode 0\r\nSTAT ssl_keyformat 1\r\nSTAT ssl_ciphers NULL\r\n"));
    assert!(settings.contains("STAT ssl_wbuf_size 16384\r\nSTAT ssl_session_cache no\r\n"));
    assert!(settings.contains("STAT ssl_min_version tlsv1.2\r\n"));
    let stats = String::from_utf8(call(&mut c, b"stats\r\n", b"END\r\n").unwrap()).unwrap();
    assert!(stats.contains("STAT ssl_handshake_errors 0\r\nSTAT time_since_server_cert_refresh "), "{stats}");
    assert!(!stats.contains("ssl_new_sessions"));
}

/// Replies to one write of pipelined requests that add up to more than
/// the 1 MiB output mark all come over TLS too (the connection must parse
/// on when the socket took everything without blocking).
#[test]
fn replies_past_the_output_mark_to_one_write_all_come_over_tls() {
    let pki = Pki::new("mark");
    pki.issue("server", "server");
    let srv = server(&pki, &["-t", "1"]);
    let mut c = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    let value: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut req = b"set big 3 0 100000\r\n".to_vec();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    assert_eq!(call(&mut c, &req, b"\r\n").unwrap(), b"STORED\r\n");
    let mut one = b"VALUE big 3 100000\r\n".to_vec();
    one.extend_from_slice(&value);
    one.extend_from_slice(b"\r\nEND\r\n");
    for n in [12, 30, 300] {
        let mut many = b"get big\r\n".repeat(n);
        many.extend_from_slice(b"version\r\n");
        let got = call(&mut c, &many, b"VERSION 1.6.18\r\n").unwrap();
        let mut want = one.repeat(n);
        want.extend_from_slice(b"VERSION 1.6.18\r\n");
        assert_eq!(got.len(), want.len(), "{n} gets");
        assert!(got == want, "{n} gets: the replies differ");
    }
}

/// One binary request over TLS: (status, value).
fn bin_call(s: &mut Tls, packet: &[u8]) -> (u16, Vec<u8>) {
    s.write_all(packet).unwrap();
    s.flush().unwrap();
    let mut header = [0u8; 24];
    s.read_exact(&mut header).unwrap();
    assert_eq!(header[0], 0x81);
    let status = u16::from_be_bytes([header[6], header[7]]);
    let body = u32::from_be_bytes(header[8..12].try_into().unwrap()) as usize;
    let skip = usize::from(header[4]) + usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut rest = vec![0u8; body];
    s.read_exact(&mut rest).unwrap();
    (status, rest[skip..].to_vec())
}

#[test]
fn sasl_over_tls() {
    let pki = Pki::new("sasl");
    pki.issue("server", "server");
    std::fs::write(pki.dir.join("pw"), "alice:secret\n").unwrap();
    let srv = server(&pki, &["-S", "--sasl-pwdb", &pki.path("pw")]);
    let mut c = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    assert_eq!(bin_call(&mut c, &common::bin(0x21, &[], b"PLAIN", b"\0alice\0wrong", 0, 0)).0, 0x20);
    let (status, value) = bin_call(&mut c, &common::bin(0x21, &[], b"PLAIN", b"\0alice\0secret", 0, 0));
    assert_eq!((status, value.as_slice()), (0, &b"Authenticated"[..]));
    let set = common::bin(0x01, &[0, 0, 0, 0, 0, 0, 0, 0], b"a", b"1", 0, 0);
    assert_eq!(bin_call(&mut c, &set).0, 0);
    assert_eq!(bin_call(&mut c, &common::bin(0x00, &[], b"a", b"", 0, 0)), (0, b"1".to_vec()));
}

#[test]
fn without_tls_stats_show_the_settings_but_no_counters() {
    let srv = Server::start(&[]);
    let settings = srv.stats("settings");
    assert_eq!(settings["ssl_enabled"], "no");
    assert_eq!(settings["ssl_chain_cert"], "(null)");
    assert_eq!(settings["ssl_ca_cert"], "NULL");
    assert!(!srv.stats("").contains_key("ssl_handshake_errors"));
    let mut c = srv.connect();
    c.expect(b"refresh_certs\r\n", b"Error TLS not enabled\r\n");
}

#[test]
fn plaintext_and_garbage_close_only_their_connection_and_notls_stays_plain() {
    let pki = Pki::new("hostile");
    pki.issue("server", "server");
    let opts = format!("ssl_chain_cert={},ssl_key={}", pki.path("server.pem"), pki.path("server.key"));
    let srv = Server::start_raw(&["-p", "-1", "-l", "127.0.0.1,notls:127.0.0.2", "-Z", "-o", &opts]);
    let (tls_addr, plain_addr) = (srv.addrs[0], srv.addrs[1]);
    assert_eq!(plain_addr.ip().to_string(), "127.0.0.2");
    let mut good = tls_connect(tls_addr, client_config(&pki, None)).unwrap();
    assert_eq!(call(&mut good, b"set a 0 0 1\r\n1\r\n", b"\r\n").unwrap(), b"STORED\r\n");

    // Plain text to the TLS port, garbage, a truncated record: closed.
    assert!(closed_after(tls_addr, b"get a\r\n"));
    assert!(closed_after(tls_addr, &[0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00]));
    assert!(closed_after(tls_addr, &[0xff; 4096]));
    // A ClientHello that claims 16 MiB, sent as full records: refused
    // once past rustls's 64 KiB bound for a handshake message, not buffered.
    let mut huge = Vec::new();
    for i in 0..6 {
        huge.extend_from_slice(&[0x16, 0x03, 0x01, 0x40, 0x00]);
        let mut record = vec![0x41u8; 0x4000];
        if i == 0 {
            record[..4].copy_from_slice(&[0x01, 0xff, 0xff, 0xff]);
        }
        huge.extend_from_slice(&record);
    }
    assert!(closed_after(tls_addr, &huge));
    // The TLS client is unharmed; the plain listener speaks plain text.
    assert_eq!(call(&mut good, b"get a\r\n", b"END\r\n").unwrap(), b"VALUE a 0 1\r\n1\r\nEND\r\n");
    let mut plain = common::Client::connect(plain_addr);
    plain.expect(b"get a\r\n", b"VALUE a 0 1\r\n1\r\nEND\r\n");
    let errors: u64 = stats(&mut good, "")["ssl_handshake_errors"].parse().unwrap();
    assert!(errors >= 4, "{errors}");
}

/// Past `-c`, a TLS port writes memcached's error line in plain text on the
/// raw socket (as memcached does: the client's handshake fails on it) and
/// closes; the held ones go on.
#[test]
fn connections_past_the_limit_get_memcacheds_plain_error_line() {
    let pki = Pki::new("limit");
    pki.issue("server", "server");
    let srv = server(&pki, &["-c", "2", "-t", "1"]);
    let mut held: Vec<Tls> = (0..2).map(|_| tls_connect(srv.addr(), client_config(&pki, None)).unwrap()).collect();
    for c in held.iter_mut() {
        assert_eq!(call(c, b"version\r\n", b"\r\n").unwrap(), b"VERSION 1.6.18\r\n");
    }
    let mut extra = TcpStream::connect(srv.addr()).unwrap();
    extra.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut got = Vec::new();
    extra.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ERROR Too many open connections\r\n");
    assert!(tls_connect(srv.addr(), client_config(&pki, None)).is_err());
    assert_eq!(stats(&mut held[0], "")["rejected_connections"], "2");
}

/// A TLS client that pipelines gets of a 100 KB value and never reads a
/// reply, with the largest `ssl_wbuf_size`: the records rustls holds count
/// toward the 1 MiB high-water mark, so input stops there and the
/// server's peak memory grows by a few MiB at most (not by the thousands of
/// replies asked for); `write_timeout` closes it; others are served.
#[test]
fn a_tls_client_that_never_reads_is_bounded_and_closed_by_write_timeout() {
    let pki = Pki::new("silent");
    pki.issue("server", "server");
    let srv = server(&pki, &["-t", "2", "-o", "write_timeout=1,ssl_wbuf_size=1024"]);
    let mut other = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    assert_eq!(stats(&mut other, "settings")["ssl_wbuf_size"], "1048576");
    let value = vec![b'v'; 100_000];
    let set = [&b"set k 0 0 100000\r\n"[..], &value, b"\r\n"].concat();
    assert_eq!(call(&mut other, &set, b"\r\n").unwrap(), b"STORED\r\n");
    let want = [&b"VALUE k 0 100000\r\n"[..], &value, b"\r\nEND\r\n"].concat();
    // Warm up: the other client's own buffers count in the baseline.
    for _ in 0..20 {
        assert_eq!(call(&mut other, b"get k\r\n", b"END\r\n").unwrap(), want);
    }
    let before = srv.peak_rss();
    let silent = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    let writer = std::thread::spawn(move || {
        // rustls driven by hand: records go out, nothing is ever read.
        // 20,000 gets ask for 2 GB of replies.
        let (mut conn, mut sock) = (silent.conn, silent.sock);
        sock.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let batch = b"get k\r\n".repeat(1000);
        'outer: for _ in 0..20 {
            let mut rest = &batch[..];
            while !rest.is_empty() {
                let n = conn.writer().write(rest).unwrap();
                rest = &rest[n..];
                while conn.wants_write() {
                    if conn.write_tls(&mut sock).is_err() {
                        break 'outer;
                    }
                }
            }
        }
        sock // kept open: the server must be the one to close it
    });
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert_eq!(call(&mut other, b"get k\r\n", b"END\r\n").unwrap(), want);
        if stats(&mut other, "ferrocache")["write_stalls"] != "0" {
            break;
        }
        assert!(Instant::now() < deadline, "the silent TLS client was not closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The silent connection holds about 1.1 MiB of output in all (replies
    // and records together stop at the mark, plus the reply crossing it),
    // in a reply buffer of up to 2 MiB capacity, and its input buffer:
    // measured 2.5-2.8 MiB. Were the records rustls holds not counted,
    // 1 MiB of replies would queue beside 1 MiB of records (measured
    // 5.8 MiB), and with a larger ssl_wbuf_size, more.
    let grown = srv.peak_rss().saturating_sub(before);
    assert!(grown < 4 << 20, "peak RSS grew by {grown} bytes");
    drop(writer.join().unwrap());
}

#[test]
fn a_stalled_handshake_is_reaped_by_idle_timeout() {
    let pki = Pki::new("stall");
    pki.issue("server", "server");
    let srv = server(&pki, &["-o", "idle_timeout=1"]);
    // Half a ClientHello header, then nothing.
    let mut t = TcpStream::connect(srv.addr()).unwrap();
    t.set_read_timeout(Some(TIMEOUT)).unwrap();
    t.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 16];
    let read = t.read(&mut buf);
    let waited = start.elapsed();
    let closed = match &read {
        Ok(n) => *n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "expected a close, got {read:?} after {waited:?}");
    assert!(waited < TIMEOUT);
    let mut c = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    let st = stats(&mut c, "");
    let shown = ["idle_kicks", "ssl_handshake_errors", "total_connections", "curr_connections"].map(|k| (k, &st[k]));
    assert!(st["idle_kicks"].parse::<u64>().unwrap() >= 1, "closed after {waited:?} without an idle kick: {shown:?}");
}

#[test]
fn mutual_tls_refuses_clients_without_a_ca_signed_certificate() {
    let pki = Pki::new("mtls");
    pki.issue("server", "server");
    let client_id = pki.issue("client", "cache-client-1");
    let rogue = Pki::new("rogue");
    let rogue_id = rogue.issue("client", "intruder");
    let ca = format!("ssl_ca_cert={},ssl_verify_mode=2", pki.path("ca.pem"));
    let srv = server(&pki, &["-o", &ca]);

    let mut ok = tls_connect(srv.addr(), client_config(&pki, Some(client_id))).unwrap();
    assert_eq!(call(&mut ok, b"version\r\n", b"\r\n").unwrap(), b"VERSION 1.6.18\r\n");
    let conns = String::from_utf8(call(&mut ok, b"stats conns\r\n", b"END\r\n").unwrap()).unwrap();
    assert!(conns.contains(":tls_subject CN=cache-client-1,O=ferrocache\\x20tests\r\n"), "{conns}");

    for identity in [None, Some(rogue_id)] {
        let refused = tls_connect(srv.addr(), client_config(&pki, identity))
            .and_then(|mut c| call(&mut c, b"version\r\n", b"\r\n"));
        assert!(refused.is_err(), "a client without a CA-signed certificate was served");
    }
    // Counted before the alert went out: exact once the clients saw it.
    assert_eq!(stats(&mut ok, "")["ssl_handshake_errors"], "2");
    assert_eq!(stats(&mut ok, "settings")["ssl_verify_mode"], "3");
}

#[test]
fn refresh_certs_serves_the_new_pair_to_new_handshakes_under_load() {
    let old = Pki::new("refresh-old");
    old.issue("server", "server");
    let srv = server(&old, &[]);
    let mut admin = tls_connect(srv.addr(), client_config(&old, None)).unwrap();
    assert_eq!(call(&mut admin, b"set k 0 0 2\r\nhi\r\n", b"\r\n").unwrap(), b"STORED\r\n");

    // A new CA and pair at the same paths (read at the refresh).
    let new = Pki::new("refresh-new");
    new.issue("server", "server");
    for f in ["server.pem", "server.key"] {
        std::fs::copy(new.dir.join(f), old.dir.join(f)).unwrap();
    }

    // Clients reading in a loop while the pair changes under them: each
    // has done requests before the refresh and goes on for as many after
    // it (bounded in count and time).
    let addr = srv.addr();
    let old_config = client_config(&old, None);
    let clients: Vec<Tls> = (0..3).map(|_| tls_connect(addr, old_config.clone()).unwrap()).collect();
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let refreshed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let (started, refreshed) = (started.clone(), refreshed.clone());
            std::thread::spawn(move || {
                let get = |c: &mut Tls| {
                    assert_eq!(call(c, b"get k\r\n", b"END\r\n").unwrap(), b"VALUE k 0 2\r\nhi\r\nEND\r\n");
                };
                for _ in 0..20 {
                    get(&mut c);
                }
                started.fetch_add(1, std::sync::atomic::Ordering::Release);
                let deadline = Instant::now() + 2 * TIMEOUT;
                let (mut during, mut after) = (0u32, 0u32);
                while after < 20 {
                    assert!(during < 100_000 && Instant::now() < deadline, "no refresh seen");
                    let done = refreshed.load(std::sync::atomic::Ordering::Acquire);
                    get(&mut c);
                    if done {
                        after += 1;
                    } else {
                        during += 1;
                    }
                }
            })
        })
        .collect();

    let deadline = Instant::now() + TIMEOUT;
    while started.load(std::sync::atomic::Ordering::Acquire) < load.len() {
        assert!(Instant::now() < deadline && !load.iter().any(|t| t.is_finished()), "the load did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(call(&mut admin, b"refresh_certs\r\n", b"\r\n").unwrap(), b"OK\r\n");
    refreshed.store(true, std::sync::atomic::Ordering::Release);
    for t in load {
        t.join().unwrap();
    }
    // Existing sessions go on; new ones get the new certificate.
    assert_eq!(call(&mut admin, b"get k\r\n", b"END\r\n").unwrap(), b"VALUE k 0 2\r\nhi\r\nEND\r\n");
    let mut fresh = tls_connect(srv.addr(), client_config(&new, None)).unwrap();
    assert_eq!(call(&mut fresh, b"get k\r\n", b"END\r\n").unwrap(), b"VALUE k 0 2\r\nhi\r\nEND\r\n");
    // (A fresh client config: the old one would resume its session, with
    // no certificate to check.)
    assert!(tls_connect(srv.addr(), client_config(&old, None)).is_err(), "the old certificate is still served");
    drop(old_config);

    // noreply: nothing on success.
    assert_eq!(call(&mut admin, b"refresh_certs noreply\r\nversion\r\n", b"\r\n").unwrap(), b"VERSION 1.6.18\r\n");
    // A broken file: the error line, and the pair in use stays.
    std::fs::write(old.dir.join("server.key"), b"not a key").unwrap();
    let reply = call(&mut admin, b"refresh_certs\r\n", b"\r\n").unwrap();
    assert!(reply.starts_with(b"Error loading the key: "), "{}", String::from_utf8_lossy(&reply));
    assert!(tls_connect(srv.addr(), client_config(&new, None)).is_ok());
}

#[test]
fn bad_tls_flags_exit_64_with_the_reason() {
    let pki = Pki::new("flags");
    pki.issue("server", "server");
    let chain = format!("ssl_chain_cert={},ssl_key={}", pki.path("server.pem"), pki.path("server.key"));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["-Z".into()], "ssl_chain_cert"),
        (vec!["-Z".into(), "-o".into(), "ssl_chain_cert=/nonexistent.pem".into()], "/nonexistent.pem"),
        (vec!["-Z".into(), "-o".into(), format!("{chain},ssl_ciphers=HIGH")], "HIGH"),
        (vec!["-Z".into(), "-o".into(), format!("{chain},ssl_verify_mode=2")], "ssl_ca_cert"),
        (vec!["-Z".into(), "-o".into(), format!("{chain},ssl_kernel_tls")], "kernel TLS"),
        (vec!["-Z".into(), "-o".into(), format!("{chain},ssl_wbuf_size=1025")], "ssl_wbuf_size must be 1 to 1024"),
        (vec!["-l".into(), "notls:127.0.0.1".into()], "'notls' option is valid only when SSL is enabled"),
        // The key of another pair.
        (
            vec![
                "-Z".into(),
                "-o".into(),
                format!("ssl_chain_cert={},ssl_key={}", pki.path("server.pem"), pki.path("other.key")),
            ],
            "Error validating the certificate",
        ),
    ];
    pki.issue("other", "other");
    for (args, why) in cases {
        let mut all = vec!["-p".to_string(), "-1".into()];
        all.extend(args);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrocache")).args(&all).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{all:?}: {err}");
        assert!(err.contains(why), "{all:?}: {err}");
    }
}

#[test]
fn tls13_only_and_chosen_ciphers() {
    let pki = Pki::new("versions");
    pki.issue("server", "server");
    let srv = server(&pki, &["-o", "ssl_min_version=tlsv1.3"]);
    let tls12_only = Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(pki.roots())
            .with_no_client_auth(),
    );
    assert!(tls_connect(srv.addr(), tls12_only.clone()).is_err());
    let mut c = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    assert_eq!(c.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
    assert_eq!(call(&mut c, b"version\r\n", b"\r\n").unwrap(), b"VERSION 1.6.18\r\n");
    drop(srv);

    let srv = server(&pki, &["-o", "ssl_ciphers=ECDHE-ECDSA-AES256-GCM-SHA384"]);
    let mut c = tls_connect(srv.addr(), tls12_only).unwrap();
    let suite = format!("{:?}", c.conn.negotiated_cipher_suite().unwrap().suite());
    assert_eq!(suite, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384");
    assert_eq!(call(&mut c, b"version\r\n", b"\r\n").unwrap(), b"VERSION 1.6.18\r\n");
}

/// The config endpoint over TLS, and node health checks over TLS that
/// verify each node against ssl_ca_cert: a node whose certificate another
/// CA signed, or that speaks plain text, is taken out.
#[test]
fn config_endpoint_and_health_checks_over_tls() {
    let pki = Pki::new("cluster");
    pki.issue("server", "server");
    let rogue = Pki::new("cluster-rogue");
    rogue.issue("server", "server");
    let node = |p: &Pki, ip: &str, tls: bool| {
        let opts = format!("ssl_chain_cert={},ssl_key={}", p.path("server.pem"), p.path("server.key"));
        let mut args = vec!["-l", ip, "-p", "-1"];
        if tls {
            args.extend(["-Z", "-o", &opts]);
        }
        Server::start_raw(&args)
    };
    let good = node(&pki, "127.0.0.11", true);
    let forged = node(&rogue, "127.0.0.12", true);
    let plain = node(&pki, "127.0.0.13", false);
    let line = |name: &str, s: &Server| format!("{name}|{}|{}", s.addr().ip(), s.addr().port());
    let (good_line, forged_line, plain_line) =
        (line("localhost", &good), line("forged", &forged), line("plain", &plain));
    let file = pki.dir.join("cluster");
    std::fs::write(&file, format!("{good_line}\n{forged_line}\n{plain_line}\n")).unwrap();
    let opts = format!(
        "ssl_chain_cert={},ssl_key={},ssl_ca_cert={}",
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem")
    );
    let file_arg = file.display().to_string();
    let endpoint = Server::start_raw(&[
        "-l",
        "127.0.0.1",
        "-p",
        "-1",
        "-Z",
        "-o",
        &opts,
        "--config-port",
        "0",
        "--cluster-file",
        &file_arg,
        "--health-interval-ms",
        "100",
        "--health-timeout-ms",
        "500",
        "--health-failures",
        "2",
    ]);
    let config_port = endpoint.addrs[1];
    let config = client_config(&pki, None);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut c = tls_connect(config_port, config.clone()).unwrap();
        let reply = String::from_utf8(call(&mut c, b"config get cluster\r\n", b"END\r\n").unwrap()).unwrap();
        assert!(reply.starts_with("CONFIG cluster 0 "), "{reply}");
        if !reply.contains(&forged_line) && !reply.contains(&plain_line) {
            assert!(reply.contains(&good_line), "the TLS node was taken out: {reply}");
            break;
        }
        assert!(Instant::now() < deadline, "nodes failing verification stay listed: {reply}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = tls_connect(endpoint.addr(), config.clone()).unwrap();
    let cluster = stats(&mut c, "cluster");
    assert_eq!(cluster["node:0:addr"], good_line);
    assert_eq!((cluster["node:0:state"].as_str(), cluster["node:0:failures"].as_str()), ("up", "0"), "{cluster:?}");
    assert_ne!(cluster["node:0:checks"], "0");
    // Plain text to the TLS config endpoint is closed.
    assert!(closed_after(config_port, b"config get cluster\r\n"));

    // Warm join over TLS: a node added to the file is served once the
    // endpoint has copied its keys from `good`, both verified.
    let mut g = tls_connect(good.addr(), config.clone()).unwrap();
    for i in 0..200 {
        assert_eq!(call(&mut g, format!("set k{i} 0 0 4\r\nv{i:03}\r\n").as_bytes(), b"\r\n").unwrap(), b"STORED\r\n");
    }
    let added = node(&pki, "127.0.0.1", true);
    let added_line = line("localhost", &added);
    std::fs::write(&file, format!("{good_line}\n{forged_line}\n{plain_line}\n{added_line}\n")).unwrap();
    assert!(common::send_signal(endpoint.child.id(), "HUP"));
    loop {
        let mut c = tls_connect(config_port, config.clone()).unwrap();
        let reply = String::from_utf8(call(&mut c, b"config get cluster\r\n", b"END\r\n").unwrap()).unwrap();
        if reply.contains(&added_line) {
            break;
        }
        assert!(Instant::now() < deadline + TIMEOUT, "the added node was never served: {reply}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let entry = |s: &Server| ferrocache::discovery::Node {
        host: "localhost".into(),
        ip: s.addr().ip().to_string(),
        port: s.addr().port(),
    };
    let ring =
        ferrocache::cluster::Ring::from_nodes(ferrocache::cluster::Scheme::Ketama, &[entry(&good), entry(&added)]);
    let mut a = tls_connect(added.addr(), config.clone()).unwrap();
    let moved: Vec<usize> = (0..200).filter(|i| ring.owner(format!("k{i}").as_bytes()) == Some(1)).collect();
    assert!(moved.len() > 50, "{moved:?}");
    for i in moved {
        let got = call(&mut a, format!("get k{i}\r\n").as_bytes(), b"END\r\n").unwrap();
        assert_eq!(got, format!("VALUE k{i} 0 4\r\nv{i:03}\r\nEND\r\n").as_bytes(), "k{i}");
    }
}

/// Resumption with tickets; `ssl_new_sessions` (with `ssl_session_cache`)
/// counts full handshakes only.
#[test]
fn sessions_resume_and_only_full_handshakes_are_new_sessions() {
    let pki = Pki::new("sessions");
    pki.issue("server", "server");
    let srv = server(&pki, &["-o", "ssl_session_cache"]);
    for versions in [&[&rustls::version::TLS12][..], &[&rustls::version::TLS13][..]] {
        // One client config: its session store carries the ticket over.
        let config = Arc::new(
            ClientConfig::builder_with_provider(provider())
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(pki.roots())
                .with_no_client_auth(),
        );
        let mut first = tls_connect(srv.addr(), config.clone()).unwrap();
        // TLS 1.3 tickets arrive after the handshake: a round trip takes them in.
        let before: u64 = stats(&mut first, "")["ssl_new_sessions"].parse().unwrap();
        assert!(before >= 1, "a full handshake is a new session");
        let mut again = tls_connect(srv.addr(), config).unwrap();
        assert_eq!(again.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed), "{versions:?}");
        let after: u64 = stats(&mut again, "")["ssl_new_sessions"].parse().unwrap();
        assert_eq!(after, before, "{versions:?}: a resumed session counted as new");
    }
    let mut fresh = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    assert_eq!(fresh.conn.handshake_kind(), Some(rustls::HandshakeKind::Full));
    // `stats reset` zeroes it, as memcached's does.
    assert_eq!(call(&mut fresh, b"stats reset\r\n", b"RESET\r\n").unwrap(), b"RESET\r\n");
    assert_eq!(stats(&mut fresh, "")["ssl_new_sessions"], "0");
}

/// `ssl_keyformat=2`: a DER key; the key may also sit in the chain file.
#[test]
fn der_keys_and_keys_in_the_chain_file() {
    let pki = Pki::new("keys");
    let (_, key) = pki.issue("server", "server");
    std::fs::write(pki.dir.join("server.der"), key.secret_der()).unwrap();
    let opts = format!("ssl_chain_cert={},ssl_key={},ssl_keyformat=2", pki.path("server.pem"), pki.path("server.der"));
    let srv = Server::start(&["-Z", "-o", &opts]);
    let mut c = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    assert_eq!(stats(&mut c, "settings")["ssl_keyformat"], "2");
    drop(srv);
    // Chain and key in one PEM file, no ssl_key.
    let both = [std::fs::read(pki.dir.join("server.pem")).unwrap(), std::fs::read(pki.dir.join("server.key")).unwrap()];
    std::fs::write(pki.dir.join("both.pem"), both.concat()).unwrap();
    let opts = format!("ssl_chain_cert={}", pki.path("both.pem"));
    let srv = Server::start(&["-Z", "-o", &opts]);
    let mut c = tls_connect(srv.addr(), client_config(&pki, None)).unwrap();
    assert_eq!(call(&mut c, b"version\r\n", b"\r\n").unwrap(), b"VERSION 1.6.18\r\n");
}

/// `openssl s_client`, where the machine has it.
#[test]
fn openssl_s_client_is_served() {
    let has_openssl = std::process::Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    if !has_openssl {
        eprintln!("skipped: no openssl on this machine");
        return;
    }
    let pki = Pki::new("openssl");
    pki.issue("server", "server");
    let srv = server(&pki, &[]);
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-CAfile", &pki.path("ca.pem")])
        .arg("-connect")
        .arg(srv.addr().to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.as_mut().unwrap().write_all(b"set o 0 0 2\r\nok\r\nget o\r\nquit\r\n").unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let out = loop {
        if let Some(_status) = child.try_wait().unwrap() {
            let mut s = String::new();
            child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
            break s;
        }
        assert!(Instant::now() < deadline, "s_client did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(out, "STORED\r\nVALUE o 0 2\r\nok\r\nEND\r\n");
}
