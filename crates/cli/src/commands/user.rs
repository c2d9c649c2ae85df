//! `alpha-panda user add | list | remove | password`: the operators who may use the API and the
//! dashboard, and their roles.

use std::io::Read;
use std::process::ExitCode;

use alpha_panda_store::Role;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::settings::Settings;

/// Arguments of `user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The action.
    #[command(subcommand)]
    pub action: UserAction,
}

/// The user actions.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a user; without --password-stdin a password is generated and printed once.
    Add {
        /// The username.
        name: String,
        /// admin, trader or viewer.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users and their roles.
    List,
    /// Remove a user (their refresh tokens stop working at once).
    Remove {
        /// The username.
        name: String,
    },
    /// Set a user's password; without --password-stdin one is generated and printed once.
    Password {
        /// The username.
        name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
}

fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("could not read the password from standard input")?;
        let text = text.trim_end_matches(['\r', '\n']).to_string();
        if text.is_empty() {
            bail!("--password-stdin: standard input held no password");
        }
        return Ok((text, false));
    }
    Ok((crate::api_server::generated_password(), true))
}

/// Runs a user action.
///
/// # Errors
/// When the store cannot be reached, or the user is unknown or exists already.
pub async fn run(settings: &Settings, args: &UserArgs) -> anyhow::Result<ExitCode> {
    let store = crate::container::store(settings).await?;
    let users = store.users();
    match &args.action {
        UserAction::Add {
            name,
            role,
            password_stdin,
        } => {
            let (secret, generated) = password(*password_stdin)?;
            let user = users.create(name, &secret, *role).await?;
            println!("added {} ({})", user.username, user.role);
            if generated {
                println!("password: {secret}\n(shown this once)");
            }
        }
        UserAction::List => {
            for user in users.list().await? {
                println!(
                    "{:<24} {:<8} since {}",
                    user.username, user.role, user.created_at
                );
            }
        }
        UserAction::Remove { name } => {
            if !users.remove(name).await? {
                bail!("no user `{name}`; `alpha-panda user list` shows them");
            }
            store.refresh_tokens().revoke_all(name).await?;
            println!("removed {name}");
        }
        UserAction::Password {
            name,
            password_stdin,
        } => {
            let (secret, generated) = password(*password_stdin)?;
            if !users.set_password(name, &secret).await? {
                bail!("no user `{name}`; `alpha-panda user list` shows them");
            }
            store.refresh_tokens().revoke_all(name).await?;
            println!("password of {name} changed; their sessions must log in again");
            if generated {
                println!("password: {secret}\n(shown this once)");
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
