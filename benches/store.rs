//! Store get/set paths, single-threaded (lock uncontended).
use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferrocache::storage::clock::Clock;
use ferrocache::storage::{Store, StoreConfig, StoreMode};

fn store_ops(c: &mut Criterion) {
    let store = Store::new(&StoreConfig::default(), Arc::new(Clock::system()));
    let keys: Vec<Vec<u8>> = (0..100_000).map(|i| format!("key:{i:010}").into_bytes()).collect();
    let value = [b'v'; 32];
    for k in &keys {
        store.store(StoreMode::Set, k, 0, 0, &value);
    }
    let mut g = c.benchmark_group("store");
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("get_hit_32", |b| {
        let mut out = Vec::with_capacity(128);
        b.iter(|| {
            i = (i + 7919) % keys.len();
            out.clear();
            store.get(black_box(&keys[i]), None, |it| out.extend_from_slice(it.value))
        })
    });
    g.bench_function("get_miss", |b| b.iter(|| store.get(black_box(b"no-such-key"), None, |_| ())));
    g.bench_function("set_32", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            store.store(StoreMode::Set, black_box(&keys[i]), 0, 0, &value)
        })
    });
    g.finish();
}

criterion_group!(benches, store_ops);
criterion_main!(benches);
