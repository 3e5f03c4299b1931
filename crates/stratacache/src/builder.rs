use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use stratacache_memory::MemoryTierBuilder;
use stratacache_tier::{CacheTier, Clock, Error, ErrorKind};

use crate::cache::Cache;
use crate::coalesce::Coalescer;
use crate::fallback::Fallback;
use crate::generation::Generations;
use crate::inner::Inner;
use crate::key_lock::KeyLocks;
use crate::level::Level;
use crate::policy::InsertPolicy;
use crate::refresh::{Refresher, TimeToRefresh};
use crate::spec::{LevelSpec, Storage};
use crate::telemetry::{CacheEvent, Handler, Telemetry};

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Starts configuring a cache: an unbounded memory L1 and the system clock until told
    /// otherwise.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// let cache: Cache<u64, String> = Cache::builder().name("users").build()?;
    /// assert_eq!(cache.name(), "users");
    /// assert_eq!(cache.tier_names(), ["l1"]);
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::new()
    }
}

/// Configures a [`Cache`]: its L1 tier, the fallback tiers below it, and the settings of
/// the whole cache. Start with [`Cache::builder`].
///
/// Tiers are consulted in the order they are added: L1 (memory unless
/// [`tier`](Self::tier) says otherwise), then each [`fallback`](Self::fallback).
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Cache, Fallback};
///
/// let cache: Cache<u64, String> = Cache::builder()
///     .name("orders")
///     .memory(|tier| tier.max_capacity(10_000)) // L1
///     .ttl(Duration::from_secs(30)) // L1's TTL: it applies to the tier above it
///     .fallback(Fallback::memory(|tier| tier).ttl(Duration::from_secs(600))) // L2
///     .stampede_protection(true)
///     .build()?;
/// assert_eq!(cache.tier_names(), ["l1", "l2"]);
/// # Ok::<(), stratacache::Error>(())
/// ```
#[must_use]
pub struct CacheBuilder<K, V> {
    name: Option<String>,
    clock: Clock,
    strict: bool,
    l1: LevelSpec<K, V>,
    fallbacks: Vec<LevelSpec<K, V>>,
    stampede_protection: bool,
    time_to_refresh: Option<TimeToRefresh<K, V>>,
    telemetry: bool,
    handler: Option<Handler>,
    track_evictions: bool,
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new() -> Self {
        Self {
            name: None,
            clock: Clock::system(),
            strict: false,
            l1: LevelSpec::new(Storage::memory(|tier| tier)),
            fallbacks: Vec::new(),
            stampede_protection: false,
            time_to_refresh: None,
            telemetry: true,
            handler: None,
            track_evictions: false,
        }
    }

    /// Whether concurrent misses of one key are coalesced (off by default): one lookup of
    /// the fallback tiers and one load run, and every waiting caller gets their result,
    /// errors included. Hits never pay for it.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stratacache::Error> {
    /// let cache: Cache<u64, String> = Cache::builder().stampede_protection(true).build()?;
    /// let slow_load = || async {
    ///     tokio::task::yield_now().await; // the database takes a while
    ///     "row 1".to_string()
    /// };
    /// let (a, b) = tokio::join!(
    ///     cache.get_or_insert(&1, slow_load),
    ///     cache.get_or_insert(&1, slow_load),
    /// );
    /// assert_eq!(a?, b?);
    /// let stats = cache.stats();
    /// assert_eq!((stats.loads, stats.coalesced_waits), (1, 1), "one load, one waiter");
    /// # Ok(()) }
    /// ```
    pub fn stampede_protection(mut self, enabled: bool) -> Self {
        self.stampede_protection = enabled;
        self
    }

    /// Refresh L1 entries in the background once they reach an age (see
    /// [`TimeToRefresh`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, FrozenClock, TimeToRefresh};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stratacache::Error> {
    /// let clock = FrozenClock::new();
    /// let refresh = TimeToRefresh::new(Duration::from_secs(60))
    ///     .loader(|_key: u64| async { Ok::<_, std::io::Error>(Some("fresh")) });
    /// let cache: Cache<u64, &str> = Cache::builder()
    ///     .clock(&clock)
    ///     .ttl(Duration::from_secs(300))
    ///     .time_to_refresh(refresh)
    ///     .build()?;
    /// cache.insert(1, "old").await?;
    /// clock.advance(Duration::from_secs(61));
    /// assert_eq!(cache.get(&1).await?, Some("old"), "stale: served at once, refresh started");
    /// let mut now = None;
    /// for _ in 0..100 {
    ///     tokio::task::yield_now().await; // let the background refresh run
    ///     now = cache.get(&1).await?;
    ///     if now == Some("fresh") {
    ///         break;
    ///     }
    /// }
    /// assert_eq!(now, Some("fresh"));
    /// # Ok(()) }
    /// ```
    pub fn time_to_refresh(mut self, time_to_refresh: TimeToRefresh<K, V>) -> Self {
        self.time_to_refresh = Some(time_to_refresh);
        self
    }

    /// Whether the cache counts and emits events (on by default). Off, [`Cache::stats`]
    /// stays at zero and no event is emitted.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, u64> = Cache::builder().telemetry(false).build()?;
    /// cache.insert(1, 1).await?;
    /// cache.get(&1).await?;
    /// assert_eq!(cache.stats().tiers[0].hits, 0, "nothing is counted");
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn telemetry(mut self, enabled: bool) -> Self {
        self.telemetry = enabled;
        self
    }

    /// Count evictions of the memory tiers this builder creates, and emit their events.
    ///
    /// Off by default (and on whenever an [`event_handler`](Self::event_handler) is set):
    /// it installs a moka removal listener, and moka then allocates once per
    /// housekeeping pass (about one allocation per 128 reads), which would break the
    /// allocation-free hit.
    pub fn track_evictions(mut self, track: bool) -> Self {
        self.track_evictions = track;
        self
    }

    /// Receives every tier and operation event, with request ids correlating them. It is
    /// called inline on the caller's task: keep it short and non-blocking.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use stratacache::{Cache, CacheEvent};
    ///
    /// # futures::executor::block_on(async {
    /// let completed = Arc::new(AtomicU64::new(0));
    /// let counter = Arc::clone(&completed);
    /// let cache: Cache<u64, u64> = Cache::builder()
    ///     .event_handler(move |event| {
    ///         if let CacheEvent::Operation(_) = event {
    ///             counter.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build()?;
    /// cache.insert(1, 1).await?;
    /// cache.get(&1).await?;
    /// assert_eq!(completed.load(Ordering::Relaxed), 2);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn event_handler(mut self, handler: impl Fn(&CacheEvent) + Send + Sync + 'static) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// The cache's name in stats and events (`"default"` if not set).
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().name("sessions").build()?;
    /// assert_eq!(cache.name(), "sessions");
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The clock every time-based decision reads, in every tier (the system clock by
    /// default). Tests pass a [`FrozenClock`](crate::FrozenClock).
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, Fallback, FrozenClock};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = FrozenClock::new();
    /// let cache: Cache<u64, &str> = Cache::builder()
    ///     .clock(&clock)
    ///     .ttl(Duration::from_secs(10))
    ///     .fallback(Fallback::memory(|tier| tier).ttl(Duration::from_secs(60)))
    ///     .build()?;
    /// cache.insert(1, "one").await?;
    /// clock.advance(Duration::from_secs(10)); // L1's copy is gone, L2's is live
    /// assert_eq!(cache.get(&1).await?, Some("one"));
    /// clock.advance(Duration::from_secs(50)); // both are gone
    /// assert_eq!(cache.get(&1).await?, None);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Return tier failures to the caller instead of reading them as misses.
    ///
    /// ```
    /// use stratacache::{Cache, ErrorKind, Fallback};
    /// # use stratacache::{CacheEntry, CacheTier, Error};
    /// # struct Down;
    /// # fn down<T>() -> Result<T, Error> { Err(Error::new(ErrorKind::Unavailable, "refused")) }
    /// # impl CacheTier<u64, u64> for Down {
    /// #     async fn get(&self, _: &u64) -> Result<Option<CacheEntry<u64>>, Error> { down() }
    /// #     async fn insert(&self, _: u64, _: CacheEntry<u64>, _: Option<std::time::Duration>)
    /// #         -> Result<(), Error> { down() }
    /// #     async fn invalidate(&self, _: &u64) -> Result<(), Error> { down() }
    /// #     async fn clear(&self) -> Result<(), Error> { down() }
    /// # }
    ///
    /// # futures::executor::block_on(async {
    /// // `Down` is a tier whose every call fails, like a Redis server that is down.
    /// let lenient: Cache<u64, u64> = Cache::builder().fallback(Fallback::tier(Down)).build()?;
    /// assert_eq!(lenient.get(&1).await?, None, "a failure reads as a (counted) miss");
    /// assert_eq!(lenient.stats().tiers[1].errors, 1);
    ///
    /// let strict: Cache<u64, u64> =
    ///     Cache::builder().strict(true).fallback(Fallback::tier(Down)).build()?;
    /// assert_eq!(strict.get(&1).await.unwrap_err().kind(), ErrorKind::Unavailable);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// L1 is an in-process memory tier that this builder makes, configured by
    /// `configure` (capacity, weigher, listeners). Without this call L1 is an unbounded
    /// one. Its entries live by the cache's TTL and clock.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// let cache: Cache<u64, u64> =
    ///     Cache::builder().memory(|tier| tier.max_capacity(10_000)).build()?;
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    pub fn memory(
        self,
        configure: impl FnOnce(MemoryTierBuilder<K, V>) -> MemoryTierBuilder<K, V> + Send + 'static,
    ) -> Self {
        self.l1_storage(Storage::memory(configure))
    }

    /// L1 is a tier made elsewhere: any [`CacheTier`]. A
    /// [`MemoryTier`](crate::MemoryTier) keeps the synchronous, allocation-free hit path
    /// (but only tiers the builder makes report evictions).
    ///
    /// ```
    /// use stratacache::{Cache, MemoryTier};
    ///
    /// let l1 = MemoryTier::new(1_000);
    /// let cache: Cache<u64, u64> = Cache::builder().tier(l1.clone()).build()?;
    /// # futures::executor::block_on(async {
    /// cache.insert(1, 10).await?;
    /// assert_eq!(l1.lookup(&1).map(|entry| *entry.value()), Some(10));
    /// # Ok::<(), stratacache::Error>(())
    /// # })?;
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    pub fn tier(self, tier: impl CacheTier<K, V>) -> Self {
        self.l1_storage(Storage::tier(tier))
    }

    fn l1_storage(mut self, storage: Storage<K, V>) -> Self {
        self.l1.storage = storage;
        self
    }

    /// How long L1 keeps a copy after storing it. A copy never outlives the entry's own
    /// TTL.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, FrozenClock};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = FrozenClock::new();
    /// let cache: Cache<u64, &str> =
    ///     Cache::builder().clock(&clock).ttl(Duration::from_secs(10)).build()?;
    /// cache.insert(1, "one").await?;
    /// clock.advance(Duration::from_secs(9));
    /// assert_eq!(cache.get(&1).await?, Some("one"));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(cache.get(&1).await?, None);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.l1.ttl = Some(ttl);
        self
    }

    /// Which entries L1 stores.
    ///
    /// ```
    /// use stratacache::{Cache, Fallback, InsertPolicy};
    ///
    /// # futures::executor::block_on(async {
    /// // L1 as a pass-through: every read goes to L2.
    /// let cache: Cache<u64, &str> = Cache::builder()
    ///     .insert_policy(InsertPolicy::never())
    ///     .fallback(Fallback::memory(|tier| tier))
    ///     .build()?;
    /// cache.insert(1, "one").await?;
    /// assert_eq!(cache.get(&1).await?, Some("one"));
    /// assert_eq!(cache.l1_len(), Some(0));
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn insert_policy(mut self, policy: InsertPolicy<V>) -> Self {
        self.l1.insert_policy = policy;
        self
    }

    /// Adds a tier under the ones configured so far: the first call adds L2, the next L3.
    ///
    /// ```
    /// use stratacache::{Cache, CacheEntry, Fallback, MemoryTier};
    ///
    /// # futures::executor::block_on(async {
    /// let l2 = MemoryTier::new(1_000);
    /// let cache: Cache<u64, &str> = Cache::builder()
    ///     .fallback(Fallback::tier(l2.clone())) // L2
    ///     .fallback(Fallback::memory(|tier| tier)) // L3
    ///     .build()?;
    /// assert_eq!(cache.tier_names(), ["l1", "l2", "l3"]);
    /// l2.store(1, CacheEntry::new("one", cache.clock().now(), None), None);
    /// assert_eq!(cache.get(&1).await?, Some("one")); // found in L2...
    /// assert_eq!(cache.l1_len(), Some(1)); // ...and promoted into L1
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn fallback(mut self, fallback: Fallback<K, V>) -> Self {
        self.fallbacks.push(fallback.spec);
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when a setting cannot work, such as a zero TTL.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, ErrorKind, TimeToRefresh};
    ///
    /// let zero_ttl = Cache::<u64, u64>::builder().ttl(Duration::ZERO).build();
    /// assert_eq!(zero_ttl.unwrap_err().kind(), ErrorKind::Config);
    ///
    /// // A refresh needs a tier below L1 or a loader to refresh from.
    /// let nothing_to_refresh_from = Cache::<u64, u64>::builder()
    ///     .time_to_refresh(TimeToRefresh::new(Duration::from_secs(60)))
    ///     .build();
    /// assert_eq!(nothing_to_refresh_from.unwrap_err().kind(), ErrorKind::Config);
    /// ```
    pub fn build(self) -> Result<Cache<K, V>, Error> {
        let clock = self.clock;
        let name: Arc<str> = self.name.unwrap_or_else(|| "default".to_string()).into();
        let track_evictions = self.telemetry && (self.track_evictions || self.handler.is_some());
        let telemetry = Arc::new(Telemetry::new(name, self.telemetry, self.handler));
        let levels = std::iter::once(self.l1)
            .chain(self.fallbacks)
            .enumerate()
            .map(|(depth, spec)| spec.build(depth, &telemetry, track_evictions))
            .collect::<Result<Box<[_]>, _>>()?;
        let refresher = match self.time_to_refresh {
            Some(config) => Some(Refresher::new(check_refresh(config, &levels)?)),
            None => None,
        };
        let l1_judges_expiry = !clock.is_system() || levels[0].memory().is_none();
        // A lone memory L1 changes atomically; anything else is serialized per key.
        let needs_key_locks = levels.len() > 1 || levels[0].memory().is_none();
        let inner = Inner {
            clock,
            strict: self.strict,
            levels,
            generations: Generations::new(),
            key_locks: needs_key_locks.then(KeyLocks::new),
            telemetry,
            l1_judges_expiry,
            coalescer: self.stampede_protection.then(Coalescer::new),
            refresher,
        };
        Ok(Cache {
            inner: Arc::new(inner),
        })
    }
}

/// A refresh must have something to refresh from and a chance to run before expiry.
fn check_refresh<K, V>(
    config: TimeToRefresh<K, V>,
    levels: &[Level<K, V>],
) -> Result<TimeToRefresh<K, V>, Error> {
    let invalid = |message: String| Err(Error::new(ErrorKind::Config, message));
    if config.after.is_zero() {
        return invalid("time_to_refresh is zero: every hit would start a refresh".into());
    }
    if levels.len() < 2 && config.reload.is_none() {
        return invalid(
            "time_to_refresh needs a fallback tier or a refresh loader to refresh from".into(),
        );
    }
    if let Some(ttl) = levels[0].ttl.filter(|ttl| *ttl <= config.after) {
        return invalid(format!(
            "time_to_refresh ({:?}) must be shorter than the L1 TTL ({ttl:?})",
            config.after
        ));
    }
    Ok(config)
}

impl<K, V> fmt::Debug for CacheBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("name", &self.name)
            .field("clock", &self.clock)
            .field("strict", &self.strict)
            .field("l1", &self.l1)
            .field("fallbacks", &self.fallbacks)
            .field("stampede_protection", &self.stampede_protection)
            .field("time_to_refresh", &self.time_to_refresh)
            .field("telemetry", &self.telemetry)
            .field("event_handler", &self.handler.is_some())
            .field("track_evictions", &self.track_evictions)
            .finish()
    }
}
