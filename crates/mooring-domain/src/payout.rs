//! The payout ledger's rules: one entry per AP transaction, moved through a
//! state machine whose every step is committed before the next side effect,
//! so that a crash anywhere resumes without a second payout.
//!
//! ```text
//!  new ──► awaiting_funds ──► received ──► ready ──► submitted ──► confirmed ──► completed
//!   │                            │ ▲                     │
//!   │                            ▼ │                     ▼
//!   │                        awaiting_kyc           rail_failed ──► failed ──► (retry) recovering
//!   └──────────────► rejecting ──► rejected ──► (retry) recovering ──► received
//!                                     │
//!         rejected, failed, awaiting_kyc ──► (refund) refunding ──► refunded
//! ```
//!
//! `closed` marks a transaction the AP had already finished when Mooring
//! first saw it (history before Mooring, or finished elsewhere): known, and
//! nothing to do.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;

use crate::quote::Quote;
use crate::transaction::{Amount, Transaction, TransactionId, TransactionStatus};

/// Where a transaction's payout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PayoutState {
    /// Seen, not funded yet: claim the quote; on AP 3.x+ ask for the funds.
    New,
    /// Waiting for the sender's on-chain payment (nothing to do until then).
    AwaitingFunds,
    /// Funded: check amounts, quote and the receiver's KYC.
    Received,
    /// The receiver's KYC is not ACCEPTED; rechecked until it is.
    AwaitingKyc,
    /// Checked; the payout's amount and receiver are fixed. Written by
    /// earlier versions only (the checks now commit `Submitted` with the
    /// terms); kept so that their entries move on.
    Ready,
    /// The payout was (or is being) sent to the rail under its key.
    Submitted,
    /// The rail paid; the AP is to be told.
    Confirmed,
    /// The AP has the transaction `completed`.
    Completed,
    /// A check failed before any payout: the AP is to be told `error`.
    Rejecting,
    /// The AP has the rejection; no payout was made.
    Rejected,
    /// The rail refused or failed the payout: the AP is to be told `error`.
    RailFailed,
    /// The AP has the failure; no payout was made.
    Failed,
    /// The operator asked for another attempt: the AP is to be told the
    /// transaction resumes (`error` → `pending_receiver`).
    Recovering,
    /// The operator returned the funds; the AP is to be told.
    Refunding,
    /// The AP has the transaction `refunded`.
    Refunded,
    /// Finished at the AP before Mooring had anything to do with it.
    Closed,
}

impl PayoutState {
    pub const ALL: [Self; 16] = [
        Self::New,
        Self::AwaitingFunds,
        Self::Received,
        Self::AwaitingKyc,
        Self::Ready,
        Self::Submitted,
        Self::Confirmed,
        Self::Completed,
        Self::Rejecting,
        Self::Rejected,
        Self::RailFailed,
        Self::Failed,
        Self::Recovering,
        Self::Refunding,
        Self::Refunded,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::AwaitingFunds => "awaiting_funds",
            Self::Received => "received",
            Self::AwaitingKyc => "awaiting_kyc",
            Self::Ready => "ready",
            Self::Submitted => "submitted",
            Self::Confirmed => "confirmed",
            Self::Completed => "completed",
            Self::Rejecting => "rejecting",
            Self::Rejected => "rejected",
            Self::RailFailed => "rail_failed",
            Self::Failed => "failed",
            Self::Recovering => "recovering",
            Self::Refunding => "refunding",
            Self::Refunded => "refunded",
            Self::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// States with a step for the engine to take (when due).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::New
                | Self::Received
                | Self::AwaitingKyc
                | Self::Ready
                | Self::Submitted
                | Self::Confirmed
                | Self::Rejecting
                | Self::RailFailed
                | Self::Recovering
                | Self::Refunding
        )
    }

    /// Whether the sender's payment has been seen for this entry.
    pub fn knows_funds(self) -> bool {
        !matches!(self, Self::New | Self::AwaitingFunds)
    }

    /// Whether a payout may have been made (or is being made) at the rail.
    pub fn payout_possible(self) -> bool {
        matches!(self, Self::Submitted | Self::Confirmed | Self::Completed)
    }

    /// What a sighting of the transaction at the AP changes: the state to
    /// write, or `None` for no change. Sightings come in any order and any
    /// number of times (polls, events, duplicates), so an entry only ever
    /// moves forward here; everything past the first sighting of the funds
    /// is the engine's, which reads the AP afresh before acting.
    pub fn on_sighting(current: Option<Self>, sighting: Sighting) -> Option<Self> {
        match (current, sighting) {
            (None, Sighting::Unfunded) => Some(Self::New),
            (None, Sighting::Funded) => Some(Self::Received),
            (None, Sighting::Finished) => Some(Self::Closed),
            (Some(Self::New | Self::AwaitingFunds), Sighting::Funded) => Some(Self::Received),
            (Some(Self::AwaitingFunds), Sighting::Finished) => Some(Self::Closed),
            _ => None,
        }
    }
}

impl std::fmt::Display for PayoutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What one look at a transaction at the AP says about its funds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// Created, the sender's payment not yet received.
    Unfunded,
    /// The sender's payment was received and the transaction is open.
    Funded,
    /// The AP has finished with it (completed, refunded, expired, error).
    Finished,
}

impl Sighting {
    /// The sighting a SEP-31 transaction gives; `None` for other SEPs and
    /// for statuses that say nothing new (e.g. `pending_stellar`).
    pub fn of(tx: &Transaction) -> Option<Self> {
        if !(tx.sep.is_empty() || tx.sep == "31") {
            return None;
        }
        Self::from_status(&tx.status, tx.transfer_received_at.is_some())
    }

    /// The sighting of a status and whether the funds were received.
    pub fn from_status(status: &TransactionStatus, funded: bool) -> Option<Self> {
        use TransactionStatus as S;
        match status {
            S::PendingSender => Some(Self::Unfunded),
            S::PendingReceiver if !funded => Some(Self::Unfunded),
            S::PendingReceiver
            | S::PendingExternal
            | S::PendingCustomerInfoUpdate
            | S::PendingTransactionInfoUpdate => funded.then_some(Self::Funded),
            S::Completed | S::Refunded | S::Expired | S::Error => Some(Self::Finished),
            S::PendingStellar | S::Other(_) => None,
        }
    }
}

/// One ledger entry. Reasons and errors are written for operators and
/// never carry PII (no names, no account numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payout {
    pub transaction_id: TransactionId,
    pub state: PayoutState,
    /// 1 for the first payout attempt; an operator's retry after a failed
    /// payout starts the next (with its own idempotency key).
    pub attempt: u32,
    pub quote_id: Option<String>,
    pub receiver_id: Option<String>,
    pub amount_in: Option<Amount>,
    pub amount_out: Option<Amount>,
    /// The rail's id of the payout: the AP's `external_transaction_id`.
    pub payout_id: Option<String>,
    /// Whether the AP was told the payout is pending (`pending_external`).
    pub told_pending: bool,
    /// Why the transaction was rejected or its payout failed.
    pub reason: Option<String>,
    /// The last step's error, while it is being retried.
    pub last_error: Option<String>,
    /// Steps failed in a row (for the backoff); 0 after a success.
    pub failures: u32,
    /// The operator's reference of a refund (the Stellar transaction hash).
    pub refund_reference: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the next step is due.
    pub due_at: DateTime<Utc>,
}

impl Payout {
    /// A fresh entry in `state`, due now.
    pub fn new(transaction_id: TransactionId, state: PayoutState, now: DateTime<Utc>) -> Self {
        Self {
            transaction_id,
            state,
            attempt: 1,
            quote_id: None,
            receiver_id: None,
            amount_in: None,
            amount_out: None,
            payout_id: None,
            told_pending: false,
            reason: None,
            last_error: None,
            failures: 0,
            refund_reference: None,
            created_at: now,
            updated_at: now,
            due_at: now,
        }
    }

    /// The rail's idempotency key of the current attempt: the transaction
    /// id for the first, so every retry of one payout carries the same key.
    pub fn idempotency_key(&self) -> String {
        idempotency_key(&self.transaction_id, self.attempt)
    }

    /// Moves to `state`, due now, clearing the error streak.
    pub fn advance(&mut self, state: PayoutState, now: DateTime<Utc>) {
        self.state = state;
        self.failures = 0;
        self.last_error = None;
        self.updated_at = now;
        self.due_at = now;
    }

    /// Stays in the current state after a failed step: due again after an
    /// exponential backoff (`base · 2^failures`, at most `max`).
    pub fn retry_later(
        &mut self,
        error: String,
        now: DateTime<Utc>,
        base: Duration,
        max: Duration,
    ) {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error);
        self.updated_at = now;
        self.due_at = now + backoff(self.failures, base, max);
    }
}

/// The idempotency key of a transaction's payout attempt.
pub fn idempotency_key(id: &TransactionId, attempt: u32) -> String {
    if attempt <= 1 {
        id.as_str().to_owned()
    } else {
        format!("{id}:attempt-{attempt}")
    }
}

/// `base · 2^(failures − 1)`, capped at `max`.
pub fn backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    let factor = 1i32 << failures.saturating_sub(1).min(20);
    base.checked_mul(factor).map_or(max, |d| d.min(max))
}

/// The asset of an amount as the AP may write it (`stellar:CODE:ISSUER`,
/// `CODE:ISSUER`, `iso4217:XXX`), in one spelling for comparison.
fn asset_key(asset: &str) -> &str {
    asset.strip_prefix("stellar:").unwrap_or(asset)
}

fn same_asset(a: &str, b: &str) -> bool {
    asset_key(a) == asset_key(b)
}

/// Checks what the sender paid against what the transaction (or its
/// quote) requires, and gives the amount to pay out. The error says why,
/// for the AP's `message` and the operator (amounts and assets only).
///
/// - With a quote: `amount_in` must be exactly the quote's sell amount and
///   asset; the payout is the quote's buy amount and asset.
/// - Without: `amount_in` must equal `amount_expected` when the AP gives
///   one; the payout is `amount_out` when set, else `amount_in` less the fee
///   (same asset only).
pub fn check_funds(tx: &Transaction, quote: Option<&Quote>) -> Result<Amount, String> {
    let received = tx
        .amount_in
        .as_ref()
        .ok_or_else(|| "the transaction has no amount_in".to_owned())?;
    if received.amount <= Decimal::ZERO {
        return Err(format!(
            "the amount received ({}) is not positive",
            received.amount
        ));
    }
    if let Some(quote) = quote {
        let sell = quote.priced.sell_amount;
        if !same_asset(&received.asset, quote.sell_asset.as_str()) || received.amount != sell {
            return Err(format!(
                "received {} {}, but quote {} requires {} {}",
                received.amount, received.asset, quote.id, sell, quote.sell_asset
            ));
        }
        return Ok(Amount {
            amount: quote.priced.buy_amount,
            asset: quote.buy_asset.as_str().to_owned(),
        });
    }
    if let Some(expected) = &tx.amount_expected
        && (!same_asset(&received.asset, &expected.asset) || received.amount != expected.amount)
    {
        return Err(format!(
            "received {} {}, but the transaction expects {} {}",
            received.amount, received.asset, expected.amount, expected.asset
        ));
    }
    let out = match &tx.amount_out {
        Some(out) if out.amount > Decimal::ZERO => out.clone(),
        _ => {
            let fee = match &tx.fee {
                None => Decimal::ZERO,
                Some(fee) if same_asset(&fee.asset, &received.asset) || fee.asset.is_empty() => {
                    fee.amount
                }
                Some(fee) => {
                    return Err(format!(
                        "the fee is in {}, not in the asset received ({}), and no amount_out is set",
                        fee.asset, received.asset
                    ));
                }
            };
            Amount {
                amount: received.amount - fee,
                asset: received.asset.clone(),
            }
        }
    };
    if out.amount <= Decimal::ZERO {
        return Err(format!(
            "nothing to pay out: amount_out would be {} {}",
            out.amount, out.asset
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AssetId;
    use crate::quote::{Fee, Priced, QuoteId};
    use std::str::FromStr;

    fn amount(a: &str, asset: &str) -> Amount {
        Amount {
            amount: Decimal::from_str(a).expect("decimal"),
            asset: asset.into(),
        }
    }

    fn tx() -> Transaction {
        Transaction {
            id: TransactionId::parse("t1").expect("id"),
            sep: "31".into(),
            kind: Some("receive".into()),
            status: TransactionStatus::PendingReceiver,
            amount_expected: None,
            amount_in: None,
            amount_out: None,
            fee: None,
            quote_id: None,
            sender_id: None,
            receiver_id: None,
            started_at: None,
            updated_at: None,
            transfer_received_at: None,
            completed_at: None,
            stellar_transaction_ids: vec![],
            external_transaction_id: None,
            message: None,
        }
    }

    fn quote() -> Quote {
        let now = Utc::now();
        Quote {
            id: QuoteId::generate(),
            sell_asset: AssetId::parse(
                "stellar:USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN",
            )
            .expect("asset"),
            buy_asset: AssetId::parse("iso4217:BRL").expect("asset"),
            priced: Priced {
                price: Decimal::from_str("0.18").expect("d"),
                sell_amount: Decimal::from(100),
                buy_amount: Decimal::from_str("550.00").expect("d"),
                fee: Fee {
                    total: Decimal::ONE,
                    asset: AssetId::parse(
                        "stellar:USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN",
                    )
                    .expect("asset"),
                    details: vec![],
                },
            },
            sell_delivery_method: None,
            buy_delivery_method: None,
            country_code: None,
            client_id: None,
            created_at: now,
            expires_at: now,
            used_by: None,
            used_at: None,
        }
    }

    const USDC: &str = "stellar:USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";

    #[test]
    fn states_round_trip() {
        for state in PayoutState::ALL {
            assert_eq!(PayoutState::parse(state.as_str()), Some(state));
        }
        assert_eq!(PayoutState::parse("paid"), None);
    }

    #[test]
    fn sightings_only_move_forward_whatever_their_order() {
        use PayoutState as P;
        use Sighting as S;
        assert_eq!(P::on_sighting(None, S::Unfunded), Some(P::New));
        assert_eq!(P::on_sighting(None, S::Funded), Some(P::Received));
        assert_eq!(P::on_sighting(None, S::Finished), Some(P::Closed));
        assert_eq!(
            P::on_sighting(Some(P::AwaitingFunds), S::Funded),
            Some(P::Received)
        );
        assert_eq!(P::on_sighting(Some(P::New), S::Funded), Some(P::Received));
        assert_eq!(
            P::on_sighting(Some(P::AwaitingFunds), S::Finished),
            Some(P::Closed)
        );
        // A stale "unfunded" after the funds, or any sighting once the
        // engine has the entry, changes nothing.
        for state in PayoutState::ALL {
            assert_eq!(P::on_sighting(Some(state), S::Unfunded), None);
            if state.knows_funds() {
                assert_eq!(P::on_sighting(Some(state), S::Funded), None);
                assert_eq!(P::on_sighting(Some(state), S::Finished), None);
            }
        }
    }

    #[test]
    fn sightings_of_ap_statuses() {
        let mut t = tx();
        assert_eq!(Sighting::of(&t), Some(Sighting::Unfunded));
        t.transfer_received_at = Some(Utc::now());
        assert_eq!(Sighting::of(&t), Some(Sighting::Funded));
        t.status = TransactionStatus::Completed;
        assert_eq!(Sighting::of(&t), Some(Sighting::Finished));
        t.status = TransactionStatus::PendingSender;
        assert_eq!(Sighting::of(&t), Some(Sighting::Unfunded));
        t.sep = "24".into();
        assert_eq!(Sighting::of(&t), None);
    }

    #[test]
    fn funds_with_a_quote_must_match_its_sell_side() {
        let q = quote();
        let mut t = tx();
        t.amount_in = Some(amount("100", USDC));
        let out = check_funds(&t, Some(&q)).expect("matches");
        assert_eq!(out, amount("550.00", "iso4217:BRL"));
        // The observer's spelling without the prefix is the same asset.
        t.amount_in = Some(amount("100", &USDC["stellar:".len()..]));
        assert!(check_funds(&t, Some(&q)).is_ok());
        t.amount_in = Some(amount("99.99", USDC));
        let err = check_funds(&t, Some(&q)).expect_err("short");
        assert!(
            err.contains("99.99") && err.contains("requires 100"),
            "{err}"
        );
        t.amount_in = Some(amount("100", "iso4217:USD"));
        assert!(check_funds(&t, Some(&q)).is_err());
        t.amount_in = None;
        assert!(check_funds(&t, Some(&q)).is_err());
    }

    #[test]
    fn funds_without_a_quote() {
        let mut t = tx();
        t.amount_in = Some(amount("100", USDC));
        t.amount_expected = Some(amount("100", USDC));
        t.fee = Some(amount("1.5", USDC));
        assert_eq!(check_funds(&t, None), Ok(amount("98.5", USDC)));
        t.amount_out = Some(amount("98", USDC));
        assert_eq!(check_funds(&t, None), Ok(amount("98", USDC)));
        t.amount_expected = Some(amount("101", USDC));
        assert!(check_funds(&t, None).is_err());
        t.amount_expected = None;
        t.amount_out = None;
        t.fee = Some(amount("100", USDC));
        assert!(
            check_funds(&t, None)
                .expect_err("nothing left")
                .contains("nothing to pay out")
        );
        t.fee = Some(amount("1", "iso4217:BRL"));
        assert!(check_funds(&t, None).is_err());
        t.amount_in = Some(amount("0", USDC));
        assert!(check_funds(&t, None).is_err());
    }

    #[test]
    fn keys_and_backoff() {
        let id = TransactionId::parse("abc").expect("id");
        assert_eq!(idempotency_key(&id, 1), "abc");
        assert_eq!(idempotency_key(&id, 2), "abc:attempt-2");
        let (base, max) = (Duration::seconds(1), Duration::seconds(60));
        assert_eq!(backoff(1, base, max), Duration::seconds(1));
        assert_eq!(backoff(3, base, max), Duration::seconds(4));
        assert_eq!(backoff(30, base, max), max);
        let mut p = Payout::new(id, PayoutState::Confirmed, Utc::now());
        let now = Utc::now();
        p.retry_later("down".into(), now, base, max);
        p.retry_later("down".into(), now, base, max);
        assert_eq!((p.failures, p.due_at), (2, now + Duration::seconds(2)));
        p.advance(PayoutState::Completed, now);
        assert_eq!((p.failures, p.last_error.as_deref()), (0, None));
    }
}
