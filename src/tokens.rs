//! Bearer credentials (seller API keys, shopper session tokens): how they are made and kept.
//!
//! Promises: a token is its prefix plus 256 random bits (base64url), so it cannot be guessed and
//! a leaked one is recognisable; only its SHA-256 digest is stored. A fast hash is enough for
//! 256-bit secrets and keeps every authenticated request cheap.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new random token starting with `prefix`.
pub fn new_token(prefix: &str) -> String {
    let mut secret = [0_u8; 32];
    rand::rng().fill_bytes(&mut secret);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(secret))
}

/// What is stored of a token.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_distinct() {
        let (a, b) = (new_token("agora_x_"), new_token("agora_x_"));
        assert!(a.starts_with("agora_x_"));
        assert_eq!(a.len(), "agora_x_".len() + 43);
        assert_ne!(a, b);
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(digest(&a).len(), 32);
    }
}
