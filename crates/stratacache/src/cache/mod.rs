//! The `Cache` type: its contract, and what it tells about itself. Its operations are
//! grouped by kind in the files beside this one.

mod batches;
mod loaders;
mod lookups;
mod with_options;
mod writes;

pub use lookups::EntryInfo;
pub use with_options::WithOptions;

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use stratacache_tier::Clock;

use crate::inner::Inner;
use crate::telemetry::{CacheStats, TierStats};

/// A multi-tier cache: one type whatever its tiers, cheap to clone, `Send + Sync`.
///
/// Build one with [`Cache::builder`]. Every operation looks at L1 first; a hit in a
/// memory L1 answers without allocating or awaiting. A miss falls through the
/// [fallback](crate::Fallback) tiers in order, and a hit below L1 is promoted into the
/// tiers above it (by their [`PromotionPolicy`](crate::PromotionPolicy)).
///
/// # Semantics
///
/// [`WriteOutcome`]: crate::WriteOutcome
///
/// - **Consistency, per key.** Once [`insert`](Self::insert) or
///   [`invalidate`](Self::invalidate) has returned a complete [`WriteOutcome`], no
///   lookup that starts afterwards returns the value it replaced, whatever its path:
///   an L1 hit, a promotion from a lower tier, a coalesced flight, a load or a refresh.
///   Lookups that overlap the write may see either value.
/// - **Readers never overwrite writers.** A promotion, load or refresh stores what it
///   found only if no write to the key began since it started reading: it checks under
///   the key's lock right before storing, and never writes first to undo later. A
///   flight started before a write never answers a caller that came after it.
/// - **Writes** of one key are applied one at a time (within this instance), to the
///   lowest tier first. After a complete write, L1 holds nothing that the tiers below
///   lack or hold differently (except where a tier's insert policy declines a value).
/// - **A failing tier.** When a tier fails a write, the tiers above it drop their copy
///   of the key rather than keep a value it may lack, and the [`WriteOutcome`] says
///   which tiers failed; [`strict`](crate::CacheBuilder::strict) returns the lowest
///   failure as an error instead. Lookups read a failing tier as a counted miss (strict:
///   an error). A loaded or promoted value still reaches the tiers above a failing one,
///   so L1 keeps serving while a remote tier is down; and it always reaches its caller.
/// - **Expiry** is judged with the cache's [`Clock`] at every tier. An entry's age
///   counts from when its value was produced, so a value promoted from L2 keeps its age
///   and never outlives its remaining TTL. An entry stamped in the future by more than
///   [`MAX_CLOCK_SKEW`](stratacache_tier::MAX_CLOCK_SKEW) (or its TTL) is expired: a clock
///   that steps back does not stretch an entry's life.
/// - **Coalescing** (with [`stampede_protection`](crate::CacheBuilder::stampede_protection)):
///   concurrent misses of one key, with no write between them, share one lookup and one
///   load, and its result.
/// - **Across instances** the model holds per instance: another instance's L1 may keep
///   a replaced value until its TTL (a backplane is what bounds that). In a remote tier
///   shared by instances, a write never replaces an entry produced more than a second
///   (and less than an hour) after it: one that timed out on a stalled server and ran
///   when it resumed changes nothing ([`Superseded`](crate::ErrorKind::Superseded)).
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Cache, Fallback};
///
/// # futures::executor::block_on(async {
/// let cache: Cache<String, u64> = Cache::builder()
///     .name("users")
///     .ttl(Duration::from_secs(60))
///     .fallback(Fallback::memory(|tier| tier).ttl(Duration::from_secs(600)))
///     .build()?;
///
/// cache.insert("alice".to_string(), 1).await?;
/// assert_eq!(cache.get("alice").await?, Some(1));
/// let bob = cache.get_or_insert("bob", || async { 2 }).await?;
/// assert_eq!(bob, 2);
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
pub struct Cache<K, V> {
    pub(crate) inner: Arc<Inner<K, V>>,
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A snapshot of the cache's counters.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, &str> = Cache::builder().build()?;
    /// assert_eq!(cache.get(&1).await?, None); // a miss
    /// cache.insert(1, "one").await?;
    /// assert_eq!(cache.get(&1).await?, Some("one")); // a hit
    /// let stats = cache.stats();
    /// assert_eq!((stats.tiers[0].hits, stats.tiers[0].misses), (1, 1));
    /// assert!((stats.hit_ratio() - 0.5).abs() < 1e-9);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let tiers = self
            .inner
            .levels
            .iter()
            .map(|level| {
                let circuit = level.breaker.as_deref().map(crate::breaker::Breaker::state);
                let waiting = level.recovery.as_ref().map_or(0, |r| r.waiting_count());
                TierStats::read(&level.name, &level.counters, level.len(), circuit, waiting)
            })
            .collect();
        CacheStats::read(tiers, &self.inner.telemetry.counters)
    }

    /// How many entries L1 holds, when it can tell.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, &str> = Cache::builder().build()?;
    /// assert_eq!(cache.l1_len(), Some(0));
    /// cache.insert(1, "one").await?;
    /// cache.insert(2, "two").await?;
    /// assert_eq!(cache.l1_len(), Some(2)); // a memory L1 can tell
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn l1_len(&self) -> Option<u64> {
        self.inner.levels[0].len()
    }
}

impl<K, V> Cache<K, V> {
    /// The cache's name (`"default"` unless named).
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// let unnamed: Cache<u64, u64> = Cache::builder().build()?;
    /// assert_eq!(unnamed.name(), "default");
    /// let named: Cache<u64, u64> = Cache::builder().name("users").build()?;
    /// assert_eq!(named.name(), "users");
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.telemetry.cache
    }

    /// The clock the cache reads.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, FrozenClock};
    ///
    /// let frozen = FrozenClock::new();
    /// let cache: Cache<u64, u64> = Cache::builder().clock(&frozen).build()?;
    /// assert_eq!(cache.clock().now(), frozen.now());
    /// frozen.advance(Duration::from_secs(5));
    /// assert_eq!(cache.clock().now(), frozen.now(), "the cache reads the same clock");
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The tiers' names, L1 first.
    ///
    /// ```
    /// use stratacache::{Cache, Fallback};
    ///
    /// let cache: Cache<u64, u64> = Cache::builder()
    ///     .fallback(Fallback::memory(|tier| tier)) // L2
    ///     .fallback(Fallback::memory(|tier| tier).name("shared")) // L3, named
    ///     .build()?;
    /// assert_eq!(cache.tier_names(), ["l1", "l2", "shared"]);
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    #[must_use]
    pub fn tier_names(&self) -> Vec<&str> {
        self.inner.levels.iter().map(|level| &*level.name).collect()
    }
}

impl<K, V> Clone for Cache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K, V> fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.name())
            .field("tiers", &self.tier_names())
            .field("strict", &self.inner.strict)
            .field("stampede_protection", &self.inner.coalescer.is_some())
            .field(
                "time_to_refresh",
                &self.inner.refresher.as_ref().map(|r| r.after),
            )
            .finish_non_exhaustive()
    }
}
