//! The memcached binary protocol: 24-byte headers, big-endian fields,
//! per-opcode extras. [`parse()`] produces the same [`crate::protocol::Request`]s
//! as the text parser, plus a [`Meta`] (opcode, opaque, quiet) that the
//! [`compose::BinaryReply`] needs to answer; dispatch sees no difference.

pub mod compose;
pub mod header;
pub mod parse;

pub use header::{opcode, status, Header, HEADER_LEN, REQUEST_MAGIC, RESPONSE_MAGIC};
pub use parse::{parse, Meta};
