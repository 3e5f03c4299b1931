use std::time::{Duration, SystemTime};

use crate::Tags;

/// How far in the future an entry's timestamp may be before its age can no longer be
/// trusted: see [`CacheEntry::is_expired`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use stratacache_tier::{CacheEntry, MAX_CLOCK_SKEW};
///
/// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
/// let entry = CacheEntry::new((), t0, Some(Duration::from_secs(60)));
/// // Stamped a little ahead of `now`: tolerated. A whole allowance ahead: expired.
/// assert!(!entry.is_expired(t0 - MAX_CLOCK_SKEW / 2));
/// assert!(entry.is_expired(t0 - MAX_CLOCK_SKEW));
/// ```
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(1);

/// How far after a change an entry may have been produced and still count as
/// [newer](CacheEntry::is_newer_than) than it, so that the change leaves it: an entry
/// from further ahead is taken for one from a clock far off (a test's, a host's years
/// wrong), and the change replaces it. A removal judges by it, and so does a write that
/// lands late on a shared store (it stands back only from entries produced a little to
/// this much after its own).
pub const LATE_WRITE_HORIZON: Duration = Duration::from_secs(60 * 60);

/// A cached value with the time it was produced and how long it stays valid.
///
/// The age of an entry counts from `cached_at`, the moment its value was produced
/// (loaded or inserted), not from when a particular tier stored it. An entry copied
/// from one tier into another keeps its `cached_at`, so it never looks younger than
/// it really is.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use stratacache_tier::CacheEntry;
///
/// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
/// let entry = CacheEntry::new(7, t0, Some(Duration::from_secs(10)));
/// assert!(!entry.is_expired(t0 + Duration::from_secs(9)));
/// assert!(entry.is_expired(t0 + Duration::from_secs(10)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheEntry<V> {
    value: V,
    cached_at: SystemTime,
    ttl: Option<Duration>,
    /// When marked stale: the time after which it may not be served at all.
    stale_until: Option<SystemTime>,
    tags: Tags,
}

impl<V> CacheEntry<V> {
    /// Creates an entry produced at `cached_at` that lives for `ttl` (`None`: no expiry).
    #[must_use]
    pub const fn new(value: V, cached_at: SystemTime, ttl: Option<Duration>) -> Self {
        Self {
            value,
            cached_at,
            ttl,
            stale_until: None,
            tags: Tags::none(),
        }
    }

    /// This entry, carrying `tags`: invalidating any of them invalidates it.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_tier::{CacheEntry, Tags};
    ///
    /// let entry = CacheEntry::new(1, SystemTime::UNIX_EPOCH, None).with_tags(Tags::new(["a"]));
    /// assert_eq!(entry.tags().iter().collect::<Vec<_>>(), ["a"]);
    /// ```
    #[must_use]
    pub fn with_tags(self, tags: Tags) -> Self {
        Self { tags, ..self }
    }

    /// The entry's tags (none unless given).
    #[must_use]
    #[inline]
    pub const fn tags(&self) -> &Tags {
        &self.tags
    }

    /// A copy of this entry for another tier: the same value, production time and tags,
    /// with `ttl` (never marked stale).
    #[must_use]
    pub fn copy_with_ttl(&self, ttl: Option<Duration>) -> Self
    where
        V: Clone,
    {
        Self {
            value: self.value.clone(),
            cached_at: self.cached_at,
            ttl,
            stale_until: None,
            tags: self.tags.clone(),
        }
    }

    /// Whether this is a stale value served by fail-safe: its source failed, and the
    /// cache kept answering with the last value it had, past that value's TTL.
    #[must_use]
    pub const fn is_stale(&self) -> bool {
        self.stale_until.is_some()
    }

    /// When a [stale](Self::is_stale) entry stops being served at all.
    #[must_use]
    pub const fn stale_until(&self) -> Option<SystemTime> {
        self.stale_until
    }

    /// This entry, marked [stale](Self::is_stale): a value kept past its source's TTL,
    /// never to be served after `until` (however its own TTL reads).
    #[must_use]
    pub fn into_stale(self, until: SystemTime) -> Self {
        Self {
            stale_until: Some(until),
            ..self
        }
    }

    /// Whether the entry has expired at `now` but by less than `grace` (and, when it is
    /// [stale](Self::is_stale), before its end): a value that fail-safe may still serve
    /// when its source fails. An entry stamped in the future is never usable.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::CacheEntry;
    ///
    /// let (t0, secs) = (SystemTime::UNIX_EPOCH, Duration::from_secs);
    /// let entry = CacheEntry::new("v", t0, Some(secs(10)));
    /// assert!(!entry.is_expired_within(t0 + secs(5), secs(60)), "still fresh");
    /// assert!(entry.is_expired_within(t0 + secs(30), secs(60)));
    /// assert!(!entry.is_expired_within(t0 + secs(70), secs(60)), "too old even for that");
    /// let stale = entry.into_stale(t0 + secs(40));
    /// assert!(!stale.is_expired_within(t0 + secs(45), secs(60)), "past its stale end");
    /// ```
    #[must_use]
    pub fn is_expired_within(&self, now: SystemTime, grace: Duration) -> bool {
        let Some(ttl) = self.ttl else {
            return false;
        };
        if self.stale_until.is_some_and(|until| now >= until) {
            return false;
        }
        match now.duration_since(self.cached_at) {
            Ok(age) => age >= ttl && age < ttl.saturating_add(grace),
            Err(_) => false,
        }
    }

    /// The cached value.
    #[must_use]
    pub const fn value(&self) -> &V {
        &self.value
    }

    /// Consumes the entry and returns its value.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_tier::CacheEntry;
    ///
    /// let entry = CacheEntry::new(vec![1, 2], SystemTime::UNIX_EPOCH, None);
    /// let value: Vec<u8> = entry.into_value();
    /// assert_eq!(value, [1, 2]);
    /// ```
    #[must_use]
    #[inline]
    pub fn into_value(self) -> V {
        self.value
    }

    /// When the value was produced.
    #[must_use]
    pub const fn cached_at(&self) -> SystemTime {
        self.cached_at
    }

    /// Whether this entry was produced after a change made at `than`, so that the change
    /// must leave it in place: later than `than`, and not beyond [`LATE_WRITE_HORIZON`]
    /// of it (an entry from that far ahead is taken for one from a clock far off).
    ///
    /// The one rule by which a removal that may have raced with another instance's write
    /// spares it, in memory as in a shared store (whose comparison, in whole
    /// milliseconds, is the same for the milliseconds it keeps).
    ///
    /// The hour counts from the change, not from the present: for a change that waited
    /// (replayed after an outage), an entry from a clock hours ahead would otherwise age
    /// into it and be spared, and served though the change replaced it. What a sound
    /// clock wrote over an hour after such a change is removed too: a miss, not a stale
    /// read.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::{CacheEntry, LATE_WRITE_HORIZON};
    ///
    /// let than = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    /// let at = |when| CacheEntry::new((), when, None);
    /// assert!(at(than + Duration::from_millis(1)).is_newer_than(than));
    /// assert!(!at(than).is_newer_than(than), "not after it");
    /// assert!(!at(than - Duration::from_secs(1)).is_newer_than(than));
    /// assert!(!at(than + LATE_WRITE_HORIZON * 2).is_newer_than(than), "a clock far off");
    /// ```
    #[must_use]
    pub fn is_newer_than(&self, than: SystemTime) -> bool {
        let horizon = than.checked_add(LATE_WRITE_HORIZON).unwrap_or(far_future());
        self.cached_at > than && self.cached_at <= horizon
    }

    /// How long after [`cached_at`](Self::cached_at) the entry stays valid; `None` for no expiry.
    #[must_use]
    pub const fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// The instant the entry expires, if it has a time-to-live.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::CacheEntry;
    ///
    /// let t0 = SystemTime::UNIX_EPOCH;
    /// let entry = CacheEntry::new("v", t0, Some(Duration::from_secs(30)));
    /// assert_eq!(entry.expires_at(), Some(t0 + Duration::from_secs(30)));
    /// assert_eq!(CacheEntry::new("v", t0, None).expires_at(), None);
    /// ```
    #[must_use]
    pub fn expires_at(&self) -> Option<SystemTime> {
        // Saturates at the far future rather than overflowing on absurd TTLs.
        self.ttl
            .map(|ttl| self.cached_at.checked_add(ttl).unwrap_or(far_future()))
    }

    /// How old the entry is at `now`. An entry stamped in the future (clock skew between
    /// hosts, or a clock that stepped back) has age zero.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::CacheEntry;
    ///
    /// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    /// let entry = CacheEntry::new("v", t0, None);
    /// assert_eq!(entry.age(t0 + Duration::from_secs(3)), Duration::from_secs(3));
    /// assert_eq!(entry.age(t0 - Duration::from_secs(3)), Duration::ZERO);
    /// ```
    #[must_use]
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.cached_at).unwrap_or(Duration::ZERO)
    }

    /// Whether the entry has outlived its time-to-live at `now`.
    ///
    /// An entry stamped in the future counts as fresh only while it is ahead of `now` by
    /// less than its TTL and less than [`MAX_CLOCK_SKEW`]: small
    /// skew between hosts is tolerated, but a clock that stepped back does not stretch an
    /// entry's life past its TTL plus that allowance. Entries without a TTL never expire.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::CacheEntry;
    ///
    /// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    /// let entry = CacheEntry::new(7, t0, Some(Duration::from_secs(60)));
    /// // The clock steps back by half a second: within the allowance, still fresh.
    /// assert!(!entry.is_expired(t0 - Duration::from_millis(500)));
    /// // It steps back by an hour: the entry's age can't be judged, so it is expired.
    /// assert!(entry.is_expired(t0 - Duration::from_secs(3_600)));
    /// ```
    #[must_use]
    #[inline]
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.ttl.is_some() && self.live_age(now).is_none()
    }

    /// The entry's [age](Self::age) at `now` if it has not [expired](Self::is_expired)
    /// by then, `None` if it has: both judgements from one reading of the clock, for a
    /// hit path that needs the age of a live entry (time-to-refresh).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::CacheEntry;
    ///
    /// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
    /// let entry = CacheEntry::new(7, t0, Some(Duration::from_secs(60)));
    /// assert_eq!(entry.live_age(t0 + Duration::from_secs(20)), Some(Duration::from_secs(20)));
    /// assert_eq!(entry.live_age(t0 - Duration::from_millis(500)), Some(Duration::ZERO));
    /// assert_eq!(entry.live_age(t0 + Duration::from_secs(60)), None);
    /// ```
    #[must_use]
    #[inline]
    pub fn live_age(&self, now: SystemTime) -> Option<Duration> {
        match (now.duration_since(self.cached_at), self.ttl) {
            (Ok(age), None) => Some(age),
            (Ok(age), Some(ttl)) => (age < ttl).then_some(age),
            (Err(_), None) => Some(Duration::ZERO),
            (Err(ahead), Some(ttl)) => {
                (ahead.duration() < ttl.min(MAX_CLOCK_SKEW)).then_some(Duration::ZERO)
            }
        }
    }

    /// The time the entry has left at `now`: `None` when it never expires,
    /// `Some(Duration::ZERO)` once it has expired. Never more than the TTL itself.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::CacheEntry;
    ///
    /// let (t0, secs) = (SystemTime::UNIX_EPOCH, Duration::from_secs);
    /// let entry = CacheEntry::new("v", t0, Some(secs(10)));
    /// assert_eq!(entry.remaining_ttl(t0 + secs(4)), Some(secs(6)));
    /// assert_eq!(entry.remaining_ttl(t0 + secs(60)), Some(Duration::ZERO));
    /// assert_eq!(CacheEntry::new("v", t0, None).remaining_ttl(t0), None);
    /// ```
    #[must_use]
    pub fn remaining_ttl(&self, now: SystemTime) -> Option<Duration> {
        if self.is_expired(now) {
            return Some(Duration::ZERO);
        }
        self.ttl.map(|ttl| ttl.saturating_sub(self.age(now)))
    }

    /// Returns the entry with its time-to-live replaced.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::CacheEntry;
    ///
    /// let entry = CacheEntry::new("v", SystemTime::UNIX_EPOCH, None);
    /// let entry = entry.with_ttl(Some(Duration::from_secs(5)));
    /// assert_eq!(entry.ttl(), Some(Duration::from_secs(5)));
    /// assert_eq!(entry.cached_at(), SystemTime::UNIX_EPOCH);
    /// ```
    #[must_use]
    pub fn with_ttl(self, ttl: Option<Duration>) -> Self {
        Self { ttl, ..self }
    }

    /// Maps the value, keeping the timestamps.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::CacheEntry;
    ///
    /// let ttl = Some(Duration::from_secs(5));
    /// let entry = CacheEntry::new(21, SystemTime::UNIX_EPOCH, ttl).map(|n| n.to_string());
    /// assert_eq!(entry.value(), "21");
    /// assert_eq!(entry.ttl(), ttl);
    /// ```
    #[must_use]
    pub fn map<U>(self, f: impl FnOnce(V) -> U) -> CacheEntry<U> {
        CacheEntry {
            value: f(self.value),
            cached_at: self.cached_at,
            ttl: self.ttl,
            stale_until: self.stale_until,
            tags: self.tags,
        }
    }
}

fn far_future() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        T0 + Duration::from_secs(secs)
    }

    #[test]
    fn entry_without_ttl_never_expires() {
        let entry = CacheEntry::new(1, at(10), None);
        assert!(!entry.is_expired(at(u64::from(u32::MAX))));
        assert_eq!(entry.remaining_ttl(at(1_000)), None);
        assert_eq!(entry.expires_at(), None);
    }

    #[test]
    fn expiry_is_inclusive_of_the_ttl_boundary() {
        let entry = CacheEntry::new(1, at(10), Some(Duration::from_secs(5)));
        assert!(!entry.is_expired(at(14)));
        assert!(entry.is_expired(at(15)));
        assert_eq!(entry.remaining_ttl(at(12)), Some(Duration::from_secs(3)));
        assert_eq!(entry.remaining_ttl(at(20)), Some(Duration::ZERO));
        assert_eq!(entry.expires_at(), Some(at(15)));
    }

    #[test]
    fn entry_slightly_from_the_future_has_age_zero_and_is_fresh() {
        let entry = CacheEntry::new(1, at(100), Some(Duration::from_secs(5)));
        let skewed = at(100) - Duration::from_millis(300);
        assert_eq!(entry.age(skewed), Duration::ZERO);
        assert!(!entry.is_expired(skewed));
        assert_eq!(entry.remaining_ttl(skewed), Some(Duration::from_secs(5)));
    }

    #[test]
    fn clock_stepping_back_past_the_allowance_expires_the_entry() {
        let entry = CacheEntry::new(1, at(100), Some(Duration::from_secs(5)));
        assert!(entry.is_expired(at(50)));
        assert_eq!(entry.remaining_ttl(at(50)), Some(Duration::ZERO));
        // A TTL shorter than the allowance bounds it: 200 ms ahead of a 100 ms TTL.
        let short = CacheEntry::new(1, at(100), Some(Duration::from_millis(100)));
        assert!(short.is_expired(at(100) - Duration::from_millis(200)));
        assert!(!short.is_expired(at(100) - Duration::from_millis(50)));
        // Without a TTL nothing expires, whatever the clock does.
        assert!(!CacheEntry::new(1, at(100), None).is_expired(at(0)));
    }

    #[test]
    fn huge_ttl_saturates_instead_of_panicking() {
        let entry = CacheEntry::new(1, at(100), Some(Duration::MAX));
        assert!(entry.expires_at().is_some());
        assert!(!entry.is_expired(at(1_000_000)));
    }

    #[test]
    fn map_keeps_timestamps() {
        let entry = CacheEntry::new(2, at(7), Some(Duration::from_secs(3))).map(|v| v * 10);
        assert_eq!(entry.value(), &20);
        assert_eq!(entry.cached_at(), at(7));
        assert_eq!(entry.ttl(), Some(Duration::from_secs(3)));
    }
}
