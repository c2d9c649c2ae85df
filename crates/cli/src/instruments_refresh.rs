//! The instruments master kept current while `zerodha` is active: downloaded from Kite
//! (`GET /instruments`) and upserted into the store at start-up of `run`, then again whenever the
//! IST trading day changes. A failed refresh is logged and retried at the next check; it never
//! stops the run.

use std::sync::Arc;
use std::time::Duration;

use alpha_panda_core::calendar::trading_day;
use alpha_panda_core::Clock;
use alpha_panda_kite::KiteClient;
use alpha_panda_store::Store;
use anyhow::Context;
use chrono::NaiveDate;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often a running process checks whether the trading day changed (or retries a failed
/// refresh).
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Downloads Kite's instruments master and upserts it into `instruments`; returns the rows
/// written.
///
/// # Errors
/// When Kite cannot be reached or refuses the session, the dump cannot be parsed, or the store
/// cannot be written (nothing is written then).
pub async fn refresh_instruments(client: &KiteClient, store: &Store) -> anyhow::Result<u64> {
    let rows = client
        .instruments()
        .await
        .context("could not download the instruments master from Kite")?;
    let written = store
        .instruments()
        .upsert_many(&rows)
        .await
        .context("could not write the instruments table")?;
    Ok(written)
}

/// Refreshes the instruments master once per IST trading day.
pub struct DailyInstrumentsRefresh {
    client: Arc<KiteClient>,
    store: Store,
    clock: Arc<dyn Clock>,
    refreshed_on: Option<NaiveDate>,
}

impl DailyInstrumentsRefresh {
    /// A refresher that has not refreshed yet (its first check downloads).
    pub fn new(client: Arc<KiteClient>, store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            store,
            clock,
            refreshed_on: None,
        }
    }

    /// The IST trading day of the last successful refresh.
    pub fn refreshed_on(&self) -> Option<NaiveDate> {
        self.refreshed_on
    }

    /// Downloads and upserts the master unless it was already refreshed this IST trading day.
    /// Returns the rows written, or `None` when today's refresh is already done.
    ///
    /// # Errors
    /// What [`refresh_instruments`] reports; the day is not marked done, so the next call tries
    /// again.
    pub async fn refresh_if_new_day(&mut self) -> anyhow::Result<Option<u64>> {
        let today = trading_day(self.clock.now());
        if self.refreshed_on == Some(today) {
            return Ok(None);
        }
        let written = refresh_instruments(&self.client, &self.store).await?;
        self.refreshed_on = Some(today);
        info!(rows = written, trading_day = %today, "instruments master refreshed from Kite");
        Ok(Some(written))
    }

    /// Checks every `check_every` until `stop` is cancelled, refreshing on each new trading day
    /// and retrying after a failure. Failures are logged, never returned.
    pub async fn run(mut self, check_every: Duration, stop: CancellationToken) {
        let mut timer = tokio::time::interval(check_every.max(Duration::from_millis(1)));
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = timer.tick() => {}
            }
            let refresh = tokio::select! {
                _ = stop.cancelled() => return,
                refresh = self.refresh_if_new_day() => refresh,
            };
            if let Err(e) = refresh {
                warn!(error = format!("{e:#}"), retry_in = ?check_every,
                    "instruments refresh failed; the run continues with the stored master");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alpha_panda_core::{ManualClock, Timestamp};
    use alpha_panda_kite::fake::{FakeKite, FakeKiteConfig};

    async fn fixture() -> (FakeKite, Arc<KiteClient>, Store, tempfile::TempDir) {
        let fake = FakeKite::start(FakeKiteConfig::default()).await.unwrap();
        let client = KiteClient::new(&fake.settings())
            .unwrap()
            .with_access_token(fake.config().access_token.clone());
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        (fake, Arc::new(client), store, dir)
    }

    /// 2026-01-05 09:00 IST.
    fn monday_morning() -> Timestamp {
        Timestamp::from_datetime(
            chrono::DateTime::parse_from_rfc3339("2026-01-05T09:00:00+05:30")
                .unwrap()
                .with_timezone(&chrono::Utc),
        )
    }

    #[tokio::test]
    async fn refreshes_once_per_ist_trading_day_and_retries_after_a_failure() {
        let (fake, client, store, _dir) = fixture().await;
        let clock = Arc::new(ManualClock::new(monday_morning()));
        let mut refresh = DailyInstrumentsRefresh::new(client, store.clone(), clock.clone());

        assert_eq!(refresh.refresh_if_new_day().await.unwrap(), Some(4));
        assert_eq!(store.instruments().count().await.unwrap(), 4);
        let sbin = store.instruments().by_token(779521).await.unwrap().unwrap();
        assert_eq!(
            (sbin.exchange.as_str(), sbin.tradingsymbol.as_str()),
            ("NSE", "SBIN")
        );
        let requests = fake.requests();

        // Later the same IST day (23:59): nothing is downloaded.
        clock.advance(Duration::from_secs(14 * 3600 + 59 * 60));
        assert_eq!(refresh.refresh_if_new_day().await.unwrap(), None);
        assert_eq!(fake.requests(), requests);

        // 00:00 IST the next day: Kite fails once, the day stays undone, the retry succeeds.
        clock.advance(Duration::from_secs(60));
        fake.fail_next(400, "InputException", "instruments dump not ready");
        let error = refresh.refresh_if_new_day().await.unwrap_err();
        assert!(
            format!("{error:#}").contains("instruments dump not ready"),
            "{error:#}"
        );
        assert_eq!(refresh.refreshed_on(), Some(trading_day(monday_morning())));
        assert_eq!(refresh.refresh_if_new_day().await.unwrap(), Some(4));
        assert_eq!(
            refresh.refreshed_on(),
            trading_day(monday_morning()).succ_opt()
        );
        assert_eq!(store.instruments().count().await.unwrap(), 4);
    }

    #[tokio::test]
    async fn the_running_task_survives_failures_and_retries_until_it_refreshes() {
        let (fake, client, store, _dir) = fixture().await;
        let clock = Arc::new(ManualClock::new(monday_morning()));
        // The session is refused at first: the task logs and keeps checking.
        fake.expire_token();
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            DailyInstrumentsRefresh::new(client.clone(), store.clone(), clock.clone())
                .run(Duration::from_millis(20), stop.clone()),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while fake.requests() < 3 {
            assert!(tokio::time::Instant::now() < deadline, "no retry seen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!task.is_finished(), "a failed refresh stopped the task");
        assert_eq!(store.instruments().count().await.unwrap(), 0);

        // A new session: the next check refreshes.
        let session = client
            .generate_session(&fake.config().request_token, &fake.config().api_secret)
            .await
            .unwrap();
        assert_eq!(session.access_token, fake.config().access_token);
        while store.instruments().count().await.unwrap() < 4 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never refreshed after the session came back"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap()
            .unwrap();
    }
}
