//! The real `ringmq` and `ringmq-gateway` binaries as child processes:
//! started on loopback ports picked once (free at the start, reused by
//! every restart), killed with SIGKILL, restarted on the same data
//! directory, and timed until they answer. `ringmq-bench storage` starts
//! the broker alone ([`Servers::start_broker`]).
//!
//! # Invariants
//! - A child is never left running: [`Servers`] kills both on drop, so an
//!   error or a panic (unwinding) in the harness stops them too.
//! - Both processes log (stdout and stderr) to one file each in the run
//!   directory, appended across restarts, each start under a header line.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;

use crate::amqp::CheckedChannel;
use crate::error::BenchError;
use crate::target::Target;

/// The start of the header line written into a child's log file before
/// each start (followed by the start's number and ` ---`).
pub const START_HEADER: &str = "--- ringmq-bench: start";

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(5);

/// The broker settings the command line cannot give: shard threads are
/// not pinned, so the harness's own threads are not starved.
const BROKER_CONFIG: &str = "# written by ringmq-bench\n[server]\npin_cores = false\n";

/// Where the two binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `ringmq`.
    pub broker: PathBuf,
    /// `ringmq-gateway` (not looked at by [`Servers::start_broker`]).
    pub gateway: PathBuf,
}

/// `given`, else `name` next to this executable; an error unless a file.
fn find_binary(
    given: Option<&Path>,
    name: &str,
    what: &'static str,
    flag: &'static str,
) -> Result<PathBuf, BenchError> {
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
        .unwrap_or_default();
    let path = given.map_or_else(|| here.join(name), Path::to_owned);
    if path.is_file() {
        Ok(path)
    } else {
        Err(BenchError::MissingBinary { what, path, flag })
    }
}

impl Binaries {
    /// The given paths, else `ringmq` and `ringmq-gateway` next to this
    /// executable (`target/debug`, `target/release`).
    ///
    /// # Errors
    /// [`BenchError::MissingBinary`] for a path that is not a file.
    pub fn locate(broker: Option<&Path>, gateway: Option<&Path>) -> Result<Binaries, BenchError> {
        Ok(Binaries {
            broker: find_binary(broker, "ringmq", "broker", "broker")?,
            gateway: find_binary(gateway, "ringmq-gateway", "gateway", "gateway")?,
        })
    }

    /// The broker alone (for [`Servers::start_broker`]): the given path,
    /// else `ringmq` next to this executable; the gateway path is left
    /// empty.
    ///
    /// # Errors
    /// [`BenchError::MissingBinary`] for a path that is not a file.
    pub fn broker_only(broker: Option<&Path>) -> Result<Binaries, BenchError> {
        Ok(Binaries {
            broker: find_binary(broker, "ringmq", "broker", "broker")?,
            gateway: PathBuf::new(),
        })
    }
}

/// How long a (re)start took.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// Spawn until the broker completed a native handshake.
    pub broker: Duration,
    /// Spawn until, after that, an AMQP handshake through the gateway
    /// (which opens a native connection to the broker) completed.
    pub both: Duration,
}

/// A broker and a gateway, running or killed.
#[derive(Debug)]
pub struct Servers {
    bins: Binaries,
    dir: PathBuf,
    cores: usize,
    ready_timeout: Duration,
    broker_addr: SocketAddr,
    gateway_addr: SocketAddr,
    broker: Option<Child>,
    gateway: Option<Child>,
    starts: u32,
    /// `RINGMQ_LOG` of the children, unless set in the environment.
    log_filter: String,
}

fn free_port() -> Result<u16, BenchError> {
    let probe = |e| BenchError::io("port probe", e);
    let l = TcpListener::bind("127.0.0.1:0").map_err(probe)?;
    Ok(l.local_addr().map_err(probe)?.port())
}

impl Servers {
    /// Picks the ports and writes the broker's configuration into `dir`;
    /// starts nothing.
    ///
    /// # Errors
    /// No free port, `dir` not writable.
    pub fn new(
        bins: Binaries,
        dir: &Path,
        cores: usize,
        ready_timeout: Duration,
    ) -> Result<Servers, BenchError> {
        let config = dir.join("ringmq.toml");
        std::fs::write(&config, BROKER_CONFIG).map_err(|source| BenchError::File {
            path: config.clone(),
            source,
        })?;
        let broker_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let mut gateway_port = free_port()?;
        while gateway_port == broker_addr.port() {
            gateway_port = free_port()?;
        }
        Ok(Servers {
            bins,
            dir: dir.to_owned(),
            cores,
            ready_timeout,
            broker_addr,
            gateway_addr: SocketAddr::from(([127, 0, 0, 1], gateway_port)),
            broker: None,
            gateway: None,
            starts: 0,
            log_filter: "warn".into(),
        })
    }

    /// The gateway, as an AMQP target.
    pub fn amqp(&self) -> Target {
        Target {
            protocol: crate::target::Protocol::Amqp,
            host: "127.0.0.1".into(),
            port: self.gateway_addr.port(),
            username: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            label: "gateway".into(),
            broker_pid: None,
            gateway_pid: None,
            shard_aware: true,
        }
    }

    /// The broker's native address.
    pub fn native(&self) -> SocketAddr {
        self.broker_addr
    }

    /// The broker, as a native target (with its pid while it runs, for
    /// its CPU time).
    pub fn native_target(&self) -> Target {
        Target {
            protocol: crate::target::Protocol::Native,
            host: "127.0.0.1".into(),
            port: self.broker_addr.port(),
            username: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            label: "ringmq".into(),
            broker_pid: self.broker.as_ref().map(Child::id),
            gateway_pid: None,
            shard_aware: true,
        }
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The broker's log file (stdout and stderr of every start).
    pub fn broker_log(&self) -> PathBuf {
        self.log("broker")
    }

    /// Sets the children's `RINGMQ_LOG` (default `warn`); a `RINGMQ_LOG`
    /// in the environment still wins.
    pub fn set_log_filter(&mut self, filter: &str) {
        filter.clone_into(&mut self.log_filter);
    }

    fn log(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{what}.log"))
    }

    fn spawn(&self, what: &str, bin: &Path, args: &[String]) -> Result<Child, BenchError> {
        let path = self.log(what);
        let file_error = |source| BenchError::File {
            path: path.clone(),
            source,
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(file_error)?;
        writeln!(log, "{START_HEADER} {} ---", self.starts).map_err(file_error)?;
        let out = log.try_clone().map_err(file_error)?;
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(log);
        if std::env::var_os("RINGMQ_LOG").is_none() {
            cmd.env("RINGMQ_LOG", &self.log_filter);
        }
        cmd.spawn().map_err(|source| BenchError::Spawn {
            path: bin.to_owned(),
            source,
        })
    }

    /// Starts both processes (on the data directory of the previous
    /// start, if any) and waits until both answer.
    ///
    /// # Errors
    /// A process cannot be started, exits, or does not answer within the
    /// ready timeout.
    pub fn start(&mut self) -> Result<Ready, BenchError> {
        self.kill(true);
        self.starts += 1;
        let t0 = Instant::now();
        self.broker = Some(self.spawn_broker()?);
        let gateway_args = vec![
            "--listen".into(),
            self.gateway_addr.to_string(),
            "--broker".into(),
            self.broker_addr.to_string(),
            "--cores".into(),
            "1".into(),
        ];
        self.gateway = Some(self.spawn("gateway", &self.bins.gateway, &gateway_args)?);
        let deadline = t0 + self.ready_timeout;
        self.wait_broker(deadline)?;
        let broker = t0.elapsed();
        let target = self.amqp();
        self.wait("gateway", deadline, || {
            CheckedChannel::connect(&target, "probe").is_ok_and(|ch| ch.close().is_ok())
        })?;
        Ok(Ready {
            broker,
            both: t0.elapsed(),
        })
    }

    /// Starts the broker alone (on the data directory of the previous
    /// start, if any) and returns the time from spawn until it completed
    /// a native handshake: it listens only once every shard has recovered
    /// its log.
    ///
    /// # Errors
    /// As [`Servers::start`].
    pub fn start_broker(&mut self) -> Result<Duration, BenchError> {
        self.kill(true);
        self.starts += 1;
        let t0 = Instant::now();
        self.broker = Some(self.spawn_broker()?);
        self.wait_broker(t0 + self.ready_timeout)?;
        Ok(t0.elapsed())
    }

    fn spawn_broker(&self) -> Result<Child, BenchError> {
        let args = vec![
            "--config".into(),
            self.dir.join("ringmq.toml").display().to_string(),
            "--listen".into(),
            self.broker_addr.to_string(),
            "--data-dir".into(),
            self.data_dir().display().to_string(),
            "--cores".into(),
            self.cores.to_string(),
        ];
        self.spawn("broker", &self.bins.broker, &args)
    }

    fn wait_broker(&mut self, deadline: Instant) -> Result<(), BenchError> {
        let addr = self.broker_addr;
        self.wait("broker", deadline, || {
            Connection::connect(addr, &ConnectOptions::default()).is_ok()
        })
    }

    /// Polls `answers` until it holds; fails when a process exits or the
    /// deadline passes.
    fn wait(
        &mut self,
        what: &'static str,
        deadline: Instant,
        mut answers: impl FnMut() -> bool,
    ) -> Result<(), BenchError> {
        loop {
            let exited = [("broker", &mut self.broker), ("gateway", &mut self.gateway)]
                .into_iter()
                .find_map(|(name, child)| {
                    let status = child.as_mut()?.try_wait().ok().flatten()?;
                    Some((name, status))
                });
            if let Some((name, status)) = exited {
                return Err(BenchError::NotReady {
                    what: name,
                    reason: format!("it exited ({status})"),
                    log: self.log(name),
                });
            }
            if answers() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::NotReady {
                    what,
                    reason: format!("no answer within {:?}", self.ready_timeout),
                    log: self.log(what),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILLs both processes, back to back (`broker_first` or the
    /// gateway first), then reaps them.
    pub fn kill(&mut self, broker_first: bool) {
        let mut both = [self.broker.take(), self.gateway.take()];
        if !broker_first {
            both.reverse();
        }
        for c in both.iter_mut().flatten() {
            let _ = c.kill();
        }
        for c in both.iter_mut().flatten() {
            let _ = c.wait();
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.kill(true);
    }
}
