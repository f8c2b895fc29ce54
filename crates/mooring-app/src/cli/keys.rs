//! `mooring keys rotate`: every data key re-wrapped under `pii.key`, in
//! batches, with a progress bar on a terminal.

use clap::Subcommand;
use mooring_domain::audit::AuditAction;

use crate::Settings;
use crate::startup::{audit_trail, open_store};

use super::operator;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-wrap every customer's data key under pii.key, opening them with
    /// pii.previous_keys; in batches, resumable, safe while servers run.
    /// Afterwards the previous keys can be dropped.
    Rotate,
}

/// `mooring keys rotate`: batches until no data key is left under another
/// key, with a progress bar on a terminal (a line per batch otherwise).
pub(super) async fn rotate(settings: Settings) -> anyhow::Result<()> {
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
