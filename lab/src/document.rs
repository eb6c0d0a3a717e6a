//! `meshcast-lab report`: regenerates `report/README.md` and `report/plots/*.svg` from the saved
//! run summaries (`report/data/*.json`, written by `run --save-to report/data`).
//!
//! Everything in the report is computed here from the data and from the code: the protocol
//! specification is `meshcast_proto::wire::spec::markdown()` (checked against the codec by its
//! own tests), the numbers and plots come from the summaries. `report --check` regenerates in
//! memory and fails if the committed files differ, so the committed report is the output of
//! the committed code and data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::metrics::Metric;
use crate::results::{self, RunResult};
use crate::svg::{BarChart, Cdf, Histogram, LinePlot, Series, Timeline};

/// Arguments of `meshcast-lab report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Directory of run summaries (`run --save-to DIR`)
    #[arg(long, value_name = "DIR", default_value = "report/data")]
    pub data: PathBuf,
    /// Directory to write README.md and plots/ into
    #[arg(long, value_name = "DIR", default_value = "report")]
    pub out: PathBuf,
    /// Write nothing; exit 1 if the files in --out differ from what would be written
    #[arg(long)]
    pub check: bool,
}

/// Runs the command.
pub fn report(args: &ReportArgs) -> Result<ExitCode> {
    let runs = load(&args.data)?;
    if runs.is_empty() {
        anyhow::bail!(
            "no run summaries in {}: run `meshcast-lab run scenarios/*.toml --save-to {}` first",
            args.data.display(),
            args.data.display()
        );
    }
    let files = render(&runs);
    if args.check {
        let stale: Vec<String> = files
            .iter()
            .filter(|(path, text)| {
                std::fs::read_to_string(args.out.join(path)).ok().as_deref() != Some(text)
            })
            .map(|(path, _)| path.display().to_string())
            .collect();
        if stale.is_empty() {
            println!(
                "{} is up to date ({} files)",
                args.out.display(),
                files.len()
            );
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "{} is not the output of the current code and data; stale: {}\n\
             regenerate with `meshcast-lab report`",
            args.out.display(),
            stale.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    for (path, text) in &files {
        let path = args.out.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "wrote {} and {} plots from {} runs in {}",
        args.out.join("README.md").display(),
        files.len() - 1,
        runs.len(),
        args.data.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Every `*.json` run summary in `dir`, in file-name order.
pub fn load(dir: &Path) -> Result<Vec<RunResult>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a run summary", p.display()))
        })
        .collect()
}

/// Order of scenarios in the report: the course scenarios first, then growing size, then
/// faults, then the sweep.
fn order(runs: &[RunResult]) -> Vec<&RunResult> {
    const FIRST: [&str; 12] = [
        "four-node",
        "six-node",
        "complex",
        "two-servers",
        "grid",
        "mesh-50",
        "relay-failure",
        "relay-failure-dual",
        "pop-failure",
        "partition",
        "complex-netns",
        "loss-sweep",
    ];
    let rank = |r: &RunResult| {
        FIRST
            .iter()
            .position(|n| *n == r.scenario)
            .unwrap_or(FIRST.len())
    };
    let mut sorted: Vec<&RunResult> = runs.iter().collect();
    sorted.sort_by(|a, b| {
        (
            rank(a),
            &a.scenario,
            &a.mode,
            a.sweep_loss.map(|l| (l * 1e6) as i64),
        )
            .cmp(&(
                rank(b),
                &b.scenario,
                &b.mode,
                b.sweep_loss.map(|l| (l * 1e6) as i64),
            ))
    });
    sorted
}

fn label(r: &RunResult) -> String {
    let mut label = r.scenario.clone();
    if r.mode != "loopback" {
        let _ = write!(label, " ({})", r.mode);
    }
    if !r.variant.is_empty() {
        let _ = write!(label, " [{}]", r.variant);
    }
    label
}

/// Whether the run's timeline had a fault: a kill or a cut (how `scenario::Action` displays them).
fn is_fault_run(r: &RunResult) -> bool {
    r.events
        .iter()
        .any(|e| e.action.starts_with("kill") || e.action.starts_with("cut"))
}

/// The report's files, relative to the output directory.
pub fn render(runs: &[RunResult]) -> Vec<(PathBuf, String)> {
    let runs = order(runs);
    let mut plots: Vec<(String, String, String)> = Vec::new(); // (file, alt, svg)
    let plain: Vec<&RunResult> = runs
        .iter()
        .copied()
        .filter(|r| r.sweep_loss.is_none())
        .collect();
    let sweep: Vec<&RunResult> = runs
        .iter()
        .copied()
        .filter(|r| r.sweep_loss.is_some() && r.mode == "loopback")
        .collect();

    // Startup delay CDF.
    let mut cdf = Cdf::new("Startup delay: watch request to first media", "ms")
        .y_label("fraction of viewers");
    for r in &plain {
        let samples: Vec<f64> = r.clients.iter().filter_map(|c| c.startup_ms).collect();
        if !samples.is_empty() {
            cdf = cdf.series(label(r), &samples);
        }
    }
    plots.push((
        "startup-cdf.svg".into(),
        "startup delay CDF".into(),
        cdf.to_svg(),
    ));

    // Continuity vs loss.
    let continuity = |r: &RunResult| Metric::Continuity.value(r, None);
    let min_points: Vec<(f64, f64)> = sweep
        .iter()
        .filter_map(|r| Some((r.sweep_loss? * 100.0, continuity(r)?)))
        .collect();
    let mean_points: Vec<(f64, f64, f64, f64)> = sweep
        .iter()
        .filter_map(|r| {
            let values: Vec<f64> = r.clients.iter().filter_map(|c| c.continuity).collect();
            if values.is_empty() {
                return None;
            }
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some((r.sweep_loss? * 100.0, mean, lo, hi))
        })
        .collect();
    let lowest = min_points.iter().map(|p| p.1).fold(1.0, f64::min);
    let plot = LinePlot::new(
        "Continuity index vs loss on every overlay link",
        "loss per link (%)",
        "continuity index",
    )
    .y_range((lowest - 0.01).min(0.95), 1.0005)
    .series(Series::new("worst viewer").points(&min_points))
    .series(Series::new("mean over viewers (bars: range)").ranged_points(&mean_points));
    plots.push((
        "continuity-vs-loss.svg".into(),
        "continuity vs loss".into(),
        plot.to_svg(),
    ));

    // Stall timelines around faults.
    for r in runs.iter().filter(|r| is_fault_run(r)) {
        let mut timeline = Timeline::new(
            format!("Media gaps over 100 ms: {}", label(r)),
            "s since t = 0",
            (0.0, r.duration_s),
        );
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for c in &r.clients {
            let n = seen.entry(c.id.as_str()).or_insert(0);
            *n += 1;
            let row = if *n == 1 {
                c.id.clone()
            } else {
                format!("{} #{n}", c.id)
            };
            let intervals: Vec<(f64, f64)> = c
                .gaps
                .iter()
                .map(|g| (g.start_s, g.start_s + g.duration_ms / 1000.0))
                .collect();
            timeline = timeline.row(row, &intervals);
        }
        for e in &r.events {
            timeline = timeline.marker((e.at_s * 10.0).round() / 10.0, marker_text(e));
        }
        let file = format!(
            "gaps-{}{}.svg",
            r.scenario,
            if r.mode == "loopback" {
                String::new()
            } else {
                format!("-{}", r.mode)
            }
        );
        plots.push((
            file,
            format!("media gaps around faults, {}", label(r)),
            timeline.to_svg(),
        ));
    }

    // Repair time distribution.
    let mut hist = Histogram::new(
        "Repair time: longest media gap of an affected viewer after a fault",
        "ms",
        100.0,
    )
    .y_label("viewer repairs");
    for r in runs.iter().filter(|r| !r.repairs.is_empty()) {
        let samples: Vec<f64> = r.repairs.iter().map(|x| x.repair_ms).collect();
        hist = hist.series(label(r), &samples);
    }
    plots.push((
        "repair-time.svg".into(),
        "repair time distribution".into(),
        hist.to_svg(),
    ));

    // Control overhead vs network size.
    let mut by_size: Vec<(f64, f64, f64, f64)> = Vec::new();
    for r in plain
        .iter()
        .filter(|r| !is_fault_run(r) && r.mode == "loopback")
    {
        let values: Vec<f64> = r.nodes.iter().map(|n| n.control_tx_bps).collect();
        if values.is_empty() {
            continue;
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        by_size.push((r.overlay_nodes as f64, mean, lo, hi));
    }
    by_size.sort_by(|a, b| a.0.total_cmp(&b.0));
    let plot = LinePlot::new(
        "Control traffic sent per node vs overlay size",
        "servers + nodes",
        "bytes/s per node",
    )
    .series(Series::new("mean per node (bars: min-max)").ranged_points(&by_size));
    plots.push((
        "control-overhead.svg".into(),
        "control overhead vs network size".into(),
        plot.to_svg(),
    ));

    // Link stress.
    let stress_runs: Vec<&&RunResult> = plain.iter().filter(|r| !r.links.is_empty()).collect();
    let one: Vec<f64> = stress_runs
        .iter()
        .map(|r| r.links.iter().filter(|l| l.stress <= 1.0).count() as f64)
        .collect();
    let more: Vec<f64> = stress_runs
        .iter()
        .map(|r| r.links.iter().filter(|l| l.stress > 1.0).count() as f64)
        .collect();
    let chart = BarChart::new(
        "Link stress: overlay links by most copies of a stream at a time",
        "scenario",
        "links",
    )
    .categories(stress_runs.iter().map(|r| label(r)))
    .series("one copy", &one)
    .series("two or more", &more);
    plots.push((
        "link-stress.svg".into(),
        "link stress".into(),
        chart.to_svg(),
    ));

    // Stretch.
    let mut cdf = Cdf::new(
        "Stretch: tree path delay / shortest path delay, per viewer",
        "stretch",
    )
    .y_label("fraction of viewers");
    for r in plain.iter().filter(|r| r.mode == "loopback") {
        let samples: Vec<f64> = r.clients.iter().filter_map(|c| c.stretch).collect();
        if !samples.is_empty() {
            cdf = cdf.series(label(r), &samples);
        }
    }
    plots.push(("stretch-cdf.svg".into(), "stretch CDF".into(), cdf.to_svg()));

    let readme = readme(&runs, &plots);
    let mut files = vec![(PathBuf::from("README.md"), readme)];
    for (file, _, svg) in plots {
        files.push((PathBuf::from("plots").join(file), svg));
    }
    files
}

/// A short label for an event on a timeline: `kill n6`, `restart n6`, `cut s1-n1`.
fn marker_text(e: &results::EventResult) -> String {
    let verb = e.action.split_whitespace().next().unwrap_or_default();
    match (&e.target, verb) {
        (Some(target), "kill" | "restart") => format!("{verb} {target}"),
        (Some(target), _) if !e.action.contains(target.as_str()) => {
            format!("{} ({target})", e.action)
        }
        _ => e.action.clone(),
    }
}

fn f1(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} {unit}"))
}

fn readme(runs: &[&RunResult], plots: &[(String, String, String)]) -> String {
    let owned: Vec<RunResult> = runs.iter().map(|r| (*r).clone()).collect();
    let mut o = String::new();
    let img = |o: &mut String, file: &str| {
        if let Some((_, alt, _)) = plots.iter().find(|(f, _, _)| f == file) {
            let _ = writeln!(o, "![{alt}](plots/{file})\n");
        }
    };
    let wall: f64 = runs.iter().map(|r| r.wall_s).sum();
    let machine = runs
        .iter()
        .find(|r| !r.machine.is_empty())
        .map_or("unknown", |r| r.machine.as_str());
    o.push_str(
        "# meshcast: protocol specification and measured results\n\n\
         > Generated by `meshcast-lab report` from the run summaries in `report/data/` (written by\n\
         > `meshcast-lab run scenarios/*.toml --save-to report/data`) and from the wire codec. Do not\n\
         > edit: `scripts/report.sh` runs the suite and regenerates it; `meshcast-lab report --check`\n\
         > (run by the tests) fails when this file is not the output of the committed code and data.\n\n",
    );
    o.push_str(
        "## Contents\n\n1. [Architecture](#1-architecture)\n2. [How the experiments run](#2-how-the-experiments-run)\n\
         3. [Results](#3-results)\n4. [Protocol specification](#4-protocol-specification)\n\
         5. [Limits of these measurements](#5-limits-of-these-measurements)\n\n",
    );

    o.push_str(ARCHITECTURE);
    o.push_str(EXPERIMENTS);

    let _ = writeln!(o, "## 3. Results\n");
    let _ = writeln!(
        o,
        "{} runs of {} scenarios; the whole suite took **{:.0} s** ({:.1} min) of wall time on {machine}, \
         startup and result collection included.\n",
        runs.len(),
        runs.iter()
            .map(|r| (&r.scenario, &r.mode))
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        wall,
        wall / 60.0
    );
    o.push_str(&results::summary_table(&owned));
    o.push_str(
        "\nColumns: *continuity* is the worst viewer's continuity index; *max stall* the longest \
         gap over 200 ms; *startup* the watch request to first media (median and worst); *max \
         repair* the longest gap of a viewer whose path a fault hit; *stress* the most copies of a \
         stream on one link at a time; *ctrl %* the largest node's control traffic as a share of \
         the stream's bitrate; *stretch* the worst viewer's tree path delay over the shortest \
         path delay.\n\n",
    );

    let _ = writeln!(o, "### 3.1 Startup delay\n");
    let startups: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.clients.iter().filter_map(|c| c.startup_ms))
        .collect();
    let keyframes: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.clients.iter().filter_map(|c| c.first_keyframe_ms))
        .collect();
    let _ = writeln!(
        o,
        "Over {} viewer sessions: first media after a median of **{}** (worst {}); the first \
         keyframe, from which a player can show a picture, after a median of {} (worst {}). The \
         keyframe wait is bounded by the encoder's GOP (2 s).\n",
        startups.len(),
        f1(median(&startups), "ms"),
        f1(startups.iter().copied().reduce(f64::max), "ms"),
        f1(median(&keyframes), "ms"),
        f1(keyframes.iter().copied().reduce(f64::max), "ms"),
    );
    img(&mut o, "startup-cdf.svg");

    let _ = writeln!(o, "### 3.2 Continuity under loss\n");
    let sweep: Vec<&&RunResult> = runs.iter().filter(|r| r.sweep_loss.is_some()).collect();
    if !sweep.is_empty() {
        o.push_str(
            "Random loss on every overlay link, the same probability in both directions, one run \
             per value. Lost datagrams are recovered hop by hop (NACK to the parent, retransmission \
             from its 1 s buffer) within each viewer's 120 ms playout latency.\n\n\
             | loss per link | worst continuity | lost | recovered | retransmitted by nodes | recordings with decode errors |\n\
             |---:|---:|---:|---:|---:|---:|\n",
        );
        for r in &sweep {
            let lost: u64 = r.clients.iter().map(|c| c.lost_packets).sum();
            let recovered: u64 = r.clients.iter().map(|c| c.recovered_packets).sum();
            let rtx: u64 = r.nodes.iter().map(|n| n.retransmitted).sum();
            let decode = r
                .clients
                .iter()
                .filter(|c| c.decode_ok == Some(false))
                .count();
            let _ = writeln!(
                o,
                "| {:.0} % | {} | {lost} | {recovered} | {rtx} | {decode} of {} |",
                r.sweep_loss.unwrap_or(0.0) * 100.0,
                Metric::Continuity
                    .value(r, None)
                    .map_or("-".into(), |v| format!("{v:.5}")),
                r.clients.len(),
            );
        }
        o.push('\n');
    }
    img(&mut o, "continuity-vs-loss.svg");

    let _ = writeln!(o, "### 3.3 Faults: stalls and repair time\n");
    let repairs: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.repairs.iter().map(|x| x.repair_ms))
        .collect();
    let _ = writeln!(
        o,
        "A fault is a process killed with SIGKILL (a crash, as its peers see it) or a link cut. \
         The viewers whose tree path it hit are listed per fault; their repair time is the \
         longest media gap starting within 1 s before to 5 s after it (0 when no gap exceeded \
         100 ms). Over {} viewer repairs: median **{}**, worst **{}**.\n",
        repairs.len(),
        f1(median(&repairs), "ms"),
        f1(repairs.iter().copied().reduce(f64::max), "ms"),
    );
    for r in runs.iter().filter(|r| !r.repairs.is_empty()) {
        let _ = writeln!(
            o,
            "| {} | fault | viewer | repair |\n|---|---|---|---:|",
            label(r)
        );
        for x in &r.repairs {
            let _ = writeln!(
                o,
                "| t = {:.1} s | {} | {} | {:.0} ms |",
                x.at_s, x.event, x.client, x.repair_ms
            );
        }
        o.push('\n');
    }
    img(&mut o, "repair-time.svg");
    for (file, _, _) in plots.iter().filter(|(f, _, _)| f.starts_with("gaps-")) {
        img(&mut o, file);
    }

    let _ = writeln!(o, "### 3.4 Control overhead, link stress, stretch\n");
    let overhead: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.nodes.iter().filter_map(|n| n.overhead_pct))
        .collect();
    // Mean control bytes/s per node, by overlay size, over the runs without faults.
    let mut sizes: Vec<(usize, f64, f64)> = runs
        .iter()
        .filter(|r| r.sweep_loss.is_none() && !is_fault_run(r) && !r.nodes.is_empty())
        .map(|r| {
            let n = r.nodes.len() as f64;
            let degree = 2.0 * r.overlay_links as f64 / r.overlay_nodes.max(1) as f64;
            (
                r.overlay_nodes,
                r.nodes.iter().map(|x| x.control_tx_bps).sum::<f64>() / n,
                degree,
            )
        })
        .collect();
    sizes.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let span = match (sizes.first(), sizes.last()) {
        (Some(a), Some(b)) => format!(
            "from {:.0} B/s per node with {} servers and nodes (mean degree {:.1}) to {:.0} B/s \
             with {} (mean degree {:.1})",
            a.1, a.0, a.2, b.1, b.0, b.2
        ),
        _ => "-".to_owned(),
    };
    let _ = writeln!(
        o,
        "Control traffic (pings every 200 ms per link, flooded announcements every second, \
         joins, acks, NACKs) grows with a node's number of neighbours and with the number of \
         origins, not with the size of the overlay: {span}. The largest node's share of the \
         stream's bitrate was {} % over all runs.\n",
        overhead
            .iter()
            .copied()
            .reduce(f64::max)
            .map_or("-".into(), |v| format!("{v:.2}"))
    );
    img(&mut o, "control-overhead.svg");
    let stressed: usize = runs
        .iter()
        .filter(|r| r.sweep_loss.is_none())
        .map(|r| r.links.iter().filter(|l| l.stress > 1.0).count())
        .sum();
    let total: usize = runs
        .iter()
        .filter(|r| r.sweep_loss.is_none())
        .map(|r| r.links.len())
        .sum();
    let _ = writeln!(
        o,
        "Link stress is read from each node's route table every second: a stream crosses a \
         link a→b when b is in a's downstream set for it, so a link carries two copies at a \
         moment only if the stream loops over it. {stressed} of {total} (link, run) pairs that \
         carried media ever had more than one copy.\n"
    );
    img(&mut o, "link-stress.svg");
    o.push_str(
        "Stretch compares the tree path the viewer's PoP was fed along (sampled every second) \
         with the shortest path over the configured link latencies (hop counts when a topology \
         has none).\n\n",
    );
    img(&mut o, "stretch-cdf.svg");

    let _ = writeln!(o, "### 3.5 Per scenario\n");
    for r in runs {
        let _ = writeln!(
            o,
            "**{}** — {} (topology `{}`, {} servers and nodes, {} links, {} mode, {:.0} s timeline, \
             {:.0} s wall).\n",
            label(r),
            r.description,
            r.topology,
            r.overlay_nodes,
            r.overlay_links,
            r.mode,
            r.duration_s,
            r.wall_s
        );
        if !r.events.is_empty() {
            let events: Vec<String> = r
                .events
                .iter()
                .map(|e| {
                    let target = match &e.target {
                        Some(t) if !e.action.contains(t.as_str()) => format!(" ({t})"),
                        _ => String::new(),
                    };
                    format!("{:.1} s {}{target}", e.at_s, e.action)
                })
                .collect();
            let _ = writeln!(o, "Timeline: {}.\n", events.join("; "));
        }
        let _ = writeln!(o, "| expectation | measured | |\n|---|---:|---|");
        for e in &r.expectations {
            let _ = writeln!(
                o,
                "| `{}` | {} | {} |",
                e.text,
                e.value.map_or("-".into(), |v| format!("{v:.4}")),
                if e.passed { "ok" } else { "**failed**" }
            );
        }
        o.push('\n');
    }

    o.push_str("## 4. Protocol specification\n\n");
    // The spec's own headings move down two levels under this section.
    for line in meshcast_proto::wire::spec::markdown().lines() {
        if line.starts_with('#') {
            let _ = writeln!(o, "##{line}");
        } else {
            let _ = writeln!(o, "{line}");
        }
    }
    o.push('\n');
    o.push_str(LIMITS);
    o
}

fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

const ARCHITECTURE: &str = "## 1. Architecture\n\n\
meshcast is five programs around one protocol core (details: [ARCHITECTURE.md](../ARCHITECTURE.md)).\n\n\
- **meshcast-bootstrapper** answers each server and node with its neighbours from the topology \
file. It is needed only to join: running nodes keep running without it.\n\
- **meshcast-server** turns each video file (or a generated test pattern) into a live channel: \
an FFmpeg child encodes H.264 + AAC into MPEG-TS in real time; the server cuts the output into \
datagrams of 7 TS packets, numbers them and floods the channel's announcement every second.\n\
- **meshcast-node** relays. From announcements it keeps a route per stream (cost = advertised \
cost + half the measured RTT per hop, with a feasibility condition that rules out loops). A \
viewer's watch makes its PoP join the tree by the reverse path; each node forwards each media \
datagram once per downstream. Parents are watched for silence (100 ms) and replaced by the best \
feasible neighbour; lost datagrams are recovered hop by hop with NACKs.\n\
- **meshcast-client** probes its PoPs, watches at the one with the lowest RTT, plays through a \
120 ms playout buffer into mpv or ffplay (or records, headless), and moves to its next PoP when \
the current one goes silent.\n\
- **meshcast-lab** runs topologies and scenarios as real processes, on loopback or in network \
namespaces, and writes this report.\n\n\
All protocol decisions live in one sans-IO state machine per role (`common/proto`): it never \
reads a clock or a socket; one driver loop (`common/io`) feeds it datagrams and time, and a \
deterministic simulator (`common/sim`) runs 50-node overlays with crashes, partitions and loss \
under a virtual clock. Control messages travel on a per-neighbour reliable channel (acks, RFC \
6298 retransmission timer); media is unacknowledged UDP with a CRC32C trailer, recovered hop by \
hop.\n\n";

const EXPERIMENTS: &str = "## 2. How the experiments run\n\n\
`meshcast-lab run SCENARIO` brings a topology up as real processes on this machine — one \
bootstrapper, the servers with FFmpeg, the relay nodes, headless clients recording what they \
play — then executes the scenario's timeline (viewers watching and stopping, processes killed \
and restarted, links cut and healed, loss and latency changed), samples every node's stats \
each second, and checks the expectations at the end. Each process owns a distinct \
127.0.x.y address (loopback mode) or a network namespace of its own (`--netns`: veth pairs, \
bridges for LANs, routers with shortest-path routes).\n\n\
This kernel has no `netem`, so link latency, jitter, loss and rate limits are emulated by \
meshcast's own driver loop on the sending side of every overlay link, from the topology file; \
the lab rewrites that file to change links during a run. Recordings are checked with \
`ffmpeg -v error -xerror` (exit 0 only for a clean decode); continuity is measured exactly \
from sequence numbers and TS continuity counters on the bytes as they arrive.\n\n\
| KPI | definition |\n|---|---|\n\
| startup delay | viewer's watch request → first media datagram (and → first keyframe) |\n\
| continuity index | datagrams played on time / datagrams the source sent during the watch |\n\
| stall | a gap over 200 ms between new media datagrams at the viewer |\n\
| repair time | longest media gap (> 100 ms) of a viewer whose tree path a fault hit, within 1 s before to 5 s after it |\n\
| link stress | copies of one stream crossing one overlay link at one moment, from the route tables (goal: 1) |\n\
| stretch | delay along the tree path / shortest-path delay, from the configured link latencies |\n\
| control overhead | control bytes sent per second per node, and as % of the stream's bitrate |\n\n\
The scenario files are in `scenarios/`, the topologies in `topologies/`; each run leaves its \
logs, stats, recordings and `results/` (summary.json, clients.csv, nodes.csv, links.csv, \
events.csv, stalls.csv) in `runs/`.\n\n";

const LIMITS: &str = "## 5. Limits of these measurements\n\n\
- Every process shares one 2-core machine: FFmpeg, up to 50 relays and the viewers compete for \
CPU, so timings include scheduling noise that separate machines would not have.\n\
- Latency and loss are emulated in user space on the sending side of overlay links; the \
viewer-to-PoP link is not impaired.\n\
- Link stress and paths are sampled once a second from the nodes' stats files, so a tree that \
changed and changed back between two samples is not seen; link changes (cuts, loss, latency) \
take effect when the nodes next read the topology file, up to 1 s after the event's time.\n\
- Repair time is measured from media arrivals at the viewer: a viewer whose PoP was fed over \
two paths (`--dual-parent`) or whose gap stayed under 100 ms shows 0.\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{ClientResult, Interval, Repair};

    fn run(name: &str, loss: Option<f64>) -> RunResult {
        RunResult {
            scenario: name.into(),
            mode: "loopback".into(),
            sweep_loss: loss,
            variant: loss.map_or_else(String::new, |l| format!("loss={l}")),
            duration_s: 20.0,
            wall_s: 30.0,
            clients: vec![ClientResult {
                id: "c1".into(),
                startup_ms: Some(25.0),
                continuity: Some(1.0),
                gaps: vec![Interval {
                    start_s: 8.1,
                    duration_ms: 300.0,
                }],
                ..ClientResult::default()
            }],
            ..RunResult::default()
        }
    }

    #[test]
    fn the_report_has_every_section_every_plot_and_the_codec_spec() {
        let mut fault = run("relay-failure", None);
        fault.events.push(crate::results::EventResult {
            at_s: 8.0,
            action: "kill the relay of c1".into(),
            target: Some("n3".into()),
            error: None,
        });
        fault.repairs.push(Repair {
            at_s: 8.0,
            event: "kill the relay of c1".into(),
            client: "c1".into(),
            repair_ms: 300.0,
        });
        let runs = vec![
            run("four-node", None),
            fault,
            run("loss-sweep", Some(0.0)),
            run("loss-sweep", Some(0.1)),
        ];
        let files = render(&runs);
        let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        for plot in [
            "plots/startup-cdf.svg",
            "plots/continuity-vs-loss.svg",
            "plots/gaps-relay-failure.svg",
            "plots/repair-time.svg",
            "plots/control-overhead.svg",
            "plots/link-stress.svg",
            "plots/stretch-cdf.svg",
        ] {
            assert!(
                names.contains(&plot.to_owned()),
                "{plot} missing: {names:?}"
            );
        }
        let readme = &files[0].1;
        for section in [
            "## 1. Architecture",
            "## 3. Results",
            "## 4. Protocol specification",
            "| t = 8.0 s | kill the relay of c1 | c1 | 300 ms |",
            "(plots/gaps-relay-failure.svg)",
        ] {
            assert!(readme.contains(section), "{section} missing");
        }
        // The specification is the codec's, headings moved under section 4.
        let spec = meshcast_proto::wire::spec::markdown();
        let first_table_row = spec.lines().find(|l| l.starts_with("| ")).unwrap();
        assert!(readme.contains(first_table_row));
        assert!(!readme.contains("\n# meshcast wire protocol"));
        // Same data, same bytes.
        assert_eq!(render(&runs), files);
    }
}
