use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use stratacache_tier::CacheEntry;

use crate::eviction::{EvictionCause, Listener, Weigher};
use crate::expiry::{KeepFor, Stored};
use crate::tier::MemoryTier;

impl<K, V> MemoryTier<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A builder for a tier; unbounded unless configured.
    pub fn builder() -> MemoryTierBuilder<K, V> {
        MemoryTierBuilder::new()
    }

    /// A tier holding at most `max_entries` entries.
    #[must_use]
    pub fn new(max_entries: u64) -> Self {
        Self::builder().max_capacity(max_entries).build()
    }
}

/// Configures a [`MemoryTier`]. Start with [`MemoryTier::builder`].
///
/// There is no time-to-live here, nor a clock: how long an entry stays is decided by the
/// cache that stores it (its TTL, measured with its clock) and handed over with each
/// insert.
///
/// ```
/// use stratacache_memory::MemoryTier;
///
/// let tier: MemoryTier<String, Vec<u8>> = MemoryTier::builder()
///     .max_capacity(64 * 1024 * 1024)
///     .weigher(|key: &String, value: &Vec<u8>| (key.len() + value.len()) as u32)
///     .name("blobs")
///     .build();
/// assert_eq!(tier.entry_count(), 0);
/// ```
#[must_use]
pub struct MemoryTierBuilder<K, V> {
    max_capacity: Option<u64>,
    initial_capacity: Option<usize>,
    weigher: Option<Weigher<K, V>>,
    listeners: Vec<Listener<K, V>>,
    name: Option<String>,
    s3_fifo: bool,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> MemoryTierBuilder<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new() -> Self {
        Self {
            max_capacity: None,
            initial_capacity: None,
            weigher: None,
            listeners: Vec::new(),
            name: None,
            s3_fifo: false,
            _types: PhantomData,
        }
    }

    /// The most the tier holds: a number of entries, or a total weight with a
    /// [`weigher`](Self::weigher). Unbounded when not set.
    pub fn max_capacity(mut self, max_capacity: u64) -> Self {
        self.max_capacity = Some(max_capacity);
        self
    }

    /// How many entries to make room for up front.
    pub fn initial_capacity(mut self, entries: usize) -> Self {
        self.initial_capacity = Some(entries);
        self
    }

    /// Weighs each entry (in bytes, say); [`max_capacity`](Self::max_capacity) then bounds
    /// the total weight instead of the number of entries.
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Arc::new(weigher));
        self
    }

    /// Adds a listener, called with key, entry and cause whenever an entry leaves the
    /// tier. Listeners run in the order they were added.
    ///
    /// moka calls it on the thread that does its housekeeping, which may be a caller's:
    /// keep it short.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::SystemTime;
    /// use stratacache_memory::{EvictionCause, MemoryTier};
    /// use stratacache_tier::CacheEntry;
    ///
    /// let causes = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&causes);
    /// let tier = MemoryTier::<u32, &str>::builder()
    ///     .eviction_listener(move |_key, _entry, cause| seen.lock().unwrap().push(cause))
    ///     .build();
    /// tier.store(1, CacheEntry::new("a", SystemTime::UNIX_EPOCH, None), None);
    /// tier.store(1, CacheEntry::new("b", SystemTime::UNIX_EPOCH, None), None);
    /// tier.remove(&1_u32);
    /// tier.run_pending_tasks();
    /// let expected = [EvictionCause::Replaced, EvictionCause::Explicit];
    /// assert_eq!(*causes.lock().unwrap(), expected);
    /// ```
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(Arc<K>, CacheEntry<V>, EvictionCause) + Send + Sync + 'static,
    ) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// A name for the tier, shown in moka's diagnostics.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Uses quick_cache's S3-FIFO engine instead of moka (feature `quick_cache`): a
    /// hit several times cheaper, more throughput under mixed load, and a hit ratio as
    /// good or better on skewed workloads. Differences: it keeps no time, so entries
    /// live until evicted or replaced and the cache judges expiry on every read (an
    /// expired entry is reclaimed when read, or evicted as cold); it needs a capacity
    /// (100 000 entries without [`max_capacity`](Self::max_capacity)); eviction
    /// listeners hear evictions to make room ([`EvictionCause::Size`]) and overwrites
    /// ([`EvictionCause::Replaced`]), not removals or expiry; the capacity is split over
    /// shards, so an entry heavier than a shard's share is not kept; with a weigher, give
    /// [`initial_capacity`](Self::initial_capacity) the number of entries you expect;
    /// the [`name`](Self::name) is not used.
    ///
    /// ```
    /// use stratacache_memory::MemoryTier;
    ///
    /// let tier = MemoryTier::<u64, String>::builder().max_capacity(100_000).s3_fifo().build();
    /// assert!(!tier.expires_entries());
    /// ```
    #[cfg(feature = "quick_cache")]
    pub fn s3_fifo(mut self) -> Self {
        self.s3_fifo = true;
        self
    }

    /// Builds the tier.
    #[must_use]
    pub fn build(self) -> MemoryTier<K, V> {
        #[cfg(feature = "quick_cache")]
        if self.s3_fifo {
            let capacity = self.max_capacity.unwrap_or(crate::s3fifo::DEFAULT_CAPACITY);
            // The estimate sets quick_cache's shards and its ghost queue (half of it):
            // the entry count by count; with a weigher, what `initial_capacity` says.
            let estimated = match (&self.weigher, self.initial_capacity) {
                (_, Some(entries)) => entries,
                (Some(_), None) => 16_384,
                (None, None) => usize::try_from(capacity).unwrap_or(usize::MAX),
            };
            let evictions = crate::s3fifo::Evictions(self.listeners.into());
            let quick = crate::s3fifo::build(capacity, estimated, self.weigher, evictions.clone());
            return MemoryTier::from_s3_fifo(quick, evictions);
        }
        let mut moka = moka::sync::Cache::builder().expire_after(KeepFor);
        if let Some(max_capacity) = self.max_capacity {
            moka = moka.max_capacity(max_capacity);
        }
        if let Some(initial_capacity) = self.initial_capacity {
            moka = moka.initial_capacity(initial_capacity);
        }
        if let Some(weigher) = self.weigher {
            moka = moka.weigher(move |key, stored: &Stored<V>| weigher(key, stored.entry.value()));
        }
        if !self.listeners.is_empty() {
            let listeners = self.listeners;
            moka = moka.eviction_listener(move |key, stored: Stored<V>, cause| {
                let cause = EvictionCause::from(cause);
                for listener in &listeners {
                    listener(Arc::clone(&key), stored.entry.clone(), cause);
                }
            });
        }
        if let Some(name) = &self.name {
            moka = moka.name(name);
        }
        // ahash: randomly seeded per tier (hostile keys can't aim at one bucket) and several
        // times faster than SipHash on short keys, which shows on every hit.
        MemoryTier::from_moka(moka.build_with_hasher(ahash::RandomState::new()))
    }
}

impl<K, V> fmt::Debug for MemoryTierBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTierBuilder")
            .field("max_capacity", &self.max_capacity)
            .field("weigher", &self.weigher.is_some())
            .field("eviction_listeners", &self.listeners.len())
            .field("s3_fifo", &self.s3_fifo)
            .finish_non_exhaustive()
    }
}
