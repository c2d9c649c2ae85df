//! KiteTicker client tests against the fake server: subscribe + mode, reconnect and resubscribe
//! after a drop, the read-idle watchdog, conflation, order updates, a refused token, and Kite's
//! limits (3 connections × 3000 instruments per api_key) on both sides: the client shards its
//! subscriptions, and the fake refuses what Kite refuses.
//!
//! Waits poll for a condition with a generous deadline, so a slow machine only makes them slower.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use alpha_panda_core::{InstrumentToken, Price, Quantity, Side};
use alpha_panda_kite::fake::{FakeKite, FakeKiteConfig, FillBehaviour, RandomWalk};
use alpha_panda_kite::ticker::{TickMode, TickerMetrics};
use alpha_panda_kite::ticker::{
    TickerError, MAX_CONNECTIONS, MAX_INSTRUMENTS, MAX_INSTRUMENTS_PER_CONNECTION,
};
use alpha_panda_kite::{
    KiteClient, KiteTicker, MarketProtection, OrderParams, TickPacket, TickerConfig,
};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;

const INFY: u32 = 408065;
const SBIN: u32 = 779521;
const NIFTY: u32 = 256265;

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn count(counter: &AtomicU64) -> u64 {
    TickerMetrics::get(counter)
}

fn config(fake: &FakeKite) -> TickerConfig {
    TickerConfig {
        read_idle_timeout: Duration::from_secs(10),
        reconnect_base_delay: Duration::from_millis(20),
        max_reconnect_delay: Duration::from_millis(200),
        max_reconnect_attempts: 5,
        connect_timeout: Duration::from_secs(10),
        ..TickerConfig::from_settings(&fake.settings(), &fake.config().access_token)
    }
}

fn full_tick(token: u32, price: Decimal) -> TickPacket {
    let mut tick = TickPacket::ltp(InstrumentToken(token), Price(price)).project(TickMode::Full);
    tick.volume_traded = Some(1000);
    tick.exchange_timestamp = Some(1625461887);
    tick
}

/// Pushes `tick` until the ticker delivers a tick of that token (a push can race a reconnect).
async fn deliver(fake: &FakeKite, ticker: &KiteTicker, tick: TickPacket) -> TickPacket {
    let token = tick.instrument_token;
    for _ in 0..150 {
        fake.push_ticks(vec![tick.clone()]);
        if let Ok(Some(got)) =
            tokio::time::timeout(Duration::from_millis(200), ticker.next_tick()).await
        {
            if got.instrument_token == token {
                return got;
            }
        }
    }
    panic!("tick for {token} never arrived");
}

fn modes(pairs: &[(u32, TickMode)]) -> BTreeMap<u32, TickMode> {
    pairs.iter().copied().collect()
}

#[tokio::test]
async fn subscribe_set_mode_and_receive_ticks_in_that_mode() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    ticker
        .subscribe(&[InstrumentToken(INFY)], TickMode::Full)
        .await
        .unwrap();
    ticker
        .subscribe(
            &[InstrumentToken(SBIN), InstrumentToken(NIFTY)],
            TickMode::Quote,
        )
        .await
        .unwrap();
    let want = modes(&[
        (INFY, TickMode::Full),
        (SBIN, TickMode::Quote),
        (NIFTY, TickMode::Quote),
    ]);
    eventually("subscriptions on the server", || {
        fake.subscriptions() == want
    })
    .await;
    let sent = fake.ws_messages();
    assert_eq!(sent[0], serde_json::json!({"a": "subscribe", "v": [INFY]}));
    assert_eq!(
        sent[1],
        serde_json::json!({"a": "mode", "v": ["full", [INFY]]})
    );

    let tick = full_tick(INFY, dec!(1573.70));
    let got = deliver(&fake, &ticker, tick.clone()).await;
    assert_eq!(got, tick, "full mode round-trips every field");

    let got = deliver(&fake, &ticker, full_tick(SBIN, dec!(812.35))).await;
    assert_eq!(got.mode(), TickMode::Quote);
    assert_eq!(got.last_price, Price(dec!(812.35)));
    assert_eq!(got.depth, None);

    let got = deliver(&fake, &ticker, full_tick(NIFTY, dec!(15790.45))).await;
    assert!(!got.tradable());
    assert_eq!(got.mode(), TickMode::Quote);

    ticker
        .set_mode(&[InstrumentToken(SBIN)], TickMode::Ltp)
        .await
        .unwrap();
    ticker.unsubscribe(&[InstrumentToken(NIFTY)]).await.unwrap();
    let want = modes(&[(INFY, TickMode::Full), (SBIN, TickMode::Ltp)]);
    eventually("mode change and unsubscribe", || {
        fake.subscriptions() == want
    })
    .await;
    let got = deliver(&fake, &ticker, full_tick(SBIN, dec!(812.40))).await;
    assert_eq!(got.mode(), TickMode::Ltp);
    assert_eq!(got.ohlc, None);
    assert!(count(&ticker.metrics().binary_frames) >= 3);
    ticker.shutdown().await.unwrap();
}

#[tokio::test]
async fn reconnects_and_resubscribes_with_the_same_modes_after_a_drop() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    ticker
        .subscribe(&[InstrumentToken(INFY)], TickMode::Full)
        .await
        .unwrap();
    ticker
        .subscribe(&[InstrumentToken(SBIN)], TickMode::Ltp)
        .await
        .unwrap();
    let want = modes(&[(INFY, TickMode::Full), (SBIN, TickMode::Ltp)]);
    eventually("first subscriptions", || fake.subscriptions() == want).await;
    assert_eq!(fake.ws_connections(), 1);

    fake.drop_connections();
    eventually("a second connection", || fake.ws_connections() >= 2).await;
    eventually("resubscription", || fake.subscriptions() == want).await;
    eventually("reconnect counted", || {
        count(&ticker.metrics().reconnects) >= 1
    })
    .await;
    let messages = fake.ws_messages();
    let resent = &messages[messages.len() - 3..];
    assert_eq!(
        resent[0],
        serde_json::json!({"a": "subscribe", "v": [INFY, SBIN]})
    );
    assert_eq!(
        resent[1],
        serde_json::json!({"a": "mode", "v": ["ltp", [SBIN]]})
    );
    assert_eq!(
        resent[2],
        serde_json::json!({"a": "mode", "v": ["full", [INFY]]})
    );

    let got = deliver(&fake, &ticker, full_tick(INFY, dec!(1574.00))).await;
    assert_eq!(got.mode(), TickMode::Full);
    ticker.shutdown().await.unwrap();
}

#[tokio::test]
async fn watchdog_reconnects_after_silence() {
    let fake = FakeKite::start(FakeKiteConfig {
        heartbeat_interval: Duration::from_millis(50),
        ..FakeKiteConfig::default()
    })
    .await
    .unwrap();
    let ticker = KiteTicker::start(TickerConfig {
        read_idle_timeout: Duration::from_millis(500),
        ..config(&fake)
    })
    .unwrap();
    ticker
        .subscribe(&[InstrumentToken(INFY)], TickMode::Quote)
        .await
        .unwrap();
    eventually("subscription", || fake.subscriptions().contains_key(&INFY)).await;
    eventually("heartbeats", || count(&ticker.metrics().binary_frames) >= 2).await;

    fake.set_silent(true);
    eventually("the watchdog firing", || {
        count(&ticker.metrics().watchdog_timeouts) >= 1
    })
    .await;
    fake.set_silent(false);
    eventually("a reconnect", || count(&ticker.metrics().reconnects) >= 1).await;
    eventually("resubscription", || {
        fake.subscriptions().get(&INFY) == Some(&TickMode::Quote)
    })
    .await;
    let got = deliver(&fake, &ticker, full_tick(INFY, dec!(1575.05))).await;
    assert_eq!(got.last_price, Price(dec!(1575.05)));
    ticker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slow_consumer_gets_only_the_latest_tick_per_token() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    ticker
        .subscribe(
            &[InstrumentToken(INFY), InstrumentToken(SBIN)],
            TickMode::Ltp,
        )
        .await
        .unwrap();
    eventually("subscriptions", || fake.subscriptions().len() == 2).await;
    let ltp = |token, price| TickPacket::ltp(InstrumentToken(token), Price(price));
    fake.push_ticks(vec![ltp(INFY, dec!(1570.00)), ltp(SBIN, dec!(810.00))]);
    fake.push_ticks(vec![ltp(INFY, dec!(1571.00))]);
    fake.push_ticks(vec![ltp(INFY, dec!(1572.00))]);
    fake.push_ticks(vec![ltp(SBIN, dec!(811.00))]);
    eventually("all ticks decoded", || count(&ticker.metrics().ticks) >= 5).await;

    assert_eq!(ticker.conflated_ticks(), 3);
    assert_eq!(ticker.next_tick().await, Some(ltp(INFY, dec!(1572.00))));
    assert_eq!(ticker.next_tick().await, Some(ltp(SBIN, dec!(811.00))));
    assert!(ticker.buffer().is_empty());
    ticker.shutdown().await.unwrap();
}

#[tokio::test]
async fn order_updates_arrive_on_their_channel() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    fake.set_fill(FillBehaviour::Complete {
        market_price: dec!(1573.75),
    });
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    let mut updates = ticker.take_order_updates().unwrap();
    assert!(ticker.take_order_updates().is_none());
    eventually("a connection", || {
        count(&ticker.metrics().connects) == 1 && fake.ws_connections() == 1
    })
    .await;
    // The server counts the connection before its event subscription is live; a placement
    // racing that is retried with a new tag until an update arrives.
    let client = KiteClient::new(&fake.settings())
        .unwrap()
        .with_access_token(&fake.config().access_token);
    let mut first = None;
    for attempt in 0..50 {
        let tag = format!("sigE{attempt}");
        client
            .place_order(
                &OrderParams::market("NSE", "INFY", Side::Buy, Quantity(4))
                    .with_market_protection(MarketProtection::Automatic)
                    .with_tag(&tag),
            )
            .await
            .unwrap();
        if let Ok(Some(update)) =
            tokio::time::timeout(Duration::from_millis(300), updates.recv()).await
        {
            first = Some((tag, update));
            break;
        }
    }
    let (tag, open) = first.expect("an order update");
    assert_eq!(open.order.status, "OPEN");
    assert_eq!(open.order.tag.as_deref(), Some(tag.as_str()));
    let complete = updates.recv().await.unwrap();
    assert!(complete.order.is_complete());
    assert_eq!(complete.order.average_price, dec!(1573.75));
    assert_eq!(complete.order.filled_quantity, 4);
    assert_eq!(complete.raw["tag"], tag.as_str());
    ticker.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refused_token_stops_the_ticker_with_a_login_hint() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(TickerConfig {
        access_token: "expired".into(),
        ..config(&fake)
    })
    .unwrap();
    assert_eq!(ticker.next_tick().await, None);
    let err = ticker.shutdown().await.unwrap_err();
    assert_eq!(err, TickerError::Forbidden { status: 403 });
    assert!(err.to_string().contains("alpha-panda kite login"));
    assert_eq!(err.class(), alpha_panda_core::ErrorClass::Business);
}

/// A ticker that follows the REST client's session waits out an expired one instead of stopping,
/// and reconnects, resubscribed, once a new session is there.
#[tokio::test]
async fn a_ticker_following_the_session_reconnects_after_a_new_login() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let client = KiteClient::new(&fake.settings()).unwrap();
    client
        .generate_session(&fake.config().request_token, &fake.config().api_secret)
        .await
        .unwrap();
    let ticker = KiteTicker::start(TickerConfig {
        session_retry: Duration::from_secs(1),
        ..config(&fake).with_shared_token(client.shared_access_token())
    })
    .unwrap();
    ticker
        .subscribe(&[InstrumentToken(408065)], TickMode::Full)
        .await
        .unwrap();
    deliver(&fake, &ticker, full_tick(408065, dec!(1500))).await;
    let connections = fake.ws_connections();

    fake.expire_token();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fake.ws_connections(),
        connections,
        "a refused upgrade is no connection"
    );

    // `kite login`: the session is granted again.
    client
        .generate_session(&fake.config().request_token, &fake.config().api_secret)
        .await
        .unwrap();
    let got = deliver(&fake, &ticker, full_tick(408065, dec!(1501))).await;
    assert_eq!(got.last_price, Price(dec!(1501)));
    assert!(fake.ws_connections() > connections);
    assert!(fake.subscriptions().contains_key(&408065), "resubscribed");
}

/// Kite's `error` and `message` text frames reach their own channel, for alerts.
#[tokio::test]
async fn error_and_message_frames_are_notices() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    let mut notices = ticker.take_notices().unwrap();
    eventually("connected", || fake.ws_connections() > 0).await;
    fake.send_text("error", "Invalid instrument token");
    fake.send_text("message", "Markets will close early today");
    let first = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first,
        alpha_panda_kite::BrokerNotice {
            error: true,
            text: "Invalid instrument token".into()
        }
    );
    let second = notices.recv().await.unwrap();
    assert!(!second.error);
    assert_eq!(second.text, "Markets will close early today");
}

#[tokio::test]
async fn gives_up_after_the_retry_budget() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    drop(listener);
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(TickerConfig {
        ws_url: url,
        max_reconnect_attempts: 2,
        ..config(&fake)
    })
    .unwrap();
    assert_eq!(ticker.next_tick().await, None);
    match ticker.shutdown().await {
        Err(TickerError::RetriesExhausted { attempts, .. }) => assert_eq!(attempts, 3),
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
}

#[tokio::test]
async fn random_walk_streams_seeded_ticks() {
    let fake = FakeKite::start(FakeKiteConfig {
        random_walk: Some(RandomWalk {
            seed: 7,
            interval: Duration::from_millis(20),
            start_price: Price(dec!(1500.00)),
        }),
        ..FakeKiteConfig::default()
    })
    .await
    .unwrap();
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    ticker
        .subscribe(&[InstrumentToken(INFY)], TickMode::Quote)
        .await
        .unwrap();
    let mut prices = Vec::new();
    while prices.len() < 5 {
        let tick = tokio::time::timeout(Duration::from_secs(30), ticker.next_tick())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tick.instrument_token, InstrumentToken(INFY));
        assert_eq!(tick.mode(), TickMode::Quote);
        prices.push(tick.last_price.0);
    }
    for pair in prices.windows(2) {
        assert!(
            (pair[1] - pair[0]).abs() <= dec!(0.15) * Decimal::from(50),
            "{pair:?}"
        );
        assert!(
            (pair[1] * dec!(20)).fract().is_zero(),
            "on the 0.05 grid: {}",
            pair[1]
        );
    }
    ticker.shutdown().await.unwrap();
}

/// `n` distinct NSE tokens (segment 1 in the low byte), above every named instrument's.
fn many_tokens(n: u32) -> Vec<InstrumentToken> {
    (1..=n)
        .map(|i| InstrumentToken((100_000 + i) * 256 + 1))
        .collect()
}

/// The fake's open connections as the sets of tokens each has subscribed, in a stable order.
fn partition(fake: &FakeKite) -> BTreeSet<BTreeSet<u32>> {
    fake.connection_subscriptions()
        .iter()
        .map(|m| m.keys().copied().collect())
        .collect()
}

/// Every token of `tokens` in `mode`.
fn all_in(tokens: &[InstrumentToken], mode: TickMode) -> BTreeMap<u32, TickMode> {
    tokens.iter().map(|t| (t.0, mode)).collect()
}

/// Waits until the fake has `connections` open that together subscribe exactly `want`, each
/// token on one connection only and in its mode (a shard's `mode` follows its `subscribe`).
async fn sharded_on_the_fake(fake: &FakeKite, connections: usize, want: &BTreeMap<u32, TickMode>) {
    eventually("the shards' subscriptions on the fake", || {
        let open = fake.connection_subscriptions();
        let total: usize = open.iter().map(BTreeMap::len).sum();
        let union: BTreeMap<u32, TickMode> = open
            .iter()
            .flat_map(|m| m.iter().map(|(t, mode)| (*t, *mode)))
            .collect();
        open.len() == connections && total == want.len() && union == *want
    })
    .await;
}

#[tokio::test]
async fn a_large_subscription_is_sharded_over_three_connections() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    let mut notices = ticker.take_notices().unwrap();
    let tokens = many_tokens(7_500);
    ticker.subscribe(&tokens, TickMode::Ltp).await.unwrap();
    assert_eq!(ticker.connections(), 3);

    sharded_on_the_fake(&fake, 3, &all_in(&tokens, TickMode::Ltp)).await;
    let open = fake.connection_subscriptions();
    let sizes: Vec<usize> = open.iter().map(BTreeMap::len).collect();
    assert_eq!(sizes, [3000, 3000, 1500], "fill-first, none above 3000");
    assert_eq!(fake.refused_ws_connections(), 0);

    // A tick of a token of each shard arrives on the one buffer.
    for shard in &open {
        let token = *shard.keys().next().unwrap();
        let got = deliver(
            &fake,
            &ticker,
            TickPacket::ltp(InstrumentToken(token), Price(dec!(100.05))),
        )
        .await;
        assert_eq!(got.mode(), TickMode::Ltp);
    }
    assert!(
        notices.try_recv().is_err(),
        "the fake refused nothing, so it sent no error frame"
    );
    assert_eq!(count(&ticker.metrics().connects), 3);
    ticker.shutdown().await.unwrap();
}

#[tokio::test]
async fn more_than_9000_instruments_are_refused_whole() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    let tokens = many_tokens(9_001);

    let err = ticker
        .subscribe(&tokens, TickMode::Quote)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TickerError::TooManyInstruments {
            requested: 9_001,
            limit: MAX_INSTRUMENTS
        }
    );
    assert!(err.to_string().contains("market_feed.instruments"), "{err}");
    assert_eq!(err.class(), alpha_panda_core::ErrorClass::Business);
    let err = ticker.set_mode(&tokens, TickMode::Full).await.unwrap_err();
    assert!(matches!(err, TickerError::TooManyInstruments { .. }));
    assert_eq!(ticker.connections(), 1, "no connection opened for it");

    // Nothing of it was sent: the next command is the first the fake sees.
    ticker
        .subscribe(&[InstrumentToken(INFY)], TickMode::Full)
        .await
        .unwrap();
    deliver(&fake, &ticker, full_tick(INFY, dec!(1573.70))).await;
    assert_eq!(
        fake.ws_messages()[0],
        serde_json::json!({"a": "subscribe", "v": [INFY]})
    );

    // Up to the limit is taken; one more new token is not, a known one is.
    ticker
        .subscribe(&tokens[..8_999], TickMode::Quote)
        .await
        .unwrap();
    assert_eq!(ticker.connections(), MAX_CONNECTIONS);
    let err = ticker
        .subscribe(&tokens[8_999..9_000], TickMode::Quote)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TickerError::TooManyInstruments {
            requested: 9_001,
            limit: MAX_INSTRUMENTS
        }
    );
    ticker
        .set_mode(&[InstrumentToken(INFY)], TickMode::Ltp)
        .await
        .unwrap();
    let mut all = all_in(&tokens[..8_999], TickMode::Quote);
    all.insert(INFY, TickMode::Ltp);
    sharded_on_the_fake(&fake, MAX_CONNECTIONS, &all).await;
    let sizes: Vec<usize> = fake
        .connection_subscriptions()
        .iter()
        .map(BTreeMap::len)
        .collect();
    assert_eq!(sizes, [MAX_INSTRUMENTS_PER_CONNECTION; MAX_CONNECTIONS]);

    // Room made by unsubscribing is filled again, on the shard that has it.
    ticker.unsubscribe(&tokens[..1]).await.unwrap();
    ticker
        .subscribe(&tokens[8_999..9_000], TickMode::Quote)
        .await
        .unwrap();
    assert_eq!(ticker.connections(), MAX_CONNECTIONS);
    let (gone, new) = (tokens[0].0, tokens[8_999].0);
    eventually("the hole refilled", || {
        let open = fake.connection_subscriptions();
        open[0].contains_key(&new) && !open[0].contains_key(&gone) && open[0].len() == 3000
    })
    .await;
    ticker.shutdown().await.unwrap();
}

#[tokio::test]
async fn after_a_drop_each_connection_resubscribes_only_its_own_tokens() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    let mut notices = ticker.take_notices().unwrap();
    let tokens = many_tokens(7_500);
    ticker.subscribe(&tokens, TickMode::Quote).await.unwrap();
    let last = *tokens.last().unwrap();
    ticker.set_mode(&[last], TickMode::Full).await.unwrap();
    let mut want = all_in(&tokens, TickMode::Quote);
    want.insert(last.0, TickMode::Full);
    sharded_on_the_fake(&fake, 3, &want).await;
    let shards = partition(&fake);
    let mark = fake.ws_messages().len();

    fake.drop_connections();
    eventually("three new connections", || fake.ws_connections() >= 6).await;
    sharded_on_the_fake(&fake, 3, &want).await;
    eventually("every shard reconnected", || {
        count(&ticker.metrics().reconnects) >= 3
    })
    .await;
    assert!(
        partition(&fake) == shards,
        "each token back on its own shard"
    );

    // Each shard re-sent its own tokens, and only those.
    let resent: BTreeSet<BTreeSet<u32>> = fake.ws_messages()[mark..]
        .iter()
        .filter(|m| m["a"] == "subscribe")
        .map(|m| {
            m["v"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| u32::try_from(t.as_u64().unwrap()).unwrap())
                .collect()
        })
        .collect();
    assert!(resent == shards, "each shard re-sent its own tokens");
    assert_eq!(
        ticker.connections(),
        3,
        "no connection opened beyond the three"
    );
    assert_eq!(fake.open_ws_connections(), 3);

    let got = deliver(&fake, &ticker, full_tick(last.0, dec!(250.50))).await;
    assert_eq!(got.mode(), TickMode::Full);
    assert!(notices.try_recv().is_err(), "the fake refused nothing");
    ticker.shutdown().await.unwrap();
}

/// The fake itself keeps Kite's rules, proven with a raw websocket client: a 4th connection of
/// one api_key is refused with 429, and one connection takes at most 3000 tokens.
#[tokio::test]
async fn the_fake_refuses_a_fourth_connection_and_tokens_beyond_3000() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Error as WsError, Message};

    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let url = format!(
        "{}?api_key={}&access_token={}",
        fake.ws_url(),
        fake.config().api_key,
        fake.config().access_token
    );
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        sockets.push(socket);
    }
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            let body: serde_json::Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(
                body,
                serde_json::json!({
                    "status": "error",
                    "message": "Too many connections",
                    "error_type": "NetworkException",
                })
            );
        }
        other => panic!("a 4th connection was not refused: {:?}", other.map(|_| ())),
    }
    assert_eq!(fake.refused_ws_connections(), 1);
    assert_eq!(fake.open_ws_connections(), 3);
    eventually("three sessions", || fake.ws_connections() == 3).await;

    // A closed connection frees its place.
    sockets.remove(0).close(None).await.unwrap();
    eventually("the slot freed", || fake.open_ws_connections() == 2).await;
    let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    sockets.push(socket);

    // 3000 tokens per connection: the ones beyond are answered with an error and not subscribed.
    let socket = &mut sockets[0];
    let send = |message: serde_json::Value| Message::text(message.to_string());
    let first: Vec<u32> = (1..=2_999).collect();
    socket
        .send(send(serde_json::json!({"a": "subscribe", "v": first})))
        .await
        .unwrap();
    socket
        .send(send(
            serde_json::json!({"a": "subscribe", "v": [2_999, 3_000, 3_001, 3_002]}),
        ))
        .await
        .unwrap();
    socket
        .send(send(
            serde_json::json!({"a": "mode", "v": ["full", [1, 5_000]]}),
        ))
        .await
        .unwrap();
    let mut errors = Vec::new();
    while errors.len() < 2 {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an error frame")
            .expect("the connection open")
            .unwrap();
        if let Message::Text(text) = frame {
            errors.push(serde_json::from_str::<serde_json::Value>(text.as_str()).unwrap());
        }
    }
    for error in errors {
        assert_eq!(error["type"], "error");
        assert_eq!(
            error["data"],
            "Maximum 3000 instruments can be subscribed per connection"
        );
    }
    eventually("the capped subscription", || {
        fake.connection_subscriptions()
            .iter()
            .any(|m| m.len() == 3_000 && m.get(&1) == Some(&TickMode::Full))
    })
    .await;
    let capped = fake
        .connection_subscriptions()
        .into_iter()
        .find(|m| m.len() == 3_000)
        .unwrap();
    assert!(capped.contains_key(&3_000));
    assert!(!capped.contains_key(&3_001) && !capped.contains_key(&5_000));
    assert!(
        fake.connection_subscriptions()
            .iter()
            .filter(|m| !m.is_empty())
            .count()
            == 1,
        "the cap is per connection"
    );
}

/// A refused session stops every shard: the buffer and the order-update channel close once all
/// have ended, and `shutdown` tells why.
#[tokio::test]
async fn a_refused_session_stops_every_connection() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    let mut updates = ticker.take_order_updates().unwrap();
    let tokens = many_tokens(3_001);
    ticker.subscribe(&tokens, TickMode::Ltp).await.unwrap();
    assert_eq!(
        ticker.connections(),
        2,
        "3,001 tokens need a second connection"
    );
    sharded_on_the_fake(&fake, 2, &all_in(&tokens, TickMode::Ltp)).await;

    fake.expire_token();
    let end = tokio::time::timeout(Duration::from_secs(30), ticker.next_tick()).await;
    assert_eq!(end.unwrap(), None, "the buffer closes");
    eventually("every shard ended", || ticker.is_stopped()).await;
    assert_eq!(updates.recv().await, None, "the order updates end");
    assert_eq!(
        ticker
            .subscribe(&[InstrumentToken(INFY)], TickMode::Full)
            .await,
        Err(TickerError::Stopped)
    );
    assert_eq!(
        ticker.shutdown().await,
        Err(TickerError::Forbidden { status: 403 })
    );
}

/// Dropping the ticker (as `run` does at its end) closes every connection: nothing keeps
/// streaming, or keeps the process from exiting.
#[tokio::test]
async fn dropping_the_ticker_closes_every_connection() {
    let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
    let ticker = KiteTicker::start(config(&fake)).unwrap();
    let tokens: Vec<InstrumentToken> = (1..=3_500).map(InstrumentToken).collect();
    ticker.subscribe(&tokens, TickMode::Ltp).await.unwrap();
    eventually("two connections", || fake.open_ws_connections() == 2).await;
    drop(ticker);
    eventually("every connection closed", || {
        fake.open_ws_connections() == 0
    })
    .await;
}
