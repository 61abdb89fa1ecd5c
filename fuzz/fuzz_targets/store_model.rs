//! Random operations on a tiny store against a model; the check itself is
//! in fuzz/harness/store_model.rs, which tests/fuzz_corpus.rs replays the
//! corpus through.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../harness/store_model.rs");

fuzz_target!(|data: &[u8]| store_model(data));
