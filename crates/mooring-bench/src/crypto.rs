//! What encryption at rest costs a request, measured in process: the
//! AEAD work `GET /customer` and `PUT /customer` do for a sender with three
//! fields, on the same key types and the same context shapes as the store
//! (`mooring-store`'s `pii.rs`), timed on one thread.
//!
//! The HTTP rows and the raw SQL loops already carry the sealed bytes (the
//! loops read and write what the store does, ciphertext and data-key rows
//! included), so this is the part neither shows on its own: the CPU time of
//! sealing and opening, set beside the same run's request latency.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mooring_keys::Keyring;
use mooring_ports::{DataKey, KeyEncryptionKey};
use serde_json::{Value, json};

/// A sender's fields as the HTTP scenario writes them.
const FIELDS: [(&str, &str); 3] = [
    ("first_name", "John"),
    ("last_name", "Doe"),
    ("email_address", "john@example.com"),
];
const CUSTOMER: &str = "0b5e1c4e-3f0a-4c8e-9d59-2b7d8f6a1c30";

fn field_context(name: &str) -> Vec<u8> {
    [b"field\0", CUSTOMER.as_bytes(), b"\0", name.as_bytes()].concat()
}

fn key_context() -> Vec<u8> {
    [b"data-key\0", CUSTOMER.as_bytes()].concat()
}

/// Microseconds per call of `op`, over `duration` after a short warm-up.
fn micros_per_op(duration: Duration, mut op: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < duration / 10 {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        for _ in 0..64 {
            op();
        }
        n += 64;
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// The three costs, in microseconds per request.
pub struct CryptoCost {
    /// What a read does: open each field (the data key is remembered).
    pub open_fields_us: f64,
    /// What a read does after a restart or an eviction: unwrap the data key.
    pub unwrap_key_us: f64,
    /// What a new sender's write does: make and wrap a data key, seal each
    /// field.
    pub new_customer_us: f64,
}

impl CryptoCost {
    pub fn json(&self) -> Value {
        json!({
            "fields": FIELDS.len(),
            "open_fields_us": self.open_fields_us,
            "unwrap_key_us": self.unwrap_key_us,
            "new_customer_us": self.new_customer_us,
        })
    }
}

pub fn measure(kek: &Keyring, duration: Duration) -> anyhow::Result<CryptoCost> {
    let key = DataKey::generate();
    let contexts: Vec<Vec<u8>> = FIELDS.iter().map(|(n, _)| field_context(n)).collect();
    let sealed: Vec<Vec<u8>> = FIELDS
        .iter()
        .zip(&contexts)
        .map(|((_, v), c)| key.seal(c, v.as_bytes()))
        .collect();
    let wrapped = kek
        .wrap(&key, &key_context())
        .map_err(|e| anyhow::anyhow!("wrapping a data key: {e}"))?;
    // Every operation must succeed, or the figure is of something else.
    for (c, s) in contexts.iter().zip(&sealed) {
        key.open(c, s)
            .map_err(|e| anyhow::anyhow!("opening a field: {e}"))?;
    }
    kek.unwrap(&wrapped, &key_context())
        .map_err(|e| anyhow::anyhow!("unwrapping a data key: {e}"))?;

    let open_fields_us = micros_per_op(duration, || {
        for (c, s) in contexts.iter().zip(&sealed) {
            black_box(key.open(c, s).is_ok());
        }
    });
    let unwrap_key_us = micros_per_op(duration, || {
        black_box(kek.unwrap(&wrapped, &key_context()).is_ok());
    });
    let new_customer_us = micros_per_op(duration, || {
        let key = DataKey::generate();
        black_box(kek.wrap(&key, &key_context()).is_ok());
        for ((_, v), c) in FIELDS.iter().zip(&contexts) {
            black_box(key.seal(c, v.as_bytes()));
        }
    });
    Ok(CryptoCost {
        open_fields_us,
        unwrap_key_us,
        new_customer_us,
    })
}
