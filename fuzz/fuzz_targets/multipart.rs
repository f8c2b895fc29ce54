//! Multipart `PUT /customer` bodies through Mooring's own reader, with its
//! limits: never a panic or a 5xx; what it accepts stays within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A small limit, so that the fuzzer reaches it.
const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    // The first line is the boundary; the rest is the body.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let boundary = String::from_utf8_lossy(&data[..split]).into_owned();
    let body = data.get(split + 1..).unwrap_or_default();
    match mooring_http::fuzzing::multipart(
        &format!("multipart/form-data; boundary={boundary}"),
        body,
        LIMIT,
    ) {
        Ok(parts) => {
            assert!(parts.len() <= mooring_http::fuzzing::MAX_PARTS);
            let total: usize = parts.iter().map(|(_, n)| n).sum();
            assert!(total <= LIMIT);
            assert!(
                parts
                    .iter()
                    .all(|(name, _)| name.len() <= mooring_http::fuzzing::MAX_PART_NAME)
            );
        }
        Err(status) => assert!(status == 400 || status == 413, "status {status}"),
    }
});
