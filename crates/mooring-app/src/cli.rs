//! The command line: `mooring [serve]`, `mooring migrate`, and the back
//! office's `mooring customers …`.

use clap::{Parser, Subcommand};
use mooring_domain::customer::CustomerId;
use mooring_usecases::CustomerView;

use crate::Settings;
use crate::startup::{Application, kyc_service, open_store};

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
        Command::Migrate => {
            let store = open_store(&settings, true).await?;
            let pending = store.pending_migrations().await?;
            anyhow::ensure!(pending.is_empty(), "migrations still pending: {pending:?}");
            println!("database {} is up to date", settings.database_url()?);
            Ok(())
        }
        Command::Customers(c) => customers(c, settings).await,
    }
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
    let view = match command {
        CustomersCommand::Show { id } => kyc.show(&parse(&id)?).await,
        CustomersCommand::Approve { id } => kyc.approve(&parse(&id)?).await,
        CustomersCommand::Reject { id, reason } => kyc.reject(&parse(&id)?, &reason).await,
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
