//! Password hashes in RabbitMQ's formats (so hashes can be copied from
//! RabbitMQ definitions): base64(salt ++ SHA-256(salt ++ password)), or
//! SHA-512 for `rabbit_password_hashing_sha512`, compared in constant
//! time. Nothing here logs.

use base64::Engine as _;
use sha2::{Digest, Sha256, Sha512};

/// RabbitMQ's name of the default (SHA-256) hashing algorithm.
pub const SHA256: &str = "rabbit_password_hashing_sha256";
/// RabbitMQ's name of the SHA-512 hashing algorithm.
pub const SHA512: &str = "rabbit_password_hashing_sha512";

/// A password hashing algorithm ringmq can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `rabbit_password_hashing_sha256`.
    Sha256,
    /// `rabbit_password_hashing_sha512`.
    Sha512,
}

impl Algorithm {
    /// The algorithm RabbitMQ names `name` (empty: the default, SHA-256).
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name {
            "" | SHA256 => Some(Algorithm::Sha256),
            SHA512 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    fn digest(self, salt: &[u8], password: &str) -> Vec<u8> {
        match self {
            Algorithm::Sha256 => {
                let mut h = Sha256::new();
                h.update(salt);
                h.update(password.as_bytes());
                h.finalize().to_vec()
            }
            Algorithm::Sha512 => {
                let mut h = Sha512::new();
                h.update(salt);
                h.update(password.as_bytes());
                h.finalize().to_vec()
            }
        }
    }

    /// True when `stored` is a well-formed hash of this algorithm.
    pub fn is_hash(self, stored: &str) -> bool {
        decode(stored).is_some_and(|raw| raw.len() == 4 + self.digest(&[], "").len())
    }

    /// True when `password` matches `stored` (false for a malformed hash).
    pub fn verify(self, password: &str, stored: &str) -> bool {
        let Some(raw) = decode(stored) else {
            return false;
        };
        if raw.len() < 4 {
            return false;
        }
        let (salt, digest) = raw.split_at(4);
        let got = self.digest(salt, password);
        got.len() == digest.len()
            && got
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

fn decode(stored: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(stored)
        .ok()
}

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
