//! A ledger entry as stored, and its frozen order as JSON.

use std::str::FromStr;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use mooring_domain::AssetId;
use mooring_domain::payout::{AtRail, Payout, PayoutOrder, PayoutState, Stage};
use mooring_domain::transaction::{Amount, TransactionId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::AnyConnection;
use crate::conn::Bind;
use crate::pii::{Pii, order_context};
use crate::schema::payouts;

use super::Failure;

#[derive(Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = payouts, treat_none_as_null = true)]
pub(super) struct PayoutRow {
    pub(super) transaction_id: String,
    state: String,
    attempt: i32,
    quote_id: Option<String>,
    sender_id: Option<String>,
    receiver_id: Option<String>,
    amount_in: Option<String>,
    amount_in_asset: Option<String>,
    amount_out: Option<String>,
    amount_out_asset: Option<String>,
    payout_id: Option<String>,
    told_pending: i32,
    reason: Option<String>,
    last_error: Option<String>,
    failures: i32,
    refund_reference: Option<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    due_at: NaiveDateTime,
    /// The frozen order in plaintext: only in rows an earlier version
    /// wrote (until the first start with a key seals them), and between
    /// [`PayoutRow::from_payout`] and [`PayoutRow::sealed`].
    legacy_order: Option<String>,
    submitted_at: Option<NaiveDateTime>,
    /// The frozen order, sealed under the receiver's data key; empty once
    /// the order was found erased (its key deleted with the receiver).
    sealed_order: Option<Vec<u8>>,
}

/// The frozen order as stored (JSON): the fields in the order they were
/// sent, so that every retry sends the same body.
#[derive(Serialize, Deserialize)]
struct OrderDto {
    idempotency_key: String,
    transaction_id: String,
    amount: String,
    asset: String,
    delivery_method: Option<String>,
    receiver_id: String,
    receiver_fields: Vec<(String, String)>,
}

impl OrderDto {
    fn encode(o: &PayoutOrder) -> String {
        let dto = Self {
            idempotency_key: o.idempotency_key.clone(),
            transaction_id: o.transaction_id.clone(),
            amount: o.amount.to_string(),
            asset: o.asset.clone(),
            delivery_method: o.delivery_method.clone(),
            receiver_id: o.receiver_id.clone(),
            receiver_fields: o.receiver_fields.clone(),
        };
        // A struct of strings always serialises.
        serde_json::to_string(&dto).unwrap_or_default()
    }

    fn decode(text: &str) -> Result<PayoutOrder, String> {
        let dto: Self = serde_json::from_str(text).map_err(|e| format!("frozen order: {e}"))?;
        Ok(PayoutOrder {
            idempotency_key: dto.idempotency_key,
            transaction_id: dto.transaction_id,
            amount: Decimal::from_str(&dto.amount)
                .map_err(|e| format!("frozen order amount: {e}"))?,
            asset: dto.asset,
            delivery_method: dto.delivery_method,
            receiver_id: dto.receiver_id,
            receiver_fields: dto.receiver_fields,
        })
    }
}

/// The columns a save writes, in the order of [`PayoutRow::save_binds`]
/// (all but the key, which the save's `WHERE` names).
pub(super) const SAVE_COLUMNS: &str = "state = ?, attempt = ?, quote_id = ?, sender_id = ?, \
     receiver_id = ?, amount_in = ?, amount_in_asset = ?, amount_out = ?, amount_out_asset = ?, \
     payout_id = ?, told_pending = ?, reason = ?, last_error = ?, failures = ?, refund_reference = ?, \
     created_at = ?, updated_at = ?, due_at = ?, legacy_order = ?, submitted_at = ?, \
     sealed_order = ?";

impl PayoutRow {
    /// The values of [`SAVE_COLUMNS`], in order.
    pub(super) fn save_binds(&self) -> Vec<Bind<'_>> {
        fn text(v: &Option<String>) -> Bind<'_> {
            Bind::OptText(v.as_deref())
        }
        vec![
            Bind::Text(&self.state),
            Bind::Int(self.attempt),
            text(&self.quote_id),
            text(&self.sender_id),
            text(&self.receiver_id),
            text(&self.amount_in),
            text(&self.amount_in_asset),
            text(&self.amount_out),
            text(&self.amount_out_asset),
            text(&self.payout_id),
            Bind::Int(self.told_pending),
            text(&self.reason),
            text(&self.last_error),
            Bind::Int(self.failures),
            text(&self.refund_reference),
            Bind::Time(self.created_at),
            Bind::Time(self.updated_at),
            Bind::Time(self.due_at),
            text(&self.legacy_order),
            Bind::OptTime(self.submitted_at),
            Bind::OptBytes(self.sealed_order.as_deref()),
        ]
    }
}

/// Whether an entry in this state keeps its frozen order.
fn state_has_order(state: &str) -> bool {
    [
        PayoutState::AwaitingApproval,
        PayoutState::Submitted,
        PayoutState::Held,
    ]
    .iter()
    .any(|s| s.as_str() == state)
}

fn clamp(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl PayoutRow {
    pub(super) fn from_payout(p: &Payout) -> Self {
        let split = |a: &Option<Amount>| match a {
            Some(a) => (Some(a.amount.to_string()), Some(a.asset.to_string())),
            None => (None, None),
        };
        let (amount_in, amount_in_asset) = split(&p.amount_in);
        let (amount_out, amount_out_asset) = split(&p.amount_out);
        Self {
            transaction_id: p.transaction_id.as_str().to_owned(),
            state: p.state().as_str().to_owned(),
            attempt: clamp(p.attempt),
            quote_id: p.quote_id.clone(),
            sender_id: p.sender_id.clone(),
            receiver_id: p.receiver_id.clone(),
            amount_in,
            amount_in_asset,
            amount_out,
            amount_out_asset,
            payout_id: p.payout_id().map(str::to_owned),
            // At the rail: told the AP the payout is pending. Awaiting KYC:
            // the AP waits for customer info.
            told_pending: i32::from(
                p.at_rail().is_some_and(|r| r.told_pending) || p.asked_for_info(),
            ),
            reason: p.reason().map(str::to_owned),
            last_error: p.last_error.clone(),
            failures: clamp(p.failures),
            refund_reference: p.refund_reference().map(str::to_owned),
            created_at: p.created_at.naive_utc(),
            updated_at: p.updated_at.naive_utc(),
            due_at: p.due_at.naive_utc(),
            legacy_order: p.order().map(OrderDto::encode),
            submitted_at: p.at_rail().map(|r| r.submitted_at.naive_utc()),
            // An erased order stays erased: an empty seal, no data.
            sealed_order: p.at_rail().filter(|r| r.order_erased).map(|_| Vec::new()),
        }
    }

    /// The row with its frozen order sealed under the receiver's data key.
    /// A receiver with no key (erased between the step's read and this
    /// write, or never a customer here) gets one of their own, so that the
    /// payout in flight can finish (`docs/security.md`, "Erasure").
    pub(super) fn sealed(mut self, conn: &mut AnyConnection, pii: &Pii) -> Result<Self, Failure> {
        let Some(order) = self.legacy_order.take() else {
            return Ok(self);
        };
        let receiver = self.receiver_id.clone().unwrap_or_default();
        let key = pii.key_for_writing(conn, &receiver, chrono::Utc::now().naive_utc())?;
        self.sealed_order = Some(key.seal(
            &order_context(&self.transaction_id, &receiver),
            order.as_bytes(),
        ));
        Ok(self)
    }

    /// The frozen order opened (`Some`), erased with its receiver's key
    /// (`None`), or never sealed (a row of an earlier version: its
    /// plaintext, or no order).
    fn opened_order(
        &self,
        conn: &mut AnyConnection,
        pii: &Pii,
    ) -> Result<Option<Option<String>>, Failure> {
        let Some(sealed) = &self.sealed_order else {
            return Ok(Some(self.legacy_order.clone()));
        };
        if sealed.is_empty() {
            return Ok(None);
        }
        let corrupt = |reason: String| Failure::Corrupt {
            what: "payout",
            id: self.transaction_id.clone(),
            reason,
        };
        let receiver = self.receiver_id.clone().unwrap_or_default();
        let Some(key) = pii.key_of(conn, &receiver)? else {
            return Ok(None);
        };
        let bytes = key
            .open(&order_context(&self.transaction_id, &receiver), sealed)
            .map_err(|e| corrupt(format!("frozen order: {e}")))?;
        let text =
            String::from_utf8(bytes).map_err(|_| corrupt("frozen order: not UTF-8".into()))?;
        Ok(Some(Some(text)))
    }

    pub(super) fn into_payout(
        self,
        conn: &mut AnyConnection,
        pii: &Pii,
    ) -> Result<Payout, Failure> {
        let order = match state_has_order(&self.state) {
            true => self.opened_order(conn, pii)?,
            false => Some(None),
        };
        self.into_payout_with(order)
    }

    fn into_payout_with(self, order: Option<Option<String>>) -> Result<Payout, Failure> {
        let corrupt = |reason: String| Failure::Corrupt {
            what: "payout",
            id: self.transaction_id.clone(),
            reason,
        };
        let amount =
            |amount: &Option<String>, asset: &Option<String>| -> Result<Option<Amount>, Failure> {
                match (amount, asset) {
                    // An earlier version kept the asset as the AP wrote it,
                    // and an empty one when the AP wrote none: no amount.
                    (Some(_), Some(asset)) if asset.is_empty() => Ok(None),
                    (Some(a), Some(asset)) => Ok(Some(Amount::new(
                        Decimal::from_str(a).map_err(|e| corrupt(e.to_string()))?,
                        AssetId::from_ap(asset).map_err(|e| corrupt(e.to_string()))?,
                    ))),
                    _ => Ok(None),
                }
            };
        let state = PayoutState::parse(&self.state)
            .ok_or_else(|| corrupt(format!("unknown state {:?}", self.state)))?;
        let created_at = self.created_at.and_utc();
        let mut p = Payout::new(
            TransactionId::parse(&self.transaction_id).map_err(|e| corrupt(e.to_string()))?,
            Stage::New,
            created_at,
        );
        p.attempt = u32::try_from(self.attempt).unwrap_or(1);
        p.quote_id.clone_from(&self.quote_id);
        p.sender_id.clone_from(&self.sender_id);
        p.receiver_id.clone_from(&self.receiver_id);
        p.amount_in = amount(&self.amount_in, &self.amount_in_asset)?;
        p.amount_out = amount(&self.amount_out, &self.amount_out_asset)?;
        p.last_error.clone_from(&self.last_error);
        p.failures = u32::try_from(self.failures).unwrap_or(0);
        p.updated_at = self.updated_at.and_utc();
        p.due_at = self.due_at.and_utc();
        // Each state takes its own columns; the others are ignored (a row
        // an earlier version wrote may have left them set). A reason an
        // earlier version left out reads as empty.
        let reason = || self.reason.clone().unwrap_or_default();
        let payout_id = self.payout_id.clone();
        let stage = match state {
            PayoutState::AwaitingApproval | PayoutState::Submitted | PayoutState::Held => {
                let at_rail = AtRail {
                    order: order
                        .clone()
                        .flatten()
                        .as_deref()
                        .map(OrderDto::decode)
                        .transpose()
                        .map_err(corrupt)?,
                    submitted_at: self.submitted_at.map_or(created_at, |t| t.and_utc()),
                    payout_id,
                    told_pending: self.told_pending != 0,
                    order_erased: order.is_none(),
                };
                match state {
                    PayoutState::Held => Stage::Held {
                        at_rail,
                        reason: reason(),
                    },
                    PayoutState::AwaitingApproval => Stage::AwaitingApproval(at_rail),
                    _ => Stage::Submitted(at_rail),
                }
            }
            PayoutState::AwaitingKyc => Stage::AwaitingKyc {
                asked: self.told_pending != 0,
            },
            PayoutState::Confirmed => Stage::Confirmed { payout_id },
            PayoutState::Completed => Stage::Completed { payout_id },
            PayoutState::Rejecting => Stage::Rejecting { reason: reason() },
            PayoutState::Rejected => Stage::Rejected { reason: reason() },
            PayoutState::RailFailed => Stage::RailFailed {
                payout_id,
                reason: reason(),
            },
            PayoutState::Failed => Stage::Failed {
                payout_id,
                reason: reason(),
            },
            PayoutState::Refunding | PayoutState::Refunded => {
                let reference = self.refund_reference.clone().unwrap_or_default();
                let reason = self.reason.clone();
                if state == PayoutState::Refunding {
                    Stage::Refunding {
                        reference,
                        payout_id,
                        reason,
                    }
                } else {
                    Stage::Refunded {
                        reference,
                        payout_id,
                        reason,
                    }
                }
            }
            PayoutState::Closed => Stage::Closed {
                reason: reason(),
                payout_id,
            },
            plain => Stage::plain(plain).ok_or_else(|| corrupt(format!("state {plain}")))?,
        };
        Ok(p.restore(stage))
    }
}
