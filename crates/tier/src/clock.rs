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

    /// The current time to within about a millisecond, for decisions that run on every
    /// cache hit (is it expired, is it due for a refresh): on the system clock, a
    /// timestamp a background thread refreshes every millisecond (one thread per
    /// process, started by the first call, waking every millisecond for the life of the
    /// process), read with one atomic load instead of a system call; under heavy load it
    /// may lag a few milliseconds more. A process forked after the first call has no
    /// ticker: call it first in the child. Other clocks answer [`now`](Self::now).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::{Clock, FrozenClock};
    ///
    /// let system = Clock::system();
    /// let lag = system.now().duration_since(system.recent()).unwrap_or_default();
    /// assert!(lag < Duration::from_secs(1));
    /// let frozen = FrozenClock::new();
    /// assert_eq!(Clock::from(&frozen).recent(), frozen.now(), "exact in tests");
    /// ```
    #[must_use]
    #[inline]
    pub fn recent(&self) -> SystemTime {
        match &self.source {
            Source::System => coarse::recent(),
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

/// The system clock read by a ticker thread, for [`Clock::recent`].
mod coarse {
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, SystemTime};

    const TICK: Duration = Duration::from_millis(1);

    static NANOS: AtomicU64 = AtomicU64::new(0);
    /// Whether the ticker runs (it could not be started: every read asks the system).
    static TICKING: AtomicBool = AtomicBool::new(false);
    static START: Once = Once::new();

    fn store_now() {
        let since = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let nanos = u64::try_from(since.as_nanos()).unwrap_or(u64::MAX);
        NANOS.store(nanos, Ordering::Relaxed);
    }

    fn start() {
        store_now();
        let ticker = std::thread::Builder::new()
            .name("stratacache-clock".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(TICK);
                    store_now();
                }
            });
        TICKING.store(ticker.is_ok(), Ordering::Release);
    }

    #[inline]
    pub(super) fn recent() -> SystemTime {
        START.call_once(start);
        if !TICKING.load(Ordering::Relaxed) {
            return SystemTime::now();
        }
        SystemTime::UNIX_EPOCH + Duration::from_nanos(NANOS.load(Ordering::Relaxed))
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
