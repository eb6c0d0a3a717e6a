//! The node process around the [`Node`] machine, shared by `meshcast-node` and
//! `meshcast-server` (a server is a node that also originates channels).
//!
//! # Layout
//!
//! - [`bootstrap`]: ask the bootstrapper for our address and neighbours (retrying).
//! - [`run`]: drive the machine until shutdown, logging events and writing the stats file.
//! - [`Emulation`]: `--emulation TOPOLOGY_FILE`: emulate the delay, jitter, loss and rate of
//!   our links on what we send, following the file as it changes ([`emulated_links`]).
//! - [`stats_json`]: the stats file's JSON form of a [`NodeSnapshot`] ([`snapshot_json`]) and
//!   of the emulation counters ([`emulation_json`]).

use anyhow::{Context, bail};
use meshcast_io::{EmulationStats, Emulator, Flow, Hooks, Shutdown};
use meshcast_proto::bootstrap::{Joiner, JoinerEvent};
use meshcast_proto::link::{DropReason, LinkParams};
use meshcast_proto::node::{Node, NodeCommand, NodeEvent, NodeSnapshot, Traffic};
use meshcast_proto::wire::Neighbour;
use meshcast_topology::{Topology, TopologyError};
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// The command-line arguments every overlay process (node or server) takes.
#[derive(Debug, Clone, clap::Args)]
pub struct OverlayArgs {
    /// This process's id in the topology file.
    #[arg(long)]
    pub id: String,
    /// Address of the bootstrapper (IP:PORT).
    #[arg(long)]
    pub bootstrapper: SocketAddr,
    /// Rewrite a JSON snapshot (links, routes, counters) to this file every second.
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// Seed of session ids and jitter (default: from the clock and pid).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Emulate the links of this topology file that touch our id (latency_ms, jitter_ms, loss,
    /// rate_mbit) on the datagrams we send to each neighbour; the file is re-read when it
    /// changes.
    #[arg(long, value_name = "TOPOLOGY_FILE")]
    pub emulation: Option<PathBuf>,
    /// Receive every stream from two parents and keep the first copy of each packet, so
    /// that a parent's failure costs no packet (twice the incoming traffic).
    #[arg(long)]
    pub dual_parent: bool,
}

/// A seed from the process id and the wall clock: distinct per start, which is all session
/// ids and incarnations need. (Tests and the simulator pass fixed seeds instead.)
pub fn process_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Asks the bootstrapper at `bootstrapper` who `id` is, retrying with backoff until it answers,
/// the id is refused, or shutdown. Uses a short-lived socket of its own: our real address is
/// part of the answer.
pub async fn bootstrap(
    id: &str,
    bootstrapper: SocketAddr,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, Vec<Neighbour>)> {
    let local: IpAddr = match bootstrapper.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket =
        meshcast_io::bind_udp(SocketAddr::new(local, 0)).context("binding the bootstrap socket")?;
    let mut joiner = Joiner::new(id, bootstrapper, process_seed(), Instant::now());
    struct Wait(
        Option<Result<(SocketAddr, Vec<Neighbour>), String>>,
        SocketAddr,
    );
    impl Hooks<Joiner> for Wait {
        fn on_event(&mut self, _: &mut Joiner, _: Instant, e: JoinerEvent) -> Flow {
            match e {
                JoinerEvent::Joined { addr, neighbours } => {
                    self.0 = Some(Ok((addr, neighbours)));
                    Flow::Stop
                }
                JoinerEvent::Refused { reason } => {
                    self.0 = Some(Err(reason));
                    Flow::Stop
                }
                JoinerEvent::Retrying { attempt, next_in } => {
                    if attempt == 1 || attempt % 5 == 0 {
                        tracing::warn!(
                            "bootstrapper {} not answering (attempt {attempt}); retrying every {:?}",
                            self.1,
                            next_in
                        );
                    }
                    Flow::Continue
                }
            }
        }
    }
    let (_tx, rx) = mpsc::channel(1);
    let mut wait = Wait(None, bootstrapper);
    meshcast_io::run(&mut joiner, &socket, rx, &mut wait, shutdown).await;
    match wait.0 {
        Some(Ok(x)) => Ok(x),
        Some(Err(reason)) => Err(Refused(format!(
            "the bootstrapper at {bootstrapper} refused: {reason}"
        ))
        .into()),
        None => bail!("interrupted before the bootstrapper at {bootstrapper} answered"),
    }
}

/// The bootstrapper does not know our id: a configuration error (exit code 2), not a
/// transient one.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Exit code for an error: 2 for configuration errors (an id the topology lacks, a bad
/// `--emulation` file), else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Refused>().is_some() || e.downcast_ref::<EmulationError>().is_some() {
        2
    } else {
        1
    }
}

// ----- link emulation ----------------------------------------------------------------------

/// One emulated link direction: what this process sends to one neighbour.
#[derive(Debug, Clone, PartialEq)]
pub struct EmulatedLink {
    /// Our id.
    pub from: String,
    /// The neighbour's id.
    pub to: String,
    /// The neighbour's address in the topology: the destination whose datagrams are impaired.
    pub addr: SocketAddr,
    /// The impairments, from the link's attributes.
    pub params: LinkParams,
}

/// `link n1→n2: latency 10 ms, jitter 0 ms, loss 5.0 %, rate —`
impl std::fmt::Display for EmulatedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "link {}→{}: {}", self.from, self.to, self.params)
    }
}

/// The links of `topology` that touch `id` and have attributes, as the impairments of what
/// `id` sends to each neighbour, sorted by neighbour id. Both ends of a link apply its
/// attributes to their own sends, so a link of 10 ms has 10 ms each way.
pub fn emulated_links(topology: &Topology, id: &str) -> Vec<EmulatedLink> {
    let mut links: Vec<EmulatedLink> = topology
        .links()
        .iter()
        .filter(|l| !l.attrs.is_empty())
        .filter_map(|l| {
            let other = topology.node(l.other_end(id)?)?;
            let a = &l.attrs;
            Some(EmulatedLink {
                from: id.to_owned(),
                to: other.id.clone(),
                addr: other.addr,
                params: LinkParams::from_attrs(a.latency_ms, a.jitter_ms, a.loss, a.rate_mbit),
            })
        })
        .collect();
    links.sort_by(|x, y| x.to.cmp(&y.to));
    links
}

/// The `--emulation` file cannot be used: a configuration error (exit code 2).
#[derive(Debug)]
pub enum EmulationError {
    /// Unreadable or not a valid topology (every problem with file, line and field).
    Topology(TopologyError),
    /// Our id is not a server or node of that topology.
    UnknownId {
        /// The file.
        path: PathBuf,
        /// Our id.
        id: String,
        /// The server and node ids the file has.
        known: Vec<String>,
    },
}

impl std::fmt::Display for EmulationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmulationError::Topology(e) => write!(f, "--emulation: {e}"),
            EmulationError::UnknownId { path, id, known } => write!(
                f,
                "--emulation {}: no server or node {id:?} in this topology (known ids: {})",
                path.display(),
                known.join(", ")
            ),
        }
    }
}

/// No `source()`: the message already holds the topology error's whole text, and `main`
/// prints the chain.
impl std::error::Error for EmulationError {}

/// Reads `path` and the emulated links of `id` in it.
fn read_links(path: &Path, id: &str) -> Result<Vec<EmulatedLink>, EmulationError> {
    let loaded = Topology::load(path).map_err(EmulationError::Topology)?;
    for warning in &loaded.warnings {
        tracing::debug!("--emulation: {warning}");
    }
    let t = loaded.topology;
    if !t.node(id).is_some_and(|n| n.is_overlay()) {
        return Err(EmulationError::UnknownId {
            path: path.to_owned(),
            id: id.to_owned(),
            known: t.overlay_nodes().map(|n| n.id.clone()).collect(),
        });
    }
    Ok(emulated_links(&t, id))
}

/// What identifies a version of the file: its modification time and length.
fn file_stamp(path: &Path) -> std::io::Result<(SystemTime, u64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.modified()?, m.len()))
}

/// Link emulation of a running node or server (`--emulation TOPOLOGY_FILE`): the file it
/// follows, the links it emulates, and the [`Emulator`] the driver sends through.
///
/// Call [`Emulation::poll_file`] now and then (the node's hooks do every second): when the
/// file's modification time or length changed, it is read again and changed attributes apply
/// to the datagrams sent from then on. A file that became invalid is logged and ignored.
#[derive(Debug)]
pub struct Emulation {
    path: PathBuf,
    id: String,
    /// The file version last read (or tried).
    stamp: Option<(SystemTime, u64)>,
    /// Whether the file could not even be looked at on the last poll (logged once).
    missing: bool,
    links: Vec<EmulatedLink>,
    emulator: Emulator,
}

impl Emulation {
    /// The emulation `args` ask for, loaded and logged; `None` without `--emulation`.
    pub fn from_args(args: &OverlayArgs) -> Result<Option<Emulation>, EmulationError> {
        let Some(path) = &args.emulation else {
            return Ok(None);
        };
        // Not the node's own seed: the emulator's draws must not mirror the machine's.
        let seed = args
            .seed
            .map_or_else(process_seed, |s| s ^ 0x656d_756c_6174_6f72);
        Emulation::load(path, &args.id, seed).map(Some)
    }

    /// Reads `path` and emulates the links of `id` in it, logging one line per link.
    pub fn load(path: &Path, id: &str, seed: u64) -> Result<Emulation, EmulationError> {
        let stamp = file_stamp(path).ok();
        let links = read_links(path, id)?;
        let mut emulation = Emulation {
            path: path.to_owned(),
            id: id.to_owned(),
            stamp,
            missing: false,
            links: Vec::new(),
            emulator: Emulator::new(seed),
        };
        emulation.apply(links);
        if emulation.links.is_empty() {
            tracing::info!(
                "--emulation {}: no link of {id} has attributes; nothing emulated until the file changes",
                path.display()
            );
        }
        Ok(emulation)
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The links emulated now, sorted by neighbour id.
    pub fn links(&self) -> &[EmulatedLink] {
        &self.links
    }

    /// The emulator (counters, queue).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    /// The emulator, for the driver.
    pub fn emulator_mut(&mut self) -> &mut Emulator {
        &mut self.emulator
    }

    /// Re-reads the file if it changed since last time and applies what changed. Returns
    /// whether the emulated links changed.
    pub fn poll_file(&mut self) -> bool {
        let stamp = match file_stamp(&self.path) {
            Ok(stamp) => stamp,
            Err(e) => {
                if !self.missing {
                    tracing::warn!(
                        "--emulation {}: {e}; keeping the current settings",
                        self.path.display()
                    );
                    self.missing = true;
                }
                return false;
            }
        };
        self.missing = false;
        if self.stamp == Some(stamp) {
            return false;
        }
        self.stamp = Some(stamp);
        match read_links(&self.path, &self.id) {
            Ok(links) => self.apply(links),
            Err(e) => {
                tracing::warn!(
                    "{e}\n--emulation: keeping the current settings until the file changes again"
                );
                false
            }
        }
    }

    /// Makes `links` the emulated links, logging each one added, changed or removed.
    fn apply(&mut self, links: Vec<EmulatedLink>) -> bool {
        let mut changed = false;
        for old in &self.links {
            if !links.iter().any(|l| l.to == old.to && l.addr == old.addr) {
                self.emulator.clear(old.addr);
                tracing::info!("stopped emulating link {}→{}", old.from, old.to);
                changed = true;
            }
        }
        for link in &links {
            match self
                .links
                .iter()
                .find(|l| l.to == link.to && l.addr == link.addr)
            {
                Some(old) if old.params == link.params => continue,
                Some(_) => tracing::info!("emulating {link} (changed)"),
                None => tracing::info!("emulating {link}"),
            }
            self.emulator.set(link.addr, link.params);
            changed = true;
        }
        self.links = links;
        changed
    }
}

/// Hooks of a running node: log events, write the stats file every second, own the link
/// emulation (following its file every interval).
#[derive(Debug)]
pub struct NodeHooks {
    stats: Option<PathBuf>,
    interval: Duration,
    emulation: Option<Emulation>,
}

impl NodeHooks {
    /// Hooks writing snapshots to `stats` (if any) every `interval`.
    pub fn new(stats: Option<PathBuf>, interval: Duration) -> Self {
        Self {
            stats,
            interval,
            emulation: None,
        }
    }

    /// The same hooks sending through `emulation` (if any).
    pub fn with_emulation(mut self, emulation: Option<Emulation>) -> Self {
        self.emulation = emulation;
        self
    }

    /// The link emulation, if on.
    pub fn emulation(&self) -> Option<&Emulation> {
        self.emulation.as_ref()
    }

    /// Writes the snapshot now (also called once more at exit).
    pub fn write(&self, node: &Node, now: Instant) {
        if let Some(path) = &self.stats
            && let Err(e) = write_atomic(
                path,
                &stats_json(&node.snapshot(now), self.emulation.as_ref()),
            )
        {
            tracing::warn!("cannot write stats file {}: {e:#}", path.display());
        }
    }
}

impl Hooks<Node> for NodeHooks {
    fn on_event(&mut self, _: &mut Node, _: Instant, e: NodeEvent) -> Flow {
        match e {
            NodeEvent::NeighbourUp { id } => tracing::info!("neighbour {id} up"),
            NodeEvent::NeighbourDown { id, reason } => {
                tracing::warn!("neighbour {id} down ({reason:?})");
            }
            NodeEvent::NeighbourRestarted { id } => tracing::info!("neighbour {id} restarted"),
            NodeEvent::UpstreamChanged {
                channel,
                stream,
                from,
                to,
            } => tracing::info!(
                "stream {channel} ({stream:08x}) upstream {} -> {}",
                from.as_deref().unwrap_or("-"),
                to.as_deref().unwrap_or("-")
            ),
            NodeEvent::ClientWatch { client, channel } => {
                tracing::info!("client {client} watches {channel}");
            }
            NodeEvent::ClientLeft { client, channel } => {
                tracing::info!("client {client} left {channel}");
            }
        }
        Flow::Continue
    }

    fn on_tick(&mut self, node: &mut Node, now: Instant) -> Flow {
        if let Some(emulation) = &mut self.emulation {
            emulation.poll_file();
        }
        self.write(node, now);
        Flow::Continue
    }

    fn tick_interval(&self) -> Option<Duration> {
        (self.stats.is_some() || self.emulation.is_some()).then_some(self.interval)
    }

    fn emulator(&mut self) -> Option<&mut Emulator> {
        self.emulation
            .as_mut()
            .map(Emulation::emulator_mut)
            .filter(|e| e.is_active())
    }
}

/// Runs `node` on a socket bound to `addr` until shutdown, sending through `emulation` (if
/// any); writes a last snapshot at exit.
pub async fn run(
    mut node: Node,
    addr: SocketAddr,
    commands: mpsc::Receiver<NodeCommand>,
    stats: Option<PathBuf>,
    emulation: Option<Emulation>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let socket = meshcast_io::bind_udp(addr).with_context(|| format!("binding {addr}"))?;
    tracing::info!("{} listening on {addr}", node.id());
    let mut hooks = NodeHooks::new(stats, Duration::from_secs(1)).with_emulation(emulation);
    let driver = meshcast_io::run(&mut node, &socket, commands, &mut hooks, shutdown).await;
    hooks.write(&node, Instant::now());
    tracing::info!(
        "stopped: {} datagrams in, {} out, {} send errors",
        driver.received,
        driver.sent,
        driver.send_errors
    );
    if let Some(e) = hooks.emulation() {
        let s = e.emulator().stats();
        tracing::info!(
            "emulation: {} datagrams offered, {} delayed, {} dropped ({} down, {} random, {} burst, {} queue), {} in flight discarded",
            s.offered,
            s.delayed,
            s.dropped(),
            s.dropped_down,
            s.dropped_random,
            s.dropped_burst,
            s.dropped_queue,
            s.in_flight
        );
    }
    Ok(())
}

/// Writes `value` to `path` through a temporary file and a rename, so readers never see half.
pub fn write_atomic(path: &Path, value: &Value) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn traffic_json(t: &Traffic) -> Value {
    json!({
        "control_tx": t.control_tx, "control_tx_bytes": t.control_tx_bytes,
        "control_rx": t.control_rx, "control_rx_bytes": t.control_rx_bytes,
        "media_tx": t.media_tx, "media_tx_bytes": t.media_tx_bytes,
        "media_rx": t.media_rx, "media_rx_bytes": t.media_rx_bytes,
    })
}

/// The stats file's JSON: the snapshot ([`snapshot_json`]) plus an `"emulation"` object
/// ([`emulation_json`]).
pub fn stats_json(s: &NodeSnapshot, emulation: Option<&Emulation>) -> Value {
    let mut v = snapshot_json(s);
    if let Value::Object(map) = &mut v {
        map.insert("emulation".into(), emulation_json(emulation));
    }
    v
}

fn drops_json(s: &EmulationStats) -> Value {
    Value::Object(
        DropReason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), json!(s.dropped_by(*r))))
            .collect(),
    )
}

/// The `"emulation"` object of the stats file: `{"enabled": false}` without `--emulation`,
/// else the file, the totals and one entry per emulated link (`offered` datagrams toward it,
/// of which `delayed` were held back and `dropped` lost, by reason; `in_flight` held now).
pub fn emulation_json(emulation: Option<&Emulation>) -> Value {
    let Some(e) = emulation else {
        return json!({ "enabled": false });
    };
    let total = e.emulator().stats();
    json!({
        "enabled": true,
        "file": e.path().display().to_string(),
        "offered": total.offered,
        "delayed": total.delayed,
        "in_flight": total.in_flight,
        "dropped": drops_json(&total),
        "links": e.links().iter().map(|l| {
            let s = e.emulator().stats_for(l.addr);
            let p = &l.params;
            json!({
                "to": l.to, "addr": l.addr.to_string(), "params": p.to_string(),
                "latency_ms": p.latency.as_secs_f64() * 1e3,
                "jitter_ms": p.jitter.as_secs_f64() * 1e3,
                "loss": p.loss,
                "rate_mbit": p.rate_bps.map(|r| r as f64 / 1e6),
                "offered": s.offered, "delayed": s.delayed, "in_flight": s.in_flight,
                "dropped": drops_json(&s),
            })
        }).collect::<Vec<_>>(),
    })
}

/// The stats file's JSON form of a snapshot (without the emulation: see [`stats_json`]).
pub fn snapshot_json(s: &NodeSnapshot) -> Value {
    json!({
        "id": s.id,
        "uptime_ms": s.uptime_ms,
        "announces_sent": s.announces_sent,
        "neighbours": s.neighbours.iter().map(|n| json!({
            "id": n.id, "addr": n.addr.to_string(), "up": n.up,
            "srtt_us": n.srtt_us, "rto_us": n.rto_us,
            "traffic": traffic_json(&n.traffic),
            "reliable": {
                "sent": n.reliable.sent, "retransmitted": n.reliable.retransmitted,
                "acked": n.reliable.acked, "delivered": n.reliable.delivered,
                "duplicates": n.reliable.duplicates, "queue_drops": n.reliable.queue_drops,
                "peer_restarts": n.reliable.peer_restarts,
            },
        })).collect::<Vec<_>>(),
        "clients": s.clients.iter().map(|c| json!({
            "addr": c.addr.to_string(), "watching": c.watching, "traffic": traffic_json(&c.traffic),
        })).collect::<Vec<_>>(),
        "routes": s.routes.iter().map(|r| json!({
            "stream": format!("{:08x}", r.stream), "channel": r.channel, "origin": r.origin,
            "local": r.local, "state": format!("{:?}", r.state).to_lowercase(),
            "upstream": r.upstream, "secondary": r.secondary, "cost_us": r.cost_us, "hops": r.hops,
            "downstream": r.downstream, "media_in": r.media_in,
            "media_out": r.media_out.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "duplicates": r.duplicates, "retransmitted": r.retransmitted,
            "nacks_sent": r.nacks_sent, "recovered": r.recovered, "unrecovered": r.unrecovered,
        })).collect::<Vec<_>>(),
        "drops": {
            "malformed": s.drops.malformed, "unknown_stream": s.drops.unknown_stream,
            "not_from_upstream": s.drops.not_from_upstream, "duplicate_media": s.drops.duplicate_media,
            "stale_announce": s.drops.stale_announce, "bad_announce": s.drops.bad_announce,
            "not_a_neighbour": s.drops.not_a_neighbour, "clients_refused": s.drops.clients_refused,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use meshcast_proto::Transmit;

    const TOPOLOGY: &str = r#"
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

[[node]]
id = "n3"
role = "node"
addr = "127.0.0.5:7000"

[[link]]
between = ["s1", "n1"]

[[link]]
between = ["n2", "n1"]
latency_ms = 10.0
loss = 0.05

[[link]]
between = ["n1", "n3"]
rate_mbit = 20.0
jitter_ms = 1.5

[[link]]
between = ["s1", "n2"]
latency_ms = 3.0
"#;

    /// A topology file of its own for each test, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("meshcast-node-test-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join("topology.toml");
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }

        /// Rewrites the file and moves its modification time on, as an edit a while later
        /// would (file systems may keep coarse times).
        fn rewrite(&self, text: &str, seconds_later: u64) {
            std::fs::write(&self.0, text).unwrap();
            let f = std::fs::File::options().write(true).open(&self.0).unwrap();
            f.set_modified(SystemTime::now() + Duration::from_secs(seconds_later))
                .unwrap();
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_node_emulates_only_its_own_links_that_have_attributes() {
        let t = Topology::parse(TOPOLOGY, "t.toml").unwrap().topology;
        let links = emulated_links(&t, "n1");
        let lines: Vec<String> = links.iter().map(|l| format!("emulating {l}")).collect();
        assert_eq!(
            lines,
            [
                "emulating link n1→n2: latency 10 ms, jitter 0 ms, loss 5.0 %, rate —",
                "emulating link n1→n3: latency 0 ms, jitter 1.5 ms, loss 0.0 %, rate 20 Mbit/s",
            ]
        );
        assert_eq!(links[0].addr, addr("127.0.0.4:7000"));
        assert_eq!(links[0].params.latency, Duration::from_millis(10));
        assert_eq!(links[0].params.loss, 0.05);
        assert_eq!(links[1].params.rate_bps, Some(20_000_000));
        // The other end of the same link emulates its own direction with the same numbers.
        let back = emulated_links(&t, "n2");
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].to, "n1");
        assert_eq!(back[0].addr, addr("127.0.0.3:7000"));
        assert_eq!(back[0].params, links[0].params);
        assert_eq!(back[1].to, "s1");
        assert!(emulated_links(&t, "boot").is_empty());
        assert!(emulated_links(&t, "nobody").is_empty());
    }

    #[test]
    fn the_emulation_option_loads_the_file_and_its_drops_show_in_the_stats() {
        let file = TempFile::new("stats", TOPOLOGY);
        #[derive(Debug, Parser)]
        struct Args {
            #[command(flatten)]
            overlay: OverlayArgs,
        }
        let args = Args::try_parse_from([
            "meshcast-node",
            "--id",
            "n1",
            "--bootstrapper",
            "127.0.0.1:7000",
            "--seed",
            "7",
            "--emulation",
            file.0.to_str().unwrap(),
        ])
        .unwrap();
        let mut emulation = Emulation::from_args(&args.overlay)
            .unwrap()
            .expect("--emulation given");
        assert_eq!(emulation.links().len(), 2);
        let n2 = addr("127.0.0.4:7000");
        let s1 = addr("127.0.0.2:7000");
        let now = Instant::now();
        let em = emulation.emulator_mut();
        for i in 0..2000u32 {
            let t = Transmit {
                dst: n2,
                payload: i.to_be_bytes().to_vec(),
            };
            assert!(
                em.submit(now, t).is_none(),
                "10 ms of latency holds it back"
            );
        }
        let plain = Transmit {
            dst: s1,
            payload: vec![1],
        };
        assert_eq!(em.submit(now, plain.clone()), Some(plain));

        let v = emulation_json(Some(&emulation));
        assert_eq!(v["enabled"], true);
        assert_eq!(v["offered"], 2000);
        let random = v["dropped"]["random"].as_u64().unwrap();
        assert!((60..140).contains(&random), "5 % of 2000: {random}");
        assert_eq!(v["delayed"], 2000 - random);
        assert_eq!(v["in_flight"], 2000 - random);
        assert_eq!(v["dropped"]["queue"], 0);
        let link = &v["links"][0];
        assert_eq!(link["to"], "n2");
        assert_eq!(link["latency_ms"], 10.0);
        assert_eq!(link["loss"], 0.05);
        assert_eq!(link["rate_mbit"], Value::Null);
        assert_eq!(link["dropped"]["random"], random);
        assert_eq!(v["links"][1]["rate_mbit"], 20.0);
        assert_eq!(emulation_json(None), json!({ "enabled": false }));
    }

    #[test]
    fn no_emulation_option_means_no_emulation() {
        let args = OverlayArgs {
            id: "n1".into(),
            bootstrapper: addr("127.0.0.1:7000"),
            stats: None,
            seed: None,
            emulation: None,
            dual_parent: false,
        };
        assert!(Emulation::from_args(&args).unwrap().is_none());
        let mut hooks = NodeHooks::new(None, Duration::from_secs(1));
        assert!(Hooks::<Node>::emulator(&mut hooks).is_none());
        assert!(Hooks::<Node>::tick_interval(&hooks).is_none());
    }

    #[test]
    fn a_bad_emulation_file_is_a_configuration_error_naming_file_line_and_field() {
        let bad = TOPOLOGY.replace("loss = 0.05", "loss = 5.0");
        let file = TempFile::new("bad", &bad);
        let e = Emulation::load(&file.0, "n1", 1).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("--emulation: "), "{text}");
        assert!(text.contains("topology.toml:"), "{text}");
        assert!(text.contains("link.loss"), "{text}");
        assert_eq!(exit_code(&anyhow::Error::new(e)), 2);

        let e = Emulation::load(Path::new("/nonexistent/t.toml"), "n1", 1).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/t.toml"), "{e}");
        assert_eq!(exit_code(&anyhow::Error::new(e)), 2);

        let good = TempFile::new("unknown-id", TOPOLOGY);
        let e = Emulation::load(&good.0, "n9", 1).unwrap_err();
        assert!(e.to_string().contains("\"n9\""), "{e}");
        assert!(e.to_string().contains("known ids: s1, n1, n2, n3"), "{e}");
    }

    #[test]
    fn changed_attributes_apply_at_run_time_and_an_invalid_edit_keeps_the_old_ones() {
        let file = TempFile::new("reload", TOPOLOGY);
        let mut emulation = Emulation::load(&file.0, "n1", 3).unwrap();
        let (n2, n3) = (addr("127.0.0.4:7000"), addr("127.0.0.5:7000"));
        assert!(!emulation.poll_file(), "unchanged file");

        // n1–n2 gets slower, n1–n3 loses its attributes, s1–n1 gains some.
        let edited = TOPOLOGY
            .replace("latency_ms = 10.0", "latency_ms = 25.0")
            .replace("rate_mbit = 20.0\njitter_ms = 1.5\n", "")
            .replace(
                "between = [\"s1\", \"n1\"]\n",
                "between = [\"s1\", \"n1\"]\nloss = 0.5\n",
            );
        file.rewrite(&edited, 10);
        assert!(emulation.poll_file());
        let em = emulation.emulator();
        assert_eq!(em.params(n2).unwrap().latency, Duration::from_millis(25));
        assert!(em.params(n3).is_none());
        assert_eq!(em.params(addr("127.0.0.2:7000")).unwrap().loss, 0.5);
        let tos: Vec<&str> = emulation.links().iter().map(|l| l.to.as_str()).collect();
        assert_eq!(tos, ["n2", "s1"]);

        // A broken edit is ignored, and so is a vanished file.
        file.rewrite("[[node]]\nid = ", 20);
        assert!(!emulation.poll_file());
        assert_eq!(
            emulation.emulator().params(n2).unwrap().latency,
            Duration::from_millis(25)
        );
        std::fs::remove_file(&file.0).unwrap();
        assert!(!emulation.poll_file());
        assert_eq!(emulation.links().len(), 2);

        // Fixed again: it applies.
        file.rewrite(TOPOLOGY, 30);
        assert!(emulation.poll_file());
        assert_eq!(
            emulation.emulator().params(n2).unwrap().latency,
            Duration::from_millis(10)
        );
        assert!(emulation.emulator().params(n3).is_some());
    }

    #[test]
    fn hooks_with_emulation_tick_to_follow_the_file_and_hand_the_emulator_over() {
        let file = TempFile::new("hooks", TOPOLOGY);
        let emulation = Emulation::load(&file.0, "n1", 4).unwrap();
        let mut hooks =
            NodeHooks::new(None, Duration::from_secs(1)).with_emulation(Some(emulation));
        assert_eq!(
            Hooks::<Node>::tick_interval(&hooks),
            Some(Duration::from_secs(1))
        );
        assert!(Hooks::<Node>::emulator(&mut hooks).is_some());

        // A file whose links of n1 have no attributes leaves the driver's plain path.
        let bare = TempFile::new(
            "hooks-bare",
            &TOPOLOGY
                .replace("latency_ms = 10.0\nloss = 0.05\n", "")
                .replace("rate_mbit = 20.0\njitter_ms = 1.5\n", ""),
        );
        let emulation = Emulation::load(&bare.0, "n1", 4).unwrap();
        assert!(emulation.links().is_empty());
        let mut hooks =
            NodeHooks::new(None, Duration::from_secs(1)).with_emulation(Some(emulation));
        assert!(Hooks::<Node>::emulator(&mut hooks).is_none());
        assert!(
            Hooks::<Node>::tick_interval(&hooks).is_some(),
            "still following the file"
        );
    }
}
