//! `meshcast-lab`: brings a topology up as real processes on this machine.
//!
//! - `meshcast-lab up TOPOLOGY`: validate, clean up leftovers of crashed runs, start the
//!   bootstrapper, the servers, the nodes and the clients, print what runs where, wait for
//!   Ctrl-C / `--duration` / the headless clients, stop everything, print the clients' stats.
//! - `meshcast-lab cleanup`: stop leftovers of crashed runs.
//!
//! Exit codes: 0 success; 1 failure (or a headless client that did not exit 0); 2 the topology
//! file is invalid (nothing was started).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use meshcast_lab::procs::{self, Exited, Procs, RunDir};
use meshcast_lab::ready;
use meshcast_lab::report::{self, ClientSummary, Row};
use meshcast_topology::{ClientSpec, NodeSpec, Role, Topology};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

/// How long the bootstrapper gets to bind its address.
const BOOTSTRAPPER_READY: Duration = Duration::from_secs(5);
/// How long servers and nodes get to bind theirs before clients start anyway.
const OVERLAY_READY: Duration = Duration::from_secs(10);
/// How often the lab looks for exited processes.
const POLL: Duration = Duration::from_millis(200);
/// Lines of a log shown when its process dies.
const TAIL_LINES: usize = 15;
/// Recording length of headless clients when `--duration` is not given.
const DEFAULT_CLIENT_SECS: u64 = 30;

#[derive(Debug, Parser)]
#[command(
    name = "meshcast-lab",
    version,
    about = "Bring a meshcast topology up as real processes on this machine"
)]
struct Cli {
    /// Directory holding the run directories and the list of live runs (`.active`)
    #[arg(long, global = true, value_name = "DIR", default_value = "runs")]
    runs_root: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start every process of a topology, wait, then stop them all
    Up(UpArgs),
    /// Stop the leftovers of crashed lab runs and exit
    Cleanup,
    /// Run COMMAND under the lab's supervision until SIGINT/SIGTERM (tests the supervisor)
    #[command(hide = true)]
    Hold {
        /// The command and its arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Topology file, such as topologies/demo.toml
    topology: PathBuf,
    /// Run directory for logs, stats and recordings [default: RUNS_ROOT/<name>-<YYYYmmdd-HHMMSS>]
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Directory of videos the servers stream [default: an empty directory: a test pattern]
    #[arg(long, value_name = "DIR")]
    videos: Option<PathBuf>,
    /// Clients to start for the topology's [[client]] entries [default: gui when DISPLAY or
    /// WAYLAND_DISPLAY is set, else headless]
    #[arg(long, value_enum)]
    clients: Option<ClientMode>,
    /// Stop after SECS seconds. Headless clients record for SECS-5 seconds (SECS/2 when SECS
    /// <= 10); without it they record for 30 s and the lab stops when they are done
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ClientMode {
    /// One meshcast-client window per [[client]]
    Gui,
    /// meshcast-client --headless, recording to RUN_DIR/<id>.ts with stats
    Headless,
    /// No clients
    None,
}

impl ClientMode {
    fn detect() -> ClientMode {
        let set = |var| std::env::var_os(var).is_some_and(|v| !v.is_empty());
        if set("DISPLAY") || set("WAYLAND_DISPLAY") {
            ClientMode::Gui
        } else {
            ClientMode::Headless
        }
    }
}

fn main() -> ExitCode {
    meshcast_io::logging::init("info");
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Up(args) => up(&cli.runs_root, args),
        Cmd::Cleanup => cleanup(&cli.runs_root),
        Cmd::Hold { command } => hold(&cli.runs_root, command),
    };
    result.unwrap_or_else(|e| {
        eprintln!("meshcast-lab: error: {e:#}");
        ExitCode::FAILURE
    })
}

/// A current-thread runtime: processes are spawned from the main thread, which lives as long
/// as they do (their parent-death signal is tied to the spawning thread).
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

fn cleanup(runs_root: &Path) -> Result<ExitCode> {
    let report = procs::cleanup_stale(runs_root)
        .with_context(|| format!("cannot clean up runs under {}", runs_root.display()))?;
    for record in &report.killed {
        println!(
            "stopped {} ({}, pid {}) of a crashed run",
            record.id, record.role, record.pid
        );
    }
    for record in &report.spared {
        println!(
            "left pid {} alone: it no longer runs {} ({})",
            record.pid, record.id, record.role
        );
    }
    for dir in &report.live_runs {
        println!("still running: {}", dir.display());
    }
    println!(
        "cleaned up {} stale run(s), stopped {} process(es)",
        report.stale_runs.len(),
        report.killed.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn hold(runs_root: &Path, command: Vec<String>) -> Result<ExitCode> {
    runtime()?.block_on(async {
        let mut stop = StopSignals::install()?;
        let run = RunDir::create(runs_root, "hold")?;
        let mut procs = Procs::new(run)?;
        let mut cmd = Command::new(&command[0]);
        cmd.args(&command[1..]);
        let pid = procs.spawn("held", "held", cmd)?;
        println!("{} {pid}", procs.run_dir().path().display());
        let signal = stop.recv().await;
        tracing::info!("{signal}: stopping");
        Ok(ExitCode::SUCCESS)
    })
}

// ---------------------------------------------------------------------------------------------
// up

/// The paths of the binaries a run needs.
#[derive(Debug)]
struct Bins {
    bootstrapper: PathBuf,
    server: Option<PathBuf>,
    node: Option<PathBuf>,
    client: Option<PathBuf>,
}

/// Everything `up` decided before starting anything.
#[derive(Debug)]
struct Plan {
    topology: Topology,
    topology_path: PathBuf,
    mode: ClientMode,
    duration: Option<Duration>,
    client_secs: u64,
    videos: PathBuf,
    bins: Bins,
}

/// Why the wait ended.
#[derive(Debug)]
enum Ending {
    Signal(&'static str),
    Elapsed,
    ClientsDone,
    StartupFailed(String),
}

fn up(runs_root: &Path, args: UpArgs) -> Result<ExitCode> {
    let loaded = match Topology::load(&args.topology) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("meshcast-lab: invalid topology, nothing started:\n{e}");
            return Ok(ExitCode::from(2));
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let topology = loaded.topology;
    let mode = args.clients.unwrap_or_else(ClientMode::detect);
    let wants = |role| topology.nodes().iter().any(|n| n.role == role);
    let locate = |name: &str| procs::locate_binary(name).map_err(anyhow::Error::from);
    let bins = Bins {
        bootstrapper: locate("meshcast-bootstrapper")?,
        server: wants(Role::Server)
            .then(|| locate("meshcast-server"))
            .transpose()?,
        node: wants(Role::Node)
            .then(|| locate("meshcast-node"))
            .transpose()?,
        client: (mode != ClientMode::None && !topology.clients().is_empty())
            .then(|| locate("meshcast-client"))
            .transpose()?,
    };
    if let Some(videos) = &args.videos
        && !videos.is_dir()
    {
        bail!("--videos {}: not a directory", videos.display());
    }

    let report = procs::cleanup_stale(runs_root)
        .with_context(|| format!("cannot clean up runs under {}", runs_root.display()))?;
    for record in &report.killed {
        tracing::warn!(
            "stopped leftover {} ({}, pid {}) of a crashed run",
            record.id,
            record.role,
            record.pid
        );
    }

    let run = match &args.run_dir {
        Some(dir) => RunDir::at(runs_root, dir)?,
        None => RunDir::create(runs_root, topology.name())?,
    };
    let copy = run.path().join("topology.toml");
    std::fs::write(&copy, topology.to_toml())
        .with_context(|| format!("cannot write {}", copy.display()))?;
    let videos = match &args.videos {
        Some(dir) => {
            std::path::absolute(dir).with_context(|| format!("cannot resolve {}", dir.display()))?
        }
        None => {
            let dir = run.path().join("videos");
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir
        }
    };
    let topology_path = std::path::absolute(&args.topology)
        .with_context(|| format!("cannot resolve {}", args.topology.display()))?;
    let plan = Plan {
        topology,
        topology_path,
        mode,
        duration: args.duration.map(Duration::from_secs),
        client_secs: args.duration.map_or(DEFAULT_CLIENT_SECS, client_secs),
        videos,
        bins,
    };
    let procs = Procs::new(run)?;
    runtime()?.block_on(run_lab(plan, procs))
}

/// How long headless clients record when the lab runs for `lab_secs`.
fn client_secs(lab_secs: u64) -> u64 {
    if lab_secs > 10 {
        lab_secs - 5
    } else {
        (lab_secs / 2).max(1)
    }
}

async fn run_lab(plan: Plan, mut procs: Procs) -> Result<ExitCode> {
    let mut stop = StopSignals::install()?;
    let ending = match start_all(&plan, &mut procs, &mut stop).await? {
        Some(ending) => ending,
        None => {
            print!("{}", report::format_table(&table_rows(&plan, &procs)));
            println!("run dir: {}", display_path(procs.run_dir().path()));
            match plan.mode {
                ClientMode::Headless if !plan.topology.clients().is_empty() => println!(
                    "headless clients record for {} s; Ctrl-C stops everything",
                    plan.client_secs
                ),
                _ => println!("Ctrl-C stops everything"),
            }
            wait(&plan, &mut procs, &mut stop).await
        }
    };
    match &ending {
        Ending::Signal(name) => tracing::info!("{name}: stopping the run"),
        Ending::Elapsed => tracing::info!("--duration elapsed: stopping the run"),
        Ending::ClientsDone => tracing::info!("all clients finished: stopping the run"),
        Ending::StartupFailed(why) => tracing::error!("{why}; stopping the run"),
    }

    // Clients first, so that they do not see the mesh vanish under them.
    let mut exits = procs.stop_role("client");
    exits.extend(procs.stop_all());
    for exit in &exits {
        tracing::debug!(
            "{} (pid {}) stopped: {}",
            exit.id,
            exit.pid,
            procs::describe_status(exit.status)
        );
    }
    let run_dir = procs.run_dir().clone();
    let mut success = !matches!(ending, Ending::StartupFailed(_));
    if plan.mode == ClientMode::Headless && !plan.topology.clients().is_empty() {
        println!("client results:");
        for client in plan.topology.clients() {
            let status = procs.status(&client.id);
            success &= status.is_some_and(|s| s.success());
            let status = status.map_or_else(|| "not started".to_owned(), procs::describe_status);
            let stats = run_dir.stats_file(&client.id);
            let summary = match std::fs::read_to_string(&stats) {
                Ok(text) => match ClientSummary::parse(&text) {
                    Ok(summary) => summary.to_string(),
                    Err(e) => format!("unreadable stats {}: {e}", display_path(&stats)),
                },
                Err(_) => format!("no stats file {}", display_path(&stats)),
            };
            println!("  {:<10} {status}; {summary}", client.id);
        }
    }
    drop(procs);
    println!("run dir: {}", display_path(run_dir.path()));
    Ok(if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Starts the bootstrapper, servers, nodes and clients; `Some` if the run must end early.
async fn start_all(
    plan: &Plan,
    procs: &mut Procs,
    stop: &mut StopSignals,
) -> Result<Option<Ending>> {
    let topology = &plan.topology;
    let boot = topology.bootstrapper();
    let mut cmd = Command::new(&plan.bins.bootstrapper);
    cmd.arg("--topology").arg(&plan.topology_path);
    procs.spawn(&boot.id, boot.role.as_str(), cmd)?;
    if let Some(ending) = wait_ready(
        procs,
        stop,
        std::slice::from_ref(boot),
        BOOTSTRAPPER_READY,
        Some(&boot.id),
    )
    .await
    {
        return Ok(Some(ending));
    }

    let boot_addr = boot.addr.to_string();
    // Links with attributes are emulated by the processes themselves, from the run dir's copy
    // of the topology (edit it to change the links of a running mesh).
    let emulation = topology
        .links()
        .iter()
        .any(|l| !l.attrs.is_empty())
        .then(|| procs.run_dir().path().join("topology.toml"));
    let overlay: Vec<NodeSpec> = topology
        .servers()
        .chain(topology.nodes().iter().filter(|n| n.role == Role::Node))
        .cloned()
        .collect();
    for node in &overlay {
        let (program, extra): (&Path, Vec<&std::ffi::OsStr>) = match node.role {
            Role::Server => (
                plan.bins.server.as_deref().context("no server binary")?,
                vec!["--videos".as_ref(), plan.videos.as_os_str()],
            ),
            _ => (
                plan.bins.node.as_deref().context("no node binary")?,
                Vec::new(),
            ),
        };
        let mut cmd = Command::new(program);
        cmd.args(["--id", &node.id, "--bootstrapper", &boot_addr])
            .args(extra)
            .arg("--stats")
            .arg(procs.run_dir().stats_file(&node.id));
        if let Some(file) = &emulation {
            cmd.arg("--emulation").arg(file);
        }
        procs.spawn(&node.id, node.role.as_str(), cmd)?;
    }
    if let Some(ending) = wait_ready(procs, stop, &overlay, OVERLAY_READY, Some(&boot.id)).await {
        return Ok(Some(ending));
    }

    if let Some(program) = &plan.bins.client {
        for client in topology.clients() {
            let cmd = client_command(plan, program, client, procs.run_dir());
            procs.spawn(&client.id, "client", cmd)?;
        }
    }
    Ok(None)
}

fn client_command(plan: &Plan, program: &Path, client: &ClientSpec, run: &RunDir) -> Command {
    let pops = client_pops(&plan.topology, client);
    let mut cmd = Command::new(program);
    match plan.mode {
        ClientMode::Headless => {
            let watch = client.watch.as_deref().unwrap_or("test-pattern");
            cmd.args(["--headless", "--pops", &pops, "--watch", watch])
                .arg("--record")
                .arg(run.path().join(format!("{}.ts", client.id)))
                .arg("--stats")
                .arg(run.stats_file(&client.id))
                .args(["--duration", &plan.client_secs.to_string()]);
        }
        ClientMode::Gui | ClientMode::None => {
            cmd.args(["--pops", &pops]);
            if let Some(watch) = &client.watch {
                cmd.args(["--watch", watch]);
            }
            cmd.arg("--stats").arg(run.stats_file(&client.id));
        }
    }
    cmd
}

/// The addresses of a client's PoPs, comma-separated, in preference order.
fn client_pops(topology: &Topology, client: &ClientSpec) -> String {
    client
        .pops
        .iter()
        .filter_map(|pop| topology.node(pop))
        .map(|node| node.addr.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Waits until every one of `nodes` has bound its address, up to `limit`. Returns an ending if
/// a stop signal came or `critical` died; otherwise warns about whoever is not bound yet.
async fn wait_ready(
    procs: &mut Procs,
    stop: &mut StopSignals,
    nodes: &[NodeSpec],
    limit: Duration,
    critical: Option<&str>,
) -> Option<Ending> {
    let deadline = Instant::now() + limit;
    loop {
        for exit in procs.poll_exits() {
            report_exit(&exit, false);
            if Some(exit.id.as_str()) == critical {
                return Some(Ending::StartupFailed(format!(
                    "{} exited during startup ({})",
                    exit.id,
                    procs::describe_status(exit.status)
                )));
            }
        }
        let waiting: Vec<&NodeSpec> = nodes
            .iter()
            .filter(|n| procs.is_running(&n.id) && !ready::is_bound(n.addr))
            .collect();
        if waiting.is_empty() {
            return None;
        }
        if Instant::now() >= deadline {
            let names: Vec<String> = waiting
                .iter()
                .map(|n| format!("{} ({})", n.id, n.addr))
                .collect();
            tracing::warn!(
                "not bound after {limit:?}, going on anyway: {}",
                names.join(", ")
            );
            return None;
        }
        tokio::select! {
            signal = stop.recv() => return Some(Ending::Signal(signal)),
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

/// Waits for a stop signal, the end of `--duration`, or (headless) every client to finish.
async fn wait(plan: &Plan, procs: &mut Procs, stop: &mut StopSignals) -> Ending {
    let deadline = plan.duration.map(|d| Instant::now() + d);
    let clients: Vec<&str> = match (plan.mode, &plan.bins.client) {
        (ClientMode::Headless, Some(_)) => plan
            .topology
            .clients()
            .iter()
            .map(|c| c.id.as_str())
            .collect(),
        _ => Vec::new(),
    };
    loop {
        for exit in procs.poll_exits() {
            report_exit(&exit, plan.mode == ClientMode::Gui);
        }
        if !clients.is_empty() && clients.iter().all(|id| !procs.is_running(id)) {
            return Ending::ClientsDone;
        }
        tokio::select! {
            signal = stop.recv() => return Ending::Signal(signal),
            () = sleep_until(deadline) => return Ending::Elapsed,
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Logs an exit during the run; anything but a client exiting 0 is unexpected.
fn report_exit(exit: &Exited, gui: bool) {
    let status = procs::describe_status(exit.status);
    if exit.role == "client" && exit.status.success() {
        if gui {
            tracing::info!("{} closed; Ctrl-C stops the mesh", exit.id);
        } else {
            tracing::info!("client {} finished", exit.id);
        }
        return;
    }
    let tail = procs::log_tail(&exit.log, TAIL_LINES);
    let mut text = String::new();
    for line in tail.lines() {
        let _ = write!(text, "\n    | {line}");
    }
    tracing::warn!(
        "{} ({}, pid {}) exited unexpectedly: {status}; keeping the rest running. Last lines of {}:{text}",
        exit.id,
        exit.role,
        exit.pid,
        display_path(&exit.log)
    );
}

fn table_rows(plan: &Plan, procs: &Procs) -> Vec<Row> {
    procs
        .list()
        .into_iter()
        .map(|info| {
            let addr = match plan.topology.node(&info.id) {
                Some(node) => node.addr.to_string(),
                None => plan
                    .topology
                    .clients()
                    .iter()
                    .find(|c| c.id == info.id)
                    .map_or_else(String::new, |c| format!("pops {}", c.pops.join(","))),
            };
            Row {
                id: info.id,
                role: info.role,
                addr,
                pid: info.pid,
                log: display_path(&info.log),
            }
        })
        .collect()
}

/// `path` relative to the working directory when it is inside it.
fn display_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_owned))
        .unwrap_or_else(|| path.to_owned())
        .display()
        .to_string()
}

/// SIGINT, SIGTERM and SIGHUP, caught so that the lab can stop its processes first.
#[derive(Debug)]
struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl StopSignals {
    fn install() -> Result<StopSignals> {
        let install = |kind| signal(kind).context("cannot install a signal handler");
        Ok(StopSignals {
            int: install(SignalKind::interrupt())?,
            term: install(SignalKind::terminate())?,
            hup: install(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
            _ = self.hup.recv() => "SIGHUP",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn headless_clients_stop_before_the_lab() {
        assert_eq!(client_secs(20), 15);
        assert_eq!(client_secs(11), 6);
        assert_eq!(client_secs(10), 5);
        assert_eq!(client_secs(1), 1);
    }

    #[test]
    fn client_pops_are_addresses_in_preference_order() {
        let text = r#"
            links = [["s1", "n1"], ["n1", "n2"]]
            [[node]]
            id = "boot"
            role = "bootstrapper"
            addr = "127.0.0.1:7000"
            [[node]]
            id = "s1"
            role = "server"
            addr = "127.0.0.2:7000"
            [[node]]
            id = "n1"
            role = "node"
            addr = "127.0.0.3:7000"
            [[node]]
            id = "n2"
            role = "node"
            addr = "127.0.0.4:7000"
            [[client]]
            id = "c1"
            pops = ["n2", "n1"]
        "#;
        let topology = Topology::parse(text, "t.toml").unwrap().topology;
        let client = topology.client("c1").unwrap();
        assert_eq!(
            client_pops(&topology, client),
            "127.0.0.4:7000,127.0.0.3:7000"
        );
    }
}
