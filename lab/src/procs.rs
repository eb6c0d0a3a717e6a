//! A process supervisor for one lab run: start processes with their output in log files, record
//! them so a crashed lab's leftovers can be cleaned up later, and stop them all on drop.
//!
//! # Files
//!
//! ```text
//! runs/                        the runs root (any directory)
//!   .active                    one absolute run dir per line: runs whose lab may still be alive
//!   .active.lock               lock file serialising updates of .active
//!   demo-20261121-143000/      one run dir (RunDir)
//!     pids.json                the lab and every process it started (PidsFile)
//!     logs/<id>.log            stdout and stderr of process <id>
//!     stats/<id>.json          stats files the processes are told to write
//! ```
//!
//! # Safety against killing the wrong process
//!
//! PIDs are reused. [`cleanup_stale`] signals a recorded PID only while `/proc/PID/cmdline`
//! still equals the recorded command line (and, when recorded, the kernel start time still
//! matches); otherwise it leaves the process alone. [`Procs`] signals only children it has not
//! yet reaped, whose PIDs cannot have been reused.
//!
//! # Lifetimes
//!
//! Every child gets `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the lab even under `kill -9`.
//! The kernel sends that signal when the *thread* that spawned the child exits, so spawn from a
//! thread that lives as long as the children (the main thread, or a current-thread runtime).
//! Every child leads its own process group; stopping a child signals the whole group, so helpers
//! it started (FFmpeg, a player) go with it.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long a process gets between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(3);

/// How often the wait helpers re-check their condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long to wait for a SIGKILLed process to become a zombie before giving up on it.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Name of the file in a runs root listing run dirs whose lab may still be alive.
pub const ACTIVE_FILE: &str = ".active";

/// Name of the file in a run dir recording the lab and its processes.
pub const PIDS_FILE: &str = "pids.json";

/// What went wrong while supervising processes.
#[derive(Debug, thiserror::Error)]
pub enum ProcsError {
    /// A file or directory operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, such as "create run dir".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// A process could not be started.
    #[error("cannot start {id} ({program}): {source}")]
    Spawn {
        /// The id it was to run under.
        id: String,
        /// The program that failed to start.
        program: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A process with this id is already running in this run.
    #[error("a process with id {0:?} is already running")]
    DuplicateId(String),
    /// No process with this id was started in this run.
    #[error("no process with id {0:?} in this run")]
    UnknownId(String),
    /// Sending a signal failed.
    #[error("cannot send {signal:?} to {id} (pid {pid}): {source}")]
    Signal {
        /// The process id in the run.
        id: String,
        /// Its PID.
        pid: u32,
        /// The signal.
        signal: Signal,
        /// Why it failed.
        source: io::Error,
    },
    /// A meshcast binary was not found.
    #[error(
        "cannot find {name} (looked in {}); build it with `cargo build --bins` or set MESHCAST_BIN_DIR",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    BinaryNotFound {
        /// The binary's file name.
        name: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ProcsError + 'a {
    move |source| ProcsError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The signals the lab sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: please stop.
    Term,
    /// SIGKILL: stop now (a crash, as far as the peers can tell).
    Kill,
    /// SIGINT: as Ctrl-C would.
    Int,
    /// SIGSTOP: freeze (a hung process, as far as the peers can tell).
    Stop,
    /// SIGCONT: resume after [`Signal::Stop`].
    Cont,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Int => libc::SIGINT,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Run directories

/// The directory of one run: `logs/`, `stats/`, `pids.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunDir {
    /// Absolute path of the run dir.
    path: PathBuf,
    /// Absolute path of the runs root holding `.active`.
    runs_root: PathBuf,
}

impl RunDir {
    /// Creates `<runs_root>/<name>-<YYYYmmdd-HHMMSS>/` (UTC; `-2`, `-3`… appended if taken)
    /// with `logs/` and `stats/` inside. Characters of `name` outside `[A-Za-z0-9_.-]` become `_`.
    pub fn create(runs_root: &Path, name: &str) -> Result<RunDir, ProcsError> {
        let runs_root = absolute(runs_root)?;
        fs::create_dir_all(&runs_root).map_err(io_err("create runs root", &runs_root))?;
        let base = format!("{}-{}", sanitize(name), utc_stamp(SystemTime::now()));
        let mut attempt = 1;
        loop {
            let leaf = if attempt == 1 {
                base.clone()
            } else {
                format!("{base}-{attempt}")
            };
            let path = runs_root.join(leaf);
            match fs::create_dir(&path) {
                Ok(()) => return RunDir::populate(runs_root, path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 1000 => {
                    attempt += 1;
                }
                Err(e) => return Err(io_err("create run dir", &path)(e)),
            }
        }
    }

    /// Uses `path` (created if missing) as the run dir; `runs_root` holds `.active`.
    pub fn at(runs_root: &Path, path: &Path) -> Result<RunDir, ProcsError> {
        let runs_root = absolute(runs_root)?;
        let path = absolute(path)?;
        fs::create_dir_all(&path).map_err(io_err("create run dir", &path))?;
        RunDir::populate(runs_root, path)
    }

    fn populate(runs_root: PathBuf, path: PathBuf) -> Result<RunDir, ProcsError> {
        let run = RunDir { path, runs_root };
        for dir in [run.logs_dir(), run.stats_dir()] {
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        Ok(run)
    }

    /// The run dir (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The runs root holding `.active` (absolute).
    pub fn runs_root(&self) -> &Path {
        &self.runs_root
    }

    /// `logs/`.
    pub fn logs_dir(&self) -> PathBuf {
        self.path.join("logs")
    }

    /// `stats/`.
    pub fn stats_dir(&self) -> PathBuf {
        self.path.join("stats")
    }

    /// `logs/<id>.log`: stdout and stderr of process `id`.
    pub fn log_file(&self, id: &str) -> PathBuf {
        self.logs_dir().join(format!("{id}.log"))
    }

    /// `stats/<id>.json`: where process `id` is told to write its stats.
    pub fn stats_file(&self, id: &str) -> PathBuf {
        self.stats_dir().join(format!("{id}.json"))
    }

    /// `pids.json`.
    pub fn pids_file(&self) -> PathBuf {
        self.path.join(PIDS_FILE)
    }
}

fn absolute(path: &Path) -> Result<PathBuf, ProcsError> {
    std::path::absolute(path).map_err(io_err("resolve path", path))
}

fn sanitize(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() || cleaned.starts_with('.') {
        format!("run{cleaned}")
    } else {
        cleaned
    }
}

/// `YYYYmmdd-HHMMSS` of `time` in UTC.
pub fn utc_stamp(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (eras of 400 years are 146 097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Shift the epoch to 0000-03-01 so that leap days fall at the end of a year.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------------------------
// Records

/// `pids.json`: who supervises the run and what it started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PidsFile {
    /// The supervising lab process. While it is alive the run is not stale.
    pub lab: ProcRecord,
    /// Every process started in the run, in start order.
    pub processes: Vec<ProcRecord>,
}

/// One process as recorded in `pids.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcRecord {
    /// Its PID.
    pub pid: u32,
    /// Its id in the run, such as `n1`.
    pub id: String,
    /// Its role, such as `node` or `client`.
    pub role: String,
    /// `argv` as started; must equal `/proc/PID/cmdline` before the PID is signalled.
    pub cmdline: Vec<String>,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    /// Kernel start time (`/proc/PID/stat` field 22); if present it must match too.
    #[serde(default)]
    pub start_ticks: Option<u64>,
    /// How it ended, once the lab reaped it; such processes are never signalled again.
    #[serde(default)]
    pub exit: Option<String>,
}

impl ProcRecord {
    /// Whether the process recorded here is still the one running under `pid`: alive, not a
    /// zombie, same command line and (if recorded) same kernel start time.
    pub fn is_still_running(&self) -> bool {
        let Some(stat) = proc_stat(self.pid) else {
            return false;
        };
        if stat.is_dead() {
            return false;
        }
        if self
            .start_ticks
            .is_some_and(|ticks| ticks != stat.start_ticks)
        {
            return false;
        }
        proc_cmdline(self.pid).is_some_and(|cmdline| {
            cmdline == self.cmdline || cmdline.as_slice() == without_netns_exec(&self.cmdline)
        })
    }
}

/// `ip netns exec NS PROGRAM ARGS…` execs PROGRAM in place, so the process's own command line
/// is the recorded one without its first four words.
fn without_netns_exec(cmdline: &[String]) -> &[String] {
    match cmdline {
        [ip, netns, exec, _ns, rest @ ..]
            if ip.rsplit('/').next() == Some("ip") && netns == "netns" && exec == "exec" =>
        {
            rest
        }
        _ => cmdline,
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

fn own_record() -> ProcRecord {
    let pid = std::process::id();
    ProcRecord {
        pid,
        id: "lab".to_owned(),
        role: "lab".to_owned(),
        cmdline: proc_cmdline(pid).unwrap_or_default(),
        started_unix_ms: unix_ms(SystemTime::now()),
        start_ticks: proc_stat(pid).map(|stat| stat.start_ticks),
        exit: None,
    }
}

fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), ProcsError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| io_err("serialise", path)(io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, text + "\n").map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename into", path))
}

/// Reads a `pids.json`.
pub fn read_pids_file(path: &Path) -> Result<PidsFile, ProcsError> {
    let text = fs::read_to_string(path).map_err(io_err("read", path))?;
    serde_json::from_str(&text).map_err(|e| io_err("parse", path)(io::Error::other(e)))
}

// ---------------------------------------------------------------------------------------------
// The .active registry

/// Runs `f` on the run dirs listed in `<runs_root>/.active` under an exclusive lock, writing
/// back what it returns.
fn update_active<R>(
    runs_root: &Path,
    f: impl FnOnce(&mut Vec<PathBuf>) -> R,
) -> Result<R, ProcsError> {
    fs::create_dir_all(runs_root).map_err(io_err("create runs root", runs_root))?;
    let lock_path = runs_root.join(format!("{ACTIVE_FILE}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err("open", &lock_path))?;
    lock.lock().map_err(io_err("lock", &lock_path))?;
    let path = runs_root.join(ACTIVE_FILE);
    let mut dirs = read_active(runs_root)?;
    let result = f(&mut dirs);
    let mut text = String::new();
    for dir in &dirs {
        text.push_str(&dir.display().to_string());
        text.push('\n');
    }
    let tmp = runs_root.join(format!("{ACTIVE_FILE}.tmp"));
    fs::write(&tmp, text).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, &path).map_err(io_err("rename into", &path))?;
    drop(lock);
    Ok(result)
}

/// The run dirs listed in `<runs_root>/.active` (empty if there is no such file).
pub fn read_active(runs_root: &Path) -> Result<Vec<PathBuf>, ProcsError> {
    let path = runs_root.join(ACTIVE_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(PathBuf::from)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err("read", &path)(e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Cleaning up after crashed labs

/// What [`cleanup_stale`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CleanupReport {
    /// Run dirs whose lab was gone; removed from `.active`.
    pub stale_runs: Vec<PathBuf>,
    /// Run dirs left alone because their lab is still alive.
    pub live_runs: Vec<PathBuf>,
    /// Processes of stale runs that were still running and were stopped.
    pub killed: Vec<ProcRecord>,
    /// Processes of stale runs whose PID now belongs to another program; left alone.
    pub spared: Vec<ProcRecord>,
}

/// Stops the leftovers of crashed labs under `runs_root`.
///
/// For each run dir in `.active` whose lab (recorded in its `pids.json`) is no longer running,
/// every recorded process still running with its recorded command line gets SIGTERM, then
/// SIGKILL after [`TERM_GRACE`]; the run dir is then dropped from `.active`. Run dirs whose lab
/// is alive are left alone, and so is any PID now running a different command line.
pub fn cleanup_stale(runs_root: &Path) -> Result<CleanupReport, ProcsError> {
    let runs_root = absolute(runs_root)?;
    update_active(&runs_root, |dirs| {
        let mut report = CleanupReport::default();
        let mut victims = Vec::new();
        dirs.retain(|dir| {
            let Ok(pids) = read_pids_file(&dir.join(PIDS_FILE)) else {
                // No readable record: nothing we could safely kill.
                report.stale_runs.push(dir.clone());
                return false;
            };
            // A lab that is still running (this one included) owns its run.
            if pids.lab.is_still_running() {
                report.live_runs.push(dir.clone());
                return true;
            }
            report.stale_runs.push(dir.clone());
            for record in pids.processes {
                if record.exit.is_some() {
                    continue;
                }
                if record.is_still_running() {
                    victims.push(record);
                } else if proc_stat(record.pid).is_some_and(|stat| !stat.is_dead()) {
                    report.spared.push(record);
                }
            }
            false
        });
        stop_records(&victims);
        report.killed = victims;
        report
    })
}

/// SIGTERM, wait up to [`TERM_GRACE`], SIGKILL; re-checking the identity before each signal.
fn stop_records(records: &[ProcRecord]) {
    let signal_all = |signal: libc::c_int| {
        for record in records {
            if record.is_still_running() {
                let pid = record.pid as libc::pid_t;
                let leads_group = proc_stat(record.pid).is_some_and(|stat| stat.pgrp == pid);
                let target = if leads_group { -pid } else { pid };
                let _ = send_signal(target, signal);
            }
        }
    };
    let all_stopped = || records.iter().all(|r| !r.is_still_running());
    signal_all(libc::SIGTERM);
    if !wait_for(all_stopped, Instant::now() + TERM_GRACE) {
        signal_all(libc::SIGKILL);
        wait_for(all_stopped, Instant::now() + KILL_GRACE);
    }
}

// ---------------------------------------------------------------------------------------------
// The supervisor

/// A process that has exited.
#[derive(Clone, Debug)]
pub struct Exited {
    /// Its id in the run.
    pub id: String,
    /// Its role.
    pub role: String,
    /// Its PID (now free).
    pub pid: u32,
    /// How it ended.
    pub status: ExitStatus,
    /// Its log file.
    pub log: PathBuf,
}

/// A process of the run as [`Procs::list`] shows it.
#[derive(Clone, Debug)]
pub struct ProcInfo {
    /// Its id in the run.
    pub id: String,
    /// Its role.
    pub role: String,
    /// Its PID.
    pub pid: u32,
    /// `argv` as started.
    pub cmdline: Vec<String>,
    /// Its log file.
    pub log: PathBuf,
    /// How it ended, if it has.
    pub status: Option<ExitStatus>,
}

#[derive(Debug)]
struct Entry {
    record: ProcRecord,
    log: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
    /// Whether the exit has been handed out by `poll_exits` or a stop call.
    reported: bool,
}

impl Entry {
    fn running(&self) -> bool {
        self.status.is_none()
    }

    fn pid(&self) -> libc::pid_t {
        self.record.pid as libc::pid_t
    }

    /// Whether the child has exited or is exiting (its main thread may be a zombie while other
    /// threads still run); only [`Entry::try_reap`] tells when it is gone.
    fn has_exited(&self) -> bool {
        proc_stat(self.record.pid).is_none_or(|stat| stat.is_dead())
    }

    fn signal_group(&self, signal: libc::c_int) {
        // The child is not reaped yet, so its PID (and group id) cannot have been reused.
        if self.running() {
            let _ = send_signal(-self.pid(), signal);
        }
    }

    /// Reaps the child if it has exited; SIGKILLs what is left of its group first. `None` while
    /// it runs or is still exiting.
    fn try_reap(&mut self) -> Option<ExitStatus> {
        if !self.running() {
            return self.status;
        }
        if !self.has_exited() {
            return None;
        }
        self.signal_group(libc::SIGKILL);
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.status = Some(status);
                self.record.exit = Some(status.to_string());
                Some(status)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(
                    "cannot wait for {} (pid {}): {e}",
                    self.record.id,
                    self.pid()
                );
                None
            }
        }
    }

    fn exited(&mut self) -> Option<Exited> {
        let status = self.status?;
        if self.reported {
            return None;
        }
        self.reported = true;
        Some(Exited {
            id: self.record.id.clone(),
            role: self.record.role.clone(),
            pid: self.record.pid,
            status,
            log: self.log.clone(),
        })
    }
}

/// The processes of one run. Dropping it stops them all (see [`Procs::stop_all`]).
#[derive(Debug)]
pub struct Procs {
    run: RunDir,
    lab: ProcRecord,
    entries: Vec<Entry>,
    /// Whether the run dir is listed in `.active`.
    registered: bool,
}

impl Procs {
    /// Supervises processes of `run`: writes `pids.json` and lists the run dir in `.active`.
    pub fn new(run: RunDir) -> Result<Procs, ProcsError> {
        let mut procs = Procs {
            run,
            lab: own_record(),
            entries: Vec::new(),
            registered: false,
        };
        procs.write_pids()?;
        let dir = procs.run.path.clone();
        update_active(&procs.run.runs_root, |dirs| {
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        })?;
        procs.registered = true;
        Ok(procs)
    }

    /// The run dir.
    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// Starts `command` as process `id` with stdin from `/dev/null` and stdout and stderr
    /// appended to `logs/<id>.log`, in its own process group, killed if the lab dies. Returns its
    /// PID. `id` may be reused once its previous process has exited (a restart).
    ///
    /// Call from a thread that outlives the process (see the module docs).
    pub fn spawn(&mut self, id: &str, role: &str, mut command: Command) -> Result<u32, ProcsError> {
        if self
            .entries
            .iter()
            .any(|e| e.record.id == id && e.running())
        {
            return Err(ProcsError::DuplicateId(id.to_owned()));
        }
        let cmdline: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect();
        let log = self.run.log_file(id);
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io_err("open log file", &log))?;
        let started = SystemTime::now();
        writeln!(
            out,
            "=== meshcast-lab {}: starting {id} ({role}): {}",
            utc_stamp(started),
            shell_words(&cmdline)
        )
        .map_err(io_err("write log file", &log))?;
        let err = out
            .try_clone()
            .map_err(io_err("duplicate log file", &log))?;
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        meshcast_io::process::die_with_parent(&mut command);
        let child = command.spawn().map_err(|source| ProcsError::Spawn {
            id: id.to_owned(),
            program: command.get_program().to_string_lossy().into_owned(),
            source,
        })?;
        let pid = child.id();
        let record = ProcRecord {
            pid,
            id: id.to_owned(),
            role: role.to_owned(),
            cmdline,
            started_unix_ms: unix_ms(started),
            start_ticks: proc_stat(pid).map(|stat| stat.start_ticks),
            exit: None,
        };
        tracing::debug!("started {id} ({role}) pid {pid}");
        self.entries.push(Entry {
            record,
            log,
            child,
            status: None,
            reported: false,
        });
        self.write_pids()?;
        Ok(pid)
    }

    /// Every process started so far, in start order (restarts appear once per start).
    pub fn list(&self) -> Vec<ProcInfo> {
        self.entries
            .iter()
            .map(|e| ProcInfo {
                id: e.record.id.clone(),
                role: e.record.role.clone(),
                pid: e.record.pid,
                cmdline: e.record.cmdline.clone(),
                log: e.log.clone(),
                status: e.status,
            })
            .collect()
    }

    /// The PID of the latest process started as `id`.
    pub fn pid(&self, id: &str) -> Option<u32> {
        self.latest(id).map(|i| self.entries[i].record.pid)
    }

    /// Whether the latest process started as `id` is still running (not yet reaped).
    pub fn is_running(&mut self, id: &str) -> bool {
        self.refresh();
        self.latest(id).is_some_and(|i| self.entries[i].running())
    }

    /// How the latest process started as `id` ended, if it has.
    pub fn status(&mut self, id: &str) -> Option<ExitStatus> {
        self.refresh();
        self.latest(id).and_then(|i| self.entries[i].status)
    }

    /// Processes that exited since the last call (or stop call), reaped.
    pub fn poll_exits(&mut self) -> Vec<Exited> {
        self.refresh();
        self.entries.iter_mut().filter_map(Entry::exited).collect()
    }

    /// Sends `signal` to process `id` only (not its group), such as [`Signal::Kill`] to
    /// simulate a crash or [`Signal::Stop`] to freeze it.
    pub fn signal(&mut self, id: &str, signal: Signal) -> Result<(), ProcsError> {
        self.refresh();
        let index = self
            .latest(id)
            .ok_or_else(|| ProcsError::UnknownId(id.to_owned()))?;
        let entry = &self.entries[index];
        if !entry.running() {
            return Err(ProcsError::Signal {
                id: id.to_owned(),
                pid: entry.record.pid,
                signal,
                source: io::Error::from_raw_os_error(libc::ESRCH),
            });
        }
        send_signal(entry.pid(), signal.number()).map_err(|source| ProcsError::Signal {
            id: id.to_owned(),
            pid: entry.record.pid,
            signal,
            source,
        })
    }

    /// Stops process `id` (SIGTERM to its group, SIGKILL after [`TERM_GRACE`]) and returns how
    /// it ended.
    pub fn stop(&mut self, id: &str) -> Result<ExitStatus, ProcsError> {
        let index = self
            .latest(id)
            .ok_or_else(|| ProcsError::UnknownId(id.to_owned()))?;
        self.stop_indices(&[index]);
        let entry = &mut self.entries[index];
        entry.reported = true;
        entry.status.ok_or_else(|| ProcsError::Signal {
            id: id.to_owned(),
            pid: entry.record.pid,
            signal: Signal::Kill,
            source: io::Error::from(io::ErrorKind::TimedOut),
        })
    }

    /// Stops every running process of `role` in parallel; returns the exits not reported before.
    pub fn stop_role(&mut self, role: &str) -> Vec<Exited> {
        let indices: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].record.role == role)
            .collect();
        self.stop_indices(&indices);
        indices
            .into_iter()
            .filter_map(|i| self.entries[i].exited())
            .collect()
    }

    /// Stops every running process in parallel (SIGTERM to each group in reverse start order,
    /// SIGKILL after [`TERM_GRACE`]), reaps them, and drops the run from `.active`. Returns the
    /// exits not reported before. Dropping `Procs` does the same.
    pub fn stop_all(&mut self) -> Vec<Exited> {
        let indices: Vec<usize> = (0..self.entries.len()).rev().collect();
        self.stop_indices(&indices);
        if self.registered {
            let dir = self.run.path.clone();
            match update_active(&self.run.runs_root, |dirs| dirs.retain(|d| *d != dir)) {
                Ok(()) => self.registered = false,
                Err(e) => tracing::warn!("{e}"),
            }
        }
        self.entries.iter_mut().filter_map(Entry::exited).collect()
    }

    fn latest(&self, id: &str) -> Option<usize> {
        self.entries.iter().rposition(|e| e.record.id == id)
    }

    /// Reaps whatever has exited and records it in `pids.json`.
    fn refresh(&mut self) {
        let mut changed = false;
        for entry in self.entries.iter_mut().filter(|e| e.running()) {
            changed |= entry.try_reap().is_some();
        }
        if changed && let Err(e) = self.write_pids() {
            tracing::warn!("{e}");
        }
    }

    fn stop_indices(&mut self, indices: &[usize]) {
        self.refresh();
        let running: Vec<usize> = indices
            .iter()
            .copied()
            .filter(|&i| self.entries[i].running())
            .collect();
        if running.is_empty() {
            return;
        }
        for &i in &running {
            self.entries[i].signal_group(libc::SIGTERM);
        }
        let all_exited = |entries: &[Entry]| running.iter().all(|&i| entries[i].has_exited());
        if !wait_for(|| all_exited(&self.entries), Instant::now() + TERM_GRACE) {
            for &i in &running {
                if !self.entries[i].has_exited() {
                    tracing::warn!(
                        "{} (pid {}) ignored SIGTERM for {TERM_GRACE:?}; sending SIGKILL",
                        self.entries[i].record.id,
                        self.entries[i].record.pid
                    );
                    self.entries[i].signal_group(libc::SIGKILL);
                }
            }
        }
        // A multi-threaded process shows as a zombie as soon as its main thread is gone, while
        // its other threads may still be exiting: keep reaping until waitpid reports each one.
        let entries = &mut self.entries;
        let reaped = wait_for(
            || running.iter().all(|&i| entries[i].try_reap().is_some()),
            Instant::now() + KILL_GRACE,
        );
        if !reaped {
            for &i in running.iter().filter(|&&i| self.entries[i].running()) {
                tracing::warn!(
                    "{} (pid {}) did not exit even after SIGKILL",
                    self.entries[i].record.id,
                    self.entries[i].record.pid
                );
            }
        }
        if let Err(e) = self.write_pids() {
            tracing::warn!("{e}");
        }
    }

    fn write_pids(&self) -> Result<(), ProcsError> {
        let file = PidsFile {
            lab: self.lab.clone(),
            processes: self.entries.iter().map(|e| e.record.clone()).collect(),
        };
        write_json_atomic(&self.run.pids_file(), &file)
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// `argv` as a shell would need it typed, for logs.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:,=@+%".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `cond` until it holds (true) or `deadline` passes (false, after one last check).
pub fn wait_for(mut cond: impl FnMut() -> bool, deadline: Instant) -> bool {
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// Waits until `path` exists and is not empty; false if `deadline` passes first.
pub fn wait_for_file(path: &Path, deadline: Instant) -> bool {
    wait_for(
        || fs::metadata(path).is_ok_and(|meta| meta.len() > 0),
        deadline,
    )
}

/// The last `max_lines` lines of the file at `path` (reading at most its last 64 KiB); empty
/// if it cannot be read.
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    const MAX_BYTES: u64 = 64 * 1024;
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |meta| meta.len());
    if len > MAX_BYTES && file.seek(SeekFrom::Start(len - MAX_BYTES)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Binaries

/// Finds the meshcast binary `name`: in `$MESHCAST_BIN_DIR` if set, else next to the running
/// executable, else one directory up (test executables live in `target/<profile>/deps/`).
pub fn locate_binary(name: &str) -> Result<PathBuf, ProcsError> {
    let searched = binary_dirs();
    searched
        .iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| ProcsError::BinaryNotFound {
            name: name.to_owned(),
            searched,
        })
}

fn binary_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os("MESHCAST_BIN_DIR").filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        dirs.push(dir.to_owned());
        if dir.file_name() == Some(OsStr::new("deps"))
            && let Some(up) = dir.parent()
        {
            dirs.push(up.to_owned());
        }
    }
    dirs
}

// ---------------------------------------------------------------------------------------------
// /proc and signals

/// The fields of `/proc/PID/stat` the supervisor needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProcStat {
    state: char,
    pgrp: libc::pid_t,
    start_ticks: u64,
}

impl ProcStat {
    /// Zombie or dead: exited, whether or not reaped.
    fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `/proc/PID/stat`; the command name in parentheses may itself hold spaces and `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let after_comm = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // fields[0] is field 3 of proc(5) (state), so field n is fields[n - 3].
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// `/proc/PID/cmdline` split at NULs; `None` if the process does not exist.
fn proc_cmdline(pid: u32) -> Option<Vec<String>> {
    let bytes = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    Some(
        bytes
            .split(|&b| b == 0)
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

/// `kill(2)`, refusing the targets that would hit more than one known process or group
/// (0, -1, ±1) and the lab itself.
#[allow(unsafe_code)]
fn send_signal(target: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    let own = std::process::id() as libc::pid_t;
    if matches!(target, -1..=1) || target == i32::MIN || target.abs() == own {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill(2) takes two integers and touches none of our memory.
    let rc = unsafe { libc::kill(target, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Describes an exit status for people: `exit code 3`, `killed by SIGKILL`.
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(signal) => format!("killed by {}", signal_name(signal)),
        None => status.to_string(),
    }
}

fn signal_name(signal: libc::c_int) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::without_netns_exec;

    #[test]
    fn a_process_started_in_a_namespace_is_recognised_by_its_own_command_line() {
        let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        let recorded = words("ip netns exec mc1a2b-n1 /bin/meshcast-node --id n1");
        assert_eq!(
            without_netns_exec(&recorded),
            &words("/bin/meshcast-node --id n1")[..]
        );
        let plain = words("/bin/meshcast-node --id n1");
        assert_eq!(without_netns_exec(&plain), &plain[..]);
    }

    use super::*;

    #[test]
    fn utc_stamp_formats_known_instants() {
        let at = |secs| utc_stamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "19700101-000000");
        assert_eq!(at(951_782_400), "20000229-000000");
        assert_eq!(at(1_700_000_000), "20231114-221320");
        assert_eq!(at(4_107_542_399), "21000228-235959");
    }

    #[test]
    fn civil_dates_round_trip_over_leap_years() {
        // Walk day by day through 1970..2101 and check the calendar never skips or repeats.
        let mut expected = (1970, 1, 1);
        for days in 0..47_847 {
            assert_eq!(civil_from_days(days), expected, "day {days}");
            let (y, m, d) = expected;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let month_len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expected = if d < month_len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn stat_parsing_survives_parentheses_in_the_command_name() {
        let line = "4242 (we ird) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 100 18446744073709551615";
        let stat = parse_stat(line).expect("parses");
        assert_eq!(
            stat,
            ProcStat {
                state: 'S',
                pgrp: 4242,
                start_ticks: 987_654
            }
        );
        assert!(!stat.is_dead());
        assert!(parse_stat("12 (short) Z 1").is_none());
    }

    #[test]
    fn names_are_sanitised_for_directories() {
        assert_eq!(sanitize("demo"), "demo");
        assert_eq!(sanitize("grid 4x4/a"), "grid_4x4_a");
        assert_eq!(sanitize(""), "run");
        assert_eq!(sanitize(".."), "run..");
    }

    #[test]
    fn shell_words_quotes_only_what_needs_it() {
        let argv = ["sh", "-c", "echo 'hi' there", "a=b"].map(String::from);
        assert_eq!(shell_words(&argv), r"sh -c 'echo '\''hi'\'' there' a=b");
    }

    #[test]
    fn send_signal_refuses_broadcast_targets() {
        for target in [0, 1, -1, std::process::id() as libc::pid_t] {
            assert_eq!(
                send_signal(target, 0).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
    }
}
