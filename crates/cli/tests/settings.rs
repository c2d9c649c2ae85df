//! Settings: layering (defaults → file → environment), unknown keys named, guards refuse unsafe
//! combinations, and provenance says where each value came from.

// figment::Jail closures return figment::Error, whose size is not ours to choose.
#![allow(clippy::result_large_err)]

use std::path::Path;

use alpha_panda::settings::{Settings, SettingsError};
use alpha_panda_core::{Broker, Environment};
use figment::Jail;

#[test]
fn defaults_need_no_configuration_at_all() {
    Jail::expect_with(|_jail| {
        let loaded = Settings::load(None).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.environment, Environment::Development);
        assert_eq!(s.brokers, vec![Broker::Paper]);
        assert_eq!(s.log.url, "memory://");
        assert_eq!(s.cache.url, "memory://");
        assert!(s.database_url().starts_with("sqlite://"));
        s.guard().unwrap();
        Ok(())
    });
}

#[test]
fn file_overrides_defaults_and_environment_overrides_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "alpha-panda.toml",
            r#"
            brokers = ["paper", "zerodha"]
            [log]
            url = "kafka://127.0.0.1:9092"
            [runtime]
            max_retries = 3
            "#,
        )?;
        jail.set_env("ALPHA_PANDA__RUNTIME__MAX_RETRIES", "7");
        let loaded = Settings::load(None).unwrap();
        assert_eq!(
            loaded.settings.brokers,
            vec![Broker::Paper, Broker::Zerodha]
        );
        assert_eq!(loaded.settings.log.url, "kafka://127.0.0.1:9092");
        assert_eq!(loaded.settings.runtime.max_retries, 7);

        let provenance = loaded.provenance();
        let source = |key: &str| {
            provenance
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.source.clone())
                .unwrap()
        };
        assert_eq!(source("log.url"), "file alpha-panda.toml");
        assert_eq!(
            source("runtime.max_retries"),
            "environment ALPHA_PANDA__RUNTIME__MAX_RETRIES"
        );
        assert_eq!(source("cache.url"), "default");
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file("alpha-panda.toml", "[log]\nurll = \"memory://\"\n")?;
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("log.urll"), "{err}");
        assert!(err.contains("alpha-panda.toml"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ALPHA_PANDA__CACHE__HOST", "x");
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("cache.host"), "{err}");
        assert!(err.contains("ALPHA_PANDA__CACHE__HOST"), "{err}");
        Ok(())
    });
}

#[test]
fn wrong_types_and_bad_values_name_the_key() {
    Jail::expect_with(|jail| {
        jail.set_env("ALPHA_PANDA__ENVIRONMENT", "staging");
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("environment"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file("alpha-panda.toml", "brokers = [\"live\"]\n")?;
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("brokers"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file("alpha-panda.toml", "brokers = []\n")?;
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("brokers"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ALPHA_PANDA__ZERODHA__MARKET_PROTECTION", "0");
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("zerodha.market_protection"), "{err}");
        assert!(err.contains("-1"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file("alpha-panda.toml", "[zerodha]\nmarket_protection = 2.5\n")?;
        let settings = Settings::load(None).unwrap();
        assert_eq!(
            settings.settings.zerodha.market_protection.to_string(),
            "2.5"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file(
            "alpha-panda.toml",
            "[zerodha]\nfreeze_quantities = { NIFTY = 1800, BANKNIFTY = 0 }\n",
        )?;
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("zerodha.freeze_quantities.BANKNIFTY"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file(
            "alpha-panda.toml",
            "[zerodha]\nfreeze_quantities = { NIFTY = 1800 }\ncontract_notes = false\n",
        )?;
        let zerodha = Settings::load(None).unwrap().settings.zerodha;
        assert_eq!(zerodha.freeze_quantities.get("NIFTY"), Some(&1800));
        assert!(!zerodha.contract_notes);
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ALPHA_PANDA__API__TOKEN_TTL", "1s");
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("api.token_ttl"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file(
            "alpha-panda.toml",
            "[api]\ncors_origins = [\"ops.example.com\"]\n",
        )?;
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("api.cors_origins"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file(
            "alpha-panda.toml",
            "[api]\nbind = \"0.0.0.0:9000\"\njwt_secret = \"x\"\n",
        )?;
        let loaded = Settings::load(None).unwrap();
        assert_eq!(loaded.settings.api.bind.port(), 9000);
        // Development serves with any secret; production refuses a short one, naming the key.
        assert!(loaded.settings.guard_api().is_ok());
        let mut production = loaded.settings.clone();
        production.environment = alpha_panda_core::Environment::Production;
        let err = production.guard_api().unwrap_err().to_string();
        assert!(err.contains("api.jwt_secret"), "{err}");
        production.api.jwt_secret = "x".repeat(40);
        production.api.cors_origins = vec!["*".into()];
        let err = production.guard_api().unwrap_err().to_string();
        assert!(err.contains("api.cors_origins"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ALPHA_PANDA__LOG__MEMORY_RETENTION_RECORDS", "0");
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("log.memory_retention_records"), "{err}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file(
            "alpha-panda.toml",
            "[log]\nmemory_retention = \"1h\"\nmemory_retention_bytes = 1000\n",
        )?;
        let err = Settings::load(None).err().unwrap().to_string();
        assert!(err.contains("log.memory_retention_bytes"), "{err}");
        Ok(())
    });
}

#[test]
fn an_explicit_missing_file_is_an_error() {
    Jail::expect_with(|_jail| {
        let err = Settings::load(Some(Path::new("nope.toml"))).err().unwrap();
        assert!(matches!(err, SettingsError::MissingFile(_)));
        Ok(())
    });
}

#[test]
fn production_refuses_an_in_memory_log() {
    Jail::expect_with(|jail| {
        jail.set_env("ALPHA_PANDA__ENVIRONMENT", "production");
        let loaded = Settings::load(None).unwrap();
        let err = loaded.settings.guard().unwrap_err().to_string();
        assert!(err.contains("log.url"), "{err}");
        Ok(())
    });
}

#[test]
fn production_refuses_a_default_database_password() {
    Jail::expect_with(|jail| {
        jail.set_env("ALPHA_PANDA__ENVIRONMENT", "production");
        jail.set_env("ALPHA_PANDA__LOG__URL", "kafka://k:9092");
        jail.set_env("ALPHA_PANDA__CACHE__URL", "redis://cache:6379");
        jail.set_env(
            "ALPHA_PANDA__DATABASE__URL",
            "postgres://app:postgres@db/alpha",
        );
        let err = Settings::load(None).unwrap().settings.guard().unwrap_err();
        assert!(err.to_string().contains("database.url"), "{err}");
        jail.set_env(
            "ALPHA_PANDA__DATABASE__URL",
            "postgres://app:s3cr3t-long@db/alpha",
        );
        Settings::load(None).unwrap().settings.guard().unwrap();
        Ok(())
    });
}

#[test]
fn production_refuses_a_memory_cache_with_a_kafka_log() {
    Jail::expect_with(|jail| {
        jail.set_env("ALPHA_PANDA__ENVIRONMENT", "production");
        jail.set_env("ALPHA_PANDA__LOG__URL", "kafka://k:9092");
        jail.set_env(
            "ALPHA_PANDA__DATABASE__URL",
            "postgres://app:s3cr3t-long@db/alpha",
        );
        let err = Settings::load(None).unwrap().settings.guard().unwrap_err();
        assert!(err.to_string().contains("cache.url is memory://"), "{err}");
        jail.set_env("ALPHA_PANDA__CACHE__URL", "redis://cache:6379");
        Settings::load(None).unwrap().settings.guard().unwrap();
        Ok(())
    });
}

#[test]
fn provenance_never_shows_secrets() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "ALPHA_PANDA__DATABASE__URL",
            "postgres://app:hunter2@db/alpha",
        );
        let loaded = Settings::load(None).unwrap();
        let shown = serde_json::to_string(&loaded.provenance()).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://app:***@db/alpha"), "{shown}");
        Ok(())
    });
}

#[test]
fn zerodha_without_credentials_refuses_to_start_in_every_environment() {
    for environment in ["development", "testing", "production"] {
        Jail::expect_with(|jail| {
            jail.create_file(
                "alpha-panda.toml",
                &format!(
                    "environment = \"{environment}\"\nbrokers = [\"paper\", \"zerodha\"]\n\
                     [log]\nurl = \"kafka://127.0.0.1:9092\"\n[zerodha]\napi_key = \"kitekey\"\n"
                ),
            )?;
            let loaded = Settings::load(None).unwrap();
            let err = loaded.settings.guard().err().unwrap();
            assert!(
                matches!(err, SettingsError::Refused(_)),
                "{environment}: {err}"
            );
            let text = err.to_string();
            assert!(text.contains("zerodha.api_secret"), "{environment}: {text}");
            assert!(
                !text.contains("zerodha.api_key and"),
                "{environment}: {text}"
            );
            Ok(())
        });
    }
    Jail::expect_with(|jail| {
        jail.create_file("alpha-panda.toml", "brokers = [\"zerodha\"]\n")?;
        let text = Settings::load(None)
            .unwrap()
            .settings
            .guard()
            .err()
            .unwrap()
            .to_string();
        assert!(
            text.contains("zerodha.api_key and zerodha.api_secret"),
            "{text}"
        );
        assert!(text.contains("ALPHA_PANDA__ZERODHA__API_SECRET"), "{text}");
        Ok(())
    });
}

#[test]
fn zerodha_with_credentials_passes_and_paper_alone_needs_none() {
    Jail::expect_with(|jail| {
        jail.create_file("alpha-panda.toml", "brokers = [\"paper\", \"zerodha\"]\n")?;
        jail.set_env("ALPHA_PANDA__ZERODHA__API_KEY", "kitekey");
        jail.set_env("ALPHA_PANDA__ZERODHA__API_SECRET", "kitesecret");
        let loaded = Settings::load(None).unwrap();
        loaded.settings.guard().unwrap();
        assert_eq!(loaded.settings.zerodha.product, "MIS");
        let secret = loaded
            .provenance()
            .into_iter()
            .find(|p| p.key == "zerodha.api_secret")
            .unwrap();
        assert_eq!(secret.value, "<redacted>");
        Ok(())
    });
    Jail::expect_with(|_jail| {
        Settings::load(None).unwrap().settings.guard().unwrap();
        Ok(())
    });
}
