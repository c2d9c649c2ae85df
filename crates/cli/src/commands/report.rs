//! `alpha-panda report --broker B`: the backtest's report for a paper or live run, from the ledger
//! (every fill) and the stored PnL snapshots (the equity curve), so live and backtest are judged
//! on the same terms.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use alpha_panda_backtest::history::{EquityPoint, FillRecord, History, PortfolioStart};
use alpha_panda_backtest::report::report_of;
use alpha_panda_backtest::{html, outputs, PriceSeries};
use alpha_panda_core::{Broker, InstrumentToken, Money, Price, Side, Timestamp};
use alpha_panda_services::portfolio_manager::service::PortfolioBook;
use anyhow::{bail, Context};
use clap::Args;

use crate::commands::instant_flag;
use crate::container;
use crate::settings::Settings;

/// Arguments of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The namespace: `paper` or `zerodha`.
    #[arg(long)]
    pub broker: Broker,
    /// Only fills and snapshots at or after this instant (RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Only fills and snapshots at or before this instant (RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// Where report.json, report.html, fills.csv and equity.csv go.
    #[arg(long)]
    pub out: PathBuf,
    /// Print report.json on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Reads the ledger and writes the report.
///
/// # Errors
/// When the store cannot be read or the files cannot be written.
pub async fn run(settings: &Settings, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let from = instant_flag(args.from.as_deref(), "--from")?;
    let to = instant_flag(args.to.as_deref(), "--to")?;
    let within = |at: Timestamp| from.is_none_or(|f| at >= f) && to.is_none_or(|t| at <= t);
    let store = container::store(settings).await?;
    let mut fills = store
        .ledger()
        .fills(args.broker, u32::MAX)
        .await
        .context("could not read the ledger's fills")?;
    fills.reverse();
    let mut snapshots = store
        .pnl_snapshots()
        .list_by_broker(args.broker, u32::MAX)
        .await
        .context("could not read the PnL snapshots")?;
    snapshots.reverse();
    if fills.is_empty() && snapshots.is_empty() {
        bail!(
            "the ledger has no fill and no PnL snapshot of {}; run `alpha-panda run` first",
            args.broker
        );
    }

    // A portfolio starts with the settings' cash, or, when the window opens later, with what the
    // fills before the window left it worth.
    let initial_cash = settings.portfolio.initial_cash.0;
    let mut portfolios: BTreeMap<String, PortfolioStart> = BTreeMap::new();
    let mut history = History::default();
    let mut marked: Vec<EquityPoint> = Vec::new();
    for stored in &snapshots {
        let snapshot = &stored.snapshot;
        let equity = initial_cash + snapshot.total_pnl.0;
        portfolios
            .entry(snapshot.portfolio_id.to_string())
            .or_insert_with(|| PortfolioStart {
                portfolio_id: snapshot.portfolio_id.clone(),
                strategy_id: snapshot.strategy_id.clone(),
                initial_cash: Money(initial_cash),
            });
        if within(snapshot.as_of) {
            marked.push(EquityPoint {
                at: snapshot.as_of,
                portfolio_id: snapshot.portfolio_id.clone(),
                cash: snapshot.cash.0,
                realized_pnl: snapshot.realized_pnl.0,
                unrealized_pnl: snapshot.unrealized_pnl.0,
                fees: snapshot.fees.0,
                equity,
            });
        }
    }
    // The ledger's fills through the portfolio accounting: a point of the curve at every fill,
    // open positions marked at their instrument's last fill price (a run keeps no ticks). The
    // stored snapshots, marked to market, stand between them.
    let mut book = PortfolioBook::default();
    for ledger in fills {
        let fill = ledger.fill;
        portfolios
            .entry(ledger.portfolio_id.to_string())
            .or_insert_with(|| PortfolioStart {
                portfolio_id: ledger.portfolio_id.clone(),
                strategy_id: fill.strategy_id.clone(),
                initial_cash: Money(initial_cash),
            });
        let before_window = from.is_some_and(|f| fill.filled_at < f);
        if !before_window && !within(fill.filled_at) {
            continue;
        }
        book.apply_fill(args.broker, Money(initial_cash), &fill);
        book.mark(fill.instrument_token, fill.fill_price);
        if before_window {
            // What the window starts with: the equity the fills before it leave.
            if let (Some(start), Some(portfolio)) = (
                portfolios.get_mut(ledger.portfolio_id.as_str()),
                book.portfolio(&fill.strategy_id),
            ) {
                start.initial_cash = Money(
                    portfolio.initial_cash + portfolio.realized_pnl + portfolio.unrealized_pnl()
                        - portfolio.fees,
                );
            }
            continue;
        }
        if let Some(portfolio) = book.portfolio(&fill.strategy_id) {
            let unrealized = portfolio.unrealized_pnl();
            history.equity.push(EquityPoint {
                at: fill.filled_at,
                portfolio_id: portfolio.id.clone(),
                cash: portfolio.cash,
                realized_pnl: portfolio.realized_pnl,
                unrealized_pnl: unrealized,
                fees: portfolio.fees,
                equity: portfolio.initial_cash + portfolio.realized_pnl + unrealized
                    - portfolio.fees,
            });
        }
        history.fills.push(FillRecord {
            exchange_timestamp: fill.filled_at,
            portfolio_id: ledger.portfolio_id,
            strategy_id: fill.strategy_id,
            order_id: fill.order_id,
            instrument_token: fill.instrument_token,
            tradingsymbol: fill.tradingsymbol,
            side: fill.side,
            quantity: fill.quantity,
            price: fill.fill_price,
            fees: fill.fees,
        });
    }
    history.equity.extend(marked);
    history.fills.sort_by_key(|f| f.exchange_timestamp);
    // Stable: a fill's point stays before a snapshot of the same instant.
    history.equity.sort_by_key(|p| p.at);
    history.portfolios = portfolios.into_values().collect();
    let times = history
        .fills
        .iter()
        .map(|f| f.exchange_timestamp)
        .chain(history.equity.iter().map(|p| p.at));
    history.start = from.or_else(|| times.clone().min());
    history.end = to.or_else(|| times.max());
    history.chart = fill_prices(&history);

    let (report, charts) = report_of(&history);
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "input": {
            "broker": args.broker,
            "fills": history.fills.len(),
            "snapshots": history.equity.len(),
            "note": "open positions are marked at their last fill price between stored PnL \
                     snapshots; rejections are on the log, not in the ledger (`alpha-panda summary` \
                     counts them)",
        },
        "report": report,
    }))?;
    let page = html::render_html(&report, &charts);
    let written = outputs::write_all(&args.out, &history, &json, &page)?;
    if args.json {
        println!("{json}");
    } else {
        println!(
            "{} report: {} fills, net PnL {} after charges of {}",
            args.broker,
            history.fills.len(),
            report.total.net_pnl.0,
            report.total.fees.total.0
        );
        for path in written {
            println!("wrote {}", path.display());
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// A live run keeps no ticks: the trades chart shows the fill prices of the most traded
/// instrument.
fn fill_prices(history: &History) -> Option<PriceSeries> {
    let mut counts: BTreeMap<InstrumentToken, usize> = BTreeMap::new();
    for fill in &history.fills {
        *counts.entry(fill.instrument_token).or_default() += 1;
    }
    let most = counts.values().copied().max()?;
    let token = counts.into_iter().find(|(_, n)| *n == most)?.0;
    let fills = history.fills.iter().filter(|f| f.instrument_token == token);
    let of_side = |side: Side| -> Vec<(Timestamp, Price)> {
        fills
            .clone()
            .filter(|f| f.side == side)
            .map(|f| (f.exchange_timestamp, f.price))
            .collect()
    };
    let (buys, sells) = (of_side(Side::Buy), of_side(Side::Sell));
    Some(PriceSeries {
        instrument_token: token,
        tradingsymbol: fills.clone().find_map(|f| f.tradingsymbol.clone()),
        points: fills.map(|f| (f.exchange_timestamp, f.price)).collect(),
        buy_count: buys.len() as u64,
        sell_count: sells.len() as u64,
        buys,
        sells,
    })
}
