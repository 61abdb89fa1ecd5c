//! Soak: many clients, text and binary, writing and reading the same keys
//! with checksummed values, incrementing one counter and racing cas on
//! another. Proves no torn or foreign value is ever read, no increment is
//! lost and no cas token succeeds twice.
//!
//! Ignored in the normal (debug) run; `make soak` (part of `make test`)
//! runs it against the release build for SOAK_SECS seconds (default 20).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bin, Client, Server};

const KEYS: u64 = 1000;

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// `k<key>|v<version>|<payload>|<checksum of everything before>`
fn make_value(key: u64, version: u64, len: usize) -> Vec<u8> {
    let mut v = format!("k{key}|v{version}|").into_bytes();
    v.extend((0..len).map(|i| b'a' + ((i as u64 + version) % 26) as u8));
    let sum = fnv(&v);
    v.extend_from_slice(format!("|{sum:016x}").as_bytes());
    v
}

/// A value read back must be whole and belong to its key.
fn check(key: u64, value: &[u8]) -> bool {
    if value.len() < 17 {
        return false;
    }
    let (body, sum) = value.split_at(value.len() - 17);
    let Ok(sum) = u64::from_str_radix(std::str::from_utf8(&sum[1..]).unwrap_or(""), 16) else {
        return false;
    };
    fnv(body) == sum && body.starts_with(format!("k{key}|v").as_bytes())
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Default)]
struct Totals {
    ops: AtomicU64,
    corrupt: AtomicU64,
    incrs: AtomicU64,
    cas_wins: AtomicU64,
}

fn text_worker(server_addr: std::net::SocketAddr, seed: u64, until: Instant, t: &Totals) {
    let mut c = Client::connect(server_addr);
    let mut rng = Rng(seed);
    let mut version = seed << 32;
    while Instant::now() < until {
        let key = rng.next() % KEYS;
        match rng.next() % 10 {
            0..=2 => {
                version += 1;
                let v = make_value(key, version, (rng.next() % 2000) as usize);
                c.send(&[format!("set key{key} 0 0 {}\r\n", v.len()).as_bytes(), &v, b"\r\n"].concat());
                assert_eq!(c.read_until(b"\r\n"), b"STORED\r\n");
            }
            3 => {
                c.send(b"incr counter 1\r\n");
                let r = c.read_until(b"\r\n");
                assert!(r[0].is_ascii_digit(), "{r:?}");
                t.incrs.fetch_add(1, Ordering::Relaxed);
            }
            4 => {
                c.send(b"gets cas_counter\r\n");
                let r = String::from_utf8(c.read_until(b"END\r\n")).unwrap();
                let mut lines = r.lines();
                let header: Vec<&str> = lines.next().unwrap().split(' ').collect();
                let n: u64 = lines.next().unwrap().trim().parse().unwrap();
                let (token, next) = (header[4], (n + 1).to_string());
                c.send(format!("cas cas_counter 0 0 {} {token}\r\n{next}\r\n", next.len()).as_bytes());
                match c.read_until(b"\r\n").as_slice() {
                    b"STORED\r\n" => {
                        t.cas_wins.fetch_add(1, Ordering::Relaxed);
                    }
                    b"EXISTS\r\n" => {}
                    other => panic!("cas: {other:?}"),
                }
            }
            _ => {
                c.send(format!("get key{key}\r\n").as_bytes());
                let r = c.read_until(b"END\r\n");
                if r.len() > 5 {
                    let start = r.iter().position(|&b| b == b'\n').unwrap() + 1;
                    if !check(key, &r[start..r.len() - 7]) {
                        t.corrupt.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        t.ops.fetch_add(1, Ordering::Relaxed);
    }
}

fn binary_worker(server_addr: std::net::SocketAddr, seed: u64, until: Instant, t: &Totals) {
    let mut c = Client::connect(server_addr);
    let mut rng = Rng(seed);
    let mut version = seed << 32;
    while Instant::now() < until {
        let key = rng.next() % KEYS;
        let k = format!("key{key}");
        if rng.next().is_multiple_of(3) {
            version += 1;
            let v = make_value(key, version, (rng.next() % 2000) as usize);
            assert_eq!(c.bin_call(&bin(0x01, &[0; 8], k.as_bytes(), &v, 0, 1)).status, 0);
        } else {
            let r = c.bin_call(&bin(0x00, &[], k.as_bytes(), &[], 0, 2));
            if r.status == 0 && !check(key, &r.value) {
                t.corrupt.fetch_add(1, Ordering::Relaxed);
            }
        }
        t.ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// The checker itself: it must catch torn, truncated and foreign values.
#[test]
fn checker_detects_torn_and_foreign_values() {
    let v = make_value(7, 3, 100);
    assert!(check(7, &v));
    assert!(!check(8, &v), "a foreign key's value");
    let mut torn = v.clone();
    torn[20] ^= 1;
    assert!(!check(7, &torn), "a flipped byte");
    assert!(!check(7, &v[..v.len() - 1]), "a truncated value");
    let mut spliced = make_value(7, 4, 100);
    spliced[..30].copy_from_slice(&v[..30]);
    assert!(!check(7, &spliced), "two writes mixed");
}

#[test]
#[ignore = "run by `make soak` against the release build"]
fn soak_checksummed_values_counters_and_cas() {
    let secs: u64 = std::env::var("SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let server = Server::start(&["-t", "2", "-m", "64"]);
    let mut setup = server.connect();
    setup.expect(b"set counter 0 0 1\r\n0\r\nset cas_counter 0 0 1\r\n0\r\n", b"STORED\r\nSTORED\r\n");
    let totals = Arc::new(Totals::default());
    let until = Instant::now() + Duration::from_secs(secs);
    let addr = server.addr();
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            let t = totals.clone();
            std::thread::spawn(move || {
                let seed = 0x9e37_79b9_7f4a_7c15 ^ (i + 1).wrapping_mul(0x2545_f491);
                if i < 6 {
                    text_worker(addr, seed, until, &t)
                } else {
                    binary_worker(addr, seed, until, &t)
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let counter: u64 = {
        setup.send(b"get counter\r\n");
        let r = String::from_utf8(setup.read_until(b"END\r\n")).unwrap();
        r.lines().nth(1).unwrap().trim().parse().unwrap()
    };
    let cas_counter: u64 = {
        setup.send(b"get cas_counter\r\n");
        let r = String::from_utf8(setup.read_until(b"END\r\n")).unwrap();
        r.lines().nth(1).unwrap().trim().parse().unwrap()
    };
    let (ops, corrupt) = (totals.ops.load(Ordering::Relaxed), totals.corrupt.load(Ordering::Relaxed));
    let (incrs, wins) = (totals.incrs.load(Ordering::Relaxed), totals.cas_wins.load(Ordering::Relaxed));
    println!(
        "soak: {secs} s, {ops} ops ({} ops/s), corruptions {corrupt}, incr {incrs} -> counter {counter}, \
cas wins {wins} -> cas_counter {cas_counter}",
        ops / secs.max(1)
    );
    assert_eq!(corrupt, 0, "torn or foreign values were read");
    assert_eq!(counter, incrs, "increments were lost");
    assert_eq!(cas_counter, wins, "a cas token succeeded twice, or a win was lost");
    assert!(ops > 1000, "the soak did work");
}
