//! The SEP-9 value checks: any field, any value, with and without a
//! customer type's choices. Never a panic; an accepted value fits the
//! store's bound and has no control character.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mooring_domain::customer::sep9::{FIELDS, FieldKind, MAX_TEXT_LEN};
use mooring_domain::customer::validate::{check_date, check_file, check_text};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let field = &FIELDS[usize::from(which) % FIELDS.len()];
    let value = String::from_utf8_lossy(rest);
    let choices = ["checking".to_owned(), "savings".to_owned()];
    let with_choices = check_text(field, Some(&choices), &value);
    if with_choices.is_ok() {
        assert!(choices.iter().any(|c| *c == value));
    }
    if field.kind != FieldKind::Binary && check_text(field, None, &value).is_ok() {
        assert!(
            value.chars().count() <= MAX_TEXT_LEN,
            "{} accepted {} characters",
            field.name,
            value.chars().count()
        );
        assert!(
            !value
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t'),
            "{} accepted a control character",
            field.name
        );
    }
    let _ = check_date(&value);
    let _ = check_file(rest.len() as u64);
});
