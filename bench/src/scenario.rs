//! Scenario definitions: what load to generate, independent of the target,
//! so every target sees the same load. Read from TOML (one scenario at the
//! top level, or a suite as `[[scenario]]` entries) and/or command-line
//! flags; `validate()` names the bad key.
//!
//! Topology, derived per run ([`Topology`]):
//! - `default`: the default exchange, routing key = queue name;
//! - `direct`: queue `i` bound with key `key.i`;
//! - `fanout`: every queue bound; each message reaches every queue;
//! - `topic`: a generated set of `bindings` patterns of 3–4 words with `*`
//!   and `#` ([`topic_pattern`]), dealt round-robin to the queues; every
//!   routing key ([`topic_key`]) matches exactly one pattern.
//!
//! Publishers cycle through the routing keys, so with `direct`, `default`
//! and `topic` each message reaches exactly one queue.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::clock::STAMP_LEN;
use crate::error::BenchError;

/// Largest message body accepted (RabbitMQ's default limit).
pub const MAX_MESSAGE_SIZE: usize = 128 * 1024 * 1024;

/// The exchange messages are published to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeType {
    /// The default exchange: routing key = queue name.
    #[default]
    Default,
    /// A direct exchange, one key per queue.
    Direct,
    /// A fanout exchange to every queue.
    Fanout,
    /// A topic exchange with a generated binding set.
    Topic,
}

impl ExchangeType {
    /// Parses a name.
    pub fn parse(s: &str) -> Option<ExchangeType> {
        match s {
            "default" => Some(ExchangeType::Default),
            "direct" => Some(ExchangeType::Direct),
            "fanout" => Some(ExchangeType::Fanout),
            "topic" => Some(ExchangeType::Topic),
            _ => None,
        }
    }

    /// The AMQP exchange type name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeType::Default => "default",
            ExchangeType::Direct => "direct",
            ExchangeType::Fanout => "fanout",
            ExchangeType::Topic => "topic",
        }
    }
}

/// One load scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    /// Name in reports and tables.
    pub name: String,
    /// Publishing connections, one thread each.
    pub publishers: u32,
    /// Consuming connections, one thread each, dealt round-robin to the
    /// queues (0: publish only; otherwise at least one per queue).
    pub consumers: u32,
    /// Queues.
    pub queues: u32,
    /// Exchange type (see the module documentation).
    pub exchange: ExchangeType,
    /// Topic only: size of the generated binding set.
    pub bindings: u32,
    /// Distinct routing keys the publishers cycle through (0: one per
    /// queue, or one per binding for topic). Not used by fanout.
    pub routing_keys: u32,
    /// Body size in bytes (at least 16: the time stamp and message id).
    pub message_size: usize,
    /// delivery_mode 2 and durable queues.
    pub persistent: bool,
    /// Publisher confirms.
    pub confirms: bool,
    /// With confirms: most unconfirmed messages per publisher.
    pub in_flight: u32,
    /// Consumer prefetch (0: unlimited). Ignored with auto-ack.
    pub prefetch: u16,
    /// Deliveries need no acknowledgement.
    pub auto_ack: bool,
    /// Manual ack: acknowledge after this many deliveries.
    pub ack_every: u32,
    /// Manual ack: one `multiple` ack per `ack_every` deliveries instead of
    /// one ack each.
    pub ack_multiple: bool,
    /// Run length in seconds (when `messages` is not set).
    pub duration: f64,
    /// Total messages to publish (split between publishers); overrides
    /// `duration`.
    pub messages: Option<u64>,
    /// Fixed total publish rate, msg/s (open loop, evenly paced); unset:
    /// as fast as possible.
    pub rate: Option<f64>,
    /// Fixed rate: wake this many µs before each send and spin to its due
    /// time, hiding the timer's wake-up lateness at the cost of up to this
    /// much CPU per message (0: sleep only).
    pub spin_us: u32,
    /// Pause publishing while more than this many deliveries are
    /// outstanding (published but not consumed); 0: no limit. Keeps a
    /// closed-loop run from growing the queue without bound when the
    /// consumers are slower than the publishers.
    pub max_backlog: u64,
    /// After publishing ends, how long to wait for the rest of the
    /// deliveries (seconds without progress).
    pub drain_timeout: f64,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "default".into(),
            publishers: 1,
            consumers: 1,
            queues: 1,
            exchange: ExchangeType::Default,
            bindings: 0,
            routing_keys: 0,
            message_size: 16,
            persistent: false,
            confirms: false,
            in_flight: 100,
            prefetch: 1000,
            auto_ack: true,
            ack_every: 50,
            ack_multiple: true,
            duration: 10.0,
            messages: None,
            rate: None,
            spin_us: 0,
            max_backlog: 0,
            drain_timeout: 10.0,
        }
    }
}

/// A suite of scenarios, as read from a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    scenario: Vec<Scenario>,
}

impl Scenario {
    /// Reads a scenario file: one scenario at the top level or several as
    /// `[[scenario]]` entries.
    ///
    /// # Errors
    /// Unreadable file, bad TOML, unknown keys, invalid values.
    pub fn load_all(path: &Path) -> Result<Vec<Scenario>, BenchError> {
        let bad = |reason: String| BenchError::ScenarioFile {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let scenarios = Scenario::parse_all(&text).map_err(bad)?;
        for s in &scenarios {
            s.validate()?;
        }
        Ok(scenarios)
    }

    /// Parses scenario TOML (see [`Scenario::load_all`]); does not
    /// validate.
    ///
    /// # Errors
    /// The parser's message.
    pub fn parse_all(text: &str) -> Result<Vec<Scenario>, String> {
        // toml's own messages quote the source over several lines; keep
        // one line: where, and what.
        let one_line = |e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().trim().replace('\n', " ");
            match line {
                Some(l) => format!("line {l}: {msg}"),
                None => msg,
            }
        };
        let value: toml::Table = toml::from_str(text).map_err(one_line)?;
        if value.contains_key("scenario") {
            let suite: SuiteFile = toml::from_str(text).map_err(one_line)?;
            if suite.scenario.is_empty() {
                return Err("no [[scenario]] entries".into());
            }
            Ok(suite.scenario)
        } else {
            let s: Scenario = toml::from_str(text).map_err(one_line)?;
            Ok(vec![s])
        }
    }

    /// Checks every setting; the error names the first bad key.
    ///
    /// # Errors
    /// [`BenchError::BadScenario`].
    pub fn validate(&self) -> Result<(), BenchError> {
        self.check_sizes()
            .and_then(|()| self.check_routing())
            .and_then(|()| self.check_flow())
            .map_err(|(key, reason)| BenchError::BadScenario {
                scenario: self.name.clone(),
                key,
                reason,
            })
    }

    /// Publishers, queues, consumers and message size.
    fn check_sizes(&self) -> Result<(), (&'static str, String)> {
        if self.publishers == 0 || self.publishers > 1000 {
            return Err(("publishers", "must be 1..=1000".into()));
        }
        if self.queues == 0 || self.queues > 100_000 {
            return Err(("queues", "must be 1..=100000".into()));
        }
        if self.consumers > 0 && self.consumers < self.queues {
            return Err((
                "consumers",
                format!(
                    "{} consumers cannot drain {} queues: use 0 (publish only) or at least one per queue",
                    self.consumers, self.queues
                ),
            ));
        }
        if self.consumers > 1000 {
            return Err(("consumers", "at most 1000".into()));
        }
        if self.message_size < STAMP_LEN || self.message_size > MAX_MESSAGE_SIZE {
            return Err((
                "message_size",
                format!(
                    "{} bytes: must be {STAMP_LEN}..={MAX_MESSAGE_SIZE} (the first {STAMP_LEN} carry the time stamp and id)",
                    self.message_size
                ),
            ));
        }
        Ok(())
    }

    /// Exchange type, bindings and routing keys.
    fn check_routing(&self) -> Result<(), (&'static str, String)> {
        match self.exchange {
            ExchangeType::Topic => {
                if self.bindings < self.queues {
                    return Err((
                        "bindings",
                        format!(
                            "a topic scenario needs at least one binding per queue ({} < {})",
                            self.bindings, self.queues
                        ),
                    ));
                }
                if self.bindings > 10_000_000 {
                    return Err(("bindings", "at most 10000000".into()));
                }
                if self.routing_keys > self.bindings {
                    return Err((
                        "routing_keys",
                        "at most one per binding (each key matches exactly one)".into(),
                    ));
                }
            }
            _ => {
                if self.bindings != 0 {
                    return Err(("bindings", "only for exchange = \"topic\"".into()));
                }
                if self.routing_keys > self.queues {
                    return Err((
                        "routing_keys",
                        "at most one per queue for default and direct exchanges".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Confirms, acks, run length, rate and draining.
    fn check_flow(&self) -> Result<(), (&'static str, String)> {
        if self.confirms && (self.in_flight == 0 || self.in_flight > 1_000_000) {
            return Err(("in_flight", "must be 1..=1000000 with confirms".into()));
        }
        if !self.auto_ack {
            if self.ack_every == 0 {
                return Err(("ack_every", "must be at least 1".into()));
            }
            if self.prefetch > 0 && self.ack_every > u32::from(self.prefetch) {
                return Err((
                    "ack_every",
                    format!(
                        "{} exceeds prefetch {}: the consumer would wait for deliveries the broker holds back",
                        self.ack_every, self.prefetch
                    ),
                ));
            }
        }
        match self.messages {
            Some(0) => return Err(("messages", "must be at least 1".into())),
            Some(_) => {}
            None => {
                if !(self.duration > 0.0 && self.duration.is_finite()) {
                    return Err(("duration", "must be a positive number of seconds".into()));
                }
            }
        }
        if let Some(r) = self.rate {
            if !(r > 0.0 && r.is_finite()) {
                return Err(("rate", "must be a positive number of msg/s".into()));
            }
        }
        if self.spin_us > 100_000 {
            return Err(("spin_us", "at most 100000".into()));
        }
        if !(self.drain_timeout > 0.0 && self.drain_timeout.is_finite()) {
            return Err((
                "drain_timeout",
                "must be a positive number of seconds".into(),
            ));
        }
        Ok(())
    }

    /// Deliveries each published message makes (queues reached).
    pub fn fanout_factor(&self) -> u64 {
        match self.exchange {
            ExchangeType::Fanout => u64::from(self.queues),
            _ => 1,
        }
    }

    /// Messages publisher `index` sends when a count is set.
    pub fn messages_for(&self, index: u32) -> Option<u64> {
        self.messages.map(|total| {
            let p = u64::from(self.publishers);
            total / p + u64::from(u64::from(index) < total % p)
        })
    }

    /// One line describing the scenario, for reports.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}p/{}c/{}q {} {}B {}",
            self.publishers,
            self.consumers,
            self.queues,
            self.exchange.as_str(),
            self.message_size,
            if self.persistent {
                "persistent"
            } else {
                "transient"
            }
        );
        if self.exchange == ExchangeType::Topic {
            s.push_str(&format!(" {} bindings", self.bindings));
        }
        if self.confirms {
            s.push_str(&format!(" confirms({})", self.in_flight));
        }
        if self.auto_ack {
            s.push_str(" auto-ack");
        } else {
            s.push_str(&format!(
                " ack/{}{} prefetch {}",
                self.ack_every,
                if self.ack_multiple { " multiple" } else { "" },
                self.prefetch
            ));
        }
        match self.rate {
            Some(r) => s.push_str(&format!(" @{r} msg/s")),
            None => s.push_str(" max rate"),
        }
        s
    }
}

/// Binding pattern number `j` of a topic scenario: 3–4 words, one literal
/// word unique to `j` in second place, `*` or `#` elsewhere, as in a
/// market-data feed (`eu.s17.*`, `*.s18.#`, ...).
pub fn topic_pattern(j: u32) -> String {
    let region = REGIONS[(j as usize / 4) % REGIONS.len()];
    match j % 4 {
        0 => format!("{region}.s{j}.*"),
        1 => format!("{region}.s{j}.*.*"),
        2 => format!("*.s{j}.#"),
        _ => format!("{region}.s{j}.#"),
    }
}

/// A routing key that matches [`topic_pattern`]`(j)` and no other pattern.
pub fn topic_key(j: u32) -> String {
    let region = REGIONS[(j as usize / 4) % REGIONS.len()];
    match j % 4 {
        0 => format!("{region}.s{j}.trade"),
        1 => format!("{region}.s{j}.quote.bid"),
        2 => format!("{region}.s{j}.trade.l2"),
        _ => format!("{region}.s{j}.quote"),
    }
}

const REGIONS: [&str; 8] = ["eu", "us", "apac", "latam", "mena", "nordics", "uk", "jp"];

/// The names and bindings of one run's objects.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Exchange to publish to ("" for the default exchange).
    pub exchange: String,
    /// AMQP type of `exchange` (`None` for the default exchange, which is
    /// never declared).
    pub exchange_kind: Option<&'static str>,
    /// Queue names.
    pub queues: Vec<String>,
    /// (queue index, binding key).
    pub bindings: Vec<(usize, String)>,
    /// Routing keys the publishers cycle through.
    pub routing_keys: Vec<String>,
    /// Queues and exchange survive a restart (persistent scenarios).
    pub durable: bool,
}

impl Topology {
    /// The objects for `s`, named uniquely with `run_id` so that runs never
    /// see each other's leftovers.
    pub fn new(s: &Scenario, run_id: &str) -> Topology {
        let queues: Vec<String> = (0..s.queues)
            .map(|i| format!("bench.{run_id}.q{i}"))
            .collect();
        let n_keys = |default: u32| {
            if s.routing_keys == 0 {
                default
            } else {
                s.routing_keys
            }
        };
        let (exchange, exchange_kind, bindings, routing_keys) = match s.exchange {
            ExchangeType::Default => (
                String::new(),
                None,
                Vec::new(),
                queues[..n_keys(s.queues) as usize].to_vec(),
            ),
            ExchangeType::Direct => (
                format!("bench.{run_id}.direct"),
                Some("direct"),
                (0..queues.len()).map(|i| (i, format!("key.{i}"))).collect(),
                (0..n_keys(s.queues)).map(|i| format!("key.{i}")).collect(),
            ),
            ExchangeType::Fanout => (
                format!("bench.{run_id}.fanout"),
                Some("fanout"),
                (0..queues.len()).map(|i| (i, String::new())).collect(),
                vec![String::new()],
            ),
            ExchangeType::Topic => (
                format!("bench.{run_id}.topic"),
                Some("topic"),
                (0..s.bindings)
                    .map(|j| (j as usize % queues.len(), topic_pattern(j)))
                    .collect(),
                (0..n_keys(s.bindings)).map(topic_key).collect(),
            ),
        };
        Topology {
            exchange,
            exchange_kind,
            queues,
            bindings,
            routing_keys,
            durable: s.persistent,
        }
    }

    /// The queue consumer `c` reads.
    pub fn queue_of_consumer(&self, c: usize) -> usize {
        c % self.queues.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(bindings: u32, queues: u32) -> Scenario {
        Scenario {
            exchange: ExchangeType::Topic,
            bindings,
            queues,
            consumers: queues,
            ..Scenario::default()
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_keys_are_named() {
        Scenario::default().validate().unwrap();
        let cases: Vec<(Scenario, &str)> = vec![
            (
                Scenario {
                    message_size: 8,
                    ..Scenario::default()
                },
                "message_size",
            ),
            (
                Scenario {
                    queues: 4,
                    consumers: 2,
                    ..Scenario::default()
                },
                "consumers",
            ),
            (topic(1, 2), "bindings"),
            (
                Scenario {
                    auto_ack: false,
                    prefetch: 10,
                    ack_every: 20,
                    ..Scenario::default()
                },
                "ack_every",
            ),
            (
                Scenario {
                    confirms: true,
                    in_flight: 0,
                    ..Scenario::default()
                },
                "in_flight",
            ),
            (
                Scenario {
                    rate: Some(-1.0),
                    ..Scenario::default()
                },
                "rate",
            ),
            (
                Scenario {
                    messages: Some(0),
                    ..Scenario::default()
                },
                "messages",
            ),
        ];
        for (s, key) in cases {
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn parses_single_and_suite_files() {
        let one = Scenario::parse_all("name = \"x\"\nmessage_size = 1024\n").unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].message_size, 1024);
        assert_eq!(one[0].publishers, 1);
        let suite = Scenario::parse_all(
            "[[scenario]]\nname = \"a\"\n[[scenario]]\nname = \"b\"\nexchange = \"fanout\"\nqueues = 4\nconsumers = 4\n",
        )
        .unwrap();
        assert_eq!(suite.len(), 2);
        assert_eq!(suite[1].exchange, ExchangeType::Fanout);
        let e = Scenario::parse_all("name = \"x\"\npublisherz = 3\n").unwrap_err();
        assert!(e.starts_with("line 2: unknown field `publisherz`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn every_topic_key_matches_exactly_its_pattern() {
        fn matches(pattern: &str, key: &str) -> bool {
            fn go(p: &[&str], k: &[&str]) -> bool {
                match p.split_first() {
                    None => k.is_empty(),
                    Some((&"#", rest)) => (0..=k.len()).any(|i| go(rest, &k[i..])),
                    Some((w, rest)) => {
                        !k.is_empty() && (*w == "*" || *w == k[0]) && go(rest, &k[1..])
                    }
                }
            }
            let p: Vec<&str> = pattern.split('.').collect();
            let k: Vec<&str> = key.split('.').collect();
            go(&p, &k)
        }
        for j in 0..64 {
            for i in 0..64 {
                assert_eq!(
                    matches(&topic_pattern(i), &topic_key(j)),
                    i == j,
                    "{} vs {}",
                    topic_pattern(i),
                    topic_key(j)
                );
            }
        }
    }

    #[test]
    fn topology_deals_bindings_and_keys() {
        let s = topic(10, 3);
        let t = Topology::new(&s, "r1");
        assert_eq!(t.bindings.len(), 10);
        assert_eq!(t.bindings[4].0, 1);
        assert_eq!(t.routing_keys.len(), 10);
        assert_eq!(t.exchange, "bench.r1.topic");
        let d = Topology::new(&Scenario::default(), "r2");
        assert_eq!(d.routing_keys, vec!["bench.r2.q0".to_owned()]);
        assert_eq!(d.exchange_kind, None);
        let s = Scenario {
            messages: Some(10),
            publishers: 3,
            ..Scenario::default()
        };
        let split: Vec<u64> = (0..3).filter_map(|i| s.messages_for(i)).collect();
        assert_eq!(split, vec![4, 3, 3]);
    }
}
