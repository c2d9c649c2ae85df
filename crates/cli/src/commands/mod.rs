//! One module per command.

pub mod api;
pub mod backtest;
pub mod bench;
pub mod bootstrap;
pub mod config;
pub mod dlq;
pub mod kill_switch;
pub mod kite;
pub mod migrate;
pub mod record;
pub mod report;
pub mod run;
pub mod strategy;
pub mod summary;
pub mod user;

/// The instant a flag gives (`--from`, `--to`), as RFC 3339; `None` when the flag is absent.
///
/// # Errors
/// Names the flag and shows the format when the text is not RFC 3339.
pub fn instant_flag(
    text: Option<&str>,
    flag: &str,
) -> anyhow::Result<Option<alpha_panda_core::Timestamp>> {
    use anyhow::Context;
    text.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|at| alpha_panda_core::Timestamp::from_datetime(at.with_timezone(&chrono::Utc)))
            .with_context(|| {
                format!("{flag} {t:?} is not an RFC 3339 instant (2025-11-21T09:15:00+05:30)")
            })
    })
    .transpose()
}
