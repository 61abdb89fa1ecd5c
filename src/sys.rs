//! The few operating-system calls std does not wrap: resource usage,
//! signal waiting, dropping privileges, detaching, writing a file back to
//! the disk as it is written. All of the crate's
//! `unsafe` is here, each block with the invariant it relies on.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::time::Duration;

use crate::error::Error;

/// User and system CPU time of this process (`getrusage(RUSAGE_SELF)`).
pub fn rusage() -> (Duration, Duration) {
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct,
    // and getrusage(2) only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (Duration::ZERO, Duration::ZERO);
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Signals the daemon handles itself.
const HANDLED: [libc::c_int; 5] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2];

fn handled_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it;
    // the set is a local plain struct.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in HANDLED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks SIGINT, SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 in the calling thread and every
/// thread it starts afterwards, so that only [`wait_signal`] sees them.
/// Call before starting any thread.
pub fn block_signals() -> io::Result<()> {
    let set = handled_set();
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: shut down.
    Stop,
    /// SIGUSR1: shut down gracefully, keeping the cache for the next start
    /// (`-e`), as memcached does.
    GracefulStop,
    /// SIGHUP: re-read the cluster file (see `discovery`).
    Hangup,
    /// SIGUSR2: write a backup snapshot while serving (see `backup`).
    Snapshot,
}

/// Waits for one of the blocked signals (see [`block_signals`]).
pub fn wait_signal() -> Signal {
    let set = handled_set();
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: `set` is initialised and `sig` is a valid out pointer.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc != 0 {
            continue;
        }
        return match sig {
            libc::SIGHUP => Signal::Hangup,
            libc::SIGUSR1 => Signal::GracefulStop,
            libc::SIGUSR2 => Signal::Snapshot,
            _ => Signal::Stop,
        };
    }
}

/// Whether the process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Switches to `user`'s uid and gid (memcached's `-u`).
pub fn drop_privileges(user: &str) -> Result<(), Error> {
    let no_user = || Error::NoUser(format!("can't find the user {user} to switch to"));
    let name = CString::new(user).map_err(|_| no_user())?;
    // SAFETY: getpwnam(3) reads a NUL-terminated name and returns a pointer
    // to static storage or null; we copy the ids out before any other call.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(no_user());
    }
    // SAFETY: `pw` is non-null and points to a valid passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    // SAFETY: plain syscalls on integer ids; failure is reported by rc.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
            return Err(Error::User(format!("failed to drop supplementary groups: {}", io::Error::last_os_error())));
        }
        if libc::setgid(gid) != 0 {
            return Err(Error::User(format!("failed to assume the group of {user}: {}", io::Error::last_os_error())));
        }
        if libc::setuid(uid) != 0 {
            return Err(Error::User(format!(
                "failed to assume the identity of {user}: {}",
                io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

/// Detaches from the terminal (`-d`). Call before starting any thread.
pub fn daemonize() -> io::Result<()> {
    // SAFETY: daemon(3) forks; we call it before any thread exists, so the
    // child has the whole process state. nochdir=1 keeps relative paths.
    if unsafe { libc::daemon(1, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Locks the process's memory (`-k`): `mlockall` of what is mapped now and
/// of what is mapped later. Under a finite `RLIMIT_MEMLOCK` below `need`
/// bytes (the cache, the threads' stacks and a margin) it locks nothing
/// and says so: with `MCL_FUTURE` in force every later mapping past the
/// limit fails, so the event loops' stacks or the cache's pages could not
/// be mapped, and memcached's behaviour under such a limit is to warn and
/// run on unlocked.
pub fn lock_memory(need: u64) -> io::Result<()> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0
        && lim.rlim_cur != libc::RLIM_INFINITY
        && lim.rlim_cur < need
    {
        return Err(io::Error::other(format!(
            "RLIMIT_MEMLOCK is {} bytes, less than the {need} the cache and its threads would lock",
            lim.rlim_cur
        )));
    }
    // SAFETY: mlockall takes flags only and reports failure through rc.
    if unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the calling thread the lowest scheduling weight (nice 19, this
/// thread only: Linux applies setpriority(2) to a thread id), so a
/// background writer yields the CPU to the event loops whenever they have
/// work but is never starved outright, as SCHED_IDLE could be.
pub fn lower_thread_priority() -> io::Result<()> {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    // SAFETY: setpriority takes plain integers and reports failure through rc.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 19) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the core file size limit to its hard limit (`-r`); the result is
/// the soft limit now in force.
pub fn raise_core_limit() -> io::Result<u64> {
    // SAFETY: an all-zero rlimit is a valid value of the plain C struct.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `rl` is a valid, writable rlimit; RLIMIT_CORE is a valid resource.
    if unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    rl.rlim_cur = rl.rlim_max;
    // SAFETY: `rl` is initialised; setrlimit only reads it.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rl.rlim_cur as u64)
}

/// Appends everything written to stderr from now on to `path`
/// (`logfile` in `--config-file`).
pub fn redirect_stderr(path: &std::path::Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    // SAFETY: both descriptors are open (the file until this function
    // returns, stderr always); dup2 makes fd 2 a second reference to the
    // file, which stays open after `file` is dropped.
    if unsafe { libc::dup2(file.as_raw_fd(), libc::STDERR_FILENO) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Descriptors this process has open, if `/proc` tells.
pub fn open_fds() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// Starts writing `len` bytes at `offset` of `file` back to the disk
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), without waiting for them.
pub fn start_writeback(file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (off, len) = file_range(offset, len)?;
    // SAFETY: sync_file_range takes an open fd and plain integers; a bad
    // range or a file system that cannot do it is reported through rc.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), off, len, libc::SYNC_FILE_RANGE_WRITE) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `len` bytes at `offset` of `file` (0: to its end) back to the
/// disk, waits until they are there, and drops them from the page cache
/// (`posix_fadvise(POSIX_FADV_DONTNEED)`: clean pages only, so after the
/// wait).
pub fn write_back_and_drop(file: &std::fs::File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (off, len) = file_range(offset, len)?;
    let all = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: as in start_writeback.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), off, len, all) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: advice on an open fd with plain integers; it returns an
    // error number rather than setting errno.
    match unsafe { libc::posix_fadvise(file.as_raw_fd(), off, len, libc::POSIX_FADV_DONTNEED) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// A byte range as the file calls take it.
fn file_range(offset: u64, len: u64) -> io::Result<(libc::off64_t, libc::off64_t)> {
    let too_far = |_| io::Error::from(io::ErrorKind::InvalidInput);
    Ok((libc::off64_t::try_from(offset).map_err(too_far)?, libc::off64_t::try_from(len).map_err(too_far)?))
}
