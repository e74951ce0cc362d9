//! `status` (`/api/overview` + `/api/nodes`) and `health`
//! (`/api/health/checks/…`, `/api/aliveness-test/{vhost}`).

use serde_json::{json, Value};

use super::args::Check;
use super::context::{line, pretty, pretty_value, Ctx, Format};
use super::http::CtlError;
use super::path::seg;
use super::table::lookup;

/// Runs `status`. Without the node list (a user without the monitoring
/// tag is refused it) the overview still prints, with the refusal noted.
///
/// # Errors
/// The overview is refused or the server cannot be reached.
pub fn status(ctx: &Ctx) -> Result<String, CtlError> {
    let overview = ctx.client.get("/overview")?;
    let Some(ov) = overview.json().filter(Value::is_object) else {
        return Ok(line(&overview.text));
    };
    let nodes = match ctx.client.get("/nodes") {
        Ok(r) => r.json().ok_or(r.text),
        Err(CtlError::Refused {
            status,
            error,
            reason,
            ..
        }) => Err(format!("{status} {error}: {reason}")),
        Err(e) => return Err(e),
    };
    if ctx.format == Format::Json {
        let nodes = nodes.unwrap_or_else(Value::String);
        return Ok(pretty_value(&json!({"overview": ov, "nodes": nodes})));
    }
    let node = nodes.as_ref().ok().and_then(|n| this_node(n, &ov));
    Ok(report(&ov, node, nodes.as_ref().err()))
}

/// The node entry named by the overview's `node`, else the first.
fn this_node<'a>(nodes: &'a Value, ov: &Value) -> Option<&'a Value> {
    let list = nodes.as_array()?;
    let name = ov.get("node");
    list.iter()
        .find(|n| n.get("name").is_some() && n.get("name") == name)
        .or(list.first())
}

/// The status lines.
fn report(ov: &Value, node: Option<&Value>, nodes_error: Option<&String>) -> String {
    let s = |v: &Value, p: &str| lookup(v, p).map(text).unwrap_or_default();
    let product = match (s(ov, "product_name"), s(ov, "product_version")) {
        (n, v) if !n.is_empty() && !v.is_empty() => format!("{n} {v}"),
        _ => format!("RabbitMQ {}", s(ov, "rabbitmq_version")),
    };
    let mut rows = vec![
        ("product", product),
        ("node", s(ov, "node")),
        ("cluster", s(ov, "cluster_name")),
    ];
    if let Some(n) = node {
        let up = lookup(n, "uptime").and_then(Value::as_u64);
        rows.push(("uptime", up.map(duration).unwrap_or_default()));
    }
    for k in ["connections", "channels", "queues", "consumers"] {
        rows.push((k, s(ov, &format!("object_totals.{k}"))));
    }
    rows.push((
        "messages",
        format!(
            "{} (ready {}, unacknowledged {})",
            s(ov, "queue_totals.messages"),
            s(ov, "queue_totals.messages_ready"),
            s(ov, "queue_totals.messages_unacknowledged")
        ),
    ));
    if let Some(n) = node {
        rows.push((
            "memory",
            resource(n, "mem_used", "mem_limit", "mem_alarm", "used"),
        ));
        rows.push((
            "disk",
            resource(n, "disk_free", "disk_free_limit", "disk_free_alarm", "free"),
        ));
    }
    if let Some(e) = nodes_error {
        rows.push(("nodes", format!("not shown: {e}")));
    }
    rows.iter()
        .map(|(k, v)| {
            format!("{:<13}{}\n", format!("{k}:"), v)
                .trim_end()
                .to_owned()
                + "\n"
        })
        .collect()
}

/// `131.3 MiB used, limit 9.4 GiB, alarm: no`.
fn resource(n: &Value, amount: &str, limit: &str, alarm: &str, what: &str) -> String {
    let bytes_at = |k: &str| {
        lookup(n, k)
            .and_then(Value::as_u64)
            .map_or_else(|| "?".to_owned(), bytes)
    };
    let alarm = match lookup(n, alarm) {
        Some(Value::Bool(true)) => "ALARM",
        Some(Value::Bool(false)) => "no",
        _ => "?",
    };
    format!(
        "{} {what}, limit {}, alarm: {alarm}",
        bytes_at(amount),
        bytes_at(limit)
    )
}

/// A value as plain text (strings unquoted).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `1536` -> `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Milliseconds as `1d 2h 3m 4s`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

/// Runs `health CHECK`: prints `ok`; a failed check (503) is an error
/// naming the reason and the alarms in effect.
///
/// # Errors
/// The check failed or was refused, or the server cannot be reached.
pub fn health(ctx: &Ctx, check: Check) -> Result<String, CtlError> {
    let path = match check {
        Check::Alarms => "/health/checks/alarms".to_owned(),
        Check::LocalAlarms => "/health/checks/local-alarms".to_owned(),
        Check::VirtualHosts => "/health/checks/virtual-hosts".to_owned(),
        Check::Aliveness => format!("/aliveness-test/{}", seg(ctx.vhost())),
    };
    let reply = ctx.client.get(&path).map_err(with_alarms)?;
    let status = reply
        .json()
        .and_then(|v| v.get("status")?.as_str().map(str::to_owned));
    Ok(match (ctx.format, status) {
        (Format::Table, Some(s)) => format!("{s}\n"),
        _ => pretty(&reply),
    })
}

/// A failed check's reason with its `alarms` listed.
fn with_alarms(e: CtlError) -> CtlError {
    let CtlError::Refused {
        status,
        error,
        reason,
        body,
    } = e
    else {
        return e;
    };
    let alarms: Vec<String> = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("alarms")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|a| format!("{} on {}", text(&a["resource"]), text(&a["node"])))
        .collect();
    let reason = if alarms.is_empty() {
        reason
    } else {
        format!("{reason} ({})", alarms.join("; "))
    };
    CtlError::Refused {
        status,
        error,
        reason,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_like_rabbitmq_tools() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(10_110_604_083), "9.4 GiB");
        assert_eq!(duration(4_000), "4s");
        assert_eq!(duration(3_723_000), "1h 2m 3s");
        assert_eq!(duration(90_061_000), "1d 1h 1m 1s");
    }

    #[test]
    fn a_failed_check_lists_its_alarms() {
        let body = r#"{"alarms":[{"node":"rabbit@localhost","resource":"disk space"}],"reason":"There are alarms in effect in the cluster","status":"failed"}"#;
        let e = with_alarms(CtlError::refused(
            503,
            body,
            "GET /api/health/checks/alarms",
        ));
        assert_eq!(
            e.to_string(),
            "503 failed: There are alarms in effect in the cluster (disk space on rabbit@localhost)"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn status_survives_odd_shapes() {
        let ov = json!({"node": 7, "object_totals": "x", "queue_totals": null});
        let out = report(&ov, Some(&json!([1, 2])), None);
        assert!(out.contains("product:     RabbitMQ"), "{out}");
        assert!(
            out.contains("memory:      ? used, limit ?, alarm: ?"),
            "{out}"
        );
    }
}
