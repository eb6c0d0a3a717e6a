//! The KPIs a scenario can expect, by name, and how each is computed from a run's results.
//!
//! Definitions follow the overlay-multicast literature: continuity index per client (datagrams
//! played on time / sent), stalls (media gaps over 200 ms), startup delay (watch request to first media), repair
//! time (the longest media gap of an affected viewer around a fault), link stress (copies of a
//! stream on one overlay link at a time), stretch (overlay path delay / shortest path delay),
//! control overhead (control bytes per second per node, as a share of the stream's bitrate).

use std::fmt;

use crate::results::{ClientResult, RunResult};

/// A KPI an expectation can name. Over all clients unless prefixed with a client id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Lowest continuity index (a client that never played counts 0).
    Continuity,
    /// Longest stall, ms (0 without stalls).
    MaxStallMs,
    /// Number of stalls.
    Stalls,
    /// Largest startup delay, ms (a client that never played counts as infinite).
    StartupMs,
    /// Packets the playout buffer had to skip, summed.
    LostPackets,
    /// TS continuity errors, summed.
    CcErrors,
    /// Recordings that `ffmpeg -xerror` rejects.
    DecodeErrors,
    /// Longest repair after a fault, ms.
    MaxRepairMs,
    /// Largest link stress.
    LinkStress,
    /// Largest control overhead of a node, % of the stream's bitrate.
    ControlOverheadPct,
    /// Clients that received media.
    ClientsPlaying,
    /// Largest stretch.
    Stretch,
    /// Processes that died without being killed by the scenario.
    UnexpectedExits,
}

impl Metric {
    /// Every metric, in documentation order.
    pub const ALL: [Metric; 13] = [
        Metric::Continuity,
        Metric::MaxStallMs,
        Metric::Stalls,
        Metric::StartupMs,
        Metric::LostPackets,
        Metric::CcErrors,
        Metric::DecodeErrors,
        Metric::MaxRepairMs,
        Metric::LinkStress,
        Metric::ControlOverheadPct,
        Metric::ClientsPlaying,
        Metric::Stretch,
        Metric::UnexpectedExits,
    ];

    /// The name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Continuity => "continuity",
            Metric::MaxStallMs => "max_stall_ms",
            Metric::Stalls => "stalls",
            Metric::StartupMs => "startup_ms",
            Metric::LostPackets => "lost_packets",
            Metric::CcErrors => "cc_errors",
            Metric::DecodeErrors => "decode_errors",
            Metric::MaxRepairMs => "max_repair_ms",
            Metric::LinkStress => "link_stress",
            Metric::ControlOverheadPct => "control_overhead_pct",
            Metric::ClientsPlaying => "clients_playing",
            Metric::Stretch => "stretch",
            Metric::UnexpectedExits => "unexpected_exits",
        }
    }

    /// Whether it can be asked of one client (`c1.continuity`).
    pub fn per_client(self) -> bool {
        matches!(
            self,
            Metric::Continuity
                | Metric::MaxStallMs
                | Metric::Stalls
                | Metric::StartupMs
                | Metric::LostPackets
                | Metric::CcErrors
                | Metric::DecodeErrors
                | Metric::Stretch
        )
    }

    fn of_client(self, c: &ClientResult) -> Option<f64> {
        Some(match self {
            Metric::Continuity => c.continuity.unwrap_or(0.0),
            Metric::MaxStallMs => c.max_stall_ms(),
            Metric::Stalls => c.stalls.len() as f64,
            Metric::StartupMs => c.startup_ms.unwrap_or(f64::INFINITY),
            Metric::LostPackets => c.lost_packets as f64,
            Metric::CcErrors => c.cc_errors as f64,
            Metric::DecodeErrors => f64::from(u8::from(c.decode_ok == Some(false))),
            Metric::Stretch => c.stretch?,
            _ => return None,
        })
    }

    /// The value over a whole run, or for one client.
    pub fn value(self, run: &RunResult, client: Option<&str>) -> Option<f64> {
        if let Some(id) = client {
            // A client watched in several sessions: the worst session counts.
            let sessions: Vec<f64> = run
                .clients
                .iter()
                .filter(|c| c.id == id)
                .filter_map(|c| self.of_client(c))
                .collect();
            return self.worst(sessions);
        }
        let per_client = || run.clients.iter().filter_map(|c| self.of_client(c));
        match self {
            Metric::Continuity | Metric::MaxStallMs | Metric::StartupMs | Metric::Stretch => {
                self.worst(per_client().collect())
            }
            Metric::Stalls | Metric::LostPackets | Metric::CcErrors => Some(per_client().sum()),
            // Nothing measured is no pass: each of these is `None` without data.
            Metric::DecodeErrors => run
                .clients
                .iter()
                .any(|c| c.decode_ok.is_some())
                .then(|| per_client().sum()),
            Metric::MaxRepairMs => run.repairs.iter().map(|r| r.repair_ms).reduce(f64::max),
            Metric::LinkStress => run.links.iter().map(|l| l.stress).reduce(f64::max),
            Metric::ControlOverheadPct => run
                .nodes
                .iter()
                .filter_map(|n| n.overhead_pct)
                .reduce(f64::max),
            Metric::ClientsPlaying => Some(
                run.clients
                    .iter()
                    .filter(|c| c.startup_ms.is_some())
                    .map(|c| c.id.as_str())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len() as f64,
            ),
            Metric::UnexpectedExits => Some(run.unexpected_exits.len() as f64),
        }
    }

    /// The worst of per-client values: lowest continuity, highest everything else.
    fn worst(self, values: Vec<f64>) -> Option<f64> {
        let mut it = values.into_iter();
        let first = it.next()?;
        Some(if self == Metric::Continuity {
            it.fold(first, f64::min)
        } else {
            it.fold(first, f64::max)
        })
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Metric, String> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                format!("unknown metric {s:?} (metrics: {})", names.join(", "))
            })
    }
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `>=`
    Ge,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `<`
    Lt,
    /// `==`
    Eq,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Ge => a >= b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Lt => a < b,
            Op::Eq => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Eq => "==",
        }
    }
}

/// `[client.]metric op number`, such as `continuity >= 0.99` or `c1.max_stall_ms <= 1000`.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// The client it is about, or all.
    pub client: Option<String>,
    /// The KPI.
    pub metric: Metric,
    /// The comparison.
    pub op: Op,
    /// The bound.
    pub bound: f64,
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.client {
            write!(f, "{c}.")?;
        }
        write!(
            f,
            "{} {} {}",
            self.metric.name(),
            self.op.as_str(),
            self.bound
        )
    }
}

impl Expectation {
    /// Parses the text form; the error says what would be valid.
    pub fn parse(text: &str) -> Result<Expectation, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let [lhs, op, rhs] = words[..] else {
            return Err(format!(
                "expected `[client.]metric op number` such as \"continuity >= 0.99\", found {text:?}"
            ));
        };
        let op = match op {
            ">=" => Op::Ge,
            "<=" => Op::Le,
            ">" => Op::Gt,
            "<" => Op::Lt,
            "==" => Op::Eq,
            other => {
                return Err(format!(
                    "unknown comparison {other:?} in {text:?} (use >=, <=, >, <, ==)"
                ));
            }
        };
        let bound: f64 = rhs
            .parse()
            .ok()
            .filter(|b: &f64| b.is_finite())
            .ok_or_else(|| format!("expected a number after {}, found {rhs:?}", op.as_str()))?;
        let (client, metric) = match lhs.split_once('.') {
            Some((client, metric)) => (Some(client.to_owned()), metric),
            None => (None, lhs),
        };
        let metric: Metric = metric.parse()?;
        if client.is_some() && !metric.per_client() {
            return Err(format!(
                "{} is a whole-run metric; it cannot be asked of one client",
                metric.name()
            ));
        }
        Ok(Expectation {
            client,
            metric,
            op,
            bound,
        })
    }

    /// The measured value and whether the expectation holds (a missing value fails).
    pub fn check(&self, run: &RunResult) -> (Option<f64>, bool) {
        let value = self.metric.value(run, self.client.as_deref());
        (value, value.is_some_and(|v| self.op.holds(v, self.bound)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Interval, Repair};

    fn client(id: &str, continuity: f64, stall_ms: f64) -> ClientResult {
        ClientResult {
            id: id.into(),
            continuity: Some(continuity),
            startup_ms: Some(20.0),
            stalls: if stall_ms > 0.0 {
                vec![Interval {
                    start_s: 1.0,
                    duration_ms: stall_ms,
                }]
            } else {
                Vec::new()
            },
            ..ClientResult::default()
        }
    }

    #[test]
    fn expectations_parse_and_reject_what_is_not_valid() {
        let e = Expectation::parse("c1.max_stall_ms <= 1000").unwrap();
        assert_eq!(e.client.as_deref(), Some("c1"));
        assert_eq!(e.metric, Metric::MaxStallMs);
        assert_eq!(e.to_string(), "c1.max_stall_ms <= 1000");
        assert!(
            Expectation::parse("continuity >> 1")
                .unwrap_err()
                .contains(">=")
        );
        assert!(
            Expectation::parse("contin >= 1")
                .unwrap_err()
                .contains("metrics:")
        );
        assert!(Expectation::parse("c1.link_stress <= 1").is_err());
        assert!(Expectation::parse("continuity >= x").is_err());
        assert!(Expectation::parse("continuity>=1").is_err());
    }

    #[test]
    fn the_worst_client_decides_and_a_missing_value_fails() {
        let run = RunResult {
            clients: vec![client("c1", 1.0, 0.0), client("c2", 0.95, 400.0)],
            repairs: vec![Repair {
                at_s: 3.0,
                event: "kill n1".into(),
                client: "c1".into(),
                repair_ms: 250.0,
            }],
            ..RunResult::default()
        };
        let check = |t: &str| Expectation::parse(t).unwrap().check(&run);
        assert_eq!(check("continuity >= 0.99"), (Some(0.95), false));
        assert_eq!(check("c1.continuity >= 0.99"), (Some(1.0), true));
        assert_eq!(check("max_stall_ms <= 500"), (Some(400.0), true));
        assert_eq!(check("stalls == 1"), (Some(1.0), true));
        assert_eq!(check("max_repair_ms < 250"), (Some(250.0), false));
        assert_eq!(check("clients_playing >= 2"), (Some(2.0), true));
        // No client has a stretch: the expectation cannot hold.
        assert_eq!(check("stretch <= 2"), (None, false));
    }
}
