//! Writes the man page and shell completions the Debian package ships,
//! generated from the daemon's own flag definitions (`config::Args`), so
//! they cannot drift from `ferrocache --help`.
//!
//! Usage: `cargo run --example gen-docs -- DIR` writes DIR/ferrocache.1,
//! DIR/ferrocache.bash, DIR/_ferrocache (zsh) and DIR/ferrocache.fish.
//!
//! An example rather than a daemon flag: clap_mangen and clap_complete stay
//! dev-dependencies, out of the daemon's build and binary.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;
use ferrocache::config::Args;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: gen-docs DIR");
        std::process::exit(64);
    };
    std::fs::create_dir_all(&dir)?;
    let cmd = Args::command()
        .version(env!("CARGO_PKG_VERSION"))
        .long_about(
            "ferrocache is a memcached-compatible, multi-threaded cache daemon: memcached 1.6's text, meta \
             and binary protocols with its replies, flags and stats names, plus an auto-discovery \
             configuration endpoint, warm restarts through a snapshot file, and Prometheus metrics.",
        )
        .after_long_help(
            "Under systemd (ferrocache.service) settings live in /etc/default/ferrocache; the cache is \
             snapshotted to /var/lib/ferrocache at stop and loaded at start. SIGHUP re-reads the cluster \
             file; SIGTERM and SIGINT stop after writing the snapshot.",
        );
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).section("1").render(&mut page)?;
    std::fs::write(dir.join("ferrocache.1"), page)?;
    for (shell, name) in
        [(Shell::Bash, "ferrocache.bash"), (Shell::Zsh, "_ferrocache"), (Shell::Fish, "ferrocache.fish")]
    {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), "ferrocache", &mut out);
        std::fs::write(dir.join(name), out)?;
    }
    Ok(())
}
