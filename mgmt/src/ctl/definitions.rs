//! `export` and `import` of definitions (`/api/definitions`, or
//! `/api/definitions/{vhost}` with `--vhost`).

use std::io::{Read as _, Write as _};

use super::context::{pretty, Ctx};
use super::http::{CtlError, Method};
use super::path::seg;

fn path(ctx: &Ctx) -> String {
    match ctx.vhost.as_deref() {
        Some(v) => format!("/definitions/{}", seg(v)),
        None => "/definitions".into(),
    }
}

/// Runs `export FILE`: the definitions as pretty JSON into `file`, or
/// printed for `-`. An answer that is not JSON is written as received.
///
/// # Errors
/// The server refused or cannot be reached; the file cannot be written.
pub fn export(ctx: &Ctx, file: &str) -> Result<String, CtlError> {
    let reply = ctx.client.get(&path(ctx))?;
    let text = pretty(&reply);
    if file == "-" {
        return Ok(text);
    }
    let written = std::fs::File::create(file).and_then(|mut f| f.write_all(text.as_bytes()));
    written.map_err(|source| CtlError::File {
        path: file.to_owned(),
        source,
    })?;
    Ok(format!("exported definitions to {file}\n"))
}

/// Runs `import FILE`: the file's bytes, checked to be JSON, sent as
/// they are (`-`: stdin).
///
/// # Errors
/// The file cannot be read or is not JSON (usage); the server refused or
/// cannot be reached.
pub fn import(ctx: &Ctx, file: &str) -> Result<String, CtlError> {
    let read = if file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(file)
    };
    let text = read.map_err(|e| CtlError::Usage(format!("cannot read {file}: {e}")))?;
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
        return Err(CtlError::Usage(format!("{file} is not JSON: {e}")));
    }
    ctx.client
        .call(Method::Post, &path(ctx), Some(&text), &[])?;
    Ok(format!("imported definitions from {file}\n"))
}
