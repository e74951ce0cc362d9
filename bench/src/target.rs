//! Where to send the load: `native://[user:pass@]host[:port][/vhost]` for
//! ringmq's native protocol or `amqp://[user:pass@]host[:port][/vhost]` for
//! any AMQP 0-9-1 broker. The vhost is percent-encoded (`%2f` is `/`, the
//! default). A fragment adds harness-side facts about the target:
//! `#label=rabbitmq,broker=PID,gateway=PID` (pids whose CPU time the report
//! includes).

use std::fmt;

use crate::error::BenchError;

/// The protocol spoken to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// ringmq's native protocol.
    Native,
    /// AMQP 0-9-1.
    Amqp,
}

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Protocol.
    pub protocol: Protocol,
    /// Host name or address.
    pub host: String,
    /// Port (default 5680 native, 5672 AMQP).
    pub port: u16,
    /// Login.
    pub username: String,
    /// Password (never printed).
    pub password: String,
    /// Virtual host.
    pub vhost: String,
    /// Name in tables and plots (default: protocol and port).
    pub label: String,
    /// The broker process, for its CPU time.
    pub broker_pid: Option<u32>,
    /// The gateway process, for its CPU time.
    pub gateway_pid: Option<u32>,
    /// Native: connect each publisher and consumer that uses one queue to
    /// the shard owning it, when the broker has per-shard ports
    /// (`#shard_aware=false` turns it off).
    pub shard_aware: bool,
}

impl Target {
    /// Parses a target URL.
    ///
    /// # Errors
    /// [`BenchError::BadTarget`] naming what is wrong.
    pub fn parse(url: &str) -> Result<Target, BenchError> {
        let bad = |reason: String| BenchError::BadTarget {
            url: redact(url),
            reason,
        };
        let (rest, fragment) = match url.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (url, None),
        };
        let (scheme, rest) = rest
            .split_once("://")
            .ok_or_else(|| bad("expected native://host:port or amqp://host:port".into()))?;
        let (protocol, default_port) = match scheme {
            "native" => (Protocol::Native, 5680),
            "amqp" => (Protocol::Amqp, 5672),
            "amqps" => return Err(bad("TLS (amqps) is not supported by the harness".into())),
            other => return Err(bad(format!("unknown scheme '{other}' (native or amqp)"))),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if path.contains('?') {
            return Err(bad("query parameters are not supported".into()));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => ("guest".to_owned(), "guest".to_owned()),
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                (
                    percent_decode(user).map_err(&bad)?,
                    percent_decode(pass).map_err(&bad)?,
                )
            }
        };
        let (host, port) = split_host_port(hostport, default_port).map_err(&bad)?;
        let vhost = match path {
            "" => "/".to_owned(),
            p => percent_decode(p).map_err(&bad)?,
        };
        let mut t = Target {
            protocol,
            label: format!("{scheme}:{port}"),
            host,
            port,
            username,
            password,
            vhost,
            broker_pid: None,
            gateway_pid: None,
            shard_aware: true,
        };
        for item in fragment.unwrap_or("").split(',').filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| bad(format!("fragment item '{item}' is not key=value")))?;
            let pid = || {
                v.parse::<u32>()
                    .map_err(|_| bad(format!("{k}={v}: not a process id")))
            };
            match k {
                "label" => t.label = v.to_owned(),
                "broker" => t.broker_pid = Some(pid()?),
                "gateway" => t.gateway_pid = Some(pid()?),
                "shard_aware" => {
                    t.shard_aware = v
                        .parse()
                        .map_err(|_| bad(format!("shard_aware={v}: true or false")))?
                }
                other => {
                    return Err(bad(format!(
                        "unknown fragment key '{other}' (label, broker, gateway, shard_aware)"
                    )))
                }
            }
        }
        Ok(t)
    }

    /// `host:port`, for connecting.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Pids whose CPU time is measured, with their roles.
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut v = Vec::new();
        if let Some(p) = self.broker_pid {
            v.push(("broker", p));
        }
        if let Some(p) = self.gateway_pid {
            v.push(("gateway", p));
        }
        v
    }
}

impl fmt::Display for Target {
    /// The URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.protocol {
            Protocol::Native => "native",
            Protocol::Amqp => "amqp",
        };
        write!(
            f,
            "{scheme}://{}@{}/{}",
            self.username,
            self.addr(),
            percent_encode(&self.vhost)
        )
    }
}

fn split_host_port(s: &str, default_port: u16) -> Result<(String, u16), String> {
    if s.is_empty() {
        return Err("no host".into());
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed '[' in host".to_owned())?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => p.parse().map_err(|_| format!("bad port '{p}'"))?,
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    Ok((host.to_owned(), port))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in '{s}'"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("'{s}' does not decode to UTF-8"))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// The URL with any password replaced by `***`, for error messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{}", &rest[end..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = Target::parse("amqp://guest:guest@127.0.0.1:5673/%2f").unwrap();
        assert_eq!(t.protocol, Protocol::Amqp);
        assert_eq!(t.addr(), "127.0.0.1:5673");
        assert_eq!(t.vhost, "/");
        assert_eq!(t.username, "guest");
        let t = Target::parse("native://127.0.0.1#label=ringmq,broker=42").unwrap();
        assert_eq!(t.port, 5680);
        assert_eq!(t.label, "ringmq");
        assert_eq!(t.broker_pid, Some(42));
        assert_eq!(t.vhost, "/");
        assert!(t.shard_aware);
        assert!(
            !Target::parse("native://h#shard_aware=false")
                .unwrap()
                .shard_aware
        );
        let t = Target::parse("amqp://u:p%40ss@[::1]/prod").unwrap();
        assert_eq!(t.password, "p@ss");
        assert_eq!(t.addr(), "[::1]:5672");
        assert_eq!(t.vhost, "prod");
        assert_eq!(t.to_string(), "amqp://u@[::1]:5672/prod");
    }

    #[test]
    fn refuses_bad_targets_with_a_reason_and_no_password() {
        for (url, want) in [
            ("http://x", "unknown scheme"),
            ("127.0.0.1:5672", "expected native"),
            ("amqp://h:notaport", "bad port"),
            ("amqp://u:secret@h:1/%zz", "bad percent"),
            ("native://h#pid=3", "unknown fragment key"),
            ("native://h#broker=x", "not a process id"),
            ("native://h#shard_aware=maybe", "true or false"),
            ("amqps://h", "TLS"),
        ] {
            let e = Target::parse(url).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
