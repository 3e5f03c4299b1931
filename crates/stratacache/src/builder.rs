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
    pub fn stampede_protection(mut self, enabled: bool) -> Self {
        self.stampede_protection = enabled;
        self
    }

    /// Refresh L1 entries in the background once they reach an age (see
    /// [`TimeToRefresh`]).
    pub fn time_to_refresh(mut self, time_to_refresh: TimeToRefresh<K, V>) -> Self {
        self.time_to_refresh = Some(time_to_refresh);
        self
    }

    /// Whether the cache counts and emits events (on by default). Off, [`Cache::stats`]
    /// stays at zero and no event is emitted.
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
    pub fn event_handler(mut self, handler: impl Fn(&CacheEvent) + Send + Sync + 'static) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// The cache's name in stats and events (`"default"` if not set).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The clock every time-based decision reads, in every tier (the system clock by
    /// default). Tests pass a [`FrozenClock`](crate::FrozenClock).
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Return tier failures to the caller instead of reading them as misses.
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
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.l1.ttl = Some(ttl);
        self
    }

    /// Which entries L1 stores.
    pub fn insert_policy(mut self, policy: InsertPolicy<V>) -> Self {
        self.l1.insert_policy = policy;
        self
    }

    /// Adds a tier under the ones configured so far: the first call adds L2, the next L3.
    pub fn fallback(mut self, fallback: Fallback<K, V>) -> Self {
        self.fallbacks.push(fallback.spec);
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when a setting cannot work, such as a zero TTL.
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
