//! Meta command parsing: every flag, every error, each request split at
//! every byte offset.

use std::borrow::Cow;

use crate::protocol::text::parse;
use crate::protocol::{Limits, MetaCommand, MetaFlags, ParseError, ProtocolError as E, Request as R};

fn lim() -> Limits {
    Limits { max_value: 1000, max_line: 2048, max_get_line: 4096, strict: false }
}

fn meta(input: &[u8]) -> (MetaCommand, Vec<u8>, Vec<u8>, MetaFlags<'_>) {
    match parse(input, &lim()) {
        Ok((R::Meta { command, key, data, flags }, used)) => {
            assert_eq!(used, input.len());
            (command, key.into_owned(), data.to_vec(), flags)
        }
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

const VALID: &[&[u8]] = &[
    b"mn\r\n",
    b"mg foo\r\n",
    b"mg foo v\r\n",
    b"mg foo k v c f s t h l u q Oabc P L\r\n",
    b"mg foo N30 R10 T-1 v\r\n",
    b"mg Zm9v b k v\r\n",
    b"ms foo 3\r\nbar\r\n",
    b"ms foo 0 F5 T100 c k Oxy q I C12 MS\r\n\r\n",
    b"ms foo 2 MA\r\n++\r\n",
    b"md foo\r\n",
    b"md foo C5 I T30 q k Oz x\r\n",
    b"ma foo\r\n",
    b"ma foo N0 J10 D5 MD v t c q\r\n",
    b"me foo\r\n",
];

#[test]
fn every_valid_meta_request_is_incomplete_until_its_last_byte() {
    for input in VALID {
        assert!(parse(input, &lim()).is_ok(), "{:?}", String::from_utf8_lossy(input));
        for cut in 0..input.len() {
            assert_eq!(parse(&input[..cut], &lim()), Err(ParseError::Incomplete), "{input:?} at {cut}");
        }
    }
}

#[test]
fn flags_are_parsed_with_their_tokens() {
    let (c, key, _, f) = meta(b"mg foo N30 R10 T-1 v q u\r\n");
    assert_eq!((c, key.as_slice()), (MetaCommand::Get, &b"foo"[..]));
    assert_eq!((f.vivify, f.recache, f.ttl), (Some(30), Some(10), Some(-1)));
    assert!(f.value && f.quiet && f.no_bump && !f.base64);
    assert_eq!(f.tokens().collect::<Vec<_>>(), vec![&b"N30"[..], b"R10", b"T-1", b"v", b"q", b"u"]);

    let (c, key, data, f) = meta(b"ms foo 3 F5 T100 C12 I ME\r\nbar\r\n");
    assert_eq!((c, key.as_slice(), data.as_slice()), (MetaCommand::Set, &b"foo"[..], &b"bar"[..]));
    assert_eq!((f.client_flags, f.ttl, f.compare_cas, f.mode), (5, Some(100), Some(12), Some(b'E')));
    assert!(f.invalidate);

    let (_, _, _, f) = meta(b"ma n N0 J10 D5 M-\r\n");
    assert_eq!((f.vivify, f.initial, f.delta, f.mode), (Some(0), 10, 5, Some(b'-')));
    let (_, _, _, f) = meta(b"ma n\r\n");
    assert_eq!(f.delta, 1, "the default delta");
    let (_, _, _, f) = meta(b"md n x I\r\n");
    assert!(f.remove_value && f.invalidate);
}

#[test]
fn base64_keys_are_decoded() {
    let (_, key, _, f) = meta(b"mg YmluYXJ5 b v\r\n");
    assert_eq!(key, b"binary");
    assert!(f.base64);
    match parse(b"mg AAEC b\r\n", &lim()) {
        Ok((R::Meta { key: Cow::Owned(k), .. }, _)) => assert_eq!(k, vec![0, 1, 2]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_meta_error_reply() {
    let long_key = [b"mg ".to_vec(), vec![b'k'; 251], b" v\r\n".to_vec()].concat();
    let long_opaque = [b"mg foo O".to_vec(), vec![b'o'; 33], b"\r\n".to_vec()].concat();
    let many_flags = [b"mg foo".to_vec(), b" P".repeat(18), b"\r\n".to_vec()].concat();
    let cases: Vec<(&[u8], E)> = vec![
        (b"mg\r\n", E::UnknownCommand),
        (b"ms \r\n", E::UnknownCommand),
        (b"md\r\n", E::UnknownCommand),
        (b"ma  \r\n", E::UnknownCommand),
        (b"me\r\n", E::BadFormat),
        (b"me \r\n", E::BadFormat),
        (b"mx foo\r\n", E::UnknownCommand),
        (&long_key, E::BadFormat),
        (b"mg foo zzz\r\n", E::MetaInvalidFlag),
        (b"mg foo v v\r\n", E::MetaDuplicateFlag),
        (b"mg foo Tabc\r\n", E::MetaBadToken),
        (b"mg foo N\r\n", E::MetaBadToken),
        (b"mg foo T99999999999\r\n", E::MetaBadToken),
        (&long_opaque, E::MetaOpaqueTooLong),
        (b"mg !!! b v\r\n", E::MetaKeyDecode),
        (b"mg foo\x01 v\r\n", E::BadFormat),
        (&many_flags, E::MetaTooManyFlags),
        (b"md foo Cabc\r\n", E::MetaInvalidOrDuplicateFlag),
        (b"md foo zz\r\n", E::MetaInvalidOrDuplicateFlag),
        (b"ma foo Dabc\r\n", E::MetaInvalidOrDuplicateFlag),
        (b"ma foo MX\r\n", E::MetaArithMode),
        (b"ma foo MDD\r\n", E::MetaInvalidOrDuplicateFlag),
    ];
    for (input, want) in cases {
        for cut in 0..input.len() {
            assert_eq!(parse(&input[..cut], &lim()), Err(ParseError::Incomplete), "{input:?} at {cut}");
        }
        match parse(input, &lim()) {
            Ok((R::Invalid { error, noreply: false }, used)) => {
                assert_eq!(error, want, "{:?}", String::from_utf8_lossy(input));
                assert_eq!(used, input.len());
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }
}

#[test]
fn a_refused_meta_set_swallows_its_data() {
    for (input, want) in [
        (&b"ms foo 2 Fabc\r\nxy\r\n"[..], E::BadFormat),
        (b"ms foo 2 Tabc\r\nxy\r\n", E::MetaBadToken),
        (b"ms foo 2 MZ\r\nxy\r\n", E::MetaSetMode),
        (b"ms foo 2 v v\r\nxy\r\n", E::MetaDuplicateFlag),
    ] {
        let (req, used) = parse(input, &lim()).unwrap();
        assert_eq!(req, R::InvalidData { error: want, swallow: 4, noreply: false }, "{input:?}");
        assert_eq!(used, input.len() - 4, "only the line; the data is swallowed");
    }
    let (req, used) = parse(b"ms big 5000\r\n", &lim()).unwrap();
    assert_eq!(req, R::TooLarge { key: b"big", set: true, swallow: 5002, noreply: false });
    assert_eq!(used, 13);
    let strict = Limits { strict: true, ..lim() };
    let (req, used) = parse(b"ms foo 2\r\nxyz\r\n", &lim()).unwrap();
    assert_eq!((req, used), (R::Invalid { error: E::BadDataChunk, noreply: false }, 14));
    let (req, _) = parse(b"ms foo 2\r\nxyz\r\n", &strict).unwrap();
    assert_eq!(req, R::Fatal { error: E::BadDataChunk, noreply: false });
    for input in [&b"ms foo\r\n"[..], b"ms foo abc\r\n", b"ms foo -1\r\n"] {
        let (req, used) = parse(input, &lim()).unwrap();
        assert_eq!((req, used), (R::Invalid { error: E::BadFormat, noreply: false }, input.len()), "{input:?}");
        let (req, _) = parse(input, &strict).unwrap();
        assert_eq!(req, R::Fatal { error: E::BadFormat, noreply: false }, "{input:?}");
    }
}
