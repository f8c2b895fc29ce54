//! One step of an entry per state: read what is needed, make at most one
//! side effect, and set the entry's next state (saved by the caller).

use chrono::{DateTime, Utc};
use mooring_domain::payout::{Gate, Payout, PayoutState, Sighting, check_funds, kyc_gate};
use mooring_domain::quote::Quote;
use mooring_domain::transaction::{Amount, Transaction, TransactionChange, TransactionStatus};
use mooring_ports::{PlatformError, RailError, RailStatus};
use rust_decimal::Decimal;

use super::{PayoutEngine, Step, StepError, StepResult};

/// What the AP is told when the rail refused or failed a payout: a fixed
/// text and a reference, never the provider's own words.
fn rail_failure_message(p: &Payout) -> String {
    format!(
        "the payout to the receiver could not be made (reference {})",
        p.idempotency_key()
    )
}

impl PayoutEngine {
    pub(super) fn reject(p: &mut Payout, reason: String, now: DateTime<Utc>) {
        p.reason = Some(reason);
        p.advance(PayoutState::Rejecting, now);
    }

    fn close(p: &mut Payout, tx: Option<&Transaction>, now: DateTime<Utc>) {
        p.reason = Some(match tx {
            None => "the AP does not know this transaction".into(),
            Some(tx) => format!(
                "the AP had the transaction {} with no payout made by Mooring",
                tx.status.as_str()
            ),
        });
        p.advance(PayoutState::Closed, now);
    }

    /// Seen before its funds (or seen finished, to be read again): claim
    /// the quote, ask for the funds on AP 3.x+.
    pub(super) async fn on_new(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        let Some(tx) = self.fetch(step, &p.transaction_id).await? else {
            Self::close(p, None, now);
            return Ok(());
        };
        match Sighting::of(&tx) {
            Some(Sighting::Finished) => {
                Self::close(p, Some(&tx), now);
                return Ok(());
            }
            Some(Sighting::Funded) => {
                p.advance(PayoutState::Received, now);
                return Ok(());
            }
            Some(Sighting::Unfunded) | None => {}
        }
        let Some(quote) = self.take_terms(p, &tx, step).await? else {
            return Ok(());
        };
        if self.config.request_funds && tx.status == TransactionStatus::PendingReceiver {
            self.request_funds(step, &tx, quote.as_ref()).await?;
        }
        p.advance(PayoutState::AwaitingFunds, now);
        Ok(())
    }

    /// AP 3.x+: `request_onchain_funds` with the deposit address from the
    /// custodian and the amounts of the transaction (or its quote).
    async fn request_funds(
        &self,
        step: &Step<'_>,
        tx: &Transaction,
        quote: Option<&Quote>,
    ) -> StepResult {
        let address = self
            .bounded(
                step,
                "taking a deposit address",
                self.parts.deposits.unique_address(tx.id.as_str()),
            )
            .await?
            .map_err(|e| StepError::Transient(format!("no deposit address: {e}")))?;
        let from_quote = |sell: bool| {
            quote.map(|q| {
                if sell {
                    Amount::new(q.priced.sell_amount, q.sell_asset.clone())
                } else {
                    Amount::new(q.priced.buy_amount, q.buy_asset.clone())
                }
            })
        };
        let amount_in = tx
            .amount_in
            .clone()
            .or_else(|| from_quote(true))
            .or_else(|| tx.amount_expected.clone())
            .ok_or_else(|| {
                StepError::Transient("the transaction has no amount to request".into())
            })?;
        let amount_out = tx
            .amount_out
            .clone()
            .or_else(|| from_quote(false))
            .unwrap_or_else(|| amount_in.clone());
        let fee = tx
            .fee
            .clone()
            .or_else(|| quote.map(|q| Amount::new(q.priced.fee.total, q.priced.fee.asset.clone())))
            .unwrap_or_else(|| Amount::new(Decimal::ZERO, amount_in.asset.clone()));
        let change = TransactionChange::RequestOnchainFunds {
            amount_expected: tx
                .amount_expected
                .clone()
                .unwrap_or_else(|| amount_in.clone()),
            amount_in,
            amount_out,
            fee,
            destination_account: address.account,
            memo: address.memo,
        };
        match self.tell(step, &tx.id, None, change).await? {
            Ok(_) => Ok(()),
            Err(PlatformError::Rejected(message)) => {
                // Already asked (a retry after a crash): the AP moved on.
                match self.fetch(step, &tx.id).await? {
                    Some(now) if now.status != TransactionStatus::PendingReceiver => Ok(()),
                    _ => Err(StepError::Transient(message)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Funded: check the amounts, the quote and both parties' KYC; then
    /// freeze the order and commit `submitted` (before the rail is called,
    /// in the next step).
    pub(super) async fn on_received(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        let Some(tx) = self.fetch(step, &p.transaction_id).await? else {
            Self::close(p, None, now);
            return Ok(());
        };
        match Sighting::of(&tx) {
            Some(Sighting::Funded) => {}
            Some(Sighting::Unfunded) => {
                p.advance(PayoutState::AwaitingFunds, now);
                return Ok(());
            }
            // No payout was made by Mooring (none was submitted).
            Some(Sighting::Finished) | None => {
                Self::close(p, Some(&tx), now);
                return Ok(());
            }
        }
        p.amount_in.clone_from(&tx.amount_in);
        let Some(quote) = self.take_terms(p, &tx, step).await? else {
            return Ok(());
        };
        let out = match check_funds(&tx, quote.as_ref()) {
            Ok(out) => out,
            Err(reason) => {
                Self::reject(p, reason, now);
                return Ok(());
            }
        };
        p.amount_out = Some(out.clone());
        let asset = tx.amount_in.as_ref().map(|a| &a.asset);
        let parties = self
            .parties(
                step,
                tx.sender_id.as_deref(),
                tx.receiver_id.as_deref(),
                asset,
            )
            .await?;
        match kyc_gate(&parties.sender, &parties.receiver) {
            Gate::Pay => {
                let receiver = parties.receiver_kyc.ok_or_else(|| {
                    StepError::Transient("the receiver's KYC could not be read".into())
                })?;
                if tx.status == TransactionStatus::PendingCustomerInfoUpdate {
                    self.tell(
                        step,
                        &tx.id,
                        Some("the customer information is complete".into()),
                        TransactionChange::CustomerInfoUpdated {
                            customer_id: parties.receiver.customer_id.clone().unwrap_or_default(),
                            customer_type: parties.receiver.customer_type.clone(),
                        },
                    )
                    .await??;
                }
                let order = Self::order(p, &out, quote.as_ref(), receiver)?;
                p.submit(order, now)
                    .map_err(|e| StepError::Transient(e.to_string()))?;
            }
            Gate::Reject(reason) => Self::reject(p, reason, now),
            Gate::NeedsInfo {
                customer_id,
                customer_type,
            } => {
                if tx.status != TransactionStatus::PendingCustomerInfoUpdate {
                    self.tell(
                        step,
                        &tx.id,
                        Some(format!(
                            "the KYC information of customer {customer_id} ({customer_type}) is incomplete"
                        )),
                        TransactionChange::CustomerInfoNeeded {
                            customer_id,
                            customer_type,
                        },
                    )
                    .await??;
                }
                p.advance(PayoutState::AwaitingKyc, now);
                p.due_at = now + self.config.kyc_recheck;
            }
            // The anchor's own review (PROCESSING) is awaited quietly.
            Gate::Wait => {
                p.advance(PayoutState::AwaitingKyc, now);
                p.due_at = now + self.config.kyc_recheck;
            }
        }
        Ok(())
    }

    /// A party's KYC is awaited: the gate again, on the parties the entry
    /// took from the transaction (no AP read while waiting).
    pub(super) async fn on_awaiting_kyc(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        if p.sender_id.is_none() {
            // Written by an earlier version, which kept no sender: the
            // Received step reads the transaction and takes its parties.
            p.advance(PayoutState::Received, now);
            return Ok(());
        }
        let parties = self.entry_parties(step, p).await?;
        match kyc_gate(&parties.sender, &parties.receiver) {
            // The Received step checks everything again and tells the AP.
            Gate::Pay => p.advance(PayoutState::Received, now),
            Gate::Reject(reason) => Self::reject(p, reason, now),
            Gate::NeedsInfo { .. } | Gate::Wait => {
                p.updated_at = now;
                p.due_at = now + self.config.kyc_recheck;
            }
        }
        Ok(())
    }

    /// An entry an earlier version submitted without freezing its order:
    /// the order is built once from the committed terms and the receiver's
    /// fields, and frozen (committed) before any call.
    async fn freeze_legacy_order(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        let out = p
            .amount_out
            .clone()
            .ok_or_else(|| StepError::Transient("the payout has no amount".into()))?;
        let quote = self.committed_quote(step, p).await?;
        let parties = self.entry_parties(step, p).await?;
        let receiver = parties.receiver_kyc.ok_or_else(|| {
            StepError::Transient("the receiver of a submitted payout is not a customer".into())
        })?;
        p.order = Some(Self::order(p, &out, quote.as_ref(), receiver)?);
        p.submitted_at.get_or_insert(now);
        p.updated_at = now;
        p.due_at = now;
        Ok(())
    }

    /// Whether the payout's outcome has been unknown for longer than the
    /// provider keeps keys. Once the rail gave the payout an id, its status
    /// is asked by that id, not the key, and is followed however long.
    fn past_key_retention(&self, p: &Payout, now: DateTime<Utc>) -> bool {
        p.payout_id.is_none()
            && p.submitted_at
                .is_some_and(|at| now - at > self.config.key_retention)
    }

    /// The payout is at the rail (or may be): send the frozen order again
    /// under its key, or follow the payout the rail made. The claim is
    /// renewed first; the rail is never called under a lost claim.
    pub(super) async fn on_submitted(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        if p.payout_id.is_none() && p.order.is_none() {
            return self.freeze_legacy_order(p, step).await;
        }
        if self.past_key_retention(p, now) {
            // The provider may have forgotten the key: a new request under
            // it could pay a second time.
            return Self::hold(
                p,
                "the payout's outcome stayed unknown for longer than the provider keeps idempotency keys".into(),
                now,
            );
        }
        self.renew(p, step).await?;
        let answer = match (&p.payout_id, &p.order) {
            (Some(id), _) => {
                self.bounded(step, "asking the payout rail", self.parts.rail.status(id))
                    .await
            }
            (None, Some(order)) => {
                self.bounded(
                    step,
                    "calling the payout rail",
                    self.parts.rail.submit(order),
                )
                .await
            }
            (None, None) => return Err(StepError::Transient("no order to send".into())),
        };
        let receipt = match answer {
            Ok(Ok(receipt)) => receipt,
            Ok(Err(RailError::Unknown(m))) | Err(StepError::Transient(m)) => {
                if self.past_key_retention(p, now) {
                    return Self::hold(
                        p,
                        format!(
                            "the payout's outcome stayed unknown for longer than the provider keeps idempotency keys (last: {m})"
                        ),
                        now,
                    );
                }
                return Err(StepError::Transient(m));
            }
            Err(StepError::LostClaim) => return Err(StepError::LostClaim),
            Ok(Err(RailError::Refused(m))) => {
                p.reason = Some(format!("the payout rail refused the order: {m}"));
                p.advance(PayoutState::RailFailed, now);
                return Ok(());
            }
            Ok(Err(RailError::Held(m))) => return Self::hold(p, m, now),
        };
        p.payout_id = Some(receipt.id.clone());
        match receipt.status {
            RailStatus::Completed => p.advance(PayoutState::Confirmed, now),
            RailStatus::Failed(m) => {
                p.reason = Some(format!("the payout failed at the rail: {m}"));
                p.advance(PayoutState::RailFailed, now);
            }
            RailStatus::Pending => {
                if !p.told_pending {
                    // Optional for the AP: a refusal is noted, not retried;
                    // anything else is tried again at the next follow-up.
                    // The rail's answer is saved whatever happens here.
                    let told = self
                        .tell(
                            step,
                            &p.transaction_id,
                            Some("a payout to the receiver has been initiated".into()),
                            TransactionChange::OffchainFundsPending {
                                external_transaction_id: Some(receipt.id),
                            },
                        )
                        .await;
                    if let Ok(Ok(_) | Err(PlatformError::Rejected(_) | PlatformError::NotFound)) =
                        told
                    {
                        p.told_pending = true;
                    }
                }
                p.failures = 0;
                p.last_error = None;
                p.updated_at = now;
                p.due_at = now + self.config.rail_follow;
            }
        }
        Ok(())
    }

    fn hold(p: &mut Payout, reason: String, now: DateTime<Utc>) -> StepResult {
        tracing::warn!(reason = %reason, "payout held for a person");
        p.hold(reason, now)
            .map_err(|e| StepError::Transient(e.to_string()))
    }

    /// Paid: tell the AP `completed` (unless a step before a crash did).
    pub(super) async fn on_confirmed(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        if let Some(tx) = self.fetch(step, &p.transaction_id).await?
            && tx.status == TransactionStatus::Completed
        {
            p.advance(PayoutState::Completed, now);
            return Ok(());
        }
        let change = TransactionChange::OffchainFundsSent {
            external_transaction_id: p.payout_id.clone(),
            funds_sent_at: now,
            amount_out: p.amount_out.clone(),
        };
        match self
            .tell(
                step,
                &p.transaction_id,
                Some(self.config.completion_message.clone()),
                change,
            )
            .await?
        {
            Ok(_) => p.advance(PayoutState::Completed, now),
            Err(PlatformError::Rejected(m)) => match self.fetch(step, &p.transaction_id).await? {
                // Told before a crash, or a retry whose first try landed.
                Some(tx) if tx.status == TransactionStatus::Completed => {
                    p.advance(PayoutState::Completed, now);
                }
                _ => return Err(StepError::Transient(m)),
            },
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Tell the AP `error`: the reason of a rejection (Mooring's own
    /// words), or a fixed message and a reference for a rail failure.
    pub(super) async fn on_error(
        &self,
        p: &mut Payout,
        step: &mut Step<'_>,
        next: PayoutState,
    ) -> StepResult {
        let now = step.now;
        let message = if next == PayoutState::Failed {
            rail_failure_message(p)
        } else {
            p.reason
                .clone()
                .unwrap_or_else(|| "the payout could not be made".into())
        };
        match self
            .tell(
                step,
                &p.transaction_id,
                Some(message),
                TransactionChange::Error,
            )
            .await?
        {
            Ok(_) => p.advance(next, now),
            Err(PlatformError::Rejected(m)) => match self.fetch(step, &p.transaction_id).await? {
                Some(tx) if tx.status == TransactionStatus::Error => p.advance(next, now),
                Some(tx) if tx.status.is_final() || tx.status == TransactionStatus::Expired => {
                    p.advance(PayoutState::Closed, now);
                }
                _ => return Err(StepError::Transient(m)),
            },
            Err(PlatformError::NotFound) => p.advance(PayoutState::Closed, now),
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// The operator's retry: the AP's transaction leaves `error`.
    pub(super) async fn on_recovering(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        let tx = self
            .fetch(step, &p.transaction_id)
            .await?
            .ok_or_else(|| StepError::Transient("the AP does not know this transaction".into()))?;
        if tx.status == TransactionStatus::Error {
            self.tell(
                step,
                &p.transaction_id,
                Some("the anchor is trying the payout again".into()),
                TransactionChange::Recover,
            )
            .await??;
        }
        p.clear_attempt();
        p.advance(PayoutState::Received, now);
        Ok(())
    }

    /// The operator returned the funds: tell the AP `refunded`.
    pub(super) async fn on_refunding(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        let tx = self
            .fetch(step, &p.transaction_id)
            .await?
            .ok_or_else(|| StepError::Transient("the AP does not know this transaction".into()))?;
        if tx.status == TransactionStatus::Refunded {
            p.advance(PayoutState::Refunded, now);
            return Ok(());
        }
        let received = tx
            .amount_in
            .clone()
            .or_else(|| p.amount_in.clone())
            .ok_or_else(|| {
                StepError::Transient("the transaction has no amount_in to refund".into())
            })?;
        // The AP takes a refund only from pending_receiver. A transaction
        // waiting for customer info (a refund of `awaiting_kyc`) leaves it
        // through error and recovery. Each move is read back from the
        // status after a crash, so none is repeated.
        let mut status = tx.status.clone();
        if status == TransactionStatus::PendingCustomerInfoUpdate {
            self.tell(
                step,
                &p.transaction_id,
                Some("the anchor is refunding the sender".into()),
                TransactionChange::Error,
            )
            .await??;
            status = TransactionStatus::Error;
        }
        if matches!(
            status,
            TransactionStatus::Error | TransactionStatus::Expired
        ) {
            self.tell(
                step,
                &p.transaction_id,
                Some("the anchor is refunding the sender".into()),
                TransactionChange::Recover,
            )
            .await??;
        }
        let reference = p
            .refund_reference
            .clone()
            .ok_or_else(|| StepError::Transient("the refund has no reference".into()))?;
        self.tell(
            step,
            &p.transaction_id,
            Some("the funds were returned to the sender".into()),
            TransactionChange::RefundSent {
                reference,
                fee: Amount::new(Decimal::ZERO, received.asset.clone()),
                amount: received,
                refunded_at: now,
            },
        )
        .await??;
        p.advance(PayoutState::Refunded, now);
        Ok(())
    }
}
