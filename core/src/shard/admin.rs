//! The shard's answers to the management API (`crate::admin`): pictures of
//! its queues, streams, sessions and counters, built between batches of
//! work. Exchanges and bindings are replicated, so shard 0 answers those.

use std::rc::Rc;

use futures_channel::mpsc::UnboundedReceiver;
use futures_lite::StreamExt;
use ringmq_mgmt::fields::table_json;
use ringmq_mgmt::view::{BindingRow, ExchangeRow, QueueRow, QueueType};
use serde_json::json;

use super::Shard;
use crate::admin::{AdminCall, ShardNode};
use crate::exchange::Dest;
use crate::meta::{QueueDef, Vhost};
use crate::queue::args::QueueKind;

fn wanted<'m>(vhosts: impl Iterator<Item = &'m Vhost>, only: &Option<String>) -> Vec<&'m Vhost> {
    vhosts
        .filter(|v| only.as_ref().is_none_or(|o| *o == v.name))
        .collect()
}

fn queue_type(def: &QueueDef) -> QueueType {
    if crate::stream::args::is_stream(&def.arguments) {
        QueueType::Stream
    } else if def.args.kind == QueueKind::Quorum {
        QueueType::Quorum
    } else {
        QueueType::Classic
    }
}

fn row(def: &QueueDef, vhost: &str) -> QueueRow {
    QueueRow {
        vhost: vhost.to_owned(),
        name: def.name.clone(),
        kind: queue_type(def),
        durable: def.durable,
        auto_delete: def.auto_delete,
        exclusive: def.exclusive_owner.is_some(),
        arguments: table_json(&def.arguments),
        shard: def.shard,
        ..QueueRow::default()
    }
}

impl Shard {
    /// Answers management calls until the broker stops.
    pub async fn serve_admin(self: Rc<Self>, mut calls: UnboundedReceiver<AdminCall>) {
        while let Some(call) = calls.next().await {
            match call {
                AdminCall::Node(reply) => {
                    let _ = reply.send(self.admin_node());
                }
                AdminCall::Queues(vhost, reply) => {
                    let _ = reply.send(self.admin_queues(&vhost));
                }
                AdminCall::Exchanges(vhost, reply) => {
                    let _ = reply.send(self.admin_exchanges(&vhost));
                }
                AdminCall::Bindings(vhost, reply) => {
                    let _ = reply.send(self.admin_bindings(&vhost));
                }
                AdminCall::Connections(reply) => {
                    let rows = self
                        .sessions
                        .borrow()
                        .values()
                        .map(|s| s.describe())
                        .collect();
                    let _ = reply.send(rows);
                }
                AdminCall::CloseConnection(name, reason, reply) => {
                    let found = self
                        .sessions
                        .borrow()
                        .values()
                        .find(|s| s.name() == name)
                        .cloned();
                    if let Some(s) = &found {
                        s.force_close(&reason);
                    }
                    let _ = reply.send(found.is_some());
                }
                AdminCall::ChangeAccess(change, reply) => {
                    let me = self.clone();
                    let ticket = self.meta_ticket();
                    glommio::spawn_local(async move {
                        let resp = me
                            .coordinate(super::mesh::CallReq::Access(*change), ticket)
                            .await;
                        let _ = reply.send(match resp {
                            super::mesh::CallResp::Refused(r) => Err(r),
                            _ => Ok(()),
                        });
                    })
                    .detach();
                }
            }
        }
    }

    fn admin_node(&self) -> ShardNode {
        let sessions = self.sessions.borrow();
        let (channels, consumers) = sessions.values().fold((0, 0), |(ch, co), s| {
            let (a, b) = s.counts();
            (ch + a, co + b)
        });
        ShardNode {
            counters: self.counters.snapshot(),
            connections: sessions.len() as u64,
            channels,
            consumers,
            mem_alarm: self.memory_alarm(),
            disk_alarm: !self.alarms.borrow().is_empty(),
        }
    }

    /// The queues and streams this shard owns. Each carries its
    /// definition and vhost: no walk of the replicated metadata, which names
    /// every shard's queues.
    fn admin_queues(&self, only: &Option<String>) -> Vec<QueueRow> {
        let wanted = |vhost: &str| only.as_ref().is_none_or(|o| o == vhost);
        let queues = self.queues.borrow();
        let streams = self.streams.borrow();
        let meta = self.meta.borrow();
        let policies = meta.policies();
        let mut out = Vec::with_capacity(queues.len() + streams.len());
        for q in queues.values().filter(|q| wanted(&q.vhost)) {
            let mut r = row(&q.def, &q.vhost);
            q.fill_row(&mut r);
            if policies.any_in(&q.vhost) {
                let applied = policies.for_queue(&q.vhost, &q.def.name);
                r.policy = applied.policy.map(|p| p.row.name.clone());
                r.operator_policy = applied.operator.map(|p| p.row.name.clone());
                r.effective_policy_definition = applied.definition().into();
            }
            out.push(r);
        }
        for s in streams.values().filter(|s| wanted(&s.vhost)) {
            let mut r = row(&s.def, &s.vhost);
            r.ready = s.len();
            r.consumers = s.consumer_count() as u64;
            r.persistent = s.len();
            out.push(r);
        }
        out
    }

    fn admin_exchanges(&self, only: &Option<String>) -> Vec<ExchangeRow> {
        let meta = self.meta.borrow();
        let mut out = Vec::new();
        for vhost in wanted(meta.vhosts(), only) {
            for x in vhost.exchanges() {
                out.push(ExchangeRow {
                    vhost: vhost.name.clone(),
                    name: x.def.name.clone(),
                    kind: x.def.kind.as_str().to_owned(),
                    durable: x.def.durable,
                    auto_delete: x.def.auto_delete,
                    internal: x.def.internal,
                    arguments: table_json(&x.def.arguments),
                });
            }
        }
        out
    }

    /// Every binding, with the default exchange's implicit one per queue
    /// first, as RabbitMQ lists them.
    fn admin_bindings(&self, only: &Option<String>) -> Vec<BindingRow> {
        let meta = self.meta.borrow();
        let mut out = Vec::new();
        for vhost in wanted(meta.vhosts(), only) {
            let mut implicit: Vec<&QueueDef> = vhost.queues().collect();
            implicit.sort_by(|a, b| a.name.cmp(&b.name));
            for def in implicit {
                out.push(BindingRow {
                    vhost: vhost.name.clone(),
                    source: String::new(),
                    destination: def.name.clone(),
                    to_queue: true,
                    routing_key: def.name.clone(),
                    arguments: json!({}),
                });
            }
            let mut explicit = Vec::new();
            for x in vhost.exchanges().filter(|x| !x.def.name.is_empty()) {
                for (dest, key, args) in x.bindings() {
                    let (destination, to_queue) = match dest {
                        Dest::Queue(q) => match vhost.queue_by_id(q.id) {
                            Some(def) => (def.name.clone(), true),
                            None => continue,
                        },
                        Dest::Exchange(name) => (name.clone(), false),
                    };
                    explicit.push(BindingRow {
                        vhost: vhost.name.clone(),
                        source: x.def.name.clone(),
                        destination,
                        to_queue,
                        routing_key: key.to_owned(),
                        arguments: table_json(args),
                    });
                }
            }
            explicit.sort_by(|a, b| {
                (&a.source, &a.destination, &a.routing_key).cmp(&(
                    &b.source,
                    &b.destination,
                    &b.routing_key,
                ))
            });
            out.extend(explicit);
        }
        out
    }
}
