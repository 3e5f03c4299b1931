use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use stratacache_tier::{CacheEntry, CacheTier, Error};

use crate::expiry::Stored;

type Moka<K, V> = moka::sync::Cache<K, Stored<V>, ahash::RandomState>;

/// The concurrent cache under a tier.
enum Engine<K, V> {
    Moka(Moka<K, V>),
    #[cfg(feature = "quick_cache")]
    S3Fifo(
        std::sync::Arc<crate::s3fifo::Quick<K, V>>,
        crate::s3fifo::Evictions<K, V>,
    ),
}

/// An in-process tier on a moka cache (or, with the `quick_cache` feature and
/// [`MemoryTierBuilder::s3_fifo`](crate::MemoryTierBuilder::s3_fifo), quick_cache's
/// S3-FIFO). Cheap to clone: clones share the same storage.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use stratacache_memory::MemoryTier;
/// use stratacache_tier::CacheEntry;
///
/// let tier = MemoryTier::<String, u64>::new(10_000);
/// let entry = CacheEntry::new(1, SystemTime::now(), Some(Duration::from_secs(60)));
/// tier.store("a".to_string(), entry, Some(Duration::from_secs(60)));
/// assert_eq!(tier.lookup("a").map(|entry| *entry.value()), Some(1));
/// tier.remove("a");
/// assert!(tier.lookup("a").is_none());
/// ```
pub struct MemoryTier<K, V> {
    engine: Engine<K, V>,
}

impl<K, V> MemoryTier<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn from_moka(moka: Moka<K, V>) -> Self {
        Self {
            engine: Engine::Moka(moka),
        }
    }

    #[cfg(feature = "quick_cache")]
    pub(crate) fn from_s3_fifo(
        quick: crate::s3fifo::Quick<K, V>,
        evictions: crate::s3fifo::Evictions<K, V>,
    ) -> Self {
        Self {
            engine: Engine::S3Fifo(std::sync::Arc::new(quick), evictions),
        }
    }

    /// Whether the engine drops entries itself when the time they were stored for runs
    /// out (moka); if not (S3-FIFO), whoever reads must judge expiry, as a cache does.
    #[must_use]
    pub const fn expires_entries(&self) -> bool {
        matches!(self.engine, Engine::Moka(_))
    }

    /// Looks up an entry by any borrowed form of the key, without allocating or awaiting.
    ///
    /// Returns the entry whatever its age: judging expiry is the caller's business.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_memory::MemoryTier;
    /// use stratacache_tier::CacheEntry;
    ///
    /// let tier = MemoryTier::<String, u32>::new(100);
    /// let old = CacheEntry::new(1, SystemTime::UNIX_EPOCH, Some(Duration::from_secs(1)));
    /// tier.store("a".to_owned(), old, None);
    /// let found = tier.lookup("a").unwrap(); // a `&str` finds a `String` key
    /// assert!(found.is_expired(SystemTime::now())); // expired, and returned all the same
    /// ```
    #[inline]
    pub fn lookup<Q>(&self, key: &Q) -> Option<CacheEntry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lookup_with(key, |entry| entry)
    }

    /// [`lookup`](Self::lookup), handing the entry to `with` where the engine returned
    /// it: a caller that only keeps the value (`CacheEntry::into_value`) copies no entry
    /// on the way, which a hot path notices.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_memory::MemoryTier;
    /// use stratacache_tier::CacheEntry;
    ///
    /// let tier = MemoryTier::<String, u32>::new(100);
    /// tier.store("a".to_owned(), CacheEntry::new(7, SystemTime::now(), None), None);
    /// assert_eq!(tier.lookup_with("a", CacheEntry::into_value), Some(7));
    /// assert_eq!(tier.lookup_with("b", CacheEntry::into_value), None);
    /// ```
    #[inline]
    pub fn lookup_with<Q, R>(&self, key: &Q, with: impl FnOnce(CacheEntry<V>) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match &self.engine {
            Engine::Moka(moka) => moka.get(key).map(|stored| with(stored.entry)),
            #[cfg(feature = "quick_cache")]
            Engine::S3Fifo(quick, _) => quick.get(key).map(|stored| with(stored.entry)),
        }
    }

    /// Whether the tier holds an entry under `key` (expired by the facade's clock or not),
    /// without counting a read or returning a copy: cheaper than
    /// [`lookup`](Self::lookup) when the answer is usually no.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_memory::MemoryTier;
    /// use stratacache_tier::CacheEntry;
    ///
    /// let tier = MemoryTier::<String, u32>::new(100);
    /// tier.store("a".to_owned(), CacheEntry::new(1, SystemTime::now(), None), None);
    /// assert!(tier.contains_key("a"));
    /// assert!(!tier.contains_key("b"));
    /// ```
    #[must_use]
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match &self.engine {
            Engine::Moka(moka) => moka.contains_key(key),
            #[cfg(feature = "quick_cache")]
            Engine::S3Fifo(quick, _) => quick.contains_key(key),
        }
    }

    /// Removes the entry under a borrowed key, without awaiting.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match &self.engine {
            Engine::Moka(moka) => moka.invalidate(key),
            #[cfg(feature = "quick_cache")]
            Engine::S3Fifo(quick, _) => {
                quick.remove(key);
            }
        }
    }

    /// Removes the entry under a borrowed key if `condition` holds for it, atomically with
    /// respect to other conditional changes of the key; returns whether it removed one.
    ///
    /// The facade reclaims an expired entry this way, so that a fresh value stored since
    /// the lookup is never removed with it.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_memory::MemoryTier;
    /// use stratacache_tier::CacheEntry;
    ///
    /// let tier = MemoryTier::<String, u32>::new(100);
    /// tier.store("a".to_owned(), CacheEntry::new(1, SystemTime::UNIX_EPOCH, None), None);
    /// assert!(!tier.remove_if("a", |entry| *entry.value() == 2));
    /// assert!(tier.remove_if("a", |entry| *entry.value() == 1));
    /// assert!(tier.lookup("a").is_none());
    /// ```
    pub fn remove_if<Q>(&self, key: &Q, condition: impl FnOnce(&CacheEntry<V>) -> bool) -> bool
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        match &self.engine {
            Engine::Moka(moka) => {
                let result = moka
                    .entry_by_ref(key)
                    .and_compute_with(|found| match found {
                        Some(found) if condition(&found.value().entry) => {
                            moka::ops::compute::Op::Remove
                        }
                        _ => moka::ops::compute::Op::Nop,
                    });
                matches!(result, moka::ops::compute::CompResult::Removed(_))
            }
            #[cfg(feature = "quick_cache")]
            Engine::S3Fifo(quick, _) => {
                let mut condition = Some(condition);
                let removed = quick.remove_if(key, |stored| {
                    condition
                        .take()
                        .is_some_and(|condition| condition(&stored.entry))
                });
                removed.is_some()
            }
        }
    }

    /// Stores an entry to be kept for `keep_for` (`None`: until evicted), without
    /// awaiting.
    pub fn store(&self, key: K, entry: CacheEntry<V>, keep_for: Option<Duration>) {
        let stored = Stored { entry, keep_for };
        match &self.engine {
            Engine::Moka(moka) => moka.insert(key, stored),
            #[cfg(feature = "quick_cache")]
            Engine::S3Fifo(quick, evictions) => {
                // The engine drops the old value of an overwritten key first: a
                // replacement, told apart from evictions to make room.
                let replaced = quick.contains_key(&key);
                let dropped = quick.insert_with_lifecycle(key, stored);
                evictions.report(dropped, replaced);
            }
        }
    }

    /// Removes every entry, at once (what [`CacheTier::clear`] does, without awaiting).
    pub fn remove_all(&self) {
        match &self.engine {
            Engine::Moka(moka) => moka.invalidate_all(),
            #[cfg(feature = "quick_cache")]
            Engine::S3Fifo(quick, _) => quick.clear(),
        }
    }

    /// Runs moka's pending housekeeping now: evictions, expirations, listener calls.
    ///
    /// moka does this lazily; tests call it before counting entries.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_memory::MemoryTier;
    /// use stratacache_tier::CacheEntry;
    ///
    /// let tier = MemoryTier::<u32, u32>::new(100);
    /// for n in 0..3 {
    ///     tier.store(n, CacheEntry::new(n, SystemTime::UNIX_EPOCH, None), None);
    /// }
    /// tier.run_pending_tasks();
    /// assert_eq!(tier.entry_count(), 3);
    /// ```
    pub fn run_pending_tasks(&self) {
        match &self.engine {
            Engine::Moka(moka) => moka.run_pending_tasks(),
            #[cfg(feature = "quick_cache")]
            Engine::S3Fifo(..) => {}
        }
    }

    /// The approximate number of entries (exact after
    /// [`run_pending_tasks`](Self::run_pending_tasks)).
    #[must_use]
    pub fn entry_count(&self) -> u64 {
        match &self.engine {
            Engine::Moka(moka) => moka.entry_count(),
            #[cfg(feature = "quick_cache")]
            Engine::S3Fifo(quick, _) => quick.len() as u64,
        }
    }

    /// The approximate total weight (entries without a weigher weigh 1).
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_memory::MemoryTier;
    /// use stratacache_tier::CacheEntry;
    ///
    /// let tier: MemoryTier<u32, Vec<u8>> = MemoryTier::builder()
    ///     .max_capacity(1_000)
    ///     .weigher(|_key: &u32, value: &Vec<u8>| value.len() as u32)
    ///     .build();
    /// tier.store(1, CacheEntry::new(vec![0; 10], SystemTime::UNIX_EPOCH, None), None);
    /// tier.run_pending_tasks();
    /// assert_eq!(tier.weighted_size(), 10);
    /// ```
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        match &self.engine {
            Engine::Moka(moka) => moka.weighted_size(),
            #[cfg(feature = "quick_cache")]
            Engine::S3Fifo(quick, _) => quick.weight(),
        }
    }
}

impl<K, V> Clone for MemoryTier<K, V> {
    fn clone(&self) -> Self {
        Self {
            engine: match &self.engine {
                Engine::Moka(moka) => Engine::Moka(moka.clone()),
                #[cfg(feature = "quick_cache")]
                Engine::S3Fifo(quick, evictions) => {
                    Engine::S3Fifo(std::sync::Arc::clone(quick), evictions.clone())
                }
            },
        }
    }
}

impl<K, V> fmt::Debug for MemoryTier<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = match &self.engine {
            Engine::Moka(_) => "moka",
            #[cfg(feature = "quick_cache")]
            Engine::S3Fifo(..) => "s3-fifo",
        };
        f.debug_struct("MemoryTier")
            .field("engine", &engine)
            .finish_non_exhaustive()
    }
}

impl<K, V> CacheTier<K, V> for MemoryTier<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    async fn get(&self, key: &K) -> Result<Option<CacheEntry<V>>, Error> {
        Ok(self.lookup(key))
    }

    async fn insert(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> Result<(), Error> {
        self.store(key, entry, keep_for);
        Ok(())
    }

    async fn invalidate(&self, key: &K) -> Result<(), Error> {
        self.remove(key);
        Ok(())
    }

    async fn clear(&self) -> Result<(), Error> {
        self.remove_all();
        Ok(())
    }

    fn len(&self) -> Option<u64> {
        self.run_pending_tasks();
        Some(self.entry_count())
    }
}
