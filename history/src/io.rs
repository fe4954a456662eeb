//! Reading and writing histories as JSON lines.

use std::fmt;
use std::io::{self, BufRead, Write};

use crate::event::Event;

/// Why a JSON-lines history could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The underlying reader failed.
    Io(io::Error),
    /// A line is not a valid event.
    Json {
        /// 1-based line number.
        line: usize,
        /// What serde_json said.
        error: serde_json::Error,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "read error: {e}"),
            Self::Json { line, error } => write!(f, "line {line}: bad event JSON: {error}"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Json { error, .. } => Some(error),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads a JSON-lines history: one event per line; blank lines are skipped.
///
/// Returns each event with its 1-based line number, in file order.
pub fn read_jsonl<R: BufRead>(reader: R) -> Result<Vec<(usize, Event)>, ReadError> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let event =
            Event::from_json(trimmed).map_err(|error| ReadError::Json { line: i + 1, error })?;
        out.push((i + 1, event));
    }
    Ok(out)
}

/// Writes one event as a JSON line (with the trailing newline).
///
/// A recorder that may be killed should flush after each line (or wrap a file, not a `BufWriter`).
pub fn write_event<W: Write>(mut writer: W, event: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut writer, event).map_err(io::Error::from)?;
    writer.write_all(b"\n")
}

/// Writes events as JSON lines.
pub fn write_jsonl<'a, W: Write>(
    mut writer: W,
    events: impl IntoIterator<Item = &'a Event>,
) -> io::Result<()> {
    for event in events {
        write_event(&mut writer, event)?;
    }
    writer.flush()
}
