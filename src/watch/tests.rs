use std::sync::Arc;

use super::*;

fn get(key: &[u8]) -> Event<'_> {
    Event::Get { key, found: None, fd: 5 }
}

#[test]
fn nothing_is_written_while_nobody_watches() {
    let w = Arc::new(Watch::new(2, 1024, 4096));
    assert!(!w.wants(FETCHERS));
    w.log(FETCHERS, &get(b"a"));
    assert_eq!(w.figures(), Figures::default());
}

#[test]
fn a_watcher_gets_its_classes_from_the_time_it_starts_until_it_ends() {
    let w = Arc::new(Watch::new(2, 1024, 4096));
    let mut watcher = w.watch(FETCHERS);
    assert!(w.wants(FETCHERS) && !w.wants(MUTATIONS | EVICTIONS | CONNEVENTS));
    w.log(FETCHERS, &get(b"a"));
    w.log(MUTATIONS, &get(b"not-sent"));
    w.log(FETCHERS, &get(b"b"));
    let mut out = Vec::new();
    watcher.fill(&mut out);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains(" gid=0 type=item_get key=a ") && lines[1].contains(" gid=1 type=item_get key=b "));
    let f = w.figures();
    assert_eq!((f.worker_written, f.watcher_sent, f.watchers), (2, 2, 1));
    drop(watcher);
    assert!(!w.wants(FETCHERS));
    assert_eq!(w.figures().watchers, 0);
}

#[test]
fn a_watcher_stops_at_its_buffer_limit_and_reports_what_it_lost() {
    let w = Arc::new(Watch::new(1, 400, 200));
    let mut watcher = w.watch(FETCHERS);
    for _ in 0..20 {
        w.log(FETCHERS, &get(b"key"));
    }
    let mut out = Vec::new();
    watcher.fill(&mut out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.starts_with("skipped="), "{text}");
    assert!(out.len() < 200 + 100, "one line past the limit at most");
    let f = w.figures();
    assert!(f.watcher_skipped > 0 && f.watcher_sent + f.watcher_skipped <= 20);
}
