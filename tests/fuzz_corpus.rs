//! Replays the committed fuzz corpus (fuzz/corpus/*_parser) through both
//! parsers on the stable toolchain, so every input the fuzzers kept stays
//! a regression test: no panic, consumption within the input, limits held.

use ferrocache::protocol::{binary, text, Limits, ParseError};

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().filter(|p| p.is_file()).map(|p| std::fs::read(p).unwrap()).collect()
}

const LIMITS: Limits = Limits { max_value: 4096, max_line: 2048, max_get_line: 8192, strict: false };

#[test]
fn text_parser_corpus() {
    let inputs = corpus("text_parser");
    assert!(inputs.len() > 100, "the corpus is committed");
    for data in inputs {
        let mut at = 0;
        while at < data.len() {
            match text::parse(&data[at..], &LIMITS) {
                Ok((_, used)) => {
                    assert!(used > 0 && used <= data.len() - at);
                    at += used;
                }
                Err(ParseError::Incomplete) => {
                    assert!(data.len() - at <= LIMITS.max_get_line + LIMITS.max_value + 2 + 2048);
                    break;
                }
                Err(ParseError::Close(_)) => break,
            }
        }
    }
}

#[test]
fn binary_parser_corpus() {
    let inputs = corpus("binary_parser");
    assert!(inputs.len() > 100, "the corpus is committed");
    for data in inputs {
        let mut at = 0;
        while at < data.len() {
            match binary::parse(&data[at..], &LIMITS) {
                Ok((_, _, used)) => {
                    assert!(used >= 24 && used <= data.len() - at);
                    at += used;
                }
                Err(ParseError::Incomplete) => break,
                Err(ParseError::Close(_)) => break,
            }
        }
    }
}
