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
//! reconnects with backoff.
//!
//! The connection first sends [`MARK`]; the receiving node marks it as a
//! replication connection, and writes on it are never copied again.
//!
//! Order: the read of the item and the append to the queue happen under
//! one of [`STRIPES`] locks chosen by the key, so two writes of one key on
//! different loops reach the queue in the order their items were read, and
//! the last copy sent is the item as the last write left it.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use super::follow::View;
use crate::discovery::Node;
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
/// Connect, write and read timeout towards a peer.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A batch that failed this many times is dropped (counted).
const ATTEMPTS: u32 = 3;
/// Largest reply accepted for one batch (error lines only: copies are
/// quiet).
const MAX_REPLY: usize = 1 << 20;
/// Locks that order the read-and-enqueue of writes to one key.
pub const STRIPES: usize = 64;
/// memcached reads an exptime above this as a unix time.
const RELATIVE_LIMIT: u64 = 60 * 60 * 24 * 30;
/// Longest key token of a meta command.
const MAX_TOKEN: usize = 250;

/// A copy waiting to be sent: the key, then the value of a set.
#[derive(Debug)]
struct Op {
    bytes: Box<[u8]>,
    klen: usize,
    /// `None`: a delete; else client flags and unix expiry (0: never).
    set: Option<(u32, u64)>,
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

/// A key the text protocol cannot carry goes base64-encoded (flag `b`).
fn needs_base64(key: &[u8]) -> bool {
    key.iter().any(|&b| b <= b' ' || b == 0x7f)
}

/// Whether a meta command can name `key`.
fn encodable(key: &[u8]) -> bool {
    let len = if needs_base64(key) { key.len().div_ceil(3) * 4 } else { key.len() };
    !key.is_empty() && len <= MAX_TOKEN
}

fn push_key(out: &mut Vec<u8>, key: &[u8]) -> bool {
    if needs_base64(key) {
        crate::protocol::base64::encode_into(key, out);
        true
    } else {
        out.extend_from_slice(key);
        false
    }
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
            stop: AtomicBool::new(false),
        }
    }

    /// Copies waiting in the queue, and the age of the oldest.
    pub fn waiting(&self) -> (usize, Duration) {
        let q = self.queue.lock();
        (q.len(), q.front().map_or(Duration::ZERO, |op| op.at.elapsed()))
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
        let cost: usize = ops.iter().map(Op::cost).sum();
        self.bytes.fetch_sub(cost, Ordering::Relaxed);
        self.total.fetch_sub(cost, Ordering::Relaxed);
    }

    /// Takes the next batch, waiting while the queue is empty; empty once
    /// the peer is stopped.
    fn next_batch(&self) -> Vec<Op> {
        let mut q = self.queue.lock();
        while q.is_empty() && !self.stop.load(Ordering::Relaxed) {
            self.ready.wait_for(&mut q, Duration::from_millis(500));
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
    /// False in unit tests that read the queues themselves.
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
            run_senders: true,
            not_copied: AtomicU64::new(0),
        }
    }

    /// Bytes queued towards all peers.
    pub fn queued_bytes(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Routes writes by `view` from now on: starts a sender for each new
    /// peer, stops those of peers no longer listed.
    pub fn install(&self, view: &Arc<View>) {
        let mut senders = self.senders.lock();
        let mut kept = HashMap::new();
        let peers: Vec<Option<Arc<Peer>>> = view
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                if view.me == Some(i) || view.me.is_none() {
                    return None;
                }
                let addr = node.address();
                if let Some(p) = kept.get(&addr).filter(|p: &&Arc<Peer>| p.node == *node) {
                    return Some(Arc::clone(p)); // listed twice: one sender
                }
                let peer = match senders.remove(&addr) {
                    Some(p) if p.node == *node => p,
                    old => {
                        if let Some(p) = old {
                            self.stop(&p);
                        }
                        self.spawn(node.clone())
                    }
                };
                if let Some(replaced) = kept.insert(addr, peer.clone()) {
                    self.stop(&replaced);
                }
                Some(peer)
            })
            .collect();
        for (_, p) in senders.drain() {
            self.stop(&p);
        }
        *senders = kept;
        *self.routes.write() = Arc::new(Routes { view: view.clone(), peers });
    }

    fn stop(&self, p: &Arc<Peer>) {
        log::info!("replication to {} stops: no longer a peer", p.node);
        p.stop.store(true, Ordering::Relaxed);
        p.ready.notify_one();
    }

    fn spawn(&self, node: Node) -> Arc<Peer> {
        let peer = Arc::new(Peer::new(node, self.total.clone()));
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
        let routes = self.routes.read().clone();
        let view = &routes.view;
        let peer = view
            .me
            .filter(|&me| view.ring.owner(key) == Some(me))
            .and_then(|me| view.ring.owner_without(key, me))
            .and_then(|i| routes.peers.get(i)?.as_ref())
            .filter(|p| !p.stop.load(Ordering::Relaxed) && encodable(key));
        let Some(peer) = peer else {
            self.not_copied.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let stripe = self.hasher.hash_one(key) as usize % STRIPES;
        let _order = self.stripes[stripe].lock();
        let op = store.peek_item(key, |it, exptime| {
            let mut bytes = Vec::with_capacity(key.len() + it.value.len());
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(it.value);
            let exp = if exptime == 0 { 0 } else { self.clock.to_unix(exptime) };
            Op { bytes: bytes.into(), klen: key.len(), set: Some((it.flags, exp)), at: Instant::now() }
        });
        let op = op.unwrap_or_else(|| Op { bytes: key.into(), klen: key.len(), set: None, at: Instant::now() });
        peer.push(op);
    }

    /// The peers of the current view.
    pub fn peers(&self) -> Vec<Arc<Peer>> {
        self.routes.read().peers.iter().flatten().cloned().collect()
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
                (format!("peer:{i}:lag_ms"), (p.lag_us.load(Ordering::Relaxed) / 1000).to_string()),
                (format!("peer:{i}:oldest_ms"), oldest.as_millis().to_string()),
            ]);
        }
        out
    }
}

/// A peer's sender: batches until the peer is stopped.
fn send_loop(peer: &Peer, clock: &Clock) {
    let mut conn: Option<TcpStream> = None;
    let mut wbuf = Vec::with_capacity(BATCH_BYTES + 4096);
    let mut backoff = BACKOFF_MIN;
    let mut batch: Vec<Op> = Vec::new();
    let mut attempts = 0;
    let mut down_logged = false;
    while !peer.stop.load(Ordering::Relaxed) {
        if batch.is_empty() {
            batch = peer.next_batch();
            attempts = 0;
            if batch.is_empty() {
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
                conn = None;
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
                let until = Instant::now() + backoff;
                while Instant::now() < until && !peer.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(BACKOFF_MIN.min(until - Instant::now()));
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    // Stopped: what is left is not sent.
    peer.release(&batch);
    let rest: Vec<Op> = peer.queue.lock().drain(..).collect();
    peer.release(&rest);
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
    s.write_all(wbuf).map_err(|e| format!("write: {e}"))?;
    let mut refused = 0;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            if &buf[..end] == b"MN" && end + 2 == buf.len() {
                return Ok(refused);
            }
            if &buf[..end] == b"MN" {
                return Err("bytes after MN".into());
            }
            if refused == 0 {
                log::debug!("replica {} refused a copy: {}", peer.node, String::from_utf8_lossy(&buf[..end]));
            }
            refused += 1;
            buf.drain(..end + 2);
        }
        if buf.len() > MAX_REPLY {
            return Err("reply too long".into());
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err("connection closed".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Opens a replication connection: [`MARK`], answered `OK`.
fn connect(node: &Node) -> Result<TcpStream, String> {
    let addr = node.address().to_socket_addrs().map_err(|e| e.to_string())?.next().ok_or("no address")?;
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
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
        Op { bytes: bytes.into(), klen: key.len(), set: set.map(|(_, f, e)| (f, e)), at: Instant::now() }
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
        assert!(encodable(&[b'x'; 250]) && !encodable(&[0u8; 187]) && encodable(&[0u8; 186]) && !encodable(b""));
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
        loop {
            let b = p.next_batch();
            if b.is_empty() || got == accepted {
                break;
            }
            got += b.len();
            p.release(&b);
            if got == accepted {
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
        r.install(&view(vec![node(10), node(12), node(13), node(13)], 2));
        let second = r.peers();
        assert_eq!(second.len(), 3, "one peer a listed entry");
        assert!(Arc::ptr_eq(&first[1], &second[0]), "127.0.0.12 keeps its queue");
        assert!(first[0].stop.load(Ordering::Relaxed), "127.0.0.11 is stopped");
        assert!(Arc::ptr_eq(&second[1], &second[2]), "an entry listed twice has one sender");
        assert!(!second.iter().any(|p| p.stop.load(Ordering::Relaxed)));
        // not listed: no peers at all
        r.install(&view(vec![node(11), node(12)], 3));
        assert!(r.peers().is_empty());
        assert!(second.iter().all(|p| p.stop.load(Ordering::Relaxed)));
    }
}
