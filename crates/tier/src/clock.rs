use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The source of "now" for every time-based decision a cache makes.
///
/// A `Clock` is a cheap handle: the system clock by default, a [`FrozenClock`] that
/// tests move by hand, or any function returning a [`SystemTime`]. Cloning shares the
/// same time source.
///
/// Wall-clock time (not [`std::time::Instant`]) is used because entry timestamps travel
/// to remote tiers and are read by other processes.
///
/// ```
/// use std::time::Duration;
/// use stratacache_tier::{Clock, FrozenClock};
///
/// let frozen = FrozenClock::new();
/// let clock = Clock::from(frozen.clone());
/// let before = clock.now();
/// frozen.advance(Duration::from_secs(5));
/// assert_eq!(clock.now().duration_since(before).unwrap(), Duration::from_secs(5));
/// ```
#[derive(Clone, Default)]
pub struct Clock {
    source: Source,
}

#[derive(Clone, Default)]
enum Source {
    #[default]
    System,
    Frozen(FrozenClock),
    Custom(Arc<dyn Fn() -> SystemTime + Send + Sync>),
}

impl Clock {
    /// The operating system's wall clock, also the [`Default`].
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_tier::Clock;
    ///
    /// let clock = Clock::system();
    /// assert!(clock.is_system() && Clock::default().is_system());
    /// assert!(clock.now() > SystemTime::UNIX_EPOCH);
    /// ```
    #[must_use]
    pub const fn system() -> Self {
        Self {
            source: Source::System,
        }
    }

    /// A clock that asks `now` for the time: the bridge to another time abstraction.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::Clock;
    ///
    /// let noon = SystemTime::UNIX_EPOCH + Duration::from_secs(12 * 3_600);
    /// let clock = Clock::from_fn(move || noon);
    /// assert_eq!(clock.now(), noon);
    /// assert!(!clock.is_system());
    /// ```
    #[must_use]
    pub fn from_fn(now: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        Self {
            source: Source::Custom(Arc::new(now)),
        }
    }

    /// The current time.
    #[must_use]
    #[inline]
    pub fn now(&self) -> SystemTime {
        match &self.source {
            Source::System => SystemTime::now(),
            Source::Frozen(frozen) => frozen.now(),
            Source::Custom(now) => now(),
        }
    }

    /// Whether this is the operating system's clock.
    #[must_use]
    pub const fn is_system(&self) -> bool {
        matches!(self.source, Source::System)
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::System => f.write_str("Clock::System"),
            Source::Frozen(frozen) => f.debug_tuple("Clock::Frozen").field(frozen).finish(),
            Source::Custom(_) => f.write_str("Clock::Custom"),
        }
    }
}

impl From<FrozenClock> for Clock {
    fn from(frozen: FrozenClock) -> Self {
        Self {
            source: Source::Frozen(frozen),
        }
    }
}

impl From<&FrozenClock> for Clock {
    fn from(frozen: &FrozenClock) -> Self {
        Self::from(frozen.clone())
    }
}

/// A clock that stands still until it is told to move: the way tests drive time.
///
/// Clones share the same time, so a test keeps one handle and gives the cache another.
/// It starts at a fixed instant (2024-01-01T00:00:00Z) so that runs are reproducible.
///
/// ```
/// use std::time::Duration;
/// use stratacache_tier::{Clock, FrozenClock};
///
/// let frozen = FrozenClock::new();
/// let clock: Clock = frozen.clock(); // give this one to the cache
/// let t0 = clock.now();
/// frozen.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), t0 + Duration::from_secs(90));
/// ```
#[derive(Clone)]
pub struct FrozenClock {
    nanos_since_epoch: Arc<AtomicU64>,
}

/// 2024-01-01T00:00:00Z.
const DEFAULT_START_SECS: u64 = 1_704_067_200;

impl FrozenClock {
    /// A frozen clock at 2024-01-01T00:00:00Z.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::FrozenClock;
    ///
    /// let new_year_2024 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200);
    /// assert_eq!(FrozenClock::new().now(), new_year_2024);
    /// ```
    #[must_use]
    pub fn new() -> Self {
        Self::at(SystemTime::UNIX_EPOCH + Duration::from_secs(DEFAULT_START_SECS))
    }

    /// A frozen clock at `time` (times before the Unix epoch are clamped to it).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::FrozenClock;
    ///
    /// let t = SystemTime::UNIX_EPOCH + Duration::from_secs(42);
    /// assert_eq!(FrozenClock::at(t).now(), t);
    /// let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
    /// assert_eq!(FrozenClock::at(before_epoch).now(), SystemTime::UNIX_EPOCH);
    /// ```
    #[must_use]
    pub fn at(time: SystemTime) -> Self {
        Self {
            nanos_since_epoch: Arc::new(AtomicU64::new(to_nanos(time))),
        }
    }

    /// The time the clock shows.
    #[must_use]
    pub fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
            + Duration::from_nanos(self.nanos_since_epoch.load(Ordering::Acquire))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        // Saturating: a test that advances "forever" gets the far future, not a wrap.
        let _ = self
            .nanos_since_epoch
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(by))
            });
    }

    /// Sets the clock to `time`, forwards or backwards.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache_tier::FrozenClock;
    ///
    /// let frozen = FrozenClock::new();
    /// let t0 = frozen.now();
    /// frozen.set(t0 - Duration::from_secs(60)); // a host clock stepping back
    /// assert_eq!(frozen.now(), t0 - Duration::from_secs(60));
    /// ```
    pub fn set(&self, time: SystemTime) {
        self.nanos_since_epoch
            .store(to_nanos(time), Ordering::Release);
    }

    /// A [`Clock`] handle reading this frozen clock.
    #[must_use]
    pub fn clock(&self) -> Clock {
        Clock::from(self.clone())
    }
}

impl Default for FrozenClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FrozenClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrozenClock")
            .field("now", &self.now())
            .finish()
    }
}

fn to_nanos(time: SystemTime) -> u64 {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_only_moves_when_told() {
        let frozen = FrozenClock::new();
        let clock = frozen.clock();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        frozen.advance(Duration::from_millis(1_500));
        assert_eq!(clock.now(), t0 + Duration::from_millis(1_500));
        frozen.set(t0);
        assert_eq!(clock.now(), t0);
    }

    #[test]
    fn advancing_forever_saturates() {
        let frozen = FrozenClock::new();
        frozen.advance(Duration::MAX);
        frozen.advance(Duration::MAX);
        assert!(frozen.now() > SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn system_clock_tracks_the_os() {
        let clock = Clock::system();
        assert!(clock.is_system());
        let (before, read, after) = (SystemTime::now(), clock.now(), SystemTime::now());
        // Neither ahead of the OS nor behind it.
        assert!(
            read >= before && read <= after,
            "{read:?} outside {before:?}..{after:?}"
        );
    }

    #[test]
    fn custom_clock_is_called() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(42);
        let clock = Clock::from_fn(move || t);
        assert_eq!(clock.now(), t);
        assert!(!clock.is_system());
    }
}
