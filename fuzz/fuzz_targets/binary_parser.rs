//! Binary parser invariants on arbitrary bytes: never panics; consumes at
//! least a header and no more than it was given; waits for more bytes only
//! for a legal packet (at most header + extras + key + max value).
#![no_main]

use ferrocache::protocol::binary::parse;
use ferrocache::protocol::{Limits, ParseError, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_value: 4096, max_line: 2048, max_get_line: 8192, strict: false };
    let mut at = 0;
    while at < data.len() {
        match parse(&data[at..], &limits) {
            Ok((req, _meta, used)) => {
                assert!(used >= 24 && used <= data.len() - at);
                if let Request::Store { key, data: value, .. } = &req {
                    assert!(!key.is_empty() && key.len() <= 250);
                    assert!(value.len() <= limits.max_value);
                }
                at += used;
            }
            Err(ParseError::Incomplete) => {
                assert!(data.len() - at < 24 + 255 + 250 + limits.max_value.max(limits.max_line));
                break;
            }
            Err(ParseError::Close(_)) => break,
        }
    }
});
