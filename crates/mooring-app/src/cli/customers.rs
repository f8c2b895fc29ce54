//! `mooring customers …`: show (audited), approve, reject and delete.

use clap::Subcommand;
use mooring_domain::customer::CustomerId;
use mooring_usecases::CustomerView;

use crate::Settings;
use crate::startup::{kyc_service, open_store};

use super::operator;

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

pub(super) async fn customers(command: CustomersCommand, settings: Settings) -> anyhow::Result<()> {
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
