//! Shopify access tokens at rest: AES-256-GCM (the `aes-gcm` crate) under a key from
//! `SAMPLIT_SHOPIFY_TOKEN_KEYS`, a fresh 96-bit random nonce per encryption, and the shop
//! domain as associated data (a ciphertext copied onto another shop's row does not
//! decrypt).
//!
//! ## Rotation
//! `SAMPLIT_SHOPIFY_TOKEN_KEYS=new:<base64>,old:<base64>`: the first key encrypts, every
//! listed key decrypts (rows keep the id of the key that sealed them). Each install, and
//! each token exchange when the merchant opens the embedded app, stores the token sealed
//! under the first key. A row sealed under a key no longer listed fails to decrypt and is
//! treated as "no token": the next opening of the app exchanges a fresh one. Drop the
//! old key once no row names it:
//! `SELECT count(*) FROM shopify_shops WHERE token_key_id = 'old'`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The keys, the encrypting one first. `Debug` prints ids only.
#[derive(Clone)]
pub struct TokenKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        write!(f, "TokenKeys({ids:?})")
    }
}

/// A sealed token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl TokenKeys {
    /// Parses `id:base64,id:base64` (each key exactly 32 bytes, ids `[A-Za-z0-9_-]{1,32}`
    /// and distinct).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut keys: Vec<(String, [u8; 32])> = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, b64) = part
                .split_once(':')
                .ok_or_else(|| "expected id:base64-key entries separated by commas".to_owned())?;
            if id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(format!("key id {id:?} must be 1 to 32 of [A-Za-z0-9_-]"));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(format!("key id {id:?} is listed twice"));
            }
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| format!("key {id:?} is not base64"))?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| {
                format!("key {id:?} must be 32 bytes (try `openssl rand -base64 32`)")
            })?;
            keys.push((id.to_owned(), key));
        }
        if keys.is_empty() {
            return Err("no key listed".to_owned());
        }
        Ok(Self { keys })
    }

    /// Encrypts under the first key, bound to `shop`.
    pub fn seal(&self, shop: &str, token: &str) -> Sealed {
        use rand::RngCore;
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(key.into());
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: token.as_bytes(),
                    aad: shop.as_bytes(),
                },
            )
            .expect("AES-GCM encrypts any message below 64 GiB");
        Sealed {
            key_id: id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Decrypts a sealed token of `shop`; `None` when its key is not listed, or the
    /// ciphertext, nonce or shop do not match.
    #[must_use]
    pub fn open(&self, shop: &str, sealed: &Sealed) -> Option<String> {
        let (_, key) = self.keys.iter().find(|(id, _)| *id == sealed.key_id)?;
        if sealed.nonce.len() != 12 {
            return None;
        }
        let plain = Aes256Gcm::new(key.into())
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: shop.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn parsing_names_what_is_wrong() {
        assert!(TokenKeys::parse(&format!("k1:{}", b64(1))).is_ok());
        for (raw, needle) in [
            (String::new(), "no key"),
            ("k1".to_owned(), "id:base64"),
            (format!("k1:{}", STANDARD.encode([1u8; 16])), "32 bytes"),
            ("k1:!!!".to_owned(), "not base64"),
            (format!("k1:{},k1:{}", b64(1), b64(2)), "twice"),
            (format!("bad id:{}", b64(1)), "key id"),
        ] {
            let err = TokenKeys::parse(&raw).unwrap_err();
            assert!(err.contains(needle), "{raw}: {err}");
        }
        let keys = TokenKeys::parse(&format!("k1:{}", b64(7))).unwrap();
        assert!(!format!("{keys:?}").contains(&b64(7)));
    }

    #[test]
    fn sealed_tokens_open_only_for_their_shop_and_survive_rotation() {
        let old = TokenKeys::parse(&format!("old:{}", b64(1))).unwrap();
        let sealed = old.seal("a.myshopify.com", "shpat_secret");
        assert_eq!(sealed.key_id, "old");
        assert!(
            !sealed
                .ciphertext
                .windows(b"shpat_secret".len())
                .any(|w| w == b"shpat_secret")
        );
        assert_eq!(
            old.open("a.myshopify.com", &sealed).as_deref(),
            Some("shpat_secret")
        );
        assert_eq!(old.open("b.myshopify.com", &sealed), None);
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert_eq!(old.open("a.myshopify.com", &flipped), None);
        // Two seals of one token differ (fresh nonces).
        assert_ne!(
            old.seal("a.myshopify.com", "t"),
            old.seal("a.myshopify.com", "t")
        );

        let rotated = TokenKeys::parse(&format!("new:{},old:{}", b64(2), b64(1))).unwrap();
        assert_eq!(
            rotated.open("a.myshopify.com", &sealed).as_deref(),
            Some("shpat_secret")
        );
        assert_eq!(rotated.seal("a.myshopify.com", "t").key_id, "new");
        let dropped = TokenKeys::parse(&format!("new:{}", b64(2))).unwrap();
        assert_eq!(dropped.open("a.myshopify.com", &sealed), None);
    }
}
