//! The local key-encryption key: the adapter of the
//! [`KeyEncryptionKey`] port that holds its keys in the process, from
//! `pii.key` and `pii.previous_keys` (each the standard base64 of 32 random
//! bytes), or from a key file that a SQLite install creates for itself.
//!
//! A key's id is the first 8 bytes of the SHA-256 of a label and the key, in
//! hex: it names the key beside every data key it wraps (so that a rotation
//! finds what is left) without revealing it. Another adapter (a KMS, Vault)
//! implements the same port; `docs/security.md` says how.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mooring_ports::{DataKey, KEY_LEN, KeyEncryptionKey, KeyError, WrappedKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Errors of reading keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{setting} is not the standard base64 of 32 bytes")]
    Malformed { setting: &'static str },
    #[error("the key file {path}: {message}")]
    File { path: String, message: String },
}

/// The current key and the previous ones still accepted for unwrapping.
#[derive(Debug)]
pub struct Keyring {
    current: (String, DataKey),
    previous: Vec<(String, DataKey)>,
}

/// The id of `key`: 16 hex digits, derived one way.
fn key_id(key: &DataKey) -> String {
    let digest = Sha256::new()
        .chain_update(b"mooring key id\0")
        .chain_update(key.expose())
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(text: &str, setting: &'static str) -> Result<DataKey, KeyringError> {
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| KeyringError::Malformed { setting })?,
    );
    let bytes: [u8; KEY_LEN] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyringError::Malformed { setting })?;
    Ok(DataKey::from_bytes(bytes))
}

impl Keyring {
    pub fn new(current: DataKey, previous: Vec<DataKey>) -> Self {
        let named = |k: DataKey| (key_id(&k), k);
        let current = named(current);
        let previous = previous
            .into_iter()
            .map(named)
            .filter(|(id, _)| *id != current.0)
            .collect();
        Self { current, previous }
    }

    /// `pii.key` and `pii.previous_keys`, as configured.
    pub fn parse(current: &str, previous: &[String]) -> Result<Self, KeyringError> {
        let current = decode(current, "pii.key")?;
        let previous = previous
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| decode(p, "pii.previous_keys"))
            .collect::<Result<_, _>>()?;
        Ok(Self::new(current, previous))
    }

    /// The key in the file at `path`, created (32 random bytes in base64,
    /// mode 0600, never overwritten) when there is none. Returns whether it
    /// was created. The key is written to a file of its own first and then
    /// linked into place, so a crash never leaves a partial key file, and
    /// two processes starting at once agree on one key.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyringError> {
        let failed = |e: std::io::Error| KeyringError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let created = if path.exists() {
            false
        } else {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".new-{}", std::process::id()));
            let staged = std::path::PathBuf::from(name);
            let _ = std::fs::remove_file(&staged);
            let mut file = new_file(&staged).map_err(failed)?;
            let key = DataKey::generate();
            let text = Zeroizing::new(STANDARD.encode(key.expose()));
            file.write_all(text.as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
                .map_err(failed)?;
            drop(file);
            let linked = std::fs::hard_link(&staged, path);
            let _ = std::fs::remove_file(&staged);
            match linked {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(failed(e)),
            }
        };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(failed)?);
        let key = decode(&text, "the key file").map_err(|_| KeyringError::File {
            path: path.display().to_string(),
            message: "not the standard base64 of 32 bytes".into(),
        })?;
        Ok((Self::new(key, Vec::new()), created))
    }

    /// This keyring with `previous` (as in `pii.previous_keys`) added.
    pub fn with_previous(self, previous: &[String]) -> Result<Self, KeyringError> {
        let mut keys = Vec::new();
        for p in previous.iter().filter(|p| !p.trim().is_empty()) {
            keys.push(decode(p, "pii.previous_keys")?);
        }
        let Self {
            current: (_, current),
            previous: mut kept,
        } = self;
        let mut ring = Self::new(current, keys);
        ring.previous.append(&mut kept);
        Ok(ring)
    }

    /// The ids of the previous keys.
    pub fn previous_ids(&self) -> Vec<&str> {
        self.previous.iter().map(|(id, _)| id.as_str()).collect()
    }

    fn by_id(&self, id: &str) -> Option<&DataKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|(k, _)| k == id)
            .map(|(_, key)| key)
    }
}

/// A new file only readable by its owner; `AlreadyExists` if there is one.
fn new_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl KeyEncryptionKey for Keyring {
    fn current_id(&self) -> &str {
        &self.current.0
    }

    fn wrap(&self, key: &DataKey, context: &[u8]) -> Result<WrappedKey, KeyError> {
        Ok(WrappedKey {
            kek_id: self.current.0.clone(),
            bytes: self.current.1.seal(context, key.expose()),
        })
    }

    fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey, KeyError> {
        let kek = self
            .by_id(&wrapped.kek_id)
            .ok_or_else(|| KeyError::UnknownKek(wrapped.kek_id.clone()))?;
        let bytes = Zeroizing::new(kek.open(context, &wrapped.bytes)?);
        let bytes: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| KeyError::Open)?;
        Ok(DataKey::from_bytes(bytes))
    }

    /// The keys are in memory: unwrapping is a few microseconds of AEAD.
    fn is_local(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(key: &DataKey) -> String {
        STANDARD.encode(key.expose())
    }

    #[test]
    fn a_wrapped_key_unwraps_under_its_context_with_the_key_that_wrapped_it() {
        let ring = Keyring::new(DataKey::generate(), Vec::new());
        let dek = DataKey::generate();
        let wrapped = ring.wrap(&dek, b"data-key\0c1").expect("wrap");
        assert_eq!(wrapped.kek_id, ring.current_id());
        let back = ring.unwrap(&wrapped, b"data-key\0c1").expect("unwrap");
        assert_eq!(back.expose(), dek.expose());
        // Another customer's row: refused.
        assert!(matches!(
            ring.unwrap(&wrapped, b"data-key\0c2"),
            Err(KeyError::Open)
        ));
        // Another key: refused, naming the key it needs.
        let other = Keyring::new(DataKey::generate(), Vec::new());
        assert!(matches!(
            other.unwrap(&wrapped, b"data-key\0c1"),
            Err(KeyError::UnknownKek(id)) if id == ring.current_id()
        ));
        // A forged id: the wrong key cannot open it.
        let forged = WrappedKey {
            kek_id: other.current_id().to_owned(),
            bytes: wrapped.bytes.clone(),
        };
        assert!(matches!(
            other.unwrap(&forged, b"data-key\0c1"),
            Err(KeyError::Open)
        ));
    }

    #[test]
    fn a_rotation_opens_with_the_previous_key_and_wraps_with_the_new_one() {
        let (old, new) = (DataKey::generate(), DataKey::generate());
        let before = Keyring::parse(&b64(&old), &[]).expect("old ring");
        let wrapped = before.wrap(&DataKey::generate(), b"ctx").expect("wrap");
        let during = Keyring::parse(&b64(&new), &[b64(&old), " ".into()]).expect("ring");
        assert_ne!(during.current_id(), before.current_id());
        assert_eq!(during.previous_ids(), [before.current_id()]);
        let dek = during
            .unwrap(&wrapped, b"ctx")
            .expect("opened by the previous key");
        let rewrapped = during.wrap(&dek, b"ctx").expect("wrap");
        assert_eq!(rewrapped.kek_id, during.current_id());
        let after = Keyring::parse(&b64(&new), &[]).expect("new ring alone");
        assert_eq!(
            after.unwrap(&rewrapped, b"ctx").expect("unwrap").expose(),
            dek.expose()
        );
        assert!(matches!(
            after.unwrap(&wrapped, b"ctx"),
            Err(KeyError::UnknownKek(_))
        ));
    }

    #[test]
    fn keys_that_are_not_32_bytes_of_base64_are_refused_naming_the_setting() {
        for bad in ["", "not base64!", &STANDARD.encode([1u8; 16])] {
            let e = Keyring::parse(bad, &[]).expect_err("refused");
            assert_eq!(
                e.to_string(),
                "pii.key is not the standard base64 of 32 bytes"
            );
        }
        let e = Keyring::parse(&b64(&DataKey::generate()), &["x".into()]).expect_err("refused");
        assert!(e.to_string().starts_with("pii.previous_keys"), "{e}");
        // Nothing of the value in the message.
        let e = Keyring::parse("c2VjcmV0", &[]).expect_err("refused");
        assert!(!e.to_string().contains("c2VjcmV0"));
    }

    #[test]
    fn the_key_file_is_created_once_owner_only_and_then_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("pii.key");
        let (first, created) = Keyring::load_or_create(&path).expect("created");
        assert!(created);
        let (again, created) = Keyring::load_or_create(&path).expect("read");
        assert!(!created);
        assert_eq!(first.current_id(), again.current_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage").expect("write");
        assert!(Keyring::load_or_create(&path).is_err());
    }
}
