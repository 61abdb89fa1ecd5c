//! Text protocol parser: `&[u8]` -> [`Request`] | Incomplete | Close. No I/O.
//!
//! A request is a command line ending in `\n` (an optional `\r` before it is
//! dropped) and, for storage commands, `<bytes>` of data plus `\r\n`. Tokens
//! are separated by one or more spaces, as memcached's `tokenize_command`
//! splits them. Which token counts are accepted, and which error each bad
//! request gets, follow memcached 1.6's `process_command_ascii`, except that
//! numbers overflowing their 32-bit fields and keys with control characters
//! are refused rather than truncated or accepted.
//!
//! The parser waits for more bytes only while what is buffered can still be
//! a legal request: a line with no newline past [`Limits::max_line`] (or
//! [`Limits::max_get_line`] for retrieval commands) closes the connection,
//! and a value over [`Limits::max_value`] is refused before its data is read.

use super::{exptime, invalid, unframed, Line};
use crate::num::{parse_signed, parse_unsigned};
use crate::protocol::{CloseReason, Keys, Limits, ParseError, ProtocolError, Request, StoreCommand};
use crate::MAX_KEY_LEN;

/// Tokens looked at for non-retrieval commands; more is always an error.
const MAX_TOKENS: usize = 8;

/// Parses one request from the front of `buf`; on success also returns
/// how many bytes it used.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<(Request<'a>, usize), ParseError> {
    if let Some(done) = single_get(buf) {
        return Ok(done);
    }
    let limit = if is_retrieval(buf) { limits.max_get_line } else { limits.max_line };
    let Some(nl) = find_newline(buf) else {
        return if buf.len() > limit {
            Err(ParseError::Close(CloseReason::LineTooLong))
        } else {
            Err(ParseError::Incomplete)
        };
    };
    if nl > limit {
        return Err(ParseError::Close(CloseReason::LineTooLong));
    }
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let consumed = nl + 1;
    let req = parse_line(line, &buf[consumed..], limits)?;
    match req {
        Line::Done(r) => Ok((r, consumed)),
        Line::WithData(r, data_len) => Ok((r, consumed + data_len)),
        Line::NeedData => Err(ParseError::Incomplete),
    }
}

/// The index of the first `\n` in `buf`, tested eight bytes at a time: a
/// byte equal to `\n` is a zero byte of `word ^ NL`, and the lowest byte
/// whose high bit `(x - 0x01..) & !x & 0x80..` sets is the first zero byte
/// (a borrow only sets bits above a zero byte).
#[inline]
fn find_newline(buf: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = ONES << 7;
    const NL: u64 = ONES * b'\n' as u64;
    let mut chunks = buf.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ NL;
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| b == b'\n').map(|i| at + i)
}

/// `get <key>\r\n` (or `\n`), the most frequent request, read without the
/// general tokenizer. Only a line with exactly one space, after `get`, and
/// a valid key is taken here; anything else (more keys, extra spaces, a bad
/// or long key, an incomplete line) gets `None` and the general path,
/// which gives every other line its reply.
#[inline]
fn single_get(buf: &[u8]) -> Option<(Request<'_>, usize)> {
    let rest = buf.strip_prefix(b"get ")?;
    let end = rest.iter().take(MAX_KEY_LEN + 1).position(|&b| b <= b' ' || b == 0x7f)?;
    let key = &rest[..end];
    let ending = match &rest[end..] {
        [b'\r', b'\n', ..] => 2,
        [b'\n', ..] => 1,
        _ => return None,
    };
    if key.is_empty() {
        return None;
    }
    Some((Request::Get { keys: Keys::one(key), cas: false }, 4 + end + ending))
}

/// Whether the buffered bytes start a retrieval command, whose lines may be
/// longer. Decided on the first bytes, so a partial line is judged the same
/// way as the whole one.
fn is_retrieval(buf: &[u8]) -> bool {
    buf.starts_with(b"get ") || buf.starts_with(b"gets ") || buf.starts_with(b"gat ") || buf.starts_with(b"gats ")
}

/// A key memcached would accept, minus control characters.
#[inline]
fn valid_key(k: &[u8]) -> bool {
    !k.is_empty() && k.len() <= MAX_KEY_LEN && k.iter().all(|&b| b > b' ' && b != 0x7f)
}

fn parse_line<'a>(line: &'a [u8], rest: &'a [u8], limits: &Limits) -> Result<Line<'a>, ParseError> {
    // Tokens are runs of bytes other than ' '; the first MAX_TOKENS are
    // kept, and the last one for noreply.
    let mut toks: [&[u8]; MAX_TOKENS] = [&[]; MAX_TOKENS];
    let (mut n, mut last, mut i) = (0, &b""[..], 0);
    while i < line.len() {
        if line[i] == b' ' {
            i += 1;
            continue;
        }
        let start = i;
        while i < line.len() && line[i] != b' ' {
            i += 1;
        }
        last = &line[start..i];
        if n < MAX_TOKENS {
            toks[n] = last;
        }
        n += 1;
    }
    if n == 0 || toks[0].len() < 2 {
        return Ok(invalid(ProtocolError::UnknownCommand, false));
    }
    let noreply = last == b"noreply";
    let cmd = toks[0];
    let r = match cmd {
        b"get" | b"bget" => retrieval(line, cmd, n, false, false),
        b"gets" => retrieval(line, cmd, n, true, false),
        b"gat" => retrieval(line, cmd, n, false, true),
        b"gats" => retrieval(line, cmd, n, true, true),
        b"set" => storage(StoreCommand::Set, &toks, n, noreply, rest, limits),
        b"add" => storage(StoreCommand::Add, &toks, n, noreply, rest, limits),
        b"replace" => storage(StoreCommand::Replace, &toks, n, noreply, rest, limits),
        b"append" => storage(StoreCommand::Append, &toks, n, noreply, rest, limits),
        b"prepend" => storage(StoreCommand::Prepend, &toks, n, noreply, rest, limits),
        b"cas" => storage(StoreCommand::Cas, &toks, n, noreply, rest, limits),
        b"incr" | b"decr" => arithmetic(cmd == b"incr", &toks, n, noreply),
        b"touch" => touch(&toks, n, noreply),
        b"delete" => delete(&toks, n, noreply),
        b"flush_all" => flush_all(&toks, n, noreply),
        b"version" => Line::Done(Request::Version),
        b"quit" => Line::Done(Request::Quit),
        b"verbosity" => verbosity(&toks, n, noreply),
        b"stats" => {
            let args = trim_spaces(&line[5..]);
            Line::Done(Request::Stats { args })
        }
        b"shutdown" => Line::Done(match n {
            1 => Request::Shutdown { graceful: false, valid: true },
            2 if toks[1] == b"graceful" => Request::Shutdown { graceful: true, valid: true },
            _ => Request::Shutdown { graceful: false, valid: false },
        }),
        b"cache_memlimit" => memlimit(&toks, n, noreply),
        b"refresh_certs" => Line::Done(Request::RefreshCerts { noreply }),
        b"config" => config(&toks, n, rest, limits),
        b"ferrocache_replica" if n == 1 => Line::Done(Request::ReplicaMark),
        b"slabs" => super::admin::slabs(&toks, n),
        b"lru_crawler" => super::admin::lru_crawler(&toks, n),
        b"watch" => super::admin::watch(line),
        b"snapshot" => super::admin::snapshot(&toks, n),
        [b'm', c] => super::meta::parse(*c, &line[2..], rest, limits),
        _ if last.starts_with(b"HTTP/") => return Err(ParseError::Close(CloseReason::Http)),
        _ => invalid(ProtocolError::UnknownCommand, false),
    };
    Ok(r)
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
    let end = s.iter().rposition(|&b| b != b' ').map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

/// get/gets/gat/gats and their keys.
fn retrieval<'a>(line: &'a [u8], cmd: &[u8], n: usize, cas: bool, touch: bool) -> Line<'a> {
    if n < 2 {
        return invalid(ProtocolError::UnknownCommand, false);
    }
    // Everything after the command word (and the exptime, for gat).
    let mut rest = trim_spaces(&line[cmd.len()..]);
    let mut exp = 0;
    if touch {
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        match exptime(&rest[..end]) {
            Some(e) => exp = e,
            None => return invalid(ProtocolError::InvalidExptime, false),
        }
        rest = trim_spaces(&rest[end..]);
    }
    let keys = Keys::list(rest);
    if !keys.iter().all(valid_key) {
        return invalid(ProtocolError::BadFormat, false);
    }
    Line::Done(if touch { Request::Gat { exptime: exp, keys, cas } } else { Request::Get { keys, cas } })
}

fn storage<'a>(
    command: StoreCommand,
    toks: &[&'a [u8]; MAX_TOKENS],
    n: usize,
    noreply: bool,
    rest: &'a [u8],
    limits: &Limits,
) -> Line<'a> {
    let base = if command == StoreCommand::Cas { 6 } else { 5 };
    // Where the data ends is only known from a well-formed length token.
    // A refused line whose length is known has its data swallowed. Without
    // a length, memcached reads the next line as a command; strict mode
    // closes instead, so data never runs as commands (request smuggling).
    let len = if n == base || n == base + 1 {
        parse_signed(toks[4]).filter(|&l| (0..=i64::from(i32::MAX) - 2).contains(&l)).map(|l| l as usize)
    } else {
        None
    };
    let Some(len) = len else {
        let error = if n == base || n == base + 1 { ProtocolError::BadFormat } else { ProtocolError::UnknownCommand };
        let noreply = noreply && error == ProtocolError::BadFormat;
        return unframed(error, noreply, 0, limits.strict);
    };
    let key = toks[1];
    let refuse = |error| Line::Done(Request::InvalidData { error, swallow: len + 2, noreply });
    let (Some(flags), Some(exp)) = (parse_unsigned(toks[2]).and_then(|f| u32::try_from(f).ok()), exptime(toks[3]))
    else {
        return refuse(ProtocolError::BadFormat);
    };
    if !valid_key(key) {
        return refuse(ProtocolError::BadFormat);
    }
    let cas = if command == StoreCommand::Cas {
        match parse_unsigned(toks[5]) {
            Some(c) => c,
            None => return refuse(ProtocolError::BadFormat),
        }
    } else {
        0
    };
    if len > limits.max_value {
        return Line::Done(Request::TooLarge { key, set: command == StoreCommand::Set, swallow: len + 2, noreply });
    }
    if rest.len() < len + 2 {
        return Line::NeedData;
    }
    if &rest[len..len + 2] != b"\r\n" {
        // More (or less) data than declared: memcached skips the declared
        // bytes and goes on; strict mode closes.
        return unframed(ProtocolError::BadDataChunk, noreply, len + 2, limits.strict);
    }
    Line::WithData(Request::Store { command, key, flags, exptime: exp, data: &rest[..len], cas, noreply }, len + 2)
}

/// `config get|delete cluster`, `config set cluster <flags> <bytes>` +
/// data (the auto-discovery admin commands).
fn config<'a>(toks: &[&'a [u8]; MAX_TOKENS], n: usize, rest: &'a [u8], limits: &Limits) -> Line<'a> {
    match (n, toks[1], toks[2]) {
        (3, b"get", b"cluster") => Line::Done(Request::ConfigGet),
        (3, b"delete", b"cluster") => Line::Done(Request::ConfigDelete),
        (5, b"set", b"cluster") => {
            let Some(len) = parse_unsigned(toks[4]).filter(|&l| l <= limits.max_value as u64).map(|l| l as usize)
            else {
                return unframed(ProtocolError::BadFormat, false, 0, limits.strict);
            };
            if rest.len() < len + 2 {
                return Line::NeedData;
            }
            if &rest[len..len + 2] != b"\r\n" {
                return unframed(ProtocolError::BadDataChunk, false, len + 2, limits.strict);
            }
            Line::WithData(Request::ConfigSet { data: &rest[..len] }, len + 2)
        }
        _ => invalid(ProtocolError::UnknownCommand, false),
    }
}

fn arithmetic<'a>(incr: bool, toks: &[&'a [u8]; MAX_TOKENS], n: usize, noreply: bool) -> Line<'a> {
    if n != 3 && n != 4 {
        return invalid(ProtocolError::UnknownCommand, false);
    }
    let key = toks[1];
    if !valid_key(key) {
        return invalid(ProtocolError::BadFormat, noreply);
    }
    let Some(delta) = parse_unsigned(toks[2]) else {
        return invalid(ProtocolError::InvalidDelta, noreply);
    };
    Line::Done(if incr {
        Request::Incr { key, delta, initial: None, cas: 0, noreply }
    } else {
        Request::Decr { key, delta, initial: None, cas: 0, noreply }
    })
}

fn touch<'a>(toks: &[&'a [u8]; MAX_TOKENS], n: usize, noreply: bool) -> Line<'a> {
    if n != 3 && n != 4 {
        return invalid(ProtocolError::UnknownCommand, false);
    }
    let key = toks[1];
    if !valid_key(key) {
        return invalid(ProtocolError::BadFormat, noreply);
    }
    match exptime(toks[2]) {
        Some(exptime) => Line::Done(Request::Touch { key, exptime, noreply }),
        None => invalid(ProtocolError::InvalidExptime, noreply),
    }
}

fn delete<'a>(toks: &[&'a [u8]; MAX_TOKENS], n: usize, noreply: bool) -> Line<'a> {
    if !(2..=4).contains(&n) {
        return invalid(ProtocolError::UnknownCommand, false);
    }
    if n > 2 {
        // `delete <key> 0` is an old form memcached still takes.
        let hold_zero = toks[2] == b"0";
        let ok = (n == 3 && (hold_zero || noreply)) || (n == 4 && hold_zero && noreply);
        if !ok {
            return invalid(ProtocolError::DeleteUsage, noreply);
        }
    }
    let key = toks[1];
    if !valid_key(key) {
        return invalid(ProtocolError::BadFormat, noreply);
    }
    Line::Done(Request::Delete { key, cas: 0, noreply })
}

fn flush_all(toks: &[&[u8]; MAX_TOKENS], n: usize, noreply: bool) -> Line<'static> {
    if n > 3 {
        return invalid(ProtocolError::UnknownCommand, false);
    }
    let mut exp = 0;
    if n != if noreply { 2 } else { 1 } {
        match exptime(toks[1]) {
            Some(e) => exp = e,
            None => return invalid(ProtocolError::InvalidExptime, noreply),
        }
    }
    Line::Done(Request::FlushAll { exptime: exp, noreply })
}

fn verbosity(toks: &[&[u8]; MAX_TOKENS], n: usize, noreply: bool) -> Line<'static> {
    if n != 2 && n != 3 {
        return invalid(ProtocolError::UnknownCommand, false);
    }
    match parse_unsigned(toks[1]).and_then(|l| u32::try_from(l).ok()) {
        Some(level) => Line::Done(Request::Verbosity { level, noreply }),
        None => invalid(ProtocolError::BadFormat, noreply),
    }
}

fn memlimit(toks: &[&[u8]; MAX_TOKENS], n: usize, noreply: bool) -> Line<'static> {
    if n != 2 && n != 3 {
        return invalid(ProtocolError::UnknownCommand, false);
    }
    match parse_unsigned(toks[1]).filter(|&m| u32::try_from(m).is_ok()) {
        Some(megabytes) => Line::Done(Request::CacheMemlimit { megabytes, noreply }),
        None => invalid(ProtocolError::UnknownCommand, false),
    }
}

#[cfg(test)]
mod tests;
