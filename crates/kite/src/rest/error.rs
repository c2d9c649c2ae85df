//! `KiteError`: every failure of a Kite Connect call, mapped from Kite's `error_type` and HTTP
//! status, each knowing its [`ErrorClass`] and telling the operator what to do.

use alpha_panda_core::ErrorClass;
use serde::Deserialize;

use crate::instruments::InstrumentsError;

/// A failed Kite Connect call.
#[derive(Debug, thiserror::Error)]
pub enum KiteError {
    /// `TokenException`: the access token expired (06:00 IST daily) or was revoked.
    #[error("Kite session expired or invalid ({message}); run `alpha-panda kite login` again")]
    TokenExpired {
        /// Kite's message.
        message: String,
    },
    /// No access token yet: `generate_session` has not run.
    #[error("not logged in to Kite; run `alpha-panda kite login` first")]
    NotLoggedIn,
    /// `UserException`: a problem with the user's account.
    #[error("Kite account error: {message}; check the account in the Kite web console")]
    User {
        /// Kite's message.
        message: String,
    },
    /// `OrderException`: the order could not be placed or fetched.
    #[error("Kite order error: {message}")]
    Order {
        /// Kite's message.
        message: String,
    },
    /// `InputException`: missing or invalid parameters.
    #[error("Kite rejected the request parameters: {message}; fix the request, do not retry it")]
    Input {
        /// Kite's message.
        message: String,
    },
    /// `MarginException`: insufficient funds for the order.
    #[error(
        "Kite rejected the order for insufficient margin: {message}; add funds or reduce size"
    )]
    Margin {
        /// Kite's message.
        message: String,
    },
    /// `HoldingException`: not enough holdings to sell.
    #[error("Kite rejected the sell for insufficient holdings: {message}")]
    Holding {
        /// Kite's message.
        message: String,
    },
    /// `PermissionException`: the app or user may not do this.
    #[error(
        "Kite denied permission: {message}; check the app's permissions on developers.kite.trade"
    )]
    Permission {
        /// Kite's message.
        message: String,
    },
    /// `NetworkException`: Kite could not reach its order management system.
    #[error("Kite could not reach its OMS: {message}; retry later")]
    Network {
        /// Kite's message.
        message: String,
    },
    /// HTTP 429: the server's rate limit was hit despite the client-side limiter.
    #[error("Kite rate limit hit (HTTP 429): {message}; lower the configured rate limits")]
    RateLimited {
        /// Kite's message.
        message: String,
    },
    /// `DataException`: Kite did not understand its OMS's response.
    #[error("Kite data error (OMS response not understood): {message}; retry later")]
    Data {
        /// Kite's message.
        message: String,
    },
    /// `GeneralException` or an unknown `error_type`.
    #[error("Kite error (HTTP {status}, {error_type}): {message}")]
    General {
        /// HTTP status.
        status: u16,
        /// Kite's `error_type` as sent (`GeneralException` or an unknown name).
        error_type: String,
        /// Kite's message.
        message: String,
    },
    /// The client-side daily order cap is reached; further placements are refused until tomorrow.
    #[error(
        "daily order cap of {limit} orders reached; no more orders today (raise \
         zerodha.rate_limits.orders_per_day only if your Zerodha account allows it)"
    )]
    DailyOrderLimit {
        /// The configured cap.
        limit: u32,
    },
    /// The order failed client-side validation and was not sent.
    #[error("order not sent to Kite: {reason}; fix the order parameters")]
    InvalidOrder {
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP request itself failed (connection, timeout, TLS).
    #[error("HTTP request to Kite {endpoint} failed: {source}; check connectivity to the API URL")]
    Transport {
        /// Method and path.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// A response that does not have the documented shape.
    #[error("unexpected response from Kite {endpoint}: {detail}")]
    UnexpectedResponse {
        /// Method and path.
        endpoint: String,
        /// What was wrong.
        detail: String,
    },
    /// The instruments dump could not be parsed.
    #[error(transparent)]
    Instruments(#[from] InstrumentsError),
    /// The client configuration is unusable (bad URL, TLS setup).
    #[error("invalid Kite client configuration: {0}")]
    Config(String),
}

/// Kite's error body: `{"status":"error","message":…,"error_type":…}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error_type: Option<String>,
}

impl KiteError {
    /// How the processor runtime should treat this failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            KiteError::TokenExpired { .. }
            | KiteError::NotLoggedIn
            | KiteError::User { .. }
            | KiteError::Order { .. }
            | KiteError::Input { .. }
            | KiteError::Margin { .. }
            | KiteError::Holding { .. }
            | KiteError::Permission { .. }
            | KiteError::InvalidOrder { .. }
            | KiteError::DailyOrderLimit { .. } => ErrorClass::Business,
            KiteError::Network { .. } | KiteError::RateLimited { .. } => ErrorClass::Transient,
            KiteError::Transport { source, .. } if source.is_timeout() || source.is_connect() => {
                ErrorClass::Transient
            }
            KiteError::Transport { .. }
            | KiteError::Data { .. }
            | KiteError::General { .. }
            | KiteError::UnexpectedResponse { .. }
            | KiteError::Instruments(_)
            | KiteError::Config(_) => ErrorClass::Infrastructure,
        }
    }

    /// Whether the user must log in again.
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            KiteError::TokenExpired { .. } | KiteError::NotLoggedIn
        )
    }

    /// Whether the client retries this error on an idempotent call (reads).
    pub(crate) fn retry_read(&self) -> bool {
        self.class() == ErrorClass::Transient
    }

    /// Whether the client retries this error on an order placement: only when Kite certainly
    /// did not accept the order (429, or the connection was never made). A timeout or a 503
    /// may hide an accepted order, so those go back to the caller, who reconciles by tag.
    pub(crate) fn retry_order(&self) -> bool {
        match self {
            KiteError::RateLimited { .. } => true,
            KiteError::Transport { source, .. } => source.is_connect(),
            _ => false,
        }
    }

    /// Maps an error response (non-2xx, or a body with `status: error` / `error_type`).
    pub fn from_response(status: u16, body: &[u8]) -> KiteError {
        let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let message = parsed
            .as_ref()
            .and_then(|b| b.message.clone())
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if text.is_empty() {
                    format!("HTTP {status}")
                } else {
                    text.chars().take(300).collect()
                }
            });
        if status == 429 {
            return KiteError::RateLimited { message };
        }
        let error_type = parsed.and_then(|b| b.error_type);
        match error_type.as_deref() {
            Some("TokenException") => KiteError::TokenExpired { message },
            Some("UserException") => KiteError::User { message },
            Some("OrderException") => KiteError::Order { message },
            Some("InputException") => KiteError::Input { message },
            Some("MarginException") => KiteError::Margin { message },
            Some("HoldingException") => KiteError::Holding { message },
            Some("PermissionException") => KiteError::Permission { message },
            Some("NetworkException") => KiteError::Network { message },
            Some("DataException") => KiteError::Data { message },
            Some(other) => KiteError::General {
                status,
                error_type: other.to_string(),
                message,
            },
            None => match status {
                403 => KiteError::TokenExpired { message },
                502..=504 => KiteError::Network { message },
                _ => KiteError::General {
                    status,
                    error_type: "GeneralException".into(),
                    message,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(error_type: &str) -> Vec<u8> {
        format!(r#"{{"status":"error","message":"boom","error_type":"{error_type}"}}"#).into_bytes()
    }

    #[test]
    fn every_error_type_maps_to_its_variant_and_class() {
        let cases = [
            ("TokenException", 403, ErrorClass::Business),
            ("UserException", 400, ErrorClass::Business),
            ("OrderException", 500, ErrorClass::Business),
            ("InputException", 400, ErrorClass::Business),
            ("MarginException", 400, ErrorClass::Business),
            ("HoldingException", 400, ErrorClass::Business),
            ("PermissionException", 403, ErrorClass::Business),
            ("NetworkException", 503, ErrorClass::Transient),
            ("DataException", 502, ErrorClass::Infrastructure),
            ("GeneralException", 500, ErrorClass::Infrastructure),
            ("SomethingNew", 500, ErrorClass::Infrastructure),
        ];
        for (name, status, class) in cases {
            let err = KiteError::from_response(status, &body(name));
            assert_eq!(err.class(), class, "{name} → {err:?}");
            assert!(err.to_string().contains("boom"), "{name}: {err}");
        }
        let token = KiteError::from_response(403, &body("TokenException"));
        assert!(token.is_auth());
        assert!(token.to_string().contains("alpha-panda kite login"));
        let limited = KiteError::from_response(429, &body("NetworkException"));
        assert!(matches!(limited, KiteError::RateLimited { .. }));
        assert!(limited.retry_order());
        assert!(!KiteError::from_response(503, &body("NetworkException")).retry_order());
        assert!(KiteError::from_response(503, &body("NetworkException")).retry_read());
    }

    #[test]
    fn non_json_bodies_map_by_status() {
        assert!(matches!(
            KiteError::from_response(502, b"<html>bad gateway</html>"),
            KiteError::Network { .. }
        ));
        assert!(matches!(
            KiteError::from_response(404, b""),
            KiteError::General { status: 404, .. }
        ));
    }

    proptest::proptest! {
        /// Kite's error bodies come from the network: any status and any bytes give an error
        /// value, never a panic.
        #[test]
        fn any_error_response_is_an_error_value(
            status in 100u16..600,
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            error_type in "[A-Za-z]{0,20}",
            message in ".{0,40}",
        ) {
            let _ = KiteError::from_response(status, &bytes).to_string();
            let json = serde_json::json!({"status": "error", "message": message, "error_type": error_type});
            let err = KiteError::from_response(status, json.to_string().as_bytes());
            let _ = (err.class(), err.is_auth(), err.to_string());
        }
    }
}
