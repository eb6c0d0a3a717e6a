//! `meshcast-bootstrapper`: hands every node and server of a topology file its address and
//! its overlay neighbours.
//!
//! It is only needed while processes join: a running overlay does not notice it stopping, and
//! a process that starts while it is down keeps asking until it is back.

use anyhow::Context;
use clap::Parser;
use meshcast_io::{Flow, Hooks};
use meshcast_proto::bootstrap::{Bootstrapper, BootstrapperEvent, Directory, Entry};
use meshcast_proto::wire::Neighbour;
use meshcast_topology::Topology;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Serves neighbour lists from a topology file.
#[derive(Debug, Parser)]
#[command(name = "meshcast-bootstrapper", version)]
struct Args {
    /// The topology file (TOML).
    #[arg(long)]
    topology: PathBuf,
    /// Listen here instead of the bootstrapper's address in the file.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// The directory a topology defines: each overlay process's address and neighbours.
fn directory(t: &Topology) -> Directory {
    t.overlay_nodes()
        .map(|n| {
            let neighbours = t
                .neighbours(&n.id)
                .into_iter()
                .map(|m| Neighbour {
                    id: m.id.clone(),
                    addr: m.addr,
                })
                .collect();
            (
                n.id.clone(),
                Entry {
                    addr: n.addr,
                    neighbours,
                },
            )
        })
        .collect()
}

struct Log;

impl Hooks<Bootstrapper> for Log {
    fn on_event(&mut self, _: &mut Bootstrapper, _: Instant, e: BootstrapperEvent) -> Flow {
        match e {
            BootstrapperEvent::Served { id, from } => {
                tracing::info!("served {id} (asked from {from})")
            }
            BootstrapperEvent::Unknown { id, from } => {
                tracing::warn!("unknown id {id:?} asked from {from}");
            }
        }
        Flow::Continue
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    meshcast_io::logging::init("info");
    let loaded = match Topology::load(&args.topology) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("meshcast-bootstrapper: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    match serve(&args, &loaded.topology).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshcast-bootstrapper: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(args: &Args, topology: &Topology) -> anyhow::Result<()> {
    let addr = args.listen.unwrap_or(topology.bootstrapper().addr);
    let socket = meshcast_io::bind_udp(addr).with_context(|| format!("binding {addr}"))?;
    let dir = directory(topology);
    tracing::info!(
        "serving {} processes of {} on {addr}",
        dir.len(),
        args.topology.display()
    );
    let mut machine = Bootstrapper::new(dir, args.topology.display().to_string());
    let (_trigger, shutdown) = meshcast_io::Shutdown::on_signals();
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    meshcast_io::run(&mut machine, &socket, rx, &mut Log, shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_lists_overlay_nodes_with_their_neighbours() {
        let text = r#"
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
[[link]]
between = ["s1", "n1"]
"#;
        let t = Topology::parse(text, "t.toml").expect("valid").topology;
        let d = directory(&t);
        assert_eq!(
            d.len(),
            2,
            "the bootstrapper itself is not in the directory"
        );
        let n1 = &d["n1"];
        assert_eq!(n1.addr, "127.0.0.3:7000".parse().expect("addr"));
        assert_eq!(
            n1.neighbours,
            vec![Neighbour {
                id: "s1".into(),
                addr: "127.0.0.2:7000".parse().expect("addr")
            }]
        );
    }
}
