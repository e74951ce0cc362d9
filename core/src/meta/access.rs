//! Users, permissions and topic permissions, replicated with the rest of
//! the metadata (vhosts themselves live in [`super::Meta`]). Pure: no I/O,
//! no logging.
//!
//! Permissions are RabbitMQ's: per user and vhost, three regular
//! expressions (configure, write, read) searched, unanchored, in a
//! resource's name; an empty one matches nothing. Topic permissions are
//! per user, vhost and exchange, on routing keys, with `{username}` and
//! `{vhost}` expanded. The compiled expressions are shared (`Arc`), so a
//! replica's copy for the management thread costs no recompilation.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;
use ringmq_mgmt::view::{AccessChange, PermissionRow, TopicPermissionRow, UserRow};
use ringmq_protocol::{ErrorCode, Refusal};

use crate::password::Algorithm;

/// The kind of access an operation needs on a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// Declare or delete it.
    Configure,
    /// Publish to it, bind to it.
    Write,
    /// Consume, get or purge from it, bind from it.
    Read,
}

impl Perm {
    /// RabbitMQ's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Perm::Configure => "configure",
            Perm::Write => "write",
            Perm::Read => "read",
        }
    }
}

/// A compiled permission expression; an empty one matches nothing.
#[derive(Debug, Clone)]
struct Pattern(Option<Arc<Regex>>);

impl Pattern {
    fn compile(field: &str, source: &str) -> Result<Pattern, Refusal> {
        if source.is_empty() {
            return Ok(Pattern(None));
        }
        Regex::new(source)
            .map(|r| Pattern(Some(Arc::new(r))))
            .map_err(|e| {
                Refusal::new(
                    ErrorCode::PreconditionFailed,
                    format_args!("{field}: invalid regular expression '{source}': {e}"),
                )
            })
    }

    fn matches(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|r| r.is_match(name))
    }
}

/// One user's permissions in one vhost, as given and compiled.
#[derive(Debug, Clone)]
pub struct Perms {
    /// As given.
    pub row: PermissionRow,
    configure: Pattern,
    write: Pattern,
    read: Pattern,
}

impl Perms {
    fn compile(row: PermissionRow) -> Result<Perms, Refusal> {
        Ok(Perms {
            configure: Pattern::compile("configure", &row.configure)?,
            write: Pattern::compile("write", &row.write)?,
            read: Pattern::compile("read", &row.read)?,
            row,
        })
    }

    /// True when `perm` on a resource named `name` is allowed.
    pub fn allows(&self, perm: Perm, name: &str) -> bool {
        match perm {
            Perm::Configure => self.configure.matches(name),
            Perm::Write => self.write.matches(name),
            Perm::Read => self.read.matches(name),
        }
    }
}

#[derive(Debug, Clone)]
struct TopicPerms {
    row: TopicPermissionRow,
    write: Pattern,
    read: Pattern,
}

impl TopicPerms {
    fn compile(row: TopicPermissionRow) -> Result<TopicPerms, Refusal> {
        let expand = |s: &str| {
            s.replace("{username}", &row.user)
                .replace("{vhost}", &row.vhost)
        };
        Ok(TopicPerms {
            write: Pattern::compile("write", &expand(&row.write))?,
            read: Pattern::compile("read", &expand(&row.read))?,
            row,
        })
    }
}

/// Every user and their permissions (nested by name, so a check looks
/// them up with borrowed names and allocates nothing).
#[derive(Debug, Clone, Default)]
pub struct Access {
    users: BTreeMap<String, UserRow>,
    /// By user, then vhost.
    perms: BTreeMap<String, BTreeMap<String, Perms>>,
    /// By user, then vhost, then exchange.
    topic: BTreeMap<String, BTreeMap<String, BTreeMap<String, TopicPerms>>>,
    /// Counts changes: a cache of checks is stale once it moves.
    generation: u64,
}

impl Access {
    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<&UserRow> {
        self.users.get(name)
    }

    /// Every user, by name.
    pub fn users(&self) -> impl Iterator<Item = &UserRow> {
        self.users.values()
    }

    /// `user`'s permissions in `vhost`; none means it may not open it.
    pub fn perms(&self, user: &str, vhost: &str) -> Option<&Perms> {
        self.perms.get(user)?.get(vhost)
    }

    /// Every permission, by user then vhost.
    pub fn permissions(&self) -> impl Iterator<Item = &PermissionRow> {
        self.perms.values().flat_map(|v| v.values()).map(|p| &p.row)
    }

    /// Every topic permission, by user, vhost, exchange.
    pub fn topic_permissions(&self) -> impl Iterator<Item = &TopicPermissionRow> {
        self.topic
            .values()
            .flat_map(|v| v.values())
            .flat_map(|x| x.values())
            .map(|t| &t.row)
    }

    /// True when `user` has topic permissions on some exchange of `vhost`
    /// (else every routing key is allowed, and nothing need be checked).
    pub fn has_topic_permissions(&self, user: &str, vhost: &str) -> bool {
        self.topic.get(user).is_some_and(|v| v.contains_key(vhost))
    }

    /// Changes so far (see the field).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when `user` may `perm` the routing key `key` on the topic
    /// exchange `exchange`: always, unless the user has topic permissions
    /// for that exchange, as in RabbitMQ.
    pub fn topic_allows(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        perm: Perm,
        key: &str,
    ) -> bool {
        let found = self
            .topic
            .get(user)
            .and_then(|v| v.get(vhost))
            .and_then(|x| x.get(exchange));
        match found {
            None => true,
            Some(t) => match perm {
                Perm::Write => t.write.matches(key),
                Perm::Read | Perm::Configure => t.read.matches(key),
            },
        }
    }

    /// Validates a change that is not about vhosts (the caller checks
    /// that the vhost it names exists).
    ///
    /// # Errors
    /// 404 for a missing user, 406 for a bad hash or expression.
    pub fn check(&self, change: &AccessChange) -> Result<(), Refusal> {
        let known = |user: &str| {
            if self.users.contains_key(user) {
                Ok(())
            } else {
                Err(Refusal::new(
                    ErrorCode::NotFound,
                    format_args!("no user '{user}'"),
                ))
            }
        };
        match change {
            AccessChange::PutUser(u) => check_user(u),
            AccessChange::DeleteUser { name } => known(name),
            AccessChange::SetPermissions(p) => {
                known(&p.user)?;
                Perms::compile(p.clone()).map(drop)
            }
            AccessChange::SetTopicPermissions(t) => {
                known(&t.user)?;
                if t.exchange.is_empty() {
                    return Err(Refusal::new(
                        ErrorCode::PreconditionFailed,
                        "exchange: a topic permission needs an exchange",
                    ));
                }
                TopicPerms::compile(t.clone()).map(drop)
            }
            AccessChange::ClearPermissions { user, .. }
            | AccessChange::ClearTopicPermissions { user, .. } => known(user),
            AccessChange::PutVhost(_)
            | AccessChange::DeleteVhost { .. }
            | AccessChange::SetPolicy { .. }
            | AccessChange::ClearPolicy { .. } => Ok(()),
        }
    }

    /// Applies a validated change (vhost changes only drop the vhost's
    /// permissions when it goes). An invalid one changes nothing.
    pub fn apply(&mut self, change: &AccessChange) {
        self.generation += 1;
        match change {
            AccessChange::PutUser(u) => {
                self.users.insert(u.name.clone(), u.clone());
            }
            AccessChange::DeleteUser { name } => {
                self.users.remove(name);
                self.perms.remove(name);
                self.topic.remove(name);
            }
            AccessChange::DeleteVhost { name } => {
                for v in self.perms.values_mut() {
                    v.remove(name);
                }
                for v in self.topic.values_mut() {
                    v.remove(name);
                }
                self.perms.retain(|_, v| !v.is_empty());
                self.topic.retain(|_, v| !v.is_empty());
            }
            AccessChange::PutVhost(_)
            | AccessChange::SetPolicy { .. }
            | AccessChange::ClearPolicy { .. } => {}
            AccessChange::SetPermissions(p) => {
                if let Ok(c) = Perms::compile(p.clone()) {
                    let of_user = self.perms.entry(p.user.clone()).or_default();
                    of_user.insert(p.vhost.clone(), c);
                }
            }
            AccessChange::ClearPermissions { user, vhost } => {
                if let Some(v) = self.perms.get_mut(user) {
                    v.remove(vhost);
                    if v.is_empty() {
                        self.perms.remove(user);
                    }
                }
            }
            AccessChange::SetTopicPermissions(t) => {
                if let Ok(c) = TopicPerms::compile(t.clone()) {
                    let of_user = self.topic.entry(t.user.clone()).or_default();
                    let of_vhost = of_user.entry(t.vhost.clone()).or_default();
                    of_vhost.insert(t.exchange.clone(), c);
                }
            }
            AccessChange::ClearTopicPermissions {
                user,
                vhost,
                exchange,
            } => {
                if let Some(of_user) = self.topic.get_mut(user) {
                    match exchange {
                        Some(x) => {
                            if let Some(of_vhost) = of_user.get_mut(vhost) {
                                of_vhost.remove(x);
                                if of_vhost.is_empty() {
                                    of_user.remove(vhost);
                                }
                            }
                        }
                        None => {
                            of_user.remove(vhost);
                        }
                    }
                    if of_user.is_empty() {
                        self.topic.remove(user);
                    }
                }
            }
        }
    }
}

/// A user's name, hash and algorithm must make sense.
fn check_user(u: &UserRow) -> Result<(), Refusal> {
    if u.name.is_empty() {
        return Err(Refusal::new(
            ErrorCode::PreconditionFailed,
            "name: a user needs a name",
        ));
    }
    let Some(alg) = Algorithm::parse(&u.hashing_algorithm) else {
        return Err(Refusal::new(
            ErrorCode::PreconditionFailed,
            format_args!(
                "hashing_algorithm: '{}' is not supported (rabbit_password_hashing_sha256 or rabbit_password_hashing_sha512)",
                u.hashing_algorithm
            ),
        ));
    };
    if !u.password_hash.is_empty() && !alg.is_hash(&u.password_hash) {
        return Err(Refusal::new(
            ErrorCode::PreconditionFailed,
            format_args!(
                "password_hash: not a {} hash (base64 of a 4-byte salt and the digest)",
                u.hashing_algorithm
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> AccessChange {
        AccessChange::PutUser(UserRow {
            name: name.into(),
            password_hash: crate::password::hash_password("pw"),
            hashing_algorithm: String::new(),
            tags: vec![],
        })
    }

    fn perms(user: &str, c: &str, w: &str, r: &str) -> AccessChange {
        AccessChange::SetPermissions(PermissionRow {
            user: user.into(),
            vhost: "/".into(),
            configure: c.into(),
            write: w.into(),
            read: r.into(),
        })
    }

    #[test]
    fn expressions_search_unanchored_and_empty_matches_nothing() {
        let mut a = Access::default();
        a.apply(&user("u"));
        a.apply(&perms("u", "^amq\\.gen", "logs", ""));
        let p = a.perms("u", "/").unwrap();
        assert!(p.allows(Perm::Configure, "amq.gen-abc"));
        assert!(!p.allows(Perm::Configure, "x.amq.gen"));
        assert!(p.allows(Perm::Write, "my-logs-2"));
        assert!(!p.allows(Perm::Read, ""));
        assert!(!p.allows(Perm::Read, "anything"));
        assert!(a.perms("u", "/other").is_none());
    }

    #[test]
    fn bad_input_is_refused_with_the_field_named() {
        let mut a = Access::default();
        let r = a.check(&perms("nobody", ".*", ".*", ".*")).unwrap_err();
        assert_eq!(r.code, ErrorCode::NotFound);
        a.apply(&user("u"));
        let r = a.check(&perms("u", "(", ".*", ".*")).unwrap_err();
        assert!(r.text.contains("configure: invalid regular expression"));
        let bad = AccessChange::PutUser(UserRow {
            name: "v".into(),
            password_hash: "nope".into(),
            hashing_algorithm: String::new(),
            tags: vec![],
        });
        assert!(a.check(&bad).unwrap_err().text.contains("password_hash: "));
        let md5 = AccessChange::PutUser(UserRow {
            name: "v".into(),
            password_hash: String::new(),
            hashing_algorithm: "rabbit_password_hashing_md5".into(),
            tags: vec![],
        });
        assert!(a.check(&md5).unwrap_err().text.contains("not supported"));
    }

    #[test]
    fn topic_permissions_expand_variables_and_default_to_allowed() {
        let mut a = Access::default();
        a.apply(&user("u"));
        assert!(a.topic_allows("u", "/", "amq.topic", Perm::Write, "x"));
        a.apply(&AccessChange::SetTopicPermissions(TopicPermissionRow {
            user: "u".into(),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            write: "^{username}\\.".into(),
            read: ".*".into(),
        }));
        assert!(a.topic_allows("u", "/", "amq.topic", Perm::Write, "u.x"));
        assert!(!a.topic_allows("u", "/", "amq.topic", Perm::Write, "v.x"));
        assert!(a.topic_allows("u", "/", "other", Perm::Write, "v.x"));
        a.apply(&AccessChange::DeleteUser { name: "u".into() });
        assert!(a.topic_permissions().next().is_none());
    }
}
