//! The checkpoint hook (ARCHITECTURE §4 rule 4): the runtime asks a stateful handler to make its
//! state durable with the offsets it reflects before every commit, runs the write in the background
//! while records keep flowing, commits only what a successful write covers, and a failed checkpoint
//! keeps the commit back.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    AlertKind, AlertSeverity, DedupStore, EventBroker, EventType, Payload, SystemClock, TopicMap,
};
use alpha_panda_stream::{
    CheckpointWrite, CommitOffset, Handler, HandlerError, Input, MemoryDedupStore, OutgoingRecord,
    Output, Processor, ProcessorStats,
};
use common::*;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

const IN: &str = "cp.input";

struct Stateful {
    seen: Arc<Mutex<Vec<i64>>>,
    /// Offsets of every checkpoint whose write succeeded, in the order they ended.
    checkpoints: Arc<Mutex<Vec<Vec<CommitOffset>>>>,
    fail_checkpoints: bool,
    /// Writes wait for a permit here when set: a slow database.
    gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Inputs handled when each checkpoint began; one entry per checkpoint begun.
    begun: Arc<Mutex<Vec<usize>>>,
    /// How long each input takes.
    pause: Duration,
}

impl Handler for Stateful {
    fn name(&self) -> &str {
        "stateful"
    }
    fn topics(&self) -> Vec<String> {
        vec![IN.into()]
    }
    fn broker(&self) -> EventBroker {
        EventBroker::Paper
    }
    // Every input, ticks included, goes through deduplication here.
    fn deduplicate(&self, _: EventType) -> bool {
        true
    }
    async fn handle(&mut self, input: Input<'_>) -> Result<Vec<Output>, HandlerError> {
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        self.seen.lock().push(input.position.offset);
        Ok(Vec::new())
    }
    fn begin_checkpoint(
        &mut self,
        _offsets: &[CommitOffset],
    ) -> Result<Option<CheckpointWrite>, HandlerError> {
        self.begun.lock().push(self.seen.lock().len());
        let fail = self.fail_checkpoints;
        let gate = self.gate.clone();
        Ok(Some(Box::pin(async move {
            if let Some(gate) = gate {
                gate.acquire().await.expect("gate open").forget();
            }
            if fail {
                return Err(HandlerError::infrastructure("database down"));
            }
            Ok(())
        })))
    }
    fn end_checkpoint(&mut self, offsets: &[CommitOffset], outcome: Result<(), &HandlerError>) {
        if outcome.is_ok() {
            self.checkpoints.lock().push(offsets.to_vec());
        }
    }
}

/// A running `Stateful` processor and what the tests look at.
struct Running {
    seen: Arc<Mutex<Vec<i64>>>,
    checkpoints: Arc<Mutex<Vec<Vec<CommitOffset>>>>,
    begun: Arc<Mutex<Vec<usize>>>,
    dedup: Arc<MemoryDedupStore>,
    group: String,
    stats: Arc<ProcessorStats>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<Stateful, alpha_panda_stream::ProcessorError>>,
}

impl Running {
    /// Starts a `Stateful` processor on `backend`, with a fresh dedup store; its checkpoint writes
    /// fail when `fail_checkpoints`, and wait for a permit of `gate` when there is one.
    fn start(
        backend: &Backend,
        fail_checkpoints: bool,
        gate: Option<Arc<tokio::sync::Semaphore>>,
    ) -> Self {
        Self::start_with(
            backend,
            fail_checkpoints,
            gate,
            Duration::ZERO,
            fast_config(),
        )
    }

    /// As [`Running::start`], each input taking `pause`, under `config`.
    fn start_with(
        backend: &Backend,
        fail_checkpoints: bool,
        gate: Option<Arc<tokio::sync::Semaphore>>,
        pause: Duration,
        config: alpha_panda_stream::ProcessorConfig,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let checkpoints = Arc::new(Mutex::new(Vec::new()));
        let begun = Arc::new(Mutex::new(Vec::new()));
        let handler = Stateful {
            seen: seen.clone(),
            checkpoints: checkpoints.clone(),
            fail_checkpoints,
            gate,
            begun: begun.clone(),
            pause,
        };
        let dedup = Arc::new(MemoryDedupStore::new());
        let processor = Processor::new(
            handler,
            backend.log.clone(),
            dedup.clone(),
            Arc::new(SystemClock),
            config,
        );
        let group = processor.group().to_string();
        let stats = processor.stats();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(processor.run(shutdown.clone()));
        Self {
            seen,
            checkpoints,
            begun,
            dedup,
            group,
            stats,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }
}

async fn run_once(
    backend: &Backend,
    fail_checkpoints: bool,
    expect_seen: usize,
) -> (Vec<i64>, Vec<Vec<CommitOffset>>) {
    let running = Running::start(backend, fail_checkpoints, None);
    assert_eq!(running.group, "alpha-panda.stateful.paper");
    eventually("inputs handled", || {
        running.seen.lock().len() >= expect_seen
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (seen, checkpoints) = (running.seen.clone(), running.checkpoints.clone());
    running.stop().await;
    let seen = seen.lock().clone();
    let checkpoints = checkpoints.lock().clone();
    (seen, checkpoints)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_wait_for_a_durable_checkpoint() {
    let backend = Backend::memory();
    backend
        .log
        .create_topic(IN, 1, 1, 86_400_000)
        .await
        .unwrap();
    for n in 0..3 {
        backend
            .log
            .send(OutgoingRecord::event(IN, tick(1, 100 + n)))
            .await
            .unwrap();
    }

    // The state cannot be made durable: nothing may be committed, so everything is read again.
    let (seen, checkpoints) = run_once(&backend, true, 3).await;
    assert_eq!(seen, vec![0, 1, 2]);
    assert!(checkpoints.is_empty());

    let (seen, checkpoints) = run_once(&backend, false, 3).await;
    assert_eq!(
        seen,
        vec![0, 1, 2],
        "uncommitted inputs are delivered again"
    );
    let last = checkpoints.last().expect("a checkpoint before the commit");
    assert_eq!(last.len(), 1);
    assert_eq!(&*last[0].topic, IN);
    assert_eq!(last[0].next_offset, 3);

    // Checkpointed and committed: a third run reads nothing old.
    backend
        .log
        .send(OutgoingRecord::event(IN, tick(1, 200)))
        .await
        .unwrap();
    let (seen, _) = run_once(&backend, false, 1).await;
    assert_eq!(seen, vec![3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_checkpoint_write_never_stalls_the_stream() {
    let backend = Backend::memory();
    backend
        .log
        .create_topic(IN, 1, 1, 86_400_000)
        .await
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let running = Running::start(&backend, false, Some(gate.clone()));
    let (seen, checkpoints, begun) = (&running.seen, &running.checkpoints, &running.begun);

    // The first input's checkpoint begins and hangs on the closed gate…
    backend
        .log
        .send(OutgoingRecord::event(IN, tick(1, 100)))
        .await
        .unwrap();
    eventually("a checkpoint begun", || begun.lock().len() == 1).await;
    // …while later inputs are handled all the same, and no second write starts over the first.
    for n in 1..5 {
        backend
            .log
            .send(OutgoingRecord::event(IN, tick(1, 100 + n)))
            .await
            .unwrap();
    }
    eventually("inputs handled during the write", || seen.lock().len() == 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(begun.lock().len(), 1, "one checkpoint write at a time");
    assert!(checkpoints.lock().is_empty(), "nothing ended yet");

    // The write completes: its offsets (just the first input) are committed, and the next round
    // covers the rest.
    gate.add_permits(1);
    eventually("first checkpoint ended", || !checkpoints.lock().is_empty()).await;
    assert_eq!(checkpoints.lock()[0][0].next_offset, 1);
    eventually("a second checkpoint begun", || begun.lock().len() == 2).await;
    gate.add_permits(100);
    eventually("second checkpoint ended", || {
        checkpoints
            .lock()
            .last()
            .is_some_and(|last| last[0].next_offset == 5)
    })
    .await;
    running.stop().await;

    // Everything was committed: a restart reads only what is new.
    backend
        .log
        .send(OutgoingRecord::event(IN, tick(1, 200)))
        .await
        .unwrap();
    let (seen, _) = run_once(&backend, false, 1).await;
    assert_eq!(seen, vec![5]);
}

/// An input is marked in the dedup store only once the checkpoint holding its effect is durable:
/// marked earlier, it would be skipped as a duplicate, and its effect lost, if the process died
/// before the write and the input was read again. A duplicate arriving meanwhile is still skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_marked_processed_only_when_their_checkpoint_is_durable() {
    let backend = Backend::memory();
    backend
        .log
        .create_topic(IN, 1, 1, 86_400_000)
        .await
        .unwrap();
    let input = tick(1, 100);
    backend
        .log
        .send(OutgoingRecord::event(IN, input.clone()))
        .await
        .unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let running = Running::start(&backend, false, Some(gate.clone()));
    let Running {
        seen,
        checkpoints,
        dedup,
        group,
        stats,
        ..
    } = &running;
    eventually("the input handled", || seen.lock().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !dedup.is_processed(group, input.id).await.unwrap(),
        "marked while its checkpoint is still being written"
    );

    // The same event again, at a new offset, before the mark: still recognised.
    backend
        .log
        .send(OutgoingRecord::event(IN, input.clone()))
        .await
        .unwrap();
    eventually("the duplicate skipped", || {
        ProcessorStats::get(&stats.duplicates) == 1
    })
    .await;
    assert_eq!(seen.lock().len(), 1);

    gate.add_permits(100);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !dedup.is_processed(group, input.id).await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never marked after the durable checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!checkpoints.lock().is_empty());
    running.stop().await;
}

/// Within one fetched batch the runtime reads the clock only every few records while they go by
/// quickly; slow records are looked at one by one, so a commit still falls due on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_records_within_one_batch_are_committed_on_time() {
    let backend = Backend::memory();
    backend.topics(&[IN]).await;
    // On the log before the processor starts: one fetched batch.
    for n in 0..30 {
        backend
            .log
            .send(OutgoingRecord::event(IN, tick(1, 100 + n)))
            .await
            .unwrap();
    }
    let config = alpha_panda_stream::ProcessorConfig {
        commit_batch: 1_000_000,
        commit_interval: Duration::from_millis(10),
        ..fast_config()
    };
    let running = Running::start_with(&backend, false, None, Duration::from_millis(3), config);
    eventually("every record handled", || running.seen.lock().len() == 30).await;
    let at = running.begun.lock().clone();
    running.stop().await;

    // 10 ms is four records of 3 ms; looking every 16 records would first commit after 16.
    assert!(
        at.first().is_some_and(|&first| first <= 8),
        "commits fell due after {at:?} records"
    );
    assert!(at.len() >= 3, "commits fell due after {at:?} records");
}

/// A checkpoint write that hangs (review M5) times out, is counted and retried; input stops once
/// too much is unsaved instead of queueing without bound; and shutdown still finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_checkpoint_times_out_holds_input_back_and_lets_shutdown_finish() {
    let backend = Backend::memory();
    backend.topics(&[IN]).await;
    for n in 0..50 {
        backend
            .log
            .send(OutgoingRecord::event(IN, tick(1, 100 + n)))
            .await
            .unwrap();
    }
    let config = alpha_panda_stream::ProcessorConfig {
        commit_batch: 1,
        checkpoint_timeout: Duration::from_millis(50),
        max_unsaved: 5,
        ..fast_config()
    };
    // The gate never opens: every write hangs.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let running = Running::start_with(&backend, false, Some(gate), Duration::ZERO, config);
    eventually("the timeouts counted", || {
        ProcessorStats::get(&running.stats.checkpoint_failures) >= 3
    })
    .await;
    assert_eq!(ProcessorStats::get(&running.stats.held_back), 1);
    let seen = running.seen.lock().len();
    assert!(
        seen <= 6,
        "input kept flowing while nothing was saved: {seen}"
    );
    assert!(running.checkpoints.lock().is_empty());
    let stopped = tokio::time::timeout(Duration::from_secs(10), running.stop()).await;
    assert!(stopped.is_ok(), "shutdown hung on the checkpoint");
}

/// Failing checkpoints raise one alert on `system.alerts` (not one per failure), and the first
/// success after them clears it with a second one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_checkpoints_raise_an_alert_and_recovery_clears_it() {
    let backend = Backend::memory();
    backend.topics(&[IN]).await;
    for n in 0..20 {
        backend
            .log
            .send(OutgoingRecord::event(IN, tick(1, 100 + n)))
            .await
            .unwrap();
    }
    let config = alpha_panda_stream::ProcessorConfig {
        commit_batch: 1,
        checkpoint_timeout: Duration::from_millis(50),
        ..fast_config()
    };
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let running = Running::start_with(&backend, false, Some(gate.clone()), Duration::ZERO, config);
    eventually("several failures", || {
        ProcessorStats::get(&running.stats.checkpoint_failures) >= 3
    })
    .await;
    let raised = wait_for_events(&backend.log, TopicMap::alerts(), 1).await;
    assert_eq!(raised.len(), 1, "one alert for a run of failures");
    let Payload::Alert(alert) = &raised[0].payload else {
        panic!("not an alert: {:?}", raised[0]);
    };
    assert_eq!(alert.kind, AlertKind::CheckpointFailing);
    assert_eq!(alert.severity, AlertSeverity::Warning);
    assert_eq!(alert.service, "stateful");
    assert!(alert.message.contains("database.url"), "{}", alert.message);
    assert_eq!(raised[0].broker, EventBroker::Paper);

    // The database answers again.
    gate.add_permits(10_000);
    eventually("a checkpoint succeeded", || {
        !running.checkpoints.lock().is_empty()
    })
    .await;
    let raised = wait_for_events(&backend.log, TopicMap::alerts(), 2).await;
    let kinds: Vec<AlertKind> = raised
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Alert(a) => Some(a.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [AlertKind::CheckpointFailing, AlertKind::CheckpointRecovered]
    );
    assert_eq!(ProcessorStats::get(&running.stats.alerts), 2);
    running.stop().await;
}
