//! `mooring customers …`: show (audited), approve, reject, and reject one
//! field.

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
    /// Reject one field the customer provided: they are NEEDS_INFO until they send a new value
    RejectField {
        id: String,
        /// The SEP-9 field (e.g. photo_id_front)
        field: String,
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
        // A person at a shell decides on what they name: no page version
        // to fence by (`customers show` first).
        CustomersCommand::Approve { id } => kyc.approve(&parse(&id)?, None, &who).await,
        CustomersCommand::Reject { id, reason } => {
            kyc.reject(&parse(&id)?, &reason, None, &who).await
        }
        CustomersCommand::RejectField { id, field, reason } => {
            kyc.reject_field(&parse(&id)?, &field, &reason, None, &who)
                .await
        }
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
