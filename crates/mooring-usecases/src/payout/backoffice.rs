//! The operator's actions on payouts. Each asks the rail first where a
//! payout may exist, and moves the entry only through
//! [`mooring_ports::PayoutLedger::reopen`], which fences off any claim.

use mooring_domain::audit::{Actor, AuditAction};
use mooring_domain::customer::CustomerId;
use mooring_domain::payout::{IllegalMove, Payout, PayoutState};
use mooring_domain::transaction::TransactionId;
use mooring_ports::{LedgerError, OperatorEdit, RailStatus};

use super::{EngineError, PayoutEngine};

/// What the operator found out from the provider about a held payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The payout exists, under the provider's id.
    Paid { payout_id: String },
    /// No payout was made.
    NotPaid,
}

/// How an operator's retry treats the idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMode {
    /// The same key and the same frozen order: follow the rail's answer.
    SameKey,
    /// A new key (`<id>:attempt-N`): only once the rail has confirmed that
    /// the payout under the old key failed.
    NewAttempt,
}

/// An operator's id or hash as the audit trail keeps it: as given when it
/// is a token (letters, digits, `-_.:`, at most 128), else only its length,
/// so that no free text a person typed lands in the trail.
fn token(text: &str) -> String {
    let text = text.trim();
    if !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        text.to_owned()
    } else {
        format!("<{} characters, not a token>", text.chars().count())
    }
}

/// Refuses an action meant for `attempt` on an entry that moved on.
fn on_attempt(p: &Payout, attempt: Option<u32>) -> Result<(), EngineError> {
    match attempt {
        Some(a) if a != p.attempt => Err(EngineError::BadRequest(format!(
            "the payout moved on to attempt {} since attempt {a} was asked about; ask again",
            p.attempt
        ))),
        _ => Ok(()),
    }
}

/// The edit, applied only to the attempt the rail was asked about: under
/// the row lock, the entry must still carry the attempt and payout id that
/// the rail's answer was about (another operator's action, or a step, may
/// have moved it on between the read and the write).
fn on_checked(p: &Payout, edit: OperatorEdit) -> OperatorEdit {
    let attempt = p.attempt;
    let payout_id = p.payout_id().map(str::to_owned);
    Box::new(move |now_p: &mut Payout| {
        if now_p.attempt != attempt || now_p.payout_id() != payout_id.as_deref() {
            return Err(IllegalMove {
                from: now_p.state(),
                to: now_p.state(),
            });
        }
        edit(now_p)
    })
}

impl PayoutEngine {
    pub async fn get(&self, id: &TransactionId) -> Result<Payout, EngineError> {
        self.parts
            .ledger
            .get(id)
            .await?
            .ok_or(EngineError::Ledger(LedgerError::NotFound))
    }

    pub async fn list(
        &self,
        states: &[PayoutState],
        limit: u32,
    ) -> Result<Vec<Payout>, EngineError> {
        Ok(self.parts.ledger.list(states, limit).await?)
    }

    /// The entry's timeline, oldest first.
    pub async fn history(
        &self,
        id: &TransactionId,
    ) -> Result<Vec<mooring_ports::PayoutChange>, EngineError> {
        Ok(self.parts.ledger.history(id).await?)
    }

    pub async fn counts(&self) -> Result<Vec<(PayoutState, u64)>, EngineError> {
        Ok(self.parts.ledger.counts().await?)
    }

    /// Whether the rail confirms that the payout under the entry's current
    /// key failed. A refusal (no payout id) was the rail's own answer that
    /// no payout exists; a payout it made is asked about now.
    async fn rail_confirms_failure(&self, p: &Payout) -> Result<(), EngineError> {
        let Some(id) = p.payout_id() else {
            return match p.state() {
                PayoutState::Failed => Ok(()),
                _ => Err(EngineError::BadRequest(
                    "the rail has not confirmed that this payout failed (it made no payout id known); settle it with the provider first".into(),
                )),
            };
        };
        match self.parts.rail.status(id).await {
            Ok(receipt) => match receipt.status {
                RailStatus::Failed(_) => Ok(()),
                RailStatus::Pending | RailStatus::Completed => {
                    Err(EngineError::BadRequest(format!(
                        "the rail says payout {id} is {}; it is not paid again",
                        if receipt.status == RailStatus::Pending {
                            "pending"
                        } else {
                            "completed"
                        }
                    )))
                }
            },
            Err(e) => Err(EngineError::BadRequest(format!(
                "the rail could not confirm that payout {id} failed: {e}"
            ))),
        }
    }

    /// Another attempt.
    ///
    /// - A held payout is sent again under the same key with its frozen
    ///   order, and the rail's answer is followed; with
    ///   [`RetryMode::NewAttempt`], once the rail confirms the payout
    ///   failed, the checks run again for a new key.
    /// - A failed payout (the AP has `error`) gets a new key only with
    ///   [`RetryMode::NewAttempt`], after the rail confirms the failure; the
    ///   AP's transaction leaves `error`.
    /// - A rejection (no payout was ever made) is checked again.
    /// - A step waiting out its backoff is due now.
    pub async fn retry(
        &self,
        id: &TransactionId,
        mode: RetryMode,
        actor: &Actor,
    ) -> Result<Payout, EngineError> {
        self.retry_on(id, mode, None, actor).await
    }

    /// [`Self::retry`], only on `attempt` when it is named (a request asked
    /// about that attempt): checked on the entry read, which the edit then
    /// requires under the row lock.
    pub async fn retry_on(
        &self,
        id: &TransactionId,
        mode: RetryMode,
        attempt: Option<u32>,
        actor: &Actor,
    ) -> Result<Payout, EngineError> {
        let p = self.get(id).await?;
        on_attempt(&p, attempt)?;
        let now = self.now();
        let from = p.state();
        let edit: OperatorEdit = match (from, mode) {
            (PayoutState::Held, RetryMode::SameKey) => Box::new(move |p| p.resubmit(None, now)),
            (PayoutState::Held, RetryMode::NewAttempt) => {
                self.rail_confirms_failure(&p).await?;
                on_checked(&p, Box::new(move |p| p.new_attempt(now)))
            }
            (PayoutState::Failed, RetryMode::SameKey) => {
                return Err(EngineError::BadRequest(
                    "the rail failed this payout; the same key would fail again: retry with --new-attempt to pay under a new key".into(),
                ));
            }
            (PayoutState::Failed, RetryMode::NewAttempt) => {
                self.rail_confirms_failure(&p).await?;
                on_checked(&p, Box::new(move |p| p.recover(true, now)))
            }
            (PayoutState::Rejected, _) => Box::new(move |p| p.recover(false, now)),
            // Only made due: whatever the engine saved meanwhile is kept.
            (s, _) if s.is_active() => Box::new(move |p| {
                p.due_now(now);
                Ok(())
            }),
            (s, _) => return Err(EngineError::Ledger(LedgerError::WrongState(s))),
        };
        let p = self.parts.ledger.reopen(id, &[from], edit).await?;
        tracing::info!(transaction.id = %id, from = %from, to = %p.state(), attempt = p.attempt, "payout retry requested");
        let mode = match mode {
            RetryMode::SameKey => "same_key",
            RetryMode::NewAttempt => "new_attempt",
        };
        self.audited(
            actor,
            AuditAction::PayoutRetried,
            id,
            &p,
            &format!("mode={mode} from={from}"),
        )
        .await?;
        Ok(p)
    }

    /// A held payout with no payout id, settled by the operator with the
    /// provider's word, out of band (the rail could not say, or forgot the
    /// key). A held payout the rail gave an id is followed by that id
    /// (`retry`), never settled by hand.
    ///
    /// - [`Settlement::Paid`]: the provider shows the payout under this id.
    ///   The rail is asked about it first and must know it; the entry then
    ///   follows it like any payout the rail made, and the AP hears
    ///   `completed` once the rail says it is.
    /// - [`Settlement::NotPaid`]: the provider confirms no payout was
    ///   made. The AP is told `error` (a fixed message and a reference);
    ///   the entry is then `failed`, to be retried under a new key
    ///   (`--new-attempt`) or refunded.
    pub async fn settle(
        &self,
        id: &TransactionId,
        settlement: Settlement,
        actor: &Actor,
    ) -> Result<Payout, EngineError> {
        let held = self.get(id).await?;
        if held.state() != PayoutState::Held {
            return Err(EngineError::Ledger(LedgerError::WrongState(held.state())));
        }
        if let Some(known) = held.payout_id() {
            return Err(EngineError::BadRequest(format!(
                "the rail gave this payout the id {known}: it is followed by that id (payouts retry), not settled by hand"
            )));
        }
        let now = self.now();
        let detail = match &settlement {
            Settlement::Paid { payout_id } => format!("paid payout_id={}", token(payout_id)),
            Settlement::NotPaid => "not_paid".to_owned(),
        };
        let edit: OperatorEdit = match settlement {
            Settlement::Paid { payout_id } => {
                let payout_id = payout_id.trim().to_owned();
                if payout_id.is_empty()
                    || payout_id.len() > 256
                    || payout_id.chars().any(char::is_control)
                {
                    return Err(EngineError::BadRequest(
                        "the provider's payout id must be 1 to 256 characters, without control characters".into(),
                    ));
                }
                if let Err(e) = self.parts.rail.status(&payout_id).await {
                    return Err(EngineError::BadRequest(format!(
                        "the rail does not confirm a payout {payout_id}: {e}"
                    )));
                }
                on_checked(&held, Box::new(move |p| p.resubmit(Some(payout_id), now)))
            }
            Settlement::NotPaid => on_checked(
                &held,
                Box::new(move |p| {
                    p.rail_failed(
                        None,
                        "the operator confirmed with the provider that no payout was made".into(),
                        now,
                    )
                }),
            ),
        };
        let p = self
            .parts
            .ledger
            .reopen(id, &[PayoutState::Held], edit)
            .await?;
        tracing::info!(transaction.id = %id, to = %p.state(), "held payout settled by the operator");
        self.audited(actor, AuditAction::PayoutSettled, id, &p, &detail)
            .await?;
        Ok(p)
    }

    /// Records that the operator returned the sender's funds (on Stellar,
    /// `reference` being the transaction hash); the AP is told `refunded`.
    /// Only where no payout exists: rejected, failed (the rail confirmed
    /// it), or awaiting KYC. Refused while a payout may exist (held,
    /// submitted, …).
    pub async fn refund(
        &self,
        id: &TransactionId,
        reference: &str,
        actor: &Actor,
    ) -> Result<Payout, EngineError> {
        self.refund_on(id, reference, None, actor).await
    }

    /// [`Self::refund`], only on `attempt` when it is named (as
    /// [`Self::retry_on`]).
    pub async fn refund_on(
        &self,
        id: &TransactionId,
        reference: &str,
        attempt: Option<u32>,
        actor: &Actor,
    ) -> Result<Payout, EngineError> {
        let reference = reference.trim();
        if reference.is_empty() || reference.len() > 256 {
            return Err(EngineError::BadRequest(
                "the refund reference (the Stellar transaction hash) must be 1 to 256 characters"
                    .into(),
            ));
        }
        let p = self.get(id).await?;
        on_attempt(&p, attempt)?;
        let now = self.now();
        let from = p.state();
        if from.payout_possible() {
            return Err(EngineError::BadRequest(format!(
                "the payout is {from}: a payout may exist at the rail, so the funds are not refunded"
            )));
        }
        if !matches!(
            from,
            PayoutState::Rejected | PayoutState::Failed | PayoutState::AwaitingKyc
        ) {
            return Err(EngineError::Ledger(LedgerError::WrongState(from)));
        }
        // A failed payout the rail made (it has an id): the rail must say
        // now that it failed, or the receiver may be paid and the sender
        // refunded.
        if from == PayoutState::Failed && p.payout_id().is_some() {
            self.rail_confirms_failure(&p).await?;
        }
        let detail = format!("reference={} from={from}", token(reference));
        let reference = reference.to_owned();
        let edit = on_checked(&p, Box::new(move |p| p.refund(reference, now)));
        let p = self.parts.ledger.reopen(id, &[from], edit).await?;
        tracing::info!(transaction.id = %id, from = %from, "refund recorded");
        self.audited(actor, AuditAction::PayoutRefunded, id, &p, &detail)
            .await?;
        Ok(p)
    }

    /// Releases a payout held for approval (over `payout.approval_above`):
    /// its frozen order goes to the rail, unchanged, under its key, in the
    /// engine's next step. Refused unless, read afresh:
    /// - the entry is as the operator saw it (`seen`, its `updated_at`),
    ///   so a stale page never releases an order nobody looked at;
    /// - the AP still has the transaction `pending_receiver` (one it has
    ///   finished is closed here, with nothing paid);
    /// - both parties' KYC is still ACCEPTED (a reviewer may have rejected
    ///   one while it waited).
    ///
    /// Two operators releasing at once: the row lock lets one move it; the
    /// other is told it is no longer awaiting approval. The engine never
    /// claims an entry awaiting approval, so no step races the release.
    pub async fn release_approved(
        &self,
        id: &TransactionId,
        seen: Option<i64>,
        actor: &Actor,
    ) -> Result<Payout, EngineError> {
        let p = self.get(id).await?;
        if p.state() != PayoutState::AwaitingApproval {
            return Err(EngineError::Ledger(LedgerError::WrongState(p.state())));
        }
        let changed = move |q: &Payout| seen.is_some_and(|s| q.updated_at.timestamp_micros() != s);
        if changed(&p) {
            return Err(EngineError::BadRequest(
                "the payout changed since the page was shown; look at it again".into(),
            ));
        }
        if p.order().is_none() {
            return Err(EngineError::BadRequest(
                "the frozen order can no longer be opened (the receiver was erased); decline it"
                    .into(),
            ));
        }
        let tx = match self.parts.platform.transaction(id).await {
            Ok(tx) => Some(tx),
            Err(mooring_ports::PlatformError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let now = self.now();
        match mooring_domain::payout::decide::decide_received(tx.as_ref()) {
            mooring_domain::payout::decide::ReceivedStep::Close(reason) => {
                // The AP finished it while it waited: nothing is paid.
                let edit = on_checked(&p, Box::new(move |q| q.close(reason, now)));
                self.parts
                    .ledger
                    .reopen(id, &[PayoutState::AwaitingApproval], edit)
                    .await?;
                return Err(EngineError::BadRequest(format!(
                    "the AP no longer has this transaction open ({}); it was closed, and nothing was paid",
                    tx.map_or_else(|| "not found".to_owned(), |t| t.status.as_str().to_owned())
                )));
            }
            _ if tx.as_ref().map(|t| &t.status)
                != Some(&mooring_domain::transaction::TransactionStatus::PendingReceiver) =>
            {
                return Err(EngineError::BadRequest(format!(
                    "the AP has this transaction {}, not pending_receiver; it is not released",
                    tx.map_or_else(|| "not found".to_owned(), |t| t.status.as_str().to_owned())
                )));
            }
            _ => {}
        }
        self.parties_still_accepted(&p).await?;
        let edit = on_checked(
            &p,
            Box::new(move |q| {
                if changed(q) {
                    return Err(IllegalMove {
                        from: q.state(),
                        to: PayoutState::Submitted,
                    });
                }
                q.release(now)
            }),
        );
        let p = self
            .parts
            .ledger
            .reopen(id, &[PayoutState::AwaitingApproval], edit)
            .await?;
        tracing::info!(transaction.id = %id, "payout released by an operator");
        let detail = p
            .amount_out
            .as_ref()
            .map(|a| format!("amount={} {}", a.amount, a.asset))
            .unwrap_or_default();
        self.audited(actor, AuditAction::PayoutReleased, id, &p, &detail)
            .await?;
        Ok(p)
    }

    /// Both parties of an entry ACCEPTED now, as the types of its asset.
    async fn parties_still_accepted(&self, p: &Payout) -> Result<(), EngineError> {
        let asset = p.amount_in.as_ref().map(|a| &a.asset);
        let (sender_type, receiver_type) = self.config.sep31_types.for_asset(asset);
        for (who, id, kind) in [
            ("sender", p.sender_id.as_deref(), sender_type),
            ("receiver", p.receiver_id.as_deref(), receiver_type),
        ] {
            let id = id
                .and_then(|i| CustomerId::parse(i).ok())
                .ok_or_else(|| EngineError::BadRequest(format!("the payout names no {who}")))?;
            let kyc = self.parts.kyc.party(&id, kind).await.map_err(|e| {
                EngineError::BadRequest(format!("the {who}'s KYC could not be read: {e}"))
            })?;
            if !kyc.is_some_and(|k| k.status == mooring_domain::customer::CustomerStatus::Accepted)
            {
                return Err(EngineError::BadRequest(format!(
                    "the {who}'s KYC is no longer ACCEPTED; decline the payout, or release it once it is"
                )));
            }
        }
        Ok(())
    }

    /// Declines a payout held for approval: nothing is paid, and the AP is
    /// told `error` with the reason (then the funds can be refunded, as for
    /// any rejected transaction). The reason is for the sender's side and
    /// the audit keeps only that there was one.
    pub async fn decline_approval(
        &self,
        id: &TransactionId,
        reason: &str,
        actor: &Actor,
    ) -> Result<Payout, EngineError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > 500 {
            return Err(EngineError::BadRequest(
                "a decline needs a reason of 1 to 500 characters".into(),
            ));
        }
        let p = self.get(id).await?;
        if p.state() != PayoutState::AwaitingApproval {
            return Err(EngineError::Ledger(LedgerError::WrongState(p.state())));
        }
        let now = self.now();
        let reason = format!("declined by an operator: {reason}");
        let edit = on_checked(&p, Box::new(move |q| q.reject(reason, now)));
        let p = self
            .parts
            .ledger
            .reopen(id, &[PayoutState::AwaitingApproval], edit)
            .await?;
        tracing::info!(transaction.id = %id, "payout declined by an operator");
        self.audited(actor, AuditAction::PayoutDeclined, id, &p, "")
            .await?;
        Ok(p)
    }

    /// A payout's frozen order, values and all, for a person who may read
    /// it: recorded in the audit trail (with the field names) before it is
    /// returned. `None` before an order is frozen.
    pub async fn order_for(
        &self,
        id: &TransactionId,
        actor: &Actor,
    ) -> Result<Option<mooring_domain::payout::PayoutOrder>, EngineError> {
        let p = self.get(id).await?;
        let Some(order) = p.order().cloned() else {
            return Ok(None);
        };
        let names: Vec<&str> = order
            .receiver_fields
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let mut entry = self
            .parts
            .audit
            .entry(actor, AuditAction::PayoutOrderRead)
            .transaction(id)
            .detail(&format!("fields: {}", names.join(",")));
        entry.customer = CustomerId::parse(&order.receiver_id).ok();
        self.parts.audit.record(entry).await?;
        Ok(Some(order))
    }

    /// Records a person's action on a payout, once it is done.
    async fn audited(
        &self,
        actor: &Actor,
        action: AuditAction,
        id: &TransactionId,
        p: &Payout,
        detail: &str,
    ) -> Result<(), EngineError> {
        let audit = &self.parts.audit;
        let mut entry = audit.entry(actor, action).transaction(id).detail(&format!(
            "{detail} to={} attempt={}",
            p.state(),
            p.attempt
        ));
        entry.customer = p
            .receiver_id
            .as_deref()
            .and_then(|r| CustomerId::parse(r).ok());
        Ok(audit.record(entry).await?)
    }
}
