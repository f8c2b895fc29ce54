//! What may be paid: the transaction's quote taken, both parties' KYC
//! through the gate, and the payout's order built from the committed terms.

use mooring_domain::AssetId;
use mooring_domain::customer::CustomerId;
use mooring_domain::payout::{KycVerdict, Party, Payout, PayoutOrder, decide};
use mooring_domain::quote::{Quote, QuoteId};
use mooring_domain::transaction::{Amount, Transaction, TransactionId};

use super::{PayoutEngine, Step, StepError};
use crate::{KycError, PartyKyc, QuoteError};

/// Both parties' KYC, and the receiver's values to pay them with.
pub(super) struct Parties {
    pub sender: KycVerdict,
    pub receiver: KycVerdict,
    pub receiver_kyc: Option<PartyKyc>,
}

impl PayoutEngine {
    /// Marks the transaction's quote used by it. `Ok(Err(reason))` when the
    /// quote cannot serve this transaction.
    async fn use_quote(
        &self,
        step: &Step<'_>,
        quote_id: &str,
        id: &TransactionId,
    ) -> Result<Result<Quote, String>, StepError> {
        let Ok(parsed) = QuoteId::parse(quote_id) else {
            return Ok(Err(format!(
                "quote {quote_id} is not a quote of this anchor"
            )));
        };
        let marked = self
            .bounded(
                step,
                "taking the quote",
                self.parts.quotes.mark_used(&parsed, id.as_str()),
            )
            .await?;
        match marked {
            Ok(quote) => Ok(Ok(quote)),
            Err(QuoteError::NotFound) => Ok(Err(format!("quote {quote_id} is unknown"))),
            Err(QuoteError::Expired) => Ok(Err(format!(
                "quote {quote_id} expired before the transaction used it"
            ))),
            Err(QuoteError::AlreadyUsed(_)) => Ok(Err(format!(
                "quote {quote_id} is already used by another transaction"
            ))),
            Err(e) => Err(StepError::Transient(format!(
                "cannot use quote {quote_id}: {e}"
            ))),
        }
    }

    /// Copies the transaction's quote and parties onto the entry and marks
    /// the quote used by it. `Some(quote or none)` to go on; `None` when the
    /// quote cannot serve this transaction and the entry is now rejecting.
    pub(super) async fn take_terms(
        &self,
        p: &mut Payout,
        tx: &Transaction,
        step: &Step<'_>,
    ) -> Result<Option<Option<Quote>>, StepError> {
        p.quote_id.clone_from(&tx.quote_id);
        p.sender_id.clone_from(&tx.sender_id);
        p.receiver_id.clone_from(&tx.receiver_id);
        let Some(q) = &tx.quote_id else {
            return Ok(Some(None));
        };
        match self.use_quote(step, q, &tx.id).await? {
            Ok(quote) => Ok(Some(Some(quote))),
            Err(reason) => {
                p.reject(reason, step.now)?;
                Ok(None)
            }
        }
    }

    /// One party's KYC, assessed against `customer_type`.
    async fn party(
        &self,
        step: &Step<'_>,
        party: Party,
        id: Option<&str>,
        customer_type: &str,
    ) -> Result<(KycVerdict, Option<PartyKyc>), StepError> {
        let mut verdict = KycVerdict {
            party,
            customer_id: id.map(str::to_owned),
            customer_type: customer_type.to_owned(),
            status: None,
        };
        // An id that cannot be a customer's names no customer of this anchor.
        let Some(parsed) = id.and_then(|i| CustomerId::parse(i).ok()) else {
            return Ok((verdict, None));
        };
        let kyc = self
            .bounded(
                step,
                "reading KYC",
                self.parts.kyc.party(&parsed, customer_type),
            )
            .await?
            .map_err(|e| match e {
                KycError::BadRequest(m) => StepError::Transient(m),
                e => StepError::Transient(format!("cannot read the {}'s KYC: {e}", party.as_str())),
            })?;
        verdict.status = kyc.as_ref().map(|k| k.status);
        Ok((verdict, kyc))
    }

    /// Both parties' KYC under the types the AP checks them as, for a
    /// payment in `asset` (the AP assets file's SEP-31 types for it, else
    /// the configured ones).
    pub(super) async fn parties(
        &self,
        step: &Step<'_>,
        sender: Option<&str>,
        receiver: Option<&str>,
        asset: Option<&AssetId>,
    ) -> Result<Parties, StepError> {
        let (sender_type, receiver_type) = self.config.sep31_types.for_asset(asset);
        let (sender, _) = self.party(step, Party::Sender, sender, sender_type).await?;
        let (receiver, receiver_kyc) = self
            .party(step, Party::Receiver, receiver, receiver_type)
            .await?;
        Ok(Parties {
            sender,
            receiver,
            receiver_kyc,
        })
    }

    /// Both parties' KYC for the parties and asset an entry took from its
    /// transaction (no AP read).
    pub(super) async fn entry_parties(
        &self,
        step: &Step<'_>,
        p: &Payout,
    ) -> Result<Parties, StepError> {
        let asset = p.amount_in.as_ref().map(|a| &a.asset);
        self.parties(
            step,
            p.sender_id.as_deref(),
            p.receiver_id.as_deref(),
            asset,
        )
        .await
    }

    /// The order to freeze ([`mooring_domain::payout::decide::order_for`]),
    /// with the receiver's fields as they are now: those the provider is to
    /// get (`payout.http.fields`), or with `minimised` false every one (an
    /// order an earlier version sent whole, which must keep its body under
    /// its key).
    pub(super) fn order(
        &self,
        p: &Payout,
        out: &Amount,
        quote: Option<&Quote>,
        receiver: PartyKyc,
        minimised: bool,
    ) -> Result<PayoutOrder, StepError> {
        let fields = minimised.then_some(&self.config.provider_fields);
        decide::order_for(p, out, quote, receiver.fields, fields).map_err(StepError::Transient)
    }

    /// The committed quote of an entry, read again (for an entry that an
    /// earlier version submitted without freezing its order). Any error is
    /// transient: the order is never built without it.
    pub(super) async fn committed_quote(
        &self,
        step: &Step<'_>,
        p: &Payout,
    ) -> Result<Option<Quote>, StepError> {
        let Some(q) = &p.quote_id else {
            return Ok(None);
        };
        let parsed = QuoteId::parse(q)
            .map_err(|_| StepError::Transient(format!("quote {q} is not a quote id")))?;
        self.bounded(step, "reading the quote", self.parts.quotes.get(&parsed))
            .await?
            .map(Some)
            .map_err(|e| StepError::Transient(format!("cannot read quote {q}: {e}")))
    }
}
