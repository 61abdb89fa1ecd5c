//! Parser tables: each valid request, the request it parses to, and the
//! same bytes split at every offset; every error reply; limits.

use super::*;
use crate::protocol::{CloseReason, Keys, Limits, ParseError, ProtocolError as E, Request as R, StoreCommand as S};

fn lim() -> Limits {
    Limits { max_value: 1000, max_line: 2048, max_get_line: 4096, strict: false }
}

fn one(input: &[u8]) -> (Request<'_>, usize) {
    parse(input, &lim()).unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(input)))
}

fn store(
    command: S,
    key: &'static [u8],
    flags: u32,
    exptime: i64,
    data: &'static [u8],
    cas: u64,
    noreply: bool,
) -> R<'static> {
    R::Store { command, key, flags, exptime, data, cas, noreply }
}

fn valid_cases() -> Vec<(&'static [u8], R<'static>)> {
    vec![
        (b"get a\r\n", R::Get { keys: Keys::list(b"a"), cas: false }),
        (b"get a b  c \r\n", R::Get { keys: Keys::list(b"a b  c"), cas: false }),
        (b"gets a\n", R::Get { keys: Keys::list(b"a"), cas: true }),
        (b"bget a\r\n", R::Get { keys: Keys::list(b"a"), cas: false }),
        (b"gat 10 a b\r\n", R::Gat { exptime: 10, keys: Keys::list(b"a b"), cas: false }),
        (b"gats -1 a\r\n", R::Gat { exptime: -1, keys: Keys::list(b"a"), cas: true }),
        (b"gat 10\r\n", R::Gat { exptime: 10, keys: Keys::list(b""), cas: false }),
        (b"set k 5 0 3\r\nabc\r\n", store(S::Set, b"k", 5, 0, b"abc", 0, false)),
        (b"set k 0 0 0\r\n\r\n", store(S::Set, b"k", 0, 0, b"", 0, false)),
        (b"set k 4294967295 -1 1 noreply\r\nx\r\n", store(S::Set, b"k", u32::MAX, -1, b"x", 0, true)),
        (b"set  k  0  0  1\r\nx\r\n", store(S::Set, b"k", 0, 0, b"x", 0, false)),
        (b"set k +1 +2 +1\r\nx\r\n", store(S::Set, b"k", 1, 2, b"x", 0, false)),
        (b"set k 0 0 2\r\n\r\n\r\n", store(S::Set, b"k", 0, 0, b"\r\n", 0, false)),
        (b"add k 0 0 1\r\nx\r\n", store(S::Add, b"k", 0, 0, b"x", 0, false)),
        (b"replace k 0 0 1\r\nx\r\n", store(S::Replace, b"k", 0, 0, b"x", 0, false)),
        (b"append k 0 0 1\r\nx\r\n", store(S::Append, b"k", 0, 0, b"x", 0, false)),
        (b"prepend k 0 0 1 noreply\r\nx\r\n", store(S::Prepend, b"k", 0, 0, b"x", 0, true)),
        (b"cas k 0 0 1 99\r\nx\r\n", store(S::Cas, b"k", 0, 0, b"x", 99, false)),
        (b"cas k 0 0 1 18446744073709551615 noreply\r\nx\r\n", store(S::Cas, b"k", 0, 0, b"x", u64::MAX, true)),
        (b"delete k\r\n", R::Delete { key: b"k", cas: 0, noreply: false }),
        (b"delete k 0\r\n", R::Delete { key: b"k", cas: 0, noreply: false }),
        (b"delete k noreply\r\n", R::Delete { key: b"k", cas: 0, noreply: true }),
        (b"delete k 0 noreply\r\n", R::Delete { key: b"k", cas: 0, noreply: true }),
        (b"incr k 5\r\n", R::Incr { key: b"k", delta: 5, initial: None, cas: 0, noreply: false }),
        (
            b"incr k 18446744073709551615 noreply\r\n",
            R::Incr { key: b"k", delta: u64::MAX, initial: None, cas: 0, noreply: true },
        ),
        (b"decr k 1\r\n", R::Decr { key: b"k", delta: 1, initial: None, cas: 0, noreply: false }),
        (b"incr k 1 2\r\n", R::Incr { key: b"k", delta: 1, initial: None, cas: 0, noreply: false }),
        (b"touch k 10\r\n", R::Touch { key: b"k", exptime: 10, noreply: false }),
        (b"touch k -1 noreply\r\n", R::Touch { key: b"k", exptime: -1, noreply: true }),
        (b"flush_all\r\n", R::FlushAll { exptime: 0, noreply: false }),
        (b"flush_all 10\r\n", R::FlushAll { exptime: 10, noreply: false }),
        (b"flush_all noreply\r\n", R::FlushAll { exptime: 0, noreply: true }),
        (b"flush_all 0 noreply\r\n", R::FlushAll { exptime: 0, noreply: true }),
        (b"flush_all -1\r\n", R::FlushAll { exptime: -1, noreply: false }),
        (b"version\r\n", R::Version),
        (b"version extra\r\n", R::Version),
        (b"quit\r\n", R::Quit),
        (b"verbosity 1\r\n", R::Verbosity { level: 1, noreply: false }),
        (b"verbosity 1 noreply\r\n", R::Verbosity { level: 1, noreply: true }),
        (b"stats\r\n", R::Stats { args: b"" }),
        (b"stats  items \r\n", R::Stats { args: b"items" }),
        (b"stats cachedump 1 2\r\n", R::Stats { args: b"cachedump 1 2" }),
        (b"shutdown\r\n", R::Shutdown { graceful: false, valid: true }),
        (b"shutdown graceful\r\n", R::Shutdown { graceful: true, valid: true }),
        (b"shutdown now\r\n", R::Shutdown { graceful: false, valid: false }),
        (b"cache_memlimit 100\r\n", R::CacheMemlimit { megabytes: 100, noreply: false }),
        (b"ferrocache_replica\r\n", R::ReplicaMark),
        (b"set k 0 0 1001\r\n", R::TooLarge { key: b"k", set: true, swallow: 1003, noreply: false }),
        (b"add k 0 0 5000 noreply\r\n", R::TooLarge { key: b"k", set: false, swallow: 5002, noreply: true }),
    ]
}

#[test]
fn every_valid_request_parses_whole() {
    for (input, want) in valid_cases() {
        let (got, used) = one(input);
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(used, input.len(), "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn every_valid_request_is_incomplete_until_its_last_byte() {
    for (input, _) in valid_cases() {
        for cut in 0..input.len() {
            assert_eq!(
                parse(&input[..cut], &lim()),
                Err(ParseError::Incomplete),
                "{:?} cut at {cut}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn keys_iterate_in_order() {
    let (r, _) = one(b"get  a bb   ccc \r\n");
    let R::Get { keys, .. } = r else { panic!() };
    assert_eq!(keys.iter().collect::<Vec<_>>(), vec![&b"a"[..], b"bb", b"ccc"]);
}

#[test]
fn pipelined_requests_parse_one_after_another() {
    let input = b"set a 0 0 1\r\nx\r\nget a\r\ndelete a noreply\r\nincr n 1\r\n";
    let mut at = 0;
    let mut kinds = Vec::new();
    while at < input.len() {
        let (r, used) = one(&input[at..]);
        kinds.push(std::mem::discriminant(&r));
        at += used;
    }
    assert_eq!(kinds.len(), 4);
    assert_eq!(at, input.len());
}

fn err_cases() -> Vec<(&'static [u8], E, bool, usize)> {
    // (input, error, noreply, bytes consumed)
    let k251: &'static [u8] = Box::leak(format!("get {}\r\n", "k".repeat(251)).into_bytes().into_boxed_slice());
    vec![
        (b"\r\n", E::UnknownCommand, false, 2),
        (b"x\r\n", E::UnknownCommand, false, 3),
        (b"bogus\r\n", E::UnknownCommand, false, 7),
        (b"ferrocache_replica x\r\n", E::UnknownCommand, false, 22),
        (b"GET a\r\n", E::UnknownCommand, false, 7),
        (b"get\r\n", E::UnknownCommand, false, 5),
        (b"gets\r\n", E::UnknownCommand, false, 6),
        (b"gat\r\n", E::UnknownCommand, false, 5),
        (b"gat n\r\n", E::InvalidExptime, false, 7),
        (b"gat 99999999999 n\r\n", E::InvalidExptime, false, 19),
        (k251, E::BadFormat, false, k251.len()),
        (b"get a\x01b\r\n", E::BadFormat, false, 9),
        (b"delete\r\n", E::UnknownCommand, false, 8),
        (b"delete a 5\r\n", E::DeleteUsage, false, 12),
        (b"delete a 0 0\r\n", E::DeleteUsage, false, 14),
        (b"delete a b c d\r\n", E::UnknownCommand, false, 16),
        (b"incr\r\n", E::UnknownCommand, false, 6),
        (b"incr n\r\n", E::UnknownCommand, false, 8),
        (b"incr n -1\r\n", E::InvalidDelta, false, 11),
        (b"incr n abc noreply\r\n", E::InvalidDelta, true, 20),
        (b"incr n 18446744073709551616\r\n", E::InvalidDelta, false, 29),
        (b"decr n 1 noreply extra\r\n", E::UnknownCommand, false, 24),
        (b"touch n\r\n", E::UnknownCommand, false, 9),
        (b"touch n abc\r\n", E::InvalidExptime, false, 13),
        (b"flush_all abc\r\n", E::InvalidExptime, false, 15),
        (b"flush_all 1 2 3\r\n", E::UnknownCommand, false, 17),
        (b"verbosity\r\n", E::UnknownCommand, false, 11),
        (b"verbosity abc\r\n", E::BadFormat, false, 15),
        (b"verbosity 1 2 3\r\n", E::UnknownCommand, false, 17),
        (b"cache_memlimit\r\n", E::UnknownCommand, false, 16),
        (b"cache_memlimit x\r\n", E::UnknownCommand, false, 18),
    ]
}

#[test]
fn every_error_reply() {
    for (input, error, noreply, used) in err_cases() {
        let (got, n) = one(input);
        assert_eq!(got, R::Invalid { error, noreply }, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(n, used, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn error_requests_are_incomplete_until_their_last_byte() {
    for (input, _, _, used) in err_cases() {
        for cut in 0..used {
            assert_eq!(parse(&input[..cut], &lim()), Err(ParseError::Incomplete), "{:?} at {cut}", input);
        }
    }
}

#[test]
fn long_lines_close_the_connection_instead_of_buffering() {
    let l = lim();
    let no_newline = vec![b'x'; l.max_line + 1];
    assert_eq!(parse(&no_newline, &l), Err(ParseError::Close(CloseReason::LineTooLong)));
    assert_eq!(parse(&no_newline[..l.max_line], &l), Err(ParseError::Incomplete));
    let mut late_newline = vec![b'x'; l.max_line + 5];
    late_newline.extend_from_slice(b"\r\n");
    assert_eq!(parse(&late_newline, &l), Err(ParseError::Close(CloseReason::LineTooLong)));
    // retrieval lines may be longer, up to their own limit
    let mut get = b"get ".to_vec();
    while get.len() < l.max_line + 100 {
        get.extend_from_slice(b"key ");
    }
    assert_eq!(parse(&get, &l), Err(ParseError::Incomplete));
    get.extend_from_slice(b"\r\n");
    assert!(matches!(parse(&get, &l), Ok((R::Get { .. }, _))));
    let huge_get = [b"get ".to_vec(), vec![b'k'; l.max_get_line]].concat();
    assert_eq!(parse(&huge_get, &l), Err(ParseError::Close(CloseReason::LineTooLong)));
}

#[test]
fn a_value_over_the_limit_is_refused_before_its_data_arrives() {
    // Only the line is consumed; the connection swallows the data.
    let (r, used) = one(b"set k 0 0 2000000\r\n");
    assert_eq!(r, R::TooLarge { key: b"k", set: true, swallow: 2_000_002, noreply: false });
    assert_eq!(used, 19);
}

#[test]
fn http_requests_close_the_connection() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n", &lim()), Err(ParseError::Close(CloseReason::Http)));
}

/// A refused storage command either swallows its data (its length token is
/// good) or, without a length, answers and reads on from the next line, as
/// memcached does; strict mode closes instead (`unframed` cases).
/// (input, request in the default mode, bytes consumed)
fn storage_refusals() -> Vec<(&'static [u8], R<'static>, usize)> {
    let unframed = |error, noreply| R::Invalid { error, noreply };
    let swallow = |error, swallow, noreply| R::InvalidData { error, swallow, noreply };
    let s251: &'static [u8] =
        Box::leak(format!("set {} 0 0 1\r\nx\r\n", "k".repeat(251)).into_bytes().into_boxed_slice());
    vec![
        (b"set a 0 0\r\n", unframed(E::UnknownCommand, false), 11),
        (b"set a 0 0 1 2 3 4\r\n", unframed(E::UnknownCommand, false), 19),
        (b"set a 0 0 1 noreply extra\r\n", unframed(E::UnknownCommand, false), 27),
        (b"set a 0 0 -1\r\n", unframed(E::BadFormat, false), 14),
        (b"set a 0 0 abc\r\n", unframed(E::BadFormat, false), 15),
        (b"set a 0 0 4294967296\r\n", unframed(E::BadFormat, false), 22),
        (b"set a 0 0 2147483647\r\n", unframed(E::BadFormat, false), 22),
        (b"set a 0 0 x noreply\r\n", unframed(E::BadFormat, true), 21),
        (b"cas a 0 0 1\r\n", unframed(E::UnknownCommand, false), 13),
        (b"set a abc 0 1\r\n", swallow(E::BadFormat, 3, false), 15),
        (b"set a -1 0 1\r\n", swallow(E::BadFormat, 3, false), 14),
        (b"set a 4294967296 0 1\r\n", swallow(E::BadFormat, 3, false), 22),
        (b"set a 0 4294967296 1\r\n", swallow(E::BadFormat, 3, false), 22),
        (b"set a 0 abc 1 noreply\r\n", swallow(E::BadFormat, 3, true), 23),
        (s251, swallow(E::BadFormat, 3, false), s251.len() - 3),
        (b"cas a 0 0 1 abc\r\n", swallow(E::BadFormat, 3, false), 17),
        (b"set a 0 0 2\r\nxyz\r\n", unframed(E::BadDataChunk, false), 17),
        (b"set a 0 0 1 noreply\r\nxy\r\n", unframed(E::BadDataChunk, true), 24),
    ]
}

#[test]
fn refused_storage_commands_never_desync() {
    let strict = Limits { strict: true, ..lim() };
    for (input, want, used) in storage_refusals() {
        let (got, n) = one(input);
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(n, used, "{:?}", String::from_utf8_lossy(input));
        for cut in 0..used {
            assert_eq!(parse(&input[..cut], &lim()), Err(ParseError::Incomplete), "{input:?} at {cut}");
        }
        // Strict mode: the same bytes consumed; what was not swallowed closes.
        let (got, n) = parse(input, &strict).unwrap();
        let want = match want {
            R::Invalid { error, noreply } => R::Fatal { error, noreply },
            other => other,
        };
        assert_eq!((got, n), (want, used), "strict: {:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn newline_search_agrees_with_a_byte_scan() {
    // Every position of the first '\n' in buffers of 0..40 bytes, with
    // bytes that differ from '\n' in one bit (0x0b, 0x08, 0x8a) around it.
    for len in 0..40 {
        for at in 0..=len {
            let mut buf: Vec<u8> = (0..len).map(|i| [b'a', 0x0b, 0x08, 0x8a, 0xff, 0][i % 6]).collect();
            if at < len {
                buf[at] = b'\n';
                if at + 1 < len {
                    buf[at + 1] = b'\n';
                }
            }
            let want = buf.iter().position(|&b| b == b'\n');
            assert_eq!(find_newline(&buf), want, "{buf:?}");
        }
    }
}

#[test]
fn the_single_get_shortcut_parses_as_the_general_path_does() {
    let long = [b"get ".as_slice(), &[b'k'; 250], b"\r\n"].concat();
    let too_long = [b"get ".as_slice(), &[b'k'; 251], b"\r\n"].concat();
    let taken: [&[u8]; 4] = [b"get a\r\n", b"get a\n", b"get key:0001\r\nget b\r\n", &long];
    for input in taken {
        let (req, used) = single_get(input).unwrap();
        let nl = input.iter().position(|&b| b == b'\n').unwrap();
        let line = input[..nl].strip_suffix(b"\r").unwrap_or(&input[..nl]);
        let Ok(Line::Done(general)) = parse_line(line, b"", &lim()) else { panic!("{input:?}") };
        assert_eq!((req, used), (general, nl + 1), "{input:?}");
    }
    // Everything else is left to the general path, which gives the reply.
    let declined: [&[u8]; 8] = [
        &too_long,
        b"get a b\r\n",
        b"get a \r\n",
        b"get  a\r\n",
        b"get a\x7f\r\n",
        b"get a\rb\r\n",
        b"get a",
        b"get \r\n",
    ];
    for input in declined {
        assert!(single_get(input).is_none(), "{input:?}");
    }
}
