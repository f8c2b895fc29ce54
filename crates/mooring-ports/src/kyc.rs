//! The KYC store port: customers, their SEP-9 fields and files (sealed at
//! rest by the adapter), their review and the transactions they take part in.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mooring_domain::customer::{Customer, CustomerId, Review};
use mooring_domain::{Memo, StellarAccount};

/// Which customer a PUT is about.
#[derive(Debug, Clone)]
pub enum CustomerTarget {
    /// An existing customer; [`KycStoreError::NotFound`] if there is none.
    Id(CustomerId),
    /// The customer of this account and memo, created with `new_id` when
    /// there is none yet. One account and memo never have two customers,
    /// whatever the memo type or customer type.
    Account {
        account: StellarAccount,
        memo: Option<Memo>,
        new_id: CustomerId,
    },
}

/// A file sent for a binary SEP-9 field.
#[derive(Clone, PartialEq, Eq)]
pub struct FileUpload {
    pub content: Vec<u8>,
    pub content_type: Option<String>,
}

impl fmt::Debug for FileUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileUpload({} bytes)", self.content.len())
    }
}

/// One atomic change to a customer: only the fields named here change.
/// When the change alters any stored value, the customer's review becomes
/// `review.after_change()` (an approval lapses, a rejection stays).
#[derive(Clone)]
pub struct PutCustomer {
    pub target: CustomerTarget,
    /// The customer type to remember, when the PUT named one.
    pub customer_type: Option<String>,
    /// Text fields to set (`Some`) or clear (`None`).
    pub text: Vec<(String, Option<String>)>,
    /// Binary fields to set (`Some`) or clear (`None`).
    pub files: Vec<(String, Option<FileUpload>)>,
    /// A transaction to link the customer to.
    pub transaction_id: Option<String>,
    pub now: DateTime<Utc>,
}

impl fmt::Debug for PutCustomer {
    // Field names only: the values are PII.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutCustomer")
            .field("target", &self.target)
            .field("customer_type", &self.customer_type)
            .field(
                "text",
                &self.text.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field(
                "files",
                &self.files.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Errors of a [`KycStore`].
#[derive(Debug, thiserror::Error)]
pub enum KycStoreError {
    /// The customer named by id does not exist.
    #[error("customer not found")]
    NotFound,
    /// The customer has no value for the field named.
    #[error("the customer has provided no such field")]
    NoSuchField,
    /// The customer changed after the decision's `seen` version: whoever
    /// decided has not seen what is there now.
    #[error("the customer changed since it was looked at")]
    Changed,
    /// Anything else: the store is unreachable, a query failed.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Where customers and their PII live.
///
/// Every method is atomic. Implementations must keep the
/// one-customer-per-(account, memo) rule under concurrent calls, and
/// [`KycStore::delete`] must leave no trace of the customer's PII.
#[async_trait]
pub trait KycStore: Send + Sync + 'static {
    /// The customer with this id, if any.
    async fn get(&self, id: &CustomerId) -> Result<Option<Customer>, KycStoreError>;

    /// The customer of this account and memo, if any.
    async fn find(
        &self,
        account: &StellarAccount,
        memo: Option<&Memo>,
    ) -> Result<Option<Customer>, KycStoreError>;

    /// A customer's file, opened: its content and content type. `None`
    /// when the customer or the file is not there.
    async fn file(
        &self,
        id: &CustomerId,
        name: &str,
    ) -> Result<Option<(Vec<u8>, Option<String>)>, KycStoreError>;

    /// Applies a change and returns the customer as stored afterwards.
    /// Returns `NotFound` when the target is an id that does not exist.
    async fn put(&self, change: PutCustomer) -> Result<Customer, KycStoreError>;

    /// Deletes the customer with every field, file and link. Returns
    /// `NotFound` when there is no such customer.
    async fn delete(&self, id: &CustomerId) -> Result<(), KycStoreError>;

    /// Records the operator's decision. An approval also clears every field
    /// rejection. With `seen` (the `updated_at` the decider was shown), the
    /// customer must still be that version, else `Changed`. Returns
    /// `NotFound` when there is no such customer.
    async fn set_review(
        &self,
        id: &CustomerId,
        review: Review,
        seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Customer, KycStoreError>;

    /// Rejects one provided field (a text value or a file) with the reason
    /// the customer is shown, until a new value for it replaces the one
    /// rejected. `seen` as for [`KycStore::set_review`]. Returns `NotFound`
    /// when there is no such customer, `NoSuchField` when they have no
    /// value for the field.
    async fn reject_field(
        &self,
        id: &CustomerId,
        field: &str,
        reason: &str,
        seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Customer, KycStoreError>;
}
