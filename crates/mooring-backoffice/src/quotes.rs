//! Firm quotes and liquidity: the newest firm quotes, filtered by client
//! and by state (holding liquidity, used, expired), and what reserving
//! quotes hold of each asset against its cap.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use maud::html;
use mooring_domain::quote::Quote;
use mooring_domain::staff::Duty;
use serde::Deserialize;

use crate::BackOffice;
use crate::page::{PageError, badge, layout, ok, when};
use crate::session::Person;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/quotes", web::get().to(quotes));
}

/// The most quotes a page reads (newest first).
const LIMIT: usize = 500;

/// A quote's state, as the page filters it.
fn state_of(q: &Quote, now: chrono::DateTime<Utc>) -> &'static str {
    if q.used_by.is_some() {
        "used"
    } else if q.is_reserving(now) {
        "reserving"
    } else {
        "expired"
    }
}

#[derive(Deserialize)]
pub struct QuoteFilter {
    #[serde(default)]
    client: String,
    #[serde(default)]
    state: String,
}

async fn quotes(
    req: HttpRequest,
    office: web::Data<BackOffice>,
    filter: web::Query<QuoteFilter>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::See).await?;
    let state = filter.state.trim();
    if !["", "reserving", "used", "expired"].contains(&state) {
        return Err(PageError::BadRequest(format!(
            "state: {state:?} is not reserving, used or expired"
        )));
    }
    let client = filter.client.trim();
    let now = Utc::now();
    let list: Vec<Quote> = office
        .quotes
        .list(LIMIT)
        .await
        .map_err(|e| PageError::unavailable(&e))?
        .into_iter()
        .filter(|q| client.is_empty() || q.client_id.as_deref() == Some(client))
        .filter(|q| state.is_empty() || state_of(q, now) == state)
        .collect();
    let reserved = office
        .quotes
        .reserved_by_asset()
        .await
        .map_err(|e| PageError::unavailable(&e))?;
    let body = html! {
        h2 { "Reserved liquidity" }
        table {
            thead { tr { th scope="col" { "Asset bought" } th scope="col" class="num" { "Held by firm quotes" } th scope="col" class="num" { "Cap" } } }
            tbody {
                @for (asset, held, cap) in &reserved {
                    tr {
                        td { (asset) }
                        td class="num" { (held) }
                        td class="num" { (cap.map_or_else(|| "unlimited".to_owned(), |c| c.to_string())) }
                    }
                }
            }
        }
        h2 { "Firm quotes" }
        form method="get" action="/quotes" class="filters" {
            label for="client" { "Client (SEP-10 account)" }
            input id="client" name="client" type="text" value=(client);
            label for="state" { "State" }
            select id="state" name="state" {
                @for s in ["", "reserving", "used", "expired"] {
                    option value=(s) selected[state == s] { (if s.is_empty() { "any" } else { s }) }
                }
            }
            button type="submit" { "Filter" }
        }
        p role="status" { (list.len()) " quotes (of the " (LIMIT) " newest)" }
        table {
            thead { tr {
                th scope="col" { "Quote" } th scope="col" { "State" } th scope="col" { "Sell" } th scope="col" { "Buy" }
                th scope="col" class="num" { "Price" } th scope="col" { "Client" } th scope="col" { "Expires" } th scope="col" { "Used by" }
            } }
            tbody {
                @for q in &list {
                    tr {
                        td { code { (q.id) } }
                        td { (badge(state_of(q, now))) }
                        td { (q.priced.sell_amount) " " (q.sell_asset) }
                        td { (q.priced.buy_amount) " " (q.buy_asset) }
                        td class="num" { (q.priced.price) }
                        td { @if let Some(c) = &q.client_id { code { (c) } } }
                        td { (when(q.expires_at)) }
                        td { @if let Some(t) = &q.used_by { a href={ "/payouts/" (t) } { code { (t) } } } }
                    }
                }
            }
        }
    };
    Ok(ok(layout(&person.who, "Quotes and liquidity", body)))
}
