//! Building strategies from configuration rows (`strategy_configurations`), and the default set.
//!
//! Strategy types: `ema_cross` (alias `momentum`) and `mean_reversion`. Parameters are a JSON object
//! (or `null` for all defaults); every key must be known to the type, and every value is checked, so a
//! typo fails loudly instead of silently running with a default.
//!
//! | type | parameters (default) |
//! |---|---|
//! | `ema_cross` | `fast` (10), `slow` (30), `quantity` (1); `0 < fast < slow` |
//! | `mean_reversion` | `window` (20, ≥ 2), `entry_z` (2.0, > 0), `exit_z` (0.0, `0 ≤ exit_z < entry_z`), `quantity` (1), `allow_short` (false) |

use alpha_panda_core::{InstrumentToken, StrategyId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{EmaCross, EmaCrossParams, MeanReversion, MeanReversionParams, Strategy};
use crate::market_feed::universe::symbol_token;

/// Why a strategy configuration cannot be built. Every variant names the strategy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategyConfigError {
    /// The strategy id is not a valid identifier.
    #[error(
        "strategy {id:?}: invalid id ({reason}); use 1-128 letters, digits, '_', '-', '.' or ':'"
    )]
    InvalidId {
        /// The configured id.
        id: String,
        /// Why it was refused.
        reason: String,
    },
    /// The type is not one this build knows.
    #[error("strategy {strategy}: unknown strategy type {strategy_type:?}; use one of: ema_cross, momentum, mean_reversion")]
    UnknownType {
        /// The strategy id.
        strategy: String,
        /// The configured type.
        strategy_type: String,
    },
    /// No instruments were configured.
    #[error("strategy {strategy}: no instruments configured; list at least one instrument token")]
    NoInstruments {
        /// The strategy id.
        strategy: String,
    },
    /// `parameters` is not a JSON object.
    #[error(
        "strategy {strategy}: parameters must be a JSON object (or null for defaults), got {got}"
    )]
    ParametersNotObject {
        /// The strategy id.
        strategy: String,
        /// The JSON kind received.
        got: &'static str,
    },
    /// A parameter key the type does not have.
    #[error("strategy {strategy}: unknown parameter {parameter:?} for type {strategy_type}; expected one of: {expected}")]
    UnknownParameter {
        /// The strategy id.
        strategy: String,
        /// The strategy type.
        strategy_type: String,
        /// The offending key.
        parameter: String,
        /// The keys the type accepts, comma-separated.
        expected: String,
    },
    /// A parameter with a wrong type or out-of-range value.
    #[error("strategy {strategy}: parameter {parameter:?} {reason}")]
    InvalidParameter {
        /// The strategy id.
        strategy: String,
        /// The offending key.
        parameter: String,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// A configuration row to seed: what `bootstrap` inserts into `strategy_configurations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrategySeed {
    /// Strategy id.
    pub id: String,
    /// `ema_cross` / `mean_reversion`.
    pub strategy_type: String,
    /// Instrument tokens traded.
    pub instruments: Vec<u32>,
    /// Type-specific parameters.
    pub parameters: Value,
    /// Whether the strategy may trade in the `zerodha` namespace (seeds: always false).
    pub zerodha_trading_enabled: bool,
}

/// Builds a strategy from a configuration row.
///
/// # Errors
/// [`StrategyConfigError`] naming the strategy (and the parameter) when the id, type, instruments or
/// any parameter is invalid.
pub fn build_strategy(
    id: &str,
    strategy_type: &str,
    instruments: &[u32],
    parameters: &Value,
) -> Result<Box<dyn Strategy>, StrategyConfigError> {
    let strategy_id = StrategyId::new(id).map_err(|e| StrategyConfigError::InvalidId {
        id: id.to_string(),
        reason: e.reason.to_string(),
    })?;
    if instruments.is_empty() {
        return Err(StrategyConfigError::NoInstruments {
            strategy: id.to_string(),
        });
    }
    let mut tokens: Vec<InstrumentToken> =
        instruments.iter().copied().map(InstrumentToken).collect();
    tokens.sort();
    tokens.dedup();
    let params = Params::new(id, strategy_type, parameters)?;
    match strategy_type {
        "ema_cross" | "momentum" => {
            let p = ema_cross_params(params)?;
            Ok(Box::new(EmaCross::new(strategy_id, tokens, p)))
        }
        "mean_reversion" => {
            let p = mean_reversion_params(params)?;
            Ok(Box::new(MeanReversion::new(strategy_id, tokens, p)))
        }
        other => Err(StrategyConfigError::UnknownType {
            strategy: id.to_string(),
            strategy_type: other.to_string(),
        }),
    }
}

/// The strategies seeded on a fresh install: two momentum (`ema_cross`) and two mean-reversion
/// strategies over liquid names of the bundled universe, paper only.
pub fn default_strategy_set() -> Vec<StrategySeed> {
    let tokens =
        |symbols: &[&str]| -> Vec<u32> { symbols.iter().filter_map(|s| symbol_token(s)).collect() };
    vec![
        StrategySeed {
            id: "momentum_large_caps".into(),
            strategy_type: "ema_cross".into(),
            instruments: tokens(&["RELIANCE", "HDFCBANK", "INFY", "TCS", "ICICIBANK"]),
            parameters: serde_json::json!({"fast": 10, "slow": 30, "quantity": 1}),
            zerodha_trading_enabled: false,
        },
        StrategySeed {
            id: "momentum_fast_banks".into(),
            strategy_type: "ema_cross".into(),
            instruments: tokens(&["SBIN", "AXISBANK", "KOTAKBANK", "INDUSINDBK"]),
            parameters: serde_json::json!({"fast": 5, "slow": 20, "quantity": 2}),
            zerodha_trading_enabled: false,
        },
        StrategySeed {
            id: "mean_reversion_it".into(),
            strategy_type: "mean_reversion".into(),
            instruments: tokens(&["INFY", "WIPRO", "HCLTECH", "TECHM"]),
            parameters: serde_json::json!({"window": 20, "entry_z": 2.0, "exit_z": 0.0, "quantity": 1}),
            zerodha_trading_enabled: false,
        },
        StrategySeed {
            id: "mean_reversion_consumer".into(),
            strategy_type: "mean_reversion".into(),
            instruments: tokens(&["ITC", "HINDUNILVR", "NESTLEIND", "BRITANNIA"]),
            parameters: serde_json::json!({"window": 30, "entry_z": 2.5, "exit_z": 0.5, "quantity": 1, "allow_short": true}),
            zerodha_trading_enabled: false,
        },
    ]
}

/// A parameters object being consumed key by key.
struct Params<'a> {
    strategy: &'a str,
    strategy_type: &'a str,
    map: Map<String, Value>,
}

impl<'a> Params<'a> {
    fn new(
        strategy: &'a str,
        strategy_type: &'a str,
        value: &Value,
    ) -> Result<Self, StrategyConfigError> {
        let map = match value {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            other => {
                return Err(StrategyConfigError::ParametersNotObject {
                    strategy: strategy.to_string(),
                    got: json_kind(other),
                })
            }
        };
        Ok(Self {
            strategy,
            strategy_type,
            map,
        })
    }

    fn invalid(&self, parameter: &str, reason: impl Into<String>) -> StrategyConfigError {
        StrategyConfigError::InvalidParameter {
            strategy: self.strategy.to_string(),
            parameter: parameter.to_string(),
            reason: reason.into(),
        }
    }

    /// Fails on the first key not in `known`.
    fn only(&self, known: &[&str]) -> Result<(), StrategyConfigError> {
        match self.map.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(StrategyConfigError::UnknownParameter {
                strategy: self.strategy.to_string(),
                strategy_type: self.strategy_type.to_string(),
                parameter: k.clone(),
                expected: known.join(", "),
            }),
            None => Ok(()),
        }
    }

    fn u32_or(&self, key: &str, default: u32) -> Result<u32, StrategyConfigError> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    self.invalid(key, format!("must be a non-negative whole number, got {v}"))
                }),
        }
    }

    fn f64_or(&self, key: &str, default: f64) -> Result<f64, StrategyConfigError> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| self.invalid(key, format!("must be a finite number, got {v}"))),
        }
    }

    fn bool_or(&self, key: &str, default: bool) -> Result<bool, StrategyConfigError> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.invalid(key, format!("must be true or false, got {v}"))),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn ema_cross_params(p: Params<'_>) -> Result<EmaCrossParams, StrategyConfigError> {
    p.only(&["fast", "slow", "quantity"])?;
    let d = EmaCrossParams::default();
    let out = EmaCrossParams {
        fast: p.u32_or("fast", d.fast)?,
        slow: p.u32_or("slow", d.slow)?,
        quantity: p.u32_or("quantity", d.quantity)?,
    };
    if out.fast == 0 {
        return Err(p.invalid("fast", "must be at least 1"));
    }
    if out.fast >= out.slow {
        return Err(p.invalid(
            "fast",
            format!("({}) must be smaller than slow ({})", out.fast, out.slow),
        ));
    }
    if out.quantity == 0 {
        return Err(p.invalid("quantity", "must be at least 1"));
    }
    Ok(out)
}

fn mean_reversion_params(p: Params<'_>) -> Result<MeanReversionParams, StrategyConfigError> {
    p.only(&["window", "entry_z", "exit_z", "quantity", "allow_short"])?;
    let d = MeanReversionParams::default();
    let out = MeanReversionParams {
        window: p.u32_or("window", d.window)?,
        entry_z: p.f64_or("entry_z", d.entry_z)?,
        exit_z: p.f64_or("exit_z", d.exit_z)?,
        quantity: p.u32_or("quantity", d.quantity)?,
        allow_short: p.bool_or("allow_short", d.allow_short)?,
    };
    if out.window < 2 {
        return Err(p.invalid("window", format!("({}) must be at least 2", out.window)));
    }
    if out.entry_z <= 0.0 {
        return Err(p.invalid("entry_z", format!("({}) must be positive", out.entry_z)));
    }
    if out.exit_z < 0.0 || out.exit_z >= out.entry_z {
        return Err(p.invalid(
            "exit_z",
            format!(
                "({}) must be at least 0 and smaller than entry_z ({})",
                out.exit_z, out.entry_z
            ),
        ));
    }
    if out.quantity == 0 {
        return Err(p.invalid("quantity", "must be at least 1"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_both_types_with_defaults() {
        let s = build_strategy("m1", "ema_cross", &[738561, 408065, 738561], &Value::Null).unwrap();
        assert_eq!(s.id().as_str(), "m1");
        assert_eq!(
            s.instruments(),
            &[InstrumentToken(408065), InstrumentToken(738561)]
        );
        assert!(build_strategy("mr", "mean_reversion", &[1], &json!({})).is_ok());
        assert!(build_strategy("mo", "momentum", &[1], &json!({"fast": 3, "slow": 7})).is_ok());
    }

    #[test]
    fn unknown_type_names_the_strategy() {
        let err = build_strategy("s1", "arbitrage", &[1], &Value::Null)
            .err()
            .unwrap();
        assert!(matches!(err, StrategyConfigError::UnknownType { .. }));
        assert!(err.to_string().contains("s1") && err.to_string().contains("arbitrage"));
    }

    #[test]
    fn unknown_parameter_names_it() {
        let err = build_strategy("s1", "ema_cross", &[1], &json!({"fats": 5}))
            .err()
            .unwrap();
        assert_eq!(
            err,
            StrategyConfigError::UnknownParameter {
                strategy: "s1".into(),
                strategy_type: "ema_cross".into(),
                parameter: "fats".into(),
                expected: "fast, slow, quantity".into(),
            }
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let cases = [
            ("ema_cross", json!({"fast": 30, "slow": 10}), "fast"),
            ("ema_cross", json!({"fast": "ten"}), "fast"),
            ("ema_cross", json!({"quantity": 0}), "quantity"),
            ("ema_cross", json!({"slow": -3}), "slow"),
            ("mean_reversion", json!({"window": 1}), "window"),
            (
                "mean_reversion",
                json!({"entry_z": 1.0, "exit_z": 1.0}),
                "exit_z",
            ),
            (
                "mean_reversion",
                json!({"allow_short": "yes"}),
                "allow_short",
            ),
        ];
        for (ty, params, name) in cases {
            match build_strategy("s2", ty, &[1], &params).err().unwrap() {
                StrategyConfigError::InvalidParameter {
                    strategy,
                    parameter,
                    ..
                } => {
                    assert_eq!(strategy, "s2");
                    assert_eq!(parameter, name, "{params}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn structural_errors() {
        assert!(matches!(
            build_strategy("bad id", "ema_cross", &[1], &Value::Null)
                .err()
                .unwrap(),
            StrategyConfigError::InvalidId { .. }
        ));
        assert!(matches!(
            build_strategy("s", "ema_cross", &[], &Value::Null)
                .err()
                .unwrap(),
            StrategyConfigError::NoInstruments { .. }
        ));
        assert!(matches!(
            build_strategy("s", "ema_cross", &[1], &json!([1]))
                .err()
                .unwrap(),
            StrategyConfigError::ParametersNotObject {
                got: "an array",
                ..
            }
        ));
    }

    #[test]
    fn default_set_builds_and_is_paper_only() {
        let set = default_strategy_set();
        assert_eq!(set.len(), 4);
        assert_eq!(
            set.iter()
                .filter(|s| s.strategy_type == "ema_cross")
                .count(),
            2
        );
        for seed in &set {
            assert!(!seed.zerodha_trading_enabled);
            assert!(seed.instruments.len() >= 4, "{} lost instruments", seed.id);
            build_strategy(
                &seed.id,
                &seed.strategy_type,
                &seed.instruments,
                &seed.parameters,
            )
            .unwrap();
        }
    }
}
