//! What every command gets: the client, the virtual host it acts in, and
//! how to print what the server answered.

use serde_json::Value;

use super::http::{Client, Reply};
use super::table;

/// How answers print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns under a header row.
    Table,
    /// The API's JSON as it came, pretty-printed.
    Json,
}

/// A command's surroundings.
pub struct Ctx {
    /// The logged-in client.
    pub client: Client,
    /// `--vhost`, if given: lists and exports cover every vhost without it.
    pub vhost: Option<String>,
    /// `--format`.
    pub format: Format,
}

impl Ctx {
    /// The vhost an action applies to: `--vhost`, else `/`.
    pub fn vhost(&self) -> &str {
        self.vhost.as_deref().unwrap_or("/")
    }

    /// A list answer as the chosen format: a table of `columns` when it is
    /// a JSON array, else pretty JSON, else the raw text.
    pub fn show(&self, reply: &Reply, columns: &[String]) -> String {
        match (self.format, reply.json()) {
            (Format::Table, Some(Value::Array(rows))) => table::render(columns, &rows),
            _ => pretty(reply),
        }
    }
}

/// The body as pretty JSON, or as received when it is not JSON; ends in a
/// newline unless empty.
pub fn pretty(reply: &Reply) -> String {
    match reply.json() {
        Some(v) => pretty_value(&v),
        None => line(&reply.text),
    }
}

/// `v` as pretty JSON with a final newline.
pub fn pretty_value(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

/// `text` ending in a newline (empty stays empty).
pub fn line(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}
