//! The fake server's REST routes: session, profile, orders, trades and the instruments dump,
//! with Kite's envelopes, error bodies and status codes.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State as AxumState};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Form, Json, Router};
use serde_json::{json, Value};

use super::contract_note;
use super::state::{kite_now, State, AUTOSLICE_PARENT};
use crate::rest::session_checksum;

type Shared = Arc<State>;

pub(crate) fn router(state: Shared) -> Router {
    Router::new()
        .route("/session/token", post(generate_session))
        .route("/user/profile", get(profile))
        .route("/orders", get(orders))
        .route("/orders/{id}", get(order_history).post(place_order))
        .route("/orders/{id}/trades", get(order_trades))
        .route(
            "/orders/{id}/{order_id}",
            put(modify_order).delete(cancel_order),
        )
        .route("/trades", get(trades))
        .route("/portfolio/positions", get(positions))
        .route("/instruments", get(instruments))
        .route("/charges/orders", post(contract_note))
        .with_state(state)
}

fn error(status: u16, error_type: &str, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        Json(
            json!({"status": "error", "message": message, "error_type": error_type, "data": null}),
        ),
    )
        .into_response()
}

fn success(data: Value) -> Response {
    Json(json!({"status": "success", "data": data})).into_response()
}

/// Counts the request, applies an injected failure, and checks the version and Authorization
/// headers; returns the error response when the request must be refused.
fn preflight(state: &State, headers: &HeaderMap, authenticated: bool) -> Option<Response> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if let Some(injected) = state.injected.lock().pop_front() {
        return Some(error(
            injected.status,
            &injected.error_type,
            &injected.message,
        ));
    }
    if headers.get("X-Kite-Version").and_then(|v| v.to_str().ok()) != Some("3") {
        return Some(error(
            400,
            "InputException",
            "Missing or invalid X-Kite-Version header",
        ));
    }
    if authenticated {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let ok = auth
            .strip_prefix("token ")
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(key, token)| state.token_ok(key, token));
        if !ok {
            return Some(error(
                403,
                "TokenException",
                "Incorrect `api_key` or `access_token`.",
            ));
        }
    }
    None
}

async fn generate_session(
    AxumState(state): AxumState<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(response) = preflight(&state, &headers, false) {
        return response;
    }
    let cfg = &state.config;
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if get("api_key") != cfg.api_key || get("request_token") != cfg.request_token {
        return error(403, "TokenException", "Token is invalid or has expired.");
    }
    let expected = session_checksum(&cfg.api_key, &cfg.request_token, &cfg.api_secret);
    if get("checksum") != expected {
        return error(403, "TokenException", "Invalid checksum");
    }
    state.token_valid.store(true, Ordering::SeqCst);
    success(json!({
        "user_type": "individual",
        "email": "xxxyyy@example.com",
        "user_name": "Kite Connect",
        "user_shortname": "Connect",
        "broker": "ZERODHA",
        "exchanges": ["NSE", "NFO", "BFO", "CDS", "BSE", "MCX", "BCD", "MF"],
        "products": ["CNC", "NRML", "MIS", "BO", "CO"],
        "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
        "avatar_url": "abc",
        "user_id": cfg.user_id,
        "api_key": cfg.api_key,
        "access_token": cfg.access_token,
        "public_token": "fake_public_token",
        "enctoken": "fake_enctoken",
        "refresh_token": "",
        "silo": "",
        "login_time": kite_now(),
        "meta": {"demat_consent": "physical"},
    }))
}

async fn profile(AxumState(state): AxumState<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = preflight(&state, &headers, true) {
        return response;
    }
    success(json!({
        "user_id": state.config.user_id,
        "user_type": "individual",
        "email": "xxxyyy@example.com",
        "user_name": "Kite Connect",
        "user_shortname": "Connect",
        "broker": "ZERODHA",
        "exchanges": ["NSE", "NFO", "BFO", "CDS", "BSE", "MCX", "BCD", "MF"],
        "products": ["CNC", "NRML", "MIS", "BO", "CO"],
        "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
        "avatar_url": null,
        "meta": {"demat_consent": "physical"},
    }))
}

/// The message of the order history switch ([`super::FakeKite::set_order_history_unavailable`]).
const HISTORY_UNAVAILABLE: &str = "Order history is temporarily unavailable.";

const VARIETIES: [&str; 5] = ["regular", "amo", "co", "iceberg", "auction"];
const REQUIRED: [&str; 6] = [
    "tradingsymbol",
    "exchange",
    "transaction_type",
    "order_type",
    "quantity",
    "product",
];

async fn place_order(
    AxumState(state): AxumState<Shared>,
    Path(variety): Path<String>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if let Some(response) = order_preflight(&state, &headers, &variety) {
        return response;
    }
    if let Some(missing) = REQUIRED
        .iter()
        .find(|f| form.get(**f).is_none_or(String::is_empty))
    {
        return error(400, "InputException", &format!("Missing `{missing}`."));
    }
    if form
        .get("quantity")
        .and_then(|q| q.parse::<u32>().ok())
        .is_none_or(|q| q == 0)
    {
        return error(400, "InputException", "Invalid `quantity`.");
    }
    if let Some(response) = check_order_fields(&form) {
        return response;
    }
    if let Some(tag) = form.get("tag") {
        if tag.is_empty() || tag.len() > 20 || !tag.chars().all(|c| c.is_ascii_alphanumeric()) {
            return error(400, "InputException", "Invalid `tag`.");
        }
    }
    let slices = match slicing(&state, &form) {
        Ok(slices) => slices,
        Err(response) => return *response,
    };
    if let Some(response) = over_the_order_rate(&state) {
        return response;
    }
    if let Some(slices) = slices {
        return place_slices(&state, &variety, form, &slices);
    }
    if let Some((taken, fault)) = state.placement_fault.lock().take() {
        if taken {
            state.place(&variety, form);
        }
        return error(fault.status, &fault.error_type, &fault.message);
    }
    let order_id = state.place(&variety, form);
    success(json!({ "order_id": order_id }))
}

/// Most slices Kite cuts one autoslice order into (reference §2.3).
const MAX_SLICES: u32 = 10;

/// The slice quantities of an order that asks for `autoslice`, `None` for an order placed whole,
/// or Kite's refusal: a quantity above the instrument's freeze quantity without autoslice, an
/// autoslice order at or below it, or one that needs more than ten slices. (The texts of the first
/// and last refusal are ours; the reference does not quote Kite's. The second is Kite's, as users
/// quote it on the forum.)
fn slicing(
    state: &State,
    form: &BTreeMap<String, String>,
) -> Result<Option<Vec<u32>>, Box<Response>> {
    let quantity: u32 = form
        .get("quantity")
        .and_then(|q| q.parse().ok())
        .unwrap_or(0);
    let symbol = form.get("tradingsymbol").cloned().unwrap_or_default();
    let freeze = state.freeze_quantities.lock().get(&symbol).copied();
    let autoslice = match form.get("autoslice").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Box::new(error(
                400,
                "InputException",
                &format!(
                    "Invalid request (failed to decode autoslice, got: {other} (expected bool))"
                ),
            )))
        }
    };
    match (autoslice, freeze) {
        (false, Some(freeze)) if quantity > freeze => Err(Box::new(error(
            400,
            "InputException",
            &format!(
                "Quantity {quantity} exceeds the freeze quantity {freeze} of {symbol}. Use \
                 autoslice or place smaller orders."
            ),
        ))),
        (false, _) => Ok(None),
        (true, Some(freeze)) if quantity > freeze => {
            let count = quantity.div_ceil(freeze);
            if count > MAX_SLICES {
                return Err(Box::new(error(
                    400,
                    "InputException",
                    &format!(
                        "Quantity {quantity} needs {count} slices of {freeze}; autoslice places \
                         at most {MAX_SLICES}."
                    ),
                )));
            }
            let mut slices = vec![freeze; (count - 1) as usize];
            slices.push(quantity - freeze * (count - 1));
            Ok(Some(slices))
        }
        (true, freeze) => Err(Box::new(error(
            400,
            "InputException",
            &format!(
                "Quantity should be greater than or equal to {} for order slicing.",
                freeze.map_or(1, |f| f + 1)
            ),
        ))),
    }
}

/// Places the slices of an autoslice order, each an order of its own with the parent's tag plus
/// Kite's `autoslice` tags, and answers the parent id (the first slice's) with the children.
fn place_slices(
    state: &State,
    variety: &str,
    form: BTreeMap<String, String>,
    slices: &[u32],
) -> Response {
    let mut children = Vec::with_capacity(slices.len());
    let mut parent: Option<String> = None;
    for quantity in slices {
        let mut slice = form.clone();
        slice.remove("autoslice");
        slice.insert("quantity".into(), quantity.to_string());
        if let Some(parent) = &parent {
            slice.insert(AUTOSLICE_PARENT.into(), parent.clone());
        }
        let order_id = state.place(variety, slice);
        if parent.is_none() {
            // The first slice is the parent; mark it too, now that its id is known.
            state.mark_autoslice_parent(&order_id);
            parent = Some(order_id.clone());
        }
        children.push(json!({ "order_id": order_id }));
    }
    success(json!({ "order_id": parent, "children": children }))
}

/// The checks of every order request (placement, modification, cancellation) before its fields:
/// [`preflight`], and a variety Kite knows.
fn order_preflight(state: &State, headers: &HeaderMap, variety: &str) -> Option<Response> {
    if let Some(response) = preflight(state, headers, true) {
        return Some(response);
    }
    (!VARIETIES.contains(&variety)).then(|| {
        error(
            400,
            "InputException",
            &format!("Invalid variety `{variety}`."),
        )
    })
}

/// Kite's 429 for an order request beyond its 10 a second, counting this one.
fn over_the_order_rate(state: &State) -> Option<Response> {
    (!state.take_order_slot()).then(|| error(429, "NetworkException", "Too many requests"))
}

/// Kite's message for a MARKET or SL-M order without market protection (reference §2.3).
pub(crate) const NO_MARKET_PROTECTION: &str = "Market orders without market protection are not allowed via API. Please set market protection or use a Limit order.";

/// The order type rules of an order's fields (placement, or the result of a modification):
/// prices and triggers each type needs, and the market protection MARKET and SL-M need since
/// April 2026, with Kite's error bodies.
fn check_order_fields(form: &BTreeMap<String, String>) -> Option<Response> {
    let order_type = form
        .get("order_type")
        .map(String::as_str)
        .unwrap_or_default();
    if !matches!(order_type, "MARKET" | "LIMIT" | "SL" | "SL-M") {
        return Some(error(400, "InputException", "Invalid `order_type`."));
    }
    // Since April 2026 algo orders on MCX may not be IOC (reference §2.3; the text is ours).
    if form.get("exchange").map(String::as_str) == Some("MCX")
        && form.get("validity").map(String::as_str) == Some("IOC")
    {
        return Some(error(
            400,
            "InputException",
            "IOC validity is not allowed for API orders on MCX.",
        ));
    }
    let positive = |name: &str| {
        form.get(name)
            .and_then(|v| v.parse::<rust_decimal::Decimal>().ok())
            .is_some_and(|v| v > rust_decimal::Decimal::ZERO)
    };
    if matches!(order_type, "LIMIT" | "SL") && !positive("price") {
        return Some(error(
            400,
            "InputException",
            &format!("Missing or invalid `price` for a {order_type} order."),
        ));
    }
    if matches!(order_type, "SL" | "SL-M") && !positive("trigger_price") {
        return Some(error(
            400,
            "InputException",
            &format!("Missing or invalid `trigger_price` for a {order_type} order."),
        ));
    }
    if matches!(order_type, "MARKET" | "SL-M") {
        let Some(raw) = form.get("market_protection") else {
            return Some(error(400, "InputException", NO_MARKET_PROTECTION));
        };
        let Ok(value) = raw.parse::<rust_decimal::Decimal>() else {
            return Some(error(
                400,
                "InputException",
                &format!(
                    "Invalid request (failed to decode market_protection, got: {raw} (expected decimal))"
                ),
            ));
        };
        if value.is_zero() {
            return Some(error(400, "InputException", NO_MARKET_PROTECTION));
        }
        let automatic = value == rust_decimal::Decimal::NEGATIVE_ONE;
        if !automatic
            && (value < rust_decimal::Decimal::ZERO || value > rust_decimal::Decimal::ONE_HUNDRED)
        {
            return Some(error(400, "InputException", "Invalid `market_protection`."));
        }
    }
    None
}

async fn modify_order(
    AxumState(state): AxumState<Shared>,
    Path((variety, order_id)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    if let Some(response) = order_preflight(&state, &headers, &variety) {
        return response;
    }
    if let Some(response) = over_the_order_rate(&state) {
        return response;
    }
    let merged = match state.order_form(&order_id) {
        Some(mut current) => {
            // The fields a modification may change; a type that needs no protection drops it.
            for key in [
                "order_type",
                "quantity",
                "price",
                "trigger_price",
                "market_protection",
            ] {
                if let Some(value) = form.get(key) {
                    current.insert(key.to_string(), value.clone());
                }
            }
            current
        }
        None => return error(400, "InputException", "Couldn't find that `order_id`."),
    };
    if let Some(response) = check_order_fields(&merged) {
        return response;
    }
    match state.modify(&order_id, merged) {
        Ok(()) => success(json!({ "order_id": order_id })),
        Err(message) => error(400, "OrderException", &message),
    }
}

async fn cancel_order(
    AxumState(state): AxumState<Shared>,
    Path((variety, order_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = order_preflight(&state, &headers, &variety) {
        return response;
    }
    if let Some(response) = over_the_order_rate(&state) {
        return response;
    }
    match state.cancel(&order_id) {
        Ok(()) => success(json!({ "order_id": order_id })),
        Err(message) => error(400, "OrderException", &message),
    }
}

async fn orders(AxumState(state): AxumState<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = preflight(&state, &headers, true) {
        return response;
    }
    let latest: Vec<Value> = state
        .orders
        .lock()
        .iter()
        .filter_map(|o| o.latest().cloned())
        .collect();
    success(Value::Array(latest))
}

async fn order_history(
    AxumState(state): AxumState<Shared>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = preflight(&state, &headers, true) {
        return response;
    }
    if state.history_unavailable.load(Ordering::SeqCst) {
        return error(503, "NetworkException", HISTORY_UNAVAILABLE);
    }
    let orders = state.orders.lock();
    match orders.iter().find(|o| o.order_id == order_id) {
        Some(order) => success(Value::Array(order.history.clone())),
        None => error(400, "InputException", "Couldn't find that `order_id`."),
    }
}

async fn order_trades(
    AxumState(state): AxumState<Shared>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = preflight(&state, &headers, true) {
        return response;
    }
    let orders = state.orders.lock();
    match orders.iter().find(|o| o.order_id == order_id) {
        Some(order) => success(Value::Array(order.trades.clone())),
        None => error(400, "InputException", "Couldn't find that `order_id`."),
    }
}

async fn trades(AxumState(state): AxumState<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = preflight(&state, &headers, true) {
        return response;
    }
    let all: Vec<Value> = state
        .orders
        .lock()
        .iter()
        .flat_map(|o| o.trades.iter().cloned())
        .collect();
    success(Value::Array(all))
}

async fn positions(AxumState(state): AxumState<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = preflight(&state, &headers, true) {
        return response;
    }
    let positions = state.positions();
    success(json!({ "net": positions.clone(), "day": positions }))
}

async fn instruments(AxumState(state): AxumState<Shared>, headers: HeaderMap) -> Response {
    if let Some(response) = preflight(&state, &headers, true) {
        return response;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let body = encoder
        .write_all(state.config.instruments_csv.as_bytes())
        .and_then(|()| encoder.finish());
    match body {
        Ok(gz) => (
            [
                (header::CONTENT_TYPE, "text/csv"),
                (header::CONTENT_ENCODING, "gzip"),
            ],
            gz,
        )
            .into_response(),
        Err(e) => error(500, "GeneralException", &format!("gzip failed: {e}")),
    }
}

/// Kite's virtual contract note of the orders in the JSON list of the body.
async fn contract_note(
    AxumState(state): AxumState<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = preflight(&state, &headers, true) {
        return response;
    }
    if state.contract_note_unavailable.load(Ordering::SeqCst) {
        return error(
            503,
            "NetworkException",
            "Charges service is unavailable. Try again.",
        );
    }
    let Ok(Value::Array(orders)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            400,
            "InputException",
            "Invalid request (the body must be a JSON list of orders).",
        );
    };
    let mut entries = Vec::with_capacity(orders.len());
    for order in &orders {
        match contract_note::entry(order) {
            Ok(entry) => entries.push(entry),
            Err(field) => {
                return error(
                    400,
                    "InputException",
                    &format!("Missing or invalid `{field}`."),
                )
            }
        }
    }
    success(Value::Array(entries))
}
