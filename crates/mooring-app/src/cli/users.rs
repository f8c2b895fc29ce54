//! `mooring users …`: the back office's users. `add` asks for the first
//! password on a terminal (twice, without echo) and reads it from stdin
//! otherwise (one line), never from an argument (arguments show in `ps`).

use std::io::{BufRead as _, IsTerminal as _};

use clap::Subcommand;
use mooring_domain::staff::Role;

use crate::Settings;
use crate::startup::{open_store, staff_service};

use super::operator;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user; they enrol their TOTP authenticator at first sign-in
    Add {
        name: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Provision the TOTP authenticator now and print its secret (to
        /// hand over out of band) instead of enrolling at first sign-in
        #[arg(long)]
        with_totp: bool,
    },
    /// Disable a user: their sessions end and they cannot sign in
    Disable { name: String },
    /// Enable a disabled user again
    Enable { name: String },
    /// Forget a user's authenticator: they enrol again at next sign-in
    ResetTotp { name: String },
    /// List the users, their roles and states
    List,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| {
        format!(
            "{text:?} is not a role: {}",
            Role::ALL.map(Role::as_str).join(", ")
        )
    })
}

/// The first password: from the terminal, asked twice, or one line of stdin.
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

pub(super) async fn users(command: UsersCommand, settings: Settings) -> anyhow::Result<()> {
    let store = open_store(&settings, settings.database.auto_migrate).await?;
    let staff = staff_service(&settings, store);
    let who = operator();
    let done = |e| anyhow::anyhow!("{e}");
    match command {
        UsersCommand::Add {
            name,
            role,
            with_totp,
        } => {
            let password = read_password()?;
            let user = staff
                .add_user(&name, role, &password, &who)
                .await
                .map_err(done)?;
            println!("added {} as {}", user.name, user.role);
            if with_totp {
                let enrolment = staff.provision_totp(&name, &who).await.map_err(done)?;
                println!("totp secret: {}", enrolment.secret_base32);
                println!("totp uri: {}", enrolment.uri);
            } else if role.needs_second_factor() {
                println!("they set up TOTP at first sign-in");
            }
        }
        UsersCommand::Disable { name } => {
            staff.set_disabled(&name, true, &who).await.map_err(done)?;
            println!("disabled {name}");
        }
        UsersCommand::Enable { name } => {
            staff.set_disabled(&name, false, &who).await.map_err(done)?;
            println!("enabled {name}");
        }
        UsersCommand::ResetTotp { name } => {
            staff.reset_totp(&name, &who).await.map_err(done)?;
            println!("{name} sets up TOTP again at next sign-in");
        }
        UsersCommand::List => {
            println!(
                "{:<24}  {:<9}  {:<8}  {:<12}  since",
                "name", "role", "state", "totp"
            );
            for u in staff.users().await.map_err(done)? {
                println!(
                    "{:<24}  {:<9}  {:<8}  {:<12}  {}",
                    u.name.as_str(),
                    u.role.as_str(),
                    if u.disabled { "disabled" } else { "active" },
                    if u.totp_enrolled {
                        "enrolled"
                    } else {
                        "not enrolled"
                    },
                    u.created_at.format("%Y-%m-%d %H:%M")
                );
            }
        }
    }
    Ok(())
}
