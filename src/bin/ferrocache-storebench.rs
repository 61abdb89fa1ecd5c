//! Store scaling benchmark: N threads calling the store directly (no
//! sockets, no parsing), for gets and for sets, at each `-m` asked for.
//!
//! For every memory size and thread count it builds the store the server
//! would build with `-m M -t N` (4 shards per thread), fills it with
//! `--keys` items, then runs each operation for `--seconds` on all threads
//! at once, every thread picking keys at random over the whole key space
//! (so threads share shards as real clients do). The fill is timed set by
//! set: its p99.9 and slowest set show what table growth and page
//! allocation cost a request. It prints operations per
//! second and, per memory size, how many times the one-thread figure the
//! largest thread count reaches. Gets check every value they read (length
//! and content), so a broken store cannot look fast.
//!
//! ```text
//! ferrocache-storebench                       # -m 64 and 4096, 1 and 2 threads
//! ferrocache-storebench --memory 64 --threads 1,2,4 --seconds 3
//! ferrocache-storebench --rounds 7            # the scaling figure as a median
//! ```
//!
//! Thread `i` is pinned to the `i`-th CPU of the process's affinity mask,
//! modulo their count (`--no-pin` leaves them to the scheduler). On a shared host one run of one thread count can fall
//! in a slow spell and read 25% off; `--rounds N` runs every thread count
//! N times in turn and reports the median of the rounds' ratios with
//! their range.
//!
//! The figures are only worth what the machine is: run it on an otherwise
//! idle machine with at least as many cores as threads. Each row also
//! says how many CPUs the threads really had (their CPU time over the wall
//! time) and the operations per CPU-second: on a busy machine the first
//! ratio measures the machine, the second still shows whether threads cost
//! each other anything.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use ferrocache::storage::clock::Clock;
use ferrocache::storage::{Store, StoreConfig, StoreMode, StoreOutcome, MEGABYTE, SHARDS_PER_THREAD};
use hdrhistogram::Histogram;

#[derive(Parser, Debug)]
#[command(name = "ferrocache-storebench", about = "N threads on the store directly: gets/s and sets/s")]
struct Args {
    /// Memory limits to test, in megabytes (`-m`), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,4096")]
    memory: Vec<usize>,
    /// Thread counts to test, comma-separated; the first is the baseline.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Seconds each operation runs.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Distinct keys (filled before each run).
    #[arg(long, default_value_t = 200_000)]
    keys: usize,
    /// Value bytes.
    #[arg(long, default_value_t = 32)]
    value: usize,
    /// Shards per thread (the server uses 4).
    #[arg(long, default_value_t = SHARDS_PER_THREAD)]
    shards_per_thread: usize,
    /// A fixed shard count for every run instead (1: one lock for all, as
    /// the store had at `-m 64` before shards followed threads).
    #[arg(long)]
    shards: Option<usize>,
    /// Rounds: each runs every thread count once, in turn, on a fresh
    /// store. The scaling figure is the median over rounds of each round's
    /// ratio, so that the machine's slow spells (a shared host's) fall on
    /// both sides of a ratio or drop out of the median.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Do not pin thread `i` to the `i`-th CPU the process may use.
    #[arg(long)]
    no_pin: bool,
}

/// The CPUs this process may run on (its affinity mask), in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is an empty set; sched_getaffinity
    // fills the set it is given, and CPU_ISSET only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Pins the calling thread to `cpu`; says so when it cannot, and the
/// thread stays where the scheduler puts it.
fn pin(cpu: usize) {
    // SAFETY: the set is a plain bit mask built here; sched_setaffinity
    // reads it and changes only this thread's affinity.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        eprintln!("warning: could not pin a thread to CPU {cpu}: {}", std::io::Error::last_os_error());
    }
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// CPU nanoseconds the calling thread has used.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given, nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU seconds the calling thread has used.
fn thread_cpu() -> f64 {
    thread_cpu_ns() as f64 * 1e-9
}

/// What one run measured.
struct Rate {
    ops_per_s: f64,
    /// CPUs the threads actually had: their CPU time over the wall time.
    /// Under `threads` means the machine was busy or the threads slept on
    /// a lock.
    cpus: f64,
}

impl Rate {
    /// Operations per CPU-second: what each CPU got done, whatever the
    /// machine gave. It falls with threads when they fight over locks or
    /// cache lines.
    fn per_cpu(&self) -> f64 {
        self.ops_per_s / self.cpus.max(1e-9)
    }
}

/// The key for index `i`: 10+ bytes, like the issue's workloads.
fn key(i: usize) -> Vec<u8> {
    format!("key:{i:08}").into_bytes()
}

/// The value stored under key `i`: its bytes depend on `i`, so a get can
/// tell a value of another key.
fn value(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect()
}

/// xorshift64: a cheap per-thread key picker.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Get,
    Set,
}

/// Runs `op` on `threads` threads for `secs`.
fn run(
    store: &Arc<Store>,
    keys: &Arc<Vec<Vec<u8>>>,
    vlen: usize,
    op: Op,
    threads: usize,
    secs: f64,
    pinned: bool,
) -> Rate {
    let cpus = Arc::new(if pinned { allowed_cpus() } else { Vec::new() });
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let cpu_ns = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (store, keys, stop, done, bad, start, cpu_ns) =
                (store.clone(), keys.clone(), stop.clone(), done.clone(), bad.clone(), start.clone(), cpu_ns.clone());
            let cpus = cpus.clone();
            std::thread::spawn(move || {
                if !cpus.is_empty() {
                    pin(cpus[t % cpus.len()]);
                }
                // Values of every key this thread may write, made before the clock starts.
                let values: Vec<Vec<u8>> =
                    if op == Op::Set { (0..keys.len()).map(|i| value(i, vlen)).collect() } else { Vec::new() };
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ ((t as u64 + 1) << 32);
                let (mut n, mut wrong) = (0u64, 0u64);
                start.wait();
                let cpu0 = thread_cpu();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        let i = (next(&mut x) % keys.len() as u64) as usize;
                        match op {
                            Op::Get => {
                                // A miss is fine (an evicted key); a wrong value is not.
                                let ok = store.get(&keys[i], None, |it| {
                                    it.value.len() == vlen
                                        && it.value.first() == Some(&(b'a' + (i % 26) as u8))
                                        && it.value.last() == Some(&(b'a' + ((i + vlen - 1) % 26) as u8))
                                });
                                wrong += u64::from(ok == Some(false));
                            }
                            Op::Set => {
                                let out = store.store(StoreMode::Set, &keys[i], 0, 0, &values[i]);
                                wrong += u64::from(out != StoreOutcome::Stored);
                            }
                        }
                    }
                    n += 256;
                }
                cpu_ns.fetch_add(((thread_cpu() - cpu0) * 1e9) as u64, Ordering::Relaxed);
                done.fetch_add(n, Ordering::Relaxed);
                bad.fetch_add(wrong, Ordering::Relaxed);
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("bench thread");
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let wrong = bad.load(Ordering::Relaxed);
    if wrong > 0 {
        eprintln!("error: {wrong} operations returned a wrong value or failed");
        std::process::exit(1);
    }
    Rate {
        ops_per_s: done.load(Ordering::Relaxed) as f64 / elapsed,
        cpus: cpu_ns.load(Ordering::Relaxed) as f64 * 1e-9 / elapsed,
    }
}

fn main() {
    let a = Args::parse();
    if a.threads.is_empty()
        || a.threads.contains(&0)
        || a.keys == 0
        || a.value == 0
        || a.seconds <= 0.0
        || a.rounds == 0
    {
        eprintln!("error: threads, keys, value, seconds and rounds must be positive");
        std::process::exit(2);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "ferrocache-storebench: {} keys, {}-byte values, {} s per run, {} shards per thread, {cores} cores, \
         {} round(s), {}",
        a.keys,
        a.value,
        a.seconds,
        a.shards_per_thread,
        a.rounds,
        if a.no_pin { "threads not pinned" } else { "thread i pinned to the i-th allowed CPU (mod their count)" }
    );
    let keys: Arc<Vec<Vec<u8>>> = Arc::new((0..a.keys).map(key).collect());
    println!(
        "{:>6} {:>7} {:>6} {:>11} {:>8} {:>11} {:>11} {:>8} {:>11} {:>7}",
        "-m", "threads", "shards", "gets/s", "get-cpus", "gets/cpu-s", "sets/s", "set-cpus", "sets/cpu-s", "items%"
    );
    for &m in &a.memory {
        // rows[round][k]: thread count k's (threads, gets, sets) in that round.
        let (mut rounds, mut fills) = (Vec::new(), Vec::new());
        for round in 0..a.rounds {
            let mut rows = Vec::new();
            for &t in &a.threads {
                let cfg = StoreConfig {
                    memory_limit: m * MEGABYTE,
                    shards: a.shards.unwrap_or(a.shards_per_thread * t),
                    ..StoreConfig::default()
                };
                let store = Arc::new(Store::new(&cfg, Arc::new(Clock::system())));
                // The fill, on one thread, from empty: every table grows many
                // times over, so its slowest sets show what a growth costs.
                // Timed in thread CPU time, so that being preempted on a busy
                // machine does not count (page faults do).
                let mut fill = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).expect("histogram bounds");
                for (i, k) in keys.iter().enumerate() {
                    let v = value(i, a.value);
                    let t0 = thread_cpu_ns();
                    store.store(StoreMode::Set, k, 0, 0, &v);
                    fill.saturating_record(thread_cpu_ns().saturating_sub(t0));
                }
                if round == 0 {
                    fills.push((t, fill));
                }
                let pinned = !a.no_pin;
                let sets = run(&store, &keys, a.value, Op::Set, t, a.seconds, pinned);
                let gets = run(&store, &keys, a.value, Op::Get, t, a.seconds, pinned);
                let items = 100.0 * store.stats().curr_items as f64 / a.keys as f64;
                println!(
                    "{m:>6} {t:>7} {:>6} {:>11.0} {:>8.2} {:>11.0} {:>11.0} {:>8.2} {:>11.0} {items:>6.1}%",
                    store.shard_count(),
                    gets.ops_per_s,
                    gets.cpus,
                    gets.per_cpu(),
                    sets.ops_per_s,
                    sets.cpus,
                    sets.per_cpu(),
                );
                rows.push((t, gets, sets));
            }
            rounds.push(rows);
        }
        for (t, fill) in &fills {
            println!(
                "-m {m}, {t} thread(s): store fill from empty, CPU time per set p50 {} ns, p99.9 {} ns, max {} ns",
                fill.value_at_quantile(0.5),
                fill.value_at_quantile(0.999),
                fill.max()
            );
        }
        let t1 = a.threads[0];
        for (k, &t) in a.threads.iter().enumerate().skip(1) {
            // Each round's ratios, against that round's baseline.
            let mut ratios: [Vec<f64>; 4] = Default::default();
            for rows in &rounds {
                let (_, g1, s1) = &rows[0];
                let (_, g, s) = &rows[k];
                ratios[0].push(g.ops_per_s / g1.ops_per_s);
                ratios[1].push(s.ops_per_s / s1.ops_per_s);
                ratios[2].push(g.per_cpu() / g1.per_cpu());
                ratios[3].push(s.per_cpu() / s1.per_cpu());
            }
            let span = |v: &[f64]| {
                let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = v.iter().copied().fold(0.0, f64::max);
                (lo, hi)
            };
            let (glo, ghi) = span(&ratios[0]);
            let (slo, shi) = span(&ratios[1]);
            let [g, st, gc, sc] = ratios.map(|mut v| median(&mut v));
            let over = if a.rounds > 1 { format!("median of {} rounds", a.rounds) } else { "one round".to_string() };
            println!(
                "-m {m}: {t} threads vs {t1}: gets x{g:.2}, sets x{st:.2} (per CPU-second: gets x{gc:.2}, sets x{sc:.2}; \
                 {over}; gets x{glo:.2}-{ghi:.2}, sets x{slo:.2}-{shi:.2})",
            );
        }
    }
}
