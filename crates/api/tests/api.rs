//! The API end to end, in process (tower's `oneshot` against the router) over a migrated SQLite
//! store: logins, refresh and logout; missing, tampered and expired tokens; the role matrix of
//! every route in the route table; 4xx answers with messages; login rate limiting; the kill
//! switch; strategies; health, metrics, the OpenAPI document and the event stream's resume.

use std::sync::Arc;
use std::time::Duration;

use alpha_panda_api::routes::{Access, ROUTES};
use alpha_panda_api::{router, ApiSettings, ApiState, EventHub, ReadinessCheck};
use alpha_panda_core::{Broker, Timestamp};
use alpha_panda_store::{Role, Store, StrategyConfiguration};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use futures::FutureExt;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const SECRET: &str = "a-test-secret-of-at-least-thirty-two-bytes";

fn settings() -> ApiSettings {
    ApiSettings {
        jwt_secret: SECRET.into(),
        ..ApiSettings::default()
    }
}

async fn store() -> Store {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let now = Timestamp::from_datetime(chrono::Utc::now());
    store
        .strategy_configurations()
        .upsert(&StrategyConfiguration {
            id: "ema_infy".into(),
            strategy_type: "ema_cross".into(),
            instruments: vec![408065],
            parameters: json!({"fast": 5, "slow": 20}),
            is_active: true,
            zerodha_trading_enabled: false,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    // One stored PnL snapshot: paper:ema_infy has a portfolio, an equity curve and a position.
    let strategy_id = alpha_panda_core::StrategyId::new("ema_infy").unwrap();
    let snapshot = alpha_panda_core::PnlSnapshot {
        portfolio_id: alpha_panda_core::PortfolioId::for_strategy(Broker::Paper, &strategy_id),
        strategy_id,
        broker: Broker::Paper,
        as_of: now,
        realized_pnl: alpha_panda_core::Money(rust_decimal::Decimal::new(12_050, 2)),
        unrealized_pnl: alpha_panda_core::Money(rust_decimal::Decimal::new(-3_025, 2)),
        fees: alpha_panda_core::Money(rust_decimal::Decimal::new(910, 2)),
        total_pnl: alpha_panda_core::Money(rust_decimal::Decimal::new(8_115, 2)),
        cash: alpha_panda_core::Money(rust_decimal::Decimal::from(1_000_000)),
        positions: vec![alpha_panda_core::PositionSnapshot {
            instrument_token: alpha_panda_core::InstrumentToken(408_065),
            quantity: 5,
            average_price: alpha_panda_core::Price(rust_decimal::Decimal::new(150_005, 2)),
            last_price: alpha_panda_core::Price(rust_decimal::Decimal::new(150_610, 2)),
            realized_pnl: alpha_panda_core::Money(rust_decimal::Decimal::new(12_050, 2)),
            unrealized_pnl: alpha_panda_core::Money(rust_decimal::Decimal::new(-3_025, 2)),
        }],
        snapshot_type: alpha_panda_core::SnapshotType::Periodic,
        checksum: String::new(),
    }
    .seal();
    let mut tx = store.begin().await.unwrap();
    tx.record_pnl_snapshot(
        alpha_panda_core::EventId::new_root(),
        &snapshot,
        alpha_panda_store::ValidationStatus::Valid,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    for (name, role) in [
        ("ada", Role::Admin),
        ("tom", Role::Trader),
        ("vic", Role::Viewer),
        ("spare", Role::Viewer),
    ] {
        store
            .users()
            .create(name, "correct horse battery", role)
            .await
            .unwrap();
    }
    store
}

struct Api {
    app: Router,
    store: Store,
    events: EventHub,
}

async fn api() -> Api {
    let store = store().await;
    let events = EventHub::default();
    let log = alpha_panda_stream::Log::connect("memory://", &Default::default()).unwrap();
    let state = ApiState::new(
        &settings(),
        store.clone(),
        vec![Broker::Paper, Broker::Zerodha],
    )
    .with_events(events.clone())
    .with_log(log);
    Api {
        app: router(Arc::new(state), &settings()),
        store,
        events,
    }
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => request.body(Body::empty()).unwrap(),
    };
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

async fn login(app: &Router, username: &str) -> Value {
    let (status, body) = call(
        app,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"username": username, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn token(app: &Router, username: &str) -> String {
    login(app, username).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {body}"
    );
}

#[tokio::test]
async fn login_refresh_and_logout() {
    let api = api().await;
    let tokens = login(&api.app, "tom").await;
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["role"], "trader");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap();
    let (status, me) = call(&api.app, "GET", "/api/v1/auth/me", Some(access), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({"username": "tom", "role": "trader", "brokers": ["paper", "zerodha"]})
    );

    // Wrong password and unknown user get the same answer.
    for (user, password) in [
        ("tom", "wrong horse battery"),
        ("nobody", "correct horse battery"),
    ] {
        let (status, body) = call(
            &api.app,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"username": user, "password": password})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["message"], "wrong username or password");
    }

    // A refresh token is used once.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, renewed) = call(
        &api.app,
        "POST",
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_ne!(renewed["refresh_token"], tokens["refresh_token"]);
    let (status, body) = call(
        &api.app,
        "POST",
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");

    // Logout revokes the refresh token.
    let new_refresh = renewed["refresh_token"].as_str().unwrap();
    let new_access = renewed["access_token"].as_str().unwrap();
    let (status, _) = call(
        &api.app,
        "POST",
        "/api/v1/auth/logout",
        Some(new_access),
        Some(json!({"refresh_token": new_refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &api.app,
        "POST",
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": new_refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_tampered_expired_and_orphaned_tokens_are_refused() {
    let api = api().await;
    let (status, body) = call(&api.app, "GET", "/api/v1/strategies", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, "unauthorized");

    let good = token(&api.app, "vic").await;
    // Flip one character of the signature.
    let mut tampered = good.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let (status, body) = call(&api.app, "GET", "/api/v1/strategies", Some(&tampered), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("not valid"),
        "{body}"
    );

    // Signed with another key.
    let other = alpha_panda_api::auth::Auth::new(
        "another-secret-another-secret-another",
        Duration::from_secs(60),
        Duration::from_secs(600),
    );
    let user = api.store.users().get("vic").await.unwrap().unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    let foreign = other.access_token(&user, now).unwrap();
    let (status, _) = call(&api.app, "GET", "/api/v1/strategies", Some(&foreign), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Expired: signed with our key an hour ago, valid for 15 minutes.
    let ours = alpha_panda_api::auth::Auth::new(
        SECRET,
        Duration::from_secs(900),
        Duration::from_secs(9000),
    );
    let expired = ours.access_token(&user, now - 3600).unwrap();
    let (status, body) = call(&api.app, "GET", "/api/v1/strategies", Some(&expired), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    // Not a bearer token at all.
    let response = api
        .app
        .clone()
        .oneshot(
            Request::get("/api/v1/strategies")
                .header(header::AUTHORIZATION, "Basic dmljOnBhc3M=")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A removed user's token stops working at once.
    let spare = token(&api.app, "spare").await;
    assert!(api.store.users().remove("spare").await.unwrap());
    let (status, _) = call(&api.app, "GET", "/api/v1/strategies", Some(&spare), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A request for each route that succeeds for a role allowed to make it.
fn example(method: &str, path: &str) -> (String, Option<Value>) {
    let path = path
        .replace("{broker}", "paper")
        .replace("{id}", "ema_infy")
        .replace("{username}", "spare");
    let path = match path.as_str() {
        "/api/v1/paper/pnl/snapshots" | "/api/v1/paper/equity" => {
            format!("{path}?portfolio=paper:ema_infy")
        }
        "/api/v1/market/last" => format!("{path}?tokens=408065"),
        _ => path,
    };
    let body = match (method, path.as_str()) {
        ("POST", "/api/v1/auth/login") => {
            Some(json!({"username": "vic", "password": "correct horse battery"}))
        }
        ("POST", "/api/v1/auth/refresh" | "/api/v1/auth/logout") => {
            Some(json!({"refresh_token": "unknown"}))
        }
        ("POST", "/api/v1/paper/kill-switch") => {
            Some(json!({"engaged": false, "reason": "matrix"}))
        }
        ("POST", "/api/v1/strategies") => Some(
            json!({"id": "matrix_new", "strategy_type": "ema_cross", "instruments": [408065], "parameters": null}),
        ),
        ("PUT", "/api/v1/strategies/ema_infy") => {
            Some(json!({"parameters": {"fast": 6, "slow": 21}}))
        }
        ("POST", "/api/v1/strategies/ema_infy/zerodha") => Some(json!({"enabled": false})),
        ("POST", "/api/v1/users") => Some(
            json!({"username": "matrix_user", "password": "a long password", "role": "viewer"}),
        ),
        ("POST", "/api/v1/dlq/replay") => Some(json!({"topic": "paper.signals.raw"})),
        _ => None,
    };
    (path, body)
}

#[tokio::test]
async fn every_route_answers_403_to_a_role_that_may_not_and_serves_one_that_may() {
    let api = api().await;
    let tokens = [
        (Role::Viewer, token(&api.app, "vic").await),
        (Role::Trader, token(&api.app, "tom").await),
        (Role::Admin, token(&api.app, "ada").await),
    ];
    for route in ROUTES {
        if route.path == "/api/v1/events" || route.path == "/api/v1/logs" {
            continue; // Streams never end; the stream test covers their access.
        }
        let Access::Role(needed) = route.access else {
            continue;
        };
        for (role, token) in &tokens {
            let (path, body) = example(route.method, route.path);
            let (status, answer) = call(&api.app, route.method, &path, Some(token), body).await;
            if role.allows(needed) {
                assert!(
                    status != StatusCode::FORBIDDEN
                        && status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::METHOD_NOT_ALLOWED
                        && !(status == StatusCode::NOT_FOUND
                            && answer["message"]
                                .as_str()
                                .is_some_and(|m| m.starts_with("no such route"))),
                    "{} {path} as {role}: {status} {answer}",
                    route.method
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{} {path} as {role}: {answer}",
                    route.method
                );
                assert_error(&answer, "forbidden");
            }
        }
        // And nobody without a token.
        let (path, body) = example(route.method, route.path);
        let (status, _) = call(&api.app, route.method, &path, None, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {path}", route.method);
    }
}

#[tokio::test]
async fn bad_requests_get_a_4xx_with_a_message() {
    let api = api().await;
    let t = token(&api.app, "tom").await;
    let cases: Vec<(&str, &str, Option<Value>, StatusCode, &str)> = vec![
        (
            "GET",
            "/api/v1/kraken/portfolios",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/strategies/none_such",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/no/such/route",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "GET",
            "/api/v1/paper/orders?limit=0",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/paper/orders?limit=abc",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/paper/equity",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "GET",
            "/api/v1/paper/equity?portfolio=zerodha:x",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/paper/kill-switch",
            Some(json!({"engaged": true})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/paper/kill-switch",
            Some(json!({"engaged": true, "reason": " "})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/paper/kill-switch",
            Some(json!({"engaged": true, "reason": "x", "extra": 1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/strategies/ema_infy",
            Some(json!({"parameters": {"fast": 30, "slow": 10}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "PUT",
            "/api/v1/strategies/ema_infy",
            Some(json!({"parameters": {"fastest": 3}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
        (
            "POST",
            "/api/v1/strategies",
            Some(json!({"id": "ema_infy", "strategy_type": "ema_cross", "instruments": [1]})),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "POST",
            "/api/v1/strategies",
            Some(json!({"id": "x1", "strategy_type": "astrology", "instruments": [1]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, answer) = call(&api.app, method, path, Some(&t), body).await;
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert_error(&answer, code);
    }
    // A body that is not JSON.
    let response = api
        .app
        .clone()
        .oneshot(
            Request::post("/api/v1/paper/kill-switch")
                .header(header::AUTHORIZATION, format!("Bearer {t}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The bad parameter is named.
    let (_, answer) = call(
        &api.app,
        "PUT",
        "/api/v1/strategies/ema_infy",
        Some(&t),
        Some(json!({"parameters": {"fastest": 3}})),
    )
    .await;
    assert!(
        answer["message"].as_str().unwrap().contains("fastest"),
        "{answer}"
    );
    // Admins cannot remove themselves; unknown users are 404.
    let a = token(&api.app, "ada").await;
    let (status, _) = call(&api.app, "DELETE", "/api/v1/users/ada", Some(&a), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // A body that is a JSON array, not an object, is refused (serde alone would take it).
    let (status, answer) = call(
        &api.app,
        "PUT",
        "/api/v1/strategies/ema_infy",
        Some(&t),
        Some(json!([null, null])),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, _) = call(&api.app, "DELETE", "/api/v1/users/ghost", Some(&a), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn failed_logins_are_limited_per_user_and_address() {
    let api = api().await;
    let attempt = |password: &'static str| {
        let app = api.app.clone();
        async move {
            let response = app
                .oneshot(
                    Request::post("/api/v1/auth/login")
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from(
                            json!({"username": "vic", "password": password}).to_string(),
                        ))
                        .unwrap(),
                )
                .await
                .unwrap();
            (
                response.status(),
                response.headers().get(header::RETRY_AFTER).cloned(),
            )
        }
    };
    for _ in 0..5 {
        assert_eq!(attempt("wrong password!").await.0, StatusCode::UNAUTHORIZED);
    }
    // Locked: even the right password waits.
    let (status, retry_after) = attempt("correct horse battery").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let seconds: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!(seconds > 0 && seconds <= 900);
    // Another user is not locked by vic's failures.
    login(&api.app, "tom").await;
}

#[tokio::test]
async fn the_kill_switch_is_stored_with_who_and_why() {
    let api = api().await;
    let t = token(&api.app, "tom").await;
    let (status, state) = call(
        &api.app,
        "GET",
        "/api/v1/zerodha/kill-switch",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["engaged"], false);
    let (status, state) = call(
        &api.app,
        "POST",
        "/api/v1/zerodha/kill-switch",
        Some(&t),
        Some(json!({"engaged": true, "reason": "exchange outage"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["changed_by"], "tom");
    assert!(api
        .store
        .kill_switches()
        .engaged(Broker::Zerodha)
        .await
        .unwrap());
    assert!(!api
        .store
        .kill_switches()
        .engaged(Broker::Paper)
        .await
        .unwrap());
    let (_, state) = call(
        &api.app,
        "GET",
        "/api/v1/zerodha/kill-switch",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(state["engaged"], true);
    assert_eq!(state["reason"], "exchange outage");
}

#[tokio::test]
async fn strategies_are_changed_and_switched_by_a_trader() {
    let api = api().await;
    let t = token(&api.app, "tom").await;
    let (status, s) = call(
        &api.app,
        "POST",
        "/api/v1/strategies/ema_infy/disable",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s["is_active"], false);
    let stored = api
        .store
        .strategy_configurations()
        .get("ema_infy")
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.is_active);
    let (_, s) = call(
        &api.app,
        "PUT",
        "/api/v1/strategies/ema_infy",
        Some(&t),
        Some(json!({"instruments": [408065, 2885], "parameters": {"fast": 3, "slow": 9}})),
    )
    .await;
    assert_eq!(s["instruments"], json!([408065, 2885]));
    assert_eq!(s["parameters"], json!({"fast": 3, "slow": 9}));
    let (_, s) = call(
        &api.app,
        "POST",
        "/api/v1/strategies/ema_infy/zerodha",
        Some(&t),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(s["zerodha_trading_enabled"], true);
    let (status, s) = call(&api.app, "POST", "/api/v1/strategies", Some(&t), Some(json!({"id": "mr_sbin", "strategy_type": "mean_reversion", "instruments": [779521], "parameters": {"window": 10}}))).await;
    assert_eq!(status, StatusCode::CREATED, "{s}");
    let (_, all) = call(&api.app, "GET", "/api/v1/strategies", Some(&t), None).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn readiness_names_the_failing_check_and_liveness_is_plain() {
    let store = store().await;
    let state = ApiState::new(&settings(), store, vec![Broker::Paper])
        .with_check(ReadinessCheck {
            name: "database",
            probe: Box::new(|| async { Ok(()) }.boxed()),
        })
        .with_check(ReadinessCheck {
            name: "cache",
            probe: Box::new(|| {
                async { Err("connection refused (redis://127.0.0.1:1)".to_string()) }.boxed()
            }),
        });
    let app = router(Arc::new(state), &settings());
    let (status, body) = call(&app, "GET", "/health/ready", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert_eq!(body["checks"]["cache"]["status"], "failing");
    assert!(body["checks"]["cache"]["reason"]
        .as_str()
        .unwrap()
        .contains("refused"));
    let (status, body) = call(&app, "GET", "/health/live", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "live"})));
}

#[tokio::test]
async fn metrics_are_prometheus_text_named_alpha_panda() {
    let api = api().await;
    let t = token(&api.app, "tom").await;
    call(
        &api.app,
        "POST",
        "/api/v1/paper/kill-switch",
        Some(&t),
        Some(json!({"engaged": true, "reason": "drill"})),
    )
    .await;
    let response = api
        .app
        .clone()
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("alpha_panda_up 1"), "{text}");
    assert!(
        text.contains("alpha_panda_kill_switch_engaged{broker=\"paper\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("alpha_panda_kill_switch_engaged{broker=\"zerodha\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("alpha_panda_tick_to_fill_seconds_bucket{broker=\"paper\",le=\"+Inf\"} 0")
    );
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.starts_with("alpha_panda_"), "{line}");
    }
    // The shipped Grafana dashboard queries only series this endpoint declares.
    let dashboard = include_str!("../../../deploy/grafana/dashboards/alpha-panda.json");
    let declared: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut rest = dashboard;
    let mut queried = 0;
    while let Some(at) = rest.find("alpha_panda_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let family = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            declared.contains(&family),
            "the dashboard queries {name}, which /metrics lacks"
        );
        queried += 1;
    }
    assert!(queried >= 8);
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_resolves_its_refs() {
    let api = api().await;
    let (status, doc) = call(&api.app, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    for route in ROUTES {
        let op = &doc["paths"][route.path][route.method.to_lowercase()];
        assert!(op.is_object(), "{} {} missing", route.method, route.path);
        assert!(op["responses"][route.status.to_string()].is_object());
    }
    // Every $ref points at a component that exists.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref" {
                        out.push(v.as_str().unwrap().to_string());
                    }
                    refs(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} unresolved"
        );
    }
}

#[tokio::test]
async fn the_event_stream_resumes_after_the_last_event_id() {
    use alpha_panda_core::{Alert, AlertKind, AlertSeverity, Envelope, EventBroker, Payload};
    let api = api().await;
    let t = token(&api.app, "vic").await;
    let alert = |n: u32| {
        Envelope::root(
            Payload::Alert(Alert {
                kind: AlertKind::BrokerMessage,
                severity: AlertSeverity::Info,
                service: "test".into(),
                message: format!("alert {n}"),
                since: Timestamp::from_datetime(chrono::Utc::now()),
            }),
            "k".to_string(),
            EventBroker::Shared,
            "test",
            Timestamp::from_datetime(chrono::Utc::now()),
        )
    };
    for n in 1..=3 {
        api.events.publish(&alert(n));
    }
    let response = api
        .app
        .clone()
        .oneshot(
            Request::get("/api/v1/events?type=alert")
                .header(header::AUTHORIZATION, format!("Bearer {t}"))
                .header("last-event-id", "1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut text = String::new();
    while !(text.contains("id: 3") || text.contains("id:3")) {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the stream sent the missed events")
            .unwrap()
            .unwrap();
        if let Some(data) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(data));
        }
    }
    assert!(!text.contains("alert 1"), "{text}");
    assert!(
        text.contains("alert 2") && text.contains("alert 3"),
        "{text}"
    );
    assert!(text.contains("event: alert"), "{text}");
    // Without a token: 401, with the token in the query (EventSource): allowed.
    let (status, _) = call(&api.app, "GET", "/api/v1/events", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = api
        .app
        .clone()
        .oneshot(
            Request::get(format!("/api/v1/events?access_token={t}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn signals_and_last_prices_come_from_the_log_as_read() {
    use alpha_panda_core::{
        Envelope, EventBroker, EventId, InstrumentToken, MarketTick, OrderType, Payload, Price,
        Quantity, RejectedSignal, RuleViolation, Side, StrategyId, TickRef, TradingSignal,
        ValidatedSignal,
    };
    let api = api().await;
    let t = token(&api.app, "vic").await;
    let at = |s: i64| Timestamp::from_unix_micros(1_767_600_000_000_000 + s * 1_000_000).unwrap();
    let signal = TradingSignal {
        strategy_id: StrategyId::new("ema_infy").unwrap(),
        instrument_token: InstrumentToken(408065),
        side: Side::Buy,
        quantity: Quantity(1),
        target_quantity: 1,
        order_type: OrderType::Market,
        limit_price: None,
        reason: "fast ema crossed above slow".into(),
        tick: TickRef {
            instrument_token: InstrumentToken(408065),
            last_price: Price(rust_decimal::Decimal::from(1500)),
            exchange_timestamp: at(0),
            event_id: EventId::new_root(),
        },
    };
    let envelope = |payload: Payload, s: i64| {
        Envelope::root(
            payload,
            "ema_infy:408065".to_string(),
            EventBroker::Paper,
            "risk_manager",
            at(s),
        )
    };
    api.events.take_in(&envelope(
        Payload::ValidatedSignal(ValidatedSignal {
            signal: signal.clone(),
            signal_event_id: EventId::new_root(),
            rules_checked: Vec::new().into(),
        }),
        1,
    ));
    api.events.take_in(&envelope(
        Payload::RejectedSignal(RejectedSignal {
            signal: signal.clone(),
            signal_event_id: EventId::new_root(),
            violations: vec![RuleViolation {
                rule: "kill_switch".into(),
                limit: "engaged".into(),
                actual: "0 → 1".into(),
                message: "kill switch".into(),
            }],
        }),
        2,
    ));
    let (status, all) = call(&api.app, "GET", "/api/v1/paper/signals", Some(&t), None).await;
    assert_eq!(status, StatusCode::OK);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["status"], "rejected", "newest first");
    assert_eq!(all[0]["violations"][0]["rule"], "kill_switch");
    assert_eq!(all[1]["status"], "validated");
    let (_, rejected) = call(
        &api.app,
        "GET",
        "/api/v1/paper/signals?status=rejected",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(rejected.as_array().unwrap().len(), 1);
    let (_, zerodha) = call(&api.app, "GET", "/api/v1/zerodha/signals", Some(&t), None).await;
    assert!(
        zerodha.as_array().unwrap().is_empty(),
        "namespaces never mix"
    );
    let (status, _) = call(
        &api.app,
        "GET",
        "/api/v1/paper/signals?status=maybe",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The last tick of each instrument: kept, not streamed.
    let tick = MarketTick {
        instrument_token: InstrumentToken(408065),
        tradingsymbol: None,
        last_price: Price(rust_decimal::Decimal::new(150_125, 2)),
        last_traded_quantity: 1,
        average_traded_price: None,
        volume_traded: 1,
        total_buy_quantity: 0,
        total_sell_quantity: 0,
        ohlc: None,
        oi: None,
        exchange_timestamp: at(3),
        depth: None,
    };
    let before = api.events.latest_seq();
    api.events.take_in(&Envelope::root(
        Payload::MarketTick(tick),
        "408065".to_string(),
        EventBroker::Shared,
        "market_feed",
        at(3),
    ));
    assert_eq!(api.events.latest_seq(), before, "ticks are not streamed");
    let (status, last) = call(
        &api.app,
        "GET",
        "/api/v1/market/last?tokens=408065,2953217",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(last.as_array().unwrap().len(), 1);
    assert_eq!(last[0]["last_price"], "1501.25");
    let (status, _) = call(
        &api.app,
        "GET",
        "/api/v1/market/last?tokens=abc",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Risk state: the kill switch (no cache here: no positions).
    let (status, state) = call(&api.app, "GET", "/api/v1/paper/risk/state", Some(&t), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state["kill_switch_engaged"], false);
}

/// Every route, against the route table: the first role allowed gets exactly the documented
/// success; an unknown namespace or resource in the path is a 404; a bad query value or a body
/// with a field the route does not know is a 422; and every answer but a success says why.
#[tokio::test]
async fn every_route_succeeds_and_fails_as_documented() {
    let api = api().await;
    let tokens = [
        (Role::Viewer, token(&api.app, "vic").await),
        (Role::Trader, token(&api.app, "tom").await),
        (Role::Admin, token(&api.app, "ada").await),
    ];
    let admin = &tokens[2].1;
    for route in ROUTES {
        if route.path == "/api/v1/events" || route.path == "/api/v1/logs" {
            continue; // Streams: the stream test.
        }
        let (path, body) = example(route.method, route.path);
        // Success, for the first role that may.
        let caller = match route.access {
            Access::Public => None,
            Access::Role(needed) => tokens
                .iter()
                .find(|(role, _)| role.allows(needed))
                .map(|(_, t)| t.as_str()),
        };
        let (status, answer) = call(&api.app, route.method, &path, caller, body.clone()).await;
        let expected = match (route.method, route.path) {
            // The example's refresh token is unknown: that route's success needs a real one
            // (login_refresh_and_logout); here it must refuse it properly.
            ("POST", "/api/v1/auth/refresh") => 401,
            ("POST", "/api/v1/auth/logout") => 204,
            _ => route.status,
        };
        assert_eq!(
            status.as_u16(),
            expected,
            "{} {path}: {answer}",
            route.method
        );
        if !status.is_success() {
            assert!(answer["message"].is_string(), "{answer}");
        }

        // 404: an unknown namespace or resource.
        if route.path.contains('{') {
            let missing = route
                .path
                .replace("{broker}", "nowhere")
                .replace("{id}", "no_such_thing")
                .replace("{username}", "nobody");
            let missing = match route.path {
                p if p.ends_with("/equity") || p.ends_with("/pnl/snapshots") => {
                    format!("{missing}?portfolio=nowhere:x")
                }
                _ => missing,
            };
            let (status, answer) =
                call(&api.app, route.method, &missing, Some(admin), body.clone()).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{} {missing}: {answer}",
                route.method
            );
            assert_error(&answer, "not_found");
        }
        // 422: a bad query value, or a body field the route does not know.
        if route.query.iter().any(|(name, _)| *name == "limit") {
            let separator = if path.contains('?') { '&' } else { '?' };
            let bad = format!("{path}{separator}limit=0");
            let (status, answer) = call(&api.app, route.method, &bad, Some(admin), None).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{} {bad}: {answer}",
                route.method
            );
            assert_error(&answer, "invalid");
        }
        if route.request.is_some() {
            let (status, answer) = call(
                &api.app,
                route.method,
                &path,
                Some(admin),
                Some(json!({"no_such_field": 1})),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{} {path}: {answer}",
                route.method
            );
            assert_error(&answer, "invalid");
        }
    }
}
