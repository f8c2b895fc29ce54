//! The payment engine's decisions, as pure functions. Each takes what a
//! step read (the AP's transaction, the KYC gate's verdict, the rail's
//! answer, the entry itself) and says the one effect to perform next and
//! the move that follows. The use case reads, performs the effect, applies
//! the move and saves; it decides nothing itself, so every rule of the
//! money path is here, where a test can hold it for every input.

use chrono::{DateTime, Duration, Utc};

use super::{Gate, KycVerdict, Payout, PayoutOrder, Sighting};
use crate::deposit::DepositAddress;
use crate::quote::Quote;
use crate::transaction::{Amount, Transaction, TransactionChange, TransactionStatus};

/// An update for the AP, with its message (the change is boxed: it is
/// large, and decisions are passed by value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tell {
    pub change: Box<TransactionChange>,
    pub message: Option<String>,
}

impl Tell {
    fn new(change: TransactionChange, message: impl Into<String>) -> Self {
        Self {
            change: Box::new(change),
            message: Some(message.into()),
        }
    }
}

fn closed_reason(tx: Option<&Transaction>) -> String {
    match tx {
        None => "the AP does not know this transaction".into(),
        Some(tx) => format!(
            "the AP had the transaction {} with no payout made by Mooring",
            tx.status.as_str()
        ),
    }
}

/// What a `new` entry's step does once it has read the AP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewStep {
    /// Finished at the AP, or unknown to it, with no payout made.
    Close(String),
    /// Funded already: the checks come next.
    Receive,
    /// Not funded yet: the quote is taken (marked used), then the entry
    /// awaits the funds; on AP 3.x+ they are asked for first when the AP
    /// waits for the anchor to (`pending_receiver` with no funds).
    TakeTerms { ask_for_funds: bool },
}

/// The `new` step: `requests_funds` is whether the AP is 3.x+ (it waits
/// for `request_onchain_funds`).
pub fn decide_new(tx: Option<&Transaction>, requests_funds: bool) -> NewStep {
    let Some(t) = tx else {
        return NewStep::Close(closed_reason(None));
    };
    match Sighting::of(t) {
        Some(Sighting::Finished) => NewStep::Close(closed_reason(tx)),
        Some(Sighting::Funded) => NewStep::Receive,
        Some(Sighting::Unfunded) | None => NewStep::TakeTerms {
            ask_for_funds: requests_funds && t.status == TransactionStatus::PendingReceiver,
        },
    }
}

/// What a `received` entry's step does once it has read the AP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceivedStep {
    /// Finished, unknown or not a SEP-31 payment any more; no payout was
    /// submitted, so none was made.
    Close(String),
    /// A stale sighting: not funded after all.
    AwaitFunds,
    /// Funded and open: the amounts, the quote and both parties' KYC are
    /// checked.
    Check,
}

pub fn decide_received(tx: Option<&Transaction>) -> ReceivedStep {
    match tx.map(Sighting::of) {
        Some(Some(Sighting::Funded)) => ReceivedStep::Check,
        Some(Some(Sighting::Unfunded)) => ReceivedStep::AwaitFunds,
        Some(Some(Sighting::Finished) | None) | None => ReceivedStep::Close(closed_reason(tx)),
    }
}

/// What follows the KYC gate in a `received` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateStep {
    /// Both parties ACCEPTED: the order is frozen and submitted. An AP
    /// waiting for customer info is first told it is complete.
    Pay { first: Option<Tell> },
    /// No payout: the AP is to be told `error` with the reason.
    Reject(String),
    /// A party's KYC is awaited. When more information is needed, the AP is
    /// first told whose, unless it already waits for it.
    AwaitKyc { first: Option<Tell> },
}

/// The `received` step past the amount and quote checks. `receiver` is the
/// receiver's verdict (its id and type, for the AP).
pub fn decide_gate(status: &TransactionStatus, gate: Gate, receiver: &KycVerdict) -> GateStep {
    let waiting_for_info = *status == TransactionStatus::PendingCustomerInfoUpdate;
    match gate {
        Gate::Pay => GateStep::Pay {
            first: waiting_for_info.then(|| {
                Tell::new(
                    TransactionChange::CustomerInfoUpdated {
                        customer_id: receiver.customer_id.clone().unwrap_or_default(),
                        customer_type: receiver.customer_type.clone(),
                    },
                    "the customer information is complete",
                )
            }),
        },
        Gate::Reject(reason) => GateStep::Reject(reason),
        Gate::NeedsInfo {
            customer_id,
            customer_type,
        } => GateStep::AwaitKyc {
            first: (!waiting_for_info).then(|| {
                Tell::new(
                    TransactionChange::CustomerInfoNeeded {
                        customer_id: customer_id.clone(),
                        customer_type: customer_type.clone(),
                    },
                    format!(
                        "the KYC information of customer {customer_id} ({customer_type}) is incomplete"
                    ),
                )
            }),
        },
        Gate::Wait => GateStep::AwaitKyc { first: None },
    }
}

/// What an `awaiting_kyc` entry's recheck decides (no AP read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KycRecheck {
    /// Both ACCEPTED, or a party now needs to provide more while the AP is
    /// not known to wait for it (a reviewer rejected one of their fields):
    /// back to `received`, which reads the AP and checks everything again
    /// before paying, or asks the AP for the customer info.
    Received,
    Reject(String),
    /// Still awaited: checked again later.
    Wait,
}

/// `asked`: the AP is known to wait for customer info already
/// ([`crate::payout::Payout::asked_for_info`]).
pub fn decide_kyc_recheck(gate: Gate, asked: bool) -> KycRecheck {
    match gate {
        Gate::Pay => KycRecheck::Received,
        Gate::Reject(reason) => KycRecheck::Reject(reason),
        Gate::NeedsInfo { .. } if !asked => KycRecheck::Received,
        Gate::NeedsInfo { .. } | Gate::Wait => KycRecheck::Wait,
    }
}

/// Whether the payout was first submitted longer ago than the provider
/// keeps keys.
pub fn past_key_retention(p: &Payout, now: DateTime<Utc>, retention: Duration) -> bool {
    p.at_rail()
        .is_some_and(|r| now - r.submitted_at > retention)
}

const FORGOTTEN_KEY: &str =
    "the payout's outcome stayed unknown for longer than the provider keeps idempotency keys";
const ERASED_ORDER: &str = "the receiver was erased while the payout's outcome was unknown: \
     its frozen order cannot be sent again";

/// The call a `submitted` entry's step makes at the rail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RailCall {
    /// An entry an earlier version submitted without freezing its order:
    /// the order is built once and committed before any call.
    FreezeLegacyOrder,
    /// No call: the provider may have forgotten the key, and a request
    /// under it could pay a second time.
    Hold(String),
    /// The rail made the payout: its status, by its id.
    Status(String),
    /// The frozen order, under its key, byte for byte as before.
    Submit,
}

pub fn decide_submitted(p: &Payout, now: DateTime<Utc>, retention: Duration) -> RailCall {
    match (p.payout_id(), p.order()) {
        (Some(id), _) => RailCall::Status(id.to_owned()),
        // Never rebuilt from live KYC: a person settles it.
        (None, None) if p.at_rail().is_some_and(|r| r.order_erased) => {
            RailCall::Hold(ERASED_ORDER.into())
        }
        (None, None) => RailCall::FreezeLegacyOrder,
        // A status read by id is always safe; a request under the key is
        // not once the provider may have forgotten it.
        (None, Some(_)) if past_key_retention(p, now, retention) => {
            RailCall::Hold(FORGOTTEN_KEY.into())
        }
        (None, Some(_)) => RailCall::Submit,
    }
}

/// The rail's answer, as the payout protocol reads it (`docs/payouts.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RailAnswer {
    /// The rail has the payout under this id.
    Made { id: String, outcome: RailOutcome },
    /// Nothing can be concluded (409, 5xx, timeouts, a 404 on a status,
    /// the step's deadline): ask again, the same way.
    Unknown(String),
    /// No payout exists (a 400 on a submission).
    Refused(String),
    /// A person must look (422, 401, 403, any other 4xx).
    Held(String),
}

/// Where a payout the rail made stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RailOutcome {
    Pending,
    Completed,
    Failed(String),
}

/// What a `submitted` entry does with the rail's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RailMove {
    /// Paid: the AP is to be told `completed`.
    Confirm { payout_id: String },
    /// No payout exists, or the rail says it failed: the AP is to be told
    /// `error`.
    Fail {
        payout_id: Option<String>,
        reason: String,
    },
    /// For a person; nothing is failed towards the AP.
    Hold(String),
    /// Under way: followed, the AP told once that it is pending.
    Follow {
        payout_id: String,
        tell_pending: Option<Tell>,
    },
    /// Asked again after the backoff, the same way.
    RetryLater(String),
}

pub fn decide_rail_answer(
    p: &Payout,
    answer: RailAnswer,
    now: DateTime<Utc>,
    retention: Duration,
) -> RailMove {
    match answer {
        RailAnswer::Made { id, outcome } => match outcome {
            RailOutcome::Completed => RailMove::Confirm { payout_id: id },
            RailOutcome::Failed(m) => RailMove::Fail {
                payout_id: Some(id),
                reason: format!("the payout failed at the rail: {m}"),
            },
            RailOutcome::Pending => RailMove::Follow {
                tell_pending: (!p.at_rail().is_some_and(|r| r.told_pending)).then(|| {
                    Tell::new(
                        TransactionChange::OffchainFundsPending {
                            external_transaction_id: Some(id.clone()),
                        },
                        "a payout to the receiver has been initiated",
                    )
                }),
                payout_id: id,
            },
        },
        // Unknown for longer than the provider keeps keys, by key or by id
        // (an id the rail cannot answer for stays unknown for ever): a
        // person looks, the rail's id kept.
        RailAnswer::Unknown(m) if past_key_retention(p, now, retention) => {
            RailMove::Hold(format!("{FORGOTTEN_KEY} (last: {m})"))
        }
        RailAnswer::Unknown(m) => RailMove::RetryLater(m),
        RailAnswer::Refused(m) => RailMove::Fail {
            payout_id: None,
            reason: format!("the payout rail refused the order: {m}"),
        },
        RailAnswer::Held(m) => RailMove::Hold(m),
    }
}

/// What a `confirmed` entry's step does once it has read the AP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmedStep {
    /// The AP has it `completed` already (told before a crash).
    Complete,
    /// Tell the AP the funds were sent.
    Tell(Tell),
}

pub fn decide_confirmed(
    p: &Payout,
    tx: Option<&Transaction>,
    now: DateTime<Utc>,
    message: &str,
) -> ConfirmedStep {
    if tx.is_some_and(|t| t.status == TransactionStatus::Completed) {
        return ConfirmedStep::Complete;
    }
    ConfirmedStep::Tell(Tell::new(
        TransactionChange::OffchainFundsSent {
            external_transaction_id: p.payout_id().map(str::to_owned),
            funds_sent_at: now,
            amount_out: p.amount_out.clone(),
        },
        message,
    ))
}

/// Whether a move the AP refused had landed already (a retry after a crash,
/// or a first try whose answer was lost), by a fresh read.
pub fn landed(tx: Option<&Transaction>, wanted: &TransactionStatus) -> bool {
    tx.is_some_and(|t| t.status == *wanted)
}

/// The AP's `error` for an entry to be failed: the rejection's own reason
/// (Mooring's words, amounts and assets only), or, for a payout the rail
/// refused or failed, a fixed text and a reference, never the provider's
/// words.
pub fn error_tell(p: &Payout, rail_failure: bool) -> Tell {
    let message = if rail_failure {
        format!(
            "the payout to the receiver could not be made (reference {})",
            p.idempotency_key()
        )
    } else {
        p.reason()
            .unwrap_or("the payout could not be made")
            .to_owned()
    };
    Tell::new(TransactionChange::Error, message)
}

/// What a refused `error` tell means, by a fresh read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorRefused {
    /// The AP has it in `error`: told.
    Told,
    /// The AP finished it otherwise (or forgot it): nothing to tell.
    Closed,
    /// Tried again later.
    Retry,
}

pub fn decide_error_refused(tx: Option<&Transaction>) -> ErrorRefused {
    match tx.map(|t| &t.status) {
        Some(TransactionStatus::Error) => ErrorRefused::Told,
        Some(s) if s.is_final() || *s == TransactionStatus::Expired => ErrorRefused::Closed,
        // A read that finds nothing just after a refusal is not trusted
        // to close (a 404 on the tell itself is).
        None | Some(_) => ErrorRefused::Retry,
    }
}

/// The operator's retry: the AP's transaction leaves `error` first.
pub fn decide_recovering(tx: &Transaction) -> Option<Tell> {
    (tx.status == TransactionStatus::Error).then(|| {
        Tell::new(
            TransactionChange::Recover,
            "the anchor is trying the payout again",
        )
    })
}

/// The next move of a refund. The AP takes a refund only from
/// `pending_receiver`: a transaction waiting for customer info leaves it
/// through `error` and recovery, one in `error` (or `expired`) through
/// recovery. Each move is chosen from the AP's status as it is now, so a
/// step resumed after a crash repeats none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundStep {
    /// The AP has it `refunded`.
    Done,
    /// A move towards `pending_receiver`.
    Tell(Tell),
    /// The refund itself: once the AP accepts it, the entry is refunded,
    /// whatever the AP's answer says, so it is never sent twice.
    Refund(Tell),
}

/// `Err` with the reason when the refund cannot be told (no amount, no
/// reference).
pub fn decide_refund(
    p: &Payout,
    tx: &Transaction,
    now: DateTime<Utc>,
) -> Result<RefundStep, String> {
    const REFUNDING: &str = "the anchor is refunding the sender";
    Ok(match tx.status {
        TransactionStatus::Refunded => RefundStep::Done,
        TransactionStatus::PendingCustomerInfoUpdate => {
            RefundStep::Tell(Tell::new(TransactionChange::Error, REFUNDING))
        }
        TransactionStatus::Error | TransactionStatus::Expired => {
            RefundStep::Tell(Tell::new(TransactionChange::Recover, REFUNDING))
        }
        _ => {
            let received = tx
                .amount_in
                .clone()
                .or_else(|| p.amount_in.clone())
                .ok_or("the transaction has no amount_in to refund")?;
            let reference = p
                .refund_reference()
                .ok_or("the refund has no reference")?
                .to_owned();
            RefundStep::Refund(Tell::new(
                TransactionChange::RefundSent {
                    reference,
                    fee: Amount::new(rust_decimal::Decimal::ZERO, received.asset.clone()),
                    amount: received,
                    refunded_at: now,
                },
                "the funds were returned to the sender",
            ))
        }
    })
}

/// The order to freeze for a payout: the amount and asset the funds
/// check gave, the delivery method of the committed quote, and those of
/// the receiver's fields as they are now that the provider is to get for
/// that method (`fields`; `None`: all of them, for an order an earlier
/// version already sent whole under this key), under the entry's key.
/// `Err` with the reason when the entry names no receiver.
pub fn order_for(
    p: &Payout,
    out: &Amount,
    quote: Option<&Quote>,
    receiver_fields: Vec<(String, String)>,
    fields: Option<&super::ProviderFields>,
) -> Result<PayoutOrder, String> {
    let receiver_id = p
        .receiver_id
        .clone()
        .ok_or_else(|| "the payout has no receiver".to_owned())?;
    let delivery_method = quote.and_then(|q| q.buy_delivery_method.clone());
    let receiver_fields = match fields {
        Some(fields) => fields.keep(delivery_method.as_deref(), receiver_fields),
        None => receiver_fields,
    };
    Ok(PayoutOrder {
        idempotency_key: p.idempotency_key(),
        transaction_id: p.transaction_id.as_str().to_owned(),
        amount: out.amount,
        asset: out.asset.as_str().to_owned(),
        delivery_method,
        receiver_id,
        receiver_fields,
    })
}

/// AP 3.x+: the `request_onchain_funds` for a transaction, paid into
/// `address`. The amounts are the transaction's, else its quote's: in is
/// `amount_in`, else the quote's sell side, else `amount_expected`; out is
/// `amount_out`, else the quote's buy side, else the amount in; the fee is
/// the transaction's, else the quote's, else none. `Err` when there is no
/// amount to ask for.
pub fn funds_request(
    tx: &Transaction,
    quote: Option<&Quote>,
    address: DepositAddress,
) -> Result<TransactionChange, String> {
    let amount_in = tx
        .amount_in
        .clone()
        .or_else(|| quote.map(|q| Amount::new(q.priced.sell_amount, q.sell_asset.clone())))
        .or_else(|| tx.amount_expected.clone())
        .ok_or("the transaction has no amount to request")?;
    let amount_out = tx
        .amount_out
        .clone()
        .or_else(|| quote.map(|q| Amount::new(q.priced.buy_amount, q.buy_asset.clone())))
        .unwrap_or_else(|| amount_in.clone());
    let fee = tx
        .fee
        .clone()
        .or_else(|| quote.map(|q| Amount::new(q.priced.fee.total, q.priced.fee.asset.clone())))
        .unwrap_or_else(|| Amount::new(rust_decimal::Decimal::ZERO, amount_in.asset.clone()));
    Ok(TransactionChange::RequestOnchainFunds {
        amount_expected: tx
            .amount_expected
            .clone()
            .unwrap_or_else(|| amount_in.clone()),
        amount_in,
        amount_out,
        fee,
        destination_account: address.account,
        memo: address.memo,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::AssetId;
    use crate::customer::CustomerStatus;
    use crate::payout::{AtRail, Party, PayoutOrder, Stage, kyc_gate};
    use crate::transaction::TransactionId;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("time")
    }

    fn order() -> PayoutOrder {
        PayoutOrder {
            idempotency_key: "t1".into(),
            transaction_id: "t1".into(),
            amount: rust_decimal::Decimal::ONE,
            asset: "iso4217:BRL".into(),
            delivery_method: None,
            receiver_id: "r".into(),
            receiver_fields: vec![],
        }
    }

    fn entry(stage: Stage) -> Payout {
        Payout::new(TransactionId::parse("t1").expect("id"), stage, t0())
    }

    /// A submitted entry: sent at t0, with or without the rail's id.
    fn submitted(payout_id: Option<&str>, told_pending: bool) -> Payout {
        entry(Stage::Submitted(AtRail {
            order: Some(order()),
            submitted_at: t0(),
            payout_id: payout_id.map(str::to_owned),
            told_pending,
            order_erased: false,
        }))
    }

    fn tx(status: TransactionStatus, funded: bool) -> Transaction {
        Transaction {
            id: TransactionId::parse("t1").expect("id"),
            sep: "31".into(),
            kind: Some("receive".into()),
            status,
            amount_expected: None,
            amount_in: None,
            amount_out: None,
            fee: None,
            quote_id: None,
            sender_id: Some("s".into()),
            receiver_id: Some("r".into()),
            started_at: None,
            updated_at: None,
            transfer_received_at: funded.then(t0),
            completed_at: None,
            stellar_transaction_ids: vec![],
            external_transaction_id: None,
            message: None,
            unreadable: vec![],
        }
    }

    const STATUSES: [TransactionStatus; 10] = [
        TransactionStatus::PendingSender,
        TransactionStatus::PendingReceiver,
        TransactionStatus::PendingExternal,
        TransactionStatus::PendingCustomerInfoUpdate,
        TransactionStatus::PendingTransactionInfoUpdate,
        TransactionStatus::PendingStellar,
        TransactionStatus::Completed,
        TransactionStatus::Refunded,
        TransactionStatus::Expired,
        TransactionStatus::Error,
    ];

    const KYC: [Option<CustomerStatus>; 5] = [
        None,
        Some(CustomerStatus::Accepted),
        Some(CustomerStatus::Processing),
        Some(CustomerStatus::NeedsInfo),
        Some(CustomerStatus::Rejected),
    ];

    fn verdict(party: Party, status: Option<CustomerStatus>) -> KycVerdict {
        KycVerdict {
            party,
            customer_id: Some(party.as_str().into()),
            customer_type: format!("sep31-{}", party.as_str()),
            status,
        }
    }

    #[test]
    fn the_new_and_received_steps_follow_the_aps_funds() {
        assert!(matches!(decide_new(None, true), NewStep::Close(_)));
        for status in STATUSES {
            for funded in [false, true] {
                let t = tx(status.clone(), funded);
                let new = decide_new(Some(&t), true);
                let received = decide_received(Some(&t));
                match Sighting::of(&t) {
                    Some(Sighting::Finished) => {
                        assert!(matches!(new, NewStep::Close(_)));
                        assert!(matches!(received, ReceivedStep::Close(_)));
                    }
                    Some(Sighting::Funded) => {
                        assert_eq!(new, NewStep::Receive);
                        assert_eq!(received, ReceivedStep::Check);
                    }
                    Some(Sighting::Unfunded) | None => {
                        // The funds are asked for only where the AP waits.
                        let ask = status == TransactionStatus::PendingReceiver;
                        assert_eq!(new, NewStep::TakeTerms { ask_for_funds: ask }, "{status:?}");
                        assert_ne!(received, ReceivedStep::Check, "{status:?} {funded}");
                    }
                }
                assert_eq!(
                    decide_new(Some(&t), false),
                    match new {
                        NewStep::TakeTerms { .. } => NewStep::TakeTerms {
                            ask_for_funds: false
                        },
                        other => other,
                    },
                    "AP 2.x: never asked for"
                );
            }
        }
    }

    #[test]
    fn only_a_gate_that_pays_pays_and_the_ap_hears_of_info_once() {
        for s in KYC {
            for r in KYC {
                let receiver = verdict(Party::Receiver, r);
                let gate = kyc_gate(&verdict(Party::Sender, s), &receiver);
                for status in STATUSES {
                    let step = decide_gate(&status, gate.clone(), &receiver);
                    let both =
                        s == Some(CustomerStatus::Accepted) && r == Some(CustomerStatus::Accepted);
                    assert_eq!(matches!(step, GateStep::Pay { .. }), both, "{s:?} {r:?}");
                    let waiting = status == TransactionStatus::PendingCustomerInfoUpdate;
                    match step {
                        GateStep::Pay { first } => assert_eq!(first.is_some(), waiting),
                        GateStep::AwaitKyc { first: Some(t) } => {
                            assert!(!waiting, "never asked twice");
                            assert!(matches!(
                                *t.change,
                                TransactionChange::CustomerInfoNeeded { .. }
                            ));
                        }
                        GateStep::AwaitKyc { first: None } | GateStep::Reject(_) => {}
                    }
                    if s == Some(CustomerStatus::Rejected) || r == Some(CustomerStatus::Rejected) {
                        assert!(matches!(
                            decide_gate(&status, gate.clone(), &receiver),
                            GateStep::Reject(_)
                        ));
                        for asked in [false, true] {
                            assert!(matches!(
                                decide_kyc_recheck(gate.clone(), asked),
                                KycRecheck::Reject(_)
                            ));
                        }
                    }
                }
                // Back to `received` to pay, or to ask the AP for the info
                // a party must now provide, once: never while it waits.
                let needs_info = matches!(gate, Gate::NeedsInfo { .. });
                assert_eq!(
                    decide_kyc_recheck(gate.clone(), true) == KycRecheck::Received,
                    both_accepted(s, r)
                );
                assert_eq!(
                    decide_kyc_recheck(gate, false) == KycRecheck::Received,
                    both_accepted(s, r) || needs_info
                );
            }
        }
    }

    fn both_accepted(s: Option<CustomerStatus>, r: Option<CustomerStatus>) -> bool {
        s == Some(CustomerStatus::Accepted) && r == Some(CustomerStatus::Accepted)
    }

    fn answer() -> impl Strategy<Value = RailAnswer> {
        let outcome = prop_oneof![
            Just(RailOutcome::Pending),
            Just(RailOutcome::Completed),
            "[a-z]{0,8}".prop_map(RailOutcome::Failed),
        ];
        prop_oneof![
            ("[A-Z0-9-]{1,8}", outcome).prop_map(|(id, outcome)| RailAnswer::Made { id, outcome }),
            "[a-z ]{0,8}".prop_map(RailAnswer::Unknown),
            "[a-z ]{0,8}".prop_map(RailAnswer::Refused),
            "[a-z ]{0,8}".prop_map(RailAnswer::Held),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the rail answers, and however late: an unknown answer
        /// never fails or pays, a payout is failed only on the rail's word,
        /// held only past the retention or on a held answer, and a known
        /// payout id is never dropped.
        #[test]
        fn the_rail_answer_rule_holds_for_every_answer(
            answer in answer(),
            has_id in any::<bool>(),
            told in any::<bool>(),
            elapsed_s in 0i64..200_000,
            retention_s in 1i64..100_000,
        ) {
            let p = submitted(has_id.then_some("PAY-0"), told);
            let now = t0() + Duration::seconds(elapsed_s);
            let retention = Duration::seconds(retention_s);
            let past = elapsed_s > retention_s;
            let decided = decide_rail_answer(&p, answer.clone(), now, retention);
            match (&answer, &decided) {
                (RailAnswer::Unknown(_), RailMove::Hold(_)) => prop_assert!(past),
                (RailAnswer::Unknown(_), RailMove::RetryLater(_)) => prop_assert!(!past),
                (RailAnswer::Unknown(_), other) => prop_assert!(false, "unknown gave {other:?}"),
                (RailAnswer::Refused(_), RailMove::Fail { payout_id: None, .. }) => {}
                (RailAnswer::Held(_), RailMove::Hold(_)) => {}
                (RailAnswer::Made { id, outcome: RailOutcome::Completed }, RailMove::Confirm { payout_id })
                | (RailAnswer::Made { id, outcome: RailOutcome::Failed(_) }, RailMove::Fail { payout_id: Some(payout_id), .. }) => {
                    prop_assert_eq!(id, payout_id);
                }
                (RailAnswer::Made { id, outcome: RailOutcome::Pending }, RailMove::Follow { payout_id, tell_pending }) => {
                    prop_assert_eq!(id, payout_id);
                    prop_assert_eq!(tell_pending.is_some(), !told, "the AP hears pending once");
                }
                (a, d) => prop_assert!(false, "{a:?} gave {d:?}"),
            }
        }

        /// A request under the key is sent only while the provider keeps
        /// it, and never once the rail gave the payout an id.
        #[test]
        fn a_key_is_used_only_while_the_provider_keeps_it(
            has_id in any::<bool>(),
            elapsed_s in 0i64..200_000,
            retention_s in 1i64..100_000,
        ) {
            let p = submitted(has_id.then_some("PAY-0"), false);
            let call = decide_submitted(&p, t0() + Duration::seconds(elapsed_s), Duration::seconds(retention_s));
            match call {
                RailCall::Submit => prop_assert!(!has_id && elapsed_s <= retention_s),
                RailCall::Hold(_) => prop_assert!(!has_id && elapsed_s > retention_s),
                RailCall::Status(id) => prop_assert!(has_id && id == "PAY-0"),
                RailCall::FreezeLegacyOrder => prop_assert!(false, "the order is frozen"),
            }
        }
    }

    #[test]
    fn the_funds_asked_for_are_the_transactions_and_its_memo_the_custodians() {
        let address = DepositAddress {
            account: crate::StellarAccount::parse(
                "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5",
            )
            .expect("account"),
            memo: Some(crate::Memo::parse("7", Some("id")).expect("memo")),
        };
        let mut t = tx(TransactionStatus::PendingReceiver, false);
        assert!(
            funds_request(&t, None, address.clone()).is_err(),
            "nothing to ask"
        );
        let usdc = Amount::new(
            rust_decimal::Decimal::from(100),
            AssetId::parse("iso4217:BRL").expect("asset"),
        );
        t.amount_expected = Some(usdc.clone());
        match funds_request(&t, None, address).expect("a request") {
            TransactionChange::RequestOnchainFunds {
                amount_in,
                amount_out,
                fee,
                amount_expected,
                memo,
                ..
            } => {
                assert_eq!(
                    (&amount_in, &amount_out, &amount_expected),
                    (&usdc, &usdc, &usdc)
                );
                assert_eq!(fee.amount, rust_decimal::Decimal::ZERO);
                assert_eq!(memo.map(|m| m.value().to_owned()).as_deref(), Some("7"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_legacy_entry_without_an_order_freezes_one_before_any_call() {
        let p = entry(Stage::Submitted(AtRail {
            order: None,
            submitted_at: t0(),
            payout_id: None,
            told_pending: false,
            order_erased: false,
        }));
        assert_eq!(
            decide_submitted(&p, t0(), Duration::hours(1)),
            RailCall::FreezeLegacyOrder
        );
    }

    #[test]
    fn the_ap_hears_a_fixed_message_for_a_rail_failure_and_the_reason_for_a_rejection() {
        let p = entry(Stage::RailFailed {
            payout_id: None,
            reason: "the payout rail refused the order: account 1234 closed".into(),
        });
        let rail = error_tell(&p, true);
        assert_eq!(*rail.change, TransactionChange::Error);
        let message = rail.message.unwrap_or_default();
        assert!(
            message.contains("reference t1") && !message.contains("1234"),
            "{message}"
        );
        let reason = "received 90, but the transaction expects 100";
        let p = entry(Stage::Rejecting {
            reason: reason.into(),
        });
        assert_eq!(error_tell(&p, false).message.as_deref(), Some(reason));
    }

    #[test]
    fn a_refused_move_is_judged_by_a_fresh_read() {
        let done = tx(TransactionStatus::Completed, true);
        assert!(landed(Some(&done), &TransactionStatus::Completed));
        assert!(!landed(None, &TransactionStatus::Completed));
        assert_eq!(
            decide_error_refused(Some(&tx(TransactionStatus::Error, true))),
            ErrorRefused::Told
        );
        assert_eq!(decide_error_refused(Some(&done)), ErrorRefused::Closed);
        assert_eq!(decide_error_refused(None), ErrorRefused::Retry);
        assert_eq!(
            decide_error_refused(Some(&tx(TransactionStatus::PendingReceiver, true))),
            ErrorRefused::Retry
        );
        let p = submitted(Some("PAY-1"), true);
        assert_eq!(
            decide_confirmed(&p, Some(&done), t0(), "sent"),
            ConfirmedStep::Complete
        );
        match decide_confirmed(&p, None, t0(), "sent") {
            ConfirmedStep::Tell(t) => assert!(matches!(
                *t.change,
                TransactionChange::OffchainFundsSent { external_transaction_id: Some(ref id), .. } if id == "PAY-1"
            )),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_refund_reaches_pending_receiver_first_and_repeats_nothing() {
        let p = entry(Stage::Refunding {
            reference: "hash".into(),
            payout_id: None,
            reason: None,
        });
        let mut t = tx(TransactionStatus::PendingCustomerInfoUpdate, true);
        t.amount_in = Some(Amount::new(
            rust_decimal::Decimal::from(100),
            AssetId::parse("iso4217:BRL").expect("asset"),
        ));
        let mut told = vec![];
        // The AP's status after each move, as the AP applies it.
        for _ in 0..5 {
            match decide_refund(&p, &t, t0()).expect("decides") {
                RefundStep::Done => break,
                RefundStep::Refund(tell) => {
                    let TransactionChange::RefundSent { amount, fee, .. } = *tell.change else {
                        panic!("the refund itself");
                    };
                    assert_eq!(amount.amount + fee.amount, rust_decimal::Decimal::from(100));
                    told.push("refunded".to_owned());
                    break;
                }
                RefundStep::Tell(tell) => {
                    t.status = match *tell.change {
                        TransactionChange::Error => TransactionStatus::Error,
                        TransactionChange::Recover => TransactionStatus::PendingReceiver,
                        // The refund itself comes only as `RefundStep::Refund`.
                        ref other => panic!("{other:?}"),
                    };
                    told.push(t.status.as_str().to_owned());
                }
            }
        }
        assert_eq!(told, ["error", "pending_receiver", "refunded"]);
        t.status = TransactionStatus::PendingReceiver;
        t.amount_in = None;
        assert!(
            decide_refund(&p, &t, t0()).is_err(),
            "no refund without an amount"
        );
        assert_eq!(
            decide_recovering(&tx(TransactionStatus::Error, true)).map(|t| *t.change),
            Some(TransactionChange::Recover)
        );
        assert_eq!(
            decide_recovering(&tx(TransactionStatus::PendingReceiver, true)),
            None
        );
    }

    #[test]
    fn an_erased_order_is_never_rebuilt_only_read_by_id_or_held() {
        let erased = |payout_id: Option<&str>| {
            entry(Stage::Submitted(AtRail {
                order: None,
                submitted_at: t0(),
                payout_id: payout_id.map(str::to_owned),
                told_pending: false,
                order_erased: true,
            }))
        };
        let day = Duration::days(1);
        assert_eq!(
            decide_submitted(&erased(None), t0(), day),
            RailCall::Hold(ERASED_ORDER.into())
        );
        assert_eq!(
            decide_submitted(&erased(Some("PAY-1")), t0(), day),
            RailCall::Status("PAY-1".into())
        );
        let mut legacy = erased(None);
        legacy = legacy.clone().restore(Stage::Submitted(AtRail {
            order_erased: false,
            ..legacy.at_rail().cloned().expect("at rail")
        }));
        assert_eq!(
            decide_submitted(&legacy, t0(), day),
            RailCall::FreezeLegacyOrder
        );
    }
}
