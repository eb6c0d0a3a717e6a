//! Command line of `meshcast-client` and the decisions that follow from it alone: which mode
//! runs (GUI or headless), which local address the socket binds, which seed the machine gets.
//!
//! Everything here is pure (the environment is passed in) so it is unit-tested without a
//! display or a network.

use crate::player::PlayerChoice;
use clap::Parser;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Watch meshcast channels: a desktop window, or headless for scripts and tests.
#[derive(Debug, Clone, Parser)]
#[command(name = "meshcast-client", version, about)]
pub struct Args {
    /// Candidate points of presence, comma-separated (`HOST:PORT[,HOST:PORT...]`).
    #[arg(long, value_delimiter = ',', required = true, value_parser = parse_pop, value_name = "ADDR[,ADDR...]")]
    pub pops: Vec<SocketAddr>,

    /// Channel to watch (GUI: start playing it right away).
    #[arg(long, value_name = "NAME")]
    pub watch: Option<String>,

    /// Headless: write every media payload, byte for byte as received, to this file.
    #[arg(long, value_name = "FILE.ts")]
    pub record: Option<PathBuf>,

    /// Headless: stop after this many seconds, counted from the watch request (default: until
    /// Ctrl-C).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Headless: write the viewer KPI report (JSON) here when the watch ends.
    #[arg(long, value_name = "FILE.json")]
    pub stats: Option<PathBuf>,

    /// Run without a window even if a display exists.
    #[arg(long)]
    pub headless: bool,

    /// Player fed with the stream (headless default: none; GUI default: mpv).
    #[arg(long, value_enum, value_name = "mpv|ffplay|none")]
    pub player: Option<PlayerChoice>,

    /// Local UDP address (default: 127.0.0.1:0 when every PoP is loopback, else the wildcard
    /// of the PoPs' address family).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,

    /// Playout latency in milliseconds: how long lost packets have to be re-sent before
    /// the player needs them (more: more loss recovered, more delay).
    #[arg(long, value_name = "MS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub latency: u64,

    /// Watch at the two best PoPs at once and keep the first copy of each packet: the
    /// failure of one PoP then costs no packet (twice the traffic to this client).
    #[arg(long)]
    pub dual: bool,

    /// Seed of the client machine's randomness (default: from the clock and the process id).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Print the channel list of the chosen PoP and exit.
    #[arg(long)]
    pub list: bool,
}

/// How the client runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The egui window.
    Gui,
    /// No window: list channels or watch one, then exit.
    Headless,
}

/// Whether a graphical session is reachable, from the two variables winit looks at.
pub fn display_available(display: Option<&str>, wayland: Option<&str>) -> bool {
    display.is_some_and(|d| !d.is_empty()) || wayland.is_some_and(|w| !w.is_empty())
}

impl Args {
    /// Headless with `--headless` or `--list`, or when there is something to watch but nowhere
    /// to show a window; the GUI otherwise.
    pub fn mode(&self, has_display: bool) -> Mode {
        if self.headless || self.list || (self.watch.is_some() && !has_display) {
            Mode::Headless
        } else {
            Mode::Gui
        }
    }

    /// The address to bind: `--bind`, or one of the PoPs' family and scope (see
    /// [`default_bind`]).
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        match self.bind {
            Some(b) => Ok(b),
            None => default_bind(&self.pops),
        }
    }

    /// `--seed`, or something different for every run.
    pub fn seed(&self) -> u64 {
        self.seed.unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 32)
        })
    }
}

/// A socket bound to loopback can only talk to loopback, and one bound to the wildcard sends
/// loopback-destined datagrams from a non-loopback source that tests must not see; so the
/// default follows the PoPs: loopback when all of them are, the family's wildcard otherwise.
/// An IPv4 socket cannot reach an IPv6 PoP (and vice versa), so mixed families need `--bind`.
pub fn default_bind(pops: &[SocketAddr]) -> Result<SocketAddr, String> {
    let v4 = pops.iter().filter(|p| p.is_ipv4()).count();
    let v6 = pops.len() - v4;
    if v4 > 0 && v6 > 0 {
        return Err("the PoPs mix IPv4 and IPv6 addresses: pass --bind to choose".to_owned());
    }
    let loopback = !pops.is_empty() && pops.iter().all(|p| p.ip().is_loopback());
    let ip = match (v6 > 0, loopback) {
        (false, true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (false, false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (true, true) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (true, false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    Ok(SocketAddr::new(ip, 0))
}

/// `IP:PORT`, or `HOST:PORT` resolved to its first address.
fn parse_pop(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    s.to_socket_addrs()
        .map_err(|e| format!("`{s}` is not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("`{s}` resolves to no address"))
}

/// Positive seconds, fractions allowed (`2.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("duration must be positive, got `{s}`"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("meshcast-client").chain(args.iter().copied()))
    }

    #[test]
    fn loopback_pops_bind_loopback_and_others_bind_the_wildcard() {
        let a = parse(&["--pops", "127.0.0.1:7000,127.0.0.2:7000"]).unwrap();
        assert_eq!(a.bind_addr().unwrap(), "127.0.0.1:0".parse().unwrap());
        let a = parse(&["--pops", "127.0.0.1:7000,10.0.0.2:7000"]).unwrap();
        assert_eq!(a.bind_addr().unwrap(), "0.0.0.0:0".parse().unwrap());
        let a = parse(&["--pops", "[::1]:7000"]).unwrap();
        assert_eq!(a.bind_addr().unwrap(), "[::1]:0".parse().unwrap());
        let a = parse(&["--pops", "[2001:db8::1]:7000"]).unwrap();
        assert_eq!(a.bind_addr().unwrap(), "[::]:0".parse().unwrap());
        let a = parse(&["--pops", "127.0.0.1:7000", "--bind", "127.0.0.9:5000"]).unwrap();
        assert_eq!(a.bind_addr().unwrap(), "127.0.0.9:5000".parse().unwrap());
    }

    #[test]
    fn mixed_address_families_need_an_explicit_bind() {
        let a = parse(&["--pops", "127.0.0.1:7000,[::1]:7000"]).unwrap();
        assert!(a.bind_addr().is_err());
    }

    #[test]
    fn watching_without_a_display_is_headless() {
        let a = parse(&["--pops", "127.0.0.1:1", "--watch", "x"]).unwrap();
        assert_eq!(a.mode(false), Mode::Headless);
        assert_eq!(a.mode(true), Mode::Gui);
        let a = parse(&["--pops", "127.0.0.1:1", "--list"]).unwrap();
        assert_eq!(a.mode(true), Mode::Headless);
        let a = parse(&["--pops", "127.0.0.1:1", "--headless", "--watch", "x"]).unwrap();
        assert_eq!(a.mode(true), Mode::Headless);
        let a = parse(&["--pops", "127.0.0.1:1"]).unwrap();
        assert_eq!(a.mode(true), Mode::Gui);
    }

    #[test]
    fn display_detection_ignores_empty_variables() {
        assert!(!display_available(None, None));
        assert!(!display_available(Some(""), Some("")));
        assert!(display_available(Some(":0"), None));
        assert!(display_available(None, Some("wayland-0")));
    }

    #[test]
    fn bad_arguments_are_rejected() {
        assert!(parse(&[]).is_err(), "--pops is required");
        assert!(parse(&["--pops", "nonsense"]).is_err());
        assert!(parse(&["--pops", "127.0.0.1:1", "--duration", "0"]).is_err());
        assert!(parse(&["--pops", "127.0.0.1:1", "--duration", "-3"]).is_err());
        assert!(parse(&["--pops", "127.0.0.1:1", "--player", "vlc"]).is_err());
        let a = parse(&[
            "--pops",
            "127.0.0.1:1",
            "--duration",
            "2.5",
            "--player",
            "ffplay",
        ])
        .unwrap();
        assert_eq!(a.duration, Some(Duration::from_millis(2500)));
        assert_eq!(a.player, Some(PlayerChoice::Ffplay));
    }
}
