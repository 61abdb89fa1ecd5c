//! UDP (`-U`): memcached's datagram protocol, served by the event loops.
//!
//! Every datagram starts with an 8-byte frame header of four big-endian
//! u16s: request id, sequence number, datagram count, reserved (0). A
//! request is one datagram (a header saying more than one is dropped, as
//! memcached does) whose payload is text or binary requests, run in order.
//! Their replies form one message, cut into datagrams of at most
//! [`MAX_DATAGRAM`] bytes, each with the request's id, its sequence number
//! and the count.
//!
//! **Amplification bound.** A UDP source address can be forged, so a reply
//! is traffic sent to whoever the sender claims to be. A reply is at most
//! [`MAX_REPLY_DATAGRAMS`] datagrams ([`MAX_REPLY_DATAGRAMS`] x
//! [`MAX_DATAGRAM`] = 44,800 bytes) whatever the request asked for; a
//! request whose reply would be longer gets `SERVER_ERROR out of memory
//! writing get response` instead (one datagram). The smallest useful
//! request (`get k`, 14 bytes with its header) can thus draw at most
//! 44,800 bytes: a factor of 3,200, against 1 MB (75,000x) for a 1 MB
//! value without the bound. UDP is off unless `-U` turns it on, as in
//! memcached since 1.5.6; `docs/security.md` says more.
//!
//! Each loop has its own socket per address (SO_REUSEPORT; the kernel keeps
//! a client's datagrams on one of them), and reads at most `-R` datagrams
//! per wakeup before serving its other sockets.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::UdpSocket;

use super::connection::run_one;
use crate::dispatch::{Action, Session};
use crate::protocol::ParseError;
use crate::state::Shared;
use crate::stats::WorkerStats;

/// The frame header's length.
pub const HEADER_LEN: usize = 8;
/// The largest datagram sent, header included (memcached's size).
pub const MAX_DATAGRAM: usize = 1400;
/// Reply bytes per datagram.
pub const PAYLOAD: usize = MAX_DATAGRAM - HEADER_LEN;
/// The most datagrams one request is answered with.
pub const MAX_REPLY_DATAGRAMS: usize = 32;
/// Replies are cut at this length; below the datagram bound by room for
/// the error reply that replaces the request that crossed it.
const MAX_REPLY: usize = MAX_REPLY_DATAGRAMS * PAYLOAD - 256;
/// The largest datagram received (the largest a UDP datagram can be).
const RECV_BUFFER: usize = 65536;

/// A request datagram's id and payload; `None` for a datagram to drop (no
/// payload, or a request in several datagrams).
pub fn parse_request(datagram: &[u8]) -> Option<(u16, &[u8])> {
    if datagram.len() <= HEADER_LEN {
        return None;
    }
    let id = u16::from_be_bytes([datagram[0], datagram[1]]);
    let total = u16::from_be_bytes([datagram[4], datagram[5]]);
    if total != 1 {
        return None;
    }
    Some((id, &datagram[HEADER_LEN..]))
}

/// How many datagrams carry a reply of `len` bytes.
pub fn datagram_count(len: usize) -> usize {
    len.div_ceil(PAYLOAD)
}

/// Writes datagram `seq` of the reply `reply` into `out` (cleared first).
pub fn frame(request_id: u16, reply: &[u8], seq: usize, out: &mut Vec<u8>) {
    let total = datagram_count(reply.len());
    debug_assert!(seq < total && total <= usize::from(u16::MAX));
    out.clear();
    out.extend_from_slice(&request_id.to_be_bytes());
    out.extend_from_slice(&(seq as u16).to_be_bytes());
    out.extend_from_slice(&(total as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    let start = seq * PAYLOAD;
    out.extend_from_slice(&reply[start..(start + PAYLOAD).min(reply.len())]);
}

/// One UDP socket of one event loop, with its buffers.
pub struct UdpServer {
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    rbuf: Vec<u8>,
    reply: Vec<u8>,
    datagram: Vec<u8>,
}

impl UdpServer {
    pub fn new(socket: std::net::UdpSocket) -> io::Result<UdpServer> {
        let addr = socket.local_addr()?;
        Ok(UdpServer {
            socket: UdpSocket::from_std(socket),
            addr,
            rbuf: vec![0; RECV_BUFFER],
            reply: Vec::new(),
            datagram: Vec::with_capacity(MAX_DATAGRAM),
        })
    }

    /// Answers waiting datagrams: until the socket is empty (returns true)
    /// or `-R` datagrams were served (returns false: call again soon; the
    /// edge-triggered socket raises no new event for what is queued).
    pub fn serve(&mut self, sh: &Shared, w: &WorkerStats, woke: Option<Instant>) -> bool {
        for _ in 0..sh.config.server.reqs_per_event {
            let (n, from) = match self.socket.recv_from(&mut self.rbuf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // An ICMP error from an earlier reply, say: not ours to end.
                    log::debug!("udp {}: receive failed: {e}", self.addr);
                    continue;
                }
            };
            w.bytes_read.add(n as u64);
            let Some((id, payload)) = parse_request(&self.rbuf[..n]) else { continue };
            self.reply.clear();
            run_datagram(sh, w, payload, &mut self.reply, woke);
            let total = datagram_count(self.reply.len());
            if total > MAX_REPLY_DATAGRAMS {
                // Cannot happen (run_datagram caps); never send it anyway.
                log::warn!("udp reply of {} bytes dropped", self.reply.len());
                continue;
            }
            for seq in 0..total {
                frame(id, &self.reply, seq, &mut self.datagram);
                match self.socket.send_to(&self.datagram, from) {
                    Ok(sent) => w.bytes_written.add(sent as u64),
                    Err(e) => {
                        // A full send buffer (WouldBlock) loses the rest of
                        // the reply: UDP promises no delivery.
                        log::debug!("udp reply to {from} cut at datagram {seq}/{total}: {e}");
                        break;
                    }
                }
            }
        }
        false
    }
}

/// The reply to a command that streams (`lru_crawler metadump`, `watch`).
const STREAM_OVER_UDP: &[u8] = b"SERVER_ERROR streaming commands need a TCP or unix socket connection\r\n";

/// Runs the requests of one datagram's payload, appending their replies to
/// `reply` (at most [`MAX_REPLY`] bytes plus one error reply). Stops at an
/// incomplete request (the rest of a request never comes in a later
/// datagram) and after `quit`.
fn run_datagram(sh: &Shared, w: &WorkerStats, mut input: &[u8], reply: &mut Vec<u8>, woke: Option<Instant>) {
    let mut session = Session::for_first_byte(&sh.config, input[0]);
    let mut mark = woke;
    while !input.is_empty() && reply.len() < MAX_REPLY {
        let cap = MAX_REPLY - reply.len();
        let start = reply.len();
        match run_one(sh, w, &mut session, input, reply, cap) {
            Ok((action, used, kind)) => {
                if let Some(mark) = mark.as_mut() {
                    let done = Instant::now();
                    w.latency.record(kind, done.saturating_duration_since(*mark));
                    *mark = done;
                }
                input = &input[used..];
                match action {
                    Action::Continue => {}
                    Action::Swallow(n) => input = &input[n.min(input.len())..],
                    // A metadump streams over many writes; a datagram's
                    // reply is bounded, so over UDP it stops here.
                    Action::Close | Action::Quit => return,
                    // A metadump or a watch stream outlives one reply: over
                    // UDP it is refused rather than answered in part.
                    Action::Dump(_) | Action::Watch(_) => {
                        reply.truncate(start);
                        reply.extend_from_slice(STREAM_OVER_UDP);
                        return;
                    }
                }
            }
            Err(ParseError::Incomplete) | Err(ParseError::Close(_)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(id: u16, seq: u16, total: u16) -> Vec<u8> {
        [id, seq, total, 0].iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    #[test]
    fn request_header_is_read_and_multi_datagram_requests_dropped() {
        let mut d = header(0x1234, 0, 1);
        d.extend_from_slice(b"get a\r\n");
        assert_eq!(parse_request(&d), Some((0x1234, &b"get a\r\n"[..])));
        let mut two = header(1, 0, 2);
        two.extend_from_slice(b"get a\r\n");
        assert_eq!(parse_request(&two), None);
        assert_eq!(parse_request(&header(1, 0, 1)), None, "no payload");
        for cut in 0..HEADER_LEN {
            assert_eq!(parse_request(&d[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn replies_are_cut_into_framed_datagrams() {
        let reply: Vec<u8> = (0..PAYLOAD * 2 + 5).map(|i| i as u8).collect();
        assert_eq!(datagram_count(0), 0);
        assert_eq!(datagram_count(1), 1);
        assert_eq!(datagram_count(PAYLOAD), 1);
        assert_eq!(datagram_count(reply.len()), 3);
        let mut out = Vec::new();
        let mut joined = Vec::new();
        for seq in 0..3 {
            frame(77, &reply, seq, &mut out);
            assert!(out.len() <= MAX_DATAGRAM);
            assert_eq!(&out[..HEADER_LEN], &header(77, seq as u16, 3)[..]);
            joined.extend_from_slice(&out[HEADER_LEN..]);
        }
        assert_eq!(joined, reply);
        assert_eq!(out.len(), HEADER_LEN + 5);
    }

    #[test]
    fn the_bound_leaves_room_for_the_error_reply() {
        const { assert!(MAX_REPLY + 256 <= MAX_REPLY_DATAGRAMS * PAYLOAD) };
        assert_eq!(MAX_REPLY_DATAGRAMS * MAX_DATAGRAM, 44_800);
    }
}
