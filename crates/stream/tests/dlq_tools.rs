//! The DLQ tools on the memory log: list filters by topic and time, replay sends the original event
//! (same id) or the original bytes back to the original topic, purge removes by age.

use std::collections::BTreeMap;

use alpha_panda_core::{
    DlqMessage, DlqPayload, Envelope, ErrorClass, EventBroker, Payload, Timestamp, TopicMap,
};
use alpha_panda_stream::dlq::{self, DlqFilter, ReplayTarget};
use alpha_panda_stream::{Log, OutgoingRecord, RecordValue};

mod common;

fn at(second: i64) -> Timestamp {
    Timestamp::from_unix_micros(1_767_584_700_000_000 + second * 1_000_000).unwrap()
}

fn dead_letter(topic: &str, original: DlqPayload, failed_at: Timestamp) -> Envelope {
    Envelope::root(
        Payload::DlqMessage(DlqMessage {
            original_topic: topic.into(),
            original_partition: 0,
            original_offset: 7,
            original_key: Some("k".into()),
            original,
            error_class: ErrorClass::Poison,
            error_message: "bad".into(),
            retry_count: 0,
            service: "svc".into(),
            broker: EventBroker::Paper,
            failed_at,
        }),
        "k".into(),
        EventBroker::Paper,
        "svc",
        failed_at,
    )
}

#[tokio::test]
async fn list_replay_and_purge() {
    let log = Log::connect("memory://", &BTreeMap::new()).unwrap();
    for topic in ["a.in", "a.in.dlq", "b.in", "b.in.dlq"] {
        log.create_topic(topic, 1, 1, 86_400_000).await.unwrap();
    }
    let original = common::tick(408065, 150_000);
    let old = dead_letter(
        "a.in",
        DlqPayload::Envelope {
            envelope: Box::new(original.clone()),
        },
        at(0),
    );
    let raw = dead_letter(
        "b.in",
        DlqPayload::Raw {
            value_base64: "bm90IGpzb24=".into(),
        },
        at(60),
    );
    let recent = dead_letter(
        "a.in",
        DlqPayload::Raw {
            value_base64: "eA==".into(),
        },
        at(120),
    );
    for (topic, e) in [
        ("a.in.dlq", &old),
        ("b.in.dlq", &raw),
        ("a.in.dlq", &recent),
    ] {
        log.send(OutgoingRecord::event(topic, e.clone()))
            .await
            .unwrap();
    }

    let all = dlq::list(&log, &DlqFilter::default()).await.unwrap();
    let ids: Vec<_> = all.iter().map(|e| e.id).collect();
    assert_eq!(ids, vec![old.id, raw.id, recent.id], "oldest failure first");
    let only_a = dlq::list(
        &log,
        &DlqFilter {
            topic: Some("a.in".into()),
            ..DlqFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(only_a.len(), 2);
    let window = dlq::list(
        &log,
        &DlqFilter {
            since: Some(at(30)),
            until: Some(at(90)),
            ..DlqFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        window.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![raw.id]
    );

    // Replay by the original event's id: the same event, same id, goes back to a.in.
    let replayed = dlq::replay_one(&log, original.id, &ReplayTarget::AllGroups)
        .await
        .unwrap();
    assert_eq!(replayed.id, old.id);
    let back = log.read_all("a.in").await.unwrap();
    assert_eq!(back.len(), 1);
    match &back[0].value {
        RecordValue::Event(e) => assert_eq!(e.id, original.id),
        RecordValue::Bytes(b) => assert_eq!(Envelope::from_json(b).unwrap().id, original.id),
    }
    // Replay of a range: the raw bytes go back as they were.
    dlq::replay_matching(
        &log,
        &DlqFilter {
            topic: Some("b.in".into()),
            ..DlqFilter::default()
        },
        &ReplayTarget::FailedGroup,
    )
    .await
    .unwrap();
    let raw_back = log.read_all("b.in").await.unwrap();
    assert_eq!(&raw_back[0].value.to_bytes()[..], b"not json");
    assert!(matches!(
        dlq::replay_one(
            &log,
            alpha_panda_core::EventId::new_root(),
            &ReplayTarget::AllGroups
        )
        .await,
        Err(dlq::DlqError::NotFound(_))
    ));

    // Purge what failed before 90 s: the old a.in entry and the b.in entry; the recent one stays.
    let removed = dlq::purge(&log, None, at(90)).await.unwrap();
    assert_eq!(removed, 2);
    let left = dlq::list(&log, &DlqFilter::default()).await.unwrap();
    assert_eq!(
        left.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![recent.id]
    );
    assert!(TopicMap::is_dlq("a.in.dlq"));
}
