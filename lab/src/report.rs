//! What the lab prints: the table of running processes and the summary of a client's stats.

use serde_json::Value;

/// One line of the "what runs where" table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Process id in the topology.
    pub id: String,
    /// Role (`bootstrapper`, `server`, `node`, `client`).
    pub role: String,
    /// Address it listens on, or for a client the PoPs it uses.
    pub addr: String,
    /// Its PID.
    pub pid: u32,
    /// Its log file.
    pub log: String,
}

/// Formats `rows` as left-aligned columns under a header, one line per row, each ending in `\n`.
pub fn format_table(rows: &[Row]) -> String {
    let header = ["ID", "ROLE", "ADDR", "PID", "LOG"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.role.clone(),
                r.addr.clone(),
                r.pid.to_string(),
                r.log.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_line = |line: [&str; 5]| {
        let mut text = String::new();
        for (i, (cell, width)) in line.iter().zip(widths).enumerate() {
            if i + 1 == line.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    push_line(header);
    for row in &cells {
        push_line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    out
}

/// The figures of a client's stats file the lab reports. Each is `None` when the file does not
/// hold it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientSummary {
    /// Watch request to first media packet, in milliseconds.
    pub startup_ms: Option<f64>,
    /// Media packets received.
    pub media_packets: Option<u64>,
    /// TS continuity counter errors seen.
    pub continuity_errors: Option<u64>,
    /// Number of stalls (gaps over 200 ms).
    pub stalls: Option<u64>,
}

impl ClientSummary {
    /// Picks the figures out of a client stats document. The keys `startup_ms`,
    /// `media_packets`, `continuity_errors` and `stalls` are looked up at the top level first,
    /// then in nested objects (breadth first). `stalls` may be a count, a list of stalls, or an
    /// object with a `count`.
    pub fn from_json(stats: &Value) -> ClientSummary {
        ClientSummary {
            startup_ms: find_key(stats, "startup_ms").and_then(Value::as_f64),
            media_packets: find_key(stats, "media_packets").and_then(as_count),
            continuity_errors: find_key(stats, "continuity_errors").and_then(as_count),
            stalls: find_key(stats, "stalls").and_then(|v| match v {
                Value::Array(items) => Some(items.len() as u64),
                Value::Object(map) => map.get("count").and_then(as_count),
                other => as_count(other),
            }),
        }
    }

    /// Parses the text of a stats file.
    pub fn parse(text: &str) -> Result<ClientSummary, serde_json::Error> {
        Ok(ClientSummary::from_json(&serde_json::from_str(text)?))
    }
}

impl std::fmt::Display for ClientSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn count(value: Option<u64>) -> String {
            value.map_or_else(|| "?".to_owned(), |v| v.to_string())
        }
        let startup = self
            .startup_ms
            .map_or_else(|| "?".to_owned(), |ms| format!("{ms:.0}"));
        write!(
            f,
            "startup {startup} ms, {} media packets, {} continuity errors, {} stalls",
            count(self.media_packets),
            count(self.continuity_errors),
            count(self.stalls)
        )
    }
}

fn as_count(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

/// The value of the first `key` found breadth first in `value`'s objects and arrays.
fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let mut queue = std::collections::VecDeque::from([value]);
    while let Some(current) = queue.pop_front() {
        match current {
            Value::Object(map) => {
                if let Some(found) = map.get(key).filter(|v| !v.is_null()) {
                    return Some(found);
                }
                queue.extend(map.values());
            }
            Value::Array(items) => queue.extend(items),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_columns_align_and_lines_have_no_trailing_spaces() {
        let rows = [
            Row {
                id: "boot".into(),
                role: "bootstrapper".into(),
                addr: "127.0.0.1:7000".into(),
                pid: 101,
                log: "runs/x/logs/boot.log".into(),
            },
            Row {
                id: "viewer".into(),
                role: "client".into(),
                addr: "pops n4,n3".into(),
                pid: 99999,
                log: "runs/x/logs/viewer.log".into(),
            },
        ];
        let expected = "\
ID      ROLE          ADDR            PID    LOG
boot    bootstrapper  127.0.0.1:7000  101    runs/x/logs/boot.log
viewer  client        pops n4,n3      99999  runs/x/logs/viewer.log
";
        assert_eq!(format_table(&rows), expected);
    }

    #[test]
    fn empty_table_is_just_the_header() {
        assert_eq!(format_table(&[]), "ID  ROLE  ADDR  PID  LOG\n");
    }

    #[test]
    fn summary_reads_flat_stats() {
        let stats = json!({
            "startup_ms": 812.4,
            "media_packets": 9450,
            "continuity_errors": 0,
            "stalls": 2
        });
        let summary = ClientSummary::from_json(&stats);
        assert_eq!(
            summary,
            ClientSummary {
                startup_ms: Some(812.4),
                media_packets: Some(9450),
                continuity_errors: Some(0),
                stalls: Some(2)
            }
        );
        assert_eq!(
            summary.to_string(),
            "startup 812 ms, 9450 media packets, 0 continuity errors, 2 stalls"
        );
    }

    #[test]
    fn summary_finds_nested_keys_and_counts_stall_lists() {
        let stats = json!({
            "client": {"startup_ms": null},
            "playback": {"startup_ms": 300, "stalls": [{"at_ms": 5000, "ms": 400}]},
            "media": {"media_packets": 12.0, "ts": {"continuity_errors": 3}}
        });
        let summary = ClientSummary::from_json(&stats);
        assert_eq!(summary.startup_ms, Some(300.0));
        assert_eq!(summary.stalls, Some(1));
        assert_eq!(summary.media_packets, Some(12));
        assert_eq!(summary.continuity_errors, Some(3));
    }

    #[test]
    fn summary_of_unknown_shapes_shows_question_marks() {
        let summary = ClientSummary::parse(r#"{"stalls": {"count": 4}}"#).unwrap();
        assert_eq!(
            summary.to_string(),
            "startup ? ms, ? media packets, ? continuity errors, 4 stalls"
        );
        assert!(ClientSummary::parse("not json").is_err());
    }
}
