//! `alpha-panda kite …`: log in to Kite Connect (the session is stored, never shown), load the
//! instruments master (from Kite or a CSV file), and decode a raw KiteTicker binary message.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use alpha_panda_core::{Clock, SystemClock};
use alpha_panda_kite::{decode_message, parse_instruments_csv, KiteClient};
use alpha_panda_store::{session_expiry, AccessToken, TradingSession};
use anyhow::{bail, Context};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use clap::{Args, Subcommand};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::container;
use crate::settings::Settings;

/// Arguments of `kite`.
#[derive(Debug, Args)]
pub struct KiteArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: KiteCommand,
}

/// The `kite` subcommands.
#[derive(Debug, Subcommand)]
pub enum KiteCommand {
    /// Log in: open the printed URL, then the request token arrives on the local callback
    /// (`http://127.0.0.1:{zerodha.callback_port}/kite/callback`) or is pasted here.
    Login(LoginArgs),
    /// Load the instruments master into the database (from Kite, or `--file` offline).
    Instruments(InstrumentsArgs),
    /// Print each packet of one raw KiteTicker binary message as a JSON line.
    Decode(DecodeArgs),
}

/// Arguments of `kite login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Use this request token instead of waiting for the browser (non-interactive use).
    #[arg(long)]
    pub request_token: Option<String>,
    /// Give up waiting for the request token after this long.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Arguments of `kite instruments`.
#[derive(Debug, Args)]
pub struct InstrumentsArgs {
    /// Load this instruments CSV (Kite's format) instead of downloading it.
    #[arg(long)]
    pub file: Option<PathBuf>,
}

/// Arguments of `kite decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// A file holding one binary websocket message exactly as received.
    pub file: PathBuf,
}

/// Runs a `kite` subcommand.
///
/// # Errors
/// What failed, and what to do about it.
pub async fn run(settings: &Settings, args: &KiteArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        KiteCommand::Login(login_args) => login(settings, login_args).await,
        KiteCommand::Instruments(instruments_args) => instruments(settings, instruments_args).await,
        KiteCommand::Decode(decode_args) => decode(decode_args).await,
    }
}

fn require_credentials(settings: &Settings) -> anyhow::Result<()> {
    if !settings.zerodha.has_credentials() {
        bail!(
            "zerodha.api_key and zerodha.api_secret must be set (alpha-panda.toml or \
             ALPHA_PANDA__ZERODHA__API_KEY / ALPHA_PANDA__ZERODHA__API_SECRET)"
        );
    }
    Ok(())
}

/// The redirect's query: `?request_token=…&status=success&action=login`.
#[derive(Debug, Deserialize)]
struct Callback {
    request_token: Option<String>,
    status: Option<String>,
}

async fn callback(
    State(sender): State<mpsc::Sender<String>>,
    Query(query): Query<Callback>,
) -> &'static str {
    match (query.status.as_deref(), query.request_token) {
        (Some("success"), Some(token)) if !token.is_empty() => {
            let _ = sender.send(token).await;
            "Logged in to Kite. You can close this tab and return to the terminal."
        }
        _ => "Kite did not report a successful login; try again from the login URL.",
    }
}

/// Waits for the request token on the local callback route or on stdin, whichever comes first.
async fn wait_for_request_token(port: u16, timeout: Duration) -> anyhow::Result<String> {
    let (sender, mut receiver) = mpsc::channel::<String>(1);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("cannot listen on 127.0.0.1:{port} for the Kite callback; set zerodha.callback_port")
        })?;
    let app = Router::new()
        .route("/kite/callback", get(callback))
        .with_state(sender.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    eprintln!(
        "Waiting for the redirect on http://127.0.0.1:{port}/kite/callback, or paste the \
         request_token here and press Enter:"
    );
    let stdin_sender = sender;
    let stdin = tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let token = line.trim().to_string();
            if !token.is_empty() {
                let _ = stdin_sender.send(token).await;
                break;
            }
        }
    });
    let token = tokio::time::timeout(timeout, receiver.recv()).await;
    server.abort();
    stdin.abort();
    match token {
        Ok(Some(token)) => Ok(token),
        Ok(None) => bail!("no request token was received; run `alpha-panda kite login` again"),
        Err(_) => bail!(
            "no request token within {}; run `alpha-panda kite login` again",
            humantime::format_duration(timeout)
        ),
    }
}

async fn login(settings: &Settings, args: &LoginArgs) -> anyhow::Result<ExitCode> {
    require_credentials(settings)?;
    let zerodha = &settings.zerodha;
    let client = KiteClient::new(zerodha)?;
    println!(
        "Open this URL in a browser and log in to Kite:\n{}",
        client.login_url()
    );
    let request_token = match &args.request_token {
        Some(token) => token.clone(),
        None => wait_for_request_token(zerodha.callback_port, args.timeout).await?,
    };
    let session = client
        .generate_session(&request_token, &zerodha.api_secret)
        .await
        .context("Kite refused the login")?;
    let store = container::store(settings).await?;
    let now = SystemClock.now();
    let expires_at = session_expiry(now);
    store
        .trading_sessions()
        .save(&TradingSession {
            api_key: zerodha.api_key.clone(),
            user_id: session.user_id.clone(),
            access_token: AccessToken::new(session.access_token),
            created_at: now,
            expires_at,
        })
        .await
        .context("could not store the Kite session in trading_sessions")?;
    println!(
        "Logged in to Kite as {}; the session is stored and expires at {expires_at}.",
        session.user_id
    );
    Ok(ExitCode::SUCCESS)
}

async fn instruments(settings: &Settings, args: &InstrumentsArgs) -> anyhow::Result<ExitCode> {
    let store = container::store(settings).await?;
    let rows = match &args.file {
        Some(path) => {
            let bytes = tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read the instruments CSV {}", path.display()))?;
            parse_instruments_csv(&bytes[..])
                .with_context(|| format!("instruments CSV {}", path.display()))?
        }
        None => {
            require_credentials(settings)?;
            let client = container::zerodha_session(settings, &store, SystemClock.now()).await?;
            client
                .instruments()
                .await
                .context("could not download the instruments master from Kite")?
        }
    };
    let written = store
        .instruments()
        .upsert_many(&rows)
        .await
        .context("could not write the instruments table")?;
    println!(
        "Loaded {} instruments ({written} rows upserted into instruments).",
        rows.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn decode(args: &DecodeArgs) -> anyhow::Result<ExitCode> {
    let bytes = tokio::fs::read(&args.file)
        .await
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let packets =
        decode_message(&bytes).with_context(|| format!("cannot decode {}", args.file.display()))?;
    for packet in packets {
        println!("{}", serde_json::to_string(&packet.to_json_value())?);
    }
    Ok(ExitCode::SUCCESS)
}
