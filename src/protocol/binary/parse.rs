//! Binary protocol parser: `&[u8]` -> ([`Request`], [`Meta`]) | Incomplete
//! | Close. No I/O.
//!
//! Validation follows memcached 1.6's `dispatch_bin_command`: extras + key
//! longer than the body is an unknown command and the connection closes; a
//! key over 250 bytes, or extras/key/body lengths that do not fit the
//! opcode, are a protocol error (EINVAL) and the connection closes; a value
//! over the item limit is refused (E2BIG) and its bytes swallowed. Every
//! check runs on the 24-byte header (plus extras and key, at most 505
//! bytes) before any of the body is waited for, so a declared length is
//! never buffered unless it is legal.

use super::header::{opcode as op, Header, HEADER_LEN, REQUEST_MAGIC};
use crate::protocol::{CloseReason, Keys, Limits, ParseError, ProtocolError, Request, StoreCommand};
use crate::MAX_KEY_LEN;

/// What the reply needs to know about the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    pub opcode: u8,
    pub opaque: u32,
    /// A quiet opcode: success replies (and get misses) are not sent.
    pub quiet: bool,
    /// GetK/GetKQ/GATK/GATKQ: the key goes back with the value.
    pub return_key: bool,
}

fn is_quiet(opcode: u8) -> bool {
    matches!(
        opcode,
        op::GETQ
            | op::GETKQ
            | op::SETQ
            | op::ADDQ
            | op::REPLACEQ
            | op::DELETEQ
            | op::INCREMENTQ
            | op::DECREMENTQ
            | op::QUITQ
            | op::FLUSHQ
            | op::APPENDQ
            | op::PREPENDQ
            | op::GATQ
            | op::GATKQ
    )
}

/// Opcodes whose body carries a value after extras and key.
fn carries_value(opcode: u8) -> bool {
    matches!(
        opcode,
        op::SET
            | op::SETQ
            | op::ADD
            | op::ADDQ
            | op::REPLACE
            | op::REPLACEQ
            | op::APPEND
            | op::APPENDQ
            | op::PREPEND
            | op::PREPENDQ
            | op::SASL_AUTH
            | op::SASL_STEP
    )
}

/// Whether (extras, key, value) lengths fit the opcode, as memcached checks.
fn shape_ok(opcode: u8, ext: usize, key: usize, value: usize) -> bool {
    match opcode {
        op::VERSION | op::NOOP | op::QUIT | op::QUITQ | op::SASL_LIST_MECHS => ext == 0 && key == 0 && value == 0,
        op::FLUSH | op::FLUSHQ => key == 0 && value == 0 && (ext == 0 || ext == 4),
        op::SET | op::SETQ | op::ADD | op::ADDQ | op::REPLACE | op::REPLACEQ => ext == 8 && key != 0,
        op::GET | op::GETQ | op::GETK | op::GETKQ | op::DELETE | op::DELETEQ => ext == 0 && key != 0 && value == 0,
        op::INCREMENT | op::INCREMENTQ | op::DECREMENT | op::DECREMENTQ => ext == 20 && key != 0 && value == 0,
        op::APPEND | op::APPENDQ | op::PREPEND | op::PREPENDQ => ext == 0 && key != 0,
        op::STAT => ext == 0 && value == 0,
        op::SASL_AUTH | op::SASL_STEP => ext == 0 && key != 0,
        op::TOUCH | op::GAT | op::GATQ | op::GATK | op::GATKQ => ext == 4 && key != 0 && value == 0,
        op::VERBOSITY => ext == 4 && key == 0 && value == 0,
        _ => true,
    }
}

fn known(opcode: u8) -> bool {
    matches!(opcode, 0x00..=0x1e | 0x20..=0x24)
}

#[inline]
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[inline]
fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Parses one request packet from the front of `buf`.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<(Request<'a>, Meta, usize), ParseError> {
    if let Some(&magic) = buf.first() {
        if magic != REQUEST_MAGIC {
            return Err(ParseError::Close(CloseReason::BadMagic));
        }
    }
    let Some(head) = buf.first_chunk::<HEADER_LEN>() else {
        return Err(ParseError::Incomplete);
    };
    let h = Header::read(head);
    let meta = Meta {
        opcode: h.opcode,
        opaque: h.opaque,
        quiet: is_quiet(h.opcode),
        return_key: matches!(h.opcode, op::GETK | op::GETKQ | op::GATK | op::GATKQ),
    };
    let (ext, key_len, body) = (usize::from(h.extlen), usize::from(h.keylen), h.bodylen as usize);
    // A packet that cannot be framed or served: the reply, then a close.
    let fatal = |error| Ok((Request::Fatal { error, noreply: false }, meta, HEADER_LEN));
    if ext + key_len > body {
        return fatal(ProtocolError::BadLengths);
    }
    if key_len > MAX_KEY_LEN {
        return fatal(ProtocolError::BadPacket);
    }
    let vlen = body - ext - key_len;
    if !known(h.opcode) {
        // Answered "unknown command"; a body too large to skip here closes.
        if body > limits.max_line {
            return fatal(ProtocolError::BadLengths);
        }
        if buf.len() < HEADER_LEN + body {
            return Err(ParseError::Incomplete);
        }
        return Ok((
            Request::Invalid { error: ProtocolError::UnknownCommand, noreply: false },
            meta,
            HEADER_LEN + body,
        ));
    }
    if !shape_ok(h.opcode, ext, key_len, vlen) {
        return fatal(ProtocolError::BadPacket);
    }
    let fixed = HEADER_LEN + ext + key_len;
    if carries_value(h.opcode) && vlen > limits.max_value {
        if buf.len() < fixed {
            return Err(ParseError::Incomplete);
        }
        if matches!(h.opcode, op::SASL_AUTH | op::SASL_STEP) {
            return fatal(ProtocolError::BadPacket);
        }
        let key = &buf[HEADER_LEN + ext..fixed];
        let set = matches!(h.opcode, op::SET | op::SETQ);
        return Ok((Request::TooLarge { key, set, swallow: vlen, noreply: meta.quiet }, meta, fixed));
    }
    let total = fixed + vlen;
    if buf.len() < total {
        return Err(ParseError::Incomplete);
    }
    let extras = &buf[HEADER_LEN..HEADER_LEN + ext];
    let key = &buf[HEADER_LEN + ext..fixed];
    let value = &buf[fixed..total];
    let quiet = meta.quiet;
    let req = match h.opcode {
        op::GET | op::GETQ | op::GETK | op::GETKQ => Request::Get { keys: Keys::one(key), cas: true },
        op::GAT | op::GATQ | op::GATK | op::GATKQ => {
            Request::Gat { exptime: i64::from(be32(extras)), keys: Keys::one(key), cas: true }
        }
        op::TOUCH => Request::Touch { key, exptime: i64::from(be32(extras)), noreply: false },
        op::SET | op::SETQ | op::ADD | op::ADDQ | op::REPLACE | op::REPLACEQ => {
            // memcached turns any update carrying a CAS into a cas command.
            let command = if h.cas != 0 {
                StoreCommand::Cas
            } else {
                match h.opcode {
                    op::SET | op::SETQ => StoreCommand::Set,
                    op::ADD | op::ADDQ => StoreCommand::Add,
                    _ => StoreCommand::Replace,
                }
            };
            let (flags, exptime) = (be32(&extras[..4]), i64::from(be32(&extras[4..])));
            Request::Store { command, key, flags, exptime, data: value, cas: h.cas, noreply: quiet }
        }
        op::APPEND | op::APPENDQ | op::PREPEND | op::PREPENDQ => {
            let command =
                if matches!(h.opcode, op::APPEND | op::APPENDQ) { StoreCommand::Append } else { StoreCommand::Prepend };
            Request::Store { command, key, flags: 0, exptime: 0, data: value, cas: h.cas, noreply: quiet }
        }
        op::DELETE | op::DELETEQ => Request::Delete { key, cas: h.cas, noreply: quiet },
        op::INCREMENT | op::INCREMENTQ | op::DECREMENT | op::DECREMENTQ => {
            let delta = be64(&extras[..8]);
            let initial = be64(&extras[8..16]);
            let exptime = be32(&extras[16..]);
            // An exptime of all ones means "do not create".
            let initial = (exptime != u32::MAX).then_some((initial, i64::from(exptime)));
            if matches!(h.opcode, op::INCREMENT | op::INCREMENTQ) {
                Request::Incr { key, delta, initial, cas: h.cas, noreply: quiet }
            } else {
                Request::Decr { key, delta, initial, cas: h.cas, noreply: quiet }
            }
        }
        op::QUIT | op::QUITQ => Request::Quit,
        op::FLUSH | op::FLUSHQ => {
            let exptime = if ext == 4 { i64::from(be32(extras)) } else { 0 };
            Request::FlushAll { exptime, noreply: quiet }
        }
        op::NOOP => Request::Noop,
        op::VERSION => Request::Version,
        op::STAT => Request::Stats { args: key },
        op::VERBOSITY => Request::Verbosity { level: be32(extras), noreply: false },
        op::SASL_LIST_MECHS => Request::SaslListMechs,
        op::SASL_AUTH | op::SASL_STEP => Request::SaslAuth { mech: key, data: value, step: h.opcode == op::SASL_STEP },
        _ => Request::Invalid { error: ProtocolError::UnknownCommand, noreply: false },
    };
    Ok((req, meta, total))
}

#[cfg(test)]
mod tests;
