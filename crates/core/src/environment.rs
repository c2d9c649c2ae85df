//! The deployment environment, which selects topic-spec overlays and production guards.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where Alpha Panda runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// A developer's machine: RF 1, migrations applied at start-up.
    #[default]
    Development,
    /// CI and test runs: like development.
    Testing,
    /// Real money: RF ≥ 3, guards that refuse unsafe settings.
    Production,
}

impl Environment {
    /// The configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Testing => "testing",
            Environment::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "development" => Ok(Environment::Development),
            "testing" => Ok(Environment::Testing),
            "production" => Ok(Environment::Production),
            other => Err(format!(
                "unknown environment {other:?}: expected development, testing or production"
            )),
        }
    }
}
