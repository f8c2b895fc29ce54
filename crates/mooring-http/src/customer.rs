//! GET /customer, PUT /customer, DELETE /customer/{id}: the SEP-12 callbacks
//! as AP 2.x and 3.x/4.x call them.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use mooring_domain::audit::Actor;
use mooring_domain::customer::sep9::{self, FieldKind};
use mooring_domain::customer::{Assessment, CustomerId, CustomerStatus, FieldStatus};
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::FileUpload;
use mooring_usecases::{CustomerLookup, CustomerUpdate, CustomerView, KycService};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::body::{read_limited, read_multipart};
use crate::error::ErrorBody;
use crate::{ApiError, JSON_LIMIT_BYTES, Limits};

/// The query of GET /customer. Unknown parameters are ignored, and so are
/// `lang` (descriptions are in English) and `transaction_id` (the answer
/// does not depend on the transaction).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GetCustomerQuery {
    /// The customer's id, as Mooring gave it.
    id: Option<String>,
    /// The customer's Stellar account (`G…`).
    account: Option<String>,
    memo: Option<String>,
    /// `id`, `text` or `hash`; `id` when absent.
    memo_type: Option<String>,
    /// The customer type the answer is about (e.g. `sep31-receiver`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    customer_type: Option<String>,
}

/// A SEP-12 customer status.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum StatusDto {
    Accepted,
    Processing,
    NeedsInfo,
    Rejected,
}

impl From<CustomerStatus> for StatusDto {
    fn from(s: CustomerStatus) -> Self {
        match s {
            CustomerStatus::Accepted => Self::Accepted,
            CustomerStatus::Processing => Self::Processing,
            CustomerStatus::NeedsInfo => Self::NeedsInfo,
            CustomerStatus::Rejected => Self::Rejected,
        }
    }
}

/// The verdict on one provided field.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum FieldStatusDto {
    Accepted,
    Processing,
    Rejected,
}

impl From<FieldStatus> for FieldStatusDto {
    fn from(s: FieldStatus) -> Self {
        match s {
            FieldStatus::Accepted => Self::Accepted,
            FieldStatus::Processing => Self::Processing,
            FieldStatus::Rejected => Self::Rejected,
        }
    }
}

/// A SEP-9 field's kind.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FieldKindDto {
    String,
    Binary,
    Number,
    Date,
}

impl From<FieldKind> for FieldKindDto {
    fn from(k: FieldKind) -> Self {
        match k {
            FieldKind::String => Self::String,
            FieldKind::Binary => Self::Binary,
            FieldKind::Number => Self::Number,
            FieldKind::Date => Self::Date,
        }
    }
}

/// The SEP-12 answer of `GET /customer` and `PUT /customer`.
#[derive(Serialize, ToSchema)]
pub(crate) struct CustomerResponse {
    /// Absent for a customer not known yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    status: StatusDto,
    /// The fields still needed, by SEP-9 name.
    fields: BTreeMap<&'static str, FieldDto>,
    /// The fields provided, by SEP-9 name, with their verdict.
    provided_fields: BTreeMap<&'static str, ProvidedFieldDto>,
    /// Why the customer is `REJECTED` or what `NEEDS_INFO` means.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// A SEP-9 field as SEP-12 describes it.
#[derive(Serialize, ToSchema)]
pub(crate) struct FieldDto {
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: FieldKindDto,
    description: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    choices: Option<Vec<String>>,
    optional: bool,
}

/// A provided field: the field's description plus its verdict.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProvidedFieldDto {
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    kind: FieldKindDto,
    description: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    choices: Option<Vec<String>>,
    optional: bool,
    status: FieldStatusDto,
    /// Why the value was refused (`REJECTED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `PUT /customer` as JSON: who (`id`, or `account` with `memo`), the
/// `type`, optionally the transaction, and any SEP-9 text field by its name
/// (`first_name`, `bank_account_number`, …) as a string. Binary fields go
/// as `multipart/form-data` parts of the same names.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct PutCustomerRequest {
    id: Option<String>,
    account: Option<String>,
    memo: Option<String>,
    memo_type: Option<String>,
    #[schema(rename = "type")]
    customer_type: Option<String>,
    transaction_id: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email_address: Option<String>,
    bank_account_number: Option<String>,
    bank_number: Option<String>,
}

impl FieldDto {
    fn new(field: &'static sep9::Sep9Field, choices: Option<Vec<String>>, optional: bool) -> Self {
        Self {
            kind: field.kind.into(),
            description: field.description,
            choices,
            optional,
        }
    }
}

impl From<CustomerView> for CustomerResponse {
    fn from(view: CustomerView) -> Self {
        let Assessment {
            status,
            fields,
            provided,
            message,
        } = view.assessment;
        Self {
            id: view.id.map(|id| id.to_string()),
            status: status.into(),
            fields: fields
                .into_iter()
                .map(|f| (f.field.name, FieldDto::new(f.field, f.choices, f.optional)))
                .collect(),
            provided_fields: provided
                .into_iter()
                .map(|f| {
                    let dto = ProvidedFieldDto {
                        kind: f.field.kind.into(),
                        description: f.field.description,
                        choices: f.choices,
                        optional: f.optional,
                        status: f.status.into(),
                        error: f.error,
                    };
                    (f.field.name, dto)
                })
                .collect(),
            message,
        }
    }
}

fn parse_account(account: Option<&str>) -> Result<Option<StellarAccount>, ApiError> {
    match account {
        None | Some("") => Ok(None),
        Some(a) => StellarAccount::parse(a)
            .map(Some)
            .map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

fn parse_memo(memo: Option<&str>, memo_type: Option<&str>) -> Result<Option<Memo>, ApiError> {
    Memo::parse_optional(memo, memo_type).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// An id that is not a UUID names no customer of ours: 404, as for any
/// unknown id.
fn parse_id(id: Option<&str>) -> Result<Option<CustomerId>, ApiError> {
    match id {
        None | Some("") => Ok(None),
        Some(id) => CustomerId::parse(id)
            .map(Some)
            .map_err(|_| ApiError::not_found("customer not found")),
    }
}

/// A customer's SEP-12 status, and the fields the type asked about needs.
#[utoipa::path(get, path = "/customer", tag = "KYC (SEP-12)", params(GetCustomerQuery),
    responses(
        (status = 200, description = "The customer, or what a new one must provide", body = CustomerResponse),
        (status = 400, description = "Neither id nor account, an unknown type, a malformed account or memo", body = ErrorBody),
        (status = 401, description = "Missing or bad callback credentials", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
    ),
    security((), ("jwt" = []), ("api_key" = [])))]
#[tracing::instrument(skip_all)]
pub(crate) async fn get_customer(
    kyc: web::Data<KycService>,
    query: web::Query<GetCustomerQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let lookup = CustomerLookup {
        account: parse_account(q.account.as_deref())?,
        memo: parse_memo(q.memo.as_deref(), q.memo_type.as_deref())?,
        id: parse_id(q.id.as_deref())?,
        customer_type: q.customer_type,
    };
    let view = kyc.get(lookup).await?;
    Ok(HttpResponse::Ok().json(CustomerResponse::from(view)))
}

/// The keys of a PUT body that say who and what, rather than SEP-9 values.
#[derive(Default)]
struct PutKeys {
    id: Option<String>,
    account: Option<String>,
    memo: Option<String>,
    memo_type: Option<String>,
    customer_type: Option<String>,
    transaction_id: Option<String>,
}

impl PutKeys {
    const NAMES: [&'static str; 6] = [
        "id",
        "account",
        "memo",
        "memo_type",
        "type",
        "transaction_id",
    ];

    fn is_key(name: &str) -> bool {
        Self::NAMES.contains(&name)
    }

    /// Sets the key `name` (one of [`PutKeys::NAMES`]; others are ignored).
    fn set(&mut self, name: &str, value: String) {
        let slot = match name {
            "id" => &mut self.id,
            "account" => &mut self.account,
            "memo" => &mut self.memo,
            "memo_type" => &mut self.memo_type,
            "type" => &mut self.customer_type,
            "transaction_id" => &mut self.transaction_id,
            _ => return,
        };
        *slot = Some(value);
    }
}

/// How a `PUT /customer` body is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Multipart,
    Form,
}

/// The body's kind by its `Content-Type`: JSON (or none given), multipart
/// or urlencoded form data, as SEP-12 allows; anything else is 415.
fn body_kind(req: &HttpRequest) -> Result<BodyKind, ApiError> {
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return Ok(BodyKind::Json);
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match essence.as_str() {
        "application/json" => Ok(BodyKind::Json),
        e if e.starts_with("application/") && e.ends_with("+json") => Ok(BodyKind::Json),
        "multipart/form-data" => Ok(BodyKind::Multipart),
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        _ => Err(ApiError::unsupported_media_type(
            "PUT /customer takes application/json, multipart/form-data or \
             application/x-www-form-urlencoded",
        )),
    }
}

/// Text fields and keys from named string values (multipart text parts and
/// form fields alike); a binary field sent as text is refused.
fn named_text(
    keys: &mut PutKeys,
    text: &mut Vec<(String, String)>,
    name: String,
    value: String,
) -> Result<(), ApiError> {
    let is_key = PutKeys::is_key(&name);
    match sep9::lookup(&name) {
        Some(f) if f.kind == FieldKind::Binary => Err(ApiError::bad_request(format!(
            "{name} is a file: send it as multipart/form-data"
        ))),
        Some(_) => {
            text.push((name, value));
            Ok(())
        }
        None if is_key => {
            keys.set(&name, value);
            Ok(())
        }
        None => Ok(()),
    }
}

/// A JSON body: an object of strings (numbers are taken as their text;
/// nulls and unknown keys are ignored).
fn parse_json(body: &[u8]) -> Result<(PutKeys, Vec<(String, String)>), ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?;
    let Value::Object(object) = value else {
        return Err(ApiError::bad_request("the JSON body must be an object"));
    };
    let mut keys = PutKeys::default();
    let mut text = Vec::new();
    for (name, value) in object {
        let field = sep9::lookup(&name);
        if !PutKeys::is_key(&name) && field.is_none() {
            continue;
        }
        let value = match value {
            Value::Null => continue,
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => return Err(ApiError::bad_request(format!("{name} must be a string"))),
        };
        match field {
            Some(f) if f.kind == sep9::FieldKind::Binary => {
                return Err(ApiError::bad_request(format!(
                    "{name} is a file: send it as multipart/form-data"
                )));
            }
            Some(_) => text.push((name, value)),
            None => keys.set(&name, value),
        }
    }
    Ok((keys, text))
}

/// Creates or updates a customer; empty values clear fields.
#[utoipa::path(put, path = "/customer", tag = "KYC (SEP-12)",
    request_body(content(
        (PutCustomerRequest = "application/json"),
        (PutCustomerRequest = "multipart/form-data"),
        (PutCustomerRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "The customer after the change", body = CustomerResponse),
        (status = 400, description = "A malformed value, an unknown type, or neither id nor account", body = ErrorBody),
        (status = 401, description = "Missing or bad callback credentials", body = ErrorBody),
        (status = 404, description = "No such customer id", body = ErrorBody),
        (status = 413, description = "The body is over its limit", body = ErrorBody),
        (status = 415, description = "A body that is not JSON, multipart or form data", body = ErrorBody),
    ),
    security((), ("jwt" = []), ("api_key" = [])))]
#[tracing::instrument(skip_all)]
pub(crate) async fn put_customer(
    req: HttpRequest,
    payload: web::Payload,
    kyc: web::Data<KycService>,
    limits: web::Data<Limits>,
) -> Result<HttpResponse, ApiError> {
    let kind = body_kind(&req)?;
    let (keys, text, files) = match kind {
        BodyKind::Multipart => {
            // At most a few of these bodies in memory at once.
            let _slot = limits
                .uploads
                .acquire()
                .await
                .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
            let mut keys = PutKeys::default();
            let (mut text, mut files) = (Vec::new(), Vec::new());
            for part in read_multipart(&req, payload, limits.multipart_bytes).await? {
                if sep9::is_binary(&part.name) {
                    let upload = FileUpload {
                        content: part.bytes,
                        content_type: part.content_type,
                    };
                    files.push((part.name, upload));
                    continue;
                }
                if !PutKeys::is_key(&part.name) && sep9::lookup(&part.name).is_none() {
                    continue;
                }
                let value = String::from_utf8(part.bytes).map_err(|_| {
                    ApiError::bad_request(format!("{} must be UTF-8 text", part.name))
                })?;
                named_text(&mut keys, &mut text, part.name, value)?;
            }
            (keys, text, files)
        }
        BodyKind::Form => {
            let body = read_limited(&req, payload, JSON_LIMIT_BYTES).await?;
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
                .map_err(|_| ApiError::bad_request("malformed form body"))?;
            let (mut keys, mut text) = (PutKeys::default(), Vec::new());
            for (name, value) in pairs {
                named_text(&mut keys, &mut text, name, value)?;
            }
            (keys, text, Vec::new())
        }
        BodyKind::Json => {
            let body = read_limited(&req, payload, JSON_LIMIT_BYTES).await?;
            let (keys, text) = parse_json(&body)?;
            (keys, text, Vec::new())
        }
    };
    let update = CustomerUpdate {
        account: parse_account(keys.account.as_deref())?,
        memo: parse_memo(keys.memo.as_deref(), keys.memo_type.as_deref())?,
        id: parse_id(keys.id.as_deref())?,
        customer_type: keys.customer_type,
        transaction_id: keys.transaction_id,
        text,
        files,
    };
    let view = kyc.put(update).await?;
    Ok(HttpResponse::Ok().json(CustomerResponse::from(view)))
}

/// Deletes a customer and every value they provided.
#[utoipa::path(delete, path = "/customer/{id}", tag = "KYC (SEP-12)",
    params(("id" = String, Path, description = "The customer's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Missing or bad callback credentials", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
    ),
    security((), ("jwt" = []), ("api_key" = [])))]
#[tracing::instrument(skip_all)]
pub(crate) async fn delete_customer(
    req: HttpRequest,
    kyc: web::Data<KycService>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(Some(&path.into_inner()))?
        .ok_or_else(|| ApiError::not_found("customer not found"))?;
    // The peer's own address: a forwarded header is the client's word.
    let origin = req
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
    kyc.delete(&id, &Actor::platform(&origin)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies() {
        let (keys, text) = parse_json(br#"{"account":"G","type":"sep31-sender","first_name":"A","memo":123,"unknown":"x","last_name":null}"#)
            .expect("parsed");
        assert_eq!(keys.account.as_deref(), Some("G"));
        assert_eq!(keys.memo.as_deref(), Some("123"));
        assert_eq!(keys.customer_type.as_deref(), Some("sep31-sender"));
        assert_eq!(text, [("first_name".to_owned(), "A".to_owned())]);
        assert!(parse_json(b"[1]").is_err());
        assert!(parse_json(b"{").is_err());
        assert!(parse_json(br#"{"first_name":{"a":1}}"#).is_err());
        assert!(parse_json(br#"{"unknown":{"a":1}}"#).is_ok());
        assert!(parse_json(br#"{"photo_id_front":"AAAA"}"#).is_err());
    }
}
