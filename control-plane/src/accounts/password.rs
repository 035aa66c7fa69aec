//! [`Password`], and argon2id hashing and verification.
//!
//! Both run on the blocking pool behind the argon2 gate ([`PasswordGate`]: a bounded
//! number at once, 503 `busy` past a wait), since each takes tens of milliseconds of CPU
//! and 19 MiB. A password only becomes a hash once it has been parsed as a [`Password`];
//! verification takes the raw candidate, since a login must not say which rule a wrong
//! password breaks.

use std::sync::LazyLock;

use crate::auth::{PasswordGate, new_token};
use crate::error::{ApiError, ApiResult};

pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// A password acceptable for a new account: 10 to 128 characters (not trimmed).
///
/// No `Debug`, and no way to read it back: it only leaves as a hash.
pub struct Password(String);

impl Password {
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        let n = raw.chars().count();
        if n < PASSWORD_MIN_CHARS {
            Err("a password has at least 10 characters")
        } else if n > PASSWORD_MAX_CHARS {
            Err("a password has at most 128 characters")
        } else {
            Ok(Self(raw))
        }
    }
}

/// Hashes a password with argon2id (default parameters, random 16-byte salt) off the
/// async threads, behind the argon2 gate (503 `busy` when it stays full).
pub async fn hash_password(gate: &PasswordGate, password: Password) -> ApiResult<String> {
    let Password(password) = password;
    gate.run(move || {
        use argon2::PasswordHasher;
        use rand::RngCore;
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let salt = argon2::password_hash::SaltString::encode_b64(&salt)
            .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
    .map_err(ApiError::Internal)
}

/// A hash of a random password, verified against when the email is unknown so that the
/// answer takes as long as for a known one.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    use argon2::PasswordHasher;
    let salt = argon2::password_hash::SaltString::encode_b64(&[42u8; 16])
        .expect("16 bytes are a valid salt");
    argon2::Argon2::default()
        .hash_password(new_token("dummy_").as_bytes(), &salt)
        .map(|h| h.to_string())
        .expect("argon2 with default parameters hashes any input")
});

/// Verifies `password` against `hash` (or against the dummy hash when `None`, always
/// answering false then). Unparseable stored hashes count as a mismatch.
pub async fn verify_password(
    gate: &PasswordGate,
    password: String,
    hash: Option<String>,
) -> ApiResult<bool> {
    gate.run(move || {
        use argon2::PasswordVerifier;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        let Ok(parsed) = argon2::PasswordHash::new(&hash) else {
            return false;
        };
        let ok = argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && known
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_10_to_128_characters_counted_as_characters() {
        assert!(Password::parse("123456789".into()).is_err());
        assert!(Password::parse("1234567890".into()).is_ok());
        assert!(
            Password::parse("é".repeat(10)).is_ok(),
            "10 characters, 20 bytes"
        );
        assert!(Password::parse("x".repeat(128)).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let g = PasswordGate::new(2, std::time::Duration::from_secs(5));
        let password = Password::parse("correct horse battery".into()).unwrap();
        let hash = hash_password(&g, password).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            verify_password(&g, "correct horse battery".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password(&g, "wrong horse battery".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!verify_password(&g, "anything".into(), None).await.unwrap());
        assert!(
            !verify_password(&g, "x".into(), Some("not a hash".into()))
                .await
                .unwrap()
        );
        assert_eq!(g.runs(), 5);
        assert!(g.max_in_flight() <= 2);
    }
}
