//! What the shards share to bound resources: how many connections are
//! open (in all, per vhost, per user) against the configured limits, and
//! how much memory each shard holds against the high watermark. Atomics
//! touched when a connection opens or closes and when a shard publishes
//! its memory use (every few tens of milliseconds), never on the data
//! path.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use ringmq_protocol::{ErrorCode, Refusal};
use ringmq_rt::limit::{Held, Limit};

use crate::config::Config;

/// Shared by every shard of a broker.
#[derive(Debug)]
pub struct Resources {
    /// Connections in all (`limits.connection_max`).
    node: Arc<Limit>,
    /// Vhosts and users with a connection limit.
    vhosts: Vec<(String, Arc<Limit>)>,
    users: Vec<(String, Arc<Limit>)>,
    /// Bytes each shard holds, as it last published.
    memory: Vec<AtomicI64>,
    /// Above this many bytes in all, publishers are blocked.
    pub watermark: u64,
    /// Above this many bytes of messages in a shard's queues, new messages
    /// live only in the shard's log until they are read.
    pub page_out_above: u64,
    /// Below this many free bytes on the data directory's file system,
    /// publishers are blocked (`limits.disk_free_limit`); 0 = never.
    pub disk_free_limit: u64,
    /// Each shard's channel for management calls (`crate::admin`), set as
    /// it starts. Locked only by shard start-up and the management thread.
    admin: std::sync::Mutex<Vec<Option<AdminSender>>>,
    /// Users, vhosts and permissions as the coordinator last applied
    /// them, for the management thread (replaced whole on each change;
    /// never read on the data path: shards read their own replica).
    access: std::sync::RwLock<Arc<ringmq_mgmt::view::AccessView>>,
}

/// The management thread's side of a shard's admin channel.
type AdminSender = futures_channel::mpsc::UnboundedSender<crate::admin::AdminCall>;

/// A connection counted against a limit; the unit goes back on drop.
pub type Claim = Held;

/// A refusal past a limit.
fn not_allowed(text: std::fmt::Arguments<'_>) -> Refusal {
    Refusal::new(ErrorCode::NotAllowed, text)
}

impl Resources {
    /// Counters for the limits in `config`, for `shards` shards.
    pub fn new(config: &Config, shards: usize) -> Arc<Resources> {
        let available = crate::memory::available().unwrap_or_else(|| {
            tracing::warn!("cannot read the memory available; assuming 4 GiB");
            4 << 30
        });
        // Validated with the configuration: it parses.
        let watermark = config
            .limits
            .memory_high_watermark
            .bytes(available)
            .unwrap_or(available / 10 * 4);
        let page_out_above = config
            .storage
            .memory_budget_bytes
            .min(watermark / 2 / shards.max(1) as u64);
        // Validated with the configuration: it parses.
        let disk_free_limit = config
            .limits
            .disk_free_limit
            .bytes(available)
            .unwrap_or(50_000_000);
        Arc::new(Resources {
            admin: std::sync::Mutex::new((0..shards).map(|_| None).collect()),
            access: std::sync::RwLock::default(),
            disk_free_limit,
            memory: (0..shards).map(|_| AtomicI64::new(0)).collect(),
            watermark,
            page_out_above,
            node: Limit::zero_unlimited(config.limits.connection_max),
            vhosts: config
                .vhost_limits
                .iter()
                .filter_map(|(v, l)| Some((v.clone(), Limit::new(l.max_connections?))))
                .collect(),
            users: config
                .user_limits
                .iter()
                .filter_map(|(u, l)| Some((u.clone(), Limit::new(l.max_connections?))))
                .collect(),
        })
    }

    /// Counts a new connection against `limits.connection_max`.
    ///
    /// # Errors
    /// 530 NOT_ALLOWED once the limit is reached.
    pub fn admit(&self) -> Result<Claim, Refusal> {
        self.node.take().ok_or_else(|| {
            not_allowed(format_args!(
                "connection refused: node connection limit ({}) is reached",
                self.node.max()
            ))
        })
    }

    /// Counts a logged-in connection against its user's limit (none when
    /// the user has no limit).
    ///
    /// # Errors
    /// 530 NOT_ALLOWED, in RabbitMQ's words, once the limit is reached.
    pub fn admit_user(&self, user: &str) -> Result<Option<Claim>, Refusal> {
        let Some((_, limit)) = self.users.iter().find(|(u, _)| u == user) else {
            return Ok(None);
        };
        limit.take().map(Some).ok_or_else(|| {
            not_allowed(format_args!(
                "Connection refused for user '{user}'. User connection limit ({}) is reached",
                limit.max()
            ))
        })
    }

    /// Counts a connection opening `vhost` against its limit.
    ///
    /// # Errors
    /// 530 NOT_ALLOWED, in RabbitMQ's words, once the limit is reached.
    pub fn admit_vhost(&self, vhost: &str, user: &str) -> Result<Option<Claim>, Refusal> {
        let Some((_, limit)) = self.vhosts.iter().find(|(v, _)| v == vhost) else {
            return Ok(None);
        };
        limit.take().map(Some).ok_or_else(|| {
            not_allowed(format_args!(
                "access to vhost '{vhost}' refused for user '{user}': connection limit ({}) is reached",
                limit.max()
            ))
        })
    }

    /// Connections counted now (all of them).
    pub fn connections(&self) -> usize {
        self.node.taken()
    }

    /// Records what shard `shard` holds now.
    pub fn publish_memory(&self, shard: u16, bytes: i64) {
        if let Some(m) = self.memory.get(usize::from(shard)) {
            m.store(bytes, Ordering::Relaxed);
        }
    }

    /// Registers shard `id`'s admin channel; returns its receiving side.
    pub fn admin_register(
        &self,
        id: u16,
    ) -> futures_channel::mpsc::UnboundedReceiver<crate::admin::AdminCall> {
        let (tx, rx) = futures_channel::mpsc::unbounded();
        if let Ok(mut all) = self.admin.lock() {
            if let Some(slot) = all.get_mut(usize::from(id)) {
                *slot = Some(tx);
            }
        }
        rx
    }

    /// The admin channels of the shards that started.
    pub fn admin_senders(&self) -> Vec<AdminSender> {
        self.admin
            .lock()
            .map(|all| all.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    /// Users, vhosts and permissions as last published.
    pub fn access(&self) -> Arc<ringmq_mgmt::view::AccessView> {
        self.access
            .read()
            .map(|a| a.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Publishes the coordinator's users, vhosts and permissions.
    pub fn publish_access(&self, view: ringmq_mgmt::view::AccessView) {
        let view = Arc::new(view);
        match self.access.write() {
            Ok(mut a) => *a = view,
            Err(e) => *e.into_inner() = view,
        }
    }

    /// Bytes held by every shard, as they last published.
    pub fn memory_held(&self) -> u64 {
        let sum: i64 = self.memory.iter().map(|m| m.load(Ordering::Relaxed)).sum();
        sum.max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{UserLimits, VhostLimits};

    #[test]
    fn claims_count_until_the_limit_and_go_back_on_drop() {
        let mut c = Config::default();
        c.limits.connection_max = 2;
        c.vhost_limits.insert(
            "/".into(),
            VhostLimits {
                max_connections: Some(1),
                max_queues: None,
            },
        );
        c.user_limits.insert(
            "guest".into(),
            UserLimits {
                max_connections: Some(1),
            },
        );
        let r = Resources::new(&c, 2);
        let a = r.admit().unwrap();
        let _b = r.admit().unwrap();
        let refused = r.admit().unwrap_err();
        assert_eq!(refused.code, ErrorCode::NotAllowed);
        assert!(
            refused.text.contains("node connection limit (2)"),
            "{refused:?}"
        );
        drop(a);
        assert_eq!(r.connections(), 1);
        assert!(r.admit().is_ok());

        let v = r.admit_vhost("/", "guest").unwrap();
        assert!(v.is_some());
        let refused = r.admit_vhost("/", "guest").unwrap_err();
        assert!(
            refused
                .text
                .contains("access to vhost '/' refused for user 'guest'"),
            "{refused:?}"
        );
        drop(v);
        assert!(r.admit_vhost("/", "guest").unwrap().is_some());

        let u = r.admit_user("guest").unwrap();
        assert!(r.admit_user("guest").is_err());
        drop(u);
        assert!(r.admit_user("other").unwrap().is_none());
    }
}
