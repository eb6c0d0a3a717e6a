//! Interop with CORE, Mininet and the predecessor's neighbour maps, on the real CORE files and
//! maps kept in `topologies/core/` and on the repository's own topologies.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use meshcast_lab::interop::{
    self, ExportArgs, ImportArgs, ImportOptions, Imported, export, imn, neighbours,
};
use meshcast_topology::{Role, Topology};

/// A file of `topologies/core/`; its absence is a failure, not a skip.
fn reference(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../topologies/core")
        .join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn options(name: &str) -> ImportOptions {
    ImportOptions {
        name: name.to_owned(),
        ..ImportOptions::default()
    }
}

fn import_imn(name: &str) -> Imported {
    let path = reference(name);
    let scenario = imn::parse(&read(&path), name).unwrap_or_else(|e| panic!("{e}"));
    let stem = name.trim_end_matches(".imn");
    let imported = imn::import(&scenario, &options(stem)).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("--- {name} ---\n{}", imported.text);
    imported
}

fn pairs(topology: &Topology) -> BTreeSet<(String, String)> {
    topology
        .links()
        .iter()
        .map(|l| {
            let (a, b) = (l.a.clone(), l.b.clone());
            if a < b { (a, b) } else { (b, a) }
        })
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a < b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

/// A temporary directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("meshcast-interop-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    Scratch(dir)
}

#[test]
fn first_imn_imports_as_pcs_around_a_host_behind_three_routers() {
    let imported = import_imn("first.imn");
    assert_eq!(imported.notes, Vec::<String>::new());
    let t = &imported.topology;
    assert_eq!(t.name(), "first");
    let hosts: Vec<(&str, bool)> = t
        .hosts()
        .iter()
        .map(|h| (h.id.as_str(), h.router))
        .collect();
    assert_eq!(
        hosts,
        [
            ("n1", false),
            ("n2", false),
            ("n3", true),
            ("n4", false),
            ("n5", true),
            ("n6", true),
            ("n7", false)
        ]
    );
    let nets: Vec<String> = t
        .nets()
        .iter()
        .map(|n| {
            let members: Vec<String> = n
                .members
                .iter()
                .map(|m| format!("{}={}", m.host, m.addr))
                .collect();
            format!("{} {}", n.subnet, members.join(","))
        })
        .collect();
    assert_eq!(
        nets,
        [
            "10.0.0.0/24 n4=10.0.0.10,n6=10.0.0.1",
            "10.0.1.0/24 n6=10.0.1.1,n3=10.0.1.2",
            "10.0.2.0/24 n6=10.0.2.1,n5=10.0.2.2",
            "10.0.3.0/24 n3=10.0.3.1,n1=10.0.3.20",
            "10.0.4.0/24 n5=10.0.4.1,n2=10.0.4.20",
            "10.0.5.0/24 n7=10.0.5.20,n4=10.0.5.10",
        ]
    );
    let nodes: Vec<(&str, Role, String)> = t
        .nodes()
        .iter()
        .map(|n| (n.id.as_str(), n.role, n.addr.to_string()))
        .collect();
    assert_eq!(
        nodes,
        [
            ("boot", Role::Bootstrapper, "10.0.0.10:7100".to_owned()),
            ("n4", Role::Server, "10.0.0.10:7000".to_owned()),
            ("n1", Role::Node, "10.0.3.20:7000".to_owned()),
            ("n2", Role::Node, "10.0.4.20:7000".to_owned()),
            ("n7", Role::Node, "10.0.5.20:7000".to_owned()),
        ],
        "the host-model node serves, on its eth0; PCs relay"
    );
    // n7 reaches n1 and n2 only through n4, which runs a process: no direct overlay link.
    assert_eq!(
        pairs(t),
        BTreeSet::from([
            pair("n4", "n1"),
            pair("n4", "n2"),
            pair("n4", "n7"),
            pair("n1", "n2")
        ])
    );
    assert!(
        t.links().iter().all(|l| l.attrs.is_empty()),
        "bandwidth 0, no delay"
    );
    assert_eq!(t.clients().len(), 1);
    assert_eq!(t.clients()[0].pops, ["n1", "n2"], "3 hops from n4, n7 is 1");
    assert_eq!(t.client_host(&t.clients()[0]), Some("n1"));
    assert!(t.is_connected());
}

#[test]
fn second_imn_imports_its_hubs_as_lans() {
    let imported = import_imn("second.imn");
    assert_eq!(imported.notes, Vec::<String>::new());
    let t = &imported.topology;
    assert_eq!(t.hosts().len(), 19, "21 nodes, 2 of them hubs");
    assert_eq!(t.hosts().iter().filter(|h| h.router).count(), 14);
    let lans: Vec<String> = t
        .nets()
        .iter()
        .filter(|n| n.is_lan())
        .map(|n| {
            let members: Vec<&str> = n.members.iter().map(|m| m.host.as_str()).collect();
            format!("{} {}", n.subnet, members.join(","))
        })
        .collect();
    assert_eq!(lans, ["10.0.0.0/24 n1,n2,n7", "10.0.1.0/24 n3,n4,n9"]);
    assert_eq!(
        t.nets().len(),
        2 + 25,
        "two LANs and 25 links between routers"
    );
    let servers: Vec<(&str, String)> = t
        .servers()
        .map(|s| (s.id.as_str(), s.addr.to_string()))
        .collect();
    assert_eq!(servers, [("n21", "10.0.23.10:7000".to_owned())]);
    assert_eq!(t.overlay_nodes().count(), 5);
    // Every PC pair and every PC-server pair meets through routers and hubs only.
    assert_eq!(t.links().len(), 10);
    assert!(t.is_connected());
    let client = &t.clients()[0];
    assert_eq!(client.pops.len(), 2);
    assert!(
        client
            .pops
            .iter()
            .all(|p| ["n1", "n2", "n3", "n4"].contains(&p.as_str()))
    );
}

#[test]
fn the_loopback_neighbour_map_stays_a_loopback_topology() {
    let path = reference("neighbours.toml");
    let map = neighbours::parse(&read(&path), "neighbours.toml").unwrap();
    let error = neighbours::import(&map, None, &options("n")).unwrap_err();
    assert!(error.to_string().contains("--server IP"), "{error}");

    let with_servers = ImportOptions {
        servers: vec!["127.0.0.1".to_owned(), "127.0.0.2".to_owned()],
        ..options("neighbours")
    };
    let imported = neighbours::import(&map, None, &with_servers).unwrap();
    eprintln!("{}", imported.text);
    let t = &imported.topology;
    assert!(!t.has_underlay());
    let nodes: Vec<(&str, String)> = t
        .nodes()
        .iter()
        .map(|n| (n.id.as_str(), n.addr.to_string()))
        .collect();
    assert_eq!(
        nodes,
        [
            ("boot", "127.0.0.1:7100".to_owned()),
            ("s1", "127.0.0.1:7000".to_owned()),
            ("s2", "127.0.0.2:7000".to_owned()),
            ("n1", "127.0.0.3:7000".to_owned()),
            ("n2", "127.0.0.4:7000".to_owned()),
            ("n3", "127.0.0.5:7000".to_owned()),
        ]
    );
    assert_eq!(
        pairs(t),
        BTreeSet::from([
            pair("s1", "n1"),
            pair("s2", "n2"),
            pair("n1", "n2"),
            pair("n1", "n3"),
            pair("n2", "n3"),
        ])
    );
    assert_eq!(t.clients()[0].pops.len(), 2);
}

#[test]
fn the_core_neighbour_map_imports_alone_leaving_out_peers_outside_it() {
    let path = reference("neighbours_core.toml");
    let map = neighbours::parse(&read(&path), "neighbours_core.toml").unwrap();
    let imported = neighbours::import(&map, None, &options("neighbours_core")).unwrap();
    eprintln!("{}\n{:#?}", imported.text, imported.notes);
    let t = &imported.topology;
    let ids: Vec<&str> = t.overlay_nodes().map(|n| n.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "s1", "s2", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "p1", "p2", "p3"
        ]
    );
    assert_eq!(
        t.node("n6").unwrap().addr.to_string(),
        "10.0.14.1:7000",
        "first key of NODE 6"
    );
    assert_eq!(t.bootstrapper().addr.to_string(), "10.0.6.10:7100");
    let expected = BTreeSet::from([
        pair("s1", "n1"),
        pair("s2", "n2"),
        pair("n1", "n3"),
        pair("n2", "n4"),
        pair("n3", "n5"),
        pair("n3", "n4"),
        pair("n3", "n6"),
        pair("n4", "p3"),
        pair("n5", "n7"),
        pair("n6", "n7"),
        pair("n7", "p1"),
        pair("n7", "p2"),
    ]);
    assert_eq!(pairs(t), expected);
    // 10.0.19.2, 10.0.11.1 and 10.0.12.1 lie on subnets no machine of the map has a key on.
    let left_out: Vec<&str> = imported
        .notes
        .iter()
        .filter(|n| n.contains("names no machine of the map"))
        .map(String::as_str)
        .collect();
    assert_eq!(left_out.len(), 3, "{left_out:?}");
    assert!(
        left_out[0].starts_with("neighbours_core.toml:"),
        "{left_out:?}"
    );
    assert!(
        left_out
            .iter()
            .any(|n| n.contains("neighbour 10.0.19.2 of NODE 4"))
    );
    assert!(t.is_connected());
    assert_eq!(t.clients()[0].pops, ["p1", "p2", "p3"]);
}

/// A map written for these tests: first.imn's PCs as the overlay, naming peers by the
/// interface facing them.
const FIRST_MAP: &str = "# SERVER 1
\"10.0.5.10\" = [\"10.0.5.20\", \"10.0.3.20\"]
# NODE 1
\"10.0.5.20\" = [\"10.0.5.10\"]
# POP 1
\"10.0.3.20\" = [\"10.0.0.10\"]
";

#[test]
fn a_neighbour_map_can_run_on_the_underlay_of_a_scenario() {
    let scenario = imn::parse(&read(&reference("first.imn")), "first.imn").unwrap();
    let map = neighbours::parse(FIRST_MAP, "first-map.toml").unwrap();
    let imported = neighbours::import(&map, Some(&scenario), &options("first-map")).unwrap();
    eprintln!("{}", imported.text);
    let t = &imported.topology;
    assert_eq!(t.hosts().len(), 7);
    assert_eq!(t.host_of(t.node("s1").unwrap().addr.ip()).unwrap().id, "n4");
    assert_eq!(t.host_of(t.node("p1").unwrap().addr.ip()).unwrap().id, "n1");
    // 10.0.0.10 is no key, but it is host n4's address: s1 runs there.
    assert_eq!(
        pairs(t),
        BTreeSet::from([pair("s1", "n1"), pair("s1", "p1")])
    );
    assert_eq!(t.client_host(&t.clients()[0]), Some("n1"));

    let stray = FIRST_MAP.replace("\"10.0.5.20\" = [", "\"10.0.9.20\" = [");
    let map = neighbours::parse(&stray, "stray.toml").unwrap();
    let error = neighbours::import(&map, Some(&scenario), &options("x")).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("stray.toml:4: 10.0.9.20 (NODE 1) is no IPv4 interface address of first.imn"),
        "{error}"
    );
}

#[test]
fn a_core_export_reads_back_with_the_same_underlay_and_reimports_equal() {
    let imported = import_imn("first.imn");
    let dir = scratch("core-round-trip");
    let copy = dir.join("first.toml");
    let core = export::to_core(&imported.topology, &copy).unwrap();
    eprintln!("{}", core.imn);
    assert_eq!(
        core.topology, imported.topology,
        "an underlay is kept as it is"
    );

    let scenario =
        imn::parse(&core.imn, "first.imn").unwrap_or_else(|e| panic!("{e}\n{}", core.imn));
    let again = imn::import(&scenario, &options("first")).unwrap();
    assert_eq!(again.topology, imported.topology, "{}", again.text);
    // The start scripts run every process with the copy, and only on its host.
    let n4 = scenario.nodes.iter().find(|n| n.name == "n4").unwrap();
    assert_eq!(n4.model.as_deref(), Some("host"));
    assert!(n4.services.contains(&"UserDefined".to_owned()));
    let script = &n4
        .custom_configs
        .iter()
        .find(|c| c.id == "service:UserDefined:meshcast.sh")
        .unwrap()
        .config;
    assert!(
        script.contains(&format!("TOPOLOGY={}", copy.display())),
        "{script}"
    );
    assert!(script.contains("meshcast-bootstrapper --topology \"$TOPOLOGY\""));
    assert!(script.contains("meshcast-server --id n4 --bootstrapper 10.0.0.10:7100"));
    assert!(!script.contains("meshcast-node"));
    let n7 = scenario.nodes.iter().find(|n| n.name == "n7").unwrap();
    let n7_script = &n7
        .custom_configs
        .iter()
        .find(|c| c.id.ends_with("meshcast.sh"))
        .unwrap()
        .config;
    assert!(n7_script.contains("meshcast-node --id n7 --bootstrapper 10.0.0.10:7100"));
    assert!(
        n7_script.contains("ip route replace 10.0.0.10/32 via 10.0.5.10"),
        "n7 reaches the bootstrapper through n4, which is no router:\n{n7_script}"
    );
    assert!(
        scenario
            .nodes
            .iter()
            .filter(|n| n.model.as_deref() == Some("router"))
            .all(|n| n.custom_configs.is_empty())
    );
}

#[test]
fn an_overlay_only_topology_exports_to_core_on_one_switch() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/demo.toml");
    let topology = Topology::load(&demo).unwrap().topology;
    let dir = scratch("core-demo");
    let core = export::to_core(&topology, &dir.join("demo.toml")).unwrap();
    let full = export::with_underlay(&topology).unwrap();
    assert_eq!(core.topology, full);
    assert_eq!(full.hosts().len(), 6);
    assert!(
        full.nodes()
            .iter()
            .all(|n| n.addr.ip().to_string().starts_with("10.0.0."))
    );
    let copy = Topology::parse(&core.toml, "copy.toml").unwrap().topology;
    assert_eq!(
        copy, full,
        "the copy written next to the scenario is that topology"
    );

    let scenario = imn::parse(&core.imn, "demo.imn").unwrap();
    assert_eq!(
        scenario
            .nodes
            .iter()
            .filter(|n| n.kind == "lanswitch")
            .count(),
        1
    );
    let again = imn::import(&scenario, &options("demo")).unwrap().topology;
    assert_eq!(again.hosts(), full.hosts(), "same hosts and routers");
    assert_eq!(again.nets(), full.nets(), "same nets and addresses");
    assert_eq!(
        again.servers().next().unwrap().id,
        "s1",
        "the server's host is of model host"
    );
}

fn py_compile(script: &str, name: &str) {
    let dir = scratch(name);
    let path = dir.join(&format!("{name}.py"));
    std::fs::write(&path, script).unwrap();
    let output = Command::new("python3")
        .args(["-m", "py_compile"])
        .arg(&path)
        .output()
        .expect("python3 runs (the Mininet export is checked with py_compile)");
    assert!(
        output.status.success(),
        "{}\n{script}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn mininet_scripts_compile_and_name_every_host_and_link() {
    let first = import_imn("first.imn").topology;
    let demo_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topologies/demo.toml");
    let demo = Topology::load(&demo_path).unwrap().topology;
    for (name, topology) in [("first", &first), ("demo", &demo)] {
        let mininet = export::to_mininet(topology).unwrap();
        py_compile(&mininet.script, name);
        let full = export::with_underlay(topology).unwrap();
        for host in full.hosts() {
            assert!(
                mininet
                    .script
                    .contains(&format!("(\"{0}\", \"{0}\", ", host.id)),
                "{name}: host {} missing",
                host.id
            );
        }
        for net in full.nets() {
            for member in &net.members {
                let cidr = format!("\"{}/{}\"", member.addr, net.subnet.prefix());
                assert!(mininet.script.contains(&cidr), "{name}: {cidr} missing");
            }
        }
        for node in full.nodes() {
            assert!(
                mininet
                    .script
                    .contains(&format!("(\"{}\", [\"meshcast-", node.id)),
                "{name}: process {} missing",
                node.id
            );
        }
        let embedded = Topology::parse(
            mininet
                .script
                .split("TOPOLOGY_TOML = '''\\\n")
                .nth(1)
                .and_then(|rest| rest.split("'''").next())
                .unwrap(),
            "embedded.toml",
        )
        .unwrap()
        .topology;
        assert_eq!(embedded, mininet.topology);
        assert!(mininet.script.contains("TCLink") && mininet.script.contains("host.popen("));
    }
}

#[test]
fn the_cli_layer_writes_the_topology_and_exits_2_on_bad_input() {
    let dir = scratch("cli");
    let output = dir.join("imported.toml");
    let args = ImportArgs {
        input: reference("first.imn"),
        neighbours: None,
        servers: Vec::new(),
        client_at: vec!["n7".to_owned()],
        name: None,
        output: Some(output.clone()),
    };
    assert_eq!(interop::import(&args).unwrap(), ExitCode::SUCCESS);
    let written = Topology::load(&output).unwrap().topology;
    assert_eq!(written.clients()[0].pops, ["n7", "n4"]);

    let garbled = dir.join("garbled.imn");
    std::fs::write(
        &garbled,
        "node n1 {\n    type router\n    network-config {\n",
    )
    .unwrap();
    let bad = ImportArgs {
        input: garbled,
        output: Some(dir.join("never.toml")),
        ..args.clone()
    };
    assert_eq!(interop::import(&bad).unwrap(), ExitCode::from(2));
    assert!(!dir.join("never.toml").exists());

    let map = ImportArgs {
        input: reference("neighbours.toml"),
        neighbours: Some(None),
        servers: vec!["127.0.0.1".to_owned()],
        client_at: Vec::new(),
        name: Some("loop".to_owned()),
        output: Some(dir.join("loop.toml")),
    };
    assert_eq!(interop::import(&map).unwrap(), ExitCode::SUCCESS);
    assert_eq!(
        Topology::load(&dir.join("loop.toml"))
            .unwrap()
            .topology
            .name(),
        "loop"
    );

    let imn = dir.join("first.imn");
    let export_args = ExportArgs {
        core: true,
        mininet: false,
        topology: output.clone(),
        output: imn.clone(),
    };
    assert_eq!(interop::export(&export_args).unwrap(), ExitCode::SUCCESS);
    assert!(imn.is_file() && dir.join("first.toml").is_file());
    let py = ExportArgs {
        core: false,
        mininet: true,
        topology: output,
        output: dir.join("first.py"),
    };
    assert_eq!(interop::export(&py).unwrap(), ExitCode::SUCCESS);
    py_compile(&read(&dir.join("first.py")), "cli-first");
}
