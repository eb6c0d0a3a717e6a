//! Turning TOML text into a validated [`Topology`], collecting every problem
//! with the line and column of the offending value.
//!
//! The text is parsed into the toml crate's spanned document tree
//! ([`DeTable`]) and walked by hand rather than through `serde` derives:
//! a derive stops at the first unknown field or wrong type, while walking
//! the tree lets every problem in the file be reported at once.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{Diagnostic, TopologyError, TopologyWarning};
use crate::graph;
use crate::spec::{
    ClientSpec, HostSpec, Ipv4Subnet, LinkAttrs, LinkSpec, NetMember, NetSpec, NodeSpec, Role,
};
use crate::{Loaded, Topology};

type Span = Range<usize>;
type Value<'i> = Spanned<DeValue<'i>>;

/// Longest allowed node or client id, in characters.
pub const MAX_ID_LEN: usize = 32;

const TOP_FIELDS: &[&str] = &["name", "node", "link", "links", "client", "host", "net"];
/// Top-level keys that hold plain values: written after a `[[...]]` header
/// they silently become fields of that table.
const TOP_VALUES: &[&str] = &["name", "links"];
const NODE_FIELDS: &[&str] = &["id", "role", "addr"];
const LINK_FIELDS: &[&str] = &["between", "latency_ms", "jitter_ms", "loss", "rate_mbit"];
const CLIENT_FIELDS: &[&str] = &["id", "pops", "addr", "watch", "host"];
const HOST_FIELDS: &[&str] = &["id", "router"];
const NET_FIELDS: &[&str] = &["subnet", "members", "rate_mbit"];

/// Whether `c` may appear in an id.
pub(crate) fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Parses and validates `text`; `origin` names the file in messages and
/// provides the default topology name.
pub(crate) fn parse(text: &str, origin: &str) -> Result<Loaded, TopologyError> {
    let mut checker = Checker::new(text, origin);
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        for error in &syntax_errors {
            let span = error.span().unwrap_or(0..0);
            let mut message = error.message().trim_end().to_owned();
            if message == "duplicate key"
                && let Some(key) = text.get(span.clone()).filter(|key| !key.is_empty())
            {
                message = format!("duplicate key `{key}`: a key may appear only once per table");
            }
            checker.error(&span, "toml", message);
        }
        return Err(checker.into_error());
    }
    let root = root.into_inner();

    checker.unknown_fields(&root, "", TOP_FIELDS);
    let name = checker.name(&root);
    let (nodes, nodes_readable) = checker.nodes(&root);
    let clients = checker.clients(&root);
    let links = checker.links(&root);
    let hosts = checker.hosts(&root);
    let (nets, nets_readable) = checker.nets(&root);

    checker.check_unique_ids(&nodes, &clients);
    checker.check_unique_host_ids(&hosts);
    checker.check_nets(&nets, &hosts);
    checker.check_placement(&nodes, &clients, &hosts, &nets, nets_readable);
    checker.check_unique_addrs(&nodes, &clients);
    checker.check_roles(&nodes, nodes_readable);
    let roles: HashMap<&str, Option<Role>> = nodes
        .iter()
        .filter_map(|node| Some((node.id.as_ref()?.get_ref().as_str(), node.role())))
        .collect();
    checker.check_links(&links, &roles);
    checker.check_pops(&clients, &roles);

    if !checker.diagnostics.is_empty() {
        return Err(checker.into_error());
    }
    let Some(topology) = checker.build(name, &nodes, &links, &clients, &hosts, &nets) else {
        // Unreachable in practice: every reason for `build` to fail has
        // been diagnosed above. Still, never panic on input.
        checker.error(&(0..0), "node", "the topology could not be assembled");
        return Err(checker.into_error());
    };
    let warnings = checker.warnings(&topology, &nodes);
    Ok(Loaded { topology, warnings })
}

/// The name of a topology read from `origin` that has no `name` field.
fn default_name(origin: &str) -> String {
    Path::new(origin)
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .filter(|stem| !stem.is_empty())
        .unwrap_or_else(|| "topology".to_owned())
}

/// `a string`, `an integer`, ... for messages about wrong types.
fn a_type(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Joins ids for messages: `a, b, c`.
fn id_list<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let ids: BTreeSet<&str> = ids.into_iter().collect();
    if ids.is_empty() {
        "none defined".to_owned()
    } else {
        ids.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// A `[[node]]` as far as it could be understood.
struct RawNode {
    header: Span,
    id: Option<Spanned<String>>,
    role: Option<Spanned<Role>>,
    addr: Option<Spanned<SocketAddr>>,
}

impl RawNode {
    fn role(&self) -> Option<Role> {
        self.role.as_ref().map(|role| *role.get_ref())
    }
}

/// A `[[client]]` as far as it could be understood.
struct RawClient {
    id: Option<Spanned<String>>,
    pops: Vec<Spanned<String>>,
    addr: Option<Spanned<SocketAddr>>,
    watch: Option<String>,
    host: Option<Spanned<String>>,
}

/// A `[[host]]` as far as it could be understood.
struct RawHost {
    id: Option<Spanned<String>>,
    router: bool,
}

/// A `[[net]]` as far as it could be understood.
struct RawNet {
    subnet: Option<Spanned<Ipv4Subnet>>,
    members: Vec<RawMember>,
    rate_mbit: Option<f64>,
}

/// One `host = "address"` entry of a net's `members`.
struct RawMember {
    host: Spanned<String>,
    addr: Option<Spanned<Ipv4Addr>>,
}

/// A link from `[[link]]` or `links`, with where it was written.
struct RawLink {
    /// Where the link starts in the file, to keep file order across both forms.
    start: usize,
    /// The `between` pair (or the compact pair).
    pair: Span,
    field: &'static str,
    a: Spanned<String>,
    b: Spanned<String>,
    attrs: LinkAttrs,
}

/// Walks the document, collecting diagnostics.
struct Checker<'t> {
    file: &'t str,
    text: &'t str,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    diagnostics: Vec<Diagnostic>,
}

impl<'t> Checker<'t> {
    fn new(text: &'t str, file: &'t str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Checker {
            file,
            text,
            line_starts,
            diagnostics: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        // `line_starts[0] == 0 <= offset`, so at least one line qualifies.
        let line = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line, column + 1)
    }

    fn line(&self, span: &Span) -> usize {
        self.position(span.start).0
    }

    fn error(&mut self, span: &Span, field: &str, message: impl Into<String>) {
        let (line, column) = self.position(span.start);
        self.diagnostics.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn into_error(mut self) -> TopologyError {
        self.diagnostics
            .sort_by_key(|diagnostic| (diagnostic.line, diagnostic.column));
        TopologyError::Invalid(self.diagnostics)
    }

    fn warning(&self, line: Option<usize>, message: String) -> TopologyWarning {
        TopologyWarning {
            file: self.file.to_owned(),
            line,
            message,
        }
    }

    // ----- generic value access -------------------------------------------

    /// Reports keys of `table` not in `allowed`; `section` is empty for the
    /// top level.
    fn unknown_fields(&mut self, table: &DeTable<'_>, section: &str, allowed: &[&str]) {
        for key in table.keys() {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let valid = allowed.join(", ");
            if section.is_empty() {
                self.error(
                    &key.span(),
                    name,
                    format!("unknown top-level field {name:?} (valid fields: {valid})"),
                );
            } else {
                let hint = if TOP_VALUES.contains(&name) {
                    format!("; a top-level {name:?} must come before the first [[...]] header")
                } else {
                    String::new()
                };
                self.error(
                    &key.span(),
                    &format!("{section}.{name}"),
                    format!(
                        "unknown field {name:?} in [[{section}]] (valid fields: {valid}){hint}"
                    ),
                );
            }
        }
    }

    /// The tables of an array of tables such as `[[node]]`, with their
    /// spans, and whether every entry was a table.
    fn tables<'v, 'i>(
        &mut self,
        root: &'v DeTable<'i>,
        key: &str,
    ) -> (Vec<(&'v DeTable<'i>, Span)>, bool) {
        let Some(value) = root.get(key) else {
            return (Vec::new(), true);
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.error(
                &value.span(),
                key,
                format!(
                    "expected an array of tables written [[{key}]], found {}",
                    a_type(value.get_ref())
                ),
            );
            return (Vec::new(), false);
        };
        let mut tables = Vec::new();
        let mut all_tables = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(table) => tables.push((table, item.span())),
                other => {
                    all_tables = false;
                    self.error(
                        &item.span(),
                        key,
                        format!("expected a table, found {}", a_type(other)),
                    );
                }
            }
        }
        (tables, all_tables)
    }

    /// A field that must be present; reports its absence at `header`.
    fn required<'v, 'i>(
        &mut self,
        table: &'v DeTable<'i>,
        header: &Span,
        section: &str,
        key: &str,
        all_required: &str,
    ) -> Option<&'v Value<'i>> {
        let value = table.get(key);
        if value.is_none() {
            self.error(
                header,
                &format!("{section}.{key}"),
                format!("missing required field {key:?} (each [[{section}]] needs {all_required})"),
            );
        }
        value
    }

    fn string<'v>(&mut self, value: &'v Value<'_>, field: &str) -> Option<&'v str> {
        match value.get_ref() {
            DeValue::String(text) => Some(text.as_ref()),
            other => {
                self.error(
                    &value.span(),
                    field,
                    format!("expected a string, found {}", a_type(other)),
                );
                None
            }
        }
    }

    fn number(&mut self, value: &Value<'_>, field: &str) -> Option<f64> {
        let number = match value.get_ref() {
            DeValue::Integer(integer) => i64::from_str_radix(integer.as_str(), integer.radix())
                .ok()
                .map(|n| n as f64),
            DeValue::Float(float) => float.as_str().parse::<f64>().ok(),
            other => {
                self.error(
                    &value.span(),
                    field,
                    format!("expected a number, found {}", a_type(other)),
                );
                return None;
            }
        };
        if number.is_none() {
            self.error(&value.span(), field, "number out of range");
        }
        number
    }

    /// An id: checked for shape, but returned whenever it is a string so
    /// that references to it do not cascade into "unknown id" errors.
    fn id(&mut self, value: &Value<'_>, field: &str) -> Option<Spanned<String>> {
        let id = self.string(value, field)?;
        let span = value.span();
        let length = id.chars().count();
        if id.is_empty() {
            self.error(
                &span,
                field,
                format!(
                    "id must not be empty (use 1 to {MAX_ID_LEN} characters of A-Z a-z 0-9 _ . -)"
                ),
            );
        } else if length > MAX_ID_LEN {
            self.error(
                &span,
                field,
                format!("id {id:?} is {length} characters long; at most {MAX_ID_LEN} are allowed"),
            );
        } else if let Some(bad) = id.chars().find(|&c| !is_id_char(c)) {
            self.error(
                &span,
                field,
                format!(
                    "id {id:?} contains {bad:?}; only letters A-Z a-z, digits, '_', '.' and '-' are allowed"
                ),
            );
        }
        Some(Spanned::new(span, id.to_owned()))
    }

    fn addr(
        &mut self,
        value: &Value<'_>,
        field: &str,
        allow_port_zero: bool,
    ) -> Option<Spanned<SocketAddr>> {
        let text = self.string(value, field)?;
        let span = value.span();
        match text.parse::<SocketAddr>() {
            Err(_) => {
                self.error(
                    &span,
                    field,
                    format!("invalid address {text:?}: expected IP:PORT such as 127.0.0.2:7000"),
                );
                None
            }
            Ok(addr) if addr.port() == 0 && !allow_port_zero => {
                self.error(
                    &span,
                    field,
                    format!(
                        "port 0 is not allowed in {text:?}: bootstrappers, servers and nodes need a fixed port, such as 127.0.0.2:7000"
                    ),
                );
                None
            }
            Ok(addr) => Some(Spanned::new(span, addr)),
        }
    }

    /// A pair of ids such as `["s1", "n1"]`.
    fn pair(
        &mut self,
        value: &Value<'_>,
        field: &str,
    ) -> Option<(Spanned<String>, Spanned<String>)> {
        let span = value.span();
        let DeValue::Array(items) = value.get_ref() else {
            self.error(
                &span,
                field,
                format!(
                    "expected a pair of ids such as [\"s1\", \"n1\"], found {}",
                    a_type(value.get_ref())
                ),
            );
            return None;
        };
        if items.len() != 2 {
            self.error(
                &span,
                field,
                format!(
                    "expected a pair of ids such as [\"s1\", \"n1\"], found {} value(s)",
                    items.len()
                ),
            );
            return None;
        }
        let a = self.string(&items[0], field);
        let b = self.string(&items[1], field);
        Some((
            Spanned::new(items[0].span(), a?.to_owned()),
            Spanned::new(items[1].span(), b?.to_owned()),
        ))
    }

    // ----- sections ---------------------------------------------------------

    fn name(&mut self, root: &DeTable<'_>) -> Option<String> {
        let value = root.get("name")?;
        let name = self.string(value, "name")?;
        if name.trim().is_empty() {
            self.error(
                &value.span(),
                "name",
                "name must not be empty (leave it out to use the file name)",
            );
            return None;
        }
        Some(name.to_owned())
    }

    /// The `[[node]]` entries, and whether every entry was a table.
    fn nodes(&mut self, root: &DeTable<'_>) -> (Vec<RawNode>, bool) {
        const NEEDS: &str = "id, role and addr";
        let mut nodes = Vec::new();
        let (tables, all_tables) = self.tables(root, "node");
        for (table, header) in tables {
            self.unknown_fields(table, "node", NODE_FIELDS);
            let id = self
                .required(table, &header, "node", "id", NEEDS)
                .and_then(|value| self.id(value, "node.id"));
            let role = self
                .required(table, &header, "node", "role", NEEDS)
                .and_then(|value| self.role(value));
            let addr = self
                .required(table, &header, "node", "addr", NEEDS)
                .and_then(|value| self.addr(value, "node.addr", false));
            nodes.push(RawNode {
                header,
                id,
                role,
                addr,
            });
        }
        (nodes, all_tables)
    }

    fn role(&mut self, value: &Value<'_>) -> Option<Spanned<Role>> {
        let text = self.string(value, "node.role")?;
        match text.parse::<Role>() {
            Ok(role) => Some(Spanned::new(value.span(), role)),
            Err(unknown) => {
                self.error(&value.span(), "node.role", unknown.to_string());
                None
            }
        }
    }

    fn clients(&mut self, root: &DeTable<'_>) -> Vec<RawClient> {
        const NEEDS: &str = "id and pops";
        let mut clients = Vec::new();
        for (table, header) in self.tables(root, "client").0 {
            self.unknown_fields(table, "client", CLIENT_FIELDS);
            let id = self
                .required(table, &header, "client", "id", NEEDS)
                .and_then(|value| self.id(value, "client.id"));
            let pops = self
                .required(table, &header, "client", "pops", NEEDS)
                .map(|value| self.pops(value))
                .unwrap_or_default();
            let addr = table
                .get("addr")
                .and_then(|value| self.addr(value, "client.addr", true));
            let watch = table.get("watch").and_then(|value| {
                let watch = self.string(value, "client.watch")?;
                if watch.is_empty() {
                    self.error(
                        &value.span(),
                        "client.watch",
                        "channel name must not be empty (leave watch out for the default channel)",
                    );
                    return None;
                }
                Some(watch.to_owned())
            });
            let host = table
                .get("host")
                .and_then(|value| self.id(value, "client.host"));
            clients.push(RawClient {
                id,
                pops,
                addr,
                watch,
                host,
            });
        }
        clients
    }

    fn pops(&mut self, value: &Value<'_>) -> Vec<Spanned<String>> {
        const FIELD: &str = "client.pops";
        let DeValue::Array(items) = value.get_ref() else {
            self.error(
                &value.span(),
                FIELD,
                format!(
                    "expected an array of server or node ids such as [\"n1\", \"n2\"], found {}",
                    a_type(value.get_ref())
                ),
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.error(
                &value.span(),
                FIELD,
                "pops must list at least one server or node id, such as [\"n1\"]",
            );
        }
        let mut pops: Vec<Spanned<String>> = Vec::new();
        for item in items.iter() {
            let Some(pop) = self.string(item, FIELD) else {
                continue;
            };
            if pops.iter().any(|seen| seen.get_ref() == pop) {
                self.error(&item.span(), FIELD, format!("PoP {pop:?} is listed twice"));
                continue;
            }
            pops.push(Spanned::new(item.span(), pop.to_owned()));
        }
        pops
    }

    fn links(&mut self, root: &DeTable<'_>) -> Vec<RawLink> {
        let mut links = Vec::new();
        for (table, header) in self.tables(root, "link").0 {
            self.unknown_fields(table, "link", LINK_FIELDS);
            let between = self.required(table, &header, "link", "between", "between");
            let attrs = self.link_attrs(table);
            if let Some(between) = between
                && let Some((a, b)) = self.pair(between, "link.between")
            {
                links.push(RawLink {
                    start: header.start,
                    pair: between.span(),
                    field: "link.between",
                    a,
                    b,
                    attrs,
                });
            }
        }
        if let Some(compact) = root.get("links") {
            match compact.get_ref() {
                DeValue::Array(items) => {
                    for item in items.iter() {
                        if let Some((a, b)) = self.pair(item, "links") {
                            links.push(RawLink {
                                start: item.span().start,
                                pair: item.span(),
                                field: "links",
                                a,
                                b,
                                attrs: LinkAttrs::default(),
                            });
                        }
                    }
                }
                other => self.error(
                    &compact.span(),
                    "links",
                    format!(
                        "expected an array of id pairs such as [[\"s1\", \"n1\"], [\"n1\", \"n2\"]], found {}",
                        a_type(other)
                    ),
                ),
            }
        }
        links.sort_by_key(|link| link.start);
        links
    }

    fn hosts(&mut self, root: &DeTable<'_>) -> Vec<RawHost> {
        let mut hosts = Vec::new();
        for (table, header) in self.tables(root, "host").0 {
            self.unknown_fields(table, "host", HOST_FIELDS);
            let id = self
                .required(table, &header, "host", "id", "id")
                .and_then(|value| self.id(value, "host.id"));
            let router = match table.get("router") {
                None => false,
                Some(value) => match value.get_ref() {
                    DeValue::Boolean(router) => *router,
                    other => {
                        self.error(
                            &value.span(),
                            "host.router",
                            format!("expected true or false, found {}", a_type(other)),
                        );
                        false
                    }
                },
            };
            hosts.push(RawHost { id, router });
        }
        hosts
    }

    /// The `[[net]]` entries, and whether every member address could be
    /// read (otherwise placement checks would only repeat those errors).
    fn nets(&mut self, root: &DeTable<'_>) -> (Vec<RawNet>, bool) {
        const NEEDS: &str = "subnet and members";
        let mut nets = Vec::new();
        let (tables, mut readable) = self.tables(root, "net");
        for (table, header) in tables {
            self.unknown_fields(table, "net", NET_FIELDS);
            let subnet = self
                .required(table, &header, "net", "subnet", NEEDS)
                .and_then(|value| self.subnet(value));
            let members = match self.required(table, &header, "net", "members", NEEDS) {
                Some(value) => self.members(value, subnet.as_ref().map(Spanned::get_ref)),
                None => Vec::new(),
            };
            readable &= members.iter().all(|member| member.addr.is_some());
            let rate_mbit = self.attr(
                table,
                "net",
                "rate_mbit",
                |x| x.is_finite() && x > 0.0,
                "a finite number of Mbit/s > 0",
            );
            nets.push(RawNet {
                subnet,
                members,
                rate_mbit,
            });
        }
        (nets, readable)
    }

    fn subnet(&mut self, value: &Value<'_>) -> Option<Spanned<Ipv4Subnet>> {
        let text = self.string(value, "net.subnet")?;
        match text.parse::<Ipv4Subnet>() {
            Ok(subnet) if subnet.prefix() == 32 => {
                self.error(
                    &value.span(),
                    "net.subnet",
                    format!("{text} holds a single address: a net needs a prefix of at most /31"),
                );
                None
            }
            Ok(subnet) => Some(Spanned::new(value.span(), subnet)),
            Err(error) => {
                self.error(
                    &value.span(),
                    "net.subnet",
                    format!("invalid subnet {text:?}: {error}"),
                );
                None
            }
        }
    }

    /// The `members` table; addresses are checked against `subnet` when it
    /// could be read.
    fn members(&mut self, value: &Value<'_>, subnet: Option<&Ipv4Subnet>) -> Vec<RawMember> {
        const FIELD: &str = "net.members";
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                &value.span(),
                FIELD,
                format!(
                    "expected a table of host id = address such as {{ n1 = \"10.0.3.20\", r3 = \"10.0.3.1\" }}, found {}",
                    a_type(value.get_ref())
                ),
            );
            return Vec::new();
        };
        if table.is_empty() {
            self.error(
                &value.span(),
                FIELD,
                "a net needs at least one member, such as { n1 = \"10.0.3.20\" }",
            );
        }
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        let mut members = Vec::new();
        for (key, value) in entries {
            let key_value = Spanned::new(key.span(), DeValue::String(key.get_ref().clone()));
            let Some(host) = self.id(&key_value, FIELD) else {
                continue;
            };
            let addr = self.member_addr(value, host.get_ref(), subnet);
            members.push(RawMember { host, addr });
        }
        members
    }

    fn member_addr(
        &mut self,
        value: &Value<'_>,
        host: &str,
        subnet: Option<&Ipv4Subnet>,
    ) -> Option<Spanned<Ipv4Addr>> {
        const FIELD: &str = "net.members";
        let span = value.span();
        let DeValue::String(text) = value.get_ref() else {
            let hint = if matches!(value.get_ref(), DeValue::Table(_)) {
                " (a host id containing '.' must be quoted: \"my.host\" = \"10.0.3.20\")"
            } else {
                ""
            };
            self.error(
                &span,
                FIELD,
                format!(
                    "expected the address of {host:?} as a string such as \"10.0.3.20\", found {}{hint}",
                    a_type(value.get_ref())
                ),
            );
            return None;
        };
        let addr = match text.parse::<IpAddr>() {
            Ok(IpAddr::V4(addr)) => addr,
            Ok(IpAddr::V6(_)) => {
                self.error(
                    &span,
                    FIELD,
                    format!("{text} is an IPv6 address: the underlay is IPv4 only for now"),
                );
                return None;
            }
            Err(_) => {
                self.error(
                    &span,
                    FIELD,
                    format!(
                        "invalid address {text:?} for {host:?}: expected an IPv4 address such as 10.0.3.20 (no prefix, no port)"
                    ),
                );
                return None;
            }
        };
        if let Some(subnet) = subnet {
            if !subnet.contains(addr) {
                self.error(
                    &span,
                    FIELD,
                    format!("{addr} ({host}) is not inside the net's subnet {subnet}"),
                );
            } else if !subnet.is_host_addr(addr) {
                let which = if addr == subnet.network() {
                    "network"
                } else {
                    "broadcast"
                };
                self.error(
                    &span,
                    FIELD,
                    format!(
                        "{addr} ({host}) is the {which} address of {subnet}; give the host another address"
                    ),
                );
            }
        }
        Some(Spanned::new(span, addr))
    }

    fn link_attrs(&mut self, table: &DeTable<'_>) -> LinkAttrs {
        fn non_negative(x: f64) -> bool {
            x.is_finite() && x >= 0.0
        }
        LinkAttrs {
            latency_ms: self.link_attr(
                table,
                "latency_ms",
                non_negative,
                "a finite number of milliseconds >= 0",
            ),
            jitter_ms: self.link_attr(
                table,
                "jitter_ms",
                non_negative,
                "a finite number of milliseconds >= 0",
            ),
            loss: self.link_attr(
                table,
                "loss",
                |x| (0.0..=1.0).contains(&x),
                "a probability from 0 to 1, such as 0.01",
            ),
            rate_mbit: self.link_attr(
                table,
                "rate_mbit",
                |x| x.is_finite() && x > 0.0,
                "a finite number of Mbit/s > 0",
            ),
        }
    }

    fn link_attr(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        valid: fn(f64) -> bool,
        expected: &str,
    ) -> Option<f64> {
        self.attr(table, "link", key, valid, expected)
    }

    /// An optional number of `[[section]]` that must satisfy `valid`.
    fn attr(
        &mut self,
        table: &DeTable<'_>,
        section: &str,
        key: &str,
        valid: fn(f64) -> bool,
        expected: &str,
    ) -> Option<f64> {
        let value = table.get(key)?;
        let field = format!("{section}.{key}");
        let number = self.number(value, &field)?;
        if valid(number) {
            Some(number)
        } else {
            let written = self
                .text
                .get(value.span())
                .map_or_else(|| number.to_string(), str::to_owned);
            self.error(
                &value.span(),
                &field,
                format!("{key} = {written} is out of range: expected {expected}"),
            );
            None
        }
    }

    // ----- cross-checks -------------------------------------------------------

    /// Node and client ids share one namespace.
    fn check_unique_ids(&mut self, nodes: &[RawNode], clients: &[RawClient]) {
        let mut ids: Vec<(&Spanned<String>, &str)> = nodes
            .iter()
            .filter_map(|node| Some((node.id.as_ref()?, "node")))
            .chain(
                clients
                    .iter()
                    .filter_map(|client| Some((client.id.as_ref()?, "client"))),
            )
            .filter(|(id, _)| !id.get_ref().is_empty())
            .collect();
        ids.sort_by_key(|(id, _)| id.span().start);
        let mut first: HashMap<&str, (&str, usize)> = HashMap::new();
        for (id, kind) in ids {
            if let Some(&(first_kind, line)) = first.get(id.get_ref().as_str()) {
                self.error(
                    &id.span(),
                    &format!("{kind}.id"),
                    format!(
                        "duplicate id {:?} (first used by the {first_kind} at line {line}); node and client ids must all be different",
                        id.get_ref()
                    ),
                );
            } else {
                first.insert(id.get_ref(), (kind, self.line(&id.span())));
            }
        }
    }

    /// No two processes may listen on the same IP:PORT.
    fn check_unique_addrs(&mut self, nodes: &[RawNode], clients: &[RawClient]) {
        let mut addrs: Vec<(&Spanned<SocketAddr>, Option<&str>, &str)> = nodes
            .iter()
            .filter_map(|node| {
                let owner = node.id.as_ref().map(|id| id.get_ref().as_str());
                Some((node.addr.as_ref()?, owner, "node.addr"))
            })
            .chain(clients.iter().filter_map(|client| {
                let owner = client.id.as_ref().map(|id| id.get_ref().as_str());
                Some((client.addr.as_ref()?, owner, "client.addr"))
            }))
            .filter(|(addr, _, _)| addr.get_ref().port() != 0)
            .collect();
        addrs.sort_by_key(|(addr, _, _)| addr.span().start);
        let mut first: HashMap<SocketAddr, (Option<&str>, usize)> = HashMap::new();
        for (addr, owner, field) in addrs {
            if let Some(&(first_owner, line)) = first.get(addr.get_ref()) {
                let who = first_owner
                    .map_or_else(|| "another process".to_owned(), |id| format!("{id:?}"));
                self.error(
                    &addr.span(),
                    field,
                    format!(
                        "duplicate address {} (already used by {who} at line {line}); every process needs its own IP:PORT",
                        addr.get_ref()
                    ),
                );
            } else {
                first.insert(*addr.get_ref(), (owner, self.line(&addr.span())));
            }
        }
    }

    /// Host ids have their own namespace.
    fn check_unique_host_ids(&mut self, hosts: &[RawHost]) {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for id in hosts.iter().filter_map(|host| host.id.as_ref()) {
            if id.get_ref().is_empty() {
                continue;
            }
            if let Some(line) = first.get(id.get_ref().as_str()) {
                self.error(
                    &id.span(),
                    "host.id",
                    format!(
                        "duplicate host id {:?} (first declared at line {line}); host ids must all be different",
                        id.get_ref()
                    ),
                );
            } else {
                first.insert(id.get_ref(), self.line(&id.span()));
            }
        }
    }

    /// Members are declared hosts, once per net; addresses are unique
    /// across the underlay; subnets do not overlap.
    fn check_nets(&mut self, nets: &[RawNet], hosts: &[RawHost]) {
        let known: BTreeSet<&str> = hosts
            .iter()
            .filter_map(|host| Some(host.id.as_ref()?.get_ref().as_str()))
            .collect();
        let known_list = id_list(known.iter().copied());
        let mut addrs: HashMap<Ipv4Addr, (&str, usize)> = HashMap::new();
        let mut subnets: Vec<(Ipv4Subnet, usize)> = Vec::new();
        for net in nets {
            if let Some(subnet) = &net.subnet {
                let line = self.line(&subnet.span());
                if let Some((other, other_line)) = subnets
                    .iter()
                    .find(|(other, _)| other.overlaps(subnet.get_ref()))
                {
                    self.error(
                        &subnet.span(),
                        "net.subnet",
                        format!(
                            "subnet {} overlaps {other} of the net at line {other_line}; every net needs its own subnet",
                            subnet.get_ref()
                        ),
                    );
                } else {
                    subnets.push((*subnet.get_ref(), line));
                }
            }
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            for member in &net.members {
                let host = member.host.get_ref().as_str();
                if !known.contains(host) {
                    self.error(
                        &member.host.span(),
                        "net.members",
                        format!("unknown host id {host:?} (declared hosts: {known_list})"),
                    );
                }
                if !seen.insert(host) {
                    self.error(
                        &member.host.span(),
                        "net.members",
                        format!("host {host:?} is listed twice in this net"),
                    );
                }
                let Some(addr) = &member.addr else {
                    continue;
                };
                if let Some(&(owner, line)) = addrs.get(addr.get_ref()) {
                    self.error(
                        &addr.span(),
                        "net.members",
                        format!(
                            "duplicate address {} (already given to {owner:?} at line {line}); every interface needs its own address",
                            addr.get_ref()
                        ),
                    );
                } else {
                    addrs.insert(*addr.get_ref(), (host, self.line(&addr.span())));
                }
            }
        }
    }

    /// With an underlay, every process address belongs to a host; client
    /// hosts are declared hosts, and need an underlay.
    fn check_placement(
        &mut self,
        nodes: &[RawNode],
        clients: &[RawClient],
        hosts: &[RawHost],
        nets: &[RawNet],
        nets_readable: bool,
    ) {
        let known: BTreeSet<&str> = hosts
            .iter()
            .filter_map(|host| Some(host.id.as_ref()?.get_ref().as_str()))
            .collect();
        for client in clients {
            let Some(host) = &client.host else {
                continue;
            };
            if hosts.is_empty() {
                self.error(
                    &host.span(),
                    "client.host",
                    "host needs an underlay: declare the [[host]] and [[net]] sections, or leave host out",
                );
            } else if !known.contains(host.get_ref().as_str()) {
                self.error(
                    &host.span(),
                    "client.host",
                    format!(
                        "unknown host id {:?} (declared hosts: {})",
                        host.get_ref(),
                        id_list(known.iter().copied())
                    ),
                );
            }
        }
        if hosts.is_empty() || !nets_readable {
            return;
        }
        let addrs: BTreeSet<Ipv4Addr> = nets
            .iter()
            .flat_map(|net| &net.members)
            .filter_map(|member| Some(*member.addr.as_ref()?.get_ref()))
            .collect();
        for node in nodes {
            let Some(addr) = &node.addr else {
                continue;
            };
            let ip = addr.get_ref().ip();
            let message = match ip {
                IpAddr::V4(v4) if addrs.contains(&v4) => continue,
                IpAddr::V4(_) => format!(
                    "no host has the address {ip}: with an underlay, each process runs on the host owning its IP; add {ip} to a [[net]]'s members"
                ),
                IpAddr::V6(_) => format!(
                    "{ip} is an IPv6 address, but the underlay is IPv4 only for now; use the IPv4 address of a host"
                ),
            };
            self.error(&addr.span(), "node.addr", message);
        }
    }

    /// Exactly one bootstrapper, at least one server or node.
    fn check_roles(&mut self, nodes: &[RawNode], nodes_readable: bool) {
        // A node whose role could not be read might have been meant as
        // anything; do not pile guesses on top of that error.
        let all_roles_known = nodes_readable && nodes.iter().all(|node| node.role.is_some());
        let bootstrappers: Vec<&RawNode> = nodes
            .iter()
            .filter(|node| node.role() == Some(Role::Bootstrapper))
            .collect();
        match bootstrappers.split_first() {
            None if all_roles_known => self.error(
                &(0..0),
                "node.role",
                "no bootstrapper: exactly one [[node]] must have role = \"bootstrapper\"",
            ),
            None => {}
            Some((first, others)) => {
                let first_name = first
                    .id
                    .as_ref()
                    .map_or_else(|| "one".to_owned(), |id| format!("{:?}", id.get_ref()));
                let first_line = self.line(
                    &first
                        .role
                        .as_ref()
                        .map_or(first.header.clone(), |role| role.span()),
                );
                for other in others {
                    let span = other
                        .role
                        .as_ref()
                        .map_or(other.header.clone(), |r| r.span());
                    self.error(
                        &span,
                        "node.role",
                        format!(
                            "more than one bootstrapper: exactly one is allowed, the first is {first_name} at line {first_line}"
                        ),
                    );
                }
            }
        }
        if all_roles_known
            && !nodes
                .iter()
                .any(|node| node.role().is_some_and(Role::is_overlay))
        {
            self.error(
                &(0..0),
                "node",
                "no overlay node: add at least one [[node]] with role = \"server\" or role = \"node\"",
            );
        }
    }

    fn check_links(&mut self, links: &[RawLink], roles: &HashMap<&str, Option<Role>>) {
        let known = id_list(roles.keys().copied());
        let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
        for link in links {
            let (a, b) = (link.a.get_ref().as_str(), link.b.get_ref().as_str());
            let ends = if a == b {
                &[&link.a][..]
            } else {
                &[&link.a, &link.b][..]
            };
            for end in ends {
                match roles.get(end.get_ref().as_str()) {
                    None => self.error(
                        &end.span(),
                        link.field,
                        format!("unknown node id {:?} (known ids: {known})", end.get_ref()),
                    ),
                    Some(Some(Role::Bootstrapper)) => self.error(
                        &end.span(),
                        link.field,
                        format!(
                            "bootstrapper takes no links ({:?} is the bootstrapper; only servers and nodes form the overlay)",
                            end.get_ref()
                        ),
                    ),
                    Some(_) => {}
                }
            }
            if a == b {
                self.error(
                    &link.pair,
                    link.field,
                    format!("self-link: {a:?} is linked to itself"),
                );
                continue;
            }
            let key = if a < b { (a, b) } else { (b, a) };
            if let Some(&line) = seen.get(&key) {
                self.error(
                    &link.pair,
                    link.field,
                    format!(
                        "duplicate link between {a:?} and {b:?} (first at line {line}; {a}-{b} and {b}-{a} are the same link)"
                    ),
                );
            } else {
                seen.insert(key, self.line(&link.pair));
            }
        }
    }

    fn check_pops(&mut self, clients: &[RawClient], roles: &HashMap<&str, Option<Role>>) {
        let valid = id_list(
            roles
                .iter()
                .filter(|(_, role)| role.is_some_and(Role::is_overlay))
                .map(|(id, _)| *id),
        );
        for pop in clients.iter().flat_map(|client| &client.pops) {
            match roles.get(pop.get_ref().as_str()) {
                None => self.error(
                    &pop.span(),
                    "client.pops",
                    format!(
                        "unknown node id {:?} (valid PoPs, the servers and nodes: {valid})",
                        pop.get_ref()
                    ),
                ),
                Some(Some(Role::Bootstrapper)) => self.error(
                    &pop.span(),
                    "client.pops",
                    format!(
                        "{:?} is the bootstrapper, which cannot be a PoP; use a server or node (valid PoPs: {valid})",
                        pop.get_ref()
                    ),
                ),
                Some(_) => {}
            }
        }
    }

    // ----- result -------------------------------------------------------------

    /// Assembles the topology once no diagnostic was raised.
    fn build(
        &self,
        name: Option<String>,
        nodes: &[RawNode],
        links: &[RawLink],
        clients: &[RawClient],
        hosts: &[RawHost],
        nets: &[RawNet],
    ) -> Option<Topology> {
        let nodes: Vec<NodeSpec> = nodes
            .iter()
            .filter_map(|node| {
                Some(NodeSpec {
                    id: node.id.as_ref()?.get_ref().clone(),
                    role: node.role()?,
                    addr: *node.addr.as_ref()?.get_ref(),
                })
            })
            .collect();
        let links = links
            .iter()
            .map(|link| LinkSpec {
                a: link.a.get_ref().clone(),
                b: link.b.get_ref().clone(),
                attrs: link.attrs,
            })
            .collect();
        let clients = clients
            .iter()
            .filter_map(|client| {
                Some(ClientSpec {
                    id: client.id.as_ref()?.get_ref().clone(),
                    pops: client
                        .pops
                        .iter()
                        .map(|pop| pop.get_ref().clone())
                        .collect(),
                    addr: client.addr.as_ref().map(|addr| *addr.get_ref()),
                    watch: client.watch.clone(),
                    host: client.host.as_ref().map(|host| host.get_ref().clone()),
                })
            })
            .collect();
        let hosts = hosts
            .iter()
            .map(|host| {
                Some(HostSpec {
                    id: host.id.as_ref()?.get_ref().clone(),
                    router: host.router,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let nets = nets
            .iter()
            .map(|net| {
                Some(NetSpec {
                    subnet: *net.subnet.as_ref()?.get_ref(),
                    members: net
                        .members
                        .iter()
                        .map(|member| {
                            Some(NetMember {
                                host: member.host.get_ref().clone(),
                                addr: *member.addr.as_ref()?.get_ref(),
                            })
                        })
                        .collect::<Option<Vec<_>>>()?,
                    rate_mbit: net.rate_mbit,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let bootstrapper = nodes
            .iter()
            .position(|node| node.role == Role::Bootstrapper)?;
        Some(Topology {
            name: name.unwrap_or_else(|| default_name(self.file)),
            nodes,
            links,
            clients,
            hosts,
            nets,
            bootstrapper,
        })
    }

    fn warnings(&self, topology: &Topology, raw_nodes: &[RawNode]) -> Vec<TopologyWarning> {
        let lines: HashMap<&str, usize> = raw_nodes
            .iter()
            .filter_map(|node| {
                let id = node.id.as_ref()?;
                Some((id.get_ref().as_str(), self.line(&id.span())))
            })
            .collect();
        let mut warnings = Vec::new();
        if topology.overlay_nodes().count() > 1 {
            for node in topology.overlay_nodes() {
                if !topology
                    .links()
                    .iter()
                    .any(|link| link.other_end(&node.id).is_some())
                {
                    warnings.push(self.warning(
                        lines.get(node.id.as_str()).copied(),
                        format!("{} {:?} has no links", node.role, node.id),
                    ));
                }
            }
        }
        if !topology
            .overlay_nodes()
            .any(|node| node.role == Role::Server)
        {
            warnings.push(self.warning(
                None,
                "no node has role = \"server\", so nothing will be streamed".to_owned(),
            ));
        }
        let components = graph::components(topology.nodes(), topology.links());
        if components.len() > 1 {
            let listed: Vec<String> = components
                .iter()
                .map(|component| format!("{{{}}}", component.join(", ")))
                .collect();
            warnings.push(self.warning(
                None,
                format!(
                    "overlay graph is disconnected: {} components {}",
                    components.len(),
                    listed.join(" ")
                ),
            ));
        }
        let underlay = graph::underlay_components(topology.hosts(), topology.nets());
        if underlay.len() > 1 {
            let listed: Vec<String> = underlay
                .iter()
                .map(|component| format!("{{{}}}", component.join(", ")))
                .collect();
            warnings.push(self.warning(
                None,
                format!(
                    "underlay is disconnected: {} components {}; hosts in different components cannot reach each other",
                    underlay.len(),
                    listed.join(" ")
                ),
            ));
        }
        warnings
    }
}
