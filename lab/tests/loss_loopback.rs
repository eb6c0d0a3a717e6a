//! Loss recovery with real processes on loopback: every overlay link of a chain drops a share
//! of the datagrams sent over it (user-space link emulation, `--emulation`), and a headless
//! client three relays away must still play (almost) everything.
//!
//! ```text
//! s1 ──── n1 ──── n2 ──── n3 ◄── c1
//!    lossy   lossy   lossy    (the client↔PoP hop is not emulated)
//! ```
//!
//! Each `[[link]]` has `latency_ms = 2.0` and `loss = 0.05` (then `0.10`, fresh processes);
//! both ends of a link apply it to what they send, so media, NACKs, retransmissions and control
//! traffic are all lost at that rate. The client watches for [`WATCH_SECS`] and must end with
//! a continuity index of at least 0.999 (0.99 at 10 %), a recording that decodes with
//! `ffmpeg -xerror`, and every emulated link direction must have dropped datagrams (else the
//! test proved nothing).
//!
//! The two runs go one after the other in one test (each runs an FFmpeg encoder, and recovery
//! is timing), both even if the first fails. Each uses its own port on a loopback /24 derived from the process id. Every process is
//! killed by PID when a run ends, on every path (`Procs` drop), and the end of each run checks
//! that no process of its groups (the binaries and the FFmpeg they started) is left.
//!
//! Needs ffmpeg (installed by `.ci/run`) and `cargo build --bins` first.

mod common;

use common::{bin, have, processes_in_groups, read_json, route, subnet};
use meshcast_lab::procs::{Procs, RunDir, describe_status, wait_for};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

const CHANNEL: &str = "test-pattern";
const WATCH_SECS: u64 = 20;
const LATENCY_MS: f64 = 2.0;

/// Ports of the two runs (distinct from e2e 7000, bootstrap 7100, faults 7200–7202).
const PORT_LOSS_5: u16 = 7300;
const PORT_LOSS_10: u16 = 7301;

/// The overlay: (id, role, last address octet).
const MEMBERS: [(&str, &str, u8); 5] = [
    ("boot", "bootstrapper", 1),
    ("s1", "server", 2),
    ("n1", "node", 3),
    ("n2", "node", 4),
    ("n3", "node", 5),
];
/// The chain, parent first: each is also the path the stream must take.
const LINKS: [(&str, &str); 3] = [("s1", "n1"), ("n1", "n2"), ("n2", "n3")];
/// Processes that emulate their links.
const OVERLAY: [&str; 4] = ["s1", "n1", "n2", "n3"];
const RELAYS: [&str; 3] = ["n1", "n2", "n3"];

fn modified_after(path: &Path, t: SystemTime) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|m| m > t)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

// ---------------------------------------------------------------------------------------------
// One lossy mesh

/// Bootstrapper, server and three relays as real processes, all emulating their lossy links.
struct Mesh {
    procs: Procs,
    root: PathBuf,
    port: u16,
    topo: PathBuf,
}

impl Mesh {
    fn start(name: &str, port: u16, loss: f64) -> Mesh {
        let root =
            std::env::temp_dir().join(format!("meshcast-loss-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let run = RunDir::create(&root, name).expect("run dir");
        let dir = run.path().to_owned();
        let topo = dir.join("loss.toml");
        let videos = dir.join("videos");
        std::fs::create_dir_all(&videos).expect("videos dir");
        let procs = Procs::new(run).expect("supervisor");
        let mut mesh = Mesh {
            procs,
            root,
            port,
            topo,
        };
        mesh.write_topology(loss);

        let boot = mesh.addr("boot");
        let mut c = Command::new(bin("meshcast-bootstrapper"));
        c.arg("--topology").arg(&mesh.topo);
        mesh.procs
            .spawn("boot", "bootstrapper", c)
            .expect("bootstrapper");
        let mut c = Command::new(bin("meshcast-server"));
        c.args(["--id", "s1", "--bootstrapper", &boot])
            .args(["--video-kbps", "1000", "--pattern-size", "640x360"])
            .arg("--videos")
            .arg(&videos)
            .arg("--emulation")
            .arg(&mesh.topo)
            .arg("--stats")
            .arg(mesh.stats("s1"));
        mesh.procs.spawn("s1", "server", c).expect("server");
        for n in RELAYS {
            let mut c = Command::new(bin("meshcast-node"));
            c.args(["--id", n, "--bootstrapper", &boot])
                .arg("--emulation")
                .arg(&mesh.topo)
                .arg("--stats")
                .arg(mesh.stats(n));
            mesh.procs.spawn(n, "node", c).expect("node");
        }
        // The PoP knows the channel, over the chain, and every link is up.
        let converged = wait_for(
            || {
                read_json(&mesh.stats("n3"))
                    .is_some_and(|s| route(&s, CHANNEL).is_some_and(|r| r["upstream"] == "n2"))
                    && LINKS
                        .iter()
                        .all(|(a, b)| mesh.neighbour_up(a, b) && mesh.neighbour_up(b, a))
            },
            Instant::now() + Duration::from_secs(30),
        );
        if !converged {
            panic!(
                "the overlay never converged on {CHANNEL} (n3 routed via n2, every link up):\n{}",
                mesh.dump(&OVERLAY, 25)
            );
        }
        mesh
    }

    fn write_topology(&self, loss: f64) {
        let mut t = String::from("# generated by lab/tests/loss_loopback.rs\n\n");
        for (id, role, _) in MEMBERS {
            let _ = write!(
                t,
                "[[node]]\nid = \"{id}\"\nrole = \"{role}\"\naddr = \"{}\"\n\n",
                self.addr(id)
            );
        }
        for (a, b) in LINKS {
            let _ = write!(
                t,
                "[[link]]\nbetween = [\"{a}\", \"{b}\"]\nlatency_ms = {LATENCY_MS:.1}\nloss = {loss:.2}\n\n"
            );
        }
        std::fs::write(&self.topo, t).expect("write topology");
    }

    fn addr(&self, id: &str) -> String {
        let (a, b) = subnet();
        let (_, _, i) = MEMBERS
            .iter()
            .find(|(m, _, _)| *m == id)
            .unwrap_or_else(|| panic!("no member {id}"));
        format!("127.{a}.{b}.{i}:{}", self.port)
    }

    fn stats(&self, id: &str) -> PathBuf {
        self.procs.run_dir().stats_file(id)
    }

    fn log(&self, id: &str) -> PathBuf {
        self.procs.run_dir().log_file(id)
    }

    fn dump(&self, ids: &[&str], lines: usize) -> String {
        common::dump(self.procs.run_dir(), ids, lines)
    }

    fn neighbour_up(&self, node: &str, neighbour: &str) -> bool {
        common::neighbour_up(&self.stats(node), neighbour)
    }

    /// Stops every process and checks that nothing of any process group the mesh started is
    /// left; removes the run directory unless `keep` (a failure to look into).
    fn finish(mut self, keep: bool) {
        let groups: BTreeSet<i64> = self.procs.list().iter().map(|p| i64::from(p.pid)).collect();
        self.procs.stop_all();
        let leftovers = processes_in_groups(&groups);
        let dir = self.procs.run_dir().path().to_owned();
        let root = self.root.clone();
        drop(self);
        assert!(
            leftovers.is_empty(),
            "processes outlived the mesh: {leftovers:?}"
        );
        if keep {
            eprintln!("kept the run dir {} for inspection", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&root);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// One emulated link direction as its sender reported it.
struct LinkDrops {
    from: String,
    to: String,
    loss: f64,
    offered: u64,
    dropped: u64,
    random: u64,
}

/// The media carried by one overlay hop, from the parent's and the child's counters once the
/// stream stopped: the parent sent `sent` datagrams (first copies and retransmissions), the
/// child accepted `accepted` distinct ones. Every distinct packet was first sent once, so
/// `sent - accepted` estimates the retransmissions (plus whatever stayed lost on that hop).
struct Hop {
    parent: &'static str,
    child: &'static str,
    sent: u64,
    accepted: u64,
    duplicates: u64,
}

impl Hop {
    fn retransmitted(&self) -> u64 {
        self.sent.saturating_sub(self.accepted)
    }
}

/// Runs one lossy mesh with a 20 s watch, prints its figures, and returns what failed.
fn loss_run(name: &str, port: u16, loss: f64, min_continuity: f64) -> Vec<String> {
    assert!(
        have("ffmpeg"),
        "ffmpeg is required (scripts/deps.sh --test installs it)"
    );
    let mut failures: Vec<String> = Vec::new();
    let mut mesh = Mesh::start(name, port, loss);
    let label = format!("loss {:.0} %", loss * 100.0);

    // Every process logged the links it emulates: both directions of each link.
    let expected_lines: Vec<(&str, String)> = LINKS
        .iter()
        .flat_map(|(a, b)| {
            [
                (*a, format!("emulating link {a}→{b}")),
                (*b, format!("emulating link {b}→{a}")),
            ]
        })
        .collect();
    for (id, line) in &expected_lines {
        let log = std::fs::read_to_string(mesh.log(id)).unwrap_or_default();
        match log.lines().find(|l| l.contains(line.as_str())) {
            Some(l) => eprintln!("{label}: {id}: {}", l.trim()),
            None => failures.push(format!("{id} never logged \"{line}: …\"")),
        }
    }

    // The watch.
    let rec = mesh.procs.run_dir().path().join("c1.ts");
    let mut c = Command::new(bin("meshcast-client"));
    c.args(["--headless", "--pops", &mesh.addr("n3"), "--watch", CHANNEL])
        .args(["--duration", &WATCH_SECS.to_string()])
        .arg("--record")
        .arg(&rec)
        .arg("--stats")
        .arg(mesh.stats("c1"));
    let watch_at = Instant::now();
    mesh.procs.spawn("c1", "client", c).expect("client");
    let done = {
        let procs = &mut mesh.procs;
        wait_for(
            || !procs.is_running("c1"),
            watch_at + Duration::from_secs(WATCH_SECS + 30),
        )
    };
    if !done {
        let dump = mesh.dump(&["c1", "n3"], 30);
        mesh.finish(true);
        panic!("{label}: c1 did not finish its {WATCH_SECS} s watch:\n{dump}");
    }
    let finished = SystemTime::now();
    let status = mesh.procs.status("c1").expect("c1 exited");
    let client = read_json(&mesh.stats("c1")).unwrap_or(Value::Null);

    // Node counters once the stream stopped: the client's Unwatch and the Leaves up the chain
    // empty every downstream, after which the media counters no longer move. Wait for a stats
    // file written after that on every overlay process.
    let mut nodes: Vec<(&str, Value)> = Vec::new();
    let settled = wait_for(
        || {
            let fresh: Vec<(&str, Value)> = OVERLAY
                .iter()
                .filter(|id| modified_after(&mesh.stats(id), finished))
                .filter_map(|id| read_json(&mesh.stats(id)).map(|s| (*id, s)))
                .collect();
            let quiet = fresh.len() == OVERLAY.len()
                && fresh.iter().all(|(_, s)| {
                    route(s, CHANNEL)
                        .is_some_and(|r| r["downstream"].as_array().is_some_and(Vec::is_empty))
                });
            if quiet {
                nodes = fresh;
            }
            quiet
        },
        Instant::now() + Duration::from_secs(10),
    );
    if !settled {
        eprintln!(
            "{label}: note: the stream did not stop everywhere within 10 s of the watch's end; \
             the hop figures below mix moments"
        );
        nodes = OVERLAY
            .iter()
            .filter_map(|id| read_json(&mesh.stats(id)).map(|s| (*id, s)))
            .collect();
    }
    let node = |id: &str| {
        nodes
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, s)| s)
            .unwrap_or(&Value::Null)
    };

    // Emulation counters of every link direction.
    let mut drops: Vec<LinkDrops> = Vec::new();
    for id in OVERLAY {
        let e = &node(id)["emulation"];
        if e["enabled"] != true {
            failures.push(format!("{id}: emulation not enabled in its stats: {e}"));
            continue;
        }
        for l in e["links"].as_array().map_or(&[][..], Vec::as_slice) {
            let d = &l["dropped"];
            drops.push(LinkDrops {
                from: id.to_owned(),
                to: l["to"].as_str().unwrap_or("?").to_owned(),
                loss: l["loss"].as_f64().unwrap_or(f64::NAN),
                offered: u(&l["offered"]),
                dropped: u(&d["down"]) + u(&d["random"]) + u(&d["burst"]) + u(&d["queue"]),
                random: u(&d["random"]),
            });
        }
    }
    for (a, b) in LINKS {
        for (from, to) in [(a, b), (b, a)] {
            match drops.iter().find(|d| d.from == from && d.to == to) {
                None => failures.push(format!("{from} does not emulate its link to {to}")),
                Some(d) if (d.loss - loss).abs() > 1e-9 => failures.push(format!(
                    "{from}→{to} emulates loss {} instead of {loss}",
                    d.loss
                )),
                Some(d) if d.random == 0 => failures.push(format!(
                    "{from}→{to} dropped nothing ({} datagrams offered): the loss was not emulated",
                    d.offered
                )),
                Some(_) => {}
            }
        }
    }

    // Media per hop, for the retransmission estimate.
    let mut hops: Vec<Hop> = Vec::new();
    for (parent, child) in LINKS {
        let p = route(node(parent), CHANNEL);
        let c = route(node(child), CHANNEL);
        let (Some(p), Some(c)) = (p, c) else {
            failures.push(format!("no {CHANNEL} route at {parent} or {child}"));
            continue;
        };
        hops.push(Hop {
            parent,
            child,
            sent: u(&p["media_out"][child]),
            accepted: u(&c["media_in"]),
            duplicates: u(&c["duplicates"]),
        });
    }
    let pop_out: u64 = route(node("n3"), CHANNEL)
        .and_then(|r| r["media_out"].as_object())
        .map_or(0, |m| m.values().map(u).sum());

    // The viewer.
    let ci = client["continuity_index"].as_f64();
    let stalls = client["stalls"].as_array().map_or(0, Vec::len);
    let decode = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-xerror", "-i"])
        .arg(&rec)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let rec_bytes = std::fs::metadata(&rec).map_or(0, |m| m.len());

    // The report.
    let mut out = format!(
        "==== {label} on every overlay link ({LATENCY_MS} ms each way), {WATCH_SECS} s watch\n\
         c1: {}; continuity_index {}; lost {} / late {} / recovered {} packets; nacks_sent {}; \
         stalls {stalls} {}; media_packets {}; seq_gaps {}; continuity_errors {}; duplicates {}; \
         corrupt {}; playout_latency_ms {}; startup_ms {}; pop {}\n\
         recording: {rec_bytes} bytes; ffmpeg -xerror decode: {}\n",
        describe_status(status),
        ci.map_or("null".into(), |c| format!("{c:.5}")),
        client["lost_packets"],
        client["late_packets"],
        client["recovered_packets"],
        client["nacks_sent"],
        client["stalls"],
        client["media_packets"],
        client["seq_gaps"],
        client["continuity_errors"],
        client["duplicate_packets"],
        client["corrupt_packets"],
        client["playout_latency_ms"],
        client["startup_ms"],
        client["pop"],
        if decode.status.success() {
            "ok".to_owned()
        } else {
            format!(
                "FAILED ({}): {}",
                decode.status,
                String::from_utf8_lossy(&decode.stderr).trim()
            )
        },
    );
    out += "emulation drops per sender (all datagrams: media, NACKs, control):\n";
    for id in OVERLAY {
        let e = &node(id)["emulation"];
        let dropped: u64 = e["dropped"]
            .as_object()
            .map_or(0, |m| m.values().map(u).sum());
        let _ = writeln!(
            out,
            "  {id} total: offered {}, dropped {dropped} ({:.2} %)",
            u(&e["offered"]),
            pct(dropped, u(&e["offered"]))
        );
    }
    for d in &drops {
        let _ = writeln!(
            out,
            "  {}→{}: offered {}, dropped {} ({:.2} %; random {})",
            d.from,
            d.to,
            d.offered,
            d.dropped,
            pct(d.dropped, d.offered),
            d.random
        );
    }
    out += "media per hop (parent sent incl. retransmissions vs child accepted once):\n";
    let (mut sent_sum, mut acc_sum) = (0, 0);
    for h in &hops {
        sent_sum += h.sent;
        acc_sum += h.accepted;
        let _ = writeln!(
            out,
            "  {}→{}: sent {}, accepted {}, duplicates {}, ≈ {} retransmissions ({:.2} % overhead)",
            h.parent,
            h.child,
            h.sent,
            h.accepted,
            h.duplicates,
            h.retransmitted(),
            pct(h.retransmitted(), h.accepted)
        );
    }
    let _ = writeln!(
        out,
        "  overlay total: ≈ {} retransmissions over {} accepted ({:.2} % overhead); \
         n3→client: {pop_out} datagrams sent, client received {} (duplicates included){}",
        sent_sum.saturating_sub(acc_sum),
        acc_sum,
        pct(sent_sum.saturating_sub(acc_sum), acc_sum),
        client["media_packets"],
        if settled {
            ""
        } else {
            " [counters not settled]"
        }
    );
    eprint!("{out}");

    // The verdict.
    if !status.success() {
        failures.push(format!("c1 exited with {}", describe_status(status)));
    }
    match ci {
        None => failures.push(format!("c1 reported no continuity index: {client}")),
        Some(c) if c < min_continuity => failures.push(format!(
            "continuity index {c:.5} < {min_continuity} (lost {}, late {}, recovered {})",
            client["lost_packets"], client["late_packets"], client["recovered_packets"]
        )),
        Some(_) => {}
    }
    if rec_bytes == 0 {
        failures.push("the recording is empty".into());
    }
    if !decode.status.success() {
        failures.push(format!(
            "the recording does not decode cleanly: {}",
            String::from_utf8_lossy(&decode.stderr).trim()
        ));
    }
    if !failures.is_empty() {
        eprintln!("{}", mesh.dump(&["c1", "n3", "n2", "n1", "s1"], 25));
    }
    mesh.finish(!failures.is_empty());
    failures
}

#[test]
fn five_and_ten_percent_loss_on_every_overlay_link_is_recovered() {
    // Both runs happen even if the first fails: their figures belong together.
    let mut failed = Vec::new();
    for (name, port, loss, min_continuity) in [
        ("loss-5", PORT_LOSS_5, 0.05, 0.999),
        ("loss-10", PORT_LOSS_10, 0.10, 0.99),
    ] {
        let failures = loss_run(name, port, loss, min_continuity);
        if !failures.is_empty() {
            failed.push(format!("loss {:.0} %: {failures:#?}", loss * 100.0));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
