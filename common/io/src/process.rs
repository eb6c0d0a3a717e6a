//! Child processes that never outlive the process that started them.

use std::process::Command;

/// Makes the kernel SIGKILL the child when the thread that spawns it exits (Linux
/// `PR_SET_PDEATHSIG`), so FFmpeg encoders, players and lab children die with their parent
/// even when it is killed without running any destructor. Spawn from a thread that lives as
/// long as the child should (a tokio worker or the main thread). For a tokio command, pass
/// `cmd.as_std_mut()`. Elsewhere than on Linux this does nothing.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child between fork and exec, where only
    // async-signal-safe calls are allowed: it calls prctl(2) and getppid(2) on integers and
    // builds errors from raw errno values, without allocating or taking locks.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before prctl took effect: nobody would kill us later.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Elsewhere than on Linux there is no parent-death signal; the callers' own cleanup applies.
#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut Command) {}
