//! `ringmqctl` (also `ringmq ctl`): a command line for the management HTTP
//! API, in the spirit of rabbitmqadmin. It speaks only the API, so it
//! works against ringmq and RabbitMQ 3.10 alike; it is not a broker
//! client and holds no state.
//!
//! | File | Concern |
//! |---|---|
//! | `args.rs` | the command line (clap derive) |
//! | `context.rs` | client + vhost + output format handed to every command |
//! | `http.rs` | blocking client, errors, exit codes |
//! | `path.rs` | percent-encoding of names in paths |
//! | `table.rs` | rows of JSON as aligned columns |
//! | `list.rs` | `list` |
//! | `objects.rs` | `declare`, `delete`, `purge` |
//! | `messages.rs` | `publish`, `get` |
//! | `access.rs` | `add user`, `set`/`clear permissions` |
//! | `definitions.rs` | `export`, `import` |
//! | `connections.rs` | `close connection` |
//! | `status.rs` | `status`, `health` |
//!
//! Exit codes: 0 done, 1 refused by the server (`error: <status> <error>:
//! <reason>` on stderr) or another failure, 2 usage, 3 cannot connect.

pub mod access;
pub mod args;
pub mod connections;
pub mod context;
pub mod definitions;
pub mod http;
pub mod list;
pub mod messages;
pub mod objects;
pub mod path;
pub mod status;
pub mod table;

use std::io::Write as _;

use clap::Parser as _;

use args::{Cli, Command};
use context::Ctx;
use http::{Client, CtlError, Endpoint};

/// Parses `args` (the first is the program name), runs the command,
/// prints its output on stdout or its error on stderr, and returns the
/// exit code.
pub fn main_with(args: impl IntoIterator<Item = String>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that exit 0.
            let _ = e.print();
            return e.exit_code();
        }
    };
    let ctx = Ctx {
        client: Client::new(&Endpoint {
            host: cli.host,
            port: cli.port,
            user: cli.user,
            password: cli.password,
        }),
        vhost: cli.vhost,
        format: cli.format,
    };
    match run(&ctx, &cli.command) {
        Ok(out) => {
            // A closed stdout (`| head`) is not worth a panic.
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
            0
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "error: {}", chain(&e));
            e.exit_code()
        }
    }
}

/// Runs one command; its output, ready to print.
///
/// # Errors
/// Whatever the command met; see [`CtlError::exit_code`].
pub fn run(ctx: &Ctx, command: &Command) -> Result<String, CtlError> {
    match command {
        Command::List(a) => list::run(ctx, a),
        Command::Declare(d) => objects::declare(ctx, d),
        Command::Delete(d) => objects::delete(ctx, d),
        Command::Purge(p) => objects::purge(ctx, p),
        Command::Publish(a) => messages::publish(ctx, a),
        Command::Get(a) => messages::get(ctx, a),
        Command::Add(a) => access::add(ctx, a),
        Command::Set(s) => access::set(ctx, s),
        Command::Clear(c) => access::clear(ctx, c),
        Command::Export { file } => definitions::export(ctx, file),
        Command::Import { file } => definitions::import(ctx, file),
        Command::Close(c) => connections::close(ctx, c),
        Command::Status => status::status(ctx),
        Command::Health { check } => status::health(ctx, *check),
    }
}

/// `e` and its sources, `: `-separated.
fn chain(e: &CtlError) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
