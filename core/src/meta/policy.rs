//! Policies and operator policies, as RabbitMQ defines them: per vhost, a
//! name, a regular expression on object names (searched, unanchored), what
//! they apply to, a priority and a definition. Of the policies that match
//! an object, the one with the highest priority applies (ties: the first
//! by name); the same for operator policies (queues only). Pure: no I/O.
//!
//! How a queue's settings resolve (RabbitMQ's `args_policy_lookup`):
//!
//! - The policy's and the operator policy's values merge first: for the
//!   numeric keys the smaller wins (an operator policy is a ceiling).
//! - Then with the queue's own `x-` argument: for `message-ttl`,
//!   `expires`, `max-length`, `max-length-bytes` and `delivery-limit` the
//!   smaller wins; for `overflow`, `dead-letter-exchange` and
//!   `dead-letter-routing-key` the argument wins.
//! - An exchange's `alternate-exchange` argument wins over a policy's.

use std::sync::Arc;

use regex::Regex;
use ringmq_mgmt::view::PolicyRow;
use ringmq_protocol::{ErrorCode, FieldTable, FieldValue, Refusal};
use serde_json::Value;

use crate::queue::args::MAX_TTL_MS;

/// Numeric queue keys: the smaller value wins.
const MIN_KEYS: &[&str] = &[
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "delivery-limit",
];

/// Queue keys where a declared argument wins over a policy.
const ARG_KEYS: &[&str] = &[
    "overflow",
    "dead-letter-exchange",
    "dead-letter-routing-key",
];

/// Keys an operator policy may set (RabbitMQ 3.10's).
const OPERATOR_KEYS: &[&str] = &[
    "expires",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "delivery-limit",
];

/// What a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyTo {
    /// Queues and exchanges.
    All,
    /// Queues (streams included).
    Queues,
    /// Exchanges.
    Exchanges,
}

impl ApplyTo {
    fn parse(s: &str) -> Option<ApplyTo> {
        match s {
            "all" => Some(ApplyTo::All),
            "queues" => Some(ApplyTo::Queues),
            "exchanges" => Some(ApplyTo::Exchanges),
            _ => None,
        }
    }
}

/// A policy, as given and compiled.
#[derive(Debug, Clone)]
pub struct Policy {
    /// As given.
    pub row: PolicyRow,
    pattern: Arc<Regex>,
    apply_to: ApplyTo,
}

impl Policy {
    /// Validates and compiles a policy (`operator`: an operator policy).
    ///
    /// # Errors
    /// 406 naming the bad field or definition key.
    pub fn compile(row: PolicyRow, operator: bool) -> Result<Policy, Refusal> {
        let bad = |text: String| Refusal::new(ErrorCode::PreconditionFailed, text);
        if row.name.is_empty() {
            return Err(bad("name: a policy needs a name".into()));
        }
        let pattern = Regex::new(&row.pattern).map_err(|e| {
            bad(format!(
                "pattern: invalid regular expression '{}': {e}",
                row.pattern
            ))
        })?;
        let apply_to = ApplyTo::parse(&row.apply_to).ok_or_else(|| {
            bad(format!(
                "apply-to: '{}' is not one of all, queues, exchanges",
                row.apply_to
            ))
        })?;
        if operator && apply_to != ApplyTo::Queues {
            return Err(bad("apply-to: operator policies apply to queues".into()));
        }
        let Value::Object(def) = &row.definition else {
            return Err(bad("definition: must be an object".into()));
        };
        if def.is_empty() {
            return Err(bad("definition: must not be empty".into()));
        }
        let mut unknown = Vec::new();
        for (key, value) in def {
            if operator && !OPERATOR_KEYS.contains(&key.as_str()) {
                unknown.push(key.clone());
                continue;
            }
            match check_value(key, value) {
                Some(Ok(())) => {}
                Some(Err(why)) => return Err(bad(format!("definition: {key}: {why}"))),
                None => unknown.push(key.clone()),
            }
        }
        if !unknown.is_empty() {
            return Err(bad(format!(
                "definition: {} not supported by ringmq (supported: message-ttl, expires, max-length, max-length-bytes, overflow, dead-letter-exchange, dead-letter-routing-key, delivery-limit, alternate-exchange)",
                unknown.join(", ")
            )));
        }
        Ok(Policy {
            pattern: Arc::new(pattern),
            apply_to,
            row,
        })
    }

    fn matches(&self, name: &str, queue: bool) -> bool {
        let kind = match self.apply_to {
            ApplyTo::All => true,
            ApplyTo::Queues => queue,
            ApplyTo::Exchanges => !queue,
        };
        kind && self.pattern.is_match(name)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.row.definition.get(key)
    }
}

/// Whether `value` is valid for `key`: None for a key ringmq does not
/// know.
fn check_value(key: &str, value: &Value) -> Option<Result<(), String>> {
    let int = |min: u64, max: u64| match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(format!("must be an integer from {min} to {max}")),
    };
    let text = || match value {
        Value::String(_) => Ok(()),
        _ => Err("must be a string".to_owned()),
    };
    Some(match key {
        "message-ttl" => int(0, MAX_TTL_MS),
        "expires" => int(1, MAX_TTL_MS),
        "max-length" | "max-length-bytes" | "delivery-limit" => int(0, i64::MAX as u64),
        "overflow" => match value.as_str() {
            Some("drop-head" | "reject-publish" | "reject-publish-dlx") => Ok(()),
            _ => Err("must be drop-head, reject-publish or reject-publish-dlx".into()),
        },
        "dead-letter-exchange" | "dead-letter-routing-key" | "alternate-exchange" => text(),
        _ => return None,
    })
}

/// The policies of every vhost.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// (vhost, policy), sorted by vhost then name.
    regular: Vec<(String, Policy)>,
    operator: Vec<(String, Policy)>,
}

/// The policies that apply to one object.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied<'a> {
    /// The policy.
    pub policy: Option<&'a Policy>,
    /// The operator policy.
    pub operator: Option<&'a Policy>,
}

impl Policies {
    fn list(&self, operator: bool) -> &Vec<(String, Policy)> {
        if operator {
            &self.operator
        } else {
            &self.regular
        }
    }

    /// Every policy (or operator policy), by vhost then name.
    pub fn rows(&self, operator: bool) -> impl Iterator<Item = &PolicyRow> {
        self.list(operator).iter().map(|(_, p)| &p.row)
    }

    /// The policy named `name` in `vhost`.
    pub fn get(&self, operator: bool, vhost: &str, name: &str) -> Option<&Policy> {
        self.list(operator)
            .iter()
            .find(|(v, p)| v == vhost && p.row.name == name)
            .map(|(_, p)| p)
    }

    /// True when `vhost` has any policy at all.
    pub fn any_in(&self, vhost: &str) -> bool {
        self.regular
            .iter()
            .chain(&self.operator)
            .any(|(v, _)| v == vhost)
    }

    /// Sets (adds or replaces) a validated policy.
    pub fn set(&mut self, operator: bool, p: Policy) {
        let list = if operator {
            &mut self.operator
        } else {
            &mut self.regular
        };
        let vhost = p.row.vhost.clone();
        list.retain(|(v, q)| !(v == &vhost && q.row.name == p.row.name));
        let at = list
            .iter()
            .position(|(v, q)| {
                (v.as_str(), q.row.name.as_str()) > (vhost.as_str(), p.row.name.as_str())
            })
            .unwrap_or(list.len());
        list.insert(at, (vhost, p));
    }

    /// Removes a policy; true when there was one.
    pub fn clear(&mut self, operator: bool, vhost: &str, name: &str) -> bool {
        let list = if operator {
            &mut self.operator
        } else {
            &mut self.regular
        };
        let before = list.len();
        list.retain(|(v, p)| !(v == vhost && p.row.name == name));
        before != list.len()
    }

    /// Removes every policy of `vhost`.
    pub fn clear_vhost(&mut self, vhost: &str) {
        self.regular.retain(|(v, _)| v != vhost);
        self.operator.retain(|(v, _)| v != vhost);
    }

    fn best<'a>(
        list: &'a [(String, Policy)],
        vhost: &str,
        name: &str,
        queue: bool,
    ) -> Option<&'a Policy> {
        let mut best: Option<&Policy> = None;
        for (_, p) in list
            .iter()
            .filter(|(v, p)| v == vhost && p.matches(name, queue))
        {
            // Sorted by name: a later one wins only with a higher priority.
            if best.is_none_or(|b| p.row.priority > b.row.priority) {
                best = Some(p);
            }
        }
        best
    }

    /// The policies that apply to the queue `name` of `vhost`.
    pub fn for_queue(&self, vhost: &str, name: &str) -> Applied<'_> {
        Applied {
            policy: Self::best(&self.regular, vhost, name, true),
            operator: Self::best(&self.operator, vhost, name, true),
        }
    }

    /// The policy that applies to the exchange `name` of `vhost`.
    pub fn for_exchange(&self, vhost: &str, name: &str) -> Option<&Policy> {
        Self::best(&self.regular, vhost, name, false)
    }
}

impl Applied<'_> {
    /// The policy's and operator policy's definitions merged, as the
    /// management API shows it (`effective_policy_definition`).
    pub fn definition(&self) -> serde_json::Map<String, Value> {
        let mut out = serde_json::Map::new();
        if let Some(Value::Object(d)) = self.policy.map(|p| &p.row.definition) {
            out.extend(d.clone());
        }
        if let Some(Value::Object(d)) = self.operator.map(|p| &p.row.definition) {
            for (k, v) in d {
                let merged = match (out.get(k).and_then(Value::as_u64), v.as_u64()) {
                    (Some(a), Some(b)) => Value::from(a.min(b)),
                    _ => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
        }
        out
    }

    /// The queue's declared arguments with the policies' values resolved
    /// into their `x-` keys (see the module's rules).
    pub fn queue_arguments(&self, declared: &FieldTable) -> FieldTable {
        let merged = self.definition();
        let mut out = declared.clone();
        for (key, value) in &merged {
            let x = format!("x-{key}");
            if MIN_KEYS.contains(&key.as_str()) {
                let Some(pol) = value.as_u64() else { continue };
                let n = match declared.get(&x).and_then(FieldValue::as_i64) {
                    Some(arg) if arg >= 0 => pol.min(arg as u64),
                    _ => pol,
                };
                out.insert(x, FieldValue::I64(i64::try_from(n).unwrap_or(i64::MAX)));
            } else if ARG_KEYS.contains(&key.as_str()) && declared.get(&x).is_none() {
                if let Some(s) = value.as_str() {
                    out.insert(x, FieldValue::LongStr(s.as_bytes().to_vec()));
                }
            }
        }
        out
    }
}

impl Policy {
    /// The exchange's alternate exchange under this policy.
    pub fn alternate_exchange(&self) -> Option<&str> {
        self.get("alternate-exchange").and_then(Value::as_str)
    }
}
