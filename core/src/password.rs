//! Password hashes in RabbitMQ's SHA-256 format (so hashes can be copied
//! from RabbitMQ definitions): base64(salt ++ SHA-256(salt ++ password)),
//! compared in constant time. Nothing here logs.

use base64::Engine as _;
use sha2::{Digest, Sha256};

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
}
