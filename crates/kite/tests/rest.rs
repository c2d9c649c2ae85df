//! REST client tests against the fake Kite server: login checksum, order fields as received,
//! error mapping and classes, 429 retry, rate limiting, order book, trades and instruments.

use alpha_panda_core::{ErrorClass, Price, Quantity, Side};
use alpha_panda_kite::fake::{FakeKite, FakeKiteConfig, FillBehaviour};
use alpha_panda_kite::rest::KiteOrderId;
use alpha_panda_kite::{
    KiteClient, KiteError, MarketProtection, OrderParams, RateLimits, ZerodhaSettings,
};
use rust_decimal_macros::dec;

async fn fake() -> FakeKite {
    FakeKite::start(FakeKiteConfig::default()).await.unwrap()
}

async fn logged_in(fake: &FakeKite, settings: &ZerodhaSettings) -> KiteClient {
    let client = KiteClient::new(settings).unwrap();
    client
        .generate_session(&fake.config().request_token, &fake.config().api_secret)
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn login_with_the_right_checksum_and_refusal_with_a_wrong_one() {
    let fake = fake().await;
    let client = KiteClient::new(&fake.settings()).unwrap();
    let err = client
        .generate_session(&fake.config().request_token, "wrong-secret")
        .await
        .unwrap_err();
    assert!(matches!(err, KiteError::TokenExpired { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Business);
    assert!(client.access_token().is_none());
    assert!(matches!(
        client.profile().await,
        Err(KiteError::NotLoggedIn)
    ));

    let session = client
        .generate_session(&fake.config().request_token, &fake.config().api_secret)
        .await
        .unwrap();
    assert_eq!(session.access_token, fake.config().access_token);
    assert_eq!(session.user_id, "AB1234");
    assert!(!format!("{session:?}").contains(&fake.config().access_token));
    assert_eq!(client.access_token().as_deref(), Some("fake_access_token"));
    let profile = client.profile().await.unwrap();
    assert_eq!(profile.user_id, "AB1234");
    assert!(profile.exchanges.contains(&"NSE".to_string()));
    assert!(client.login_url().contains("v=3&api_key=fake_api_key"));
}

#[tokio::test]
async fn expired_token_asks_for_a_new_login() {
    let fake = fake().await;
    let client = logged_in(&fake, &fake.settings()).await;
    fake.expire_token();
    let err = client.profile().await.unwrap_err();
    assert!(err.is_auth());
    assert_eq!(err.class(), ErrorClass::Business);
    assert!(err.to_string().contains("alpha-panda kite login"));
    let bad = KiteClient::new(&fake.settings())
        .unwrap()
        .with_access_token("someone-elses-token");
    assert!(matches!(
        bad.orders().await,
        Err(KiteError::TokenExpired { .. })
    ));
    client
        .generate_session(&fake.config().request_token, &fake.config().api_secret)
        .await
        .unwrap();
    assert!(client.profile().await.is_ok());
}

#[tokio::test]
async fn order_fields_arrive_form_encoded_as_kite_expects() {
    let fake = fake().await;
    let client = logged_in(&fake, &fake.settings()).await;
    let limit = OrderParams::limit("NSE", "INFY", Side::Buy, Quantity(3), Price(dec!(1573.70)))
        .with_tag("sigA1");
    let id = client.place_order(&limit).await.unwrap();
    let market = OrderParams::market("NSE", "SBIN", Side::Sell, Quantity(5))
        .with_market_protection(MarketProtection::Automatic)
        .with_product("CNC");
    client.place_order(&market).await.unwrap();

    let orders = fake.orders();
    assert_eq!(orders.len(), 2);
    assert_eq!(orders[0].order_id, id.0);
    assert_eq!(orders[0].variety, "regular");
    let form: Vec<(&str, &str)> = orders[0]
        .form
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        form,
        vec![
            ("exchange", "NSE"),
            ("order_type", "LIMIT"),
            ("price", "1573.70"),
            ("product", "MIS"),
            ("quantity", "3"),
            ("tag", "sigA1"),
            ("tradingsymbol", "INFY"),
            ("transaction_type", "BUY"),
            ("validity", "DAY"),
        ]
    );
    let second = &orders[1].form;
    assert_eq!(second.get("order_type").map(String::as_str), Some("MARKET"));
    assert_eq!(second.get("product").map(String::as_str), Some("CNC"));
    assert_eq!(
        second.get("transaction_type").map(String::as_str),
        Some("SELL")
    );
    assert!(!second.contains_key("price"));
    assert!(!second.contains_key("tag"));

    let invalid = OrderParams::market("NSE", "INFY", Side::Buy, Quantity(0))
        .with_market_protection(MarketProtection::Automatic);
    let err = client.place_order(&invalid).await.unwrap_err();
    assert!(matches!(err, KiteError::InvalidOrder { .. }));
    assert_eq!(
        fake.orders().len(),
        2,
        "invalid orders never leave the process"
    );
}

#[tokio::test]
async fn every_kite_error_type_maps_to_a_typed_error_and_class() {
    let fake = fake().await;
    let settings = ZerodhaSettings {
        max_retries: 0,
        ..fake.settings()
    };
    let client = logged_in(&fake, &settings).await;
    let cases: [(u16, &str, ErrorClass); 11] = [
        (403, "TokenException", ErrorClass::Business),
        (400, "UserException", ErrorClass::Business),
        (500, "OrderException", ErrorClass::Business),
        (400, "InputException", ErrorClass::Business),
        (400, "MarginException", ErrorClass::Business),
        (400, "HoldingException", ErrorClass::Business),
        (503, "NetworkException", ErrorClass::Transient),
        (502, "DataException", ErrorClass::Infrastructure),
        (500, "GeneralException", ErrorClass::Infrastructure),
        (403, "PermissionException", ErrorClass::Business),
        (429, "NetworkException", ErrorClass::Transient),
    ];
    for (status, error_type, class) in cases {
        fake.fail_next(status, error_type, "injected failure");
        let err = client.orders().await.unwrap_err();
        let variant_ok = match error_type {
            "TokenException" => matches!(err, KiteError::TokenExpired { .. }),
            "UserException" => matches!(err, KiteError::User { .. }),
            "OrderException" => matches!(err, KiteError::Order { .. }),
            "InputException" => matches!(err, KiteError::Input { .. }),
            "MarginException" => matches!(err, KiteError::Margin { .. }),
            "HoldingException" => matches!(err, KiteError::Holding { .. }),
            "NetworkException" if status == 429 => matches!(err, KiteError::RateLimited { .. }),
            "NetworkException" => matches!(err, KiteError::Network { .. }),
            "DataException" => matches!(err, KiteError::Data { .. }),
            "GeneralException" => matches!(err, KiteError::General { status: 500, .. }),
            "PermissionException" => matches!(err, KiteError::Permission { .. }),
            _ => false,
        };
        assert!(variant_ok, "{status} {error_type} → {err:?}");
        assert_eq!(err.class(), class, "{error_type}");
        assert!(err.to_string().contains("injected failure"), "{err}");
    }
    // Kite's rejection of a placement is a business error the engine answers with order_failed.
    fake.fail_next(400, "MarginException", "Insufficient funds");
    let err = client
        .place_order(
            &OrderParams::market("NSE", "INFY", Side::Buy, Quantity(1))
                .with_market_protection(MarketProtection::Automatic),
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Business);
}

#[tokio::test]
async fn rate_limited_calls_are_retried_then_succeed() {
    let fake = fake().await;
    let client = logged_in(&fake, &fake.settings()).await;
    let before = fake.requests();
    fake.rate_limit_next();
    assert!(client.orders().await.unwrap().is_empty());
    assert_eq!(fake.requests() - before, 2);
    assert_eq!(client.retries(), 1);

    // An order refused with 429 was certainly not taken, so it is retried too…
    fake.rate_limit_next();
    let id = client
        .place_order(
            &OrderParams::market("NSE", "INFY", Side::Buy, Quantity(1))
                .with_market_protection(MarketProtection::Automatic),
        )
        .await
        .unwrap();
    assert_eq!(fake.orders().len(), 1);
    assert_eq!(fake.orders()[0].order_id, id.0);
    // …but a 503 on placement may hide an accepted order: it goes back to the caller.
    fake.fail_next(503, "NetworkException", "OMS unreachable");
    let err = client
        .place_order(
            &OrderParams::market("NSE", "INFY", Side::Buy, Quantity(1))
                .with_market_protection(MarketProtection::Automatic),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KiteError::Network { .. }));
    assert_eq!(client.retries(), 2);

    // A read gives up after its budget.
    let settings = ZerodhaSettings {
        max_retries: 2,
        ..fake.settings()
    };
    let client = logged_in(&fake, &settings).await;
    for _ in 0..3 {
        fake.rate_limit_next();
    }
    assert!(matches!(
        client.trades().await,
        Err(KiteError::RateLimited { .. })
    ));
    assert_eq!(client.retries(), 2);
}

#[tokio::test]
async fn client_side_rate_limiter_delays_orders_beyond_the_limit() {
    let fake = fake().await;
    let settings = ZerodhaSettings {
        rate_limits: RateLimits {
            orders_per_second: 2,
            orders_per_minute: 0,
            orders_per_day: 0,
            quotes_per_second: 0,
            other_per_second: 0,
        },
        ..fake.settings()
    };
    let client = logged_in(&fake, &settings).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        client
            .place_order(
                &OrderParams::market("NSE", "INFY", Side::Buy, Quantity(1))
                    .with_market_protection(MarketProtection::Automatic),
            )
            .await
            .unwrap();
    }
    assert_eq!(client.rate_limiter().delayed_calls(), 1);
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(fake.orders().len(), 3);
}

#[tokio::test]
async fn fills_history_trades_and_lookup_by_tag() {
    let fake = fake().await;
    let client = logged_in(&fake, &fake.settings()).await;
    fake.set_fill(FillBehaviour::Complete {
        market_price: dec!(1573.75),
    });
    let id = client
        .place_order(
            &OrderParams::market("NSE", "INFY", Side::Buy, Quantity(2))
                .with_market_protection(MarketProtection::Automatic)
                .with_tag("sigB2"),
        )
        .await
        .unwrap();
    let history = client.order_history(&id).await.unwrap();
    let statuses: Vec<&str> = history.iter().map(|o| o.status.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "PUT ORDER REQ RECEIVED",
            "VALIDATION PENDING",
            "OPEN PENDING",
            "OPEN",
            "COMPLETE"
        ]
    );
    let done = history.last().unwrap();
    assert!(done.is_complete());
    assert_eq!(done.average_price, dec!(1573.75));
    assert_eq!(done.filled_quantity, 2);
    assert_eq!(done.tag.as_deref(), Some("sigB2"));
    assert!(done.order_timestamp.is_some());

    let trades = client.order_trades(&id).await.unwrap();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0].average_price, dec!(1573.75));
    assert_eq!(trades[0].quantity, 2);
    assert_eq!(trades[0].order_id, id);
    assert_eq!(client.trades().await.unwrap().len(), 1);

    fake.set_fill(FillBehaviour::Open);
    let open_id = client
        .place_order(
            &OrderParams::limit("NSE", "SBIN", Side::Sell, Quantity(1), Price(dec!(812.35)))
                .with_tag("sigC3"),
        )
        .await
        .unwrap();
    let open = client.order_by_tag("sigC3").await.unwrap().unwrap();
    assert_eq!(open.order_id, open_id);
    assert_eq!(open.status, "OPEN");
    assert_eq!(open.price, dec!(812.35));
    assert!(fake.complete_order(&open_id.0, dec!(812.40)));
    let filled = client.order_by_tag("sigC3").await.unwrap().unwrap();
    assert!(filled.is_complete());
    assert_eq!(filled.average_price, dec!(812.40));
    assert!(client.order_by_tag("nosuchtag").await.unwrap().is_none());
    assert_eq!(
        fake.order_by_tag("sigB2").map(|o| o.order_id),
        Some(id.0.clone())
    );

    fake.reject_orders(Some(
        "Insufficient funds. Required margin is 95417.84".into(),
    ));
    let rejected = client
        .place_order(
            &OrderParams::market("NSE", "INFY", Side::Buy, Quantity(1))
                .with_market_protection(MarketProtection::Automatic)
                .with_tag("sigD4"),
        )
        .await
        .unwrap();
    let state = client.order_history(&rejected).await.unwrap();
    let last = state.last().unwrap();
    assert_eq!(last.status, "REJECTED");
    assert!(last
        .status_message
        .as_deref()
        .unwrap()
        .starts_with("Insufficient funds"));

    let missing = client
        .order_history(&KiteOrderId("999".into()))
        .await
        .unwrap_err();
    assert!(matches!(missing, KiteError::Input { .. }));
}

#[tokio::test]
async fn instruments_download_is_gunzipped_and_parsed() {
    let csv = std::fs::read_to_string(format!(
        "{}/tests/fixtures/instruments_all.csv",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let fake = FakeKite::start(FakeKiteConfig {
        instruments_csv: csv,
        ..FakeKiteConfig::default()
    })
    .await
    .unwrap();
    let client = logged_in(&fake, &fake.settings()).await;
    let rows = client.instruments().await.unwrap();
    assert_eq!(rows.len(), 99);
    assert_eq!(rows[0].tradingsymbol, "CENTRALBK-BE");

    let broken = FakeKite::start(FakeKiteConfig {
        instruments_csv: "instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange\nX,1,A,,0,,,0.05,1,EQ,NSE,NSE\n".into(),
        ..FakeKiteConfig::default()
    })
    .await
    .unwrap();
    let client = logged_in(&broken, &broken.settings()).await;
    let err = client.instruments().await.unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
}

/// Posts an order form to the fake as a client that skips our validation would, and returns the
/// status and the JSON body.
async fn post_raw(fake: &FakeKite, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/orders/regular", fake.api_url()))
        .header("X-Kite-Version", "3")
        .header("Authorization", "token fake_api_key:fake_access_token")
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

const MARKET_FORM: [(&str, &str); 6] = [
    ("exchange", "NSE"),
    ("tradingsymbol", "INFY"),
    ("transaction_type", "BUY"),
    ("quantity", "1"),
    ("product", "MIS"),
    ("order_type", "MARKET"),
];

/// The April 2026 rule, with Kite's body: MARKET and SL-M orders without market protection, or
/// with 0, are refused; a value that is not a decimal gets its own message.
#[tokio::test]
async fn unprotected_market_orders_get_kites_error_body() {
    let fake = fake().await;
    let refusal = serde_json::json!({
        "status": "error",
        "message": "Market orders without market protection are not allowed via API. Please set market protection or use a Limit order.",
        "error_type": "InputException",
        "data": null,
    });
    assert_eq!(post_raw(&fake, &MARKET_FORM).await, (400, refusal.clone()));
    let zero = [&MARKET_FORM[..], &[("market_protection", "0")]].concat();
    assert_eq!(post_raw(&fake, &zero).await, (400, refusal.clone()));
    let mut slm = MARKET_FORM.to_vec();
    slm[5] = ("order_type", "SL-M");
    slm.push(("trigger_price", "1490"));
    assert_eq!(post_raw(&fake, &slm).await, (400, refusal));
    let not_decimal = [&MARKET_FORM[..], &[("market_protection", "True")]].concat();
    let (status, body) = post_raw(&fake, &not_decimal).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "Invalid request (failed to decode market_protection, got: True (expected decimal))"
    );
    let protected = [&MARKET_FORM[..], &[("market_protection", "2.5")]].concat();
    let (status, body) = post_raw(&fake, &protected).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fake.orders().len(), 1);
    // The order carries its protection, as Kite echoes it.
    let client = logged_in(&fake, &fake.settings()).await;
    let book = client.orders().await.unwrap();
    assert_eq!(book.len(), 1);
    assert!(fake.orders()[0].latest().unwrap()["market_protection"] == serde_json::json!(2.5));
}

/// Kite's strict 10 order requests per calendar second: beyond them the answer is 429.
#[tokio::test]
async fn the_fake_takes_ten_order_requests_per_second() {
    let fake = fake().await;
    let protected = [&MARKET_FORM[..], &[("market_protection", "-1")]].concat();
    let mut refused = 0;
    for _ in 0..25 {
        let (status, body) = post_raw(&fake, &protected).await;
        if status == 429 {
            assert_eq!(body["error_type"], "NetworkException");
            refused += 1;
        }
    }
    // 25 requests within two calendar seconds: one of them held more than ten.
    assert!(refused >= 1, "no request refused");
    assert_eq!(fake.orders().len(), 25 - refused);
}

#[tokio::test]
async fn an_open_order_is_modified_filled_in_part_and_cancelled() {
    let fake = fake().await;
    let client = logged_in(&fake, &fake.settings()).await;
    let id = client
        .place_order(&OrderParams::limit(
            "NSE",
            "INFY",
            Side::Buy,
            Quantity(3),
            Price(dec!(1500)),
        ))
        .await
        .unwrap();
    let changes = alpha_panda_kite::ModifyParams {
        price: Some(Price(dec!(1501.5))),
        ..Default::default()
    };
    client
        .modify_order(alpha_panda_kite::Variety::Regular, &id, &changes)
        .await
        .unwrap();
    assert!(fake.fill(id.as_str(), 1, dec!(1501.5)));
    client
        .cancel_order(alpha_panda_kite::Variety::Regular, &id)
        .await
        .unwrap();
    let history = client.order_history(&id).await.unwrap();
    let statuses: Vec<&str> = history.iter().map(|o| o.status.as_str()).collect();
    assert_eq!(
        &statuses[3..],
        ["OPEN", "MODIFIED", "OPEN", "OPEN", "CANCELLED"]
    );
    let last = history.last().unwrap();
    assert_eq!(last.price, dec!(1501.5));
    assert_eq!((last.filled_quantity, last.cancelled_quantity), (1, 2));
    let trades = client.order_trades(&id).await.unwrap();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0].quantity, 1);
    // A cancelled order can be neither cancelled nor modified again.
    let again = client
        .cancel_order(alpha_panda_kite::Variety::Regular, &id)
        .await
        .unwrap_err();
    assert_eq!(again.class(), ErrorClass::Business, "{again:?}");
    let modify = client
        .modify_order(alpha_panda_kite::Variety::Regular, &id, &changes)
        .await
        .unwrap_err();
    assert_eq!(modify.class(), ErrorClass::Business, "{modify:?}");
}

/// Above its freeze quantity an order goes only with autoslice, which Kite cuts into slices of
/// the freeze quantity (at most ten), each an order with its own id and the parent's tag.
#[tokio::test]
async fn autoslice_cuts_an_order_above_the_freeze_quantity_into_at_most_ten_slices() {
    let fake = fake().await;
    fake.set_freeze_quantity("INFY", 1800);
    let client = logged_in(&fake, &fake.settings()).await;
    let order = |quantity: u32| {
        OrderParams::limit(
            "NSE",
            "INFY",
            Side::Buy,
            Quantity(quantity),
            Price(dec!(1500)),
        )
        .with_tag("APslice0000000000001")
    };
    // Whole, above the freeze quantity: refused.
    let err = client.place_order(&order(4000)).await.unwrap_err();
    assert!(err.to_string().contains("freeze quantity 1800"), "{err}");
    // Sliced: 1800 + 1800 + 400.
    let placed = client.place_autoslice_order(&order(4000)).await.unwrap();
    let slices = placed.placed();
    assert_eq!(slices.len(), 3);
    assert_eq!(slices[0], placed.order_id, "the parent is the first slice");
    let book = client.orders().await.unwrap();
    let mut quantities: Vec<u32> = book.iter().map(|o| o.quantity).collect();
    quantities.sort_unstable();
    assert_eq!(quantities, vec![400, 1800, 1800]);
    for o in &book {
        assert_eq!(o.tag.as_deref(), Some("APslice0000000000001"));
        assert!(o.tags.contains(&"autoslice".to_string()), "{:?}", o.tags);
        assert!(o.tags.contains(&format!("autoslice:{}", placed.order_id)));
    }
    // Ten slices at most; at or below the freeze quantity there is nothing to slice.
    let err = client
        .place_autoslice_order(&order(18_001))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at most 10"), "{err}");
    let err = client
        .place_autoslice_order(&order(1800))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("Quantity should be greater than or equal to 1801 for order slicing."),
        "{err}"
    );
    assert_eq!(
        client
            .place_autoslice_order(&order(18_000))
            .await
            .unwrap()
            .placed()
            .len(),
        10
    );
}

/// Kite's virtual contract note, in the shape of the reference sample and reproducing its rules.
#[tokio::test]
async fn the_contract_note_itemises_an_orders_charges() {
    use alpha_panda_kite::ContractNoteOrder;
    let fake = fake().await;
    let client = logged_in(&fake, &fake.settings()).await;
    let order = |side: &str, product: &str| ContractNoteOrder {
        order_id: "250101000000001".into(),
        exchange: "NSE".into(),
        tradingsymbol: "INFY".into(),
        transaction_type: side.into(),
        variety: "regular".into(),
        product: product.into(),
        order_type: "MARKET".into(),
        quantity: 500,
        average_price: dec!(1000),
    };
    let note = client
        .contract_note(&[
            order("BUY", "MIS"),
            order("SELL", "MIS"),
            order("BUY", "CNC"),
        ])
        .await
        .unwrap();
    assert_eq!(note.len(), 3);
    let (buy, sell, delivery) = (&note[0].charges, &note[1].charges, &note[2].charges);
    // Turnover ₹5,00,000: brokerage capped at ₹20, STT 0.025 % on the sell, stamp 0.003 % on the
    // buy rounded to the rupee, exchange charge with IPFT, GST without IPFT.
    assert_eq!(buy.brokerage, dec!(20));
    assert_eq!(sell.transaction_tax, dec!(125));
    assert_eq!(buy.transaction_tax, dec!(0));
    assert_eq!(buy.stamp_duty, dec!(15));
    assert_eq!(buy.exchange_turnover_charge, dec!(15.35));
    assert_eq!(buy.sebi_turnover_charge, dec!(0.5));
    assert_eq!(buy.gst.total, dec!(6.363));
    assert_eq!(
        buy.total,
        buy.brokerage
            + buy.transaction_tax
            + buy.exchange_turnover_charge
            + buy.sebi_turnover_charge
            + buy.stamp_duty
            + buy.gst.total
    );
    assert_eq!(delivery.brokerage, dec!(0));
    assert_eq!(delivery.transaction_tax, dec!(500));
    assert_eq!(delivery.stamp_duty, dec!(75));
    // Every key of the reference sample is in the answer.
    let sample: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/virtual_contract_note.json")).unwrap();
    let raw = reqwest::Client::new()
        .post(format!("{}/charges/orders", fake.api_url()))
        .header("X-Kite-Version", "3")
        .header("Authorization", "token fake_api_key:fake_access_token")
        .json(&serde_json::json!([order("SELL", "MIS")]))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let (ours, theirs) = (&raw["data"][0], &sample["data"][0]);
    assert_eq!(keys(ours), keys(theirs));
    assert_eq!(keys(&ours["charges"]), keys(&theirs["charges"]));
    assert_eq!(
        keys(&ours["charges"]["gst"]),
        keys(&theirs["charges"]["gst"])
    );
    // A request without a field Kite needs gets Kite's error body; an outage a 503.
    let (status, body) = {
        let r = reqwest::Client::new()
            .post(format!("{}/charges/orders", fake.api_url()))
            .header("X-Kite-Version", "3")
            .header("Authorization", "token fake_api_key:fake_access_token")
            .json(&serde_json::json!([{"order_id": "1"}]))
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap(),
        )
    };
    assert_eq!(status, 400);
    assert_eq!(body["error_type"], "InputException");
    assert_eq!(body["message"], "Missing or invalid `exchange`.");
    fake.set_contract_note_unavailable(true);
    let err = client
        .contract_note(&[order("BUY", "MIS")])
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient, "{err:?}");
}

/// Kite's other order rules as the fake keeps them: an order is modified at most 25 times, and
/// an algo order on MCX is never IOC.
#[tokio::test]
async fn an_order_is_modified_at_most_25_times_and_mcx_takes_no_ioc() {
    let fake = fake().await;
    let mut settings = fake.settings();
    // Kite's 10 order requests a second, kept by the client.
    settings.rate_limits.orders_per_second = 10;
    let client = logged_in(&fake, &settings).await;
    let id = client
        .place_order(&OrderParams::limit(
            "NSE",
            "INFY",
            Side::Buy,
            Quantity(3),
            Price(dec!(1500)),
        ))
        .await
        .unwrap();
    for n in 0..25u32 {
        let changes = alpha_panda_kite::ModifyParams {
            price: Some(Price(dec!(1500) + rust_decimal::Decimal::from(n))),
            ..Default::default()
        };
        client
            .modify_order(alpha_panda_kite::Variety::Regular, &id, &changes)
            .await
            .unwrap();
    }
    let changes = alpha_panda_kite::ModifyParams {
        price: Some(Price(dec!(1400))),
        ..Default::default()
    };
    let err = client
        .modify_order(alpha_panda_kite::Variety::Regular, &id, &changes)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Business, "{err:?}");
    assert!(err.to_string().contains("modifications exceeded"), "{err}");

    let ioc = [
        ("exchange", "MCX"),
        ("tradingsymbol", "GOLDPETAL23JULFUT"),
        ("transaction_type", "BUY"),
        ("quantity", "1"),
        ("product", "NRML"),
        ("order_type", "LIMIT"),
        ("price", "5862"),
        ("validity", "IOC"),
    ];
    let (status, body) = post_raw(&fake, &ioc).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_type"], "InputException");
}
