//! Storage outcomes to counters and reply statuses, once for every command
//! that produces them: classic text, binary and meta commands call the same
//! function, so a counter or a reply cannot drift between them. Each
//! function counts what memcached counts for that outcome and names the
//! [`Status`]; the caller writes it in its own form ([`meta_code`] for meta
//! commands).

use crate::protocol::{MetaCode, Status};
use crate::stats::WorkerStats;
use crate::storage::{DeleteOutcome, DeltaOutcome, StoreMode, StoreOutcome};

/// A lookup (get, gat, touch, mg): `cmd_get`/`get_*`, or `cmd_touch`/
/// `touch_*` when it also set the exptime.
pub(super) fn looked_up(w: &WorkerStats, touching: bool, hit: bool) {
    let (cmd, hits, misses) = if touching {
        (&w.cmd_touch, &w.touch_hits, &w.touch_misses)
    } else {
        (&w.cmd_get, &w.get_hits, &w.get_misses)
    };
    cmd.incr();
    if hit {
        hits.incr()
    } else {
        misses.incr()
    }
}

/// A storage command's outcome. `cmd_set` counts it unless no item could
/// be made for it (too large, out of memory), as memcached's, whose
/// `cmd_set` is the sum of its classes' counts of items read in. A
/// compare-and-swap also counts in `cas_*`.
pub(super) fn stored(w: &WorkerStats, mode: StoreMode, outcome: StoreOutcome) -> Status {
    if !matches!(outcome, StoreOutcome::TooLarge | StoreOutcome::OutOfMemory) {
        w.cmd_set.incr();
    }
    if matches!(mode, StoreMode::Cas(_) | StoreMode::CasInvalidate(_)) {
        match outcome {
            StoreOutcome::Stored => w.cas_hits.incr(),
            StoreOutcome::Exists => w.cas_badval.incr(),
            StoreOutcome::NotFound => w.cas_misses.incr(),
            _ => {}
        }
    }
    match outcome {
        StoreOutcome::Stored => Status::Stored,
        StoreOutcome::NotStored => Status::NotStored,
        StoreOutcome::Exists => Status::Exists,
        StoreOutcome::NotFound => Status::NotFound,
        StoreOutcome::TooLarge => {
            w.store_too_large.incr();
            Status::TooLarge
        }
        StoreOutcome::OutOfMemory => {
            w.store_no_memory.incr();
            Status::OutOfMemory
        }
    }
}

/// A delete's outcome. A CAS mismatch is neither a hit nor a miss, as in
/// memcached's binary delete.
pub(super) fn deleted(w: &WorkerStats, outcome: DeleteOutcome) -> Status {
    match outcome {
        DeleteOutcome::Deleted => {
            w.delete_hits.incr();
            Status::Deleted
        }
        DeleteOutcome::NotFound => {
            w.delete_misses.incr();
            Status::NotFound
        }
        DeleteOutcome::Exists => Status::Exists,
    }
}

/// An incr/decr's outcome: the new value, its CAS and exptime, or the
/// status to reply with.
pub(super) fn delta(w: &WorkerStats, incr: bool, outcome: DeltaOutcome) -> Result<(u64, u64, u32), Status> {
    let (hits, misses) = if incr { (&w.incr_hits, &w.incr_misses) } else { (&w.decr_hits, &w.decr_misses) };
    match outcome {
        DeltaOutcome::Value(v, cas, exptime) => {
            hits.incr();
            Ok((v, cas, exptime))
        }
        DeltaOutcome::NotFound => {
            misses.incr();
            Err(Status::NotFound)
        }
        DeltaOutcome::NonNumeric => Err(Status::NonNumeric),
        DeltaOutcome::Exists => Err(Status::Exists),
        DeltaOutcome::OutOfMemory => Err(Status::DeltaOutOfMemory),
    }
}

/// The meta reply code for a status, where meta commands have one; the
/// other statuses (errors) are sent as the classic error lines.
pub(super) fn meta_code(status: Status) -> Option<MetaCode> {
    match status {
        Status::Stored | Status::Deleted => Some(MetaCode::Hd),
        Status::NotStored => Some(MetaCode::Ns),
        Status::Exists => Some(MetaCode::Ex),
        Status::NotFound => Some(MetaCode::Nf),
        _ => None,
    }
}
