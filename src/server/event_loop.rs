//! One event loop: a mio `Poll` with this thread's listeners, UDP sockets
//! and connections. Tokens: connections are their `slab` key; listeners
//! (TCP, unix, UDP) and the waker sit at the top of the token space.
//!
//! A loop accepts on its own listeners (SO_REUSEPORT gives each loop its
//! share of new TCP connections; every loop accepts from the one unix
//! socket), answers datagrams on its UDP sockets, serves its connections
//! until they block, and serves again, without waiting, those that
//! yielded at their `-R` budget. Once a second it closes connections idle
//! past `-o idle_timeout`.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::protocol::text::compose::TOO_MANY_CONNECTIONS;
use crate::state::{ConnInfo, Endpoint, Shared};
use crate::stats::WorkerStats;
use crate::watch::{self, CloseReason, Event};

use super::connection::{Connection, Served};
use super::listener::LoopSockets;
use super::stream::{Stream, TlsStream};
use super::udp::UdpServer;

const WAKER: Token = Token(usize::MAX);
/// Log lines for refused clients are rate-limited.
static REJECTED_LOG: super::LogLimiter = super::LogLimiter::new();
/// Listener `i` has token `LISTENER_BASE - i`.
const LISTENER_BASE: usize = usize::MAX - 1;
/// How long shutdown waits for queued replies to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A socket a loop listens on.
enum Listener {
    /// A TCP listener; `true`: its clients speak TLS.
    Tcp(TcpListener, bool),
    /// The unix socket, and its path as `stats conns` shows it.
    Unix(UnixListener, Endpoint),
    Udp(Box<UdpServer>),
}

impl Listener {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Listener::Tcp(l, _) => l,
            Listener::Unix(l, _) => l,
            Listener::Udp(u) => &mut u.socket,
        }
    }
}

/// One event loop and everything it owns.
pub struct EventLoop {
    index: usize,
    poll: Poll,
    listeners: Vec<Listener>,
    /// UDP listeners that stopped at their `-R` budget with datagrams left.
    udp_ready: Vec<usize>,
    conns: Slab<Connection>,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    /// Connections that yielded with input left.
    ready: Vec<usize>,
    /// Connections that became `watch` streams (served when the waker
    /// says lines are pending).
    watchers: Vec<usize>,
    next_id: u64,
}

impl EventLoop {
    /// Builds loop `index` over its listeners; returns it and the waker
    /// that interrupts its poll (for shutdown).
    pub fn new(
        index: usize,
        sockets: LoopSockets,
        unix_path: Option<&Path>,
        shared: Arc<Shared>,
    ) -> io::Result<(EventLoop, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut mio_listeners = Vec::new();
        // TCP listeners come in the order of `listen` (then the config
        // endpoint's, one per listen address): each serves TLS as its
        // listen address does.
        let tls_flags = &shared.config.server.listen_tls;
        mio_listeners.extend(sockets.tcp.into_iter().enumerate().map(|(i, l)| {
            let tls = !tls_flags.is_empty() && tls_flags[i % tls_flags.len()];
            Listener::Tcp(TcpListener::from_std(l), tls)
        }));
        if let (Some(l), Some(path)) = (sockets.unix, unix_path) {
            mio_listeners.push(Listener::Unix(UnixListener::from_std(l), Endpoint::Unix(path.into())));
        }
        for s in sockets.udp {
            mio_listeners.push(Listener::Udp(Box::new(UdpServer::new(s)?)));
        }
        for (i, l) in mio_listeners.iter_mut().enumerate() {
            poll.registry().register(l.source(), Token(LISTENER_BASE - i), Interest::READABLE)?;
        }
        let stats = shared.stats.worker(index);
        let ev = EventLoop {
            index,
            poll,
            listeners: mio_listeners,
            udp_ready: Vec::new(),
            conns: Slab::new(),
            shared,
            stats,
            ready: Vec::new(),
            watchers: Vec::new(),
            next_id: (index as u64) << 48,
        };
        Ok((ev, waker))
    }

    /// Runs until shutdown.
    pub fn run(mut self) {
        watch::set_current_loop(self.index);
        let mut events = Events::with_capacity(1024);
        let idle_timeout = self.shared.config.server.idle_timeout;
        let write_timeout = self.shared.config.server.write_timeout;
        // Request latency is measured only when it can be read (the
        // metrics endpoint): two clock reads a request otherwise wasted.
        let timed = self.shared.config.metrics.is_some();
        let mut last_check = self.shared.store.clock().now();
        loop {
            // Wake at least once a second to reap idle and stalled clients.
            let idle = self.ready.is_empty() && self.udp_ready.is_empty();
            let timeout = if idle { Duration::from_secs(1) } else { Duration::ZERO };
            let timeout = Some(timeout);
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("event loop {}: poll failed: {e}", self.index);
                break;
            }
            if self.shared.stopping.load(Ordering::Acquire) {
                break;
            }
            let now = self.shared.store.clock().now();
            let woke = timed.then(Instant::now);
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {
                        // Lower the flag before reading, so a line added
                        // meanwhile wakes the loop again.
                        self.shared.watch.woken(self.index);
                        for key in self.watchers.clone() {
                            self.serve(key, false, woke);
                        }
                    }
                    Token(t) if t > LISTENER_BASE - self.listeners.len() && t <= LISTENER_BASE => {
                        self.listener_ready(LISTENER_BASE - t, now, woke)
                    }
                    Token(key) => {
                        // A hang-up (or error) must be read to the end.
                        let hup = ev.is_read_closed() || ev.is_error();
                        self.serve(key, hup, woke)
                    }
                }
            }
            for key in std::mem::take(&mut self.ready) {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.queued = false;
                }
                self.serve(key, false, woke);
            }
            for i in std::mem::take(&mut self.udp_ready) {
                self.listener_ready(i, now, woke);
            }
            if now != last_check {
                last_check = now;
                self.close_idle(now, idle_timeout, write_timeout);
            }
        }
        self.drain();
    }

    /// Listener `i` is readable: accept, or answer datagrams.
    fn listener_ready(&mut self, i: usize, now: u32, woke: Option<Instant>) {
        if let Listener::Udp(u) = &mut self.listeners[i] {
            if !u.serve(&self.shared, &self.stats, woke) && !self.udp_ready.contains(&i) {
                self.udp_ready.push(i);
            }
            return;
        }
        self.accept(i, now);
    }

    /// Accepts one waiting connection from listener `i`: the stream, the
    /// client's address and the server's end, for `stats conns`.
    fn accept_one(&mut self, i: usize) -> io::Result<(Stream, Endpoint, Endpoint)> {
        match &mut self.listeners[i] {
            Listener::Tcp(l, tls) => {
                let (s, peer) = l.accept()?;
                let _ = s.set_nodelay(true);
                let local = s.local_addr().map_or(Endpoint::Tcp(peer), Endpoint::Tcp);
                let stream = match self.shared.tls.get().filter(|_| *tls) {
                    Some(t) => match t.accept() {
                        Ok(session) => Stream::Tls(Box::new(TlsStream::new(session, s, t.new_session_counter()))),
                        Err(e) => {
                            self.stats.ssl_handshake_errors.incr();
                            log::warn!("cannot start a TLS session for {peer}: {e}");
                            return Err(io::ErrorKind::Interrupted.into());
                        }
                    },
                    None => Stream::Tcp(s),
                };
                Ok((stream, Endpoint::Tcp(peer), local))
            }
            Listener::Unix(l, path) => {
                let (s, peer) = l.accept()?;
                let peer = peer.as_pathname().map_or(Endpoint::UnixUnnamed, |p| Endpoint::Unix(p.into()));
                Ok((Stream::Unix(s), peer, path.clone()))
            }
            Listener::Udp(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn accept(&mut self, i: usize, now: u32) {
        loop {
            let (mut stream, peer, local) = match self.accept_one(i) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog
                    // (memcached disables its listener then, and counts it).
                    self.stats.listen_disabled_num.incr();
                    log::warn!("accept failed: {e}");
                    return;
                }
            };
            let sh = &self.shared;
            let max = sh.config.server.max_connections;
            if sh.curr_connections.fetch_add(1, Ordering::AcqRel) >= max {
                sh.curr_connections.fetch_sub(1, Ordering::AcqRel);
                self.stats.rejected_connections.incr();
                // As memcached: say why, then hang up. Best effort: a fresh
                // socket's send buffer takes this short line. On a TLS port
                // too, in plain text on the raw socket, as memcached writes
                // it: the client's handshake fails on it at once (a bad
                // record) instead of writing into a closed socket.
                let _ = match &mut stream {
                    Stream::Tls(t) => t.tcp.write(TOO_MANY_CONNECTIONS),
                    other => other.write(TOO_MANY_CONNECTIONS),
                };
                if let Some(dropped) = REJECTED_LOG.allow(now) {
                    log::warn!(
                        "rejected connection from {peer}: too many open connections ({max}); {dropped} more not logged"
                    );
                }
                continue;
            }
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            if let Err(e) =
                self.poll.registry().register(&mut stream, Token(key), Interest::READABLE | Interest::WRITABLE)
            {
                log::warn!("cannot register connection from {peer}: {e}");
                sh.curr_connections.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            self.next_id += 1;
            log::debug!("accepted {peer} on loop {}", self.index);
            let conn = Connection::new(stream, self.next_id, peer, now);
            sh.conns.lock().insert(
                conn.id,
                ConnInfo {
                    fd: conn.fd,
                    addr: conn.peer.clone(),
                    listen_addr: local,
                    state: conn.state.clone(),
                    last_cmd: conn.last_active.clone(),
                    tls_subject: conn.tls_subject.clone(),
                },
            );
            sh.watch.log(watch::CONNEVENTS, &Event::ConnNew { peer: conn.peer.socket_addr(), fd: conn.fd });
            self.stats.total_connections.incr();
            entry.insert(conn);
        }
    }

    fn serve(&mut self, key: usize, hup: bool, woke: Option<Instant>) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        conn.hup |= hup;
        let served = conn.serve(&self.shared, &self.stats, woke);
        if conn.watching() && !self.watchers.contains(&key) {
            self.watchers.push(key);
        }
        match served {
            Served::Waiting => {}
            // A connection can be served twice in one round (a watcher
            // from the waker and from its socket): queue it once.
            Served::Yielded => {
                if !std::mem::replace(&mut conn.queued, true) {
                    self.ready.push(key);
                }
            }
            Served::Closed => self.close(key, None),
        }
    }

    /// Closes a connection, reported as `reason` (or as what the
    /// connection last recorded).
    fn close(&mut self, key: usize, reason: Option<CloseReason>) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            self.watchers.retain(|&k| k != key);
            let reason = reason.unwrap_or(conn.close_reason);
            let ev = Event::ConnClose { peer: conn.peer.socket_addr(), fd: conn.fd, reason };
            self.shared.watch.log(watch::CONNEVENTS, &ev);
            conn.stream.close_notify();
            let _ = self.poll.registry().deregister(&mut conn.stream);
            self.shared.conns.lock().remove(&conn.id);
            self.shared.curr_connections.fetch_sub(1, Ordering::AcqRel);
            log::debug!("closed {}", conn.peer);
        }
    }

    /// Closes connections idle past `-o idle_timeout` (no request
    /// completed) and those whose client leaves a full output buffer
    /// unread past `-o write_timeout`.
    fn close_idle(&mut self, now: u32, idle_timeout: u32, write_timeout: u32) {
        let mut idle = Vec::new();
        let mut stalled = Vec::new();
        for (k, c) in self.conns.iter() {
            if c.watching() {
                // A watcher sends nothing; it is not idle.
                continue;
            }
            // As memcached, only a connection waiting for a command can be
            // idle; one still sending (a long dump to a slow reader) is not.
            if idle_timeout > 0
                && !c.sending()
                && now.saturating_sub(c.last_active.load(Ordering::Relaxed)) > idle_timeout
            {
                idle.push(k);
            } else if c.write_stalled(now, write_timeout) {
                stalled.push(k);
            }
        }
        for key in idle {
            self.stats.idle_kicks.incr();
            self.close(key, Some(CloseReason::IdleTimeout));
        }
        for key in stalled {
            log::warn!("closing a client that does not read its replies");
            self.stats.write_stalls.incr();
            self.close(key, Some(CloseReason::Error));
        }
    }

    /// Shutdown: stop accepting, send what is queued (for a while), close.
    fn drain(&mut self) {
        for mut l in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(l.source());
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        let mut events = Events::with_capacity(256);
        while Instant::now() < deadline {
            let mut waiting = false;
            let now = self.shared.store.clock().now();
            for (_, c) in self.conns.iter_mut() {
                if c.flush(&self.stats, now).is_ok() && c.pending_output() > 0 {
                    waiting = true;
                }
            }
            if !waiting {
                break;
            }
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(50)));
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key, Some(CloseReason::Shutdown));
        }
    }
}
