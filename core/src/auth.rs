//! Login: a user's credentials against the stored users (hashes in
//! [`crate::password`]), the loopback restriction, and access to vhosts
//! (a user may open a vhost it has permissions in, as in RabbitMQ).
//! Nothing here logs.

use crate::meta::{Access, Meta};
use crate::password::Algorithm;
use ringmq_mgmt::view::UserRow;

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// Unknown user or wrong password (not told apart, as in RabbitMQ).
    BadCredentials,
    /// The user may only connect from loopback.
    LoopbackOnly,
    /// The vhost does not exist.
    NoVhost,
    /// The user may not open the vhost.
    VhostRefused,
    /// A gateway's user vouched for another user without the
    /// `impersonator` tag.
    MayNotVouch,
}

/// The hash an unknown user's password is checked against: a well-formed
/// hash no password matches in practice, so that an unknown user costs the
/// same work as a wrong password and cannot be told apart by timing.
const UNKNOWN_USER_HASH: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// True when `user` exists, has a password, and `password` is it. An
/// unknown user, or one without a password, is checked against a
/// well-formed hash no password matches, so every refusal costs the same
/// work and cannot be told apart by timing. The native login and the
/// management API both check passwords here.
pub fn password_matches(user: Option<&UserRow>, password: &str) -> bool {
    let stored = user.filter(|u| !u.password_hash.is_empty());
    let (hash, algorithm) = stored.map_or((UNKNOWN_USER_HASH, Algorithm::Sha256), |u| {
        (
            u.password_hash.as_str(),
            Algorithm::parse(&u.hashing_algorithm).unwrap_or(Algorithm::Sha256),
        )
    });
    let matches = algorithm.verify(password, hash);
    stored.is_some() && matches
}

/// Checks a user's credentials (and the loopback restriction).
///
/// # Errors
/// Why it was refused.
pub fn authenticate(
    access: &Access,
    loopback_users: &[String],
    user: &str,
    password: &str,
    from_loopback: bool,
) -> Result<(), LoginError> {
    if !password_matches(access.user(user), password) {
        return Err(LoginError::BadCredentials);
    }
    if !from_loopback && loopback_users.iter().any(|l| l == user) {
        return Err(LoginError::LoopbackOnly);
    }
    Ok(())
}

/// Checks that an authenticated user may log in on behalf of another
/// (a gateway vouching for an AMQPS client's certificate identity): it
/// needs the `impersonator` tag, the tag RabbitMQ gives users that may act
/// under another user's identity.
///
/// # Errors
/// A user without the tag.
pub fn may_vouch(access: &Access, user: &str) -> Result<(), LoginError> {
    if access.user(user).is_some_and(|u| u.has("impersonator")) {
        Ok(())
    } else {
        Err(LoginError::MayNotVouch)
    }
}

/// Checks a user named by a verified client certificate (the `EXTERNAL`
/// mechanism): it must exist (no password is checked), and the loopback
/// restriction applies.
///
/// # Errors
/// An unknown user (as bad credentials), or loopback only.
pub fn authorize_external(
    access: &Access,
    loopback_users: &[String],
    user: &str,
    from_loopback: bool,
) -> Result<(), LoginError> {
    if access.user(user).is_none() {
        return Err(LoginError::BadCredentials);
    }
    if !from_loopback && loopback_users.iter().any(|l| l == user) {
        return Err(LoginError::LoopbackOnly);
    }
    Ok(())
}

/// Checks that an authenticated user may open `vhost`.
///
/// # Errors
/// Unknown vhost or no access.
pub fn open_vhost(meta: &Meta, user: &str, vhost: &str) -> Result<(), LoginError> {
    if meta.vhost(vhost).is_none() {
        return Err(LoginError::NoVhost);
    }
    if meta.access().perms(user, vhost).is_none() {
        return Err(LoginError::VhostRefused);
    }
    Ok(())
}

/// Checks a login: credentials, then vhost.
///
/// # Errors
/// Why it was refused.
pub fn login(
    meta: &Meta,
    loopback_users: &[String],
    user: &str,
    password: &str,
    vhost: &str,
    from_loopback: bool,
) -> Result<(), LoginError> {
    authenticate(meta.access(), loopback_users, user, password, from_loopback)?;
    open_vhost(meta, user, vhost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn seeded() -> Meta {
        let mut m = Meta::default();
        for op in crate::log::meta_store::seed_ops(&Config::default()) {
            m.apply(&op);
        }
        m
    }

    fn login(m: &Meta, user: &str, pw: &str, vhost: &str, lo: bool) -> Result<(), LoginError> {
        super::login(m, &["guest".to_owned()], user, pw, vhost, lo)
    }

    #[test]
    fn unknown_users_are_checked_against_a_well_formed_hash() {
        let m = seeded();
        // A hash that decodes: verify() hashes the password as it does for
        // a real user instead of returning early.
        assert!(Algorithm::Sha256.is_hash(UNKNOWN_USER_HASH));
        assert!(!Algorithm::Sha256.verify("", UNKNOWN_USER_HASH));
        assert!(!password_matches(m.access().user("nobody"), "guest"));
        assert!(password_matches(m.access().user("guest"), "guest"));
        let no_password = UserRow {
            password_hash: String::new(),
            ..m.access().user("guest").unwrap().clone()
        };
        assert!(!password_matches(Some(&no_password), ""));
    }

    #[test]
    fn login_rules() {
        let c = seeded();
        assert_eq!(login(&c, "guest", "guest", "/", true), Ok(()));
        assert_eq!(
            login(&c, "guest", "nope", "/", true),
            Err(LoginError::BadCredentials)
        );
        assert_eq!(
            login(&c, "nobody", "guest", "/", true),
            Err(LoginError::BadCredentials)
        );
        assert_eq!(
            login(&c, "guest", "guest", "/", false),
            Err(LoginError::LoopbackOnly)
        );
        assert_eq!(
            login(&c, "guest", "guest", "/nope", true),
            Err(LoginError::NoVhost)
        );
    }
}
