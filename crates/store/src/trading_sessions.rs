//! Kite trading sessions: the access token per API key and when it expires (06:00 IST).

use std::fmt;

use alpha_panda_core::Timestamp;
use chrono::{Duration, NaiveTime};

use crate::sql::{Param, Pool, Row};
use crate::StoreError;

/// India Standard Time is UTC+05:30 all year (no daylight saving).
const IST_OFFSET_MINUTES: i64 = 5 * 60 + 30;

/// When a Kite access token obtained at `now` expires: the next 06:00 IST strictly after `now`
/// (Kite flushes tokens daily at 06:00 IST — for a login during the day that is 06:00 the next day).
pub fn session_expiry(now: Timestamp) -> Timestamp {
    let offset = Duration::minutes(IST_OFFSET_MINUTES);
    let ist_now = now.as_datetime().naive_utc() + offset;
    let six_today = ist_now.date().and_time(NaiveTime::MIN) + Duration::hours(6);
    let expiry_ist = if ist_now < six_today {
        six_today
    } else {
        six_today + Duration::days(1)
    };
    Timestamp::from_datetime((expiry_ist - offset).and_utc())
}

/// A Kite access token. Its `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The secret, for the Kite `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(****)")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// An authenticated Kite session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingSession {
    /// The Kite Connect app's API key (one session per key).
    pub api_key: String,
    /// The Zerodha client id that logged in.
    pub user_id: String,
    /// The access token (redacted in `Debug`).
    pub access_token: AccessToken,
    /// When the session was created.
    pub created_at: Timestamp,
    /// When the token stops working (see [`session_expiry`]).
    pub expires_at: Timestamp,
}

/// Repository of [`TradingSession`]s.
#[derive(Debug, Clone, Copy)]
pub struct TradingSessions<'a> {
    pool: &'a Pool,
}

impl<'a> TradingSessions<'a> {
    pub(crate) fn new(pool: &'a Pool) -> Self {
        Self { pool }
    }

    /// Stores `session`, replacing any earlier one for the same API key.
    ///
    /// # Errors
    /// A [`StoreError`] when the write fails.
    pub async fn save(&self, session: &TradingSession) -> Result<(), StoreError> {
        self.pool
            .execute(
                "save trading session",
                "INSERT INTO trading_sessions (api_key, user_id, access_token, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (api_key) DO UPDATE SET user_id = excluded.user_id, \
                 access_token = excluded.access_token, created_at = excluded.created_at, \
                 expires_at = excluded.expires_at",
                &[
                    Param::Text(session.api_key.clone()),
                    Param::Text(session.user_id.clone()),
                    Param::Text(session.access_token.expose().to_owned()),
                    Param::Timestamp(session.created_at),
                    Param::Timestamp(session.expires_at),
                ],
            )
            .await?;
        Ok(())
    }

    /// The session for `api_key` if it has not expired at `now`.
    ///
    /// # Errors
    /// A [`StoreError`] when the database cannot be read.
    pub async fn current(
        &self,
        api_key: &str,
        now: Timestamp,
    ) -> Result<Option<TradingSession>, StoreError> {
        self.pool
            .fetch_optional(
                "load trading session",
                "SELECT api_key, user_id, access_token, created_at, expires_at \
                 FROM trading_sessions WHERE api_key = $1 AND expires_at > $2",
                &[Param::Text(api_key.to_owned()), Param::Timestamp(now)],
            )
            .await?
            .as_ref()
            .map(session_from_row)
            .transpose()
    }

    /// Forgets the session of `api_key` (logout); returns whether one existed.
    ///
    /// # Errors
    /// A [`StoreError`] when the write fails.
    pub async fn delete(&self, api_key: &str) -> Result<bool, StoreError> {
        let n = self
            .pool
            .execute(
                "delete trading session",
                "DELETE FROM trading_sessions WHERE api_key = $1",
                &[Param::Text(api_key.to_owned())],
            )
            .await?;
        Ok(n > 0)
    }
}

fn session_from_row(row: &Row) -> Result<TradingSession, StoreError> {
    const OP: &str = "load trading session";
    Ok(TradingSession {
        api_key: row.text(OP, "api_key")?,
        user_id: row.text(OP, "user_id")?,
        access_token: AccessToken::new(row.text(OP, "access_token")?),
        created_at: row.timestamp(OP, "created_at")?,
        expires_at: row.timestamp(OP, "expires_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Timestamp {
        Timestamp::from_datetime(Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap())
    }

    #[test]
    fn expiry_is_the_next_six_am_ist() {
        // 09:15 IST on 2025-03-10 (03:45 UTC) → 06:00 IST on 2025-03-11 (00:30 UTC).
        assert_eq!(
            session_expiry(at(2025, 3, 10, 3, 45)),
            at(2025, 3, 11, 0, 30)
        );
        // 23:50 IST (18:20 UTC) → next morning.
        assert_eq!(
            session_expiry(at(2025, 3, 10, 18, 20)),
            at(2025, 3, 11, 0, 30)
        );
        // 05:00 IST on the 11th (23:30 UTC on the 10th) → 06:00 IST the same morning.
        assert_eq!(
            session_expiry(at(2025, 3, 10, 23, 30)),
            at(2025, 3, 11, 0, 30)
        );
        // Exactly 06:00 IST → the following day.
        assert_eq!(
            session_expiry(at(2025, 3, 11, 0, 30)),
            at(2025, 3, 12, 0, 30)
        );
        // Year end.
        assert_eq!(
            session_expiry(at(2025, 12, 31, 10, 0)),
            at(2026, 1, 1, 0, 30)
        );
    }

    #[test]
    fn token_never_shows_in_debug() {
        let session = TradingSession {
            api_key: "kite_key".into(),
            user_id: "AB1234".into(),
            access_token: AccessToken::new("s3cr3t-token"),
            created_at: at(2025, 3, 10, 3, 45),
            expires_at: at(2025, 3, 11, 0, 30),
        };
        let shown = format!("{session:?} {}", session.access_token);
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert_eq!(session.access_token.expose(), "s3cr3t-token");
    }
}
