//! Checkpoints hold exactly what was published (review H1): a handler's state may be saved only
//! with effects whose outputs the log acknowledged. An input whose outputs could not be published
//! before shutdown leaves the saved state without its effect and is read again; and the converse:
//! state a timer changed alone is saved once its outputs are acknowledged, with no input since.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{EventBroker, SystemClock, Timestamp};
use alpha_panda_stream::{
    CheckpointWrite, CommitOffset, Handler, HandlerError, Input, MemoryDedupStore, OutgoingRecord,
    Output, Processor, ProcessorConfig, ProcessorStats,
};
use common::*;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

const IN: &str = "ps.input";
const OUT: &str = "ps.output";

/// (handled, timer runs, next offset of `IN`) of one saved checkpoint.
type Saved = (u32, u32, Option<i64>);

/// Counts what it handled and what its timer saw; the count is its state. Every input after the
/// first waits for `later_inputs` first, if set (the test takes the broker away meanwhile).
struct Counting {
    handled: u32,
    timer_runs: u32,
    dirty: bool,
    later_inputs: Option<Arc<tokio::sync::Semaphore>>,
    timer: Option<Duration>,
    /// (handled, timer_runs, next offset of `IN`: one key, so one partition) of every checkpoint
    /// that succeeded.
    saved: Arc<Mutex<Vec<Saved>>>,
}

impl Handler for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    fn topics(&self) -> Vec<String> {
        vec![IN.into()]
    }
    fn broker(&self) -> EventBroker {
        EventBroker::Paper
    }
    async fn handle(&mut self, _input: Input<'_>) -> Result<Vec<Output>, HandlerError> {
        if let (Some(gate), true) = (&self.later_inputs, self.handled > 0) {
            gate.acquire().await.expect("gate open").forget();
        }
        self.handled += 1;
        self.dirty = true;
        Ok(vec![ack_output(OUT, self.handled)])
    }
    fn timer_interval(&self) -> Option<Duration> {
        self.timer
    }
    async fn on_timer(&mut self, _now: Timestamp) -> Result<Vec<Output>, HandlerError> {
        self.timer_runs += 1;
        self.dirty = true;
        Ok(vec![ack_output(OUT, 1000 + self.timer_runs)])
    }
    fn begin_checkpoint(
        &mut self,
        offsets: &[CommitOffset],
    ) -> Result<Option<CheckpointWrite>, HandlerError> {
        if !self.dirty {
            return Ok(None);
        }
        self.dirty = false;
        let next = offsets
            .iter()
            .find(|o| &*o.topic == IN)
            .map(|o| o.next_offset);
        let saved = self.saved.clone();
        let entry = (self.handled, self.timer_runs, next);
        Ok(Some(Box::pin(async move {
            saved.lock().push(entry);
            Ok(())
        })))
    }
    fn end_checkpoint(&mut self, _offsets: &[CommitOffset], outcome: Result<(), &HandlerError>) {
        // What the write carried is still to be saved.
        self.dirty |= outcome.is_err();
    }
}

fn config() -> ProcessorConfig {
    ProcessorConfig {
        commit_interval: Duration::from_millis(10),
        ..fast_config()
    }
}

/// The broker goes away while the second input is handled, so its output cannot be published;
/// shutdown comes while it is retried. No saved state may count that input (the first one, not
/// yet checkpointed, is read again with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_aborted_at_shutdown_is_not_in_the_saved_state() {
    let mut backend = Backend::kafka();
    backend.topics(&[IN, OUT]).await;
    // A send to a broker that is gone fails after 2 s instead of librdkafka's 30.
    let broker = backend.broker.take().expect("kafka");
    let impatient = alpha_panda_stream::Log::connect(
        &broker.log_url(),
        &[("message.timeout.ms".to_string(), "2000".to_string())].into(),
    )
    .unwrap();
    for price in [100, 101] {
        backend
            .log
            .send(OutgoingRecord::event(IN, tick(1, price)))
            .await
            .unwrap();
    }
    let saved = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = Counting {
        handled: 0,
        timer_runs: 0,
        dirty: false,
        later_inputs: Some(gate.clone()),
        timer: None,
        saved: saved.clone(),
    };
    // No checkpoint is due before shutdown: the first input is still pending when the second
    // one's publish is aborted.
    let processor = Processor::new(
        handler,
        impatient,
        Arc::new(MemoryDedupStore::new()),
        Arc::new(SystemClock),
        ProcessorConfig {
            commit_batch: 1000,
            commit_interval: Duration::from_secs(600),
            ..fast_config()
        },
    );
    let stats = processor.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(processor.run(shutdown.clone()));
    eventually("the first input's output published", || {
        ProcessorStats::get(&stats.events_out) == 1
    })
    .await;
    drop(broker);
    gate.add_permits(1);
    eventually("the second output is being retried", || {
        ProcessorStats::get(&stats.retries) > 0
    })
    .await;
    shutdown.cancel();
    // Leaving the group fails without a broker; what matters is what was saved.
    let _ = task.await.unwrap();
    let saved = saved.lock().clone();
    assert!(
        saved.iter().all(|(handled, _, _)| *handled <= 1),
        "a checkpoint counted the input whose output never reached the log: {saved:?}"
    );
}

/// A timer changes the state and publishes; no input ever arrives. The state must be saved after
/// the timer's outputs are acknowledged, and again at shutdown for the last changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_a_timer_changed_is_saved_without_any_input() {
    let backend = Backend::memory();
    backend.topics(&[IN, OUT]).await;
    let saved = Arc::new(Mutex::new(Vec::new()));
    let handler = Counting {
        handled: 0,
        timer_runs: 0,
        dirty: false,
        later_inputs: None,
        timer: Some(Duration::from_millis(20)),
        saved: saved.clone(),
    };
    let processor = Processor::new(
        handler,
        backend.log.clone(),
        Arc::new(MemoryDedupStore::new()),
        Arc::new(SystemClock),
        config(),
    );
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(processor.run(shutdown.clone()));
    eventually("a timer's change saved", || {
        saved
            .lock()
            .iter()
            .any(|(_, timer_runs, _)| *timer_runs >= 2)
    })
    .await;
    shutdown.cancel();
    let handler = task.await.unwrap().unwrap();
    let saved = saved.lock().clone();
    assert_eq!(
        saved.last().map(|(_, runs, _)| *runs),
        Some(handler.timer_runs),
        "the last timer's change was not saved at shutdown: {saved:?}"
    );
    let published = read_events(&backend.log, OUT).await;
    assert_eq!(published.len() as u32, handler.timer_runs);
}

/// The broker hangs (stopped) once an input's output is handed to it. The checkpoint that covers
/// the input is not written while the output is unacknowledged, yet the processor does not wait
/// for it inline: its timer keeps running and publishing. When the broker comes back, the
/// checkpoint is written with the input in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_is_written_only_once_its_outputs_are_acknowledged_and_input_goes_on_meanwhile(
) {
    let mut backend = Backend::kafka();
    let broker = backend.broker.take().expect("kafka");
    let log = backend.log.clone();
    let hung =
        second_output_to_a_stopped_broker(&backend, &broker, log, Some(Duration::from_millis(20)))
            .await;
    let published = ProcessorStats::get(&hung.stats.events_out);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let while_hung = hung.saved.lock().clone();
    let published_while_hung = ProcessorStats::get(&hung.stats.events_out) - published;
    signal(broker.pid(), "CONT");
    assert!(
        while_hung.iter().all(|(handled, _, _)| *handled <= 1),
        "a checkpoint counted an input whose output the broker had not acknowledged: {while_hung:?}"
    );
    assert!(
        published_while_hung >= 5,
        "the processor stopped while the broker hung: its 20 ms timer published \
         {published_while_hung} outputs in 500 ms"
    );
    eventually(
        "the second input checkpointed once the broker is back",
        || {
            hung.saved
                .lock()
                .iter()
                .any(|(handled, _, _)| *handled == 2)
        },
    )
    .await;
    hung.shutdown.cancel();
    hung.task.await.unwrap().unwrap();
    let outputs = read_events(&backend.log, OUT).await;
    assert!(
        outputs.len() as u64 >= ProcessorStats::get(&hung.stats.events_out),
        "outputs handed to the log are missing from it"
    );
    drop(broker);
}

/// The broker hangs longer than the producer waits for it (`message.timeout.ms`), so the output
/// of the second input is given up on while its checkpoint waits for it; tansu then fences the
/// producer, whose epoch librdkafka bumped. That checkpoint is not written; the output is sent
/// again, through a new producer, once the broker is back, and only then is the input saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_the_producer_gave_up_on_is_sent_again_before_its_input_is_saved() {
    let mut backend = Backend::kafka();
    let broker = backend.broker.take().expect("kafka");
    let impatient = alpha_panda_stream::Log::connect(
        &broker.log_url(),
        &[("message.timeout.ms".to_string(), "1500".to_string())].into(),
    )
    .unwrap();
    let hung = second_output_to_a_stopped_broker(&backend, &broker, impatient, None).await;
    // Past the producer's limit: the output is given up on, and sending it again fails too.
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let while_hung = hung.saved.lock().clone();
    signal(broker.pid(), "CONT");
    assert!(
        while_hung.iter().all(|(handled, _, _)| *handled <= 1),
        "a checkpoint counted an input whose output the producer gave up on: {while_hung:?}"
    );
    eventually(
        "the second input checkpointed once its output is in the log",
        || {
            hung.saved
                .lock()
                .iter()
                .any(|(handled, _, _)| *handled == 2)
        },
    )
    .await;
    let outputs = read_events(&backend.log, OUT).await;
    assert!(
        outputs.iter().any(|e| matches!(
            &e.payload,
            alpha_panda_core::Payload::OrderAck(ack) if ack.instrument_token.0 == 2
        )),
        "the second input was saved but its output is not in the log: {outputs:?}"
    );
    hung.shutdown.cancel();
    let _ = hung.task.await.unwrap();
    drop(broker);
}

/// A running [`Counting`] processor whose second output went to a stopped broker.
struct Hung {
    saved: Arc<Mutex<Vec<Saved>>>,
    stats: Arc<ProcessorStats>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<Counting, alpha_panda_stream::ProcessorError>>,
}

/// Starts a [`Counting`] processor on `log` (over `backend`'s broker, `broker`), with `timer`;
/// once its first input is checkpointed, sends a second one, which waits in the handler while
/// `broker` is stopped, then lets it through: its output is handed to a broker that does not
/// answer. The caller continues the broker.
async fn second_output_to_a_stopped_broker(
    backend: &Backend,
    broker: &alpha_panda_stream::testing::TansuBroker,
    log: alpha_panda_stream::Log,
    timer: Option<Duration>,
) -> Hung {
    backend.topics(&[IN, OUT]).await;
    let send = |price| {
        let log = backend.log.clone();
        async move {
            log.send(OutgoingRecord::event(IN, tick(1, price)))
                .await
                .unwrap();
        }
    };
    send(100).await;
    let saved = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = Counting {
        handled: 0,
        timer_runs: 0,
        dirty: false,
        later_inputs: Some(gate.clone()),
        timer,
        saved: saved.clone(),
    };
    let processor = Processor::new(
        handler,
        log,
        Arc::new(MemoryDedupStore::new()),
        Arc::new(SystemClock),
        config(),
    );
    let stats = processor.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(processor.run(shutdown.clone()));
    eventually("the first input checkpointed", || {
        saved.lock().iter().any(|(handled, _, _)| *handled == 1)
    })
    .await;
    send(101).await;
    eventually("the second input taken", || {
        ProcessorStats::get(&stats.events_in) == 2
    })
    .await;
    signal(broker.pid(), "STOP");
    gate.add_permits(1);
    Hung {
        saved,
        stats,
        shutdown,
        task,
    }
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}
