//! Fail-safe: when the source fails, serve the last value past its TTL rather than an
//! error, for a bounded time, and give the source a rest.

use std::hash::Hash;
use std::time::Duration;

use stratacache_tier::CacheEntry;

use crate::generation::Ticket;
use crate::inner::Inner;
use crate::telemetry::{CacheCounter, Op};

/// Fail-safe settings, for [`CacheBuilder::fail_safe`](crate::CacheBuilder::fail_safe).
///
/// With fail-safe, every tier keeps an entry up to `max_stale_age` past its TTL. An
/// expired entry is still a miss: the lookup goes on to the tiers below and the loader.
/// But when the loader fails, or when there is no loader and a tier below failed, the
/// last value found is served instead of the error or the miss: marked stale
/// ([`CacheEntry::is_stale`]), counted in
/// [`CacheStats::stale_served`](crate::CacheStats::stale_served), reported with
/// [`OperationOutcome::Stale`](crate::telemetry::OperationOutcome::Stale). It is then
/// kept in L1 as fresh for `throttle`, so a failing database is not asked again by
/// every caller. A write or an invalidation removes stale copies like any other: a
/// replaced value is never served.
///
/// ```
/// use std::time::Duration;
/// use stratacache::FailSafe;
///
/// let fail_safe = FailSafe::new(Duration::from_secs(3_600)).throttle(Duration::from_secs(10));
/// assert_eq!(fail_safe.max_stale_age(), Duration::from_secs(3_600));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailSafe {
    max_stale_age: Duration,
    throttle: Duration,
}

impl FailSafe {
    /// Keeps entries up to `max_stale_age` past their TTL; the throttle is 30 seconds.
    #[must_use]
    pub const fn new(max_stale_age: Duration) -> Self {
        Self {
            max_stale_age,
            throttle: Duration::from_secs(30),
        }
    }

    /// How long a stale value served after a failure counts as fresh in L1 (and so how
    /// long the source is left alone). Zero: not at all.
    #[must_use]
    pub const fn throttle(mut self, throttle: Duration) -> Self {
        self.throttle = throttle;
        self
    }

    /// How long past its TTL an entry is kept.
    #[must_use]
    pub const fn max_stale_age(&self) -> Duration {
        self.max_stale_age
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Whether `entry`, expired at `now`, may still be served by fail-safe in `op`.
    pub(crate) fn may_serve_stale(
        &self,
        entry: &CacheEntry<V>,
        now: std::time::SystemTime,
        op: &Op,
    ) -> bool {
        op.fail_safe
            && self
                .fail_safe
                .is_some_and(|fail_safe| entry.is_expired_within(now, fail_safe.max_stale_age))
    }

    /// Whether an expired `entry` can go at `now`: fail-safe keeps it for its stale age,
    /// whether or not the call that found it takes stale values.
    pub(crate) fn reclaims(&self, entry: &CacheEntry<V>, now: std::time::SystemTime) -> bool {
        entry.is_expired(now)
            && !self
                .fail_safe
                .is_some_and(|fail_safe| entry.is_expired_within(now, fail_safe.max_stale_age))
    }

    /// Serves `stale` because its source failed: counted, and kept in a memory L1 as
    /// fresh for the throttle window (not beyond its stale age), unless a write to the
    /// key began since `ticket`.
    pub(crate) fn serve_stale(&self, key: &K, stale: CacheEntry<V>, ticket: Ticket) -> V {
        self.telemetry.count(CacheCounter::StaleServed);
        let (Some(fail_safe), Some(memory)) = (self.fail_safe, self.levels[0].memory()) else {
            return stale.into_value();
        };
        let now = self.clock.now();
        // A value served stale again keeps the end its first expiry set.
        let Some(end) = stale.stale_until().or_else(|| {
            let expiry = stale.expires_at()?;
            expiry.checked_add(fail_safe.max_stale_age)
        }) else {
            return stale.into_value();
        };
        let left = end.duration_since(now).unwrap_or_default();
        let fresh_for = fail_safe.throttle.min(left);
        if !fresh_for.is_zero() {
            // Still produced when it was (a tag invalidated since must catch it), fresh
            // until `now + fresh_for`.
            let ttl = stale.age(now).saturating_add(fresh_for);
            let throttled = stale.copy_with_ttl(Some(ttl)).into_stale(end);
            // Fresh for the throttle window, kept (stale) until its end.
            self.generations.publish(ticket, || {
                memory.store(key.clone(), throttled, Some(left));
            });
        }
        stale.into_value()
    }
}

impl<K, V> Inner<K, V> {
    /// How long past an entry's TTL the tiers keep it.
    pub(crate) fn stale_age(&self) -> Option<Duration> {
        self.fail_safe.map(|fail_safe| fail_safe.max_stale_age)
    }
}
