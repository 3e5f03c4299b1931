use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use stratacache_memory::{EvictionCause, MemoryTier, MemoryTierBuilder};
use stratacache_tier::{CacheTier, Clock, Error, ErrorKind};

use crate::coalesce::Coalescer;
use crate::generation::Generations;
use crate::inner::Inner;
use crate::key_lock::KeyLocks;
use crate::level::{Level, TierHandle};
use crate::refresh::Refresher;
use crate::telemetry::{CacheEvent, Handler, Telemetry, TierCounters};
use crate::{Cache, Fallback, InsertPolicy, PromotionPolicy, TimeToRefresh};

type BuildWithClock<K, V> = Box<dyn FnOnce(&Clock) -> TierHandle<K, V> + Send>;

type ConfigureMemory<K, V> =
    Box<dyn FnOnce(MemoryTierBuilder<K, V>) -> MemoryTierBuilder<K, V> + Send>;

/// Where a level keeps its entries, before the cache is built.
pub(crate) enum Storage<K, V> {
    /// A memory tier, built with the cache's clock once that is known.
    Memory(ConfigureMemory<K, V>),
    /// A tier that needs the cache's clock, built once that is known.
    #[cfg_attr(
        not(feature = "serialize"),
        expect(dead_code, reason = "only remote tiers need it")
    )]
    WithClock(BuildWithClock<K, V>),
    Tier(TierHandle<K, V>),
}

impl<K, V> Storage<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn memory() -> Self {
        Self::Memory(Box::new(|builder| builder))
    }

    pub(crate) fn memory_with(
        configure: impl FnOnce(MemoryTierBuilder<K, V>) -> MemoryTierBuilder<K, V> + Send + 'static,
    ) -> Self {
        Self::Memory(Box::new(configure))
    }

    pub(crate) fn tier(tier: impl CacheTier<K, V>) -> Self {
        Self::Tier(TierHandle::Dyn(Arc::new(tier)))
    }

    fn build(
        self,
        clock: &Clock,
        name: &Arc<str>,
        counters: &Arc<TierCounters>,
        telemetry: &Arc<Telemetry>,
        track_evictions: bool,
    ) -> TierHandle<K, V> {
        match self {
            Self::Memory(configure) => {
                let mut builder = configure(MemoryTier::builder().clock(clock.clone()));
                if track_evictions {
                    let (name, counters, telemetry) = (
                        Arc::clone(name),
                        Arc::clone(counters),
                        Arc::clone(telemetry),
                    );
                    builder =
                        builder.eviction_listener(move |_key, _entry, cause: EvictionCause| {
                            if cause.was_evicted() {
                                telemetry.evicted(&name, &counters);
                            }
                        });
                }
                TierHandle::Memory(builder.build())
            }
            Self::Tier(handle) => handle,
            Self::WithClock(build) => build(clock),
        }
    }
}

/// The settings of one level, before the cache is built.
pub(crate) struct LevelSpec<K, V> {
    pub(crate) storage: Storage<K, V>,
    pub(crate) name: Option<String>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) insert_policy: InsertPolicy<V>,
    pub(crate) promotion: PromotionPolicy<V>,
}

impl<K, V> LevelSpec<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(storage: Storage<K, V>) -> Self {
        Self {
            storage,
            name: None,
            ttl: None,
            insert_policy: InsertPolicy::always(),
            promotion: PromotionPolicy::always(),
        }
    }

    fn build(
        self,
        depth: usize,
        clock: &Clock,
        telemetry: &Arc<Telemetry>,
        track_evictions: bool,
    ) -> Result<Level<K, V>, Error> {
        let name: Arc<str> = match self.name {
            Some(name) => name.into(),
            None => format!("l{}", depth + 1).into(),
        };
        if self.ttl == Some(Duration::ZERO) {
            return Err(Error::new(
                ErrorKind::Config,
                format!("tier `{name}` has a zero TTL: it could never serve an entry"),
            ));
        }
        let counters = Arc::default();
        Ok(Level {
            tier: self
                .storage
                .build(clock, &name, &counters, telemetry, track_evictions),
            name,
            ttl: self.ttl,
            insert_policy: self.insert_policy,
            promotion: self.promotion,
            counters,
        })
    }
}

impl<K, V> fmt::Debug for LevelSpec<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let storage = match &self.storage {
            Storage::Memory(_) | Storage::Tier(TierHandle::Memory(_)) => "memory",
            Storage::Tier(TierHandle::Dyn(_)) | Storage::WithClock(_) => "tier",
        };
        f.debug_struct("LevelSpec")
            .field("storage", &storage)
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("insert_policy", &self.insert_policy)
            .field("promotion", &self.promotion)
            .finish()
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
            l1: LevelSpec::new(Storage::memory()),
            fallbacks: Vec::new(),
            stampede_protection: false,
            time_to_refresh: None,
            telemetry: true,
            handler: None,
            track_evictions: false,
        }
    }

    /// Coalesce concurrent misses of one key: one lookup of the fallback tiers and one
    /// load run, and every waiting caller gets their result, errors included. Hits never
    /// pay for it.
    pub fn stampede_protection(mut self) -> Self {
        self.stampede_protection = true;
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

    /// L1 is an unbounded in-process memory tier (the default).
    pub fn memory(self) -> Self {
        self.l1_storage(Storage::memory())
    }

    /// L1 is an in-process memory tier configured by `configure`, which receives a
    /// builder already holding the cache's clock.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// let cache: Cache<u64, u64> =
    ///     Cache::builder().memory_with(|tier| tier.max_capacity(10_000)).build()?;
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    pub fn memory_with(
        self,
        configure: impl FnOnce(MemoryTierBuilder<K, V>) -> MemoryTierBuilder<K, V> + Send + 'static,
    ) -> Self {
        self.l1_storage(Storage::memory_with(configure))
    }

    /// L1 is a memory tier built beforehand. It keeps its own clock for reclaiming
    /// entries; the cache's clock still judges what is served. A hit stays on the
    /// synchronous, allocation-free path.
    pub fn memory_tier(self, tier: MemoryTier<K, V>) -> Self {
        self.l1_storage(Storage::Tier(TierHandle::Memory(tier)))
    }

    /// L1 is any [`CacheTier`].
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

    /// Adds a tier (and the tiers chained below it) under the ones configured so far.
    pub fn fallback(mut self, fallback: Fallback<K, V>) -> Self {
        let mut next = Some(Box::new(fallback));
        while let Some(fallback) = next {
            let Fallback { spec, next: below } = *fallback;
            self.fallbacks.push(spec);
            next = below;
        }
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
            .map(|(depth, spec)| spec.build(depth, &clock, &telemetry, track_evictions))
            .collect::<Result<Box<[_]>, _>>()?;
        let refresher = match self.time_to_refresh {
            Some(config) => Some(Refresher::new(check_refresh(config, &levels)?)),
            None => None,
        };
        let l1_judges_expiry = levels[0]
            .memory()
            .is_none_or(|memory| !(clock.is_system() && memory.clock().is_system()));
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
