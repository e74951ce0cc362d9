//! Validation of metadata changes on the coordinator's replica: each
//! `check_*` answers whether a declare, delete or bind may happen, with
//! RabbitMQ's refusal when not.

use ringmq_protocol::{ErrorCode, FieldTable, Refusal};

use ringmq_mgmt::view::AccessChange;

use super::{is_reserved, Declared, DestName, Meta, QueueDef, SessionId};
use crate::exchange::{ExchangeDef, ExchangeKind};
use crate::queue::args::{check_equivalent, QueueArgs, EQUIVALENCE_ARGS};

impl Meta {
    /// Validates a change to users, vhosts or permissions.
    ///
    /// # Errors
    /// 404 for a missing user or vhost, 406 for a bad name, hash or
    /// expression.
    pub fn check_access(&self, change: &AccessChange) -> Result<(), Refusal> {
        let vhost_exists = |name: &str| {
            if self.vhosts.contains_key(name) {
                Ok(())
            } else {
                Err(Refusal::new(
                    ErrorCode::NotFound,
                    format_args!("no vhost '{name}'"),
                ))
            }
        };
        match change {
            AccessChange::PutVhost(v) if v.name.is_empty() => {
                return Err(Refusal::new(
                    ErrorCode::PreconditionFailed,
                    "name: a vhost needs a name",
                ))
            }
            AccessChange::DeleteVhost { name } => vhost_exists(name)?,
            AccessChange::SetPermissions(p) => vhost_exists(&p.vhost)?,
            AccessChange::SetTopicPermissions(t) => vhost_exists(&t.vhost)?,
            AccessChange::ClearPermissions { vhost, .. }
            | AccessChange::ClearTopicPermissions { vhost, .. } => vhost_exists(vhost)?,
            AccessChange::SetPolicy { operator, row } => {
                vhost_exists(&row.vhost)?;
                super::Policy::compile(row.clone(), *operator)?;
            }
            AccessChange::ClearPolicy {
                operator,
                vhost,
                name,
            } => {
                vhost_exists(vhost)?;
                if self.policies.get(*operator, vhost, name).is_none() {
                    return Err(Refusal::new(
                        ErrorCode::NotFound,
                        format_args!("no policy '{name}' in vhost '{vhost}'"),
                    ));
                }
            }
            _ => {}
        }
        self.access.check(change)
    }

    /// Validates an exchange declare.
    ///
    /// # Errors
    /// 404 (passive, missing), 403 (reserved name), 503 (unknown type),
    /// 406 (different properties, bad `alternate-exchange`).
    pub fn check_exchange_declare(
        &self,
        vhost: &str,
        def: &ExchangeDef,
        kind_name: &str,
        passive: bool,
    ) -> Result<Declared, Refusal> {
        let v = self.vh(vhost)?;
        let name = &def.name;
        let existing = v.exchanges.get(name);
        if passive {
            if name.is_empty() {
                return Err(Refusal::new(
                    ErrorCode::AccessRefused,
                    "operation not permitted on the default exchange",
                ));
            }
            return match existing {
                Some(_) => Ok(Declared::Exists),
                None => Err(Refusal::no_exchange(vhost, name)),
            };
        }
        if name.is_empty() {
            return Err(Refusal::new(
                ErrorCode::AccessRefused,
                "operation not permitted on the default exchange",
            ));
        }
        if ExchangeKind::parse(kind_name).is_none() {
            return Err(Refusal::new(
                ErrorCode::CommandInvalid,
                format_args!("unknown exchange type '{kind_name}'"),
            ));
        }
        if let Some(x) = existing {
            check_same_exchange(vhost, def, &x.def)?;
            return Ok(Declared::Exists);
        }
        if is_reserved(name) {
            return Err(Refusal::reserved("exchange", name));
        }
        if let Some(ae) = def.arguments.get("alternate-exchange") {
            if ae.as_str().is_none() {
                return Err(Refusal::invalid_arg(
                    "alternate-exchange",
                    "exchange",
                    name,
                    vhost,
                    "not a string",
                ));
            }
        }
        Ok(Declared::Create)
    }

    /// Validates an exchange delete. `Ok(false)` when there is nothing to
    /// delete (deleting a missing exchange succeeds, as in RabbitMQ).
    ///
    /// # Errors
    /// 403 for the default and `amq.` exchanges, 406 for `if_unused` on an
    /// exchange with bindings.
    pub fn check_exchange_delete(
        &self,
        vhost: &str,
        name: &str,
        if_unused: bool,
    ) -> Result<bool, Refusal> {
        let v = self.vh(vhost)?;
        if name.is_empty() || is_reserved(name) {
            return Err(Refusal::new(
                ErrorCode::AccessRefused,
                if name.is_empty() {
                    "operation not permitted on the default exchange".to_owned()
                } else {
                    format!("deletion of system exchange '{name}' in vhost '{vhost}' not allowed")
                },
            ));
        }
        let Some(x) = v.exchanges.get(name) else {
            return Ok(false);
        };
        if if_unused && x.binding_count() > 0 {
            return Err(Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("exchange '{name}' in vhost '{vhost}' in use"),
            ));
        }
        Ok(true)
    }

    /// Validates a queue declare by `session`. Returns the existing queue,
    /// or `None` when it must be created.
    ///
    /// # Errors
    /// 404 (passive, missing), 403 (reserved name), 405 (exclusive to
    /// another session), 406 (different properties or invalid arguments).
    #[allow(clippy::too_many_arguments)]
    pub fn check_queue_declare(
        &self,
        vhost: &str,
        name: &str,
        passive: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: &FieldTable,
        session: SessionId,
    ) -> Result<Option<&QueueDef>, Refusal> {
        let v = self.vh(vhost)?;
        // As RabbitMQ: every named non-passive declare is checked, even of
        // an existing (e.g. server-named) queue.
        if !passive && is_reserved(name) {
            return Err(Refusal::reserved("queue", name));
        }
        let existing = v.queues.get(name);
        if let Some(q) = existing {
            if !q.accessible_by(session) {
                return Err(Refusal::locked(vhost, name));
            }
        }
        if passive {
            return existing
                .map(Some)
                .ok_or_else(|| Refusal::no_queue(vhost, name));
        }
        match existing {
            Some(q) => {
                let b = |v: bool| format!("'{v}'");
                if q.durable != durable {
                    return Err(Refusal::inequivalent(
                        "durable",
                        "queue",
                        name,
                        vhost,
                        &b(durable),
                        &b(q.durable),
                    ));
                }
                if q.exclusive_owner.is_some() != exclusive {
                    return Err(Refusal::locked(vhost, name));
                }
                if q.auto_delete != auto_delete {
                    return Err(Refusal::inequivalent(
                        "auto_delete",
                        "queue",
                        name,
                        vhost,
                        &b(auto_delete),
                        &b(q.auto_delete),
                    ));
                }
                check_equivalent(
                    EQUIVALENCE_ARGS,
                    arguments,
                    &q.arguments,
                    "queue",
                    name,
                    vhost,
                )?;
                Ok(Some(q))
            }
            None => {
                QueueArgs::parse(arguments, name, vhost, durable, exclusive, auto_delete)?;
                Ok(None)
            }
        }
    }

    /// Looks up a queue `session` may use.
    ///
    /// # Errors
    /// 404 missing, 405 exclusive to another session.
    pub fn usable_queue(
        &self,
        vhost: &str,
        name: &str,
        session: SessionId,
    ) -> Result<&QueueDef, Refusal> {
        let q = self
            .vh(vhost)?
            .queues
            .get(name)
            .ok_or_else(|| Refusal::no_queue(vhost, name))?;
        if !q.accessible_by(session) {
            return Err(Refusal::locked(vhost, name));
        }
        Ok(q)
    }

    /// An unbind whose source exchange or destination no longer exists
    /// has nothing to remove: RabbitMQ 3.10 answers it with unbind-ok
    /// (cleanup code, and auto-delete exchanges that went with their last
    /// binding, rely on that). The virtual host must exist.
    pub fn unbind_is_moot(&self, vhost: &str, source: &str, dest: &DestName) -> bool {
        let Ok(v) = self.vh(vhost) else { return false };
        if source.is_empty() {
            return false;
        }
        let dest_gone = match dest {
            DestName::Queue(q) => !v.queues.contains_key(q),
            DestName::Exchange(d) => !d.is_empty() && !v.exchanges.contains_key(d),
        };
        !v.exchanges.contains_key(source) || dest_gone
    }

    /// Validates a bind or unbind by `session`.
    ///
    /// # Errors
    /// 404 for a missing source or destination, 403 for the default
    /// exchange, 405 for another session's exclusive queue, 406 for a bad
    /// headers `x-match`.
    pub fn check_bind(
        &self,
        vhost: &str,
        source: &str,
        dest: &DestName,
        args: &FieldTable,
        session: SessionId,
    ) -> Result<(), Refusal> {
        let v = self.vh(vhost)?;
        let default_refused = || {
            Refusal::new(
                ErrorCode::AccessRefused,
                "operation not permitted on the default exchange",
            )
        };
        if source.is_empty() || matches!(dest, DestName::Exchange(d) if d.is_empty()) {
            return Err(default_refused());
        }
        let x = v
            .exchanges
            .get(source)
            .ok_or_else(|| Refusal::no_exchange(vhost, source))?;
        match dest {
            DestName::Queue(q) => {
                self.usable_queue(vhost, q, session)?;
            }
            DestName::Exchange(d) => {
                if !v.exchanges.contains_key(d) {
                    return Err(Refusal::no_exchange(vhost, d));
                }
            }
        }
        x.check_bind(args).map_err(|crate::exchange::BindError::BadMatchMode(m)| {
            Refusal::new(
                ErrorCode::PreconditionFailed,
                format_args!("Invalid x-match field value {m}; expected all, any, all-with-x, or any-with-x"),
            )
        })
    }
}

/// A redeclare of an existing exchange must match it: type, flags and
/// the arguments RabbitMQ compares.
fn check_same_exchange(vhost: &str, def: &ExchangeDef, cur: &ExchangeDef) -> Result<(), Refusal> {
    let name = &def.name;
    let b = |v: bool| format!("'{v}'");
    if cur.kind != def.kind {
        return Err(Refusal::inequivalent(
            "type",
            "exchange",
            name,
            vhost,
            &format!("'{}'", def.kind.as_str()),
            &format!("'{}'", cur.kind.as_str()),
        ));
    }
    for (arg, want, have) in [
        ("durable", def.durable, cur.durable),
        ("auto_delete", def.auto_delete, cur.auto_delete),
        ("internal", def.internal, cur.internal),
    ] {
        if want != have {
            return Err(Refusal::inequivalent(
                arg,
                "exchange",
                name,
                vhost,
                &b(want),
                &b(have),
            ));
        }
    }
    check_equivalent(
        &["alternate-exchange"],
        &def.arguments,
        &cur.arguments,
        "exchange",
        name,
        vhost,
    )
}
