//! `report.html`: the report as one self-contained page — inline CSS and SVG charts drawn here,
//! no script, no font or file fetched from anywhere — so it opens from disk or an e-mail
//! attachment exactly as it was written. Rendering is deterministic (no clock, no random ids):
//! the same report and charts give the same bytes, so two runs can be compared with `diff`.

use std::fmt::Write as _;

use alpha_panda_core::{calendar, Money, Price, Side, Timestamp};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::report::{Charts, Drawdown, PortfolioReport, Report};

/// A series longer than this is downsampled before it is drawn, so the page's size follows the
/// chart's width rather than the run's length.
const MAX_SERIES_POINTS: usize = 2000;
/// At most this many fill markers per side on the trades chart.
const MAX_MARKERS: usize = 2000;

/// Chart geometry, in SVG user units.
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 36.0;

/// Line colours, the total first.
const PALETTE: &[&str] = &[
    "#1f2937", "#2563eb", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#65a30d", "#9a3412",
];
const BUY_COLOUR: &str = "#16a34a";
const SELL_COLOUR: &str = "#dc2626";

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:16px 24px;color:#111827;background:#fff}\
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #e5e7eb;padding-bottom:.2em}h3{font-size:1em;margin:1.2em 0 .3em}\
table{border-collapse:collapse;margin:.4em 0;font-size:.9em}th,td{padding:3px 10px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}\
th:first-child,td:first-child{text-align:left}thead th{background:#f3f4f6}\
.pos{color:#15803d}.neg{color:#b91c1c}.muted{color:#6b7280}\
svg{width:100%;height:auto;display:block;background:#fff}\
svg text{font-size:11px;fill:#374151}.grid{stroke:#e5e7eb;stroke-width:1}\
.legend{list-style:none;padding:0;margin:.2em 0;font-size:.85em}.legend li{display:inline-block;margin-right:16px}\
.swatch{display:inline-block;width:12px;height:3px;vertical-align:middle;margin-right:4px}\
.note{font-size:.85em;color:#6b7280}";

/// Renders the report, with the charts drawn from `history` (the history it was built from).
pub fn render_html(report: &Report, charts: &Charts) -> String {
    let mut page = String::with_capacity(64 * 1024);
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    page.push_str("<title>Alpha Panda backtest report</title>\n<style>");
    page.push_str(STYLE);
    page.push_str("</style>\n</head>\n<body>\n");
    header(&mut page, report);
    summary(&mut page, report);
    equity_charts(&mut page, charts);
    trades_chart(&mut page, charts);
    page.push_str("<h2>Rejections by rule</h2>\n");
    rejections_table(&mut page, &report.rejections_by_rule);
    // With one portfolio the total repeats it, so only the portfolio gets its details.
    if report.portfolios.len() != 1 {
        details(&mut page, "All portfolios", &report.total);
    }
    for portfolio in &report.portfolios {
        details(&mut page, &title(portfolio), portfolio);
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// Appends formatted text. Writing into a `String` cannot fail, so the `fmt::Result` carries
/// nothing and is dropped here, once.
macro_rules! put {
    ($page:expr, $($arg:tt)*) => {{
        let _ = write!($page, $($arg)*);
    }};
}

fn header(page: &mut String, report: &Report) {
    page.push_str("<h1>Alpha Panda backtest report</h1>\n<p>");
    match (report.start, report.end) {
        (Some(start), Some(end)) => put!(
            page,
            "Run from <strong>{}</strong> to <strong>{}</strong> ({}), exchange time.",
            instant(start),
            instant(end),
            duration((end.unix_micros() - start.unix_micros()) / 1_000_000)
        ),
        _ => page.push_str("The run saw no tick."),
    }
    page.push_str(" Amounts in rupees.</p>\n");
    page.push_str("<table>\n<thead><tr><th>Portfolio</th><th>Strategy</th><th>Initial cash</th><th>Final equity</th></tr></thead>\n<tbody>\n");
    for portfolio in &report.portfolios {
        put!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&optional(portfolio.portfolio_id.as_ref())),
            escape(&optional(portfolio.strategy_id.as_ref())),
            money(portfolio.initial_cash),
            money(portfolio.final_equity),
        );
    }
    page.push_str("</tbody>\n</table>\n");
}

/// The column heading of a portfolio.
fn title(portfolio: &PortfolioReport) -> String {
    match (&portfolio.strategy_id, &portfolio.portfolio_id) {
        (Some(strategy), _) => strategy.to_string(),
        (None, Some(portfolio)) => portfolio.to_string(),
        (None, None) => "Total".to_owned(),
    }
}

fn summary(page: &mut String, report: &Report) {
    type Row = (&'static str, fn(&PortfolioReport) -> String);
    let rows: &[Row] = &[
        ("Initial cash", |p| money(p.initial_cash)),
        ("Final equity", |p| money(p.final_equity)),
        ("Net PnL (after charges)", |p| signed(p.net_pnl)),
        ("Gross PnL (before charges)", |p| signed(p.gross_pnl)),
        ("Charges", |p| money(p.fees.total)),
        ("Total return", |p| percent(p.total_return)),
        ("CAGR", |p| percent(p.cagr)),
        ("Sharpe", |p| number(p.sharpe)),
        ("Sortino", |p| number(p.sortino)),
        ("Calmar", |p| number(p.calmar)),
        ("Max drawdown", |p| {
            p.max_drawdown
                .as_ref()
                .map_or_else(dash, |d| money(-d.value))
        }),
        ("Max drawdown %", |p| {
            percent(p.max_drawdown.as_ref().and_then(|d| d.pct.map(|pct| -pct)))
        }),
        ("Exposure", |p| percent(p.exposure)),
        ("Fills", |p| p.fills.to_string()),
        ("Trades (closed)", |p| p.trades.to_string()),
        ("Open trades", |p| p.open_trades.to_string()),
        ("Win rate", |p| percent(p.win_rate)),
        ("Average win", |p| optional_money(p.average_win)),
        ("Average loss", |p| optional_money(p.average_loss)),
        ("Largest win", |p| optional_money(p.largest_win)),
        ("Largest loss", |p| optional_money(p.largest_loss)),
        ("Profit factor", |p| number(p.profit_factor)),
        ("Expectancy per trade", |p| optional_money(p.expectancy)),
        ("Trading days", |p| p.trading_days.to_string()),
    ];
    page.push_str("<h2>Summary</h2>\n<table>\n<thead><tr><th>Statistic</th><th>Total</th>");
    for portfolio in &report.portfolios {
        put!(page, "<th>{}</th>", escape(&title(portfolio)));
    }
    page.push_str("</tr></thead>\n<tbody>\n");
    for (label, cell) in rows {
        put!(page, "<tr><td>{label}</td>");
        for portfolio in std::iter::once(&report.total).chain(&report.portfolios) {
            put!(page, "<td>{}</td>", cell(portfolio));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody>\n</table>\n");
}

/// A named line to draw, in (Unix microseconds, value) points.
struct Series {
    name: String,
    colour: &'static str,
    points: Vec<(i64, f64)>,
}

/// A fill on the trades chart.
struct Marker {
    x: i64,
    y: f64,
    side: Side,
}

fn equity_charts(page: &mut String, charts: &Charts) {
    let Some(start) = charts.start else {
        page.push_str("<h2>Equity</h2>\n<p class=\"note\">No equity to chart.</p>\n");
        return;
    };
    let mut equity = Vec::new();
    let mut drawdown = Vec::new();
    for (i, curve) in charts.equity.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        // Every curve starts at its initial cash at the run's start, as the drawdown does.
        let mut values = Vec::with_capacity(curve.points.len() + 1);
        values.push((start.unix_micros(), curve.initial_cash));
        values.extend(curve.points.iter().map(|(at, e)| (at.unix_micros(), *e)));
        drawdown.push(Series {
            name: curve.name.clone(),
            colour,
            points: drawdown_curve(&values),
        });
        equity.push(Series {
            name: curve.name.clone(),
            colour,
            points: values
                .iter()
                .filter_map(|(x, e)| e.to_f64().map(|y| (*x, y)))
                .collect(),
        });
    }
    page.push_str("<h2>Equity</h2>\n");
    // The total is the portfolios' sum, on another scale: drawn with them, it would flatten
    // their lines, so they get a chart of their own.
    let (total, each) = equity.split_at(1.min(equity.len()));
    chart(page, total, &[], plain);
    if !each.is_empty() {
        page.push_str("<h3>Per portfolio</h3>\n");
        chart(page, each, &[], plain);
    }
    page.push_str(
        "<h2>Drawdown</h2>\n<p class=\"note\">Fall below the running peak, in % of the peak.</p>\n",
    );
    chart(page, &drawdown, &[], |v| format!("{v:.2}%"));
}

/// `(equity − running peak) / running peak` in percent (0 at and above the peak).
fn drawdown_curve(values: &[(i64, Decimal)]) -> Vec<(i64, f64)> {
    let mut peak: Option<Decimal> = None;
    values
        .iter()
        .map(|&(x, equity)| {
            let high = peak.map_or(equity, |p| p.max(equity));
            peak = Some(high);
            let fraction = if high > Decimal::ZERO {
                ((equity - high) / high).to_f64().unwrap_or(0.0)
            } else {
                0.0
            };
            (x, fraction * 100.0)
        })
        .collect()
}

fn trades_chart(page: &mut String, charts: &Charts) {
    let Some(prices) = &charts.trades else {
        return;
    };
    let symbol = prices
        .tradingsymbol
        .clone()
        .unwrap_or_else(|| prices.instrument_token.to_string());
    put!(
        page,
        "<h2>Trades: {} ({})</h2>\n",
        escape(&symbol),
        prices.instrument_token
    );
    let series = [Series {
        name: symbol,
        colour: PALETTE[1],
        points: prices
            .points
            .iter()
            .filter_map(|(at, price)| price.0.to_f64().map(|y| (at.unix_micros(), y)))
            .collect(),
    }];
    let markers = |fills: &[(Timestamp, Price)], side: Side| -> Vec<Marker> {
        fills
            .iter()
            .filter_map(|(at, price)| {
                price.0.to_f64().map(|y| Marker {
                    x: at.unix_micros(),
                    y,
                    side,
                })
            })
            .collect()
    };
    let buys = markers(&prices.buys, Side::Buy);
    let sells = markers(&prices.sells, Side::Sell);
    let mut drawn = thin(&buys.iter().collect::<Vec<_>>(), MAX_MARKERS);
    drawn.extend(thin(&sells.iter().collect::<Vec<_>>(), MAX_MARKERS));
    chart(page, &series, &drawn, plain);
    put!(
        page,
        "<ul class=\"legend\"><li><svg width=\"12\" height=\"10\" viewBox=\"0 0 12 10\" style=\"display:inline;width:12px\"><path d=\"M6 0L12 10H0Z\" fill=\"{BUY_COLOUR}\"/></svg> buy ({})</li>\
<li><svg width=\"12\" height=\"10\" viewBox=\"0 0 12 10\" style=\"display:inline;width:12px\"><path d=\"M0 0H12L6 10Z\" fill=\"{SELL_COLOUR}\"/></svg> sell ({})</li></ul>\n",
        prices.buy_count,
        prices.sell_count
    );
    if (drawn.len() as u64) < prices.buy_count + prices.sell_count {
        page.push_str(
            "<p class=\"note\">Too many fills to mark: an evenly spaced selection is shown.</p>\n",
        );
    }
}

/// At most `limit` items, evenly spaced, first and last included.
fn thin<'a>(items: &[&'a Marker], limit: usize) -> Vec<&'a Marker> {
    if items.len() <= limit || limit < 2 {
        return items.iter().take(limit).copied().collect();
    }
    let last = items.len() - 1;
    (0..limit)
        .filter_map(|i| items.get(i * last / (limit - 1)).copied())
        .collect()
}

/// Keeps a long series' shape in bounded size: the points are cut into buckets of consecutive
/// points and each bucket keeps its lowest and highest point (in time order), so spikes and
/// drawdowns survive; ties keep the earliest point, so the result is deterministic.
fn downsample(points: &[(i64, f64)], max_points: usize) -> Vec<(i64, f64)> {
    let buckets = max_points / 2;
    if points.len() <= max_points || buckets == 0 {
        return points.to_vec();
    }
    let mut kept = Vec::with_capacity(buckets * 2);
    for bucket in 0..buckets {
        let from = bucket * points.len() / buckets;
        let to = (bucket + 1) * points.len() / buckets;
        let Some(slice) = points.get(from..to) else {
            continue;
        };
        let mut low = 0;
        let mut high = 0;
        for (i, point) in slice.iter().enumerate() {
            if point.1 < slice[low].1 {
                low = i;
            }
            if point.1 > slice[high].1 {
                high = i;
            }
        }
        let (first, second) = (low.min(high), low.max(high));
        kept.push(slice[first]);
        if second != first {
            kept.push(slice[second]);
        }
    }
    kept
}

/// Draws series (and fill markers) against exchange time, with gridlines and axis labels.
fn chart(page: &mut String, series: &[Series], markers: &[&Marker], label: fn(f64) -> String) {
    let drawn: Vec<Vec<(i64, f64)>> = series
        .iter()
        .map(|s| downsample(&s.points, MAX_SERIES_POINTS))
        .collect();
    let xs = drawn
        .iter()
        .flatten()
        .map(|p| p.0)
        .chain(markers.iter().map(|m| m.x));
    let ys = drawn
        .iter()
        .flatten()
        .map(|p| p.1)
        .chain(markers.iter().map(|m| m.y));
    let (Some(x_min), Some(x_max)) = (xs.clone().min(), xs.max()) else {
        page.push_str("<p class=\"note\">Nothing to chart.</p>\n");
        return;
    };
    let (mut y_min, mut y_max) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    if !(y_min.is_finite() && y_max.is_finite()) {
        page.push_str("<p class=\"note\">Nothing to chart.</p>\n");
        return;
    }
    // A flat line sits in the middle of a band instead of on a zero-height axis.
    if y_max - y_min < 1e-9 {
        let pad = (y_max.abs() * 0.01).max(1.0);
        y_min -= pad;
        y_max += pad;
    } else {
        let pad = (y_max - y_min) * 0.05;
        y_min -= pad;
        y_max += pad;
    }
    let x_span = (x_max - x_min).max(1) as f64;
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let sx = |x: i64| LEFT + (x - x_min) as f64 / x_span * plot_width;
    let sy = |y: f64| TOP + (y_max - y) / (y_max - y_min) * plot_height;

    put!(
        page,
        "<svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" preserveAspectRatio=\"xMidYMid meet\">\n"
    );
    const TICKS: usize = 5;
    for i in 0..=TICKS {
        let value = y_min + (y_max - y_min) * i as f64 / TICKS as f64;
        let y = sy(value);
        put!(
            page,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            escape(&label(value))
        );
    }
    let long_run = x_max - x_min > 2 * 86_400_000_000;
    for i in 0..=TICKS {
        let x_value = x_min + ((x_max - x_min) as f64 * i as f64 / TICKS as f64) as i64;
        let Some(at) = Timestamp::from_unix_micros(x_value) else {
            continue;
        };
        let local = calendar::to_ist(at);
        let text = if long_run {
            local.format("%Y-%m-%d").to_string()
        } else {
            local.format("%m-%d %H:%M").to_string()
        };
        let anchor = match i {
            0 => "start",
            TICKS => "end",
            _ => "middle",
        };
        put!(
            page,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{text}</text>\n",
            sx(x_value),
            HEIGHT - BOTTOM + 16.0
        );
    }
    put!(
        page,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_width}\" height=\"{plot_height}\" fill=\"none\" stroke=\"#9ca3af\"/>\n"
    );
    for (line, points) in series.iter().zip(&drawn) {
        put!(
            page,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" stroke-linejoin=\"round\" points=\"",
            line.colour
        );
        for (i, &(x, y)) in points.iter().enumerate() {
            if i > 0 {
                page.push(' ');
            }
            put!(page, "{:.1},{:.1}", sx(x), sy(y));
        }
        page.push_str("\"/>\n");
    }
    for marker in markers {
        let (x, y) = (sx(marker.x), sy(marker.y));
        match marker.side {
            Side::Buy => put!(
                page,
                "<path d=\"M{x:.1} {:.1}L{:.1} {:.1}H{:.1}Z\" fill=\"{BUY_COLOUR}\"/>\n",
                y - 6.0,
                x + 5.0,
                y + 3.0,
                x - 5.0
            ),
            Side::Sell => put!(
                page,
                "<path d=\"M{x:.1} {:.1}L{:.1} {:.1}H{:.1}Z\" fill=\"{SELL_COLOUR}\"/>\n",
                y + 6.0,
                x + 5.0,
                y - 3.0,
                x - 5.0
            ),
        }
    }
    page.push_str("</svg>\n");
    if series.len() > 1 {
        page.push_str("<ul class=\"legend\">");
        for line in series {
            put!(
                page,
                "<li><span class=\"swatch\" style=\"background:{}\"></span>{}</li>",
                line.colour,
                escape(&line.name)
            );
        }
        page.push_str("</ul>\n");
    }
}

fn details(page: &mut String, heading: &str, portfolio: &PortfolioReport) {
    put!(page, "<h2>{}</h2>\n", escape(heading));

    page.push_str("<h3>Per instrument</h3>\n");
    if portfolio.per_instrument.is_empty() {
        page.push_str("<p class=\"note\">No fills.</p>\n");
    } else {
        page.push_str("<table>\n<thead><tr><th>Instrument</th><th>Token</th><th>Fills</th><th>Trades</th><th>Wins</th><th>Net PnL</th><th>Charges</th></tr></thead>\n<tbody>\n");
        for row in &portfolio.per_instrument {
            put!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td></tr>\n",
                escape(row.tradingsymbol.as_deref().unwrap_or("")),
                row.instrument_token,
                row.fills,
                row.trades,
                row.wins,
                money_cell(row.net_pnl),
                money(row.fees)
            );
        }
        page.push_str("</tbody>\n</table>\n");
    }

    page.push_str("<h3>Long and short</h3>\n<table>\n<thead><tr><th>Direction</th><th>Trades</th><th>Wins</th><th>Net PnL</th></tr></thead>\n<tbody>\n");
    for (name, side) in [("Long", &portfolio.long), ("Short", &portfolio.short)] {
        put!(
            page,
            "<tr><td>{name}</td><td>{}</td><td>{}</td>{}</tr>\n",
            side.trades,
            side.wins,
            money_cell(side.net_pnl)
        );
    }
    page.push_str("</tbody>\n</table>\n");

    let fees = &portfolio.fees;
    page.push_str("<h3>Charges</h3>\n<table>\n<thead><tr><th>Component</th><th>Amount</th></tr></thead>\n<tbody>\n");
    for (name, amount) in [
        ("Brokerage", fees.brokerage),
        ("STT", fees.stt),
        ("Exchange transaction charges", fees.exchange),
        ("SEBI fees", fees.sebi),
        ("GST", fees.gst),
        ("Stamp duty", fees.stamp),
        ("DP charges", fees.dp),
        ("Total", fees.total),
    ] {
        put!(page, "<tr><td>{name}</td><td>{}</td></tr>\n", money(amount));
    }
    page.push_str("</tbody>\n</table>\n");

    page.push_str("<h3>Rejections by rule</h3>\n");
    rejections_table(page, &portfolio.rejections);

    page.push_str("<h3>Best and worst day</h3>\n<table>\n<thead><tr><th>Day</th><th>Date (IST)</th><th>PnL</th></tr></thead>\n<tbody>\n");
    for (name, day) in [
        ("Best", &portfolio.best_day),
        ("Worst", &portfolio.worst_day),
    ] {
        match day {
            Some(day) => put!(
                page,
                "<tr><td>{name}</td><td>{}</td>{}</tr>\n",
                day.date,
                money_cell(day.pnl)
            ),
            None => put!(
                page,
                "<tr><td>{name}</td><td>{}</td><td>{}</td></tr>\n",
                dash(),
                dash()
            ),
        }
    }
    page.push_str("</tbody>\n</table>\n");

    page.push_str("<h3>Maximum drawdown</h3>\n");
    match &portfolio.max_drawdown {
        Some(drawdown) => drawdown_table(page, drawdown),
        None => page.push_str("<p class=\"note\">Equity never fell below a previous peak.</p>\n"),
    }
}

fn drawdown_table(page: &mut String, drawdown: &Drawdown) {
    page.push_str("<table>\n<tbody>\n");
    let rows = [
        ("Depth", money(-drawdown.value)),
        ("Depth %", percent(drawdown.pct.map(|pct| -pct))),
        ("Peak", instant(drawdown.start)),
        ("Trough", instant(drawdown.trough)),
        (
            "Recovery",
            drawdown
                .recovery
                .map_or_else(|| "not recovered".to_owned(), instant),
        ),
        ("Duration", duration(drawdown.duration_seconds)),
    ];
    for (name, value) in rows {
        put!(page, "<tr><td>{name}</td><td>{value}</td></tr>\n");
    }
    page.push_str("</tbody>\n</table>\n");
}

fn rejections_table(page: &mut String, rules: &std::collections::BTreeMap<String, u64>) {
    if rules.is_empty() {
        page.push_str("<p class=\"note\">No signal was refused.</p>\n");
        return;
    }
    page.push_str("<table>\n<thead><tr><th>Rule</th><th>Refusals</th></tr></thead>\n<tbody>\n");
    for (rule, count) in rules {
        put!(page, "<tr><td>{}</td><td>{count}</td></tr>\n", escape(rule));
    }
    page.push_str("</tbody>\n</table>\n");
}

/// Text made safe for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

fn optional(value: Option<&impl std::fmt::Display>) -> String {
    value.map_or_else(|| "—".to_owned(), ToString::to_string)
}

fn dash() -> String {
    "—".to_owned()
}

/// An IST wall-clock time, to the second.
fn instant(at: Timestamp) -> String {
    format!("{} IST", calendar::to_ist(at).format("%Y-%m-%d %H:%M:%S"))
}

/// Seconds as `1d 2h 3m 4s`, leading zero units left out.
fn duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (days, hours, minutes, secs) = (
        seconds / 86_400,
        seconds % 86_400 / 3_600,
        seconds % 3_600 / 60,
        seconds % 60,
    );
    if days > 0 {
        format!("{days}d {hours}h {minutes}m {secs}s")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {secs}s")
    } else if minutes > 0 {
        format!("{minutes}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

/// Rupees with Indian digit grouping (12,34,567.89).
fn money(amount: Money) -> String {
    let text = format!("{:.2}", amount.round_to_paisa().0);
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "00"));
    let mut groups: Vec<&str> = Vec::new();
    let (mut head, tail) = whole.split_at(whole.len().saturating_sub(3));
    while head.len() > 2 {
        let (rest, group) = head.split_at(head.len() - 2);
        groups.push(group);
        head = rest;
    }
    if !head.is_empty() {
        groups.push(head);
    }
    groups.reverse();
    groups.push(tail);
    // "-0.00" would read as a loss.
    let sign = if amount.round_to_paisa().is_zero() {
        ""
    } else {
        sign
    };
    format!("{sign}{}.{fraction}", groups.join(","))
}

/// Money with a sign, coloured as a gain or a loss.
fn signed(amount: Money) -> String {
    let rounded = amount.round_to_paisa();
    let class = if rounded.0 > Decimal::ZERO {
        "pos"
    } else if rounded.0 < Decimal::ZERO {
        "neg"
    } else {
        return money(rounded);
    };
    let plus = if class == "pos" { "+" } else { "" };
    format!("<span class=\"{class}\">{plus}{}</span>", money(rounded))
}

fn money_cell(amount: Money) -> String {
    format!("<td>{}</td>", signed(amount))
}

fn optional_money(amount: Option<Money>) -> String {
    amount.map_or_else(dash, money)
}

fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(dash, |f| format!("{:.2}%", f * 100.0))
}

fn number(value: Option<f64>) -> String {
    value.map_or_else(dash, |v| format!("{v:.2}"))
}

/// An axis label for prices and equity.
fn plain(value: f64) -> String {
    match Decimal::from_f64_retain(value) {
        Some(decimal) => money(Money(decimal)),
        None => format!("{value:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{
        EquityPoint, FillRecord, History, PortfolioStart, PriceSeries, Rejection,
    };
    use crate::report::report_of;
    use alpha_panda_core::{
        FeeBreakdown, InstrumentToken, OrderId, PortfolioId, Price, Quantity, StrategyId,
    };
    use rust_decimal_macros::dec;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(1_736_135_100_000_000 + seconds * 1_000_000).unwrap()
    }

    fn history(points: usize) -> History {
        let symbol = "<script>alert('x')</script>".to_owned();
        let portfolios: Vec<PortfolioStart> = ["alpha", "beta"]
            .iter()
            .map(|name| PortfolioStart {
                portfolio_id: PortfolioId::new(format!("paper:{name}")).unwrap(),
                strategy_id: StrategyId::new(*name).unwrap(),
                initial_cash: Money(dec!(100000)),
            })
            .collect();
        let mut equity = Vec::new();
        let mut prices = Vec::new();
        for i in 0..points {
            let wave = Decimal::from((i * 37 % 101) as i64) - dec!(50);
            for (k, portfolio) in portfolios.iter().enumerate() {
                let value = dec!(100000) + wave * Decimal::from(k as i64 + 1);
                equity.push(EquityPoint {
                    at: t(i as i64 * 60),
                    portfolio_id: portfolio.portfolio_id.clone(),
                    cash: value,
                    realized_pnl: Decimal::ZERO,
                    unrealized_pnl: Decimal::ZERO,
                    fees: Decimal::ZERO,
                    equity: value,
                });
            }
            prices.push((t(i as i64 * 60), Price(dec!(100) + wave / dec!(10))));
        }
        let fill = |at: i64, side: Side| FillRecord {
            exchange_timestamp: t(at),
            portfolio_id: portfolios[0].portfolio_id.clone(),
            strategy_id: portfolios[0].strategy_id.clone(),
            order_id: OrderId::new(format!("o{at}")).unwrap(),
            instrument_token: InstrumentToken(256265),
            tradingsymbol: Some(symbol.clone()),
            side,
            quantity: Quantity(10),
            price: Price(dec!(100)),
            fees: FeeBreakdown::default(),
        };
        History {
            fills: vec![fill(60, Side::Buy), fill(180, Side::Sell)],
            rejections: vec![Rejection {
                exchange_timestamp: t(30),
                strategy_id: portfolios[1].strategy_id.clone(),
                instrument_token: InstrumentToken(256265),
                rules: vec!["<b>max_position</b>".to_owned()],
            }],
            portfolios,
            equity,
            orders: Vec::new(),
            start: Some(t(0)),
            end: Some(t(points as i64 * 60)),
            chart: Some(PriceSeries {
                instrument_token: InstrumentToken(256265),
                tradingsymbol: Some(symbol),
                points: prices,
                buys: vec![(t(60), Price(dec!(100)))],
                sells: vec![(t(180), Price(dec!(100)))],
                buy_count: 1,
                sell_count: 1,
            }),
        }
    }

    #[test]
    fn renders_a_self_contained_escaped_deterministic_page() {
        let history = history(50);
        let (report, charts) = report_of(&history);
        let page = render_html(&report, &charts);
        assert!(page.starts_with("<!DOCTYPE html>"));
        // Equity (total, per portfolio), drawdown and trades charts.
        assert_eq!(page.matches("<svg viewBox").count(), 4);
        // One buy and one sell marker on the trades chart (the legend's end in `</svg>`).
        assert_eq!(
            page.matches(&format!("fill=\"{BUY_COLOUR}\"/>\n")).count(),
            1
        );
        assert_eq!(
            page.matches(&format!("fill=\"{SELL_COLOUR}\"/>\n")).count(),
            1
        );
        // Nothing from outside the page.
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("<script") && !page.contains("src="));
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;max_position&lt;/b&gt;"));
        assert!(!page.contains("<b>"));
        // Both portfolios and the total.
        assert!(page.contains("<th>alpha</th>") && page.contains("<th>beta</th>"));
        assert!(page.contains("All portfolios"));
        assert_eq!(page, render_html(&report, &charts));
    }

    #[test]
    fn long_series_are_downsampled_to_a_bounded_size() {
        let history = history(20_000);
        let (report, charts) = report_of(&history);
        let page = render_html(&report, &charts);
        for line in page.lines().filter(|l| l.starts_with("<polyline")) {
            let points = line.matches(',').count();
            assert!(points <= MAX_SERIES_POINTS, "{points} points drawn");
        }
        assert!(page.len() < 1_000_000, "{} bytes", page.len());
        assert_eq!(page, render_html(&report, &charts));
    }

    #[test]
    fn downsampling_keeps_each_buckets_extremes_in_order() {
        let points: Vec<(i64, f64)> = (0..8)
            .map(|i| (i, [3.0, 1.0, 2.0, 5.0][i as usize % 4]))
            .collect();
        // Two buckets of four: each keeps its low (1.0 at 1, 5) and high (5.0 at 3, 7).
        assert_eq!(
            downsample(&points, 4),
            vec![(1, 1.0), (3, 5.0), (5, 1.0), (7, 5.0)]
        );
        assert_eq!(downsample(&points, 8), points);
    }

    #[test]
    fn money_uses_indian_grouping() {
        assert_eq!(money(Money(dec!(1234567.891))), "12,34,567.89");
        assert_eq!(money(Money(dec!(-999.995))), "-1,000.00");
        assert_eq!(money(Money(dec!(12))), "12.00");
        assert_eq!(money(Money(dec!(-0.001))), "0.00");
    }
}
