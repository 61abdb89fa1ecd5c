//! `ferrocache`: parse flags, set up logging, run the server; or
//! `ferrocache restore FILE HOST:PORT` (see `ferrocache::restore`).

use std::process::ExitCode;

use ferrocache::config::Config;
use ferrocache::error::Error;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == "restore") {
        let rest: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
        return ExitCode::from(ferrocache::restore::main(&rest));
    }
    let config = match Config::parse_from(std::env::args_os()) {
        Ok(c) => c,
        Err(Error::Usage(e)) => {
            // --help and --version print and exit 0; bad flags exit 64.
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(64) } else { ExitCode::SUCCESS };
        }
        Err(e) => {
            eprintln!("ferrocache: {e}");
            return ExitCode::from(64);
        }
    };
    if config.license {
        println!(
            "ferrocache {} is licensed under the MIT license or the Apache License 2.0, at your option.",
            env!("CARGO_PKG_VERSION")
        );
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &config.logfile {
        if let Err(e) = ferrocache::sys::redirect_stderr(path) {
            eprintln!("ferrocache: cannot open the log file {}: {e}", path.display());
            return ExitCode::from(73);
        }
    }
    ferrocache::logging::init(config.verbosity);
    for w in &config.warnings {
        log::warn!("{w}");
    }
    if config.print_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    if config.daemon && std::env::var_os("NOTIFY_SOCKET").is_some() {
        // Type=notify: systemd watches this process and waits for its
        // READY=1; a forked child would be neither.
        log::warn!("ignoring -d: started by systemd ($NOTIFY_SOCKET set), staying in the foreground");
    } else if config.daemon {
        if let Err(e) = ferrocache::sys::daemonize() {
            eprintln!("ferrocache: failed to daemonize: {e}");
            return ExitCode::from(71);
        }
    }
    if config.enable_coredumps {
        match ferrocache::sys::raise_core_limit() {
            Ok(limit) => log::info!("core file limit raised to {limit}"),
            Err(e) => log::warn!("-r: failed to raise the core file limit: {e}"),
        }
    }
    if let Some(path) = &config.pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            eprintln!("ferrocache: cannot write pid file {}: {e}", path.display());
            return ExitCode::from(73);
        }
    }
    let pidfile = config.pidfile.clone();
    let result = ferrocache::server::run(config);
    if let Some(path) = pidfile {
        let _ = std::fs::remove_file(path);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("ferrocache: {e}");
            // memcached's statuses: EX_USAGE, EX_NOUSER, else EX_OSERR.
            ExitCode::from(match e {
                Error::Tls(_) => 64,
                Error::NoUser(_) => 67,
                _ => 71,
            })
        }
    }
}
