//! Writing a [`Topology`] back out in the canonical TOML form.

use std::fmt::Write as _;

use crate::Topology;
use crate::spec::{ClientSpec, HostSpec, LinkSpec, NetSpec, NodeSpec};

/// The canonical text of `topology`: `name`, then every `[[node]]`,
/// `[[link]]`, `[[client]]`, `[[host]]` and `[[net]]` in order, optional
/// fields only when set.
pub(crate) fn to_toml(topology: &Topology) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "name = {}", quote(topology.name()));
    for node in topology.nodes() {
        let _ = write_node(&mut out, node);
    }
    for link in topology.links() {
        let _ = write_link(&mut out, link);
    }
    for client in topology.clients() {
        let _ = write_client(&mut out, client);
    }
    for host in topology.hosts() {
        let _ = write_host(&mut out, host);
    }
    for net in topology.nets() {
        let _ = write_net(&mut out, net);
    }
    out
}

fn write_node(out: &mut String, node: &NodeSpec) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "[[node]]")?;
    writeln!(out, "id = {}", quote(&node.id))?;
    writeln!(out, "role = {}", quote(node.role.as_str()))?;
    writeln!(out, "addr = {}", quote(&node.addr.to_string()))
}

fn write_link(out: &mut String, link: &LinkSpec) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "[[link]]")?;
    writeln!(out, "between = [{}, {}]", quote(&link.a), quote(&link.b))?;
    let attrs = [
        ("latency_ms", link.attrs.latency_ms),
        ("jitter_ms", link.attrs.jitter_ms),
        ("loss", link.attrs.loss),
        ("rate_mbit", link.attrs.rate_mbit),
    ];
    for (key, value) in attrs {
        if let Some(value) = value {
            writeln!(out, "{key} = {}", float(value))?;
        }
    }
    Ok(())
}

fn write_client(out: &mut String, client: &ClientSpec) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "[[client]]")?;
    writeln!(out, "id = {}", quote(&client.id))?;
    let pops: Vec<String> = client.pops.iter().map(|pop| quote(pop)).collect();
    writeln!(out, "pops = [{}]", pops.join(", "))?;
    if let Some(addr) = client.addr {
        writeln!(out, "addr = {}", quote(&addr.to_string()))?;
    }
    if let Some(watch) = &client.watch {
        writeln!(out, "watch = {}", quote(watch))?;
    }
    if let Some(host) = &client.host {
        writeln!(out, "host = {}", quote(host))?;
    }
    Ok(())
}

fn write_host(out: &mut String, host: &HostSpec) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "[[host]]")?;
    writeln!(out, "id = {}", quote(&host.id))?;
    if host.router {
        writeln!(out, "router = true")?;
    }
    Ok(())
}

fn write_net(out: &mut String, net: &NetSpec) -> std::fmt::Result {
    writeln!(out)?;
    writeln!(out, "[[net]]")?;
    writeln!(out, "subnet = {}", quote(&net.subnet.to_string()))?;
    let members: Vec<String> = net
        .members
        .iter()
        .map(|member| {
            format!(
                "{} = {}",
                key(&member.host),
                quote(&member.addr.to_string())
            )
        })
        .collect();
    writeln!(out, "members = {{ {} }}", members.join(", "))?;
    if let Some(rate) = net.rate_mbit {
        writeln!(out, "rate_mbit = {}", float(rate))?;
    }
    Ok(())
}

/// A TOML key: bare when it may be (`n1`, `r_3-a`), quoted otherwise
/// (a bare `a.b` would be a dotted key).
fn key(text: &str) -> String {
    let bare = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if bare { text.to_owned() } else { quote(text) }
}

/// A TOML float that reads back as exactly `value`.
///
/// `Debug` prints the shortest text that round-trips and always marks the
/// value as a float (`5.0`, `0.01`, `1e-7`), all valid TOML floats.
/// Validated topologies hold only finite values; the other cases keep the
/// output valid anyway.
fn float(value: f64) -> String {
    if value.is_nan() {
        "nan".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{value:?}")
    }
}

/// A TOML basic string holding `text`.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
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
