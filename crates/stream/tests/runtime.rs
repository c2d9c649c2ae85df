//! The processor runtime's guarantees (ARCHITECTURE §4), each tested on the memory log and on a real
//! Kafka-protocol broker (tansu).

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::{
    derive_event_id, DlqPayload, Envelope, ErrorClass, EventBroker, Payload, TopicMap,
};
use alpha_panda_stream::{
    HandlerError, MemoryDedupStore, OutgoingRecord, ProcessorConfig, ProcessorStats,
};
use base64::Engine;
use common::*;

const IN: &str = "rt.input";
const OUT: &str = "rt.output";

async fn publish(backend: &Backend, envelope: &Envelope) {
    backend
        .log
        .send(OutgoingRecord::event(IN, envelope.clone()))
        .await
        .unwrap();
}

/// Handled inputs are committed: a restarted consumer of the group does not see them again.
async fn commits_after_success(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    let dedup = Arc::new(MemoryDedupStore::new());
    for p in 0..3 {
        publish(&backend, &tick(1 + p, 100)).await;
    }
    let first = start(
        &backend.log,
        dedup.clone(),
        "svc_commit",
        &[IN],
        fast_config(),
        Box::new(|_| Ok(vec![])),
    );
    eventually("three inputs handled", || first.seen.lock().len() == 3).await;
    first.stop().await;

    // A fresh dedup store: only the committed offsets can keep the second run from re-reading.
    let second = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_commit",
        &[IN],
        fast_config(),
        Box::new(|_| Ok(vec![])),
    );
    let late = tick(9, 100);
    publish(&backend, &late).await;
    eventually("the new input handled", || !second.seen.lock().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen: Vec<_> = second.seen.lock().iter().map(|e| e.id).collect();
    assert_eq!(
        seen,
        vec![late.id],
        "only the uncommitted input is read again"
    );
    second.stop().await;
}

/// A transient failure is retried; while it keeps failing nothing is committed, so a restarted
/// consumer reads the input again.
async fn transient_is_retried_and_not_committed(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    let input = tick(7, 100);
    publish(&backend, &input).await;
    let mut config = fast_config();
    config.retry.max_retries = u32::MAX;
    let failing = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_transient",
        &[IN],
        config,
        Box::new(|_| Err(HandlerError::transient("venue timeout"))),
    );
    eventually("several retries", || {
        ProcessorStats::get(&failing.stats.retries) >= 3
    })
    .await;
    failing.stop().await;
    assert!(
        read_events(&backend.log, &TopicMap::dlq(IN))
            .await
            .is_empty(),
        "no DLQ while retrying"
    );

    let healthy = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_transient",
        &[IN],
        fast_config(),
        Box::new(|_| Ok(vec![])),
    );
    eventually("input re-read after restart", || {
        healthy.seen.lock().iter().any(|e| e.id == input.id)
    })
    .await;
    healthy.stop().await;
}

/// Exhausting the retry budget dead-letters the input with its retry count, and the consumer moves on.
async fn retry_budget_sends_to_dlq(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    let bad = tick(1, 100);
    let good = tick(2, 100);
    publish(&backend, &bad).await;
    publish(&backend, &good).await;
    let bad_id = bad.id;
    let running = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_budget",
        &[IN],
        fast_config(),
        Box::new(move |e| {
            if e.id == bad_id {
                Err(HandlerError::transient("still down"))
            } else {
                Ok(vec![])
            }
        }),
    );
    let dlq = wait_for_events(&backend.log, &TopicMap::dlq(IN), 1).await;
    let Payload::DlqMessage(message) = &dlq[0].payload else {
        panic!("not a DLQ message")
    };
    assert_eq!(message.retry_count, 3);
    assert_eq!(message.error_class, ErrorClass::Transient);
    assert!(
        matches!(&message.original, DlqPayload::Envelope { envelope } if envelope.id == bad_id)
    );
    eventually("the next input handled", || {
        running.seen.lock().iter().any(|e| e.id == good.id)
    })
    .await;
    running.stop().await;
}

/// Undecodable bytes go to `{topic}.dlq` with their metadata, and the consumer carries on.
async fn poison_goes_to_dlq_and_consumer_moves_on(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    let poison = backend
        .log
        .send(raw(IN, "408065", b"{not json".as_slice()))
        .await
        .unwrap();
    let good = tick(408065, 100);
    publish(&backend, &good).await;
    let running = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_poison",
        &[IN],
        fast_config(),
        Box::new(|_| Ok(vec![])),
    );
    eventually("the good record handled", || {
        running.seen.lock().iter().any(|e| e.id == good.id)
    })
    .await;
    let dlq = wait_for_events(&backend.log, &TopicMap::dlq(IN), 1).await;
    running.stop().await;

    assert_eq!(dlq.len(), 1);
    let Payload::DlqMessage(message) = &dlq[0].payload else {
        panic!("not a DLQ message")
    };
    assert_eq!(message.original_topic, IN);
    assert_eq!(message.original_partition, poison.partition);
    assert_eq!(message.original_offset, poison.offset);
    assert_eq!(message.original_key.as_deref(), Some("408065"));
    assert_eq!(message.error_class, ErrorClass::Poison);
    assert_eq!(message.service, "svc_poison");
    assert_eq!(message.broker, EventBroker::Paper);
    assert_eq!(message.retry_count, 0);
    let DlqPayload::Raw { value_base64 } = &message.original else {
        panic!("raw bytes expected")
    };
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(value_base64)
            .unwrap(),
        b"{not json"
    );
    assert_eq!(dlq[0].key, "408065");
}

/// Two groups of one process reading the same topic (on Kafka they share each record's decoding,
/// `shared_decode`): each handles every good record and dead-letters the poison itself.
async fn groups_of_one_process_each_handle_all_and_dead_letter_poison(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    let before = tick(408065, 100);
    publish(&backend, &before).await;
    backend
        .log
        .send(raw(IN, "408065", b"{not json".as_slice()))
        .await
        .unwrap();
    let after = [tick(408065, 101), tick(256265, 102)];
    for good in &after {
        publish(&backend, good).await;
    }
    let groups = ["svc_shared_a", "svc_shared_b"].map(|group| {
        start(
            &backend.log,
            Arc::new(MemoryDedupStore::new()),
            group,
            &[IN],
            fast_config(),
            Box::new(|_| Ok(vec![])),
        )
    });
    let good: Vec<_> = std::iter::once(&before).chain(&after).cloned().collect();
    for running in &groups {
        eventually("every good record handled by each group", || {
            let seen = running.seen.lock();
            good.iter().all(|g| seen.iter().any(|e| e.id == g.id))
        })
        .await;
    }
    let dlq = wait_for_events(&backend.log, &TopicMap::dlq(IN), 2).await;
    for running in groups {
        running.stop().await;
    }
    let mut services: Vec<&str> = dlq
        .iter()
        .map(|e| match &e.payload {
            Payload::DlqMessage(m) => m.service.as_str(),
            _ => panic!("not a DLQ message"),
        })
        .collect();
    services.sort_unstable();
    assert_eq!(services, ["svc_shared_a", "svc_shared_b"]);
}

/// A payload with impossible figures (a zero or absurd price), typed or as bytes, is poison: it
/// reaches the DLQ with the reason, the handler never sees it, and the records after it are handled.
async fn implausible_payloads_go_to_dlq(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    let zero = tick(408065, 0);
    let mut huge = tick(408065, 100);
    if let Payload::MarketTick(t) = &mut huge.payload {
        t.last_price = alpha_panda_core::Price("99999999999999999999999.99".parse().unwrap());
    }
    publish(&backend, &zero).await;
    backend
        .log
        .send(raw(IN, "408065", huge.to_json()))
        .await
        .unwrap();
    let good = tick(408065, 100);
    publish(&backend, &good).await;
    let running = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_implausible",
        &[IN],
        fast_config(),
        Box::new(|_| Ok(vec![])),
    );
    eventually("the good record handled", || {
        running.seen.lock().iter().any(|e| e.id == good.id)
    })
    .await;
    let dlq = wait_for_events(&backend.log, &TopicMap::dlq(IN), 2).await;
    let seen: Vec<_> = running.seen.lock().iter().map(|e| e.id).collect();
    running.stop().await;
    assert_eq!(
        seen,
        vec![good.id],
        "the handler saw an implausible payload"
    );
    let reasons: Vec<String> = dlq
        .iter()
        .map(|e| match &e.payload {
            Payload::DlqMessage(m) => {
                assert_eq!(m.error_class, ErrorClass::Poison);
                m.error_message.clone()
            }
            other => panic!("not a DLQ message: {other:?}"),
        })
        .collect();
    assert!(
        reasons[0].contains("last_price 0.00 is not positive"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("outside"), "{reasons:?}");
}

/// An event where it does not belong — a type other than its topic carries, or another
/// namespace's event reaching a service of one namespace — is poison, not applied.
async fn misplaced_events_go_to_dlq(backend: Backend) {
    let paper = TopicMap::new(alpha_panda_core::Broker::Paper);
    let (fills, acks) = (paper.orders_filled(), paper.orders_ack());
    backend.topics(&[&fills, &acks]).await;
    let ack = |broker: EventBroker| {
        let output = ack_output(&acks, 1);
        Envelope::root(
            output.payload,
            output.key,
            broker,
            "trading_engine",
            tick(1, 1).ts,
        )
    };
    let on_the_wrong_topic = ack(EventBroker::Paper);
    let of_another_namespace = ack(EventBroker::Zerodha);
    let good = ack(EventBroker::Paper);
    for (topic, envelope) in [
        (&fills, &on_the_wrong_topic),
        (&acks, &of_another_namespace),
        (&acks, &good),
    ] {
        backend
            .log
            .send(OutgoingRecord::event(topic.clone(), envelope.clone()))
            .await
            .unwrap();
    }
    let running = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_misplaced",
        &[&fills, &acks],
        fast_config(),
        Box::new(|_| Ok(vec![])),
    );
    eventually("the good one handled", || {
        running.seen.lock().iter().any(|e| e.id == good.id)
    })
    .await;
    let mut reasons: Vec<String> = Vec::new();
    for topic in [&fills, &acks] {
        for e in wait_for_events(&backend.log, &TopicMap::dlq(topic), 1).await {
            match &e.payload {
                Payload::DlqMessage(m) => reasons.push(m.error_message.clone()),
                other => panic!("{other:?}"),
            }
        }
    }
    let seen: Vec<_> = running.seen.lock().iter().map(|e| e.id).collect();
    running.stop().await;
    assert_eq!(seen, vec![good.id], "a misplaced event reached the handler");
    assert!(
        reasons[0].contains("an event of type order_ack on paper.orders.filled"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("an event of the zerodha namespace reached the paper svc_misplaced"),
        "{reasons:?}"
    );
}

/// A dependency that is down (infrastructure) is waited for past the retry budget: the input is
/// handled once it is back, and never dead-lettered for the outage.
async fn an_outage_longer_than_the_retry_budget_is_waited_out(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    let input = tick(1, 100);
    publish(&backend, &input).await;
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let running = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_outage",
        &[IN],
        fast_config(),
        Box::new(move |_| {
            // Three times the budget of fast_config.
            if c.fetch_add(1, Ordering::SeqCst) < 9 {
                Err(HandlerError::infrastructure("database down"))
            } else {
                Ok(vec![ack_output(OUT, 1)])
            }
        }),
    );
    wait_for_events(&backend.log, OUT, 1).await;
    let dead = ProcessorStats::get(&running.stats.dead_lettered);
    running.stop().await;
    assert_eq!(calls.load(Ordering::SeqCst), 10);
    assert_eq!(dead, 0, "dead-lettered for an outage");
}

/// A replayed record is for the group it names: another group passes over it, and the named
/// group deduplicates it even when it is a tick (ticks usually bypass deduplication).
async fn a_replay_reaches_only_its_group_and_is_deduplicated_there(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    let first = tick(408065, 100);
    publish(&backend, &first).await;
    let dedup_a = Arc::new(MemoryDedupStore::new());
    let a = start(
        &backend.log,
        dedup_a.clone(),
        "svc_replay_a",
        &[IN],
        fast_config(),
        Box::new(|_| Ok(vec![])),
    );
    let b = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_replay_b",
        &[IN],
        fast_config(),
        Box::new(|_| Ok(vec![])),
    );
    eventually("both groups handled the tick", || {
        a.seen.lock().len() == 1 && b.seen.lock().len() == 1
    })
    .await;
    let replay = |envelope: &Envelope, group: &str| OutgoingRecord {
        headers: vec![(
            alpha_panda_stream::dlq::REPLAY_GROUP_HEADER.to_string(),
            group.to_string(),
        )],
        ..OutgoingRecord::event(IN, envelope.clone())
    };
    // A new tick replayed for group a only, then the first tick replayed for every group, then a
    // plain record that both must see.
    let second = tick(408065, 101);
    backend
        .log
        .send(replay(&second, "alpha-panda.svc_replay_a.paper"))
        .await
        .unwrap();
    backend.log.send(replay(&first, "*")).await.unwrap();
    let last = tick(408065, 102);
    publish(&backend, &last).await;
    eventually("both groups reached the last record", || {
        a.seen.lock().iter().any(|e| e.id == last.id)
            && b.seen.lock().iter().any(|e| e.id == last.id)
    })
    .await;
    let seen = |r: &Running| r.seen.lock().iter().map(|e| e.id).collect::<Vec<_>>();
    let (seen_a, seen_b) = (seen(&a), seen(&b));
    a.stop().await;
    b.stop().await;
    assert_eq!(seen_a, vec![first.id, second.id, last.id]);
    assert_eq!(seen_b, vec![first.id, last.id]);
}

/// The DLQ record of undecodable bytes has an id of its own place in the log: dead-lettered again
/// after a crash before the commit, it is the same DLQ event.
async fn raw_dead_letters_have_deterministic_ids(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    backend
        .log
        .send(raw(IN, "408065", b"\x00garbage".as_slice()))
        .await
        .unwrap();
    // Nothing is committed before the kill: no batch, no interval, no idle poll comes due.
    let config = ProcessorConfig {
        commit_batch: usize::MAX,
        commit_interval: Duration::from_secs(3600),
        poll_timeout: Duration::from_secs(3600),
        ..fast_config()
    };
    let run = || {
        start(
            &backend.log,
            Arc::new(MemoryDedupStore::new()),
            "svc_raw_dlq",
            &[IN],
            config.clone(),
            Box::new(|_| Ok(vec![])),
        )
    };
    let first = run();
    wait_for_events(&backend.log, &TopicMap::dlq(IN), 1).await;
    first.task.abort();
    let _ = first.task.await;
    let second = run();
    let dlq = wait_for_events(&backend.log, &TopicMap::dlq(IN), 2).await;
    second.stop().await;
    assert_eq!(dlq.len(), 2, "dead-lettered once per life");
    assert_eq!(dlq[0].id, dlq[1].id, "the same failure, the same DLQ id");
}

/// Reading a topic back returns every record, including the tail of a batch written in one go:
/// several services dead-lettering the same input at once share a producer, which sends their
/// records as one batch (tansu reports a high watermark one past only the first of them).
async fn read_all_returns_every_record_of_a_batch(backend: Backend) {
    backend.topics(&[IN]).await;
    let sends = (0..4).map(|n| backend.log.send(raw(IN, "408065", format!("record {n}"))));
    let deliveries = futures::future::try_join_all(sends).await.unwrap();
    let mut written: Vec<(i32, i64)> = deliveries.iter().map(|d| (d.partition, d.offset)).collect();
    written.sort();

    let back = backend.log.read_all(IN).await.unwrap();
    let read: Vec<(i32, i64)> = back.iter().map(|r| (r.partition, r.offset)).collect();
    assert_eq!(read, written);
}

/// The same event id delivered twice is handled once.
async fn duplicate_is_handled_once(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    let event = tick(5, 100);
    publish(&backend, &event).await;
    publish(&backend, &event).await;
    let marker = tick(6, 100);
    publish(&backend, &marker).await;
    let running = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_dedup",
        &[IN],
        fast_config(),
        Box::new(|_| Ok(vec![])),
    );
    eventually("marker handled", || {
        running.seen.lock().iter().any(|e| e.id == marker.id)
    })
    .await;
    eventually("duplicate counted", || {
        ProcessorStats::get(&running.stats.duplicates) == 1
    })
    .await;
    let handled = running
        .seen
        .lock()
        .iter()
        .filter(|e| e.id == event.id)
        .count();
    assert_eq!(handled, 1);
    running.stop().await;
}

/// Outputs carry the input's correlation id, its id as causation, and derived ids; handling the
/// same input again (a replay past dedup) yields the very same output ids.
async fn outputs_are_correlated_and_deterministic(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    let input = tick(11, 100);
    publish(&backend, &input).await;
    let script = || -> Script { Box::new(|_| Ok(vec![ack_output(OUT, 1), ack_output(OUT, 2)])) };
    let first = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_corr",
        &[IN],
        fast_config(),
        script(),
    );
    let outputs = wait_for_events(&backend.log, OUT, 2).await;
    first.stop().await;
    let mut ids: Vec<_> = outputs.iter().map(|e| e.id).collect();
    ids.sort();
    let mut expected = vec![
        derive_event_id(input.id, "svc_corr", 0),
        derive_event_id(input.id, "svc_corr", 1),
    ];
    expected.sort();
    assert_eq!(ids, expected);
    for out in &outputs {
        assert_eq!(out.correlation_id, input.correlation_id);
        assert_eq!(out.causation_id, Some(input.id));
        assert_eq!(out.trace_id, input.trace_id);
        assert_eq!(&*out.source, "svc_corr");
    }

    // Replay the input (same id) to a processor whose dedup store has forgotten it.
    publish(&backend, &input).await;
    let second = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_corr",
        &[IN],
        fast_config(),
        script(),
    );
    let all = wait_for_events(&backend.log, OUT, 4).await;
    second.stop().await;
    let mut again: Vec<_> = all[..].iter().map(|e| e.id).collect();
    again.sort();
    again.dedup();
    assert_eq!(again, expected, "re-handling produced the same ids");
}

/// A consumer killed (task aborted: no shutdown, no final commit) re-reads what it had not
/// committed when it comes back.
async fn killed_consumer_rereads_uncommitted(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    for n in 0..5 {
        publish(&backend, &tick(100 + n, 100)).await;
    }
    let config = ProcessorConfig {
        commit_batch: usize::MAX,
        commit_interval: Duration::from_secs(3600),
        poll_timeout: Duration::from_secs(3600),
        ..fast_config()
    };
    let first = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_kill",
        &[IN],
        config,
        Box::new(|_| Ok(vec![])),
    );
    eventually("five handled", || first.seen.lock().len() == 5).await;
    first.task.abort();
    let _ = first.task.await;

    let second = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_kill",
        &[IN],
        fast_config(),
        Box::new(|_| Ok(vec![])),
    );
    eventually("all five read again", || second.seen.lock().len() == 5).await;
    second.stop().await;
}

/// A handler that succeeds only on its second attempt is retried, then committed once.
async fn retry_then_success(backend: Backend) {
    backend.topics(&[IN, OUT]).await;
    publish(&backend, &tick(1, 100)).await;
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let running = start(
        &backend.log,
        Arc::new(MemoryDedupStore::new()),
        "svc_retry",
        &[IN],
        fast_config(),
        Box::new(move |_| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(HandlerError::infrastructure("db down"))
            } else {
                Ok(vec![ack_output(OUT, 1)])
            }
        }),
    );
    wait_for_events(&backend.log, OUT, 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(ProcessorStats::get(&running.stats.retries), 1);
    running.stop().await;
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::memory()).await; })*
        }
        mod kafka {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::kafka()).await; })*
        }
    };
}

on_both_backends!(
    commits_after_success,
    transient_is_retried_and_not_committed,
    retry_budget_sends_to_dlq,
    poison_goes_to_dlq_and_consumer_moves_on,
    groups_of_one_process_each_handle_all_and_dead_letter_poison,
    implausible_payloads_go_to_dlq,
    misplaced_events_go_to_dlq,
    an_outage_longer_than_the_retry_budget_is_waited_out,
    a_replay_reaches_only_its_group_and_is_deduplicated_there,
    raw_dead_letters_have_deterministic_ids,
    read_all_returns_every_record_of_a_batch,
    duplicate_is_handled_once,
    outputs_are_correlated_and_deterministic,
    killed_consumer_rereads_uncommitted,
    retry_then_success,
);
