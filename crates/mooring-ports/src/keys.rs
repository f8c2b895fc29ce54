//! Customer data at rest: each customer's values are sealed by the
//! customer's own **data key** (XChaCha20-Poly1305, a fresh random 192-bit
//! nonce per seal), and each data key is stored wrapped by the
//! **key-encryption key** (KEK), the port below. Destroying a data key
//! shreds every copy of what it sealed, wherever the ciphertext lingers.
//!
//! Every seal binds a *context* as associated data (the customer and the
//! field, say), so a ciphertext copied to another row or field fails to
//! open. The port is synchronous because the store calls it inside its
//! blocking transactions; an adapter over a KMS blocks on its client there
//! (`docs/security.md`, "Adding a key adapter").

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Bytes in a data key (and in a local KEK).
pub const KEY_LEN: usize = 32;
/// The first byte of every sealed value: the format (XChaCha20-Poly1305,
/// nonce first). Another algorithm would take another byte.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;

/// A secret key of 32 bytes that seals and opens values. Zeroed when
/// dropped; its `Debug` shows nothing.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Self {
        let key = Key::generate();
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&key);
        Self(bytes)
    }

    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key's bytes, for a KEK to wrap.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.0))
    }

    /// `plaintext` sealed and bound to `context`: format byte, nonce,
    /// ciphertext and tag.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = XNonce::generate();
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            // Encryption fails only for messages beyond 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// What [`DataKey::seal`] sealed under this key and `context`; `Open`
    /// for another key, another context or altered bytes.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (&format, rest) = sealed.split_first().ok_or(KeyError::Open)?;
        if format != FORMAT || rest.len() < NONCE_LEN {
            return Err(KeyError::Open);
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| KeyError::Open)?;
        self.cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| KeyError::Open)
    }
}

/// A data key as stored: sealed by the KEK named `kek_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub kek_id: String,
    pub bytes: Vec<u8>,
}

/// Errors of a [`KeyEncryptionKey`], and of opening a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The data was wrapped by a KEK this process was not given.
    #[error(
        "a data key was wrapped by key {0}, which is neither pii.key nor one of pii.previous_keys"
    )]
    UnknownKek(String),
    /// Another key, another context, or altered bytes.
    #[error("the data cannot be opened with this key (a wrong key, or altered data)")]
    Open,
    /// The key service could not be reached (a KMS adapter).
    #[error("the key service is unavailable: {0}")]
    Unavailable(String),
}

/// The key-encryption key: wraps new data keys under the current key and
/// unwraps data keys wrapped under it or under a previous one (during a
/// rotation).
pub trait KeyEncryptionKey: Send + Sync + 'static {
    /// The id of the key that wraps new data keys. Stored beside each
    /// wrapped key, so that a rotation finds what is left to re-wrap.
    fn current_id(&self) -> &str;

    /// `key` wrapped under the current key, bound to `context`.
    fn wrap(&self, key: &DataKey, context: &[u8]) -> Result<WrappedKey, KeyError>;

    /// The data key inside `wrapped`; `UnknownKek` when its key is not
    /// configured, `Open` when the context or the bytes do not match.
    fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey, KeyError>;

    /// Whether wrapping and unwrapping are computation in this process,
    /// never a call that waits: only then does the store unwrap on an async
    /// worker (SQLite's reads on the caller's thread). A key service (a KMS)
    /// keeps the default, and its every use stays on the blocking pool.
    fn is_local(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let key = DataKey::generate();
        let sealed = key.seal(b"field\0c1\0first_name", b"Maria");
        assert_eq!(
            key.open(b"field\0c1\0first_name", &sealed).expect("opens"),
            b"Maria"
        );
        assert!(!sealed.windows(5).any(|w| w == b"Maria"), "no plaintext");
        // Another row's context, another field's, another key: refused.
        assert!(key.open(b"field\0c2\0first_name", &sealed).is_err());
        assert!(key.open(b"field\0c1\0last_name", &sealed).is_err());
        assert!(
            DataKey::generate()
                .open(b"field\0c1\0first_name", &sealed)
                .is_err()
        );
        // Any flipped bit, a truncation, another format: refused.
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(key.open(b"field\0c1\0first_name", &bad).is_err(), "bit {i}");
        }
        assert!(key.open(b"field\0c1\0first_name", &sealed[..20]).is_err());
        assert!(key.open(b"field\0c1\0first_name", &[]).is_err());
    }

    #[test]
    fn every_seal_takes_a_fresh_nonce() {
        let key = DataKey::generate();
        let a = key.seal(b"c", b"same");
        let b = key.seal(b"c", b"same");
        assert_ne!(a[1..1 + NONCE_LEN], b[1..1 + NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn a_key_survives_its_bytes_and_hides_them_from_debug() {
        let key = DataKey::generate();
        let again = DataKey::from_bytes(*key.expose());
        assert_eq!(
            again.open(b"c", &key.seal(b"c", b"x")).expect("opens"),
            b"x"
        );
        assert_eq!(format!("{key:?}"), "DataKey(..)");
        assert_ne!(key.expose(), DataKey::generate().expose());
    }
}
