//! The server: binds listeners, starts one event loop per `-t` thread, a
//! maintenance thread (clock, expiry crawler, delayed flush) and a signal
//! thread, and waits for shutdown.
//!
//! Threads:
//! - `loop-N` (N = 0..threads): one mio `Poll` each, owning its listeners
//!   (SO_REUSEPORT) and its connections; no connection moves between loops.
//! - `maintenance`: ticks the store clock every 100 ms and runs the expiry
//!   crawler once a second.
//! - `signals`: waits for SIGINT/SIGTERM (shutdown) and SIGHUP (logged).
//!   Signals are blocked in every other thread, so no handler runs async.

mod connection;
mod event_loop;
pub mod listener;

use std::io::Write;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::dispatch::Shared;
use crate::error::Error;
use crate::storage::clock::Clock;
use crate::storage::Store;
use crate::sys;

pub use connection::OUTPUT_HIGH_WATER;

/// Chunks the crawler checks per shard per second.
const CRAWL_BUDGET: usize = 20_000;

/// Runs the daemon until SIGINT/SIGTERM or `shutdown`.
pub fn run(config: Config) -> Result<(), Error> {
    sys::block_signals().map_err(|source| Error::Io { what: "blocking signals", source })?;
    let clock = Arc::new(Clock::system());
    let store = Store::new(&config.storage, clock.clone());
    let threads = config.server.threads;
    let (bound, listeners) = listener::bind_all(&config.server.listen, threads, config.server.backlog)?;

    if let Some(user) = &config.user {
        if sys::is_root() {
            sys::drop_privileges(user).map_err(Error::User)?;
        }
    } else if sys::is_root() {
        log::warn!("running as root without -u: consider a dedicated user");
    }

    let shared = Arc::new(Shared::new(config, store));
    let _ = shared.bound.set(bound.clone());

    let mut loops = Vec::with_capacity(threads);
    let mut wakers = Vec::with_capacity(threads);
    for (i, ls) in listeners.into_iter().enumerate() {
        let (ev, waker) = event_loop::EventLoop::new(i, ls, shared.clone())
            .map_err(|source| Error::Io { what: "creating an event loop", source })?;
        loops.push(ev);
        wakers.push(waker);
    }
    let _ = shared.on_shutdown.set(Box::new(move || {
        for w in &wakers {
            let _ = w.wake();
        }
    }));

    let addrs: Vec<String> = bound.iter().map(|a| a.to_string()).collect();
    log::info!(
        "ferrocache {} (memcached {} protocol): {} threads, {} MB, {} shards",
        env!("CARGO_PKG_VERSION"),
        crate::config::MEMCACHED_VERSION,
        threads,
        shared.config.storage.memory_limit / crate::storage::MEGABYTE,
        shared.store.shard_count()
    );
    // The one line tests and scripts wait for.
    println!("ferrocache listening on {}", addrs.join(","));
    let _ = std::io::stdout().flush();

    let handles: Vec<_> = loops
        .into_iter()
        .enumerate()
        .map(|(i, ev)| std::thread::Builder::new().name(format!("loop-{i}")).spawn(move || ev.run()))
        .collect::<Result<_, _>>()
        .map_err(|source| Error::Io { what: "starting an event loop thread", source })?;

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let maint = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("maintenance".into())
            .spawn(move || maintenance(&shared, &stop_rx))
            .map_err(|source| Error::Io { what: "starting the maintenance thread", source })?
    };
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || loop {
                match sys::wait_signal() {
                    sys::Signal::Stop => {
                        log::info!("signal received: shutting down");
                        shared.shutdown();
                        return;
                    }
                    sys::Signal::Hangup => log::info!("SIGHUP received: nothing to reload"),
                }
            })
            .map_err(|source| Error::Io { what: "starting the signal thread", source })?;
    }

    for h in handles {
        let _ = h.join();
    }
    let _ = stop_tx.send(());
    let _ = maint.join();
    log::info!("ferrocache stopped");
    Ok(())
}

fn maintenance(shared: &Shared, stop: &mpsc::Receiver<()>) {
    let mut ticks = 0u32;
    loop {
        match stop.recv_timeout(Duration::from_millis(100)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        shared.store.clock().tick();
        ticks += 1;
        if ticks.is_multiple_of(10) {
            let n = shared.store.crawl(CRAWL_BUDGET);
            if n > 0 {
                log::debug!("crawler reclaimed {n} expired items");
            }
        }
    }
}
