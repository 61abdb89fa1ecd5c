//! Standard base64 (RFC 4648, with padding), for meta-command keys given
//! with the `b` flag. Decoding refuses anything that is not canonical
//! base64, as memcached's decoder does by returning nothing.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some(u32::from(c - b'A')),
        b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
        b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Decodes `s`; `None` if it is empty or not valid padded base64.
pub fn decode(s: &[u8]) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let quads = s.len() / 4;
    for (i, q) in s.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// Appends the base64 form of `data` to `out`.
pub fn encode_into(data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length() {
        for len in 0..40usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut enc = Vec::new();
            encode_into(&data, &mut enc);
            if len > 0 {
                assert_eq!(decode(&enc), Some(data), "len {len}");
            }
        }
    }

    #[test]
    fn known_vectors_and_bad_input() {
        let mut e = Vec::new();
        encode_into(b"foo", &mut e);
        assert_eq!(e, b"Zm9v");
        assert_eq!(decode(b"YmluYXJ5"), Some(b"binary".to_vec()));
        assert_eq!(decode(b"Zg=="), Some(b"f".to_vec()));
        for bad in [&b""[..], b"!!!", b"Zg=", b"Z===", b"Zg==Zg==", b"Zm9v\0\0\0\0"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
