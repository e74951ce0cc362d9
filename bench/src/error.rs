//! The harness's errors: each names what it was doing and the target or
//! setting involved, so the one line printed on exit says what to fix.

use std::path::PathBuf;

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The target URL cannot be used.
    #[error("invalid target '{url}': {reason}")]
    BadTarget {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The scenario is invalid.
    #[error("invalid scenario '{scenario}': {key}: {reason}")]
    BadScenario {
        /// Scenario name.
        scenario: String,
        /// The offending setting.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A scenario file cannot be read or parsed.
    #[error("scenario file {path}: {reason}")]
    ScenarioFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Nothing answers at the target address.
    #[error("cannot connect to {addr} ({what})")]
    Unreachable {
        /// host:port.
        addr: String,
        /// Which connection (setup, publisher 0, ...).
        what: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The broker refused the login or the handshake failed.
    #[error("handshake with {addr} failed: {reason}")]
    Handshake {
        /// host:port.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The broker closed a channel or the connection.
    #[error("{what}: broker closed the {scope}: {code} {text}")]
    Closed {
        /// Which connection.
        what: String,
        /// "channel" or "connection".
        scope: &'static str,
        /// Reply code.
        code: u16,
        /// Reply text.
        text: String,
    },
    /// The broker sent something this client cannot make sense of.
    #[error("{what}: protocol error: {reason}")]
    Protocol {
        /// Which connection.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// Socket error during the run.
    #[error("{what}: i/o error")]
    Io {
        /// Which connection.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// No reply in time.
    #[error("{what}: timed out waiting for {waiting_for}")]
    Timeout {
        /// Which connection.
        what: String,
        /// What was expected.
        waiting_for: String,
    },
    /// The `--check` assertions failed.
    #[error("check failed: {0}")]
    Check(String),
    /// Writing or reading report files.
    #[error("cannot access {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The CPU time of a process cannot be read.
    #[error("cannot read the CPU time of process {pid} (is it running?)")]
    Process {
        /// The pid.
        pid: u32,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A report file has the wrong content.
    #[error("{path}: {reason}")]
    BadReport {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A command-line setting is out of range.
    #[error("invalid --{key}: {reason}")]
    BadOption {
        /// The flag, without dashes.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A server binary is not where it was looked for.
    #[error("{what} binary not found at {path} (build the workspace, or pass --{flag} PATH)")]
    MissingBinary {
        /// "broker" or "gateway".
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// The flag that names it.
        flag: &'static str,
    },
    /// A server process cannot be started.
    #[error("cannot start {path}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A (re)started server did not answer.
    #[error("{what} did not come up: {reason} (log: {log})")]
    NotReady {
        /// "broker" or "gateway".
        what: &'static str,
        /// It exited, or the time it was given.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
    /// The run directory cannot be used.
    #[error("run directory {path}: {reason}")]
    RunDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Draining a queue after a restart went wrong.
    #[error("draining queue {queue}: {reason}")]
    Drain {
        /// The queue.
        queue: String,
        /// What went wrong.
        reason: String,
    },
    /// A client thread of the harness panicked (a harness bug).
    #[error("{what}: thread panicked")]
    Panicked {
        /// Which client.
        what: String,
    },
}

impl BenchError {
    /// The message with its causes, on one line: for places that print an
    /// error without a report chain (comparison tables).
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cause = c.source();
        }
        s
    }

    /// An i/o error on the connection named `what`.
    pub fn io(what: &str, source: std::io::Error) -> BenchError {
        BenchError::Io {
            what: what.to_owned(),
            source,
        }
    }

    /// A protocol error on the connection named `what`.
    pub fn protocol(what: &str, reason: impl Into<String>) -> BenchError {
        BenchError::Protocol {
            what: what.to_owned(),
            reason: reason.into(),
        }
    }
}
