//! Ring lookups, once per replicated write: owner and successor of a key
//! under each client's ring (5 nodes).
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferrocache::cluster::{Ring, Scheme};

fn ring_lookups(c: &mut Criterion) {
    let names: Vec<String> = (0..5).map(|i| format!("10.0.0.{}:11311", 11 + i)).collect();
    let keys: Vec<Vec<u8>> = (0..10_000).map(|i| format!("user:{i:010}").into_bytes()).collect();
    let mut g = c.benchmark_group("ring");
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements(1));
    for (label, scheme) in
        [("ketama", Scheme::Ketama), ("ketama_weighted", Scheme::KetamaWeighted), ("uhashring", Scheme::Uhashring)]
    {
        let ring = Ring::new(scheme, &names);
        let mut i = 0;
        g.bench_function(format!("{label}_owner"), |b| {
            b.iter(|| {
                i = (i + 7919) % keys.len();
                ring.owner(black_box(&keys[i]))
            })
        });
        g.bench_function(format!("{label}_successor"), |b| {
            b.iter(|| {
                i = (i + 7919) % keys.len();
                ring.successor(black_box(&keys[i]))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ring_lookups);
criterion_main!(benches);
