//! The process's log lines for `GET /api/v1/logs`: a `tracing` layer that keeps the last lines
//! and fans them out to every log stream.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Lines kept for a new stream.
pub const LOG_CAPACITY: usize = 2_000;

/// One log line.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// Sequence number.
    pub seq: u64,
    /// When (RFC 3339).
    pub at: String,
    /// `error`, `warn`, `info`, `debug`, `trace`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message and its fields.
    pub message: String,
}

#[derive(Debug)]
struct Kept {
    next: u64,
    lines: VecDeque<Arc<LogLine>>,
}

/// The log lines' hub; also the `tracing` layer that feeds it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogHub {
    kept: Arc<Mutex<Kept>>,
    sender: broadcast::Sender<Arc<LogLine>>,
}

impl Default for LogHub {
    fn default() -> Self {
        let (sender, _) = broadcast::channel(1024);
        Self {
            kept: Arc::new(Mutex::new(Kept {
                next: 1,
                lines: VecDeque::new(),
            })),
            sender,
        }
    }
}

impl LogHub {
    /// The lines kept, and a receiver of the next ones.
    pub fn subscribe(&self) -> (Vec<Arc<LogLine>>, broadcast::Receiver<Arc<LogLine>>) {
        let kept = self.kept.lock();
        (
            kept.lines.iter().cloned().collect(),
            self.sender.subscribe(),
        )
    }

    fn push(&self, level: Level, target: &str, message: String) {
        let line = {
            let mut kept = self.kept.lock();
            let line = Arc::new(LogLine {
                seq: kept.next,
                at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                level: level.as_str().to_lowercase(),
                target: target.to_string(),
                message,
            });
            kept.next += 1;
            kept.lines.push_back(line.clone());
            if kept.lines.len() > LOG_CAPACITY {
                kept.lines.pop_front();
            }
            line
        };
        let _ = self.sender.send(line);
    }
}

/// Collects an event's message and fields into one line.
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for LogHub {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Line(String::new());
        event.record(&mut line);
        self.push(*meta.level(), meta.target(), line.0);
    }
}

/// Whether a line at `level` passes a stream asking for `wanted` and above.
pub fn passes(level: &str, wanted: Level) -> bool {
    let rank = |l: &str| match l {
        "error" => 1,
        "warn" => 2,
        "info" => 3,
        "debug" => 4,
        _ => 5,
    };
    rank(level) <= rank(&wanted.as_str().to_lowercase())
}
