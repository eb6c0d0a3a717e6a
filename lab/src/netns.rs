//! An emulated IP network made of Linux network namespaces: every host of a topology gets its
//! own network stack, as in CORE. Hosts are linked by veth pairs, LANs are bridges, routers
//! forward IP along static shortest-path routes, and a rate limit becomes a tbf qdisc.
//! Root and iproute2 (`ip`, and `tc` for rate limits) are required; see [`available`].
//!
//! # Layout
//!
//! - this file: the input ([`NetPlan`]), the running network ([`Netns`]), [`cleanup_stale`],
//!   [`available`], [`in_namespace`].
//! - `plan.rs`: checks a plan, names interfaces and computes routes (pure; [`PlanError`]).
//! - `sys.rs`: `ip`/`tc` batches, `setns(2)`, sysctl writes.
//!
//! # What gets created
//!
//! ```text
//! mc<TAG>            the switch namespace: one bridge br<N> per LAN, ports br<N>p<M>;
//!                    created first, it also reserves TAG against concurrent runs
//! mc<TAG>-<host>     one per host: lo, eth0, eth1… (its k-th net in plan order is eth<k>),
//!                    static routes, sysctls, tbf qdiscs
//! ```
//!
//! A net of two members is one veth pair between the two hosts; a net of one or of three and
//! more members is a bridge with one veth per member. Nothing is created in the root
//! namespace: veths are created directly inside their namespaces. TAG is four hex digits
//! drawn from the PID and the clock, so concurrent runs and tests never share a name.
//!
//! # Routing
//!
//! Each host gets, for every subnet it is not on, `ip route add SUBNET via GATEWAY dev ethK`
//! along a path with the fewest routers, crossing only hosts with `router = true` (a host
//! that is not a router never forwards: `net.ipv4.ip_forward` is written explicitly in every
//! namespace, 1 or 0, since a new namespace inherits the root namespace's value). Ties go to
//! the earliest-listed path (see `plan.rs`). Subnets with no such path get no route.
//! `rp_filter` is off everywhere (asymmetric shortest paths between multi-homed hosts would
//! otherwise drop packets), and ICMP redirects are neither sent nor accepted, so the routes
//! in use are exactly the computed ones ([`Netns::routes`]).
//!
//! # Crash safety
//!
//! [`Netns::create`] writes `STATE_DIR/netns.json` listing every namespace it is about to
//! create before creating any, so [`cleanup_stale`] can remove the leftovers of a lab killed
//! at any point. A failed `create` removes what it made before returning. A [`Netns`] tears
//! the network down on [`Netns::teardown`] or drop. Stop the processes running inside first:
//! deleting a namespace only removes its name, and a namespace lives on (anonymous, with its
//! interfaces) while a process is still inside it.
//!
//! # Running programs on a host
//!
//! [`Netns::command`] builds `ip netns exec mc<TAG>-<host> PROGRAM`. `ip netns exec` enters the
//! namespace, mounts a `/sys` showing the namespace's interfaces, and then *execs* the program
//! in place (it forks only in `ip -batch` mode): the PID of the spawned child is the
//! program's own PID, and signals sent to it reach the program (checked by the test
//! `a_command_runs_the_program_itself_inside_the_host_namespace`). Its `/proc/PID/cmdline`
//! is then the program's command line, without the `ip netns exec` prefix.
//! [`in_namespace`] runs a closure on a thread inside a namespace instead, e.g. to bind sockets.

mod plan;
mod sys;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use plan::{MAX_HOST_NAME_LEN, MAX_NETS, MAX_RATE_MBIT, MIN_RATE_MBIT, PlanError};
pub use sys::NETNS_DIR;

/// Name of the state file in a state dir.
pub const STATE_FILE: &str = "netns.json";

/// Prefix of every namespace name this module makes.
pub const NAME_PREFIX: &str = "mc";

/// How long a tbf qdisc may queue a packet: ~100 ms of the link's rate, enough for a video
/// frame's burst at a rate near the stream's, short enough not to hide congestion.
const TBF_LATENCY: &str = "100ms";

/// The smallest tbf bucket in bytes: a few full-size packets, so a 1500-byte datagram always
/// fits even at low rates.
const TBF_MIN_BURST: u64 = 8 * 1024;

/// How many run tags `create` tries before giving up (each is taken only by a live run).
const TAG_ATTEMPTS: u64 = 64;

/// The network to build: hosts and the nets between them. Plain data; see the module docs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NetPlan {
    /// Every host, each of which gets its own namespace.
    pub hosts: Vec<NsHost>,
    /// Every link or LAN. A net is named by its index here in errors and in [`NsRoute::net`].
    pub nets: Vec<NsNet>,
}

/// One host of a [`NetPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsHost {
    /// The topology id ("n3", "r1"): 1 to [`MAX_HOST_NAME_LEN`] of `A-Z a-z 0-9 _ . -`.
    /// It becomes the namespace name's suffix.
    pub name: String,
    /// Whether it forwards IP between its nets (`net.ipv4.ip_forward=1`); only routers carry
    /// other hosts' traffic.
    pub router: bool,
}

/// One link (two members) or LAN (one, or three and more) of a [`NetPlan`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NsNet {
    /// Every member's interface gets `addr/prefix_len`; all must lie in one subnet, and the
    /// subnets of different nets must not overlap.
    pub prefix_len: u8,
    /// The hosts on it, each at most once, in the order that breaks routing ties.
    pub members: Vec<NsMember>,
    /// Rate limit of each member's outgoing traffic on this net (a tbf qdisc), in Mbit/s.
    pub rate_mbit: Option<f64>,
}

/// A host's place on a net.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsMember {
    /// A [`NsHost::name`] of the plan.
    pub host: String,
    /// Its address on this net (a unicast address, not the subnet's network or broadcast
    /// address).
    pub addr: Ipv4Addr,
}

/// An interface made in a host's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsInterface {
    /// `eth<k>` for the host's k-th net in plan order.
    pub name: String,
    /// The net's index in [`NetPlan::nets`].
    pub net: usize,
    /// The host's address on it.
    pub addr: Ipv4Addr,
    /// The net's prefix length.
    pub prefix_len: u8,
}

/// A static route installed in a host's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsRoute {
    /// The destination net's index in [`NetPlan::nets`].
    pub net: usize,
    /// The destination subnet's network address.
    pub subnet: Ipv4Addr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// The first router on the way.
    pub via: Ipv4Addr,
    /// The interface towards it.
    pub dev: String,
    /// How many routers the path crosses (1 for a neighbouring subnet of a neighbour).
    pub routers: usize,
}

/// What went wrong while building, using or removing the emulated network.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The plan is inconsistent; nothing was created.
    #[error("invalid network plan: {0}")]
    Plan(#[from] PlanError),
    /// Namespaces need root.
    #[error("network namespaces need root (the effective user is not root)")]
    NotRoot,
    /// An iproute2 tool is not installed or does not run.
    #[error("`{tool}` is not usable ({source}); install iproute2")]
    ToolMissing {
        /// "ip" or "tc".
        tool: &'static str,
        /// Why it could not run.
        source: io::Error,
    },
    /// A file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// A state file from an earlier network is still in the state dir.
    #[error(
        "{} already exists: an earlier network of this state dir was not torn down; \
         remove it with cleanup_stale first",
        path.display()
    )]
    StaleState {
        /// The state file.
        path: PathBuf,
    },
    /// A state file that cannot be read as one.
    #[error("cannot parse state file {}: {source}", path.display())]
    BadStateFile {
        /// The state file.
        path: PathBuf,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// A state file naming a namespace this module would never make: nothing is deleted.
    #[error("state file {} names namespace {name:?}, which is not one of ours", path.display())]
    NotOurs {
        /// The state file.
        path: PathBuf,
        /// The foreign name.
        name: String,
    },
    /// A tool could not be started or talked to.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: io::Error,
    },
    /// An `ip` or `tc` batch failed.
    #[error(
        "`{command}` failed ({status}){}: {stderr}",
        line.as_ref().map(|l| format!(" at `{l}`")).unwrap_or_default()
    )]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// The batch line that failed, when the tool said which.
        line: Option<String>,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Entering a namespace failed.
    #[error("cannot enter namespace {namespace}: {source}")]
    Setns {
        /// The namespace.
        namespace: String,
        /// Why.
        source: io::Error,
    },
    /// A sysctl could not be written.
    #[error("cannot set {key} in namespace {namespace}: {source}")]
    Sysctl {
        /// The namespace.
        namespace: String,
        /// The key under /proc/sys.
        key: &'static str,
        /// Why.
        source: io::Error,
    },
    /// No host of this name in the network.
    #[error("no host {0:?} in this network")]
    UnknownHost(String),
    /// Every run tag tried was taken.
    #[error("no free run tag after {TAG_ATTEMPTS} attempts (are that many labs running?)")]
    NoFreeTag,
    /// Namespaces that could not be deleted; the state file is kept for a later cleanup.
    #[error("namespaces still exist after deleting them: {}", names.join(", "))]
    Leftover {
        /// Their names.
        names: Vec<String>,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> NetnsError + 'a {
    move |source| NetnsError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Contents of `netns.json`.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    /// The run tag.
    tag: String,
    /// The PID of the lab that made the network, for people reading the file.
    pid: u32,
    /// Every namespace made, or about to be made: the switch first, then the hosts.
    namespaces: Vec<String>,
    /// Host name → its namespace, for people and tools.
    hosts: BTreeMap<String, String>,
}

/// One host of a running network.
#[derive(Debug)]
struct HostState {
    namespace: String,
    routes: Vec<NsRoute>,
}

/// A running emulated network: its namespaces exist until [`Netns::teardown`] or drop.
#[derive(Debug)]
pub struct Netns {
    /// The run tag in every namespace name.
    tag: String,
    /// The switch namespace (bridges; reserves the tag).
    switch: String,
    /// Host name → its state.
    hosts: BTreeMap<String, HostState>,
    /// Namespace names in creation order, the switch first.
    order: Vec<String>,
    /// `netns.json`, removed once everything is gone.
    state_file: PathBuf,
    /// False once torn down, so drop does nothing more.
    live: bool,
}

/// A step of [`Netns::create`]; tests make one fail to check the rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Namespaces,
    Sysctls,
    Veths,
    Addresses,
    Rates,
}

#[cfg(test)]
thread_local! {
    /// The step at which `create` on this thread fails (tests only).
    static FAIL_AT: std::cell::Cell<Option<Step>> = const { std::cell::Cell::new(None) };
    /// The tag of the last network `create` reserved on this thread (tests only).
    static LAST_TAG: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

fn reach(step: Step) -> Result<(), NetnsError> {
    #[cfg(test)]
    if FAIL_AT.get() == Some(step) {
        return Err(NetnsError::Command {
            command: format!("injected failure at {step:?}"),
            status: "test".to_owned(),
            line: None,
            stderr: String::new(),
        });
    }
    let _ = step;
    Ok(())
}

impl Netns {
    /// Builds the network of `plan`, recording it in `state_dir/netns.json` (the dir is
    /// created if missing). On error nothing is left behind.
    pub fn create(state_dir: &Path, plan: &NetPlan) -> Result<Netns, NetnsError> {
        let layout = plan::layout(plan)?;
        if !sys::is_root()? {
            return Err(NetnsError::NotRoot);
        }
        if plan.nets.iter().any(|n| n.rate_mbit.is_some()) {
            sys::check_tool(sys::TC)?;
        }
        fs::create_dir_all(state_dir).map_err(io_err("create state dir", state_dir))?;
        let state_file = state_dir.join(STATE_FILE);
        if fs::symlink_metadata(&state_file).is_ok() {
            return Err(NetnsError::StaleState { path: state_file });
        }
        let mut netns = Netns::reserve(state_file, &layout)?;
        match netns.build(&layout) {
            Ok(()) => Ok(netns),
            Err(e) => {
                if let Err(cleanup) = netns.teardown_inner() {
                    tracing::warn!("removing a half-built network: {cleanup}");
                }
                Err(e)
            }
        }
    }

    /// Picks a free tag, writes the state file and creates the switch namespace, which
    /// holds the tag: another run seeing it picks another tag.
    fn reserve(state_file: PathBuf, layout: &plan::Layout) -> Result<Netns, NetnsError> {
        for attempt in 0..TAG_ATTEMPTS {
            let tag = run_tag(attempt);
            let switch = format!("{NAME_PREFIX}{tag}");
            let mut hosts = BTreeMap::new();
            let mut order = vec![switch.clone()];
            for h in &layout.hosts {
                let namespace = format!("{switch}-{}", h.name);
                order.push(namespace.clone());
                hosts.insert(
                    h.name.clone(),
                    HostState {
                        namespace,
                        routes: h.routes.clone(),
                    },
                );
            }
            if order.iter().any(|n| sys::exists(n)) {
                continue;
            }
            let state = StateFile {
                tag: tag.clone(),
                pid: std::process::id(),
                namespaces: order.clone(),
                hosts: hosts
                    .iter()
                    .map(|(name, h)| (name.clone(), h.namespace.clone()))
                    .collect(),
            };
            write_state(&state_file, &state)?;
            match sys::add_namespace(&switch) {
                Ok(()) => {
                    #[cfg(test)]
                    LAST_TAG.set(tag.clone());
                    return Ok(Netns {
                        tag,
                        switch,
                        hosts,
                        order,
                        state_file,
                        live: true,
                    });
                }
                // Taken by another run between our check and our attempt: try another tag.
                Err(_) if sys::exists(&switch) => {}
                Err(e) => {
                    let _ = fs::remove_file(&state_file);
                    return Err(e);
                }
            }
        }
        let _ = fs::remove_file(&state_file);
        Err(NetnsError::NoFreeTag)
    }

    /// Everything after the switch namespace, in an order where each step finds what it needs.
    fn build(&mut self, layout: &plan::Layout) -> Result<(), NetnsError> {
        let ns_of: Vec<String> = layout
            .hosts
            .iter()
            .map(|h| format!("{}-{}", self.switch, h.name))
            .collect();

        reach(Step::Namespaces)?;
        let adds: Vec<String> = ns_of.iter().map(|n| format!("netns add {n}")).collect();
        sys::batch(sys::IP, None, false, &adds)?;

        // Before the interfaces exist, so they inherit the defaults. ip_forward first: writing
        // it resets accept_redirects.
        reach(Step::Sysctls)?;
        let settings: Vec<(String, Vec<(&'static str, &'static str)>)> = layout
            .hosts
            .iter()
            .zip(&ns_of)
            .map(|(h, ns)| {
                let forward = if h.router { "1" } else { "0" };
                (
                    ns.clone(),
                    vec![
                        ("net/ipv4/ip_forward", forward),
                        ("net/ipv4/conf/all/rp_filter", "0"),
                        ("net/ipv4/conf/default/rp_filter", "0"),
                        ("net/ipv4/conf/all/send_redirects", "0"),
                        ("net/ipv4/conf/default/send_redirects", "0"),
                        ("net/ipv4/conf/all/accept_redirects", "0"),
                        ("net/ipv4/conf/default/accept_redirects", "0"),
                    ],
                )
            })
            .collect();
        sys::write_sysctls(&settings)?;

        reach(Step::Veths)?;
        let veths: Vec<String> = layout
            .veths
            .iter()
            .map(|v| {
                let peer_ns = v.peer_host.map_or(self.switch.as_str(), |p| &ns_of[p]);
                format!(
                    "link add {} netns {} type veth peer name {} netns {peer_ns}",
                    v.name, ns_of[v.host], v.peer_name
                )
            })
            .collect();
        sys::batch(sys::IP, None, false, &veths)?;

        reach(Step::Addresses)?;
        if !layout.lans.is_empty() {
            let mut lines = vec!["link set lo up".to_owned()];
            for lan in &layout.lans {
                lines.push(format!("link add {} type bridge", lan.bridge));
                lines.push(format!("link set {} up", lan.bridge));
                for port in &lan.ports {
                    lines.push(format!("link set {port} master {}", lan.bridge));
                    lines.push(format!("link set {port} up"));
                }
            }
            sys::batch(sys::IP, Some(&self.switch), false, &lines)?;
        }
        for (h, ns) in layout.hosts.iter().zip(&ns_of) {
            let mut lines = vec!["link set lo up".to_owned()];
            for i in &h.interfaces {
                lines.push(format!(
                    "addr add {}/{} dev {}",
                    i.addr, i.prefix_len, i.name
                ));
                lines.push(format!("link set {} up", i.name));
            }
            for r in &h.routes {
                lines.push(format!(
                    "route add {}/{} via {} dev {}",
                    r.subnet, r.prefix_len, r.via, r.dev
                ));
            }
            sys::batch(sys::IP, Some(ns), false, &lines)?;
        }

        reach(Step::Rates)?;
        for (h, ns) in layout.hosts.iter().zip(&ns_of) {
            let lines: Vec<String> = h
                .interfaces
                .iter()
                .zip(&h.rates)
                .filter_map(|(i, rate)| rate.map(|r| tbf_line(&i.name, r)))
                .collect();
            sys::batch(sys::TC, Some(ns), false, &lines)?;
        }
        Ok(())
    }

    /// The run tag (four hex digits) in every namespace name.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The namespace of `host`, such as `mc1a2b-n3`.
    pub fn namespace(&self, host: &str) -> Option<&str> {
        self.hosts.get(host).map(|h| h.namespace.as_str())
    }

    /// The namespace holding the LAN bridges, `mc<TAG>`.
    pub fn switch_namespace(&self) -> &str {
        &self.switch
    }

    /// Every namespace made, the switch first, then the hosts in plan order.
    pub fn namespaces(&self) -> &[String] {
        &self.order
    }

    /// The static routes installed in `host`, by destination net.
    pub fn routes(&self, host: &str) -> Option<&[NsRoute]> {
        self.hosts.get(host).map(|h| h.routes.as_slice())
    }

    /// `ip netns exec <namespace of host> program`: add arguments and spawn it. The child's
    /// PID is `program`'s own (see the module docs).
    pub fn command(&self, host: &str, program: &Path) -> Option<Command> {
        Some(exec_command(self.namespace(host)?, program))
    }

    /// Runs `f` on a thread inside `host`'s namespace (see [`in_namespace`]).
    pub fn run_in<T, F>(&self, host: &str, f: F) -> Result<T, NetnsError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let ns = self
            .namespace(host)
            .ok_or_else(|| NetnsError::UnknownHost(host.to_owned()))?;
        in_namespace(ns, f)
    }

    /// Deletes every namespace of the network and the state file. Processes still inside a
    /// namespace keep it alive (see the module docs); stop them first.
    pub fn teardown(mut self) -> Result<(), NetnsError> {
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<(), NetnsError> {
        if !self.live {
            return Ok(());
        }
        // One attempt only: on failure the state file stays for cleanup_stale.
        self.live = false;
        // Hosts first, the switch (which reserves the tag) last.
        let mut names: Vec<String> = self.order[1..].to_vec();
        names.push(self.switch.clone());
        let left = sys::delete_namespaces(&names);
        if !left.is_empty() {
            return Err(NetnsError::Leftover { names: left });
        }
        match fs::remove_file(&self.state_file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove state file", &self.state_file)(e)),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.teardown_inner() {
            tracing::warn!("tearing down network {}: {e}", self.tag);
        }
    }
}

/// The tbf line for `rate_mbit` on `dev`: a bucket of 10 ms at the rate (at least
/// [`TBF_MIN_BURST`]), queueing at most [`TBF_LATENCY`].
fn tbf_line(dev: &str, rate_mbit: f64) -> String {
    // Validated to MIN_RATE_MBIT..=MAX_RATE_MBIT, so this is 1e3..=1e11 bit/s.
    let bits = (rate_mbit * 1e6).round() as u64;
    let burst = (bits / 8 / 100).max(TBF_MIN_BURST);
    format!("qdisc add dev {dev} root tbf rate {bits}bit burst {burst} latency {TBF_LATENCY}")
}

/// Four hex digits from the PID, the clock, a process-wide counter and `attempt`.
fn run_tag(attempt: u64) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = (u64::from(std::process::id()) << 32)
        ^ nanos
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ attempt.rotate_left(17);
    // splitmix64 finaliser: every input bit moves the low 16.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("{:04x}", x & 0xffff)
}

/// Whether `name` is a namespace name this module makes: `mc` + four hex digits, then
/// nothing (a switch) or `-` and a host name.
fn is_ours(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
        return false;
    };
    let (tag, host) = rest.split_at_checked(4).unwrap_or((rest, ""));
    tag.len() == 4
        && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && (host.is_empty() || host.strip_prefix('-').is_some_and(plan::valid_host_name))
}

fn write_state(path: &Path, state: &StateFile) -> Result<(), NetnsError> {
    let mut text = serde_json::to_string_pretty(state).map_err(|e| NetnsError::Io {
        action: "encode state file",
        path: path.to_owned(),
        source: io::Error::other(e),
    })?;
    text.push('\n');
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, text).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("rename into place", path))
}

/// `ip netns exec NAMESPACE program`: add arguments and spawn it. The child's PID is
/// `program`'s own (see the module docs).
pub fn exec_command(namespace: &str, program: &Path) -> Command {
    let mut command = Command::new(sys::IP);
    command.args(["netns", "exec", namespace]).arg(program);
    command
}

/// Deletes the namespaces listed in `state_dir/netns.json` that still exist (left by a lab
/// that crashed or was killed), then the file; returns the names deleted. No file: nothing
/// to do. A file naming any namespace this module would not make is refused whole.
pub fn cleanup_stale(state_dir: &Path) -> Result<Vec<String>, NetnsError> {
    let path = state_dir.join(STATE_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let state: StateFile =
        serde_json::from_str(&text).map_err(|source| NetnsError::BadStateFile {
            path: path.clone(),
            source,
        })?;
    if let Some(name) = state.namespaces.iter().find(|n| !is_ours(n)) {
        return Err(NetnsError::NotOurs {
            path,
            name: name.clone(),
        });
    }
    let present: Vec<String> = state
        .namespaces
        .iter()
        .filter(|n| sys::exists(n))
        .cloned()
        .collect();
    if !present.is_empty() {
        if !sys::is_root()? {
            return Err(NetnsError::NotRoot);
        }
        // Hosts first, the switch (listed first) last, as in teardown.
        let (mut ordered, switches): (Vec<String>, Vec<String>) =
            present.iter().cloned().partition(|n| n.contains('-'));
        ordered.extend(switches);
        let left = sys::delete_namespaces(&ordered);
        if !left.is_empty() {
            return Err(NetnsError::Leftover { names: left });
        }
    }
    fs::remove_file(&path).map_err(io_err("remove", &path))?;
    Ok(present)
}

/// Checks that namespaces can be made here: root, `ip` runs, and a probe namespace can be
/// created and deleted. The error says what is missing.
pub fn available() -> Result<(), NetnsError> {
    static PROBES: AtomicU64 = AtomicU64::new(0);
    if !sys::is_root()? {
        return Err(NetnsError::NotRoot);
    }
    sys::check_tool(sys::IP)?;
    // Not of the mc<hex> form, so never confused with a network's namespaces.
    let probe = format!(
        "{NAME_PREFIX}probe-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    );
    sys::add_namespace(&probe)?;
    let left = sys::delete_namespaces(&[probe]);
    if left.is_empty() {
        Ok(())
    } else {
        Err(NetnsError::Leftover { names: left })
    }
}

/// Runs `f` on a new thread that has entered network namespace `namespace` (a name under
/// [`NETNS_DIR`]) and returns its result. Sockets created by `f` stay in that namespace
/// wherever they are used afterwards, so this is how to bind a socket "on a host".
/// A panic in `f` is passed on.
pub fn in_namespace<T, F>(namespace: &str, f: F) -> Result<T, NetnsError>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    sys::in_namespace(namespace, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_tags_are_four_hex_digits_and_vary() {
        let tags: std::collections::BTreeSet<String> = (0..64).map(run_tag).collect();
        assert!(
            tags.iter()
                .all(|t| t.len() == 4 && is_ours(&format!("mc{t}")))
        );
        assert!(tags.len() > 50, "only {} distinct tags of 64", tags.len());
    }

    #[test]
    fn only_names_of_our_form_count_as_ours() {
        assert!(is_ours("mc1a2b"));
        assert!(is_ours("mc1a2b-n3"));
        assert!(is_ours("mc00ff-r1.b_c"));
        for name in [
            "mc1a2",
            "mc1A2b",
            "mc1a2bx",
            "mc1a2b-",
            "mc1a2b-a/b",
            "xy1a2b",
            "mcprobe-1-2",
            "",
        ] {
            assert!(!is_ours(name), "{name}");
        }
    }

    #[test]
    fn tbf_bucket_holds_ten_milliseconds_but_never_less_than_a_few_packets() {
        assert_eq!(
            tbf_line("eth0", 2.5),
            "qdisc add dev eth0 root tbf rate 2500000bit burst 8192 latency 100ms"
        );
        assert_eq!(
            tbf_line("eth1", 1000.0),
            "qdisc add dev eth1 root tbf rate 1000000000bit burst 1250000 latency 100ms"
        );
    }

    /// h —— r —— (LAN: r, a, b), with rates, so every step has work to do.
    fn small_plan(suffix: &str) -> NetPlan {
        let host = |n: &str, router| NsHost {
            name: format!("{n}{suffix}"),
            router,
        };
        let member = |n: &str, a: [u8; 4]| NsMember {
            host: format!("{n}{suffix}"),
            addr: Ipv4Addr::from(a),
        };
        NetPlan {
            hosts: vec![
                host("h", false),
                host("r", true),
                host("a", false),
                host("b", false),
            ],
            nets: vec![
                NsNet {
                    prefix_len: 30,
                    members: vec![member("h", [10, 77, 0, 1]), member("r", [10, 77, 0, 2])],
                    rate_mbit: Some(10.0),
                },
                NsNet {
                    prefix_len: 24,
                    members: vec![
                        member("r", [10, 77, 1, 1]),
                        member("a", [10, 77, 1, 2]),
                        member("b", [10, 77, 1, 3]),
                    ],
                    rate_mbit: None,
                },
            ],
        }
    }

    /// Namespaces whose name ends with `-<host>` for a host of `plan`.
    fn leftovers(plan: &NetPlan) -> Vec<String> {
        let Ok(entries) = fs::read_dir(NETNS_DIR) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| {
                plan.hosts
                    .iter()
                    .any(|h| n.ends_with(&format!("-{}", h.name)))
            })
            .collect()
    }

    #[test]
    fn a_create_failing_at_any_step_leaves_no_namespace_and_no_state_file() {
        if let Err(e) = available() {
            eprintln!("skipping: {e}");
            return;
        }
        let dir = std::env::temp_dir().join(format!("meshcast-netns-unit-{}", std::process::id()));
        for step in [
            Step::Namespaces,
            Step::Sysctls,
            Step::Veths,
            Step::Addresses,
            Step::Rates,
        ] {
            let plan = small_plan(&format!("u{}x{step:?}", std::process::id()));
            FAIL_AT.set(Some(step));
            let result = Netns::create(&dir, &plan);
            FAIL_AT.set(None);
            let err = result.expect_err("the injected failure");
            assert!(err.to_string().contains("injected"), "{err}");
            assert_eq!(leftovers(&plan), Vec::<String>::new(), "after {step:?}");
            let switch = format!("mc{}", LAST_TAG.with_borrow(|t| t.clone()));
            assert!(!sys::exists(&switch), "{switch} after {step:?}");
            assert!(!dir.join(STATE_FILE).exists(), "state file after {step:?}");
        }
        let plan = small_plan(&format!("u{}ok", std::process::id()));
        let net = Netns::create(&dir, &plan).expect("no failure injected");
        assert_eq!(leftovers(&plan).len(), 4);
        net.teardown().expect("teardown");
        assert_eq!(leftovers(&plan), Vec::<String>::new());
        let _ = fs::remove_dir_all(&dir);
    }
}
