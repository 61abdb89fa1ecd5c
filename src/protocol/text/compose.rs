//! Text protocol replies, appended to a connection's output buffer.
//!
//! Every reply line here is byte for byte what memcached 1.6 sends.
//! `noreply` is applied by the caller (it writes nothing); this module only
//! knows how each reply looks.

use std::fmt::Display;

use crate::num::push_u64;
use crate::protocol::{base64, MetaCode, MetaCommand, MetaFlags, MetaInfo, ProtocolError, Reply, Status};

pub const STORED: &[u8] = b"STORED\r\n";
pub const NOT_STORED: &[u8] = b"NOT_STORED\r\n";
pub const EXISTS: &[u8] = b"EXISTS\r\n";
pub const NOT_FOUND: &[u8] = b"NOT_FOUND\r\n";
pub const DELETED: &[u8] = b"DELETED\r\n";
pub const TOUCHED: &[u8] = b"TOUCHED\r\n";
pub const END: &[u8] = b"END\r\n";
pub const OK: &[u8] = b"OK\r\n";
pub const RESET: &[u8] = b"RESET\r\n";
pub const ERROR: &[u8] = b"ERROR\r\n";
pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
pub const OUT_OF_MEMORY: &[u8] = b"SERVER_ERROR out of memory storing object\r\n";
pub const DELTA_OUT_OF_MEMORY: &[u8] = b"SERVER_ERROR out of memory\r\n";
pub const NON_NUMERIC: &[u8] = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
pub const SHUTDOWN_DISABLED: &[u8] = b"ERROR: shutdown not enabled\r\n";
pub const INVALID_SHUTDOWN: &[u8] = b"CLIENT_ERROR invalid shutdown mode\r\n";
pub const FLUSH_DISABLED: &[u8] = b"CLIENT_ERROR flush_all not allowed\r\n";
pub const MEMLIMIT_TOO_SMALL: &[u8] = b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n";
pub const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// The text line for a status.
pub fn status_line(s: Status) -> &'static [u8] {
    match s {
        Status::Stored | Status::AuthOk => STORED,
        Status::NotStored => NOT_STORED,
        Status::Exists => EXISTS,
        Status::NotFound => NOT_FOUND,
        Status::Deleted => DELETED,
        Status::Ok => OK,
        Status::Reset => RESET,
        Status::TooLarge => TOO_LARGE,
        Status::OutOfMemory => OUT_OF_MEMORY,
        Status::DeltaOutOfMemory => DELTA_OUT_OF_MEMORY,
        Status::NonNumeric => NON_NUMERIC,
        Status::ShutdownDisabled => SHUTDOWN_DISABLED,
        Status::InvalidShutdown => INVALID_SHUTDOWN,
        Status::FlushDisabled => FLUSH_DISABLED,
        Status::MemlimitTooSmall => MEMLIMIT_TOO_SMALL,
        Status::DetailNotAllowed => b"CLIENT_ERROR stats detail not allowed\r\n",
        Status::DetailUsage => b"CLIENT_ERROR usage: stats detail on|off|dump\r\n",
        Status::DumpNotAllowed => b"CLIENT_ERROR stats cachedump not allowed\r\n",
        Status::IllegalSlabId => b"CLIENT_ERROR Illegal slab id\r\n",
        Status::AuthFailed => b"CLIENT_ERROR authentication failure\r\n",
        Status::Unauthenticated => b"CLIENT_ERROR unauthenticated\r\n",
        Status::AuthBadFormat => b"CLIENT_ERROR bad authentication token format\r\n",
        Status::ReplyTooLarge => b"SERVER_ERROR out of memory writing get response\r\n",
        Status::AuthBadTermination => b"CLIENT_ERROR bad command line termination\r\n",
    }
}

/// Text replies into a connection's output buffer. With `noreply`, every
/// reply of the request is dropped, as memcached drops them.
pub struct TextReply<'a> {
    out: &'a mut Vec<u8>,
    noreply: bool,
}

impl<'a> TextReply<'a> {
    pub fn new(out: &'a mut Vec<u8>, noreply: bool) -> TextReply<'a> {
        TextReply { out, noreply }
    }

    #[inline]
    fn line(&mut self, bytes: &[u8]) {
        if !self.noreply {
            self.out.extend_from_slice(bytes);
        }
    }
}

impl Reply for TextReply<'_> {
    #[inline]
    fn value(&mut self, key: &[u8], flags: u32, cas: Option<u64>, data: &[u8]) {
        value(self.out, key, flags, data, cas);
    }
    #[inline]
    fn miss(&mut self, _key: &[u8]) {}
    #[inline]
    fn end(&mut self) {
        self.out.extend_from_slice(END);
    }
    #[inline]
    fn status(&mut self, status: Status, _cas: u64) {
        self.line(status_line(status));
    }
    fn number(&mut self, n: u64, _cas: u64) {
        if !self.noreply {
            number(self.out, n);
        }
    }
    fn touched(&mut self, _flags: u32, _cas: u64) {
        self.line(TOUCHED);
    }
    fn version(&mut self, v: &str) {
        version(self.out, v);
    }
    fn stat(&mut self, name: &str, value: &dyn Display) {
        stat(self.out, name, value);
    }
    fn stats_end(&mut self) {
        self.out.extend_from_slice(END);
    }
    fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
    fn detail_dump(&mut self, dump: &str) {
        self.out.extend_from_slice(dump.as_bytes());
    }
    fn dump_item(&mut self, key: &[u8], len: usize, exptime: u64) {
        use std::io::Write;
        self.out.extend_from_slice(b"ITEM ");
        self.out.extend_from_slice(key);
        // Writing into a Vec cannot fail.
        let _ = write!(self.out, " [{len} b; {exptime} s]\r\n");
    }
    fn error(&mut self, e: ProtocolError) {
        if !self.noreply {
            error(self.out, e);
        }
    }
    fn sasl_mechs(&mut self, _mechs: &str) {
        self.line(ERROR);
    }
    fn queued(&self) -> usize {
        self.out.len()
    }

    fn truncate(&mut self, mark: usize) {
        self.out.truncate(mark);
    }

    fn quit(&mut self) {}

    fn meta(
        &mut self,
        command: MetaCommand,
        code: MetaCode,
        key: &[u8],
        flags: &MetaFlags<'_>,
        item: Option<&MetaInfo>,
        value: Option<&[u8]>,
    ) {
        // q drops the nominal reply: EN for mg, HD (and ma's VA) otherwise.
        let nominal = match command {
            MetaCommand::Get => code == MetaCode::En,
            MetaCommand::Arith => matches!(code, MetaCode::Hd | MetaCode::Va),
            _ => code == MetaCode::Hd,
        };
        if flags.quiet && nominal {
            return;
        }
        write_meta(self.out, command, code, key, flags, item, value);
    }

    fn meta_debug(&mut self, key: &[u8], flags: &MetaFlags<'_>, item: Option<&MetaInfo>) {
        meta_debug(self.out, key, flags, item);
    }
}

/// Writes one meta reply line (and value block).
fn write_meta(
    out: &mut Vec<u8>,
    command: MetaCommand,
    code: MetaCode,
    key: &[u8],
    flags: &MetaFlags<'_>,
    item: Option<&MetaInfo>,
    value: Option<&[u8]>,
) {
    out.extend_from_slice(match code {
        MetaCode::Va => b"VA ",
        MetaCode::Hd => b"HD",
        MetaCode::En => b"EN",
        MetaCode::Ns => b"NS",
        MetaCode::Ex => b"EX",
        MetaCode::Nf => b"NF",
        MetaCode::Mn => b"MN",
    });
    if code == MetaCode::Va {
        push_u64(out, value.map_or(0, |v| v.len()) as u64);
    }
    // Which return flags each command and outcome carries (memcached):
    // mg hits all, mg misses O and k; ms O, k, c; md O and k; ma (on
    // success) c, t, O and k.
    let hit = item.is_some();
    for tok in flags.tokens() {
        let f = tok[0];
        let wanted = match (command, f) {
            (_, b'O') => command != MetaCommand::Arith || hit,
            (_, b'k') => command != MetaCommand::Arith || hit,
            (MetaCommand::Get, b's' | b't' | b'c' | b'f' | b'l' | b'h') => hit,
            (MetaCommand::Set, b'c') => true,
            (MetaCommand::Arith, b'c' | b't') => hit,
            _ => false,
        };
        if !wanted {
            continue;
        }
        out.push(b' ');
        match f {
            b'O' => out.extend_from_slice(tok),
            b'k' => {
                out.push(b'k');
                if flags.base64 {
                    base64::encode_into(key, out);
                    out.extend_from_slice(b" b");
                } else {
                    out.extend_from_slice(key);
                }
            }
            _ => {
                let it = item.copied().unwrap_or_default();
                out.push(f);
                match f {
                    b's' => push_u64(out, it.value_len as u64),
                    b't' if it.ttl < 0 => out.extend_from_slice(b"-1"),
                    b't' => push_u64(out, it.ttl as u64),
                    b'c' => push_u64(out, it.cas),
                    b'f' => push_u64(out, u64::from(it.flags)),
                    b'l' => push_u64(out, u64::from(it.last_access)),
                    _ => out.push(if it.fetched { b'1' } else { b'0' }),
                }
            }
        }
    }
    if let (MetaCommand::Get, Some(it)) = (command, item) {
        if it.token_sent {
            out.extend_from_slice(b" Z");
        }
        if it.stale {
            out.extend_from_slice(b" X");
        }
        if it.won {
            out.extend_from_slice(b" W");
        }
    }
    out.extend_from_slice(b"\r\n");
    if code == MetaCode::Va {
        out.extend_from_slice(value.unwrap_or_default());
        out.extend_from_slice(b"\r\n");
    }
}

/// `ME <key> exp=.. la=.. cas=.. fetch=.. cls=.. size=..` or `EN`.
pub fn meta_debug(out: &mut Vec<u8>, key: &[u8], flags: &MetaFlags<'_>, item: Option<&MetaInfo>) {
    use std::io::Write;
    let Some(it) = item else {
        out.extend_from_slice(b"EN\r\n");
        return;
    };
    out.extend_from_slice(b"ME ");
    if flags.base64 {
        base64::encode_into(key, out);
    } else {
        out.extend_from_slice(key);
    }
    let fetch = if it.fetched { "yes" } else { "no" };
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        " exp={} la={} cas={} fetch={fetch} cls={} size={}\r\n",
        it.ttl, it.last_access, it.cas, it.class, it.size
    );
}

/// `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`
///
/// The numbers and the line end are formatted from the end of one stack
/// buffer, so the reply is five appends to `out` after one reservation
/// (a get's reply is most of a pipelined get's work past the parse).
#[inline]
pub fn value(out: &mut Vec<u8>, key: &[u8], flags: u32, data: &[u8], cas: Option<u64>) {
    // " " flags (at most 10 digits) " " bytes (20) [" " cas (20)] "\r\n".
    let mut tail = [0u8; 56];
    let mut at = tail.len() - 2;
    tail[at..].copy_from_slice(b"\r\n");
    if let Some(cas) = cas {
        at = digits_before(&mut tail, at, cas) - 1;
        tail[at] = b' ';
    }
    at = digits_before(&mut tail, at, data.len() as u64) - 1;
    tail[at] = b' ';
    at = digits_before(&mut tail, at, u64::from(flags)) - 1;
    tail[at] = b' ';
    let tail = &tail[at..];
    out.reserve(6 + key.len() + tail.len() + data.len() + 2);
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.extend_from_slice(tail);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Writes `n` in decimal into `buf` so that it ends just before `end`;
/// returns where it starts.
#[inline]
fn digits_before(buf: &mut [u8], mut end: usize, mut n: u64) -> usize {
    loop {
        end -= 1;
        buf[end] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return end;
        }
    }
}

/// A bare number line (incr/decr result).
pub fn number(out: &mut Vec<u8>, n: u64) {
    push_u64(out, n);
    out.extend_from_slice(b"\r\n");
}

/// `VERSION <version>`
pub fn version(out: &mut Vec<u8>, version: &str) {
    out.extend_from_slice(b"VERSION ");
    out.extend_from_slice(version.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One `STAT <name> <value>` line.
pub fn stat(out: &mut Vec<u8>, name: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "STAT {name} {value}\r\n");
}

/// The reply for a refused request.
pub fn error(out: &mut Vec<u8>, e: ProtocolError) {
    out.extend_from_slice(match e {
        ProtocolError::UnknownCommand => ERROR,
        ProtocolError::BadFormat => b"CLIENT_ERROR bad command line format\r\n",
        ProtocolError::BadDataChunk => b"CLIENT_ERROR bad data chunk\r\n",
        ProtocolError::InvalidExptime => b"CLIENT_ERROR invalid exptime argument\r\n",
        ProtocolError::InvalidDelta => b"CLIENT_ERROR invalid numeric delta argument\r\n",
        ProtocolError::DeleteUsage => b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
        ProtocolError::BadCommandLine => b"CLIENT_ERROR bad command line\r\n",
        // Binary-only errors; the text parser never produces them.
        ProtocolError::BadPacket | ProtocolError::BadLengths => ERROR,
        ProtocolError::MetaInvalidFlag => b"CLIENT_ERROR invalid flag\r\n",
        ProtocolError::MetaDuplicateFlag => b"CLIENT_ERROR duplicate flag\r\n",
        ProtocolError::MetaInvalidOrDuplicateFlag => b"CLIENT_ERROR invalid or duplicate flag\r\n",
        ProtocolError::MetaBadToken => b"CLIENT_ERROR bad token in command line format\r\n",
        ProtocolError::MetaModeLength => b"CLIENT_ERROR incorrect length for M token\r\n",
        ProtocolError::MetaSetMode => b"CLIENT_ERROR invalid mode for ms M token\r\n",
        ProtocolError::MetaArithMode => b"CLIENT_ERROR invalid mode for ma M token\r\n",
        ProtocolError::MetaOpaqueTooLong => b"CLIENT_ERROR opaque token too long\r\n",
        ProtocolError::MetaKeyDecode => b"CLIENT_ERROR error decoding key\r\n",
        ProtocolError::MetaTooManyFlags => b"CLIENT_ERROR options flags are too long\r\n",
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_lines_match_memcached() {
        let mut out = Vec::new();
        value(&mut out, b"a", 0, b"x", None);
        value(&mut out, b"key", 4294967295, b"", Some(36));
        value(&mut out, b"k", 7, b"0123456789", Some(u64::MAX));
        assert_eq!(
            out,
            &b"VALUE a 0 1\r\nx\r\nVALUE key 4294967295 0 36\r\n\r\n\
               VALUE k 7 10 18446744073709551615\r\n0123456789\r\n"[..]
        );
    }

    #[test]
    fn small_replies() {
        let mut out = Vec::new();
        number(&mut out, 18446744073709551615);
        version(&mut out, "1.6.18");
        stat(&mut out, "curr_items", 3);
        error(&mut out, ProtocolError::DeleteUsage);
        assert_eq!(
            out,
            &b"18446744073709551615\r\nVERSION 1.6.18\r\nSTAT curr_items 3\r\n\
CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"[..]
        );
    }
}
