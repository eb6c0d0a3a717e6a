//! Scenario files: a topology, a timeline of events, a duration and expectations.
//!
//! ```toml
//! name = "relay-failure"                 # default: the file's stem
//! description = "the relay on the viewer's path crashes and comes back"
//! topology = "../topologies/complex.toml"  # relative to this file
//! duration_s = 40                        # timeline length, from t = 0
//! warmup_s = 3                           # mesh up -> t = 0 (routes settle); default 3
//! autostart = true                       # every [[client]] watches from t = 0; default true
//! dual_parent = false                    # servers and nodes run --dual-parent
//! expect = ["continuity >= 0.99", "max_stall_ms <= 1000", "c1.startup_ms <= 3000"]
//!
//! [channels]                             # optional: channels of particular servers
//! s1 = ["news"]                          # (generated clips; default: the test pattern)
//! s2 = ["sport", "music"]
//!
//! [sweep]                                # optional: one run per value
//! loss = [0.0, 0.05, 0.10]               # every link's loss
//!
//! [[event]]
//! at = 10                                # seconds since t = 0
//! kill_relay_of = "c1"                   # one action per event, see below
//! ```
//!
//! Actions: `watch = "c1"` (with optional `channel`), `stop = "c1"`, `kill = "n3"`,
//! `kill_relay_of = "c1"` (the relay feeding c1's PoP at that moment), `kill_pop_of = "c1"`
//! (c1's PoP at that moment), `restart = "n3"`, `restart_killed = true` (whatever the last
//! kill hit), `partition = ["n1", "n2"]`, `heal = ["n1", "n2"]`, and
//! `link = ["n1", "n2"]` or `link = "*"` with any of `loss`, `latency_ms`, `jitter_ms`,
//! `rate_mbit` (unset attributes keep their value).
//!
//! Errors name the file, line, column and field and say what would be valid.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use meshcast_topology::{Topology, TopologyError};
use serde::Deserialize;
use toml::Spanned;

use crate::metrics::Expectation;

/// A parsed, validated scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name (results are filed under it).
    pub name: String,
    /// One line for the summary and the report.
    pub description: String,
    /// The scenario file.
    pub file: PathBuf,
    /// The topology file, resolved.
    pub topology_path: PathBuf,
    /// The topology.
    pub topology: Topology,
    /// Timeline length in seconds.
    pub duration_s: f64,
    /// Seconds between the mesh being up and t = 0.
    pub warmup_s: f64,
    /// Whether every `[[client]]` starts watching at t = 0.
    pub autostart: bool,
    /// Servers and nodes run `--dual-parent`.
    pub dual_parent: bool,
    /// Channels of particular servers (generated clips named so), by server id.
    pub channels: BTreeMap<String, Vec<String>>,
    /// One run per value, if set.
    pub sweep: Option<Sweep>,
    /// The timeline, sorted by time (file order among equal times).
    pub events: Vec<Event>,
    /// What must hold at the end.
    pub expect: Vec<Expectation>,
}

/// A parameter varied across runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    /// Loss probability of every link, one run per value.
    pub loss: Vec<f64>,
}

/// One timeline entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Seconds since t = 0.
    pub at: f64,
    /// What happens.
    pub action: Action,
}

/// Link attributes an event sets; `None` keeps the current value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkChange {
    /// Loss probability.
    pub loss: Option<f64>,
    /// One-way delay.
    pub latency_ms: Option<f64>,
    /// Delay variation.
    pub jitter_ms: Option<f64>,
    /// Rate limit.
    pub rate_mbit: Option<f64>,
}

/// What an event does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A client starts watching (its own channel unless given).
    Watch {
        /// Client id.
        client: String,
        /// Channel override.
        channel: Option<String>,
    },
    /// A client stops.
    Stop {
        /// Client id.
        client: String,
    },
    /// SIGKILL a server or node.
    Kill(KillTarget),
    /// Start a killed server or node again, with fresh state.
    Restart {
        /// Node id; `None`: the last one killed.
        node: Option<String>,
    },
    /// Cut the link both ways.
    Partition {
        /// One end.
        a: String,
        /// The other.
        b: String,
    },
    /// Restore a cut link's attributes.
    Heal {
        /// One end.
        a: String,
        /// The other.
        b: String,
    },
    /// Change link attributes.
    Link {
        /// `None`: every link.
        link: Option<(String, String)>,
        /// New values.
        change: LinkChange,
    },
}

/// Whom a kill hits.
#[derive(Clone, Debug, PartialEq)]
pub enum KillTarget {
    /// This node.
    Node(String),
    /// The relay feeding this client's PoP at that moment.
    RelayOf(String),
    /// This client's PoP at that moment.
    PopOf(String),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Watch {
                client,
                channel: Some(channel),
            } => write!(f, "{client} watches {channel}"),
            Action::Watch { client, .. } => write!(f, "{client} watches"),
            Action::Stop { client } => write!(f, "{client} stops"),
            Action::Kill(KillTarget::Node(node)) => write!(f, "kill {node}"),
            Action::Kill(KillTarget::RelayOf(client)) => write!(f, "kill the relay of {client}"),
            Action::Kill(KillTarget::PopOf(client)) => write!(f, "kill the PoP of {client}"),
            Action::Restart { node: Some(node) } => write!(f, "restart {node}"),
            Action::Restart { node: None } => write!(f, "restart the killed node"),
            Action::Partition { a, b } => write!(f, "cut {a}-{b}"),
            Action::Heal { a, b } => write!(f, "heal {a}-{b}"),
            Action::Link { link, change } => {
                match link {
                    Some((a, b)) => write!(f, "link {a}-{b}")?,
                    None => write!(f, "all links")?,
                }
                let mut sep = ":";
                let mut part = |f: &mut fmt::Formatter<'_>, name: &str, v: Option<f64>| {
                    if let Some(v) = v {
                        let r = write!(f, "{sep} {name} {v}");
                        sep = ",";
                        r
                    } else {
                        Ok(())
                    }
                };
                part(f, "loss", change.loss)?;
                part(f, "latency_ms", change.latency_ms)?;
                part(f, "jitter_ms", change.jitter_ms)?;
                part(f, "rate_mbit", change.rate_mbit)
            }
        }
    }
}

/// One problem in a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// File as given.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// Field path such as `event.kill`.
    pub field: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )
    }
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has problems (all of them listed).
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
    /// The topology it names is invalid.
    #[error("{path} (the topology of {scenario}):\n{source}")]
    Topology {
        /// The scenario file.
        scenario: String,
        /// The topology file.
        path: PathBuf,
        /// Its problems.
        source: TopologyError,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Option<String>,
    description: Option<String>,
    topology: Spanned<String>,
    duration_s: Spanned<f64>,
    warmup_s: Option<Spanned<f64>>,
    autostart: Option<bool>,
    dual_parent: Option<bool>,
    sweep: Option<RawSweep>,
    #[serde(default)]
    channels: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    expect: Vec<Spanned<String>>,
    #[serde(default)]
    event: Vec<Spanned<RawEvent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    loss: Spanned<Vec<f64>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LinkSel {
    All(String),
    Pair([String; 2]),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    at: Spanned<f64>,
    watch: Option<Spanned<String>>,
    channel: Option<String>,
    stop: Option<Spanned<String>>,
    kill: Option<Spanned<String>>,
    kill_relay_of: Option<Spanned<String>>,
    kill_pop_of: Option<Spanned<String>>,
    restart: Option<Spanned<String>>,
    restart_killed: Option<bool>,
    partition: Option<Spanned<[String; 2]>>,
    heal: Option<Spanned<[String; 2]>>,
    link: Option<Spanned<LinkSel>>,
    loss: Option<Spanned<f64>>,
    latency_ms: Option<Spanned<f64>>,
    jitter_ms: Option<Spanned<f64>>,
    rate_mbit: Option<Spanned<f64>>,
}

const ACTIONS: &str = "watch, stop, kill, kill_relay_of, kill_pop_of, restart, restart_killed, \
                       partition, heal, link";

struct Checker<'a> {
    file: &'a str,
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, span: std::ops::Range<usize>, field: &str, message: impl Into<String>) {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
            before[nl + 1..].chars().count()
        }) + 1;
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        });
    }
}

impl Scenario {
    /// Reads and validates the scenario at `path` and the topology it names.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
            path: path.to_owned(),
            source,
        })?;
        Scenario::parse(&text, path)
    }

    /// Parses scenario `text` read from `path` (the topology is resolved next to it).
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let mut c = Checker {
            file: &file,
            text,
            problems: Vec::new(),
        };
        let raw: RawScenario = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let mut message = e.message().trim_end().to_owned();
                if message.contains("untagged enum LinkSel") {
                    message = "expected \"*\" (every link) or a pair [\"a\", \"b\"]".to_owned();
                }
                let field = field_of(&message).unwrap_or_else(|| field_at(text, span.start));
                c.at(span, &field, message);
                return Err(ScenarioError::Invalid(c.problems));
            }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let topology_path = dir.join(raw.topology.get_ref());
        let topology = match Topology::load(&topology_path) {
            Ok(loaded) => loaded.topology,
            Err(TopologyError::Io { .. }) => {
                c.at(
                    raw.topology.span(),
                    "topology",
                    format!(
                        "cannot read {} (the path is relative to the scenario file)",
                        topology_path.display()
                    ),
                );
                return Err(ScenarioError::Invalid(c.problems));
            }
            Err(source) => {
                return Err(ScenarioError::Topology {
                    scenario: file,
                    path: topology_path,
                    source,
                });
            }
        };

        let duration_s = *raw.duration_s.get_ref();
        if !(duration_s > 0.0 && duration_s <= 3600.0) {
            c.at(
                raw.duration_s.span(),
                "duration_s",
                "expected a number of seconds > 0 and <= 3600",
            );
        }
        let warmup_s = raw.warmup_s.as_ref().map_or(3.0, |w| *w.get_ref());
        if let Some(w) = &raw.warmup_s
            && !(0.0..=60.0).contains(w.get_ref())
        {
            c.at(w.span(), "warmup_s", "expected seconds from 0 to 60");
        }
        let sweep = raw.sweep.map(|s| {
            if s.loss.get_ref().is_empty()
                || s.loss.get_ref().iter().any(|p| !(0.0..=1.0).contains(p))
            {
                c.at(
                    s.loss.span(),
                    "sweep.loss",
                    "expected a non-empty list of probabilities from 0 to 1",
                );
            }
            Sweep {
                loss: s.loss.into_inner(),
            }
        });

        let mut channels = BTreeMap::new();
        for (server, names) in &raw.channels {
            let is_server = topology
                .node(server)
                .is_some_and(|n| n.role == meshcast_topology::Role::Server);
            if !is_server {
                c.at(
                    names.span(),
                    &format!("channels.{server}"),
                    format!(
                        "{server:?} is not a server (servers: {})",
                        ids(topology.servers().map(|n| n.id.as_str()))
                    ),
                );
                continue;
            }
            let valid = |n: &String| {
                !n.is_empty()
                    && n.len() <= 64
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            };
            if names.get_ref().is_empty() || !names.get_ref().iter().all(valid) {
                c.at(
                    names.span(),
                    &format!("channels.{server}"),
                    "expected a non-empty list of channel names of 1 to 64 characters of \
                     [A-Za-z0-9_.-]",
                );
                continue;
            }
            channels.insert(server.clone(), names.get_ref().clone());
        }

        let mut events = Vec::new();
        for raw_event in &raw.event {
            if let Some(event) = check_event(&mut c, &topology, raw_event, duration_s) {
                events.push(event);
            }
        }
        events.sort_by(|a, b| a.at.total_cmp(&b.at));

        let mut expect = Vec::new();
        for e in &raw.expect {
            match Expectation::parse(e.get_ref()) {
                Ok(x) => {
                    if let Some(client) = &x.client
                        && topology.client(client).is_none()
                    {
                        c.at(
                            e.span(),
                            "expect",
                            format!(
                                "unknown client {client:?} (clients: {})",
                                ids(topology.clients().iter().map(|c| c.id.as_str()))
                            ),
                        );
                    } else {
                        expect.push(x);
                    }
                }
                Err(message) => c.at(e.span(), "expect", message),
            }
        }

        if !c.problems.is_empty() {
            return Err(ScenarioError::Invalid(c.problems));
        }
        let name = raw.name.unwrap_or_else(|| {
            path.file_stem()
                .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
        });
        Ok(Scenario {
            name,
            description: raw.description.unwrap_or_default(),
            file: path.to_owned(),
            topology_path,
            topology,
            duration_s,
            warmup_s,
            autostart: raw.autostart.unwrap_or(true),
            dual_parent: raw.dual_parent.unwrap_or(false),
            channels,
            sweep,
            events,
            expect,
        })
    }

    /// The clients watching from t = 0.
    pub fn initial_clients(&self) -> Vec<&str> {
        if !self.autostart {
            return Vec::new();
        }
        self.topology
            .clients()
            .iter()
            .map(|c| c.id.as_str())
            .collect()
    }
}

/// The field named in a serde message such as "unknown field `x`, expected ...".
fn field_of(message: &str) -> Option<String> {
    message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"))
        .map(str::to_owned)
}

/// The key written on the line holding byte `offset`, prefixed with the table it is in
/// (`event.at`), for errors that toml reports at a value.
fn field_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or_default();
    let Some((key, _)) = line.split_once('=') else {
        return "toml".to_owned();
    };
    let key = key.trim();
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_owned(),
    }
}

fn ids<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = ids.collect();
    if all.is_empty() {
        "none".into()
    } else {
        all.join(", ")
    }
}

fn check_event(
    c: &mut Checker<'_>,
    topology: &Topology,
    raw: &Spanned<RawEvent>,
    duration_s: f64,
) -> Option<Event> {
    let span = raw.span();
    let e = raw.get_ref();
    let at = *e.at.get_ref();
    let mut ok = true;
    if !(0.0..=duration_s).contains(&at) {
        c.at(
            e.at.span(),
            "event.at",
            format!("expected seconds from 0 to duration_s ({duration_s})"),
        );
        ok = false;
    }
    let mut count = 0;
    for present in [
        e.watch.is_some(),
        e.stop.is_some(),
        e.kill.is_some(),
        e.kill_relay_of.is_some(),
        e.kill_pop_of.is_some(),
        e.restart.is_some(),
        e.restart_killed.is_some(),
        e.partition.is_some(),
        e.heal.is_some(),
        e.link.is_some(),
    ] {
        count += usize::from(present);
    }
    if count != 1 {
        c.at(
            span,
            "event",
            format!(
                "expected exactly one action per [[event]], found {count} (actions: {ACTIONS})"
            ),
        );
        return None;
    }
    let attrs_given = e.loss.is_some()
        || e.latency_ms.is_some()
        || e.jitter_ms.is_some()
        || e.rate_mbit.is_some();
    if attrs_given && e.link.is_none() {
        c.at(
            span.clone(),
            "event",
            "loss, latency_ms, jitter_ms and rate_mbit go with `link = [a, b]` or `link = \"*\"`",
        );
        ok = false;
    }
    if e.channel.is_some() && e.watch.is_none() {
        c.at(span.clone(), "event.channel", "`channel` goes with `watch`");
        ok = false;
    }

    let client_ids = || ids(topology.clients().iter().map(|c| c.id.as_str()));
    let overlay_ids = || ids(topology.overlay_nodes().map(|n| n.id.as_str()));
    let client = |c: &mut Checker<'_>, v: &Spanned<String>, field: &str| -> Option<String> {
        if topology.client(v.get_ref()).is_some() {
            Some(v.get_ref().clone())
        } else {
            c.at(
                v.span(),
                field,
                format!(
                    "unknown client {:?} (clients: {})",
                    v.get_ref(),
                    client_ids()
                ),
            );
            None
        }
    };
    let node = |c: &mut Checker<'_>, v: &Spanned<String>, field: &str| -> Option<String> {
        if topology.node(v.get_ref()).is_some_and(|n| n.is_overlay()) {
            Some(v.get_ref().clone())
        } else {
            c.at(
                v.span(),
                field,
                format!(
                    "unknown server or node {:?} (known: {})",
                    v.get_ref(),
                    overlay_ids()
                ),
            );
            None
        }
    };
    let link = |c: &mut Checker<'_>, v: &Spanned<[String; 2]>, field: &str| {
        let [a, b] = v.get_ref();
        if topology.link_between(a, b).is_some() {
            Some((a.clone(), b.clone()))
        } else {
            c.at(
                v.span(),
                field,
                format!("no link between {a:?} and {b:?} in the topology"),
            );
            None
        }
    };

    let action = if let Some(v) = &e.watch {
        client(c, v, "event.watch").map(|client| Action::Watch {
            client,
            channel: e.channel.clone(),
        })
    } else if let Some(v) = &e.stop {
        client(c, v, "event.stop").map(|client| Action::Stop { client })
    } else if let Some(v) = &e.kill {
        node(c, v, "event.kill").map(|n| Action::Kill(KillTarget::Node(n)))
    } else if let Some(v) = &e.kill_relay_of {
        client(c, v, "event.kill_relay_of").map(|n| Action::Kill(KillTarget::RelayOf(n)))
    } else if let Some(v) = &e.kill_pop_of {
        client(c, v, "event.kill_pop_of").map(|n| Action::Kill(KillTarget::PopOf(n)))
    } else if let Some(v) = &e.restart {
        node(c, v, "event.restart").map(|n| Action::Restart { node: Some(n) })
    } else if let Some(v) = e.restart_killed {
        if v {
            Some(Action::Restart { node: None })
        } else {
            c.at(
                span,
                "event.restart_killed",
                "expected `true` (leave the event out otherwise)",
            );
            None
        }
    } else if let Some(v) = &e.partition {
        link(c, v, "event.partition").map(|(a, b)| Action::Partition { a, b })
    } else if let Some(v) = &e.heal {
        link(c, v, "event.heal").map(|(a, b)| Action::Heal { a, b })
    } else if let Some(v) = &e.link {
        let sel = match v.get_ref() {
            LinkSel::All(s) if s == "*" => Some(None),
            LinkSel::All(s) => {
                c.at(
                    v.span(),
                    "event.link",
                    format!("expected \"*\" (every link) or a pair [\"a\", \"b\"], found {s:?}"),
                );
                None
            }
            LinkSel::Pair([a, b]) => {
                if topology.link_between(a, b).is_some() {
                    Some(Some((a.clone(), b.clone())))
                } else {
                    c.at(
                        v.span(),
                        "event.link",
                        format!("no link between {a:?} and {b:?} in the topology"),
                    );
                    None
                }
            }
        };
        let mut number = |v: &Option<Spanned<f64>>, field: &str, valid: fn(f64) -> bool, what| {
            let x = v.as_ref()?;
            if valid(*x.get_ref()) {
                Some(*x.get_ref())
            } else {
                c.at(x.span(), field, format!("expected {what}"));
                None
            }
        };
        let change = LinkChange {
            loss: number(
                &e.loss,
                "event.loss",
                |x| (0.0..=1.0).contains(&x),
                "a probability from 0 to 1",
            ),
            latency_ms: number(
                &e.latency_ms,
                "event.latency_ms",
                |x| x.is_finite() && x >= 0.0,
                "milliseconds >= 0",
            ),
            jitter_ms: number(
                &e.jitter_ms,
                "event.jitter_ms",
                |x| x.is_finite() && x >= 0.0,
                "milliseconds >= 0",
            ),
            rate_mbit: number(
                &e.rate_mbit,
                "event.rate_mbit",
                |x| x.is_finite() && x > 0.0,
                "Mbit/s > 0",
            ),
        };
        if change == LinkChange::default() {
            c.at(
                v.span(),
                "event.link",
                "a link event needs at least one of loss, latency_ms, jitter_ms, rate_mbit",
            );
            None
        } else {
            sel.map(|link| Action::Link { link, change })
        }
    } else {
        None
    };
    match action {
        Some(action) if ok => Some(Event { at, action }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_topology(dir: &Path) {
        std::fs::write(dir.join("t.toml"), crate::fixtures::CHAIN).unwrap();
    }

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meshcast-scenario-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        write_topology(&dir);
        dir
    }

    #[test]
    fn a_full_scenario_parses_into_a_sorted_timeline() {
        let d = dir("full");
        let text = r#"
topology = "t.toml"
duration_s = 30
expect = ["continuity >= 0.99", "c1.max_stall_ms <= 1000"]
[sweep]
loss = [0, 0.1]
[[event]]
at = 20
restart_killed = true
[[event]]
at = 10
kill_relay_of = "c1"
[[event]]
at = 12
link = "*"
loss = 0.05
[[event]]
at = 13
partition = ["n2", "n1"]
"#;
        let s = Scenario::parse(text, &d.join("x.toml")).unwrap();
        assert_eq!(s.name, "x");
        assert_eq!(s.warmup_s, 3.0);
        assert_eq!(
            s.sweep,
            Some(Sweep {
                loss: vec![0.0, 0.1]
            })
        );
        let times: Vec<f64> = s.events.iter().map(|e| e.at).collect();
        assert_eq!(times, [10.0, 12.0, 13.0, 20.0]);
        assert_eq!(
            s.events[0].action,
            Action::Kill(KillTarget::RelayOf("c1".into()))
        );
        assert_eq!(s.events[1].action.to_string(), "all links: loss 0.05");
        assert_eq!(s.expect.len(), 2);
        assert_eq!(s.initial_clients(), ["c1"]);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_field() {
        let d = dir("bad");
        let text = r#"topology = "t.toml"
duration_s = 30
expect = ["continuity >> 1", "c9.startup_ms <= 10"]
[[event]]
at = 40
kill = "n9"
[[event]]
at = 1
partition = ["s1", "n2"]
[[event]]
at = 2
stop = "c1"
kill = "n1"
"#;
        let Err(ScenarioError::Invalid(problems)) = Scenario::parse(text, &d.join("x.toml")) else {
            panic!("accepted")
        };
        let got: Vec<(usize, &str)> = problems
            .iter()
            .map(|p| (p.line, p.field.as_str()))
            .collect();
        assert!(got.contains(&(3, "expect")), "{problems:?}");
        assert!(got.contains(&(5, "event.at")), "{problems:?}");
        assert!(got.contains(&(6, "event.kill")), "{problems:?}");
        assert!(got.contains(&(9, "event.partition")), "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.field == "event" && p.message.contains("found 2")),
            "{problems:?}"
        );
        let kill = problems.iter().find(|p| p.field == "event.kill").unwrap();
        assert!(kill.message.contains("known: s1, n1, n2"), "{kill}");
        assert_eq!(problems.iter().filter(|p| p.field == "expect").count(), 2);
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn an_unknown_field_names_itself_and_its_line() {
        let d = dir("unknown");
        let text = "topology = \"t.toml\"\nduration_s = 5\nduraton = 3\n";
        let Err(ScenarioError::Invalid(problems)) = Scenario::parse(text, &d.join("x.toml")) else {
            panic!("accepted")
        };
        assert_eq!(problems[0].line, 3, "{problems:?}");
        assert_eq!(problems[0].field, "duraton");
        assert!(
            problems[0].message.contains("expected one of"),
            "{problems:?}"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn every_scenario_of_the_suite_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                assert!(!s.expect.is_empty(), "{} expects nothing", s.name);
                assert!(!s.description.is_empty(), "{} has no description", s.name);
                names.push(s.name);
            }
        }
        names.sort();
        for wanted in [
            "four-node",
            "six-node",
            "complex",
            "two-servers",
            "grid",
            "mesh-50",
            "relay-failure",
            "pop-failure",
            "loss-sweep",
        ] {
            assert!(
                names.iter().any(|n| n == wanted),
                "{wanted} missing: {names:?}"
            );
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_table_and_key() {
        let d = dir("types");
        let text = "topology = \"t.toml\"\nduration_s = 5\n[[event]]\nat = 1\nlink = [\"n1\"]\nloss = 0.1\n";
        let Err(ScenarioError::Invalid(problems)) = Scenario::parse(text, &d.join("x.toml")) else {
            panic!("accepted")
        };
        assert_eq!(problems[0].line, 5, "{problems:?}");
        assert_eq!(problems[0].field, "event.link", "{problems:?}");
        assert!(problems[0].message.contains("a pair"), "{problems:?}");
        let text = "topology = \"t.toml\"\nduration_s = \"30\"\n";
        let Err(ScenarioError::Invalid(problems)) = Scenario::parse(text, &d.join("x.toml")) else {
            panic!("accepted")
        };
        assert_eq!(problems[0].field, "duration_s", "{problems:?}");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_missing_topology_is_reported_relative_to_the_scenario() {
        let d = dir("missing");
        let text = "topology = \"nope.toml\"\nduration_s = 5\n";
        let err = Scenario::parse(text, &d.join("x.toml")).unwrap_err();
        assert!(
            err.to_string()
                .contains("x.toml:1:12: topology: cannot read"),
            "{err}"
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}
