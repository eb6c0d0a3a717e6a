//! `meshcast-lab run`: executes a [`Scenario`] on real processes and measures it.
//!
//! One run: a fresh run dir, the mesh brought up (bootstrapper, servers, nodes; every link
//! emulated from the run dir's topology copy so events can change it), a warm-up, then the
//! timeline from t = 0 to `duration_s`. Every second the runner reads every node's stats file:
//! where each client's PoP is, the tree path from the origin, how many copies of a stream
//! crossed each link. At the end the clients' stats, the nodes' counters and the recordings
//! (checked with `ffmpeg -xerror`) become a [`RunResult`], written as JSON and CSV, and the
//! expectations are checked.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use meshcast_topology::{LinkAttrs, Role, Topology};
use serde_json::Value;
use tokio::time::Instant;

use crate::mesh::{Bins, ClientLaunch, ClientMode, Mesh, MeshSetup, StopSignals};
use crate::procs::{self, Procs, RunDir};
use crate::results::{
    self, ClientResult, EventResult, ExpectationResult, Interval, LinkResult, NodeResult, Repair,
    RunResult, Snapshot, StressMeter,
};
use crate::scenario::{Action, KillTarget, LinkChange, Scenario};

/// How long the bootstrapper gets to bind.
const BOOTSTRAPPER_READY: Duration = Duration::from_secs(5);
/// How long servers and nodes get to bind.
const OVERLAY_READY: Duration = Duration::from_secs(15);
/// Stats sampling period.
const SAMPLE: Duration = Duration::from_secs(1);
/// Loop period (event timing resolution).
const TICK: Duration = Duration::from_millis(50);
/// Window after a fault in which a viewer's media gap counts as its repair.
const REPAIR_WINDOW: (f64, f64) = (-1.0, 5.0);
/// Test pattern the servers of a scenario run send (smaller than the server's default, so that
/// checking every recording stays cheap).
const SERVER_ARGS: [&str; 4] = ["--pattern-size", "854x480", "--video-kbps", "1500"];

/// Options of `run` that are not in the scenario.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Where run dirs go.
    pub runs_root: PathBuf,
    /// Videos folder for the servers (default: empty: a test pattern).
    pub videos: Option<PathBuf>,
    /// Run every host in its own network namespace.
    pub netns: bool,
    /// Also copy each run's `summary.json` to `DIR/<scenario>[@netns][@variant].json`.
    pub save_to: Option<PathBuf>,
    /// Check recordings with `ffmpeg -xerror`.
    pub decode_check: bool,
    /// Draw a progress bar (stderr is a terminal).
    pub progress: bool,
}

/// Where the processes of a run live: loopback, or namespaces prepared by the caller.
pub struct Placement {
    /// The topology as the processes see it.
    pub topology: Topology,
    /// Namespace of each node and client id.
    pub namespaces: BTreeMap<String, String>,
    /// Address each client binds.
    pub client_binds: BTreeMap<String, SocketAddr>,
    /// Kept alive for the run (the namespaces).
    pub guard: Option<Box<dyn std::any::Any>>,
    /// `loopback` or `netns`.
    pub mode: &'static str,
}

impl std::fmt::Debug for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placement")
            .field("topology", &self.topology.name())
            .field("namespaces", &self.namespaces)
            .field("client_binds", &self.client_binds)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The loopback placement: client N (from 0) binds A.B.C.(200+N):7600, in the /24 of the
/// bootstrapper (127.0.250.(200+N) when that is not a loopback address; at most 56 clients), so that PoP stats tell clients apart and
/// runs on different loopback /24s do not collide.
pub fn loopback_placement(topology: Topology) -> Placement {
    let [a, b, c] = match topology.bootstrapper().addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_loopback() => {
            let [a, b, c, _] = ip.octets();
            [a, b, c]
        }
        _ => [127, 0, 250],
    };
    let client_binds = topology
        .clients()
        .iter()
        .enumerate()
        .filter_map(|(i, client)| {
            let n = u8::try_from(200 + i).ok()?;
            Some((
                client.id.clone(),
                SocketAddr::from(([a, b, c, n], crate::underlay::CLIENT_PORT)),
            ))
        })
        .collect();
    Placement {
        topology,
        namespaces: BTreeMap::new(),
        client_binds,
        guard: None,
        mode: "loopback",
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// The timeline ran to its end.
    Done(Box<RunResult>),
    /// A stop signal came; everything was stopped.
    Interrupted(&'static str),
}

/// One client session in progress or ended.
struct Session {
    id: String,
    index: usize,
    channel: String,
    started_s: f64,
    ended_s: Option<f64>,
    exit: Option<String>,
    /// Path samples: path → count.
    paths: BTreeMap<Vec<String>, u32>,
    stretches: Vec<f64>,
    last_pop: Option<String>,
    last_path: Option<Vec<String>>,
}

/// A fault whose repair is measured.
struct PendingRepair {
    at_s: f64,
    event: String,
    clients: Vec<(String, usize)>,
}

struct Runner<'a> {
    scenario: &'a Scenario,
    opts: &'a RunOptions,
    mesh: Mesh,
    binds: BTreeMap<String, SocketAddr>,
    t0: Instant,
    sessions: Vec<Session>,
    events: Vec<EventResult>,
    repairs: Vec<PendingRepair>,
    killed: BTreeSet<String>,
    last_killed: Option<String>,
    restarts: BTreeMap<String, u32>,
    /// Loss of each cut link before the cut, restored by the heal.
    saved_loss: BTreeMap<(String, String), Option<f64>>,
    unexpected: Vec<String>,
    stress: StressMeter,
    snapshot: Snapshot,
}

/// Runs `scenario` once (with `sweep_loss` on every link, if given).
pub async fn run_once(
    scenario: &Scenario,
    sweep_loss: Option<f64>,
    opts: &RunOptions,
    placement: impl FnOnce(Topology, &Path) -> Result<Placement>,
    stop: &mut StopSignals,
) -> Result<Outcome> {
    let wall = Instant::now();
    let variant = sweep_loss.map_or_else(String::new, |l| format!("loss={l}"));
    let mut topology = scenario.topology.clone();
    if let Some(loss) = sweep_loss {
        let pairs: Vec<(String, String)> = topology
            .links()
            .iter()
            .map(|l| (l.a.clone(), l.b.clone()))
            .collect();
        for (a, b) in pairs {
            let mut attrs = topology
                .link_between(&a, &b)
                .map(|l| l.attrs)
                .unwrap_or_default();
            attrs.loss = Some(loss);
            topology.set_link_attrs(&a, &b, attrs);
        }
    }
    let name = if variant.is_empty() {
        scenario.name.clone()
    } else {
        format!("{}-{}", scenario.name, variant.replace('=', ""))
    };
    let run = RunDir::create(&opts.runs_root, &name)?;
    // Registered as live before any namespace exists, so a crash at any later point is
    // cleaned up on the next start.
    let procs = Procs::new(run)?;
    let run = procs.run_dir().clone();
    let placement = placement(topology, run.path())?;
    let clients = !placement.topology.clients().is_empty();
    let bins = Bins::locate(&placement.topology, clients)?;
    let videos = match &opts.videos {
        Some(dir) => std::path::absolute(dir)?,
        None => {
            let dir = run.path().join("videos");
            std::fs::create_dir_all(&dir)?;
            dir
        }
    };
    let mut videos_for = BTreeMap::new();
    for (i, (server, names)) in scenario.channels.iter().enumerate() {
        let dir = run.path().join(format!("videos-{server}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (j, name) in names.iter().enumerate() {
            let clip = clip(&opts.runs_root, name, i * 7 + j)?;
            let to = dir.join(format!("{name}.mp4"));
            std::fs::hard_link(&clip, &to)
                .or_else(|_| std::fs::copy(&clip, &to).map(|_| ()))
                .with_context(|| format!("cannot place {} in {}", clip.display(), dir.display()))?;
        }
        videos_for.insert(server.clone(), dir);
    }
    let mut overlay_args = Vec::new();
    if scenario.dual_parent {
        overlay_args.push("--dual-parent".to_owned());
    }
    let mut mesh = Mesh::new(
        procs,
        MeshSetup {
            topology: placement.topology,
            videos,
            videos_for,
            bins,
            emulate: Some(true),
            overlay_args,
            server_args: SERVER_ARGS.iter().map(|s| (*s).to_owned()).collect(),
            namespaces: placement.namespaces,
        },
    )?;
    if let Some(guard) = placement.guard {
        mesh.hold(guard);
    }
    let mode = placement.mode;
    let mut runner = Runner {
        scenario,
        opts,
        mesh,
        binds: placement.client_binds,
        t0: Instant::now(),
        sessions: Vec::new(),
        events: Vec::new(),
        repairs: Vec::new(),
        killed: BTreeSet::new(),
        last_killed: None,
        restarts: BTreeMap::new(),
        saved_loss: BTreeMap::new(),
        unexpected: Vec::new(),
        stress: StressMeter::default(),
        snapshot: Snapshot::new(),
    };
    tracing::info!(
        "{}{}: run dir {}",
        scenario.name,
        if variant.is_empty() {
            String::new()
        } else {
            format!(" [{variant}]")
        },
        crate::mesh::display_path(runner.mesh.run_path())
    );
    if let Some(signal) = runner.bring_up(stop).await? {
        runner.mesh.shutdown();
        return Ok(Outcome::Interrupted(signal));
    }
    if let Some(signal) = runner.timeline(stop).await? {
        runner.mesh.shutdown();
        return Ok(Outcome::Interrupted(signal));
    }
    let mut result = runner.finish(mode).await?;
    result.variant = variant;
    result.sweep_loss = sweep_loss;
    result.wall_s = wall.elapsed().as_secs_f64();
    let results_dir = runner.mesh.run_path().join("results");
    let expectations: Vec<ExpectationResult> = scenario
        .expect
        .iter()
        .map(|e| {
            let (value, passed) = e.check(&result);
            ExpectationResult {
                text: e.to_string(),
                value,
                passed,
            }
        })
        .collect();
    // A fault that could not be injected means the scenario did not test what it says.
    result.passed = expectations.iter().all(|e| e.passed)
        && result.unexpected_exits.is_empty()
        && result.events.iter().all(|e| e.error.is_none());
    result.expectations = expectations;
    results::write_all(&results_dir, &result)
        .with_context(|| format!("cannot write results to {}", results_dir.display()))?;
    if let Some(dir) = &opts.save_to {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut stem = scenario.name.clone();
        if result.mode != "loopback" {
            stem = format!("{stem}@{}", result.mode);
        }
        if !result.variant.is_empty() {
            stem = format!("{stem}@{}", result.variant);
        }
        let file = dir.join(format!("{stem}.json"));
        let json = serde_json::to_string_pretty(&result)? + "\n";
        std::fs::write(&file, json).with_context(|| format!("cannot write {}", file.display()))?;
    }
    drop(runner);
    Ok(Outcome::Done(Box::new(result)))
}

impl Runner<'_> {
    fn now_s(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// Bootstrapper, then servers and nodes, then the warm-up. `Some(signal)` if interrupted.
    async fn bring_up(&mut self, stop: &mut StopSignals) -> Result<Option<&'static str>> {
        let topology = self.mesh.topology().clone();
        let boot = topology.bootstrapper().clone();
        self.mesh.start_node(&boot.id)?;
        if let Some(s) = self
            .wait_bound(std::slice::from_ref(&boot), BOOTSTRAPPER_READY, stop)
            .await?
        {
            return Ok(Some(s));
        }
        let overlay: Vec<_> = topology.overlay_nodes().cloned().collect();
        for node in &overlay {
            self.mesh.start_node(&node.id)?;
        }
        if let Some(s) = self.wait_bound(&overlay, OVERLAY_READY, stop).await? {
            return Ok(Some(s));
        }
        let warmup = Instant::now() + Duration::from_secs_f64(self.scenario.warmup_s);
        tokio::select! {
            signal = stop.recv() => return Ok(Some(signal)),
            () = tokio::time::sleep_until(warmup) => {}
        }
        Ok(None)
    }

    async fn wait_bound(
        &mut self,
        nodes: &[meshcast_topology::NodeSpec],
        limit: Duration,
        stop: &mut StopSignals,
    ) -> Result<Option<&'static str>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(exit) = self.mesh.procs().poll_exits().into_iter().next() {
                anyhow::bail!(
                    "{} exited during startup ({}); last lines of {}:\n{}",
                    exit.id,
                    procs::describe_status(exit.status),
                    exit.log.display(),
                    procs::log_tail(&exit.log, 15)
                );
            }
            let waiting: Vec<&str> = nodes
                .iter()
                .filter(|n| !self.mesh.is_bound(n))
                .map(|n| n.id.as_str())
                .collect();
            if waiting.is_empty() {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                anyhow::bail!("not bound after {limit:?}: {}", waiting.join(", "));
            }
            tokio::select! {
                signal = stop.recv() => return Ok(Some(signal)),
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// Runs the timeline. `Some(signal)` if interrupted.
    async fn timeline(&mut self, stop: &mut StopSignals) -> Result<Option<&'static str>> {
        self.t0 = Instant::now();
        let duration = self.scenario.duration_s;
        for id in self.scenario.initial_clients() {
            let id = id.to_owned();
            self.watch(&id, None);
        }
        let mut next_event = 0;
        let mut next_sample = Instant::now();
        let mut last_line = Instant::now();
        let tty = self.opts.progress && std::io::stderr().is_terminal();
        loop {
            let t = self.now_s();
            while next_event < self.scenario.events.len()
                && self.scenario.events[next_event].at <= t
            {
                let action = self.scenario.events[next_event].action.clone();
                self.execute(&action);
                next_event += 1;
            }
            if Instant::now() >= next_sample {
                self.sample();
                next_sample += SAMPLE;
            }
            self.poll_exits();
            if tty {
                self.draw_progress(t, next_event);
            } else if last_line.elapsed() >= Duration::from_secs(10) {
                last_line = Instant::now();
                eprintln!(
                    "  {}: {:.0}/{:.0} s, {} client(s) watching",
                    self.scenario.name,
                    t.min(duration),
                    duration,
                    self.watching()
                );
            }
            if t >= duration {
                break;
            }
            tokio::select! {
                signal = stop.recv() => {
                    if tty { eprintln!(); }
                    return Ok(Some(signal));
                }
                () = tokio::time::sleep(TICK) => {}
            }
        }
        if tty {
            self.draw_progress(duration, next_event);
            eprintln!();
        }
        Ok(None)
    }

    fn watching(&self) -> usize {
        self.sessions.iter().filter(|s| s.ended_s.is_none()).count()
    }

    fn draw_progress(&self, t: f64, next_event: usize) {
        const WIDTH: usize = 30;
        let duration = self.scenario.duration_s;
        let frac = (t / duration).clamp(0.0, 1.0);
        let filled = (frac * WIDTH as f64).round() as usize;
        let mut bar = String::with_capacity(WIDTH * 3);
        // Event positions are marked on the bar so the timeline is visible ahead of time.
        let marks: BTreeSet<usize> = self
            .scenario
            .events
            .iter()
            .map(|e| ((e.at / duration) * WIDTH as f64).floor() as usize)
            .collect();
        for i in 0..WIDTH {
            bar.push(match (i < filled, marks.contains(&i)) {
                (true, _) => '█',
                (false, true) => '┆',
                (false, false) => '░',
            });
        }
        let next = self.scenario.events.get(next_event).map_or_else(
            || "no more events".to_owned(),
            |e| format!("next {:.0} s: {}", e.at, e.action),
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} [{bar}] {t:5.1}/{duration:.0} s · {} watching · {next}",
            self.scenario.name,
            self.watching()
        );
        let _ = err.flush();
    }

    /// Starts a session of `client`.
    fn watch(&mut self, client: &str, channel: Option<String>) -> Option<String> {
        // A session that just ended must be filed before a new one of the same client starts.
        self.poll_exits();
        let spec = self.mesh.topology().client(client)?.clone();
        if self.mesh.procs().is_running(client) {
            return Some(format!("{client} is already watching"));
        }
        let t = self.now_s();
        let launch = ClientLaunch {
            mode: ClientMode::Headless,
            channel: channel.clone(),
            secs: Some((self.scenario.duration_s - t).max(0.5)),
            record: true,
            bind: self.binds.get(client).copied(),
        };
        let channel = channel
            .or(spec.watch.clone())
            .unwrap_or_else(|| "test-pattern".to_owned());
        match self.mesh.start_client(&spec, &launch) {
            Ok(_) => {
                let index = self.sessions.iter().filter(|s| s.id == client).count();
                self.sessions.push(Session {
                    id: client.to_owned(),
                    index,
                    channel,
                    started_s: t,
                    ended_s: None,
                    exit: None,
                    paths: BTreeMap::new(),
                    stretches: Vec::new(),
                    last_pop: None,
                    last_path: None,
                });
                None
            }
            Err(e) => Some(e.to_string()),
        }
    }

    /// Files a session's recording and stats under a per-session name once it has ended.
    fn end_session(&mut self, client: &str, exit: String) {
        let t = self.now_s();
        let run = self.mesh.procs_ref().run_dir().clone();
        let Some(session) = self
            .sessions
            .iter_mut()
            .rev()
            .find(|s| s.id == client && s.ended_s.is_none())
        else {
            return;
        };
        session.ended_s = Some(t);
        session.exit = Some(exit);
        let tag = format!("{client}.session{}", session.index);
        let _ = std::fs::rename(
            run.path().join(format!("{client}.ts")),
            run.path().join(format!("{tag}.ts")),
        );
        let _ = std::fs::rename(run.stats_file(client), run.stats_file(&tag));
    }

    fn poll_exits(&mut self) {
        for exit in self.mesh.procs().poll_exits() {
            let status = procs::describe_status(exit.status);
            if exit.role == "client" {
                if !exit.status.success() {
                    self.unexpected
                        .push(format!("client {} ({status})", exit.id));
                }
                self.end_session(&exit.id, status);
            } else if !self.killed.contains(&exit.id) {
                tracing::warn!(
                    "{} exited unexpectedly ({status}); last lines of {}:\n{}",
                    exit.id,
                    exit.log.display(),
                    procs::log_tail(&exit.log, 10)
                );
                self.unexpected.push(format!("{} ({status})", exit.id));
            }
        }
    }

    /// Reads every running server's and node's stats; updates paths and link stress.
    fn sample(&mut self) {
        let ids: Vec<String> = self
            .mesh
            .topology()
            .overlay_nodes()
            .map(|n| n.id.clone())
            .collect();
        let mut snapshot = Snapshot::new();
        for id in ids {
            if !self.mesh.procs().is_running(&id) {
                continue;
            }
            if let Some(stats) = self.mesh.stats(&id) {
                snapshot.insert(id, stats);
            }
        }
        self.stress.sample(&snapshot);
        let topology = self.mesh.topology().clone();
        for session in self.sessions.iter_mut().filter(|s| s.ended_s.is_none()) {
            let Some(bind) = self.binds.get(&session.id) else {
                continue;
            };
            let Some((pop, stream)) =
                results::pop_of(&snapshot, &bind.to_string(), &session.channel)
            else {
                continue;
            };
            session.last_pop = Some(pop.clone());
            if let Some(path) = results::path_to(&snapshot, &pop, &stream) {
                if let Some(s) = results::stretch(&topology, &path) {
                    session.stretches.push(s);
                }
                *session.paths.entry(path.clone()).or_insert(0) += 1;
                session.last_path = Some(path);
            }
        }
        self.snapshot = snapshot;
    }

    fn execute(&mut self, action: &Action) {
        let at_s = self.now_s();
        let mut target = None;
        let error = match action {
            Action::Watch { client, channel } => {
                target = Some(client.clone());
                self.watch(client, channel.clone())
            }
            Action::Stop { client } => {
                target = Some(client.clone());
                match self.mesh.stop(client) {
                    Ok(()) => {
                        self.end_session(client, "stopped by the scenario".into());
                        None
                    }
                    Err(e) => Some(e.to_string()),
                }
            }
            Action::Kill(kill) => {
                // Fresh stats, so that "the relay of c1" is the relay of now.
                self.sample();
                match self.resolve(kill) {
                    Ok(node) => {
                        target = Some(node.clone());
                        self.note_fault(at_s, action, |path| path.contains(&node));
                        self.killed.insert(node.clone());
                        self.last_killed = Some(node.clone());
                        let error = self.mesh.kill(&node).err().map(|e| e.to_string());
                        // Reaped now, so a restart at the same moment is not mistaken for it.
                        self.poll_exits();
                        error
                    }
                    Err(e) => Some(e),
                }
            }
            Action::Restart { node } => {
                let node = match node {
                    Some(node) => Some(node.clone()),
                    None => self.last_killed.take(),
                };
                match node {
                    Some(node) => {
                        target = Some(node.clone());
                        match self.mesh.start_node(&node) {
                            Ok(_) => {
                                *self.restarts.entry(node.clone()).or_insert(0) += 1;
                                self.killed.remove(&node);
                                None
                            }
                            Err(e) => Some(e.to_string()),
                        }
                    }
                    None => Some("no killed node is waiting for a restart".into()),
                }
            }
            Action::Partition { a, b } => {
                self.sample();
                let current = self.mesh.link_attrs(a, b).unwrap_or_default();
                self.saved_loss.entry(key(a, b)).or_insert(current.loss);
                self.note_fault(at_s, action, |path| {
                    path.windows(2)
                        .any(|w| (w[0] == *a && w[1] == *b) || (w[0] == *b && w[1] == *a))
                });
                let cut = LinkAttrs {
                    loss: Some(1.0),
                    ..current
                };
                self.mesh.set_link(a, b, cut).err().map(|e| e.to_string())
            }
            Action::Heal { a, b } => match self.saved_loss.remove(&key(a, b)) {
                // Only the loss goes back: other changes made meanwhile stay.
                Some(loss) => {
                    let attrs = LinkAttrs {
                        loss,
                        ..self.mesh.link_attrs(a, b).unwrap_or_default()
                    };
                    self.mesh.set_link(a, b, attrs).err().map(|e| e.to_string())
                }
                None => Some(format!("{a}-{b} is not cut")),
            },
            Action::Link { link, change } => {
                let pairs: Vec<(String, String)> = match link {
                    Some((a, b)) => vec![(a.clone(), b.clone())],
                    None => self
                        .mesh
                        .topology()
                        .links()
                        .iter()
                        .map(|l| (l.a.clone(), l.b.clone()))
                        .collect(),
                };
                let changes: Vec<(String, String, LinkAttrs)> = pairs
                    .into_iter()
                    .map(|(a, b)| {
                        let attrs = merge(self.mesh.link_attrs(&a, &b).unwrap_or_default(), change);
                        (a, b, attrs)
                    })
                    .collect();
                self.mesh.set_links(&changes).err().map(|e| e.to_string())
            }
        };
        if let Some(e) = &error {
            tracing::warn!("event at {at_s:.1} s ({action}): {e}");
        } else if !(self.opts.progress && std::io::stderr().is_terminal()) {
            eprintln!(
                "  {}: t={at_s:.1} s {action}{}",
                self.scenario.name,
                target
                    .as_deref()
                    .filter(|t| !action.to_string().contains(t))
                    .map_or_else(String::new, |t| format!(" ({t})"))
            );
        }
        self.events.push(EventResult {
            at_s,
            action: action.to_string(),
            target,
            error,
        });
    }

    /// Remembers which watching clients a fault affects (their last path matched).
    fn note_fault(&mut self, at_s: f64, action: &Action, hits: impl Fn(&[String]) -> bool) {
        let clients: Vec<(String, usize)> = self
            .sessions
            .iter()
            .filter(|s| s.ended_s.is_none())
            .filter(|s| s.last_path.as_deref().is_some_and(&hits))
            .map(|s| (s.id.clone(), s.index))
            .collect();
        self.repairs.push(PendingRepair {
            at_s,
            event: action.to_string(),
            clients,
        });
    }

    fn resolve(&self, kill: &KillTarget) -> Result<String, String> {
        let session_of = |client: &str| {
            self.sessions
                .iter()
                .rev()
                .find(|s| s.id == client && s.ended_s.is_none())
                .ok_or_else(|| format!("{client} is not watching"))
        };
        match kill {
            KillTarget::Node(node) => Ok(node.clone()),
            KillTarget::PopOf(client) => session_of(client)?
                .last_pop
                .clone()
                .ok_or_else(|| format!("no PoP serves {client} yet")),
            KillTarget::RelayOf(client) => {
                let session = session_of(client)?;
                let path = session
                    .last_path
                    .as_ref()
                    .ok_or_else(|| format!("no path to {client} yet"))?;
                // origin, ..., relay, PoP: the relay feeding the PoP, if it is not the origin.
                match path.len() {
                    n if n >= 3 => Ok(path[n - 2].clone()),
                    _ => Err(format!(
                        "{client}'s PoP is fed by the server directly ({}): no relay to kill",
                        path.join(" > ")
                    )),
                }
            }
        }
    }

    /// Lets the clients finish, stops everything, collects the results.
    async fn finish(&mut self, mode: &str) -> Result<RunResult> {
        // Clients were told to stop at the end of the timeline; give them a moment.
        let deadline = Instant::now() + Duration::from_secs(8);
        while self.watching() > 0 && Instant::now() < deadline {
            self.poll_exits();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let still: Vec<String> = self
            .sessions
            .iter()
            .filter(|s| s.ended_s.is_none())
            .map(|s| s.id.clone())
            .collect();
        for id in still {
            let _ = self.mesh.stop(&id);
            self.end_session(&id, "stopped at the end".into());
        }
        self.sample();
        self.poll_exits();
        let final_stats = self.snapshot.clone();
        self.mesh.shutdown();

        let topology = self.mesh.topology().clone();
        let run = self.mesh.procs_ref().run_dir().clone();
        let mut clients = Vec::new();
        for s in &self.sessions {
            let tag = format!("{}.session{}", s.id, s.index);
            let stats: Option<Value> = std::fs::read_to_string(run.stats_file(&tag))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            let recording = run.path().join(format!("{tag}.ts"));
            let decode_ok =
                (self.opts.decode_check && recording.exists()).then(|| decodes_cleanly(&recording));
            clients.push(client_result(s, stats.as_ref(), decode_ok.flatten()));
        }
        let played: Vec<f64> = clients
            .iter()
            .filter(|c| c.bitrate_kbps > 0.0)
            .map(|c| c.bitrate_kbps)
            .collect();
        let stream_kbps = if played.is_empty() {
            0.0
        } else {
            played.iter().sum::<f64>() / played.len() as f64
        };
        let nodes = topology
            .overlay_nodes()
            .filter_map(|n| {
                let stats = final_stats
                    .get(&n.id)
                    .cloned()
                    .or_else(|| self.mesh.stats(&n.id))?;
                Some(node_result(
                    &n.id,
                    n.role,
                    &stats,
                    stream_kbps,
                    self.restarts.get(&n.id).copied().unwrap_or(0),
                ))
            })
            .collect();
        let out = results::media_out(&final_stats);
        let links = self
            .stress
            .max
            .iter()
            .map(|((a, b), stress)| {
                let sum = |from: &str, to: &str| {
                    out.iter()
                        .filter(|((f, t, _), _)| f == from && t == to)
                        .map(|(_, c)| *c)
                        .sum()
                };
                LinkResult {
                    a: a.clone(),
                    b: b.clone(),
                    a_to_b: sum(a, b),
                    b_to_a: sum(b, a),
                    stress: *stress,
                }
            })
            .collect();
        let repairs = self
            .repairs
            .iter()
            .flat_map(|p| {
                p.clients.iter().filter_map(|(id, index)| {
                    let c = clients
                        .iter()
                        .zip(&self.sessions)
                        .find(|(_, s)| s.id == *id && s.index == *index)?
                        .0;
                    let (lo, hi) = (p.at_s + REPAIR_WINDOW.0, p.at_s + REPAIR_WINDOW.1);
                    let repair_ms = c
                        .gaps
                        .iter()
                        .filter(|g| g.start_s >= lo && g.start_s <= hi)
                        .map(|g| g.duration_ms)
                        .fold(0.0, f64::max);
                    Some(Repair {
                        at_s: p.at_s,
                        event: p.event.clone(),
                        client: id.clone(),
                        repair_ms,
                    })
                })
            })
            .collect();
        Ok(RunResult {
            scenario: self.scenario.name.clone(),
            description: self.scenario.description.clone(),
            topology: topology.name().to_owned(),
            mode: mode.to_owned(),
            machine: machine(),
            overlay_nodes: topology.overlay_nodes().count(),
            overlay_links: topology.links().len(),
            duration_s: self.scenario.duration_s,
            stream_kbps,
            clients,
            nodes,
            links,
            events: self.events.clone(),
            repairs,
            unexpected_exits: self.unexpected.clone(),
            ..RunResult::default()
        })
    }
}

/// `Linux 6.18.0, 2 CPUs`: what the report says the numbers were measured on.
fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("Linux {kernel}, {cpus} CPUs")
}

fn key(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

fn merge(mut attrs: LinkAttrs, change: &LinkChange) -> LinkAttrs {
    if change.loss.is_some() {
        attrs.loss = change.loss;
    }
    if change.latency_ms.is_some() {
        attrs.latency_ms = change.latency_ms;
    }
    if change.jitter_ms.is_some() {
        attrs.jitter_ms = change.jitter_ms;
    }
    if change.rate_mbit.is_some() {
        attrs.rate_mbit = change.rate_mbit;
    }
    attrs
}

/// Picture sources for generated channels, so that channels look different.
const CLIP_SOURCES: [&str; 4] = ["testsrc2", "smptehdbars", "rgbtestsrc", "testsrc"];

/// A 12-second 480p H.264/AAC MP4 clip named `name`, made once and kept in `RUNS_ROOT/.clips/`
/// (servers loop it live); `index` picks the picture and the tone.
fn clip(runs_root: &Path, name: &str, index: usize) -> Result<PathBuf> {
    let dir = runs_root.join(".clips");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let source = CLIP_SOURCES[index % CLIP_SOURCES.len()];
    let tone = 330 + 110 * (index % 8);
    let file = dir.join(format!("{name}-{source}-{tone}.mp4"));
    if file.exists() {
        return Ok(file);
    }
    let tmp = file.with_extension("tmp.mp4");
    let output = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("{source}=size=854x480:rate=25"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency={tone}:sample_rate=48000"))
        .args([
            "-t",
            "12",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "50",
            "-b:v",
            "1500k",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
        ])
        .arg(&tmp)
        .stdin(Stdio::null())
        .process_group(0)
        .output()
        .context(
            "cannot run ffmpeg to make a channel clip (install it with `apt-get install ffmpeg`)",
        )?;
    if !output.status.success() {
        anyhow::bail!(
            "ffmpeg could not make the clip for channel {name}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    std::fs::rename(&tmp, &file).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(file)
}

/// `ffmpeg -v error -xerror -i FILE -f null -` exits 0: `Some(true)`. `None` when ffmpeg cannot
/// run.
fn decodes_cleanly(file: &Path) -> Option<bool> {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Out of the terminal's process group: a Ctrl-C is the lab's to handle.
        .process_group(0)
        .status()
        .ok()?;
    // Killed by a signal, or FFmpeg's "interrupted" (255): no verdict on the file.
    match status.code() {
        None | Some(255) => None,
        Some(code) => Some(code == 0),
    }
}

fn f(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn u(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn intervals(v: &Value, key: &str, started_s: f64) -> Vec<Interval> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|s| {
                    Some(Interval {
                        start_s: started_s + f(s, "start_ms")? / 1000.0,
                        duration_ms: f(s, "duration_ms")?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn client_result(s: &Session, stats: Option<&Value>, decode_ok: Option<bool>) -> ClientResult {
    let path = s
        .paths
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(p, _)| p.clone())
        .unwrap_or_default();
    let stretch = (!s.stretches.is_empty())
        .then(|| s.stretches.iter().sum::<f64>() / s.stretches.len() as f64);
    let mut c = ClientResult {
        id: s.id.clone(),
        started_s: s.started_s,
        ended_s: s.ended_s.unwrap_or(s.started_s),
        exit: s.exit.clone().unwrap_or_default(),
        pop: s.last_pop.clone(),
        decode_ok,
        path,
        stretch,
        ..ClientResult::default()
    };
    if let Some(v) = stats {
        c.startup_ms = f(v, "startup_ms");
        c.first_keyframe_ms = f(v, "first_keyframe_ms");
        c.continuity = f(v, "continuity_index");
        c.lost_packets = u(v, "lost_packets");
        c.late_packets = u(v, "late_packets");
        c.recovered_packets = u(v, "recovered_packets");
        c.cc_errors = u(v, "continuity_errors");
        c.media_packets = u(v, "media_packets");
        c.bitrate_kbps = f(v, "bitrate_kbps").unwrap_or(0.0);
        c.stalls = intervals(v, "stalls", s.started_s);
        c.gaps = intervals(v, "gaps", s.started_s);
    }
    c
}

fn node_result(id: &str, role: Role, stats: &Value, stream_kbps: f64, restarts: u32) -> NodeResult {
    let uptime_s = f(stats, "uptime_ms").unwrap_or(0.0) / 1000.0;
    let mut control_tx = 0u64;
    let mut control_rx = 0u64;
    let mut media_tx = 0u64;
    let mut add = |traffic: Option<&Value>| {
        if let Some(t) = traffic {
            control_tx += u(t, "control_tx_bytes");
            control_rx += u(t, "control_rx_bytes");
            media_tx += u(t, "media_tx_bytes");
        }
    };
    for list in ["neighbours", "clients"] {
        for entry in stats
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(entry.get("traffic"));
        }
    }
    let per_s = |bytes: u64| {
        if uptime_s > 0.0 {
            bytes as f64 / uptime_s
        } else {
            0.0
        }
    };
    let retransmitted = stats
        .get("routes")
        .and_then(Value::as_array)
        .map_or(0, |r| r.iter().map(|r| u(r, "retransmitted")).sum());
    // Second copies (dual parents) and stale announcements (flooding) are normal, not drops.
    let drops = stats
        .get("drops")
        .and_then(Value::as_object)
        .map_or(0, |d| {
            d.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "duplicate_media" | "stale_announce"))
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        });
    let control_tx_bps = per_s(control_tx);
    NodeResult {
        id: id.to_owned(),
        role: role.as_str().to_owned(),
        uptime_s,
        control_tx_bps,
        control_rx_bps: per_s(control_rx),
        media_tx_bps: per_s(media_tx),
        overhead_pct: (stream_kbps > 0.0)
            .then(|| control_tx_bps * 8.0 / (stream_kbps * 1000.0) * 100.0),
        retransmitted,
        drops,
        restarts,
    }
}
