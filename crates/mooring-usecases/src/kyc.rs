//! The KYC callbacks: GET, PUT and DELETE /customer, and the operator's
//! approve and reject.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::AuditTrail;
use mooring_domain::audit::{Actor, AuditAction};
use mooring_domain::customer::{
    Assessment, Customer, CustomerId, CustomerStatus, CustomerTypeSpec, CustomerTypes,
    ProvidedValue, Review, ReviewMode, assess, review_reason, sep9,
};
use mooring_domain::transaction::TransactionId;
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{
    AuditError, Clock, CustomerTarget, FileUpload, KycStore, KycStoreError, PutCustomer,
};

/// Errors of the KYC use cases.
#[derive(Debug, thiserror::Error)]
pub enum KycError {
    /// The request cannot be served as asked (unknown type, missing key).
    #[error("{0}")]
    BadRequest(String),
    /// No such customer, or not for this account and memo.
    #[error("customer not found")]
    NotFound,
    /// A decision on a customer who changed since the decider looked.
    #[error("the customer changed since you looked: look again before deciding")]
    Changed,
    #[error(transparent)]
    Unknown(anyhow::Error),
    /// The action was done, but its audit entry could not be written (or,
    /// for a look, nothing was shown because it could not be).
    #[error("not recorded in the audit trail: {0}")]
    Audit(AuditError),
}

impl From<AuditError> for KycError {
    fn from(e: AuditError) -> Self {
        Self::Audit(e)
    }
}

impl From<KycStoreError> for KycError {
    fn from(e: KycStoreError) -> Self {
        match e {
            KycStoreError::NotFound => Self::NotFound,
            KycStoreError::NoSuchField => {
                Self::BadRequest("the customer has provided no such field".into())
            }
            KycStoreError::Changed => Self::Changed,
            KycStoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

/// Who a GET is about. At least one of `id` and `account` is set.
#[derive(Debug, Clone, Default)]
pub struct CustomerLookup {
    pub id: Option<CustomerId>,
    pub account: Option<StellarAccount>,
    pub memo: Option<Memo>,
    pub customer_type: Option<String>,
}

/// A PUT: who, and what changes. `Debug` shows field names, never values.
#[derive(Clone, Default)]
pub struct CustomerUpdate {
    pub id: Option<CustomerId>,
    pub account: Option<StellarAccount>,
    pub memo: Option<Memo>,
    pub customer_type: Option<String>,
    pub transaction_id: Option<String>,
    /// SEP-9 text fields; an empty value clears the field.
    pub text: Vec<(String, String)>,
    /// SEP-9 binary fields; an empty file clears the field.
    pub files: Vec<(String, FileUpload)>,
}

impl std::fmt::Debug for CustomerUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerUpdate")
            .field("id", &self.id)
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

/// The SEP-12 answer: the id (absent for a customer not known yet) and the
/// assessment for the type asked about.
#[derive(Debug, Clone)]
pub struct CustomerView {
    pub id: Option<CustomerId>,
    pub assessment: Assessment,
}

/// A party's KYC for a payout, assessed against the type the AP checks the
/// party as. `Debug` shows field names, never values.
#[derive(Clone)]
pub struct PartyKyc {
    pub status: CustomerStatus,
    pub message: Option<String>,
    pub customer_type: String,
    /// SEP-9 text values by name (PII).
    pub fields: Vec<(String, String)>,
}

impl std::fmt::Debug for PartyKyc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartyKyc")
            .field("status", &self.status)
            .field("customer_type", &self.customer_type)
            .field(
                "fields",
                &self.fields.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// The KYC service.
#[derive(Clone)]
pub struct KycService {
    store: Arc<dyn KycStore>,
    types: Arc<CustomerTypes>,
    mode: ReviewMode,
    audit: AuditTrail,
    clock: Arc<dyn Clock>,
}

impl KycService {
    pub fn new(
        store: Arc<dyn KycStore>,
        types: CustomerTypes,
        mode: ReviewMode,
        audit: AuditTrail,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            types: Arc::new(types),
            mode,
            audit,
            clock,
        }
    }

    /// The audit trail this service writes to.
    pub fn audit(&self) -> &AuditTrail {
        &self.audit
    }

    async fn audited(
        &self,
        actor: &Actor,
        action: AuditAction,
        id: &CustomerId,
    ) -> Result<(), KycError> {
        let entry = self.audit.entry(actor, action).customer(id);
        Ok(self.audit.record(entry).await?)
    }

    pub fn types(&self) -> &CustomerTypes {
        &self.types
    }

    /// GET /customer.
    ///
    /// By id: the customer, or `NotFound`; when an account (and memo) is also
    /// given, it must own the id, else `NotFound`. By account and memo: the
    /// customer, or for one not known yet a `NEEDS_INFO` view without id.
    pub async fn get(&self, lookup: CustomerLookup) -> Result<CustomerView, KycError> {
        let requested = self.requested_type(lookup.customer_type.as_deref())?;
        let customer = match (&lookup.id, &lookup.account) {
            (Some(id), account) => {
                let customer = self.store.get(id).await?.ok_or(KycError::NotFound)?;
                if !customer.agrees_with(account.as_ref(), lookup.memo.as_ref()) {
                    return Err(KycError::NotFound);
                }
                Some(customer)
            }
            (None, Some(account)) => self.store.find(account, lookup.memo.as_ref()).await?,
            (None, None) => return Err(KycError::BadRequest("id or account is required".into())),
        };
        Ok(self.view(requested, customer.as_ref()))
    }

    /// PUT /customer: creates or updates, changing only the fields sent.
    pub async fn put(&self, update: CustomerUpdate) -> Result<CustomerView, KycError> {
        let requested = self.requested_type(update.customer_type.as_deref())?;
        if let Some((name, _)) = update.text.iter().find(|(_, v)| v.contains('\0')) {
            // No store keeps NUL in text; a value that carries one is malformed.
            return Err(KycError::BadRequest(format!(
                "{name} must not contain NUL characters"
            )));
        }
        if let Some(t) = update.transaction_id.as_deref().filter(|t| !t.is_empty()) {
            TransactionId::parse(t).map_err(|e| KycError::BadRequest(e.to_string()))?;
        }
        let target = match (update.id, update.account) {
            (Some(id), account) => {
                if account.is_some() || update.memo.is_some() {
                    // The id must belong to the account and memo sent with it.
                    let customer = self.store.get(&id).await?.ok_or(KycError::NotFound)?;
                    if !customer.agrees_with(account.as_ref(), update.memo.as_ref()) {
                        return Err(KycError::NotFound);
                    }
                }
                CustomerTarget::Id(id)
            }
            (None, Some(account)) => CustomerTarget::Account {
                account,
                memo: update.memo,
                new_id: CustomerId::generate(),
            },
            (None, None) => return Err(KycError::BadRequest("id or account is required".into())),
        };
        let text = update
            .text
            .into_iter()
            .map(|(name, value)| {
                let known = sep9::lookup(&name).filter(|f| f.kind != sep9::FieldKind::Binary);
                match known {
                    Some(_) => Ok((name, Some(value).filter(|v| !v.is_empty()))),
                    None => Err(KycError::BadRequest(format!(
                        "{name} is not a SEP-9 text field"
                    ))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let files = update
            .files
            .into_iter()
            .map(|(name, file)| {
                if sep9::is_binary(&name) {
                    Ok((name, Some(file).filter(|f| !f.content.is_empty())))
                } else {
                    Err(KycError::BadRequest(format!(
                        "{name} is not a SEP-9 binary field"
                    )))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let customer = self
            .store
            .put(PutCustomer {
                target,
                customer_type: requested.map(|t| t.name().to_owned()),
                text,
                files,
                transaction_id: update.transaction_id.filter(|t| !t.is_empty()),
                now: self.clock.now(),
            })
            .await?;
        tracing::info!(customer.id = %customer.id, fields = customer.fields.len(), "customer updated");
        Ok(self.view(requested, Some(&customer)))
    }

    /// DELETE /customer/{id}: removes the customer and all their PII.
    ///
    /// The erasure stands even when its audit entry cannot be written
    /// (that failure is logged): answering an error for an erasure that
    /// happened would have the AP retry into a 404.
    pub async fn delete(&self, id: &CustomerId, actor: &Actor) -> Result<(), KycError> {
        self.store.delete(id).await?;
        tracing::info!(customer.id = %id, "customer deleted");
        let entry = self
            .audit
            .entry(actor, AuditAction::CustomerDeleted)
            .customer(id);
        let _logged = self.audit.record(entry).await;
        Ok(())
    }

    /// A reviewer approves a customer (manual review), and with it every
    /// value they provided: no field stays rejected. With `seen` (the
    /// customer's `updated_at` the reviewer was shown), a customer who
    /// changed since is refused with [`KycError::Changed`].
    pub async fn approve(
        &self,
        id: &CustomerId,
        seen: Option<DateTime<Utc>>,
        actor: &Actor,
    ) -> Result<CustomerView, KycError> {
        let customer = self
            .store
            .set_review(id, Review::Approved, seen, self.clock.now())
            .await?;
        tracing::info!(customer.id = %id, "customer approved");
        self.audited(actor, AuditAction::CustomerApproved, id)
            .await?;
        Ok(self.view(None, Some(&customer)))
    }

    /// A reviewer rejects a customer; the reason becomes the message.
    /// The audit entry does not keep the reason (free text may name the
    /// person); the customer's message does. `seen` as for
    /// [`Self::approve`].
    pub async fn reject(
        &self,
        id: &CustomerId,
        reason: &str,
        seen: Option<DateTime<Utc>>,
        actor: &Actor,
    ) -> Result<CustomerView, KycError> {
        let reason = review_reason(reason).map_err(KycError::BadRequest)?;
        let review = Review::Rejected { reason };
        let customer = self
            .store
            .set_review(id, review, seen, self.clock.now())
            .await?;
        tracing::info!(customer.id = %id, "customer rejected");
        self.audited(actor, AuditAction::CustomerRejected, id)
            .await?;
        Ok(self.view(None, Some(&customer)))
    }

    /// A reviewer rejects one field the customer provided: it is `REJECTED`
    /// with the reason (the SEP-12 `error` the sender is shown), and the
    /// customer `NEEDS_INFO` until a new value for it replaces this one. A
    /// payout waiting on this customer asks the AP for the update. The
    /// audit entry names the field, never the reason. `seen` as for
    /// [`Self::approve`].
    pub async fn reject_field(
        &self,
        id: &CustomerId,
        field: &str,
        reason: &str,
        seen: Option<DateTime<Utc>>,
        actor: &Actor,
    ) -> Result<CustomerView, KycError> {
        if sep9::lookup(field).is_none() {
            return Err(KycError::BadRequest(format!(
                "{} is not a SEP-9 field",
                mooring_domain::audit::field_token(field)
            )));
        }
        let reason = review_reason(reason).map_err(KycError::BadRequest)?;
        let customer = self
            .store
            .reject_field(id, field, &reason, seen, self.clock.now())
            .await?;
        tracing::info!(customer.id = %id, field, "customer field rejected");
        let entry = self
            .audit
            .entry(actor, AuditAction::FieldRejected)
            .customer(id)
            .detail(&format!("field: {field}"));
        self.audit.record(entry).await?;
        Ok(self.view(None, Some(&customer)))
    }

    /// A party's KYC as the payment engine needs it: the status assessed
    /// for `customer_type` (the type the AP checks this party as, never the
    /// type a PUT happened to store), and the text values to pay them with.
    /// `None` when there is no such customer; `BadRequest` for a type that
    /// is not configured.
    pub async fn party(
        &self,
        id: &CustomerId,
        customer_type: &str,
    ) -> Result<Option<PartyKyc>, KycError> {
        let spec = self.types.get(customer_type).ok_or_else(|| {
            KycError::BadRequest(format!("customer type {customer_type:?} is not configured"))
        })?;
        let Some(customer) = self.store.get(id).await? else {
            return Ok(None);
        };
        let assessment = assess(spec, Some(&customer), self.mode);
        let fields = customer
            .fields
            .iter()
            .filter_map(|(name, value)| match value {
                ProvidedValue::Text(text) => Some((name.clone(), text.clone())),
                ProvidedValue::File { .. } => None,
            })
            .collect();
        Ok(Some(PartyKyc {
            status: assessment.status,
            message: assessment.message,
            customer_type: spec.name().to_owned(),
            fields,
        }))
    }

    /// Looks a customer up by id, for the back office: the status and each
    /// field's name and status, never a value. Recorded in the audit trail
    /// before anything is shown; nothing is shown when it cannot be.
    pub async fn show(&self, id: &CustomerId, actor: &Actor) -> Result<CustomerView, KycError> {
        let view = self.assessment(id).await?;
        self.audited(actor, AuditAction::CustomerShown, id).await?;
        Ok(view)
    }

    /// A customer as a person who may read their data sees them: the
    /// assessment, and every value provided (a file as its size and type;
    /// [`Self::file`] reads it). Recorded in the audit trail, with the
    /// field names, before anything is shown.
    pub async fn values(
        &self,
        id: &CustomerId,
        actor: &Actor,
    ) -> Result<(Customer, CustomerView), KycError> {
        let customer = self.store.get(id).await?.ok_or(KycError::NotFound)?;
        let names: Vec<&str> = customer.fields.keys().map(String::as_str).collect();
        let entry = self
            .audit
            .entry(actor, AuditAction::PiiRead)
            .customer(id)
            .detail(&format!("values: {}", names.join(",")));
        self.audit.record(entry).await?;
        let view = self.view(None, Some(&customer));
        Ok((customer, view))
    }

    /// One of a customer's files, with its content type, for a person who
    /// may read it. Recorded in the audit trail before it is returned.
    pub async fn file(
        &self,
        id: &CustomerId,
        name: &str,
        actor: &Actor,
    ) -> Result<(Vec<u8>, Option<String>), KycError> {
        let file = self.store.file(id, name).await?.ok_or(KycError::NotFound)?;
        let entry = self
            .audit
            .entry(actor, AuditAction::PiiRead)
            .customer(id)
            .detail(&format!(
                "file: {}",
                mooring_domain::audit::field_token(name)
            ));
        self.audit.record(entry).await?;
        Ok(file)
    }

    /// A customer's assessment, for Mooring's own checks (a firm quote's
    /// parties): no person sees it, so nothing is audited.
    pub async fn assessment(&self, id: &CustomerId) -> Result<CustomerView, KycError> {
        let customer = self.store.get(id).await?.ok_or(KycError::NotFound)?;
        Ok(self.view(None, Some(&customer)))
    }

    fn requested_type(&self, name: Option<&str>) -> Result<Option<&CustomerTypeSpec>, KycError> {
        match name {
            None | Some("") => Ok(None),
            Some(name) => self.types.get(name).map(Some).ok_or_else(|| {
                let known: Vec<_> = self.types.names().collect();
                KycError::BadRequest(format!(
                    "unknown customer type {name:?}; known types: {}",
                    known.join(", ")
                ))
            }),
        }
    }

    /// Assesses for the requested type, else the customer's stored type,
    /// else the default type.
    fn view(
        &self,
        requested: Option<&CustomerTypeSpec>,
        customer: Option<&Customer>,
    ) -> CustomerView {
        let spec = requested
            .or_else(|| {
                customer
                    .and_then(|c| c.customer_type.as_deref())
                    .and_then(|t| self.types.get(t))
            })
            .unwrap_or_else(|| self.types.default_type());
        CustomerView {
            id: customer.map(|c| c.id.clone()),
            assessment: assess(spec, customer, self.mode),
        }
    }
}
