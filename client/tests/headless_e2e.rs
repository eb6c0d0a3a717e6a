//! The real `meshcast-client` binary, headless, against a fake PoP made of the real node
//! machine on the real io driver: no other meshcast binary is involved.

use meshcast_io::{Shutdown, ShutdownTrigger};
use meshcast_proto::node::{LocalChannel, Node, NodeCommand, NodeConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const TS_PACKET: usize = 188;

/// A node with one local channel "test" and no neighbours: it serves clients directly.
struct FakePop {
    addr: SocketAddr,
    trigger: ShutdownTrigger,
    thread: Option<JoinHandle<()>>,
}

impl FakePop {
    fn start() -> FakePop {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (trigger, shutdown) = Shutdown::new();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let socket = meshcast_io::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
                addr_tx.send(socket.local_addr().unwrap()).unwrap();
                let (tx, rx) = mpsc::channel(1024);
                tx.send(NodeCommand::AddChannel(LocalChannel {
                    name: "test".into(),
                    codec: "h264".into(),
                    width: 320,
                    height: 240,
                    fps_milli: 30_000,
                    bitrate_kbps: 1_500,
                }))
                .await
                .unwrap();
                tokio::spawn(publish(tx, shutdown.clone()));
                let mut node = Node::new(NodeConfig::new("s1", 7));
                meshcast_io::run(&mut node, &socket, rx, &mut (), shutdown).await;
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("fake PoP bound");
        FakePop {
            addr,
            trigger,
            thread: Some(thread),
        }
    }
}

impl Drop for FakePop {
    fn drop(&mut self) {
        self.trigger.fire();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// 7 synthetic TS packets (PID 0x100, payload only, continuity counter mod 16) every 5 ms.
async fn publish(tx: mpsc::Sender<NodeCommand>, mut shutdown: Shutdown) {
    let mut cc: u8 = 0;
    let mut chunk: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        let mut payload = Vec::with_capacity(7 * TS_PACKET);
        for i in 0..7 {
            let mut p = [0xAAu8; TS_PACKET];
            p[0] = 0x47;
            p[1] = 0x01; // PID high bits: 0x100
            p[2] = 0x00;
            p[3] = 0x10 | cc; // payload only
            if i == 0 && chunk.is_multiple_of(20) {
                // a video keyframe: PUSI, random-access indicator, video PES start code
                p[1] |= 0x40;
                p[3] = 0x30 | cc;
                p[4] = 1;
                p[5] = 0x40;
                p[6..10].copy_from_slice(&[0, 0, 1, 0xE0]);
            }
            cc = (cc + 1) % 16;
            payload.extend_from_slice(&p);
        }
        chunk += 1;
        let command = NodeCommand::Publish {
            channel: "test".into(),
            payload,
        };
        if tx.send(command).await.is_err() {
            return;
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meshcast-client-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the client binary to completion, killing it after `limit`.
fn client(args: &[&str], limit: Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_meshcast-client"))
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("MESHCAST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("client binary runs");
    let pid = child.id();
    // Watchdog: a hung client fails the test instead of hanging it.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(limit).is_err() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            return true;
        }
        false
    });
    let out = child.wait_with_output().unwrap();
    let _ = done_tx.send(());
    assert!(
        !watchdog.join().unwrap(),
        "client did not finish within {limit:?}: {out:?}"
    );
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn headless_watch_records_the_exact_bytes_and_writes_stats() {
    let pop = FakePop::start();
    let dir = scratch("watch");
    let rec = dir.join("r.ts");
    let stats = dir.join("s.json");
    let pops = pop.addr.to_string();
    let out = client(
        &[
            "--pops",
            &pops,
            "--watch",
            "test",
            "--record",
            rec.to_str().unwrap(),
            "--duration",
            "3",
            "--stats",
            stats.to_str().unwrap(),
            "--headless",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let s = read_json(&stats);
    println!("stats: {s}\nstderr:\n{}", stderr(&out));
    let media = s["media_packets"].as_u64().unwrap();
    let ts_packets = s["ts_packets"].as_u64().unwrap();
    assert!(media > 100, "only {media} media datagrams: {s}");
    assert_eq!(s["continuity_errors"].as_u64(), Some(0), "{s}");
    assert!(s["startup_ms"].is_number(), "{s}");
    assert_eq!(s["pop"].as_str(), Some(pops.as_str()), "{s}");
    let size = std::fs::metadata(&rec).unwrap().len();
    assert!(size > 0);
    assert_eq!(size % TS_PACKET as u64, 0, "recording of {size} bytes");
    // The recording starts at the first keyframe the client saw and ends at the last unit
    // start, so it holds at most what arrived, and less by at most one 20-chunk GOP at each end.
    assert!(size <= ts_packets * TS_PACKET as u64, "{s}");
    assert!(
        size + 2 * 21 * 7 * TS_PACKET as u64 >= ts_packets * TS_PACKET as u64,
        "{s}"
    );
    let bytes = std::fs::read(&rec).unwrap();
    assert_eq!(
        bytes[5], 0x40,
        "the recording begins with the keyframe packet"
    );
    assert!(
        bytes.chunks(TS_PACKET).all(|p| p[0] == 0x47),
        "sync bytes intact"
    );
    assert!(
        stderr(&out).contains("watched test via"),
        "summary line: {}",
        stderr(&out)
    );
    // Nothing but the two outputs in the directory: the stats temporary was renamed.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn watching_an_unknown_channel_exits_1() {
    let pop = FakePop::start();
    let pops = pop.addr.to_string();
    let started = Instant::now();
    let out = client(
        &["--pops", &pops, "--watch", "nope", "--headless"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("no such channel: nope"),
        "stderr: {}",
        stderr(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered promptly"
    );
}

#[test]
fn list_prints_the_channel_table() {
    let pop = FakePop::start();
    let pops = pop.addr.to_string();
    let out = client(&["--pops", &pops, "--list"], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("test "))
        .unwrap_or_else(|| panic!("no row for test in:\n{stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["test", "h264", "320x240", "30.00", "1500"]);
}

#[test]
fn silent_pops_are_named_after_ten_seconds() {
    // Bound and never read: it answers nothing (and draws no ICMP errors either).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = client(
        &["--pops", &addr, "--watch", "test", "--headless"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let e = stderr(&out);
    assert!(
        e.contains("no PoP answered") && e.contains(&addr),
        "stderr: {e}"
    );
    assert!(started.elapsed() >= Duration::from_secs(10));
}

#[test]
fn bad_arguments_exit_2() {
    let out = client(
        &["--pops", "127.0.0.1:1", "--duration", "soon"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    let out = client(
        &["--pops", "127.0.0.1:1", "--headless"],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
}
