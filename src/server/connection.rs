//! One client connection: its socket, input and output buffers, and the
//! loop that drains input into requests and requests into output.
//!
//! The edge-trigger invariant (mio's "Draining readiness"): the socket is
//! registered once for READABLE | WRITABLE, edge-triggered. [`Connection::serve`]
//! returns only when one of these holds, so an event will come back:
//! - the socket read returned WouldBlock (a readable edge will follow new
//!   data), or
//! - the socket write returned WouldBlock with output queued (a writable
//!   edge will follow), or
//! - it used up its `-R` request budget (counted per call, across reads)
//!   with input still buffered, or a `lru_crawler metadump` still to
//!   write: it then says [`Served::Yielded`] and the event loop calls it
//!   again without waiting for an event, or
//! - it is a `watch` stream with no line to send: a producer wakes the
//!   loop's Waker when lines arrive, and the loop serves its watchers.
//!
//! Memory per connection is bounded: input holds at most one partial
//! request (a line up to the parser's limit, a value up to `-I`) plus one
//! read; input is not parsed while more than [`OUTPUT_HIGH_WATER`] bytes of
//! replies wait to be sent, counting the TLS records the stream holds.
//! Parsing stopped there resumes as soon as a flush takes the output below
//! the mark, before any read: when the socket took it all without blocking,
//! neither a writable nor (for a pipeline sent in one write) a readable edge
//! would ever come for it.
//!
//! The socket is a [`Stream`] (TCP, TLS over TCP, or unix); [`run_one`], the step from
//! input bytes to reply bytes, is shared with UDP (`udp.rs`).

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::stream::Stream;
use crate::dispatch::{dispatch, Action, Session};
use crate::protocol::binary::{self, compose::BinaryReply};
use crate::protocol::text::{self, compose::TextReply};
use crate::protocol::{ParseError, Reply, Request, Status};
use crate::state::{ConnState, Endpoint, Shared};
use crate::stats::{command_kind, WorkerStats};
use crate::watch::{CloseReason, Watcher};

/// Log lines for connections closed over bad input are rate-limited.
static BAD_INPUT_LOG: super::LogLimiter = super::LogLimiter::new();

/// Input read size, and the initial input buffer.
const READ_CHUNK: usize = 16 * 1024;
/// Stop parsing requests while this much output is queued.
pub const OUTPUT_HIGH_WATER: usize = 1024 * 1024;
/// Buffers larger than this are released once empty.
const SHRINK_ABOVE: usize = 256 * 1024;
/// Fill-and-write rounds a watcher gets per wakeup before it yields.
const WATCH_ROUNDS: usize = 16;

/// How a [`Connection::serve`] call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Waiting for a readiness event.
    Waiting,
    /// Request budget used up with input left: serve again soon.
    Yielded,
    /// Close the connection now.
    Closed,
}

/// Parses one request at the start of `input`, runs it and appends its
/// reply to `out`. Returns what to do next, the bytes consumed and the
/// command kind (for latency). A reply longer than `reply_cap` is replaced
/// by `SERVER_ERROR out of memory writing get response` (UDP's bound; TCP
/// passes `usize::MAX` and has its own output cap).
#[inline]
pub fn run_one(
    sh: &Shared,
    w: &WorkerStats,
    session: &mut Session,
    input: &[u8],
    out: &mut Vec<u8>,
    reply_cap: usize,
) -> Result<(Action, usize, usize), ParseError> {
    let limits = &sh.config.server.limits;
    let mark = out.len();
    if session.binary {
        let (req, meta, used) = binary::parse(input, limits)?;
        let kind = command_kind(&req);
        let action = run_capped(sh, w, session, req, &mut BinaryReply::new(out, meta), mark, reply_cap);
        Ok((action, used, kind))
    } else {
        let (req, used) = text::parse(input, limits)?;
        let kind = command_kind(&req);
        let noreply = req.noreply();
        let action = run_capped(sh, w, session, req, &mut TextReply::new(out, noreply), mark, reply_cap);
        Ok((action, used, kind))
    }
}

/// Dispatches `req`; a reply past `reply_cap` bytes (queued after `mark`)
/// is replaced by the out-of-memory error.
#[inline]
fn run_capped<R: Reply>(
    sh: &Shared,
    w: &WorkerStats,
    session: &mut Session,
    req: Request<'_>,
    reply: &mut R,
    mark: usize,
    reply_cap: usize,
) -> Action {
    let action = dispatch(sh, w, session, req, reply);
    if reply.queued() - mark > reply_cap {
        reply.truncate(mark);
        reply.status(Status::ReplyTooLarge, 0);
    }
    action
}

/// A client connection owned by one event loop.
pub struct Connection {
    pub stream: Stream,
    pub id: u64,
    pub peer: Endpoint,
    /// Input bytes are `rbuf[start..filled]`; `rbuf` is always initialised.
    rbuf: Vec<u8>,
    start: usize,
    filled: usize,
    /// Output bytes not yet written are `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Input bytes still to discard (a refused value).
    swallow: usize,
    close_after_write: bool,
    peer_closed: bool,
    /// The peer has shut down its side (EPOLLRDHUP seen): read to EOF.
    pub hup: bool,
    /// Picked from the first byte (or `-B`); `None` until it arrives.
    session: Option<Session>,
    /// Relative time of the last completed request, for idle_timeout and
    /// `stats conns` (a client trickling bytes of one request is idle).
    pub last_active: Arc<AtomicU32>,
    /// Relative time output last made progress (or was empty).
    last_write: u32,
    /// A `lru_crawler metadump` being streamed: while set, its next part
    /// is written whenever output drains, and no input is parsed.
    dump: Option<crate::storage::Cursor>,
    /// What `stats conns` shows ([`ConnState`]); `shown` is our copy, so
    /// the shared one is written only when it changes.
    pub state: Arc<AtomicU8>,
    shown: ConnState,
    /// The socket's descriptor (`stats conns`, `cfd=` in watch lines).
    pub fd: i32,
    /// Set by `watch`: the connection is a log stream from then on.
    watcher: Option<Box<Watcher>>,
    /// What a close now would be reported as (`watch connevents`).
    pub close_reason: CloseReason,
    /// In the event loop's list of connections to serve again (it
    /// yielded): kept so that the list holds it once.
    pub queued: bool,
    /// The TLS client certificate's subject (`stats conns`), read once
    /// the first plaintext arrives.
    pub tls_subject: Arc<std::sync::OnceLock<String>>,
    subject_checked: bool,
}

impl Connection {
    pub fn new(stream: Stream, id: u64, peer: Endpoint, now: u32) -> Connection {
        let fd = {
            use std::os::fd::AsRawFd;
            stream.as_raw_fd()
        };
        Connection {
            stream,
            id,
            peer,
            rbuf: vec![0; READ_CHUNK],
            start: 0,
            filled: 0,
            wbuf: Vec::new(),
            wpos: 0,
            swallow: 0,
            close_after_write: false,
            peer_closed: false,
            session: None,
            hup: false,
            last_active: Arc::new(AtomicU32::new(now)),
            last_write: now,
            dump: None,
            state: Arc::new(AtomicU8::new(ConnState::NewCmd as u8)),
            shown: ConnState::NewCmd,
            fd,
            watcher: None,
            close_reason: CloseReason::Error,
            queued: false,
            tls_subject: Arc::new(std::sync::OnceLock::new()),
            subject_checked: false,
        }
    }

    /// Records what the connection is doing, for `stats conns`.
    #[inline]
    fn show(&mut self, state: ConnState) {
        if self.shown != state {
            self.shown = state;
            self.state.store(state as u8, Ordering::Relaxed);
        }
    }

    /// The state to show once parsing stopped for want of input: a command
    /// whose data is still coming is `conn_nread`.
    fn waiting_state(&self) -> ConnState {
        let input = &self.rbuf[self.start..self.filled];
        let line_in = match self.session {
            _ if self.swallow > 0 => true,
            Some(s) if s.binary => input.len() >= binary::header::HEADER_LEN,
            _ => input.contains(&b'\n'),
        };
        if line_in {
            ConnState::Nread
        } else {
            ConnState::NewCmd
        }
    }

    /// Whether the connection has become a `watch` log stream.
    pub fn watching(&self) -> bool {
        self.watcher.is_some()
    }

    /// Whether the connection owes the client output (queued replies, a
    /// dump in progress): it waits for the client, so it is not idle
    /// (`-o write_timeout` covers a client that stops reading).
    /// A TLS handshake in progress is not sending: a client that stalls
    /// in it is idle.
    pub fn sending(&self) -> bool {
        self.dump.is_some() || (self.pending_output() > 0 && !self.stream.handshaking())
    }

    /// Output queued and not yet written: the replies not yet handed to
    /// the stream, plus the TLS records it holds (by their estimated size,
    /// so they count toward [`OUTPUT_HIGH_WATER`] as plaintext does).
    pub fn pending_output(&self) -> usize {
        self.wbuf.len() - self.wpos + self.stream.held_output()
    }

    /// Handles whatever is readable and writable now (see the module doc).
    /// Reads, runs and answers what the client sent. `woke` is when the
    /// event loop woke for it: a request's latency runs from there (or from
    /// the end of the request before it) to its reply, one clock read each;
    /// `None` when latency is not recorded.
    pub fn serve(&mut self, sh: &Shared, w: &WorkerStats, woke: Option<Instant>) -> Served {
        let budget = sh.config.server.reqs_per_event;
        let mut mark = woke;
        let now = sh.store.clock().now();
        if self.watcher.is_some() {
            return self.serve_watch(w, now);
        }
        let mut drained = false;
        // Requests run in this call, across reads: the `-R` budget is per
        // event, as memcached's, so one client cannot hold the loop.
        let mut handled = 0;
        loop {
            if self.session.is_none() && self.filled > self.start {
                let mut session = Session::for_first_byte(&sh.config, self.rbuf[self.start]);
                session.fd = self.fd;
                self.session = Some(session);
            }
            if self.filled > self.start {
                self.show(ConnState::ParseCmd);
            }
            // Parse and run what is buffered.
            while !self.close_after_write && self.pending_output() < OUTPUT_HIGH_WATER {
                if self.swallow > 0 {
                    let n = self.swallow.min(self.filled - self.start);
                    self.start += n;
                    self.swallow -= n;
                    if self.swallow > 0 {
                        break;
                    }
                }
                if handled == budget {
                    break;
                }
                if let Some(cur) = self.dump.as_mut() {
                    // Each part counts as a request against the -R budget.
                    handled += 1;
                    if crate::dispatch::metadump_step(sh, cur, &mut self.wbuf) {
                        self.dump = None;
                    }
                    continue;
                }
                let Some(session) = self.session.as_mut() else { break };
                if self.start == self.filled {
                    // Nothing buffered: no request can be parsed.
                    break;
                }
                let input = &self.rbuf[self.start..self.filled];
                let parsed = run_one(sh, w, session, input, &mut self.wbuf, usize::MAX);
                match parsed {
                    Ok((action, used, kind)) => {
                        if let Some(mark) = mark.as_mut() {
                            let done = Instant::now();
                            w.latency.record(kind, done.saturating_duration_since(*mark));
                            *mark = done;
                        }
                        self.start += used;
                        handled += 1;
                        self.last_active.store(now, Ordering::Relaxed);
                        if self.pending_output() > sh.config.server.output_cap {
                            log::warn!("closing {}: output past the cap", self.peer);
                            return Served::Closed;
                        }
                        match action {
                            Action::Continue => {}
                            Action::Swallow(n) => self.swallow = n,
                            Action::Close => self.close_after_write = true,
                            Action::Quit => {
                                self.close_reason = CloseReason::Normal;
                                self.close_after_write = true;
                            }
                            Action::Dump(cur) => self.dump = Some(cur),
                            Action::Watch(classes) => {
                                // Nothing sent after `watch` is run.
                                self.start = self.filled;
                                self.watcher = Some(Box::new(sh.watch.watch(classes)));
                                return self.serve_watch(w, now);
                            }
                        }
                    }
                    Err(ParseError::Incomplete) => break,
                    Err(ParseError::Close(why)) => {
                        if let Some(dropped) = BAD_INPUT_LOG.allow(now) {
                            log::warn!("closing {}: {why:?}; {dropped} more not logged", self.peer);
                        }
                        // The replies to the requests before it still go
                        // out, byte for byte; nothing after it is read.
                        self.start = self.filled;
                        self.close_after_write = true;
                    }
                }
            }
            // Parsing stopped at the output mark (not for want of input):
            // what is still buffered must be parsed once output drains.
            let backed_up = !self.close_after_write && self.pending_output() >= OUTPUT_HIGH_WATER;
            if !(handled == budget && self.start < self.filled) && self.pending_output() < OUTPUT_HIGH_WATER {
                let state = self.waiting_state();
                self.show(state);
            }
            if self.start == self.filled {
                self.start = 0;
                self.filled = 0;
                if self.rbuf.len() > SHRINK_ABOVE {
                    self.rbuf = vec![0; READ_CHUNK];
                }
            }
            if self.flush(w, now).is_err() {
                return Served::Closed;
            }
            if self.close_after_write {
                return if self.pending_output() == 0 { Served::Closed } else { Served::Waiting };
            }
            if self.pending_output() >= OUTPUT_HIGH_WATER {
                // The client is not reading; wait for a writable edge.
                return Served::Waiting;
            }
            if handled == budget && (self.start < self.filled || self.dump.is_some()) {
                w.conn_yields.incr();
                return Served::Yielded;
            }
            if backed_up && self.start < self.filled {
                // The flush took the output below the mark without the
                // socket blocking: no writable edge will come, and the
                // client may send nothing more (a pipeline in one write),
                // so no readable edge either. Parse on now; the budget
                // bounds how long.
                continue;
            }
            if self.peer_closed {
                // A half-closed client still reads: what is queued for it
                // (the end of a dump, pipelined replies) goes out first.
                self.close_reason = CloseReason::Normal;
                if self.pending_output() == 0 {
                    return Served::Closed;
                }
                self.close_after_write = true;
                return Served::Waiting;
            }
            if self.dump.is_some() {
                // Output drained below the mark: write the dump's next part.
                continue;
            }
            if drained && !self.hup {
                // The last read came back short: the socket was empty then,
                // and edge-triggered readiness raises a new event for any
                // byte that comes later, so the read that would only say
                // WouldBlock is skipped (a syscall per request). Not when
                // the peer has hung up: its FIN may have come with the data,
                // and no event will follow it.
                return Served::Waiting;
            }
            match self.read(w) {
                Ok((0, _)) => self.peer_closed = true,
                Ok((n, space)) => drained = n < space && self.stream.short_read_drains(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Served::Waiting,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Counted before the alert goes out: a client that saw
                    // the refusal finds it in `stats`.
                    if self.stream.take_handshake_error() {
                        w.ssl_handshake_errors.incr();
                        if let Some(dropped) = BAD_INPUT_LOG.allow(now) {
                            log::info!("TLS handshake with {} failed: {e}; {dropped} more not logged", self.peer);
                        }
                    }
                    // The alert rustls queued, best effort.
                    let _ = self.stream.flush_held();
                    return Served::Closed;
                }
            }
        }
    }

    /// Serves a `watch` stream: input is read and dropped (end of input
    /// ends the stream); the watcher's lines are copied into the output,
    /// at most `-o watcher_logbuf_size` unsent bytes at a time, and
    /// written. Returns as [`Connection::serve`] does: waiting on a
    /// readable or writable edge, or on the loop's waker, which producers
    /// use when new lines arrive (see `crate::watch`).
    fn serve_watch(&mut self, w: &WorkerStats, now: u32) -> Served {
        for round in 0.. {
            if round == WATCH_ROUNDS {
                w.conn_yields.incr();
                return Served::Yielded;
            }
            self.start = 0;
            self.filled = 0;
            match self.stream.read(&mut self.rbuf) {
                Ok(0) => {
                    self.close_reason = CloseReason::Normal;
                    return Served::Closed;
                }
                Ok(n) => {
                    w.bytes_read.add(n as u64);
                    if n == self.rbuf.len() || self.hup || !self.stream.short_read_drains() {
                        continue;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // A TLS alert rustls queued, best effort.
                    let _ = self.stream.flush_held();
                    return Served::Closed;
                }
            }
            break;
        }
        let Some(mut watcher) = self.watcher.take() else { return Served::Waiting };
        let served = self.stream_lines(&mut watcher, w, now);
        self.watcher = Some(watcher);
        served
    }

    fn stream_lines(&mut self, watcher: &mut Watcher, w: &WorkerStats, now: u32) -> Served {
        for _ in 0..WATCH_ROUNDS {
            if self.flush(w, now).is_err() {
                return Served::Closed;
            }
            if self.wpos > 0 {
                // Keep only unsent bytes, so the watcher's limit counts them.
                self.wbuf.drain(..self.wpos);
                self.wpos = 0;
            }
            let added = watcher.fill(&mut self.wbuf);
            if self.pending_output() > added {
                // The last write would block: a writable edge follows.
                return Served::Waiting;
            }
            if added == 0 {
                // Nothing waiting: the next line wakes this loop.
                return Served::Waiting;
            }
        }
        w.conn_yields.incr();
        Served::Yielded
    }

    /// One read into the input buffer, growing it if a partial request
    /// fills it (the parser bounds how far that goes).
    /// Returns the bytes read and the room there was for them.
    fn read(&mut self, w: &WorkerStats) -> io::Result<(usize, usize)> {
        if self.start > 0 {
            self.rbuf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        if self.rbuf.len() - self.filled < READ_CHUNK / 2 {
            let grow = self.rbuf.len().max(READ_CHUNK);
            self.rbuf.resize(self.rbuf.len() + grow, 0);
        }
        let space = self.rbuf.len() - self.filled;
        let n = self.stream.read(&mut self.rbuf[self.filled..])?;
        if !self.subject_checked && n > 0 {
            self.subject_checked = true;
            if let Some(subject) = self.stream.peer_subject() {
                let _ = self.tls_subject.set(subject);
            }
        }
        self.filled += n;
        w.bytes_read.add(n as u64);
        Ok((n, space))
    }

    /// Writes queued output until done or WouldBlock. `now` records
    /// progress: bytes taken by the stream or written by it (TLS records),
    /// or nothing left to send. A client that reads nothing makes none,
    /// whatever it sends, so `write_timeout` sees it.
    pub fn flush(&mut self, w: &WorkerStats, now: u32) -> io::Result<()> {
        let sent = self.stream.bytes_sent();
        let result = self.write_out(w, now);
        if self.pending_output() == 0 || self.stream.bytes_sent() != sent {
            self.last_write = now;
        }
        result
    }

    fn write_out(&mut self, w: &WorkerStats, now: u32) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    self.last_write = now;
                    w.bytes_written.add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
        if self.wbuf.capacity() > SHRINK_ABOVE {
            self.wbuf = Vec::new();
        }
        self.stream.flush_held()
    }

    /// Whether the client has left a full output buffer unread for more
    /// than `timeout` seconds.
    pub fn write_stalled(&self, now: u32, timeout: u32) -> bool {
        // A watcher that does not read loses lines instead (bounded).
        self.watcher.is_none()
            && self.pending_output() >= OUTPUT_HIGH_WATER
            && now.saturating_sub(self.last_write) > timeout
    }
}
