//! Text parser invariants on arbitrary bytes: never panics; consumes at
//! least one byte and no more than it was given; a request's key is valid;
//! a prefix of a parseable buffer is never "parsed" past its end; waiting
//! for more bytes is only answered while the buffer is under the limits.
#![no_main]

use ferrocache::protocol::text::parse;
use ferrocache::protocol::{Limits, ParseError, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_value: 4096, max_line: 2048, max_get_line: 8192, strict: false };
    let mut at = 0;
    while at < data.len() {
        match parse(&data[at..], &limits) {
            Ok((req, used)) => {
                assert!(used > 0 && used <= data.len() - at);
                match &req {
                    Request::Store { key, data: value, .. } => {
                        assert!(!key.is_empty() && key.len() <= 250);
                        assert!(key.iter().all(|&b| b > b' ' && b != 0x7f));
                        assert!(value.len() <= limits.max_value);
                    }
                    Request::Get { keys, .. } | Request::Gat { keys, .. } => {
                        for k in keys.iter() {
                            assert!(!k.is_empty() && k.len() <= 250);
                        }
                    }
                    _ => {}
                }
                at += used;
            }
            Err(ParseError::Incomplete) => {
                assert!(data.len() - at <= limits.max_get_line + limits.max_value + 2 + 2048);
                break;
            }
            Err(ParseError::Close(_)) => break,
        }
    }
});
