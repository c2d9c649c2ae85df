//! The routes: one module per resource, and [`ROUTES`], the table every route is listed in with
//! the role it needs and its types, from which `/openapi.json` is generated and against which the
//! tests check the role matrix.

pub mod auth;
pub mod dlq;
pub mod health;
pub mod instruments;
pub mod kill_switch;
pub mod ledger;
pub mod pipeline;
pub mod portfolios;
pub mod risk;
pub mod signals;
pub mod strategies;
pub mod stream;
pub mod users;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use alpha_panda_store::Role;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use axum::Router;

use crate::state::ApiState;

/// The client's address, when the server knows it.
#[derive(Debug, Clone, Copy)]
pub struct Address(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Address {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Address(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login, health, metrics, the dashboard).
    Public,
    /// A logged-in user with at least this role.
    Role(Role),
}

/// One route as documented.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// `GET`, `POST`, `PUT`, `DELETE`.
    pub method: &'static str,
    /// The path, with `{param}`s.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What it does.
    pub summary: &'static str,
    /// The JSON body's schema, if it takes one.
    pub request: Option<SchemaFn>,
    /// The success answer's schema (`None`: no body).
    pub response: Option<SchemaFn>,
    /// The success status.
    pub status: u16,
    /// Query parameters: name and description.
    pub query: &'static [(&'static str, &'static str)],
}

/// A type's schema, its definitions added to the generator (`/openapi.json`'s components).
pub type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

macro_rules! schema {
    ($t:ty) => {
        Some((|g: &mut schemars::SchemaGenerator| g.subschema_for::<$t>()) as SchemaFn)
    };
}

const VIEWER: Access = Access::Role(Role::Viewer);
const TRADER: Access = Access::Role(Role::Trader);
const ADMIN: Access = Access::Role(Role::Admin);
const LIMIT: (&str, &str) = ("limit", "most rows, 1 to 1000");

/// Every route of the API.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "POST",
        path: "/api/v1/auth/login",
        access: Access::Public,
        summary: "Log in: an access token and a refresh token",
        request: schema!(auth::LoginRequest),
        response: schema!(crate::auth::Tokens),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/auth/refresh",
        access: Access::Public,
        summary: "Trade a refresh token (once) for a new pair",
        request: schema!(auth::RefreshRequest),
        response: schema!(crate::auth::Tokens),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/auth/logout",
        access: VIEWER,
        summary: "Revoke a refresh token",
        request: schema!(auth::RefreshRequest),
        response: None,
        status: 204,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/auth/me",
        access: VIEWER,
        summary: "Who is calling",
        request: None,
        response: schema!(auth::Me),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/health/live",
        access: Access::Public,
        summary: "The process is up",
        request: None,
        response: schema!(health::Liveness),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/health/ready",
        access: Access::Public,
        summary: "Every dependency answers (503 naming the ones that do not)",
        request: None,
        response: schema!(health::Readiness),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/{broker}/portfolios",
        access: VIEWER,
        summary: "The namespace's portfolios",
        request: None,
        response: schema!(Vec<portfolios::Portfolio>),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/{broker}/portfolios/{id}",
        access: VIEWER,
        summary: "One portfolio (strategy id or portfolio id)",
        request: None,
        response: schema!(portfolios::Portfolio),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/{broker}/positions",
        access: VIEWER,
        summary: "Open positions",
        request: None,
        response: schema!(Vec<portfolios::Position>),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/{broker}/pnl/snapshots",
        access: VIEWER,
        summary: "A portfolio's PnL snapshots, newest first",
        request: None,
        response: schema!(Vec<alpha_panda_core::PnlSnapshot>),
        status: 200,
        query: &[("portfolio", "the portfolio id"), LIMIT],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/{broker}/equity",
        access: VIEWER,
        summary: "A portfolio's equity curve and drawdown, oldest first",
        request: None,
        response: schema!(Vec<portfolios::EquityPoint>),
        status: 200,
        query: &[("portfolio", "the portfolio id"), LIMIT],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/{broker}/orders",
        access: VIEWER,
        summary: "Order events, newest first",
        request: None,
        response: schema!(Vec<ledger::OrderEntry>),
        status: 200,
        query: &[LIMIT],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/{broker}/fills",
        access: VIEWER,
        summary: "Fills, newest first",
        request: None,
        response: schema!(Vec<ledger::FillEntry>),
        status: 200,
        query: &[("portfolio", "only this portfolio"), LIMIT],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/{broker}/risk/limits",
        access: VIEWER,
        summary: "The risk limits",
        request: None,
        response: schema!(risk::RiskLimitsView),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/{broker}/kill-switch",
        access: VIEWER,
        summary: "The kill switch",
        request: None,
        response: schema!(kill_switch::KillSwitchState),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/{broker}/kill-switch",
        access: TRADER,
        summary: "Engage or release the kill switch",
        request: schema!(kill_switch::KillSwitchChange),
        response: schema!(kill_switch::KillSwitchState),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/strategies",
        access: VIEWER,
        summary: "Every strategy",
        request: None,
        response: schema!(Vec<strategies::Strategy>),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/strategies",
        access: TRADER,
        summary: "Create a strategy",
        request: schema!(strategies::NewStrategy),
        response: schema!(strategies::Strategy),
        status: 201,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/strategies/{id}",
        access: VIEWER,
        summary: "One strategy",
        request: None,
        response: schema!(strategies::Strategy),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "PUT",
        path: "/api/v1/strategies/{id}",
        access: TRADER,
        summary: "Change a strategy's parameters or instruments",
        request: schema!(strategies::StrategyChange),
        response: schema!(strategies::Strategy),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/strategies/{id}/enable",
        access: TRADER,
        summary: "Run a strategy",
        request: None,
        response: schema!(strategies::Strategy),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/strategies/{id}/disable",
        access: TRADER,
        summary: "Stop a strategy",
        request: None,
        response: schema!(strategies::Strategy),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/strategies/{id}/zerodha",
        access: TRADER,
        summary: "Trade a strategy on Zerodha too, or not",
        request: schema!(strategies::ZerodhaToggle),
        response: schema!(strategies::Strategy),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/pipeline",
        access: VIEWER,
        summary: "Every service's events, retries, dead letters and lag",
        request: None,
        response: schema!(Vec<pipeline::PipelineService>),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/instruments",
        access: VIEWER,
        summary: "The instruments master",
        request: None,
        response: schema!(Vec<alpha_panda_core::Instrument>),
        status: 200,
        query: &[("q", "part of the symbol or name"), LIMIT],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/events",
        access: VIEWER,
        summary: "Server-sent events (resumable with Last-Event-ID)",
        request: None,
        response: None,
        status: 200,
        query: &[
            ("broker", "namespaces, comma-separated"),
            ("type", "event types, comma-separated"),
            ("access_token", "the access token, for EventSource"),
        ],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/logs",
        access: VIEWER,
        summary: "Server-sent events of the process's log lines",
        request: None,
        response: None,
        status: 200,
        query: &[
            ("level", "error, warn, info (default), debug or trace"),
            ("access_token", "the access token, for EventSource"),
        ],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/dlq",
        access: VIEWER,
        summary: "Dead letters, oldest first",
        request: None,
        response: schema!(Vec<dlq::DlqView>),
        status: 200,
        query: &[
            ("topic", "the original topic or its .dlq"),
            ("since", "failed at or after (RFC 3339)"),
            ("until", "failed before (RFC 3339)"),
            LIMIT,
        ],
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/dlq/replay",
        access: TRADER,
        summary: "Replay dead letters by id, or a range",
        request: schema!(dlq::ReplayRequest),
        response: schema!(dlq::Replayed),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/dlq",
        access: ADMIN,
        summary: "Purge dead letters",
        request: None,
        response: schema!(dlq::Purged),
        status: 200,
        query: &[
            ("older_than", "failed before (RFC 3339); all when absent"),
            ("topic", "only this topic"),
        ],
    },
    RouteDoc {
        method: "GET",
        path: "/api/v1/users",
        access: ADMIN,
        summary: "Every user",
        request: None,
        response: schema!(Vec<users::UserEntry>),
        status: 200,
        query: &[],
    },
    RouteDoc {
        method: "POST",
        path: "/api/v1/users",
        access: ADMIN,
        summary: "Add a user",
        request: schema!(users::NewUser),
        response: schema!(users::UserEntry),
        status: 201,
        query: &[],
    },
    RouteDoc {
        method: "DELETE",
        path: "/api/v1/users/{username}",
        access: ADMIN,
        summary: "Remove a user",
        request: None,
        response: None,
        status: 204,
        query: &[],
    },
];

/// The API's routes (without the dashboard and the metrics, which `crate::router` adds).
pub fn api_routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/api/v1/{broker}/portfolios", get(portfolios::list))
        .route("/api/v1/{broker}/portfolios/{id}", get(portfolios::get))
        .route("/api/v1/{broker}/positions", get(portfolios::positions))
        .route("/api/v1/{broker}/pnl/snapshots", get(portfolios::snapshots))
        .route("/api/v1/{broker}/equity", get(portfolios::equity))
        .route("/api/v1/{broker}/orders", get(ledger::orders))
        .route("/api/v1/{broker}/fills", get(ledger::fills))
        .route("/api/v1/{broker}/risk/limits", get(risk::limits))
        .route("/api/v1/{broker}/risk/state", get(risk::state))
        .route("/api/v1/{broker}/signals", get(signals::list))
        .route("/api/v1/market/last", get(signals::last))
        .route(
            "/api/v1/{broker}/kill-switch",
            get(kill_switch::get).post(kill_switch::set),
        )
        .route(
            "/api/v1/strategies",
            get(strategies::list).post(strategies::create),
        )
        .route(
            "/api/v1/strategies/{id}",
            get(strategies::get).put(strategies::update),
        )
        .route("/api/v1/strategies/{id}/enable", post(strategies::enable))
        .route("/api/v1/strategies/{id}/disable", post(strategies::disable))
        .route("/api/v1/strategies/{id}/zerodha", post(strategies::zerodha))
        .route("/api/v1/pipeline", get(pipeline::pipeline))
        .route("/api/v1/instruments", get(instruments::list))
        .route("/api/v1/events", get(stream::events))
        .route("/api/v1/logs", get(stream::logs))
        .route("/api/v1/dlq", get(dlq::list).delete(dlq::purge))
        .route("/api/v1/dlq/replay", post(dlq::replay))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route("/api/v1/users/{username}", delete(users::remove))
}
