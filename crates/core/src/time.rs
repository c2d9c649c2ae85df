//! The envelope timestamp: RFC 3339 in UTC with exactly microsecond precision.

use std::fmt;

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant, truncated to microseconds, written like `2026-11-22T09:15:00.123456Z`.
///
/// Held as Unix microseconds: every event carries several, and comparing, subtracting or reading
/// the clock into one must not pay for calendar arithmetic. The calendar view is built on demand.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

/// The Unix microseconds a `DateTime<Utc>` can represent (chrono's range is narrower than `i64`'s).
static REPRESENTABLE: std::sync::LazyLock<std::ops::RangeInclusive<i64>> =
    std::sync::LazyLock::new(|| {
        DateTime::<Utc>::MIN_UTC.timestamp_micros()..=DateTime::<Utc>::MAX_UTC.timestamp_micros()
    });

impl Timestamp {
    /// Wraps an instant, dropping anything finer than a microsecond so that encode → decode is exact.
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        Self(at.timestamp_micros())
    }

    /// From Unix microseconds; `None` outside the calendar's range.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        REPRESENTABLE.contains(&micros).then_some(Self(micros))
    }

    /// The system clock's now (what [`crate::SystemClock`] reads).
    pub fn now() -> Self {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
        };
        Self(micros)
    }

    /// The instant.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        // Every value was checked into the calendar's range on the way in.
        DateTime::from_timestamp_micros(self.0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Unix microseconds.
    pub fn unix_micros(&self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .as_datetime()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| Timestamp::from_datetime(t.with_timezone(&Utc)))
            .map_err(|e| {
                serde::de::Error::custom(format!("invalid RFC 3339 timestamp {raw:?}: {e}"))
            })
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 UTC with microseconds"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_microseconds_in_utc() {
        let t = Timestamp::from_unix_micros(1_763_800_000_123_456).unwrap();
        assert_eq!(t.to_string(), "2025-11-22T08:26:40.123456Z");
        let back: Timestamp = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn truncates_to_microseconds_and_keeps_the_calendar_range() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T09:15:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            Timestamp::from_datetime(at).to_string(),
            "2026-11-22T09:15:00.123456Z"
        );
        let before_epoch = Timestamp::from_unix_micros(-1_500_000).unwrap();
        assert_eq!(before_epoch.to_string(), "1969-12-31T23:59:58.500000Z");
        assert!(Timestamp::from_unix_micros(i64::MAX).is_none());
        assert!(Timestamp::from_unix_micros(i64::MIN).is_none());
        let now = Timestamp::now();
        let chrono_now = Timestamp::from_datetime(Utc::now());
        assert!((chrono_now.unix_micros() - now.unix_micros()).abs() < 5_000_000);
    }
}
