use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use stratacache_tier::{CacheEntry, Clock, Error};

use crate::CacheBuilder;
use crate::coalesce::Fetched;
use crate::erased::BoxFuture;
use crate::inner::{FirstLook, Inner};
use crate::telemetry::{CacheStats, Op, Operation, OperationOutcome, TierOutcome, TierStats};

/// A multi-tier cache: one type whatever its tiers, cheap to clone, `Send + Sync`.
///
/// Build one with [`Cache::builder`]. Every operation looks at L1 first; a hit in a
/// memory L1 answers without allocating or awaiting. A miss falls through the
/// [fallback](crate::Fallback) tiers in order, and a hit below L1 is promoted into the
/// tiers above it (by their [`PromotionPolicy`](crate::PromotionPolicy)).
///
/// # Semantics
///
/// - **Expiry** is judged with the cache's [`Clock`] at every tier. An entry's age
///   counts from when its value was produced, so a value promoted from L2 keeps its
///   age and never outlives its remaining TTL.
/// - **Writes** go to the lowest tier first, so L1 never holds what L2 lacks.
/// - **Invalidation** removes from L1 first, then the others. A lookup or load that
///   raced with a write to the same key does not put the old value back.
/// - **Failures** of a tier are counted and read as misses; with
///   [`strict`](CacheBuilder::strict) they are returned instead. A loaded value is
///   always returned to its caller, even when storing it failed.
/// - **Coalescing** (with [`stampede_protection`](CacheBuilder::stampede_protection)):
///   concurrent misses of one key share one lookup and one load, and its result.
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Cache, Fallback};
///
/// # futures::executor::block_on(async {
/// let cache: Cache<String, u64> = Cache::builder()
///     .name("users")
///     .ttl(Duration::from_secs(60))
///     .fallback(Fallback::memory().ttl(Duration::from_secs(600)))
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
    /// Starts configuring a cache: an unbounded memory L1 and the system clock until told
    /// otherwise.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::new()
    }

    /// The value under `key`, if a tier holds a live one.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](CacheBuilder::strict): the first tier failure.
    #[inline]
    pub fn get<'a, Q>(
        &'a self,
        key: &'a Q,
    ) -> impl Future<Output = Result<Option<V>, Error>> + Send + 'a
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
    {
        self.hit_or_fetch(Operation::Get, key, no_loader::<V>())
    }

    /// The future of `get` and the loader family: its first poll answers an L1 hit in
    /// place; only a miss builds (and boxes) the future of the miss path. So the future
    /// a caller holds is a few words, not the whole state machine of fallback, loading
    /// and coalescing, and a hit never allocates.
    pub(crate) fn hit_or_fetch<'a, Q, F, Fut>(
        &'a self,
        operation: Operation,
        key: &'a Q,
        loader: Option<F>,
    ) -> impl Future<Output = Result<Option<V>, Error>> + Send + 'a
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<Option<V>, Error>> + Send + 'a,
    {
        let mut loader = loader;
        let mut miss: Option<BoxFuture<'a, Result<Option<V>, Error>>> = None;
        std::future::poll_fn(move |context| {
            if let Some(miss) = &mut miss {
                return miss.as_mut().poll(context);
            }
            let inner = &self.inner;
            let mut op = inner.telemetry.start(operation);
            let look = inner.first_look(key, &op);
            if let FirstLook::Hit(value) = look {
                inner.telemetry.finish(&op, OperationOutcome::Hit);
                return Poll::Ready(Ok(Some(value)));
            }
            let (key, start, loader) = (key.to_owned(), look.next_level(), loader.take());
            let mut pending: BoxFuture<'a, _> = Box::pin(async move {
                let fetched = inner.fetch(&key, start, loader, &mut op).await;
                self.finish(&op, fetched)
            });
            let poll = pending.as_mut().poll(context);
            miss = Some(pending);
            poll
        })
    }

    /// Ends an operation of the `get` and loader family from what the miss path found.
    pub(crate) fn finish(
        &self,
        op: &Op,
        fetched: Result<Fetched<V>, Error>,
    ) -> Result<Option<V>, Error> {
        let (outcome, result) = match fetched {
            Ok(Fetched::Hit(value)) => (OperationOutcome::Hit, Ok(Some(value))),
            Ok(Fetched::Loaded(value)) => (OperationOutcome::Loaded, Ok(Some(value))),
            Ok(Fetched::Miss) => (OperationOutcome::Miss, Ok(None)),
            Ok(Fetched::LoadedNothing) => (OperationOutcome::LoadedNothing, Ok(None)),
            Err(error) => (OperationOutcome::Error(error.kind()), Err(error)),
        };
        self.inner.telemetry.finish(op, outcome);
        result
    }

    /// The entry under `key` with its timestamps, if a tier holds a live one.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](CacheBuilder::strict): the first tier failure.
    pub async fn get_entry(&self, key: &K) -> Result<Option<CacheEntry<V>>, Error> {
        let op = self.inner.telemetry.start(Operation::Get);
        let found = self.inner.look_from(key, 0, &op).await;
        let outcome = match &found {
            Ok(Some(_)) => OperationOutcome::Hit,
            Ok(None) => OperationOutcome::Miss,
            Err(error) => OperationOutcome::Error(error.kind()),
        };
        self.inner.telemetry.finish(&op, outcome);
        found
    }

    /// Whether a tier holds a live entry for `key`. Nothing is promoted.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](CacheBuilder::strict): the first tier failure.
    pub async fn contains<Q>(&self, key: &Q) -> Result<bool, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let inner = &*self.inner;
        let op = inner.telemetry.start(Operation::Contains);
        let key = key.to_owned();
        let mut result = Ok(false);
        for level in &*inner.levels {
            let stopwatch = op.stopwatch();
            match level.get(&key).await {
                Ok(Some(entry)) if !entry.is_expired(inner.clock.now()) => {
                    inner.report(&op, level, TierOutcome::Hit, stopwatch);
                    result = Ok(true);
                    break;
                }
                Ok(_) => {
                    inner.report(&op, level, TierOutcome::Miss, stopwatch);
                }
                Err(error) => {
                    inner.tier_failed(level, &error, &op, stopwatch);
                    if inner.strict {
                        result = Err(error);
                        break;
                    }
                }
            }
        }
        let outcome = match &result {
            Ok(true) => OperationOutcome::Hit,
            Ok(false) => OperationOutcome::Miss,
            Err(error) => OperationOutcome::Error(error.kind()),
        };
        inner.telemetry.finish(&op, outcome);
        result
    }

    /// Stores `value` under `key` in every tier, lowest first, each with its own TTL.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](CacheBuilder::strict): the first tier that fails, after which
    /// the tiers above it are left untouched.
    pub async fn insert(&self, key: K, value: V) -> Result<(), Error> {
        self.insert_entry(key, value, None).await
    }

    /// Like [`insert`](Self::insert), with a TTL for this entry that caps every tier's own.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub async fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) -> Result<(), Error> {
        self.insert_entry(key, value, Some(ttl)).await
    }

    async fn insert_entry(&self, key: K, value: V, ttl: Option<Duration>) -> Result<(), Error> {
        let inner = &*self.inner;
        let op = inner.telemetry.start(Operation::Insert);
        let result = {
            let _write = inner.generations.write(&key);
            let now = inner.clock.now();
            let entry = CacheEntry::new(value, now, ttl);
            inner
                .store_in(&inner.levels, &key, &entry, now, TierOutcome::Inserted, &op)
                .await
        };
        self.finish_write(&op, result)
    }

    /// Removes `key` from every tier, L1 first.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](CacheBuilder::strict): the first tier that failed (every tier
    /// is still tried).
    pub async fn invalidate<Q>(&self, key: &Q) -> Result<(), Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let inner = &*self.inner;
        let op = inner.telemetry.start(Operation::Invalidate);
        let key = key.to_owned();
        let result = {
            let _write = inner.generations.write(&key);
            inner.remove_from(&inner.levels, &key, &op).await
        };
        self.finish_write(&op, result)
    }

    /// Removes every entry of this cache from every tier, L1 first.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](CacheBuilder::strict): the first tier that failed (every tier
    /// is still tried).
    pub async fn clear(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        let op = inner.telemetry.start(Operation::Clear);
        let mut first_error = None;
        {
            let _write = inner.generations.write_all();
            for level in &*inner.levels {
                let stopwatch = op.stopwatch();
                if let Err(error) = level.clear().await {
                    inner.tier_failed(level, &error, &op, stopwatch);
                    first_error.get_or_insert(error);
                }
            }
        }
        let result = match first_error {
            Some(error) if inner.strict => Err(error),
            _ => Ok(()),
        };
        self.finish_write(&op, result)
    }

    pub(crate) fn finish_write(&self, op: &Op, result: Result<(), Error>) -> Result<(), Error> {
        let outcome = match &result {
            Ok(()) => OperationOutcome::Done,
            Err(error) => OperationOutcome::Error(error.kind()),
        };
        self.inner.telemetry.finish(op, outcome);
        result
    }

    /// A snapshot of the cache's counters.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let tiers = self
            .inner
            .levels
            .iter()
            .map(|level| TierStats::read(&level.name, &level.counters))
            .collect();
        CacheStats::read(tiers, &self.inner.telemetry.counters)
    }

    /// How many entries L1 holds, when it can tell.
    #[must_use]
    pub fn l1_len(&self) -> Option<u64> {
        self.inner.levels[0].len()
    }
}

/// The loader of a plain `get`: none.
type NoLoader<V> = fn() -> std::future::Ready<Result<Option<V>, Error>>;

const fn no_loader<V>() -> Option<NoLoader<V>> {
    None
}

impl<K, V> Cache<K, V> {
    /// The cache's name (`"default"` unless named).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.telemetry.cache
    }

    /// The clock the cache reads.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The tiers' names, L1 first.
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
