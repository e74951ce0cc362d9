//! Users and passwords. Passwords are stored only as hashes, in RabbitMQ's
//! SHA-256 format (so hashes can be copied from RabbitMQ definitions), and
//! compared in constant time. Nothing here logs.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// Hashes `password` with a random salt.
pub fn hash_password(password: &str) -> String {
    hash_password_with_salt(password, rand::random())
}

/// Hashes `password` with `salt`: base64(salt ++ SHA-256(salt ++ password)).
pub fn hash_password_with_salt(password: &str, salt: [u8; 4]) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Splits a stored hash into salt and digest.
pub fn decode_hash(stored: &str) -> Option<([u8; 4], [u8; 32])> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .ok()?;
    if raw.len() != 36 {
        return None;
    }
    let mut salt = [0; 4];
    salt.copy_from_slice(&raw[..4]);
    let mut digest = [0; 32];
    digest.copy_from_slice(&raw[4..]);
    Some((salt, digest))
}

/// True when `password` matches `stored`.
pub fn verify(password: &str, stored: &str) -> bool {
    let Some((salt, digest)) = decode_hash(stored) else {
        return false;
    };
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let got = h.finalize();
    got.iter()
        .zip(digest.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

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
    let u = config
        .users
        .iter()
        .find(|u| u.name == user)
        .ok_or(LoginError::BadCredentials)?;
    if !verify(password, &u.password_hash) {
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
    fn hashes_verify() {
        let h = hash_password("s3cret");
        assert!(verify("s3cret", &h));
        assert!(!verify("s3cre", &h));
        assert!(!verify("x", "not base64!"));
    }

    #[test]
    fn matches_rabbitmq_format() {
        // From RabbitMQ's docs: salt 908DC60A, password "test12".
        assert_eq!(
            hash_password_with_salt("test12", [0x90, 0x8D, 0xC6, 0x0A]),
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
        );
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
