//! One writer per state across a rebalance (ARCHITECTURE §4 rule 6): when the group revokes a
//! member's partitions and hands them back, it resumes at the committed offset, below what the
//! member had processed. The runtime passes over what it has read already, by position, so the
//! state in memory never applies a record twice (ticks are not deduplicated by id).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{EventBroker, EventType, SystemClock};
use alpha_panda_stream::{
    CheckpointWrite, CommitOffset, Handler, HandlerError, Input, MemoryDedupStore, OutgoingRecord,
    Output, Processor, ProcessorStats,
};
use common::*;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

const IN: &str = "rb.input";

/// Records (partition, offset) of every input it applies; its checkpoints always fail, so nothing
/// is ever committed and every handover starts at the beginning.
struct Applied {
    applied: Arc<Mutex<Vec<(i32, i64)>>>,
}

impl Handler for Applied {
    fn name(&self) -> &str {
        "applied"
    }
    fn topics(&self) -> Vec<String> {
        vec![IN.into()]
    }
    fn broker(&self) -> EventBroker {
        EventBroker::Paper
    }
    // As for ticks: no deduplication by id, only by position.
    fn deduplicate(&self, _: EventType) -> bool {
        false
    }
    async fn handle(&mut self, input: Input<'_>) -> Result<Vec<Output>, HandlerError> {
        self.applied
            .lock()
            .push((input.position.partition, input.position.offset));
        Ok(Vec::new())
    }
    fn begin_checkpoint(
        &mut self,
        _offsets: &[CommitOffset],
    ) -> Result<Option<CheckpointWrite>, HandlerError> {
        Ok(Some(Box::pin(async {
            Err(HandlerError::infrastructure("database down"))
        })))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_handed_over_again_after_a_rebalance_are_not_applied_twice() {
    let backend = Backend::kafka();
    backend.topics(&[IN]).await;
    for n in 0..60u32 {
        backend
            .log
            .send(OutgoingRecord::event(
                IN,
                tick(n % 12 + 1, 100 + i64::from(n)),
            ))
            .await
            .unwrap();
    }
    let applied = Arc::new(Mutex::new(Vec::new()));
    let processor = Processor::new(
        Applied {
            applied: applied.clone(),
        },
        backend.log.clone(),
        Arc::new(MemoryDedupStore::new()),
        Arc::new(SystemClock),
        fast_config(),
    );
    let group = processor.group().to_string();
    let stats = processor.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(processor.run(shutdown.clone()));
    eventually("every record applied", || applied.lock().len() >= 60).await;

    // A second member joins the group (the writer's partitions are revoked and split), reads a
    // little without committing, and leaves: the writer gets every partition back, at the
    // committed offsets, which are the beginning.
    let mut intruder = backend.log.consumer(&group, &[IN.to_string()]).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        if intruder
            .poll(Duration::from_millis(200))
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
    }
    intruder.close(&[]).await.unwrap();
    eventually("the writer was handed its records again", || {
        ProcessorStats::get(&stats.reread) > 0 || applied.lock().len() > 60
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();

    let applied = applied.lock().clone();
    let mut once: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    for position in &applied {
        *once.entry(*position).or_default() += 1;
    }
    let twice: Vec<_> = once.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "applied twice: {twice:?}");
    assert_eq!(once.len(), 60);
}
