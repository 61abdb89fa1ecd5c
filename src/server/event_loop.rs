//! One event loop: a mio `Poll` with this thread's listeners and
//! connections. Tokens: connections are their `slab` key; listeners and the
//! waker sit at the top of the token space.
//!
//! A loop accepts on its own listeners (SO_REUSEPORT gives each loop its
//! share of new connections), serves its connections until they block, and
//! serves again, without waiting, those that yielded at their `-R` budget.
//! Once a second it closes connections idle past `-o idle_timeout`.

use std::io::{self, Write};
use std::net::TcpListener as StdListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::protocol::text::compose::TOO_MANY_CONNECTIONS;
use crate::state::{ConnInfo, Shared};
use crate::stats::WorkerStats;
use crate::watch::{self, CloseReason, Event};

use super::connection::{Connection, Served};

const WAKER: Token = Token(usize::MAX);
/// Log lines for refused clients are rate-limited.
static REJECTED_LOG: super::LogLimiter = super::LogLimiter::new();
/// Listener `i` has token `LISTENER_BASE - i`.
const LISTENER_BASE: usize = usize::MAX - 1;
/// How long shutdown waits for queued replies to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// One event loop and everything it owns.
pub struct EventLoop {
    index: usize,
    poll: Poll,
    listeners: Vec<TcpListener>,
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
    pub fn new(index: usize, listeners: Vec<StdListener>, shared: Arc<Shared>) -> io::Result<(EventLoop, Arc<Waker>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut mio_listeners = Vec::with_capacity(listeners.len());
        for (i, l) in listeners.into_iter().enumerate() {
            let mut l = TcpListener::from_std(l);
            poll.registry().register(&mut l, Token(LISTENER_BASE - i), Interest::READABLE)?;
            mio_listeners.push(l);
        }
        let stats = shared.stats.worker(index);
        let ev = EventLoop {
            index,
            poll,
            listeners: mio_listeners,
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
        let mut last_check = Instant::now();
        loop {
            // Wake at least once a second to reap idle and stalled clients.
            let timeout = if self.ready.is_empty() { Duration::from_secs(1) } else { Duration::ZERO };
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
            let woke = Instant::now();
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
                        self.accept(LISTENER_BASE - t, now)
                    }
                    Token(key) => {
                        // A hang-up (or error) must be read to the end.
                        let hup = ev.is_read_closed() || ev.is_error();
                        self.serve(key, hup, woke)
                    }
                }
            }
            for key in std::mem::take(&mut self.ready) {
                self.serve(key, false, woke);
            }
            if woke.saturating_duration_since(last_check) >= Duration::from_secs(1) {
                last_check = woke;
                self.close_idle(now, idle_timeout, write_timeout);
            }
        }
        self.drain();
    }

    fn accept(&mut self, i: usize, now: u32) {
        loop {
            let (mut stream, peer) = match self.listeners[i].accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog.
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
                // socket's send buffer takes this short line.
                let _ = stream.write(TOO_MANY_CONNECTIONS);
                if let Some(dropped) = REJECTED_LOG.allow(now) {
                    log::warn!(
                        "rejected connection from {peer}: too many open connections ({max}); {dropped} more not logged"
                    );
                }
                continue;
            }
            let _ = stream.set_nodelay(true);
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
            let conn = Connection::new(stream, self.next_id, peer, now);
            let local = conn.stream.local_addr().unwrap_or(peer);
            sh.conns.lock().insert(conn.id, ConnInfo { fd: conn.fd, peer, local, last_cmd: conn.last_active.clone() });
            sh.watch.log(watch::CONNEVENTS, &Event::ConnNew { peer, fd: conn.fd });
            self.stats.total_connections.incr();
            log::debug!("accepted {peer} on loop {}", self.index);
            entry.insert(conn);
        }
    }

    fn serve(&mut self, key: usize, hup: bool, woke: Instant) {
        let Some(conn) = self.conns.get_mut(key) else { return };
        conn.hup |= hup;
        let served = conn.serve(&self.shared, &self.stats, woke);
        if conn.watching() && !self.watchers.contains(&key) {
            self.watchers.push(key);
        }
        match served {
            Served::Waiting => {}
            Served::Yielded => self.ready.push(key),
            Served::Closed => self.close(key, None),
        }
    }

    /// Closes a connection, reported as `reason` (or as what the
    /// connection last recorded).
    fn close(&mut self, key: usize, reason: Option<CloseReason>) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            self.watchers.retain(|&k| k != key);
            let reason = reason.unwrap_or(conn.close_reason);
            let ev = Event::ConnClose { peer: conn.peer, fd: conn.fd, reason };
            self.shared.watch.log(watch::CONNEVENTS, &ev);
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
            if idle_timeout > 0 && now.saturating_sub(c.last_active.load(Ordering::Relaxed)) > idle_timeout {
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
            let _ = self.poll.registry().deregister(&mut l);
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
