//! `ZerodhaSettings`: the `[zerodha]` configuration section (credentials, endpoints, timeouts,
//! rate limits, reconnection policy). Plain data; loaded once by the binary and passed down.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Client-side rate limits (reference §2.5). Per-second limits apply per api_key; the order
/// caps per minute and per day apply per user account and are UNCONFIRMED, hence configurable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimits {
    /// Order placements (and modifications / cancellations) per second.
    pub orders_per_second: u32,
    /// Order placements per minute.
    pub orders_per_minute: u32,
    /// Order placements per day; beyond it placement is refused, not delayed.
    pub orders_per_day: u32,
    /// Quote endpoint requests per second.
    pub quotes_per_second: u32,
    /// Requests per second to every other endpoint.
    pub other_per_second: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            orders_per_second: 10,
            orders_per_minute: 400,
            orders_per_day: 5000,
            quotes_per_second: 1,
            other_per_second: 10,
        }
    }
}

/// Zerodha Kite Connect settings. `Debug` never prints the API secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZerodhaSettings {
    /// The Kite Connect app's API key.
    pub api_key: String,
    /// The app's API secret (used only for the session checksum).
    pub api_secret: String,
    /// REST base URL.
    pub api_url: String,
    /// Browser login URL (the `api_key` and `v=3` query parameters are appended).
    pub login_url: String,
    /// KiteTicker websocket URL.
    pub ws_url: String,
    /// Default product for orders (`MIS` intraday, `CNC` delivery, `NRML` F&O carry).
    pub product: String,
    /// Market protection of every MARKET and SL-M order: a percentage of the reference price
    /// (above 0, at most 100), or -1 for Kite's automatic band. Kite rejects those orders without
    /// one; 0 is refused at start-up.
    pub market_protection: Decimal,
    /// A protected MARKET order still open with units unfilled after this long rests at its
    /// band: it is cancelled, and what did not fill is reported failed.
    #[serde(with = "humantime_serde")]
    pub protected_order_timeout: Duration,
    /// A validated signal older than this when it reaches the trader is not placed (an
    /// `order_failed` says why): a signal read again after a long outage, or on another day,
    /// never becomes an order.
    #[serde(with = "humantime_serde")]
    pub max_signal_age: Duration,
    /// How often the live trader reconciles its positions with Kite's (trades of orders it did
    /// not place, `/portfolio/positions`); also once at start-up.
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// The exchange's freeze quantities (the most units one order may carry), by trading symbol
    /// or underlying name, e.g. `{ NIFTY = 1800, BANKNIFTY = 900 }`: a larger order is placed
    /// with Kite's autoslice, in at most ten slices; one that needs more is refused. Kite
    /// publishes no endpoint for them; take them from the exchange's circulars.
    pub freeze_quantities: BTreeMap<String, u32>,
    /// Whether each live fill's charges come from Kite's virtual contract note
    /// (`POST /charges/orders`); when it does not answer, or when this is off, the charge
    /// schedule's figures are used and the fill is marked an estimate.
    pub contract_notes: bool,
    /// Timeout of one HTTP request.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Retries of a transient REST failure (429, NetworkException, connection failure).
    pub max_retries: u32,
    /// First retry delay; doubled on each attempt, plus jitter.
    #[serde(with = "humantime_serde")]
    pub retry_base_delay: Duration,
    /// Client-side rate limits.
    pub rate_limits: RateLimits,
    /// Ticker: reconnect when no frame (heartbeats included) arrives for this long.
    #[serde(with = "humantime_serde")]
    pub ws_read_idle_timeout: Duration,
    /// Ticker: cap on the reconnect delay.
    #[serde(with = "humantime_serde")]
    pub ws_max_reconnect_delay: Duration,
    /// Ticker: reconnect attempts before giving up.
    pub ws_max_reconnect_attempts: u32,
    /// `alpha-panda kite login`: port of the local callback route on 127.0.0.1 (the redirect URL
    /// registered for the Kite app is `http://127.0.0.1:{callback_port}/kite/callback`).
    pub callback_port: u16,
}

impl Default for ZerodhaSettings {
    fn default() -> Self {
        Self {
            api_key: String::new(),
            api_secret: String::new(),
            api_url: "https://api.kite.trade".into(),
            login_url: "https://kite.zerodha.com/connect/login".into(),
            ws_url: "wss://ws.kite.trade".into(),
            product: "MIS".into(),
            market_protection: Decimal::NEGATIVE_ONE,
            protected_order_timeout: Duration::from_secs(30),
            max_signal_age: Duration::from_secs(60),
            reconcile_interval: Duration::from_secs(60),
            freeze_quantities: BTreeMap::new(),
            contract_notes: true,
            request_timeout: Duration::from_secs(7),
            max_retries: 3,
            retry_base_delay: Duration::from_millis(500),
            rate_limits: RateLimits::default(),
            ws_read_idle_timeout: Duration::from_secs(5),
            ws_max_reconnect_delay: Duration::from_secs(60),
            ws_max_reconnect_attempts: 50,
            callback_port: 5010,
        }
    }
}

impl ZerodhaSettings {
    /// Whether both credentials are set (production refuses to start Zerodha without them).
    pub fn has_credentials(&self) -> bool {
        !self.api_key.trim().is_empty() && !self.api_secret.trim().is_empty()
    }
}

impl fmt::Debug for ZerodhaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = if self.api_secret.is_empty() {
            "<empty>"
        } else {
            "<redacted>"
        };
        f.debug_struct("ZerodhaSettings")
            .field("api_key", &self.api_key)
            .field("api_secret", &secret)
            .field("api_url", &self.api_url)
            .field("login_url", &self.login_url)
            .field("ws_url", &self.ws_url)
            .field("product", &self.product)
            .field("market_protection", &self.market_protection)
            .field("protected_order_timeout", &self.protected_order_timeout)
            .field("max_signal_age", &self.max_signal_age)
            .field("reconcile_interval", &self.reconcile_interval)
            .field("freeze_quantities", &self.freeze_quantities)
            .field("contract_notes", &self.contract_notes)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("rate_limits", &self.rate_limits)
            .field("ws_read_idle_timeout", &self.ws_read_idle_timeout)
            .field("ws_max_reconnect_delay", &self.ws_max_reconnect_delay)
            .field("ws_max_reconnect_attempts", &self.ws_max_reconnect_attempts)
            .field("callback_port", &self.callback_port)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let settings = ZerodhaSettings {
            api_key: "kitekey".into(),
            api_secret: "s3cr3t-value".into(),
            ..ZerodhaSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(shown.contains("kitekey"));
        assert!(!shown.contains("s3cr3t-value"));
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let s: ZerodhaSettings =
            serde_json::from_str(r#"{"api_key":"k","request_timeout":"3s"}"#).unwrap();
        assert_eq!(s.api_url, "https://api.kite.trade");
        assert_eq!(s.ws_url, "wss://ws.kite.trade");
        assert_eq!(s.product, "MIS");
        assert_eq!(s.request_timeout, Duration::from_secs(3));
        assert_eq!(s.rate_limits.orders_per_second, 10);
        assert!(!s.has_credentials());
        let err = serde_json::from_str::<ZerodhaSettings>(r#"{"api_keyy":"k"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field"));
    }
}
