//! The broker as the management API sees it: [`AdminHandle`] implements
//! [`ringmq_mgmt::view::BrokerView`] by asking every shard over an
//! unbounded channel (`futures-channel`, which wakes a glommio task from
//! the management thread) and summing the answers. A shard answers
//! between batches of work (`shard/admin.rs`); nothing on the data path
//! waits for the management thread.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_channel::mpsc::UnboundedSender;
use futures_channel::oneshot;
use ringmq_mgmt::view::{
    AccessChange, AccessView, Ask, BindingRow, BrokerView, ConnectionRow, ExchangeRow,
    MessageCounters, Node, QueueRow, UserRow, ViewError,
};
use ringmq_protocol::Refusal;

use crate::config::Config;
use crate::resources::Resources;

/// What the management thread asks a shard.
pub enum AdminCall {
    /// Its counters, sessions and alarms.
    Node(oneshot::Sender<ShardNode>),
    /// The queues it owns (of one vhost, or all).
    Queues(Option<String>, oneshot::Sender<Vec<QueueRow>>),
    /// Exchanges (replicated: shard 0 answers).
    Exchanges(Option<String>, oneshot::Sender<Vec<ExchangeRow>>),
    /// Bindings (replicated: shard 0 answers).
    Bindings(Option<String>, oneshot::Sender<Vec<BindingRow>>),
    /// Its client connections.
    Connections(oneshot::Sender<Vec<ConnectionRow>>),
    /// Close the connection of that name with that reason, if it is here.
    CloseConnection(String, String, oneshot::Sender<bool>),
    /// Change users, vhosts or permissions (shard 0, the coordinator).
    ChangeAccess(Box<AccessChange>, oneshot::Sender<Result<(), Refusal>>),
}

/// One shard's part of the node.
#[derive(Debug, Default, Clone)]
pub struct ShardNode {
    /// Message counters of its sessions.
    pub counters: MessageCounters,
    /// Its sessions.
    pub connections: u64,
    /// Their channels.
    pub channels: u64,
    /// Their consumers.
    pub consumers: u64,
    /// Its memory alarm is raised.
    pub mem_alarm: bool,
    /// A storage alarm (free space, failing log) is raised on it.
    pub disk_alarm: bool,
}

/// The management API's handle on a running broker.
pub struct AdminHandle {
    shards: Vec<UnboundedSender<AdminCall>>,
    config: Arc<Config>,
    resources: Arc<Resources>,
    native: SocketAddr,
    listeners: Vec<(String, SocketAddr)>,
    started_at_ms: u64,
}

impl AdminHandle {
    /// A handle on the broker whose shards registered with `resources`.
    pub(crate) fn new(
        config: Arc<Config>,
        resources: Arc<Resources>,
        native: SocketAddr,
    ) -> AdminHandle {
        AdminHandle {
            shards: resources.admin_senders(),
            config,
            resources,
            native,
            listeners: vec![("ringmq".to_owned(), native)],
            started_at_ms: crate::shard::now_ms(),
        }
    }

    /// Adds a listener to what `/api/overview` shows.
    pub fn add_listener(&mut self, protocol: &str, addr: SocketAddr) {
        self.listeners.push((protocol.to_owned(), addr));
    }

    fn ask_all<T: Send + 'static>(
        &self,
        call: impl Fn(oneshot::Sender<T>) -> AdminCall,
    ) -> Result<Vec<oneshot::Receiver<T>>, ViewError> {
        self.shards
            .iter()
            .map(|s| {
                let (tx, rx) = oneshot::channel();
                s.unbounded_send(call(tx))
                    .map_err(|_| ViewError::Stopping)?;
                Ok(rx)
            })
            .collect()
    }

    fn ask_first<T: Send + 'static>(&self, call: AdminCall, rx: oneshot::Receiver<T>) -> Ask<T> {
        let sent = self.shards.first().map(|s| s.unbounded_send(call));
        Box::pin(async move {
            match sent {
                Some(Ok(())) => rx.await.map_err(|_| ViewError::Stopping),
                _ => Err(ViewError::Stopping),
            }
        })
    }
}

async fn gather<T>(rxs: Result<Vec<oneshot::Receiver<T>>, ViewError>) -> Result<Vec<T>, ViewError> {
    let mut out = Vec::new();
    for rx in rxs? {
        out.push(rx.await.map_err(|_| ViewError::Stopping)?);
    }
    Ok(out)
}

/// Resident set size of this process, bytes (`/proc/self/statm`).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

impl BrokerView for AdminHandle {
    fn node(&self) -> Ask<Node> {
        let parts = self.ask_all(AdminCall::Node);
        let mut node = Node {
            name: self.node_name(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: self.started_at_ms,
            shards: self.shards.len() as u16,
            memory_limit: self.resources.watermark,
            disk_free_limit: self.resources.disk_free_limit,
            disk_free: crate::shard::alarms::disk_free(&self.config.storage.data_dir).unwrap_or(0),
            listeners: self.listeners.clone(),
            ..Node::default()
        };
        Box::pin(async move {
            for p in gather(parts).await? {
                node.counters.add(&p.counters);
                node.connections += p.connections;
                node.channels += p.channels;
                node.consumers += p.consumers;
                node.mem_alarm |= p.mem_alarm;
                node.disk_alarm |= p.disk_alarm;
            }
            node.memory_used = resident_bytes();
            Ok(node)
        })
    }

    fn node_name(&self) -> String {
        format!("ringmq@{}", hostname())
    }

    fn queues(&self, vhost: Option<String>) -> Ask<Vec<QueueRow>> {
        let parts = self.ask_all(|tx| AdminCall::Queues(vhost.clone(), tx));
        let now_ms = crate::shard::now_ms();
        Box::pin(async move {
            // The largest shard's rows stay where they are; the others
            // are moved once.
            let mut parts = gather(parts).await?;
            parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
            let mut parts = parts.into_iter();
            let mut all = parts.next().unwrap_or_default();
            for p in parts {
                all.extend(p);
            }
            for q in &mut all {
                // The shard clock is ms since the epoch already.
                q.idle_since_ms = q.idle_since_ms.min(now_ms);
            }
            Ok(all)
        })
    }

    fn exchanges(&self, vhost: Option<String>) -> Ask<Vec<ExchangeRow>> {
        let (tx, rx) = oneshot::channel();
        self.ask_first(AdminCall::Exchanges(vhost, tx), rx)
    }

    fn bindings(&self, vhost: Option<String>) -> Ask<Vec<BindingRow>> {
        let (tx, rx) = oneshot::channel();
        self.ask_first(AdminCall::Bindings(vhost, tx), rx)
    }

    fn connections(&self) -> Ask<Vec<ConnectionRow>> {
        let parts = self.ask_all(AdminCall::Connections);
        Box::pin(async move { Ok(gather(parts).await?.into_iter().flatten().collect()) })
    }

    fn close_connection(&self, name: String, reason: String) -> Ask<bool> {
        let parts = self.ask_all(|tx| AdminCall::CloseConnection(name.clone(), reason.clone(), tx));
        Box::pin(async move { Ok(gather(parts).await?.into_iter().any(|closed| closed)) })
    }

    fn access(&self) -> Arc<AccessView> {
        self.resources.access()
    }

    fn change_access(&self, change: AccessChange) -> Ask<Result<(), Refusal>> {
        let (tx, rx) = oneshot::channel();
        self.ask_first(AdminCall::ChangeAccess(Box::new(change), tx), rx)
    }

    fn authenticate(&self, user: &str, password: &str) -> Option<UserRow> {
        let access = self.resources.access();
        let u = access.user(user);
        crate::auth::password_matches(u, password)
            .then(|| u.cloned())
            .flatten()
    }

    fn hash_password(&self, password: &str) -> String {
        crate::password::hash_password(password)
    }

    fn native_addr(&self) -> SocketAddr {
        self.native
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}
