//! Binary parser tables: every opcode, each packet split at every offset,
//! malformed lengths refused before the body is buffered.

use super::*;
use crate::protocol::{Keys, Request as R, StoreCommand as S};

fn lim() -> Limits {
    Limits { max_value: 1000, max_line: 2048, max_get_line: 4096, strict: false }
}

/// A request packet.
fn pkt(opcode: u8, extras: &[u8], key: &[u8], value: &[u8], cas: u64) -> Vec<u8> {
    let h = Header {
        magic: REQUEST_MAGIC,
        opcode,
        keylen: key.len() as u16,
        extlen: extras.len() as u8,
        datatype: 0,
        status: 0,
        bodylen: (extras.len() + key.len() + value.len()) as u32,
        opaque: 0xa1b2c3d4,
        cas,
    };
    let mut v = Vec::new();
    h.write(&mut v);
    v.extend_from_slice(extras);
    v.extend_from_slice(key);
    v.extend_from_slice(value);
    v
}

fn ext_set(flags: u32, exp: u32) -> Vec<u8> {
    [flags.to_be_bytes(), exp.to_be_bytes()].concat()
}

fn ext_incr(delta: u64, initial: u64, exp: u32) -> Vec<u8> {
    [&delta.to_be_bytes()[..], &initial.to_be_bytes(), &exp.to_be_bytes()].concat()
}

fn valid_cases() -> Vec<(Vec<u8>, R<'static>, bool, bool)> {
    // (packet, request, quiet, return_key)
    let get = |k: &'static [u8]| R::Get { keys: Keys::one(k), cas: true };
    let store = |command, key: &'static [u8], flags, exptime, data: &'static [u8], cas, noreply| R::Store {
        command,
        key,
        flags,
        exptime,
        data,
        cas,
        noreply,
    };
    vec![
        (pkt(op::GET, &[], b"key", &[], 0), get(b"key"), false, false),
        (pkt(op::GETQ, &[], b"key", &[], 0), get(b"key"), true, false),
        (pkt(op::GETK, &[], b"a key", &[], 0), get(b"a key"), false, true),
        (pkt(op::GETKQ, &[], b"k", &[], 0), get(b"k"), true, true),
        (
            pkt(op::SET, &ext_set(7, 100), b"k", b"value", 0),
            store(S::Set, b"k", 7, 100, b"value", 0, false),
            false,
            false,
        ),
        (pkt(op::SETQ, &ext_set(0, 0), b"k", b"", 0), store(S::Set, b"k", 0, 0, b"", 0, true), true, false),
        (pkt(op::SET, &ext_set(0, 0), b"k", b"v", 99), store(S::Cas, b"k", 0, 0, b"v", 99, false), false, false),
        (pkt(op::ADD, &ext_set(1, 2), b"k", b"v", 0), store(S::Add, b"k", 1, 2, b"v", 0, false), false, false),
        (pkt(op::ADDQ, &ext_set(1, 2), b"k", b"v", 0), store(S::Add, b"k", 1, 2, b"v", 0, true), true, false),
        (pkt(op::REPLACE, &ext_set(1, 2), b"k", b"v", 0), store(S::Replace, b"k", 1, 2, b"v", 0, false), false, false),
        (pkt(op::REPLACEQ, &ext_set(1, 2), b"k", b"v", 0), store(S::Replace, b"k", 1, 2, b"v", 0, true), true, false),
        (pkt(op::APPEND, &[], b"k", b"tail", 0), store(S::Append, b"k", 0, 0, b"tail", 0, false), false, false),
        (pkt(op::APPENDQ, &[], b"k", b"tail", 5), store(S::Append, b"k", 0, 0, b"tail", 5, true), true, false),
        (pkt(op::PREPEND, &[], b"k", b"head", 0), store(S::Prepend, b"k", 0, 0, b"head", 0, false), false, false),
        (pkt(op::PREPENDQ, &[], b"k", b"head", 0), store(S::Prepend, b"k", 0, 0, b"head", 0, true), true, false),
        (pkt(op::DELETE, &[], b"k", &[], 0), R::Delete { key: b"k", cas: 0, noreply: false }, false, false),
        (pkt(op::DELETEQ, &[], b"k", &[], 3), R::Delete { key: b"k", cas: 3, noreply: true }, true, false),
        (
            pkt(op::INCREMENT, &ext_incr(5, 10, 0), b"n", &[], 0),
            R::Incr { key: b"n", delta: 5, initial: Some((10, 0)), cas: 0, noreply: false },
            false,
            false,
        ),
        (
            pkt(op::INCREMENTQ, &ext_incr(5, 10, u32::MAX), b"n", &[], 0),
            R::Incr { key: b"n", delta: 5, initial: None, cas: 0, noreply: true },
            true,
            false,
        ),
        (
            pkt(op::DECREMENT, &ext_incr(1, 0, 60), b"n", &[], 8),
            R::Decr { key: b"n", delta: 1, initial: Some((0, 60)), cas: 8, noreply: false },
            false,
            false,
        ),
        (
            pkt(op::DECREMENTQ, &ext_incr(1, 0, 60), b"n", &[], 0),
            R::Decr { key: b"n", delta: 1, initial: Some((0, 60)), cas: 0, noreply: true },
            true,
            false,
        ),
        (pkt(op::QUIT, &[], &[], &[], 0), R::Quit, false, false),
        (pkt(op::QUITQ, &[], &[], &[], 0), R::Quit, true, false),
        (pkt(op::FLUSH, &[], &[], &[], 0), R::FlushAll { exptime: 0, noreply: false }, false, false),
        (pkt(op::FLUSHQ, &10u32.to_be_bytes(), &[], &[], 0), R::FlushAll { exptime: 10, noreply: true }, true, false),
        (pkt(op::NOOP, &[], &[], &[], 0), R::Noop, false, false),
        (pkt(op::VERSION, &[], &[], &[], 0), R::Version, false, false),
        (pkt(op::STAT, &[], &[], &[], 0), R::Stats { args: b"" }, false, false),
        (pkt(op::STAT, &[], b"settings", &[], 0), R::Stats { args: b"settings" }, false, false),
        (pkt(op::VERBOSITY, &1u32.to_be_bytes(), &[], &[], 0), R::Verbosity { level: 1, noreply: false }, false, false),
        (
            pkt(op::TOUCH, &9u32.to_be_bytes(), b"k", &[], 0),
            R::Touch { key: b"k", exptime: 9, noreply: false },
            false,
            false,
        ),
        (
            pkt(op::GAT, &9u32.to_be_bytes(), b"k", &[], 0),
            R::Gat { exptime: 9, keys: Keys::one(b"k"), cas: true },
            false,
            false,
        ),
        (
            pkt(op::GATQ, &9u32.to_be_bytes(), b"k", &[], 0),
            R::Gat { exptime: 9, keys: Keys::one(b"k"), cas: true },
            true,
            false,
        ),
        (
            pkt(op::GATK, &9u32.to_be_bytes(), b"k", &[], 0),
            R::Gat { exptime: 9, keys: Keys::one(b"k"), cas: true },
            false,
            true,
        ),
        (
            pkt(op::GATKQ, &9u32.to_be_bytes(), b"k", &[], 0),
            R::Gat { exptime: 9, keys: Keys::one(b"k"), cas: true },
            true,
            true,
        ),
        (pkt(op::SASL_LIST_MECHS, &[], &[], &[], 0), R::SaslListMechs, false, false),
        (
            pkt(op::SASL_AUTH, &[], b"PLAIN", b"\0u\0p", 0),
            R::SaslAuth { mech: b"PLAIN", data: b"\0u\0p", step: false },
            false,
            false,
        ),
        (
            pkt(op::SASL_STEP, &[], b"PLAIN", b"x", 0),
            R::SaslAuth { mech: b"PLAIN", data: b"x", step: true },
            false,
            false,
        ),
    ]
}

#[test]
fn every_opcode_parses_whole() {
    for (packet, want, quiet, return_key) in valid_cases() {
        let (got, meta, used) = parse(&packet, &lim()).unwrap_or_else(|e| panic!("{packet:02x?}: {e:?}"));
        assert_eq!(got, want, "opcode {:#04x}", packet[1]);
        assert_eq!(used, packet.len());
        assert_eq!((meta.opcode, meta.opaque), (packet[1], 0xa1b2c3d4));
        assert_eq!((meta.quiet, meta.return_key), (quiet, return_key), "opcode {:#04x}", packet[1]);
    }
}

#[test]
fn every_packet_is_incomplete_until_its_last_byte() {
    for (packet, ..) in valid_cases() {
        for cut in 0..packet.len() {
            assert_eq!(
                parse(&packet[..cut], &lim()).err(),
                Some(ParseError::Incomplete),
                "{:#04x} at {cut}",
                packet[1]
            );
        }
    }
}

#[test]
fn pipelined_packets_parse_in_order() {
    let mut buf = pkt(op::GETKQ, &[], b"a", &[], 0);
    buf.extend(pkt(op::GETKQ, &[], b"b", &[], 0));
    buf.extend(pkt(op::NOOP, &[], &[], &[], 0));
    let (r1, _, n1) = parse(&buf, &lim()).unwrap();
    let (r2, _, n2) = parse(&buf[n1..], &lim()).unwrap();
    let (r3, _, n3) = parse(&buf[n1 + n2..], &lim()).unwrap();
    assert_eq!(r1, R::Get { keys: Keys::one(b"a"), cas: true });
    assert_eq!(r2, R::Get { keys: Keys::one(b"b"), cas: true });
    assert_eq!(r3, R::Noop);
    assert_eq!(n1 + n2 + n3, buf.len());
}

fn header_only(opcode: u8, extlen: u8, keylen: u16, bodylen: u32) -> Vec<u8> {
    let mut v = Vec::new();
    Header { magic: REQUEST_MAGIC, opcode, keylen, extlen, datatype: 0, status: 0, bodylen, opaque: 1, cas: 0 }
        .write(&mut v);
    v
}

#[test]
fn lengths_that_disagree_are_refused_from_the_header_alone() {
    let cases = [
        // extras + key longer than the body: unknown command, then close
        (header_only(op::SET, 8, 10, 12), ProtocolError::BadLengths),
        (header_only(op::GET, 0, 5, 4), ProtocolError::BadLengths),
        // a key over 250 bytes
        (header_only(op::GET, 0, 251, 251), ProtocolError::BadPacket),
        // shapes that do not fit the opcode: EINVAL, then close
        (header_only(op::GET, 0, 3, u32::MAX), ProtocolError::BadPacket),
        (header_only(op::SET, 4, 3, 10), ProtocolError::BadPacket),
        (header_only(op::SET, 8, 0, 10), ProtocolError::BadPacket),
        (header_only(op::INCREMENT, 20, 1, 30), ProtocolError::BadPacket),
        (header_only(op::VERSION, 0, 0, 1), ProtocolError::BadPacket),
        (header_only(op::NOOP, 0, 1, 1), ProtocolError::BadPacket),
        (header_only(op::TOUCH, 0, 1, 1), ProtocolError::BadPacket),
        (header_only(op::FLUSH, 8, 0, 8), ProtocolError::BadPacket),
        (header_only(op::DELETE, 0, 1, 2_000_000_000), ProtocolError::BadPacket),
        // an unknown opcode with a body too large to skip
        (header_only(0x55, 0, 0, u32::MAX), ProtocolError::BadLengths),
    ];
    for (header, error) in cases {
        let (req, _, used) = parse(&header, &lim()).unwrap_or_else(|e| panic!("{header:02x?}: {e:?}"));
        assert_eq!(req, R::Fatal { error, noreply: false }, "{header:02x?}");
        assert_eq!(used, HEADER_LEN);
    }
}

#[test]
fn a_value_over_the_limit_is_refused_before_the_body_arrives() {
    // 2^32-1 bytes declared: only header, extras and key are needed.
    let mut p = header_only(op::SET, 8, 1, u32::MAX);
    p.extend_from_slice(&ext_set(0, 0));
    assert_eq!(parse(&p, &lim()).err(), Some(ParseError::Incomplete));
    p.push(b'k');
    let (req, meta, used) = parse(&p, &lim()).unwrap();
    assert_eq!(req, R::TooLarge { key: b"k", set: true, swallow: u32::MAX as usize - 9, noreply: false });
    assert_eq!(used, p.len());
    assert!(!meta.quiet);
    let mut q = header_only(op::APPENDQ, 0, 1, 5000);
    q.push(b'k');
    let (req, ..) = parse(&q, &lim()).unwrap();
    assert_eq!(req, R::TooLarge { key: b"k", set: false, swallow: 4999, noreply: true });
}

#[test]
fn unknown_opcodes_are_skipped_whole() {
    let p = pkt(0x55, &[], b"k", b"xyz", 0);
    let (req, meta, used) = parse(&p, &lim()).unwrap();
    assert_eq!(req, R::Invalid { error: ProtocolError::UnknownCommand, noreply: false });
    assert_eq!((meta.opcode, used), (0x55, p.len()));
}

#[test]
fn a_packet_that_is_not_a_request_closes_the_connection() {
    assert_eq!(parse(b"get a\r\n", &lim()).err(), Some(ParseError::Close(CloseReason::BadMagic)));
    assert_eq!(parse(&[0x81], &lim()).err(), Some(ParseError::Close(CloseReason::BadMagic)));
}
