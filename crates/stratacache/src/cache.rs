use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use stratacache_tier::{CacheEntry, Clock, Error};

use crate::coalesce::Fetched;
use crate::erased::BoxFuture;
use crate::inner::Inner;
use crate::outcome::WriteOutcome;
use crate::telemetry::{CacheStats, Op, Operation, OperationOutcome, TierStats};
use crate::walk::{FirstLook, Walk};
use crate::write::Change;

/// A multi-tier cache: one type whatever its tiers, cheap to clone, `Send + Sync`.
///
/// Build one with [`Cache::builder`]. Every operation looks at L1 first; a hit in a
/// memory L1 answers without allocating or awaiting. A miss falls through the
/// [fallback](crate::Fallback) tiers in order, and a hit below L1 is promoted into the
/// tiers above it (by their [`PromotionPolicy`](crate::PromotionPolicy)).
///
/// # Semantics
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
///   which tiers failed; [`strict`](crate::CacheBuilder::strict) returns the lowest failure as
///   an error instead. Lookups read a failing tier as a counted miss (strict: an error).
///   A loaded value always reaches its caller, even when storing it failed.
/// - **Expiry** is judged with the cache's [`Clock`] at every tier. An entry's age
///   counts from when its value was produced, so a value promoted from L2 keeps its age
///   and never outlives its remaining TTL. An entry stamped in the future by more than
///   [`MAX_CLOCK_SKEW`](stratacache_tier::MAX_CLOCK_SKEW) (or its TTL) is expired: a clock
///   that steps back does not stretch an entry's life.
/// - **Coalescing** (with [`stampede_protection`](crate::CacheBuilder::stampede_protection)):
///   concurrent misses of one key, with no write between them, share one lookup and one
///   load, and its result.
/// - **Across instances** the model holds per instance: another instance's L1 may keep
///   a replaced value until its TTL (a backplane is what bounds that).
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
    /// The value under `key`, if a tier holds a live one.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): the first tier failure.
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
    /// Only with [`strict`](crate::CacheBuilder::strict): the first tier failure.
    pub async fn get_entry<Q>(&self, key: &Q) -> Result<Option<CacheEntry<V>>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.look(Operation::Get, &key.to_owned(), Walk::Read).await
    }

    /// Whether a tier holds a live entry for `key`. Nothing is promoted or refreshed.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): the first tier failure.
    pub async fn contains<Q>(&self, key: &Q) -> Result<bool, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let found = self
            .look(Operation::Contains, &key.to_owned(), Walk::Peek)
            .await?;
        Ok(found.is_some())
    }

    /// A walk down every tier as one operation, without a loader or coalescing.
    async fn look(
        &self,
        operation: Operation,
        key: &K,
        mode: Walk,
    ) -> Result<Option<CacheEntry<V>>, Error> {
        let inner = &self.inner;
        let op = inner.telemetry.start(operation);
        let ticket = inner.generations.ticket(key);
        let found = inner.walk(key, 0, ticket, &op, mode).await;
        let outcome = match &found {
            Ok(Some(_)) => OperationOutcome::Hit,
            Ok(None) => OperationOutcome::Miss,
            Err(error) => OperationOutcome::Error(error.kind()),
        };
        inner.telemetry.finish(&op, outcome);
        found
    }

    /// Stores `value` under `key` in every tier, lowest first, each with its own TTL.
    ///
    /// Once it returns, no lookup that starts afterwards sees the value it replaced (see
    /// the [semantics](Self#semantics)). A tier that fails the write makes the tiers above
    /// it drop the key rather than hold a value it may lack.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): the lowest tier that failed (the
    /// tiers above it then hold no copy). Without it, failures are in the
    /// [`WriteOutcome`].
    pub async fn insert(&self, key: K, value: V) -> Result<WriteOutcome, Error> {
        self.insert_entry(key, value, None).await
    }

    /// Like [`insert`](Self::insert), with a TTL for this entry that caps every tier's own.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    pub async fn insert_with_ttl(
        &self,
        key: K,
        value: V,
        ttl: Duration,
    ) -> Result<WriteOutcome, Error> {
        self.insert_entry(key, value, Some(ttl)).await
    }

    async fn insert_entry(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<WriteOutcome, Error> {
        let entry = CacheEntry::new(value, self.inner.clock.now(), ttl);
        self.write(Operation::Insert, &key, Change::Store(entry))
            .await
    }

    /// Removes `key` from every tier, L1 first.
    ///
    /// Once it returns, no lookup that starts afterwards sees the removed value, unless
    /// a tier failed to remove it (see the [`WriteOutcome`]).
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): the lowest tier that failed (every
    /// tier is still tried).
    pub async fn invalidate<Q>(&self, key: &Q) -> Result<WriteOutcome, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.write(Operation::Invalidate, &key.to_owned(), Change::Remove)
            .await
    }

    /// One write as one operation.
    pub(crate) async fn write(
        &self,
        operation: Operation,
        key: &K,
        change: Change<V>,
    ) -> Result<WriteOutcome, Error> {
        let op = self.inner.telemetry.start(operation);
        let result = self.inner.write(key, change, &op).await;
        self.finish_write(&op, result)
    }

    /// Removes every entry of this cache from every tier, L1 first.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): the lowest tier that failed (every
    /// tier is still tried).
    pub async fn clear(&self) -> Result<WriteOutcome, Error> {
        let op = self.inner.telemetry.start(Operation::Clear);
        let result = self.inner.clear_all(&op).await;
        self.finish_write(&op, result)
    }

    fn finish_write(
        &self,
        op: &Op,
        result: Result<WriteOutcome, Error>,
    ) -> Result<WriteOutcome, Error> {
        let outcome = match &result {
            Ok(written) => match written.first_failure() {
                None => OperationOutcome::Done,
                Some(error) => OperationOutcome::Error(error.kind()),
            },
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
