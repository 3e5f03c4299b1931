use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use stratacache_memory::MemoryTierBuilder;
use stratacache_tier::CacheTier;

use crate::builder::{LevelSpec, Storage};
use crate::{InsertPolicy, PromotionPolicy};

/// A tier below L1, with the settings that belong to it, and optionally the tier below it.
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
///     .fallback(
///         Fallback::memory()
///             .name("l2")
///             .ttl(Duration::from_secs(300))
///             .fallback(Fallback::memory().name("l3").promotion(PromotionPolicy::never())),
///     )
///     .build()?;
/// assert_eq!(cache.tier_names(), ["l1", "l2", "l3"]);
/// # Ok::<(), stratacache::Error>(())
/// ```
#[must_use]
pub struct Fallback<K, V> {
    pub(crate) spec: LevelSpec<K, V>,
    pub(crate) next: Option<Box<Fallback<K, V>>>,
}

impl<K, V> Fallback<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An unbounded in-process tier that reads the cache's clock.
    pub fn memory() -> Self {
        Self::with(Storage::memory())
    }

    /// An in-process tier configured by `configure`, which receives a builder already
    /// holding the cache's clock.
    pub fn memory_with(
        configure: impl FnOnce(MemoryTierBuilder<K, V>) -> MemoryTierBuilder<K, V> + Send + 'static,
    ) -> Self {
        Self::with(Storage::memory_with(configure))
    }

    /// Any [`CacheTier`].
    pub fn tier(tier: impl CacheTier<K, V>) -> Self {
        Self::with(Storage::tier(tier))
    }

    /// A bytes-level store (Redis, memcached) behind the codec boundary: see [`Remote`](crate::Remote).
    #[cfg(feature = "serialize")]
    pub fn remote<S, C>(remote: crate::Remote<S, C>) -> Self
    where
        S: stratacache_tier::ByteStore,
        C: crate::Codec<K> + crate::Codec<V>,
    {
        Self::with(Storage::WithClock(Box::new(move |clock| {
            crate::level::TierHandle::Dyn(std::sync::Arc::new(
                remote.into_tier::<K, V>(clock.clone()),
            ))
        })))
    }

    fn with(storage: Storage<K, V>) -> Self {
        Self {
            spec: LevelSpec::new(storage),
            next: None,
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

    /// The tier consulted when this one misses. Calling it again replaces the previous one.
    pub fn fallback(mut self, next: Self) -> Self {
        self.next = Some(Box::new(next));
        self
    }
}

impl<K, V> fmt::Debug for Fallback<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("spec", &self.spec)
            .field("next", &self.next)
            .finish()
    }
}
