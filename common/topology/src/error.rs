//! Errors and warnings, each pointing at a place in the topology file.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a topology file.
///
/// Displays as `file:line:column: field: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// File name the text came from (the `origin` given to the parser).
    pub file: String,
    /// 1-based line of the offending value.
    pub line: usize,
    /// 1-based column (in characters) of the offending value.
    pub column: usize,
    /// Dotted path of the field, such as `node.addr` or `link.between`;
    /// `toml` for syntax errors.
    pub field: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )
    }
}

/// A topology file could not be used.
#[derive(thiserror::Error, Debug)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("{}: cannot read topology file: {source}", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file was read but is not a valid topology. Holds every problem
    /// found, sorted by position; never empty.
    #[error("{}", DiagnosticList(.0))]
    Invalid(Vec<Diagnostic>),
}

impl TopologyError {
    /// The problems found, empty for [`TopologyError::Io`].
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            TopologyError::Io { .. } => &[],
            TopologyError::Invalid(diagnostics) => diagnostics,
        }
    }
}

/// Displays diagnostics one per line.
struct DiagnosticList<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Something suspicious that does not prevent using the topology.
///
/// Displays as `file:line: warning: message` (or `file: warning: message`
/// when it concerns the file as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyWarning {
    /// File name the text came from.
    pub file: String,
    /// 1-based line concerned, if any.
    pub line: Option<usize>,
    /// What looks wrong.
    pub message: String,
}

impl fmt::Display for TopologyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: warning: {}", self.file, line, self.message),
            None => write!(f, "{}: warning: {}", self.file, self.message),
        }
    }
}
