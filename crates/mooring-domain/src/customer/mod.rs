//! Customers (SEP-12 KYC): who they are, which SEP-9 fields each customer
//! type requires, and the status that follows from what was provided.

mod assess;
mod kinds;
pub mod sep9;
pub mod validate;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use crate::{Memo, StellarAccount};

pub use assess::{Assessment, CustomerStatus, FieldRequest, FieldStatus, ProvidedField, assess};
pub use kinds::{
    CustomerTypeSpec, CustomerTypes, DEFAULT_RECEIVER_FIELDS, DEFAULT_RECEIVER_TYPE,
    DEFAULT_SENDER_FIELDS, DEFAULT_SENDER_TYPE, TypeConfigError, TypeRole,
};

/// A customer id: a UUID minted by Mooring, in canonical lower-case form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerId(String);

/// Why a string is not a customer id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("customer id must be a UUID")]
pub struct InvalidCustomerId;

impl CustomerId {
    /// Mints a new random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn parse(s: &str) -> Result<Self, InvalidCustomerId> {
        uuid::Uuid::parse_str(s)
            .map(|u| Self(u.hyphenated().to_string()))
            .map_err(|_| InvalidCustomerId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CustomerId({})", self.0)
    }
}

/// How completed customers are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReviewMode {
    /// A customer whose required fields are all present and valid is
    /// `ACCEPTED` at once.
    #[default]
    Auto,
    /// Such a customer is `PROCESSING` until an operator approves or rejects.
    Manual,
}

/// The operator's decision on a customer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Review {
    #[default]
    Pending,
    Approved,
    /// Sticky: a rejected customer stays `REJECTED`, whatever they send.
    Rejected {
        reason: String,
    },
}

impl Review {
    /// The review after the customer changed a field: an approval no longer
    /// covers what was approved, a rejection stays.
    pub fn after_change(&self) -> Review {
        match self {
            Review::Approved => Review::Pending,
            other => other.clone(),
        }
    }
}

/// A value a customer provided for a SEP-9 field.
#[derive(Clone, PartialEq, Eq)]
pub enum ProvidedValue {
    Text(String),
    /// A file; its bytes stay in the store and are not carried around.
    File {
        size: u64,
        content_type: Option<String>,
    },
}

impl fmt::Debug for ProvidedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(_) => f.write_str("Text(<redacted>)"),
            Self::File { size, .. } => write!(f, "File({size} bytes)"),
        }
    }
}

/// A customer as stored. Every SEP-9 value is PII: `Debug` redacts them.
#[derive(Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: CustomerId,
    pub account: StellarAccount,
    pub memo: Option<Memo>,
    /// The type of the customer's last PUT that named one: the type a GET
    /// without `type` answers for.
    pub customer_type: Option<String>,
    pub review: Review,
    /// Provided SEP-9 values, keyed by field name.
    pub fields: BTreeMap<String, ProvidedValue>,
    /// Provided fields a reviewer rejected, with the reason the customer is
    /// shown. A new value for the field clears its rejection; so does an
    /// approval of the customer.
    pub rejected_fields: BTreeMap<String, String>,
    /// Transactions this customer was linked to by a PUT with `transaction_id`.
    pub transaction_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Customer")
            .field("id", &self.id)
            .field("customer_type", &self.customer_type)
            .field(
                "review",
                &matches!(self.review, Review::Rejected { .. }).then_some("rejected"),
            )
            .field("fields", &self.fields.keys().collect::<Vec<_>>())
            .field(
                "rejected_fields",
                &self.rejected_fields.keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The longest reason a reviewer may give, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// A reviewer's reason for rejecting a customer or one of their fields, as
/// the sender is shown it: trimmed, not empty, at most
/// [`MAX_REASON_CHARS`] characters, and without control characters.
pub fn review_reason(reason: &str) -> Result<String, String> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err("a rejection needs a reason".into());
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(format!("a reason is at most {MAX_REASON_CHARS} characters"));
    }
    if reason.chars().any(char::is_control) {
        return Err("a reason is one line of text, without control characters".into());
    }
    Ok(reason.to_owned())
}

impl Customer {
    /// Whether this customer is the one identified by `account` and `memo`.
    pub fn is_owned_by(&self, account: &StellarAccount, memo: Option<&Memo>) -> bool {
        &self.account == account && self.memo.as_ref().map(Memo::value) == memo.map(Memo::value)
    }

    /// Whether the account and memo sent beside this customer's id agree with
    /// it. With an account, the memo must match too (none matches none); a
    /// memo alone must be this customer's memo; nothing agrees always.
    pub fn agrees_with(&self, account: Option<&StellarAccount>, memo: Option<&Memo>) -> bool {
        match (account, memo) {
            (Some(account), memo) => self.is_owned_by(account, memo),
            (None, Some(memo)) => self.memo.as_ref().map(Memo::value) == Some(memo.value()),
            (None, None) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn a_reason_taken_is_trimmed_bounded_and_one_line(reason in "\\PC{0,600}|[ \\t\\n]{0,3}[a-z]{1,5}[ \\t\\n]{0,3}|[a-z]{1,3}[\\x00-\\x1f][a-z]{1,3}") {
            match review_reason(&reason) {
                Ok(kept) => {
                    prop_assert_eq!(kept.as_str(), reason.trim());
                    prop_assert!(!kept.is_empty());
                    prop_assert!(kept.chars().count() <= MAX_REASON_CHARS);
                    prop_assert!(!kept.chars().any(char::is_control));
                }
                Err(_) => {
                    let t = reason.trim();
                    prop_assert!(
                        t.is_empty()
                            || t.chars().count() > MAX_REASON_CHARS
                            || t.chars().any(char::is_control)
                    );
                }
            }
        }
    }

    #[test]
    fn reasons_are_refused_with_why() {
        assert_eq!(
            review_reason("  blurred photo \n"),
            Ok("blurred photo".into())
        );
        assert!(review_reason(" \t").is_err_and(|e| e.contains("needs a reason")));
        assert!(review_reason(&"x".repeat(501)).is_err_and(|e| e.contains("500")));
        assert!(review_reason("two\nlines").is_err_and(|e| e.contains("one line")));
    }

    #[test]
    fn customer_ids_are_canonical_uuids() {
        let id = CustomerId::generate();
        assert_eq!(CustomerId::parse(id.as_str()), Ok(id.clone()));
        assert_eq!(
            CustomerId::parse("FB5DDC93-1D5D-490D-BA5F-2C361CEA41F7").map(|i| i.to_string()),
            Ok("fb5ddc93-1d5d-490d-ba5f-2c361cea41f7".to_owned())
        );
        assert_eq!(CustomerId::parse("42"), Err(InvalidCustomerId));
    }

    #[test]
    fn approval_lapses_on_change_rejection_stays() {
        assert_eq!(Review::Approved.after_change(), Review::Pending);
        assert_eq!(Review::Pending.after_change(), Review::Pending);
        let rejected = Review::Rejected {
            reason: "sanctions".into(),
        };
        assert_eq!(rejected.after_change(), rejected);
    }

    #[test]
    fn debug_never_shows_values() {
        let customer = Customer {
            id: CustomerId::generate(),
            account: StellarAccount::parse(
                "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47",
            )
            .expect("valid"),
            memo: Some(Memo::parse("780284017", None).expect("valid")),
            customer_type: None,
            review: Review::Rejected {
                reason: "secret reason".into(),
            },
            fields: [(
                "first_name".to_owned(),
                ProvidedValue::Text("Johnathan".into()),
            )]
            .into(),
            rejected_fields: [("first_name".to_owned(), "field secret".to_owned())].into(),
            transaction_ids: vec![],
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let debug = format!("{customer:?}");
        for secret in [
            "Johnathan",
            "field secret",
            "780284017",
            "secret reason",
            "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47",
        ] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("first_name"));
    }
}
