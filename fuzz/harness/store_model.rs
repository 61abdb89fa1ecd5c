// The `store_model` check, shared by the fuzz target
// (fuzz/fuzz_targets/store_model.rs) and the corpus replay in `make test`
// (tests/fuzz_corpus.rs), which both `include!` this file.
//
// Random operations on a tiny store against a model. A cache may forget,
// so the check is: a read returns nothing or exactly the latest value
// acknowledged for that key, never an older or a foreign one; a cas with
// a token read before a later write never succeeds; memory stays within
// -m.

use std::collections::HashMap;
use std::sync::Arc;

use ferrocache::storage::clock::Clock;
use ferrocache::storage::{DeltaOutcome, Store, StoreConfig, StoreMode, StoreOutcome};

/// Runs the operations `data` encodes (4 bytes each) on a fresh store and
/// the model; panics where they disagree.
pub fn store_model(data: &[u8]) {
    let clock = Arc::new(Clock::manual(1_700_000_000));
    let cfg = StoreConfig {
        memory_limit: 4 * 16 * 1024,
        item_size_max: 16 * 1024,
        shards: 1,
        hashpower: 4,
        ..StoreConfig::default()
    };
    let store = Store::new(&cfg, clock.clone());
    let mut model: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for op in data.chunks(4) {
        let [kind, k, len, extra] =
            [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0), *op.get(3).unwrap_or(&0)];
        let key = format!("k{}", k % 16).into_bytes();
        let value: Vec<u8> = (0..usize::from(len) * 40).map(|i| (i as u8).wrapping_add(extra)).collect();
        match kind % 8 {
            0 | 1 => match store.store(StoreMode::Set, &key, 0, 0, &value) {
                StoreOutcome::Stored => {
                    model.insert(key, value);
                }
                _ => {
                    model.remove(&key);
                }
            },
            2 => {
                if store.store(StoreMode::Append(0), &key, 0, 0, &value[..value.len().min(30)]) == StoreOutcome::Stored
                {
                    if let Some(m) = model.get_mut(&key) {
                        m.extend_from_slice(&value[..value.len().min(30)]);
                    }
                } else {
                    model.remove(&key);
                }
            }
            3 => {
                store.delete(&key);
                model.remove(&key);
            }
            4 => {
                if let Some(cas) = store.get(&key, None, |it| it.cas) {
                    let first = store.store(StoreMode::Cas(cas), &key, 0, 0, &value);
                    if first == StoreOutcome::Stored {
                        model.insert(key.clone(), value.clone());
                        assert_ne!(store.store(StoreMode::Cas(cas), &key, 0, 0, b"stale"), StoreOutcome::Stored);
                    } else {
                        model.remove(&key);
                    }
                }
            }
            5 => {
                if let DeltaOutcome::Value(v, _, _) = store.delta(&key, extra % 2 == 0, u64::from(len)) {
                    let m = model.get_mut(&key).expect("delta only on a present key");
                    *m = v.to_string().into_bytes();
                } else {
                    // non-numeric values and misses leave the model alone,
                    // unless the key is gone
                    if store.get(&key, None, |_| ()).is_none() {
                        model.remove(&key);
                    }
                }
            }
            6 => clock.advance(u32::from(extra % 3)),
            _ => {
                if let Some(v) = store.get(&key, None, |it| it.value.to_vec()) {
                    let want = model.get(&key).expect("a value the model never acknowledged");
                    // incr/decr pad shorter results with spaces in place
                    let trimmed: &[u8] = if v.ends_with(b" ") { v.trim_ascii_end() } else { &v };
                    assert!(trimmed == want.as_slice() || v == *want, "stale or foreign value");
                }
            }
        }
    }
    assert!(store.stats().bytes as usize <= cfg.memory_limit);
}
