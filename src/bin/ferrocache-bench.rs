//! `ferrocache-bench`: a load generator for memcached-protocol servers.
//!
//! `--threads` threads, each one mio event loop driving `--conns`
//! non-blocking connections. Each connection keeps up to `--pipeline`
//! requests in flight: as replies come back it sends more, all that are
//! ready in one write. Requests are text or binary `get`/`set` in a
//! `--ratio` of sets to gets over `--keys` keys (uniform, gaussian or
//! sequential), with `--value-size` byte values. A run ends after
//! `--duration` seconds or `--requests` requests per connection; replies
//! still due get 5 s, and requests that get no reply for 10 s fail.
//!
//! Keys are `key:<id>`, ids 0 to `--keys` - 1, unless `--owner` names a
//! node of the `--ring` node list: then the keys are the first `--keys` ids
//! whose key that ring (as the clients compute it, `--ring-hash`) gives to
//! that node, so every request is one a cluster's client would send there.
//!
//! Latency is per request, recorded in an HDR histogram: from the moment
//! the request was written in the default closed loop, or, with `--rate`,
//! from the moment a fixed schedule meant to send it. In rate mode a slow
//! reply does not delay the clock: requests that fall due while the
//! pipeline is full wait, and their wait counts, so a server that stalls
//! cannot hide the stall (no coordinated omission).
//!
//! Every value a set writes is derived from its key and a version number;
//! every value a get reads must be a whole value some set could have
//! written for that key (`wrong` otherwise), and a get may miss only a key
//! that no set of this run had stored before the get was sent (`lost`
//! otherwise; `--allow-misses` accepts them where the server may evict).
//! `--no-verify` turns these checks off, for servers that store nothing.
//! The exit status is non-zero when anything was wrong, lost or failed.
//! Prints a summary and one `RESULT` line for scripts. Loopback or lab use
//! only: it sends as fast as it is told.

// Shared with ferrocache-floor, which uses all of it.
#[allow(dead_code)]
#[path = "shared/buffers.rs"]
mod buffers;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ferrocache::cluster::{Ring, Scheme};
use ferrocache::discovery::Node;
use ferrocache::num::push_u64;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use buffers::{Input, Output};

#[derive(Parser, Debug, Clone)]
#[command(name = "ferrocache-bench", about = "Load generator for memcached-protocol servers")]
struct Args {
    /// Server address
    #[arg(short = 's', long, default_value = "127.0.0.1:11211")]
    server: String,
    /// Threads, each an event loop
    #[arg(short = 't', long, default_value_t = 1)]
    threads: usize,
    /// Connections per thread
    #[arg(short = 'c', long, visible_alias = "connections", default_value_t = 4)]
    conns: usize,
    /// text or binary
    #[arg(long, default_value = "text")]
    protocol: String,
    /// Requests in flight per connection
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// set:get ratio, as memtier writes it
    #[arg(long, default_value = "1:10")]
    ratio: String,
    /// Number of distinct keys
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// uniform, gaussian or sequential
    #[arg(long, default_value = "uniform")]
    pattern: String,
    /// Value size in bytes (at least 16)
    #[arg(short = 'd', long, default_value_t = 32)]
    value_size: usize,
    /// Seconds to run (default 10 without --requests; with it, a bound)
    #[arg(long)]
    duration: Option<u64>,
    /// Requests per connection
    #[arg(long)]
    requests: Option<u64>,
    /// Total requests per second on a fixed schedule (0: closed loop)
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Store every key once (sequentially, pipelined) before measuring
    #[arg(long)]
    prefill: bool,
    /// Do not check values or misses (for servers that store nothing)
    #[arg(long)]
    no_verify: bool,
    /// Accept misses of keys this run stored (the server may evict)
    #[arg(long)]
    allow_misses: bool,
    /// A cluster's node list, `host:port,host:port..` as clients name the
    /// nodes (with --owner)
    #[arg(long)]
    ring: Option<String>,
    /// Use only keys that --ring gives to this node (`host:port`)
    #[arg(long, requires = "ring")]
    owner: Option<String>,
    /// The ring's hash: ketama, ketama_weighted or uhashring
    #[arg(long, default_value = "ketama")]
    ring_hash: String,
}

/// Smallest value: key id (8 bytes), length and version (4 each).
const MIN_VALUE: usize = 16;
/// Values are cut from a fixed random pattern at one of this many offsets.
const SHIFTS: usize = 251;
/// A reply line longer than this without its end is broken.
const MAX_REPLY_LINE: usize = 4096;
/// How long a finished run waits for replies still in flight.
const DRAIN: Duration = Duration::from_secs(5);
/// A thread whose requests get no reply for this long fails them all.
const STALL: Duration = Duration::from_secs(10);
/// A reply announcing a larger value is out of frame (bounds the buffer).
const MAX_VALUE: usize = 1 << 30;
/// In rate mode, the last stretch before a send that is waited for by
/// polling without blocking (epoll's timeout resolution).
const SPIN: Duration = Duration::from_millis(1);
/// Read size for replies (the buffer grows for larger values).
const READ_CHUNK: usize = 64 * 1024;
/// `--owner` gives up when the ring gives it fewer than one key in this
/// many.
const MAX_SKIP: u64 = 1000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The values sets write: `[key id: 8][length: 4][version: 4][pattern
/// slice]`, the
/// slice starting at an offset that the id and version pick. A value is
/// right for a key when it starts with the key's id and the rest is the
/// slice its version picks, so a value of another key, a torn mix of two
/// versions or stray bytes all fail, and checking costs a compare. The
/// pattern is a fixed function of the position, so values of any size
/// (another run's) check too, on a slower path.
struct Values {
    size: usize,
    /// The pattern's first bytes, enough for values of `size`.
    pattern: Vec<u8>,
}

fn pattern_byte(i: usize) -> u8 {
    let word = ((i / 8) as u64 ^ 0x5eed_f00d_cafe_d00d).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (word >> (8 * (i % 8))) as u8
}

fn shift(id: u64, version: u32) -> usize {
    let mix = (id ^ u64::from(version).rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((mix >> 32) % SHIFTS as u64) as usize
}

impl Values {
    fn new(size: usize) -> Values {
        let pattern = (0..size - MIN_VALUE + SHIFTS).map(pattern_byte).collect();
        Values { size, pattern }
    }

    fn slice(&self, id: u64, version: u32) -> &[u8] {
        let at = shift(id, version);
        &self.pattern[at..at + self.size - MIN_VALUE]
    }

    fn write(&self, id: u64, version: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(self.size as u32).to_le_bytes());
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(self.slice(id, version));
    }

    fn check(&self, id: u64, v: &[u8]) -> bool {
        if v.len() < MIN_VALUE || v[..8] != id.to_le_bytes() || v[8..12] != (v.len() as u32).to_le_bytes() {
            return false;
        }
        let version = u32::from_le_bytes(v[12..16].try_into().unwrap());
        if v.len() == self.size {
            return v[16..] == *self.slice(id, version);
        }
        let at = shift(id, version);
        v[16..].iter().enumerate().all(|(i, &b)| b == pattern_byte(at + i))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Set,
    Get,
}

/// A request sent and not yet answered.
struct Pending {
    kind: Kind,
    id: u64,
    /// Where its latency starts: when it was written, or in rate mode
    /// when the schedule meant to send it.
    since: Instant,
    /// A set of this key had been stored when the get was sent.
    was_stored: bool,
}

/// A reply as framed in the input, before it is checked.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Incomplete,
    /// The input cannot be a reply: the connection is closed.
    Broken,
    /// `used` bytes: a set's success, a get's miss, or a failure reply.
    Stored(usize),
    Miss(usize),
    Failed(usize),
    /// `used` bytes, the key (text only; binary echoes none) and value.
    Hit {
        used: usize,
        key: (usize, usize),
        value: (usize, usize),
    },
}

fn find_nl(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Frames one text reply to a request of `kind` at the start of `buf`.
fn text_reply(buf: &[u8], kind: Kind) -> Reply {
    let Some(nl) = find_nl(buf) else {
        return if buf.len() > MAX_REPLY_LINE { Reply::Broken } else { Reply::Incomplete };
    };
    let line = &buf[..=nl];
    match kind {
        Kind::Set if line == b"STORED\r\n" => Reply::Stored(nl + 1),
        Kind::Get if line == b"END\r\n" => Reply::Miss(nl + 1),
        Kind::Get if line.starts_with(b"VALUE ") => {
            let head = line[6..].strip_suffix(b"\r\n").unwrap_or(&line[6..]);
            let mut fields = head.split(|&b| b == b' ');
            let key_len = fields.next().map_or(0, <[u8]>::len);
            let len = fields.nth(1).and_then(|f| std::str::from_utf8(f).ok()).and_then(|f| f.parse::<usize>().ok());
            let Some(len) = len.filter(|&l| l <= MAX_VALUE) else { return Reply::Broken };
            let data = nl + 1;
            let end = data.saturating_add(len).saturating_add(7);
            if buf.len() < end {
                return Reply::Incomplete;
            }
            if &buf[data + len..end] != b"\r\nEND\r\n" {
                return Reply::Broken;
            }
            Reply::Hit { used: end, key: (6, 6 + key_len), value: (data, data + len) }
        }
        _ => Reply::Failed(nl + 1),
    }
}

/// Frames one binary reply at the start of `buf`.
fn binary_reply(buf: &[u8], kind: Kind) -> Reply {
    if buf.len() < 24 {
        return Reply::Incomplete;
    }
    if buf[0] != 0x81 {
        return Reply::Broken;
    }
    let keylen = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let extlen = buf[4] as usize;
    let status = u16::from_be_bytes([buf[6], buf[7]]);
    let body = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    if extlen + keylen > body || body > MAX_VALUE {
        return Reply::Broken;
    }
    let used = 24 + body;
    if buf.len() < used {
        return Reply::Incomplete;
    }
    match (kind, status) {
        (Kind::Set, 0) => Reply::Stored(used),
        (Kind::Get, 1) => Reply::Miss(used),
        (Kind::Get, 0) => Reply::Hit { used, key: (0, 0), value: (24 + extlen + keylen, used) },
        _ => Reply::Failed(used),
    }
}

fn push_key(out: &mut Vec<u8>, id: u64) {
    out.extend_from_slice(b"key:");
    push_u64(out, id);
}

fn bin_header(out: &mut Vec<u8>, opcode: u8, keylen: usize, extlen: u8, body: usize) {
    out.extend_from_slice(&[0x80, opcode]);
    out.extend_from_slice(&(keylen as u16).to_be_bytes());
    out.extend_from_slice(&[extlen, 0, 0, 0]);
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&[0; 12]);
}

/// Appends one request for key `id` (a set writes `version`).
fn encode(out: &mut Vec<u8>, binary: bool, kind: Kind, id: u64, version: u32, values: &Values) {
    let mut key = Vec::with_capacity(24);
    push_key(&mut key, id);
    match (kind, binary) {
        (Kind::Set, false) => {
            out.extend_from_slice(b"set ");
            out.extend_from_slice(&key);
            out.extend_from_slice(b" 0 0 ");
            push_u64(out, values.size as u64);
            out.extend_from_slice(b"\r\n");
            values.write(id, version, out);
            out.extend_from_slice(b"\r\n");
        }
        (Kind::Get, false) => {
            out.extend_from_slice(b"get ");
            out.extend_from_slice(&key);
            out.extend_from_slice(b"\r\n");
        }
        (Kind::Set, true) => {
            bin_header(out, 0x01, key.len(), 8, 8 + key.len() + values.size);
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&key);
            values.write(id, version, out);
        }
        (Kind::Get, true) => {
            bin_header(out, 0x00, key.len(), 0, key.len());
            out.extend_from_slice(&key);
        }
    }
}

/// What a run is: the arguments, resolved.
struct Plan {
    addr: SocketAddr,
    threads: usize,
    conns: usize,
    binary: bool,
    pipeline: usize,
    sets: u64,
    gets: u64,
    keys: u64,
    /// The key id of each key index (`--owner`); None: the index itself.
    ids: Option<Vec<u64>>,
    pattern: Pattern,
    duration: Option<Duration>,
    requests: Option<u64>,
    /// Time between two sends of one connection in rate mode.
    interval: Option<Duration>,
    verify: bool,
    values: Values,
    /// One bit per key id: a set of it was stored.
    stored: Vec<AtomicU64>,
}

impl Plan {
    /// The id of the key at `index` (0 to `keys` - 1).
    fn id(&self, index: u64) -> u64 {
        self.ids.as_ref().map_or(index, |ids| ids[index as usize])
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pattern {
    Uniform,
    Gaussian,
    Sequential,
}

/// What one thread counted.
struct Tally {
    ops: u64,
    gets: u64,
    hits: u64,
    wrong: u64,
    lost: u64,
    errors: u64,
    /// Latency in nanoseconds.
    hist: Histogram<u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            ops: 0,
            gets: 0,
            hits: 0,
            wrong: 0,
            lost: 0,
            errors: 0,
            hist: Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("histogram bounds"),
        }
    }

    fn merge(&mut self, o: Tally) {
        self.ops += o.ops;
        self.gets += o.gets;
        self.hits += o.hits;
        self.wrong += o.wrong;
        self.lost += o.lost;
        self.errors += o.errors;
        self.hist.add(o.hist).expect("same histogram bounds");
    }
}

/// One connection of a thread.
struct Conn {
    sock: TcpStream,
    open: bool,
    input: Input,
    out: Output,
    pending: VecDeque<Pending>,
    issued: u64,
    /// Rate mode: when the next request is due.
    due: Instant,
    seq: u64,
    rng: Rng,
}

impl Conn {
    /// Whether this connection may send another request now.
    fn may_send(&self, p: &Plan, now: Instant, stopping: bool) -> bool {
        self.open
            && !stopping
            && self.pending.len() < p.pipeline
            && p.requests.is_none_or(|r| self.issued < r)
            && (p.interval.is_none() || self.due <= now)
    }

    fn next_key(&mut self, p: &Plan) -> u64 {
        match p.pattern {
            Pattern::Sequential => {
                let id = self.seq;
                self.seq = (self.seq + 1) % p.keys;
                id
            }
            Pattern::Gaussian => {
                let r = &mut self.rng;
                let z = (-2.0 * r.unit().max(1e-12).ln()).sqrt() * (std::f64::consts::TAU * r.unit()).cos();
                ((p.keys as f64 / 2.0 + z * p.keys as f64 / 6.0).max(0.0) as u64).min(p.keys - 1)
            }
            Pattern::Uniform => self.rng.next() % p.keys,
        }
    }

    /// Queues every request that may go now; `version` numbers sets.
    fn issue(&mut self, p: &Plan, now: Instant, stopping: bool, version: &mut u32) {
        while self.may_send(p, now, stopping) {
            let id = p.id(self.next_key(p));
            let kind = if self.rng.next() % (p.sets + p.gets) < p.sets { Kind::Set } else { Kind::Get };
            *version = version.wrapping_add(1);
            encode(&mut self.out.buf, p.binary, kind, id, *version, &p.values);
            let since = match p.interval {
                Some(step) => {
                    let due = self.due;
                    self.due += step;
                    due
                }
                None => now,
            };
            let was_stored = kind == Kind::Get && is_stored(&p.stored, id);
            self.pending.push_back(Pending { kind, id, since, was_stored });
            self.issued += 1;
        }
    }

    /// Writes queued requests until done or WouldBlock.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush(&mut self.sock)
    }

    /// Reads until the socket is empty, then takes every complete reply.
    fn receive(&mut self, p: &Plan, t: &mut Tally) -> io::Result<()> {
        loop {
            let room = self.input.room();
            let space = room.len();
            match self.sock.read(room) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.input.commit(n);
                    self.take_replies(p, t)?;
                    if n < space {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn take_replies(&mut self, p: &Plan, t: &mut Tally) -> io::Result<()> {
        let now = Instant::now();
        while let Some(req) = self.pending.front() {
            let buf = self.input.bytes();
            let reply = if p.binary { binary_reply(buf, req.kind) } else { text_reply(buf, req.kind) };
            let used = match reply {
                Reply::Incomplete => break,
                Reply::Broken => return Err(io::Error::new(io::ErrorKind::InvalidData, "reply out of frame")),
                Reply::Stored(used) => {
                    mark_stored(&p.stored, req.id);
                    used
                }
                Reply::Miss(used) => {
                    if p.verify && req.was_stored {
                        t.lost += 1;
                    }
                    used
                }
                Reply::Failed(used) => {
                    t.errors += 1;
                    used
                }
                Reply::Hit { used, key, value } => {
                    t.hits += 1;
                    if p.verify {
                        let mut want = Vec::with_capacity(24);
                        push_key(&mut want, req.id);
                        let key_ok = p.binary || buf[key.0..key.1] == want[..];
                        if !key_ok || !p.values.check(req.id, &buf[value.0..value.1]) {
                            t.wrong += 1;
                        }
                    }
                    used
                }
            };
            if req.kind == Kind::Get {
                t.gets += 1;
            }
            t.ops += 1;
            let nanos = now.saturating_duration_since(req.since).as_nanos();
            let _ = t.hist.record(u64::try_from(nanos).unwrap_or(u64::MAX).max(1));
            self.input.take(used);
            self.pending.pop_front();
        }
        if self.pending.is_empty() && self.input.len() > 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bytes nothing asked for"));
        }
        Ok(())
    }

    /// Counts what was in flight as failed and stops using the connection.
    fn fail(&mut self, t: &mut Tally) {
        if self.open {
            t.errors += 1 + self.pending.len() as u64;
            self.pending.clear();
            self.open = false;
        }
    }
}

fn is_stored(bits: &[AtomicU64], id: u64) -> bool {
    bits[(id / 64) as usize].load(Ordering::Relaxed) & (1 << (id % 64)) != 0
}

fn mark_stored(bits: &[AtomicU64], id: u64) {
    bits[(id / 64) as usize].fetch_or(1 << (id % 64), Ordering::Relaxed);
}

fn connect(p: &Plan) -> io::Result<TcpStream> {
    let s = std::net::TcpStream::connect(p.addr)?;
    s.set_nodelay(true)?;
    s.set_nonblocking(true)?;
    Ok(TcpStream::from_std(s))
}

/// One thread's event loop over its connections.
fn drive(p: &Plan, index: usize, start: Instant) -> io::Result<Tally> {
    let mut poll = Poll::new()?;
    let mut t = Tally::new();
    let mut conns = Vec::with_capacity(p.conns);
    let total = (p.threads * p.conns) as u64;
    for c in 0..p.conns {
        let mut sock = connect(p)?;
        poll.registry().register(&mut sock, Token(c), Interest::READABLE | Interest::WRITABLE)?;
        let n = (index * p.conns + c) as u64;
        // Rate mode: connections are spread evenly over one interval.
        let offset = p.interval.map_or(Duration::ZERO, |step| step.mul_f64(n as f64 / total as f64));
        conns.push(Conn {
            sock,
            open: true,
            input: Input::new(READ_CHUNK),
            out: Output::default(),
            pending: VecDeque::with_capacity(p.pipeline),
            issued: 0,
            due: start + offset,
            seq: n * p.keys / total,
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ ((n + 1) * 0x2545_f491_4f6c_dd1d)),
        });
    }
    // Versions differ between threads: the thread's number in the top bits.
    let mut version = (index as u32) << 24;
    let deadline = p.duration.map(|d| start + d);
    let mut events = Events::with_capacity(1024);
    let mut stop_at: Option<Instant> = None;
    let (mut answered, mut progress_at) = (0, start);
    loop {
        let now = Instant::now();
        if t.ops != answered {
            (answered, progress_at) = (t.ops, now);
        }
        if stop_at.is_none() && deadline.is_some_and(|d| now >= d) {
            stop_at = Some(now);
        }
        let stopping = stop_at.is_some();
        for c in conns.iter_mut().filter(|c| c.open) {
            c.issue(p, now, stopping, &mut version);
            if c.flush().is_err() {
                c.fail(&mut t);
            }
        }
        let busy = conns.iter().any(|c| c.open && !c.pending.is_empty());
        let more = !stopping && conns.iter().any(|c| c.open && p.requests.is_none_or(|r| c.issued < r));
        if !busy && !more {
            break;
        }
        let stalled = busy && now >= progress_at + STALL;
        if stalled || stop_at.is_some_and(|s| now >= s + DRAIN) {
            for c in conns.iter_mut() {
                c.fail(&mut t);
            }
            break;
        }
        // Wake for the next scheduled send, the deadline, the drain's end
        // or the stall bound, whichever is first.
        let mut wake = stop_at.map(|s| s + DRAIN).or(deadline);
        if busy {
            wake = Some(wake.map_or(progress_at + STALL, |w| w.min(progress_at + STALL)));
        }
        if p.interval.is_some() && !stopping {
            let next = conns.iter().filter(|c| c.open && c.pending.len() < p.pipeline).map(|c| c.due).min();
            wake = match (wake, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        // epoll's timeout is in whole milliseconds, rounded up: in rate
        // mode the loop sleeps a millisecond less than the next send is
        // due and polls without blocking for the rest, so sends are not
        // late by the rounding.
        let timeout = wake.map(|w| w.saturating_duration_since(now)).map(|d| match p.interval {
            Some(_) => d.saturating_sub(SPIN),
            None => d,
        });
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if !c.open {
                continue;
            }
            if ev.is_readable() && c.receive(p, &mut t).is_err() {
                c.fail(&mut t);
            }
            if ev.is_writable() && c.flush().is_err() {
                c.fail(&mut t);
            }
        }
    }
    Ok(t)
}

/// Runs the plan on its threads; returns the merged tally and the seconds.
fn run(p: &Arc<Plan>) -> (Tally, f64) {
    let start = Instant::now();
    let handles: Vec<_> = (0..p.threads)
        .map(|i| {
            let p = p.clone();
            std::thread::spawn(move || drive(&p, i, start))
        })
        .collect();
    let mut total = Tally::new();
    for h in handles {
        match h.join().expect("generator thread panicked") {
            Ok(t) => total.merge(t),
            Err(e) => {
                eprintln!("ferrocache-bench: {}: {e}", p.addr);
                std::process::exit(2);
            }
        }
    }
    (total, start.elapsed().as_secs_f64())
}

fn fail(msg: &str) -> ! {
    eprintln!("ferrocache-bench: {msg}");
    std::process::exit(64);
}

/// A `host:port` node of `--ring` or `--owner`.
fn ring_node(s: &str) -> Node {
    let Some((host, port)) = s.trim().rsplit_once(':') else { fail(&format!("{s:?}: a ring node is host:port")) };
    let port = port.parse().unwrap_or_else(|_| fail(&format!("{s:?}: bad port")));
    Node { host: host.to_string(), ip: host.to_string(), port }
}

/// The first `count` key ids whose key `ring` gives to node `owner`.
fn owned_ids(ring: &Ring, owner: usize, count: u64) -> Vec<u64> {
    let mut ids = Vec::with_capacity(count as usize);
    let mut key = Vec::with_capacity(24);
    let limit = count.saturating_mul(MAX_SKIP);
    let mut id = 0;
    while (ids.len() as u64) < count && id < limit {
        key.clear();
        push_key(&mut key, id);
        if ring.owner(&key) == Some(owner) {
            ids.push(id);
        }
        id += 1;
    }
    if (ids.len() as u64) < count {
        fail(&format!("--owner gets only {} of the first {limit} keys", ids.len()));
    }
    ids
}

/// `--owner`'s key ids, or None for all keys.
fn key_ids(a: &Args) -> Option<Vec<u64>> {
    let (Some(ring), Some(owner)) = (&a.ring, &a.owner) else { return None };
    let scheme: Scheme = a.ring_hash.parse().unwrap_or_else(|e: String| fail(&e));
    let nodes: Vec<Node> = ring.split([',', ' ']).filter(|s| !s.is_empty()).map(ring_node).collect();
    let me = ring_node(owner);
    let Some(index) = nodes.iter().position(|n| *n == me) else { fail(&format!("--owner {owner} is not in --ring")) };
    Some(owned_ids(&Ring::from_nodes(scheme, &nodes), index, a.keys))
}

fn plan(a: &Args) -> Plan {
    if a.value_size < MIN_VALUE {
        fail("--value-size must be at least 16");
    }
    if a.threads == 0 || a.conns == 0 || a.pipeline == 0 || a.keys == 0 {
        fail("--threads, --conns, --pipeline and --keys must be at least 1");
    }
    let binary = match a.protocol.as_str() {
        "text" => false,
        "binary" => true,
        _ => fail("--protocol text|binary"),
    };
    let pattern = match a.pattern.as_str() {
        "uniform" => Pattern::Uniform,
        "gaussian" => Pattern::Gaussian,
        "sequential" => Pattern::Sequential,
        _ => fail("--pattern uniform|gaussian|sequential"),
    };
    let Some((sets, gets)) =
        a.ratio.split_once(':').and_then(|(s, g)| Some((s.parse::<u64>().ok()?, g.parse::<u64>().ok()?)))
    else {
        fail("--ratio SETS:GETS")
    };
    if sets + gets == 0 {
        fail("--ratio needs sets or gets");
    }
    let addr = a
        .server
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .unwrap_or_else(|| fail(&format!("cannot resolve {}", a.server)));
    let conns_total = (a.threads * a.conns) as f64;
    let interval = (a.rate > 0).then(|| Duration::from_secs_f64(conns_total / a.rate as f64));
    let ids = key_ids(a);
    let id_end = ids.as_ref().and_then(|ids| ids.last()).map_or(a.keys, |last| last + 1);
    let duration = match (a.duration, a.requests) {
        (Some(d), _) => Some(Duration::from_secs(d)),
        (None, Some(_)) => None,
        (None, None) => Some(Duration::from_secs(10)),
    };
    Plan {
        addr,
        threads: a.threads,
        conns: a.conns,
        binary,
        pipeline: a.pipeline,
        sets,
        gets,
        keys: a.keys,
        ids,
        pattern,
        duration,
        requests: a.requests,
        interval,
        verify: !a.no_verify,
        values: Values::new(a.value_size),
        stored: (0..id_end.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
    }
}

fn main() {
    let a = Args::parse();
    let mut p = plan(&a);
    if a.prefill {
        // One connection stores every key once, in order, 64 in flight.
        let measured = (p.threads, p.conns, p.pipeline, p.sets, p.gets, p.pattern, p.duration, p.requests, p.interval);
        (p.threads, p.conns, p.pipeline, p.sets, p.gets) = (1, 1, 64, 1, 0);
        (p.pattern, p.duration, p.requests, p.interval) = (Pattern::Sequential, None, Some(p.keys), None);
        let shared = Arc::new(p);
        let (t, secs) = run(&shared);
        if t.errors > 0 {
            fail(&format!("prefill: {} of {} sets failed", t.errors, t.ops));
        }
        eprintln!("prefill: {} keys in {secs:.2} s", t.ops);
        p = Arc::into_inner(shared).expect("prefill threads are done");
        (p.threads, p.conns, p.pipeline, p.sets, p.gets) = (measured.0, measured.1, measured.2, measured.3, measured.4);
        (p.pattern, p.duration, p.requests, p.interval) = (measured.5, measured.6, measured.7, measured.8);
    }
    let p = Arc::new(p);
    let (t, secs) = run(&p);
    let hit_ratio = t.hits as f64 / t.gets.max(1) as f64;
    let us = |q: f64| t.hist.value_at_quantile(q) / 1000;
    let mode = match a.rate {
        0 => "closed loop".to_string(),
        r => format!("rate {r}/s"),
    };
    let owned = match (&a.owner, &a.ring) {
        (Some(o), Some(r)) => format!(" owned by {o} on the {} ring of {r}", a.ring_hash),
        _ => String::new(),
    };
    println!(
        "{} {} conns x pipeline {}, {mode}, ratio {}, {} keys{owned} ({}), {} B values: {:.0} ops/s, get hit ratio {:.3}, \
latency us p50 {} p90 {} p99 {} p99.9 {} max {}, wrong values {}, lost keys {}, errors {}",
        a.protocol,
        a.threads * a.conns,
        a.pipeline,
        a.ratio,
        a.keys,
        a.pattern,
        a.value_size,
        t.ops as f64 / secs,
        hit_ratio,
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        t.hist.max() / 1000,
        t.wrong,
        t.lost,
        t.errors,
    );
    println!(
        "RESULT ops={} secs={secs:.3} ops_per_sec={:.0} hit_ratio={hit_ratio:.4} p50_us={} p90_us={} p99_us={} \
p999_us={} wrong={} errors={} lost={}",
        t.ops,
        t.ops as f64 / secs,
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        t.wrong,
        t.errors,
        t.lost,
    );
    if t.wrong > 0 || t.errors > 0 || (t.lost > 0 && !a.allow_misses) {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_check_catches_wrong_torn_and_foreign_values() {
        let values = Values::new(64);
        let mut v = Vec::new();
        values.write(42, 7, &mut v);
        assert_eq!(v.len(), 64);
        assert!(values.check(42, &v));
        assert!(!values.check(43, &v), "another key's value");
        let mut torn = v.clone();
        torn[20] ^= 1;
        assert!(!values.check(42, &torn));
        assert!(!values.check(42, &v[..v.len() - 1]), "a value cut short");
        let mut longer = Vec::new();
        Values::new(100).write(42, 7, &mut longer);
        assert!(values.check(42, &longer), "a value another run of another size wrote");
        longer[99] ^= 1;
        assert!(!values.check(42, &longer));
        assert!(!values.check(42, &[b'x'; 64]), "a value no set wrote");
        // A value of another version whose slice differs, spliced in.
        let other = (8..200).find(|&ver| values.slice(42, ver) != values.slice(42, 7)).unwrap();
        let mut second = Vec::new();
        values.write(42, other, &mut second);
        assert!(values.check(42, &second));
        let mut spliced = v[..40].to_vec();
        spliced.extend_from_slice(&second[40..]);
        assert!(!values.check(42, &spliced), "a torn mix of two versions");
    }

    /// Frames `replies` at every split point: the first piece alone must be
    /// incomplete or exactly the replies it holds.
    fn frame_all(buf: &[u8], kinds: &[Kind], binary: bool) -> Vec<Reply> {
        let mut out = Vec::new();
        let mut at = 0;
        for &k in kinds {
            let r = if binary { binary_reply(&buf[at..], k) } else { text_reply(&buf[at..], k) };
            let used = match r {
                Reply::Stored(u) | Reply::Miss(u) | Reply::Failed(u) | Reply::Hit { used: u, .. } => u,
                Reply::Incomplete | Reply::Broken => {
                    out.push(r);
                    return out;
                }
            };
            at += used;
            out.push(r);
        }
        out
    }

    #[test]
    fn text_replies_frame_at_every_split() {
        let values = Values::new(20);
        let mut v = Vec::new();
        values.write(5, 1, &mut v);
        let mut buf = b"STORED\r\nVALUE key:5 0 20\r\n".to_vec();
        buf.extend_from_slice(&v);
        buf.extend_from_slice(b"\r\nEND\r\nEND\r\nSERVER_ERROR out of memory\r\n");
        let kinds = [Kind::Set, Kind::Get, Kind::Get, Kind::Set];
        let whole = frame_all(&buf, &kinds, false);
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[0], Reply::Stored(8));
        let Reply::Hit { key, value, .. } = whole[1] else { panic!("{:?}", whole[1]) };
        let hit_at = 8;
        assert_eq!(&buf[hit_at + key.0..hit_at + key.1], b"key:5");
        assert!(values.check(5, &buf[hit_at + value.0..hit_at + value.1]));
        assert_eq!(whole[2], Reply::Miss(5));
        assert!(matches!(whole[3], Reply::Failed(_)));
        for cut in 0..buf.len() {
            let part = frame_all(&buf[..cut], &kinds, false);
            let (last, done) = part.split_last().unwrap();
            assert_eq!(done, &whole[..done.len()], "cut {cut}");
            if done.len() < kinds.len() {
                assert_eq!(*last, Reply::Incomplete, "cut {cut}");
            }
        }
        assert_eq!(text_reply(b"VALUE k 0 2\r\nabXXXXXXX", Kind::Get), Reply::Broken);
        assert_eq!(text_reply(&[b'x'; MAX_REPLY_LINE + 1], Kind::Get), Reply::Broken);
        assert_eq!(text_reply(b"VALUE k 0 99999999999\r\n", Kind::Get), Reply::Broken, "a value past the bound");
    }

    #[test]
    fn binary_replies_frame_at_every_split() {
        let mut buf = Vec::new();
        let header = |buf: &mut Vec<u8>, op: u8, extlen: u8, status: u16, body: &[u8]| {
            buf.extend_from_slice(&[0x81, op, 0, 0, extlen, 0]);
            buf.extend_from_slice(&status.to_be_bytes());
            buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
            buf.extend_from_slice(&[0; 12]);
            buf.extend_from_slice(body);
        };
        header(&mut buf, 0x01, 0, 0, b"");
        header(&mut buf, 0x00, 4, 0, b"\0\0\0\0value");
        header(&mut buf, 0x00, 0, 1, b"Not found");
        let kinds = [Kind::Set, Kind::Get, Kind::Get];
        let whole = frame_all(&buf, &kinds, true);
        assert_eq!(whole[0], Reply::Stored(24));
        assert_eq!(whole[1], Reply::Hit { used: 33, key: (0, 0), value: (28, 33) });
        assert_eq!(whole[2], Reply::Miss(33));
        for cut in 0..buf.len() {
            let part = frame_all(&buf[..cut], &kinds, true);
            let (last, done) = part.split_last().unwrap();
            assert_eq!(done, &whole[..done.len()], "cut {cut}");
            if done.len() < kinds.len() {
                assert_eq!(*last, Reply::Incomplete, "cut {cut}");
            }
        }
    }

    #[test]
    fn requests_encode_as_the_protocols_write_them() {
        let values = Values::new(16);
        let mut out = Vec::new();
        encode(&mut out, false, Kind::Get, 12, 0, &values);
        assert_eq!(out, b"get key:12\r\n");
        out.clear();
        encode(&mut out, false, Kind::Set, 3, 9, &values);
        assert!(out.starts_with(b"set key:3 0 0 16\r\n\x03\0\0\0\0\0\0\0\x10\0\0\0\x09\0\0\0"));
        assert!(out.ends_with(b"\r\n") && out.len() == 18 + 16 + 2);
        out.clear();
        encode(&mut out, true, Kind::Set, 3, 9, &values);
        assert_eq!(out.len(), 24 + 8 + 5 + 16);
        assert_eq!(&out[..2], &[0x80, 0x01]);
        assert_eq!(&out[8..12], &(8u32 + 5 + 16).to_be_bytes());
    }

    #[test]
    fn owned_ids_are_the_keys_the_ring_gives_the_owner() {
        let nodes: Vec<Node> = ["127.0.0.11:7001", "127.0.0.12:7002", "127.0.0.13:7003"].map(ring_node).to_vec();
        let ring = Ring::from_nodes(Scheme::Ketama, &nodes);
        let ids = owned_ids(&ring, 1, 500);
        assert_eq!(ids.len(), 500);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let mut key = Vec::new();
        for id in 0..=*ids.last().unwrap() {
            key.clear();
            push_key(&mut key, id);
            // every key of node 1 up to the last id is taken, no other
            assert_eq!(ring.owner(&key) == Some(1), ids.binary_search(&id).is_ok(), "key:{id}");
        }
        // about a third of the keys each: the ring spreads them
        assert!(*ids.last().unwrap() > 900 && *ids.last().unwrap() < 3000, "{}", ids.last().unwrap());
    }

    #[test]
    fn stored_bits_are_per_key() {
        let bits: Vec<AtomicU64> = (0..2).map(|_| AtomicU64::new(0)).collect();
        mark_stored(&bits, 70);
        assert!(is_stored(&bits, 70));
        assert!(!is_stored(&bits, 6) && !is_stored(&bits, 71) && !is_stored(&bits, 69));
    }
}
