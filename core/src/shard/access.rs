//! Users, vhosts and permissions on a shard: the coordinator's handling of
//! a change (check, then replicate like any metadata change), what
//! applying one does beyond the replica (a deleted user's or vhost's
//! connections are closed; a deleted vhost's queues go from their owner
//! with their messages), and shard 0's copy for the management API.

use std::rc::Rc;

use ringmq_mgmt::view::{AccessChange, AccessView};
use ringmq_protocol::Refusal;

use super::coordinator::MetaTurn;
use super::mesh::CallResp;
use super::Shard;
use crate::meta::MetaOp;

impl Shard {
    /// Coordinator: validates `change` and replicates it.
    pub(super) async fn change_access(
        self: &Rc<Self>,
        turn: &mut Option<MetaTurn>,
        change: AccessChange,
    ) -> Result<CallResp, Refusal> {
        self.meta.borrow().check_access(&change)?;
        self.replicate(turn, MetaOp::Access(change)).await?;
        Ok(CallResp::Done)
    }

    /// What `change` does on this shard before its replica applies it.
    pub(super) fn before_access_change(&self, change: &AccessChange) {
        match change {
            AccessChange::DeleteVhost { name } => {
                self.close_sessions_where(
                    |_, vhost| vhost == name,
                    &format!("vhost '{name}' is deleted"),
                );
                let owned: Vec<_> = self
                    .meta
                    .borrow()
                    .vhost(name)
                    .map(|v| {
                        v.queues()
                            .filter(|q| q.shard == self.id)
                            .map(|q| q.id)
                            .collect()
                    })
                    .unwrap_or_default();
                for id in owned {
                    if self.delete_owned_queue(id).is_none() {
                        self.delete_owned_stream(id);
                    }
                }
            }
            AccessChange::DeleteUser { name } => self
                .close_sessions_where(|user, _| user == name, &format!("user '{name}' is deleted")),
            _ => {}
        }
    }

    /// After a policy change in `vhost` was applied to the replica: the
    /// queues this shard owns there take their new effective arguments.
    pub(super) fn after_policy_change(&self, vhost: &str, now: u64) {
        let changed: Vec<_> = {
            let meta = self.meta.borrow();
            let Some(v) = meta.vhost(vhost) else { return };
            let queues = self.queues.borrow();
            queues
                .values()
                .filter(|q| q.vhost == vhost)
                .filter_map(|q| {
                    let def = v.queue_by_id(q.def.id)?;
                    (def.args != q.def.args).then(|| (q.def.id, def.args.clone()))
                })
                .collect()
        };
        for (id, args) in changed {
            self.with_queue(id, now, |q, sink| q.set_args(args, now, sink));
        }
    }

    /// Closes (320 CONNECTION_FORCED, `reason`) this shard's sessions
    /// whose (user, vhost) match.
    fn close_sessions_where(&self, matches: impl Fn(&str, &str) -> bool, reason: &str) {
        let doomed: Vec<_> = self
            .sessions
            .borrow()
            .values()
            .filter(|s| {
                let (user, vhost) = s.login();
                matches(&user, &vhost)
            })
            .cloned()
            .collect();
        for s in doomed {
            s.force_close(reason);
        }
    }

    /// Shard 0 publishes its users, vhosts and permissions for the
    /// management thread.
    pub(crate) fn publish_access(&self) {
        if self.id != 0 {
            return;
        }
        let meta = self.meta.borrow();
        let access = meta.access();
        let mut vhosts: Vec<_> = meta.vhosts().map(|v| v.info.clone()).collect();
        vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        self.resources.publish_access(AccessView {
            users: access.users().cloned().collect(),
            vhosts,
            permissions: access.permissions().cloned().collect(),
            topic_permissions: access.topic_permissions().cloned().collect(),
            policies: meta.policies().rows(false).cloned().collect(),
            operator_policies: meta.policies().rows(true).cloned().collect(),
        });
    }
}
