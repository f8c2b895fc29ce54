//! `mooring quotes …`: firm quotes and the liquidity they hold.

use clap::Subcommand;
use mooring_domain::quote::QuoteId;

use crate::Settings;
use crate::startup::{open_store, quote_service};

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

pub(super) async fn quotes(command: QuotesCommand, settings: Settings) -> anyhow::Result<()> {
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
pub(super) fn short_asset(id: &str) -> &str {
    id.split(':').nth(1).unwrap_or(id)
}
