//! Login: a user's credentials against the configured users (hashes in
//! [`crate::password`]), the loopback restriction, and access to vhosts.
//! Nothing here logs.

use crate::config::Config;
use crate::password::verify;

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
}

/// The hash an unknown user's password is checked against: a well-formed
/// hash no password matches in practice, so that an unknown user costs the
/// same work as a wrong password and cannot be told apart by timing.
const UNKNOWN_USER_HASH: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// The stored hash to check `user`'s password against, and whether the
/// user exists.
fn stored_hash<'c>(config: &'c Config, user: &str) -> (&'c str, bool) {
    match config.users.iter().find(|u| u.name == user) {
        Some(u) => (&u.password_hash, true),
        None => (UNKNOWN_USER_HASH, false),
    }
}

/// Checks a user's credentials (and the loopback restriction).
///
/// # Errors
/// Why it was refused.
pub fn authenticate(
    config: &Config,
    user: &str,
    password: &str,
    from_loopback: bool,
) -> Result<(), LoginError> {
    let (hash, known) = stored_hash(config, user);
    // Verified for unknown users too: same work either way.
    let matches = verify(password, hash);
    if !(known && matches) {
        return Err(LoginError::BadCredentials);
    }
    if !from_loopback && config.loopback_users.iter().any(|l| l == user) {
        return Err(LoginError::LoopbackOnly);
    }
    Ok(())
}

/// Checks that an authenticated user may open `vhost`.
///
/// # Errors
/// Unknown vhost or no access.
pub fn open_vhost(config: &Config, user: &str, vhost: &str) -> Result<(), LoginError> {
    if !config.vhosts.iter().any(|v| v == vhost) {
        return Err(LoginError::NoVhost);
    }
    let allowed = config
        .users
        .iter()
        .find(|u| u.name == user)
        .is_some_and(|u| u.vhosts.iter().any(|v| v == vhost));
    if !allowed {
        return Err(LoginError::VhostRefused);
    }
    Ok(())
}

/// Checks a login against the configured users: credentials, then vhost.
///
/// # Errors
/// Why it was refused.
pub fn login(
    config: &Config,
    user: &str,
    password: &str,
    vhost: &str,
    from_loopback: bool,
) -> Result<(), LoginError> {
    authenticate(config, user, password, from_loopback)?;
    open_vhost(config, user, vhost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_users_are_checked_against_a_well_formed_hash() {
        let c = Config::default();
        let (hash, known) = stored_hash(&c, "nobody");
        assert!(!known);
        // A hash that decodes: verify() hashes the password as it does for
        // a real user instead of returning early.
        assert!(crate::password::decode_hash(hash).is_some());
        assert!(!verify("", hash));
        assert!(stored_hash(&c, "guest").1);
    }

    #[test]
    fn login_rules() {
        let c = Config::default();
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
