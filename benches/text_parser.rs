//! Text protocol parsing: the per-request cost before any store work.
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferrocache::protocol::text::parse;
use ferrocache::protocol::Limits;

fn parsing(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("text_parse");
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let get: &[u8] = b"get user:1234567890\r\n";
    let multiget = {
        let mut v = b"get".to_vec();
        for i in 0..100 {
            v.extend_from_slice(format!(" user:{i:010}").as_bytes());
        }
        v.extend_from_slice(b"\r\n");
        v
    };
    let set = [&b"set user:1234567890 0 0 32\r\n"[..], &[b'v'; 32], b"\r\n"].concat();
    let pipeline: Vec<u8> = get.repeat(16);
    for (name, input) in [("get", get.to_vec()), ("multiget_100", multiget), ("set_32", set)] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| b.iter(|| parse(black_box(&input), &limits).unwrap()));
    }
    g.throughput(Throughput::Elements(16));
    g.bench_function("get_pipeline_16", |b| {
        b.iter(|| {
            let mut at = 0;
            while at < pipeline.len() {
                let (_, used) = parse(black_box(&pipeline[at..]), &limits).unwrap();
                at += used;
            }
        })
    });
    g.finish();
}

criterion_group!(benches, parsing);
criterion_main!(benches);
