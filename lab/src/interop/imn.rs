//! CORE scenarios (`.imn`): the reader, and their import as meshcast topologies.
//!
//! The format is Tcl-like: a file is a list of commands, one per line, whose words are
//! separated by blanks; `{…}` groups words (and whole nested command lists) into one word, and
//! `\` escapes the next character. The commands that matter are
//!
//! ```text
//! node n3 {                       # one CORE node
//!     type router                 # router (with a model), hub, lanswitch, …
//!     model router                # router, PC, host, …
//!     network-config {            # Cisco-like interface list
//!         hostname n3
//!         interface eth0
//!          ip address 10.0.1.2/24
//!     }
//!     interface-peer {eth0 n6}    # which node eth0 faces
//!     custom-config { … }         # service files (ignored on import)
//! }
//! link l2 {
//!     nodes {n6 n3}
//!     bandwidth 10000000          # bit/s; delay and jitter in µs; ber (loss) and duplicate in %
//! }
//! ```
//!
//! `canvas`, `option`, `annotation`, `hook` and other blocks are read and ignored. The reader
//! never panics: malformed input is a list of [`Problem`]s with file and line.
//!
//! # Import
//!
//! Every node of type `router` becomes a `[[host]]` (`router = true` unless its model is `PC`
//! or `host`); the hubs and switches joined by links form one LAN `[[net]]` each, and a link
//! between two hosts a point-to-point `[[net]]`, with the subnet of the interfaces facing each
//! other (found through `interface-peer`). Link bandwidth becomes the net's `rate_mbit`; link
//! delay, jitter and loss cannot be applied in the namespaces (no netem), so they are carried
//! to the overlay links, summed along the underlay path (loss as 1 − Π(1 − p)), and emulated
//! by the processes. PC and host nodes run meshcast processes, routers do not; two of them are
//! overlay neighbours when a shortest underlay path between them crosses no other
//! process-running host.
//!
//! # Layout
//!
//! - reading: [`parse`] → [`Scenario`] of [`CoreNode`]s and [`CoreLink`]s (the lexer builds a
//!   tree of `Command`s first);
//! - the underlay: `underlay` → `Underlay` (hosts, nets, per-step impairments, paths);
//! - [`import`]: overlay placement, links and clients, rendered through a
//!   [`Draft`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use meshcast_topology::{
    HostSpec, Ipv4Subnet, LinkAttrs, LinkSpec, NetMember, NetSpec, NodeSpec, Role,
};

use super::{
    BOOTSTRAPPER_PORT, Candidate, Draft, ImportError, ImportOptions, Imported, NODE_PORT, Problem,
    check, choose_clients, natural_key, socket, tidy, unique_id,
};

/// Deepest `{` nesting the reader accepts (real files use 4).
const MAX_DEPTH: usize = 64;

// ---------------------------------------------------------------------------------------------
// model

/// A CORE scenario as far as meshcast needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scenario {
    /// The file name used in messages.
    pub file: String,
    /// `node` blocks in file order.
    pub nodes: Vec<CoreNode>,
    /// `link` blocks in file order.
    pub links: Vec<CoreLink>,
}

/// One `node` block.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoreNode {
    /// The node's name (`n3`): what links and `interface-peer` refer to.
    pub name: String,
    /// Line of `node NAME {`.
    pub line: usize,
    /// `type`: `router`, `hub`, `lanswitch`, …
    pub kind: String,
    /// `model`: `router`, `PC`, `host`, … (routers only).
    pub model: Option<String>,
    /// `hostname` in `network-config`: the label CORE shows.
    pub hostname: Option<String>,
    /// `interface` entries of `network-config`, in file order.
    pub interfaces: Vec<CoreInterface>,
    /// `interface-peer` entries, in file order.
    pub peers: Vec<CorePeer>,
    /// `services` list, if any.
    pub services: Vec<String>,
    /// `custom-config` blocks (service files).
    pub custom_configs: Vec<CustomConfig>,
}

impl CoreNode {
    /// The name meshcast ids are made from: the hostname, else the node name.
    pub fn label(&self) -> &str {
        self.hostname.as_deref().unwrap_or(&self.name)
    }

    /// The IPv4 address and prefix of interface `name`.
    pub fn ipv4(&self, name: &str) -> Option<(Ipv4Addr, u8)> {
        self.interfaces
            .iter()
            .find(|interface| interface.name == name)
            .and_then(|interface| interface.ipv4)
    }
}

/// One `interface` of a `network-config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreInterface {
    /// `eth0`.
    pub name: String,
    /// Line of `interface NAME`.
    pub line: usize,
    /// The first `ip address A/P`.
    pub ipv4: Option<(Ipv4Addr, u8)>,
}

/// One `interface-peer {IFACE PEER}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorePeer {
    /// The interface.
    pub interface: String,
    /// The node it faces.
    pub peer: String,
    /// Its line.
    pub line: usize,
}

/// One `custom-config` block: a service's configuration or one of its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomConfig {
    /// `custom-config-id`, such as `service:UserDefined:start.sh`.
    pub id: String,
    /// `custom-command`.
    pub command: Option<String>,
    /// The text between the braces of `config { … }`.
    pub config: String,
    /// Line of `custom-config {`.
    pub line: usize,
}

/// One `link` block. Asymmetric values (`{down up}`) are reduced to the worse direction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoreLink {
    /// `l4`.
    pub name: String,
    /// Line of `link NAME {`.
    pub line: usize,
    /// The two node names of `nodes {a b}`.
    pub ends: (String, String),
    /// `bandwidth` in bit/s when above 0.
    pub bandwidth_bps: Option<f64>,
    /// `delay` in µs.
    pub delay_us: Option<f64>,
    /// `jitter` in µs.
    pub jitter_us: Option<f64>,
    /// `ber` (shown by CORE as loss) in percent.
    pub loss_percent: Option<f64>,
    /// `duplicate` in percent.
    pub duplicate_percent: Option<f64>,
    /// Whether some value was given per direction.
    pub asymmetric: bool,
}

// ---------------------------------------------------------------------------------------------
// lexer

/// One word: plain text, or a braced group (`text` is then what the braces hold).
#[derive(Clone, Debug)]
struct Word {
    text: String,
    line: usize,
    group: Option<Vec<Command>>,
}

/// One command: its words, on the line of the first.
#[derive(Clone, Debug)]
struct Command {
    line: usize,
    words: Vec<Word>,
}

impl Command {
    /// The first word, if plain.
    fn keyword(&self) -> Option<&str> {
        self.words
            .first()
            .filter(|word| word.group.is_none())
            .map(|word| word.text.as_str())
    }
}

struct Lexer<'t> {
    file: &'t str,
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    line: usize,
}

impl<'t> Lexer<'t> {
    fn problem(&self, line: usize, message: impl Into<String>) -> Problem {
        Problem::new(self.file, line, message)
    }

    /// Commands up to the end of the text (`opened_at: None`) or the `}` closing a group
    /// opened at line `opened_at`.
    fn body(&mut self, depth: usize, opened_at: Option<usize>) -> Result<Vec<Command>, Problem> {
        let mut commands = Vec::new();
        let mut words: Vec<Word> = Vec::new();
        let flush = |words: &mut Vec<Word>, commands: &mut Vec<Command>| {
            if let Some(first) = words.first() {
                commands.push(Command {
                    line: first.line,
                    words: std::mem::take(words),
                });
            }
        };
        loop {
            let Some(&byte) = self.bytes.get(self.pos) else {
                if let Some(line) = opened_at {
                    let last = self.line - usize::from(self.text.ends_with('\n'));
                    return Err(self.problem(
                        line,
                        format!("'{{' opened here is never closed (the file ends at line {last})"),
                    ));
                }
                flush(&mut words, &mut commands);
                return Ok(commands);
            };
            match byte {
                b'\n' => {
                    flush(&mut words, &mut commands);
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | b'\x0b' | b'\x0c' => self.pos += 1,
                b'}' => {
                    if opened_at.is_none() {
                        return Err(self.problem(self.line, "'}' closes no open '{'"));
                    }
                    self.pos += 1;
                    flush(&mut words, &mut commands);
                    return Ok(commands);
                }
                b'{' => {
                    if depth >= MAX_DEPTH {
                        return Err(self.problem(
                            self.line,
                            format!("braces nested deeper than {MAX_DEPTH} levels"),
                        ));
                    }
                    let line = self.line;
                    self.pos += 1;
                    let start = self.pos;
                    let inner = self.body(depth + 1, Some(line))?;
                    // `body` returned just after the closing brace.
                    let raw = self.text.get(start..self.pos - 1).unwrap_or("").to_owned();
                    words.push(Word {
                        text: raw,
                        line,
                        group: Some(inner),
                    });
                }
                b'#' if depth == 0 && words.is_empty() => {
                    while self.bytes.get(self.pos).is_some_and(|&b| b != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => {
                    let line = self.line;
                    let start = self.pos;
                    while let Some(&b) = self.bytes.get(self.pos) {
                        if matches!(
                            b,
                            b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'}' | b'\x0b' | b'\x0c'
                        ) {
                            break;
                        }
                        if b == b'\\' && self.pos + 1 < self.bytes.len() {
                            if self.bytes[self.pos + 1] == b'\n' {
                                self.line += 1;
                            }
                            self.pos += 2;
                        } else {
                            self.pos += 1;
                        }
                    }
                    // Word boundaries are ASCII bytes, so this slice is on char boundaries;
                    // a trailing escape of a multi-byte character is read lossily.
                    let end = self.pos.min(self.bytes.len());
                    let text = String::from_utf8_lossy(&self.bytes[start..end]).into_owned();
                    words.push(Word {
                        text,
                        line,
                        group: None,
                    });
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// reader

/// Reads a CORE scenario; `file` names it in messages. Every problem found is returned.
pub fn parse(text: &str, file: &str) -> Result<Scenario, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lexer = Lexer {
        file,
        text,
        bytes: text.as_bytes(),
        pos: 0,
        line: 1,
    };
    let commands = lexer
        .body(0, None)
        .map_err(|problem| ImportError::Invalid(vec![problem]))?;
    let mut reader = Reader {
        file,
        problems: Vec::new(),
    };
    let mut scenario = Scenario {
        file: file.to_owned(),
        ..Scenario::default()
    };
    for command in &commands {
        let keyword = command.keyword().unwrap_or("");
        let has_group = command.words.iter().any(|word| word.group.is_some());
        match keyword {
            "node" | "link" => {
                let (Some(name), Some(body)) = (
                    command.words.get(1).filter(|w| w.group.is_none()),
                    command.words.get(2).and_then(|w| w.group.as_ref()),
                ) else {
                    reader.problem(command.line, format!("expected `{keyword} NAME {{ … }}`"));
                    continue;
                };
                if command.words.len() > 3 {
                    reader.problem(
                        command.line,
                        format!("unexpected words after the body of {keyword} {}", name.text),
                    );
                }
                if keyword == "node" {
                    if let Some(node) = reader.node(&name.text, command.line, body) {
                        if let Some(first) = scenario.nodes.iter().find(|n| n.name == node.name) {
                            let message = format!(
                                "node {} is defined twice (first at line {})",
                                node.name, first.line
                            );
                            reader.problem(command.line, message);
                        } else {
                            scenario.nodes.push(node);
                        }
                    }
                } else if let Some(link) = reader.link(&name.text, command.line, body) {
                    scenario.links.push(link);
                }
            }
            _ if has_group => {} // canvas, option, annotation, hook, …: not meshcast's business
            _ => {
                let shown: String = command
                    .words
                    .iter()
                    .map(|word| word.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(40)
                    .collect();
                reader.problem(
                    command.line,
                    format!("unexpected `{shown}` at top level (expected node, link, canvas or option blocks)"),
                );
            }
        }
    }
    check(reader.problems)?;
    Ok(scenario)
}

struct Reader<'f> {
    file: &'f str,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, line: usize, message: impl Into<String>) {
        self.problems.push(Problem::new(self.file, line, message));
    }

    /// The single plain value of `key VALUE`.
    fn value<'c>(&mut self, command: &'c Command, owner: &str) -> Option<&'c str> {
        match command.words.as_slice() {
            [_, value] if value.group.is_none() => Some(&value.text),
            _ => {
                let key = command.keyword().unwrap_or("?");
                self.problem(command.line, format!("{owner}: expected `{key} VALUE`"));
                None
            }
        }
    }

    fn node(&mut self, name: &str, line: usize, body: &[Command]) -> Option<CoreNode> {
        let mut node = CoreNode {
            name: name.to_owned(),
            line,
            ..CoreNode::default()
        };
        let owner = format!("node {name}");
        for command in body {
            match command.keyword() {
                Some("type") => {
                    if let Some(kind) = self.value(command, &owner) {
                        node.kind = kind.to_owned();
                    }
                }
                Some("model") => {
                    if let Some(model) = self.value(command, &owner) {
                        node.model = Some(model.to_owned());
                    }
                }
                Some("network-config") => match command.words.get(1).and_then(|w| w.group.as_ref())
                {
                    Some(config) => self.network_config(&mut node, config),
                    None => self.problem(
                        command.line,
                        format!("{owner}: expected `network-config {{ … }}`"),
                    ),
                },
                Some("interface-peer") => {
                    let pair = command
                        .words
                        .get(1)
                        .and_then(|w| w.group.as_ref())
                        .and_then(|g| match g.as_slice() {
                            [only] => match only.words.as_slice() {
                                [interface, peer]
                                    if interface.group.is_none() && peer.group.is_none() =>
                                {
                                    Some((interface.text.clone(), peer.text.clone()))
                                }
                                _ => None,
                            },
                            _ => None,
                        });
                    match pair {
                        Some((interface, peer)) => node.peers.push(CorePeer {
                            interface,
                            peer,
                            line: command.line,
                        }),
                        None => self.problem(
                            command.line,
                            format!("{owner}: expected `interface-peer {{IFACE PEER}}`"),
                        ),
                    }
                }
                Some("services") => {
                    if let Some(list) = command.words.get(1).and_then(|w| w.group.as_ref()) {
                        node.services = list
                            .iter()
                            .flat_map(|c| &c.words)
                            .map(|w| w.text.clone())
                            .collect();
                    }
                }
                Some("custom-config") => {
                    if let Some(block) = command.words.get(1).and_then(|w| w.group.as_ref()) {
                        node.custom_configs.push(custom_config(block, command.line));
                    }
                }
                _ => {}
            }
        }
        if node.kind.is_empty() {
            self.problem(line, format!("{owner} has no `type`"));
            return None;
        }
        Some(node)
    }

    fn network_config(&mut self, node: &mut CoreNode, config: &[Command]) {
        let mut current: Option<usize> = None;
        for command in config {
            let words: Vec<&str> = command.words.iter().map(|w| w.text.as_str()).collect();
            match words.as_slice() {
                ["hostname", hostname] => node.hostname = Some((*hostname).to_owned()),
                ["!", ..] => current = None,
                ["interface", name] => {
                    node.interfaces.push(CoreInterface {
                        name: (*name).to_owned(),
                        line: command.line,
                        ipv4: None,
                    });
                    current = Some(node.interfaces.len() - 1);
                }
                ["ip", "address", value] => {
                    let Some(index) = current else {
                        self.problem(
                            command.line,
                            format!("node {}: `ip address` outside an interface", node.name),
                        );
                        continue;
                    };
                    match parse_cidr(value) {
                        Some(cidr) => {
                            let interface = &mut node.interfaces[index];
                            // A second address is an alias; the first is the interface's.
                            interface.ipv4.get_or_insert(cidr);
                        }
                        None => self.problem(
                            command.line,
                            format!(
                                "node {}: invalid IPv4 address {value:?}: expected A.B.C.D/PREFIX such as 10.0.3.20/24",
                                node.name
                            ),
                        ),
                    }
                }
                _ => {}
            }
        }
    }

    fn link(&mut self, name: &str, line: usize, body: &[Command]) -> Option<CoreLink> {
        let mut link = CoreLink {
            name: name.to_owned(),
            line,
            ..CoreLink::default()
        };
        let owner = format!("link {name}");
        let mut ends = None;
        for command in body {
            let Some(key) = command.keyword() else {
                continue;
            };
            if key == "nodes" {
                let pair = command
                    .words
                    .get(1)
                    .and_then(|w| w.group.as_ref())
                    .and_then(|g| {
                        let words: Vec<&Word> = g.iter().flat_map(|c| &c.words).collect();
                        match words.as_slice() {
                            [a, b] if a.group.is_none() && b.group.is_none() => {
                                Some((a.text.clone(), b.text.clone()))
                            }
                            _ => None,
                        }
                    });
                match pair {
                    Some(pair) => ends = Some(pair),
                    None => self.problem(
                        command.line,
                        format!("{owner}: expected `nodes {{A B}}` with two node names"),
                    ),
                }
                continue;
            }
            let slot = match key {
                "bandwidth" => &mut link.bandwidth_bps,
                "delay" => &mut link.delay_us,
                "jitter" => &mut link.jitter_us,
                "ber" | "loss" => &mut link.loss_percent,
                "duplicate" => &mut link.duplicate_percent,
                _ => continue,
            };
            let Some(word) = command.words.get(1) else {
                self.problem(command.line, format!("{owner}: `{key}` without a value"));
                continue;
            };
            let texts: Vec<&str> = match &word.group {
                None => vec![word.text.as_str()],
                Some(group) => group
                    .iter()
                    .flat_map(|c| &c.words)
                    .map(|w| w.text.as_str())
                    .collect(),
            };
            let mut values = Vec::new();
            for text in &texts {
                match text.parse::<f64>() {
                    Ok(value) if value.is_finite() && value >= 0.0 => values.push(value),
                    _ => {
                        self.problem(
                            command.line,
                            format!("{owner}: {key} {text:?} is not a number >= 0"),
                        );
                    }
                }
            }
            if values.len() != texts.len() || values.is_empty() {
                continue;
            }
            link.asymmetric |= values.len() > 1;
            // The worse direction: the lower bandwidth above 0, the higher impairment.
            *slot = if key == "bandwidth" {
                values.into_iter().filter(|v| *v > 0.0).reduce(f64::min)
            } else {
                values.into_iter().reduce(f64::max).filter(|v| *v > 0.0)
            };
        }
        let Some(ends) = ends else {
            self.problem(line, format!("{owner} has no `nodes {{A B}}`"));
            return None;
        };
        link.ends = ends;
        Some(link)
    }
}

fn custom_config(block: &[Command], line: usize) -> CustomConfig {
    let mut config = CustomConfig {
        id: String::new(),
        command: None,
        config: String::new(),
        line,
    };
    for command in block {
        match (command.keyword(), command.words.get(1)) {
            (Some("custom-config-id"), Some(word)) => config.id = word.text.clone(),
            (Some("custom-command"), Some(word)) => config.command = Some(word.text.clone()),
            (Some("config"), Some(word)) if word.group.is_some() => {
                config.config = word.text.clone();
            }
            _ => {}
        }
    }
    config
}

/// `A.B.C.D/P`.
fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = text.split_once('/')?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((addr.parse().ok()?, prefix))
}

// ---------------------------------------------------------------------------------------------
// underlay

/// Link impairments accumulated along a path.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Impairment {
    pub delay_us: f64,
    pub jitter_us: f64,
    /// Probability that a packet survives: Π(1 − p).
    pub survive: f64,
}

impl Impairment {
    const NONE: Impairment = Impairment {
        delay_us: 0.0,
        jitter_us: 0.0,
        survive: 1.0,
    };

    fn of(link: &CoreLink) -> Impairment {
        Impairment {
            delay_us: link.delay_us.unwrap_or(0.0),
            jitter_us: link.jitter_us.unwrap_or(0.0),
            survive: 1.0 - (link.loss_percent.unwrap_or(0.0) / 100.0).clamp(0.0, 1.0),
        }
    }

    fn then(self, next: Impairment) -> Impairment {
        Impairment {
            delay_us: self.delay_us + next.delay_us,
            jitter_us: self.jitter_us + next.jitter_us,
            survive: self.survive * next.survive,
        }
    }

    /// As overlay link attributes (only those above zero).
    pub(crate) fn attrs(self) -> LinkAttrs {
        let positive = |x: f64| Some(tidy(x)).filter(|x| *x > 0.0);
        LinkAttrs {
            latency_ms: positive(self.delay_us / 1000.0),
            jitter_ms: positive(self.jitter_us / 1000.0),
            loss: positive(1.0 - self.survive),
            rate_mbit: None,
        }
    }
}

/// A host of the underlay: a CORE node of type router.
#[derive(Clone, Debug)]
pub(crate) struct UHost {
    /// Index in [`Scenario::nodes`].
    pub core: usize,
    /// Its meshcast id.
    pub id: String,
    pub router: bool,
    /// Whether its model runs meshcast processes (PC, host).
    pub end_system: bool,
    /// `model host`: a default server.
    pub model_host: bool,
    /// (interface, address) of its interfaces on nets, in natural interface order.
    pub addrs: Vec<(String, Ipv4Addr)>,
}

/// How a net is made in CORE.
#[derive(Clone, Debug)]
enum NetKind {
    /// One link between two hosts.
    P2p { link: usize },
    /// Hosts attached to hubs/switches: per member, the attaching link and the L2 node.
    Lan { attach: Vec<(usize, usize)> },
}

#[derive(Clone, Debug)]
pub(crate) struct UNet {
    pub subnet: Ipv4Subnet,
    /// (host index, address), in link order.
    pub members: Vec<(usize, Ipv4Addr)>,
    pub rate_mbit: Option<f64>,
    kind: NetKind,
}

/// The hosts and nets of a scenario, with what is needed to follow paths through them.
#[derive(Clone, Debug)]
pub(crate) struct Underlay {
    pub hosts: Vec<UHost>,
    pub nets: Vec<UNet>,
    links: Vec<CoreLink>,
    /// Per host: (net, position in its members).
    memberships: Vec<Vec<(usize, usize)>>,
    /// L2 node index → (neighbour L2 node, link) over links between hubs/switches.
    l2_links: BTreeMap<usize, Vec<(usize, usize)>>,
    names: Vec<(String, String)>,
}

/// What a CORE node is to meshcast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Host,
    L2,
    Unsupported,
}

fn class(node: &CoreNode) -> Class {
    match node.kind.as_str() {
        "router" => Class::Host,
        "hub" | "lanswitch" => Class::L2,
        _ => Class::Unsupported,
    }
}

/// Builds the underlay of `scenario`; `notes` collects what was approximated.
pub(crate) fn underlay(
    scenario: &Scenario,
    notes: &mut Vec<String>,
) -> Result<Underlay, ImportError> {
    let file = scenario.file.as_str();
    let mut problems = Vec::new();
    let index: BTreeMap<&str, usize> = scenario
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.name.as_str(), i))
        .collect();
    for node in &scenario.nodes {
        if class(node) == Class::Unsupported {
            problems.push(Problem::new(
                file,
                node.line,
                format!(
                    "node {}: type {:?} is not supported (meshcast imports router, hub and lanswitch nodes)",
                    node.name, node.kind
                ),
            ));
        }
    }

    // Hosts in file order.
    let mut taken = Vec::new();
    let mut host_of_core: BTreeMap<usize, usize> = BTreeMap::new();
    let mut hosts = Vec::new();
    for (core, node) in scenario.nodes.iter().enumerate() {
        if class(node) != Class::Host {
            continue;
        }
        let model = node.model.as_deref().unwrap_or("router");
        let end_system = model.eq_ignore_ascii_case("PC") || model.eq_ignore_ascii_case("host");
        let id = unique_id(node.label(), &mut taken);
        if id != node.label() {
            notes.push(format!(
                "{file}:{}: node {} is host {id:?} (ids are 1-32 characters of A-Z a-z 0-9 _ . - and unique)",
                node.line,
                node.label()
            ));
        }
        host_of_core.insert(core, hosts.len());
        hosts.push(UHost {
            core,
            id,
            router: !end_system,
            end_system,
            model_host: model.eq_ignore_ascii_case("host"),
            addrs: Vec::new(),
        });
    }

    // Hubs and switches joined by links form one LAN each.
    let mut l2_links: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    let mut ends_of = Vec::new();
    for (li, link) in scenario.links.iter().enumerate() {
        let (a, b) = (&link.ends.0, &link.ends.1);
        let mut resolved = Vec::new();
        for end in [a, b] {
            match index.get(end.as_str()) {
                Some(&i) => resolved.push(i),
                None => problems.push(Problem::new(
                    file,
                    link.line,
                    format!("link {}: unknown node {end:?}", link.name),
                )),
            }
        }
        let [x, y] = resolved[..] else {
            ends_of.push(None);
            continue;
        };
        if x == y {
            problems.push(Problem::new(
                file,
                link.line,
                format!("link {} joins {a} to itself", link.name),
            ));
            ends_of.push(None);
            continue;
        }
        if class(&scenario.nodes[x]) == Class::L2 && class(&scenario.nodes[y]) == Class::L2 {
            l2_links.entry(x).or_default().push((y, li));
            l2_links.entry(y).or_default().push((x, li));
        }
        ends_of.push(Some((x, y)));
    }
    let component = l2_components(scenario, &l2_links);

    // The interface of `node` facing `peer`, each interface-peer used once.
    let mut used: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut facing = |node: usize, peer: usize, link: &CoreLink, problems: &mut Vec<Problem>| {
        let core = &scenario.nodes[node];
        let peer_name = &scenario.nodes[peer].name;
        let Some(position) = core
            .peers
            .iter()
            .enumerate()
            .position(|(i, p)| &p.peer == peer_name && !used.contains(&(node, i)))
        else {
            problems.push(Problem::new(
                file,
                link.line,
                format!(
                    "link {}: node {} (line {}) has no interface-peer towards {peer_name}",
                    link.name, core.name, core.line
                ),
            ));
            return None;
        };
        used.insert((node, position));
        let interface = &core.peers[position].interface;
        match core.ipv4(interface) {
            Some(cidr) => Some((interface.clone(), cidr)),
            None => {
                let line = core
                    .interfaces
                    .iter()
                    .find(|i| &i.name == interface)
                    .map_or(core.peers[position].line, |i| i.line);
                problems.push(Problem::new(
                    file,
                    line,
                    format!(
                        "node {}: interface {interface} (towards {peer_name}) has no IPv4 address; meshcast's underlay is IPv4 only for now",
                        core.name
                    ),
                ));
                None
            }
        }
    };

    let mut nets: Vec<UNet> = Vec::new();
    let mut lan_of_component: BTreeMap<usize, usize> = BTreeMap::new();
    for (li, link) in scenario.links.iter().enumerate() {
        let Some((x, y)) = ends_of[li] else {
            continue;
        };
        let (cx, cy) = (class(&scenario.nodes[x]), class(&scenario.nodes[y]));
        match (cx, cy) {
            (Class::Host, Class::Host) => {
                let fx = facing(x, y, link, &mut problems);
                let fy = facing(y, x, link, &mut problems);
                let (Some((ix, (ax, px))), Some((iy, (ay, py)))) = (fx, fy) else {
                    continue;
                };
                let Ok(subnet) = Ipv4Subnet::containing(ax, px) else {
                    continue;
                };
                if px != py || !subnet.contains(ay) {
                    problems.push(Problem::new(
                        file,
                        link.line,
                        format!(
                            "link {}: {} {ix} {ax}/{px} and {} {iy} {ay}/{py} are not on one subnet",
                            link.name, scenario.nodes[x].name, scenario.nodes[y].name
                        ),
                    ));
                    continue;
                }
                let (hx, hy) = (host_of_core[&x], host_of_core[&y]);
                hosts[hx].addrs.push((ix, ax));
                hosts[hy].addrs.push((iy, ay));
                nets.push(UNet {
                    subnet,
                    members: vec![(hx, ax), (hy, ay)],
                    rate_mbit: link.bandwidth_bps.map(|bps| tidy(bps / 1e6)),
                    kind: NetKind::P2p { link: li },
                });
            }
            (Class::Host, Class::L2) | (Class::L2, Class::Host) => {
                let (host, l2) = if cx == Class::Host { (x, y) } else { (y, x) };
                let Some((interface, (addr, prefix))) = facing(host, l2, link, &mut problems)
                else {
                    continue;
                };
                let Ok(subnet) = Ipv4Subnet::containing(addr, prefix) else {
                    continue;
                };
                let h = host_of_core[&host];
                let net_index = *lan_of_component.entry(component[&l2]).or_insert_with(|| {
                    nets.push(UNet {
                        subnet,
                        members: Vec::new(),
                        rate_mbit: None,
                        kind: NetKind::Lan { attach: Vec::new() },
                    });
                    nets.len() - 1
                });
                let net = &mut nets[net_index];
                if net.subnet != subnet {
                    problems.push(Problem::new(
                        file,
                        link.line,
                        format!(
                            "link {}: {} {interface} {addr}/{prefix} is not on the subnet {} of the LAN it joins",
                            link.name, scenario.nodes[host].name, net.subnet
                        ),
                    ));
                    continue;
                }
                if net.members.iter().any(|(member, _)| *member == h) {
                    problems.push(Problem::new(
                        file,
                        link.line,
                        format!(
                            "link {}: {} is attached twice to the LAN of {}",
                            link.name, scenario.nodes[host].name, scenario.nodes[l2].name
                        ),
                    ));
                    continue;
                }
                hosts[h].addrs.push((interface, addr));
                net.members.push((h, addr));
                if let NetKind::Lan { attach } = &mut net.kind {
                    attach.push((li, l2));
                }
            }
            _ => {}
        }
    }
    check(problems)?;

    // LAN rates: the lowest bandwidth of the links making the LAN.
    for net in &mut nets {
        if let NetKind::Lan { attach } = &net.kind {
            let Some(&(_, some_l2)) = attach.first() else {
                continue;
            };
            let lan = component[&some_l2];
            let inner = l2_links
                .iter()
                .filter(|(node, _)| component[node] == lan)
                .flat_map(|(_, list)| list.iter().map(|&(_, li)| li));
            net.rate_mbit = attach
                .iter()
                .map(|&(li, _)| li)
                .chain(inner)
                .filter_map(|li| scenario.links[li].bandwidth_bps)
                .reduce(f64::min)
                .map(|bps| tidy(bps / 1e6));
        }
    }
    for link in &scenario.links {
        if let Some(duplicate) = link.duplicate_percent {
            notes.push(format!(
                "{file}:{}: link {}: duplicate {duplicate}% is not applied (neither the namespaces nor the overlay links emulate duplication)",
                link.line, link.name
            ));
        }
        if link.asymmetric {
            notes.push(format!(
                "{file}:{}: link {}: per-direction values; the worse direction is used both ways",
                link.line, link.name
            ));
        }
    }
    for host in &mut hosts {
        host.addrs
            .sort_by_key(|(interface, _)| natural_key(interface));
    }
    let mut memberships = vec![Vec::new(); hosts.len()];
    for (n, net) in nets.iter().enumerate() {
        for (position, &(host, _)) in net.members.iter().enumerate() {
            memberships[host].push((n, position));
        }
    }
    let names = scenario
        .nodes
        .iter()
        .map(|node| (node.name.clone(), node.label().to_owned()))
        .collect();
    Ok(Underlay {
        hosts,
        nets,
        links: scenario.links.clone(),
        memberships,
        l2_links,
        names,
    })
}

/// Component number of every hub/switch, joined by links between them.
fn l2_components(
    scenario: &Scenario,
    l2_links: &BTreeMap<usize, Vec<(usize, usize)>>,
) -> BTreeMap<usize, usize> {
    let mut component = BTreeMap::new();
    let mut next = 0;
    for (start, node) in scenario.nodes.iter().enumerate() {
        if class(node) != Class::L2 || component.contains_key(&start) {
            continue;
        }
        let mut stack = vec![start];
        component.insert(start, next);
        while let Some(at) = stack.pop() {
            for &(to, _) in l2_links.get(&at).map_or(&[][..], Vec::as_slice) {
                if let std::collections::btree_map::Entry::Vacant(slot) = component.entry(to) {
                    slot.insert(next);
                    stack.push(to);
                }
            }
        }
        next += 1;
    }
    component
}

impl Underlay {
    /// The host whose CORE node name or hostname is `name`, or whose id is `name`.
    pub(crate) fn find_host(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|host| {
            let (core_name, label) = &self.names[host.core];
            core_name == name || label == name || host.id == name
        })
    }

    /// The host that has `addr`.
    pub(crate) fn host_of_addr(&self, addr: Ipv4Addr) -> Option<usize> {
        self.hosts
            .iter()
            .position(|host| host.addrs.iter().any(|(_, a)| *a == addr))
    }

    /// Impairment of one step from member `from` to member `to` of net `net`.
    fn step(&self, net: usize, from: usize, to: usize) -> Impairment {
        match &self.nets[net].kind {
            NetKind::P2p { link } => Impairment::of(&self.links[*link]),
            NetKind::Lan { attach } => {
                let (link_from, l2_from) = attach[from];
                let (link_to, l2_to) = attach[to];
                let inner = self.l2_path(l2_from, l2_to);
                Impairment::of(&self.links[link_from])
                    .then(inner)
                    .then(Impairment::of(&self.links[link_to]))
            }
        }
    }

    /// Impairment of the links between two hubs/switches of one LAN (fewest links).
    fn l2_path(&self, from: usize, to: usize) -> Impairment {
        let mut previous: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        let mut frontier = vec![from];
        let mut seen = BTreeSet::from([from]);
        while !frontier.is_empty() && !seen.contains(&to) {
            let mut next = Vec::new();
            for &at in &frontier {
                for &(node, link) in self.l2_links.get(&at).map_or(&[][..], Vec::as_slice) {
                    if seen.insert(node) {
                        previous.insert(node, (at, link));
                        next.push(node);
                    }
                }
            }
            frontier = next;
        }
        let mut total = Impairment::NONE;
        let mut at = to;
        while let Some(&(before, link)) = previous.get(&at) {
            total = total.then(Impairment::of(&self.links[link]));
            at = before;
        }
        total
    }

    /// From host `from`: for every host, the fewest hops and, among those, the least delay,
    /// over paths whose inner hosts all satisfy `transit`; `None` where unreachable.
    pub(crate) fn paths(
        &self,
        from: usize,
        transit: impl Fn(usize) -> bool,
    ) -> Vec<Option<(usize, Impairment)>> {
        let n = self.hosts.len();
        let mut best: Vec<Option<(usize, Impairment)>> = vec![None; n];
        let mut done = vec![false; n];
        if from >= n {
            return best;
        }
        best[from] = Some((0, Impairment::NONE));
        loop {
            let next = (0..n)
                .filter(|&i| !done[i])
                .filter_map(|i| best[i].map(|(hops, imp)| (hops, imp.delay_us, i)))
                .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
            let Some((hops, _, at)) = next else {
                break;
            };
            done[at] = true;
            if at != from && !transit(at) {
                continue;
            }
            let Some((_, so_far)) = best[at] else {
                continue;
            };
            for &(net, position) in &self.memberships[at] {
                for (other_position, &(other, _)) in self.nets[net].members.iter().enumerate() {
                    if other == at || done[other] {
                        continue;
                    }
                    let candidate = (
                        hops + 1,
                        so_far.then(self.step(net, position, other_position)),
                    );
                    let better = match best[other] {
                        None => true,
                        Some((h, imp)) => (candidate.0, candidate.1.delay_us) < (h, imp.delay_us),
                    };
                    if better {
                        best[other] = Some(candidate);
                    }
                }
            }
        }
        best
    }

    /// The `[[host]]` and `[[net]]` parts.
    pub(crate) fn specs(&self) -> (Vec<HostSpec>, Vec<NetSpec>) {
        let hosts = self
            .hosts
            .iter()
            .map(|host| HostSpec {
                id: host.id.clone(),
                router: host.router,
            })
            .collect();
        let nets = self
            .nets
            .iter()
            .map(|net| NetSpec {
                subnet: net.subnet,
                members: net
                    .members
                    .iter()
                    .map(|&(host, addr)| NetMember {
                        host: self.hosts[host].id.clone(),
                        addr,
                    })
                    .collect(),
                rate_mbit: net.rate_mbit,
            })
            .collect();
        (hosts, nets)
    }
}

// ---------------------------------------------------------------------------------------------
// import

/// Imports a CORE scenario: its underlay, meshcast processes on its PC and host nodes, overlay
/// links between neighbours, and clients (see the module documentation and [`ImportOptions`]).
pub fn import(scenario: &Scenario, options: &ImportOptions) -> Result<Imported, ImportError> {
    let mut notes = Vec::new();
    let underlay = underlay(scenario, &mut notes)?;
    let file = scenario.file.as_str();

    // Servers, then nodes: the PC/host nodes with an address.
    let mut servers: Vec<usize> = Vec::new();
    for name in &options.servers {
        let Some(host) = underlay.find_host(name) else {
            return Err(ImportError::BadOption {
                option: "--server",
                value: name.clone(),
                message: format!("{file} has no router-type node of that name or hostname"),
            });
        };
        let h = &underlay.hosts[host];
        if !h.end_system {
            return Err(ImportError::BadOption {
                option: "--server",
                value: name.clone(),
                message: "is a router; servers run on PC or host nodes".to_owned(),
            });
        }
        if h.addrs.is_empty() {
            return Err(ImportError::BadOption {
                option: "--server",
                value: name.clone(),
                message: "has no linked interface with an IPv4 address".to_owned(),
            });
        }
        if !servers.contains(&host) {
            servers.push(host);
        }
    }
    let runs = |host: &UHost| host.end_system && !host.addrs.is_empty();
    if servers.is_empty() {
        servers = (0..underlay.hosts.len())
            .filter(|&i| underlay.hosts[i].model_host && runs(&underlay.hosts[i]))
            .collect();
    }
    if servers.is_empty() {
        let first_pc = (0..underlay.hosts.len())
            .filter(|&i| runs(&underlay.hosts[i]))
            .min_by_key(|&i| natural_key(&underlay.names[underlay.hosts[i].core].0));
        servers.extend(first_pc);
    }
    if servers.is_empty() {
        return Err(ImportError::Invalid(vec![Problem::new(
            file,
            1,
            "no PC or host node with a linked IPv4 interface: nothing can run a meshcast server",
        )]));
    }
    let overlay: Vec<usize> = servers
        .iter()
        .copied()
        .chain(
            (0..underlay.hosts.len()).filter(|i| !servers.contains(i) && runs(&underlay.hosts[*i])),
        )
        .collect();
    for host in &underlay.hosts {
        if host.end_system && host.addrs.is_empty() {
            let node = &scenario.nodes[host.core];
            notes.push(format!(
                "{file}:{}: node {} has no linked IPv4 interface: it runs no meshcast process",
                node.line, node.name
            ));
        }
    }

    // Overlay links: a shortest path crossing only routers (and hubs).
    let is_overlay = |host: usize| overlay.contains(&host);
    let all_paths: Vec<Vec<Option<(usize, Impairment)>>> = overlay
        .iter()
        .map(|&host| underlay.paths(host, |_| true))
        .collect();
    let mut links = Vec::new();
    for (i, &a) in overlay.iter().enumerate() {
        let through_routers = underlay.paths(a, |h| !is_overlay(h) && underlay.hosts[h].router);
        for &b in &overlay[i + 1..] {
            let (Some((hops, _)), Some((restricted_hops, impairment))) =
                (all_paths[i][b], through_routers[b])
            else {
                continue;
            };
            if restricted_hops == hops {
                links.push(LinkSpec {
                    a: underlay.hosts[a].id.clone(),
                    b: underlay.hosts[b].id.clone(),
                    attrs: impairment.attrs(),
                });
            }
        }
    }

    // Clients.
    let candidates: Vec<Candidate> = overlay
        .iter()
        .map(|&host| Candidate {
            id: underlay.hosts[host].id.clone(),
            server: servers.contains(&host),
        })
        .collect();
    let mut client_at = Vec::new();
    for name in &options.client_at {
        let position = underlay
            .find_host(name)
            .and_then(|host| overlay.iter().position(|&o| o == host));
        match position {
            Some(position) => client_at.push(position),
            None => {
                return Err(ImportError::BadOption {
                    option: "--client-at",
                    value: name.clone(),
                    message: format!(
                        "is no node running a meshcast process (those are: {})",
                        candidates
                            .iter()
                            .map(|c| c.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
    }
    let mut taken: Vec<String> = candidates.iter().map(|c| c.id.clone()).collect();
    let boot_id = unique_id("boot", &mut taken);
    let hops = |x: usize, y: usize| all_paths[x][overlay[y]].map(|(hops, _)| hops);
    let clients = choose_clients(&candidates, &client_at, hops, &mut taken);

    let addr_of = |host: usize| underlay.hosts[host].addrs[0].1;
    let mut nodes = vec![NodeSpec {
        id: boot_id,
        role: Role::Bootstrapper,
        addr: socket(addr_of(servers[0]), BOOTSTRAPPER_PORT),
    }];
    for &host in &overlay {
        nodes.push(NodeSpec {
            id: underlay.hosts[host].id.clone(),
            role: if servers.contains(&host) {
                Role::Server
            } else {
                Role::Node
            },
            addr: socket(addr_of(host), NODE_PORT),
        });
    }
    let (hosts, nets) = underlay.specs();
    let draft = Draft {
        header: vec![
            format!("Imported from {file} by meshcast-lab import."),
            "Hosts are its router-type nodes, nets its links and hubs/switches; PC and host"
                .to_owned(),
            "nodes run meshcast processes (address: first interface, port 7000), and two of"
                .to_owned(),
            "them are overlay neighbours when a shortest path between them crosses only".to_owned(),
            "routers and hubs. Link delay/jitter/loss are summed along that path into the"
                .to_owned(),
            "overlay link (emulated by the processes); bandwidth limits the nets.".to_owned(),
        ],
        name: options.name.clone(),
        nodes,
        links,
        clients,
        hosts,
        nets,
    };
    let (loaded, text) = draft.build(&format!("{file} (imported)"))?;
    notes.extend(loaded.warnings.iter().map(ToString::to_string));
    Ok(Imported {
        topology: loaded.topology,
        text,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ImportOptions {
        ImportOptions {
            name: "t".to_owned(),
            ..ImportOptions::default()
        }
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text, "x.imn") {
            Ok(scenario) => match import(&scenario, &options()) {
                Ok(imported) => panic!("expected problems, got:\n{}", imported.text),
                Err(error) => error.problems().to_vec(),
            },
            Err(error) => error.problems().to_vec(),
        }
    }

    /// Two PCs behind one router, with link impairments, written for these tests.
    const SMALL: &str = "node a {
    type router
    model PC
    network-config {
\thostname alpha
\t!
\tinterface eth0
\t ip address 192.168.1.2/24
\t!
    }
    interface-peer {eth0 r}
}
node r {
    type router
    model router
    network-config {
\thostname r
\tinterface eth1
\t ip address 192.168.2.1/24
\tinterface eth0
\t ip address 192.168.1.1/24
    }
    interface-peer {eth0 a}
    interface-peer {eth1 b}
}
node b {
    type router
    model host
    network-config {
\tinterface eth0
\t ip address 192.168.2.2/24
    }
    interface-peer {eth0 r}
    custom-config {
\tcustom-config-id service:UserDefined:x.sh
\tcustom-command x.sh
\tconfig {
\techo ${HOME} \"{x}\"
\t}
    }
}
link l1 {
    nodes {a r}
    bandwidth 2000000
    delay 1500
    ber 10
}
link l2 {
    nodes {r b}
    bandwidth {5000000 1000000}
    delay 500
    jitter 250
    ber 10
    duplicate 5
}
canvas c1 { name {Canvas1} }
option global {
    ip_addresses yes
}
";

    #[test]
    fn a_small_scenario_is_read_with_interfaces_peers_and_link_values() {
        let scenario = parse(SMALL, "x.imn").unwrap();
        assert_eq!(scenario.nodes.len(), 3);
        let r = &scenario.nodes[1];
        assert_eq!(
            (r.kind.as_str(), r.model.as_deref()),
            ("router", Some("router"))
        );
        assert_eq!(r.ipv4("eth1"), Some(("192.168.2.1".parse().unwrap(), 24)));
        assert_eq!(r.peers[1].peer, "b");
        assert_eq!(scenario.nodes[0].label(), "alpha");
        assert_eq!(scenario.nodes[2].label(), "b");
        let config = &scenario.nodes[2].custom_configs[0];
        assert_eq!(config.id, "service:UserDefined:x.sh");
        assert!(config.config.contains("echo ${HOME} \"{x}\""), "{config:?}");
        let l2 = &scenario.links[1];
        assert_eq!(l2.ends, ("r".to_owned(), "b".to_owned()));
        assert_eq!(l2.bandwidth_bps, Some(1e6), "the lower direction");
        assert!(l2.asymmetric);
        assert_eq!((l2.delay_us, l2.jitter_us), (Some(500.0), Some(250.0)));
        assert_eq!(l2.duplicate_percent, Some(5.0));
    }

    #[test]
    fn link_impairments_are_carried_to_the_overlay_link_along_the_path() {
        let imported = import(&parse(SMALL, "x.imn").unwrap(), &options()).unwrap();
        let topology = &imported.topology;
        let ids: Vec<&str> = topology.nodes().iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["boot", "b", "alpha"], "the host-model node serves");
        assert_eq!(topology.links().len(), 1);
        let attrs = topology.links()[0].attrs;
        assert_eq!(attrs.latency_ms, Some(2.0), "1500 + 500 µs");
        assert_eq!(attrs.jitter_ms, Some(0.25));
        assert_eq!(attrs.loss, Some(0.19), "1 - 0.9 * 0.9");
        let rates: Vec<Option<f64>> = topology.nets().iter().map(|n| n.rate_mbit).collect();
        assert_eq!(rates, [Some(2.0), Some(1.0)]);
        assert!(topology.host("r").unwrap().router);
        assert!(!topology.host("alpha").unwrap().router);
        assert_eq!(topology.bootstrapper().addr.to_string(), "192.168.2.2:7100");
        assert_eq!(topology.clients()[0].pops, ["alpha"]);
        assert!(
            imported
                .notes
                .iter()
                .any(|n| n.contains("x.imn:48: link l2: duplicate 5%")),
            "{:?}",
            imported.notes
        );
    }

    #[test]
    fn options_pick_servers_and_clients_and_bad_names_are_refused() {
        let scenario = parse(SMALL, "x.imn").unwrap();
        let chosen = ImportOptions {
            servers: vec!["a".to_owned()],
            client_at: vec!["b".to_owned()],
            ..options()
        };
        let topology = import(&scenario, &chosen).unwrap().topology;
        assert_eq!(
            topology.servers().next().unwrap().id,
            "alpha",
            "by CORE name"
        );
        assert_eq!(topology.clients()[0].pops, ["b", "alpha"]);
        for (servers, client_at, needle) in [
            (vec!["r"], vec![], "is a router"),
            (vec!["zz"], vec![], "no router-type node"),
            (vec![], vec!["r"], "is no node running a meshcast process"),
        ] {
            let bad = ImportOptions {
                servers: servers.into_iter().map(str::to_owned).collect(),
                client_at: client_at.into_iter().map(str::to_owned).collect(),
                ..options()
            };
            let error = import(&scenario, &bad).unwrap_err();
            assert!(matches!(error, ImportError::BadOption { .. }), "{error}");
            assert!(error.to_string().contains(needle), "{error}");
        }
    }

    #[test]
    fn structural_errors_name_the_line() {
        let cases = [
            ("node a {\n  type router\n", 1, "never closed"),
            ("node a {\n}\n}\n", 3, "closes no open"),
            (
                "node a {\n}\nstray words here\n",
                3,
                "unexpected `stray words here`",
            ),
            ("node a\n", 1, "expected `node NAME {"),
            ("node a {\n  model PC\n}\n", 1, "has no `type`"),
            (
                "node a {\n type router\n}\nnode a {\n type hub\n}\n",
                4,
                "defined twice",
            ),
            (
                "node a {\n type router\n network-config {\n  interface eth0\n  ip address 10.0.0.300/24\n }\n}\n",
                5,
                "invalid IPv4 address",
            ),
            ("link l1 {\n nodes {a}\n}\n", 2, "two node names"),
            (
                "link l1 {\n nodes {a b}\n delay soon\n}\n",
                3,
                "is not a number",
            ),
            ("link l1 {\n bandwidth 5\n}\n", 1, "has no `nodes"),
        ];
        for (text, line, needle) in cases {
            let found = problems(text);
            assert!(
                found
                    .iter()
                    .any(|p| p.line == line && p.message.contains(needle)),
                "{text:?}: expected line {line} {needle:?}, got {found:?}"
            );
            assert!(found.iter().all(|p| p.file == "x.imn"));
        }
    }

    #[test]
    fn scenarios_meshcast_cannot_run_are_refused_with_lines() {
        let cases = [
            (
                "node w {\n type wlan\n}\n",
                1,
                "type \"wlan\" is not supported",
            ),
            (
                &SMALL.replace("interface-peer {eth0 r}\n}\nnode r", "\n}\nnode r"),
                42,
                "no interface-peer towards r",
            ),
            (
                &SMALL.replace("\t ip address 192.168.2.2/24\n", ""),
                30,
                "has no IPv4 address",
            ),
            (
                &SMALL.replace("192.168.2.2/24", "192.168.3.2/24"),
                48,
                "are not on one subnet",
            ),
            (
                &SMALL.replace("nodes {r b}", "nodes {r q}"),
                48,
                "unknown node \"q\"",
            ),
        ];
        for (text, line, needle) in cases {
            let found = problems(text);
            assert!(
                found
                    .iter()
                    .any(|p| p.line == line && p.message.contains(needle)),
                "expected line {line} {needle:?}, got {found:?}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let deep = "{".repeat(10_000);
        let closing = "}".repeat(10_000);
        let mixed = format!("node a {deep}{closing}");
        let inputs = [
            "",
            "\u{feff}",
            "\0\0{",
            "}}}}",
            "node",
            "node {} {} {}",
            "link l {nodes {a b c}}",
            "node a {\n type router\n interface-peer {eth0}\n network-config {x}\n}\n",
            "node a {\n type router\n network-config {\n ip address 1.2.3.4/8\n }\n}",
            "link l1 {\n nodes {a b}\n bandwidth {}\n delay {1 x}\n}",
            "\\",
            "node a\\{ {type router}",
            "node é {\n type router\n model PC\n network-config {\n interface eth0\n ip address 10.0.0.1/24\n }\n}\\é",
            &deep,
            &mixed,
            "node a {\ntype router\nmodel PC\ninterface-peer {eth0 a}\n}\nlink l {\nnodes {a a}\n}\n",
            "node a {\ntype hub\n}\nnode b {\ntype lanswitch\n}\nlink l {\nnodes {a b}\n}\n",
        ];
        for text in inputs {
            match parse(text, "g.imn") {
                Ok(scenario) => {
                    let _ = import(&scenario, &options());
                }
                Err(error) => {
                    assert!(!error.problems().is_empty(), "{text:?}");
                    assert!(error.problems().iter().all(|p| p.line >= 1));
                }
            }
        }
        // Truncating a valid file anywhere gives a result or line-numbered problems.
        for end in (0..SMALL.len()).filter(|&i| SMALL.is_char_boundary(i)) {
            match parse(&SMALL[..end], "cut.imn") {
                Ok(scenario) => {
                    let _ = import(&scenario, &options());
                }
                Err(error) => assert!(!error.problems().is_empty()),
            }
        }
    }
}
