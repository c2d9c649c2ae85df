//! `alpha-panda dlq list | replay | purge`: operator tools over the `{topic}.dlq` topics of the
//! configured log. A replayed event keeps its id, so deduplication still protects downstream.

use std::process::ExitCode;
use std::time::Duration;

use alpha_panda_core::{EventId, Timestamp};
use alpha_panda_stream::dlq::{self, DlqEntry, DlqFilter, ReplayTarget};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use crate::settings::Settings;

/// Arguments of `dlq`.
#[derive(Debug, Args)]
pub struct DlqArgs {
    /// The action.
    #[command(subcommand)]
    pub action: DlqAction,
}

/// Time-range and topic selection shared by the actions.
#[derive(Debug, Clone, Args)]
pub struct Selection {
    /// Only this topic (the original topic or its `.dlq`).
    #[arg(long)]
    pub topic: Option<String>,
    /// Failed at or after this instant (RFC 3339) or this long ago (`2h`, `3d`).
    #[arg(long)]
    pub since: Option<String>,
    /// Failed before this instant (RFC 3339) or this long ago.
    #[arg(long)]
    pub until: Option<String>,
}

/// The DLQ actions.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// List dead-lettered records, oldest first.
    List {
        /// Which records.
        #[command(flatten)]
        selection: Selection,
        /// One JSON object per record, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Send records back to their original topic (keeping their event ids).
    Replay {
        /// The DLQ event id or the original event id of one record.
        #[arg(long, conflicts_with_all = ["topic", "since", "until"])]
        id: Option<String>,
        /// Or every record in a range.
        #[command(flatten)]
        selection: Selection,
        /// The consumer group the records are for (`alpha-panda.portfolio_manager.paper`); by
        /// default the group of the service that dead-lettered each record, so the groups that
        /// had handled it do not handle it again.
        #[arg(long, conflicts_with = "all_groups")]
        group: Option<String>,
        /// For every group that reads the original topic.
        #[arg(long)]
        all_groups: bool,
    },
    /// Delete records that failed before a given age.
    Purge {
        /// Age (`7d`, `12h`) or RFC 3339 instant: records that failed before it are removed.
        #[arg(long)]
        older_than: String,
        /// Only this topic.
        #[arg(long)]
        topic: Option<String>,
    },
}

/// Runs a DLQ action.
///
/// # Errors
/// When the log cannot be read or written, or the arguments are malformed.
pub async fn run(settings: &Settings, args: &DlqArgs) -> anyhow::Result<ExitCode> {
    let log = settings.log.connect()?;
    if log.backend_name() == "memory" {
        eprintln!(
            "note: log.url is memory://, which lives inside a running `alpha-panda run`; \
             point log.url at kafka:// to manage its dead letters from here"
        );
    }
    let now = Timestamp::from_datetime(chrono::Utc::now());
    match &args.action {
        DlqAction::List { selection, json } => {
            let entries = dlq::list(&log, &selection.filter(now)?).await?;
            print_entries(&entries, *json)?;
        }
        DlqAction::Replay {
            id,
            selection,
            group,
            all_groups,
        } => {
            let target = match (group, all_groups) {
                (Some(group), _) => {
                    if !group.starts_with("alpha-panda.") {
                        bail!(
                            "--group {group:?} is not an Alpha Panda consumer group; groups are \
                             alpha-panda.{{service}} or alpha-panda.{{service}}.{{broker}}"
                        );
                    }
                    ReplayTarget::Group(group.clone())
                }
                (None, true) => ReplayTarget::AllGroups,
                (None, false) => ReplayTarget::FailedGroup,
            };
            let replayed = match id {
                Some(id) => {
                    let id: EventId = id
                        .parse()
                        .with_context(|| format!("--id {id:?} is not an event id (a UUID)"))?;
                    vec![dlq::replay_one(&log, id, &target).await?]
                }
                None => {
                    if selection.topic.is_none()
                        && selection.since.is_none()
                        && selection.until.is_none()
                    {
                        bail!("replay needs --id, or a range with --topic/--since/--until");
                    }
                    dlq::replay_matching(&log, &selection.filter(now)?, &target).await?
                }
            };
            log.flush().await;
            for entry in &replayed {
                let for_group = match &target {
                    ReplayTarget::FailedGroup => dlq::failed_group(&entry.message),
                    ReplayTarget::Group(group) => group.clone(),
                    ReplayTarget::AllGroups => "every group".to_string(),
                };
                println!(
                    "replayed {} → {} for {for_group} (offset {} of {})",
                    entry
                        .original_id()
                        .map(|i| i.to_string())
                        .unwrap_or_else(|| entry.id.to_string()),
                    entry.message.original_topic,
                    entry.offset,
                    entry.dlq_topic
                );
            }
            println!("{} record(s) replayed", replayed.len());
        }
        DlqAction::Purge { older_than, topic } => {
            let cutoff = parse_instant(older_than, now)
                .with_context(|| format!("--older-than {older_than:?}"))?;
            let removed = dlq::purge(&log, topic.as_deref(), cutoff).await?;
            println!("{removed} record(s) purged (failed before {cutoff})");
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl Selection {
    fn filter(&self, now: Timestamp) -> anyhow::Result<DlqFilter> {
        let parse = |flag: &str, value: &Option<String>| -> anyhow::Result<Option<Timestamp>> {
            value
                .as_deref()
                .map(|v| parse_instant(v, now).with_context(|| format!("--{flag} {v:?}")))
                .transpose()
        };
        Ok(DlqFilter {
            topic: self.topic.clone(),
            since: parse("since", &self.since)?,
            until: parse("until", &self.until)?,
        })
    }
}

/// An RFC 3339 instant, or a duration before `now` (`90m`, `7d`).
fn parse_instant(text: &str, now: Timestamp) -> anyhow::Result<Timestamp> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Timestamp::from_datetime(at.with_timezone(&chrono::Utc)));
    }
    let ago: Duration = humantime::parse_duration(text).map_err(|_| {
        anyhow::anyhow!("expected an RFC 3339 time or a duration such as 7d or 12h")
    })?;
    let micros = i64::try_from(ago.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_unix_micros(now.unix_micros().saturating_sub(micros))
        .ok_or_else(|| anyhow::anyhow!("duration reaches before the Unix epoch"))
}

fn print_entries(entries: &[DlqEntry], json: bool) -> anyhow::Result<()> {
    if json {
        for entry in entries {
            println!("{}", serde_json::to_string(entry)?);
        }
        return Ok(());
    }
    println!(
        "{:<36}  {:<27}  {:<24}  {:<14}  {:<16}  ERROR",
        "ID", "FAILED_AT", "ORIGINAL", "CLASS", "SERVICE"
    );
    for e in entries {
        let m = &e.message;
        println!(
            "{:<36}  {:<27}  {:<24}  {:<14}  {:<16}  {}",
            e.id,
            m.failed_at.to_string(),
            format!(
                "{}[{}]@{}",
                m.original_topic, m.original_partition, m.original_offset
            ),
            m.error_class.as_str(),
            m.service,
            m.error_message
        );
    }
    println!("{} record(s)", entries.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_absolute_or_relative() {
        let now = Timestamp::from_unix_micros(1_763_800_000_000_000).unwrap();
        let ago = parse_instant("2h", now).unwrap();
        assert_eq!(now.unix_micros() - ago.unix_micros(), 7_200_000_000);
        let abs = parse_instant("2025-11-22T08:26:40Z", now).unwrap();
        assert_eq!(abs.unix_micros(), 1_763_800_000_000_000);
        assert!(parse_instant("yesterday", now).is_err());
    }
}
