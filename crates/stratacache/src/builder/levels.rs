//! The tiers: L1 (a memory tier the builder makes, or any tier), its TTL and insert
//! policy, and the fallback tiers below it, in order.

use std::hash::Hash;
use std::time::Duration;

use stratacache_memory::MemoryTierBuilder;
use stratacache_tier::CacheTier;

use super::CacheBuilder;
use crate::fallback::Fallback;
use crate::policy::InsertPolicy;
use crate::spec::Storage;

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
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
}
