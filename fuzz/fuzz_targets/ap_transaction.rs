//! The AP's transaction JSON (Platform API answers): any bytes, any JSON.
//! Never a panic; a transaction read has an id that passes the id check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mooring_domain::transaction::TransactionId;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(tx) = mooring_apwire::TransactionDto::from_value(&value) {
        assert!(TransactionId::parse(tx.id.as_str()).is_ok());
    }
});
