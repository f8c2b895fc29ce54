//! `mooring payouts …`: the payouts that need a person (list, show, retry,
//! settle, refund), each action in the audit trail.

use clap::Subcommand;
use mooring_domain::payout::{Payout, PayoutState};
use mooring_domain::transaction::{Amount, TransactionId};
use mooring_usecases::{RetryMode, Settlement};

use crate::Settings;
use crate::startup::{deposit_service, kyc_service, open_store, payout_engine, quote_service};

use super::operator;
use super::quotes::short_asset;

#[derive(Debug, Subcommand)]
pub enum PayoutsCommand {
    /// The newest payouts, with a count per state
    List {
        /// e.g. --state failed --state rejected
        #[arg(long = "state")]
        states: Vec<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One payout in full (ID is the AP transaction id)
    Show { id: String },
    /// Another attempt: a held payout is sent again under the same key with
    /// its frozen order; a rejection is checked again; a step waiting out its
    /// backoff runs now
    Retry {
        id: String,
        /// Pay under a new idempotency key, once the rail has confirmed that
        /// the payout under the old one failed (a failed or held payout)
        #[arg(long)]
        new_attempt: bool,
    },
    /// Settle a held payout with what the provider says, when the rail
    /// itself cannot: --paid ID (the payout exists; it is followed by that
    /// id and completed when the rail says so) or --not-paid (no payout was
    /// made; the AP is told error, then retry --new-attempt or refund)
    Settle {
        id: String,
        /// The provider's id of the payout it made
        #[arg(
            long,
            conflicts_with = "not_paid",
            required_unless_present = "not_paid"
        )]
        paid: Option<String>,
        /// The provider confirms no payout was made
        #[arg(long)]
        not_paid: bool,
    },
    /// Record that the sender's funds were returned (only where no payout
    /// exists); the AP is told the transaction is refunded
    Refund {
        id: String,
        /// The refund's Stellar transaction hash
        #[arg(long)]
        reference: String,
    },
}

pub(super) async fn payouts(command: PayoutsCommand, settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings, settings.database.auto_migrate).await?;
    let kyc = kyc_service(&settings, store.clone())?;
    let quotes = quote_service(&settings, store.clone())?;
    let deposits = deposit_service(&settings, store.clone())?;
    let engine = payout_engine(&settings, store, kyc, quotes, deposits)?;
    let parse = |id: &str| TransactionId::parse(id).map_err(|e| anyhow::anyhow!("{e}: {id:?}"));
    let amount = |a: &Option<Amount>| {
        a.as_ref().map_or("-".to_owned(), |a| {
            format!("{} {}", a.amount, short_asset(a.asset.as_str()))
        })
    };
    let show = |p: &Payout| {
        let at =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let or = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
        println!("transaction:      {}", p.transaction_id);
        println!("state:            {}", p.state());
        println!(
            "attempt:          {} (idempotency key {})",
            p.attempt,
            p.idempotency_key()
        );
        println!("amount_in:        {}", amount(&p.amount_in));
        println!("amount_out:       {}", amount(&p.amount_out));
        println!("quote:            {}", or(&p.quote_id));
        println!("sender:           {}", or(&p.sender_id));
        println!("receiver:         {}", or(&p.receiver_id));
        println!(
            "order:            {}",
            match p.at_rail() {
                Some(r) => match &r.order {
                    Some(o) => format!(
                        "frozen {} ({} {}, {} receiver field(s))",
                        at(r.submitted_at),
                        o.amount,
                        short_asset(&o.asset),
                        o.receiver_fields.len()
                    ),
                    None => format!("submitted {} (to be frozen)", at(r.submitted_at)),
                },
                None => "-".into(),
            }
        );
        println!("rail payout id:   {}", p.payout_id().unwrap_or("-"));
        println!("reason:           {}", p.reason().unwrap_or("-"));
        println!(
            "last error:       {} ({} failure(s) in a row)",
            or(&p.last_error),
            p.failures
        );
        println!("refund reference: {}", p.refund_reference().unwrap_or("-"));
        println!("created:          {}", at(p.created_at));
        println!("updated:          {}", at(p.updated_at));
        println!("next step due:    {}", at(p.due_at));
    };
    match command {
        PayoutsCommand::List { states, limit } => {
            let states = states
                .iter()
                .map(|s| {
                    PayoutState::parse(s).ok_or_else(|| {
                        let known: Vec<_> = PayoutState::ALL.iter().map(|s| s.as_str()).collect();
                        anyhow::anyhow!("unknown state {s:?}; known: {}", known.join(", "))
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let counts = engine.counts().await?;
            let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{s}: {n}")).collect();
            println!(
                "by state: {}",
                if summary.is_empty() {
                    "-".into()
                } else {
                    summary.join(", ")
                }
            );
            println!(
                "{:<36}  {:<14}  {:>20}  {:<20}  reason / last error",
                "transaction", "state", "amount_out", "rail payout id"
            );
            for p in engine.list(&states, limit.max(1)).await? {
                println!(
                    "{:<36}  {:<14}  {:>20}  {:<20}  {}",
                    p.transaction_id,
                    p.state().as_str(),
                    amount(&p.amount_out),
                    p.payout_id().unwrap_or("-"),
                    p.reason().or(p.last_error.as_deref()).unwrap_or("")
                );
            }
        }
        PayoutsCommand::Show { id } => show(&engine.get(&parse(&id)?).await?),
        PayoutsCommand::Retry { id, new_attempt } => {
            let mode = if new_attempt {
                RetryMode::NewAttempt
            } else {
                RetryMode::SameKey
            };
            let p = engine.retry(&parse(&id)?, mode, &operator()).await?;
            println!("retry scheduled; a running server takes it up now");
            show(&p);
        }
        PayoutsCommand::Settle { id, paid, not_paid } => {
            let settlement = match paid {
                Some(payout_id) if !not_paid => Settlement::Paid { payout_id },
                _ => Settlement::NotPaid,
            };
            let p = engine.settle(&parse(&id)?, settlement, &operator()).await?;
            println!("settlement recorded; a running server takes it up now");
            show(&p);
        }
        PayoutsCommand::Refund { id, reference } => {
            let p = engine.refund(&parse(&id)?, &reference, &operator()).await?;
            println!("refund recorded; a running server tells the AP");
            show(&p);
        }
    }
    Ok(())
}
