//! Decoding an envelope without buffering it.
//!
//! The wire object is flat: the envelope's fields beside the payload's `type` and `data`
//! (ARCHITECTURE §2), which the struct spells with `#[serde(flatten)]`. A derived decoder for a
//! flattened struct first copies the whole object into an intermediate tree and only then reads
//! the fields out of it: on Kafka, where every consumer decodes every record, that copy was a
//! quarter of the process's time. This decoder reads the fields in place; `data` is decoded
//! straight into its variant when `type` came before it, as it always does in what we write, and
//! is held as a JSON value only when another writer put it first. What it accepts and refuses,
//! and its messages, are the derived decoder's (missing and unknown variants are told by
//! [`Payload`]'s own decoder; the tests compare the two); unknown keys are ignored, and a key
//! given twice is refused.

use std::fmt;
use std::sync::Arc;

use serde::de::value::{MapAccessDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess};
use serde::Deserialize;

use super::Envelope;
use crate::{CorrelationId, EventBroker, EventId, Payload, Timestamp};

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    Id,
    CorrelationId,
    CausationId,
    TraceId,
    Broker,
    Ts,
    Key,
    Source,
    Version,
    Type,
    Data,
    #[serde(other)]
    Unknown,
}

struct EnvelopeVisitor;

/// Sets a field once; a second occurrence of its key is an error, as the derived decoder says.
fn once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), &'static str> {
    if slot.replace(value).is_some() {
        return Err(name);
    }
    Ok(())
}

impl<'de> de::Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut id: Option<EventId> = None;
        let mut correlation_id: Option<CorrelationId> = None;
        let mut causation_id: Option<Option<EventId>> = None;
        let mut trace_id: Option<Arc<str>> = None;
        let mut broker: Option<EventBroker> = None;
        let mut ts: Option<Timestamp> = None;
        let mut key: Option<String> = None;
        let mut source: Option<Arc<str>> = None;
        let mut version: Option<u32> = None;
        let mut event_type: Option<String> = None;
        let mut payload: Option<Payload> = None;
        // `data` seen before `type`: held until the type says what it is.
        let mut early_data: Option<serde_json::Value> = None;
        while let Some(field) = map.next_key::<Field>()? {
            let set = match field {
                Field::Id => once(&mut id, map.next_value()?, "id"),
                Field::CorrelationId => {
                    once(&mut correlation_id, map.next_value()?, "correlation_id")
                }
                Field::CausationId => once(&mut causation_id, map.next_value()?, "causation_id"),
                Field::TraceId => once(&mut trace_id, map.next_value()?, "trace_id"),
                Field::Broker => once(&mut broker, map.next_value()?, "broker"),
                Field::Ts => once(&mut ts, map.next_value()?, "ts"),
                Field::Key => once(&mut key, map.next_value()?, "key"),
                Field::Source => once(&mut source, map.next_value()?, "source"),
                Field::Version => once(&mut version, map.next_value()?, "version"),
                Field::Type => once(&mut event_type, map.next_value()?, "type"),
                Field::Data => match &event_type {
                    Some(tag) if payload.is_none() => {
                        payload = Some(map.next_value_seed(PayloadOf { tag })?);
                        Ok(())
                    }
                    Some(_) => Err("data"),
                    None => once(&mut early_data, map.next_value()?, "data"),
                },
                Field::Unknown => {
                    map.next_value::<IgnoredAny>()?;
                    Ok(())
                }
            };
            set.map_err(de::Error::duplicate_field)?;
        }
        let event_type = event_type.ok_or_else(|| de::Error::missing_field("type"))?;
        let payload = match (payload, early_data) {
            (Some(payload), _) => payload,
            (None, Some(data)) => PayloadOf { tag: &event_type }
                .deserialize(data)
                .map_err(de::Error::custom)?,
            // The payload's own decoder says what is missing (or that the type is unknown).
            (None, None) => Payload::deserialize(MapAccessDeserializer::new(TaggedPayload::<
                StrDeserializer<'_, A::Error>,
            > {
                tag: &event_type,
                data: None,
                next: 0,
            }))?,
        };
        Ok(Envelope {
            id: id.ok_or_else(|| de::Error::missing_field("id"))?,
            correlation_id: correlation_id
                .ok_or_else(|| de::Error::missing_field("correlation_id"))?,
            causation_id: causation_id.flatten(),
            trace_id: trace_id.ok_or_else(|| de::Error::missing_field("trace_id"))?,
            broker: broker.ok_or_else(|| de::Error::missing_field("broker"))?,
            ts: ts.ok_or_else(|| de::Error::missing_field("ts"))?,
            key: key.ok_or_else(|| de::Error::missing_field("key"))?,
            source: source.ok_or_else(|| de::Error::missing_field("source"))?,
            version: version.ok_or_else(|| de::Error::missing_field("version"))?,
            payload,
        })
    }
}

/// Decodes `data` as the payload `tag` names, by handing [`Payload`]'s own decoder the object it
/// expects: `type`, then `data` read from where it stands.
struct PayloadOf<'a> {
    tag: &'a str,
}

impl<'de> DeserializeSeed<'de> for PayloadOf<'_> {
    type Value = Payload;

    fn deserialize<D: Deserializer<'de>>(self, data: D) -> Result<Payload, D::Error> {
        Payload::deserialize(MapAccessDeserializer::new(TaggedPayload {
            tag: self.tag,
            data: Some(data),
            next: 0,
        }))
    }
}

/// `{"type": tag, "data": …}`, the second value being whatever `data` deserializes (left out when
/// there is none).
struct TaggedPayload<'a, D> {
    tag: &'a str,
    data: Option<D>,
    next: u8,
}

impl<'de, D: Deserializer<'de>> MapAccess<'de> for TaggedPayload<'_, D> {
    type Error = D::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, D::Error> {
        let key = match self.next {
            0 => "type",
            1 if self.data.is_some() => "data",
            _ => return Ok(None),
        };
        seed.deserialize(IntoDeserializer::<D::Error>::into_deserializer(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, D::Error> {
        self.next += 1;
        if self.next == 1 {
            return seed.deserialize(IntoDeserializer::<D::Error>::into_deserializer(self.tag));
        }
        match self.data.take() {
            Some(data) => seed.deserialize(data),
            None => Err(de::Error::custom("a payload value was asked for twice")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// What the derived decoder of the flattened struct made of the same bytes.
    #[derive(Deserialize)]
    struct Flattened {
        id: EventId,
        correlation_id: CorrelationId,
        causation_id: Option<EventId>,
        trace_id: Arc<str>,
        broker: EventBroker,
        ts: Timestamp,
        key: String,
        source: Arc<str>,
        version: u32,
        #[serde(flatten)]
        payload: Payload,
    }

    /// A change to a valid envelope's JSON.
    type Mutation = Box<dyn Fn(&mut Value)>;

    fn sample() -> Value {
        json!({
            "id": "0190a6b2-7c4e-7000-8000-000000000001",
            "correlation_id": "0190a6b2-7c4e-7000-8000-000000000001",
            "causation_id": null,
            "trace_id": "0190a6b27c4e70008000000000000001",
            "broker": "shared",
            "ts": "2026-04-01T09:15:00.000001Z",
            "key": "408065",
            "source": "market_feed",
            "version": 2,
            "type": "market_tick",
            "data": {
                "instrument_token": 408065,
                "last_price": "1510.35",
                "exchange_timestamp": "2026-04-01T09:15:00Z"
            }
        })
    }

    fn both(value: &Value) -> (Result<Envelope, String>, Result<Envelope, String>) {
        let bytes = serde_json::to_vec(value).expect("json");
        let ours = serde_json::from_slice::<Envelope>(&bytes).map_err(|e| e.to_string());
        let derived = serde_json::from_slice::<Flattened>(&bytes)
            .map(|f| Envelope {
                id: f.id,
                correlation_id: f.correlation_id,
                causation_id: f.causation_id,
                trace_id: f.trace_id,
                broker: f.broker,
                ts: f.ts,
                key: f.key,
                source: f.source,
                version: f.version,
                payload: f.payload,
            })
            .map_err(|e| e.to_string());
        (ours, derived)
    }

    #[test]
    fn decodes_what_it_encodes_field_for_field() {
        let (ours, derived) = both(&sample());
        let ours = ours.expect("decodes");
        assert_eq!(Ok(ours.clone()), derived);
        let again: Envelope = serde_json::from_slice(&ours.to_json()).expect("round trip");
        assert_eq!(again, ours);
    }

    #[test]
    fn data_before_type_and_unknown_keys_decode_as_before() {
        let mut value = sample();
        let data = value["data"].take();
        let object = value.as_object_mut().expect("object");
        object.remove("data");
        let mut reordered = serde_json::Map::new();
        reordered.insert("data".into(), data);
        reordered.insert("extra".into(), json!({"nested": [1, 2]}));
        reordered.extend(object.clone());
        let (ours, derived) = both(&Value::Object(reordered));
        assert!(ours.is_ok(), "{ours:?}");
        assert_eq!(ours, derived);
    }

    #[test]
    fn refuses_what_the_derived_decoder_refuses() {
        let mutations: Vec<Mutation> = vec![
            Box::new(|v| {
                v.as_object_mut().expect("object").remove("type");
            }),
            Box::new(|v| {
                v.as_object_mut().expect("object").remove("data");
            }),
            Box::new(|v| {
                v.as_object_mut().expect("object").remove("id");
            }),
            Box::new(|v| v["type"] = json!("no_such_event")),
            Box::new(|v| v["data"]["last_price"] = json!("not a price")),
            Box::new(|v| v["ts"] = json!(17)),
            Box::new(|v| {
                v.as_object_mut().expect("object").remove("causation_id");
            }),
        ];
        for (n, mutate) in mutations.iter().enumerate() {
            let mut value = sample();
            mutate(&mut value);
            let (ours, derived) = both(&value);
            assert_eq!(
                ours.is_ok(),
                derived.is_ok(),
                "mutation {n}: {ours:?} vs {derived:?}"
            );
            if let (Err(ours), Err(derived)) = (&ours, &derived) {
                // Positions may differ (the derived decoder reports them from its copy).
                let message = |m: &str| m.split(" at line").next().unwrap_or(m).to_string();
                assert_eq!(message(ours), message(derived), "mutation {n}");
            }
        }
    }
}
