//! Warm join: a node added to a running cluster is served only once the
//! keys it will own have been copied to it.
//!
//! When a node is added to the configured list (cluster file, `config set
//! cluster`) or comes back after the health checks took it out, and some
//! other node is served, the endpoint keeps it *joining*: configured and
//! checked, but not in `config get cluster`. The warm thread ([`run`])
//! then copies, from every served node, the keys whose owner on the future
//! ring (served + joining nodes) is a joining node, and with `--replicas 1`
//! those whose successor is; when the copy ends, or `--warm-timeout-ms`
//! after the node began joining, the node is published (a version bump).
//!
//! The copy speaks only memcached's own commands to the nodes, so they
//! need nothing new: `lru_crawler metadump all` lists a source's keys,
//! `mg <key> v f t u` reads each one, `ms <key> <len> F<flags> T<ttl> q`
//! writes it to the joining node, in pipelined batches paced to
//! `--warm-rate` items/s. A key is copied only from its owner on the
//! current ring, never from a node holding a stale or extra copy.
//!
//! The thread never holds the [`Discovery`] lock across network I/O: it
//! takes a `Plan` (a copy of the lists) under the lock, works without
//! it, and takes it again for a moment per batch to report progress and
//! to check that the plan still holds. Any change of the served or joining
//! nodes makes the plan stale: the copy starts again against the new lists
//! (copies are idempotent), so the nodes joining together are filled for
//! the ring that will be published.
//!
//! The parsers here are pure functions over bytes (no I/O).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::{ClusterConfig, Ring, Scheme};
use crate::num::{parse_signed, parse_unsigned};
use crate::protocol::base64;
use crate::MAX_KEY_LEN;

use super::{unix_now, Discovery, Node, State};

/// The warm-join settings (from `--cluster-hash`, `--replicas`,
/// `--warm-rate`, `--warm-timeout-ms`).
#[derive(Debug, Clone)]
pub struct WarmConfig {
    /// The ring the clients use.
    pub hash: Scheme,
    /// With 1, a joining node also gets the keys it will hold as a
    /// successor.
    pub replicas: u8,
    /// Keys read and copied per second, all nodes together; 0: no limit.
    pub rate: u64,
    /// A joining node is served after this long, copied or not; zero
    /// turns warm join off (new nodes are served at once).
    pub timeout: Duration,
    /// Whether a warm thread runs ([`run`]); without one (a node that
    /// serves no list at start) nodes are served at once, as before.
    pub copier: bool,
    /// Largest value copied (the endpoint's own `-I`): a larger one is
    /// skipped without being held in memory.
    pub max_value: usize,
}

impl From<&ClusterConfig> for WarmConfig {
    /// The settings, with no warm thread (the server sets `copier` when
    /// it starts one).
    fn from(c: &ClusterConfig) -> WarmConfig {
        WarmConfig {
            hash: c.hash,
            replicas: c.replicas,
            rate: c.warm_rate,
            timeout: c.warm_timeout,
            copier: false,
            max_value: DEFAULT_MAX_VALUE,
        }
    }
}

impl Default for WarmConfig {
    fn default() -> Self {
        WarmConfig::from(&ClusterConfig::default())
    }
}

/// A node on its way into the served list, with the progress of its copy
/// (counted from the start of the current attempt).
#[derive(Debug, Clone)]
pub(super) struct Join {
    pub(super) id: u64,
    pub(super) since: Instant,
    /// Items stored on the node.
    pub(super) copied: u64,
    /// Items found for it so far (final once every source is listed).
    pub(super) total: u64,
    /// Value bytes stored on the node.
    pub(super) bytes: u64,
}

/// Most keys in one pipelined batch.
const BATCH_KEYS: usize = 64;
/// A batch ends once its items (metadump sizes) add up to this much.
const BATCH_BYTES: u64 = 4 << 20;
/// Most memory the keys listed for one pass over a source may take.
const LIST_BYTES: usize = 32 << 20;
/// Longest metadump or reply header line accepted.
const MAX_LINE: usize = 4096;
/// Largest value a reply may announce (memcached's largest `-I`): past
/// it, the source is not speaking the protocol.
const MAX_VALUE: usize = 1 << 30;
/// The copy's value limit without `-I`: memcached's default item size.
pub const DEFAULT_MAX_VALUE: usize = 1 << 20;
/// Beyond this many seconds memcached reads an expiry as a unix time.
const RELATIVE_EXPIRY_MAX: i64 = 30 * 24 * 3600;

// ---------------------------------------------------------------- parsers

/// What a parser made of the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A whole element and the bytes it took.
    Done(T, usize),
    /// More bytes are needed.
    Incomplete,
    /// Not what the protocol sends; the stream cannot be followed.
    Invalid(String),
}

/// One line of `lru_crawler metadump`.
#[derive(Debug, PartialEq, Eq)]
pub enum DumpLine {
    /// `key=<uri-encoded> ... size=<n> ...`: the key, decoded, and the
    /// item's size.
    Item { key: Vec<u8>, size: u64 },
    /// `END`: the dump is complete.
    End,
}

/// The first line of `buf`, up to its `\n`.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, String> {
    match buf.iter().take(MAX_LINE + 1).position(|&b| b == b'\n') {
        Some(nl) => Ok(Some((buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]), nl + 1))),
        None if buf.len() > MAX_LINE => Err(format!("a line longer than {MAX_LINE} bytes")),
        None => Ok(None),
    }
}

/// The first line, or the parser's answer when there is none yet.
fn whole_line<T>(buf: &[u8]) -> Result<(&[u8], usize), Parsed<T>> {
    match line(buf) {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(Parsed::Incomplete),
        Err(e) => Err(Parsed::Invalid(e)),
    }
}

fn shown(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned()
}

/// Parses one metadump line (memcached's format: `key=<uri-encoded>
/// exp=<unix or -1> la=<unix> cas=<n> fetch=<yes|no> cls=<n> size=<n>`,
/// unknown fields ignored; `END` last). An error line (`CLIENT_ERROR lru
/// crawler disabled`, `BUSY ...`) is invalid.
pub fn parse_dump_line(buf: &[u8]) -> Parsed<DumpLine> {
    let (l, used) = match whole_line(buf) {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    if l == b"END" {
        return Parsed::Done(DumpLine::End, used);
    }
    let (mut key, mut size) = (None, 0);
    for tok in l.split(|&b| b == b' ') {
        if let Some(k) = tok.strip_prefix(b"key=") {
            key = uri_decode(k);
        } else if let Some(n) = tok.strip_prefix(b"size=") {
            size = parse_unsigned(n).unwrap_or(0);
        }
    }
    match key {
        Some(key) if !key.is_empty() && key.len() <= MAX_KEY_LEN => Parsed::Done(DumpLine::Item { key, size }, used),
        _ => Parsed::Invalid(format!("not a metadump line: {}", shown(l))),
    }
}

/// Decodes `%XX` escapes (either case); None for a broken escape.
pub fn uri_decode(s: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hi = hex(*s.get(i + 1)?)?;
            let lo = hex(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// An item read with `mg <key> v f t`.
#[derive(Debug, PartialEq, Eq)]
pub struct Value {
    pub flags: u32,
    /// Remaining seconds; -1 for none.
    pub ttl: i64,
    pub data: Vec<u8>,
}

/// The answer to one `mg`.
#[derive(Debug, PartialEq, Eq)]
pub enum GetReply {
    Hit(Value),
    /// `EN`: gone since it was listed.
    Miss,
    /// An error line for this key (`SERVER_ERROR ...`): the key is skipped.
    Failed(String),
    /// A value of this many bytes, over the copy's limit: only the header
    /// line was taken; the value and its `\r\n` follow, to be skipped.
    TooLarge(usize),
}

/// Parses the reply to `mg <key> v f t`: `VA <len> f<flags> t<ttl>\r\n
/// <data>\r\n`, `EN\r\n`, or an error line. A value over `max` bytes is
/// [`GetReply::TooLarge`], whatever follows its line.
pub fn parse_get_reply(buf: &[u8], max: usize) -> Parsed<GetReply> {
    let (l, used) = match whole_line(buf) {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    if l == b"EN" {
        return Parsed::Done(GetReply::Miss, used);
    }
    let Some(rest) = l.strip_prefix(b"VA ") else {
        if [&b"SERVER_ERROR"[..], b"CLIENT_ERROR", b"ERROR"].iter().any(|p| l.starts_with(p)) {
            return Parsed::Done(GetReply::Failed(shown(l)), used);
        }
        return Parsed::Invalid(format!("unexpected reply to mg: {}", shown(l)));
    };
    let mut toks = rest.split(|&b| b == b' ').filter(|t| !t.is_empty());
    let Some(len) = toks.next().and_then(parse_unsigned).and_then(|n| usize::try_from(n).ok()) else {
        return Parsed::Invalid(format!("bad VA line: {}", shown(l)));
    };
    let (mut flags, mut ttl) = (0, -1);
    for t in toks {
        match t[0] {
            b'f' => match parse_unsigned(&t[1..]).and_then(|f| u32::try_from(f).ok()) {
                Some(f) => flags = f,
                None => return Parsed::Invalid(format!("bad flags in {}", shown(l))),
            },
            b't' => match parse_signed(&t[1..]) {
                Some(v) => ttl = v,
                None => return Parsed::Invalid(format!("bad ttl in {}", shown(l))),
            },
            _ => {}
        }
    }
    if len > MAX_VALUE {
        return Parsed::Invalid(format!("a value of {len} bytes"));
    }
    if len > max {
        return Parsed::Done(GetReply::TooLarge(len), used);
    }
    if buf.len() < used + len + 2 {
        return Parsed::Incomplete;
    }
    if &buf[used + len..used + len + 2] != b"\r\n" {
        return Parsed::Invalid("a value not ended by \\r\\n".into());
    }
    Parsed::Done(GetReply::Hit(Value { flags, ttl, data: buf[used..used + len].to_vec() }), used + len + 2)
}

/// The `\r\n` after a value.
pub fn parse_value_end(buf: &[u8]) -> Parsed<()> {
    match buf.get(..2) {
        None if b"\r\n".starts_with(buf) => Parsed::Incomplete,
        Some(b"\r\n") => Parsed::Done((), 2),
        _ => Parsed::Invalid("a value not ended by \\r\\n".into()),
    }
}

/// One line in answer to a batch of quiet `ms` closed by `mn`.
#[derive(Debug, PartialEq, Eq)]
pub enum SetLine {
    /// `MN`: the batch is done.
    Noop,
    /// `HD` (a quiet set says nothing when it succeeds, but is allowed to).
    Stored,
    /// Anything else: one set that failed (`NS`, `SERVER_ERROR out of
    /// memory ...`).
    Failed(String),
}

/// Parses one line of a batch's replies.
pub fn parse_set_line(buf: &[u8]) -> Parsed<SetLine> {
    match line(buf) {
        Ok(Some((b"MN", used))) => Parsed::Done(SetLine::Noop, used),
        Ok(Some((b"HD", used))) => Parsed::Done(SetLine::Stored, used),
        Ok(Some((l, used))) => Parsed::Done(SetLine::Failed(shown(l)), used),
        Ok(None) => Parsed::Incomplete,
        Err(e) => Parsed::Invalid(e),
    }
}

// ------------------------------------------------------------ the commands

/// Appends `mg <key> v f t u` (u: reading for the copy does not bump the
/// item in the source's LRU). False if the key cannot be written.
pub fn get_command(key: &[u8], out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.extend_from_slice(b"mg ");
    match base64::push_meta_key(key, out) {
        Some(b64) => {
            out.extend_from_slice(if b64 { b" v f t u b\r\n" } else { b" v f t u\r\n" });
            true
        }
        None => {
            out.truncate(start);
            false
        }
    }
}

/// The `T` that gives a copy the source's remaining lifetime. `t` says -1
/// for none (T0); 0 means it expires within the second (T1, not T0 which
/// would be forever); beyond 30 days memcached reads T as a unix time,
/// capped at the largest T it accepts.
pub fn ttl_flag(ttl: i64, now_unix: u64) -> u64 {
    match ttl {
        t if t < 0 => 0,
        0 => 1,
        // a unix time; no later than the largest memcached's T accepts
        // (a signed 32-bit number), whatever the source said
        t if t > RELATIVE_EXPIRY_MAX => now_unix.saturating_add(t as u64).min(i32::MAX as u64),
        t => t as u64,
    }
}

/// Appends `ms <key> <len> F<flags> T<ttl> q [b]\r\n<data>\r\n`.
pub fn set_command(key: &[u8], v: &Value, now_unix: u64, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.extend_from_slice(b"ms ");
    let Some(b64) = base64::push_meta_key(key, out) else {
        out.truncate(start);
        return false;
    };
    let b = if b64 { " b" } else { "" };
    let head = format!(" {} F{} T{} q{b}\r\n", v.data.len(), v.flags, ttl_flag(v.ttl, now_unix));
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&v.data);
    out.extend_from_slice(b"\r\n");
    true
}

// ------------------------------------------------------------ the choice

/// The joining nodes (indexes into the future list) that must hold `key`,
/// listed by `source` (an index into the current list): none unless the
/// source is the key's owner now; then its future owner if that is
/// joining, and with `replicas` its future successor if that is joining.
pub fn targets(
    current: &Ring,
    future: &Ring,
    source: usize,
    joining: &[bool],
    replicas: bool,
    key: &[u8],
) -> [Option<usize>; 2] {
    if current.owner(key) != Some(source) {
        return [None, None];
    }
    let is_joining = |i: &usize| joining.get(*i).copied().unwrap_or(false);
    let owner = future.owner(key).filter(is_joining);
    let successor = if replicas { future.successor(key).filter(is_joining) } else { None };
    [owner, successor]
}

/// Paces a copy to `rate` items/s from `start`: `n` more items may go once
/// `(done + n) / rate` seconds have passed, so at no time have more than
/// `rate` x (time since start) items been read.
#[derive(Debug)]
pub struct Pace {
    rate: u64,
    start: Instant,
    done: u64,
}

impl Pace {
    pub fn new(rate: u64, start: Instant) -> Pace {
        Pace { rate, start, done: 0 }
    }

    /// How long to wait at `now` before `n` more items.
    pub fn delay(&self, n: u64, now: Instant) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let nanos = u128::from(self.done + n) * 1_000_000_000 / u128::from(self.rate);
        let due = self.start + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        due.saturating_duration_since(now)
    }

    /// Counts `n` items as gone.
    pub fn take(&mut self, n: u64) {
        self.done += n;
    }

    /// Keys per batch: a tenth of a second's worth, 1 to `BATCH_KEYS`.
    pub fn batch(&self) -> usize {
        if self.rate == 0 {
            BATCH_KEYS
        } else {
            usize::try_from(self.rate / 10).unwrap_or(BATCH_KEYS).clamp(1, BATCH_KEYS)
        }
    }
}

// ------------------------------------------------------------ the state

/// What one copy works on: the lists as they were when it began.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// The served nodes: the sources, and the clients' current ring.
    sources: Vec<Node>,
    /// Served and joining nodes, in configured order: the ring after the
    /// joining nodes are published.
    future: Vec<Node>,
    /// The joining nodes: index in `future` and join id.
    joiners: Vec<(usize, u64)>,
}

/// The nodes that will be served once the joining ones are: configured
/// order, not down.
fn future_list(s: &State) -> Vec<Node> {
    let down = |n: &Node| s.health.get(n).is_some_and(|h| h.down);
    s.configured.iter().flatten().filter(|n| !down(n)).cloned().collect()
}

/// Whether the served and joining nodes are still those of `plan` (the
/// same joins: a node that left and came back is a new one).
fn holds(s: &State, plan: &Plan) -> bool {
    s.served == plan.sources
        && future_list(s) == plan.future
        && s.joining.len() == plan.joiners.len()
        && plan.joiners.iter().all(|&(i, id)| s.joining.get(&plan.future[i]).is_some_and(|j| j.id == id))
}

impl Discovery {
    /// Whether a warm thread is to run ([`WarmConfig::copier`]).
    pub fn copies(&self) -> bool {
        self.warm.copier
    }

    /// A node added to the configured list, or back after being down:
    /// joining if another node is served (and warm join is on). Caller
    /// holds the lock. True if it is joining.
    pub(super) fn start_join(&self, s: &mut State, node: &Node) -> bool {
        let off = !self.warm.copier || self.warm.timeout.is_zero();
        if off || !s.served.iter().any(|n| n != node) || s.joining.contains_key(node) {
            return false;
        }
        s.next_join += 1;
        let join = Join { id: s.next_join, since: Instant::now(), copied: 0, total: 0, bytes: 0 };
        s.joining.insert(node.clone(), join);
        log::info!("cluster: {node} joining: served once its keys are copied (at most {:?})", self.warm.timeout);
        self.wake.notify_all();
        true
    }

    /// The nodes added by a new configured list start joining: those not
    /// in the previous list (at start, the list served before the restart,
    /// which clients may still use), unless none of the served nodes stays.
    /// Caller holds the lock, before `configured` is replaced.
    pub(super) fn joins_for_new_list(&self, s: &mut State, nodes: &[Node]) {
        s.joining.retain(|n, _| nodes.contains(n));
        let old = s.configured.clone().unwrap_or_else(|| s.served.clone());
        if !s.served.iter().any(|n| nodes.contains(n)) {
            return;
        }
        let added: Vec<&Node> = nodes.iter().filter(|n| !old.contains(n)).collect();
        for n in added {
            self.start_join(s, n);
        }
    }

    /// Publishes the joining nodes whose `--warm-timeout-ms` has passed
    /// at `now`, copied or not.
    pub fn expire_joins(&self, now: Instant) {
        let mut s = self.state.lock();
        let late: Vec<(Node, Join)> = s
            .joining
            .iter()
            .filter(|(_, j)| now.saturating_duration_since(j.since) >= self.warm.timeout)
            .map(|(n, j)| (n.clone(), j.clone()))
            .collect();
        for (node, j) in late {
            s.joining.remove(&node);
            let why = format!(
                "{node} joined after the warm timeout ({} ms): {} of {} items copied",
                self.warm.timeout.as_millis(),
                j.copied,
                j.total
            );
            log::warn!("cluster: {why}");
            self.publish(&mut s, why, 0);
        }
    }

    /// The copy to do now, if any node is joining; resets their progress.
    fn warm_plan(&self) -> Option<Plan> {
        let mut s = self.state.lock();
        if s.joining.is_empty() {
            return None;
        }
        let future = future_list(&s);
        let mut joiners = Vec::new();
        for (i, n) in future.iter().enumerate() {
            if let Some(j) = s.joining.get_mut(n) {
                (j.copied, j.total, j.bytes) = (0, 0, 0);
                joiners.push((i, j.id));
            }
        }
        Some(Plan { sources: s.served.clone(), future, joiners })
    }

    /// Whether the lists are still those of `plan`.
    fn plan_holds(&self, plan: &Plan) -> bool {
        holds(&self.state.lock(), plan)
    }

    /// Adds a batch's progress: (future index, items found, stored, bytes).
    fn warm_progress(&self, plan: &Plan, deltas: &[(usize, u64, u64, u64)]) {
        let mut s = self.state.lock();
        for &(i, total, copied, bytes) in deltas {
            let id = plan.joiners.iter().find(|&&(fi, _)| fi == i).map(|&(_, id)| id);
            if let Some(j) = s.joining.get_mut(&plan.future[i]).filter(|j| Some(j.id) == id) {
                j.total += total;
                j.copied += copied;
                j.bytes += bytes;
            }
        }
    }

    /// The copy of `plan` is complete: its nodes are served, if the plan
    /// still holds. False if it does not (the copy is to be done again).
    fn warm_finish(&self, plan: &Plan, extra: &str) -> bool {
        let mut s = self.state.lock();
        if !holds(&s, plan) {
            return false;
        }
        let mut names = Vec::new();
        for &(i, _) in &plan.joiners {
            let node = &plan.future[i];
            if let Some(j) = s.joining.remove(node) {
                log::info!(
                    "cluster: warm join of {node} done: {} items, {} bytes in {:.3} s{extra}",
                    j.copied,
                    j.bytes,
                    j.since.elapsed().as_secs_f64()
                );
                names.push(format!("{node} ({} items)", j.copied));
            }
        }
        self.publish(&mut s, format!("warm join of {}", names.join(", ")), 0);
        true
    }

    /// Waits (at most `max`) for a node to start joining.
    fn wait_for_joins(&self, max: Duration) {
        let mut s = self.state.lock();
        if s.joining.is_empty() {
            self.wake.wait_for(&mut s, max);
        }
    }

    /// `stats cluster` lines for a joining node.
    pub(super) fn join_stats(&self, s: &State, i: usize, node: &Node, out: &mut Vec<(String, String)>) {
        if let Some(j) = s.joining.get(node) {
            out.push((format!("node:{i}:warm_copied"), j.copied.to_string()));
            out.push((format!("node:{i}:warm_total"), j.total.to_string()));
            out.push((format!("node:{i}:warm_bytes"), j.bytes.to_string()));
            out.push((format!("node:{i}:warm_elapsed_ms"), j.since.elapsed().as_millis().to_string()));
        }
    }
}

// ------------------------------------------------------------ the thread

/// The warm thread: copies for joining nodes until `stop` is set.
pub fn run(d: &Discovery, stop: &AtomicBool) {
    let pause = d.cfg.interval.max(Duration::from_millis(100));
    while !stop.load(Ordering::Relaxed) {
        d.expire_joins(Instant::now());
        let Some(plan) = d.warm_plan() else {
            d.wait_for_joins(Duration::from_millis(200));
            continue;
        };
        let names: Vec<String> = plan.joiners.iter().map(|&(i, _)| plan.future[i].to_string()).collect();
        log::info!(
            "cluster: warm join of {}: copying from {} node(s), {}",
            names.join(", "),
            plan.sources.len(),
            if d.warm.rate == 0 { "no rate limit".to_string() } else { format!("at most {} items/s", d.warm.rate) }
        );
        let start = Instant::now();
        match Copy::new(d, &plan, stop).run() {
            Ok(Some(tally)) => {
                let extra = tally.note();
                if !d.warm_finish(&plan, &extra) {
                    log::info!("cluster: warm copy ended, but the served or joining nodes changed meanwhile");
                }
            }
            Ok(None) => log::info!("cluster: warm copy stopped: the served or joining nodes changed"),
            Err(e) => {
                log::warn!("cluster: warm copy to {} failed after {:?}: {e}", names.join(", "), start.elapsed());
                sleep_unless(d, stop, pause, None);
            }
        }
    }
}

/// Sleeps `total` in short steps, publishing late joins meanwhile; false
/// (early) if `stop` is set or, given a plan, the plan stops holding.
fn sleep_unless(d: &Discovery, stop: &AtomicBool, total: Duration, plan: Option<&Plan>) -> bool {
    let end = Instant::now() + total;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        d.expire_joins(Instant::now());
        if plan.is_some_and(|p| !d.plan_holds(p)) {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

/// A blocking connection to a node with its own input buffer.
struct Conn {
    s: Box<dyn super::Stream>,
    buf: Vec<u8>,
    at: usize,
    name: String,
}

impl Conn {
    fn open(d: &Discovery, node: &Node) -> Result<Conn, String> {
        let timeout = d.cfg.timeout.max(Duration::from_secs(2));
        let s = super::open(node, timeout, d.tls.get()).map_err(|e| format!("{node}: {e}"))?;
        Ok(Conn { s, buf: Vec::with_capacity(64 * 1024), at: 0, name: node.to_string() })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.s.write_all(bytes).and_then(|()| self.s.flush()).map_err(|e| format!("{}: {e}", self.name))
    }

    /// The next element `parse` finds, reading as needed.
    fn next<T>(&mut self, parse: impl Fn(&[u8]) -> Parsed<T>) -> Result<T, String> {
        loop {
            match parse(&self.buf[self.at..]) {
                Parsed::Done(v, used) => {
                    self.at += used;
                    return Ok(v);
                }
                Parsed::Invalid(e) => return Err(format!("{}: {e}", self.name)),
                Parsed::Incomplete => self.fill()?,
            }
        }
    }

    /// Reads past the next `n` bytes without keeping them: at most one
    /// buffer's worth is held at a time.
    fn skip(&mut self, mut n: usize) -> Result<(), String> {
        loop {
            let have = (self.buf.len() - self.at).min(n);
            self.at += have;
            n -= have;
            if n == 0 {
                return Ok(());
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<(), String> {
        if self.at > 0 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        let have = self.buf.len();
        self.buf.resize(have + 64 * 1024, 0);
        let got = self.s.read(&mut self.buf[have..]);
        self.buf.truncate(have + *got.as_ref().unwrap_or(&0));
        match got {
            Ok(0) => Err(format!("{}: connection closed", self.name)),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }
}

/// What a copy saw besides stored items.
#[derive(Debug, Default)]
struct Tally {
    /// Listed, but gone by the time they were read.
    missing: u64,
    /// Refused by the source's `mg` or the joining node's `ms`, or keys
    /// that cannot be named in a meta command.
    failed: u64,
    /// Values over the copy's limit (`-I`), skipped.
    too_large: u64,
}

impl Tally {
    fn note(&self) -> String {
        if self.missing == 0 && self.failed == 0 && self.too_large == 0 {
            return String::new();
        }
        let mut note = format!(" ({} gone before they were read, {} not copied", self.missing, self.failed);
        if self.too_large > 0 {
            note += &format!(", {} over the -I limit", self.too_large);
        }
        note + ")"
    }
}

/// The keys whose [`part_hash`] is `residue` modulo `modulus`: a source
/// with more keys to copy than one list holds is listed in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    modulus: u64,
    residue: u64,
}

impl Part {
    fn has(&self, key: &[u8]) -> bool {
        part_hash(key) % self.modulus == self.residue
    }
}

/// FNV-1a: a cheap, fixed hash that splits keys into parts.
pub fn part_hash(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A key listed for the copy.
#[derive(Debug)]
struct Listed {
    key: Box<[u8]>,
    /// Its item's size, from the metadump.
    size: u64,
    /// The joining nodes it goes to (future indexes).
    targets: [Option<usize>; 2],
}

impl Listed {
    /// Bytes a listed key takes beyond its own.
    const COST: usize = std::mem::size_of::<Listed>() + 16;

    fn cost(&self) -> usize {
        Listed::COST + self.key.len()
    }
}

/// The keys of one part listed so far, in at most `cap` bytes.
#[derive(Debug)]
struct Listing {
    part: Part,
    listed: Vec<Listed>,
    held: usize,
    cap: usize,
}

impl Listing {
    fn new(part: Part, cap: usize) -> Listing {
        Listing { part, listed: Vec::new(), held: 0, cap }
    }

    /// Adds a key of `part`. Past the cap, the part is halved: the keys
    /// of the other half are dropped and that half pushed onto `later`.
    fn push(&mut self, l: Listed, later: &mut Vec<Part>) {
        self.held += l.cost();
        self.listed.push(l);
        while self.held > self.cap && self.part.modulus < 1 << 32 {
            let Part { modulus, residue } = self.part;
            later.push(Part { modulus: modulus * 2, residue: residue + modulus });
            self.part.modulus *= 2;
            let part = self.part;
            self.listed.retain(|l| part.has(&l.key));
            self.held = self.listed.iter().map(Listed::cost).sum();
        }
    }
}

/// One copy, for one plan.
struct Copy<'a> {
    d: &'a Discovery,
    plan: &'a Plan,
    stop: &'a AtomicBool,
    current: Ring,
    future: Ring,
    joining: Vec<bool>,
    /// Connections to the joining nodes, by future index, opened on use.
    sinks: Vec<Option<Conn>>,
    pace: Pace,
    tally: Tally,
}

impl<'a> Copy<'a> {
    fn new(d: &'a Discovery, plan: &'a Plan, stop: &'a AtomicBool) -> Copy<'a> {
        let mut joining = vec![false; plan.future.len()];
        for &(i, _) in &plan.joiners {
            joining[i] = true;
        }
        Copy {
            d,
            plan,
            stop,
            current: Ring::from_nodes(d.warm.hash, &plan.sources),
            future: Ring::from_nodes(d.warm.hash, &plan.future),
            joining,
            sinks: (0..plan.future.len()).map(|_| None).collect(),
            pace: Pace::new(d.warm.rate, Instant::now()),
            tally: Tally::default(),
        }
    }

    /// Copies from every source; None if the plan stopped holding.
    fn run(mut self) -> Result<Option<Tally>, String> {
        for si in 0..self.plan.sources.len() {
            if !self.source(si)? {
                return Ok(None);
            }
        }
        Ok(Some(self.tally))
    }

    /// Copies what source `si` owns for the joining nodes: lists its keys
    /// (one part of them at a time, see [`Copy::list`]), then reads and
    /// writes them in paced batches. False if the plan stopped holding.
    fn source(&mut self, si: usize) -> Result<bool, String> {
        let mut parts = vec![Part { modulus: 1, residue: 0 }];
        while let Some(part) = parts.pop() {
            let Some(listed) = self.list(si, part, &mut parts)? else { return Ok(false) };
            // fresh connections after a listing, which may have been long
            self.sinks.iter_mut().for_each(|s| *s = None);
            let mut reader = Conn::open(self.d, &self.plan.sources[si])?;
            let mut start = 0;
            while start < listed.len() {
                let (mut end, mut bytes) = (start, 0);
                while end < listed.len() && end - start < self.pace.batch() && bytes < BATCH_BYTES {
                    bytes += listed[end].size;
                    end += 1;
                }
                if !self.batch(&mut reader, &listed[start..end])? {
                    return Ok(false);
                }
                start = end;
            }
        }
        Ok(true)
    }

    /// Reads source `si`'s whole metadump at once and keeps the keys of
    /// `part` to copy. Reading it while pacing the copy would leave the
    /// dump unread for long stretches, and nodes close a client that
    /// leaves a full output buffer unread past their `write_timeout`; so
    /// the keys are listed first, with the list bounded by [`LIST_BYTES`]:
    /// past it, the part is halved (the other half is pushed onto `parts`
    /// for a later pass). None if the plan stopped holding.
    fn list(&mut self, si: usize, part: Part, parts: &mut Vec<Part>) -> Result<Option<Vec<Listed>>, String> {
        let mut dump = Conn::open(self.d, &self.plan.sources[si])?;
        dump.send(b"lru_crawler metadump all\r\n")?;
        let mut listing = Listing::new(part, LIST_BYTES);
        let mut lines = 0u64;
        while let DumpLine::Item { key, size } = dump.next(parse_dump_line)? {
            lines += 1;
            if lines.is_multiple_of(65_536) && !sleep_unless(self.d, self.stop, Duration::ZERO, Some(self.plan)) {
                return Ok(None);
            }
            if !listing.part.has(&key) {
                continue;
            }
            let targets = targets(&self.current, &self.future, si, &self.joining, self.d.warm.replicas > 0, &key);
            if targets != [None, None] {
                listing.push(Listed { key: key.into_boxed_slice(), size, targets }, parts);
            }
        }
        let listed = listing.listed;
        let mut found = vec![0u64; self.plan.future.len()];
        for l in &listed {
            for &i in l.targets.iter().flatten() {
                found[i] += 1;
            }
        }
        let deltas: Vec<_> = found.iter().enumerate().filter(|(_, &n)| n > 0).map(|(i, &n)| (i, n, 0, 0)).collect();
        self.d.warm_progress(self.plan, &deltas);
        Ok(Some(listed))
    }

    /// Reads a batch from the source and writes it to its targets; false
    /// if the plan stopped holding.
    fn batch(&mut self, reader: &mut Conn, batch: &[Listed]) -> Result<bool, String> {
        let n = batch.len() as u64;
        let wait = self.pace.delay(n, Instant::now());
        if !sleep_unless(self.d, self.stop, wait, Some(self.plan)) {
            return Ok(false);
        }
        self.pace.take(n);
        let mut asked = Vec::with_capacity(batch.len());
        let mut out = Vec::new();
        for l in batch {
            if get_command(&l.key, &mut out) {
                asked.push(l);
            } else {
                self.tally.failed += 1;
            }
        }
        reader.send(&out)?;
        // per future index: sets written, value bytes, the sets
        let mut sent = vec![0u64; self.plan.future.len()];
        let mut bytes = vec![0u64; self.plan.future.len()];
        let mut sets: Vec<Vec<u8>> = vec![Vec::new(); self.plan.future.len()];
        let now = unix_now();
        let max = self.d.warm.max_value;
        for l in asked {
            match reader.next(|b| parse_get_reply(b, max))? {
                GetReply::Hit(v) => {
                    for &i in l.targets.iter().flatten() {
                        set_command(&l.key, &v, now, &mut sets[i]);
                        sent[i] += 1;
                        bytes[i] += v.data.len() as u64;
                    }
                }
                GetReply::Miss => self.tally.missing += 1,
                GetReply::Failed(_) => self.tally.failed += 1,
                GetReply::TooLarge(len) => {
                    reader.skip(len)?;
                    reader.next(parse_value_end)?;
                    if self.tally.too_large == 0 {
                        log::warn!(
                            "cluster: warm copy: {} sent a value of {len} bytes, over -I ({max}): not copied",
                            reader.name
                        );
                    }
                    self.tally.too_large += 1;
                }
            }
        }
        let mut deltas = Vec::new();
        for (i, cmds) in sets.iter_mut().enumerate() {
            if !cmds.is_empty() {
                let failed = self.write(i, cmds)?;
                self.tally.failed += failed;
                deltas.push((i, 0, sent[i] - failed.min(sent[i]), bytes[i]));
            }
        }
        self.d.warm_progress(self.plan, &deltas);
        Ok(true)
    }

    /// Sends quiet sets and a closing `mn` to joining node `i`; the number
    /// of sets it refused.
    fn write(&mut self, i: usize, cmds: &mut Vec<u8>) -> Result<u64, String> {
        if self.sinks[i].is_none() {
            self.sinks[i] = Some(Conn::open(self.d, &self.plan.future[i])?);
        }
        let Some(sink) = self.sinks[i].as_mut() else { return Ok(0) };
        cmds.extend_from_slice(b"mn\r\n");
        sink.send(cmds)?;
        let mut failed = 0;
        loop {
            match sink.next(parse_set_line)? {
                SetLine::Noop => return Ok(failed),
                SetLine::Stored => {}
                SetLine::Failed(e) => {
                    if failed == 0 {
                        log::warn!("cluster: warm copy: {} refused a set: {e}", sink.name);
                    }
                    failed += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump() -> Vec<u8> {
        b"key=alpha exp=-1 la=1700000000 cas=1 fetch=no cls=1 size=70\n\
key=with%20space%0D%0A exp=1700000100 la=1700000000 cas=2 fetch=yes cls=2 size=120\n\
key=%E2%82%ACuro exp=-1 la=1700000001 cas=3 fetch=no cls=1 size=66 flags=5\n\
END\r\n"
            .to_vec()
    }

    /// Feeds `parts` one after another to the parser as a connection would
    /// (the unparsed rest kept in front of the next part).
    fn parse_all(parts: &[&[u8]]) -> Result<Vec<DumpLine>, String> {
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        for p in parts {
            buf.extend_from_slice(p);
            loop {
                match parse_dump_line(&buf) {
                    Parsed::Done(l, used) => {
                        buf.drain(..used);
                        out.push(l);
                    }
                    Parsed::Incomplete => break,
                    Parsed::Invalid(e) => return Err(e),
                }
            }
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        Ok(out)
    }

    #[test]
    fn a_metadump_parses_the_same_split_at_every_byte() {
        let whole = dump();
        let want = vec![
            DumpLine::Item { key: b"alpha".to_vec(), size: 70 },
            DumpLine::Item { key: b"with space\r\n".to_vec(), size: 120 },
            DumpLine::Item { key: "€uro".as_bytes().to_vec(), size: 66 },
            DumpLine::End,
        ];
        assert_eq!(parse_all(&[&whole]).unwrap(), want);
        for cut in 0..=whole.len() {
            assert_eq!(parse_all(&[&whole[..cut], &whole[cut..]]).unwrap(), want, "split at {cut}");
        }
        let bytewise: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(parse_all(&bytewise).unwrap(), want);
    }

    #[test]
    fn metadump_errors_and_bad_lines_are_invalid() {
        for bad in [
            &b"CLIENT_ERROR lru crawler disabled\r\n"[..],
            b"ERROR metadump not allowed\r\n",
            b"BUSY currently processing crawler request\r\n",
            b"key=%4 exp=-1 size=1\n",
            b"key= exp=-1 size=1\n",
        ] {
            assert!(matches!(parse_dump_line(bad), Parsed::Invalid(_)), "{}", String::from_utf8_lossy(bad));
        }
        let long = [b'k'; MAX_LINE + 1];
        assert!(matches!(parse_dump_line(&long), Parsed::Invalid(_)), "no line end within the bound");
        assert_eq!(parse_dump_line(&long[..MAX_LINE]), Parsed::Incomplete);
        let over = format!("key={} size=1\n", "%41".repeat(251));
        assert!(matches!(parse_dump_line(over.as_bytes()), Parsed::Invalid(_)), "a key over 250 bytes");
    }

    #[test]
    fn uri_decoding() {
        assert_eq!(uri_decode(b"a%2Fb%2fc").unwrap(), b"a/b/c");
        assert_eq!(uri_decode(b"plain-._~").unwrap(), b"plain-._~");
        assert_eq!(uri_decode(b"%00%FF").unwrap(), [0, 255]);
        for bad in [&b"%"[..], b"%4", b"%G0", b"a%zz"] {
            assert_eq!(uri_decode(bad), None, "{bad:?}");
        }
        // what the store's metadump writes decodes back to the key
        let key = b"k\x00 \x7f\xffe%y";
        let mut enc = Vec::new();
        crate::storage::uri_encode(key, &mut enc);
        assert_eq!(uri_decode(&enc).unwrap(), key);
    }

    #[test]
    fn get_replies_split_at_every_byte() {
        let stream = b"VA 5 f7 t-1\r\nhello\r\nEN\r\nVA 0 t30 f0\r\n\r\nSERVER_ERROR busy\r\n";
        let want = vec![
            GetReply::Hit(Value { flags: 7, ttl: -1, data: b"hello".to_vec() }),
            GetReply::Miss,
            GetReply::Hit(Value { flags: 0, ttl: 30, data: Vec::new() }),
            GetReply::Failed("SERVER_ERROR busy".into()),
        ];
        for cut in 0..=stream.len() {
            let (mut buf, mut got) = (stream[..cut].to_vec(), Vec::new());
            let mut rest = &stream[cut..];
            loop {
                match parse_get_reply(&buf, 1 << 20) {
                    Parsed::Done(r, used) => {
                        buf.drain(..used);
                        got.push(r);
                    }
                    Parsed::Incomplete if !rest.is_empty() => {
                        buf.extend_from_slice(rest);
                        rest = &[];
                    }
                    Parsed::Incomplete => break,
                    Parsed::Invalid(e) => panic!("{e} at split {cut}"),
                }
            }
            assert_eq!(got, want, "split at {cut}");
        }
        for bad in [&b"VA x\r\n"[..], b"VA 2 f-1\r\nab\r\n", b"VA 2\r\nabXY", b"HD\r\n", b"VA 9999999999999\r\n"] {
            assert!(matches!(parse_get_reply(bad, 1 << 20), Parsed::Invalid(_)), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_value_over_the_limit_is_skipped_without_being_held() {
        // the header alone says it: nothing after it is waited for
        assert_eq!(parse_get_reply(b"VA 1048577 f1 t-1\r\n", 1 << 20), Parsed::Done(GetReply::TooLarge(1_048_577), 19));
        assert_eq!(
            parse_get_reply(b"VA 1048576 f1 t-1\r\n", 1 << 20),
            Parsed::Incomplete,
            "the limit itself is copied"
        );
        assert!(matches!(parse_get_reply(b"VA 3 f1\r\nabc\r\n", 2), Parsed::Done(GetReply::TooLarge(3), 9)));
        // a bad header stays invalid whatever its length
        assert!(matches!(parse_get_reply(b"VA 5000000 f-1\r\n", 1 << 20), Parsed::Invalid(_)));
        // on a connection: a 3 MB value is read past in buffer-sized steps
        let big = 3 << 20;
        let mut stream = format!("VA {big} f0 t-1\r\n").into_bytes();
        stream.resize(stream.len() + big, b'x');
        stream.extend_from_slice(b"\r\nVA 2 f4 t-1\r\nok\r\n");
        let s: Box<dyn crate::discovery::Stream> = Box::new(std::io::Cursor::new(stream));
        let mut c = Conn { s, buf: Vec::new(), at: 0, name: "source".into() };
        assert_eq!(c.next(|b| parse_get_reply(b, 1 << 20)).unwrap(), GetReply::TooLarge(big));
        c.skip(big).unwrap();
        c.next(parse_value_end).unwrap();
        let want = GetReply::Hit(Value { flags: 4, ttl: -1, data: b"ok".to_vec() });
        assert_eq!(c.next(|b| parse_get_reply(b, 1 << 20)).unwrap(), want);
        assert!(c.buf.capacity() < 1 << 20, "held {} bytes", c.buf.capacity());
        assert!(matches!(parse_value_end(b"\r"), Parsed::Incomplete));
        assert!(matches!(parse_value_end(b"xy"), Parsed::Invalid(_)));
    }

    #[test]
    fn set_batches_end_at_mn() {
        assert_eq!(parse_set_line(b"MN\r\n"), Parsed::Done(SetLine::Noop, 4));
        assert_eq!(parse_set_line(b"HD\r\nMN"), Parsed::Done(SetLine::Stored, 4));
        assert_eq!(parse_set_line(b"NS\r\n"), Parsed::Done(SetLine::Failed("NS".into()), 4));
        assert_eq!(parse_set_line(b"MN"), Parsed::Incomplete);
    }

    #[test]
    fn commands_name_keys_plainly_or_in_base64() {
        let mut out = Vec::new();
        assert!(get_command(b"user:1", &mut out));
        assert!(get_command(b"a b", &mut out));
        assert_eq!(out, b"mg user:1 v f t u\r\nmg YSBi v f t u b\r\n");
        // 187 binary bytes need 252 base64 characters: not a meta key
        assert!(!get_command(&[0u8; 187], &mut out));
        assert!(get_command(&[0u8; 186], &mut out));
        let v = Value { flags: 9, ttl: -1, data: b"xy".to_vec() };
        let mut out = Vec::new();
        assert!(set_command(b"k", &v, 1_000, &mut out));
        assert!(set_command(b"\n", &Value { ttl: 60, ..v }, 1_000, &mut out));
        assert_eq!(out, b"ms k 2 F9 T0 q\r\nxy\r\nms Cg== 2 F9 T60 q b\r\nxy\r\n");
    }

    #[test]
    fn ttls_keep_their_meaning() {
        assert_eq!(ttl_flag(-1, 1_000), 0, "no expiry");
        assert_eq!(ttl_flag(0, 1_000), 1, "not T0, which is forever");
        assert_eq!(ttl_flag(3600, 1_000), 3600);
        assert_eq!(ttl_flag(RELATIVE_EXPIRY_MAX, 1_000), RELATIVE_EXPIRY_MAX as u64);
        let long = RELATIVE_EXPIRY_MAX + 1;
        assert_eq!(ttl_flag(long, 1_700_000_000), 1_700_000_000 + long as u64, "a unix time past 30 days");
        // a source's absurd ttl neither overflows nor leaves T's range
        assert_eq!(ttl_flag(i64::MAX, 1_700_000_000), i32::MAX as u64);
        assert_eq!(ttl_flag(long, u64::MAX), i32::MAX as u64);
        assert_eq!(ttl_flag(i64::from(i32::MAX), 1_700_000_000), i32::MAX as u64);
    }

    fn node(i: u8) -> Node {
        Node { host: format!("127.0.0.{}", 10 + i), ip: format!("127.0.0.{}", 10 + i), port: 11211 }
    }

    #[test]
    fn keys_go_to_their_future_owner_and_successor_from_their_owner() {
        let served = [node(0), node(1)];
        let future = [node(0), node(1), node(2)];
        let joining = [false, false, true];
        let current = Ring::from_nodes(Scheme::Ketama, &served);
        let fut = Ring::from_nodes(Scheme::Ketama, &future);
        let (mut owned, mut succ) = (0, 0);
        for k in 0..3000 {
            let key = format!("key:{k}");
            let key = key.as_bytes();
            let owner_now = current.owner(key).unwrap();
            let other = 1 - owner_now;
            assert_eq!(targets(&current, &fut, other, &joining, true, key), [None, None], "only from the owner");
            let plain = targets(&current, &fut, owner_now, &joining, false, key);
            let both = targets(&current, &fut, owner_now, &joining, true, key);
            let j_owns = fut.owner(key) == Some(2);
            let j_follows = fut.successor(key) == Some(2);
            assert_eq!(plain, [j_owns.then_some(2), None], "{k}");
            assert_eq!(both, [j_owns.then_some(2), j_follows.then_some(2)], "{k}");
            if j_owns {
                owned += 1;
                // the keys it takes were its successor's: the old owner
                assert_eq!(fut.successor(key), Some(owner_now));
            }
            succ += usize::from(j_follows);
        }
        // a third of the keys move, and about as many get it as successor
        assert!((700..1300).contains(&owned), "{owned}");
        assert!((700..1300).contains(&succ), "{succ}");
        // nothing goes to a node that is not joining
        let none = [false, false, false];
        assert!((0..200).all(|k| {
            let key = format!("key:{k}");
            let o = current.owner(key.as_bytes()).unwrap();
            targets(&current, &fut, o, &none, true, key.as_bytes()) == [None, None]
        }));
    }

    #[test]
    fn a_listing_past_its_cap_is_split_into_parts_that_cover_every_key_once() {
        let keys: Vec<Vec<u8>> = (0..5000).map(|i| format!("key:{i}").into_bytes()).collect();
        let cap = 200 * (Listed::COST + 8);
        let mut todo = vec![Part { modulus: 1, residue: 0 }];
        let mut seen = std::collections::HashMap::new();
        let mut passes = 0;
        while let Some(part) = todo.pop() {
            passes += 1;
            assert!(passes < 1000);
            // one pass over every key, as over a metadump
            let mut listing = Listing::new(part, cap);
            for k in &keys {
                if listing.part.has(k) {
                    let l = Listed { key: k.clone().into_boxed_slice(), size: 1, targets: [Some(0), None] };
                    listing.push(l, &mut todo);
                }
                assert!(listing.held <= cap, "the bound holds after every key");
            }
            for l in listing.listed {
                *seen.entry(l.key.to_vec()).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len(), keys.len(), "every key in some part");
        assert!(seen.values().all(|&n| n == 1), "no key in two parts");
        assert!(passes >= 5000 / 200, "{passes}");
        assert_eq!(part_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(part_hash(b"a"), 0xaf63_dc4c_8601_ec8c, "FNV-1a");
    }

    #[test]
    fn pacing_never_runs_ahead_of_the_rate() {
        let t0 = Instant::now();
        let mut p = Pace::new(20, t0);
        assert_eq!(p.batch(), 2);
        assert_eq!(p.delay(2, t0), Duration::from_millis(100));
        p.take(2);
        assert_eq!(p.delay(2, t0 + Duration::from_millis(150)), Duration::from_millis(50));
        assert_eq!(p.delay(2, t0 + Duration::from_secs(1)), Duration::ZERO);
        // whenever items go, items gone <= rate x elapsed
        let mut p = Pace::new(7, t0);
        let mut now = t0;
        for _ in 0..50 {
            now += p.delay(3, now);
            p.take(3);
            assert!(p.done as f64 <= 7.0 * (now - t0).as_secs_f64() + 1e-6);
        }
        let free = Pace::new(0, t0);
        assert_eq!((free.delay(1_000_000, t0), free.batch()), (Duration::ZERO, BATCH_KEYS));
        assert_eq!(Pace::new(100_000, t0).batch(), BATCH_KEYS);
    }
}
