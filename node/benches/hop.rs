//! Per-hop forwarding benchmark on loopback: prints figures, asserts nothing.
//!
//! A server machine publishes an 8 Mbit/s stream (760 datagrams/s of 7 TS packets, each
//! carrying its send time) to a viewer, once directly (server as PoP) and once through one
//! relay (a `Node` on its own thread and socket, driven by the same `meshcast_io::run` as the
//! binary). Per-hop latency = latency through the relay − direct latency; relay CPU is the
//! relay thread's CPU time over the run.
//!
//! Run: `cargo bench -p meshcast-node --bench hop` (release build).

use meshcast_io::{Flow, Hooks, Shutdown};
use meshcast_proto::client::{Client, ClientCommand, ClientConfig, ClientEvent};
use meshcast_proto::node::{LocalChannel, Node, NodeCommand, NodeConfig};
use meshcast_proto::wire::Neighbour;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const PPS: u64 = 760; // 760 × 1316 B × 8 ≈ 8.0 Mbit/s
const RUN: Duration = Duration::from_secs(8);
const WARMUP: Duration = Duration::from_secs(2);

fn free_addr(ip: [u8; 4]) -> SocketAddr {
    let s = std::net::UdpSocket::bind(SocketAddr::from((ip, 0))).expect("bind");
    s.local_addr().expect("addr")
}

/// Latency samples of the viewer: (send time embedded by the server) → arrival.
struct Viewer {
    epoch: Instant,
    samples: Vec<Duration>,
    until: Instant,
}

impl Hooks<Client> for Viewer {
    fn on_event(&mut self, _: &mut Client, now: Instant, e: ClientEvent) -> Flow {
        if let ClientEvent::Media { payload, .. } = e
            && payload.len() >= 12
        {
            let mut b = [0u8; 8];
            b.copy_from_slice(&payload[4..12]);
            let sent = self.epoch + Duration::from_nanos(u64::from_be_bytes(b));
            if now > self.epoch + WARMUP {
                self.samples.push(now.saturating_duration_since(sent));
            }
        }
        if now >= self.until {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }
    fn on_tick(&mut self, _: &mut Client, now: Instant) -> Flow {
        if now >= self.until {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

fn thread_cpu() -> Duration {
    // utime + stime of the calling thread, in clock ticks (100 Hz on Linux).
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Runs one scenario; `via_relay` puts one relay between server and viewer.
fn scenario(via_relay: bool) -> (Vec<Duration>, Option<f64>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let s_addr = free_addr([127, 0, 0, 1]);
    let r_addr = free_addr([127, 0, 0, 1]);
    let (trigger, shutdown) = Shutdown::new();
    let epoch = Instant::now();

    // Relay on its own thread.
    let (cpu_tx, cpu_rx) = std_mpsc::channel();
    let relay = via_relay.then(|| {
        let shutdown = shutdown.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let mut node = Node::new(NodeConfig::new("relay", 2));
                let (tx, rx) = mpsc::channel(4);
                tx.send(NodeCommand::SetNeighbours(vec![Neighbour {
                    id: "s1".into(),
                    addr: s_addr,
                }]))
                .await
                .expect("send");
                let socket = meshcast_io::bind_udp(r_addr).expect("bind relay");
                let cpu0 = thread_cpu();
                let t0 = Instant::now();
                meshcast_io::run(&mut node, &socket, rx, &mut (), shutdown).await;
                let cpu =
                    thread_cpu().saturating_sub(cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
                let _ = cpu_tx.send(cpu);
            });
        })
    });

    let samples = rt.block_on(async move {
        // Server: a node with one local channel, fed by a paced publisher.
        let mut server = Node::new(NodeConfig::new("s1", 1));
        let (stx, srx) = mpsc::channel(64);
        let neighbours = if via_relay {
            vec![Neighbour {
                id: "relay".into(),
                addr: r_addr,
            }]
        } else {
            vec![]
        };
        stx.send(NodeCommand::SetNeighbours(neighbours))
            .await
            .expect("send");
        stx.send(NodeCommand::AddChannel(LocalChannel {
            name: "bench".into(),
            codec: "h264".into(),
            width: 1280,
            height: 720,
            fps_milli: 30_000,
            bitrate_kbps: 8000,
        }))
        .await
        .expect("send");
        let ssock = meshcast_io::bind_udp(s_addr).expect("bind server");
        let sshut = shutdown.clone();
        let server_task = tokio::spawn(async move {
            meshcast_io::run(&mut server, &ssock, srx, &mut (), sshut).await;
        });
        let publisher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / PPS));
            let mut cc = 0u8;
            loop {
                tick.tick().await;
                let mut payload = Vec::with_capacity(1316);
                for i in 0..7 {
                    let mut p = [0xFFu8; 188];
                    p[0] = 0x47;
                    p[1] = 0x01;
                    p[2] = 0x00;
                    p[3] = 0x10 | (cc & 0x0F);
                    cc = cc.wrapping_add(1);
                    if i == 0 {
                        let t = epoch.elapsed().as_nanos() as u64;
                        p[4..12].copy_from_slice(&t.to_be_bytes());
                    }
                    payload.extend_from_slice(&p);
                }
                if stx
                    .send(NodeCommand::Publish {
                        channel: "bench".into(),
                        payload,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        // Viewer.
        let pop = if via_relay { r_addr } else { s_addr };
        let mut config = ClientConfig::new(vec![pop], 3);
        config.start_at_keyframe = false; // synthetic TS without keyframes
        config.playout_latency = Duration::ZERO; // measure the network, not the buffer
        let mut client = Client::new(config);
        let (ctx, crx) = mpsc::channel(4);
        ctx.send(ClientCommand::Watch("bench".into()))
            .await
            .expect("send");
        let csock =
            meshcast_io::bind_udp(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind client");
        let mut viewer = Viewer {
            epoch,
            samples: Vec::new(),
            until: Instant::now() + RUN,
        };
        // Give the overlay a moment to converge before watching (announcements, pings).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        viewer.until = Instant::now() + RUN;
        viewer.epoch = epoch;
        meshcast_io::run(&mut client, &csock, crx, &mut viewer, shutdown.clone()).await;
        trigger.fire();
        publisher.abort();
        let _ = server_task.await;
        viewer.samples
    });
    if let Some(r) = relay {
        let _ = r.join();
    }
    (samples, cpu_rx.try_recv().ok())
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let (mut direct, _) = scenario(false);
    let (mut relayed, cpu) = scenario(true);
    let (d50, d99) = (pct(&mut direct, 0.5), pct(&mut direct, 0.99));
    let (r50, r99) = (pct(&mut relayed, 0.5), pct(&mut relayed, 0.99));
    println!(
        "stream: {PPS} datagrams/s of 1316 B TS ≈ {:.1} Mbit/s, {} s measured",
        PPS as f64 * 1316.0 * 8.0 / 1e6,
        RUN.as_secs() - WARMUP.as_secs()
    );
    println!(
        "direct  (server → viewer):          {} samples, p50 {:>7.1} µs, p99 {:>7.1} µs",
        direct.len(),
        d50.as_secs_f64() * 1e6,
        d99.as_secs_f64() * 1e6
    );
    println!(
        "relayed (server → relay → viewer):  {} samples, p50 {:>7.1} µs, p99 {:>7.1} µs",
        relayed.len(),
        r50.as_secs_f64() * 1e6,
        r99.as_secs_f64() * 1e6
    );
    println!(
        "per-hop latency added by the relay:  p50 {:>7.1} µs, p99 {:>7.1} µs",
        (r50.as_secs_f64() - d50.as_secs_f64()) * 1e6,
        (r99.as_secs_f64() - d99.as_secs_f64()) * 1e6
    );
    if let Some(c) = cpu {
        println!(
            "relay CPU: {:.1} % of one core for one 8 Mbit/s stream",
            c * 100.0
        );
    }
}
