//! `meshcast-node`: an overlay relay and point of presence.

use clap::Parser;
use meshcast_proto::node::{Node, NodeCommand, NodeConfig};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Relay and point of presence of a meshcast overlay.
#[derive(Debug, Parser)]
#[command(name = "meshcast-node", version)]
struct Args {
    /// This node's id in the topology file.
    #[arg(long)]
    id: String,
    /// Address of the bootstrapper (IP:PORT).
    #[arg(long)]
    bootstrapper: SocketAddr,
    /// Rewrite a JSON snapshot (links, routes, counters) to this file every second.
    #[arg(long)]
    stats: Option<PathBuf>,
    /// Seed of session ids and jitter (default: from the clock and pid).
    #[arg(long)]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    meshcast_io::logging::init("info");
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshcast-node: {e:#}");
            std::process::ExitCode::from(meshcast_node::exit_code(&e))
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (_trigger, shutdown) = meshcast_io::Shutdown::on_signals();
    let (addr, neighbours) =
        meshcast_node::bootstrap(&args.id, args.bootstrapper, shutdown.clone()).await?;
    tracing::info!(
        "{} joined: address {addr}, neighbours {}",
        args.id,
        neighbours
            .iter()
            .map(|n| format!("{}@{}", n.id, n.addr))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let seed = args.seed.unwrap_or_else(meshcast_node::process_seed);
    let node = Node::new(NodeConfig::new(args.id.clone(), seed));
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(NodeCommand::SetNeighbours(neighbours)).await?;
    meshcast_node::run(node, addr, rx, args.stats, shutdown).await
}
