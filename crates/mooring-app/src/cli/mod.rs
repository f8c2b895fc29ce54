//! The command line: `mooring [serve]`, `mooring migrate`, `mooring keys
//! rotate`, and the back office's `mooring customers|quotes|platform|payouts
//! |audit|users …`. Every action on a customer or a payout, and every rotation,
//! is written to the audit trail under the person running the command
//! ([`operator`]).
//!
//! This file holds the command line's shape, the dispatch and `serve`; each
//! command family has its room (`audit`, `keys`, `payouts`, `platform`,
//! `quotes`, `customers`, `users`).

mod audit;
mod customers;
mod keys;
mod payouts;
mod platform;
mod quotes;
mod users;

use std::sync::Arc;

use clap::{Parser, Subcommand};
use mooring_domain::audit::Actor;
use mooring_ports::SystemClock;
use mooring_usecases::Pruner;

use crate::Settings;
use crate::startup::{Application, open_store};

pub use audit::AuditCommand;
use audit::audit;
pub use customers::CustomersCommand;
use customers::customers;
pub use keys::KeysCommand;
use keys::rotate;
pub use payouts::PayoutsCommand;
use payouts::payouts;
pub use platform::PlatformCommand;
use platform::platform;
pub use quotes::QuotesCommand;
use quotes::quotes;
pub use users::UsersCommand;
use users::users;

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
    /// The back office's users (docs/backoffice.md)
    #[command(subcommand)]
    Users(UsersCommand),
    /// Run one retention pass now (a running server does it every
    /// retention.interval_seconds) and print what it removed
    Prune,
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
            println!("database {} is up to date", settings.database.url);
            Ok(())
        }
        Command::Customers(c) => customers(c, settings).await,
        Command::Quotes(c) => quotes(c, settings).await,
        Command::Platform(c) => platform(c, settings).await,
        Command::Payouts(c) => payouts(c, settings).await,
        Command::Keys(KeysCommand::Rotate) => rotate(settings).await,
        Command::Audit(c) => audit(c, settings).await,
        Command::Users(c) => users(c, settings).await,
        Command::Prune => {
            let store = open_store(&settings, settings.database.auto_migrate).await?;
            let policy = settings.retention.policy;
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
