//! The memcached text protocol: [`parse()`] turns bytes into requests and
//! [`compose`] writes replies. memcached's `doc/protocol.txt` is the spec;
//! `docs/protocol-notes.md` lists where we differ.

pub mod compose;
mod meta;
pub mod parse;

pub use parse::parse;
