//! `mooring audit list`: the audit trail, filtered by customer, transaction
//! and time.

use clap::Subcommand;
use mooring_domain::customer::CustomerId;
use mooring_domain::transaction::TransactionId;
use mooring_ports::AuditQuery;

use crate::Settings;
use crate::startup::{audit_trail, open_store};

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
pub(super) async fn audit(command: AuditCommand, settings: Settings) -> anyhow::Result<()> {
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
        limit,
        ..AuditQuery::default()
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
