//! How a customer's SEP-12 status follows from the type asked about, what
//! they provided, and the operator's review.

use super::sep9::{self, Sep9Field};
use super::validate;
use super::{Customer, CustomerTypeSpec, ProvidedValue, Review, ReviewMode};

/// A customer's SEP-12 status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerStatus {
    NeedsInfo,
    Processing,
    Accepted,
    Rejected,
}

impl CustomerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeedsInfo => "NEEDS_INFO",
            Self::Processing => "PROCESSING",
            Self::Accepted => "ACCEPTED",
            Self::Rejected => "REJECTED",
        }
    }
}

/// The status of one provided field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldStatus {
    Accepted,
    Processing,
    Rejected,
}

impl FieldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "ACCEPTED",
            Self::Processing => "PROCESSING",
            Self::Rejected => "REJECTED",
        }
    }
}

/// A field the customer has not provided yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequest {
    pub field: &'static Sep9Field,
    pub optional: bool,
    pub choices: Option<Vec<String>>,
}

/// A field the customer has provided, with its verdict. Never carries the
/// value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvidedField {
    pub field: &'static Sep9Field,
    pub optional: bool,
    pub choices: Option<Vec<String>>,
    pub status: FieldStatus,
    pub error: Option<String>,
}

/// The SEP-12 answer for one customer and one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub status: CustomerStatus,
    /// Fields of the type not yet provided, required ones first.
    pub fields: Vec<FieldRequest>,
    /// Every SEP-9 field the customer has provided, also those the type does
    /// not ask for, in catalogue order.
    pub provided: Vec<ProvidedField>,
    pub message: Option<String>,
}

/// Assesses `customer` (or a customer not known yet) as a `spec` customer.
///
/// - A rejected review is `REJECTED`, with the reason as the message.
/// - A missing required field, any provided value that fails its check, or
///   a field a reviewer rejected is `NEEDS_INFO` (the field is `REJECTED`
///   with its error, or the reviewer's reason).
/// - Otherwise `ACCEPTED` under [`ReviewMode::Auto`]; under
///   [`ReviewMode::Manual`], `PROCESSING` until approved.
pub fn assess(
    spec: &CustomerTypeSpec,
    customer: Option<&Customer>,
    mode: ReviewMode,
) -> Assessment {
    let provided_value = |name: &str| customer.and_then(|c| c.fields.get(name));
    let requested = spec
        .required()
        .iter()
        .map(|f| (f, false))
        .chain(spec.optional().iter().map(|f| (f, true)));
    let fields: Vec<FieldRequest> = requested
        .filter(|(f, _)| provided_value(f.name).is_none())
        .map(|(f, optional)| FieldRequest {
            field: f,
            optional,
            choices: spec.choices(f),
        })
        .collect();

    let review = customer.map(|c| &c.review).unwrap_or(&Review::Pending);
    let awaiting_review = mode == ReviewMode::Manual && *review != Review::Approved;
    let provided: Vec<ProvidedField> = sep9::FIELDS
        .iter()
        .filter_map(|field| {
            let value = provided_value(field.name)?;
            let verdict = match value {
                ProvidedValue::Text(text) => {
                    validate::check_text(field, spec.choice_override(field.name), text)
                }
                ProvidedValue::File { size, .. } => validate::check_file(*size),
            };
            let reviewed = customer.and_then(|c| c.rejected_fields.get(field.name));
            let (status, error) = match (verdict, reviewed) {
                (Err(e), _) => (FieldStatus::Rejected, Some(e)),
                (Ok(()), Some(reason)) => (FieldStatus::Rejected, Some(reason.clone())),
                (Ok(()), None) if awaiting_review => (FieldStatus::Processing, None),
                (Ok(()), None) => (FieldStatus::Accepted, None),
            };
            Some(ProvidedField {
                field,
                optional: !spec.is_required(field.name),
                choices: spec.choices(field),
                status,
                error,
            })
        })
        .collect();

    let missing_required = fields.iter().any(|f| !f.optional);
    let any_rejected = provided.iter().any(|f| f.status == FieldStatus::Rejected);
    let (status, message) = match review {
        Review::Rejected { reason } if customer.is_some() => {
            (CustomerStatus::Rejected, Some(reason.clone()))
        }
        _ if customer.is_none() || missing_required || any_rejected => {
            (CustomerStatus::NeedsInfo, None)
        }
        _ if awaiting_review => (CustomerStatus::Processing, None),
        _ => (CustomerStatus::Accepted, None),
    };
    Assessment {
        status,
        fields,
        provided,
        message,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::Utc;

    use super::super::{CustomerId, CustomerTypes};
    use super::*;
    use crate::StellarAccount;

    fn customer(fields: &[(&str, &str)], review: Review) -> Customer {
        Customer {
            id: CustomerId::generate(),
            account: StellarAccount::parse(
                "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47",
            )
            .expect("valid"),
            memo: None,
            customer_type: None,
            review,
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), ProvidedValue::Text((*v).to_owned())))
                .collect::<BTreeMap<_, _>>(),
            rejected_fields: BTreeMap::new(),
            transaction_ids: vec![],
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    const SENDER: &[(&str, &str)] = &[
        ("first_name", "John"),
        ("last_name", "Doe"),
        ("email_address", "john@example.com"),
    ];

    fn names(fields: &[FieldRequest]) -> Vec<&str> {
        fields.iter().map(|f| f.field.name).collect()
    }

    #[test]
    fn unknown_customer_needs_every_field_of_the_type() {
        let types = CustomerTypes::builtin();
        let a = assess(
            types.get("sep31-receiver").expect("type"),
            None,
            ReviewMode::Auto,
        );
        assert_eq!(a.status, CustomerStatus::NeedsInfo);
        assert_eq!(names(&a.fields), crate::customer::DEFAULT_RECEIVER_FIELDS);
        assert!(a.provided.is_empty());
        assert!(a.fields.iter().all(|f| !f.optional));
    }

    #[test]
    fn complete_sender_is_accepted_in_auto_mode_and_processing_in_manual() {
        let types = CustomerTypes::builtin();
        let spec = types.get("sep31-sender").expect("type");
        let c = customer(SENDER, Review::Pending);
        let auto = assess(spec, Some(&c), ReviewMode::Auto);
        assert_eq!(auto.status, CustomerStatus::Accepted);
        assert!(auto.fields.is_empty());
        assert!(
            auto.provided
                .iter()
                .all(|f| f.status == FieldStatus::Accepted)
        );
        let manual = assess(spec, Some(&c), ReviewMode::Manual);
        assert_eq!(manual.status, CustomerStatus::Processing);
        assert!(
            manual
                .provided
                .iter()
                .all(|f| f.status == FieldStatus::Processing)
        );
        let approved = customer(SENDER, Review::Approved);
        assert_eq!(
            assess(spec, Some(&approved), ReviewMode::Manual).status,
            CustomerStatus::Accepted
        );
    }

    #[test]
    fn same_customer_needs_more_as_a_receiver() {
        let types = CustomerTypes::builtin();
        let c = customer(SENDER, Review::Approved);
        let a = assess(
            types.get("sep31-receiver").expect("type"),
            Some(&c),
            ReviewMode::Auto,
        );
        assert_eq!(a.status, CustomerStatus::NeedsInfo);
        assert_eq!(
            names(&a.fields),
            ["bank_account_number", "bank_account_type", "bank_number"]
        );
        let account_type = a
            .fields
            .iter()
            .find(|f| f.field.name == "bank_account_type")
            .expect("asked");
        assert_eq!(
            account_type.choices.as_deref(),
            Some(&["checking".to_owned(), "savings".to_owned()][..])
        );
    }

    #[test]
    fn an_invalid_value_is_a_rejected_field_and_needs_info() {
        let types = CustomerTypes::builtin();
        let c = customer(
            &[
                ("first_name", "John"),
                ("last_name", "Doe"),
                ("email_address", "not-an-email"),
            ],
            Review::Pending,
        );
        let a = assess(
            types.get("sep31-sender").expect("type"),
            Some(&c),
            ReviewMode::Auto,
        );
        assert_eq!(a.status, CustomerStatus::NeedsInfo);
        let email = a
            .provided
            .iter()
            .find(|f| f.field.name == "email_address")
            .expect("provided");
        assert_eq!(email.status, FieldStatus::Rejected);
        assert!(email.error.as_deref().is_some_and(|e| e.contains("email")));
    }

    #[test]
    fn provided_fields_include_fields_the_type_does_not_ask_for() {
        let types = CustomerTypes::builtin();
        let mut fields = SENDER.to_vec();
        fields.push(("birth_date", "1980-02-30"));
        fields.push(("address", "1 Main St"));
        let c = customer(&fields, Review::Pending);
        let a = assess(
            types.get("sep31-sender").expect("type"),
            Some(&c),
            ReviewMode::Auto,
        );
        let extra: Vec<_> = a
            .provided
            .iter()
            .filter(|f| f.optional)
            .map(|f| (f.field.name, f.status))
            .collect();
        assert_eq!(
            extra,
            [
                ("address", FieldStatus::Accepted),
                ("birth_date", FieldStatus::Rejected)
            ]
        );
        assert_eq!(a.status, CustomerStatus::NeedsInfo);
    }

    #[test]
    fn rejection_is_sticky_with_its_reason() {
        let types = CustomerTypes::builtin();
        let c = customer(
            SENDER,
            Review::Rejected {
                reason: "document expired".into(),
            },
        );
        let a = assess(
            types.get("sep31-sender").expect("type"),
            Some(&c),
            ReviewMode::Auto,
        );
        assert_eq!(a.status, CustomerStatus::Rejected);
        assert_eq!(a.message.as_deref(), Some("document expired"));
    }

    #[test]
    fn a_field_a_reviewer_rejected_needs_info_even_when_approved() {
        let types = CustomerTypes::builtin();
        let spec = types.get("sep31-sender").expect("type");
        for (review, mode) in [
            (Review::Pending, ReviewMode::Auto),
            (Review::Pending, ReviewMode::Manual),
            (Review::Approved, ReviewMode::Manual),
        ] {
            let mut c = customer(SENDER, review);
            c.rejected_fields
                .insert("last_name".into(), "does not match the passport".into());
            let a = assess(spec, Some(&c), mode);
            assert_eq!(a.status, CustomerStatus::NeedsInfo, "{mode:?}");
            let verdicts: Vec<_> = a
                .provided
                .iter()
                .map(|f| (f.field.name, f.status, f.error.as_deref()))
                .collect();
            let other = if mode == ReviewMode::Auto || c.review == Review::Approved {
                FieldStatus::Accepted
            } else {
                FieldStatus::Processing
            };
            assert_eq!(
                verdicts,
                [
                    (
                        "last_name",
                        FieldStatus::Rejected,
                        Some("does not match the passport")
                    ),
                    ("first_name", other, None),
                    ("email_address", other, None),
                ]
            );
            assert!(
                a.fields.is_empty(),
                "a rejected field is provided, not missing"
            );
        }
    }

    #[test]
    fn a_customer_rejection_wins_over_a_field_rejection() {
        let types = CustomerTypes::builtin();
        let mut c = customer(
            SENDER,
            Review::Rejected {
                reason: "sanctions".into(),
            },
        );
        c.rejected_fields
            .insert("first_name".into(), "blurred".into());
        let a = assess(
            types.get("sep31-sender").expect("type"),
            Some(&c),
            ReviewMode::Auto,
        );
        assert_eq!(a.status, CustomerStatus::Rejected);
        assert_eq!(a.message.as_deref(), Some("sanctions"));
    }

    #[test]
    fn optional_fields_are_asked_but_do_not_block() {
        let spec = CustomerTypeSpec::new("t", &["first_name"], &["birth_date"], &BTreeMap::new())
            .expect("valid");
        let c = customer(&[("first_name", "Ann")], Review::Pending);
        let a = assess(&spec, Some(&c), ReviewMode::Auto);
        assert_eq!(a.status, CustomerStatus::Accepted);
        assert_eq!(names(&a.fields), ["birth_date"]);
        assert!(a.fields[0].optional);
    }
}
