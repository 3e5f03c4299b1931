//! Per-call control: what one lookup or insert may read, load and store.

use std::ops::Range;
use std::time::Duration;

/// How a lookup uses the tiers and the loader.
///
/// cache-kit's four strategies go by their own names too, as constants: `Fresh`
/// ([`CacheOnly`](Self::CacheOnly)), `Refresh` ([`ReadThrough`](Self::ReadThrough)),
/// `Invalidate` ([`InvalidateThenLoad`](Self::InvalidateThenLoad)) and `Bypass`.
///
/// ```
/// use stratacache::Strategy;
///
/// // cache-kit's `Refresh` is cache first, the loader on a miss; `Reload` skips the tiers.
/// assert_eq!(Strategy::Refresh, Strategy::ReadThrough);
/// assert_ne!(Strategy::Refresh, Strategy::Reload);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// The tiers, then the loader on a miss; what it loads is stored. The default.
    #[default]
    ReadThrough,
    /// The tiers only: never load, whatever loader the call or the cache has.
    CacheOnly,
    /// Load now and store the result as a write does, replacing what the tiers hold (a
    /// load that finds nothing removes the key). The tiers are not read.
    Reload,
    /// Invalidate the key in every tier, then read through: the next value comes from
    /// the loader, unless a concurrent write stores one first.
    InvalidateThenLoad,
    /// Load and return the value, reading and storing nothing.
    Bypass,
}

/// cache-kit's names, for code that comes from it: each is the strategy that does what
/// cache-kit's of that name does (its `Bypass` is [`Strategy::Bypass`]).
#[expect(
    non_upper_case_globals,
    reason = "named as cache-kit's enum variants, so that its code reads the same"
)]
impl Strategy {
    /// cache-kit's `Fresh`: the tiers only, never the loader
    /// ([`CacheOnly`](Self::CacheOnly)).
    pub const Fresh: Self = Self::CacheOnly;
    /// cache-kit's `Refresh`: the tiers first, the loader on a miss
    /// ([`ReadThrough`](Self::ReadThrough)). Not [`Reload`](Self::Reload).
    pub const Refresh: Self = Self::ReadThrough;
    /// cache-kit's `Invalidate`: remove the key, then load
    /// ([`InvalidateThenLoad`](Self::InvalidateThenLoad)).
    pub const Invalidate: Self = Self::InvalidateThenLoad;
}

/// Per-call settings for [`Cache::with`](crate::Cache::with): a [`Strategy`], tiers to
/// skip, and a TTL. One value, built with chained calls; the default is what the
/// `Cache` methods do without options.
///
/// - **Skipping tiers** on a lookup leaves them unread and unfilled. On an
///   [`insert`](crate::WithOptions::insert), a skipped tier *drops* its copy of the key
///   instead of storing the new value (as a tier whose insert policy declines a value
///   does): a tier never keeps the value a write replaced.
/// - **Fail-safe** can be refused per call ([`without_fail_safe`](Self::without_fail_safe)).
/// - **The TTL** caps the entry stored by this call (an insert, or a load), as
///   [`Loaded::ttl`](crate::Loaded::ttl) and
///   [`insert_with_ttl`](crate::Cache::insert_with_ttl) do.
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Options, Strategy};
///
/// let options = Options::new()
///     .strategy(Strategy::Reload)
///     .skip_remote()
///     .ttl(Duration::from_secs(5));
/// assert_eq!(options.get_strategy(), Strategy::Reload);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Options {
    strategy: Strategy,
    skip_l1: bool,
    skip_remote: bool,
    ttl: Option<Duration>,
    no_fail_safe: bool,
}

impl Options {
    /// What a call without options does: read through, every tier, the tiers' TTLs.
    pub const DEFAULT: Self = Self {
        strategy: Strategy::ReadThrough,
        skip_l1: false,
        skip_remote: false,
        ttl: None,
        no_fail_safe: false,
    };

    /// The default options.
    #[must_use]
    pub const fn new() -> Self {
        Self::DEFAULT
    }

    /// How the call uses the tiers and the loader.
    #[must_use]
    pub const fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Neither read nor fill L1.
    #[must_use]
    pub const fn skip_l1(mut self) -> Self {
        self.skip_l1 = true;
        self
    }

    /// Neither read nor fill the tiers below L1.
    #[must_use]
    pub const fn skip_remote(mut self) -> Self {
        self.skip_remote = true;
        self
    }

    /// Caps the TTL of what this call stores.
    #[must_use]
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Never answer with a stale value, even on a cache with
    /// [fail-safe](crate::CacheBuilder::fail_safe): a failed load is this call's error.
    #[must_use]
    pub const fn without_fail_safe(mut self) -> Self {
        self.no_fail_safe = true;
        self
    }

    /// Whether the call may be answered with a stale value (if the cache has fail-safe).
    #[must_use]
    pub const fn takes_stale(&self) -> bool {
        !self.no_fail_safe
    }

    /// The call's strategy.
    #[must_use]
    pub const fn get_strategy(&self) -> Strategy {
        self.strategy
    }

    /// The call's TTL cap, if any.
    #[must_use]
    pub const fn get_ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The tiers the call skips, as bits: calls that differ here never share a flight.
    pub(crate) const fn skips(&self) -> u8 {
        (self.skip_l1 as u8) | (self.skip_remote as u8) << 1
    }

    /// Whether the call reads L1.
    #[inline]
    pub(crate) const fn reads_l1(&self) -> bool {
        !self.skip_l1
    }

    /// The levels (L1 is 0) of a cache with `count` levels this call reads and fills.
    pub(crate) fn levels(&self, count: usize) -> Range<usize> {
        let start = usize::from(self.skip_l1);
        let end = if self.skip_remote { 1 } else { count };
        start..end.max(start)
    }

    /// `ttl` capped by the call's TTL.
    pub(crate) fn cap(&self, ttl: Option<Duration>) -> Option<Duration> {
        match (ttl, self.ttl) {
            (Some(own), Some(cap)) => Some(own.min(cap)),
            (own, cap) => own.or(cap),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_skips() {
        assert_eq!(Options::new().levels(3), 0..3);
        assert_eq!(Options::new().skip_l1().levels(3), 1..3);
        assert_eq!(Options::new().skip_remote().levels(3), 0..1);
        assert!(Options::new().skip_l1().skip_remote().levels(3).is_empty());
        assert!(Options::new().skip_l1().levels(1).is_empty());
    }

    #[test]
    fn the_call_ttl_caps() {
        let (short, long) = (Duration::from_secs(1), Duration::from_secs(9));
        let capped = Options::new().ttl(short);
        assert_eq!(capped.cap(Some(long)), Some(short));
        assert_eq!(capped.cap(None), Some(short));
        assert_eq!(Options::new().ttl(long).cap(Some(short)), Some(short));
        assert_eq!(Options::new().cap(Some(long)), Some(long));
    }
}
