//! `meshcast-node`: an overlay relay and point of presence.

use clap::Parser;
use meshcast_proto::node::{Node, NodeCommand, NodeConfig};

/// Relay and point of presence of a meshcast overlay.
#[derive(Debug, Parser)]
#[command(name = "meshcast-node", version)]
struct Args {
    #[command(flatten)]
    overlay: meshcast_node::OverlayArgs,
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

async fn run(Args { overlay: args }: Args) -> anyhow::Result<()> {
    // A bad --emulation file is a configuration error: report it before starting anything.
    let emulation = meshcast_node::Emulation::from_args(&args)?;
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
    let mut config = NodeConfig::new(args.id.clone(), seed);
    config.dual_parent = args.dual_parent;
    let node = Node::new(config);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tx.send(NodeCommand::SetNeighbours(neighbours)).await?;
    meshcast_node::run(node, addr, rx, args.stats, emulation, shutdown).await
}
