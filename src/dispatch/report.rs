//! The `stats` command and its groups, with memcached's names and order so
//! that tools reading memcached's stats read ours unchanged. Figures that
//! describe memcached machinery ferrocache does not have (segmented LRU,
//! extstore, TLS) are left out rather than reported as made-up zeros.

use std::sync::atomic::Ordering;

use crate::config::ProtocolChoice;
use crate::figures::{self, Sample};
use crate::num::parse_unsigned;
use crate::protocol::{ProtocolError, Reply, Status};

use crate::storage::SizesError;

use crate::state::{ConnInfo, ConnState, Endpoint, ListenerInfo, Shared};

/// Answers `stats [args]`.
pub fn stats<R: Reply>(sh: &Shared, args: &[u8], out: &mut R) {
    let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match words.next() {
        None => general(sh, out),
        Some(b"reset") => {
            sh.stats.reset();
            sh.store.reset_stats();
            sh.detail.reset();
            sh.watch.reset_figures();
            if let Some(tls) = sh.tls.get() {
                tls.reset_new_sessions();
            }
            out.status(Status::Reset, 0);
        }
        Some(b"settings") => settings(sh, out),
        Some(b"items") => items(sh, out),
        Some(b"slabs") => slabs(sh, out),
        Some(b"sizes") => sizes(sh, out),
        // memcached ends neither reply with END (nor a binary terminator
        // packet); a client written for it reads the one or two lines.
        Some(b"sizes_enable") => match sh.store.enable_size_tracking() {
            Ok(()) => out.stat("sizes_status", &"enabled"),
            Err(SizesError::NoMemory) => {
                out.stat("sizes_status", &"error");
                out.stat("sizes_error", &"no_memory");
            }
        },
        Some(b"sizes_disable") => {
            sh.store.disable_size_tracking();
            out.stat("sizes_status", &"disabled");
        }
        Some(b"conns") => conns(sh, out),
        Some(b"ferrocache") => rows(sh, figures::FERROCACHE, out),
        Some(b"cluster") => {
            for (k, v) in sh.discovery.stats().into_iter().chain(cluster_stats(sh)) {
                out.stat(&k, &v);
            }
            out.stats_end();
        }
        Some(b"detail") => match words.next() {
            Some(w @ (b"on" | b"off")) => {
                sh.detail.set_enabled(w == b"on");
                out.status(Status::Ok, 0);
            }
            Some(b"dump") => out.detail_dump(&sh.detail.dump()),
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

/// `stats`: every row of [`figures::GENERAL`] that has a name.
fn general<R: Reply>(sh: &Shared, out: &mut R) {
    rows(sh, figures::GENERAL, out)
}

/// The named rows of `table` that are shown under the current settings.
fn rows<R: Reply>(sh: &Shared, table: &[figures::Figure<Sample>], out: &mut R) {
    let sample = Sample::take(sh);
    for f in table {
        if let Some(name) = f.stat {
            let v = (f.get)(&sample);
            if v != figures::Value::Absent {
                out.stat(name, &v);
            }
        }
    }
    out.stats_end();
}

/// memcached's `ssl_*` settings rows (a TLS build shows them with or
/// without `-Z`; unset paths print as its printf prints them).
fn tls_settings<R: Reply>(tls: Option<&crate::tls::TlsOptions>, out: &mut R) {
    let defaults = crate::tls::TlsOptions::default();
    let o = tls.unwrap_or(&defaults);
    let path =
        |p: &Option<std::path::PathBuf>, none: &str| p.as_ref().map_or(none.to_string(), |p| p.display().to_string());
    out.stat("ssl_enabled", &if tls.is_some() { "yes" } else { "no" });
    out.stat("ssl_chain_cert", &path(&o.chain_cert, "(null)"));
    out.stat("ssl_key", &path(&o.key, "(null)"));
    out.stat("ssl_verify_mode", &o.verify_bits());
    out.stat("ssl_keyformat", &o.keyformat);
    out.stat("ssl_ciphers", &o.ciphers.as_deref().unwrap_or("NULL"));
    out.stat("ssl_ca_cert", &path(&o.ca_cert, "NULL"));
    out.stat("ssl_wbuf_size", &o.wbuf_size);
    out.stat("ssl_session_cache", &if o.session_cache { "yes" } else { "no" });
    out.stat("ssl_kernel_tls", &"no");
    out.stat("ssl_min_version", &o.min_version.as_str());
}

fn settings<R: Reply>(sh: &Shared, out: &mut R) {
    let cfg = &sh.config;
    let srv = &cfg.server;
    let st = &cfg.storage;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    // The ports bound where one was picked (-1), else as configured.
    let bound = sh.bound.get();
    let port = bound.and_then(|b| b.tcp.first()).map_or(srv.port, |a| i32::from(a.port()));
    let udp_port = bound.and_then(|b| b.udp.first()).map_or(srv.udp_port, |a| i32::from(a.port()));
    out.stat("maxbytes", &sh.store.stats().limit_maxbytes);
    out.stat("maxconns", &srv.max_connections);
    out.stat("tcpport", &port);
    out.stat("udpport", &udp_port);
    out.stat("inter", &srv.inter.as_deref().unwrap_or("NULL"));
    out.stat("verbosity", &sh.verbosity.load(Ordering::Relaxed));
    out.stat("evictions", &if st.evictions { "on" } else { "off" });
    match &srv.unix_socket {
        Some(path) => out.stat("domain_socket", &path.display()),
        None => out.stat("domain_socket", &"NULL"),
    }
    out.stat("umask", &format_args!("{:o}", srv.unix_mask));
    out.stat("shutdown_command", &yes_no(srv.enable_shutdown));
    out.stat("growth_factor", &format!("{:.2}", st.growth_factor));
    out.stat("chunk_size", &st.min_space);
    out.stat("num_threads", &srv.threads);
    out.stat("stat_key_prefix", &char::from(sh.detail.delimiter()));
    out.stat("detail_enabled", &yes_no(sh.detail.enabled()));
    out.stat("detail_dropped", &sh.detail.dropped());
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
    // memcached names the -Y file here whenever -Y is given (with -S too).
    out.stat("auth_enabled_ascii", &srv.auth_file.as_ref().map_or("no".into(), |p| p.display().to_string()));
    out.stat("item_size_max", &st.item_size_max);
    out.stat("maxconns_fast", &"yes");
    out.stat("hashpower_init", &cfg.reported.hashpower_init);
    out.stat("slab_reassign", &yes_no(st.moves.reassign));
    out.stat("slab_automove", &sh.store.automove());
    out.stat("slab_automove_ratio", &format!("{:.2}", st.moves.ratio));
    out.stat("slab_chunk_max", &cfg.reported.slab_chunk_max);
    out.stat("lru_crawler", &yes_no(sh.store.crawler_enabled()));
    out.stat("tail_repair_time", &cfg.reported.tail_repair_time);
    out.stat("flush_enabled", &yes_no(srv.flush_enabled));
    out.stat("dump_enabled", &yes_no(srv.dump_enabled));
    out.stat("hash_algorithm", &"ahash");
    out.stat("lru_maintainer_thread", &"no");
    out.stat("lru_segmented", &"no");
    out.stat("idle_timeout", &srv.idle_timeout);
    out.stat("write_timeout", &srv.write_timeout);
    out.stat("watcher_logbuf_size", &srv.watcher_logbuf_size);
    out.stat("worker_logbuf_size", &srv.worker_logbuf_size);
    out.stat("read_buf_mem_limit", &0);
    out.stat("track_sizes", &yes_no(sh.store.tracks_sizes()));
    out.stat("inline_ascii_response", &"no");
    tls_settings(srv.tls.as_ref(), out);
    let memory_file = cfg.memory_file.as_ref().map_or("(null)".to_string(), |p| p.display().to_string());
    out.stat("memory_file", &memory_file);
    out.stat("shards", &sh.store.shard_count());
    out.stats_end();
}

/// `stats sizes`: `STAT <size> <count>` for each non-empty 32-byte bucket
/// (size being the bucket's upper bound), or the disabled status.
fn sizes<R: Reply>(sh: &Shared, out: &mut R) {
    match sh.store.size_histogram() {
        Some(rows) => {
            for (size, count) in rows {
                out.stat(&size.to_string(), &count);
            }
        }
        None => out.stat("sizes_status", &"disabled"),
    }
    out.stats_end();
}

/// `stats items`: the [`figures::ITEMS`] rows of each class holding items.
fn items<R: Reply>(sh: &Shared, out: &mut R) {
    for cs in sh.store.class_stats().iter().filter(|cs| cs.used_chunks > 0) {
        for f in figures::ITEMS {
            if let Some(name) = f.stat {
                out.stat(&format!("items:{}:{name}", cs.id), &(f.get)(cs));
            }
        }
    }
    out.stats_end();
}

/// `stats slabs`: the [`figures::SLABS`] rows of each class holding pages.
fn slabs<R: Reply>(sh: &Shared, out: &mut R) {
    let all = sh.store.class_stats();
    let mut active = 0;
    for cs in all.iter().filter(|cs| cs.total_pages > 0) {
        active += 1;
        for f in figures::SLABS {
            if let Some(name) = f.stat {
                out.stat(&format!("{}:{name}", cs.id), &(f.get)(cs));
            }
        }
    }
    out.stat("active_slabs", &active);
    out.stat("total_malloced", &sh.store.stats().total_malloced);
    out.stats_end();
}

/// `stats conns`: every listening and UDP socket, then every client, in
/// descriptor order, as memcached lists them.
fn conns<R: Reply>(sh: &Shared, out: &mut R) {
    enum Row<'a> {
        Listener(&'a ListenerInfo),
        Client(ConnInfo),
    }
    let now = sh.store.clock().now();
    let clients: Vec<ConnInfo> = sh.conns.lock().values().cloned().collect();
    let mut rows: Vec<(i32, Row<'_>)> =
        sh.bound.get().map_or(&[][..], |b| &b.listeners[..]).iter().map(|l| (l.fd, Row::Listener(l))).collect();
    rows.extend(clients.into_iter().map(|c| (c.fd, Row::Client(c))));
    rows.sort_by_key(|(fd, _)| *fd);
    for (fd, row) in rows {
        match row {
            Row::Listener(l) => {
                let udp = matches!(l.addr, Endpoint::Udp(_));
                if udp {
                    out.stat(&format!("{fd}:UDP"), &"UDP");
                }
                out.stat(&format!("{fd}:addr"), &l.addr);
                out.stat(&format!("{fd}:state"), &if udp { "conn_read" } else { "conn_listening" });
                out.stat(&format!("{fd}:secs_since_last_cmd"), &now);
            }
            Row::Client(ci) => {
                out.stat(&format!("{fd}:addr"), &ci.addr);
                out.stat(&format!("{fd}:listen_addr"), &ci.listen_addr);
                out.stat(&format!("{fd}:state"), &ConnState::from_u8(ci.state.load(Ordering::Relaxed)).name());
                let idle = now.saturating_sub(ci.last_cmd.load(Ordering::Relaxed));
                out.stat(&format!("{fd}:secs_since_last_cmd"), &idle);
                if let Some(subject) = ci.tls_subject.get() {
                    out.stat(&format!("{fd}:tls_subject"), subject);
                }
            }
        }
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

/// `stats cluster` lines of the node side (none on a node that does not
/// follow a cluster).
fn cluster_stats(sh: &Shared) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(f) = sh.cluster.get() {
        out.extend(f.stats());
        out.push(("replicas".to_string(), u8::from(sh.replication.get().is_some()).to_string()));
    }
    if let Some(r) = sh.replication.get() {
        out.extend(r.stats());
    }
    out
}
