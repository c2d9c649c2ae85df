//! Who is calling: access tokens (JWT, HS256, signed and verified with one library,
//! `jsonwebtoken`), single-use refresh tokens kept hashed in the store, the [`Caller`] extractor
//! that turns a bearer token into a user with a role, and the limiter of failed logins.
//!
//! A token proves who signed it, not that its user still may: every request also reads the user
//! from the store, so a removed user or a changed role takes effect at the next request, not at
//! the token's expiry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alpha_panda_core::Timestamp;
use alpha_panda_store::{Role, Store, User};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::Mutex;
use rand::RngCore;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::ApiState;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// The role when the token was issued (the store's current role decides).
    pub role: Role,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// The token's own id.
    pub jti: String,
}

/// The answer to a login or a refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Tokens {
    /// The bearer token for `Authorization: Bearer …`.
    pub access_token: String,
    /// Trades for a new pair once (`POST /api/v1/auth/refresh`).
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    /// Who logged in.
    pub username: String,
    /// What they may do.
    pub role: Role,
}

/// Signs and checks tokens.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    token_ttl: Duration,
    refresh_ttl: Duration,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token_ttl", &self.token_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The store keeps refresh tokens by this hash only.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Auth {
    /// Tokens signed with `secret`; an empty secret gets a random one (tokens then end with the
    /// process, which development accepts and production refuses).
    pub fn new(secret: &str, token_ttl: Duration, refresh_ttl: Duration) -> Self {
        let secret = if secret.is_empty() {
            random_hex(32)
        } else {
            secret.to_string()
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            token_ttl,
            refresh_ttl,
        }
    }

    /// A signed access token for `user`, valid for the token TTL from `now` (Unix seconds).
    ///
    /// # Errors
    /// [`ApiError::internal`] if signing fails (not expected for HS256).
    pub fn access_token(&self, user: &User, now: u64) -> Result<String, ApiError> {
        let claims = Claims {
            sub: user.username.clone(),
            role: user.role,
            iat: now,
            exp: now + self.token_ttl.as_secs(),
            jti: random_hex(8),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("cannot sign a token: {e}")))
    }

    /// The claims of a valid token.
    ///
    /// # Errors
    /// [`ApiError::unauthorized`] for a token that is malformed, tampered with, signed with
    /// another key or expired.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                let why = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        "the access token expired; refresh it or log in again"
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "the access token's signature is not valid; log in again"
                    }
                    _ => "the access token is not valid; log in again",
                };
                ApiError::unauthorized(why)
            })
    }

    /// A new access token and refresh token for `user`; the refresh token is stored hashed.
    ///
    /// # Errors
    /// [`ApiError`] when the store cannot be written.
    pub async fn issue(&self, store: &Store, user: &User) -> Result<Tokens, ApiError> {
        let now = unix_now();
        let access_token = self.access_token(user, now)?;
        let refresh_token = random_hex(32);
        let issued = Timestamp::from_datetime(chrono::Utc::now());
        let expires = Timestamp::from_datetime(
            chrono::Utc::now()
                + chrono::Duration::from_std(self.refresh_ttl)
                    .unwrap_or_else(|_| chrono::Duration::days(7)),
        );
        store
            .refresh_tokens()
            .issue(&token_hash(&refresh_token), &user.username, issued, expires)
            .await?;
        Ok(Tokens {
            access_token,
            refresh_token,
            token_type: "bearer".into(),
            expires_in: self.token_ttl.as_secs(),
            username: user.username.clone(),
            role: user.role,
        })
    }

    /// Trades a refresh token (used once) for a new pair.
    ///
    /// # Errors
    /// [`ApiError::unauthorized`] for an unknown, used, revoked or expired refresh token, or one
    /// whose user was removed.
    pub async fn refresh(&self, store: &Store, refresh_token: &str) -> Result<Tokens, ApiError> {
        let now = Timestamp::from_datetime(chrono::Utc::now());
        let Some(username) = store
            .refresh_tokens()
            .redeem(&token_hash(refresh_token), now)
            .await?
        else {
            return Err(ApiError::unauthorized(
                "the refresh token is unknown, used, revoked or expired; log in again",
            ));
        };
        let Some(user) = store.users().get(&username).await? else {
            return Err(ApiError::unauthorized("the user no longer exists"));
        };
        self.issue(store, &user).await
    }

    /// Revokes a refresh token (logout); unknown tokens are ignored.
    ///
    /// # Errors
    /// [`ApiError`] when the store cannot be written.
    pub async fn revoke(&self, store: &Store, refresh_token: &str) -> Result<(), ApiError> {
        store
            .refresh_tokens()
            .revoke(&token_hash(refresh_token))
            .await?;
        Ok(())
    }
}

/// The authenticated user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The username.
    pub username: String,
    /// The role, as the store has it now.
    pub role: Role,
}

impl Caller {
    /// Passes when the caller's role allows what `needed` may do.
    ///
    /// # Errors
    /// [`ApiError::forbidden`] naming the role needed.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.allows(needed) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} is a {}; this needs the {needed} role",
                self.username, self.role
            )))
        }
    }
}

/// The bearer token of a request: the `Authorization` header, or, for the event streams a
/// browser's `EventSource` opens (it cannot send headers), an `access_token` query parameter.
fn bearer(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let text = value.to_str().ok()?;
        let (scheme, token) = text.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    let streams = parts.uri.path() == "/api/v1/events" || parts.uri.path() == "/api/v1/logs";
    if streams {
        return parts.uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "access_token")
                .map(|(_, v)| v.to_string())
        });
    }
    None
}

impl FromRequestParts<Arc<ApiState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer(parts) else {
            return Err(ApiError::unauthorized(
                "no access token: send `Authorization: Bearer <token>` (POST /api/v1/auth/login \
                 gives one)",
            ));
        };
        let claims = state.auth.verify(&token)?;
        let Some(user) = state.store.users().get(&claims.sub).await? else {
            return Err(ApiError::unauthorized("the token's user no longer exists"));
        };
        Ok(Caller {
            username: user.username,
            role: user.role,
        })
    }
}

/// Failed logins, remembered per user and address, and per address: past the limit, logins are
/// refused (429) until the oldest failure is older than the lockout.
#[derive(Debug)]
pub struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<LoginKey, Vec<Instant>>>,
    by_address: Mutex<HashMap<Option<IpAddr>, Vec<Instant>>>,
}

/// A username at an address (the address unknown when the server was not told it).
type LoginKey = (String, Option<IpAddr>);

/// An address may fail this many times the per-user limit across all usernames.
const ADDRESS_FACTOR: u32 = 4;

impl LoginLimiter {
    /// A limiter allowing `max_failures` per user and address within `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
            by_address: Mutex::new(HashMap::new()),
        }
    }

    fn wait(&self, times: &mut Vec<Instant>, limit: u32, now: Instant) -> Option<Duration> {
        times.retain(|t| now.duration_since(*t) < self.window);
        if times.len() >= limit as usize {
            let oldest = times.iter().min().copied()?;
            Some(self.window.saturating_sub(now.duration_since(oldest)))
        } else {
            None
        }
    }

    /// Refuses a login attempt while `username` at `address` (or `address` alone) is over the
    /// limit.
    ///
    /// # Errors
    /// [`ApiError::too_many`] with the seconds to wait.
    pub fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), ApiError> {
        let now = Instant::now();
        let key = (username.to_string(), address);
        let user_wait = {
            let mut failures = self.failures.lock();
            let times = failures.entry(key).or_default();
            self.wait(times, self.max_failures, now)
        };
        let address_wait = {
            let mut by_address = self.by_address.lock();
            let times = by_address.entry(address).or_default();
            self.wait(times, self.max_failures * ADDRESS_FACTOR, now)
        };
        match user_wait.max(address_wait) {
            Some(wait) => Err(ApiError::too_many(
                format!(
                    "too many failed logins; try again in {}s",
                    wait.as_secs().max(1)
                ),
                wait.as_secs().max(1),
            )),
            None => Ok(()),
        }
    }

    /// Remembers a failed attempt.
    pub fn failed(&self, username: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        self.failures
            .lock()
            .entry((username.to_string(), address))
            .or_default()
            .push(now);
        self.by_address.lock().entry(address).or_default().push(now);
    }

    /// Forgets a user's failures at an address after a successful login.
    pub fn succeeded(&self, username: &str, address: Option<IpAddr>) {
        self.failures
            .lock()
            .remove(&(username.to_string(), address));
    }
}
