//! Stellar strkeys, memos of each type, asset ids and the ids Mooring takes
//! from the AP: never a panic, and whatever parses reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mooring_domain::customer::CustomerId;
use mooring_domain::transaction::TransactionId;
use mooring_domain::{AssetId, Memo, MemoType, StellarAccount};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(account) = StellarAccount::parse(text) {
        let again = StellarAccount::parse(account.as_str()).expect("an account reads back");
        assert_eq!(again, account);
    }
    for memo_type in [None, Some("id"), Some("text"), Some("hash"), Some("bogus")] {
        if let Ok(memo) = Memo::parse(text, memo_type) {
            let again = Memo::parse(memo.value(), Some(memo.memo_type().as_str()))
                .expect("a memo reads back");
            assert_eq!(again, memo);
            if memo.memo_type() == MemoType::Id {
                assert!(memo.value().parse::<u64>().is_ok(), "an id memo is a u64");
            }
        }
    }
    if let Ok(asset) = AssetId::parse(text) {
        assert_eq!(AssetId::parse(asset.as_str()).expect("reads back"), asset);
    }
    let _ = AssetId::from_ap(text);
    if let Ok(id) = TransactionId::parse(text) {
        assert!(!id.as_str().chars().any(char::is_control));
    }
    let _ = CustomerId::parse(text);
});
