//! GET /unique_address (AP 2.x, `sep31.deposit_info_generator_type: api`).

use actix_web::{HttpResponse, web};
use mooring_domain::Memo;
use mooring_usecases::DepositService;
use serde::Deserialize;

use crate::ApiError;

#[derive(Deserialize)]
pub(crate) struct UniqueAddressQuery {
    transaction_id: Option<String>,
}

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
    let mut body = serde_json::json!({ "stellar_address": address.account.as_str() });
    if let Some(memo) = &address.memo {
        body["memo"] = Memo::value(memo).into();
        body["memo_type"] = memo.memo_type().as_str().into();
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "unique_address": body })))
}
