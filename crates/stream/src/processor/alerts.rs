//! Alerts a processor raises on `system.alerts` while a trouble lasts (its checkpoints fail, its
//! dedup store or a handler's dependency is down), and clears when it is over: one alert for a run
//! of failures, not one per failure.

use std::time::Duration;

use alpha_panda_core::{Alert, AlertKind, AlertSeverity, Envelope, Payload, Timestamp, TopicMap};
use tracing::{debug, error, warn};

use super::Processor;
use crate::handler::Handler;
use crate::record::OutgoingRecord;
use crate::stats::ProcessorStats;

/// How many times an alert is offered to the log, a second apart, before it is only logged.
const ALERT_ATTEMPTS: u32 = 30;
/// A dependency that failed this many retries in a row raises an alert (a blip raises none).
pub(super) const ALERT_AFTER_ATTEMPTS: u32 = 3;
/// How long leaving waits for alerts still being published.
const ALERT_FLUSH_LIMIT: Duration = Duration::from_secs(5);

/// What a processor raises an alert for while it lasts, and clears when it is over.
#[derive(Debug, Clone, Copy)]
pub(super) enum Trouble {
    /// Checkpoints fail: the state cannot be saved.
    Checkpoints = 0,
    /// The dedup store does not answer.
    DedupStore = 1,
    /// A handler's dependency is down (an infrastructure error).
    Dependency = 2,
}

impl Trouble {
    pub(super) const COUNT: usize = 3;

    fn began(self) -> AlertKind {
        match self {
            Trouble::Checkpoints => AlertKind::CheckpointFailing,
            Trouble::DedupStore => AlertKind::DedupStoreUnavailable,
            Trouble::Dependency => AlertKind::DependencyDown,
        }
    }

    fn ended(self) -> AlertKind {
        match self {
            Trouble::Checkpoints => AlertKind::CheckpointRecovered,
            Trouble::DedupStore => AlertKind::DedupStoreRecovered,
            Trouble::Dependency => AlertKind::DependencyRecovered,
        }
    }

    fn ended_message(self) -> &'static str {
        match self {
            Trouble::Checkpoints => "it saves its state",
            Trouble::DedupStore => "its dedup store answers",
            Trouble::Dependency => "its dependency answers",
        }
    }
}

impl<H: Handler> Processor<H> {
    /// `trouble` happened (again): the first time of a run of them raises an alert.
    pub(super) fn trouble_began(&mut self, trouble: Trouble, error: &dyn std::fmt::Display) {
        let slot = &mut self.troubled_since[trouble as usize];
        if slot.is_some() {
            return;
        }
        let since = self.clock.now();
        *slot = Some(since);
        let service = &self.service;
        let message = match trouble {
            Trouble::Checkpoints => format!(
                "{service} cannot save its state ({error}); its commits are held back, and after \
                 {} unsaved records its input too, until what failed answers again (database.url, \
                 cache.url)",
                self.config.max_unsaved
            ),
            Trouble::DedupStore => format!(
                "{service} cannot reach its dedup store ({error}); its input waits for it \
                 (cache.url)"
            ),
            Trouble::Dependency => format!(
                "{service} waits for a dependency that is down ({error}); its input waits with it"
            ),
        };
        self.raise(trouble.began(), AlertSeverity::Warning, message, since);
    }

    /// `trouble` is over: clears its alert, if one was raised.
    pub(super) fn trouble_ended(&mut self, trouble: Trouble) {
        if let Some(since) = self.troubled_since[trouble as usize].take() {
            let message = format!("{}: {} again", self.service, trouble.ended_message());
            self.raise(trouble.ended(), AlertSeverity::Info, message, since);
        }
    }

    /// Publishes an alert on `system.alerts` in the background: an alert never holds the stream
    /// up, and one that cannot be published (the log is down too) is logged instead.
    pub(super) fn raise(
        &mut self,
        kind: AlertKind,
        severity: AlertSeverity,
        message: String,
        since: Timestamp,
    ) {
        ProcessorStats::incr(&self.stats.alerts, 1);
        let alert = Alert {
            kind,
            severity,
            service: self.service.to_string(),
            message,
            since,
        };
        let envelope = Envelope::root(
            Payload::Alert(alert),
            self.service.to_string(),
            self.handler.broker(),
            self.service.clone(),
            self.clock.now(),
        );
        let log = self.log.clone();
        self.alerts_in_flight.retain(|task| !task.is_finished());
        self.alerts_in_flight.push(tokio::spawn(async move {
            let record = OutgoingRecord::event(TopicMap::alerts(), envelope);
            for attempt in 0..ALERT_ATTEMPTS {
                match log.send_all_or_return(vec![record.clone()]).await {
                    Ok(_) => return,
                    Err((e, _)) => {
                        debug!(error = %e, attempt, kind = kind.as_str(), "alert not published yet");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            error!(kind = kind.as_str(), "the alert could not be published on {}", TopicMap::alerts());
        }));
    }

    /// Gives the alerts still being published a few seconds to reach the log before leaving.
    pub(super) async fn flush_alerts(&mut self) {
        let tasks = std::mem::take(&mut self.alerts_in_flight);
        let all = async {
            for task in tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(ALERT_FLUSH_LIMIT, all).await.is_err() {
            warn!("alerts still unpublished at shutdown are only in the log");
        }
    }
}
