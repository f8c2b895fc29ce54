//! `POST /event` bodies: never a panic; an event read has a bounded, plain
//! id and type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mooring_apwire::{EventDto, MAX_EVENT_ID_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = EventDto::parse(data) {
        assert!(event.id.len() <= MAX_EVENT_ID_LEN);
        assert!(!event.id.chars().any(char::is_control));
        // The type is made plain as it is read, before anyone logs it.
        assert!(event.kind.chars().count() <= 64);
        assert!(
            event
                .kind
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-:?".contains(c))
        );
    }
});
