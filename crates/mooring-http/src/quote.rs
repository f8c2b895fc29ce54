//! GET /rate (indicative and firm quotes, or a stored one by id) and GET /fee.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use mooring_domain::AssetId;
use mooring_domain::customer::validate::COUNTRIES_ALPHA3;
use mooring_domain::quote::{QuoteId, QuoteKind, Requested};
use mooring_usecases::{FeeAmount, FeeRequest, FeeService, QuoteService, RateRequest, RateView};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ApiError;
use crate::error::ErrorBody;

/// The longest free-text parameter accepted (client ids, delivery methods).
const MAX_PARAM_LEN: usize = 256;

/// The query of `GET /rate`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RateQuery {
    /// `indicative` or `firm` (AP 2.x also sends `indicative_price(s)`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// A SEP-38 asset, e.g. `stellar:USDC:G…`.
    sell_asset: Option<String>,
    /// A SEP-38 asset, e.g. `iso4217:BRL`.
    buy_asset: Option<String>,
    /// Exactly one of `sell_amount` and `buy_amount`, a decimal string.
    sell_amount: Option<String>,
    buy_amount: Option<String>,
    sell_delivery_method: Option<String>,
    buy_delivery_method: Option<String>,
    /// ISO 3166-1 alpha-3.
    country_code: Option<String>,
    /// A firm quote must not expire before this (RFC 3339).
    expire_after: Option<String>,
    client_id: Option<String>,
    /// A stored firm quote's id: answers that quote.
    id: Option<String>,
}

/// The answer of `GET /rate`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RateResponse {
    rate: RateDto,
}

/// A price: indicative, or a firm quote with an id and an expiry.
#[derive(Serialize, ToSchema)]
pub(crate) struct RateDto {
    /// Firm quotes only.
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// Firm quotes only (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    /// Units of `sell_asset` per unit of `buy_asset`, before fees.
    price: String,
    sell_amount: String,
    buy_amount: String,
    fee: FeeDto,
}

/// The fee of a rate.
#[derive(Serialize, ToSchema)]
pub(crate) struct FeeDto {
    total: String,
    /// A SEP-38 asset.
    asset: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<FeeDetailDto>,
}

/// One part of a fee.
#[derive(Serialize, ToSchema)]
pub(crate) struct FeeDetailDto {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    amount: String,
}

/// The answer of `GET /fee`.
#[derive(Serialize, ToSchema)]
pub(crate) struct FeeResponse {
    fee: FeeAmountDto,
}

/// A fee in one asset.
#[derive(Serialize, ToSchema)]
pub(crate) struct FeeAmountDto {
    amount: String,
    /// A SEP-38 asset.
    asset: String,
}

impl From<RateView> for RateResponse {
    fn from(view: RateView) -> Self {
        let p = view.priced;
        Self {
            rate: RateDto {
                id: view.id.map(|id| id.to_string()),
                expires_at: view
                    .expires_at
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                price: p.price.to_string(),
                sell_amount: p.sell_amount.to_string(),
                buy_amount: p.buy_amount.to_string(),
                fee: FeeDto {
                    total: p.fee.total.to_string(),
                    asset: p.fee.asset.to_string(),
                    details: p
                        .fee
                        .details
                        .into_iter()
                        .map(|d| FeeDetailDto {
                            name: d.name,
                            description: d.description,
                            amount: d.amount.to_string(),
                        })
                        .collect(),
                },
            },
        }
    }
}

/// A present, non-empty parameter.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn required(name: &str, value: Option<String>) -> Result<String, ApiError> {
    given(value).ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
}

fn parse_asset(name: &str, value: Option<String>) -> Result<AssetId, ApiError> {
    AssetId::parse(&required(name, value)?)
        .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
}

pub(crate) fn parse_amount(name: &str, value: &str) -> Result<Decimal, ApiError> {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    // Exact: a value with more digits than a Decimal holds is refused, not rounded.
    plain
        .then(|| Decimal::from_str_exact(value).ok())
        .flatten()
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{name} must be a decimal number such as 100.25, of at most 28 digits"
            ))
        })
}

fn short(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match given(value) {
        Some(v) if v.chars().count() > MAX_PARAM_LEN || v.chars().any(char::is_control) => {
            Err(ApiError::bad_request(format!(
                "{name} must be at most {MAX_PARAM_LEN} characters, without control characters"
            )))
        }
        other => Ok(other),
    }
}

/// Exactly one of two amounts.
fn one_amount(
    a: (&str, Option<String>),
    b: (&str, Option<String>),
) -> Result<(bool, Decimal), ApiError> {
    match (given(a.1), given(b.1)) {
        (Some(x), None) => Ok((true, parse_amount(a.0, &x)?)),
        (None, Some(y)) => Ok((false, parse_amount(b.0, &y)?)),
        _ => Err(ApiError::bad_request(format!(
            "exactly one of {} and {} is required",
            a.0, b.0
        ))),
    }
}

/// An indicative price, a new firm quote (with an id, an expiry and
/// reserved liquidity), or a stored firm quote by `id`.
#[utoipa::path(get, path = "/rate", tag = "Quotes (SEP-38) and fees", params(RateQuery),
    responses(
        (status = 200, description = "The price", body = RateResponse),
        (status = 401, description = "Missing or bad callback credentials", body = ErrorBody),
        (status = 404, description = "No stored quote with this id", body = ErrorBody),
        (status = 422, description = "Understood but not served: a missing or malformed parameter, a pair this anchor does not quote, or not enough liquidity (the AP's spec has 422 for every such answer; the AP tells the wallet 400 with the message)", body = ErrorBody),
        (status = 503, description = "No fresh price for the pair", body = ErrorBody),
    ),
    security((), ("jwt" = []), ("api_key" = [])))]
#[tracing::instrument(skip_all)]
pub(crate) async fn get_rate(
    quotes: web::Data<QuoteService>,
    query: web::Query<RateQuery>,
) -> Result<HttpResponse, ApiError> {
    // The AP's spec answers every request it cannot serve with 422 (it
    // tells the wallet 400 either way).
    rate(quotes, query)
        .await
        .map_err(ApiError::bad_request_as_unprocessable)
}

async fn rate(
    quotes: web::Data<QuoteService>,
    query: web::Query<RateQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if let Some(id) = given(q.id) {
        // AP 2.x may fetch a firm quote it was given: answer it unchanged.
        let id = QuoteId::parse(&id).map_err(|_| ApiError::not_found("quote not found"))?;
        let quote = quotes.get(&id).await?;
        return Ok(HttpResponse::Ok().json(RateResponse::from(RateView::from(quote))));
    }
    let kind = match required("type", q.kind)?.as_str() {
        "indicative" => QuoteKind::Indicative,
        "firm" => QuoteKind::Firm,
        other => {
            return Err(ApiError::bad_request(format!(
                "type must be indicative or firm, not {other:?}"
            )));
        }
    };
    let sell_asset = parse_asset("sell_asset", q.sell_asset)?;
    let buy_asset = parse_asset("buy_asset", q.buy_asset)?;
    let (sell, amount) = one_amount(("sell_amount", q.sell_amount), ("buy_amount", q.buy_amount))?;
    let country_code = given(q.country_code);
    if let Some(c) = &country_code
        && COUNTRIES_ALPHA3.binary_search(&c.as_str()).is_err()
    {
        return Err(ApiError::bad_request(
            "country_code must be an ISO 3166-1 alpha-3 code such as BRA",
        ));
    }
    let expire_after = given(q.expire_after)
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::bad_request("expire_after must be an ISO 8601 date and time such as 2024-01-01T00:10:00Z"))
        })
        .transpose()?;
    let request = RateRequest {
        kind,
        sell_asset,
        buy_asset,
        requested: if sell {
            Requested::Sell(amount)
        } else {
            Requested::Buy(amount)
        },
        sell_delivery_method: short("sell_delivery_method", q.sell_delivery_method)?,
        buy_delivery_method: short("buy_delivery_method", q.buy_delivery_method)?,
        country_code,
        expire_after,
        client_id: short("client_id", q.client_id)?,
    };
    let view = quotes.rate(request).await?;
    Ok(HttpResponse::Ok().json(RateResponse::from(view)))
}

/// The query of `GET /fee`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FeeQuery {
    send_asset: Option<String>,
    receive_asset: Option<String>,
    send_amount: Option<String>,
    receive_amount: Option<String>,
    client_id: Option<String>,
    sender_id: Option<String>,
    receiver_id: Option<String>,
}

/// The fee of a transfer made without a quote (AP 2.x; AP 4.x no longer
/// calls it).
#[utoipa::path(get, path = "/fee", tag = "Quotes (SEP-38) and fees", params(FeeQuery),
    responses(
        (status = 200, description = "The fee", body = FeeResponse),
        (status = 400, description = "A missing or malformed parameter", body = ErrorBody),
        (status = 401, description = "Missing or bad callback credentials", body = ErrorBody),
        (status = 422, description = "An asset this anchor does not serve, or a sender or receiver not ACCEPTED", body = ErrorBody),
    ),
    security((), ("jwt" = []), ("api_key" = [])))]
#[tracing::instrument(skip_all)]
pub(crate) async fn get_fee(
    fees: web::Data<FeeService>,
    query: web::Query<FeeQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let send_asset = parse_asset("send_asset", q.send_asset)?;
    let receive_asset = parse_asset("receive_asset", q.receive_asset)?;
    let (send, amount) = one_amount(
        ("send_amount", q.send_amount),
        ("receive_amount", q.receive_amount),
    )?;
    let request = FeeRequest {
        send_asset,
        receive_asset,
        amount: if send {
            FeeAmount::Send(amount)
        } else {
            FeeAmount::Receive(amount)
        },
        client_id: short("client_id", q.client_id)?,
        sender_id: short("sender_id", Some(required("sender_id", q.sender_id)?))?
            .unwrap_or_default(),
        receiver_id: short("receiver_id", Some(required("receiver_id", q.receiver_id)?))?
            .unwrap_or_default(),
    };
    let (fee, asset) = fees.fee(request).await?;
    Ok(HttpResponse::Ok().json(FeeResponse {
        fee: FeeAmountDto {
            amount: fee.to_string(),
            asset: asset.to_string(),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_plain_decimals() {
        assert_eq!(
            parse_amount("a", "100.25").ok(),
            Some(Decimal::new(10025, 2))
        );
        assert_eq!(
            parse_amount("a", "100.00")
                .map(|d| d.to_string())
                .ok()
                .as_deref(),
            Some("100.00")
        );
        for bad in [
            "",
            "abc",
            "1e5",
            "0x10",
            "1,5",
            " 1",
            "+1",
            "NaN",
            "100.00000000000000000000000000001",
        ] {
            assert!(parse_amount("a", bad).is_err(), "{bad:?}");
        }
    }
}
