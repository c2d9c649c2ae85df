//! The instruments master.

use std::sync::Arc;

use alpha_panda_core::Instrument;
use axum::extract::State;
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{limit, ApiQuery};
use crate::state::ApiState;

/// `?q=…&limit=…`
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstrumentQuery {
    /// Part of the trading symbol or name, any case.
    #[serde(default)]
    pub q: Option<String>,
    /// Most rows (1–1000; default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Instruments whose symbol or name contains `q`.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    _caller: Caller,
    ApiQuery(query): ApiQuery<InstrumentQuery>,
) -> Result<Json<Vec<Instrument>>, ApiError> {
    let n = limit(query.limit, 100)? as usize;
    let needle = query.q.unwrap_or_default().to_lowercase();
    let all = state.store.instruments().all().await?;
    Ok(Json(
        all.into_iter()
            .filter(|i| {
                needle.is_empty()
                    || i.tradingsymbol.to_lowercase().contains(&needle)
                    || i.name.to_lowercase().contains(&needle)
            })
            .take(n)
            .collect(),
    ))
}
