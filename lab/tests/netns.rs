//! The namespace network engine against the real kernel: forwarding through routers, LANs,
//! teardown and crash cleanup, rollback of bad plans, rate limits, `ip netns exec`.
//! Needs root (without it every test prints why and passes) and iproute2 (without it they fail).
//! Every address here lives only inside namespaces the test created.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshcast_lab::netns::{
    self, NETNS_DIR, NetPlan, Netns, NetnsError, NsHost, NsMember, NsNet, PlanError, STATE_FILE,
};

/// Whether this machine can run the tests (root); see [`common::netns_ready`].
fn ready() -> bool {
    common::netns_ready()
}

/// A per-test state dir, removed on every path.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("meshcast-netns-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cleanup_stale` on drop, for tests that leak a network on purpose.
struct StaleGuard<'a>(&'a Path);

impl Drop for StaleGuard<'_> {
    fn drop(&mut self) {
        let _ = netns::cleanup_stale(self.0);
    }
}

/// A child killed and reaped on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn host(name: &str, router: bool) -> NsHost {
    NsHost {
        name: name.to_owned(),
        router,
    }
}

fn net(prefix_len: u8, members: &[(&str, Ipv4Addr)]) -> NsNet {
    NsNet {
        prefix_len,
        members: members
            .iter()
            .map(|(h, addr)| NsMember {
                host: (*h).to_owned(),
                addr: *addr,
            })
            .collect(),
        rate_mbit: None,
    }
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn ns_exists(name: &str) -> bool {
    Path::new(NETNS_DIR).join(name).exists()
}

/// A UDP socket bound to `addr` inside `host`'s namespace.
fn bind_in(net: &Netns, host: &str, addr: Ipv4Addr) -> UdpSocket {
    let socket = net
        .run_in(host, move || UdpSocket::bind((addr, 0)))
        .expect("enter namespace")
        .unwrap_or_else(|e| panic!("bind {addr} in {host}: {e}"));
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    socket
}

/// Waits up to `wait` for a datagram on `socket`.
fn recv_within(socket: &UdpSocket, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 2048];
    while Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            return Some((buf[..n].to_vec(), from));
        }
    }
    None
}

/// Sends a datagram from `a` (on host `ha` at `a_addr`) to `b` (on `hb` at `b_addr`) and a
/// reply back; says what went wrong if anything did.
fn round_trip(
    net: &Netns,
    ha: &str,
    a_addr: Ipv4Addr,
    hb: &str,
    b_addr: Ipv4Addr,
) -> Result<(), String> {
    let a = bind_in(net, ha, a_addr);
    let b = bind_in(net, hb, b_addr);
    let to_b = b.local_addr().map_err(|e| e.to_string())?;
    let msg = format!("{ha} to {hb}");
    a.send_to(msg.as_bytes(), to_b)
        .map_err(|e| format!("send {ha} -> {hb}: {e}"))?;
    let (got, from) = recv_within(&b, Duration::from_secs(3))
        .ok_or_else(|| format!("{hb} got nothing from {ha}"))?;
    if got != msg.as_bytes() || from != a.local_addr().map_err(|e| e.to_string())? {
        return Err(format!("{hb} got {got:?} from {from}"));
    }
    b.send_to(b"reply", from)
        .map_err(|e| format!("send {hb} -> {ha}: {e}"))?;
    let (got, from) =
        recv_within(&a, Duration::from_secs(3)).ok_or_else(|| format!("{ha} got no reply"))?;
    if got != b"reply" || from != to_b {
        return Err(format!("{ha} got {got:?} from {from}"));
    }
    Ok(())
}

/// Whether a datagram from `ha` reaches `hb` within half a second (a send error counts as no).
fn arrives(net: &Netns, ha: &str, a_addr: Ipv4Addr, hb: &str, b_addr: Ipv4Addr) -> bool {
    let a = bind_in(net, ha, a_addr);
    let b = bind_in(net, hb, b_addr);
    let to_b = b.local_addr().expect("addr");
    if a.send_to(b"probe", to_b).is_err() {
        return false;
    }
    recv_within(&b, Duration::from_millis(500)).is_some()
}

/// h1 —— r1 —— h2, r1 a router when `router`.
fn three_in_a_row(router: bool) -> NetPlan {
    NetPlan {
        hosts: vec![host("h1", false), host("r1", router), host("h2", false)],
        nets: vec![
            net(30, &[("h1", ip(10, 50, 0, 1)), ("r1", ip(10, 50, 0, 2))]),
            net(24, &[("r1", ip(10, 50, 1, 1)), ("h2", ip(10, 50, 1, 2))]),
        ],
    }
}

#[test]
fn a_datagram_crosses_a_router_and_the_reply_comes_back() {
    if !ready() {
        return;
    }
    let dir = TempDir::new("router");
    let net = Netns::create(&dir.0, &three_in_a_row(true)).expect("create");
    let routes = net.routes("h1").expect("h1");
    assert_eq!(routes.len(), 1);
    assert_eq!(
        (routes[0].subnet, routes[0].via),
        (ip(10, 50, 1, 0), ip(10, 50, 0, 2))
    );
    round_trip(&net, "h1", ip(10, 50, 0, 1), "h2", ip(10, 50, 1, 2)).expect("through r1");
    round_trip(&net, "h2", ip(10, 50, 1, 2), "h1", ip(10, 50, 0, 1)).expect("back through r1");

    // Inside the namespaces (not the root one): no reverse-path filter, no redirects.
    for h in ["h1", "r1"] {
        let read = |key: &str| {
            net.run_in(h, || {
                std::fs::read_to_string(format!("/proc/sys/net/ipv4/{key}"))
            })
            .expect("enter")
            .expect("read sysctl")
            .trim()
            .to_owned()
        };
        for key in [
            "conf/all/rp_filter",
            "conf/eth0/rp_filter",
            "conf/eth0/accept_redirects",
        ] {
            assert_eq!(read(key), "0", "{key} in {h}");
        }
        let forwarding = if h == "r1" { "1" } else { "0" };
        assert_eq!(
            read("conf/eth0/forwarding"),
            forwarding,
            "forwarding in {h}"
        );
        assert_eq!(
            read("conf/eth0/send_redirects"),
            "0",
            "send_redirects in {h}"
        );
    }

    // It is r1's forwarding that carries them.
    net.run_in("r1", || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "0")
    })
    .expect("enter r1")
    .expect("write ip_forward");
    assert!(
        !arrives(&net, "h1", ip(10, 50, 0, 1), "h2", ip(10, 50, 1, 2)),
        "a datagram crossed r1 with forwarding off"
    );
    net.teardown().expect("teardown");
}

#[test]
fn a_host_that_is_not_a_router_does_not_forward_even_when_routed_through() {
    if !ready() {
        return;
    }
    let dir = TempDir::new("nonrouter");
    let net = Netns::create(&dir.0, &three_in_a_row(false)).expect("create");
    assert_eq!(
        net.routes("h1").map(<[_]>::len),
        Some(0),
        "no path through a non-router"
    );
    // Route h1 through the middle host by hand: it still must not forward.
    for (h, subnet, via) in [
        ("h1", "10.50.1.0/24", "10.50.0.2"),
        ("h2", "10.50.0.0/30", "10.50.1.1"),
    ] {
        let ns = net.namespace(h).expect("ns");
        let status = Command::new("ip")
            .args(["-n", ns, "route", "add", subnet, "via", via])
            .status()
            .expect("run ip");
        assert!(status.success(), "adding a route in {h}");
    }
    let forward = net
        .run_in("r1", || {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        })
        .expect("enter r1")
        .expect("read ip_forward");
    assert_eq!(forward.trim(), "0");
    assert!(
        !arrives(&net, "h1", ip(10, 50, 0, 1), "h2", ip(10, 50, 1, 2)),
        "a non-router forwarded a datagram"
    );
    // The hosts themselves are reachable: the links are up.
    round_trip(&net, "h1", ip(10, 50, 0, 1), "r1", ip(10, 50, 0, 2)).expect("h1 - r1");
    round_trip(&net, "h2", ip(10, 50, 1, 2), "r1", ip(10, 50, 1, 1)).expect("h2 - r1");
    net.teardown().expect("teardown");
}

#[test]
fn every_pair_on_a_lan_exchanges_datagrams() {
    if !ready() {
        return;
    }
    let dir = TempDir::new("lan");
    let members = [
        ("a", ip(10, 60, 0, 1)),
        ("b", ip(10, 60, 0, 2)),
        ("c", ip(10, 60, 0, 3)),
    ];
    let plan = NetPlan {
        hosts: vec![host("a", false), host("b", false), host("c", false)],
        nets: vec![net(24, &members)],
    };
    let net = Netns::create(&dir.0, &plan).expect("create");
    let bridges = Command::new("ip")
        .args([
            "-n",
            net.switch_namespace(),
            "-o",
            "link",
            "show",
            "master",
            "br0",
        ])
        .output()
        .expect("run ip");
    let ports = String::from_utf8_lossy(&bridges.stdout).lines().count();
    assert_eq!(ports, 3, "br0 has three ports in the switch namespace");
    for (ha, a_addr) in members {
        for (hb, b_addr) in members {
            if ha != hb {
                round_trip(&net, ha, a_addr, hb, b_addr).expect("pair on the LAN");
            }
        }
    }
    net.teardown().expect("teardown");
}

#[test]
fn teardown_removes_every_namespace_and_the_state_file() {
    if !ready() {
        return;
    }
    let dir = TempDir::new("teardown");
    let net = Netns::create(&dir.0, &three_in_a_row(true)).expect("create");
    let names = net.namespaces().to_vec();
    assert_eq!(names.len(), 4, "switch and three hosts: {names:?}");
    assert!(names.iter().all(|n| ns_exists(n)));
    assert_eq!(
        net.namespace("r1"),
        Some(format!("mc{}-r1", net.tag()).as_str())
    );
    assert!(dir.0.join(STATE_FILE).exists());
    net.teardown().expect("teardown");
    for name in &names {
        assert!(!ns_exists(name), "{name} survived teardown");
    }
    assert!(!dir.0.join(STATE_FILE).exists());

    // Dropping works the same.
    let net = Netns::create(&dir.0, &three_in_a_row(true)).expect("create again");
    let names = net.namespaces().to_vec();
    drop(net);
    assert!(names.iter().all(|n| !ns_exists(n)), "drop left namespaces");
}

#[test]
fn a_forgotten_network_is_removed_by_cleanup_stale() {
    if !ready() {
        return;
    }
    let dir = TempDir::new("stale");
    let _guard = StaleGuard(&dir.0);
    assert_eq!(
        netns::cleanup_stale(&dir.0).expect("empty dir"),
        Vec::<String>::new()
    );
    let net = Netns::create(&dir.0, &three_in_a_row(true)).expect("create");
    let names = net.namespaces().to_vec();
    std::mem::forget(net);
    assert!(names.iter().all(|n| ns_exists(n)));

    // A second network in the same state dir is refused while the first is recorded.
    match Netns::create(&dir.0, &three_in_a_row(true)) {
        Err(NetnsError::StaleState { .. }) => {}
        other => panic!("expected StaleState, got {other:?}"),
    }

    let mut removed = netns::cleanup_stale(&dir.0).expect("cleanup");
    removed.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(removed, expected);
    assert!(
        names.iter().all(|n| !ns_exists(n)),
        "cleanup left namespaces"
    );
    assert!(!dir.0.join(STATE_FILE).exists());
    assert_eq!(
        netns::cleanup_stale(&dir.0).expect("again"),
        Vec::<String>::new()
    );
}

#[test]
fn a_state_file_naming_foreign_namespaces_is_refused_whole() {
    let dir = TempDir::new("foreign");
    let text = r#"{"tag":"1a2b","pid":1,"namespaces":["mc1a2b","default"],"hosts":{}}"#;
    std::fs::write(dir.0.join(STATE_FILE), text).expect("write");
    match netns::cleanup_stale(&dir.0) {
        Err(NetnsError::NotOurs { name, .. }) => assert_eq!(name, "default"),
        other => panic!("expected NotOurs, got {other:?}"),
    }
    assert!(
        dir.0.join(STATE_FILE).exists(),
        "the file is kept for a person to read"
    );
}

#[test]
fn a_plan_naming_an_unknown_host_fails_and_creates_nothing() {
    if !ready() {
        return;
    }
    let dir = TempDir::new("unknown");
    let suffix = format!("unk{}", std::process::id());
    let a = format!("a{suffix}");
    let b = format!("b{suffix}");
    let plan = NetPlan {
        hosts: vec![host(&a, true), host(&b, false)],
        nets: vec![
            net(24, &[(&a, ip(10, 70, 0, 1)), (&b, ip(10, 70, 0, 2))]),
            net(24, &[(&a, ip(10, 70, 1, 1)), ("ghost", ip(10, 70, 1, 2))]),
        ],
    };
    match Netns::create(&dir.0, &plan) {
        Err(NetnsError::Plan(PlanError::UnknownHost { net: 1, host })) => assert_eq!(host, "ghost"),
        other => panic!("expected UnknownHost, got {other:?}"),
    }
    let left: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(&suffix))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(left, Vec::<String>::new());
    assert!(!dir.0.join(STATE_FILE).exists());
}

#[test]
fn a_rate_limit_installs_a_tbf_qdisc_on_each_member() {
    if !ready() {
        return;
    }
    assert!(
        Command::new("tc").arg("-V").output().is_ok(),
        "tc is missing: install iproute2"
    );
    let dir = TempDir::new("rate");
    let mut plan = three_in_a_row(true);
    plan.nets[1].rate_mbit = Some(5.0);
    let net = Netns::create(&dir.0, &plan).expect("create");
    let qdisc = |h: &str, dev: &str| {
        let out = Command::new("tc")
            .args([
                "-n",
                net.namespace(h).expect("ns"),
                "qdisc",
                "show",
                "dev",
                dev,
            ])
            .output()
            .expect("run tc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let r1 = qdisc("r1", "eth1");
    assert!(r1.contains("tbf") && r1.contains("5Mbit"), "r1 eth1: {r1}");
    let h2 = qdisc("h2", "eth0");
    assert!(h2.contains("tbf"), "h2 eth0: {h2}");
    let h1 = qdisc("h1", "eth0");
    assert!(!h1.contains("tbf"), "h1's net has no rate: {h1}");
    round_trip(&net, "h1", ip(10, 50, 0, 1), "h2", ip(10, 50, 1, 2)).expect("still routes");
    net.teardown().expect("teardown");
}

#[test]
fn a_command_runs_the_program_itself_inside_the_host_namespace() {
    if !ready() {
        return;
    }
    let Some(sleep) = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        eprintln!("skipping: no sleep binary");
        return;
    };
    let dir = TempDir::new("command");
    let net = Netns::create(&dir.0, &three_in_a_row(true)).expect("create");
    let mut command = net.command("h2", sleep).expect("h2 exists");
    assert!(net.command("nobody", sleep).is_none());
    command.arg("30").stdin(Stdio::null());
    let child = ChildGuard(command.spawn().expect("spawn"));
    let pid = child.0.id();
    let comm = || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    meshcast_lab::procs::wait_for(
        || comm().trim() == "sleep",
        Instant::now() + Duration::from_secs(5),
    );
    assert_eq!(comm().trim(), "sleep", "PID {pid} never became the program");
    use std::os::unix::fs::MetadataExt;
    let inside = std::fs::metadata(format!("/proc/{pid}/ns/net")).expect("ns of child");
    let wanted = std::fs::metadata(Path::new(NETNS_DIR).join(net.namespace("h2").expect("ns")))
        .expect("ns file");
    assert_eq!((inside.dev(), inside.ino()), (wanted.dev(), wanted.ino()));
    drop(child);
    net.teardown().expect("teardown");
}

/// A chain n0 —— n1 —— … —— n<len-1>, every inner host a router.
fn chain(len: usize) -> NetPlan {
    let name = |i: usize| format!("n{i}");
    NetPlan {
        hosts: (0..len)
            .map(|i| host(&name(i), i > 0 && i + 1 < len))
            .collect(),
        nets: (0..len - 1)
            .map(|i| {
                let i8 = i as u8;
                net(
                    24,
                    &[
                        (&name(i), ip(10, 80, i8, 1)),
                        (&name(i + 1), ip(10, 80, i8, 2)),
                    ],
                )
            })
            .collect(),
    }
}

/// 30 hosts: a ring of 6 routers, each with a LAN of 4 more hosts and a rate limit on the LAN.
fn routers_with_lans() -> NetPlan {
    let mut plan = NetPlan::default();
    for r in 0..6u8 {
        plan.hosts.push(host(&format!("r{r}"), true));
        for h in 0..4u8 {
            plan.hosts.push(host(&format!("h{r}{h}"), false));
        }
    }
    for r in 0..6u8 {
        let next = (r + 1) % 6;
        plan.nets.push(net(
            30,
            &[
                (&format!("r{r}"), ip(10, 81, r, 1)),
                (&format!("r{next}"), ip(10, 81, r, 2)),
            ],
        ));
        let mut lan = vec![(format!("r{r}"), ip(10, 82, r, 1))];
        for h in 0..4u8 {
            lan.push((format!("h{r}{h}"), ip(10, 82, r, 10 + h)));
        }
        let members: Vec<(&str, Ipv4Addr)> = lan.iter().map(|(n, a)| (n.as_str(), *a)).collect();
        let mut lan = net(24, &members);
        lan.rate_mbit = Some(100.0);
        plan.nets.push(lan);
    }
    plan
}

#[test]
fn big_networks_come_up_route_end_to_end_and_go_away_and_report_their_times() {
    if !ready() {
        return;
    }
    let dir = TempDir::new("timing");

    let started = Instant::now();
    let net = Netns::create(&dir.0, &chain(20)).expect("create chain");
    let up = started.elapsed();
    assert_eq!(net.routes("n0").map(<[_]>::len), Some(18));
    round_trip(&net, "n0", ip(10, 80, 0, 1), "n19", ip(10, 80, 18, 2)).expect("across 18 routers");
    let names = net.namespaces().to_vec();
    let started = Instant::now();
    net.teardown().expect("teardown chain");
    let down = started.elapsed();
    assert!(names.iter().all(|n| !ns_exists(n)));
    println!("20-host chain (19 links, 18 routers): up {up:?}, down {down:?}");

    let started = Instant::now();
    let net = Netns::create(&dir.0, &routers_with_lans()).expect("create 30 hosts");
    let up = started.elapsed();
    // h00 on r0's LAN to h33 on r3's LAN: four routers apart around the ring.
    round_trip(&net, "h00", ip(10, 82, 0, 10), "h33", ip(10, 82, 3, 13)).expect("across the ring");
    let route = net
        .routes("h00")
        .and_then(|r| r.iter().find(|r| r.subnet == ip(10, 82, 3, 0)))
        .expect("route to r3's LAN");
    assert_eq!(route.routers, 4, "r0, two ring routers, r3");
    let started = Instant::now();
    net.teardown().expect("teardown 30 hosts");
    let down = started.elapsed();
    println!("30 hosts (6 routers in a ring, 6 LANs with tbf): up {up:?}, down {down:?}");
}
