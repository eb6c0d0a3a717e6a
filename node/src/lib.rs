//! The node process around the [`Node`] machine, shared by `meshcast-node` and
//! `meshcast-server` (a server is a node that also originates channels).
//!
//! # Layout
//!
//! - [`bootstrap`]: ask the bootstrapper for our address and neighbours (retrying).
//! - [`run`]: drive the machine until shutdown, logging events and writing the stats file.
//! - [`snapshot_json`]: the stats file's JSON form of a [`NodeSnapshot`].

use anyhow::{Context, bail};
use meshcast_io::{Flow, Hooks, Shutdown};
use meshcast_proto::bootstrap::{Joiner, JoinerEvent};
use meshcast_proto::node::{Node, NodeCommand, NodeEvent, NodeSnapshot, Traffic};
use meshcast_proto::wire::Neighbour;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
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

/// Exit code for an error: 2 for configuration errors (an id the topology lacks), else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Refused>().is_some() {
        2
    } else {
        1
    }
}

/// Hooks of a running node: log events, write the stats file every second.
#[derive(Debug)]
pub struct NodeHooks {
    stats: Option<PathBuf>,
    interval: Duration,
}

impl NodeHooks {
    /// Hooks writing snapshots to `stats` (if any) every `interval`.
    pub fn new(stats: Option<PathBuf>, interval: Duration) -> Self {
        Self { stats, interval }
    }

    /// Writes the snapshot now (also called once more at exit).
    pub fn write(&self, node: &Node, now: Instant) {
        if let Some(path) = &self.stats
            && let Err(e) = write_atomic(path, &snapshot_json(&node.snapshot(now)))
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
        self.write(node, now);
        Flow::Continue
    }

    fn tick_interval(&self) -> Option<Duration> {
        self.stats.as_ref().map(|_| self.interval)
    }
}

/// Runs `node` on a socket bound to `addr` until shutdown; writes a last snapshot at exit.
pub async fn run(
    mut node: Node,
    addr: SocketAddr,
    commands: mpsc::Receiver<NodeCommand>,
    stats: Option<PathBuf>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let socket = meshcast_io::bind_udp(addr).with_context(|| format!("binding {addr}"))?;
    tracing::info!("{} listening on {addr}", node.id());
    let mut hooks = NodeHooks::new(stats, Duration::from_secs(1));
    let driver = meshcast_io::run(&mut node, &socket, commands, &mut hooks, shutdown).await;
    hooks.write(&node, Instant::now());
    tracing::info!(
        "stopped: {} datagrams in, {} out, {} send errors",
        driver.received,
        driver.sent,
        driver.send_errors
    );
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

/// The stats file's JSON form of a snapshot.
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
            "upstream": r.upstream, "cost_us": r.cost_us, "hops": r.hops,
            "downstream": r.downstream, "media_in": r.media_in,
            "media_out": r.media_out.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "duplicates": r.duplicates,
        })).collect::<Vec<_>>(),
        "drops": {
            "malformed": s.drops.malformed, "unknown_stream": s.drops.unknown_stream,
            "not_from_upstream": s.drops.not_from_upstream, "duplicate_media": s.drops.duplicate_media,
            "stale_announce": s.drops.stale_announce, "bad_announce": s.drops.bad_announce,
            "not_a_neighbour": s.drops.not_a_neighbour, "clients_refused": s.drops.clients_refused,
        },
    })
}
