//! GET /unique_address (AP 2.x, `sep31.deposit_info_generator_type: api`).

use actix_web::{HttpResponse, web};
use mooring_domain::{Memo, MemoType};
use mooring_usecases::DepositService;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;
use crate::error::ErrorBody;

/// The query of `GET /unique_address`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UniqueAddressQuery {
    /// The AP's transaction id.
    transaction_id: Option<String>,
}

/// The answer of `GET /unique_address`.
#[derive(Serialize, ToSchema)]
pub(crate) struct UniqueAddressResponse {
    unique_address: UniqueAddressDto,
}

/// Where the sender pays: an account, and a memo when the account is shared.
#[derive(Serialize, ToSchema)]
pub(crate) struct UniqueAddressDto {
    stellar_address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<String>,
    /// With `memo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    memo_type: Option<MemoTypeDto>,
}

/// A Stellar memo's type.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MemoTypeDto {
    Id,
    Text,
    Hash,
}

impl From<MemoType> for MemoTypeDto {
    fn from(t: MemoType) -> Self {
        match t {
            MemoType::Id => Self::Id,
            MemoType::Text => Self::Text,
            MemoType::Hash => Self::Hash,
        }
    }
}

/// The deposit account and memo of a transaction (AP 2.x with
/// `deposit_info_generator_type: api`): the same answer every time.
#[utoipa::path(get, path = "/unique_address", tag = "Deposit addresses", params(UniqueAddressQuery),
    responses(
        (status = 200, description = "The transaction's deposit address", body = UniqueAddressResponse),
        (status = 400, description = "No or a malformed transaction_id", body = ErrorBody),
        (status = 401, description = "Missing or bad callback credentials", body = ErrorBody),
        (status = 503, description = "No custodian or distribution account is configured, or the custodian is down", body = ErrorBody),
    ),
    security((), ("jwt" = []), ("api_key" = [])))]
#[tracing::instrument(skip_all)]
pub(crate) async fn get_unique_address(
    deposits: web::Data<DepositService>,
    query: web::Query<UniqueAddressQuery>,
) -> Result<HttpResponse, ApiError> {
    let transaction_id = query
        .into_inner()
        .transaction_id
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("transaction_id is required"))?;
    let address = deposits.unique_address(&transaction_id).await?;
    Ok(HttpResponse::Ok().json(UniqueAddressResponse {
        unique_address: UniqueAddressDto {
            stellar_address: address.account.as_str().to_owned(),
            memo: address.memo.as_ref().map(|m| Memo::value(m).to_owned()),
            memo_type: address.memo.as_ref().map(|m| m.memo_type().into()),
        },
    }))
}
