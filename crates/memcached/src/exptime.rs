//! How a time-to-live becomes memcached's expiration time (the `T` flag of `ms`).
//!
//! memcached reads an expiration time of up to 30 days as seconds from now, and a larger
//! one as an absolute Unix time, which it parses as a signed 32-bit number. Past that
//! (2038-01-19 03:14:07 UTC) it answers `HD` and keeps an item that is already expired:
//! a silent "stored nothing". So a TTL is sent as:
//!
//! - `0` when there is none (never expires);
//! - whole seconds rounded up, at least 1 (a zero or sub-second TTL is 1 s, since 0 would
//!   mean "never"), when that is at most 30 days;
//! - otherwise now + TTL as an absolute time, **clamped** to [`ABSOLUTE_LIMIT`], the last
//!   second memcached can express. `Duration::MAX` and a 12-year TTL therefore store, and
//!   expire at that second;
//! - 30 days, relative, when the clamp would leave less than that (from late 2037 on,
//!   when no absolute time is longer).
//!
//! The absolute form is read by the server's clock: a client clock that is behind the
//! server's by more than the TTL's excess over 30 days makes the item expire early.

use std::time::{Duration, SystemTime};

/// The longest relative expiration (30 days): memcached reads anything larger as an
/// absolute Unix time.
pub(crate) const RELATIVE_LIMIT: u32 = 30 * 24 * 3600;

/// The last absolute expiration memcached can parse: `i32::MAX`, 2038-01-19 03:14:07 UTC.
pub(crate) const ABSOLUTE_LIMIT: u32 = i32::MAX.unsigned_abs();

/// The `T` flag's value for `ttl` when the Unix time is `now_unix_secs`, as described in
/// the [module docs](self). Never overflows: every `Duration` is accepted.
pub(crate) fn exptime(ttl: Option<Duration>, now_unix_secs: u64) -> u32 {
    let Some(ttl) = ttl else { return 0 };
    // Saturating: `Duration::MAX` has `u64::MAX` whole seconds and a fraction on top.
    let seconds = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0))
        .max(1);
    if seconds <= u64::from(RELATIVE_LIMIT) {
        return u32::try_from(seconds).unwrap_or(RELATIVE_LIMIT);
    }
    let until = now_unix_secs
        .saturating_add(seconds)
        .min(u64::from(ABSOLUTE_LIMIT));
    if until.saturating_sub(now_unix_secs) > u64::from(RELATIVE_LIMIT) {
        u32::try_from(until).unwrap_or(ABSOLUTE_LIMIT)
    } else {
        RELATIVE_LIMIT
    }
}

/// The current Unix time in seconds (0 if the system clock is before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2027-01-15, a fixed "now" so that the absolute times are exact.
    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 24 * 3600;

    #[test]
    fn no_ttl_never_expires() {
        assert_eq!(exptime(None, NOW), 0);
    }

    #[test]
    fn zero_and_sub_second_ttls_round_up_to_one_second() {
        assert_eq!(exptime(Some(Duration::ZERO), NOW), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1)), NOW), 1);
        assert_eq!(exptime(Some(Duration::from_millis(1_500)), NOW), 2);
        assert_eq!(exptime(Some(Duration::from_secs(60)), NOW), 60);
    }

    #[test]
    fn thirty_days_is_the_longest_relative_ttl() {
        assert_eq!(
            exptime(Some(Duration::from_secs(30 * DAY)), NOW),
            RELATIVE_LIMIT
        );
        let just_over = NOW + 30 * DAY + 1;
        assert_eq!(
            u64::from(exptime(
                Some(Duration::from_secs(30 * DAY) + Duration::from_millis(1)),
                NOW
            )),
            just_over
        );
        assert_eq!(
            u64::from(exptime(Some(Duration::from_secs(30 * DAY + 1)), NOW)),
            just_over
        );
    }

    #[test]
    fn a_long_ttl_before_2038_is_an_exact_absolute_time() {
        let twelve_years = Duration::from_secs(12 * 365 * DAY);
        let earlier = 1_700_000_000;
        assert_eq!(
            u64::from(exptime(Some(twelve_years), earlier)),
            earlier + 12 * 365 * DAY
        );
    }

    #[test]
    fn ttls_past_2038_are_clamped_to_the_last_expressible_second() {
        assert_eq!(ABSOLUTE_LIMIT, 2_147_483_647);
        for ttl in [
            Duration::from_secs(12 * 365 * DAY),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ] {
            assert_eq!(exptime(Some(ttl), NOW), ABSOLUTE_LIMIT, "{ttl:?}");
        }
    }

    #[test]
    fn near_and_past_2038_a_long_ttl_keeps_at_least_thirty_days() {
        let year = Some(Duration::from_secs(365 * DAY));
        let late_2037 = u64::from(ABSOLUTE_LIMIT) - 10 * DAY;
        assert_eq!(exptime(year, late_2037), RELATIVE_LIMIT);
        assert_eq!(exptime(year, u64::from(ABSOLUTE_LIMIT) + 1), RELATIVE_LIMIT);
        assert_eq!(exptime(Some(Duration::MAX), u64::MAX), RELATIVE_LIMIT);
        // Still more than 30 days of absolute time left: the clamp is used.
        let mid_2037 = u64::from(ABSOLUTE_LIMIT) - 100 * DAY;
        assert_eq!(exptime(year, mid_2037), ABSOLUTE_LIMIT);
    }
}
