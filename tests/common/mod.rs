//! Starts the real `ferrocache` binary on an ephemeral loopback port and
//! speaks raw bytes to it. Every wait is bounded.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running daemon; SIGTERM on drop.
pub struct Server {
    pub child: Child,
    /// TCP addresses from the ready line.
    pub addrs: Vec<SocketAddr>,
    /// UDP addresses (`udp:` entries of the ready line).
    pub udp: Vec<SocketAddr>,
    /// The unix socket (`unix:` entry of the ready line).
    pub unix: Option<std::path::PathBuf>,
    pub stderr: Option<std::process::ChildStderr>,
    /// The rest of its standard output, line by line.
    pub stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Server {
    /// Starts `ferrocache -l 127.0.0.1 -p -1 <args>` (-1: any free port) and waits for its
    /// ready line.
    pub fn start(args: &[&str]) -> Server {
        let mut full = vec!["-l", "127.0.0.1", "-p", "-1"];
        full.extend_from_slice(args);
        Server::start_raw(&full)
    }

    /// Starts the binary with exactly `args`.
    pub fn start_raw(args: &[&str]) -> Server {
        Server::start_command(Command::new(env!("CARGO_BIN_EXE_ferrocache")).args(args))
    }

    /// Starts a prepared command and waits for its ready line.
    pub fn start_command(cmd: &mut Command) -> Server {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start ferrocache");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next().and_then(Result::ok).unwrap_or_else(|| {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("ferrocache printed no ready line; stderr: {err}")
        });
        let list = line.strip_prefix("ferrocache listening on ").unwrap_or_else(|| panic!("ready line: {line}"));
        let (mut addrs, mut udp, mut unix) = (Vec::new(), Vec::new(), None);
        for entry in list.split(',').filter(|e| !e.is_empty()) {
            if let Some(a) = entry.strip_prefix("udp:") {
                udp.push(a.parse().unwrap());
            } else if let Some(p) = entry.strip_prefix("unix:") {
                unix = Some(p.into());
            } else {
                addrs.push(entry.parse().unwrap());
            }
        }
        let stderr = child.stderr.take();
        Server { child, addrs, udp, unix, stderr, stdout: lines }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// A raw connection with bounded reads.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr())
    }

    /// Sends a signal and waits (bounded) for the process to exit.
    pub fn signal_and_wait(&mut self, sig: i32) -> ExitStatus {
        send_signal(self.child.id(), &sig.to_string());
        self.wait()
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "ferrocache did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the daemon wrote to stderr (after it exited).
    pub fn stderr_text(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    /// `stats` as name -> value.
    pub fn stats(&self, group: &str) -> std::collections::HashMap<String, String> {
        let mut c = self.connect();
        let cmd = if group.is_empty() { "stats\r\n".to_string() } else { format!("stats {group}\r\n") };
        c.send(cmd.as_bytes());
        let text = c.read_until(b"END\r\n");
        String::from_utf8(text)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("STAT "))
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }
}

/// Sends signal `sig` (a number or a name: `9`, `TERM`, `HUP`) to `pid`
/// through the shell's built-in `kill`, which keeps tests free of unsafe
/// code and needs no /usr/bin/kill (procps, absent from minimal Debian
/// machines and containers). Whether it was delivered.
pub fn send_signal(pid: u32, sig: &str) -> bool {
    Command::new("sh")
        .args(["-c", "kill -s \"$0\" \"$1\"", sig, &pid.to_string()])
        .status()
        .is_ok_and(|st| st.success())
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            send_signal(self.child.id(), "TERM");
            let deadline = Instant::now() + TIMEOUT;
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The opaque of the binary sentinel [`Client::expect_nothing_more`] sends.
const SENTINEL_OPAQUE: u32 = 0x5e47_1e1a;

/// A raw TCP client.
pub struct Client {
    pub stream: TcpStream,
    /// The (request, exact reply) [`Client::expect_nothing_more`] sends
    /// on a text connection; `mn` unless a test changes it.
    pub sentinel: (Vec<u8>, Vec<u8>),
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, sentinel: (b"mn\r\n".to_vec(), b"MN\r\n".to_vec()) }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.stream.read_exact(&mut buf).unwrap_or_else(|e| panic!("reading {n} bytes: {e}"));
        buf
    }

    /// Reads until the input ends with `end`.
    pub fn read_until(&mut self, end: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut byte = [0u8; 4096];
        while !out.ends_with(end) {
            let n = self.stream.read(&mut byte).expect("read");
            assert!(n > 0, "connection closed; got {:?}", String::from_utf8_lossy(&out));
            out.extend_from_slice(&byte[..n]);
        }
        out
    }

    /// Like [`Client::read_until`], but `None` if the connection ends or
    /// fails first.
    pub fn try_read_until(&mut self, end: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while !out.ends_with(end) {
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        Some(out)
    }

    /// Sends `req` and asserts the reply is exactly `want`: those bytes,
    /// then nothing more (see [`Client::expect_nothing_more`]).
    pub fn expect(&mut self, req: &[u8], want: &[u8]) {
        self.expect_reply(req, want);
        self.expect_nothing_more(req);
    }

    /// Asserts the server sent nothing beyond what was read so far for
    /// `req`. Sends a no-op sentinel ([`Client::sentinel`] on a text
    /// connection, a NOOP packet on a binary one, told apart by `req`'s
    /// first byte) and requires the next bytes to be exactly its reply. A
    /// connection answers in order, so an extra byte queued for `req`
    /// arrives first; no timing is involved.
    pub fn expect_nothing_more(&mut self, req: &[u8]) {
        let (probe, reply) = if req.first() == Some(&0x80) {
            let probe = bin(0x0a, &[], &[], &[], 0, SENTINEL_OPAQUE);
            let mut reply = probe.clone();
            reply[0] = 0x81;
            (probe, reply)
        } else {
            self.sentinel.clone()
        };
        self.send(&probe);
        let mut got = vec![0; reply.len()];
        if let Err(e) = self.stream.read_exact(&mut got) {
            panic!("no reply to the sentinel after {:?}: {e}", String::from_utf8_lossy(req));
        }
        if got != reply {
            // Show what came before the sentinel's reply (bounded: the
            // sentinel's reply ends it, or the read timeout does).
            let mut extra = got;
            let mut buf = [0u8; 4096];
            while !extra.ends_with(&reply) {
                match self.stream.read(&mut buf) {
                    Ok(n) if n > 0 => extra.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let extra = extra.strip_suffix(&reply[..]).unwrap_or(&extra);
            panic!(
                "extra bytes after the reply to {:?}: {:?}",
                String::from_utf8_lossy(req),
                String::from_utf8_lossy(extra)
            );
        }
    }

    /// Sends `req` and asserts the reply is exactly `want` without looking
    /// past it: for a request after which the connection cannot answer a
    /// sentinel (it swallows the bytes that follow as a refused value).
    pub fn expect_reply(&mut self, req: &[u8], want: &[u8]) {
        self.send(req);
        let got = self.read_exact(want.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(want),
            "request {:?}",
            String::from_utf8_lossy(req)
        );
    }

    /// Sends `req` and asserts that the server answers exactly `want` and
    /// then closes the connection (bounded wait).
    pub fn expect_then_close(&mut self, req: &[u8], want: &[u8]) {
        self.send(req);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "connection not closed after {:?} ({e}); got {:?}",
                    String::from_utf8_lossy(req),
                    String::from_utf8_lossy(&got)
                ),
            }
        }
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want), "{:?}", String::from_utf8_lossy(req));
    }

    /// Runs (request, exact reply) pairs in order.
    pub fn replay(&mut self, conversation: &[(&[u8], &[u8])]) {
        for (req, want) in conversation {
            self.expect(req, want);
        }
    }

    /// Like [`Client::replay`], sending every request one byte at a time.
    pub fn replay_bytewise(&mut self, conversation: &[(&[u8], &[u8])]) {
        for (req, want) in conversation {
            for b in req.iter() {
                self.send(&[*b]);
            }
            let got = self.read_exact(want.len());
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(req));
            self.expect_nothing_more(req);
        }
    }

    /// True once the server has closed the connection (bounded wait).
    /// The server closes the connection (end of stream or a reset) within
    /// the read timeout; whatever arrives before that is skipped. False if
    /// the connection is still open at the timeout. A signal interrupting
    /// the read is retried; any other error fails the test, naming it.
    pub fn closed(&mut self) -> bool {
        use std::io::ErrorKind::*;
        let mut b = [0u8; 1024];
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe) => return true,
                Err(e) if e.kind() == Interrupted && Instant::now() < deadline => continue,
                Err(e) if matches!(e.kind(), WouldBlock | TimedOut | Interrupted) => return false,
                Err(e) => panic!("reading for the end of the connection: {e} ({:?})", e.kind()),
            }
        }
    }

    /// Nothing more arrives within `wait`.
    pub fn silent_for(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut b = [0u8; 64];
        let r = self.stream.read(&mut b);
        self.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut)
    }
}

/// A binary-protocol request packet.
pub fn bin(opcode: u8, extras: &[u8], key: &[u8], value: &[u8], cas: u64, opaque: u32) -> Vec<u8> {
    let mut v = vec![0x80, opcode];
    v.extend_from_slice(&(key.len() as u16).to_be_bytes());
    v.push(extras.len() as u8);
    v.push(0);
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
    v.extend_from_slice(&opaque.to_be_bytes());
    v.extend_from_slice(&cas.to_be_bytes());
    v.extend_from_slice(extras);
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

/// A binary-protocol response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinResponse {
    pub opcode: u8,
    pub status: u16,
    pub opaque: u32,
    pub cas: u64,
    pub extras: Vec<u8>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Client {
    /// Reads one binary response packet.
    pub fn read_bin(&mut self) -> BinResponse {
        let h = self.read_exact(24);
        assert_eq!(h[0], 0x81, "response magic");
        let keylen = u16::from_be_bytes([h[2], h[3]]) as usize;
        let extlen = h[4] as usize;
        let bodylen = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
        let body = self.read_exact(bodylen);
        BinResponse {
            opcode: h[1],
            status: u16::from_be_bytes([h[6], h[7]]),
            opaque: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
            cas: u64::from_be_bytes(h[16..24].try_into().unwrap()),
            extras: body[..extlen].to_vec(),
            key: body[extlen..extlen + keylen].to_vec(),
            value: body[extlen + keylen..].to_vec(),
        }
    }

    /// Sends one binary request and reads one response.
    pub fn bin_call(&mut self, packet: &[u8]) -> BinResponse {
        self.send(packet);
        self.read_bin()
    }
}

impl Server {
    /// The daemon's resident memory in bytes (`VmRSS`).
    pub fn rss(&self) -> usize {
        self.memory("VmRSS:")
    }

    /// The daemon's peak resident memory in bytes (`VmHWM`).
    pub fn peak_rss(&self) -> usize {
        self.memory("VmHWM:")
    }

    /// A kB figure of `/proc/PID/status`, in bytes.
    fn memory(&self, field: &str) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: usize = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kb * 1024
    }

    /// One `stats` counter as a number.
    pub fn stat(&self, name: &str) -> u64 {
        self.stats("")[name].parse().unwrap()
    }
}

/// A fresh, empty directory `ferrocache-{name}-{pid}` in the temp dir.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ferrocache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A value that proves its own integrity: derived from the index.
pub fn value_for(i: usize) -> Vec<u8> {
    (0..(i * 37) % 3000).map(|j| ((i * 31 + j * 7) % 251) as u8).collect()
}

/// Stores items `range` (`key:{i}`, flags = index, [`value_for`]), then
/// waits for the replies.
pub fn fill_items(c: &mut Client, range: std::ops::Range<usize>) {
    for i in range {
        let v = value_for(i);
        c.send(&[format!("set key:{i} {i} 0 {} noreply\r\n", v.len()).as_bytes(), &v, b"\r\n"].concat());
    }
    c.expect(b"version\r\n", b"VERSION 1.6.18\r\n");
}

/// Asserts items `range` of [`fill_items`] are all there, byte for byte,
/// with their flags.
pub fn check_items(c: &mut Client, range: std::ops::Range<usize>) {
    for i in range {
        let v = value_for(i);
        let want = [format!("VALUE key:{i} {i} {}\r\n", v.len()).as_bytes(), &v, b"\r\nEND\r\n"].concat();
        c.expect(format!("get key:{i}\r\n").as_bytes(), &want);
    }
}

/// Standard padded base64, written independently of the server's and of
/// the crate's.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = c.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= c.len() { char::from(A[(n >> (18 - 6 * i) & 63) as usize]) } else { '=' });
        }
    }
    out
}

/// A node list as `config set cluster` takes it: entries separated by
/// spaces.
pub fn node_list(nodes: &[ferrocache::discovery::Node]) -> String {
    nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

/// `config set cluster` with `text` as the data; STORED expected.
pub fn config_set(addr: SocketAddr, text: &str) {
    let mut c = Client::connect(addr);
    c.expect(format!("config set cluster 0 {}\r\n{text}\r\n", text.len()).as_bytes(), b"STORED\r\n");
}

/// `config get cluster` -> (version, node entries), the reply's framing
/// checked: its length, the body's line ends, `END`.
pub fn config_get(addr: SocketAddr) -> (u64, Vec<String>) {
    let mut c = Client::connect(addr);
    c.send(b"config get cluster\r\n");
    let reply = String::from_utf8(c.read_until(b"END\r\n")).unwrap();
    let mut lines = reply.split("\r\n");
    let head = lines.next().unwrap();
    let n: usize = head.strip_prefix("CONFIG cluster 0 ").unwrap_or_else(|| panic!("{reply:?}")).parse().unwrap();
    let body = &reply[head.len() + 2..head.len() + 2 + n];
    assert!(reply.ends_with("\n\r\nEND\r\n") && !body.contains('\r'), "{reply:?}");
    let mut b = body.lines();
    let version = b.next().unwrap().parse().unwrap();
    let nodes = b.next().unwrap_or("").split_whitespace().map(String::from).collect();
    (version, nodes)
}

impl Server {
    /// The metrics listener's `host:port`, from the line `ferrocache
    /// metrics on http://ADDR/metrics` (the next one on standard output).
    pub fn metrics_addr(&mut self) -> String {
        let line = self.stdout.next().unwrap().unwrap();
        let url = line.strip_prefix("ferrocache metrics on http://").unwrap_or_else(|| panic!("{line}"));
        url.strip_suffix("/metrics").unwrap_or_else(|| panic!("{line}")).to_string()
    }
}

/// Sends `request` to `addr` and reads the response (head and body) to the
/// connection's end.
pub fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}
