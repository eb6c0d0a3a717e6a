//! One topology running as real processes: what `up` and `run` share.
//!
//! A [`Mesh`] owns the processes of a run ([`Procs`]), the run dir's copy of the topology that
//! every process reads (the bootstrapper its directory, servers and nodes their emulated
//! links), and — in namespace mode — the network namespace each process runs in. It starts and
//! stops processes by topology id, kills and restarts them, and changes link attributes at run
//! time by rewriting the copy, which the processes follow within a second.
//!
//! Processes are spawned from the calling thread, which must outlive them (their parent-death
//! signal is tied to it): both `up` and `run` drive a mesh from the main thread.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use meshcast_topology::{ClientSpec, LinkAttrs, NodeSpec, Role, Topology};
use serde_json::Value;

use crate::procs::{self, Procs, ProcsError, Signal};
use crate::ready;

/// How the clients of a topology run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientMode {
    /// One meshcast-client window per `[[client]]`.
    Gui,
    /// `meshcast-client --headless`, recording to `RUN_DIR/<id>.ts` with stats.
    Headless,
    /// No clients.
    None,
}

impl ClientMode {
    /// `Gui` when a display is set, else `Headless`.
    pub fn detect() -> ClientMode {
        let set = |var| std::env::var_os(var).is_some_and(|v| !v.is_empty());
        if set("DISPLAY") || set("WAYLAND_DISPLAY") {
            ClientMode::Gui
        } else {
            ClientMode::Headless
        }
    }
}

/// The binaries a run needs, found next to the lab's own binary or on `PATH`.
#[derive(Clone, Debug)]
pub struct Bins {
    /// `meshcast-bootstrapper`.
    pub bootstrapper: PathBuf,
    /// `meshcast-server`, when the topology has servers.
    pub server: Option<PathBuf>,
    /// `meshcast-node`, when the topology has nodes.
    pub node: Option<PathBuf>,
    /// `meshcast-client`, when clients will be started.
    pub client: Option<PathBuf>,
}

impl Bins {
    /// Finds what `topology` needs; `clients` says whether clients will run.
    pub fn locate(topology: &Topology, clients: bool) -> Result<Bins, ProcsError> {
        let wants = |role| topology.nodes().iter().any(|n| n.role == role);
        Ok(Bins {
            bootstrapper: procs::locate_binary("meshcast-bootstrapper")?,
            server: wants(Role::Server)
                .then(|| procs::locate_binary("meshcast-server"))
                .transpose()?,
            node: wants(Role::Node)
                .then(|| procs::locate_binary("meshcast-node"))
                .transpose()?,
            client: clients
                .then(|| procs::locate_binary("meshcast-client"))
                .transpose()?,
        })
    }
}

/// How one client process is started.
#[derive(Clone, Debug)]
pub struct ClientLaunch {
    /// Window or headless (`ClientMode::None` starts nothing).
    pub mode: ClientMode,
    /// Channel to watch; `None` uses the `[[client]]`'s `watch` (headless: or `test-pattern`).
    pub channel: Option<String>,
    /// Headless: stop after this many seconds.
    pub secs: Option<f64>,
    /// Headless: record what is played to `RUN_DIR/<id>.ts`.
    pub record: bool,
    /// Address to bind, so that the PoP's stats tell which client is which.
    pub bind: Option<SocketAddr>,
}

/// Errors of mesh operations.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// A process operation failed.
    #[error(transparent)]
    Procs(#[from] ProcsError),
    /// An id that is not in the topology.
    #[error("no node or client {0:?} in the topology")]
    UnknownId(String),
    /// No link joins the two ids.
    #[error("no link between {0} and {1} in the topology")]
    UnknownLink(String, String),
    /// The binary for a role was not located.
    #[error("no {0} binary was located for this run")]
    NoBinary(&'static str),
    /// Writing the run dir's topology copy failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A topology running as processes.
pub struct Mesh {
    topology: Topology,
    /// The run dir's `topology.toml`: read by the bootstrapper and followed by the emulation.
    topology_file: PathBuf,
    videos: PathBuf,
    /// Videos folder of particular servers (their own channels), instead of `videos`.
    videos_for: BTreeMap<String, PathBuf>,
    bins: Bins,
    /// Pass `--emulation` to servers and nodes even when no link has attributes yet, so that
    /// links can be changed at run time.
    emulate: bool,
    /// Extra arguments for servers and nodes (such as `--dual-parent`).
    overlay_args: Vec<String>,
    /// Extra arguments for servers only (such as the test pattern's size).
    server_args: Vec<String>,
    /// Network namespace of each node and client id, in namespace mode.
    namespaces: BTreeMap<String, String>,
    procs: Procs,
    /// Kept alive until the processes are stopped (the namespaces they run in).
    guard: Option<Box<dyn std::any::Any>>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("topology", &self.topology.name())
            .field("topology_file", &self.topology_file)
            .field("namespaces", &self.namespaces.len())
            .finish_non_exhaustive()
    }
}

/// What [`Mesh::new`] needs.
#[derive(Debug)]
pub struct MeshSetup {
    /// The topology as the processes will see it (addresses already moved for namespaces).
    pub topology: Topology,
    /// Videos folder of the servers.
    pub videos: PathBuf,
    /// Videos folder of particular servers, instead of `videos`.
    pub videos_for: BTreeMap<String, PathBuf>,
    /// Binaries.
    pub bins: Bins,
    /// See [`Mesh`]'s `emulate`: `None` decides from the topology (any link attribute).
    pub emulate: Option<bool>,
    /// Extra arguments for servers and nodes.
    pub overlay_args: Vec<String>,
    /// Extra arguments for servers only.
    pub server_args: Vec<String>,
    /// Network namespace of each node and client id (empty on loopback).
    pub namespaces: BTreeMap<String, String>,
}

impl Mesh {
    /// A mesh in `procs`' run dir; writes the topology copy. Nothing is started yet.
    pub fn new(procs: Procs, setup: MeshSetup) -> Result<Mesh, MeshError> {
        let topology_file = procs.run_dir().path().join("topology.toml");
        let emulate = setup
            .emulate
            .unwrap_or_else(|| setup.topology.links().iter().any(|l| !l.attrs.is_empty()));
        let mesh = Mesh {
            topology: setup.topology,
            topology_file,
            videos: setup.videos,
            videos_for: setup.videos_for,
            bins: setup.bins,
            emulate,
            overlay_args: setup.overlay_args,
            server_args: setup.server_args,
            namespaces: setup.namespaces,
            procs,
            guard: None,
        };
        mesh.write_topology()?;
        Ok(mesh)
    }

    /// Keeps `guard` alive until the processes have been stopped (namespaces).
    pub fn hold(&mut self, guard: Box<dyn std::any::Any>) {
        self.guard = Some(guard);
    }

    /// The topology as running (with the link attributes set so far).
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The processes.
    pub fn procs(&mut self) -> &mut Procs {
        &mut self.procs
    }

    /// The processes, read-only.
    pub fn procs_ref(&self) -> &Procs {
        &self.procs
    }

    /// The run dir.
    pub fn run_path(&self) -> &Path {
        self.procs.run_dir().path()
    }

    /// The namespace `id` runs in, in namespace mode.
    pub fn namespace(&self, id: &str) -> Option<&str> {
        self.namespaces.get(id).map(String::as_str)
    }

    fn write_topology(&self) -> Result<(), MeshError> {
        // Written aside and renamed, so a process never reads half a file.
        let tmp = self.topology_file.with_extension("toml.tmp");
        std::fs::write(&tmp, self.topology.to_toml())
            .and_then(|()| std::fs::rename(&tmp, &self.topology_file))
            .map_err(|source| MeshError::Write {
                path: self.topology_file.clone(),
                source,
            })
    }

    /// A command for `program`, run in `id`'s namespace when there is one.
    fn command(&self, id: &str, program: &Path) -> Command {
        match self.namespaces.get(id) {
            Some(ns) => crate::netns::exec_command(ns, program),
            None => Command::new(program),
        }
    }

    /// Starts (or restarts) bootstrapper, server or node `id`.
    pub fn start_node(&mut self, id: &str) -> Result<u32, MeshError> {
        let node = self
            .topology
            .node(id)
            .cloned()
            .ok_or_else(|| MeshError::UnknownId(id.to_owned()))?;
        let cmd = match node.role {
            Role::Bootstrapper => {
                let mut cmd = self.command(id, &self.bins.bootstrapper);
                cmd.arg("--topology").arg(&self.topology_file);
                cmd
            }
            Role::Server | Role::Node => {
                let (program, what) = match node.role {
                    Role::Server => (self.bins.server.as_deref(), "server"),
                    _ => (self.bins.node.as_deref(), "node"),
                };
                let program = program.ok_or(MeshError::NoBinary(what))?.to_owned();
                let boot = self.topology.bootstrapper().addr.to_string();
                let mut cmd = self.command(id, &program);
                cmd.args(["--id", id, "--bootstrapper", &boot]);
                if node.role == Role::Server {
                    let videos = self.videos_for.get(id).unwrap_or(&self.videos);
                    cmd.arg("--videos").arg(videos);
                }
                cmd.arg("--stats").arg(self.procs.run_dir().stats_file(id));
                if node.role == Role::Server {
                    cmd.args(&self.server_args);
                }
                if self.emulate {
                    cmd.arg("--emulation").arg(&self.topology_file);
                }
                cmd.args(&self.overlay_args);
                cmd
            }
        };
        Ok(self.procs.spawn(id, node.role.as_str(), cmd)?)
    }

    /// Starts client `client` as `launch` says.
    pub fn start_client(
        &mut self,
        client: &ClientSpec,
        launch: &ClientLaunch,
    ) -> Result<Option<u32>, MeshError> {
        if launch.mode == ClientMode::None {
            return Ok(None);
        }
        let program = self
            .bins
            .client
            .clone()
            .ok_or(MeshError::NoBinary("client"))?;
        let pops = client_pops(&self.topology, client);
        let run = self.procs.run_dir().clone();
        let mut cmd = self.command(&client.id, &program);
        let channel = launch.channel.clone().or_else(|| client.watch.clone());
        match launch.mode {
            ClientMode::Headless => {
                let channel = channel.unwrap_or_else(|| "test-pattern".to_owned());
                cmd.args(["--headless", "--pops", &pops, "--watch", &channel]);
                if launch.record {
                    cmd.arg("--record")
                        .arg(run.path().join(format!("{}.ts", client.id)));
                }
                cmd.arg("--stats").arg(run.stats_file(&client.id));
                if let Some(secs) = launch.secs {
                    let secs = secs.max(0.1);
                    let text = if secs.fract() == 0.0 {
                        format!("{secs:.0}")
                    } else {
                        format!("{secs:.3}")
                    };
                    cmd.args(["--duration", &text]);
                }
            }
            ClientMode::Gui | ClientMode::None => {
                cmd.args(["--pops", &pops]);
                if let Some(channel) = channel {
                    cmd.args(["--watch", &channel]);
                }
                cmd.arg("--stats").arg(run.stats_file(&client.id));
            }
        }
        if let Some(bind) = launch.bind {
            cmd.args(["--bind", &bind.to_string()]);
        }
        Ok(Some(self.procs.spawn(&client.id, "client", cmd)?))
    }

    /// Whether server/node/bootstrapper `node` has bound its address (in its namespace).
    pub fn is_bound(&self, node: &NodeSpec) -> bool {
        match (
            self.namespaces.contains_key(&node.id),
            self.procs.pid(&node.id),
        ) {
            (true, Some(pid)) => ready::is_bound_in_ns_of(pid, node.addr),
            (true, None) => false,
            (false, _) => ready::is_bound(node.addr),
        }
    }

    /// Kills `id` with SIGKILL: a crash, as far as its peers can tell.
    pub fn kill(&mut self, id: &str) -> Result<(), MeshError> {
        self.procs.signal(id, Signal::Kill)?;
        // Reap it so that a restart may reuse the id.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        procs::wait_for(|| !self.procs.is_running(id), deadline);
        Ok(())
    }

    /// Stops `id` gracefully (SIGTERM, then SIGKILL after a grace period).
    pub fn stop(&mut self, id: &str) -> Result<(), MeshError> {
        self.procs.stop(id)?;
        Ok(())
    }

    /// The attributes of the link between `a` and `b` now.
    pub fn link_attrs(&self, a: &str, b: &str) -> Option<LinkAttrs> {
        self.topology.link_between(a, b).map(|l| l.attrs)
    }

    /// Sets the attributes of the link between `a` and `b` and rewrites the topology copy; the
    /// processes at both ends apply it at their next look at the file (within a second).
    pub fn set_link(&mut self, a: &str, b: &str, attrs: LinkAttrs) -> Result<(), MeshError> {
        if !self.topology.set_link_attrs(a, b, attrs) {
            return Err(MeshError::UnknownLink(a.to_owned(), b.to_owned()));
        }
        self.write_topology()
    }

    /// Sets the attributes of many links at once, with one rewrite.
    pub fn set_links(&mut self, changes: &[(String, String, LinkAttrs)]) -> Result<(), MeshError> {
        for (a, b, attrs) in changes {
            if !self.topology.set_link_attrs(a, b, *attrs) {
                return Err(MeshError::UnknownLink(a.clone(), b.clone()));
            }
        }
        self.write_topology()
    }

    /// The last stats file of `id` (node, server or client), if it exists and parses.
    pub fn stats(&self, id: &str) -> Option<Value> {
        let text = std::fs::read_to_string(self.procs.run_dir().stats_file(id)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Stops clients first (so they do not see the mesh vanish), then everything else, then
    /// drops the namespaces. Returns the exits not reported before.
    pub fn shutdown(&mut self) -> Vec<procs::Exited> {
        let mut exits = self.procs.stop_role("client");
        exits.extend(self.procs.stop_all());
        self.guard = None;
        exits
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        self.procs.stop_all();
        self.guard = None;
    }
}

/// The addresses of a client's PoPs, comma-separated, in preference order.
pub fn client_pops(topology: &Topology, client: &ClientSpec) -> String {
    client
        .pops
        .iter()
        .filter_map(|pop| topology.node(pop))
        .map(|node| node.addr.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `path` relative to the working directory when it is inside it.
pub fn display_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_owned))
        .unwrap_or_else(|| path.to_owned())
        .display()
        .to_string()
}

/// SIGINT, SIGTERM and SIGHUP, caught so that the lab can stop its processes first.
#[derive(Debug)]
pub struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn install() -> std::io::Result<StopSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next stop signal's name.
    pub async fn recv(&mut self) -> &'static str {
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
    fn client_pops_are_addresses_in_preference_order() {
        let text = crate::fixtures::CHAIN;
        let topology = Topology::parse(text, "t.toml").unwrap().topology;
        let client = topology.client("c1").unwrap();
        assert_eq!(
            client_pops(&topology, client),
            "127.0.0.4:7000,127.0.0.3:7000"
        );
    }
}
