//! What a scenario run measured: the types written to `results/summary.json` (and read back by
//! `report`), their CSV forms, the computations behind path, stretch and link stress, and the
//! summary table printed at the end of `run`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use meshcast_topology::Topology;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One run of a scenario (one sweep value).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// Variant label such as `loss=0.05` (empty without a sweep).
    pub variant: String,
    /// Loss applied to every link by the sweep.
    pub sweep_loss: Option<f64>,
    /// Topology name.
    pub topology: String,
    /// `loopback` or `netns`.
    pub mode: String,
    /// The machine it ran on (kernel, CPUs), for the report.
    #[serde(default)]
    pub machine: String,
    /// Servers and nodes.
    pub overlay_nodes: usize,
    /// Overlay links.
    pub overlay_links: usize,
    /// Timeline length, s.
    pub duration_s: f64,
    /// Wall time of the whole run (startup, timeline, collection), s.
    pub wall_s: f64,
    /// Mean bitrate the clients received, kbit/s.
    pub stream_kbps: f64,
    /// Per client session.
    pub clients: Vec<ClientResult>,
    /// Per server/node.
    pub nodes: Vec<NodeResult>,
    /// Per overlay link that carried media.
    pub links: Vec<LinkResult>,
    /// The timeline as executed.
    pub events: Vec<EventResult>,
    /// Repair times of viewers affected by faults.
    pub repairs: Vec<Repair>,
    /// Processes that died without the scenario killing them.
    pub unexpected_exits: Vec<String>,
    /// The expectations and their outcome.
    pub expectations: Vec<ExpectationResult>,
    /// All expectations held and nothing died unexpectedly.
    pub passed: bool,
}

/// A time interval in scenario time.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Interval {
    /// Start, s since t = 0.
    pub start_s: f64,
    /// Length, ms.
    pub duration_ms: f64,
}

/// One viewing session of a client.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ClientResult {
    /// Client id.
    pub id: String,
    /// Session start (process start), s since t = 0.
    pub started_s: f64,
    /// Session end, s since t = 0.
    pub ended_s: f64,
    /// How the process ended.
    pub exit: String,
    /// The PoP it ended on.
    pub pop: Option<String>,
    /// Watch request → first media, ms.
    pub startup_ms: Option<f64>,
    /// Watch request → first keyframe, ms.
    pub first_keyframe_ms: Option<f64>,
    /// Continuity index.
    pub continuity: Option<f64>,
    /// Datagrams skipped by the playout buffer.
    pub lost_packets: u64,
    /// Datagrams too late for their play time.
    pub late_packets: u64,
    /// Datagrams recovered after a NACK.
    pub recovered_packets: u64,
    /// TS continuity errors.
    pub cc_errors: u64,
    /// Media datagrams received.
    pub media_packets: u64,
    /// Received bitrate, kbit/s.
    pub bitrate_kbps: f64,
    /// Stalls (gaps > 200 ms).
    pub stalls: Vec<Interval>,
    /// Media gaps > 100 ms.
    pub gaps: Vec<Interval>,
    /// Whether the recording decodes cleanly (`ffmpeg -xerror`); `None` if not checked.
    pub decode_ok: Option<bool>,
    /// The overlay path most often seen, origin first, PoP last.
    pub path: Vec<String>,
    /// Mean stretch over the samples in which a path was seen.
    pub stretch: Option<f64>,
}

impl ClientResult {
    /// Longest stall, 0 without stalls.
    pub fn max_stall_ms(&self) -> f64 {
        self.stalls
            .iter()
            .map(|s| s.duration_ms)
            .fold(0.0, f64::max)
    }
}

/// One server or node (its last incarnation).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct NodeResult {
    /// Id.
    pub id: String,
    /// `server` or `node`.
    pub role: String,
    /// Uptime of the last incarnation, s.
    pub uptime_s: f64,
    /// Control bytes sent per second.
    pub control_tx_bps: f64,
    /// Control bytes received per second.
    pub control_rx_bps: f64,
    /// Media bytes sent per second.
    pub media_tx_bps: f64,
    /// `control_tx_bps` as a % of the stream's bitrate.
    pub overhead_pct: Option<f64>,
    /// Media datagrams re-sent after NACKs.
    pub retransmitted: u64,
    /// Input dropped (every reason but second copies and stale announcements, which are normal).
    pub drops: u64,
    /// Times the scenario restarted it.
    pub restarts: u32,
}

/// One overlay link that carried media.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LinkResult {
    /// One end (the lower id).
    pub a: String,
    /// The other end.
    pub b: String,
    /// Media datagrams a → b (last incarnations' counters).
    pub a_to_b: u64,
    /// Media datagrams b → a.
    pub b_to_a: u64,
    /// Most copies of one stream seen on the link at one moment (per-second snapshots).
    pub stress: f64,
}

/// One timeline event as executed.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EventResult {
    /// When, s since t = 0 (as executed).
    pub at_s: f64,
    /// What the scenario said.
    pub action: String,
    /// The node or client it hit, once resolved.
    pub target: Option<String>,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// How long one affected viewer went without media after one fault.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Repair {
    /// Fault time, s since t = 0.
    pub at_s: f64,
    /// The fault.
    pub event: String,
    /// The viewer.
    pub client: String,
    /// Longest media gap starting within [fault − 1 s, fault + 5 s]; 0 if none over 100 ms.
    pub repair_ms: f64,
}

/// One expectation's outcome.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ExpectationResult {
    /// As written.
    pub text: String,
    /// Measured value.
    pub value: Option<f64>,
    /// Whether it held.
    pub passed: bool,
}

// ---------------------------------------------------------------------------------------------
// Paths, stretch, link stress from node stats snapshots

/// The stats of every server and node at one moment.
pub type Snapshot = BTreeMap<String, Value>;

/// The PoP serving the client at `client_addr` and the stream it is fed: the node whose active
/// route of `channel` has that client downstream now. (A former PoP may still list the client
/// among its watchers for a few seconds of soft state, but no longer forwards to it.)
pub fn pop_of(snapshot: &Snapshot, client_addr: &str, channel: &str) -> Option<(String, String)> {
    let key = format!("client:{client_addr}");
    snapshot.iter().find_map(|(id, stats)| {
        let routes = stats.get("routes")?.as_array()?;
        routes.iter().find_map(|r| {
            let serving = r.get("channel").and_then(Value::as_str) == Some(channel)
                && r.get("state").and_then(Value::as_str) == Some("active")
                && r.get("downstream")
                    .and_then(Value::as_array)
                    .is_some_and(|d| d.iter().any(|x| x.as_str() == Some(key.as_str())));
            serving.then(|| {
                let stream = r.get("stream").and_then(Value::as_str).unwrap_or_default();
                (id.clone(), stream.to_owned())
            })
        })
    })
}

/// The active route of `stream` at a node: (upstream, local).
fn route_of(stats: &Value, stream: &str) -> Option<(Option<String>, bool)> {
    let routes = stats.get("routes")?.as_array()?;
    let route = routes.iter().find(|r| {
        r.get("stream").and_then(Value::as_str) == Some(stream)
            && r.get("state").and_then(Value::as_str) == Some("active")
    })?;
    let local = route.get("local").and_then(Value::as_bool).unwrap_or(false);
    let upstream = route
        .get("upstream")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some((upstream, local))
}

/// The tree path of `stream` from its origin to `pop`, origin first, following each node's
/// active upstream for that stream; `None` if it breaks or loops.
pub fn path_to(snapshot: &Snapshot, pop: &str, stream: &str) -> Option<Vec<String>> {
    let mut path = vec![pop.to_owned()];
    let mut at = pop.to_owned();
    for _ in 0..=snapshot.len() {
        let (upstream, local) = route_of(snapshot.get(&at)?, stream)?;
        if local {
            path.reverse();
            return Some(path);
        }
        let next = upstream?;
        if path.contains(&next) {
            return None;
        }
        path.push(next.clone());
        at = next;
    }
    None
}

/// The weight of a link for stretch: its configured latency, or 1 (a hop) when the topology
/// configures no latency at all.
fn weight(topology: &Topology, a: &str, b: &str, by_latency: bool) -> Option<f64> {
    let link = topology.link_between(a, b)?;
    Some(if by_latency {
        link.attrs.latency_ms.unwrap_or(0.0)
    } else {
        1.0
    })
}

/// Overlay path delay / shortest-path delay from the path's origin to its end, with link
/// latencies from the topology (hop counts when it has none). `None` for a one-node path or a
/// zero-length shortest path.
pub fn stretch(topology: &Topology, path: &[String]) -> Option<f64> {
    let (origin, end) = (path.first()?, path.last()?);
    if path.len() < 2 {
        return None;
    }
    let by_latency = topology
        .links()
        .iter()
        .any(|l| l.attrs.latency_ms.is_some_and(|x| x > 0.0));
    let mut along = 0.0;
    for pair in path.windows(2) {
        along += weight(topology, &pair[0], &pair[1], by_latency)?;
    }
    let shortest = shortest_path(topology, origin, end, by_latency)?;
    (shortest > 0.0).then(|| along / shortest)
}

/// Dijkstra over the overlay links (few nodes: a linear scan per step is enough).
fn shortest_path(topology: &Topology, from: &str, to: &str, by_latency: bool) -> Option<f64> {
    let mut dist: BTreeMap<&str, f64> = BTreeMap::new();
    let mut done: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    dist.insert(from, 0.0);
    loop {
        let (&node, &d) = dist
            .iter()
            .filter(|(n, _)| !done.contains(*n))
            .min_by(|a, b| a.1.total_cmp(b.1))?;
        if node == to {
            return Some(d);
        }
        done.insert(node);
        for link in topology.links() {
            let Some(other) = link.other_end(node) else {
                continue;
            };
            let w = if by_latency {
                link.attrs.latency_ms.unwrap_or(0.0)
            } else {
                1.0
            };
            let entry = dist.entry(other).or_insert(f64::INFINITY);
            if d + w < *entry {
                *entry = d + w;
            }
        }
    }
}

/// Media datagrams each node sent to each neighbour, per stream: `(from, to, stream) → count`.
pub fn media_out(snapshot: &Snapshot) -> BTreeMap<(String, String, String), u64> {
    let mut out = BTreeMap::new();
    for (id, stats) in snapshot {
        let neighbours: Vec<&str> = stats
            .get("neighbours")
            .and_then(Value::as_array)
            .map(|n| {
                n.iter()
                    .filter_map(|x| x.get("id").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let Some(routes) = stats.get("routes").and_then(Value::as_array) else {
            continue;
        };
        for route in routes {
            let stream = route
                .get("stream")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(map) = route.get("media_out").and_then(Value::as_object) else {
                continue;
            };
            for (to, count) in map {
                // Clients are keyed by address; only overlay links count for stress.
                if neighbours.contains(&to.as_str()) {
                    *out.entry((id.clone(), to.clone(), stream.to_owned()))
                        .or_insert(0) += count.as_u64().unwrap_or(0);
                }
            }
        }
    }
    out
}

/// Link stress from snapshots: in each snapshot, a stream crosses link a→b when b is in a's
/// downstream set for it (primary or secondary child); the copies of a stream on a link at that
/// moment are the directions it crosses (2 would mean the stream loops over the link).
#[derive(Debug, Default)]
pub struct StressMeter {
    /// `(a, b)` with `a < b` → most copies of one stream seen on the link at one moment.
    pub max: BTreeMap<(String, String), f64>,
}

impl StressMeter {
    /// Takes the trees of a new snapshot.
    pub fn sample(&mut self, snapshot: &Snapshot) {
        let mut copies: BTreeMap<(String, String, String), f64> = BTreeMap::new();
        for (id, stats) in snapshot {
            let neighbours: Vec<&str> = stats
                .get("neighbours")
                .and_then(Value::as_array)
                .map(|n| {
                    n.iter()
                        .filter_map(|x| x.get("id").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            for route in stats
                .get("routes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if route.get("state").and_then(Value::as_str) != Some("active") {
                    continue;
                }
                let stream = route
                    .get("stream")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                for child in route
                    .get("downstream")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .filter(|c| neighbours.contains(c))
                {
                    let (a, b) = if id.as_str() < child {
                        (id.as_str(), child)
                    } else {
                        (child, id.as_str())
                    };
                    *copies
                        .entry((a.to_owned(), b.to_owned(), stream.to_owned()))
                        .or_insert(0.0) += 1.0;
                }
            }
        }
        for ((a, b, _), c) in copies {
            let slot = self.max.entry((a, b)).or_insert(0.0);
            *slot = slot.max(c);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Output

/// Writes `summary.json` and the CSV files into `dir`.
pub fn write_all(dir: &Path, run: &RunResult) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::to_string_pretty(run).map_err(std::io::Error::other)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    std::fs::write(dir.join("clients.csv"), clients_csv(run))?;
    std::fs::write(dir.join("nodes.csv"), nodes_csv(run))?;
    std::fs::write(dir.join("links.csv"), links_csv(run))?;
    std::fs::write(dir.join("events.csv"), events_csv(run))?;
    std::fs::write(dir.join("stalls.csv"), stalls_csv(run))?;
    Ok(())
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:.3}"))
}

/// Quotes a CSV field when needed.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn clients_csv(run: &RunResult) -> String {
    let mut o = String::from(
        "client,started_s,ended_s,pop,startup_ms,first_keyframe_ms,continuity,lost_packets,\
         late_packets,recovered_packets,cc_errors,stalls,max_stall_ms,bitrate_kbps,decode_ok,\
         stretch,path,exit\n",
    );
    for c in &run.clients {
        let _ = writeln!(
            o,
            "{},{:.3},{:.3},{},{},{},{},{},{},{},{},{},{:.0},{:.1},{},{},{},{}",
            field(&c.id),
            c.started_s,
            c.ended_s,
            field(c.pop.as_deref().unwrap_or("")),
            opt(c.startup_ms),
            opt(c.first_keyframe_ms),
            c.continuity.map_or_else(String::new, |v| format!("{v:.5}")),
            c.lost_packets,
            c.late_packets,
            c.recovered_packets,
            c.cc_errors,
            c.stalls.len(),
            c.max_stall_ms(),
            c.bitrate_kbps,
            c.decode_ok.map_or_else(String::new, |d| d.to_string()),
            opt(c.stretch),
            field(&c.path.join(">")),
            field(&c.exit),
        );
    }
    o
}

fn nodes_csv(run: &RunResult) -> String {
    let mut o = String::from(
        "node,role,uptime_s,control_tx_Bps,control_rx_Bps,media_tx_Bps,overhead_pct,\
         retransmitted,drops,restarts\n",
    );
    for n in &run.nodes {
        let _ = writeln!(
            o,
            "{},{},{:.1},{:.1},{:.1},{:.1},{},{},{},{}",
            field(&n.id),
            n.role,
            n.uptime_s,
            n.control_tx_bps,
            n.control_rx_bps,
            n.media_tx_bps,
            opt(n.overhead_pct),
            n.retransmitted,
            n.drops,
            n.restarts
        );
    }
    o
}

fn links_csv(run: &RunResult) -> String {
    let mut o = String::from("a,b,a_to_b,b_to_a,stress\n");
    for l in &run.links {
        let _ = writeln!(
            o,
            "{},{},{},{},{}",
            field(&l.a),
            field(&l.b),
            l.a_to_b,
            l.b_to_a,
            l.stress
        );
    }
    o
}

fn events_csv(run: &RunResult) -> String {
    let mut o = String::from("at_s,action,target,error\n");
    for e in &run.events {
        let _ = writeln!(
            o,
            "{:.3},{},{},{}",
            e.at_s,
            field(&e.action),
            field(e.target.as_deref().unwrap_or("")),
            field(e.error.as_deref().unwrap_or(""))
        );
    }
    o
}

fn stalls_csv(run: &RunResult) -> String {
    let mut o = String::from("client,kind,start_s,duration_ms\n");
    for c in &run.clients {
        for (kind, list) in [("stall", &c.stalls), ("gap", &c.gaps)] {
            for s in list {
                let _ = writeln!(
                    o,
                    "{},{kind},{:.3},{:.0}",
                    field(&c.id),
                    s.start_s,
                    s.duration_ms
                );
            }
        }
    }
    o
}

/// The summary table: one row per run.
pub fn summary_table(runs: &[RunResult]) -> String {
    let header = [
        "scenario",
        "mode",
        "nodes",
        "clients",
        "continuity",
        "max stall",
        "startup p50/max",
        "max repair",
        "stress",
        "ctrl %",
        "stretch",
        "result",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for r in runs {
        let m = |metric: crate::metrics::Metric| metric.value(r, None);
        let mut startups: Vec<f64> = r.clients.iter().filter_map(|c| c.startup_ms).collect();
        startups.sort_by(f64::total_cmp);
        let startup = match (startups.get(startups.len() / 2), startups.last()) {
            (Some(p50), Some(max)) => format!("{p50:.0}/{max:.0} ms"),
            _ => "-".into(),
        };
        let name = if r.variant.is_empty() {
            r.scenario.clone()
        } else {
            format!("{} [{}]", r.scenario, r.variant)
        };
        use crate::metrics::Metric as M;
        rows.push(vec![
            name,
            r.mode.clone(),
            r.overlay_nodes.to_string(),
            r.clients
                .iter()
                .map(|c| c.id.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                .to_string(),
            m(M::Continuity).map_or("-".into(), |v| format!("{v:.4}")),
            m(M::MaxStallMs).map_or("-".into(), |v| format!("{v:.0} ms")),
            startup,
            if r.repairs.is_empty() {
                "-".into()
            } else {
                m(M::MaxRepairMs).map_or("-".into(), |v| format!("{v:.0} ms"))
            },
            m(M::LinkStress).map_or("-".into(), |v| format!("{v:.0}")),
            m(M::ControlOverheadPct).map_or("-".into(), |v| format!("{v:.2}")),
            m(M::Stretch).map_or("-".into(), |v| format!("{v:.2}")),
            if r.passed { "PASS" } else { "FAIL" }.into(),
        ]);
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", parts.join(" | "));
    };
    line(
        &mut out,
        &header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
    );
    let _ = writeln!(
        out,
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in &rows {
        line(&mut out, row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topo() -> Topology {
        Topology::parse(
            r#"
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
[[link]]
between = ["s1", "n1"]
latency_ms = 10
[[link]]
between = ["n1", "n2"]
latency_ms = 10
[[link]]
between = ["s1", "n2"]
latency_ms = 5
"#,
            "t.toml",
        )
        .unwrap()
        .topology
    }

    fn route(upstream: Option<&str>, local: bool, downstream: &[&str]) -> Value {
        json!({"channel": "tv", "state": "active", "upstream": upstream, "local": local,
               "stream": "0000abcd", "downstream": downstream, "media_out": {}})
    }

    #[test]
    fn the_path_follows_upstreams_to_the_origin_and_stretch_compares_with_the_shortest() {
        let mut snap = Snapshot::new();
        snap.insert("s1".into(), json!({"routes": [route(None, true, &["n1"])]}));
        snap.insert(
            "n1".into(),
            json!({"routes": [route(Some("s1"), false, &["n2"])]}),
        );
        // n1 still lists the client as a watcher (soft state) but no longer serves it.
        snap.insert(
            "n2".into(),
            json!({"routes": [route(Some("n1"), false, &["client:127.0.0.9:5000"])]}),
        );
        let (pop, stream) = pop_of(&snap, "127.0.0.9:5000", "tv").unwrap();
        assert_eq!((pop.as_str(), stream.as_str()), ("n2", "0000abcd"));
        assert_eq!(pop_of(&snap, "127.0.0.9:5000", "radio"), None);
        let path = path_to(&snap, "n2", &stream).unwrap();
        assert_eq!(path, ["s1", "n1", "n2"]);
        assert_eq!(path_to(&snap, "n2", "0000ffff"), None);
        // 20 ms along the tree against 5 ms on the direct link.
        assert_eq!(stretch(&topo(), &path), Some(4.0));
        assert_eq!(stretch(&topo(), &path[..1]), None);
    }

    #[test]
    fn a_route_loop_gives_no_path() {
        let mut snap = Snapshot::new();
        snap.insert(
            "n1".into(),
            json!({"routes": [route(Some("n2"), false, &[])]}),
        );
        snap.insert(
            "n2".into(),
            json!({"routes": [route(Some("n1"), false, &[])]}),
        );
        assert_eq!(path_to(&snap, "n2", "0000abcd"), None);
    }

    #[test]
    fn stress_counts_the_directions_a_stream_crosses_a_link_at_one_moment() {
        let node = |nbr: &str, downstream: &[&str]| {
            json!({"neighbours": [{"id": nbr}],
                   "routes": [{"stream": "01", "state": "active", "downstream": downstream}]})
        };
        let mut meter = StressMeter::default();
        let mut snap = Snapshot::new();
        snap.insert("a".into(), node("b", &["b"]));
        snap.insert("b".into(), node("a", &["client:127.0.0.9:1"]));
        meter.sample(&snap);
        assert_eq!(meter.max.get(&("a".into(), "b".into())), Some(&1.0));
        // A loop: each end forwards the stream to the other.
        snap.insert("b".into(), node("a", &["a"]));
        meter.sample(&snap);
        assert_eq!(meter.max.get(&("a".into(), "b".into())), Some(&2.0));
        assert_eq!(meter.max.len(), 1);
    }

    #[test]
    fn the_summary_table_has_one_row_per_run_and_a_verdict() {
        let run = RunResult {
            scenario: "four-node".into(),
            mode: "loopback".into(),
            overlay_nodes: 2,
            passed: true,
            clients: vec![ClientResult {
                id: "c1".into(),
                continuity: Some(1.0),
                startup_ms: Some(12.0),
                ..ClientResult::default()
            }],
            ..RunResult::default()
        };
        let table = summary_table(&[run]);
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(
            table.contains("four-node") && table.contains("PASS"),
            "{table}"
        );
        assert!(table.contains("12/12 ms"), "{table}");
    }
}
