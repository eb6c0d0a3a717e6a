//! The supervisor with real processes (`sleep`, `sh`, `perl`), and the `meshcast-lab` binary
//! driven against fake meshcast binaries. Nothing here needs the real meshcast binaries.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use meshcast_lab::procs::{
    self, PidsFile, ProcRecord, Procs, ProcsError, RunDir, Signal, read_active, read_pids_file,
    wait_for, wait_for_file,
};

const LAB: &str = env!("CARGO_BIN_EXE_meshcast-lab");

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("lab-tests")
        .join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether no live process has this PID (gone, or a zombie nobody reaped yet).
fn is_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let after = &stat[stat.rfind(')').unwrap() + 1..];
            matches!(after.trim_start().chars().next(), Some('Z' | 'X'))
        }
    }
}

/// A child the test started itself; SIGKILLed and reaped on every path.
struct Guard(Child);

impl Guard {
    fn spawn(cmd: &mut Command) -> Guard {
        Guard(cmd.spawn().expect("spawn"))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the child to exit, up to `secs`.
    fn wait(&mut self, secs: u64) -> Option<ExitStatus> {
        let mut status = None;
        wait_for(
            || {
                status = self.0.try_wait().unwrap();
                status.is_some()
            },
            deadline(secs),
        );
        status
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper(arg: &str) -> Guard {
    Guard::spawn(Command::new("sleep").arg(arg))
}

#[test]
fn dropping_procs_leaves_no_process() {
    let root = scratch("drop");
    let mut procs = Procs::new(RunDir::create(&root, "t").unwrap()).unwrap();
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    let pid = procs.spawn("s", "test", cmd).unwrap();
    assert!(!is_gone(pid));
    let started = Instant::now();
    drop(procs);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still exists"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "sleep obeys SIGTERM"
    );
}

#[test]
fn dropping_procs_stops_grandchildren_in_the_process_group() {
    let root = scratch("grandchild");
    let marker = root.join("grandchild.pid");
    let mut procs = Procs::new(RunDir::create(&root, "t").unwrap()).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("sleep 30 & echo $! > {}; wait", marker.display()));
    procs.spawn("sh", "test", cmd).unwrap();
    assert!(wait_for_file(&marker, deadline(10)), "no grandchild pid");
    let grandchild: u32 = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
    assert!(!is_gone(grandchild));
    drop(procs);
    assert!(
        wait_for(|| is_gone(grandchild), deadline(5)),
        "grandchild {grandchild} survived"
    );
}

#[test]
fn processes_that_ignore_sigterm_get_sigkill() {
    let root = scratch("stubborn");
    let ready = root.join("ready");
    let mut procs = Procs::new(RunDir::create(&root, "t").unwrap()).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "trap '' TERM; echo > {}; while :; do sleep 0.1; done",
        ready.display()
    ));
    let pid = procs.spawn("stubborn", "test", cmd).unwrap();
    assert!(wait_for_file(&ready, deadline(10)));
    let status = procs.stop("stubborn").unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(is_gone(pid));
}

#[test]
fn log_files_capture_stdout_and_stderr() {
    let root = scratch("logs");
    let run = RunDir::create(&root, "t").unwrap();
    let log = run.log_file("talker");
    let mut procs = Procs::new(run).unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("echo to-stdout; echo to-stderr >&2; exit 3");
    procs.spawn("talker", "test", cmd).unwrap();
    let mut exits = Vec::new();
    assert!(wait_for(
        || {
            exits.extend(procs.poll_exits());
            !exits.is_empty()
        },
        deadline(10)
    ));
    assert_eq!(exits[0].id, "talker");
    assert_eq!(exits[0].status.code(), Some(3));
    assert_eq!(exits[0].log, log);
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("starting talker (test): sh -c"), "{text}");
    assert!(text.contains("to-stdout\n"), "{text}");
    assert!(text.contains("to-stderr\n"), "{text}");
    assert_eq!(procs::log_tail(&log, 2), "to-stdout\nto-stderr");
    assert!(procs.poll_exits().is_empty(), "an exit is reported once");
}

#[test]
fn pids_json_and_active_list_track_the_run() {
    let root = scratch("pids");
    let run = RunDir::create(&root, "demo").unwrap();
    let dir = run.path().to_owned();
    assert!(
        dir.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("demo-")
    );
    assert!(run.logs_dir().is_dir() && run.stats_dir().is_dir());
    let mut procs = Procs::new(run.clone()).unwrap();
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    let pid = procs.spawn("n1", "node", cmd).unwrap();

    let pids = read_pids_file(&run.pids_file()).unwrap();
    assert_eq!(pids.lab.pid, std::process::id());
    assert_eq!(pids.processes.len(), 1);
    let record = &pids.processes[0];
    assert_eq!(
        (record.pid, record.id.as_str(), record.role.as_str()),
        (pid, "n1", "node")
    );
    assert_eq!(record.cmdline, ["sleep", "30"]);
    assert!(record.is_still_running());
    assert!(record.exit.is_none());
    assert_eq!(read_active(&root).unwrap(), std::slice::from_ref(&dir));

    // The run of a live lab (this test process) is not stale.
    let report = procs::cleanup_stale(&root).unwrap();
    assert_eq!(report.live_runs, std::slice::from_ref(&dir));
    assert!(report.killed.is_empty());
    assert!(procs.is_running("n1"));

    drop(procs);
    assert!(read_active(&root).unwrap().is_empty());
    let pids = read_pids_file(&run.pids_file()).unwrap();
    assert!(pids.processes[0].exit.is_some());
    assert!(!pids.processes[0].is_still_running());
}

#[test]
fn ids_are_unique_while_running_and_reusable_after_exit() {
    let root = scratch("ids");
    let mut procs = Procs::new(RunDir::create(&root, "t").unwrap()).unwrap();
    let sleep = || {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        cmd
    };
    let first = procs.spawn("n1", "node", sleep()).unwrap();
    assert!(matches!(
        procs.spawn("n1", "node", sleep()),
        Err(ProcsError::DuplicateId(_))
    ));
    procs.signal("n1", Signal::Kill).unwrap();
    let mut exits = Vec::new();
    assert!(wait_for(
        || {
            exits.extend(procs.poll_exits());
            !exits.is_empty()
        },
        deadline(5)
    ));
    assert_eq!(exits[0].status.signal(), Some(libc::SIGKILL));
    assert!(!procs.is_running("n1"));
    let second = procs.spawn("n1", "node", sleep()).unwrap();
    assert_ne!(first, second);
    assert!(procs.is_running("n1"));
    assert_eq!(procs.pid("n1"), Some(second));
    assert_eq!(procs.list().len(), 2);
    assert!(matches!(
        procs.signal("nope", Signal::Term),
        Err(ProcsError::UnknownId(_))
    ));
}

#[test]
fn spawn_failure_names_the_program() {
    let root = scratch("spawnfail");
    let mut procs = Procs::new(RunDir::create(&root, "t").unwrap()).unwrap();
    let err = procs
        .spawn("x", "test", Command::new("/nonexistent/meshcast-nothing"))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("cannot start x (/nonexistent/meshcast-nothing)"),
        "{err}"
    );
}

/// Writes `<runs_root>/<name>/pids.json` for a lab that is `lab` and lists the run in `.active`.
fn fake_run(runs_root: &Path, name: &str, lab: ProcRecord, processes: Vec<ProcRecord>) -> PathBuf {
    let dir = runs_root.join(name);
    fs::create_dir_all(&dir).unwrap();
    let pids = PidsFile { lab, processes };
    fs::write(
        dir.join(procs::PIDS_FILE),
        serde_json::to_string(&pids).unwrap(),
    )
    .unwrap();
    let mut active = fs::read_to_string(runs_root.join(procs::ACTIVE_FILE)).unwrap_or_default();
    active.push_str(&format!("{}\n", dir.display()));
    fs::write(runs_root.join(procs::ACTIVE_FILE), active).unwrap();
    dir
}

fn record(pid: u32, id: &str, cmdline: &[&str]) -> ProcRecord {
    ProcRecord {
        pid,
        id: id.to_owned(),
        role: "node".to_owned(),
        cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
        started_unix_ms: 0,
        start_ticks: None,
        exit: None,
    }
}

/// The PID of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    child.id()
}

#[test]
fn cleanup_stale_kills_matching_leftovers_and_spares_reused_pids() {
    let root = scratch("stale");
    let mut victim = sleeper("30");
    let mut bystander = sleeper("31");
    let lab = record(dead_pid(), "lab", &["meshcast-lab-that-crashed", "up"]);
    let dir = fake_run(
        &root,
        "crashed",
        lab,
        vec![
            record(victim.pid(), "n1", &["sleep", "30"]),
            // The PID was reused by a program other than the one recorded.
            record(bystander.pid(), "n2", &["sleep", "999"]),
        ],
    );

    let report = procs::cleanup_stale(&root).unwrap();

    assert_eq!(report.stale_runs, [dir]);
    assert!(report.live_runs.is_empty());
    assert_eq!(
        report.killed.iter().map(|r| r.pid).collect::<Vec<_>>(),
        [victim.pid()]
    );
    assert_eq!(
        report.spared.iter().map(|r| r.pid).collect::<Vec<_>>(),
        [bystander.pid()]
    );
    let status = victim.wait(5).expect("victim stopped");
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert!(bystander.0.try_wait().unwrap().is_none(), "bystander alive");
    assert!(read_active(&root).unwrap().is_empty());
}

#[test]
fn cleanup_stale_leaves_runs_of_live_labs_alone() {
    let root = scratch("live");
    let lab = sleeper("32");
    let mut worker = sleeper("33");
    let dir = fake_run(
        &root,
        "running",
        record(lab.pid(), "lab", &["sleep", "32"]),
        vec![record(worker.pid(), "n1", &["sleep", "33"])],
    );

    let report = procs::cleanup_stale(&root).unwrap();

    assert_eq!(report.live_runs, std::slice::from_ref(&dir));
    assert!(report.killed.is_empty() && report.stale_runs.is_empty());
    assert!(worker.0.try_wait().unwrap().is_none(), "worker alive");
    assert_eq!(read_active(&root).unwrap(), [dir]);
}

#[test]
fn children_die_with_the_lab_even_under_sigkill() {
    let root = scratch("pdeathsig");
    let mut lab = Guard::spawn(
        Command::new(LAB)
            .args(["--runs-root", root.to_str().unwrap(), "hold", "sleep", "34"])
            .stdout(Stdio::null()),
    );
    let mut held = None;
    let found = wait_for(
        || {
            let Some(dir) = read_active(&root).ok().and_then(|d| d.first().cloned()) else {
                return false;
            };
            held = read_pids_file(&dir.join(procs::PIDS_FILE))
                .ok()
                .and_then(|p| p.processes.first().map(|r| r.pid));
            held.is_some()
        },
        deadline(20),
    );
    assert!(found, "the lab never recorded its child");
    let held = held.unwrap();
    assert!(!is_gone(held));

    lab.0.kill().unwrap(); // SIGKILL: the lab gets no chance to clean up.
    lab.wait(5).expect("lab died");
    assert!(
        wait_for(|| is_gone(held), deadline(5)),
        "child {held} outlived the lab"
    );
    // The crashed run is still listed; cleanup finds nothing left to kill and forgets it.
    assert_eq!(read_active(&root).unwrap().len(), 1);
    let report = procs::cleanup_stale(&root).unwrap();
    assert_eq!(report.stale_runs.len(), 1);
    assert!(report.killed.is_empty());
    assert!(read_active(&root).unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// meshcast-lab up, against fake binaries

struct LabRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the lab binary with `args` and `envs`, killing it if it takes longer than `secs`.
fn run_lab(dir: &Path, args: &[&str], envs: &[(&str, &Path)], secs: u64) -> LabRun {
    let out = dir.join("lab.stdout");
    let err = dir.join("lab.stderr");
    let mut cmd = Command::new(LAB);
    cmd.args(args)
        .envs(envs.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    let mut lab = Guard::spawn(&mut cmd);
    let status = lab.wait(secs);
    let stdout = fs::read_to_string(&out).unwrap();
    let stderr = fs::read_to_string(&err).unwrap();
    let status = status.unwrap_or_else(|| {
        panic!("meshcast-lab did not finish in {secs} s\nstdout:\n{stdout}\nstderr:\n{stderr}")
    });
    LabRun {
        status,
        stdout,
        stderr,
    }
}

fn write_script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A topology on 127.0.9.x with unusual ports from `base` up, so that it collides neither with
/// other tests nor with other fake runs (each test passes its own `base`, a multiple of 10).
fn fake_topology(base: u16) -> String {
    FAKE_TOPOLOGY.replace("4700", &format!("{}", base / 10))
}

const FAKE_TOPOLOGY: &str = r#"
name = "fake"
links = [["s1", "n1"], ["n1", "n2"]]

[[node]]
id = "boot"
role = "bootstrapper"
addr = "127.0.9.1:47000"

[[node]]
id = "s1"
role = "server"
addr = "127.0.9.2:47001"

[[node]]
id = "n1"
role = "node"
addr = "127.0.9.3:47002"

[[node]]
id = "n2"
role = "node"
addr = "127.0.9.4:47003"

[[client]]
id = "c1"
pops = ["n1"]

[[client]]
id = "c2"
pops = ["n2", "n1"]
watch = "news"
"#;

/// Fake meshcast binaries: overlay processes bind their topology address (so readiness
/// checks pass) and stay up, except n2, which crashes; client c1 writes stats and exits 0,
/// c2 exits 3.
fn fake_bins(dir: &Path, base: u16) -> PathBuf {
    let bins = dir.join("bin");
    fs::create_dir_all(&bins).unwrap();
    let binder = r#"#!/bin/sh
echo "args: $*"
prev=""; id=boot
for arg in "$@"; do [ "$prev" = "--id" ] && id="$arg"; prev="$arg"; done
case "$id" in
  boot) ip=127.0.9.1; port=47000 ;;
  s1) ip=127.0.9.2; port=47001 ;;
  n1) ip=127.0.9.3; port=47002 ;;
  n2) echo "n2 crashing on purpose" >&2; exit 1 ;;
esac
exec perl -MIO::Socket::INET -e '
  my $socket = IO::Socket::INET->new(LocalAddr => $ARGV[0], LocalPort => $ARGV[1], Proto => "udp")
    or die "bind: $!";
  sleep 60;' "$ip" "$port"
"#;
    let binder = binder.replace("4700", &format!("{}", base / 10));
    for name in ["meshcast-bootstrapper", "meshcast-server", "meshcast-node"] {
        write_script(&bins.join(name), &binder);
    }
    let client = r#"#!/bin/sh
echo "args: $*"
prev=""; stats=""; record=""
for arg in "$@"; do
  [ "$prev" = "--stats" ] && stats="$arg"
  [ "$prev" = "--record" ] && record="$arg"
  prev="$arg"
done
case "$stats" in *c2.json) echo "c2 fails on purpose" >&2; exit 3 ;; esac
: > "$record"
printf '{"startup_ms": 120, "media_packets": 50, "continuity_errors": 0, "stalls": []}' > "$stats"
"#;
    write_script(&bins.join("meshcast-client"), client);
    bins
}

fn all_recorded_processes_gone(run_dir: &Path) -> bool {
    let pids = read_pids_file(&run_dir.join(procs::PIDS_FILE)).unwrap();
    assert_eq!(pids.processes.len(), 6, "{pids:?}");
    pids.processes.iter().all(|p| is_gone(p.pid))
}

#[test]
fn up_runs_a_headless_topology_and_reports_client_results() {
    let dir = scratch("up-headless");
    let bins = fake_bins(&dir, 47000);
    fs::write(dir.join("fake.toml"), fake_topology(47000)).unwrap();
    let run_dir = dir.join("run");
    let lab = run_lab(
        &dir,
        &[
            "up",
            "fake.toml",
            "--clients",
            "headless",
            "--run-dir",
            "run",
            "--duration",
            "60",
        ],
        &[("MESHCAST_BIN_DIR", &bins)],
        60,
    );
    let context = format!("stdout:\n{}\nstderr:\n{}", lab.stdout, lab.stderr);

    // c2 exited 3, so the run fails.
    assert_eq!(lab.status.code(), Some(1), "{context}");
    for id in ["boot", "s1", "n1", "n2", "c1", "c2"] {
        assert!(
            lab.stdout.contains(&format!("run/logs/{id}.log")),
            "{context}"
        );
    }
    assert!(
        lab.stdout
            .contains("c1         exit code 0; startup 120 ms, 50 media packets, 0 continuity errors, 0 stalls"),
        "{context}"
    );
    assert!(
        lab.stdout.contains("c2         exit code 3; no stats file"),
        "{context}"
    );
    assert!(lab.stdout.ends_with("run dir: run\n"), "{context}");
    assert!(
        lab.stderr.contains("n2 (node, pid") && lab.stderr.contains("n2 crashing on purpose"),
        "{context}"
    );

    let log =
        |id: &str| fs::read_to_string(run_dir.join("logs").join(format!("{id}.log"))).unwrap();
    let abs_run = fs::canonicalize(&run_dir).unwrap();
    assert!(log("s1").contains(&format!(
        "args: --id s1 --bootstrapper 127.0.9.1:47000 --videos {}/videos --stats {}/stats/s1.json",
        abs_run.display(),
        abs_run.display()
    )));
    assert!(log("boot").contains("args: --topology "));
    assert!(log("c1").contains(&format!(
        "args: --headless --pops 127.0.9.3:47002 --watch test-pattern --record {}/c1.ts --stats {}/stats/c1.json --duration 55",
        abs_run.display(),
        abs_run.display()
    )));
    assert!(log("c2").contains("--pops 127.0.9.4:47003,127.0.9.3:47002 --watch news"));
    assert!(run_dir.join("c1.ts").exists());
    assert!(run_dir.join("topology.toml").exists());
    assert!(all_recorded_processes_gone(&run_dir));
    assert!(read_active(&dir.join("runs")).unwrap().is_empty());
}

#[test]
fn up_stops_everything_on_sigint() {
    let dir = scratch("up-sigint");
    let bins = fake_bins(&dir, 47010);
    fs::write(dir.join("fake.toml"), fake_topology(47010)).unwrap();
    let run_dir = dir.join("run");
    let mut lab = Guard::spawn(
        Command::new(LAB)
            .args(["up", "fake.toml", "--clients", "none", "--run-dir", "run"])
            .env("MESHCAST_BIN_DIR", &bins)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // Up once boot, s1 and n1 are bound (n2 crashes by design).
    let bound = wait_for(
        || {
            ["127.0.9.1:47010", "127.0.9.2:47011", "127.0.9.3:47012"]
                .iter()
                .all(|a| meshcast_lab::ready::is_bound(a.parse().unwrap()))
        },
        deadline(20),
    );
    assert!(bound, "fake overlay never came up");
    let pids = read_pids_file(&run_dir.join(procs::PIDS_FILE)).unwrap();
    assert_eq!(pids.processes.len(), 4, "no clients in --clients none");

    let lab_pid = lab.pid() as libc::pid_t;
    assert_eq!(
        Command::new("kill")
            .args(["-INT", &lab_pid.to_string()])
            .status()
            .unwrap()
            .code(),
        Some(0)
    );
    let status = lab.wait(10).expect("lab stopped on SIGINT");
    assert_eq!(status.code(), Some(0));
    for p in &pids.processes {
        assert!(is_gone(p.pid), "{} (pid {}) survived", p.id, p.pid);
    }
}

#[test]
fn up_with_an_invalid_topology_exits_2_and_starts_nothing() {
    let dir = scratch("up-invalid");
    let text = fake_topology(47020).replace("pops = [\"n1\"]", "pops = [\"n9\"]");
    fs::write(dir.join("bad.toml"), text).unwrap();
    let lab = run_lab(
        &dir,
        &["up", "bad.toml", "--clients", "headless"],
        &[("MESHCAST_BIN_DIR", &dir)],
        30,
    );
    assert_eq!(lab.status.code(), Some(2), "{}", lab.stderr);
    assert!(lab.stderr.contains("bad.toml:"), "{}", lab.stderr);
    assert!(lab.stderr.contains("n9"), "{}", lab.stderr);
    assert!(!dir.join("runs").exists(), "a run dir was created");
}

#[test]
fn up_without_binaries_says_how_to_build_them() {
    let dir = scratch("up-nobins");
    fs::write(dir.join("fake.toml"), fake_topology(47030)).unwrap();
    let empty = dir.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let lab = run_lab(
        &dir,
        &["up", "fake.toml"],
        &[("MESHCAST_BIN_DIR", &empty)],
        30,
    );
    assert_eq!(lab.status.code(), Some(1));
    assert!(
        lab.stderr.contains("cannot find meshcast-bootstrapper")
            && lab.stderr.contains("cargo build --bins"),
        "{}",
        lab.stderr
    );
    assert!(!dir.join("runs").exists());
}

#[test]
fn up_with_duration_and_no_clients_ends_on_time() {
    let dir = scratch("up-duration");
    let bins = fake_bins(&dir, 47040);
    fs::write(dir.join("fake.toml"), fake_topology(47040)).unwrap();
    let started = Instant::now();
    let lab = run_lab(
        &dir,
        &["up", "fake.toml", "--clients", "none", "--duration", "1"],
        &[("MESHCAST_BIN_DIR", &bins)],
        30,
    );
    assert_eq!(lab.status.code(), Some(0), "{}", lab.stderr);
    assert!(started.elapsed() >= Duration::from_secs(1));
    let active = read_active(&dir.join("runs")).unwrap();
    assert!(active.is_empty());
    let runs: Vec<_> = fs::read_dir(dir.join("runs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("fake-"))
        .collect();
    assert_eq!(runs.len(), 1, "one run dir named after the topology");
    assert!(lab.stdout.contains("run dir: runs/fake-"), "{}", lab.stdout);
}
