//! `alpha-panda strategy list | add | set | enable | disable`: strategy configurations, the same
//! ones the API changes. A running strategy runner takes a change up within seconds; a
//! configuration that cannot be built is refused, naming the parameter.

use std::process::ExitCode;

use alpha_panda_core::Timestamp;
use alpha_panda_services::build_strategy;
use alpha_panda_store::StrategyConfiguration;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::settings::Settings;

/// Arguments of `strategy`.
#[derive(Debug, Args)]
pub struct StrategyArgs {
    /// The action.
    #[command(subcommand)]
    pub action: StrategyAction,
}

/// The strategy actions.
#[derive(Debug, Subcommand)]
pub enum StrategyAction {
    /// List every strategy.
    List {
        /// One JSON object per strategy, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Add a strategy.
    Add {
        /// The id.
        id: String,
        /// The type (`ema_cross`, `mean_reversion`).
        #[arg(long = "type")]
        strategy_type: String,
        /// Instrument tokens, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        instruments: Vec<u32>,
        /// Parameters as a JSON object (the type's defaults when absent).
        #[arg(long)]
        params: Option<String>,
        /// Also trade it on Zerodha (real money).
        #[arg(long)]
        zerodha: bool,
        /// Add it stopped.
        #[arg(long)]
        disabled: bool,
    },
    /// Change a strategy's parameters, instruments or Zerodha trading.
    Set {
        /// The id.
        id: String,
        /// New parameters as a JSON object.
        #[arg(long)]
        params: Option<String>,
        /// New instrument tokens, comma separated.
        #[arg(long, value_delimiter = ',')]
        instruments: Option<Vec<u32>>,
        /// Trade it on Zerodha (`true`) or not (`false`).
        #[arg(long)]
        zerodha: Option<bool>,
    },
    /// Run a strategy.
    Enable {
        /// The id.
        id: String,
    },
    /// Stop a strategy.
    Disable {
        /// The id.
        id: String,
    },
}

fn parameters(text: Option<&String>) -> anyhow::Result<Option<serde_json::Value>> {
    text.map(|t| serde_json::from_str(t).with_context(|| format!("--params {t:?} is not JSON")))
        .transpose()
}

fn check(config: &StrategyConfiguration) -> anyhow::Result<()> {
    build_strategy(
        &config.id,
        &config.strategy_type,
        &config.instruments,
        &config.parameters,
    )
    .map(|_| ())
    .map_err(anyhow::Error::new)
}

fn print(config: &StrategyConfiguration) {
    println!(
        "{:<28} {:<15} {:<8} zerodha={:<5} instruments={:?} params={}",
        config.id,
        config.strategy_type,
        if config.is_active {
            "enabled"
        } else {
            "disabled"
        },
        config.zerodha_trading_enabled,
        config.instruments,
        config.parameters
    );
}

/// Runs a strategy action.
///
/// # Errors
/// When the store cannot be reached, the strategy is unknown, or the configuration is refused.
pub async fn run(settings: &Settings, args: &StrategyArgs) -> anyhow::Result<ExitCode> {
    let store = crate::container::store(settings).await?;
    let repository = store.strategy_configurations();
    let now = Timestamp::from_datetime(chrono::Utc::now());
    let find = |id: &str| {
        let id = id.to_string();
        async move {
            repository.get(&id).await?.with_context(|| {
                format!("no strategy `{id}`; `alpha-panda strategy list` shows them")
            })
        }
    };
    match &args.action {
        StrategyAction::List { json } => {
            for config in repository.list().await? {
                if *json {
                    println!("{}", serde_json::to_string(&config)?);
                } else {
                    print(&config);
                }
            }
        }
        StrategyAction::Add {
            id,
            strategy_type,
            instruments,
            params,
            zerodha,
            disabled,
        } => {
            if repository.get(id).await?.is_some() {
                bail!("strategy `{id}` exists; change it with `alpha-panda strategy set {id}`");
            }
            let config = StrategyConfiguration {
                id: id.clone(),
                strategy_type: strategy_type.clone(),
                instruments: instruments.clone(),
                parameters: parameters(params.as_ref())?.unwrap_or(serde_json::Value::Null),
                is_active: !disabled,
                zerodha_trading_enabled: *zerodha,
                created_at: now,
                updated_at: now,
            };
            check(&config)?;
            repository.upsert(&config).await?;
            print(&config);
        }
        StrategyAction::Set {
            id,
            params,
            instruments,
            zerodha,
        } => {
            let mut config = find(id).await?;
            if let Some(parameters) = parameters(params.as_ref())? {
                config.parameters = parameters;
            }
            if let Some(instruments) = instruments {
                config.instruments = instruments.clone();
            }
            if let Some(zerodha) = zerodha {
                config.zerodha_trading_enabled = *zerodha;
            }
            check(&config)?;
            config.updated_at = now;
            repository.upsert(&config).await?;
            print(&config);
        }
        StrategyAction::Enable { id } | StrategyAction::Disable { id } => {
            let mut config = find(id).await?;
            config.is_active = matches!(args.action, StrategyAction::Enable { .. });
            config.updated_at = now;
            repository.upsert(&config).await?;
            print(&config);
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
