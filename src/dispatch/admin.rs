//! The admin commands: `slabs reassign|automove`, `lru_crawler
//! enable|disable|crawl|metadump` and `watch`, with memcached's reply
//! lines, and `snapshot` (handed to the backup thread, `crate::backup`). They are
//! text-protocol commands; the replies are written as raw lines.
//!
//! A metadump is not written here in one go: [`Action::Dump`] hands its
//! cursor to the connection, which calls [`metadump_step`] each time its
//! output has drained below the high-water mark, so a dump of any size
//! holds at most that mark (1 MiB) plus one 64 KiB part of output.

use crate::num::parse_unsigned;
use crate::protocol::{AdminCommand, Reply, Status};
use crate::state::Shared;
use crate::storage::{ClassMask, CrawlStart, Cursor, Reassign, ALL_CLASSES};

use super::Action;

/// Output bytes (plus chunks visited) one metadump step may add.
pub const DUMP_STEP: usize = 64 * 1024;

/// Runs one admin command.
pub fn run<R: Reply>(sh: &Shared, cmd: AdminCommand<'_>, reply: &mut R) -> Action {
    let store = &sh.store;
    match cmd {
        AdminCommand::SlabsReassign { src, dst } => {
            if !sh.config.storage.moves.reassign {
                reply.raw(b"CLIENT_ERROR slab reassignment disabled\r\n");
                return Action::Continue;
            }
            reply.raw(match store.reassign(src, dst) {
                Reassign::Ok => b"OK\r\n",
                Reassign::BadClass => b"BADCLASS invalid src or dst class id\r\n",
                Reassign::NoSpare => b"NOSPARE source class has no spare pages\r\n",
                Reassign::Same => b"SAME src and dst class are identical\r\n",
            });
        }
        AdminCommand::Watch { classes } => {
            if !sh.config.server.watch_enabled {
                reply.raw(b"CLIENT_ERROR watch commands not allowed\r\n");
            } else if reply.queued() > 0 {
                // As memcached: replies still queued ahead of the stream
                // would interleave with its lines.
                reply.raw(b"ERROR cannot pipeline other commands before watch\r\n");
            } else {
                reply.raw(b"OK\r\n");
                return Action::Watch(classes);
            }
        }
        AdminCommand::Snapshot { name } => {
            reply.raw(match sh.backup.request(&sh.config, name, "snapshot command") {
                Ok(()) => b"OK\r\n",
                Err(e) => e.reply(),
            });
        }
        AdminCommand::SlabsAutomove { mode } => {
            store.set_automove(mode);
            reply.status(Status::Ok, 0);
        }
        AdminCommand::CrawlerEnable(on) => {
            store.set_crawler_enabled(on);
            reply.status(Status::Ok, 0);
        }
        AdminCommand::CrawlerCrawl { classes } => {
            if !store.crawler_enabled() {
                reply.raw(b"CLIENT_ERROR lru crawler disabled\r\n");
                return Action::Continue;
            }
            let Some(mask) = class_list(sh, classes, false) else {
                reply.raw(b"BADCLASS invalid class id\r\n");
                return Action::Continue;
            };
            reply.raw(match store.start_crawl(mask) {
                CrawlStart::Ok => b"OK\r\n",
                CrawlStart::Busy => b"BUSY currently processing crawler request\r\n",
                CrawlStart::BadClass => b"BADCLASS invalid class id\r\n",
            });
        }
        AdminCommand::CrawlerMetadump { classes } => {
            if !store.crawler_enabled() {
                reply.raw(b"CLIENT_ERROR lru crawler disabled\r\n");
            } else if !sh.config.server.dump_enabled {
                reply.raw(b"ERROR metadump not allowed\r\n");
            } else if reply.queued() > 0 {
                // As memcached: the dump takes the connection over, so
                // replies to earlier requests of the same read would be
                // interleaved with it.
                reply.raw(b"ERROR cannot pipeline other commands before metadump\r\n");
            } else if let Some(mask) = class_list(sh, classes, true) {
                return Action::Dump(Cursor::new(mask));
            } else {
                reply.raw(b"BADCLASS invalid class id\r\n");
            }
        }
    }
    Action::Continue
}

/// `all`, (for metadump) `hash`, or class ids joined by commas. `hash`
/// walks the same items as `all`: every live item once (memcached walks
/// its hash table for it; the order is not part of the reply).
fn class_list(sh: &Shared, arg: &[u8], dump: bool) -> Option<ClassMask> {
    if arg == b"all" || (dump && arg == b"hash") {
        return Some(ALL_CLASSES);
    }
    let mut ids = Vec::new();
    for t in arg.split(|&b| b == b',') {
        ids.push(parse_unsigned(t)?);
        if ids.len() > 256 {
            return None;
        }
    }
    sh.store.class_mask(&ids)
}

/// Appends the next part of a metadump to `out`; true when it is done
/// (the `END` line written).
pub fn metadump_step(sh: &Shared, cur: &mut Cursor, out: &mut Vec<u8>) -> bool {
    let done = sh.store.metadump_step(cur, out, DUMP_STEP);
    if done {
        out.extend_from_slice(b"END\r\n");
    }
    done
}
