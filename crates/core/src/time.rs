//! The envelope timestamp: RFC 3339 in UTC with exactly microsecond precision.

use std::fmt;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant, truncated to microseconds, written like `2026-11-22T09:15:00.123456Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Wraps an instant, dropping anything finer than a microsecond so that encode → decode is exact.
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        Self(at.trunc_subsecs(6))
    }

    /// From Unix microseconds.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        DateTime::from_timestamp_micros(micros).map(Self)
    }

    /// The instant.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Unix microseconds.
    pub fn unix_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
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
}
