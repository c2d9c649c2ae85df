//! `KiteClient`: the Kite Connect v3 REST client. Every call passes the rate limiter, carries
//! `X-Kite-Version: 3` and (after login) `Authorization: token api_key:access_token`, sends
//! form-encoded bodies, and retries transient failures with exponential backoff and jitter.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use alpha_panda_core::Instrument;
use parking_lot::RwLock;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::KiteError;
use super::rate_limit::{EndpointClass, RateLimiter};
use super::types::{
    AutoslicePlacement, ContractNoteEntry, ContractNoteOrder, KiteOrderId, ModifyParams, Order,
    OrderParams, Positions, Session, Trade, UserProfile, Variety,
};
use crate::backoff::Backoff;
use crate::instruments::parse_instruments_csv;
use crate::settings::ZerodhaSettings;

/// The access token of a session, shared by the REST client and the ticker.
pub type SharedAccessToken = Arc<RwLock<Option<String>>>;

/// Which failures a call may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryPolicy {
    /// Reads: every transient failure.
    Read,
    /// Order placement: only failures where Kite certainly did not take the order.
    Order,
}

/// One request to send.
struct Call<'a> {
    method: Method,
    path: String,
    form: Option<&'a [(&'static str, String)]>,
    /// A JSON body (the endpoints that take one, such as the contract note).
    json: Option<&'a serde_json::Value>,
    class: EndpointClass,
    authenticated: bool,
    retry: RetryPolicy,
}

impl Call<'_> {
    fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// `{"status":"success","data":…}`.
#[derive(Deserialize)]
struct SuccessEnvelope<T> {
    data: T,
}

#[derive(Deserialize)]
struct PlacedOrder {
    order_id: KiteOrderId,
}

/// The Kite Connect REST client. Share it behind an `Arc`; calls take `&self`.
pub struct KiteClient {
    http: reqwest::Client,
    api_url: String,
    login_url: String,
    api_key: String,
    default_product: String,
    // Shared with a ticker ([`KiteClient::shared_access_token`]): a new session set here is the
    // one it reconnects with.
    access_token: SharedAccessToken,
    limiter: RateLimiter,
    backoff: Backoff,
    max_retries: u32,
    retries: Arc<AtomicU64>,
}

impl std::fmt::Debug for KiteClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KiteClient")
            .field("api_url", &self.api_url)
            .field("api_key", &self.api_key)
            .field("logged_in", &self.access_token.read().is_some())
            .finish_non_exhaustive()
    }
}

/// The session checksum: lowercase hex SHA-256 of `api_key + request_token + api_secret`.
pub fn session_checksum(api_key: &str, request_token: &str, api_secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(api_key.as_bytes());
    hasher.update(request_token.as_bytes());
    hasher.update(api_secret.as_bytes());
    hex::encode(hasher.finalize())
}

impl KiteClient {
    /// A client for the API at `settings.api_url`, not yet logged in.
    ///
    /// # Errors
    /// [`KiteError::Config`] when the HTTP client cannot be built (TLS backend).
    pub fn new(settings: &ZerodhaSettings) -> Result<KiteClient, KiteError> {
        let mut headers = HeaderMap::new();
        headers.insert("X-Kite-Version", HeaderValue::from_static("3"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout)
            .gzip(true)
            .build()
            .map_err(|e| KiteError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(KiteClient {
            http,
            api_url: settings.api_url.trim_end_matches('/').to_string(),
            login_url: settings.login_url.clone(),
            api_key: settings.api_key.clone(),
            default_product: settings.product.clone(),
            access_token: Arc::new(RwLock::new(None)),
            limiter: RateLimiter::new(&settings.rate_limits),
            backoff: Backoff {
                base: settings.retry_base_delay,
                max: settings.retry_base_delay.saturating_mul(16),
            },
            max_retries: settings.max_retries,
            retries: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Uses an access token obtained earlier (e.g. stored by `alpha-panda kite login`).
    pub fn with_access_token(self, access_token: impl Into<String>) -> KiteClient {
        self.set_access_token(access_token);
        self
    }

    /// Replaces the access token.
    pub fn set_access_token(&self, access_token: impl Into<String>) {
        *self.access_token.write() = Some(access_token.into());
    }

    /// The access token as a shared cell, for a ticker that must reconnect with whatever session
    /// the client holds now.
    pub fn shared_access_token(&self) -> SharedAccessToken {
        Arc::clone(&self.access_token)
    }

    /// The current access token, if logged in.
    pub fn access_token(&self) -> Option<String> {
        self.access_token.read().clone()
    }

    /// The app's api_key.
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The rate limiter (its `delayed_calls` counter is a metric).
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// How many retries the client has made so far (for metrics).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The browser login URL: `{login_url}?v=3&api_key={api_key}`.
    pub fn login_url(&self) -> String {
        let mut url = match url::Url::parse(&self.login_url) {
            Ok(url) => url,
            Err(_) => {
                return format!("{}?v=3&api_key={}", self.login_url, self.api_key);
            }
        };
        url.query_pairs_mut()
            .append_pair("v", "3")
            .append_pair("api_key", &self.api_key);
        url.to_string()
    }

    /// Exchanges the `request_token` from the login redirect for a session, and keeps its
    /// access token for later calls.
    ///
    /// # Errors
    /// [`KiteError::TokenExpired`] for a wrong checksum or a stale request token; transport
    /// and other Kite errors as they come.
    pub async fn generate_session(
        &self,
        request_token: &str,
        api_secret: &str,
    ) -> Result<Session, KiteError> {
        let form = [
            ("api_key", self.api_key.clone()),
            ("request_token", request_token.to_string()),
            (
                "checksum",
                session_checksum(&self.api_key, request_token, api_secret),
            ),
        ];
        let session: Session = self
            .call(Call {
                method: Method::POST,
                path: "/session/token".into(),
                form: Some(&form),
                json: None,
                class: EndpointClass::Other,
                authenticated: false,
                retry: RetryPolicy::Read,
            })
            .await?;
        self.set_access_token(session.access_token.clone());
        Ok(session)
    }

    /// The logged-in user's profile (also a cheap check that the token is still valid).
    ///
    /// # Errors
    /// [`KiteError::TokenExpired`] / [`KiteError::NotLoggedIn`] when a login is needed.
    pub async fn profile(&self) -> Result<UserProfile, KiteError> {
        self.get("/user/profile").await
    }

    /// Places an order and returns Kite's order id. Rate-limited as an order; retried only
    /// when Kite certainly did not take it (429, connection refused). After any other failure
    /// the order may exist: look it up with [`KiteClient::order_by_tag`].
    ///
    /// # Errors
    /// [`KiteError::InvalidOrder`] before sending; [`KiteError::DailyOrderLimit`]; Kite's
    /// rejections (`Input`, `Order`, `Margin`, …) and transport errors.
    pub async fn place_order(&self, params: &OrderParams) -> Result<KiteOrderId, KiteError> {
        params
            .validate()
            .map_err(|reason| KiteError::InvalidOrder { reason })?;
        let form = params.form_fields(&self.default_product);
        let placed: PlacedOrder = self
            .call(Call {
                method: Method::POST,
                path: format!("/orders/{}", params.variety.as_str()),
                form: Some(&form),
                json: None,
                class: EndpointClass::Order,
                authenticated: true,
                retry: RetryPolicy::Order,
            })
            .await?;
        Ok(placed.order_id)
    }

    /// Places an order with `autoslice` (`POST /orders/{variety}`, `autoslice=true`): Kite slices
    /// a quantity above the instrument's freeze quantity into at most
    /// [`MAX_AUTOSLICES`](super::types::MAX_AUTOSLICES) orders,
    /// each with its own order id, and answers the parent id with one result per slice (a slice
    /// may be refused while the others are placed). Rate-limited and retried as
    /// [`KiteClient::place_order`].
    ///
    /// # Errors
    /// As [`KiteClient::place_order`]; Kite refuses a quantity below the freeze quantity or one
    /// that needs more than ten slices.
    pub async fn place_autoslice_order(
        &self,
        params: &OrderParams,
    ) -> Result<AutoslicePlacement, KiteError> {
        params
            .validate()
            .map_err(|reason| KiteError::InvalidOrder { reason })?;
        let params = params.clone().with_autoslice();
        let form = params.form_fields(&self.default_product);
        self.call(Call {
            method: Method::POST,
            path: format!("/orders/{}", params.variety.as_str()),
            form: Some(&form),
            json: None,
            class: EndpointClass::Order,
            authenticated: true,
            retry: RetryPolicy::Order,
        })
        .await
    }

    /// Kite's own itemised charges of executed orders, its virtual contract note
    /// (`POST /charges/orders`, a JSON list), one entry per order in the order given. Retried
    /// only when Kite certainly did not answer it (429, connection refused): a caller with an
    /// estimate to fall back on should not wait out a longer outage.
    ///
    /// # Errors
    /// Kite and transport errors; an answer with another number of entries than orders asked is
    /// [`KiteError::UnexpectedResponse`].
    pub async fn contract_note(
        &self,
        orders: &[ContractNoteOrder],
    ) -> Result<Vec<ContractNoteEntry>, KiteError> {
        let body = serde_json::to_value(orders).map_err(|e| KiteError::UnexpectedResponse {
            endpoint: "POST /charges/orders".into(),
            detail: format!("cannot encode the orders: {e}"),
        })?;
        let entries: Vec<ContractNoteEntry> = self
            .call(Call {
                method: Method::POST,
                path: "/charges/orders".into(),
                form: None,
                json: Some(&body),
                class: EndpointClass::Other,
                authenticated: true,
                retry: RetryPolicy::Order,
            })
            .await?;
        if entries.len() != orders.len() {
            return Err(KiteError::UnexpectedResponse {
                endpoint: "POST /charges/orders".into(),
                detail: format!("{} entries for {} orders", entries.len(), orders.len()),
            });
        }
        Ok(entries)
    }

    /// Changes an open order (`PUT /orders/{variety}/{order_id}`); rate-limited as an order and
    /// retried only when Kite certainly did not take the request. Kite allows about 25
    /// modifications of one order.
    ///
    /// # Errors
    /// Kite's rejections (an order no longer open is an `Order`/`Input` error) and transport
    /// errors.
    pub async fn modify_order(
        &self,
        variety: Variety,
        order_id: &KiteOrderId,
        changes: &ModifyParams,
    ) -> Result<KiteOrderId, KiteError> {
        let form = changes.form_fields();
        let modified: PlacedOrder = self
            .call(Call {
                method: Method::PUT,
                path: format!(
                    "/orders/{}/{}",
                    variety.as_str(),
                    path_segment(order_id.as_str())
                ),
                form: Some(&form),
                json: None,
                class: EndpointClass::Order,
                authenticated: true,
                retry: RetryPolicy::Order,
            })
            .await?;
        Ok(modified.order_id)
    }

    /// Cancels an open order (`DELETE /orders/{variety}/{order_id}`); what was filled stays
    /// filled. Rate-limited as an order.
    ///
    /// # Errors
    /// Kite's rejections (an order no longer open) and transport errors.
    pub async fn cancel_order(
        &self,
        variety: Variety,
        order_id: &KiteOrderId,
    ) -> Result<KiteOrderId, KiteError> {
        let cancelled: PlacedOrder = self
            .call(Call {
                method: Method::DELETE,
                path: format!(
                    "/orders/{}/{}",
                    variety.as_str(),
                    path_segment(order_id.as_str())
                ),
                form: None,
                json: None,
                class: EndpointClass::Order,
                authenticated: true,
                retry: RetryPolicy::Order,
            })
            .await?;
        Ok(cancelled.order_id)
    }

    /// Today's order book (latest state of each order; array order is not meaningful).
    ///
    /// # Errors
    /// Kite and transport errors.
    pub async fn orders(&self) -> Result<Vec<Order>, KiteError> {
        self.get("/orders").await
    }

    /// Every state an order went through.
    ///
    /// # Errors
    /// Kite and transport errors.
    pub async fn order_history(&self, order_id: &KiteOrderId) -> Result<Vec<Order>, KiteError> {
        self.get(&format!("/orders/{}", path_segment(order_id.as_str())))
            .await
    }

    /// The fills of one order.
    ///
    /// # Errors
    /// Kite and transport errors.
    pub async fn order_trades(&self, order_id: &KiteOrderId) -> Result<Vec<Trade>, KiteError> {
        self.get(&format!(
            "/orders/{}/trades",
            path_segment(order_id.as_str())
        ))
        .await
    }

    /// Today's fills.
    ///
    /// # Errors
    /// Kite and transport errors.
    pub async fn trades(&self) -> Result<Vec<Trade>, KiteError> {
        self.get("/trades").await
    }

    /// The account's positions: as they stand (`net`) and today's (`day`).
    ///
    /// # Errors
    /// Kite and transport errors.
    pub async fn positions(&self) -> Result<Positions, KiteError> {
        self.get("/portfolio/positions").await
    }

    /// The latest state of the order placed with `tag` today, if any: the reconciliation
    /// path after an ambiguous placement failure.
    ///
    /// # Errors
    /// Kite and transport errors.
    pub async fn order_by_tag(&self, tag: &str) -> Result<Option<Order>, KiteError> {
        let orders = self.orders().await?;
        Ok(orders
            .into_iter()
            .filter(|o| o.tag.as_deref() == Some(tag) || o.tags.iter().any(|t| t == tag))
            .max_by_key(|o| {
                (
                    o.exchange_update_timestamp.or(o.order_timestamp),
                    o.status_rank(),
                )
            }))
    }

    /// Every order of today's book with `tag` (an autoslice order's slices share their tag), by
    /// order id.
    ///
    /// # Errors
    /// Kite and transport errors.
    pub async fn orders_by_tag(&self, tag: &str) -> Result<Vec<Order>, KiteError> {
        let mut orders: Vec<Order> = self
            .orders()
            .await?
            .into_iter()
            .filter(|o| o.tag.as_deref() == Some(tag) || o.tags.iter().any(|t| t == tag))
            .collect();
        orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        Ok(orders)
    }

    /// Downloads and parses the instruments master of every exchange (gzipped CSV).
    ///
    /// # Errors
    /// [`KiteError::Instruments`] naming the bad line; Kite and transport errors.
    pub async fn instruments(&self) -> Result<Vec<Instrument>, KiteError> {
        let call = Call {
            method: Method::GET,
            path: "/instruments".into(),
            form: None,
            json: None,
            class: EndpointClass::Other,
            authenticated: true,
            retry: RetryPolicy::Read,
        };
        let endpoint = call.endpoint();
        let body = self.send_with_retry(&call).await?;
        tokio::task::spawn_blocking(move || {
            let csv = gunzip_if_needed(&body).map_err(|e| KiteError::UnexpectedResponse {
                endpoint: endpoint.clone(),
                detail: format!("instruments body is not valid gzip: {e}"),
            })?;
            parse_instruments_csv(&csv[..]).map_err(KiteError::from)
        })
        .await
        .map_err(|e| KiteError::UnexpectedResponse {
            endpoint: "GET /instruments".into(),
            detail: format!("parser task failed: {e}"),
        })?
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, KiteError> {
        self.call(Call {
            method: Method::GET,
            path: path.to_string(),
            form: None,
            json: None,
            class: EndpointClass::Other,
            authenticated: true,
            retry: RetryPolicy::Read,
        })
        .await
    }

    async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, KiteError> {
        let body = self.send_with_retry(&call).await?;
        let envelope: SuccessEnvelope<T> =
            serde_json::from_slice(&body).map_err(|e| KiteError::UnexpectedResponse {
                endpoint: call.endpoint(),
                detail: format!("cannot parse the success body: {e}"),
            })?;
        Ok(envelope.data)
    }

    /// Sends with rate limiting and retries; returns the body of a successful response.
    async fn send_with_retry(&self, call: &Call<'_>) -> Result<Vec<u8>, KiteError> {
        let mut attempt = 0u32;
        loop {
            let result = self.send_once(call).await;
            let err = match result {
                Ok(body) => return Ok(body),
                Err(err) => err,
            };
            let retryable = match call.retry {
                RetryPolicy::Read => err.retry_read(),
                RetryPolicy::Order => err.retry_order(),
            };
            if !retryable || attempt >= self.max_retries {
                return Err(err);
            }
            let delay = self.backoff.delay_with_jitter(attempt);
            tracing::warn!(
                endpoint = %call.endpoint(),
                attempt = attempt + 1,
                delay_ms = delay.as_millis() as u64,
                error = %err,
                "Kite call failed transiently; retrying"
            );
            self.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, call: &Call<'_>) -> Result<Vec<u8>, KiteError> {
        self.limiter.acquire(call.class).await?;
        let url = format!("{}{}", self.api_url, call.path);
        let mut request = self.http.request(call.method.clone(), url);
        if call.authenticated {
            let token = self
                .access_token
                .read()
                .clone()
                .ok_or(KiteError::NotLoggedIn)?;
            let value = HeaderValue::from_str(&format!("token {}:{}", self.api_key, token))
                .map_err(|_| KiteError::Config("the access token is not a valid header".into()))?;
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(form) = call.form {
            request = request.form(form);
        }
        if let Some(json) = call.json {
            request = request.json(json);
        }
        let transport = |source| KiteError::Transport {
            endpoint: call.endpoint(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        if !(200..300).contains(&status) {
            return Err(KiteError::from_response(status, &body));
        }
        if body.first() == Some(&b'{') {
            if let Ok(error) = serde_json::from_slice::<super::error::ErrorBody>(&body) {
                if error.status.as_deref() == Some("error") || error.error_type.is_some() {
                    return Err(KiteError::from_response(status, &body));
                }
            }
        }
        Ok(body)
    }
}

/// Percent-encodes a value used as one path segment.
fn path_segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Decompresses a gzip body (the instruments dump may arrive compressed without a
/// `Content-Encoding` header); other bodies are returned unchanged.
fn gunzip_if_needed(body: &[u8]) -> std::io::Result<Vec<u8>> {
    if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(body.len() * 4);
        flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
        Ok(out)
    } else {
        Ok(body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_hex_sha256_of_the_concatenation() {
        // echo -n "keytokensecret" | sha256sum
        let expected = hex::encode(Sha256::digest(b"keytokensecret"));
        assert_eq!(session_checksum("key", "token", "secret"), expected);
        assert_eq!(expected.len(), 64);
        assert_eq!(expected, expected.to_lowercase());
    }

    #[test]
    fn login_url_carries_version_and_key() {
        let settings = ZerodhaSettings {
            api_key: "abc123".into(),
            ..ZerodhaSettings::default()
        };
        let client = KiteClient::new(&settings).unwrap();
        assert_eq!(
            client.login_url(),
            "https://kite.zerodha.com/connect/login?v=3&api_key=abc123"
        );
    }

    #[test]
    fn gzip_bodies_are_detected() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"a,b\n1,2\n").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip_if_needed(&gz).unwrap(), b"a,b\n1,2\n");
        assert_eq!(gunzip_if_needed(b"plain").unwrap(), b"plain");
    }
}
