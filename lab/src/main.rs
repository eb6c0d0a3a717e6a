//! `meshcast-lab`: topology files as reproducible experiments on this machine.
//!
//! - `meshcast-lab up TOPOLOGY [--netns]`: validate, clean up leftovers of crashed runs, start
//!   the bootstrapper, the servers, the nodes and the clients (on loopback, or one network
//!   namespace per host), print what runs where, wait for Ctrl-C / `--duration` / the headless
//!   clients, stop everything, print the clients' stats.
//! - `meshcast-lab run SCENARIO... [--netns]`: run scenarios (timeline, faults, expectations),
//!   write results (JSON, CSV), print the summary table; exit 1 if an expectation failed.
//! - `meshcast-lab report`: regenerate `report/` from the saved results.
//! - `meshcast-lab import FILE` / `export --core|--mininet TOPOLOGY`: CORE and Mininet interop.
//! - `meshcast-lab cleanup`: stop leftovers of crashed runs (processes and namespaces).
//!
//! Exit codes: 0 success; 1 failure (an expectation, or a headless client that did not exit
//! 0); 2 an input file is invalid (nothing was started).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use meshcast_lab::mesh::{self, Bins, ClientLaunch, ClientMode, Mesh, MeshSetup, StopSignals};
use meshcast_lab::procs::{self, Exited, Procs, RunDir};
use meshcast_lab::report::{self, ClientSummary, Row};
use meshcast_lab::results::{self, RunResult};
use meshcast_lab::runner::{self, Outcome, Placement, RunOptions};
use meshcast_lab::scenario::{Scenario, ScenarioError};
use meshcast_lab::{document, interop, underlay};
use meshcast_topology::{NodeSpec, Topology};
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
    about = "Topology files as reproducible experiments: run meshcast topologies and scenarios on \
             this machine, write results and the report, convert CORE and Mininet files"
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
    /// Run scenarios: timeline, faults, measurements, expectations
    Run(RunArgs),
    /// Regenerate report/ (README.md and plots) from saved results
    Report(document::ReportArgs),
    /// Convert a CORE .imn file or a neighbour map into a meshcast topology
    Import(interop::ImportArgs),
    /// Write a topology as a CORE .imn file or a Mininet script
    Export(interop::ExportArgs),
    /// Stop the leftovers of crashed lab runs (processes, namespaces) and exit
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
    clients: Option<CliClientMode>,
    /// Stop after SECS seconds. Headless clients record for SECS-5 seconds (SECS/2 when SECS
    /// <= 10); without it they record for 30 s and the lab stops when they are done
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// One Linux network namespace per host, with veth links (root): the topology's underlay,
    /// or one LAN when it has none
    #[arg(long)]
    netns: bool,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Scenario files, such as scenarios/relay-failure.toml (run one after the other)
    #[arg(required = true)]
    scenarios: Vec<PathBuf>,
    /// One Linux network namespace per host (root)
    #[arg(long)]
    netns: bool,
    /// Directory of videos the servers stream [default: a test pattern]
    #[arg(long, value_name = "DIR")]
    videos: Option<PathBuf>,
    /// Also save each run's summary as DIR/<scenario>[@netns][@variant].json (what `report` reads)
    #[arg(long, value_name = "DIR")]
    save_to: Option<PathBuf>,
    /// Skip checking recordings with `ffmpeg -xerror`
    #[arg(long)]
    no_decode_check: bool,
    /// Print event lines instead of a progress bar
    #[arg(long)]
    no_progress: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CliClientMode {
    /// One meshcast-client window per [[client]]
    Gui,
    /// meshcast-client --headless, recording to RUN_DIR/<id>.ts with stats
    Headless,
    /// No clients
    None,
}

impl From<CliClientMode> for ClientMode {
    fn from(m: CliClientMode) -> ClientMode {
        match m {
            CliClientMode::Gui => ClientMode::Gui,
            CliClientMode::Headless => ClientMode::Headless,
            CliClientMode::None => ClientMode::None,
        }
    }
}

fn main() -> ExitCode {
    meshcast_io::logging::init("info");
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Up(args) => up(&cli.runs_root, args),
        Cmd::Run(args) => run(&cli.runs_root, args),
        Cmd::Report(args) => document::report(&args),
        Cmd::Import(args) => interop::import(&args),
        Cmd::Export(args) => interop::export(&args),
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

/// Stops leftovers of crashed runs: processes by PID, then their namespaces.
fn cleanup_stale(runs_root: &Path, quiet: bool) -> Result<()> {
    let report = procs::cleanup_stale(runs_root)
        .with_context(|| format!("cannot clean up runs under {}", runs_root.display()))?;
    for record in &report.killed {
        let line = format!(
            "stopped {} ({}, pid {}) of a crashed run",
            record.id, record.role, record.pid
        );
        if quiet {
            tracing::warn!("{line}");
        } else {
            println!("{line}");
        }
    }
    if !quiet {
        for record in &report.spared {
            println!(
                "left pid {} alone: it no longer runs {} ({})",
                record.pid, record.id, record.role
            );
        }
        for dir in &report.live_runs {
            println!("still running: {}", dir.display());
        }
    }
    // Namespaces are recorded in their run dir (netns.json, removed after a clean teardown):
    // any run dir still holding one that is not a live run belongs to a crashed lab, whether or
    // not an earlier cleanup already took it off the live list.
    let mut crashed: Vec<PathBuf> = report.stale_runs.clone();
    if let Ok(entries) = std::fs::read_dir(runs_root) {
        for dir in entries.flatten().map(|e| e.path()) {
            if dir.join(meshcast_lab::netns::STATE_FILE).exists()
                && !report.live_runs.iter().any(|live| same_dir(live, &dir))
                && !crashed.iter().any(|c| same_dir(c, &dir))
            {
                crashed.push(dir);
            }
        }
    }
    for dir in &crashed {
        match underlay::cleanup_stale(dir) {
            Ok(removed) => {
                for ns in removed {
                    let line = format!("deleted namespace {ns} of a crashed run");
                    if quiet {
                        tracing::warn!("{line}");
                    } else {
                        println!("{line}");
                    }
                }
            }
            Err(e) => tracing::warn!("{}: {e:#}", dir.display()),
        }
    }
    if !quiet {
        println!(
            "cleaned up {} stale run(s), stopped {} process(es)",
            report.stale_runs.len(),
            report.killed.len()
        );
    }
    Ok(())
}

/// Whether two paths name the same directory (one may be relative).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn cleanup(runs_root: &Path) -> Result<ExitCode> {
    cleanup_stale(runs_root, false)?;
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

/// Where a run's processes go: loopback, or namespaces (created now, in `run_dir`).
fn placement(topology: Topology, netns: bool, run_dir: &Path) -> Result<Placement> {
    if netns {
        underlay::netns_placement(topology, run_dir)
    } else {
        Ok(runner::loopback_placement(topology))
    }
}

// ---------------------------------------------------------------------------------------------
// run

fn run(runs_root: &Path, args: RunArgs) -> Result<ExitCode> {
    // Every file is checked before anything starts.
    let mut scenarios = Vec::new();
    let mut invalid = false;
    for path in &args.scenarios {
        match Scenario::load(path) {
            Ok(s) => scenarios.push(s),
            Err(e @ (ScenarioError::Invalid(_) | ScenarioError::Topology { .. })) => {
                eprintln!("meshcast-lab: invalid scenario, nothing started:\n{e}");
                invalid = true;
            }
            Err(e) => {
                eprintln!("meshcast-lab: {e}");
                invalid = true;
            }
        }
    }
    if invalid {
        return Ok(ExitCode::from(2));
    }
    if args.netns {
        underlay::available().context("--netns")?;
    }
    if let Some(videos) = &args.videos
        && !videos.is_dir()
    {
        bail!("--videos {}: not a directory", videos.display());
    }
    cleanup_stale(runs_root, true)?;
    let opts = RunOptions {
        runs_root: runs_root.to_owned(),
        videos: args.videos.clone(),
        netns: args.netns,
        save_to: args.save_to.clone(),
        decode_check: !args.no_decode_check,
        progress: !args.no_progress,
    };
    let started = std::time::Instant::now();
    let results: Vec<RunResult> = runtime()?.block_on(async {
        let mut stop = StopSignals::install()?;
        let mut results = Vec::new();
        for scenario in &scenarios {
            let variants: Vec<Option<f64>> = match &scenario.sweep {
                Some(sweep) => sweep.loss.iter().copied().map(Some).collect(),
                None => vec![None],
            };
            for variant in variants {
                let outcome = runner::run_once(
                    scenario,
                    variant,
                    &opts,
                    |topology, dir| placement(topology, opts.netns, dir),
                    &mut stop,
                )
                .await
                .with_context(|| format!("scenario {}", scenario.file.display()));
                // A run that could not even start fails, and the suite goes on.
                let outcome = match outcome {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        eprintln!("meshcast-lab: {e:#}");
                        let failed = RunResult {
                            scenario: scenario.name.clone(),
                            description: scenario.description.clone(),
                            variant: variant.map_or_else(String::new, |l| format!("loss={l}")),
                            sweep_loss: variant,
                            mode: if opts.netns { "netns" } else { "loopback" }.to_owned(),
                            unexpected_exits: vec![format!("the run failed: {e:#}")],
                            ..RunResult::default()
                        };
                        print_run(&failed);
                        results.push(failed);
                        continue;
                    }
                };
                match outcome {
                    Outcome::Done(result) => {
                        print_run(&result);
                        results.push(*result);
                    }
                    Outcome::Interrupted(signal) => {
                        eprintln!("{signal}: stopped; every process was stopped");
                        if !results.is_empty() {
                            print!("{}", results::summary_table(&results));
                        }
                        bail!("interrupted by {signal}");
                    }
                }
            }
        }
        anyhow::Ok(results)
    })?;
    println!();
    print!("{}", results::summary_table(&results));
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| {
            if r.variant.is_empty() {
                r.scenario.clone()
            } else {
                format!("{} [{}]", r.scenario, r.variant)
            }
        })
        .collect();
    println!(
        "{} run(s) in {:.0} s wall time; {}",
        results.len(),
        started.elapsed().as_secs_f64(),
        if failed.is_empty() {
            "every expectation held".to_owned()
        } else {
            format!("FAILED: {}", failed.join(", "))
        }
    );
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One run's outcome: expectations, failures, where the results are.
fn print_run(r: &RunResult) {
    let name = if r.variant.is_empty() {
        r.scenario.clone()
    } else {
        format!("{} [{}]", r.scenario, r.variant)
    };
    println!(
        "{name}: {} in {:.0} s",
        if r.passed { "PASS" } else { "FAIL" },
        r.wall_s
    );
    for e in &r.expectations {
        println!(
            "  {} {:<34} measured {}",
            if e.passed { "ok  " } else { "FAIL" },
            e.text,
            e.value
                .map_or_else(|| "nothing".to_owned(), |v| format!("{v:.4}"))
        );
    }
    for exit in &r.unexpected_exits {
        println!("  FAIL unexpected exit: {exit}");
    }
    for e in r.events.iter().filter(|e| e.error.is_some()) {
        println!(
            "  note: event at {:.1} s ({}) failed: {}",
            e.at_s,
            e.action,
            e.error.as_deref().unwrap_or_default()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// up

/// Everything `up` decided before starting anything.
#[derive(Debug)]
struct Plan {
    mode: ClientMode,
    duration: Option<Duration>,
    client_secs: u64,
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
    let mode: ClientMode = args.clients.map_or_else(ClientMode::detect, Into::into);
    let bins = Bins::locate(
        &topology,
        mode != ClientMode::None && !topology.clients().is_empty(),
    )?;
    if let Some(videos) = &args.videos
        && !videos.is_dir()
    {
        bail!("--videos {}: not a directory", videos.display());
    }
    if args.netns {
        underlay::available().context("--netns")?;
    }
    cleanup_stale(runs_root, true)?;

    let run = match &args.run_dir {
        Some(dir) => RunDir::at(runs_root, dir)?,
        None => RunDir::create(runs_root, topology.name())?,
    };
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
    // The processes must be registered (for cleanup after a crash) before namespaces exist.
    let procs = Procs::new(run)?;
    let placement = placement(topology, args.netns, procs.run_dir().path())?;
    let mut mesh = Mesh::new(
        procs,
        MeshSetup {
            topology: placement.topology,
            videos,
            videos_for: std::collections::BTreeMap::new(),
            bins,
            emulate: None,
            overlay_args: Vec::new(),
            server_args: Vec::new(),
            namespaces: placement.namespaces,
        },
    )?;
    if let Some(guard) = placement.guard {
        mesh.hold(guard);
    }
    let plan = Plan {
        mode,
        duration: args.duration.map(Duration::from_secs),
        client_secs: args.duration.map_or(DEFAULT_CLIENT_SECS, client_secs),
    };
    let binds = placement.client_binds;
    runtime()?.block_on(run_lab(plan, mesh, binds))
}

/// How long headless clients record when the lab runs for `lab_secs`.
fn client_secs(lab_secs: u64) -> u64 {
    if lab_secs > 10 {
        lab_secs - 5
    } else {
        (lab_secs / 2).max(1)
    }
}

async fn run_lab(
    plan: Plan,
    mut mesh: Mesh,
    binds: std::collections::BTreeMap<String, std::net::SocketAddr>,
) -> Result<ExitCode> {
    let mut stop = StopSignals::install()?;
    let ending = match start_all(&plan, &mut mesh, &binds, &mut stop).await? {
        Some(ending) => ending,
        None => {
            print!("{}", report::format_table(&table_rows(&mesh)));
            println!("run dir: {}", mesh::display_path(mesh.run_path()));
            match plan.mode {
                ClientMode::Headless if !mesh.topology().clients().is_empty() => println!(
                    "headless clients record for {} s; Ctrl-C stops everything",
                    plan.client_secs
                ),
                _ => println!("Ctrl-C stops everything"),
            }
            wait(&plan, &mut mesh, &mut stop).await
        }
    };
    match &ending {
        Ending::Signal(name) => tracing::info!("{name}: stopping the run"),
        Ending::Elapsed => tracing::info!("--duration elapsed: stopping the run"),
        Ending::ClientsDone => tracing::info!("all clients finished: stopping the run"),
        Ending::StartupFailed(why) => tracing::error!("{why}; stopping the run"),
    }

    for exit in &mesh.shutdown() {
        tracing::debug!(
            "{} (pid {}) stopped: {}",
            exit.id,
            exit.pid,
            procs::describe_status(exit.status)
        );
    }
    let run_dir = mesh.procs_ref().run_dir().clone();
    let mut success = !matches!(ending, Ending::StartupFailed(_));
    if plan.mode == ClientMode::Headless && !mesh.topology().clients().is_empty() {
        println!("client results:");
        let clients = mesh.topology().clients().to_vec();
        for client in clients {
            let status = mesh.procs().status(&client.id);
            success &= status.is_some_and(|s| s.success());
            let status = status.map_or_else(|| "not started".to_owned(), procs::describe_status);
            let stats = run_dir.stats_file(&client.id);
            let summary = match std::fs::read_to_string(&stats) {
                Ok(text) => match ClientSummary::parse(&text) {
                    Ok(summary) => summary.to_string(),
                    Err(e) => format!("unreadable stats {}: {e}", mesh::display_path(&stats)),
                },
                Err(_) => format!("no stats file {}", mesh::display_path(&stats)),
            };
            println!("  {:<10} {status}; {summary}", client.id);
        }
    }
    drop(mesh);
    println!("run dir: {}", mesh::display_path(run_dir.path()));
    Ok(if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Starts the bootstrapper, servers, nodes and clients; `Some` if the run must end early.
async fn start_all(
    plan: &Plan,
    mesh: &mut Mesh,
    binds: &std::collections::BTreeMap<String, std::net::SocketAddr>,
    stop: &mut StopSignals,
) -> Result<Option<Ending>> {
    let topology = mesh.topology().clone();
    let boot = topology.bootstrapper().clone();
    mesh.start_node(&boot.id)?;
    if let Some(ending) = wait_ready(
        mesh,
        stop,
        std::slice::from_ref(&boot),
        BOOTSTRAPPER_READY,
        Some(&boot.id),
    )
    .await
    {
        return Ok(Some(ending));
    }
    let overlay: Vec<NodeSpec> = topology.overlay_nodes().cloned().collect();
    for node in &overlay {
        mesh.start_node(&node.id)?;
    }
    if let Some(ending) = wait_ready(mesh, stop, &overlay, OVERLAY_READY, Some(&boot.id)).await {
        return Ok(Some(ending));
    }
    for client in topology.clients() {
        let launch = ClientLaunch {
            mode: plan.mode,
            channel: None,
            secs: (plan.mode == ClientMode::Headless).then_some(plan.client_secs as f64),
            record: plan.mode == ClientMode::Headless,
            // On loopback clients pick their own address; in namespaces, their host's.
            bind: mesh
                .namespace(&client.id)
                .and(binds.get(&client.id).copied()),
        };
        mesh.start_client(client, &launch)?;
    }
    Ok(None)
}

/// Waits until every one of `nodes` has bound its address, up to `limit`. Returns an ending if
/// a stop signal came or `critical` died; otherwise warns about whoever is not bound yet.
async fn wait_ready(
    mesh: &mut Mesh,
    stop: &mut StopSignals,
    nodes: &[NodeSpec],
    limit: Duration,
    critical: Option<&str>,
) -> Option<Ending> {
    let deadline = Instant::now() + limit;
    loop {
        for exit in mesh.procs().poll_exits() {
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
            .filter(|n| mesh.procs().is_running(&n.id) && !mesh.is_bound(n))
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
async fn wait(plan: &Plan, mesh: &mut Mesh, stop: &mut StopSignals) -> Ending {
    let deadline = plan.duration.map(|d| Instant::now() + d);
    let clients: Vec<String> = match plan.mode {
        ClientMode::Headless => mesh
            .topology()
            .clients()
            .iter()
            .map(|c| c.id.clone())
            .collect(),
        _ => Vec::new(),
    };
    loop {
        for exit in mesh.procs().poll_exits() {
            report_exit(&exit, plan.mode == ClientMode::Gui);
        }
        if !clients.is_empty() && clients.iter().all(|id| !mesh.procs().is_running(id)) {
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
        mesh::display_path(&exit.log)
    );
}

fn table_rows(mesh: &Mesh) -> Vec<Row> {
    let topology = mesh.topology();
    mesh.procs_ref()
        .list()
        .into_iter()
        .map(|info| {
            let mut addr = match topology.node(&info.id) {
                Some(node) => node.addr.to_string(),
                None => topology
                    .client(&info.id)
                    .map_or_else(String::new, |c| format!("pops {}", c.pops.join(","))),
            };
            if let Some(ns) = mesh.namespace(&info.id) {
                addr = format!("{addr} (netns {ns})");
            }
            Row {
                id: info.id,
                role: info.role,
                addr,
                pid: info.pid,
                log: mesh::display_path(&info.log),
            }
        })
        .collect()
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
}
