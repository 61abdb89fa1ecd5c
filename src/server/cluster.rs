//! Starts the node side of a cluster (`crate::cluster`): the follower
//! thread and, with `--replicas 1`, replication.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{Follower, Replicator};
use crate::state::Shared;

/// Starts following the cluster, and replicating with `--replicas 1`, when
/// the options ask for it; the `cluster-follow` thread polls every
/// `--cluster-poll-ms`. Call once the listeners are bound.
pub fn start(sh: &Arc<Shared>) -> Result<(), String> {
    let c = &sh.config.cluster;
    if c.endpoint.is_none() && c.node_id.is_none() && c.replicas == 0 {
        return Ok(());
    }
    let listen = sh.bound.get().map(|b| b.tcp.clone()).unwrap_or_default();
    let follower = Arc::new(Follower::new(c.endpoint.clone(), c.hash, c.node_id.clone(), listen, c.poll));
    if c.replicas > 0 {
        follower.require_self();
        let r = Arc::new(Replicator::new(sh.store.clock().clone()));
        let installer = r.clone();
        follower.set_on_change(Box::new(move |v| installer.install(v)));
        let _ = sh.replication.set(r);
    }
    let _ = sh.cluster.set(follower.clone());
    let (sh, poll) = (sh.clone(), c.poll);
    std::thread::Builder::new()
        .name("cluster-follow".into())
        .spawn(move || {
            while !sh.stopping.load(Ordering::Relaxed) {
                follower.poll(&sh.discovery);
                let next = Instant::now() + poll;
                while Instant::now() < next && !sh.stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(poll.min(Duration::from_millis(100)));
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("starting the cluster-follow thread: {e}"))
}
