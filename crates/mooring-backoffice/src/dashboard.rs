//! The dashboard: payouts by state and what needs a person, the event
//! inbox and poll lag, and the liquidity firm quotes hold against each cap.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use mooring_domain::payout::PayoutState;
use mooring_domain::staff::{Duty, RequestState};

use crate::BackOffice;
use crate::page::{PageError, badge, layout, ok};
use crate::session::Person;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(dashboard));
}

async fn dashboard(
    req: HttpRequest,
    office: web::Data<BackOffice>,
) -> Result<HttpResponse, PageError> {
    let person = Person::of(&req, &office).await?;
    person.require(&office, Duty::See).await?;
    let gauges = office
        .ops
        .gauges()
        .await
        .map_err(|e| PageError::unavailable(&e))?;
    let count = |state: PayoutState| {
        gauges
            .payouts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    };
    let waiting = match &office.payouts {
        Some((_, requests)) => Some(
            requests
                .list(&[RequestState::Pending, RequestState::Approving], None, 500)
                .await
                .map_err(|e| PageError::unavailable(&e))?
                .len(),
        ),
        None => None,
    };
    let body = html! {
        section aria-labelledby="needs" {
            h2 id="needs" { "Needs a person" }
            ul class="tiles" {
                li { a href={ "/payouts?state=" (PayoutState::Held.as_str()) } { strong { (count(PayoutState::Held)) } " held payouts" } }
                li { a href="/requests" { strong { (waiting.map_or_else(|| "—".to_owned(), |n| n.to_string())) } " requests awaiting a second operator" } }
                li { a href={ "/payouts?state=" (PayoutState::AwaitingApproval.as_str()) } { strong { (count(PayoutState::AwaitingApproval)) } " payouts awaiting approval" } }
                li { a href={ "/payouts?state=" (PayoutState::AwaitingKyc.as_str()) } { strong { (count(PayoutState::AwaitingKyc)) } " payouts waiting for KYC" } }
            }
        }
        section aria-labelledby="states" {
            h2 id="states" { "Payouts by state" }
            table {
                thead { tr { th scope="col" { "State" } th scope="col" class="num" { "Payouts" } } }
                tbody {
                    @for (state, n) in &gauges.payouts {
                        tr {
                            td { a href={ "/payouts?state=" (state.as_str()) } { (badge(state.as_str())) } }
                            td class="num" { (n) }
                        }
                    }
                }
            }
        }
        section aria-labelledby="engine" {
            h2 id="engine" { "Engine" }
            dl {
                dt { "Events received, not yet applied" }
                dd { (gauges.inbox_depth) }
                dt { "Since this replica last polled the Anchor Platform" }
                dd {
                    @match gauges.poll_lag {
                        Some(lag) => { (lag.num_seconds()) " s" }
                        None => { "not polled yet (or the engine is off)" }
                    }
                }
            }
        }
        section aria-labelledby="liquidity" {
            h2 id="liquidity" { "Liquidity reserved by firm quotes" }
            table {
                thead { tr { th scope="col" { "Asset" } th scope="col" class="num" { "Reserved" } th scope="col" class="num" { "Cap" } } }
                tbody {
                    @for (asset, reserved, cap) in &gauges.reservations {
                        tr {
                            td { (asset) }
                            td class="num" { (reserved) }
                            td class="num" { (cap.map_or_else(|| "unlimited".to_owned(), |c| c.to_string())) }
                        }
                    }
                }
            }
        }
    };
    Ok(ok(layout(&person.who, "Dashboard", body)))
}
