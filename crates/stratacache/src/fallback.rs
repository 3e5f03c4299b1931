use std::fmt;
use std::hash::Hash;
#[cfg(feature = "serialize")]
use std::sync::Arc;
use std::time::Duration;

use stratacache_memory::MemoryTierBuilder;
use stratacache_tier::CacheTier;

use crate::policy::{InsertPolicy, PromotionPolicy};
use crate::spec::{LevelSpec, Storage};

/// A tier below L1, with the settings that belong to it. Add them in order with
/// [`CacheBuilder::fallback`](crate::CacheBuilder::fallback).
///
/// Only per-tier settings live here: name, TTL, insert and promotion policies. Settings
/// of the whole cache (clock, strictness, its name) exist only on
/// [`CacheBuilder`](crate::CacheBuilder), so they cannot be set where they would not apply.
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Cache, Fallback, PromotionPolicy};
///
/// let cache: Cache<u64, String> = Cache::builder()
///     .ttl(Duration::from_secs(30))
///     .fallback(Fallback::memory(|tier| tier).ttl(Duration::from_secs(300)))
///     .fallback(
///         Fallback::memory(|tier| tier.max_capacity(1_000_000))
///             .name("big")
///             .promotion(PromotionPolicy::never()),
///     )
///     .build()?;
/// assert_eq!(cache.tier_names(), ["l1", "l2", "big"]);
/// # Ok::<(), stratacache::Error>(())
/// ```
#[must_use]
pub struct Fallback<K, V> {
    pub(crate) spec: LevelSpec<K, V>,
}

impl<K, V> Fallback<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An in-process tier that the builder makes, configured by `configure` (`|tier|
    /// tier` for an unbounded one). Its entries live by this fallback's TTL and the
    /// cache's clock.
    pub fn memory(
        configure: impl FnOnce(MemoryTierBuilder<K, V>) -> MemoryTierBuilder<K, V> + Send + 'static,
    ) -> Self {
        Self::with(Storage::memory(configure))
    }

    /// A tier made elsewhere: any [`CacheTier`] (a [`MemoryTier`](crate::MemoryTier), a
    /// nested [`Cache`](crate::Cache), a `ServiceTier`).
    ///
    /// ```
    /// use stratacache::{Cache, Fallback, MemoryTier};
    ///
    /// # futures::executor::block_on(async {
    /// let shared = MemoryTier::new(100_000); // say, one tier shared by several caches
    /// let cache: Cache<u64, &str> =
    ///     Cache::builder().fallback(Fallback::tier(shared.clone())).build()?;
    /// cache.insert(1, "one").await?;
    /// assert_eq!(shared.lookup(&1).map(|entry| *entry.value()), Some("one"));
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn tier(tier: impl CacheTier<K, V>) -> Self {
        Self::with(Storage::tier(tier))
    }

    /// A bytes-level store (Redis, memcached) behind the codec boundary: the postcard
    /// codec, schema version 0. For another codec or schema version, pass a
    /// [`Remote`](crate::Remote) built with them.
    #[cfg(feature = "serialize")]
    pub fn remote<S, C>(remote: impl Into<crate::Remote<S, C>>) -> Self
    where
        S: stratacache_tier::ByteStore,
        C: crate::Codec<K> + crate::Codec<V>,
    {
        let remote = remote.into();
        let markers = crate::codec::StoreMarkers {
            store: Arc::clone(&remote.store),
            transforms: remote.transforms.clone(),
        };
        let mut fallback = Self::tier(remote.into_tier::<K, V>());
        fallback.spec.markers = Some(Arc::new(markers));
        fallback
    }

    fn with(storage: Storage<K, V>) -> Self {
        Self {
            spec: LevelSpec::new(storage),
        }
    }

    /// The tier's name in stats and events (`l2`, `l3`, … by default).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.spec.name = Some(name.into());
        self
    }

    /// How long this tier keeps a copy after storing it. A copy never outlives the
    /// entry's own TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.spec.ttl = Some(ttl);
        self
    }

    /// Which entries this tier stores.
    pub fn insert_policy(mut self, policy: InsertPolicy<V>) -> Self {
        self.spec.insert_policy = policy;
        self
    }

    /// Which hits in this tier are copied into the tiers above it.
    pub fn promotion(mut self, policy: PromotionPolicy<V>) -> Self {
        self.spec.promotion = policy;
        self
    }

    /// A circuit breaker for this tier: after `failures` (at least 1) transient failures
    /// in a row (timeouts, unavailable), the tier is not called for `cool_down` on the
    /// cache's clock. Its reads are misses and its writes report
    /// [`ErrorKind::CircuitOpen`](crate::ErrorKind::CircuitOpen) at once, instead of each
    /// waiting out a timeout; then one call probes it, and a success closes the circuit.
    /// The tag markers this tier keeps go through the same breaker: while it is open, a
    /// tagged read judges by what the instance knew, and an invalidation's marker waits
    /// to be written (both counted in [`CacheStats::tag_errors`](crate::CacheStats::tag_errors)).
    /// The state is in [`TierStats::circuit`](crate::TierStats::circuit); turned-away
    /// calls are counted in [`TierStats::short_circuits`](crate::TierStats::short_circuits).
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::mock::{MockTier, TierOp};
    /// use stratacache::{Cache, CircuitState, ErrorKind, Fallback, FrozenClock};
    ///
    /// # futures::executor::block_on(async {
    /// let (clock, redis) = (FrozenClock::new(), MockTier::<u64, String>::new());
    /// let cache: Cache<u64, String> = Cache::builder()
    ///     .clock(&clock)
    ///     .fallback(Fallback::tier(redis.clone()).circuit_breaker(3, Duration::from_secs(5)))
    ///     .build()?;
    /// redis.fail(TierOp::Get, ErrorKind::Timeout);
    /// for id in 0..10 {
    ///     assert_eq!(cache.get(&id).await?, None, "a failing tier reads as a miss");
    /// }
    /// assert_eq!(redis.count(TierOp::Get), 3, "not called once the circuit opened");
    /// let l2 = &cache.stats().tiers[1];
    /// assert_eq!((l2.circuit, l2.errors, l2.short_circuits), (Some(CircuitState::Open), 3, 7));
    ///
    /// redis.heal();
    /// clock.advance(Duration::from_secs(5));
    /// cache.get(&1).await?; // the probe
    /// assert_eq!(cache.stats().tiers[1].circuit, Some(CircuitState::Closed));
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn circuit_breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.spec.breaker = Some((failures.max(1), cool_down));
        self
    }

    /// How many changes (writes, invalidations) this tier could not take may wait for
    /// it to answer again, latest per key; `0` turns auto-recovery off. On by default
    /// for a remote tier (10 000), off for a memory tier.
    ///
    /// When the tier fails a write because it is down (a timeout, unreachable, its
    /// circuit open), the change waits: the write reports it as
    /// [`TierWriteResult::Queued`](crate::TierWriteResult::Queued), the cache reads the
    /// key in that tier as the change says (the new value, or nothing: a replaced value
    /// is not promoted back), and the first call the tier answers again starts a replay
    /// in the background (on the tokio runtime). A change is dropped at replay if the
    /// tier already holds something newer (another instance wrote it). A write the tier
    /// times out on or fails otherwise than by being down, just after answering the
    /// replay's read (a value too large for its timeout, say), is given up rather than
    /// sent at every replay, as is one with nothing left to store (expired meanwhile): a
    /// removal of the key, dated then, waits in its place, so that the tier keeps
    /// nothing the write replaced (a miss, counted in `recovery_dropped`; one such
    /// failure is enough). A full queue drops new changes, counted in
    /// [`CacheStats::recovery_dropped`](crate::CacheStats::recovery_dropped). Strict
    /// caches return the failure instead.
    pub fn auto_recovery(mut self, capacity: usize) -> Self {
        self.spec.recovery = Some(capacity);
        self
    }
}

impl<K, V> fmt::Debug for Fallback<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("spec", &self.spec)
            .finish()
    }
}
