//! Meta commands (`mg ms md ma mn me`) of the text protocol: one key, then
//! single-character flags, some with a token (`T30`, `Oabc`). Flag rules and
//! error replies follow memcached 1.6's `_meta_flag_preparse` and the
//! `process_m*_command` functions. Part of the text parser: no I/O.

use std::borrow::Cow;

use super::{exptime, invalid, unframed, Line};
use crate::num::{parse_signed, parse_unsigned};
use crate::protocol::{base64, Limits, MetaCommand, MetaFlags, ProtocolError, Request};
use crate::MAX_KEY_LEN;

/// memcached counts the command, key, flags and a terminator against 20.
const MAX_TOKENS: usize = 20;
/// Longest opaque token (`O` and up to 32 bytes).
const MAX_OPAQUE: usize = 32;

/// Parses a meta command line; `c` is the second letter of the command
/// and `args` the line after it.
pub(super) fn parse<'a>(c: u8, args: &'a [u8], rest: &'a [u8], limits: &Limits) -> Line<'a> {
    let command = match c {
        b'g' => MetaCommand::Get,
        b's' => MetaCommand::Set,
        b'd' => MetaCommand::Delete,
        b'a' => MetaCommand::Arith,
        b'e' => MetaCommand::Debug,
        b'n' => return Line::Done(Request::MetaNoop),
        _ => return invalid(ProtocolError::UnknownCommand, false),
    };
    let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let Some(raw_key) = words.next() else {
        // memcached routes mg/ms/md/ma without a key to "unknown command",
        // but me checks its own arguments.
        let error =
            if command == MetaCommand::Debug { ProtocolError::BadFormat } else { ProtocolError::UnknownCommand };
        return invalid(error, false);
    };
    if raw_key.len() > MAX_KEY_LEN {
        return invalid(ProtocolError::BadFormat, false);
    }
    // ms: the data length comes before the flags.
    let mut data_len = None;
    if command == MetaCommand::Set {
        let Some(len) = words.next().and_then(parse_signed).filter(|&l| (0..=i64::from(i32::MAX) - 2).contains(&l))
        else {
            // Without a length the data cannot be skipped.
            return unframed(ProtocolError::BadFormat, false, 0, limits.strict);
        };
        data_len = Some(len as usize);
    }
    // The flag region, kept raw for echoing in order.
    let flags_start = words.clone().next().map_or(args.len(), |w| w.as_ptr() as usize - args.as_ptr() as usize);
    let raw = &args[flags_start..];
    let fixed = if command == MetaCommand::Set { 3 } else { 2 };
    let parsed = if words.clone().count() + fixed + 1 > MAX_TOKENS {
        Err(ProtocolError::MetaTooManyFlags)
    } else {
        parse_flags(command, raw, raw_key)
    };
    let refuse = |error| match data_len {
        // An ms whose line is refused has its data discarded.
        Some(len) => Line::Done(Request::InvalidData { error, swallow: len + 2, noreply: false }),
        None => invalid(error, false),
    };
    let (flags, key) = match parsed {
        Ok(ok) => ok,
        Err(e) => return refuse(e),
    };
    let Some(len) = data_len else {
        return Line::Done(Request::Meta { command, key, data: &[], flags });
    };
    if len > limits.max_value {
        let set = matches!(flags.mode, None | Some(b'S'));
        return Line::Done(Request::TooLarge { key: raw_key, set, swallow: len + 2, noreply: false });
    }
    if rest.len() < len + 2 {
        return Line::NeedData;
    }
    if &rest[len..len + 2] != b"\r\n" {
        return unframed(ProtocolError::BadDataChunk, false, len + 2, limits.strict);
    }
    Line::WithData(Request::Meta { command, key, data: &rest[..len], flags }, len + 2)
}

/// Reads the flags; returns them and the key (base64-decoded with `b`).
fn parse_flags<'a>(
    command: MetaCommand,
    raw: &'a [u8],
    raw_key: &'a [u8],
) -> Result<(MetaFlags<'a>, Cow<'a, [u8]>), ProtocolError> {
    // md and ma answer every flag problem with one message.
    let lump = |e| {
        if matches!(command, MetaCommand::Delete | MetaCommand::Arith) {
            ProtocolError::MetaInvalidOrDuplicateFlag
        } else {
            e
        }
    };
    let mut f = MetaFlags { raw, delta: 1, ..MetaFlags::default() };
    let mut seen = [false; 128];
    let mut first_error = None;
    let mut fail = |e: ProtocolError| {
        first_error.get_or_insert(lump(e));
    };
    for tok in f.tokens() {
        let o = tok[0];
        if o >= 127 || seen[usize::from(o)] {
            return Err(lump(ProtocolError::MetaDuplicateFlag));
        }
        seen[usize::from(o)] = true;
        let arg = &tok[1..];
        match o {
            b'b' => f.base64 = true,
            b'N' => match exptime(arg) {
                Some(t) => f.vivify = Some(t),
                None => fail(ProtocolError::MetaBadToken),
            },
            b'T' => match exptime(arg) {
                Some(t) => f.ttl = Some(t),
                None => fail(ProtocolError::MetaBadToken),
            },
            b'R' => match exptime(arg) {
                Some(t) => f.recache = Some(t),
                None => fail(ProtocolError::MetaBadToken),
            },
            b'O' => {
                if arg.len() > MAX_OPAQUE {
                    fail(ProtocolError::MetaOpaqueTooLong);
                }
            }
            b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'h' | b'l' => {}
            b'v' => f.value = true,
            b'u' => f.no_bump = true,
            b'q' => f.quiet = true,
            b'I' => f.invalidate = true,
            b'x' => f.remove_value = true,
            b'F' => match parse_unsigned(arg).and_then(|v| u32::try_from(v).ok()) {
                Some(v) => f.client_flags = v,
                None => fail(ProtocolError::BadFormat),
            },
            b'C' => match parse_unsigned(arg) {
                Some(v) => f.compare_cas = Some(v),
                None => fail(ProtocolError::MetaBadToken),
            },
            b'M' => {
                if arg.len() != 1 {
                    fail(ProtocolError::MetaModeLength);
                } else {
                    f.mode = Some(arg[0]);
                }
            }
            b'J' => match parse_unsigned(arg) {
                Some(v) => f.initial = v,
                None => fail(ProtocolError::BadFormat),
            },
            b'D' => match parse_unsigned(arg) {
                Some(v) => f.delta = v,
                None => fail(ProtocolError::BadFormat),
            },
            _ => return Err(lump(ProtocolError::MetaInvalidFlag)),
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let key = if f.base64 {
        match base64::decode(raw_key) {
            Some(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => Cow::Owned(k),
            _ => return Err(lump(ProtocolError::MetaKeyDecode)),
        }
    } else {
        if raw_key.iter().any(|&b| b <= b' ' || b == 0x7f) {
            return Err(ProtocolError::BadFormat);
        }
        Cow::Borrowed(raw_key)
    };
    match (command, f.mode) {
        (_, None) => {}
        (MetaCommand::Set, Some(b'E' | b'A' | b'P' | b'R' | b'S')) => {}
        (MetaCommand::Set, Some(_)) => return Err(ProtocolError::MetaSetMode),
        (MetaCommand::Arith, Some(b'I' | b'+' | b'D' | b'-')) => {}
        (MetaCommand::Arith, Some(_)) => return Err(ProtocolError::MetaArithMode),
        _ => {}
    }
    Ok((f, key))
}

#[cfg(test)]
mod tests;
