//! `ferrocache-floor`: a server that stores nothing, for measuring what a
//! request costs below any cache.
//!
//! It makes the syscalls ferrocache makes and does nothing else: one mio
//! event loop per thread (`-t`), each with its own SO_REUSEPORT listener;
//! per readable edge one `read` into a 16 KiB input buffer that grows the
//! way ferrocache's does, every complete request in it framed and
//! answered into one output buffer, and one `write` of all those replies.
//! A short read ends the turn without the extra read that would only say
//! WouldBlock, as in `src/server/connection.rs`. The CPU it spends per
//! request is the floor that `scripts/bench-vs-memcached --floor` divides
//! the real servers' CPU by.
//!
//! It frames just enough of the protocols to answer load generators:
//! text `get`/`gets` (any number of keys) answer every key with the same
//! `--value-size` bytes, the storage commands read their data block and
//! answer `STORED`, `delete` answers `NOT_FOUND`, `version`, `mn` (the meta
//! no-op), `quit`, and anything else `ERROR`. Binary GET/GETQ/GETK/GETKQ, SET/SETQ and NOOP
//! are answered the same way; other binary opcodes get "unknown command".
//! Like ferrocache it prints `ferrocache listening on ADDR` once bound
//! (`-p -1` binds an ephemeral port), so the same tools can start it.

#[path = "shared/buffers.rs"]
mod buffers;

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use clap::Parser;
use ferrocache::num::push_u64;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use buffers::{Input, Output};

/// Input read size and the initial input buffer (as in ferrocache).
const READ_CHUNK: usize = 16 * 1024;
/// A text command line longer than this without its end closes the
/// connection (a `get` may be longer: its keys are bounded by this).
const MAX_LINE: usize = 2048;
const MAX_GET_LINE: usize = 64 * 1024;
/// Data blocks larger than this are refused (ferrocache's default `-I`).
const MAX_VALUE: usize = 1024 * 1024;
/// Stop framing requests while this much output waits to be sent.
const OUTPUT_HIGH_WATER: usize = 1024 * 1024;
const LISTENER: Token = Token(usize::MAX);

#[derive(Parser, Debug)]
#[command(name = "ferrocache-floor", about = "A do-nothing memcached-protocol server: the cost floor of a request")]
struct Args {
    /// TCP port; 0 or -1 binds any free port (printed on the ready line)
    #[arg(short = 'p', long, default_value_t = 11211, allow_negative_numbers = true)]
    port: i32,
    /// Address to listen on
    #[arg(short = 'l', long, default_value = "127.0.0.1")]
    listen: String,
    /// Event-loop threads
    #[arg(short = 't', long, default_value_t = 4)]
    threads: usize,
    /// Size of the value every get returns
    #[arg(long, default_value_t = 32)]
    value_size: usize,
}

/// What framing one request at the start of the input found.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A request of this many bytes was answered.
    Done(usize),
    /// More input is needed.
    Incomplete,
    /// Answered; the connection closes once the output is written.
    Close,
}

/// Frames and answers requests; owns the connection's buffers but no
/// socket, so tests can feed it bytes in any pieces.
struct Framer {
    input: Input,
    out: Output,
    /// Input bytes still to drop (a refused data block).
    swallow: usize,
    /// Decided from the first byte.
    binary: Option<bool>,
    closing: bool,
}

impl Framer {
    fn new() -> Framer {
        Framer { input: Input::new(READ_CHUNK), out: Output::default(), swallow: 0, binary: None, closing: false }
    }

    /// Answers every complete request buffered, while output is below the
    /// high-water mark.
    fn run(&mut self, value: &[u8]) {
        while !self.closing && self.out.pending() < OUTPUT_HIGH_WATER {
            if self.swallow > 0 {
                let n = self.swallow.min(self.input.len());
                self.input.take(n);
                self.swallow -= n;
                if self.swallow > 0 {
                    break;
                }
            }
            let input = self.input.bytes();
            let Some(&first) = input.first() else { break };
            let binary = *self.binary.get_or_insert(first == 0x80);
            let step = if binary {
                binary_step(input, value, &mut self.out.buf)
            } else {
                text_step(input, value, &mut self.out.buf, &mut self.swallow)
            };
            match step {
                Step::Done(n) => self.input.take(n),
                Step::Incomplete => break,
                Step::Close => self.closing = true,
            }
        }
    }
}

/// Frames one text request at the start of `input` and appends its reply.
fn text_step(input: &[u8], value: &[u8], out: &mut Vec<u8>, swallow: &mut usize) -> Step {
    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
        let is_get = input.starts_with(b"get") || input.len() < 3;
        let limit = if is_get { MAX_GET_LINE } else { MAX_LINE };
        return if input.len() > limit { error(out, "CLIENT_ERROR line too long") } else { Step::Incomplete };
    };
    let line = &input[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let Some(cmd) = words.next() else {
        out.extend_from_slice(b"ERROR\r\n");
        return Step::Done(nl + 1);
    };
    match cmd {
        b"get" | b"gets" => {
            let mut any = false;
            for key in words {
                any = true;
                out.extend_from_slice(b"VALUE ");
                out.extend_from_slice(key);
                out.extend_from_slice(b" 0 ");
                push_u64(out, value.len() as u64);
                if cmd == b"gets" {
                    out.extend_from_slice(b" 1");
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(value);
                out.extend_from_slice(b"\r\n");
            }
            if !any {
                out.extend_from_slice(b"ERROR\r\n");
            } else {
                out.extend_from_slice(b"END\r\n");
            }
            Step::Done(nl + 1)
        }
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            let args: Vec<&[u8]> = words.collect();
            let fixed = if cmd == b"cas" { 5 } else { 4 };
            let num =
                |i: usize| args.get(i).and_then(|w| std::str::from_utf8(w).ok()).and_then(|w| w.parse::<i64>().ok());
            let numbers_ok = num(1).is_some() && num(2).is_some() && (fixed == 4 || num(4).is_some());
            let len = num(3).and_then(|n| usize::try_from(n).ok()).filter(|_| numbers_ok);
            let (Some(len), true) = (len, args.len() == fixed || args.len() == fixed + 1) else {
                return error(out, "CLIENT_ERROR bad command line format");
            };
            let noreply = args.len() == fixed + 1 && args[fixed] == b"noreply";
            if len > MAX_VALUE {
                out.extend_from_slice(b"SERVER_ERROR object too large for cache\r\n");
                *swallow = len + 2;
                return Step::Done(nl + 1);
            }
            let end = nl + 1 + len + 2;
            if input.len() < end {
                return Step::Incomplete;
            }
            if &input[end - 2..end] != b"\r\n" {
                return error(out, "CLIENT_ERROR bad data chunk");
            }
            if !noreply {
                out.extend_from_slice(b"STORED\r\n");
            }
            Step::Done(end)
        }
        b"delete" => {
            out.extend_from_slice(b"NOT_FOUND\r\n");
            Step::Done(nl + 1)
        }
        b"version" => {
            out.extend_from_slice(b"VERSION ferrocache-floor\r\n");
            Step::Done(nl + 1)
        }
        b"mn" => {
            out.extend_from_slice(b"MN\r\n");
            Step::Done(nl + 1)
        }
        b"quit" => Step::Close,
        _ => {
            out.extend_from_slice(b"ERROR\r\n");
            Step::Done(nl + 1)
        }
    }
}

/// Appends `msg` and closes: a malformed request leaves the framing lost.
fn error(out: &mut Vec<u8>, msg: &str) -> Step {
    out.extend_from_slice(msg.as_bytes());
    out.extend_from_slice(b"\r\n");
    Step::Close
}

/// Binary opcodes it answers.
const GET: u8 = 0x00;
const SET: u8 = 0x01;
const QUIT: u8 = 0x07;
const GETQ: u8 = 0x09;
const NOOP: u8 = 0x0a;
const GETK: u8 = 0x0c;
const GETKQ: u8 = 0x0d;
const SETQ: u8 = 0x11;
const UNKNOWN_COMMAND: u16 = 0x0081;

/// Frames one binary request at the start of `input` and appends its reply.
fn binary_step(input: &[u8], value: &[u8], out: &mut Vec<u8>) -> Step {
    if input.len() < 24 {
        return Step::Incomplete;
    }
    if input[0] != 0x80 {
        return Step::Close;
    }
    let opcode = input[1];
    let keylen = u16::from_be_bytes([input[2], input[3]]) as usize;
    let extlen = input[4] as usize;
    let body = u32::from_be_bytes([input[8], input[9], input[10], input[11]]) as usize;
    if body > MAX_VALUE + 64 * 1024 || keylen + extlen > body {
        return Step::Close;
    }
    if input.len() < 24 + body {
        return Step::Incomplete;
    }
    let opaque = [input[12], input[13], input[14], input[15]];
    let key = &input[24 + extlen..24 + extlen + keylen];
    match opcode {
        GET | GETQ | GETK | GETKQ => {
            let key = if opcode == GETK || opcode == GETKQ { key } else { &[][..] };
            bin_header(out, opcode, key.len(), 4, 0, 4 + key.len() + value.len(), opaque);
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(key);
            out.extend_from_slice(value);
        }
        SET => bin_header(out, opcode, 0, 0, 0, 0, opaque),
        SETQ => {}
        NOOP => bin_header(out, opcode, 0, 0, 0, 0, opaque),
        QUIT => {
            bin_header(out, opcode, 0, 0, 0, 0, opaque);
            return Step::Close;
        }
        _ => {
            let msg = b"Unknown command";
            bin_header(out, opcode, 0, 0, UNKNOWN_COMMAND, msg.len(), opaque);
            out.extend_from_slice(msg);
        }
    }
    Step::Done(24 + body)
}

fn bin_header(out: &mut Vec<u8>, opcode: u8, keylen: usize, extlen: u8, status: u16, body: usize, opaque: [u8; 4]) {
    out.extend_from_slice(&[0x81, opcode]);
    out.extend_from_slice(&(keylen as u16).to_be_bytes());
    out.extend_from_slice(&[extlen, 0]);
    out.extend_from_slice(&status.to_be_bytes());
    out.extend_from_slice(&(body as u32).to_be_bytes());
    out.extend_from_slice(&opaque);
    out.extend_from_slice(&[0; 8]);
}

/// A client connection: a socket and its framer.
struct Conn {
    sock: TcpStream,
    f: Framer,
    peer_closed: bool,
}

/// How a turn on a connection ended.
enum Turn {
    Waiting,
    Closed,
}

impl Conn {
    /// Frames what is buffered, writes, reads, until the socket would
    /// block or a short read shows it is empty (an edge follows any later
    /// byte), the loop ferrocache's `Connection::serve` runs.
    fn serve(&mut self, value: &[u8]) -> Turn {
        let mut drained = false;
        loop {
            self.f.run(value);
            if self.f.out.flush(&mut self.sock).is_err() {
                return Turn::Closed;
            }
            let pending = self.f.out.pending();
            if self.f.closing || self.peer_closed {
                return if pending == 0 { Turn::Closed } else { Turn::Waiting };
            }
            if pending >= OUTPUT_HIGH_WATER || drained {
                return Turn::Waiting;
            }
            let room = self.f.input.room();
            let space = room.len();
            match self.sock.read(room) {
                Ok(0) => self.peer_closed = true,
                Ok(n) => {
                    self.f.input.commit(n);
                    drained = n < space;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Turn::Waiting,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Turn::Closed,
            }
        }
    }
}

fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// One event loop: accepts on its listener, serves its connections.
fn event_loop(listener: std::net::TcpListener, value: &[u8]) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::from_std(listener);
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            let _ = sock.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            let token = Token(entry.key());
                            poll.registry().register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)?;
                            entry.insert(Conn { sock, f: Framer::new(), peer_closed: false });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        // Out of descriptors and the like: try again on the next edge.
                        Err(_) => break,
                    }
                }
                continue;
            }
            let key = ev.token().0;
            let Some(conn) = conns.get_mut(key) else { continue };
            if let Turn::Closed = conn.serve(value) {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.sock);
            }
        }
    }
}

fn main() {
    let a = Args::parse();
    if a.threads == 0 {
        eprintln!("ferrocache-floor: -t must be at least 1");
        std::process::exit(64);
    }
    let port = match a.port {
        -1 | 0 => 0,
        p if (1..=65535).contains(&p) => p as u16,
        p => {
            eprintln!("ferrocache-floor: bad port {p}");
            std::process::exit(64);
        }
    };
    let addr: SocketAddr =
        match format!("{}:{port}", a.listen).parse().or_else(|_| format!("[{}]:{port}", a.listen).parse()) {
            Ok(addr) => addr,
            Err(_) => {
                eprintln!("ferrocache-floor: bad address {}", a.listen);
                std::process::exit(64);
            }
        };
    let first = bind(addr).unwrap_or_else(|e| {
        eprintln!("ferrocache-floor: cannot bind {addr}: {e}");
        std::process::exit(71);
    });
    let bound = first.local_addr().expect("bound address");
    let mut listeners = vec![first];
    for _ in 1..a.threads {
        listeners.push(bind(bound).unwrap_or_else(|e| {
            eprintln!("ferrocache-floor: cannot bind {bound} again: {e}");
            std::process::exit(71);
        }));
    }
    let value: &'static [u8] = Box::leak(vec![b'x'; a.value_size].into_boxed_slice());
    let handles: Vec<_> = listeners.into_iter().map(|l| std::thread::spawn(move || event_loop(l, value))).collect();
    // The line tests and scripts wait for, as ferrocache prints it.
    println!("ferrocache listening on {bound}");
    let _ = io::stdout().flush();
    for h in handles {
        if let Ok(Err(e)) = h.join() {
            eprintln!("ferrocache-floor: event loop failed: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in the given pieces and returns all output, and
    /// whether the framer decided to close.
    fn feed(pieces: &[&[u8]], value: &[u8]) -> (Vec<u8>, bool) {
        let mut f = Framer::new();
        for piece in pieces {
            let mut rest = *piece;
            while !rest.is_empty() {
                let room = f.input.room();
                let n = room.len().min(rest.len());
                room[..n].copy_from_slice(&rest[..n]);
                f.input.commit(n);
                rest = &rest[n..];
                f.run(value);
            }
        }
        f.run(value);
        let mut sent = Vec::new();
        f.out.flush(&mut sent).unwrap();
        (sent, f.closing)
    }

    fn assert_same_at_every_split(input: &[u8], value: &[u8], expect: &[u8], closes: bool) {
        assert_eq!(feed(&[input], value), (expect.to_vec(), closes), "whole input");
        for cut in 0..=input.len() {
            let got = feed(&[&input[..cut], &input[cut..]], value);
            assert_eq!(got, (expect.to_vec(), closes), "split at {cut}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(feed(&bytes, value), (expect.to_vec(), closes), "one byte at a time");
    }

    #[test]
    fn text_requests_frame_the_same_at_every_split() {
        let input =
            b"set a 0 0 5\r\nhe\r\nl\r\nget a bb\r\ngets c\r\nset b 1 2 0 noreply\r\n\r\ndelete a\r\nbogus\r\nmn\r\n";
        let expect = b"STORED\r\nVALUE a 0 3\r\nxyz\r\nVALUE bb 0 3\r\nxyz\r\nEND\r\nVALUE c 0 3 1\r\nxyz\r\nEND\r\n\
NOT_FOUND\r\nERROR\r\nMN\r\n";
        assert_same_at_every_split(input, b"xyz", expect, false);
    }

    #[test]
    fn quit_and_bad_data_close_after_the_replies_before_them() {
        assert_same_at_every_split(b"get k\r\nquit\r\nget k\r\n", b"v", b"VALUE k 0 1\r\nv\r\nEND\r\n", true);
        assert_same_at_every_split(b"set k 0 0 2\r\nabcd\r\nget k\r\n", b"v", b"CLIENT_ERROR bad data chunk\r\n", true);
        assert_same_at_every_split(b"set k 0 x 2\r\n", b"v", b"CLIENT_ERROR bad command line format\r\n", true);
    }

    #[test]
    fn an_oversized_value_is_refused_and_swallowed() {
        let mut input = format!("set big 0 0 {}\r\n", MAX_VALUE + 1).into_bytes();
        input.extend(std::iter::repeat_n(b'z', MAX_VALUE + 1));
        input.extend_from_slice(b"\r\nget k\r\n");
        let (out, closes) = feed(&[&input[..100], &input[100..]], b"v");
        assert_eq!(out, b"SERVER_ERROR object too large for cache\r\nVALUE k 0 1\r\nv\r\nEND\r\n");
        assert!(!closes);
    }

    #[test]
    fn a_line_without_end_is_bounded() {
        let (out, closes) = feed(&[&vec![b's'; MAX_LINE + 1]], b"v");
        assert_eq!(out, b"CLIENT_ERROR line too long\r\n");
        assert!(closes);
        let (out, closes) = feed(&[&vec![b's'; MAX_LINE]], b"v");
        assert!(out.is_empty() && !closes, "still waiting for the line's end");
    }

    fn bin_request(opcode: u8, key: &[u8], extras: &[u8], value: &[u8], opaque: u32) -> Vec<u8> {
        let mut r = vec![0x80, opcode];
        r.extend_from_slice(&(key.len() as u16).to_be_bytes());
        r.extend_from_slice(&[extras.len() as u8, 0, 0, 0]);
        r.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
        r.extend_from_slice(&opaque.to_be_bytes());
        r.extend_from_slice(&[0; 8]);
        r.extend_from_slice(extras);
        r.extend_from_slice(key);
        r.extend_from_slice(value);
        r
    }

    #[test]
    fn binary_requests_frame_the_same_at_every_split() {
        let mut input = bin_request(SET, b"k", &[0; 8], b"hello", 7);
        input.extend(bin_request(SETQ, b"k", &[0; 8], b"hi", 8));
        input.extend(bin_request(GETK, b"key", &[], &[], 9));
        input.extend(bin_request(GET, b"key", &[], &[], 10));
        input.extend(bin_request(0x04, b"key", &[], &[], 11));
        input.extend(bin_request(NOOP, b"", &[], &[], 12));
        let mut expect = Vec::new();
        bin_header(&mut expect, SET, 0, 0, 0, 0, 7u32.to_be_bytes());
        bin_header(&mut expect, GETK, 3, 4, 0, 4 + 3 + 2, 9u32.to_be_bytes());
        expect.extend_from_slice(&[0, 0, 0, 0]);
        expect.extend_from_slice(b"keyab");
        bin_header(&mut expect, GET, 0, 4, 0, 4 + 2, 10u32.to_be_bytes());
        expect.extend_from_slice(&[0, 0, 0, 0, b'a', b'b']);
        bin_header(&mut expect, 0x04, 0, 0, UNKNOWN_COMMAND, 15, 11u32.to_be_bytes());
        expect.extend_from_slice(b"Unknown command");
        bin_header(&mut expect, NOOP, 0, 0, 0, 0, 12u32.to_be_bytes());
        assert_same_at_every_split(&input, b"ab", &expect, false);
    }

    #[test]
    fn a_binary_header_with_an_impossible_length_closes() {
        let mut r = bin_request(GET, b"key", &[], &[], 1);
        r[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(feed(&[&r], b"v"), (Vec::new(), true));
        let mut r = bin_request(GET, b"key", &[], &[], 1);
        r[8..12].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(feed(&[&r], b"v"), (Vec::new(), true), "key longer than the body");
    }
}
