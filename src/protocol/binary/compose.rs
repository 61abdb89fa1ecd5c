//! Binary protocol replies: response packets with the request's opcode and
//! opaque, as memcached 1.6 writes them. Quiet opcodes send no success
//! reply and no get miss; errors are always sent.

use std::fmt::Display;

use super::header::{opcode as op, status as st, Header, RESPONSE_MAGIC};
use super::parse::Meta;
use crate::protocol::{ProtocolError, Reply, Status};

/// Writes response packets for one request into an output buffer.
pub struct BinaryReply<'a> {
    out: &'a mut Vec<u8>,
    meta: Meta,
}

impl<'a> BinaryReply<'a> {
    pub fn new(out: &'a mut Vec<u8>, meta: Meta) -> BinaryReply<'a> {
        BinaryReply { out, meta }
    }

    /// One packet: header, extras, key, value.
    fn packet(&mut self, status: u16, cas: u64, extras: &[u8], key: &[u8], value: &[u8]) {
        let h = Header {
            magic: RESPONSE_MAGIC,
            opcode: self.meta.opcode,
            keylen: key.len() as u16,
            extlen: extras.len() as u8,
            datatype: 0,
            status,
            bodylen: (extras.len() + key.len() + value.len()) as u32,
            opaque: self.meta.opaque,
            cas,
        };
        self.out.reserve(24 + extras.len() + key.len() + value.len());
        h.write(self.out);
        self.out.extend_from_slice(extras);
        self.out.extend_from_slice(key);
        self.out.extend_from_slice(value);
    }

    fn success(&mut self, cas: u64, value: &[u8]) {
        if !self.meta.quiet {
            self.packet(st::SUCCESS, cas, &[], &[], value);
        }
    }

    /// An error packet with memcached's message; sent even when quiet.
    fn fail(&mut self, status: u16) {
        self.packet(status, 0, &[], &[], st::message(status));
    }
}

impl Reply for BinaryReply<'_> {
    fn value(&mut self, key: &[u8], flags: u32, cas: Option<u64>, data: &[u8]) {
        let key = if self.meta.return_key { key } else { &[] };
        self.packet(st::SUCCESS, cas.unwrap_or(0), &flags.to_be_bytes(), key, data);
    }

    fn miss(&mut self, key: &[u8]) {
        if self.meta.quiet {
            return;
        }
        if self.meta.return_key {
            // memcached answers a GetK miss with the key and no message.
            self.packet(st::KEY_ENOENT, 0, &[], key, &[]);
        } else {
            self.fail(st::KEY_ENOENT);
        }
    }

    fn end(&mut self) {}

    fn status(&mut self, status: Status, cas: u64) {
        let code = match status {
            Status::Stored | Status::Deleted | Status::Ok => return self.success(cas, &[]),
            Status::AuthOk => return self.success(0, b"Authenticated"),
            Status::Reset => return self.stats_end(),
            Status::NotStored => match self.meta.opcode {
                op::ADD | op::ADDQ => st::KEY_EEXISTS,
                op::REPLACE | op::REPLACEQ => st::KEY_ENOENT,
                _ => st::NOT_STORED,
            },
            Status::Exists => st::KEY_EEXISTS,
            Status::NotFound => st::KEY_ENOENT,
            Status::TooLarge => st::E2BIG,
            Status::OutOfMemory | Status::DeltaOutOfMemory | Status::ReplyTooLarge => st::ENOMEM,
            Status::NonNumeric => st::DELTA_BADVAL,
            // memcached answers a disabled flush with an auth error.
            Status::FlushDisabled | Status::AuthFailed | Status::Unauthenticated => st::AUTH_ERROR,
            Status::DetailNotAllowed | Status::DetailUsage | Status::DumpNotAllowed | Status::IllegalSlabId => {
                st::KEY_ENOENT
            }
            Status::AuthBadFormat | Status::AuthBadTermination => st::EINVAL,
            Status::ShutdownDisabled | Status::InvalidShutdown | Status::MemlimitTooSmall => st::UNKNOWN_COMMAND,
        };
        self.fail(code);
    }

    fn number(&mut self, n: u64, cas: u64) {
        if !self.meta.quiet {
            self.packet(st::SUCCESS, cas, &[], &[], &n.to_be_bytes());
        }
    }

    fn touched(&mut self, flags: u32, cas: u64) {
        self.packet(st::SUCCESS, cas, &flags.to_be_bytes(), &[], &[]);
    }

    fn version(&mut self, version: &str) {
        self.packet(st::SUCCESS, 0, &[], &[], version.as_bytes());
    }

    fn stat(&mut self, name: &str, value: &dyn Display) {
        let value = value.to_string();
        self.packet(st::SUCCESS, 0, &[], name.as_bytes(), value.as_bytes());
    }

    fn stats_end(&mut self) {
        self.packet(st::SUCCESS, 0, &[], &[], &[]);
    }

    fn dump_item(&mut self, key: &[u8], len: usize, exptime: u64) {
        // Not a binary stat group in memcached; sent as a stat anyway.
        self.stat(&String::from_utf8_lossy(key), &format_args!("[{len} b; {exptime} s]"));
    }

    fn error(&mut self, error: ProtocolError) {
        let code = match error {
            // An unknown stats group is "not found" in memcached.
            ProtocolError::UnknownCommand if self.meta.opcode == op::STAT => st::KEY_ENOENT,
            ProtocolError::UnknownCommand | ProtocolError::BadLengths => st::UNKNOWN_COMMAND,
            _ => st::EINVAL,
        };
        self.fail(code);
    }

    fn sasl_mechs(&mut self, mechs: &str) {
        self.packet(st::SUCCESS, 0, &[], &[], mechs.as_bytes());
    }

    fn queued(&self) -> usize {
        self.out.len()
    }

    fn truncate(&mut self, mark: usize) {
        self.out.truncate(mark);
    }

    fn quit(&mut self) {
        self.success(0, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::binary::header::HEADER_LEN;

    fn meta(opcode: u8, quiet: bool, return_key: bool) -> Meta {
        Meta { opcode, opaque: 0x01020304, quiet, return_key }
    }

    fn header(out: &[u8]) -> Header {
        Header::read(out[..HEADER_LEN].try_into().unwrap())
    }

    #[test]
    fn get_hit_carries_flags_cas_and_key_for_getk() {
        let mut out = Vec::new();
        BinaryReply::new(&mut out, meta(op::GETK, false, true)).value(b"key", 7, Some(99), b"val");
        let h = header(&out);
        assert_eq!((h.magic, h.opcode, h.status, h.opaque, h.cas), (RESPONSE_MAGIC, op::GETK, 0, 0x01020304, 99));
        assert_eq!((h.extlen, h.keylen, h.bodylen), (4, 3, 10));
        assert_eq!(&out[HEADER_LEN..], b"\0\0\0\x07keyval");
    }

    #[test]
    fn quiet_replies_drop_successes_and_misses_but_not_errors() {
        let mut out = Vec::new();
        let mut r = BinaryReply::new(&mut out, meta(op::SETQ, true, false));
        r.status(Status::Stored, 5);
        r.miss(b"k");
        r.number(3, 1);
        assert!(out.is_empty());
        BinaryReply::new(&mut out, meta(op::SETQ, true, false)).status(Status::TooLarge, 0);
        let h = header(&out);
        assert_eq!(h.status, st::E2BIG);
        assert_eq!(&out[HEADER_LEN..], b"Too large.");
    }

    #[test]
    fn not_stored_depends_on_the_command() {
        for (opcode, want) in [(op::ADD, st::KEY_EEXISTS), (op::REPLACE, st::KEY_ENOENT), (op::APPEND, st::NOT_STORED)]
        {
            let mut out = Vec::new();
            BinaryReply::new(&mut out, meta(opcode, false, false)).status(Status::NotStored, 0);
            assert_eq!(header(&out).status, want, "opcode {opcode:#x}");
        }
    }

    #[test]
    fn getk_miss_returns_the_key_and_get_miss_a_message() {
        let mut out = Vec::new();
        BinaryReply::new(&mut out, meta(op::GETK, false, true)).miss(b"abc");
        assert_eq!(header(&out).status, st::KEY_ENOENT);
        assert_eq!(&out[HEADER_LEN..], b"abc");
        let mut out = Vec::new();
        BinaryReply::new(&mut out, meta(op::GET, false, false)).miss(b"abc");
        assert_eq!(&out[HEADER_LEN..], b"Not found");
    }

    #[test]
    fn stats_are_key_value_packets_ended_by_an_empty_one() {
        let mut out = Vec::new();
        let mut r = BinaryReply::new(&mut out, meta(op::STAT, false, false));
        r.stat("pid", &42);
        r.stats_end();
        let h = header(&out);
        assert_eq!((h.keylen, h.bodylen), (3, 5));
        assert_eq!(&out[HEADER_LEN..HEADER_LEN + 5], b"pid42");
        let end = header(&out[HEADER_LEN + 5..]);
        assert_eq!((end.keylen, end.bodylen, end.status), (0, 0, 0));
    }

    #[test]
    fn incr_result_is_eight_bytes_big_endian() {
        let mut out = Vec::new();
        BinaryReply::new(&mut out, meta(op::INCREMENT, false, false)).number(258, 7);
        assert_eq!(header(&out).cas, 7);
        assert_eq!(&out[HEADER_LEN..], &258u64.to_be_bytes());
    }
}
