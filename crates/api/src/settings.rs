//! The `[api]` settings: where the API listens, how its tokens are signed and how long they live,
//! and which browser origins may call it.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The placeholder secret of the example configuration; production refuses it.
pub const DEFAULT_JWT_SECRET: &str = "change-me";

/// Shortest signing secret production accepts (HS256 wants at least 256 bits).
pub const MIN_JWT_SECRET_LEN: usize = 32;

/// The operator surface's settings. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Where the API and the dashboard listen (`127.0.0.1:8000`); `run` serves them unless
    /// `enabled` is false.
    pub bind: SocketAddr,
    /// Whether `run` serves the API.
    pub enabled: bool,
    /// The HS256 secret access tokens are signed with. Empty in development: a random one per
    /// process (tokens end with it). Production refuses an empty, short or default secret.
    pub jwt_secret: String,
    /// Browser origins allowed to call the API (`https://ops.example.com`); empty allows only
    /// the dashboard's own origin. A wildcard is refused in production.
    pub cors_origins: Vec<String>,
    /// How long an access token is valid.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// How long a refresh token is valid (each is used once).
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// Failed logins per user and address before logins are refused for `login_lockout`.
    pub max_failed_logins: u32,
    /// How long failed logins are remembered, and logins refused after too many.
    #[serde(with = "humantime_serde")]
    pub login_lockout: Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            enabled: true,
            jwt_secret: String::new(),
            cors_origins: Vec::new(),
            token_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            max_failed_logins: 5,
            login_lockout: Duration::from_secs(15 * 60),
        }
    }
}

impl std::fmt::Debug for ApiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = if self.jwt_secret.is_empty() {
            "<empty>"
        } else {
            "<redacted>"
        };
        f.debug_struct("ApiSettings")
            .field("bind", &self.bind)
            .field("enabled", &self.enabled)
            .field("jwt_secret", &secret)
            .field("cors_origins", &self.cors_origins)
            .field("token_ttl", &self.token_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("max_failed_logins", &self.max_failed_logins)
            .field("login_lockout", &self.login_lockout)
            .finish()
    }
}

impl ApiSettings {
    /// Checks the settings; `production` adds the rules a deployment must keep. The error names
    /// the key.
    ///
    /// # Errors
    /// A message naming the `api.*` key at fault and what to do.
    pub fn validate(&self, production: bool) -> Result<(), String> {
        if self.token_ttl < Duration::from_secs(10) {
            return Err("api.token_ttl: must be at least 10s (e.g. \"15m\")".into());
        }
        if self.refresh_ttl <= self.token_ttl {
            return Err("api.refresh_ttl: must be longer than api.token_ttl (e.g. \"7d\")".into());
        }
        if self.max_failed_logins == 0 {
            return Err("api.max_failed_logins: must be at least 1".into());
        }
        for origin in &self.cors_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(format!(
                    "api.cors_origins: {origin:?} is not an origin (e.g. \"https://ops.example.com\")"
                ));
            }
        }
        if production {
            if self.jwt_secret.is_empty() || self.jwt_secret == DEFAULT_JWT_SECRET {
                return Err(
                    "api.jwt_secret: production needs a secret of its own (e.g. `openssl rand \
                     -hex 32` in ALPHA_PANDA__API__JWT_SECRET)"
                        .into(),
                );
            }
            if self.jwt_secret.len() < MIN_JWT_SECRET_LEN {
                return Err(format!(
                    "api.jwt_secret: at least {MIN_JWT_SECRET_LEN} characters in production"
                ));
            }
            if self.cors_origins.iter().any(|o| o == "*") {
                return Err(
                    "api.cors_origins: a wildcard lets any site call the API with an operator's \
                     token; list the dashboard origins instead"
                        .into(),
                );
            }
        }
        Ok(())
    }
}
