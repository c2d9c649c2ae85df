//! `GET /health/live` and `GET /health/ready`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::state::ApiState;

/// One readiness check's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    /// `ok` or `failing`.
    pub status: String,
    /// Why it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The readiness answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// Each check by name (`database`, `cache`, `log`, `topics`, `zerodha`).
    pub checks: BTreeMap<String, Check>,
}

/// The process is up.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Liveness {
    /// Always `live`.
    pub status: String,
}

/// The process answers.
pub async fn live() -> Json<Liveness> {
    Json(Liveness {
        status: "live".into(),
    })
}

/// Every dependency answers: 200 with each check, or 503 naming the ones that fail and why.
pub async fn ready(State(state): State<Arc<ApiState>>) -> (StatusCode, Json<Readiness>) {
    let mut checks = BTreeMap::new();
    let probes = state.readiness.iter().map(|check| async move {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), (check.probe)())
            .await
            .unwrap_or_else(|_| Err("no answer within 3s".into()));
        (check.name, outcome)
    });
    for (name, outcome) in futures::future::join_all(probes).await {
        let check = match outcome {
            Ok(()) => Check {
                status: "ok".into(),
                reason: None,
            },
            Err(reason) => Check {
                status: "failing".into(),
                reason: Some(reason),
            },
        };
        checks.insert(name.to_string(), check);
    }
    let ready = checks.values().all(|c| c.status == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ready { "ready" } else { "not_ready" }.into(),
            checks,
        }),
    )
}
