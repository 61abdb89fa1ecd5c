//! `ferrocache-bench`: a load generator for memcached-protocol servers.
//!
//! threads x connections, each connection its own OS thread driving one
//! socket: text or binary protocol, a pipeline of `--pipeline` requests per
//! round trip, a set:get ratio, a key space and pattern, a value size, a
//! duration or request count and an optional total rate. Every value it
//! writes carries its key id and a checksum; every value it reads is
//! verified, so a fast wrong server cannot score (`wrong` must be 0, and
//! the exit status says so). Reports ops/s, get hit ratio and latency
//! percentiles (hdrhistogram, per round trip), plus one `RESULT` line for
//! scripts. Loopback or lab use only: it sends as fast as it is told.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser, Debug, Clone)]
#[command(name = "ferrocache-bench", about = "Load generator for memcached-protocol servers")]
struct Args {
    /// Server address
    #[arg(short = 's', long, default_value = "127.0.0.1:11211")]
    server: String,
    /// Threads
    #[arg(short = 't', long, default_value_t = 1)]
    threads: usize,
    /// Connections per thread
    #[arg(short = 'c', long, default_value_t = 4)]
    connections: usize,
    /// text or binary
    #[arg(long, default_value = "text")]
    protocol: String,
    /// Requests per round trip
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// set:get ratio, as memtier writes it
    #[arg(long, default_value = "1:10")]
    ratio: String,
    /// Number of distinct keys
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// uniform, gaussian or sequential
    #[arg(long, default_value = "uniform")]
    pattern: String,
    /// Value size in bytes (at least 12)
    #[arg(short = 'd', long, default_value_t = 32)]
    value_size: usize,
    /// Seconds to run (ignored with --requests)
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Requests per connection instead of a duration
    #[arg(long)]
    requests: Option<u64>,
    /// Total requests per second across all connections (0: unlimited)
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Store every key once before measuring
    #[arg(long)]
    prefill: bool,
}

fn fnv32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// `[key id: 8][filler][fnv32 of everything before: 4]`
fn make_value(id: u64, size: usize, salt: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&id.to_le_bytes());
    while v.len() < size - 4 {
        v.push(b'a' + ((v.len() as u64 + salt) % 26) as u8);
    }
    let sum = fnv32(&v);
    v.extend_from_slice(&sum.to_le_bytes());
    v
}

fn value_ok(id: u64, v: &[u8]) -> bool {
    v.len() >= 12 && v[..8] == id.to_le_bytes() && fnv32(&v[..v.len() - 4]).to_le_bytes() == v[v.len() - 4..]
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Default)]
struct Totals {
    ops: AtomicU64,
    gets: AtomicU64,
    hits: AtomicU64,
    wrong: AtomicU64,
    errors: AtomicU64,
}

#[derive(Clone, Copy)]
enum Op {
    Set(u64),
    Get(u64),
}

struct Conn {
    out: TcpStream,
    r: BufReader<TcpStream>,
    binary: bool,
    size: usize,
}

impl Conn {
    fn encode(&self, op: &Op, buf: &mut Vec<u8>, salt: u64) {
        match (*op, self.binary) {
            (Op::Set(id), false) => {
                let v = make_value(id, self.size, salt);
                buf.extend_from_slice(format!("set key:{id} 0 0 {}\r\n", v.len()).as_bytes());
                buf.extend_from_slice(&v);
                buf.extend_from_slice(b"\r\n");
            }
            (Op::Get(id), false) => buf.extend_from_slice(format!("get key:{id}\r\n").as_bytes()),
            (Op::Set(id), true) => {
                let key = format!("key:{id}");
                let v = make_value(id, self.size, salt);
                bin_header(buf, 0x01, key.len(), 8, key.len() + 8 + v.len());
                buf.extend_from_slice(&[0; 8]);
                buf.extend_from_slice(key.as_bytes());
                buf.extend_from_slice(&v);
            }
            (Op::Get(id), true) => {
                let key = format!("key:{id}");
                bin_header(buf, 0x00, key.len(), 0, key.len());
                buf.extend_from_slice(key.as_bytes());
            }
        }
    }

    /// Reads one reply; Ok(Some(hit)) for gets, Ok(None) for sets.
    fn read_reply(&mut self, op: &Op, t: &Totals) -> std::io::Result<()> {
        if self.binary {
            let mut h = [0u8; 24];
            self.r.read_exact(&mut h)?;
            let status = u16::from_be_bytes([h[6], h[7]]);
            let extlen = h[4] as usize;
            let keylen = u16::from_be_bytes([h[2], h[3]]) as usize;
            let body = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
            let mut b = vec![0u8; body];
            self.r.read_exact(&mut b)?;
            match *op {
                Op::Set(_) if status != 0 => {
                    t.errors.fetch_add(1, Ordering::Relaxed);
                }
                Op::Get(id) if status == 0 => {
                    t.hits.fetch_add(1, Ordering::Relaxed);
                    if !value_ok(id, &b[extlen + keylen..]) {
                        t.wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        match *op {
            Op::Set(_) => {
                if line != "STORED\r\n" {
                    t.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            Op::Get(id) => {
                if let Some(rest) = line.strip_prefix("VALUE ") {
                    let mut parts = rest.split_whitespace();
                    let key = parts.next().unwrap_or("");
                    let len: usize = parts.nth(1).and_then(|l| l.parse().ok()).unwrap_or(0);
                    let mut v = vec![0u8; len + 2];
                    self.r.read_exact(&mut v)?;
                    t.hits.fetch_add(1, Ordering::Relaxed);
                    if key != format!("key:{id}") || !value_ok(id, &v[..len]) {
                        t.wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    line.clear();
                    self.r.read_line(&mut line)?;
                }
                if line != "END\r\n" {
                    t.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
}

fn bin_header(buf: &mut Vec<u8>, opcode: u8, keylen: usize, extlen: u8, body: usize) {
    buf.extend_from_slice(&[0x80, opcode]);
    buf.extend_from_slice(&(keylen as u16).to_be_bytes());
    buf.extend_from_slice(&[extlen, 0, 0, 0]);
    buf.extend_from_slice(&(body as u32).to_be_bytes());
    buf.extend_from_slice(&[0; 12]);
}

fn connect(a: &Args) -> Conn {
    let s = TcpStream::connect(&a.server).unwrap_or_else(|e| panic!("connect {}: {e}", a.server));
    s.set_nodelay(true).unwrap();
    Conn {
        out: s.try_clone().unwrap(),
        r: BufReader::with_capacity(1 << 16, s),
        binary: a.protocol == "binary",
        size: a.value_size,
    }
}

fn main() {
    let a = Args::parse();
    assert!(a.value_size >= 12, "--value-size must be at least 12");
    assert!(a.protocol == "text" || a.protocol == "binary", "--protocol text|binary");
    let (sets, gets) = a
        .ratio
        .split_once(':')
        .and_then(|(s, g)| Some((s.parse::<u64>().ok()?, g.parse::<u64>().ok()?)))
        .expect("--ratio S:G");
    assert!(sets + gets > 0);
    if a.prefill {
        let prefill_totals = Totals::default();
        let mut c = connect(&a);
        let mut buf = Vec::new();
        for id in 0..a.keys {
            c.encode(&Op::Set(id), &mut buf, 0);
            if id % 100 == 99 || id + 1 == a.keys {
                c.out.write_all(&buf).unwrap();
                buf.clear();
                for _ in 0..=(id % 100) {
                    c.read_reply(&Op::Set(0), &prefill_totals).unwrap();
                }
            }
        }
        assert_eq!(prefill_totals.errors.load(Ordering::Relaxed), 0, "prefill sets failed");
    }
    let totals = Arc::new(Totals::default());
    let conns = a.threads * a.connections;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|i| {
            let (a, t, stop) = (a.clone(), totals.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = connect(&a);
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) * 0x2545_f491_4f6c_dd1d));
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut seq = (i as u64 * a.keys) / conns as u64;
                let mut buf = Vec::with_capacity(a.pipeline * (a.value_size + 64));
                let mut ops = Vec::with_capacity(a.pipeline);
                let per_conn_rate = if a.rate == 0 { 0.0 } else { a.rate as f64 / conns as f64 };
                let began = Instant::now();
                let mut done = 0u64;
                while !stop.load(Ordering::Relaxed) && a.requests.is_none_or(|r| done < r) {
                    buf.clear();
                    ops.clear();
                    for _ in 0..a.pipeline {
                        let id = match a.pattern.as_str() {
                            "sequential" => {
                                seq = (seq + 1) % a.keys;
                                seq
                            }
                            "gaussian" => {
                                let z = (-2.0 * rng.unit().max(1e-12).ln()).sqrt()
                                    * (std::f64::consts::TAU * rng.unit()).cos();
                                ((a.keys as f64 / 2.0 + z * a.keys as f64 / 6.0).max(0.0) as u64).min(a.keys - 1)
                            }
                            _ => rng.next() % a.keys,
                        };
                        let op = if rng.next() % (sets + gets) < sets { Op::Set(id) } else { Op::Get(id) };
                        c.encode(&op, &mut buf, done);
                        ops.push(op);
                    }
                    let t0 = Instant::now();
                    if c.out.write_all(&buf).is_err() {
                        t.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    for op in &ops {
                        if c.read_reply(op, &t).is_err() {
                            t.errors.fetch_add(1, Ordering::Relaxed);
                            return hist;
                        }
                        if let Op::Get(_) = op {
                            t.gets.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
                    done += ops.len() as u64;
                    t.ops.fetch_add(ops.len() as u64, Ordering::Relaxed);
                    if per_conn_rate > 0.0 {
                        let due = began + Duration::from_secs_f64(done as f64 / per_conn_rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
                hist
            })
        })
        .collect();
    if a.requests.is_none() {
        std::thread::sleep(Duration::from_secs(a.duration));
        stop.store(true, Ordering::Relaxed);
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    for h in handles {
        hist.add(h.join().unwrap()).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let ops = totals.ops.load(Ordering::Relaxed);
    let gets = totals.gets.load(Ordering::Relaxed).max(1);
    let hits = totals.hits.load(Ordering::Relaxed);
    let wrong = totals.wrong.load(Ordering::Relaxed);
    let errors = totals.errors.load(Ordering::Relaxed);
    let q = |p: f64| hist.value_at_quantile(p);
    println!(
        "{} {} conns x pipeline {}, ratio {}, {} keys ({}), {} B values: {:.0} ops/s, get hit ratio {:.3}, \
latency us p50 {} p90 {} p99 {} p99.9 {}, wrong values {wrong}, errors {errors}",
        a.protocol,
        conns,
        a.pipeline,
        a.ratio,
        a.keys,
        a.pattern,
        a.value_size,
        ops as f64 / secs,
        hits as f64 / gets as f64,
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999)
    );
    println!(
        "RESULT ops={ops} secs={secs:.3} ops_per_sec={:.0} hit_ratio={:.4} p50_us={} p90_us={} p99_us={} p999_us={} wrong={wrong} errors={errors}",
        ops as f64 / secs, hits as f64 / gets as f64, q(0.5), q(0.9), q(0.99), q(0.999)
    );
    if wrong > 0 || errors > 0 {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_check_catches_wrong_torn_and_foreign_values() {
        let v = make_value(42, 64, 7);
        assert!(value_ok(42, &v));
        assert!(!value_ok(43, &v), "another key's value");
        let mut torn = v.clone();
        torn[20] ^= 1;
        assert!(!value_ok(42, &torn));
        assert!(!value_ok(42, &v[..v.len() - 1]));
        assert!(!value_ok(42, b"short"));
    }
}
