//! Amounts as `GET /rate` and `GET /fee` take them: never a panic; what is
//! accepted is exact (it prints back to the same number) and never rounded.
#![no_main]

use std::str::FromStr;

use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(amount) = mooring_http::fuzzing::amount(text) {
        let printed = amount.to_string();
        assert_eq!(
            Decimal::from_str(&printed).expect("prints a decimal"),
            amount
        );
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        );
    }
});
