//! `--replicas 1`: each write this node owns is copied, asynchronously, to
//! the key's successor (the node clients will send the key to once this
//! node has left the list).
//!
//! The event loops call [`Replicator::written`] after a successful write on
//! a client connection. It looks the key up on the ring of the current
//! [`View`]; if this node is the owner, it reads the resulting item (value,
//! client flags, exptime) or its absence, and appends a set or a delete to
//! the successor's bounded queue. A full queue drops the copy and counts it:
//! a loop never waits on a peer. One sender thread per peer drains its
//! queue in batches over one persistent connection, in the meta protocol
//! (`ms <key> <len> F<flags> T<ttl> q`, `md <key> q`, then `mn`), and
//! reconnects with backoff. An item invalidated on the owner (`md .. I`,
//! `ms .. I`) goes as its set followed by `md <key> I q`, so the successor
//! holds it stale too. A delete is copied whatever it found on the owner
//! (the successor may still hold what the owner lost to a flush or an
//! eviction), except a refused CAS.
//!
//! Before a sender reconnects after a failed batch, it shuts down the
//! writing half of the old connection and waits (bounded) for the peer to
//! close it, so commands the peer still holds from the old connection are
//! applied before any copy sent on the new one; while it does not close,
//! the sender keeps backing off.
//!
//! The connection first sends [`MARK`]; the receiving node marks it as a
//! replication connection, and writes on it are never copied again.
//!
//! Order: the read of the item and the append to the queue happen under
//! one of [`STRIPES`] locks chosen by the key, so two writes of one key on
//! different loops reach the queue in the order their items were read, and
//! the last copy sent is the item as the last write left it.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::follow::View;
use crate::discovery::Node;
use crate::protocol::base64;
use crate::storage::clock::Clock;
use crate::storage::Store;

/// The command a sender opens its connection with; the receiver answers
/// `OK` and copies nothing written on that connection.
pub const MARK: &[u8] = b"ferrocache_replica\r\n";
/// Bytes one peer's queue may hold (items waiting or in flight).
pub const PEER_QUEUE_BYTES: usize = 16 << 20;
/// Bytes all queues together may hold.
pub const TOTAL_QUEUE_BYTES: usize = 64 << 20;
/// Bookkeeping counted per queued copy on top of its key and value.
pub const OP_OVERHEAD: usize = 64;
/// A batch ends after this many bytes or [`BATCH_OPS`] copies.
const BATCH_BYTES: usize = 256 << 10;
const BATCH_OPS: usize = 1024;
/// A sender takes at most one batch smaller than [`BATCH_OPS`] and
/// [`BATCH_BYTES`] per this time: a copy that finds the sender idle for
/// longer goes at once, but under a steady stream of writes copies wait
/// up to this long to share a batch, so the sender wakes, writes and waits
/// for `MN` (and the peer's loop wakes) once per batch, not once per copy.
const LINGER: Duration = Duration::from_millis(1);
/// Connect, write and read timeout towards a peer.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one wait for a failed connection's peer to close it lasts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A batch that failed this many times is dropped (counted).
const ATTEMPTS: u32 = 3;
/// Longest reply line accepted for one batch (error lines only: copies
/// are quiet), checked between reads of up to 4 KiB.
const MAX_REPLY: usize = 1 << 20;
/// Locks that order the read-and-enqueue of writes to one key.
pub const STRIPES: usize = 64;
/// memcached reads an exptime above this as a unix time.
const RELATIVE_LIMIT: u64 = crate::storage::clock::MAX_RELATIVE_EXPTIME as u64;

/// A copy waiting to be sent: the key, then the value of a set.
#[derive(Debug)]
struct Op {
    bytes: Box<[u8]>,
    klen: usize,
    /// `None`: a delete; else client flags and unix expiry (0: never).
    set: Option<(u32, u64)>,
    /// The item is stale (invalidated): the set is followed by `md .. I`.
    stale: bool,
    at: Instant,
}

impl Op {
    fn key(&self) -> &[u8] {
        &self.bytes[..self.klen]
    }

    fn cost(&self) -> usize {
        self.bytes.len() + OP_OVERHEAD
    }
}

/// Appends `op`'s key token (see [`base64::push_meta_key`]): true when
/// base64. Only keys that fit are queued (`written`).
fn push_key(out: &mut Vec<u8>, key: &[u8]) -> bool {
    base64::push_meta_key(key, out).unwrap_or(false)
}

/// Appends the meta command for `op` at unix time `now`; a set whose item
/// has expired meanwhile goes as a delete.
fn encode(op: &Op, now: u64, out: &mut Vec<u8>) {
    let ttl = match op.set {
        Some((_, 0)) => Some(0),
        Some((_, exp)) if exp > now => Some(if exp - now > RELATIVE_LIMIT { exp } else { exp - now }),
        _ => None,
    };
    match (op.set, ttl) {
        (Some((flags, _)), Some(ttl)) => {
            let value = &op.bytes[op.klen..];
            out.extend_from_slice(b"ms ");
            let b = push_key(out, op.key());
            let _ = write!(out, " {} F{flags} T{ttl}{} q\r\n", value.len(), if b { " b" } else { "" });
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
            if op.stale {
                out.extend_from_slice(b"md ");
                push_key(out, op.key());
                out.extend_from_slice(if b { b" I b q\r\n" } else { b" I q\r\n" });
            }
        }
        _ => {
            out.extend_from_slice(b"md ");
            let b = push_key(out, op.key());
            out.extend_from_slice(if b { b" b q\r\n" } else { b" q\r\n" });
        }
    }
}

/// One peer: its queue, its counters, and the stop flag of its sender.
#[derive(Debug)]
pub struct Peer {
    pub node: Node,
    queue: Mutex<VecDeque<Op>>,
    ready: Condvar,
    /// Bytes of copies queued or in flight (`Op::cost`).
    pub bytes: AtomicUsize,
    /// Copies queued, sent (acknowledged by `mn`), dropped (queue full, or
    /// a batch that failed `ATTEMPTS` times), refused by the peer.
    pub queued: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub refused: AtomicU64,
    pub connects: AtomicU64,
    pub connected: AtomicBool,
    /// Enqueue-to-acknowledgement time of the oldest copy of the last batch.
    pub lag_us: AtomicU64,
    /// Enqueue time of the oldest copy of the batch in flight.
    in_flight: Mutex<Option<Instant>>,
    stop: AtomicBool,
    /// Bytes in all queues, shared by every peer.
    total: Arc<AtomicUsize>,
}

impl Drop for Peer {
    /// A copy queued after the sender stopped still gives its bytes back.
    fn drop(&mut self) {
        self.total.fetch_sub(self.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

impl Peer {
    fn new(node: Node, total: Arc<AtomicUsize>) -> Peer {
        Peer {
            total,
            node,
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            bytes: AtomicUsize::new(0),
            queued: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            lag_us: AtomicU64::new(0),
            in_flight: Mutex::new(None),
            stop: AtomicBool::new(false),
        }
    }

    /// Copies waiting in the queue, and the age of the oldest copy not yet
    /// acknowledged (waiting or in flight).
    pub fn waiting(&self) -> (usize, Duration) {
        let flying = self.in_flight.lock().map_or(Duration::ZERO, |at| at.elapsed());
        let q = self.queue.lock();
        (q.len(), q.front().map_or(Duration::ZERO, |op| op.at.elapsed()).max(flying))
    }

    /// Replication lag, given the oldest copy's age from
    /// [`Peer::waiting`] (one reading of the queue serves both): the last
    /// batch's, or longer while a copy has been waiting longer than that (a
    /// peer down shows as a growing lag).
    pub fn lag_given(&self, oldest: Duration) -> Duration {
        Duration::from_micros(self.lag_us.load(Ordering::Relaxed)).max(oldest)
    }

    /// Appends `op` unless this queue or all queues together would pass
    /// their bound; never waits for the sender.
    fn push(&self, op: Op) -> bool {
        let total = &self.total;
        let cost = op.cost();
        if self.bytes.fetch_add(cost, Ordering::Relaxed) + cost > PEER_QUEUE_BYTES {
            self.bytes.fetch_sub(cost, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if total.fetch_add(cost, Ordering::Relaxed) + cost > TOTAL_QUEUE_BYTES {
            total.fetch_sub(cost, Ordering::Relaxed);
            self.bytes.fetch_sub(cost, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let was_empty = {
            let mut q = self.queue.lock();
            q.push_back(op);
            q.len() == 1
        };
        self.queued.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            self.ready.notify_one();
        }
        true
    }

    /// Gives the bytes of `ops` back to both bounds.
    fn release(&self, ops: &[Op]) {
        *self.in_flight.lock() = None;
        let cost: usize = ops.iter().map(Op::cost).sum();
        self.bytes.fetch_sub(cost, Ordering::Relaxed);
        self.total.fetch_sub(cost, Ordering::Relaxed);
    }

    /// Takes the next batch, waiting while the queue is empty; empty once
    /// the peer is stopped. `previous`: when the sender took its last
    /// batch; a batch that is not full waits until [`LINGER`] after it.
    fn next_batch(&self, previous: Option<Instant>) -> Vec<Op> {
        let mut q = self.queue.lock();
        while q.is_empty() && !self.stop.load(Ordering::Relaxed) {
            self.ready.wait_for(&mut q, Duration::from_millis(500));
        }
        // Pushes do not wake the sender while the queue is not empty: this
        // waits for the deadline (or a stop).
        if let Some(until) = previous.map(|at| at + LINGER) {
            while q.len() < BATCH_OPS
                && self.bytes.load(Ordering::Relaxed) < BATCH_BYTES
                && !self.stop.load(Ordering::Relaxed)
                && Instant::now() < until
            {
                self.ready.wait_until(&mut q, until);
            }
        }
        if self.stop.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while bytes < BATCH_BYTES && batch.len() < BATCH_OPS {
            let Some(op) = q.pop_front() else { break };
            bytes += op.cost();
            batch.push(op);
        }
        *self.in_flight.lock() = batch.iter().map(|op| op.at).min();
        batch
    }
}

/// The peers of one view, by node index (`None`: this node).
struct Routes {
    view: Arc<View>,
    peers: Vec<Option<Arc<Peer>>>,
}

/// The copies this node sends.
pub struct Replicator {
    routes: RwLock<Arc<Routes>>,
    /// Live senders by peer address.
    senders: Mutex<HashMap<String, Arc<Peer>>>,
    stripes: Box<[Mutex<()>]>,
    hasher: ahash::RandomState,
    /// Bytes in all queues.
    total: Arc<AtomicUsize>,
    clock: Arc<Clock>,
    /// False in unit tests that read the queues themselves (a build for
    /// use always starts senders).
    #[cfg(test)]
    run_senders: bool,
    /// Writes not copied: this node does not own the key, is not listed,
    /// has no peer, or the key cannot be named in a meta command.
    pub not_copied: AtomicU64,
}

impl Replicator {
    pub fn new(clock: Arc<Clock>) -> Replicator {
        Replicator {
            routes: RwLock::new(Arc::new(Routes { view: Arc::new(View::default()), peers: Vec::new() })),
            senders: Mutex::new(HashMap::new()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
            total: Arc::new(AtomicUsize::new(0)),
            clock,
            #[cfg(test)]
            run_senders: true,
            not_copied: AtomicU64::new(0),
        }
    }

    /// Bytes queued towards all peers.
    pub fn queued_bytes(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Routes writes by `view` from now on: starts a sender for each new
    /// peer, stops those of peers no longer listed (after the new routes
    /// are in place, so no write meanwhile finds its peer stopped). An
    /// address listed twice gets one sender; this node's own address,
    /// however often listed, none.
    pub fn install(&self, view: &Arc<View>) {
        let mut senders = self.senders.lock();
        let mut kept: HashMap<String, Arc<Peer>> = HashMap::new();
        let mut stopped = Vec::new();
        let own = view.me.and_then(|m| view.nodes.get(m)).map(Node::address);
        let peers: Vec<Option<Arc<Peer>>> = view
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let addr = node.address();
                if own.is_none() || own.as_ref() == Some(&addr) || view.is_me(i) {
                    return None;
                }
                if let Some(p) = kept.get(&addr) {
                    return Some(Arc::clone(p)); // listed twice: one sender
                }
                let peer = match senders.remove(&addr) {
                    Some(p) if p.node == *node => p,
                    old => {
                        stopped.extend(old);
                        self.spawn(node.clone())
                    }
                };
                kept.insert(addr, peer.clone());
                Some(peer)
            })
            .collect();
        stopped.extend(senders.drain().map(|(_, p)| p));
        *senders = kept;
        *self.routes.write() = Arc::new(Routes { view: view.clone(), peers });
        for p in &stopped {
            self.stop(p);
        }
    }

    fn stop(&self, p: &Arc<Peer>) {
        log::info!("replication to {} stops: no longer a peer", p.node);
        p.stop.store(true, Ordering::Relaxed);
        p.ready.notify_one();
    }

    fn spawn(&self, node: Node) -> Arc<Peer> {
        let peer = Arc::new(Peer::new(node, self.total.clone()));
        #[cfg(test)]
        if !self.run_senders {
            return peer;
        }
        let (p, clock) = (peer.clone(), self.clock.clone());
        let name = format!("replica-{}", peer.node.port);
        if let Err(e) = std::thread::Builder::new().name(name).spawn(move || send_loop(&p, &clock)) {
            log::error!("no replication sender for {}: {e}", peer.node);
            peer.stop.store(true, Ordering::Relaxed);
        }
        peer
    }

    /// After a successful write of `key` on a client connection: queues a
    /// copy of the item as the write left it (or a delete) for the key's
    /// successor, if this node owns the key.
    pub fn written(&self, store: &Store, key: &[u8]) {
        // The guard is held to the end (install, the only writer, takes no
        // other lock of this path), sparing a clone and drop of the routes.
        let routes = self.routes.read();
        let view = &routes.view;
        // Owned under any of this node's entries; the successor skips them all.
        let peer = view
            .copy_target(key)
            .and_then(|i| routes.peers.get(i)?.as_ref())
            .filter(|p| !p.stop.load(Ordering::Relaxed) && base64::meta_key_fits(key));
        let Some(peer) = peer else {
            self.not_copied.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let stripe = self.hasher.hash_one(key) as usize % STRIPES;
        let _order = self.stripes[stripe].lock();
        let op = store.peek_item(key, |it, exptime, stale| {
            let mut bytes = Vec::with_capacity(key.len() + it.value.len());
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(it.value);
            let exp = if exptime == 0 { 0 } else { self.clock.to_unix(exptime) };
            Op { bytes: bytes.into(), klen: key.len(), set: Some((it.flags, exp)), stale, at: Instant::now() }
        });
        let op = op.unwrap_or_else(|| Op {
            bytes: key.into(),
            klen: key.len(),
            set: None,
            stale: false,
            at: Instant::now(),
        });
        peer.push(op);
    }

    /// The peers of the current view, each once.
    pub fn peers(&self) -> Vec<Arc<Peer>> {
        let mut out: Vec<Arc<Peer>> = Vec::new();
        for p in self.routes.read().peers.iter().flatten() {
            if !out.iter().any(|q| Arc::ptr_eq(q, p)) {
                out.push(p.clone());
            }
        }
        out
    }

    /// `stats cluster` lines of replication.
    pub fn stats(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("replica_not_copied".to_string(), self.not_copied.load(Ordering::Relaxed).to_string()),
            ("replica_queue_bytes".to_string(), self.queued_bytes().to_string()),
            ("replica_queue_limit".to_string(), TOTAL_QUEUE_BYTES.to_string()),
            ("replica_peer_queue_limit".to_string(), PEER_QUEUE_BYTES.to_string()),
        ];
        for (i, p) in self.peers().iter().enumerate() {
            let (waiting, oldest) = p.waiting();
            let get = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
            out.extend([
                (format!("peer:{i}:addr"), p.node.to_string()),
                (format!("peer:{i}:connected"), u8::from(p.connected.load(Ordering::Relaxed)).to_string()),
                (format!("peer:{i}:queued"), waiting.to_string()),
                (format!("peer:{i}:bytes_queued"), p.bytes.load(Ordering::Relaxed).to_string()),
                (format!("peer:{i}:enqueued"), get(&p.queued)),
                (format!("peer:{i}:sent"), get(&p.sent)),
                (format!("peer:{i}:dropped"), get(&p.dropped)),
                (format!("peer:{i}:refused"), get(&p.refused)),
                (format!("peer:{i}:connects"), get(&p.connects)),
                (format!("peer:{i}:lag_ms"), p.lag_given(oldest).as_millis().to_string()),
                (format!("peer:{i}:oldest_ms"), oldest.as_millis().to_string()),
            ]);
        }
        out
    }
}

/// A peer's sender: batches until the peer is stopped.
fn send_loop(peer: &Peer, clock: &Clock) {
    let mut conn: Option<TcpStream> = None;
    // A failed connection whose peer has not closed it yet.
    let mut closing: Option<TcpStream> = None;
    let mut wbuf = Vec::with_capacity(BATCH_BYTES + 4096);
    let mut backoff = BACKOFF_MIN;
    let mut batch: Vec<Op> = Vec::new();
    let mut taken = None;
    let mut attempts = 0;
    let mut down_logged = false;
    while !peer.stop.load(Ordering::Relaxed) {
        if batch.is_empty() {
            batch = peer.next_batch(taken);
            attempts = 0;
            if batch.is_empty() {
                continue;
            }
            taken = Some(Instant::now());
        }
        if let Some(mut old) = closing.take() {
            if !closed_by_peer(&mut old) {
                // The peer may still apply what it holds from the old
                // connection: a copy sent now could be overwritten by it.
                closing = Some(old);
                pause(peer, &mut backoff);
                continue;
            }
        }
        wbuf.clear();
        let now = clock.unix_now();
        for op in &batch {
            encode(op, now, &mut wbuf);
        }
        wbuf.extend_from_slice(b"mn\r\n");
        match send_batch(peer, &mut conn, &wbuf) {
            Ok(refused) => {
                let oldest = batch.iter().map(|op| op.at).min().map_or(Duration::ZERO, |at| at.elapsed());
                peer.lag_us.store(oldest.as_micros() as u64, Ordering::Relaxed);
                peer.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                peer.refused.fetch_add(refused, Ordering::Relaxed);
                peer.release(&batch);
                batch.clear();
                backoff = BACKOFF_MIN;
                if down_logged {
                    log::info!("replication to {} resumed", peer.node);
                    down_logged = false;
                }
            }
            Err(e) => {
                if let Some(old) = conn.take() {
                    let _ = old.shutdown(Shutdown::Write);
                    closing = Some(old);
                }
                peer.connected.store(false, Ordering::Relaxed);
                if !down_logged {
                    log::warn!("replication to {}: {e}; retrying", peer.node);
                    down_logged = true;
                }
                attempts += 1;
                if attempts >= ATTEMPTS {
                    peer.dropped.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    peer.release(&batch);
                    batch.clear();
                }
                pause(peer, &mut backoff);
            }
        }
    }
    // Stopped: what is left is not sent.
    peer.release(&batch);
    let rest: Vec<Op> = peer.queue.lock().drain(..).collect();
    peer.release(&rest);
}

/// Waits `backoff` (or until the peer is stopped), then doubles it.
fn pause(peer: &Peer, backoff: &mut Duration) {
    let until = Instant::now() + *backoff;
    while Instant::now() < until && !peer.stop.load(Ordering::Relaxed) {
        std::thread::sleep(BACKOFF_MIN.min(until - Instant::now()));
    }
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

/// Reads a connection whose writing half is shut down, discarding what
/// comes, for at most [`DRAIN_TIMEOUT`]: true once the peer has closed it
/// (end of stream, or reset).
fn closed_by_peer(s: &mut TcpStream) -> bool {
    let until = Instant::now() + DRAIN_TIMEOUT;
    let mut chunk = [0u8; 4096];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return true,
        }
    }
}

/// Writes one encoded batch (ending in `mn`) and reads to `MN`; returns
/// the number of refusals (any other reply line).
fn send_batch(peer: &Peer, conn: &mut Option<TcpStream>, wbuf: &[u8]) -> Result<u64, String> {
    if conn.is_none() {
        *conn = Some(connect(&peer.node)?);
        peer.connects.fetch_add(1, Ordering::Relaxed);
        peer.connected.store(true, Ordering::Relaxed);
    }
    let s = conn.as_mut().ok_or("no connection")?;
    let mut refused = 0;
    exchange(s, wbuf, |line| {
        if refused == 0 {
            log::debug!("replica {} refused a copy: {}", peer.node, String::from_utf8_lossy(line));
        }
        refused += 1;
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    Ok(refused)
}

/// Writes `batch`, quiet meta commands closed by `mn`, to `s` and reads
/// the replies up to `MN`, handing every other line (without its line
/// end) to `line`, which may stop the exchange with an error. Also an
/// error: the stream ending or failing before `MN`, a line longer than
/// about 1 MiB, bytes after `MN` (they would be read as the next
/// batch's replies). Replication and `ferrocache restore` send their
/// batches this way.
pub fn exchange(
    s: &mut (impl Read + Write),
    batch: &[u8],
    mut line: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Error;
    s.write_all(batch).map_err(|e| Error::new(e.kind(), format!("write: {e}")))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    // The start of `buf` known to hold no line end (a long line is not
    // searched again from its start after every read).
    let mut searched = 0;
    loop {
        while let Some(end) = buf[searched..].windows(2).position(|w| w == b"\r\n").map(|i| searched + i) {
            if &buf[..end] == b"MN" && end + 2 == buf.len() {
                return Ok(());
            }
            if &buf[..end] == b"MN" {
                return Err(Error::new(ErrorKind::InvalidData, "bytes after MN"));
            }
            line(&buf[..end])?;
            buf.drain(..end + 2);
            searched = 0;
        }
        searched = buf.len().saturating_sub(1);
        if buf.len() > MAX_REPLY {
            return Err(Error::new(ErrorKind::InvalidData, "reply too long"));
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(Error::new(ErrorKind::UnexpectedEof, "connection closed")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::new(e.kind(), format!("read: {e}"))),
        }
    }
}

/// Opens a replication connection: [`MARK`], answered `OK`.
fn connect(node: &Node) -> Result<TcpStream, String> {
    let mut s = crate::discovery::connect(&node.address(), IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.write_all(MARK).map_err(|e| format!("write: {e}"))?;
    let mut got = [0u8; 4];
    s.read_exact(&mut got).map_err(|e| format!("no answer to the replication mark: {e}"))?;
    if &got != b"OK\r\n" {
        return Err(format!("replication mark refused: {:?}", String::from_utf8_lossy(&got)));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Scheme;

    fn op(key: &[u8], set: Option<(&[u8], u32, u64)>) -> Op {
        let mut bytes = key.to_vec();
        if let Some((v, ..)) = set {
            bytes.extend_from_slice(v);
        }
        Op { bytes: bytes.into(), klen: key.len(), set: set.map(|(_, f, e)| (f, e)), stale: false, at: Instant::now() }
    }

    fn encoded(o: &Op, now: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(o, now, &mut out);
        out
    }

    #[test]
    fn copies_encode_as_quiet_meta_commands() {
        assert_eq!(encoded(&op(b"k", Some((b"hello", 7, 0))), 1000), b"ms k 5 F7 T0 q\r\nhello\r\n");
        assert_eq!(encoded(&op(b"k", Some((b"v", 0, 1060))), 1000), b"ms k 1 F0 T60 q\r\nv\r\n");
        // past 30 days, the expiry goes as a unix time
        let far = 1000 + RELATIVE_LIMIT + 5;
        assert_eq!(encoded(&op(b"k", Some((b"v", 0, far))), 1000), format!("ms k 1 F0 T{far} q\r\nv\r\n").as_bytes());
        // expired while queued: the copy is deleted instead
        assert_eq!(encoded(&op(b"k", Some((b"v", 0, 1000))), 1000), b"md k q\r\n");
        assert_eq!(encoded(&op(b"gone", None), 1000), b"md gone q\r\n");
        // keys the text protocol cannot carry go in base64
        assert_eq!(encoded(&op(b"a b", Some((b"", 1, 0))), 1000), b"ms YSBi 0 F1 T0 b q\r\n\r\n");
        assert_eq!(encoded(&op(b"\x00\xff", None), 1000), b"md AP8= b q\r\n");
        // a stale item goes as its set, then invalidated
        let stale = |o: Op| Op { stale: true, ..o };
        assert_eq!(encoded(&stale(op(b"k", Some((b"v", 3, 1060)))), 1000), b"ms k 1 F3 T60 q\r\nv\r\nmd k I q\r\n");
        assert_eq!(
            encoded(&stale(op(b"a b", Some((b"v", 0, 0)))), 1000),
            b"ms YSBi 1 F0 T0 b q\r\nv\r\nmd YSBi I b q\r\n"
        );
        assert_eq!(encoded(&stale(op(b"k", Some((b"v", 0, 1000)))), 1000), b"md k q\r\n");
        assert!(base64::meta_key_fits(&[b'x'; 250]) && !base64::meta_key_fits(&[0u8; 187]));
    }

    /// A stream that records what is written and answers `replies`, a
    /// few bytes per read.
    struct Scripted<'a> {
        replies: &'a [u8],
        written: Vec<u8>,
    }

    impl Read for Scripted<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.replies.len()).min(3);
            buf[..n].copy_from_slice(&self.replies[..n]);
            self.replies = &self.replies[n..];
            Ok(n)
        }
    }

    impl Write for Scripted<'_> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `exchange` hands over for `replies`, or its error.
    fn exchanged(replies: &[u8]) -> Result<Vec<String>, String> {
        let mut s = Scripted { replies, written: Vec::new() };
        let mut lines = Vec::new();
        let got = exchange(&mut s, b"ms k 1 q\r\nv\r\nmn\r\n", |l| {
            if l == b"STOP" {
                return Err(std::io::Error::other("stopped"));
            }
            lines.push(String::from_utf8_lossy(l).into_owned());
            Ok(())
        });
        assert_eq!(s.written, b"ms k 1 q\r\nv\r\nmn\r\n");
        got.map(|()| lines).map_err(|e| e.to_string())
    }

    #[test]
    fn a_batch_exchange_reads_the_lines_before_mn_and_nothing_after() {
        assert_eq!(exchanged(b"MN\r\n"), Ok(vec![]));
        let refused = b"NS\r\nSERVER_ERROR out of memory storing object\r\nMN\r\n";
        assert_eq!(exchanged(refused), Ok(vec!["NS".into(), "SERVER_ERROR out of memory storing object".into()]));
        assert_eq!(exchanged(b"MN\r\nNS\r\n"), Err("bytes after MN".into()));
        assert_eq!(exchanged(b"NS\r\nMN"), Err("connection closed".into()));
        assert_eq!(exchanged(b"NS\r\nSTOP\r\nNS\r\nMN\r\n"), Err("stopped".into()));
        let endless = vec![b'x'; MAX_REPLY + 10];
        assert_eq!(exchanged(&endless), Err("reply too long".into()));
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_bytes_come_back() {
        let total = Arc::new(AtomicUsize::new(0));
        let node = Node { host: "x".into(), ip: "127.0.0.1".into(), port: 1 };
        let p = Peer::new(node.clone(), total.clone());
        let value = vec![0u8; 1 << 20];
        let mut accepted = 0;
        for i in 0..40 {
            if p.push(op(format!("k{i}").as_bytes(), Some((&value, 0, 0)))) {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 15, "16 MiB hold 15 copies of 1 MiB plus overhead");
        assert_eq!(p.dropped.load(Ordering::Relaxed), 25);
        assert!(p.bytes.load(Ordering::Relaxed) <= PEER_QUEUE_BYTES);
        assert_eq!(total.load(Ordering::Relaxed), p.bytes.load(Ordering::Relaxed));
        let mut got = 0;
        // one batch per copy at most: a broken count fails, never hangs
        for _ in 0..=accepted {
            let b = p.next_batch(None);
            got += b.len();
            p.release(&b);
            if b.is_empty() || got >= accepted {
                break;
            }
        }
        assert_eq!((got, total.load(Ordering::Relaxed)), (accepted, 0));
        // a peer dropped with copies queued gives their bytes back
        assert!(p.push(op(b"late", Some((b"v", 0, 0)))));
        assert!(total.load(Ordering::Relaxed) > 0);
        drop(p);
        assert_eq!(total.load(Ordering::Relaxed), 0);
        // the total bound holds across peers
        let total = Arc::new(AtomicUsize::new(TOTAL_QUEUE_BYTES - 10));
        let p = Peer::new(node, total.clone());
        assert!(!p.push(op(b"k", Some((b"0123456789", 0, 0)))));
        assert_eq!(total.load(Ordering::Relaxed), TOTAL_QUEUE_BYTES - 10);
        assert_eq!(p.dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_batch_that_is_not_full_waits_for_the_linger_after_the_last() {
        let node = Node { host: "x".into(), ip: "127.0.0.1".into(), port: 1 };
        let p = Peer::new(node, Arc::new(AtomicUsize::new(0)));
        assert!(p.push(op(b"a", Some((b"1", 0, 0)))));
        let taken = Instant::now();
        let b = p.next_batch(Some(taken));
        assert!(taken.elapsed() >= LINGER);
        assert_eq!(b.len(), 1);
        p.release(&b);
        // a full batch goes as it is; the rest waits for the next one
        for i in 0..BATCH_OPS + 3 {
            assert!(p.push(op(format!("k{i}").as_bytes(), Some((b"v", 0, 0)))));
        }
        let b = p.next_batch(Some(Instant::now()));
        assert_eq!(b.len(), BATCH_OPS);
        p.release(&b);
        let b = p.next_batch(None);
        assert_eq!(b.len(), 3);
        p.release(&b);
        assert_eq!(p.bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn lag_is_the_last_batch_or_the_oldest_copy_age_if_longer() {
        let node = Node { host: "x".into(), ip: "127.0.0.1".into(), port: 1 };
        let p = Peer::new(node, Arc::new(AtomicUsize::new(0)));
        p.lag_us.store(5_000, Ordering::Relaxed);
        assert_eq!(p.lag_given(Duration::from_millis(2)), Duration::from_millis(5));
        assert_eq!(p.lag_given(Duration::from_millis(7)), Duration::from_millis(7));
        // nothing waiting: the last batch's
        assert_eq!(p.lag_given(p.waiting().1), Duration::from_millis(5));
    }

    fn clock() -> Arc<Clock> {
        Arc::new(Clock::manual(1_700_000_000))
    }

    #[test]
    fn only_owned_keys_are_queued_for_their_successor() {
        let nodes: Vec<Node> =
            (0..3).map(|i| Node { host: format!("127.0.0.{}", 10 + i), ip: String::new(), port: 1 }).collect();
        let me = "127.0.0.11:1".parse().unwrap();
        let view = Arc::new(View::new(1, nodes, Scheme::Ketama, None, &[me]));
        assert_eq!(view.me, Some(1));
        let r = Replicator { run_senders: false, ..Replicator::new(clock()) };
        let store = Store::new(&crate::storage::StoreConfig::default(), r.clock.clone());
        r.install(&view);
        let (mut owned, mut others) = (0, 0);
        for i in 0..300 {
            let key = format!("key{i}");
            store.store(crate::storage::StoreMode::Set, key.as_bytes(), 5, 0, b"v");
            r.written(&store, key.as_bytes());
            if view.ring.owner(key.as_bytes()) == Some(1) {
                owned += 1;
            } else {
                others += 1;
            }
        }
        assert!(owned > 30 && others > 30, "{owned} {others}");
        assert_eq!(r.not_copied.load(Ordering::Relaxed), others);
        let peers = r.peers();
        let queued: u64 = peers.iter().map(|p| p.queued.load(Ordering::Relaxed)).sum();
        assert_eq!(queued, owned);
        for p in &peers {
            let idx = view.nodes.iter().position(|n| *n == p.node).unwrap();
            for o in p.queue.lock().iter() {
                assert_eq!(view.ring.successor(o.key()), Some(idx));
                assert_eq!((o.set, &o.bytes[o.klen..]), (Some((5, 0)), &b"v"[..]));
            }
        }
        // a deleted key goes as a delete
        let key = (0..).map(|i| format!("d{i}")).find(|k| view.ring.owner(k.as_bytes()) == Some(1)).unwrap();
        r.written(&store, key.as_bytes());
        let found = peers.iter().any(|p| p.queue.lock().iter().any(|o| o.key() == key.as_bytes() && o.set.is_none()));
        assert!(found);
        assert!(r.stats().iter().any(|(k, v)| k == "replica_not_copied" && *v == others.to_string()));
    }

    #[test]
    fn a_new_view_keeps_running_peers_and_stops_the_others() {
        let node = |i: u8| Node { host: format!("127.0.0.{i}"), ip: String::new(), port: 1 };
        let me: std::net::SocketAddr = "127.0.0.10:1".parse().unwrap();
        let view = |nodes: Vec<Node>, v| Arc::new(View::new(v, nodes, Scheme::Ketama, None, &[me]));
        let r = Replicator { run_senders: false, ..Replicator::new(clock()) };
        r.install(&view(vec![node(10), node(11), node(12)], 1));
        let first = r.peers();
        assert_eq!(first.len(), 2);
        r.install(&view(vec![node(10), node(12), node(13), node(13), node(10)], 2));
        let second = r.peers();
        assert_eq!(second.len(), 2, "each address once, this node's none: {second:?}");
        assert!(Arc::ptr_eq(&first[1], &second[0]), "127.0.0.12 keeps its queue");
        assert!(first[0].stop.load(Ordering::Relaxed), "127.0.0.11 is stopped");
        assert_eq!(second[1].node, node(13));
        let routes = r.routes.read().peers.clone();
        assert!(routes[2].as_ref().zip(routes[3].as_ref()).is_some_and(|(a, b)| Arc::ptr_eq(a, b)));
        assert!(routes[0].is_none() && routes[4].is_none(), "no sender to this node, listed twice");
        assert!(!second.iter().any(|p| p.stop.load(Ordering::Relaxed)));
        // not listed: no peers at all
        r.install(&view(vec![node(11), node(12)], 3));
        assert!(r.peers().is_empty());
        assert!(second.iter().all(|p| p.stop.load(Ordering::Relaxed)));
    }

    #[test]
    fn push_on_a_full_queue_never_waits_for_the_sender() {
        let total = Arc::new(AtomicUsize::new(0));
        let node = Node { host: "x".into(), ip: "127.0.0.1".into(), port: 1 };
        let p = Arc::new(Peer::new(node, total));
        let value = vec![0u8; 1 << 20];
        while p.push(op(b"k", Some((&value, 0, 0)))) {}
        while p.push(op(b"k", Some((b"v", 0, 0)))) {}
        // the sender holds the queue (taking a batch) while a loop pushes
        let held = p.queue.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let q = p.clone();
        std::thread::spawn(move || {
            let _ = tx.send(q.push(op(b"k", Some((b"v", 0, 0)))));
        });
        // a push that waited on the lock would still be waiting here
        let refused = rx.recv_timeout(Duration::from_secs(30)).expect("push waited for the queue lock");
        drop(held);
        assert!(!refused);
    }

    /// A peer speaking just enough of the meta protocol: it answers the
    /// mark, applies `ms`, and answers `mn`. Its first connection holds its
    /// first batch without answering until the sender shuts that connection
    /// down, then waits for a later connection to have applied `v2` (a
    /// sender that reconnected too early) or a bound, and only then applies
    /// the held batch.
    fn stalling_peer(values: Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>) -> (u16, [std::sync::mpsc::Receiver<()>; 2]) {
        use std::io::BufRead;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (got_first, first) = std::sync::mpsc::channel();
        let (applied_first, first_applied) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for (n, s) in l.incoming().flatten().enumerate() {
                let (values, got_first, applied_first) = (values.clone(), got_first.clone(), applied_first.clone());
                std::thread::spawn(move || {
                    let mut w = s.try_clone().unwrap();
                    let mut r = std::io::BufReader::new(s);
                    let mut held: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
                    let mut line = String::new();
                    let apply = |batch: &mut Vec<(Vec<u8>, Vec<u8>)>| {
                        values.lock().extend(batch.drain(..));
                    };
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        let t: Vec<&str> = line.split_whitespace().collect();
                        match t.first().copied() {
                            Some("ferrocache_replica") => w.write_all(b"OK\r\n").unwrap(),
                            Some("ms") => {
                                let mut v = vec![0u8; t[2].parse::<usize>().unwrap() + 2];
                                r.read_exact(&mut v).unwrap();
                                v.truncate(v.len() - 2);
                                held.push((t[1].as_bytes().to_vec(), v));
                            }
                            Some("mn") if n == 0 => {
                                let _ = got_first.send(());
                                // stall: the reply comes only after the end of stream
                                let mut rest = Vec::new();
                                let _ = r.read_to_end(&mut rest);
                                let start = Instant::now();
                                while values.lock().get(&b"k"[..]) != Some(&b"v2".to_vec())
                                    && start.elapsed() < Duration::from_millis(1500)
                                {
                                    std::thread::sleep(Duration::from_millis(10));
                                }
                                apply(&mut held);
                                let _ = applied_first.send(());
                                let _ = w.write_all(b"MN\r\n");
                                return;
                            }
                            Some("mn") => {
                                apply(&mut held);
                                w.write_all(b"MN\r\n").unwrap();
                            }
                            _ => w.write_all(b"CLIENT_ERROR\r\n").unwrap(),
                        }
                    }
                });
            }
        });
        (port, [first, first_applied])
    }

    #[test]
    fn a_reconnect_waits_for_the_old_connection_so_no_stale_copy_lands_last() {
        let values = Arc::new(Mutex::new(HashMap::new()));
        let (port, [first, first_applied]) = stalling_peer(values.clone());
        let node = Node { host: "127.0.0.1".into(), ip: "127.0.0.1".into(), port };
        let p = Arc::new(Peer::new(node, Arc::new(AtomicUsize::new(0))));
        let sender = p.clone();
        let clock = clock();
        let t = std::thread::spawn(move || send_loop(&sender, &clock));
        assert!(p.push(op(b"k", Some((b"v1", 0, 0)))));
        first.recv_timeout(Duration::from_secs(30)).expect("the first batch never arrived");
        assert!(p.push(op(b"k", Some((b"v2", 0, 0)))));
        let start = Instant::now();
        while p.sent.load(Ordering::Relaxed) < 2 {
            assert!(start.elapsed() < Duration::from_secs(30), "copies not acknowledged");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(p.connects.load(Ordering::Relaxed) >= 2, "the stalled batch was sent again");
        first_applied.recv_timeout(Duration::from_secs(30)).expect("the stalled batch was never applied");
        assert_eq!(values.lock().get(&b"k"[..]).map(Vec::as_slice), Some(&b"v2"[..]));
        p.stop.store(true, Ordering::Relaxed);
        p.ready.notify_one();
        t.join().unwrap();
    }
}
