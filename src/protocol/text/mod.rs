//! The memcached text protocol: [`parse()`] turns bytes into requests and
//! [`compose`] writes replies. memcached's `doc/protocol.txt` is the spec;
//! `docs/protocol-notes.md` lists where we differ.

mod admin;
pub mod compose;
mod meta;
pub mod parse;

pub use parse::parse;

use crate::num::parse_signed;
use crate::protocol::{ProtocolError, Request};

/// What a command line parsed into; shared by the classic and the meta
/// command parsers.
enum Line<'a> {
    Done(Request<'a>),
    /// The request also used this many bytes after the line.
    WithData(Request<'a>, usize),
    /// A storage command whose data has not all arrived.
    NeedData,
}

/// A refused request after which the connection goes on.
fn invalid(error: ProtocolError, noreply: bool) -> Line<'static> {
    Line::Done(Request::Invalid { error, noreply })
}

/// A storage command whose data cannot be framed: closed under
/// [`Limits::strict`](crate::protocol::Limits), else answered as memcached
/// answers it, the connection going on after `used` more bytes.
fn unframed(error: ProtocolError, noreply: bool, used: usize, strict: bool) -> Line<'static> {
    let req = if strict { Request::Fatal { error, noreply } } else { Request::Invalid { error, noreply } };
    if used == 0 {
        Line::Done(req)
    } else {
        Line::WithData(req, used)
    }
}

/// An exptime token: a signed number that fits memcached's 32 bits.
fn exptime(t: &[u8]) -> Option<i64> {
    parse_signed(t).filter(|&e| i32::try_from(e).is_ok())
}
