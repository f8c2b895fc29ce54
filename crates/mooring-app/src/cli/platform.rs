//! `mooring platform …`: what the AP's Platform API says, read through the
//! configured client.

use clap::Subcommand;
use mooring_domain::transaction::{Amount, TransactionId, TransactionStatus};
use mooring_platform::HttpPlatform;
use mooring_ports::{Order, OrderBy, PlatformClient, TransactionQuery};

use crate::Settings;

use super::quotes::short_asset;

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

pub(super) async fn platform(command: PlatformCommand, settings: Settings) -> anyhow::Result<()> {
    let client = HttpPlatform::new(settings.platform.clone())?;
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
