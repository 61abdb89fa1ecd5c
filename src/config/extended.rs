//! `-o name[=value],...`: memcached's extended options.
//!
//! Every option memcached 1.6.18 knows is named here and is either
//! honoured, accepted because ferrocache already behaves that way, or
//! refused with the reason; an unknown name is refused as memcached
//! refuses it. The table in `docs/protocol-notes.md` ("Flags") says the
//! same for each option.

use super::{bad, parse_size};
use crate::error::Error;
use crate::storage::{PageMoves, DEFAULT_AUTOMOVE_RATIO};

/// memcached's default `tail_repair_time` (off).
const DEFAULT_TAIL_REPAIR_TIME: u32 = 0;

/// What the `-o` options set.
#[derive(Debug, Clone, PartialEq)]
pub struct Extended {
    pub idle_timeout: u32,
    pub write_timeout: u32,
    pub hashpower: u32,
    /// `hashpower` was given (memcached reports 0 otherwise).
    pub hashpower_given: bool,
    pub hash_expand: bool,
    /// `track_sizes`: `stats sizes` counts items from the start.
    pub track_sizes: bool,
    pub strict: bool,
    pub lru_crawler: bool,
    /// `no_modern`: one store shard, so eviction follows one LRU per class
    /// over all keys, as memcached's classic behaviour.
    pub single_shard: bool,
    pub moves: PageMoves,
    pub tail_repair_time: u32,
    /// `slab_chunk_max`, when given (bytes).
    pub slab_chunk_max: Option<usize>,
    /// `worker_logbuf_size`: each loop's `watch` log ring, in bytes.
    pub worker_logbuf_size: usize,
    /// `watcher_logbuf_size`: unsent log bytes a watcher may hold.
    pub watcher_logbuf_size: usize,
    /// `ssl_*`: TLS settings, used with `-Z`.
    pub tls: crate::tls::TlsOptions,
    /// Said once logging is up (deprecations).
    pub warnings: Vec<String>,
}

impl Extended {
    fn new(write_timeout: u32) -> Extended {
        Extended {
            idle_timeout: 0,
            write_timeout,
            hashpower: 16,
            hashpower_given: false,
            hash_expand: true,
            track_sizes: false,
            strict: false,
            lru_crawler: true,
            single_shard: false,
            moves: PageMoves::default(),
            tail_repair_time: DEFAULT_TAIL_REPAIR_TIME,
            slab_chunk_max: None,
            worker_logbuf_size: crate::watch::DEFAULT_WORKER_BUF,
            watcher_logbuf_size: crate::watch::DEFAULT_WATCHER_BUF,
            tls: crate::tls::TlsOptions::default(),
            warnings: Vec::new(),
        }
    }
}

/// Options refused because ferrocache lacks the machinery, with the reason
/// given at start. Prefix matches end in `_`.
const REFUSED: &[(&str, &str)] = &[
    (
        "no_maxconns_fast",
        "connections over -c are always refused at once (maxconns_fast); ferrocache never stops accepting instead",
    ),
    ("hash_algorithm", "the hash function is fixed (ahash)"),
    ("lru_crawler_sleep", "the crawler checks a fixed budget of items per second, not one item per interval"),
    ("lru_crawler_tocrawl", "the crawler checks a fixed budget of items per second, not a count per slab class"),
    ("lru_maintainer", "there is no segmented (hot/warm/cold) LRU; each slab class has one LRU"),
    ("hot_lru_pct", "there is no segmented (hot/warm/cold) LRU"),
    ("warm_lru_pct", "there is no segmented (hot/warm/cold) LRU"),
    ("hot_max_factor", "there is no segmented (hot/warm/cold) LRU"),
    ("warm_max_factor", "there is no segmented (hot/warm/cold) LRU"),
    ("temporary_ttl", "there is no separate LRU for short-TTL items"),
    (
        "slab_automove_window",
        "the page mover compares LRU tail ages when a class must evict; it keeps no window of samples",
    ),
    ("slab_automove_freeratio", "there is no external storage (extstore)"),
    ("slab_sizes", "slab class sizes follow -n and -f only"),
    (
        "read_buf_mem_limit",
        "there is no global budget for connection buffers; each connection's output is capped instead",
    ),
    ("drop_privileges", "there is no system call sandbox; use -u and systemd's sandboxing"),
    ("sock_cookie_id", "sockets carry no cookie id"),
    ("proxy_config", "there is no proxy mode"),
    ("proxy_uring", "there is no proxy mode"),
    ("ssl_kernel_tls", "there is no kernel TLS offload; rustls encrypts in the event loop"),
    ("ext_", "there is no external storage (extstore)"),
];

/// Reads every `-o` argument; `item_size_max` bounds `slab_chunk_max`.
pub fn parse(args: &[String], item_size_max: usize, write_timeout: u32) -> Result<Extended, Error> {
    let mut x = Extended::new(write_timeout);
    for opt in args.iter().flat_map(|o| o.split(',')).map(str::trim).filter(|o| !o.is_empty()) {
        let (name, value) = opt.split_once('=').map_or((opt, None), |(n, v)| (n, Some(v)));
        // memcached's message when the value is missing; ours when it is
        // not a number (memcached reads such a value as 0).
        let number = |missing: &str| -> Result<u64, Error> {
            let v = value.ok_or_else(|| bad(missing))?;
            v.trim().parse().map_err(|_| bad(format!("invalid value for -o {name}: {opt}")))
        };
        if x.tls.parse_option(name, value).map_err(bad)? {
            continue;
        }
        match name {
            "idle_timeout" => {
                x.idle_timeout = u32::try_from(number("Missing numeric argument for idle_timeout")?)
                    .map_err(|_| bad("idle_timeout is too large"))?
            }
            "write_timeout" => {
                x.write_timeout = u32::try_from(number("Missing numeric argument for write_timeout")?)
                    .ok()
                    .filter(|&t| t > 0)
                    .ok_or_else(|| bad("write_timeout must be 1 or more seconds"))?
            }
            "hashpower" => {
                let p = number("Missing numeric argument for hashpower")?;
                if p < 12 {
                    return Err(bad(format!("Initial hashtable multiplier of {p} is too low")));
                }
                if p > 32 {
                    return Err(bad(format!(
                        "Initial hashtable multiplier of {p} is too high\n\
                         Choose a value based on \"STAT hash_power_level\" from a running instance"
                    )));
                }
                x.hashpower = p as u32;
                x.hashpower_given = true;
            }
            "no_hashexpand" => x.hash_expand = false,
            // As memcached: kilobytes.
            "worker_logbuf_size" | "watcher_logbuf_size" => {
                let kb = value.ok_or_else(|| bad(format!("Missing {name} argument")))?;
                let kb: u64 = kb.trim().parse().map_err(|_| bad(format!("could not parse argument to {name}")))?;
                if !(1..=1024 * 1024).contains(&kb) {
                    return Err(bad(format!("{name} must be 1 to 1048576 (kilobytes)")));
                }
                let bytes = kb as usize * 1024;
                if name == "worker_logbuf_size" {
                    x.worker_logbuf_size = bytes;
                } else {
                    x.watcher_logbuf_size = bytes;
                }
            }
            "slab_chunk_max" => {
                // memcached splits larger items over chunks of this size; an
                // item here always takes one chunk of up to -I, so only the
                // bound is checked (the value is reported in `stats settings`).
                let v = value.ok_or_else(|| bad("Missing slab_chunk_max argument"))?;
                let v = parse_size(v, 1).ok_or_else(|| bad("could not parse argument to slab_chunk_max"))?;
                if v > item_size_max {
                    return Err(bad(format!(
                        "slab_chunk_max (bytes: {v}) cannot be larger than -I (item_size_max {item_size_max})"
                    )));
                }
                x.slab_chunk_max = Some(v);
            }
            // memcached: chunks as large as a page, i.e. no item split over
            // chunks, which is how every item is stored here.
            "no_chunked_items" => x.slab_chunk_max = Some(item_size_max),
            "strict_protocol" => x.strict = true,
            "track_sizes" => x.track_sizes = true,
            "lru_crawler" => x.lru_crawler = true,
            "no_lru_crawler" => x.lru_crawler = false,
            "slab_reassign" => x.moves.reassign = true,
            "no_slab_reassign" => x.moves.reassign = false,
            "slab_automove" => match value.map(str::trim) {
                None | Some("1") => x.moves.automove = 1,
                Some("0") => x.moves.automove = 0,
                Some("2") => x.moves.automove = 2,
                Some(_) => return Err(bad("slab_automove must be between 0 and 2")),
            },
            "no_slab_automove" => x.moves.automove = 0,
            "slab_automove_ratio" => {
                // As memcached: 1 is accepted (its message says "< 1").
                let r = value.ok_or_else(|| bad("Missing slab_automove_ratio argument"))?;
                let r: f64 = r.trim().parse().unwrap_or(0.0);
                if !(r > 0.0 && r <= 1.0) {
                    return Err(bad("slab_automove_ratio must be > 0 and < 1"));
                }
                x.moves.ratio = r;
            }
            "tail_repair_time" => {
                // An item is referenced only while its shard lock is held,
                // so no tail item is ever stuck and there is nothing to
                // repair: the bound is checked, the behaviour is the same.
                let t = number("Missing numeric argument for tail_repair_time")?;
                if t < 10 {
                    return Err(bad("Cannot set tail_repair_time to less than 10 seconds"));
                }
                x.tail_repair_time = u32::try_from(t).map_err(|_| bad("tail_repair_time is too large"))?;
            }
            "maxconns_fast" => {}
            "no_lru_maintainer" => {}
            "modern" => {}
            "no_modern" => {
                // memcached 1.4's behaviour: pages stay in their class, no
                // background crawler, and one LRU per class over all keys
                // (one shard), so items are evicted strictly oldest first.
                x.single_shard = true;
                x.moves.reassign = false;
                x.moves.automove = 0;
                x.lru_crawler = false;
            }
            "inline_ascii_resp" | "no_inline_ascii_resp" => {}
            "no_drop_privileges" | "relaxed_privileges" => {}
            "resp_obj_mem_limit" => {
                x.warnings.push("-o resp_obj_mem_limit is deprecated and has no effect (as in memcached)".into())
            }
            _ => {
                if let Some((_, why)) =
                    REFUSED.iter().find(|(n, _)| if n.ends_with('_') { name.starts_with(n) } else { name == *n })
                {
                    return Err(bad(format!("-o {name} is not supported: {why}")));
                }
                return Err(bad(format!("Illegal suboption \"{opt}\"")));
            }
        }
    }
    if x.moves.ratio.is_nan() {
        x.moves.ratio = DEFAULT_AUTOMOVE_RATIO;
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(s: &str) -> Result<Extended, Error> {
        parse(&[s.to_string()], 1024 * 1024, 30)
    }

    #[test]
    fn honoured_options_set_their_values() {
        let x = o("idle_timeout=30,hashpower=20,no_hashexpand,no_lru_crawler,slab_automove=0").unwrap();
        assert_eq!((x.idle_timeout, x.hashpower, x.hash_expand, x.lru_crawler), (30, 20, false, false));
        assert!(x.moves.reassign && x.moves.automove == 0);
        let x = o("slab_automove_ratio=0.8,tail_repair_time=60,slab_chunk_max=16384").unwrap();
        assert_eq!((x.moves.ratio, x.tail_repair_time, x.slab_chunk_max), (0.8, 60, Some(16384)));
        let x = o("no_modern").unwrap();
        assert!(!x.moves.reassign && x.moves.automove == 0 && !x.lru_crawler);
        let x = o("no_modern,lru_crawler").unwrap();
        assert!(x.lru_crawler);
        assert!(o("track_sizes").unwrap().track_sizes);
    }

    #[test]
    fn same_behaviour_options_are_accepted() {
        let x = o("modern,maxconns_fast,no_lru_maintainer,relaxed_privileges,no_drop_privileges,inline_ascii_resp")
            .unwrap();
        assert_eq!(x, Extended::new(30));
        assert_eq!(o("resp_obj_mem_limit=1").unwrap().warnings.len(), 1);
    }

    #[test]
    fn refused_options_name_the_reason() {
        for (opt, why) in [
            ("lru_maintainer", "segmented"),
            ("temporary_ttl=61", "short-TTL"),
            ("slab_automove_window=3", "window"),
            ("read_buf_mem_limit=1", "budget"),
            ("ext_path=/tmp/x:64m", "extstore"),
            ("ssl_kernel_tls", "kernel TLS"),
            ("ssl_min_version=1", "TLS 1.2"),
            ("drop_privileges", "sandbox"),
            ("no_maxconns_fast", "maxconns_fast"),
        ] {
            let e = o(opt).expect_err(opt).to_string();
            assert!(e.contains(why), "{opt}: {e}");
        }
        assert_eq!(o("bogus").unwrap_err().to_string(), "Illegal suboption \"bogus\"");
    }

    #[test]
    fn bad_values_are_refused() {
        for opt in [
            "idle_timeout=abc",
            "hashpower=99",
            "hashpower",
            "tail_repair_time=5",
            "slab_automove_ratio=1.5",
            "slab_automove=7",
        ] {
            assert!(o(opt).is_err(), "{opt}");
        }
        assert!(parse(&["slab_chunk_max=2m".into()], 1024 * 1024, 30).is_err());
    }

    /// memcached 1.6.18's messages for missing values and out-of-range ones.
    #[test]
    fn messages_follow_memcached() {
        for (opt, msg) in [
            ("hashpower", "Missing numeric argument for hashpower"),
            ("hashpower=11", "Initial hashtable multiplier of 11 is too low"),
            ("idle_timeout", "Missing numeric argument for idle_timeout"),
            ("tail_repair_time", "Missing numeric argument for tail_repair_time"),
            ("watcher_logbuf_size", "Missing watcher_logbuf_size argument"),
            ("worker_logbuf_size=x", "could not parse argument to worker_logbuf_size"),
            ("slab_chunk_max", "Missing slab_chunk_max argument"),
            ("slab_chunk_max=x", "could not parse argument to slab_chunk_max"),
            ("slab_automove_ratio", "Missing slab_automove_ratio argument"),
            ("slab_automove_ratio=x", "slab_automove_ratio must be > 0 and < 1"),
            ("slab_automove_ratio=0", "slab_automove_ratio must be > 0 and < 1"),
        ] {
            assert_eq!(o(opt).unwrap_err().to_string(), msg, "{opt}");
        }
        let high = o("hashpower=33").unwrap_err().to_string();
        assert!(high.starts_with("Initial hashtable multiplier of 33 is too high\nChoose"), "{high}");
        assert_eq!(o("slab_automove_ratio=1").unwrap().moves.ratio, 1.0, "1 is accepted, as memcached");
        let big = o("slab_chunk_max=2097152").unwrap_err().to_string();
        assert_eq!(big, "slab_chunk_max (bytes: 2097152) cannot be larger than -I (item_size_max 1048576)");
        assert_eq!(o("slab_chunk_max=16384,no_chunked_items").unwrap().slab_chunk_max, Some(1024 * 1024));
    }
}
