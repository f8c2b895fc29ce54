//! The command line: `mooring [serve]`, `mooring migrate`, `mooring keys
//! rotate`, and the back office's `mooring customers|quotes|platform|payouts
//! |audit …`. Every action on a customer or a payout, and every rotation,
//! is written to the audit trail under the person running the command
//! ([`operator`]).

use std::sync::Arc;

use clap::{Parser, Subcommand};
use mooring_domain::audit::{Actor, AuditAction};
use mooring_domain::customer::CustomerId;
use mooring_domain::payout::{Payout, PayoutState};
use mooring_domain::quote::QuoteId;
use mooring_domain::transaction::{Amount, TransactionId, TransactionStatus};
use mooring_platform::HttpPlatform;
use mooring_ports::{AuditQuery, Order, OrderBy, PlatformClient, SystemClock, TransactionQuery};
use mooring_usecases::{CustomerView, Pruner, RetryMode, Settlement};

use crate::Settings;
use crate::startup::{
    Application, audit_trail, deposit_service, kyc_service, open_store, payout_engine,
    quote_service,
};

#[derive(Debug, Parser)]
#[command(
    name = "mooring",
    version,
    about = "Business server for the Stellar Anchor Platform"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the callback API (the default); migrates first when database.auto_migrate is on
    Serve,
    /// Apply pending database migrations and exit
    Migrate,
    /// Back-office work on customers (KYC)
    #[command(subcommand)]
    Customers(CustomersCommand),
    /// Back-office view of firm quotes and the liquidity they hold
    #[command(subcommand)]
    Quotes(QuotesCommand),
    /// The Anchor Platform's SEP-31 transactions, through its Platform API
    #[command(subcommand)]
    Platform(PlatformCommand),
    /// The payout ledger: what the payment engine did with each transaction
    #[command(subcommand)]
    Payouts(PayoutsCommand),
    /// Print the OpenAPI 3.1 document of Mooring's API (as served at /openapi.json)
    Openapi,
    /// The keys of the customer data
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit trail: who did what to which customer or payout
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Run one retention pass now (a running server does it every
    /// retention.interval_seconds) and print what it removed
    Prune,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest entries first
    List {
        /// Only entries about this customer
        #[arg(long)]
        customer: Option<String>,
        /// Only entries about this payout (the AP transaction id)
        #[arg(long)]
        transaction: Option<String>,
        /// Only entries since then: an RFC 3339 time
        /// (2026-12-01T00:00:00Z) or an age (90m, 24h, 7d)
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-wrap every customer's data key under pii.key, opening them with
    /// pii.previous_keys; in batches, resumable, safe while servers run.
    /// Afterwards the previous keys can be dropped.
    Rotate,
}

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

#[derive(Debug, Subcommand)]
pub enum PlatformCommand {
    /// The newest SEP-31 transactions (by creation), optionally of some statuses
    Transactions {
        /// e.g. --status pending_receiver --status pending_external
        #[arg(long = "status")]
        statuses: Vec<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One transaction
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum QuotesCommand {
    /// The newest firm quotes, and the liquidity reserved per asset
    List {
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One firm quote in full
    Show { id: String },
}

#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// Show a customer's status and which fields they provided (never the values)
    Show { id: String },
    /// Approve a customer under manual review: PROCESSING becomes ACCEPTED
    Approve { id: String },
    /// Reject a customer; the reason is shown to them as the status message
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

/// Runs a command to completion.
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings).await,
        Command::Openapi => {
            print!("{}", mooring_http::openapi_document());
            Ok(())
        }
        Command::Migrate => {
            let store = open_store(&settings, true).await?;
            let pending = store.pending_migrations().await?;
            anyhow::ensure!(pending.is_empty(), "migrations still pending: {pending:?}");
            println!("database {} is up to date", settings.database_url()?);
            Ok(())
        }
        Command::Customers(c) => customers(c, settings).await,
        Command::Quotes(c) => quotes(c, settings).await,
        Command::Platform(c) => platform(c, settings).await,
        Command::Payouts(c) => payouts(c, settings).await,
        Command::Keys(KeysCommand::Rotate) => rotate(settings).await,
        Command::Audit(c) => audit(c, settings).await,
        Command::Prune => {
            let store = open_store(&settings, settings.database.auto_migrate).await?;
            let policy = settings.retention()?.policy;
            let pruner = Pruner::new(Arc::new(store), Arc::new(SystemClock), policy);
            let pruned = pruner.prune().await?;
            for (kind, n) in pruned.kinds() {
                println!("{kind}: {n} removed");
            }
            Ok(())
        }
    }
}

/// Who runs this command, for the audit trail: `MOORING_OPERATOR`, else
/// the login name (`USER`, `LOGNAME`); and the host. The CLI's identity is
/// only as strong as access to the shell that runs it (docs/security.md).
pub fn operator() -> Actor {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let name = var("MOORING_OPERATOR")
        .or_else(|| var("USER"))
        .or_else(|| var("LOGNAME"))
        .unwrap_or_else(|| "unknown".into());
    let host = var("HOSTNAME")
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    Actor::operator(&name, &format!("cli@{host}"))
}

/// `--since`: an RFC 3339 time, or an age before now (`90m`, `24h`, `7d`).
fn since(
    text: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let bad = || {
        anyhow::anyhow!("--since {text:?}: give an RFC 3339 time or an age such as 90m, 24h or 7d")
    };
    let (n, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    let age = match unit {
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        "d" => chrono::Duration::try_days(n),
        _ => None,
    }
    .filter(|_| n >= 0)
    .ok_or_else(bad)?;
    now.checked_sub_signed(age).ok_or_else(bad)
}

/// `mooring audit list`.
async fn audit(command: AuditCommand, settings: Settings) -> anyhow::Result<()> {
    let AuditCommand::List {
        customer,
        transaction,
        since: from,
        limit,
    } = command;
    let store = open_store(&settings, settings.database.auto_migrate).await?;
    let trail = audit_trail(store);
    let query = AuditQuery {
        customer: customer
            .map(|c| CustomerId::parse(&c).map_err(|e| anyhow::anyhow!("{e}: {c:?}")))
            .transpose()?,
        transaction: transaction
            .map(|t| TransactionId::parse(&t).map_err(|e| anyhow::anyhow!("{e}: {t:?}")))
            .transpose()?,
        since: from.map(|s| since(&s, trail.now())).transpose()?,
        before: None,
        limit,
    };
    let records = trail.list(query).await?;
    println!(
        "{:<20}  {:<18}  {:<40}  {:<36}  {:<36}  detail",
        "at", "action", "who", "customer", "transaction"
    );
    for r in &records {
        let e = &r.entry;
        println!(
            "{:<20}  {:<18}  {:<40}  {:<36}  {:<36}  {}",
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            e.action.as_str(),
            e.actor.to_string(),
            e.customer.as_ref().map_or("-", |c| c.as_str()),
            e.transaction.as_ref().map_or("-", |t| t.as_str()),
            e.detail
        );
    }
    eprintln!(
        "{} entr{}",
        records.len(),
        if records.len() == 1 { "y" } else { "ies" }
    );
    Ok(())
}

/// `mooring keys rotate`: batches until no data key is left under another
/// key, with a progress bar on a terminal (a line per batch otherwise).
async fn rotate(settings: Settings) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let store = open_store(&settings, settings.database.auto_migrate).await?;
    let terminal = std::io::stderr().is_terminal();
    let mut done = 0u64;
    loop {
        let step = store.rotate_keys().await?;
        done += step.rewrapped;
        let total = done + step.left;
        if terminal {
            let width = 30usize;
            let filled = (done * width as u64)
                .checked_div(total)
                .map_or(width, |n| usize::try_from(n).unwrap_or(width).min(width));
            eprint!(
                "\r[{}{}] {done}/{total} data keys",
                "#".repeat(filled),
                ".".repeat(width - filled)
            );
            std::io::stderr().flush().ok();
        } else if step.rewrapped > 0 {
            eprintln!("re-wrapped {done} of {total} data keys");
        }
        if step.left == 0 {
            break;
        }
        anyhow::ensure!(
            step.rewrapped > 0,
            "{} data keys could not be re-wrapped (changed while this ran); run it again",
            step.left
        );
    }
    if terminal {
        eprintln!();
    }
    println!(
        "every data key is wrapped by pii.key ({done} re-wrapped); pii.previous_keys can be dropped"
    );
    let trail = audit_trail(store);
    let entry = trail
        .entry(&operator(), AuditAction::KeysRotated)
        .detail(&format!("rewrapped={done}"));
    trail.record(entry).await?;
    Ok(())
}

async fn payouts(command: PayoutsCommand, settings: Settings) -> anyhow::Result<()> {
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

async fn platform(command: PlatformCommand, settings: Settings) -> anyhow::Result<()> {
    let client = HttpPlatform::new(settings.platform()?)?;
    let amount = |a: &Option<Amount>| {
        a.as_ref().map_or("-".to_owned(), |a| {
            format!("{} {}", a.amount, short_asset(a.asset.as_str()))
        })
    };
    match command {
        PlatformCommand::Transactions { statuses, limit } => {
            let query = TransactionQuery {
                order_by: OrderBy::CreatedAt,
                order: Order::Desc,
                statuses: statuses
                    .iter()
                    .map(|s| TransactionStatus::parse(s))
                    .collect(),
                page_number: 0,
                page_size: limit.max(1),
            };
            let page = client.transactions(&query).await?;
            println!(
                "{:<36}  {:<30}  {:>20}  {:>20}",
                "id", "status", "amount_in", "amount_out"
            );
            for t in &page {
                println!(
                    "{:<36}  {:<30}  {:>20}  {:>20}",
                    t.id,
                    t.status.as_str(),
                    amount(&t.amount_in),
                    amount(&t.amount_out)
                );
            }
        }
        PlatformCommand::Show { id } => {
            let id = TransactionId::parse(&id).map_err(|e| anyhow::anyhow!("{e}"))?;
            let t = client.transaction(&id).await?;
            println!("id:                   {}", t.id);
            println!("status:               {}", t.status.as_str());
            println!("amount_expected:      {}", amount(&t.amount_expected));
            println!("amount_in:            {}", amount(&t.amount_in));
            println!("amount_out:           {}", amount(&t.amount_out));
            println!("fee:                  {}", amount(&t.fee));
            println!(
                "quote_id:             {}",
                t.quote_id.as_deref().unwrap_or("-")
            );
            let at = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_owned(), |t| {
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                })
            };
            println!("transfer_received_at: {}", at(t.transfer_received_at));
            println!("completed_at:         {}", at(t.completed_at));
            println!(
                "external id:          {}",
                t.external_transaction_id.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}

async fn quotes(command: QuotesCommand, settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings, settings.database.auto_migrate).await?;
    let quotes = quote_service(&settings, store)?;
    match command {
        QuotesCommand::List { limit } => {
            let list = quotes
                .list(limit)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{:<36}  {:<20}  {:>16}  {:>16}  {:<10}  expires_at",
                "id", "pair", "sell_amount", "buy_amount", "state"
            );
            let now = chrono::Utc::now();
            for q in &list {
                let state = match (&q.used_by, q.expires_at > now) {
                    (Some(_), _) => "used",
                    (None, true) => "reserving",
                    (None, false) => "expired",
                };
                let pair = format!(
                    "{}->{}",
                    short_asset(q.sell_asset.as_str()),
                    short_asset(q.buy_asset.as_str())
                );
                println!(
                    "{:<36}  {:<20}  {:>16}  {:>16}  {:<10}  {}",
                    q.id,
                    pair,
                    q.priced.sell_amount,
                    q.priced.buy_amount,
                    state,
                    q.expires_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                );
            }
            for (asset, reserved, limit) in quotes
                .reservations()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                println!("liquidity: {asset} reserved {reserved} of {limit}");
            }
        }
        QuotesCommand::Show { id } => {
            let id = QuoteId::parse(&id).map_err(|e| anyhow::anyhow!("{e}: {id:?}"))?;
            let q = quotes.get(&id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("id:          {}", q.id);
            println!("pair:        {} -> {}", q.sell_asset, q.buy_asset);
            println!("price:       {}", q.priced.price);
            println!("sell_amount: {}", q.priced.sell_amount);
            println!("buy_amount:  {}", q.priced.buy_amount);
            println!("fee:         {} {}", q.priced.fee.total, q.priced.fee.asset);
            for d in &q.priced.fee.details {
                println!("  {}: {}", d.name, d.amount);
            }
            if let Some(m) = q
                .sell_delivery_method
                .as_ref()
                .or(q.buy_delivery_method.as_ref())
            {
                println!("delivery:    {m}");
            }
            if let Some(c) = &q.client_id {
                println!("client_id:   {c}");
            }
            println!(
                "created_at:  {}",
                q.created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            println!(
                "expires_at:  {}",
                q.expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            match (&q.used_by, q.used_at) {
                (Some(t), Some(at)) => println!(
                    "used_by:     {t} at {}",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                _ => println!("used_by:     -"),
            }
        }
    }
    Ok(())
}

/// `stellar:USDC:G…` as `USDC`, `iso4217:BRL` as `BRL`.
fn short_asset(id: &str) -> &str {
    id.split(':').nth(1).unwrap_or(id)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings).await?;
    let handle = app.handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        handle.stop(true).await;
    });
    app.run_until_stopped().await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn customers(command: CustomersCommand, settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings, settings.database.auto_migrate).await?;
    let kyc = kyc_service(&settings, store)?;
    let parse = |id: &str| CustomerId::parse(id).map_err(|e| anyhow::anyhow!("{e}: {id:?}"));
    let who = operator();
    let view = match command {
        CustomersCommand::Show { id } => kyc.show(&parse(&id)?, &who).await,
        CustomersCommand::Approve { id } => kyc.approve(&parse(&id)?, &who).await,
        CustomersCommand::Reject { id, reason } => kyc.reject(&parse(&id)?, &reason, &who).await,
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    print_view(&view);
    Ok(())
}

fn print_view(view: &CustomerView) {
    let a = &view.assessment;
    if let Some(id) = &view.id {
        println!("id:       {id}");
    }
    println!("status:   {}", a.status.as_str());
    if let Some(message) = &a.message {
        println!("message:  {message}");
    }
    for f in &a.provided {
        let error = f
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        println!("provided: {} {}{error}", f.field.name, f.status.as_str());
    }
    for f in &a.fields {
        println!(
            "missing:  {}{}",
            f.field.name,
            if f.optional { " (optional)" } else { "" }
        );
    }
}
