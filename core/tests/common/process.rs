//! The broker binary as a child process, for tests that kill it or start
//! it as an operator would.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringmq_protocol::client::blocking::Connection;
use ringmq_protocol::client::ConnectOptions;

/// Starts `ringmq --listen addr ARGS…` (in `cwd` if given) and returns once
/// a handshake completes: a killed predecessor's listener may linger for a
/// moment and accept, then reset. Panics if the broker exits or does not
/// serve within 20 s.
pub fn start_broker(addr: SocketAddr, args: &[&str], cwd: Option<&Path>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmq"));
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .args(["--listen", &addr.to_string()])
        .args(args)
        .env("RINGMQ_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("broker binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Connection::connect(addr, &ConnectOptions::default()).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the broker exited with {status}");
        }
        assert!(Instant::now() < deadline, "broker did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}
