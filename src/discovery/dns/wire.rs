//! DNS messages on the wire (RFC 1035 section 4, RFC 3596 for AAAA, RFC 2782
//! for SRV): a query with one question, and a reply decoded into the
//! records the cluster needs. Pure bytes, no I/O.
//!
//! ```text
//! header    id(2) flags(2) qdcount(2) ancount(2) nscount(2) arcount(2)
//! question  name type(2) class(2)
//! record    name type(2) class(2) ttl(4) rdlength(2) rdata(rdlength)
//! name      labels: len(1, 1..=63) bytes..., ended by len 0,
//!           or by a pointer: 0b11 + 14-bit offset of a prior name
//! ```
//!
//! Decoding never reads past the message: a reply cut short anywhere is
//! [`WireError::Truncated`], and a name whose pointers go round in a circle
//! is refused after [`MAX_JUMPS`] jumps.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
/// EDNS(0)'s pseudo-record (RFC 6891).
pub const TYPE_OPT: u16 = 41;
pub const CLASS_IN: u16 = 1;

/// Response codes the resolver tells apart.
pub const RCODE_OK: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_NXDOMAIN: u8 = 3;

const HEADER_LEN: usize = 12;
/// A name's wire length, length octets and the final zero included.
const MAX_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;
/// The UDP reply size a query with EDNS(0) offers: the size DNS servers
/// agreed on in 2020 as safe from fragmentation. Without EDNS a reply is at
/// most 512 bytes (about 29 A records).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Pointers followed in one name: a name has at most 127 labels, each one
/// reachable by at most one pointer.
pub const MAX_JUMPS: usize = 128;

/// Flags: QR (a response), TC (truncated), RD (recursion desired).
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The message ends before what its header and lengths announce.
    Truncated,
    /// The message breaks the format (the reason names how).
    Malformed(&'static str),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("reply cut short"),
            WireError::Malformed(why) => write!(f, "malformed reply: {why}"),
        }
    }
}

/// What a record holds; types the cluster does not use are kept as their
/// number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Srv { priority: u16, weight: u16, port: u16, target: String },
    Other(u16),
}

/// One resource record; `name` without its final dot (the root is "").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: Data,
}

/// A decoded reply. The authority section is checked and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub id: u16,
    pub rcode: u8,
    /// The question, as the reply repeats it: name and type.
    pub question: (String, u16),
    pub answers: Vec<Record>,
    pub additional: Vec<Record>,
}

/// Checks a label's bytes: printable ASCII, no dot (it would read as two
/// labels) and no `|` (the node list's separator).
fn check_label(label: &[u8]) -> Result<&str, WireError> {
    if label.iter().all(|&b| b.is_ascii_graphic() && b != b'.' && b != b'|') {
        // all ASCII, so valid UTF-8
        std::str::from_utf8(label).map_err(|_| WireError::Malformed("name is not ASCII"))
    } else {
        Err(WireError::Malformed("unusable character in a name"))
    }
}

/// A query for `name` (with or without its final dot) of type `qtype`,
/// class IN, recursion desired; with `edns`, an OPT record offering
/// [`EDNS_PAYLOAD`] bytes of reply.
pub fn encode_query(id: u16, name: &str, qtype: u16, edns: bool) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 17);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns)]); // one question
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return Err(format!("{name}: a label must have 1 to {MAX_LABEL_LEN} characters"));
            }
            check_label(label.as_bytes()).map_err(|_| format!("{name}: unusable character"))?;
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    out.push(0);
    if out.len() - HEADER_LEN > MAX_NAME_LEN {
        return Err(format!("{name}: longer than {MAX_NAME_LEN} octets"));
    }
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    if edns {
        // root name, type OPT, class = payload size, TTL 0 (rcode and
        // flags), no data
        out.push(0);
        out.extend_from_slice(&TYPE_OPT.to_be_bytes());
        out.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    Ok(out)
}

/// Reads the name at `pos`; returns it and the offset just after it where
/// it starts (after its first pointer, if it has one).
fn read_name(msg: &[u8], mut pos: usize) -> Result<(String, usize), WireError> {
    let mut name = String::new();
    let mut wire_len = 1; // the final zero
    let mut after = None;
    let mut jumps = 0;
    loop {
        let len = usize::from(*msg.get(pos).ok_or(WireError::Truncated)?);
        match len >> 6 {
            0 if len == 0 => return Ok((name, after.unwrap_or(pos + 1))),
            0 => {
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(WireError::Truncated)?;
                wire_len += 1 + len;
                if wire_len > MAX_NAME_LEN {
                    return Err(WireError::Malformed("name longer than 255 octets"));
                }
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(check_label(label)?);
                pos += 1 + len;
            }
            3 => {
                let low = usize::from(*msg.get(pos + 1).ok_or(WireError::Truncated)?);
                let target = (len & 0x3f) << 8 | low;
                if target >= pos {
                    return Err(WireError::Malformed("compression pointer does not point back"));
                }
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(WireError::Malformed("compression pointers loop"));
                }
                after.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(WireError::Malformed("reserved label type")),
        }
    }
}

fn read_u16(msg: &[u8], pos: usize) -> Result<u16, WireError> {
    let b = msg.get(pos..pos + 2).ok_or(WireError::Truncated)?;
    Ok(u16::from_be_bytes([b[0], b[1]]))
}

fn read_u32(msg: &[u8], pos: usize) -> Result<u32, WireError> {
    let b = msg.get(pos..pos + 4).ok_or(WireError::Truncated)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A name that must fill the rest of a record's data exactly.
fn rdata_name(msg: &[u8], start: usize, end: usize) -> Result<String, WireError> {
    // Reading from `msg[..end]`: a name running past the data is cut short.
    let (name, after) = read_name(&msg[..end], start).map_err(|e| match e {
        WireError::Truncated => WireError::Malformed("record data length"),
        e => e,
    })?;
    if after != end {
        return Err(WireError::Malformed("record data length"));
    }
    Ok(name)
}

/// Reads the record at `pos`; returns it and the offset after it.
fn read_record(msg: &[u8], pos: usize) -> Result<(Record, usize), WireError> {
    let (name, pos) = read_name(msg, pos)?;
    let rtype = read_u16(msg, pos)?;
    let class = read_u16(msg, pos + 2)?;
    let ttl = read_u32(msg, pos + 4)?;
    let rdlen = usize::from(read_u16(msg, pos + 8)?);
    let start = pos + 10;
    let end = start + rdlen;
    let rdata = msg.get(start..end).ok_or(WireError::Truncated)?;
    let data = match (class, rtype) {
        (CLASS_IN, TYPE_A) => {
            let b: [u8; 4] = rdata.try_into().map_err(|_| WireError::Malformed("A record is not 4 bytes"))?;
            Data::A(Ipv4Addr::from(b))
        }
        (CLASS_IN, TYPE_AAAA) => {
            let b: [u8; 16] = rdata.try_into().map_err(|_| WireError::Malformed("AAAA record is not 16 bytes"))?;
            Data::Aaaa(Ipv6Addr::from(b))
        }
        (CLASS_IN, TYPE_CNAME) => Data::Cname(rdata_name(msg, start, end)?),
        (CLASS_IN, TYPE_SRV) => {
            if rdlen < 7 {
                return Err(WireError::Malformed("SRV record shorter than 7 bytes"));
            }
            Data::Srv {
                priority: read_u16(msg, start)?,
                weight: read_u16(msg, start + 2)?,
                port: read_u16(msg, start + 4)?,
                target: rdata_name(msg, start + 6, end)?,
            }
        }
        (_, t) => Data::Other(t),
    };
    Ok((Record { name, ttl, data }, end))
}

/// Decodes a reply. A reply the server truncated (TC) is refused: it has
/// only part of the answer, and this client does not retry over TCP.
pub fn decode(msg: &[u8]) -> Result<Reply, WireError> {
    if msg.len() < HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let id = read_u16(msg, 0)?;
    let flags = read_u16(msg, 2)?;
    if flags & FLAG_QR == 0 {
        return Err(WireError::Malformed("a query, not a reply"));
    }
    if (flags >> 11) & 0xf != 0 {
        return Err(WireError::Malformed("not a standard query's reply"));
    }
    if flags & FLAG_TC != 0 {
        return Err(WireError::Malformed("truncated by the server (TC), and TCP is not used"));
    }
    let rcode = (flags & 0xf) as u8;
    let counts = [read_u16(msg, 4)?, read_u16(msg, 6)?, read_u16(msg, 8)?, read_u16(msg, 10)?];
    if counts[0] != 1 {
        return Err(WireError::Malformed("not exactly one question"));
    }
    let (qname, pos) = read_name(msg, HEADER_LEN)?;
    let qtype = read_u16(msg, pos)?;
    read_u16(msg, pos + 2)?; // class
    let mut pos = pos + 4;
    let mut sections: [Vec<Record>; 3] = Default::default();
    for (section, &count) in sections.iter_mut().zip(&counts[1..]) {
        for _ in 0..count {
            let (record, next) = read_record(msg, pos)?;
            section.push(record);
            pos = next;
        }
    }
    let [answers, _authority, additional] = sections;
    Ok(Reply { id, rcode, question: (qname, qtype), answers, additional })
}

/// Follows CNAME records from `name` (at most `hops` of them); returns the
/// name at the chain's end.
pub fn chain_end(records: &[Record], name: &str, hops: usize) -> String {
    let mut name = name.to_string();
    for _ in 0..hops {
        let next = records.iter().find_map(|r| match &r.data {
            Data::Cname(target) if r.name.eq_ignore_ascii_case(&name) => Some(target.clone()),
            _ => None,
        });
        match next {
            Some(target) => name = target,
            None => break,
        }
    }
    name
}

/// The records owned by `name` (case-insensitive).
pub fn owned_by<'a>(records: &'a [Record], name: &'a str) -> impl Iterator<Item = &'a Data> + 'a {
    records.iter().filter(move |r| r.name.eq_ignore_ascii_case(name)).map(|r| &r.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of a reply to id 0xbeef: QR RD RA, `rcode`, one question,
    /// then answer, authority and additional counts.
    fn header(rcode: u8, an: u16, ns: u16, ar: u16) -> Vec<u8> {
        let mut h = vec![0xbe, 0xef, 0x81, 0x80 | rcode, 0, 1];
        for c in [an, ns, ar] {
            h.extend_from_slice(&c.to_be_bytes());
        }
        h
    }

    /// `cache.test` A? answered by two A records and one AAAA, the owner
    /// names compressed to the question's name (offset 12).
    fn a_reply() -> Vec<u8> {
        let mut m = header(0, 3, 0, 0);
        m.extend_from_slice(b"\x05cache\x04test\x00\x00\x01\x00\x01");
        m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x0a");
        m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x0b");
        m.extend_from_slice(b"\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00\x3c\x00\x10");
        m.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        m
    }

    /// `_memcache._tcp.cache.test` SRV? answered by two SRV records (their
    /// targets' `cache.test` compressed to the question's), their A records
    /// in the additional section (names compressed to the targets), and an
    /// NS record in the authority section.
    fn srv_reply() -> Vec<u8> {
        let mut m = header(0, 2, 1, 2);
        // question at 12: _memcache(10) _tcp(5) cache(6) test(5) 0 = 27 bytes
        m.extend_from_slice(b"\x09_memcache\x04_tcp\x05cache\x04test\x00\x00\x21\x00\x01");
        // answer 1 at 43: owner -> 12; target node1.cache.test, "cache.test" -> 12+15
        m.extend_from_slice(b"\xc0\x0c\x00\x21\x00\x01\x00\x00\x00\x05\x00\x0e");
        m.extend_from_slice(b"\x00\x0a\x00\x05\x2b\xcb\x05node1\xc0\x1b");
        // answer 2 at 69: target node2 + pointer to "cache.test"
        m.extend_from_slice(b"\xc0\x0c\x00\x21\x00\x01\x00\x00\x00\x05\x00\x0e");
        m.extend_from_slice(b"\x00\x0a\x00\x05\x2b\xcc\x05node2\xc0\x1b");
        // authority: cache.test NS ns.cache.test
        m.extend_from_slice(b"\xc0\x1b\x00\x02\x00\x01\x00\x00\x00\x05\x00\x05\x02ns\xc0\x1b");
        // additional: node1 A 127.0.0.10 (name -> answer 1's target at 61)
        m.extend_from_slice(b"\xc0\x3d\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x7f\x00\x00\x0a");
        // node2 A 127.0.0.11 (name -> answer 2's target at 87)
        m.extend_from_slice(b"\xc0\x57\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x7f\x00\x00\x0b");
        m
    }

    /// `www.test` A? answered by a CNAME to `cache.test` and its A record.
    fn cname_reply() -> Vec<u8> {
        let mut m = header(0, 2, 0, 0);
        m.extend_from_slice(b"\x03www\x04test\x00\x00\x01\x00\x01");
        // www.test CNAME cache.test ("test" -> offset 16)
        m.extend_from_slice(b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x08\x05cache\xc0\x10");
        // cache.test (at 38) A 127.0.0.12
        m.extend_from_slice(b"\xc0\x26\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x0c");
        m
    }

    #[test]
    fn a_query_is_the_rfc_layout() {
        let q = encode_query(0x1234, "cache.test.", TYPE_AAAA, false).unwrap();
        assert_eq!(q, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05cache\x04test\x00\x00\x1c\x00\x01");
        assert_eq!(encode_query(0x1234, "cache.test", TYPE_AAAA, false).unwrap(), q, "the final dot is optional");
        assert!(encode_query(1, "a..b", TYPE_A, false).is_err());
        assert!(encode_query(1, &format!("{}.test", "x".repeat(64)), TYPE_A, false).is_err());
        assert!(encode_query(1, &vec!["x".repeat(63); 4].join("."), TYPE_A, false).is_err(), "256 octets");
        assert!(encode_query(
            1,
            &["x".repeat(63), "x".repeat(63), "x".repeat(63), "x".repeat(61)].join("."),
            TYPE_A,
            false
        )
        .is_ok());
        assert!(encode_query(1, "a b.test", TYPE_A, false).is_err());
        assert!(encode_query(1, "a|b.test", TYPE_A, false).is_err());
        // with EDNS(0): arcount 1 and the OPT record offering 1232 bytes
        let q = encode_query(0x1234, "a", TYPE_A, true).unwrap();
        assert_eq!(q, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x01a\x00\x00\x01\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00");
    }

    #[test]
    fn a_and_aaaa_records_decode() {
        let r = decode(&a_reply()).unwrap();
        assert_eq!((r.id, r.rcode, r.question.clone()), (0xbeef, 0, ("cache.test".to_string(), TYPE_A)));
        let data: Vec<&Data> = owned_by(&r.answers, "CACHE.test").collect();
        assert_eq!(
            data,
            [
                &Data::A(Ipv4Addr::new(127, 0, 0, 10)),
                &Data::A(Ipv4Addr::new(127, 0, 0, 11)),
                &Data::Aaaa("2001:db8::1".parse().unwrap())
            ]
        );
        assert_eq!(r.answers[0].ttl, 60);
    }

    #[test]
    fn srv_records_and_their_additional_addresses_decode() {
        let r = decode(&srv_reply()).unwrap();
        assert_eq!(r.question, ("_memcache._tcp.cache.test".to_string(), TYPE_SRV));
        let srv = |port, target: &str| Data::Srv { priority: 10, weight: 5, port, target: target.to_string() };
        assert_eq!(
            r.answers.iter().map(|a| &a.data).collect::<Vec<_>>(),
            [&srv(11211, "node1.cache.test"), &srv(11212, "node2.cache.test")]
        );
        assert_eq!(
            owned_by(&r.additional, "node2.cache.test").collect::<Vec<_>>(),
            [&Data::A(Ipv4Addr::new(127, 0, 0, 11))]
        );
    }

    #[test]
    fn cname_chains_are_followed_within_a_bound() {
        let r = decode(&cname_reply()).unwrap();
        assert_eq!(chain_end(&r.answers, "www.test", 8), "cache.test");
        assert_eq!(owned_by(&r.answers, "cache.test").collect::<Vec<_>>(), [&Data::A(Ipv4Addr::new(127, 0, 0, 12))]);
        assert_eq!(chain_end(&r.answers, "www.test", 0), "www.test");
        // a CNAME loop ends at the bound
        let cname = |from: &str, to: &str| Record { name: from.into(), ttl: 0, data: Data::Cname(to.into()) };
        let looped = [cname("a", "b"), cname("b", "a")];
        assert_eq!(chain_end(&looped, "a", 5), "b");
    }

    #[test]
    fn every_truncation_of_a_valid_reply_is_an_error() {
        for msg in [a_reply(), srv_reply(), cname_reply()] {
            assert!(decode(&msg).is_ok());
            for len in 0..msg.len() {
                assert_eq!(decode(&msg[..len]), Err(WireError::Truncated), "cut at {len} of {}", msg.len());
            }
        }
    }

    #[test]
    fn compression_loops_and_forward_pointers_are_refused() {
        // the question's name is a pointer to itself
        let mut m = header(0, 0, 0, 0);
        m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
        assert!(matches!(decode(&m), Err(WireError::Malformed(_))));
        // an answer whose name points at a pointer that points back at it
        let mut m = header(0, 1, 0, 0);
        m.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        m.extend_from_slice(b"\xc0\x15\xc0\x13"); // at 19: -> 21; at 21: -> 19
        m.extend_from_slice(b"\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x7f\x00\x00\x01");
        assert!(matches!(decode(&m), Err(WireError::Malformed(_))));
        // a label then a pointer back to it: a.a.a... until the length bound
        let mut m = header(0, 0, 0, 0);
        m.extend_from_slice(b"\x01a\xc0\x0c\x00\x01\x00\x01");
        assert_eq!(decode(&m), Err(WireError::Malformed("name longer than 255 octets")));
        // a long chain of backward pointers ends at the jump bound
        let mut m = header(0, 0, 0, 0);
        m.push(0); // the root at 12
        for i in 0..200u16 {
            // pointer i at 13 + 2i points at the one before (the root for i = 0)
            let target = if i == 0 { 12 } else { 13 + 2 * (i - 1) };
            m.extend_from_slice(&(0xc000 | target).to_be_bytes());
        }
        let (name, after) = read_name(&m, 13 + 2 * 50).unwrap();
        assert_eq!((name.as_str(), after), ("", 13 + 2 * 50 + 2), "50 jumps are fine");
        assert_eq!(read_name(&m, 13 + 2 * 199), Err(WireError::Malformed("compression pointers loop")));
        // a name over 255 octets, built from pointers to a 63-byte label
        let mut m = header(0, 0, 0, 0);
        m.push(63);
        m.extend_from_slice(&[b'x'; 63]);
        m.push(0); // 12: x{63}.
        let mut at = 12u16;
        for _ in 0..4 {
            let here = m.len() as u16;
            m.push(63);
            m.extend_from_slice(&[b'y'; 63]);
            m.extend_from_slice(&(0xc000 | at).to_be_bytes());
            at = here;
        }
        assert_eq!(read_name(&m, at.into()), Err(WireError::Malformed("name longer than 255 octets")));
    }

    #[test]
    fn malformed_replies_are_refused() {
        let bad = |m: &[u8]| matches!(decode(m), Err(WireError::Malformed(_)));
        let mut m = a_reply();
        m[2] &= 0x7f; // a query
        assert!(bad(&m));
        let mut m = a_reply();
        m[2] |= 0x02; // TC
        assert!(bad(&m));
        let mut m = a_reply();
        m[2] |= 0x08; // opcode 1
        assert!(bad(&m));
        let mut m = a_reply();
        m[5] = 2; // two questions
        assert!(bad(&m));
        let mut m = a_reply();
        m[12] = 0x45; // label type 01
        assert!(bad(&m));
        let mut m = a_reply();
        m[13] = b'|';
        assert!(bad(&m), "a name the node list cannot carry");
        // an A record of 5 bytes
        let mut m = header(0, 1, 0, 0);
        m.extend_from_slice(
            b"\x01a\x00\x00\x01\x00\x01\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x00\x00\x05\x7f\x00\x00\x01\x01",
        );
        assert!(bad(&m));
        // a CNAME whose name runs past its data length
        let mut m = header(0, 1, 0, 0);
        m.extend_from_slice(b"\x01a\x00\x00\x05\x00\x01\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x00\x00\x02\x01b\x00");
        assert!(bad(&m));
        // the rcode is reported, not judged here
        let r = decode(
            &header(RCODE_NXDOMAIN, 0, 0, 0).into_iter().chain(*b"\x01a\x00\x00\x01\x00\x01").collect::<Vec<_>>(),
        );
        assert_eq!(r.map(|r| r.rcode), Ok(RCODE_NXDOMAIN));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        /// Bytes of a valid reply overwritten at random: decoding ends,
        /// with a reply or an error, and never panics.
        #[test]
        fn damaged_replies_never_panic(which in 0..3usize, edits in proptest::collection::vec((0..2048usize, proptest::prelude::any::<u8>()), 1..8)) {
            let mut m = [a_reply(), srv_reply(), cname_reply()][which].clone();
            for (at, byte) in edits {
                let i = at % m.len();
                m[i] = byte;
            }
            if let Ok(r) = decode(&m) {
                let names = r.answers.iter().chain(&r.additional).map(|a| &a.name);
                proptest::prop_assert!(names.chain([&r.question.0]).all(|n| n.len() <= MAX_NAME_LEN));
            }
        }

        /// Random sections behind a header that passes the flag and
        /// question-count checks.
        #[test]
        fn random_sections_never_panic(mut m in proptest::collection::vec(proptest::prelude::any::<u8>(), 12..600)) {
            m[2] = 0x81;
            m[3] &= 0x0f;
            m[4] = 0;
            m[5] = 1;
            let _ = decode(&m);
        }
    }

    #[test]
    fn records_of_other_types_and_classes_are_kept_as_their_type() {
        let mut m = header(0, 2, 0, 0);
        m.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        // a TXT record and an A record of class CH
        m.extend_from_slice(b"\xc0\x0c\x00\x10\x00\x01\x00\x00\x00\x00\x00\x03\x02hi");
        m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x03\x00\x00\x00\x00\x00\x02\x00\x00");
        let r = decode(&m).unwrap();
        assert_eq!(r.answers.iter().map(|a| &a.data).collect::<Vec<_>>(), [&Data::Other(16), &Data::Other(TYPE_A)]);
    }
}
