//! Neighbour maps: the predecessor's overlay description, and its import as a meshcast
//! topology.
//!
//! A map is TOML-like text with one entry per interface address, listing the addresses of its
//! overlay neighbours; comment headings group the addresses of one machine and say what it
//! is:
//!
//! ```text
//! # SERVER 1
//! "10.0.6.10" = ["10.0.6.1"]
//! # NODE 1
//! "10.0.8.1" = ["10.0.8.2", "10.0.6.10"]
//! # POP 1
//! "10.0.17.2" = ["10.0.17.1"]
//! ```
//!
//! Without headings every key is a machine of its own, and `--server IP` says which are
//! servers. A neighbour address is resolved to a machine: when it is a key, that key's
//! machine; with a CORE scenario as underlay, the machine on the host owning the address;
//! else the one machine that lists an address of ours from the same /24 (the map names a
//! peer's interface on a shared link, and the peer lists ours). A neighbour on a /24 where no
//! machine of the map has a key is outside the map (a router or client that runs no overlay
//! process): it is left out with a note. Any other unresolvable or ambiguous address is an
//! error naming its line. Links are the symmetric union of the lists.
//!
//! Machines become `s1, s2, …` (servers), `n1, …` (nodes) and `p1, …` (PoPs, which are
//! nodes), listening on their first key at port 7000; the bootstrapper listens on the first
//! server's address at port 7100. A loopback map stays a loopback topology, runnable with a
//! plain `meshcast-lab up`.
//!
//! # Layout
//!
//! - reading: [`parse`] → [`NeighbourMap`] (a small tokenizer keeps comments and lines);
//! - [`import`]: machines, resolution, links, clients, optionally on a CORE underlay.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use meshcast_topology::{LinkSpec, NodeSpec, Role};

use super::imn::{self, Scenario};
use super::{
    BOOTSTRAPPER_PORT, Candidate, Draft, ImportError, ImportOptions, Imported, NODE_PORT, Problem,
    check, choose_clients, hops_from, new_client, socket,
};

// ---------------------------------------------------------------------------------------------
// model

/// What a heading says a machine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// `# SERVER n`.
    Server,
    /// `# NODE n`.
    Node,
    /// `# POP n`: a node clients attach to.
    Pop,
}

impl fmt::Display for GroupKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GroupKind::Server => "SERVER",
            GroupKind::Node => "NODE",
            GroupKind::Pop => "POP",
        })
    }
}

/// A comment heading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapGroup {
    /// What it announces.
    pub kind: GroupKind,
    /// The heading as written, without `#` (`SERVER 1`).
    pub label: String,
    /// Its line.
    pub line: usize,
}

/// One `"IP" = [...]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEntry {
    /// The key.
    pub ip: IpAddr,
    /// Line of the key.
    pub line: usize,
    /// The neighbour addresses with their lines.
    pub neighbours: Vec<(IpAddr, usize)>,
    /// Index in [`NeighbourMap::groups`] of the heading above it.
    pub group: Option<usize>,
}

/// A parsed neighbour map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NeighbourMap {
    /// The file name used in messages.
    pub file: String,
    /// Entries in file order.
    pub entries: Vec<MapEntry>,
    /// Headings in file order.
    pub groups: Vec<MapGroup>,
}

// ---------------------------------------------------------------------------------------------
// reader

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Str(String),
    Bare(String),
    Comment(String),
    Equals,
    Open,
    Close,
    Comma,
    Newline,
}

/// Splits the text into tokens with their lines; an unterminated string is a problem and
/// ends its line.
fn tokens(text: &str, file: &str, problems: &mut Vec<Problem>) -> Vec<(Token, usize)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                out.push((Token::Newline, line));
                line += 1;
            }
            c if c.is_whitespace() || c == '\u{feff}' => {}
            '#' => {
                let mut comment = String::new();
                while let Some(&next) = chars.peek() {
                    if next == '\n' {
                        break;
                    }
                    comment.push(next);
                    chars.next();
                }
                out.push((Token::Comment(comment), line));
            }
            '=' => out.push((Token::Equals, line)),
            '[' => out.push((Token::Open, line)),
            ']' => out.push((Token::Close, line)),
            ',' => out.push((Token::Comma, line)),
            '"' | '\'' => {
                let mut value = String::new();
                let mut closed = false;
                while let Some(&next) = chars.peek() {
                    if next == '\n' {
                        break;
                    }
                    chars.next();
                    if next == c {
                        closed = true;
                        break;
                    }
                    if next == '\\' && c == '"' {
                        if let Some(escaped) = chars.next_if(|e| *e != '\n') {
                            value.push(escaped);
                        }
                        continue;
                    }
                    value.push(next);
                }
                if closed {
                    out.push((Token::Str(value), line));
                } else {
                    problems.push(Problem::new(file, line, "unterminated string"));
                    out.push((Token::Bare(format!("{c}{value}")), line));
                }
            }
            c => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if next.is_whitespace() || "=[],#\"'".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                out.push((Token::Bare(word), line));
            }
        }
    }
    out
}

/// The heading a comment is, if it is one: `SERVER`, `NODE` or `POP`, optionally followed by
/// one word (a number).
fn heading(comment: &str) -> Option<GroupKind> {
    let words: Vec<&str> = comment.split_whitespace().collect();
    if words.is_empty() || words.len() > 2 {
        return None;
    }
    match words[0].to_ascii_uppercase().as_str() {
        "SERVER" => Some(GroupKind::Server),
        "NODE" => Some(GroupKind::Node),
        "POP" => Some(GroupKind::Pop),
        _ => None,
    }
}

/// Reads a neighbour map; `file` names it in messages. Every problem found is returned.
pub fn parse(text: &str, file: &str) -> Result<NeighbourMap, ImportError> {
    let mut problems = Vec::new();
    let tokens = tokens(text, file, &mut problems);
    let mut map = NeighbourMap {
        file: file.to_owned(),
        ..NeighbourMap::default()
    };
    let mut first_key_line: BTreeMap<IpAddr, usize> = BTreeMap::new();
    let mut i = 0;
    // Skips to the next line after a problem.
    let skip_line = |i: &mut usize| {
        while *i < tokens.len() && tokens[*i].0 != Token::Newline {
            *i += 1;
        }
    };
    while i < tokens.len() {
        let (token, line) = (&tokens[i].0, tokens[i].1);
        match token {
            Token::Newline => i += 1,
            Token::Comment(comment) => {
                if let Some(kind) = heading(comment) {
                    map.groups.push(MapGroup {
                        kind,
                        label: comment.trim().to_owned(),
                        line,
                    });
                }
                i += 1;
            }
            Token::Str(key) => {
                i += 1;
                let ip = match key.parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        problems.push(Problem::new(
                            file,
                            line,
                            format!("key {key:?} is not an IP address"),
                        ));
                        None
                    }
                };
                match entry_list(&tokens, &mut i, file, &mut problems) {
                    Some(neighbours) => {
                        let Some(ip) = ip else {
                            continue;
                        };
                        if let Some(first) = first_key_line.get(&ip) {
                            problems.push(Problem::new(
                                file,
                                line,
                                format!("key {ip} appears twice (first at line {first})"),
                            ));
                            continue;
                        }
                        first_key_line.insert(ip, line);
                        map.entries.push(MapEntry {
                            ip,
                            line,
                            neighbours,
                            group: map.groups.len().checked_sub(1),
                        });
                    }
                    None => skip_line(&mut i),
                }
            }
            Token::Bare(word) => {
                problems.push(Problem::new(
                    file,
                    line,
                    format!(
                        "unexpected {word:?}: expected an entry such as \"10.0.0.1\" = [\"10.0.0.2\"] (keys are quoted IP addresses)"
                    ),
                ));
                skip_line(&mut i);
            }
            _ => {
                problems.push(Problem::new(
                    file,
                    line,
                    "expected an entry such as \"10.0.0.1\" = [\"10.0.0.2\"]",
                ));
                skip_line(&mut i);
            }
        }
    }
    check(problems)?;
    Ok(map)
}

/// `= [ "IP", … ]` after a key, possibly over several lines, then the end of the line.
fn entry_list(
    tokens: &[(Token, usize)],
    i: &mut usize,
    file: &str,
    problems: &mut Vec<Problem>,
) -> Option<Vec<(IpAddr, usize)>> {
    let line_at = |i: usize| tokens.get(i).or(tokens.last()).map_or(1, |t| t.1);
    let fail = |problems: &mut Vec<Problem>, i: usize, message: &str| {
        problems.push(Problem::new(file, line_at(i), message));
        None
    };
    if tokens.get(*i).map(|t| &t.0) != Some(&Token::Equals) {
        return fail(problems, *i, "expected `=` after the key");
    }
    *i += 1;
    if tokens.get(*i).map(|t| &t.0) != Some(&Token::Open) {
        return fail(
            problems,
            *i,
            "expected a list of quoted IP addresses such as [\"10.0.0.2\"]",
        );
    }
    let opened = *i;
    *i += 1;
    let mut neighbours = Vec::new();
    let skip_blank = |i: &mut usize| {
        while matches!(
            tokens.get(*i).map(|t| &t.0),
            Some(Token::Newline | Token::Comment(_))
        ) {
            *i += 1;
        }
    };
    loop {
        skip_blank(i);
        match tokens.get(*i).map(|t| &t.0) {
            Some(Token::Close) => {
                *i += 1;
                break;
            }
            Some(Token::Str(value)) => {
                let line = line_at(*i);
                match value.parse::<IpAddr>() {
                    Ok(ip) => neighbours.push((ip, line)),
                    Err(_) => {
                        problems.push(Problem::new(
                            file,
                            line,
                            format!("neighbour {value:?} is not an IP address"),
                        ));
                    }
                }
                *i += 1;
                skip_blank(i);
                match tokens.get(*i).map(|t| &t.0) {
                    Some(Token::Comma) => *i += 1,
                    Some(Token::Close) => {}
                    _ => return fail(problems, *i, "expected `,` or `]` in the neighbour list"),
                }
            }
            None => {
                return fail(
                    problems,
                    opened,
                    "the neighbour list opened here is never closed with `]`",
                );
            }
            Some(_) => return fail(problems, *i, "expected a quoted IP address or `]`"),
        }
    }
    match tokens.get(*i).map(|t| &t.0) {
        None | Some(Token::Newline | Token::Comment(_)) => Some(neighbours),
        Some(_) => fail(problems, *i, "unexpected text after the neighbour list"),
    }
}

// ---------------------------------------------------------------------------------------------
// import

/// A machine of the map: one overlay process.
#[derive(Clone, Debug)]
struct Machine {
    kind: GroupKind,
    /// `SERVER 1`, or the key for maps without headings.
    label: String,
    line: usize,
    /// Indices of its entries; the first gives its address.
    entries: Vec<usize>,
    id: String,
}

/// Imports a neighbour map, alone or (with `scenario`) as the overlay on a CORE scenario's
/// underlay; see the module documentation.
pub fn import(
    map: &NeighbourMap,
    scenario: Option<&Scenario>,
    options: &ImportOptions,
) -> Result<Imported, ImportError> {
    let file = map.file.as_str();
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    let underlay = match scenario {
        Some(scenario) => Some(imn::underlay(scenario, &mut notes)?),
        None => None,
    };
    if map.entries.is_empty() {
        return Err(ImportError::Invalid(vec![Problem::new(
            file,
            1,
            "the map has no entries such as \"10.0.0.1\" = [\"10.0.0.2\"]",
        )]));
    }

    // Machines.
    let mut machines: Vec<Machine> = Vec::new();
    if map.groups.is_empty() {
        if options.servers.is_empty() {
            return Err(ImportError::Invalid(vec![Problem::new(
                file,
                1,
                "the map has no `# SERVER n` headings: name its servers with --server IP",
            )]));
        }
        for (index, entry) in map.entries.iter().enumerate() {
            machines.push(Machine {
                kind: GroupKind::Node,
                label: entry.ip.to_string(),
                line: entry.line,
                entries: vec![index],
                id: String::new(),
            });
        }
        for name in &options.servers {
            let position = name
                .parse::<IpAddr>()
                .ok()
                .and_then(|ip| map.entries.iter().position(|e| e.ip == ip));
            match position {
                Some(position) => machines[position].kind = GroupKind::Server,
                None => {
                    return Err(ImportError::BadOption {
                        option: "--server",
                        value: name.clone(),
                        message: format!("is no key of {file}"),
                    });
                }
            }
        }
    } else {
        if let Some(name) = options.servers.first() {
            return Err(ImportError::BadOption {
                option: "--server",
                value: name.clone(),
                message: format!(
                    "{file} says which machines are servers with `# SERVER n` headings; --server is for maps without headings"
                ),
            });
        }
        for (index, group) in map.groups.iter().enumerate() {
            let entries: Vec<usize> = (0..map.entries.len())
                .filter(|&e| map.entries[e].group == Some(index))
                .collect();
            if entries.is_empty() {
                notes.push(format!(
                    "{file}:{}: heading {} has no entries",
                    group.line, group.label
                ));
                continue;
            }
            machines.push(Machine {
                kind: group.kind,
                label: group.label.clone(),
                line: group.line,
                entries,
                id: String::new(),
            });
        }
        for entry in map.entries.iter().filter(|e| e.group.is_none()) {
            problems.push(Problem::new(
                file,
                entry.line,
                format!(
                    "key {} comes before the first heading (# SERVER n, # NODE n or # POP n)",
                    entry.ip
                ),
            ));
        }
    }
    check(std::mem::take(&mut problems))?;
    let mut counters = [0usize; 3];
    for machine in &mut machines {
        let (slot, prefix) = match machine.kind {
            GroupKind::Server => (0, "s"),
            GroupKind::Node => (1, "n"),
            GroupKind::Pop => (2, "p"),
        };
        counters[slot] += 1;
        machine.id = format!("{prefix}{}", counters[slot]);
    }
    if !machines.iter().any(|m| m.kind == GroupKind::Server) {
        return Err(ImportError::Invalid(vec![Problem::new(
            file,
            1,
            "the map has no `# SERVER n` heading with entries: nothing would stream",
        )]));
    }

    let keys_of = |m: usize| -> Vec<IpAddr> {
        machines[m]
            .entries
            .iter()
            .map(|&e| map.entries[e].ip)
            .collect()
    };
    let key_owner: BTreeMap<IpAddr, usize> = (0..machines.len())
        .flat_map(|m| keys_of(m).into_iter().map(move |ip| (ip, m)))
        .collect();

    // With an underlay: the host of every machine.
    let mut host_of_machine: Vec<Option<usize>> = vec![None; machines.len()];
    if let Some(underlay) = &underlay {
        let origin = scenario.map_or("", |s| s.file.as_str());
        for (m, machine) in machines.iter().enumerate() {
            for &e in &machine.entries {
                let entry = &map.entries[e];
                let host = match entry.ip {
                    IpAddr::V4(v4) => underlay.host_of_addr(v4),
                    IpAddr::V6(_) => None,
                };
                match (host, host_of_machine[m]) {
                    (None, _) => problems.push(Problem::new(
                        file,
                        entry.line,
                        format!(
                            "{} ({}) is no IPv4 interface address of {origin}",
                            entry.ip, machine.label
                        ),
                    )),
                    (Some(host), None) => host_of_machine[m] = Some(host),
                    (Some(host), Some(first)) if host != first => problems.push(Problem::new(
                        file,
                        entry.line,
                        format!(
                            "{} is on host {} but the first key of {} is on host {}",
                            entry.ip,
                            underlay.hosts[host].id,
                            machine.label,
                            underlay.hosts[first].id
                        ),
                    )),
                    _ => {}
                }
            }
        }
        check(std::mem::take(&mut problems))?;
    }

    // Resolution and links.
    let lists = |m: usize, ip: IpAddr| {
        machines[m]
            .entries
            .iter()
            .any(|&e| map.entries[e].neighbours.iter().any(|(n, _)| *n == ip))
    };
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (a, machine) in machines.iter().enumerate() {
        for &e in &machine.entries {
            for &(ip, line) in &map.entries[e].neighbours {
                let resolved = resolve(
                    ip,
                    a,
                    &key_owner,
                    &machines,
                    &host_of_machine,
                    underlay.as_ref(),
                    &keys_of,
                    &lists,
                );
                match resolved {
                    Resolution::Machine(b) if b == a => notes.push(format!(
                        "{file}:{line}: {} lists its own address {ip}: ignored",
                        machine.label
                    )),
                    Resolution::Machine(b) => {
                        let pair = (a.min(b), a.max(b));
                        if !pairs.contains(&pair) {
                            pairs.push(if a < b { (a, b) } else { (b, a) });
                        }
                    }
                    Resolution::Outside(why) => notes.push(format!(
                        "{file}:{line}: neighbour {ip} of {} {why}: left out",
                        machine.label
                    )),
                    Resolution::Ambiguous(candidates) => problems.push(Problem::new(
                        file,
                        line,
                        format!(
                            "cannot tell which machine neighbour {ip} of {} is: {} all list an address of it on that /24",
                            machine.label,
                            candidates.iter().map(|&c| machines[c].label.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    )),
                    Resolution::Unknown => problems.push(Problem::new(
                        file,
                        line,
                        format!(
                            "cannot tell which machine neighbour {ip} of {} is: it is no key, and no machine lists an address of {} from its /24",
                            machine.label, machine.label
                        ),
                    )),
                }
            }
        }
    }
    check(problems)?;

    // Overlay.
    let address = |m: usize| map.entries[machines[m].entries[0]].ip;
    let first_server = machines
        .iter()
        .position(|m| m.kind == GroupKind::Server)
        .unwrap_or(0);
    let mut nodes = vec![NodeSpec {
        id: "boot".to_owned(),
        role: Role::Bootstrapper,
        addr: socket(address(first_server), BOOTSTRAPPER_PORT),
    }];
    for (m, machine) in machines.iter().enumerate() {
        nodes.push(NodeSpec {
            id: machine.id.clone(),
            role: if machine.kind == GroupKind::Server {
                Role::Server
            } else {
                Role::Node
            },
            addr: socket(address(m), NODE_PORT),
        });
    }
    let links: Vec<LinkSpec> = pairs
        .iter()
        .map(|&(a, b)| {
            let attrs = match (&underlay, host_of_machine[a], host_of_machine[b]) {
                (Some(underlay), Some(ha), Some(hb)) if ha != hb => underlay.paths(ha, |_| true)
                    [hb]
                    .map(|(_, impairment)| impairment.attrs())
                    .unwrap_or_default(),
                _ => Default::default(),
            };
            LinkSpec {
                a: machines[a].id.clone(),
                b: machines[b].id.clone(),
                attrs,
            }
        })
        .collect();

    // Clients.
    let mut adjacency = vec![Vec::new(); machines.len()];
    for &(a, b) in &pairs {
        adjacency[a].push(b);
        adjacency[b].push(a);
    }
    let hops: Vec<Vec<Option<usize>>> = (0..machines.len())
        .map(|m| hops_from(&adjacency, m))
        .collect();
    let candidates: Vec<Candidate> = machines
        .iter()
        .map(|m| Candidate {
            id: m.id.clone(),
            server: m.kind == GroupKind::Server,
        })
        .collect();
    let mut client_at = Vec::new();
    for name in &options.client_at {
        let ip = name.parse::<IpAddr>().ok();
        let position = machines
            .iter()
            .position(|m| &m.id == name || m.label == *name)
            .or_else(|| ip.and_then(|ip| key_owner.get(&ip).copied()));
        match position {
            Some(position) => client_at.push(position),
            None => {
                return Err(ImportError::BadOption {
                    option: "--client-at",
                    value: name.clone(),
                    message: format!(
                        "is no machine of {file} (give an id such as {} or one of its keys)",
                        machines[0].id
                    ),
                });
            }
        }
    }
    let mut taken: Vec<String> = machines
        .iter()
        .map(|m| m.id.clone())
        .chain(["boot".to_owned()])
        .collect();
    let pops: Vec<String> = machines
        .iter()
        .filter(|m| m.kind == GroupKind::Pop)
        .map(|m| m.id.clone())
        .collect();
    let clients = if client_at.is_empty() && !pops.is_empty() {
        // The map names its PoPs: one client that may use any of them.
        vec![new_client(pops, &mut taken)]
    } else {
        choose_clients(&candidates, &client_at, |x, y| hops[x][y], &mut taken)
    };

    let (hosts, nets) = underlay
        .as_ref()
        .map(imn::Underlay::specs)
        .unwrap_or_default();
    let mut header = vec![
        format!("Imported from {file} by meshcast-lab import: one process per machine of the map"),
        "(grouped by its # SERVER/# NODE/# POP headings), listening on its first address;"
            .to_owned(),
        "overlay links are the symmetric union of the neighbour lists.".to_owned(),
    ];
    if let Some(scenario) = scenario {
        header.push(format!(
            "The underlay (hosts and nets) is {}; link delay/jitter/loss along the path between",
            scenario.file
        ));
        header.push("two machines are carried to their overlay link.".to_owned());
    }
    header.extend(machines.iter().enumerate().map(|(index, m)| {
        let keys: Vec<String> = keys_of(index).iter().map(ToString::to_string).collect();
        format!(
            "  {:<4} = {} ({}, line {})",
            m.id,
            m.label,
            keys.join(", "),
            m.line
        )
    }));
    let draft = Draft {
        header,
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

/// What a neighbour address turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Resolution {
    Machine(usize),
    /// Not a machine of the map; why.
    Outside(String),
    Ambiguous(Vec<usize>),
    Unknown,
}

/// Same /24.
fn same_24(a: Ipv4Addr, b: Ipv4Addr) -> bool {
    a.octets()[..3] == b.octets()[..3]
}

#[allow(clippy::too_many_arguments)]
fn resolve(
    ip: IpAddr,
    from: usize,
    key_owner: &BTreeMap<IpAddr, usize>,
    machines: &[Machine],
    host_of_machine: &[Option<usize>],
    underlay: Option<&imn::Underlay>,
    keys_of: &dyn Fn(usize) -> Vec<IpAddr>,
    lists: &dyn Fn(usize, IpAddr) -> bool,
) -> Resolution {
    if let Some(&owner) = key_owner.get(&ip) {
        return Resolution::Machine(owner);
    }
    let IpAddr::V4(v4) = ip else {
        return Resolution::Unknown;
    };
    if let Some(underlay) = underlay
        && let Some(host) = underlay.host_of_addr(v4)
    {
        let on_host: Vec<usize> = (0..machines.len())
            .filter(|&m| host_of_machine[m] == Some(host))
            .collect();
        match on_host.as_slice() {
            [only] => return Resolution::Machine(*only),
            [] => {
                return Resolution::Outside(format!(
                    "is host {} of the underlay, which runs no overlay process",
                    underlay.hosts[host].id
                ));
            }
            _ => return Resolution::Ambiguous(on_host),
        }
    }
    let ours: Vec<Ipv4Addr> = keys_of(from)
        .into_iter()
        .filter_map(|key| match key {
            IpAddr::V4(key) if same_24(key, v4) => Some(key),
            _ => None,
        })
        .collect();
    let candidates: BTreeSet<usize> = (0..machines.len())
        .filter(|&m| m != from)
        .filter(|&m| ours.iter().any(|&key| lists(m, IpAddr::V4(key))))
        .collect();
    match candidates.len() {
        1 => Resolution::Machine(candidates.into_iter().next().unwrap_or(from)),
        0 if !key_owner
            .keys()
            .any(|key| matches!(key, IpAddr::V4(key) if same_24(*key, v4))) =>
        {
            Resolution::Outside("names no machine of the map (no key shares its /24)".to_owned())
        }
        0 => Resolution::Unknown,
        _ => Resolution::Ambiguous(candidates.into_iter().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(servers: &[&str]) -> ImportOptions {
        ImportOptions {
            name: "m".to_owned(),
            servers: servers.iter().map(|s| (*s).to_owned()).collect(),
            client_at: Vec::new(),
        }
    }

    fn links(imported: &Imported) -> Vec<(String, String)> {
        imported
            .topology
            .links()
            .iter()
            .map(|l| (l.a.clone(), l.b.clone()))
            .collect()
    }

    #[test]
    fn a_map_is_read_with_headings_multiline_lists_and_comments() {
        let text = "# a map written for this test\n# SERVER 1\n\"10.1.1.1\" = [\"10.1.1.2\"] # trailing\n# NODE 7\n'10.1.1.2' = [\n  \"10.1.1.1\", # first\n  \"10.1.2.1\",\n]\n";
        let map = parse(text, "m.toml").unwrap();
        assert_eq!(map.groups.len(), 2);
        assert_eq!(map.groups[1].kind, GroupKind::Node);
        assert_eq!(map.groups[1].label, "NODE 7");
        assert_eq!(map.entries[1].line, 5);
        assert_eq!(map.entries[1].group, Some(1));
        let neighbours: Vec<(String, usize)> = map.entries[1]
            .neighbours
            .iter()
            .map(|(ip, line)| (ip.to_string(), *line))
            .collect();
        assert_eq!(
            neighbours,
            [("10.1.1.1".to_owned(), 6), ("10.1.2.1".to_owned(), 7)]
        );
    }

    #[test]
    fn malformed_maps_are_problems_with_lines() {
        let cases = [
            ("\"1.2.3.4\" = [\"5.6.7.8\"\n", 1, "expected `,` or `]`"),
            (
                "\"1.2.3.4\" = [\n\"5.6.7.8\",\n",
                1,
                "opened here is never closed",
            ),
            ("\"1.2.3.4\" [\"5.6.7.8\"]\n", 1, "expected `=`"),
            ("1.2.3.4 = []\n", 1, "keys are quoted IP addresses"),
            ("\"x\" = []\n", 1, "is not an IP address"),
            (
                "\"1.2.3.4\" = [\"y\"]\n",
                1,
                "neighbour \"y\" is not an IP address",
            ),
            (
                "\"1.2.3.4\" = []\n\"1.2.3.4\" = []\n",
                2,
                "appears twice (first at line 1)",
            ),
            ("\n\"1.2.3.4\" = [\"5.6.7.8\"] x\n", 2, "unexpected text"),
            ("\"1.2.3.4 = []\n", 1, "unterminated string"),
            ("= []\n", 1, "expected an entry"),
        ];
        for (text, line, needle) in cases {
            let error = parse(text, "m.toml").unwrap_err();
            assert!(
                error
                    .problems()
                    .iter()
                    .any(|p| p.line == line && p.message.contains(needle)),
                "{text:?}: expected line {line} {needle:?}, got {error}"
            );
        }
    }

    #[test]
    fn a_map_without_headings_needs_servers_named_on_the_command_line() {
        let map = parse(
            "\"127.0.0.1\" = [\"127.0.0.2\"]\n\"127.0.0.2\" = [\"127.0.0.1\"]\n",
            "m.toml",
        )
        .unwrap();
        let error = import(&map, None, &options(&[])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("m.toml:1: the map has no `# SERVER n` headings"),
            "{error}"
        );
        let error = import(&map, None, &options(&["127.0.0.9"])).unwrap_err();
        assert!(matches!(error, ImportError::BadOption { .. }), "{error}");
        let imported = import(&map, None, &options(&["127.0.0.2"])).unwrap();
        let ids: Vec<(&str, String)> = imported
            .topology
            .nodes()
            .iter()
            .map(|n| (n.id.as_str(), n.addr.to_string()))
            .collect();
        assert_eq!(
            ids,
            [
                ("boot", "127.0.0.2:7100".to_owned()),
                ("n1", "127.0.0.1:7000".to_owned()),
                ("s1", "127.0.0.2:7000".to_owned()),
            ]
        );
        assert_eq!(links(&imported), [("n1".to_owned(), "s1".to_owned())]);
    }

    #[test]
    fn peer_interfaces_resolve_through_the_shared_slash_24() {
        // s1 names n1's interface 10.9.1.1, which n1 does not list as a key; n1 lists s1.
        let text = "# SERVER 1\n\"10.9.1.10\" = [\"10.9.1.1\"]\n# NODE 1\n\"10.9.2.1\" = [\"10.9.1.10\", \"10.9.7.7\"]\n# POP 1\n\"10.9.3.2\" = [\"10.9.2.1\"]\n";
        let imported = import(&parse(text, "m.toml").unwrap(), None, &options(&[])).unwrap();
        assert_eq!(
            links(&imported),
            [
                ("s1".to_owned(), "n1".to_owned()),
                ("n1".to_owned(), "p1".to_owned())
            ]
        );
        assert!(
            imported
                .notes
                .iter()
                .any(|n| n.starts_with("m.toml:4: neighbour 10.9.7.7 of NODE 1 names no machine")),
            "{:?}",
            imported.notes
        );
        assert_eq!(imported.topology.clients()[0].pops, ["p1"]);
    }

    #[test]
    fn unresolvable_and_ambiguous_neighbours_are_errors_with_lines() {
        // 10.9.1.1 is on s1's /24, but nobody lists s1: which machine is it?
        let unknown = "# SERVER 1\n\"10.9.1.10\" = [\"10.9.1.1\"]\n# NODE 1\n\"10.9.2.1\" = []\n";
        let error = import(&parse(unknown, "m.toml").unwrap(), None, &options(&[])).unwrap_err();
        assert!(
            error.to_string().starts_with(
                "m.toml:2: cannot tell which machine neighbour 10.9.1.1 of SERVER 1 is"
            ),
            "{error}"
        );
        // Two machines list s1's address.
        let ambiguous = "# SERVER 1\n\"10.9.1.10\" = [\"10.9.1.1\"]\n# NODE 1\n\"10.9.2.1\" = [\"10.9.1.10\"]\n# NODE 2\n\"10.9.3.1\" = [\"10.9.1.10\"]\n";
        let error = import(&parse(ambiguous, "m.toml").unwrap(), None, &options(&[])).unwrap_err();
        assert!(
            error.to_string().contains("NODE 1, NODE 2 all list"),
            "{error}"
        );
        let early = "\"10.9.9.9\" = []\n# SERVER 1\n\"10.9.1.10\" = []\n";
        let error = import(&parse(early, "m.toml").unwrap(), None, &options(&[])).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("m.toml:1: key 10.9.9.9 comes before the first heading"),
            "{error}"
        );
    }

    #[test]
    fn garbage_never_panics() {
        let inputs = [
            "",
            "\u{feff}",
            "\"",
            "'",
            "[[[",
            "\"1.1.1.1\" = [[[",
            "\"1.1.1.1\" = [\"1.1.1.1\"]",
            "# SERVER\n\"::1\" = [\"::2\", \"fe80::1\"]\n",
            "# POP\n\"1.1.1.1\" = [\"1.1.1.2\"]\n",
            "# SERVER 1\n# NODE 2\n",
            "\"1.1.1.1\" = [\"2.2.2.2\" \"3.3.3.3\"]\n\"1.1.1.1\" = [",
            "\\\\\\ = = = ]]]",
        ];
        for text in inputs {
            match parse(text, "g.toml") {
                Ok(map) => {
                    for servers in [&[][..], &["1.1.1.1"][..]] {
                        let _ = import(&map, None, &options(servers));
                    }
                }
                Err(error) => assert!(error.problems().iter().all(|p| p.line >= 1)),
            }
        }
    }
}
