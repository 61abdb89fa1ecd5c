//! The 24-byte binary packet header and the opcode and status numbers
//! (memcached's `protocol_binary.h`). No I/O.

/// Header bytes in every packet.
pub const HEADER_LEN: usize = 24;
/// First byte of a request.
pub const REQUEST_MAGIC: u8 = 0x80;
/// First byte of a response.
pub const RESPONSE_MAGIC: u8 = 0x81;

/// A request header, fields in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub magic: u8,
    pub opcode: u8,
    pub keylen: u16,
    pub extlen: u8,
    pub datatype: u8,
    /// vbucket in requests, status in responses.
    pub status: u16,
    pub bodylen: u32,
    pub opaque: u32,
    pub cas: u64,
}

impl Header {
    /// Reads a header from the first 24 bytes of `b`.
    pub fn read(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            magic: b[0],
            opcode: b[1],
            keylen: u16::from_be_bytes([b[2], b[3]]),
            extlen: b[4],
            datatype: b[5],
            status: u16::from_be_bytes([b[6], b[7]]),
            bodylen: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            opaque: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
            cas: u64::from_be_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]),
        }
    }

    /// Appends the header in wire order.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.magic);
        out.push(self.opcode);
        out.extend_from_slice(&self.keylen.to_be_bytes());
        out.push(self.extlen);
        out.push(self.datatype);
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.bodylen.to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&self.cas.to_be_bytes());
    }
}

/// Request opcodes memcached 1.6 answers.
pub mod opcode {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    pub const VERBOSITY: u8 = 0x1b;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const SASL_LIST_MECHS: u8 = 0x20;
    pub const SASL_AUTH: u8 = 0x21;
    pub const SASL_STEP: u8 = 0x22;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
}

/// Response status codes.
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const KEY_ENOENT: u16 = 0x0001;
    pub const KEY_EEXISTS: u16 = 0x0002;
    pub const E2BIG: u16 = 0x0003;
    pub const EINVAL: u16 = 0x0004;
    pub const NOT_STORED: u16 = 0x0005;
    pub const DELTA_BADVAL: u16 = 0x0006;
    pub const AUTH_ERROR: u16 = 0x0020;
    pub const AUTH_CONTINUE: u16 = 0x0021;
    pub const UNKNOWN_COMMAND: u16 = 0x0081;
    pub const ENOMEM: u16 = 0x0082;

    /// memcached's text for an error status.
    pub fn message(s: u16) -> &'static [u8] {
        match s {
            KEY_ENOENT => b"Not found",
            KEY_EEXISTS => b"Data exists for key.",
            E2BIG => b"Too large.",
            EINVAL => b"Invalid arguments",
            NOT_STORED => b"Not stored.",
            DELTA_BADVAL => b"Non-numeric server-side value for incr or decr",
            AUTH_ERROR => b"Auth failure.",
            UNKNOWN_COMMAND => b"Unknown command",
            ENOMEM => b"Out of memory",
            _ => b"",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_in_network_order() {
        let h = Header {
            magic: REQUEST_MAGIC,
            opcode: opcode::SET,
            keylen: 0x0102,
            extlen: 8,
            datatype: 0,
            status: 0,
            bodylen: 0x0a0b0c0d,
            opaque: 0xdeadbeef,
            cas: 0x0102030405060708,
        };
        let mut out = Vec::new();
        h.write(&mut out);
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(&out[..4], &[0x80, 0x01, 0x01, 0x02]);
        assert_eq!(&out[8..12], &[0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(&out[16..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Header::read(out[..].try_into().unwrap()), h);
    }
}
