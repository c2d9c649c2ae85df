//! The memory and Redis dedup stores pass one shared test body.

use std::time::Duration;

use alpha_panda_cache::{CacheError, Dedup};
use alpha_panda_core::{DedupStore, EventId};

fn redis_url() -> String {
    std::env::var("ALPHA_PANDA_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn shared_body(store: &Dedup) {
    let event = EventId(uuid::Uuid::now_v7());
    assert!(!store.is_processed("alpha-panda.risk", event).await.unwrap());
    store
        .mark_processed("alpha-panda.risk", event, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.is_processed("alpha-panda.risk", event).await.unwrap());
    // The group is part of the key: another consumer group has not seen it.
    assert!(!store
        .is_processed("alpha-panda.portfolio", event)
        .await
        .unwrap());
    // Marking twice is harmless.
    store
        .mark_processed("alpha-panda.risk", event, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(store.is_processed("alpha-panda.risk", event).await.unwrap());

    // A commit's inputs are marked at once: more than one pipelined round trip on Redis, and one
    // of them already marked.
    let mut batch: Vec<EventId> = (0..2_500).map(|_| EventId::new_root()).collect();
    batch.push(event);
    store
        .mark_all_processed("alpha-panda.trading", &batch, Duration::from_secs(60))
        .await
        .unwrap();
    for id in &batch {
        assert!(store
            .is_processed("alpha-panda.trading", *id)
            .await
            .unwrap());
    }
    assert!(!store
        .is_processed("alpha-panda.trading", EventId::new_root())
        .await
        .unwrap());
    store
        .mark_all_processed("alpha-panda.trading", &[], Duration::from_secs(60))
        .await
        .unwrap();
}

#[tokio::test]
async fn memory_dedup() {
    let store = Dedup::connect("memory://", "t:").await.unwrap();
    shared_body(&store).await;
}

#[tokio::test]
async fn redis_dedup() {
    let prefix = format!("t_{}:", uuid::Uuid::now_v7().simple());
    let store = Dedup::connect(&redis_url(), &prefix).await.unwrap();
    shared_body(&store).await;
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    // One mark for the risk group, 2,501 for the trading group, each with its expiry.
    assert_eq!(keys.len(), 2_502);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_scheme_is_refused_not_defaulted() {
    let err = Dedup::connect("postgres://x", "t:").await.err().unwrap();
    assert!(matches!(err, CacheError::UnsupportedUrl(ref s) if s == "postgres"));
}
