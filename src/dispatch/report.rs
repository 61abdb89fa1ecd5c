//! The `stats` command and its groups, with memcached's names and order so
//! that tools reading memcached's stats read ours unchanged. Figures that
//! describe memcached machinery ferrocache does not have (segmented LRU,
//! extstore, TLS) are left out rather than reported as made-up zeros.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::config::{ProtocolChoice, MEMCACHED_VERSION};
use crate::num::parse_unsigned;
use crate::protocol::text::compose as c;
use crate::protocol::ProtocolError;
use crate::sys;

use super::Shared;

/// Answers `stats [args]`.
pub fn stats(sh: &Shared, args: &[u8], out: &mut Vec<u8>) {
    let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match words.next() {
        None => general(sh, out),
        Some(b"reset") => {
            sh.stats.reset();
            sh.store.reset_stats();
            out.extend_from_slice(c::RESET);
        }
        Some(b"settings") => settings(sh, out),
        Some(b"items") => items(sh, out),
        Some(b"slabs") => slabs(sh, out),
        Some(b"sizes") => {
            c::stat(out, "sizes_status", "disabled");
            out.extend_from_slice(c::END);
        }
        Some(b"conns") => conns(sh, out),
        Some(b"detail") => match words.next() {
            Some(b"on" | b"off" | b"dump") => {
                out.extend_from_slice(b"CLIENT_ERROR stats detail not allowed\r\n");
            }
            _ => out.extend_from_slice(b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"),
        },
        Some(b"cachedump") => {
            let (Some(id), Some(limit)) = (words.next(), words.next()) else {
                c::error(out, ProtocolError::BadCommandLine);
                return;
            };
            cachedump(sh, id, limit, out)
        }
        Some(_) => c::error(out, ProtocolError::UnknownCommand),
    }
}

fn secs(d: std::time::Duration) -> String {
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

fn general(sh: &Shared, out: &mut Vec<u8>) {
    let clock = sh.store.clock();
    let t = sh.stats.totals();
    let s = sh.store.stats();
    let (user, system) = sys::rusage();
    let now_unix =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(clock.unix_now());
    let cfg = &sh.config;
    let stat = |out: &mut Vec<u8>, name: &str, v: u64| c::stat(out, name, v);
    stat(out, "pid", u64::from(sh.pid));
    stat(out, "uptime", now_unix.saturating_sub(clock.started_unix()));
    stat(out, "time", now_unix);
    c::stat(out, "version", MEMCACHED_VERSION);
    c::stat(out, "ferrocache_version", env!("CARGO_PKG_VERSION"));
    stat(out, "pointer_size", usize::BITS as u64);
    c::stat(out, "rusage_user", secs(user));
    c::stat(out, "rusage_system", secs(system));
    stat(out, "max_connections", cfg.server.max_connections as u64);
    stat(out, "curr_connections", sh.curr_connections.load(Ordering::Relaxed) as u64);
    stat(out, "total_connections", t.total_connections);
    stat(out, "rejected_connections", t.rejected_connections);
    stat(out, "connection_structures", sh.curr_connections.load(Ordering::Relaxed) as u64);
    stat(out, "cmd_get", t.cmd_get);
    stat(out, "cmd_set", t.cmd_set);
    stat(out, "cmd_flush", t.cmd_flush);
    stat(out, "cmd_touch", t.cmd_touch);
    stat(out, "get_hits", t.get_hits);
    stat(out, "get_misses", t.get_misses);
    stat(out, "get_expired", s.get_expired);
    stat(out, "get_flushed", s.get_flushed);
    stat(out, "delete_misses", t.delete_misses);
    stat(out, "delete_hits", t.delete_hits);
    stat(out, "incr_misses", t.incr_misses);
    stat(out, "incr_hits", t.incr_hits);
    stat(out, "decr_misses", t.decr_misses);
    stat(out, "decr_hits", t.decr_hits);
    stat(out, "cas_misses", t.cas_misses);
    stat(out, "cas_hits", t.cas_hits);
    stat(out, "cas_badval", t.cas_badval);
    stat(out, "touch_hits", t.touch_hits);
    stat(out, "touch_misses", t.touch_misses);
    stat(out, "store_too_large", t.store_too_large);
    stat(out, "store_no_memory", t.store_no_memory);
    stat(out, "auth_cmds", 0);
    stat(out, "auth_errors", 0);
    stat(out, "idle_kicks", t.idle_kicks);
    stat(out, "bytes_read", t.bytes_read);
    stat(out, "bytes_written", t.bytes_written);
    stat(out, "limit_maxbytes", s.limit_maxbytes);
    stat(out, "accepting_conns", u64::from(!sh.stopping.load(Ordering::Relaxed)));
    stat(out, "threads", cfg.server.threads as u64);
    stat(out, "conn_yields", t.conn_yields);
    stat(out, "hash_power_level", u64::from(s.hash_power_level));
    stat(out, "hash_bytes", s.hash_bytes);
    stat(out, "hash_is_expanding", 0);
    stat(out, "bytes", s.bytes);
    stat(out, "curr_items", s.curr_items);
    stat(out, "total_items", s.total_items);
    stat(out, "expired_unfetched", s.expired_unfetched);
    stat(out, "evicted_unfetched", s.evicted_unfetched);
    stat(out, "evictions", s.evictions);
    stat(out, "reclaimed", s.reclaimed);
    stat(out, "crawler_reclaimed", s.crawler_reclaimed);
    stat(out, "crawler_items_checked", s.crawler_items_checked);
    stat(out, "total_malloced", s.total_malloced);
    out.extend_from_slice(c::END);
}

fn settings(sh: &Shared, out: &mut Vec<u8>) {
    let cfg = &sh.config;
    let srv = &cfg.server;
    let st = &cfg.storage;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let inter: Vec<String> = srv.listen.iter().map(|a| a.ip().to_string()).collect();
    let port = sh.bound.get().and_then(|b| b.first()).map_or(srv.port, |a| a.port());
    c::stat(out, "maxbytes", sh.store.stats().limit_maxbytes);
    c::stat(out, "maxconns", srv.max_connections);
    c::stat(out, "tcpport", port);
    c::stat(out, "udpport", srv.udp_port);
    c::stat(out, "inter", inter.join(","));
    c::stat(out, "verbosity", sh.verbosity.load(Ordering::Relaxed));
    c::stat(out, "evictions", if st.evictions { "on" } else { "off" });
    c::stat(out, "domain_socket", "NULL");
    c::stat(out, "shutdown_command", yes_no(srv.enable_shutdown));
    c::stat(out, "growth_factor", format!("{:.2}", st.growth_factor));
    c::stat(out, "chunk_size", st.min_space);
    c::stat(out, "num_threads", srv.threads);
    c::stat(out, "detail_enabled", "no");
    c::stat(out, "reqs_per_event", srv.reqs_per_event);
    c::stat(out, "cas_enabled", yes_no(st.use_cas));
    c::stat(out, "tcp_backlog", srv.backlog);
    let proto = match srv.protocol {
        ProtocolChoice::Auto => "auto-negotiate",
        ProtocolChoice::Ascii => "ascii",
        ProtocolChoice::Binary => "binary",
    };
    c::stat(out, "binding_protocol", proto);
    c::stat(out, "auth_enabled_sasl", "no");
    c::stat(out, "auth_enabled_ascii", "no");
    c::stat(out, "item_size_max", st.item_size_max);
    c::stat(out, "hashpower_init", st.hashpower);
    c::stat(out, "slab_chunk_max", st.item_size_max);
    c::stat(out, "lru_crawler", "yes");
    c::stat(out, "flush_enabled", yes_no(srv.flush_enabled));
    c::stat(out, "dump_enabled", yes_no(srv.dump_enabled));
    c::stat(out, "hash_algorithm", "ahash");
    c::stat(out, "idle_timeout", srv.idle_timeout);
    c::stat(out, "shards", sh.store.shard_count());
    out.extend_from_slice(c::END);
}

fn items(sh: &Shared, out: &mut Vec<u8>) {
    for cs in sh.store.class_stats().iter().filter(|cs| cs.used_chunks > 0) {
        let id = cs.id;
        let k = &cs.counters;
        let mut stat = |name: &str, v: u64| c::stat(out, &format!("items:{id}:{name}"), v);
        stat("number", cs.used_chunks);
        stat("age", u64::from(cs.age));
        stat("mem_requested", cs.mem_requested);
        stat("evicted", k.evicted);
        stat("evicted_nonzero", k.evicted_nonzero);
        stat("evicted_time", u64::from(k.evicted_time));
        stat("outofmemory", k.outofmemory);
        stat("reclaimed", k.reclaimed);
        stat("expired_unfetched", k.expired_unfetched);
        stat("evicted_unfetched", k.evicted_unfetched);
        stat("crawler_reclaimed", k.crawler_reclaimed);
    }
    out.extend_from_slice(c::END);
}

fn slabs(sh: &Shared, out: &mut Vec<u8>) {
    let all = sh.store.class_stats();
    let mut active = 0;
    for cs in all.iter().filter(|cs| cs.total_pages > 0) {
        active += 1;
        let id = cs.id;
        let k = &cs.counters;
        let mut stat = |name: &str, v: u64| c::stat(out, &format!("{id}:{name}"), v);
        stat("chunk_size", cs.chunk_size as u64);
        stat("chunks_per_page", u64::from(cs.chunks_per_page));
        stat("total_pages", cs.total_pages);
        stat("total_chunks", cs.total_chunks);
        stat("used_chunks", cs.used_chunks);
        stat("free_chunks", cs.free_chunks);
        stat("free_chunks_end", cs.free_chunks_end);
        stat("get_hits", k.get_hits);
        stat("cmd_set", k.cmd_set);
        stat("delete_hits", k.delete_hits);
        stat("incr_hits", k.incr_hits);
        stat("decr_hits", k.decr_hits);
        stat("cas_hits", k.cas_hits);
        stat("cas_badval", k.cas_badval);
        stat("touch_hits", k.touch_hits);
    }
    c::stat(out, "active_slabs", active);
    c::stat(out, "total_malloced", sh.store.stats().total_malloced);
    out.extend_from_slice(c::END);
}

fn conns(sh: &Shared, out: &mut Vec<u8>) {
    let now = sh.store.clock().now();
    if let Some(bound) = sh.bound.get() {
        for (i, addr) in bound.iter().enumerate() {
            c::stat(out, &format!("listen{i}:addr"), format!("tcp:{addr}"));
            c::stat(out, &format!("listen{i}:state"), "conn_listening");
        }
    }
    let mut list: Vec<_> = sh.conns.lock().values().cloned().collect();
    list.sort_by_key(|ci| ci.fd);
    for ci in list {
        let fd = ci.fd;
        c::stat(out, &format!("{fd}:addr"), format!("tcp:{}", ci.peer));
        c::stat(out, &format!("{fd}:listen_addr"), format!("tcp:{}", ci.local));
        c::stat(out, &format!("{fd}:state"), "conn_parse_cmd");
        let idle = now.saturating_sub(ci.last_cmd.load(Ordering::Relaxed));
        c::stat(out, &format!("{fd}:secs_since_last_cmd"), idle);
    }
    out.extend_from_slice(c::END);
}

fn cachedump(sh: &Shared, id: &[u8], limit: &[u8], out: &mut Vec<u8>) {
    if !sh.config.server.dump_enabled {
        out.extend_from_slice(b"CLIENT_ERROR stats cachedump not allowed\r\n");
        return;
    }
    let (Some(id), Some(limit)) = (parse_unsigned(id), parse_unsigned(limit)) else {
        c::error(out, ProtocolError::BadFormat);
        return;
    };
    if id == 0 || id > sh.store.sizes().count() as u64 {
        out.extend_from_slice(b"CLIENT_ERROR Illegal slab id\r\n");
        return;
    }
    // memcached caps a dump at 2 MB of output; so do we.
    const MAX_DUMP: usize = 2 * 1024 * 1024;
    let start = out.len();
    for (key, len, exp) in sh.store.dump_class(id as u8, limit.min(usize::MAX as u64) as usize) {
        if out.len() - start > MAX_DUMP {
            break;
        }
        out.extend_from_slice(b"ITEM ");
        out.extend_from_slice(&key);
        out.extend_from_slice(format!(" [{len} b; {exp} s]\r\n").as_bytes());
    }
    out.extend_from_slice(c::END);
}
