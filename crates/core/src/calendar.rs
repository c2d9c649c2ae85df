//! The NSE equity calendar: IST trading days, the 09:15–15:30 session, and the daily-counter boundary.
//!
//! All functions are pure: the instant is passed in. IST is `Asia/Kolkata` (UTC+05:30, no DST).
//!
//! - A **trading day** is a Monday–Friday that is not in [`NSE_EQUITY_HOLIDAYS`]. The table holds the
//!   NSE equity-segment trading holidays published for 2025 and 2026 (weekend holidays are omitted:
//!   they are closed anyway). Dates outside the table's years are treated as trading days when they
//!   are weekdays; [`holiday_table_covers`] says whether a date's year is covered.
//! - The **regular session** is the half-open interval `[09:15, 15:30)` IST: 09:15:00.000000 is open,
//!   15:29:59.999999 is open, 15:30:00.000000 is closed. Pre-open and closing sessions are not trading.
//!   Muhurat trading is not modelled.
//! - The **end of a trading day** (when daily counters such as trade counts and daily loss expire) is
//!   the first instant of the next calendar day in IST, i.e. next-day 00:00:00 IST. It is an exclusive
//!   bound: every instant of the IST date is strictly before it, so a TTL of `end - now` is always
//!   positive during the day.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Asia::Kolkata;

use crate::Timestamp;

/// NSE equity-segment trading holidays falling on weekdays, 2025 and 2026, as published by NSE.
/// `(year, month, day, occasion)`.
pub const NSE_EQUITY_HOLIDAYS: &[(i32, u32, u32, &str)] = &[
    (2025, 2, 26, "Mahashivratri"),
    (2025, 3, 14, "Holi"),
    (2025, 3, 31, "Id-Ul-Fitr (Ramadan Eid)"),
    (2025, 4, 10, "Shri Mahavir Jayanti"),
    (2025, 4, 14, "Dr. Baba Saheb Ambedkar Jayanti"),
    (2025, 4, 18, "Good Friday"),
    (2025, 5, 1, "Maharashtra Day"),
    (2025, 8, 15, "Independence Day"),
    (2025, 8, 27, "Ganesh Chaturthi"),
    (2025, 10, 2, "Mahatma Gandhi Jayanti / Dussehra"),
    (2025, 10, 21, "Diwali Laxmi Pujan"),
    (2025, 10, 22, "Diwali Balipratipada"),
    (2025, 11, 5, "Prakash Gurpurb Sri Guru Nanak Dev"),
    (2025, 12, 25, "Christmas"),
    (2026, 1, 15, "Municipal Corporation Election - Maharashtra"),
    (2026, 1, 26, "Republic Day"),
    (2026, 3, 3, "Holi"),
    (2026, 3, 26, "Shri Ram Navami"),
    (2026, 3, 31, "Shri Mahavir Jayanti"),
    (2026, 4, 3, "Good Friday"),
    (2026, 4, 14, "Dr. Baba Saheb Ambedkar Jayanti"),
    (2026, 5, 1, "Maharashtra Day"),
    (2026, 5, 28, "Bakri Id"),
    (2026, 6, 26, "Muharram"),
    (2026, 9, 14, "Ganesh Chaturthi"),
    (2026, 10, 2, "Mahatma Gandhi Jayanti"),
    (2026, 10, 20, "Dussehra"),
    (2026, 11, 10, "Diwali Balipratipada"),
    (2026, 11, 24, "Prakash Gurpurb Sri Guru Nanak Dev"),
    (2026, 12, 25, "Christmas"),
];

/// First year covered by [`NSE_EQUITY_HOLIDAYS`].
pub const HOLIDAY_TABLE_FIRST_YEAR: i32 = 2025;
/// Last year covered by [`NSE_EQUITY_HOLIDAYS`].
pub const HOLIDAY_TABLE_LAST_YEAR: i32 = 2026;

/// Session open, IST.
pub const SESSION_OPEN: NaiveTime = match NaiveTime::from_hms_opt(9, 15, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};
/// Session close (exclusive), IST.
pub const SESSION_CLOSE: NaiveTime = match NaiveTime::from_hms_opt(15, 30, 0) {
    Some(t) => t,
    None => NaiveTime::MIN,
};

/// The IST wall-clock time of an instant.
pub fn to_ist(at: Timestamp) -> NaiveDateTime {
    at.as_datetime().with_timezone(&Kolkata).naive_local()
}

/// The instant of an IST wall-clock time.
pub fn from_ist(local: NaiveDateTime) -> Timestamp {
    let utc = match Kolkata.from_local_datetime(&local).earliest() {
        Some(t) => t.with_timezone(&Utc),
        // Asia/Kolkata has had a fixed +05:30 offset since 1945, so this branch only covers
        // pathological historical dates; fall back to the fixed offset.
        None => DateTime::<Utc>::from_naive_utc_and_offset(local - Duration::minutes(330), Utc),
    };
    Timestamp::from_datetime(utc)
}

/// The IST calendar date of an instant (the key for daily counters).
pub fn trading_day(at: Timestamp) -> NaiveDate {
    to_ist(at).date()
}

/// Whether `date` is a listed NSE equity holiday.
pub fn is_holiday(date: NaiveDate) -> bool {
    NSE_EQUITY_HOLIDAYS
        .iter()
        .any(|&(y, m, d, _)| date.year() == y && date.month() == m && date.day() == d)
}

/// Whether the holiday table covers `date`'s year (outside it, every weekday counts as trading).
pub fn holiday_table_covers(date: NaiveDate) -> bool {
    (HOLIDAY_TABLE_FIRST_YEAR..=HOLIDAY_TABLE_LAST_YEAR).contains(&date.year())
}

/// Whether the exchange trades on `date`: a weekday that is not a listed holiday.
pub fn is_trading_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !is_holiday(date)
}

/// Whether the regular session is open at `at`: a trading day and IST time in `[09:15, 15:30)`.
pub fn is_market_open(at: Timestamp) -> bool {
    let local = to_ist(at);
    is_trading_day(local.date()) && local.time() >= SESSION_OPEN && local.time() < SESSION_CLOSE
}

/// When counters of the IST date `date` expire: next-day 00:00:00 IST (exclusive end of the day).
pub fn end_of_trading_day(date: NaiveDate) -> Timestamp {
    let next = date.succ_opt().unwrap_or(date);
    from_ist(next.and_time(NaiveTime::MIN))
}

/// The session open (09:15 IST on a trading day) at or after `at`.
///
/// During a session this is the *next* trading day's open; at exactly 09:15 on a trading day it is
/// `at` itself. The search looks at most 366 days ahead (no real calendar has a longer closure).
pub fn next_session_open(at: Timestamp) -> Timestamp {
    let local = to_ist(at);
    let mut date = local.date();
    if local.time() > SESSION_OPEN {
        date = date.succ_opt().unwrap_or(date);
    }
    for _ in 0..366 {
        if is_trading_day(date) {
            break;
        }
        date = date.succ_opt().unwrap_or(date);
    }
    from_ist(date.and_time(SESSION_OPEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ist(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Timestamp {
        from_ist(
            NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_opt(h, mi, s)
                .unwrap(),
        )
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn ist_is_utc_plus_five_thirty() {
        let t = ist(2025, 11, 21, 9, 15, 0);
        assert_eq!(t.to_string(), "2025-11-21T03:45:00.000000Z");
        assert_eq!(to_ist(t).to_string(), "2025-11-21 09:15:00");
    }

    #[test]
    fn session_is_half_open_09_15_to_15_30() {
        // Friday 21 Nov 2025, an ordinary trading day.
        assert!(!is_market_open(ist(2025, 11, 21, 9, 14, 59)));
        assert!(is_market_open(ist(2025, 11, 21, 9, 15, 0)));
        assert!(is_market_open(ist(2025, 11, 21, 15, 29, 59)));
        let last_micro =
            Timestamp::from_unix_micros(ist(2025, 11, 21, 15, 30, 0).unix_micros() - 1).unwrap();
        assert!(is_market_open(last_micro));
        assert!(!is_market_open(ist(2025, 11, 21, 15, 30, 0)));
    }

    #[test]
    fn weekends_and_holidays_are_closed() {
        assert!(!is_trading_day(date(2025, 11, 22))); // Saturday
        assert!(!is_trading_day(date(2025, 11, 23))); // Sunday
        assert!(!is_trading_day(date(2025, 10, 21))); // Diwali Laxmi Pujan
        assert!(!is_trading_day(date(2026, 1, 26))); // Republic Day
        assert!(!is_market_open(ist(2025, 12, 25, 11, 0, 0))); // Christmas, mid-session time
        assert!(is_trading_day(date(2025, 12, 24)));
        assert!(is_trading_day(date(2027, 1, 4))); // outside the table: weekday counts
        assert!(!holiday_table_covers(date(2027, 1, 4)));
        assert!(holiday_table_covers(date(2026, 6, 1)));
    }

    #[test]
    fn holiday_table_has_only_weekdays() {
        for &(y, m, d, name) in NSE_EQUITY_HOLIDAYS {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert!(
                !matches!(day.weekday(), Weekday::Sat | Weekday::Sun),
                "{name} on {day} is a weekend"
            );
        }
    }

    #[test]
    fn trading_day_is_the_ist_date() {
        // 20:00 UTC on the 21st is 01:30 IST on the 22nd.
        let late_utc = Timestamp::from_datetime(
            Utc.with_ymd_and_hms(2025, 11, 21, 20, 0, 0)
                .single()
                .unwrap(),
        );
        assert_eq!(trading_day(late_utc), date(2025, 11, 22));
        assert_eq!(
            trading_day(ist(2025, 11, 21, 23, 59, 59)),
            date(2025, 11, 21)
        );
    }

    #[test]
    fn end_of_trading_day_is_next_midnight_ist() {
        let end = end_of_trading_day(date(2025, 11, 21));
        assert_eq!(end, ist(2025, 11, 22, 0, 0, 0));
        assert_eq!(end.to_string(), "2025-11-21T18:30:00.000000Z");
        assert!(ist(2025, 11, 21, 23, 59, 59) < end);
        assert_eq!(trading_day(end), date(2025, 11, 22));
    }

    #[test]
    fn next_session_open_skips_weekends_and_holidays() {
        // Before open on a trading day: today's open.
        assert_eq!(
            next_session_open(ist(2025, 11, 21, 8, 0, 0)),
            ist(2025, 11, 21, 9, 15, 0)
        );
        // Exactly at open: itself.
        assert_eq!(
            next_session_open(ist(2025, 11, 21, 9, 15, 0)),
            ist(2025, 11, 21, 9, 15, 0)
        );
        // Friday after the close: Monday.
        assert_eq!(
            next_session_open(ist(2025, 11, 21, 15, 30, 0)),
            ist(2025, 11, 24, 9, 15, 0)
        );
        // Evening before Diwali (Mon 20 Oct 2025): 21 and 22 are holidays, so Thursday 23rd.
        assert_eq!(
            next_session_open(ist(2025, 10, 20, 16, 0, 0)),
            ist(2025, 10, 23, 9, 15, 0)
        );
        // Christmas Eve 2026 is Thursday, Christmas Friday: next open Monday 28th.
        assert_eq!(
            next_session_open(ist(2026, 12, 24, 12, 0, 0)),
            ist(2026, 12, 28, 9, 15, 0)
        );
    }
}
