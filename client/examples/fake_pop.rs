//! A one-node PoP for trying the client by hand: the real node machine on the real io driver,
//! originating one channel made of a TS file played in a loop at its real pace.
//!
//! ```text
//! ffmpeg -f lavfi -i testsrc2=size=640x360:rate=30 -t 10 -c:v libx264 -g 30 -f mpegts clip.ts
//! cargo run -p meshcast-client --example fake_pop -- 127.0.0.1:7000 clip.ts 10 demo
//! meshcast-client --pops 127.0.0.1:7000
//! ```

use meshcast_io::Shutdown;
use meshcast_proto::node::{LocalChannel, Node, NodeCommand, NodeConfig};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;

/// 7 TS packets: one media datagram.
const CHUNK: usize = 7 * 188;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    meshcast_io::logging::init("info");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, file, seconds, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: fake_pop ADDR FILE.ts CLIP_SECONDS [CHANNEL]");
    };
    let addr: SocketAddr = addr.parse()?;
    let seconds: f64 = seconds.parse()?;
    let channel = rest.first().cloned().unwrap_or_else(|| "demo".to_owned());
    let data = std::fs::read(file)?;
    let chunks: Vec<Vec<u8>> = data.chunks(CHUNK).map(<[u8]>::to_vec).collect();
    anyhow::ensure!(!chunks.is_empty(), "{file} is empty");
    let kbps = (data.len() as f64 * 8.0 / seconds / 1000.0) as u32;
    let socket = meshcast_io::bind_udp(addr)?;
    let (tx, rx) = mpsc::channel(1024);
    tx.send(NodeCommand::AddChannel(LocalChannel {
        name: channel.clone(),
        codec: "h264".into(),
        width: 0,
        height: 0,
        fps_milli: 0,
        bitrate_kbps: kbps,
    }))
    .await?;
    let (_trigger, shutdown) = Shutdown::on_signals();
    let period = Duration::from_secs_f64(seconds / chunks.len() as f64);
    tracing::info!(
        "PoP on {} serving {channel}: {} chunks every {period:?} ({kbps} kbit/s)",
        socket.local_addr()?,
        chunks.len()
    );
    let mut publisher_shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        for chunk in chunks.iter().cycle() {
            tokio::select! {
                _ = publisher_shutdown.wait() => return,
                _ = tick.tick() => {}
            }
            let publish = NodeCommand::Publish {
                channel: channel.clone(),
                payload: chunk.clone(),
            };
            if tx.send(publish).await.is_err() {
                return;
            }
        }
    });
    let mut node = Node::new(NodeConfig::new("fake-pop", 1));
    let stats = meshcast_io::run(&mut node, &socket, rx, &mut (), shutdown).await;
    tracing::info!("done: {stats:?}");
    Ok(())
}
