//! The admin commands of the text protocol: `slabs reassign|automove`,
//! `lru_crawler enable|disable|crawl|metadump`, `watch` and `snapshot`
//! (ferrocache's own). No I/O.
//!
//! Token counts and error replies follow memcached 1.6's
//! `process_slabs_command`, and `process_lru_crawler_command`: a shape memcached does not know is `ERROR`, a
//! number that does not parse is `CLIENT_ERROR bad command line format`.
//! Class lists (`1,2,3`, `all`, `hash`) are passed on as bytes: which ids
//! exist is the store's to say.

use super::{invalid, Line};
use crate::num::{parse_signed, parse_unsigned};
use crate::protocol::{AdminCommand, ProtocolError, Request};

fn done(cmd: AdminCommand<'_>) -> Line<'_> {
    Line::Done(Request::Admin(cmd))
}

/// `slabs reassign <src> <dst>` | `slabs automove <0|1|2>`.
pub(super) fn slabs<'a>(toks: &[&'a [u8]], n: usize) -> Line<'a> {
    match (n, toks[1]) {
        (4, b"reassign") => {
            let num = |t: &[u8]| parse_signed(t).filter(|v| i32::try_from(*v).is_ok());
            match (num(toks[2]), num(toks[3])) {
                (Some(src), Some(dst)) => done(AdminCommand::SlabsReassign { src, dst }),
                _ => invalid(ProtocolError::BadFormat, false),
            }
        }
        (3.., b"automove") => match parse_unsigned(toks[2]).filter(|v| u32::try_from(*v).is_ok()) {
            None => invalid(ProtocolError::BadFormat, false),
            Some(mode @ 0..=2) => done(AdminCommand::SlabsAutomove { mode: mode as u8 }),
            Some(_) => invalid(ProtocolError::UnknownCommand, false),
        },
        _ => invalid(ProtocolError::UnknownCommand, false),
    }
}

/// `lru_crawler enable|disable` | `lru_crawler crawl|metadump <classes>`.
pub(super) fn lru_crawler<'a>(toks: &[&'a [u8]], n: usize) -> Line<'a> {
    match (n, toks[1]) {
        (2, b"enable") => done(AdminCommand::CrawlerEnable(true)),
        (2, b"disable") => done(AdminCommand::CrawlerEnable(false)),
        (3, b"crawl") => done(AdminCommand::CrawlerCrawl { classes: toks[2] }),
        (3, b"metadump") => done(AdminCommand::CrawlerMetadump { classes: toks[2] }),
        _ => invalid(ProtocolError::UnknownCommand, false),
    }
}

/// `snapshot [NAME]`: a backup of the cache, written by the server.
pub(super) fn snapshot<'a>(toks: &[&'a [u8]], n: usize) -> Line<'a> {
    match n {
        1 => done(AdminCommand::Snapshot { name: None }),
        2 => done(AdminCommand::Snapshot { name: Some(toks[1]) }),
        _ => invalid(ProtocolError::UnknownCommand, false),
    }
}

/// `watch [class ...]`: no class means fetchers, as in memcached; a word
/// that names no class is `ERROR`.
/// memcached tokenizes at most this many words of a command line.
const MAX_WATCH_TOKENS: usize = 24;

/// `watch [class ...]`: reads the whole line, since a watch may name more
/// classes than the other commands' token array holds.
pub(super) fn watch(line: &[u8]) -> Line<'static> {
    use crate::protocol::watch_class::*;
    let words = line.split(|&b| b == b' ').filter(|t| !t.is_empty());
    if words.clone().count() > MAX_WATCH_TOKENS {
        return invalid(ProtocolError::UnknownCommand, false);
    }
    let mut classes = 0;
    let mut named = false;
    for t in words.skip(1) {
        named = true;
        classes |= match t {
            b"fetchers" => FETCHERS,
            b"mutations" => MUTATIONS,
            b"evictions" => EVICTIONS,
            b"connevents" => CONNEVENTS,
            b"sysevents" => SYSEVENTS,
            b"rawcmds" => RAWCMDS,
            b"proxyreqs" | b"proxyevents" | b"proxyuser" => PROXY,
            _ => return invalid(ProtocolError::UnknownCommand, false),
        };
    }
    done(AdminCommand::Watch { classes: if named { classes } else { FETCHERS } })
}

#[cfg(test)]
mod tests {
    use crate::protocol::text::parse;
    use crate::protocol::{watch_class as W, AdminCommand as A, Limits, ParseError, ProtocolError as E, Request as R};

    fn lim() -> Limits {
        Limits { max_value: 1000, max_line: 2048, max_get_line: 4096, strict: false }
    }

    fn cases() -> Vec<(&'static [u8], R<'static>)> {
        let err = |error| R::Invalid { error, noreply: false };
        vec![
            (b"slabs reassign 31 25\r\n", R::Admin(A::SlabsReassign { src: 31, dst: 25 })),
            (b"slabs reassign -1 2\n", R::Admin(A::SlabsReassign { src: -1, dst: 2 })),
            (b"slabs  reassign  1  2 \r\n", R::Admin(A::SlabsReassign { src: 1, dst: 2 })),
            (b"slabs reassign invalid1 invalid2\r\n", err(E::BadFormat)),
            (b"slabs reassign 1 2147483648\r\n", err(E::BadFormat)),
            (b"slabs reassign 1\r\n", err(E::UnknownCommand)),
            (b"slabs reassign 1 2 3\r\n", err(E::UnknownCommand)),
            (b"slabs automove 0\r\n", R::Admin(A::SlabsAutomove { mode: 0 })),
            (b"slabs automove 2\r\n", R::Admin(A::SlabsAutomove { mode: 2 })),
            (b"slabs automove 1 noreply\r\n", R::Admin(A::SlabsAutomove { mode: 1 })),
            (b"slabs automove 3\r\n", err(E::UnknownCommand)),
            (b"slabs automove invalid\r\n", err(E::BadFormat)),
            (b"slabs automove\r\n", err(E::UnknownCommand)),
            (b"slabs\r\n", err(E::UnknownCommand)),
            (b"slabs other 1 2\r\n", err(E::UnknownCommand)),
            (b"lru_crawler enable\r\n", R::Admin(A::CrawlerEnable(true))),
            (b"lru_crawler disable\r\n", R::Admin(A::CrawlerEnable(false))),
            (b"lru_crawler crawl 1,2,3\r\n", R::Admin(A::CrawlerCrawl { classes: b"1,2,3" })),
            (b"lru_crawler crawl all\r\n", R::Admin(A::CrawlerCrawl { classes: b"all" })),
            (b"lru_crawler metadump hash\r\n", R::Admin(A::CrawlerMetadump { classes: b"hash" })),
            (b"lru_crawler metadump all\n", R::Admin(A::CrawlerMetadump { classes: b"all" })),
            (b"lru_crawler enable now\r\n", err(E::UnknownCommand)),
            (b"lru_crawler crawl\r\n", err(E::UnknownCommand)),
            (b"lru_crawler\r\n", err(E::UnknownCommand)),
            (b"snapshot\r\n", R::Admin(A::Snapshot { name: None })),
            (b"snapshot nightly.snap\r\n", R::Admin(A::Snapshot { name: Some(b"nightly.snap") })),
            (b"snapshot a b\r\n", err(E::UnknownCommand)),
            (b"watch\r\n", R::Admin(A::Watch { classes: W::FETCHERS })),
            (b"watch\n", R::Admin(A::Watch { classes: W::FETCHERS })),
            (b"watch mutations\r\n", R::Admin(A::Watch { classes: W::MUTATIONS })),
            (
                b"watch  fetchers mutations evictions connevents \r\n",
                R::Admin(A::Watch { classes: W::FETCHERS | W::MUTATIONS | W::EVICTIONS | W::CONNEVENTS }),
            ),
            (b"watch evictions evictions\r\n", R::Admin(A::Watch { classes: W::EVICTIONS })),
            (b"watch sysevents proxyuser\r\n", R::Admin(A::Watch { classes: W::SYSEVENTS | W::PROXY })),
            (b"watch fetchers bogus\r\n", err(E::UnknownCommand)),
            // More classes than the 8-token array of the other commands.
            (
                b"watch fetchers mutations evictions connevents sysevents rawcmds proxyreqs proxyevents\r\n",
                R::Admin(A::Watch {
                    classes: W::FETCHERS
                        | W::MUTATIONS
                        | W::EVICTIONS
                        | W::CONNEVENTS
                        | W::SYSEVENTS
                        | W::RAWCMDS
                        | W::PROXY,
                }),
            ),
            (b"watch noreply\r\n", err(E::UnknownCommand)),
            (b"watch Fetchers\r\n", err(E::UnknownCommand)),
        ]
    }

    #[test]
    fn admin_commands_parse_as_memcached_reads_them() {
        for (input, want) in cases() {
            let got = parse(input, &lim()).unwrap_or_else(|e| panic!("{:?}: {e:?}", String::from_utf8_lossy(input)));
            assert_eq!(got, (want, input.len()), "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn admin_commands_split_at_every_byte_are_incomplete_until_the_end() {
        for (input, want) in cases() {
            for cut in 0..input.len() {
                assert_eq!(parse(&input[..cut], &lim()), Err(ParseError::Incomplete), "{input:?} cut at {cut}");
            }
            assert_eq!(parse(input, &lim()).unwrap().0, want);
        }
    }
}
