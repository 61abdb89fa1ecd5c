//! Decimal numbers as the memcached text protocol writes and reads them.
//!
//! A leaf module: `protocol` (reply lines, request tokens) and `storage`
//! (incr/decr rewrite counters in place) both use it and it uses nothing.

/// Room for the longest u64 (20 digits).
pub type DigitBuf = [u8; 20];

/// Formats `n` in decimal into the end of `buf` and returns the digits.
#[inline]
pub fn format_u64(buf: &mut DigitBuf, mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Appends `n` in decimal to `out`.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(format_u64(&mut buf, n));
}

/// Parses a run of ASCII digits into a u64; `None` if empty, not all
/// digits, or over 2^64-1.
#[inline]
pub fn parse_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// An unsigned token: an optional `+`, then digits.
#[inline]
pub fn parse_unsigned(s: &[u8]) -> Option<u64> {
    parse_digits(s.strip_prefix(b"+").unwrap_or(s))
}

/// A signed token (`+`/`-`, then digits) within i64.
pub fn parse_signed(s: &[u8]) -> Option<i64> {
    match s.split_first() {
        Some((b'-', rest)) => {
            let n = parse_digits(rest)?;
            if n <= i64::MAX as u64 + 1 {
                Some((n as i64).wrapping_neg())
            } else {
                None
            }
        }
        _ => i64::try_from(parse_unsigned(s)?).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_edges() {
        let mut b = [0u8; 20];
        assert_eq!(format_u64(&mut b, 0), b"0");
        assert_eq!(format_u64(&mut b, 10), b"10");
        assert_eq!(format_u64(&mut b, u64::MAX), b"18446744073709551615");
        let mut v = b"x".to_vec();
        push_u64(&mut v, 42);
        assert_eq!(v, b"x42");
    }

    #[test]
    fn parse_edges() {
        assert_eq!(parse_unsigned(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_unsigned(b"18446744073709551616"), None);
        assert_eq!(parse_unsigned(b"+5"), Some(5));
        assert_eq!(parse_unsigned(b"-5"), None);
        assert_eq!(parse_unsigned(b""), None);
        assert_eq!(parse_unsigned(b"+"), None);
        assert_eq!(parse_unsigned(b"1a"), None);
        assert_eq!(parse_signed(b"-1"), Some(-1));
        assert_eq!(parse_signed(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_signed(b"9223372036854775808"), None);
        assert_eq!(parse_signed(b"-"), None);
        assert_eq!(parse_signed(b"+7"), Some(7));
    }
}
