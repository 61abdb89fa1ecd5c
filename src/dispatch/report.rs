//! The `stats` command and its groups, with memcached's names and order so
//! that tools reading memcached's stats read ours unchanged. Figures that
//! describe memcached machinery ferrocache does not have (segmented LRU,
//! extstore, TLS) are left out rather than reported as made-up zeros.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use crate::config::{ProtocolChoice, MEMCACHED_VERSION};
use crate::num::parse_unsigned;
use crate::protocol::{ProtocolError, Reply, Status};
use crate::sys;

use crate::state::Shared;

/// Answers `stats [args]`.
pub fn stats<R: Reply>(sh: &Shared, args: &[u8], out: &mut R) {
    let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match words.next() {
        None => general(sh, out),
        Some(b"reset") => {
            sh.stats.reset();
            sh.store.reset_stats();
            out.status(Status::Reset, 0);
        }
        Some(b"settings") => settings(sh, out),
        Some(b"items") => items(sh, out),
        Some(b"slabs") => slabs(sh, out),
        Some(b"sizes") => {
            out.stat("sizes_status", &"disabled");
            out.stats_end();
        }
        Some(b"conns") => conns(sh, out),
        Some(b"cluster") => {
            for (k, v) in sh.discovery.stats() {
                out.stat(&k, &v);
            }
            out.stats_end();
        }
        Some(b"detail") => match words.next() {
            Some(b"on" | b"off" | b"dump") => out.status(Status::DetailNotAllowed, 0),
            _ => out.status(Status::DetailUsage, 0),
        },
        Some(b"cachedump") => {
            let (Some(id), Some(limit)) = (words.next(), words.next()) else {
                out.error(ProtocolError::BadCommandLine);
                return;
            };
            cachedump(sh, id, limit, out)
        }
        Some(_) => out.error(ProtocolError::UnknownCommand),
    }
}

fn secs(d: std::time::Duration) -> String {
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}

fn general<R: Reply>(sh: &Shared, out: &mut R) {
    let clock = sh.store.clock();
    let t = sh.stats.totals();
    let s = sh.store.stats();
    let (user, system) = sys::rusage();
    let now_unix =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(clock.unix_now());
    let cfg = &sh.config;
    let stat = |out: &mut R, name: &str, v: u64| out.stat(name, &v);
    stat(out, "pid", u64::from(sh.pid));
    stat(out, "uptime", now_unix.saturating_sub(clock.started_unix()));
    stat(out, "time", now_unix);
    out.stat("version", &MEMCACHED_VERSION);
    out.stat("ferrocache_version", &env!("CARGO_PKG_VERSION"));
    stat(out, "pointer_size", usize::BITS as u64);
    out.stat("rusage_user", &secs(user));
    out.stat("rusage_system", &secs(system));
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
    stat(out, "auth_cmds", t.auth_cmds);
    stat(out, "auth_errors", t.auth_errors);
    stat(out, "idle_kicks", t.idle_kicks);
    stat(out, "write_stalls", t.write_stalls);
    stat(out, "bytes_read", t.bytes_read);
    stat(out, "bytes_written", t.bytes_written);
    stat(out, "limit_maxbytes", s.limit_maxbytes);
    stat(out, "accepting_conns", u64::from(!sh.stopping.load(Ordering::Relaxed)));
    stat(out, "threads", cfg.server.threads as u64);
    stat(out, "conn_yields", t.conn_yields);
    stat(out, "hash_power_level", u64::from(s.hash_power_level));
    stat(out, "hash_bytes", s.hash_bytes);
    stat(out, "hash_is_expanding", 0);
    stat(out, "slabs_moved", s.slabs_moved);
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
    out.stats_end();
}

fn settings<R: Reply>(sh: &Shared, out: &mut R) {
    let cfg = &sh.config;
    let srv = &cfg.server;
    let st = &cfg.storage;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let inter: Vec<String> = srv.listen.iter().map(|a| a.ip().to_string()).collect();
    let port = sh.bound.get().and_then(|b| b.first()).map_or(srv.port, |a| a.port());
    out.stat("maxbytes", &sh.store.stats().limit_maxbytes);
    out.stat("maxconns", &srv.max_connections);
    out.stat("tcpport", &port);
    out.stat("udpport", &srv.udp_port);
    out.stat("inter", &inter.join(","));
    out.stat("verbosity", &sh.verbosity.load(Ordering::Relaxed));
    out.stat("evictions", &if st.evictions { "on" } else { "off" });
    out.stat("domain_socket", &"NULL");
    out.stat("shutdown_command", &yes_no(srv.enable_shutdown));
    out.stat("growth_factor", &format!("{:.2}", st.growth_factor));
    out.stat("chunk_size", &st.min_space);
    out.stat("num_threads", &srv.threads);
    out.stat("detail_enabled", &"no");
    out.stat("reqs_per_event", &srv.reqs_per_event);
    out.stat("cas_enabled", &yes_no(st.use_cas));
    out.stat("tcp_backlog", &srv.backlog);
    let proto = match srv.protocol {
        ProtocolChoice::Auto => "auto-negotiate",
        ProtocolChoice::Ascii => "ascii",
        ProtocolChoice::Binary => "binary",
    };
    out.stat("binding_protocol", &proto);
    let sasl = srv.auth.is_some() && srv.protocol == ProtocolChoice::Binary;
    out.stat("auth_enabled_sasl", &yes_no(sasl));
    out.stat("auth_enabled_ascii", &yes_no(srv.auth.is_some() && !sasl));
    out.stat("item_size_max", &st.item_size_max);
    out.stat("hashpower_init", &st.hashpower);
    out.stat("slab_chunk_max", &st.item_size_max);
    out.stat("lru_crawler", &"yes");
    out.stat("slab_reassign", &"yes");
    out.stat("slab_automove", &1);
    out.stat("flush_enabled", &yes_no(srv.flush_enabled));
    out.stat("dump_enabled", &yes_no(srv.dump_enabled));
    out.stat("hash_algorithm", &"ahash");
    out.stat("idle_timeout", &srv.idle_timeout);
    out.stat("write_timeout", &srv.write_timeout);
    out.stat("shards", &sh.store.shard_count());
    out.stats_end();
}

fn items<R: Reply>(sh: &Shared, out: &mut R) {
    for cs in sh.store.class_stats().iter().filter(|cs| cs.used_chunks > 0) {
        let id = cs.id;
        let k = &cs.counters;
        let mut stat = |name: &str, v: u64| out.stat(&format!("items:{id}:{name}"), &v);
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
    out.stats_end();
}

fn slabs<R: Reply>(sh: &Shared, out: &mut R) {
    let all = sh.store.class_stats();
    let mut active = 0;
    for cs in all.iter().filter(|cs| cs.total_pages > 0) {
        active += 1;
        let id = cs.id;
        let k = &cs.counters;
        let mut stat = |name: &str, v: u64| out.stat(&format!("{id}:{name}"), &v);
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
    out.stat("active_slabs", &active);
    out.stat("total_malloced", &sh.store.stats().total_malloced);
    out.stats_end();
}

fn conns<R: Reply>(sh: &Shared, out: &mut R) {
    let now = sh.store.clock().now();
    if let Some(bound) = sh.bound.get() {
        for (i, addr) in bound.iter().enumerate() {
            out.stat(&format!("listen{i}:addr"), &format!("tcp:{addr}"));
            out.stat(&format!("listen{i}:state"), &"conn_listening");
        }
    }
    let mut list: Vec<_> = sh.conns.lock().values().cloned().collect();
    list.sort_by_key(|ci| ci.fd);
    for ci in list {
        let fd = ci.fd;
        out.stat(&format!("{fd}:addr"), &format!("tcp:{}", ci.peer));
        out.stat(&format!("{fd}:listen_addr"), &format!("tcp:{}", ci.local));
        out.stat(&format!("{fd}:state"), &"conn_parse_cmd");
        let idle = now.saturating_sub(ci.last_cmd.load(Ordering::Relaxed));
        out.stat(&format!("{fd}:secs_since_last_cmd"), &idle);
    }
    out.stats_end();
}

fn cachedump<R: Reply>(sh: &Shared, id: &[u8], limit: &[u8], out: &mut R) {
    if !sh.config.server.dump_enabled {
        out.status(Status::DumpNotAllowed, 0);
        return;
    }
    let (Some(id), Some(limit)) = (parse_unsigned(id), parse_unsigned(limit)) else {
        out.error(ProtocolError::BadFormat);
        return;
    };
    if id == 0 || id > sh.store.sizes().count() as u64 {
        out.status(Status::IllegalSlabId, 0);
        return;
    }
    // memcached caps a dump at 2 MB of output; so do we.
    const MAX_DUMP: usize = 2 * 1024 * 1024;
    let mut size = 0;
    for (key, len, exp) in sh.store.dump_class(id as u8, limit.min(usize::MAX as u64) as usize) {
        size += key.len() + 32;
        if size > MAX_DUMP {
            break;
        }
        out.dump_item(&key, len, exp);
    }
    out.stats_end();
}
