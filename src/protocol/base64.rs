//! Standard base64 (RFC 4648, with padding), for meta-command keys given
//! with the `b` flag, over the `base64` crate. Decoding refuses anything
//! that is not canonical base64 (missing or extra padding, trailing bits
//! that are not zero, bytes outside the alphabet), so one key has one
//! encoding and a reply's `k` flag gives back what the client sent.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Decodes `s`; `None` if it is empty or not canonical padded base64.
pub fn decode(s: &[u8]) -> Option<Vec<u8>> {
    // The STANDARD engine requires canonical padding and refuses non-zero
    // trailing bits.
    STANDARD.decode(s).ok().filter(|k| !k.is_empty())
}

/// Appends the base64 form of `data` to `out`.
pub fn encode_into(data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    // 4 bytes per started group of 3: no overflow for a key of <= 250 bytes.
    out.resize(start + data.len().div_ceil(3) * 4, 0);
    let written = STANDARD.encode_slice(data, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

/// Whether a meta command must name `key` in base64 (flag `b`): it holds
/// a space, a control byte or DEL, which the text protocol cannot carry.
fn key_needs_base64(key: &[u8]) -> bool {
    key.iter().any(|&b| b <= b' ' || b == 0x7f)
}

/// Whether a meta command can name `key`: not empty, and its token (the
/// key, or its base64 form) at most [`crate::MAX_KEY_LEN`] bytes.
pub fn meta_key_fits(key: &[u8]) -> bool {
    let len = if key_needs_base64(key) { key.len().div_ceil(3) * 4 } else { key.len() };
    (1..=crate::MAX_KEY_LEN).contains(&len)
}

/// Appends the token a meta command names `key` by: the key as it is, or
/// its base64 form when the text protocol cannot carry it. `Some(true)`
/// when base64 (the command then needs the `b` flag); `None`, writing
/// nothing, when [`meta_key_fits`] says no command can name it.
pub fn push_meta_key(key: &[u8], out: &mut Vec<u8>) -> Option<bool> {
    if !meta_key_fits(key) {
        return None;
    }
    if key_needs_base64(key) {
        encode_into(key, out);
        Some(true)
    } else {
        out.extend_from_slice(key);
        Some(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keys_go_as_they_are_or_in_base64_within_250_bytes() {
        let mut out = Vec::new();
        assert_eq!(push_meta_key(b"plain:key", &mut out), Some(false));
        assert_eq!(push_meta_key(b"a b", &mut out), Some(true));
        assert_eq!(out, b"plain:keyYSBi");
        assert!(meta_key_fits(&[b'x'; 250]) && !meta_key_fits(&[b'x'; 251]));
        // 186 bytes encode to 248, 187 to 252
        assert!(meta_key_fits(&[0u8; 186]) && !meta_key_fits(&[0u8; 187]));
        assert!(!meta_key_fits(b""));
        let before = out.len();
        assert_eq!(push_meta_key(&[0u8; 187], &mut out), None);
        assert_eq!(out.len(), before, "nothing written for a key no command can name");
    }

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
        for bad in [&b""[..], b"!!!", b"Zg=", b"Z===", b"Zg==Zg==", b"Zm9v\0\0\0\0", b"Zh==", b"Zm9=", b"Zg"] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
