//! One step of an entry per state: read what is needed, ask the domain
//! (`mooring_domain::payout::decide`) what to do, perform that one effect,
//! and apply the move it named (saved by the caller). No rule of the money
//! path is decided here.

use chrono::{DateTime, Utc};
use mooring_domain::payout::decide::{
    self, ConfirmedStep, ErrorRefused, GateStep, KycRecheck, NewStep, RailAnswer, RailCall,
    RailMove, RailOutcome, ReceivedStep, RefundStep, Tell,
};
use mooring_domain::payout::{Payout, PayoutState, check_funds, kyc_gate};
use mooring_domain::quote::Quote;
use mooring_domain::transaction::{Transaction, TransactionStatus};
use mooring_ports::{PlatformError, RailError, RailReceipt, RailStatus};

use super::{PayoutEngine, Step, StepError, StepResult};

/// The rail's answer as the domain reads it (the port's types stay here).
fn rail_answer(
    answer: Result<Result<RailReceipt, RailError>, StepError>,
) -> Result<RailAnswer, StepError> {
    Ok(match answer {
        Ok(Ok(receipt)) => RailAnswer::Made {
            id: receipt.id,
            outcome: match receipt.status {
                RailStatus::Pending => RailOutcome::Pending,
                RailStatus::Completed => RailOutcome::Completed,
                RailStatus::Failed(m) => RailOutcome::Failed(m),
            },
        },
        Ok(Err(RailError::Unknown(m))) | Err(StepError::Transient(m)) => RailAnswer::Unknown(m),
        Ok(Err(RailError::Refused(m))) => RailAnswer::Refused(m),
        Ok(Err(RailError::Held(m))) => RailAnswer::Held(m),
        Err(StepError::LostClaim) => return Err(StepError::LostClaim),
    })
}

impl PayoutEngine {
    /// Tells the AP; a refusal is the caller's to judge.
    async fn tell_ap(
        &self,
        step: &Step<'_>,
        p: &Payout,
        tell: Tell,
    ) -> Result<Result<Transaction, PlatformError>, StepError> {
        self.tell(step, &p.transaction_id, tell.message, *tell.change)
            .await
    }

    /// Seen before its funds (or seen finished, to be read again): claim
    /// the quote, ask for the funds on AP 3.x+.
    pub(super) async fn on_new(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        let tx = self.fetch(step, &p.transaction_id).await?;
        match decide::decide_new(tx.as_ref(), self.config.request_funds) {
            NewStep::Close(reason) => p.close(reason, now)?,
            NewStep::Receive => p.receive(now)?,
            NewStep::TakeTerms { ask_for_funds } => {
                let tx = tx.ok_or_else(|| StepError::Transient("no transaction".into()))?;
                let Some(quote) = self.take_terms(p, &tx, step).await? else {
                    return Ok(());
                };
                if ask_for_funds {
                    self.request_funds(step, &tx, quote.as_ref()).await?;
                }
                p.await_funds(now)?;
            }
        }
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
        let change = decide::funds_request(tx, quote, address).map_err(StepError::Transient)?;
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
        let tx = self.fetch(step, &p.transaction_id).await?;
        let tx = match (decide::decide_received(tx.as_ref()), tx) {
            (ReceivedStep::Check, Some(tx)) => tx,
            (ReceivedStep::AwaitFunds, _) => return Ok(p.await_funds(now)?),
            (ReceivedStep::Close(reason), _) => return Ok(p.close(reason, now)?),
            (ReceivedStep::Check, None) => {
                return Err(StepError::Transient("no transaction".into()));
            }
        };
        p.amount_in.clone_from(&tx.amount_in);
        let Some(quote) = self.take_terms(p, &tx, step).await? else {
            return Ok(());
        };
        let out = match check_funds(&tx, quote.as_ref()) {
            Ok(out) => out,
            Err(reason) => return Ok(p.reject(reason, now)?),
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
        let gate = kyc_gate(&parties.sender, &parties.receiver);
        match decide::decide_gate(&tx.status, gate, &parties.receiver) {
            GateStep::Pay { first } => {
                let receiver = parties.receiver_kyc.ok_or_else(|| {
                    StepError::Transient("the receiver's KYC could not be read".into())
                })?;
                if let Some(tell) = first {
                    self.tell_ap(step, p, tell).await??;
                }
                let order = self.order(p, &out, quote.as_ref(), receiver, true)?;
                // Over the approval limit: frozen, and nothing sent until an
                // operator releases it (docs/payouts.md).
                if self.config.needs_approval(&out) {
                    p.await_approval(order, now)?;
                } else {
                    p.submit(order, now)?;
                }
            }
            GateStep::Reject(reason) => p.reject(reason, now)?,
            GateStep::AwaitKyc { first } => {
                let recheck = now + self.config.kyc_recheck;
                if let Some(tell) = first {
                    self.tell_ap(step, p, tell).await??;
                    p.await_info(now, recheck)?;
                } else if tx.status == TransactionStatus::PendingCustomerInfoUpdate {
                    p.await_info(now, recheck)?;
                } else {
                    p.await_kyc(now, recheck)?;
                }
            }
        }
        Ok(())
    }

    /// A party's KYC is awaited: the gate again, on the parties the entry
    /// took from the transaction (no AP read while waiting). A party who
    /// must now provide more (a reviewer rejected one of their fields) while
    /// the AP is not known to wait for it sends the entry back to
    /// `received`, which reads the AP and asks it for the info.
    pub(super) async fn on_awaiting_kyc(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        if p.sender_id.is_none() {
            // Written by an earlier version, which kept no sender: the
            // Received step reads the transaction and takes its parties.
            return Ok(p.receive(now)?);
        }
        let parties = self.entry_parties(step, p).await?;
        let gate = kyc_gate(&parties.sender, &parties.receiver);
        match decide::decide_kyc_recheck(gate, p.asked_for_info()) {
            KycRecheck::Received => p.receive(now)?,
            KycRecheck::Reject(reason) => p.reject(reason, now)?,
            KycRecheck::Wait => p.await_kyc(now, now + self.config.kyc_recheck)?,
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
        // Sent whole by an earlier version under this key: frozen whole, so
        // that the retry's body is the one the provider already has.
        let order = self.order(p, &out, quote.as_ref(), receiver, false)?;
        Ok(p.freeze_order(order, now)?)
    }

    /// The payout is at the rail (or may be): send the frozen order again
    /// under its key, or follow the payout the rail made. The claim is
    /// renewed first; the rail is never called under a lost claim.
    pub(super) async fn on_submitted(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        let retention = self.config.key_retention;
        let answer = match decide::decide_submitted(p, now, retention) {
            RailCall::FreezeLegacyOrder => return self.freeze_legacy_order(p, step).await,
            RailCall::Hold(reason) => return Self::hold(p, reason, now),
            RailCall::Status(id) => {
                self.renew(p, step).await?;
                self.bounded(step, "asking the payout rail", self.parts.rail.status(&id))
                    .await
            }
            RailCall::Submit => {
                self.renew(p, step).await?;
                let order = p
                    .order()
                    .ok_or_else(|| StepError::Transient("no order to send".into()))?;
                self.bounded(
                    step,
                    "calling the payout rail",
                    self.parts.rail.submit(order),
                )
                .await
            }
        };
        match decide::decide_rail_answer(p, rail_answer(answer)?, now, retention) {
            RailMove::Confirm { payout_id } => p.paid(payout_id, now)?,
            RailMove::Fail { payout_id, reason } => p.rail_failed(payout_id, reason, now)?,
            RailMove::Hold(reason) => return Self::hold(p, reason, now),
            RailMove::RetryLater(m) => return Err(StepError::Transient(m)),
            RailMove::Follow {
                payout_id,
                tell_pending,
            } => {
                let mut told_pending = false;
                if let Some(tell) = tell_pending {
                    // Optional for the AP: a refusal is noted, not retried;
                    // anything else is tried again at the next follow-up.
                    // The rail's answer is saved whatever happens here.
                    let told = self.tell_ap(step, p, tell).await;
                    told_pending = matches!(
                        told,
                        Ok(Ok(_) | Err(PlatformError::Rejected(_) | PlatformError::NotFound))
                    );
                }
                p.follow(payout_id, told_pending, now, now + self.config.rail_follow)?;
            }
        }
        Ok(())
    }

    fn hold(p: &mut Payout, reason: String, now: DateTime<Utc>) -> StepResult {
        tracing::warn!(reason = %reason, "payout held for a person");
        Ok(p.hold(reason, now)?)
    }

    /// Paid: tell the AP `completed` (unless a step before a crash did).
    /// Right after the rail's answer was saved in this run, nobody can have
    /// told it yet, and the AP is not read first.
    pub(super) async fn on_confirmed(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        let tx = if step.entered {
            None
        } else {
            self.fetch(step, &p.transaction_id).await?
        };
        let tell =
            match decide::decide_confirmed(p, tx.as_ref(), now, &self.config.completion_message) {
                ConfirmedStep::Complete => {
                    p.complete(now)?;
                    return Ok(());
                }
                ConfirmedStep::Tell(tell) => tell,
            };
        match self.tell_ap(step, p, tell).await? {
            Ok(_) => p.complete(now)?,
            Err(PlatformError::Rejected(m)) => {
                // Told before a crash, or a retry whose first try landed.
                let read = self.fetch(step, &p.transaction_id).await?;
                if !decide::landed(read.as_ref(), &TransactionStatus::Completed) {
                    return Err(StepError::Transient(m));
                }
                p.complete(now)?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Tell the AP `error`: the reason of a rejection (Mooring's own
    /// words), or a fixed message and a reference for a rail failure.
    pub(super) async fn on_error(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        let tell = decide::error_tell(p, p.state() == PayoutState::RailFailed);
        // Finished at the AP before it heard: closed, with the same reason.
        let closed = p.reason().unwrap_or_default().to_owned();
        match self.tell_ap(step, p, tell).await? {
            Ok(_) => p.told_error(now)?,
            Err(PlatformError::Rejected(m)) => {
                let read = self.fetch(step, &p.transaction_id).await?;
                match decide::decide_error_refused(read.as_ref()) {
                    ErrorRefused::Told => p.told_error(now)?,
                    ErrorRefused::Closed => p.close(closed, now)?,
                    ErrorRefused::Retry => return Err(StepError::Transient(m)),
                }
            }
            Err(PlatformError::NotFound) => p.close(closed, now)?,
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
        if let Some(tell) = decide::decide_recovering(&tx) {
            self.tell_ap(step, p, tell).await??;
        }
        p.receive(now)?;
        Ok(())
    }

    /// The operator returned the funds: tell the AP `refunded`, reaching
    /// `pending_receiver` first where the AP needs it (one move at a time,
    /// each chosen from the AP's answer to the last).
    pub(super) async fn on_refunding(&self, p: &mut Payout, step: &mut Step<'_>) -> StepResult {
        let now = step.now;
        let mut tx = self
            .fetch(step, &p.transaction_id)
            .await?
            .ok_or_else(|| StepError::Transient("the AP does not know this transaction".into()))?;
        // At most error, recovery and the refund (a guard, never reached).
        for _ in 0..4 {
            match decide::decide_refund(p, &tx, now).map_err(StepError::Transient)? {
                RefundStep::Done => {
                    p.refunded(now)?;
                    return Ok(());
                }
                RefundStep::Tell(tell) => tx = self.tell_ap(step, p, tell).await??,
                RefundStep::Refund(tell) => {
                    self.tell_ap(step, p, tell).await??;
                    return Ok(p.refunded(now)?);
                }
            }
        }
        Err(StepError::Transient(format!(
            "the AP's transaction is {} after the refund's moves",
            tx.status.as_str()
        )))
    }
}
