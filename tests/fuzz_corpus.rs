//! Replays the committed fuzz corpus (fuzz/corpus/<target>) on the stable
//! toolchain, so every input the fuzzers kept stays a regression test:
//! through both parsers (no panic, consumption within the input, limits
//! held) and through the `store_model` check itself.

use std::path::PathBuf;

use ferrocache::protocol::{binary, text, Limits, ParseError};

/// The `store_model` fuzz target's check, the very code it runs.
mod store_model {
    include!("../fuzz/harness/store_model.rs");
}

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.retain(|p| p.is_file());
    files
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    corpus_files(target).into_iter().map(|p| std::fs::read(p).unwrap()).collect()
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

#[test]
fn store_model_corpus() {
    let files = corpus_files("store_model");
    assert!(files.len() > 100, "the corpus is committed");
    for path in files {
        let data = std::fs::read(&path).unwrap();
        if std::panic::catch_unwind(|| store_model::store_model(&data)).is_err() {
            panic!("store_model fails on {}", path.display());
        }
    }
}
