//! The one interface of a trading venue: what the trading engine asks of the paper trader and of
//! the Zerodha live trader alike. The engine holds a [`Trader`] and talks to it only through this
//! trait; each venue keeps its own logic in its own file.

use std::future::Future;
use std::time::Duration;

use alpha_panda_core::{Alert, Broker, EventId, MarketTick, Timestamp, ValidatedSignal};
use alpha_panda_stream::HandlerError;

use super::order_event::TraderOutput;
use super::paper::PaperTrader;
use super::zerodha::{ZerodhaTrader, UPDATE_DRAIN};

/// A place orders go: it turns validated signals into order events, may fill on ticks, and may
/// follow its orders on a timer.
pub trait Venue {
    /// The namespace it trades for.
    fn broker(&self) -> Broker;

    /// An approved signal (`signal_event_id` is the validated signal event's id, `validated_at`
    /// when the risk manager approved it, `now` the runtime's clock).
    ///
    /// # Errors
    /// A [`HandlerError`] classified for the runtime (a dependency down: waited for and retried;
    /// poison: dead-lettered).
    fn on_validated(
        &mut self,
        validated: &ValidatedSignal,
        signal_event_id: EventId,
        validated_at: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<TraderOutput>, HandlerError>> + Send;

    /// A market tick: the fills it causes (a venue that fills its own orders ignores ticks).
    fn on_tick(&mut self, tick: &MarketTick) -> Vec<TraderOutput>;

    /// How often [`Venue::on_timer`] runs; `None` for a venue with nothing to follow.
    fn timer_interval(&self) -> Option<Duration>;

    /// Follows the venue's open orders.
    ///
    /// # Errors
    /// As [`Venue::on_validated`].
    fn on_timer(
        &mut self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<TraderOutput>, HandlerError>> + Send;

    /// Whether only the latest tick per instrument matters to it now (see
    /// `Handler::conflates`).
    fn conflates_ticks(&self) -> bool;

    /// The alerts raised since the last call.
    fn take_alerts(&mut self) -> Vec<Alert>;
}

/// The venue behind a namespace: one interface, two venues.
#[derive(Debug)]
pub enum Trader {
    /// The causal paper trader (`paper` namespace).
    Paper(PaperTrader),
    /// The Kite live trader (`zerodha` namespace).
    Zerodha(ZerodhaTrader),
}

impl Venue for PaperTrader {
    fn broker(&self) -> Broker {
        Broker::Paper
    }

    async fn on_validated(
        &mut self,
        validated: &ValidatedSignal,
        signal_event_id: EventId,
        _validated_at: Timestamp,
        _now: Timestamp,
    ) -> Result<Vec<TraderOutput>, HandlerError> {
        let events = self
            .place(validated, signal_event_id)
            .map_err(|e| HandlerError {
                class: e.class(),
                message: e.to_string(),
            })?;
        Ok(events.into_iter().map(TraderOutput::derived).collect())
    }

    fn on_tick(&mut self, tick: &MarketTick) -> Vec<TraderOutput> {
        self.fill_resting(tick)
            .into_iter()
            .map(TraderOutput::derived)
            .collect()
    }

    fn timer_interval(&self) -> Option<Duration> {
        None
    }

    async fn on_timer(&mut self, _now: Timestamp) -> Result<Vec<TraderOutput>, HandlerError> {
        Ok(Vec::new())
    }

    /// Without a resting LIMIT order a tick changes nothing but the last price; with one, every
    /// tick may trade through its limit.
    fn conflates_ticks(&self) -> bool {
        self.resting_orders().is_empty()
    }

    fn take_alerts(&mut self) -> Vec<Alert> {
        Vec::new()
    }
}

impl Venue for ZerodhaTrader {
    fn broker(&self) -> Broker {
        Broker::Zerodha
    }

    async fn on_validated(
        &mut self,
        validated: &ValidatedSignal,
        signal_event_id: EventId,
        validated_at: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<TraderOutput>, HandlerError> {
        self.place(validated, signal_event_id, validated_at, now)
            .await
    }

    /// Kite fills its own orders; ticks only keep the engine's consumer current.
    fn on_tick(&mut self, _tick: &MarketTick) -> Vec<TraderOutput> {
        Vec::new()
    }

    /// Order updates are applied as they arrive; the trader asks Kite less often.
    fn timer_interval(&self) -> Option<Duration> {
        Some(self.config().poll_interval.min(UPDATE_DRAIN))
    }

    async fn on_timer(&mut self, now: Timestamp) -> Result<Vec<TraderOutput>, HandlerError> {
        self.follow_orders(now).await
    }

    fn conflates_ticks(&self) -> bool {
        true
    }

    fn take_alerts(&mut self) -> Vec<Alert> {
        ZerodhaTrader::take_alerts(self)
    }
}

impl Venue for Trader {
    fn broker(&self) -> Broker {
        match self {
            Trader::Paper(paper) => paper.broker(),
            Trader::Zerodha(live) => live.broker(),
        }
    }

    async fn on_validated(
        &mut self,
        validated: &ValidatedSignal,
        signal_event_id: EventId,
        validated_at: Timestamp,
        now: Timestamp,
    ) -> Result<Vec<TraderOutput>, HandlerError> {
        match self {
            Trader::Paper(paper) => {
                paper
                    .on_validated(validated, signal_event_id, validated_at, now)
                    .await
            }
            Trader::Zerodha(live) => {
                live.on_validated(validated, signal_event_id, validated_at, now)
                    .await
            }
        }
    }

    fn on_tick(&mut self, tick: &MarketTick) -> Vec<TraderOutput> {
        match self {
            Trader::Paper(paper) => paper.on_tick(tick),
            Trader::Zerodha(live) => Venue::on_tick(live, tick),
        }
    }

    fn timer_interval(&self) -> Option<Duration> {
        match self {
            Trader::Paper(paper) => paper.timer_interval(),
            Trader::Zerodha(live) => live.timer_interval(),
        }
    }

    async fn on_timer(&mut self, now: Timestamp) -> Result<Vec<TraderOutput>, HandlerError> {
        match self {
            Trader::Paper(paper) => Venue::on_timer(paper, now).await,
            Trader::Zerodha(live) => Venue::on_timer(live, now).await,
        }
    }

    fn conflates_ticks(&self) -> bool {
        match self {
            Trader::Paper(paper) => paper.conflates_ticks(),
            Trader::Zerodha(live) => live.conflates_ticks(),
        }
    }

    fn take_alerts(&mut self) -> Vec<Alert> {
        match self {
            Trader::Paper(paper) => Venue::take_alerts(paper),
            Trader::Zerodha(live) => Venue::take_alerts(live),
        }
    }
}
