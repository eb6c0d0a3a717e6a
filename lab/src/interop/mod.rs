//! Interop with the tools meshcast experiments are also run in: CORE scenarios (`.imn`) and the
//! predecessor's neighbour maps become meshcast topologies, and topologies become CORE
//! scenarios and Mininet scripts.
//!
//! Imports never build a [`Topology`] by hand: they fill a [`Draft`], render it as topology
//! TOML and hand that text to [`Topology::parse`], so an imported topology passes exactly the
//! checks a hand-written file does, and the text written out is the text that was checked.
//!
//! # Layout
//!
//! - `mod.rs`: the command-line layer ([`ImportArgs`], [`ExportArgs`], [`import()`],
//!   [`export()`]), [`Draft`], the errors ([`ImportError`], [`Problem`]), and helpers shared
//!   by the importers (breadth-first hops, default clients, id sanitising).
//! - [`imn`]: the `.imn` reader ([`imn::parse`]) and the import of a CORE scenario
//!   ([`imn::import`]): hosts, nets, overlay placement, overlay links through routers.
//! - [`neighbours`]: the neighbour-map reader ([`neighbours::parse`]) and its import, alone or
//!   on the underlay of a CORE scenario ([`neighbours::import`]).
//! - [`export`](mod@export): [`export::to_core`], [`export::to_mininet`], the underlay
//!   synthesized for overlay-only topologies ([`export::with_underlay`]) and the static routes
//!   of an underlay ([`export::static_routes`]).

pub mod export;
pub mod imn;
pub mod neighbours;

use std::fmt;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use meshcast_topology::{
    ClientSpec, HostSpec, LinkSpec, Loaded, NetSpec, NodeSpec, Role, Topology, TopologyError,
};

/// Port of every imported server and node.
pub const NODE_PORT: u16 = 7000;
/// Port of the imported bootstrapper (on the first server's address).
pub const BOOTSTRAPPER_PORT: u16 = 7100;
/// Channel imported clients watch: what a server with no videos streams.
pub const DEFAULT_WATCH: &str = "test-pattern";

// ---------------------------------------------------------------------------------------------
// command line

/// `meshcast-lab import`: a CORE scenario or a neighbour map to a meshcast topology.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// CORE scenario (.imn) or neighbour map (.toml) to import; the kind is told by the
    /// extension, else by the content
    pub input: PathBuf,
    /// Read INPUT as a neighbour map ("IP" = ["neighbour IP", ...]). With a value (written
    /// after INPUT), INPUT is a CORE scenario giving the underlay and MAP the overlay
    #[arg(long, value_name = "MAP", num_args = 0..=1)]
    pub neighbours: Option<Option<PathBuf>>,
    /// Run a server at NAME: a CORE node (name or hostname), or in a neighbour map without
    /// `# SERVER n` headings one of its IPs; repeatable [default: CORE nodes of model host,
    /// else the first PC]
    #[arg(long = "server", value_name = "NAME")]
    pub servers: Vec<String>,
    /// Add a client at overlay node NAME, with the nearest other overlay node as its
    /// fallback PoP; repeatable [default: one client at the node farthest from the first
    /// server]
    #[arg(long = "client-at", value_name = "NAME")]
    pub client_at: Vec<String>,
    /// Topology name [default: the stem of INPUT]
    #[arg(long)]
    pub name: Option<String>,
    /// Write the topology here [default: standard output]
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `meshcast-lab export`: a topology to a CORE scenario or a Mininet script.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("format").required(true).args(["core", "mininet"])))]
pub struct ExportArgs {
    /// Write a CORE scenario (.imn); the topology copy its nodes run is written next to it
    /// (same name, .toml)
    #[arg(long)]
    pub core: bool,
    /// Write a Mininet script (Python 3, run as root)
    #[arg(long)]
    pub mininet: bool,
    /// Topology file to export, such as topologies/demo.toml
    pub topology: PathBuf,
    /// Output file (X.imn or X.py)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// Runs `meshcast-lab import`: writes the topology to `--output` or standard output and a
/// one-paragraph summary to standard error. Bad input (or options that do not fit it) is
/// reported with file and line and gives exit code 2; an unwritable output is an `Err`.
pub fn import(args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let imported = match run_import(args) {
        Ok(imported) => imported,
        Err(ImportError::Io { path, source }) => {
            return Err(source).with_context(|| format!("cannot read {}", path.display()));
        }
        Err(error @ ImportError::Generated(_)) => return Err(error.into()),
        Err(error) => {
            eprintln!("meshcast-lab import: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, &imported.text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{}", imported.text),
    }
    for note in &imported.notes {
        eprintln!("warning: {note}");
    }
    eprintln!("{}", summary(&args.input, &imported.topology));
    Ok(ExitCode::SUCCESS)
}

fn run_import(args: &ImportArgs) -> Result<Imported, ImportError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| ImportError::Io {
            path: path.to_owned(),
            source,
        })
    };
    let origin = args.input.display().to_string();
    let text = read(&args.input)?;
    let name = args.name.clone().unwrap_or_else(|| file_stem(&args.input));
    let options = ImportOptions {
        name,
        servers: args.servers.clone(),
        client_at: args.client_at.clone(),
    };
    match &args.neighbours {
        Some(Some(map_path)) => {
            let scenario = imn::parse(&text, &origin)?;
            let map_origin = map_path.display().to_string();
            let map = neighbours::parse(&read(map_path)?, &map_origin)?;
            neighbours::import(&map, Some(&scenario), &options)
        }
        Some(None) => neighbours::import(&neighbours::parse(&text, &origin)?, None, &options),
        None if detect(&args.input, &text) == InputKind::Imn => {
            imn::import(&imn::parse(&text, &origin)?, &options)
        }
        None => neighbours::import(&neighbours::parse(&text, &origin)?, None, &options),
    }
}

/// What an input file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A CORE scenario.
    Imn,
    /// A neighbour map.
    NeighbourMap,
}

/// Tells a CORE scenario from a neighbour map: by extension (`.imn`, `.toml`), else by the
/// first line that is neither blank nor a comment (`node …`/`link …` or a quoted key).
pub fn detect(path: &Path, text: &str) -> InputKind {
    match path.extension().and_then(|ext| ext.to_str()) {
        Some("imn") => return InputKind::Imn,
        Some("toml") => return InputKind::NeighbourMap,
        _ => {}
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .unwrap_or("");
    if first.starts_with('"') || first.starts_with('\'') {
        InputKind::NeighbourMap
    } else {
        InputKind::Imn
    }
}

/// Runs `meshcast-lab export`: writes the CORE scenario and its topology copy, or the Mininet
/// script, and a summary to standard error. An invalid topology gives exit code 2.
pub fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let loaded = match Topology::load(&args.topology) {
        Ok(loaded) => loaded,
        Err(TopologyError::Io { path, source }) => {
            return Err(source).with_context(|| format!("cannot read {}", path.display()));
        }
        Err(error) => {
            eprintln!("meshcast-lab export: invalid topology, nothing written:\n{error}");
            return Ok(ExitCode::from(2));
        }
    };
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    let topology = loaded.topology;
    if args.core {
        let copy_path = args.output.with_extension("toml");
        if copy_path == args.output {
            eprintln!(
                "meshcast-lab export: -o {}: the CORE scenario needs another extension than .toml (the topology copy is written as X.toml next to X.imn)",
                args.output.display()
            );
            return Ok(ExitCode::from(2));
        }
        let absolute = std::path::absolute(&copy_path)
            .with_context(|| format!("cannot resolve {}", copy_path.display()))?;
        let core = match export::to_core(&topology, &absolute) {
            Ok(core) => core,
            Err(error @ export::ExportError::Generated(_)) => return Err(error.into()),
            Err(error) => {
                eprintln!("meshcast-lab export: {error}");
                return Ok(ExitCode::from(2));
            }
        };
        std::fs::write(&args.output, &core.imn)
            .with_context(|| format!("cannot write {}", args.output.display()))?;
        std::fs::write(&copy_path, &core.toml)
            .with_context(|| format!("cannot write {}", copy_path.display()))?;
        eprintln!(
            "wrote {} and its topology copy {}: {}",
            args.output.display(),
            copy_path.display(),
            underlay_summary(&core.topology)
        );
    } else {
        let mininet = match export::to_mininet(&topology) {
            Ok(mininet) => mininet,
            Err(error @ export::ExportError::Generated(_)) => return Err(error.into()),
            Err(error) => {
                eprintln!("meshcast-lab export: {error}");
                return Ok(ExitCode::from(2));
            }
        };
        std::fs::write(&args.output, &mininet.script)
            .with_context(|| format!("cannot write {}", args.output.display()))?;
        eprintln!(
            "wrote {} (run it as root: sudo python3 {} [--duration SECS]): {}",
            args.output.display(),
            args.output.display(),
            underlay_summary(&mininet.topology)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The one-paragraph summary printed after an import.
pub fn summary(input: &Path, topology: &Topology) -> String {
    let servers = topology.servers().count();
    let nodes = topology
        .nodes()
        .iter()
        .filter(|node| node.role == Role::Node)
        .count();
    let mut text = format!(
        "imported {}: {}; {} overlay process(es) ({} server(s), {} node(s), bootstrapper {} at {}), {} overlay link(s), {} client(s)",
        input.display(),
        underlay_summary(topology),
        servers + nodes,
        servers,
        nodes,
        topology.bootstrapper().id,
        topology.bootstrapper().addr,
        topology.links().len(),
        topology.clients().len(),
    );
    let clients: Vec<String> = topology
        .clients()
        .iter()
        .map(|client| format!("{} with PoPs {}", client.id, client.pops.join(", ")))
        .collect();
    if !clients.is_empty() {
        let _ = write!(text, " ({})", clients.join("; "));
    }
    text.push('.');
    text
}

/// "7 hosts (3 routers), 6 nets (0 LANs)" or "no underlay".
fn underlay_summary(topology: &Topology) -> String {
    if !topology.has_underlay() {
        return "no underlay".to_owned();
    }
    let routers = topology.hosts().iter().filter(|host| host.router).count();
    let lans = topology.nets().iter().filter(|net| net.is_lan()).count();
    format!(
        "{} host(s) ({} router(s)), {} net(s) ({} LAN(s))",
        topology.hosts().len(),
        routers,
        topology.nets().len(),
        lans
    )
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .filter(|stem| !stem.trim().is_empty())
        .unwrap_or_else(|| "imported".to_owned())
}

// ---------------------------------------------------------------------------------------------
// importer API

/// What the importers are told besides their input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Topology name.
    pub name: String,
    /// `--server` names (see [`ImportArgs::servers`]).
    pub servers: Vec<String>,
    /// `--client-at` names (see [`ImportArgs::client_at`]).
    pub client_at: Vec<String>,
}

/// The result of an import.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// The validated topology.
    pub topology: Topology,
    /// The topology text (with explanatory comments) it was parsed from; what `import` writes.
    pub text: String,
    /// What the import left out or approximated (each names the input file and line).
    pub notes: Vec<String>,
}

/// One problem of an input file. Displays as `file:line: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(file: &str, line: usize, message: impl Into<String>) -> Problem {
        Problem {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An input file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The input is malformed or describes something meshcast cannot run; every problem
    /// found, in file order, never empty.
    #[error("{}", ProblemList(.0))]
    Invalid(Vec<Problem>),
    /// A command-line option does not fit the input.
    #[error("{option} {value}: {message}")]
    BadOption {
        /// Such as `--server`.
        option: &'static str,
        /// The value given.
        value: String,
        /// Why it does not fit.
        message: String,
    },
    /// The topology text the importer generated did not validate: a bug in the importer.
    #[error(transparent)]
    Generated(#[from] InvalidDraft),
}

/// A [`Draft`] whose text does not validate: a bug in the code that filled it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the generated topology does not validate (a bug in meshcast-lab interop; please report it with the input):\n{source}\n--- generated topology ---\n{text}"
)]
pub struct InvalidDraft {
    /// The validation errors.
    pub source: TopologyError,
    /// The generated text, to show where it went wrong.
    pub text: String,
}

impl ImportError {
    /// The problems of an [`ImportError::Invalid`], empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ImportError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

/// Displays problems one per line.
struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// `Err(Invalid)` when `problems` is not empty, sorted by file and line.
pub(crate) fn check(mut problems: Vec<Problem>) -> Result<(), ImportError> {
    if problems.is_empty() {
        Ok(())
    } else {
        problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(ImportError::Invalid(problems))
    }
}

// ---------------------------------------------------------------------------------------------
// Draft

/// A topology under construction: plain parts, no guarantees. [`Draft::build`] renders it as
/// topology TOML ([`Draft::to_toml`]) and validates that text with [`Topology::parse`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Draft {
    /// Comment lines written at the top of the text (without `# `).
    pub header: Vec<String>,
    /// Topology name.
    pub name: String,
    /// Processes; the bootstrapper first by convention.
    pub nodes: Vec<NodeSpec>,
    /// Overlay links.
    pub links: Vec<LinkSpec>,
    /// Clients.
    pub clients: Vec<ClientSpec>,
    /// Underlay hosts (empty: no underlay).
    pub hosts: Vec<HostSpec>,
    /// Underlay nets.
    pub nets: Vec<NetSpec>,
}

impl Draft {
    /// A draft holding everything `topology` holds.
    pub fn from_topology(topology: &Topology) -> Draft {
        Draft {
            header: Vec::new(),
            name: topology.name().to_owned(),
            nodes: topology.nodes().to_vec(),
            links: topology.links().to_vec(),
            clients: topology.clients().to_vec(),
            hosts: topology.hosts().to_vec(),
            nets: topology.nets().to_vec(),
        }
    }

    /// The topology text: header comments, `name`, then `[[node]]`, `[[link]]`,
    /// `[[client]]`, `[[host]]`, `[[net]]` in order.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            let _ = writeln!(out, "# {line}");
        }
        if !self.header.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "name = {}", toml_str(&self.name));
        for node in &self.nodes {
            let _ = write!(
                out,
                "\n[[node]]\nid = {}\nrole = {}\naddr = {}\n",
                toml_str(&node.id),
                toml_str(node.role.as_str()),
                toml_str(&node.addr.to_string())
            );
        }
        for link in &self.links {
            let _ = write!(
                out,
                "\n[[link]]\nbetween = [{}, {}]\n",
                toml_str(&link.a),
                toml_str(&link.b)
            );
            let attrs = [
                ("latency_ms", link.attrs.latency_ms),
                ("jitter_ms", link.attrs.jitter_ms),
                ("loss", link.attrs.loss),
                ("rate_mbit", link.attrs.rate_mbit),
            ];
            for (key, value) in attrs {
                if let Some(value) = value {
                    let _ = writeln!(out, "{key} = {}", toml_float(value));
                }
            }
        }
        for client in &self.clients {
            let pops: Vec<String> = client.pops.iter().map(|pop| toml_str(pop)).collect();
            let _ = write!(
                out,
                "\n[[client]]\nid = {}\npops = [{}]\n",
                toml_str(&client.id),
                pops.join(", ")
            );
            if let Some(addr) = client.addr {
                let _ = writeln!(out, "addr = {}", toml_str(&addr.to_string()));
            }
            if let Some(watch) = &client.watch {
                let _ = writeln!(out, "watch = {}", toml_str(watch));
            }
            if let Some(host) = &client.host {
                let _ = writeln!(out, "host = {}", toml_str(host));
            }
        }
        for host in &self.hosts {
            let _ = write!(out, "\n[[host]]\nid = {}\n", toml_str(&host.id));
            if host.router {
                out.push_str("router = true\n");
            }
        }
        for net in &self.nets {
            let members: Vec<String> = net
                .members
                .iter()
                .map(|member| {
                    format!(
                        "{} = {}",
                        toml_key(&member.host),
                        toml_str(&member.addr.to_string())
                    )
                })
                .collect();
            let _ = write!(
                out,
                "\n[[net]]\nsubnet = {}\nmembers = {{ {} }}\n",
                toml_str(&net.subnet.to_string()),
                members.join(", ")
            );
            if let Some(rate) = net.rate_mbit {
                let _ = writeln!(out, "rate_mbit = {}", toml_float(rate));
            }
        }
        out
    }

    /// Renders and validates the draft; `origin` names the text in diagnostics.
    pub fn build(&self, origin: &str) -> Result<(Loaded, String), InvalidDraft> {
        let text = self.to_toml();
        match Topology::parse(&text, origin) {
            Ok(loaded) => Ok((loaded, text)),
            Err(source) => Err(InvalidDraft { source, text }),
        }
    }
}

/// A TOML basic string.
pub(crate) fn toml_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, quoted otherwise.
fn toml_key(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        text.to_owned()
    } else {
        toml_str(text)
    }
}

/// A finite float as TOML (`5.0`, `0.01`).
fn toml_float(value: f64) -> String {
    format!("{value:?}")
}

/// `value` rounded to 9 decimals, so that sums of decimal inputs print as written
/// (`0.30000000000000004` becomes `0.3`).
pub(crate) fn tidy(value: f64) -> f64 {
    (value * 1e9).round() / 1e9
}

// ---------------------------------------------------------------------------------------------
// helpers shared by the importers

/// A valid meshcast id made from `name` (characters outside `[A-Za-z0-9_.-]` become `-`, at
/// most 32 characters), different from every id in `taken`; it is added to `taken`.
pub(crate) fn unique_id(name: &str, taken: &mut Vec<String>) -> String {
    let mut base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(meshcast_topology::MAX_ID_LEN)
        .collect();
    if base.is_empty() {
        base = "x".to_owned();
    }
    let mut id = base.clone();
    let mut n = 2;
    while taken.contains(&id) {
        let suffix = format!("-{n}");
        let keep = meshcast_topology::MAX_ID_LEN.saturating_sub(suffix.len());
        id = format!("{}{suffix}", base.chars().take(keep).collect::<String>());
        n += 1;
    }
    taken.push(id.clone());
    id
}

/// Hop counts from `from` over an adjacency list; `None` where unreachable.
pub(crate) fn hops_from(adjacency: &[Vec<usize>], from: usize) -> Vec<Option<usize>> {
    let mut hops = vec![None; adjacency.len()];
    if from >= adjacency.len() {
        return hops;
    }
    hops[from] = Some(0);
    let mut frontier = vec![from];
    let mut distance = 0;
    while !frontier.is_empty() {
        distance += 1;
        let mut next = Vec::new();
        for &at in &frontier {
            for &to in &adjacency[at] {
                if hops[to].is_none() {
                    hops[to] = Some(distance);
                    next.push(to);
                }
            }
        }
        frontier = next;
    }
    hops
}

/// An overlay process as the client chooser sees it.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    /// Overlay id.
    pub id: String,
    /// Whether it is a server.
    pub server: bool,
}

/// The clients of an import. `client_at` holds overlay ids already resolved from the
/// command line: each gets a client whose PoPs are that node and the nearest other overlay
/// process. Without any, one client sits at the non-server process farthest from the first
/// server, with the second-farthest as fallback. `hops(a, b)` is the distance between
/// candidates `a` and `b`; ties go to the earlier candidate. Client ids `c1, c2, …` avoid
/// `taken`.
pub(crate) fn choose_clients(
    candidates: &[Candidate],
    client_at: &[usize],
    hops: impl Fn(usize, usize) -> Option<usize>,
    taken: &mut Vec<String>,
) -> Vec<ClientSpec> {
    let client = new_client;
    let mut clients = Vec::new();
    if !client_at.is_empty() {
        for &at in client_at {
            let mut pops = vec![candidates[at].id.clone()];
            let nearest = (0..candidates.len())
                .filter(|&other| other != at)
                .filter_map(|other| Some((hops(at, other)?, other)))
                .min();
            if let Some((_, other)) = nearest {
                pops.push(candidates[other].id.clone());
            }
            clients.push(client(pops, taken));
        }
        return clients;
    }
    let Some(first_server) = candidates.iter().position(|c| c.server) else {
        return clients;
    };
    let mut by_distance: Vec<(usize, usize)> = (0..candidates.len())
        .filter(|&other| !candidates[other].server)
        .filter_map(|other| Some((hops(first_server, other)?, other)))
        .collect();
    // Farthest first; among equals, the earlier candidate.
    by_distance.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let pops: Vec<String> = by_distance
        .iter()
        .take(2)
        .map(|&(_, index)| candidates[index].id.clone())
        .collect();
    if !pops.is_empty() {
        clients.push(client(pops, taken));
    }
    clients
}

/// A client with PoPs `pops`, watching [`DEFAULT_WATCH`], with the first id `c1, c2, …` not
/// in `taken` (which it joins).
pub(crate) fn new_client(pops: Vec<String>, taken: &mut Vec<String>) -> ClientSpec {
    let mut n = 1;
    let id = loop {
        let id = format!("c{n}");
        if !taken.contains(&id) {
            taken.push(id.clone());
            break id;
        }
        n += 1;
    };
    ClientSpec {
        id,
        pops,
        addr: None,
        watch: Some(DEFAULT_WATCH.to_owned()),
        host: None,
    }
}

/// `ip:port`.
pub(crate) fn socket(ip: impl Into<std::net::IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// Natural order of interface names: `eth2` before `eth10`.
pub(crate) fn natural_key(name: &str) -> (String, u64, String) {
    let digits_at = name
        .char_indices()
        .find(|(_, c)| c.is_ascii_digit())
        .map_or(name.len(), |(at, _)| at);
    let (prefix, rest) = name.split_at(digits_at);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let number = digits.parse().unwrap_or(u64::MAX);
    (prefix.to_owned(), number, rest[digits.len()..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_are_sanitised_and_never_repeat() {
        let mut taken = vec!["n1".to_owned()];
        assert_eq!(unique_id("n1", &mut taken), "n1-2");
        assert_eq!(unique_id("n1", &mut taken), "n1-3");
        assert_eq!(unique_id("my router/7", &mut taken), "my-router-7");
        assert_eq!(unique_id("", &mut taken), "x");
        let long = "a".repeat(40);
        let first = unique_id(&long, &mut taken);
        let second = unique_id(&long, &mut taken);
        assert_eq!(first.len(), 32);
        assert_eq!(second.len(), 32);
        assert!(second.ends_with("-2"), "{second}");
        assert!(meshcast_topology::is_valid_id(&second));
    }

    #[test]
    fn interface_names_sort_naturally() {
        let mut names = vec!["eth10", "eth2", "eth0", "e1", "lo"];
        names.sort_by_key(|name| natural_key(name));
        assert_eq!(names, ["e1", "eth0", "eth2", "eth10", "lo"]);
    }

    #[test]
    fn hops_are_counted_breadth_first_and_unreachable_is_none() {
        let adjacency = vec![vec![1], vec![0, 2], vec![1], vec![]];
        assert_eq!(hops_from(&adjacency, 0), [Some(0), Some(1), Some(2), None]);
        assert_eq!(hops_from(&adjacency, 9), [None, None, None, None]);
    }

    #[test]
    fn the_default_client_sits_farthest_from_the_first_server() {
        // d - s - a - b - c
        let candidates: Vec<Candidate> = ["s", "a", "b", "c", "d"]
            .iter()
            .map(|id| Candidate {
                id: (*id).to_owned(),
                server: *id == "s",
            })
            .collect();
        let distance = |x: usize, y: usize| {
            let position = [0i32, 1, 2, 3, -1];
            Some(position[x].abs_diff(position[y]) as usize)
        };
        let mut taken = vec!["c1".to_owned()];
        let clients = choose_clients(&candidates, &[], distance, &mut taken);
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0].id, "c2", "c1 is taken");
        assert_eq!(clients[0].pops, ["c", "b"]);
        assert_eq!(clients[0].watch.as_deref(), Some(DEFAULT_WATCH));

        let at = choose_clients(&candidates, &[4, 2], distance, &mut taken);
        let pops: Vec<&[String]> = at.iter().map(|c| c.pops.as_slice()).collect();
        assert_eq!(pops, [&["d", "s"][..], &["b", "a"][..]]);
    }

    #[test]
    fn detection_uses_the_extension_then_the_content() {
        assert_eq!(
            detect(Path::new("x.imn"), "\"1.2.3.4\" = []"),
            InputKind::Imn
        );
        assert_eq!(
            detect(Path::new("x.toml"), "node n1 {"),
            InputKind::NeighbourMap
        );
        assert_eq!(
            detect(Path::new("x"), "# SERVER 1\n\"10.0.0.1\" = []"),
            InputKind::NeighbourMap
        );
        assert_eq!(detect(Path::new("x"), "\nnode n1 {\n}"), InputKind::Imn);
    }

    #[test]
    fn a_draft_renders_text_that_validates_into_the_same_parts() {
        let text = r#"
            [[node]]
            id = "boot"
            role = "bootstrapper"
            addr = "10.0.0.1:7100"
            [[node]]
            id = "s.1"
            role = "server"
            addr = "10.0.0.1:7000"
            [[client]]
            id = "c1"
            pops = ["s.1"]
            watch = "x \"y\""
            [[host]]
            id = "h.1"
            [[net]]
            subnet = "10.0.0.0/24"
            members = { "h.1" = "10.0.0.1" }
            rate_mbit = 2.5
        "#;
        let topology = Topology::parse(text, "t.toml").unwrap().topology;
        let mut draft = Draft::from_topology(&topology);
        draft.header = vec!["made by a test".to_owned()];
        let (loaded, written) = draft.build("again.toml").unwrap();
        assert!(written.starts_with("# made by a test\n"), "{written}");
        assert_eq!(loaded.topology, topology);

        draft.nodes[1].addr = "10.0.0.9:7000".parse().unwrap();
        let error = ImportError::from(draft.build("bad.toml").unwrap_err());
        assert!(
            error
                .to_string()
                .starts_with("the generated topology does not validate"),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains("no host has the address 10.0.0.9"),
            "{error}"
        );
    }
}
