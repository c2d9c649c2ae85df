//! JSON Schemas of the envelope and every payload, generated from the Rust types.
//!
//! The checked-in copies under `schemas/` are compared with these by a test, so the wire contract
//! cannot drift silently from the code.

use schemars::{schema_for, Schema};

use crate::{
    Alert, DlqMessage, Envelope, MarketTick, OrderAck, OrderFailed, OrderFilled, OrderSubmitted,
    PnlSnapshot, RejectedSignal, SignalAtTarget, TradingSignal, ValidatedSignal,
};

/// `(file name, schema)` for the envelope and each payload.
pub fn all_schemas() -> Vec<(&'static str, Schema)> {
    vec![
        ("envelope.json", schema_for!(Envelope)),
        ("market_tick.json", schema_for!(MarketTick)),
        ("trading_signal.json", schema_for!(TradingSignal)),
        ("validated_signal.json", schema_for!(ValidatedSignal)),
        ("rejected_signal.json", schema_for!(RejectedSignal)),
        ("signal_at_target.json", schema_for!(SignalAtTarget)),
        ("order_submitted.json", schema_for!(OrderSubmitted)),
        ("order_ack.json", schema_for!(OrderAck)),
        ("order_filled.json", schema_for!(OrderFilled)),
        ("order_failed.json", schema_for!(OrderFailed)),
        ("pnl_snapshot.json", schema_for!(PnlSnapshot)),
        ("dlq_message.json", schema_for!(DlqMessage)),
        ("alert.json", schema_for!(Alert)),
    ]
}

/// A schema as the pretty JSON text that is checked in (with a trailing newline).
pub fn render(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
