//! The checkpoint hook (ARCHITECTURE §4 rule 4): the runtime asks a stateful handler to make its
//! state durable with the offsets it reflects right before every commit, and a failed checkpoint keeps
//! the commit back.

mod common;

use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{EventBroker, SystemClock};
use alpha_panda_stream::{
    CommitOffset, Handler, HandlerError, Input, MemoryDedupStore, OutgoingRecord, Output, Processor,
};
use common::*;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

const IN: &str = "cp.input";

struct Stateful {
    seen: Arc<Mutex<Vec<i64>>>,
    checkpoints: Arc<Mutex<Vec<Vec<CommitOffset>>>>,
    fail_checkpoints: bool,
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
    async fn handle(&mut self, input: Input<'_>) -> Result<Vec<Output>, HandlerError> {
        self.seen.lock().push(input.position.offset);
        Ok(Vec::new())
    }
    async fn checkpoint(&mut self, offsets: &[CommitOffset]) -> Result<(), HandlerError> {
        if self.fail_checkpoints {
            return Err(HandlerError::infrastructure("database down"));
        }
        self.checkpoints.lock().push(offsets.to_vec());
        Ok(())
    }
}

async fn run_once(
    backend: &Backend,
    fail_checkpoints: bool,
    expect_seen: usize,
) -> (Vec<i64>, Vec<Vec<CommitOffset>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let checkpoints = Arc::new(Mutex::new(Vec::new()));
    let handler = Stateful {
        seen: seen.clone(),
        checkpoints: checkpoints.clone(),
        fail_checkpoints,
    };
    let processor = Processor::new(
        handler,
        backend.log.clone(),
        Arc::new(MemoryDedupStore::new()),
        Arc::new(SystemClock),
        fast_config(),
    );
    assert_eq!(processor.group(), "alpha-panda.stateful.paper");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(processor.run(shutdown.clone()));
    eventually("inputs handled", || seen.lock().len() >= expect_seen).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
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
