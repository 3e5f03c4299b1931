//! Lookups: `get` (whose hit is answered on the first poll), `get_entry`, `contains`.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use stratacache_tier::{CacheEntry, Error};

use super::Cache;
use crate::coalesce::Fetched;
use crate::erased::BoxFuture;
use crate::first_look::{FirstLook, QuietLook};
use crate::loader::{DynLoader, Loaded};
use crate::options::Options;
use crate::telemetry::{Op, Operation, OperationOutcome};
use crate::walk::Walk;

/// How the first poll of a lookup went past the quiet hit: answered at once, or a miss
/// path to await.
enum Begun<'a, V> {
    Answered(Result<Option<V>, Error>),
    Pending(BoxFuture<'a, Result<Option<V>, Error>>),
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value under `key`, if a tier holds a live one; on a cache with a
    /// [`loader`](crate::CacheBuilder::loader), else the one it loads.
    ///
    /// # Errors
    ///
    /// With [`strict`](crate::CacheBuilder::strict): the first tier failure. On a loading
    /// cache, the loader's error ([`ErrorKind::Loader`](crate::ErrorKind::Loader)).
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<String, u64> = Cache::builder().build()?;
    /// cache.insert("alice".to_string(), 1).await?;
    /// assert_eq!(cache.get("alice").await?, Some(1)); // looked up by `&str`
    /// assert_eq!(cache.get("bob").await?, None);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    #[inline]
    pub fn get<'a, Q>(
        &'a self,
        key: &'a Q,
    ) -> impl Future<Output = Result<Option<V>, Error>> + Send + 'a
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
    {
        // Built past the quiet hit, from the cache and the key the future holds anyway:
        // a hit's future carries no loader.
        let load = |cache: &'a Self, key: &'a Q| {
            let load = cache.inner.loader.as_ref()?;
            Some(move || cache.load_through(load, key, Options::DEFAULT))
        };
        self.hit_or_fetch(Operation::Get, key, load, &Options::DEFAULT)
    }

    /// A load through the cache's own loader: one that can outlive its caller when a
    /// soft timeout is set (see [`LoadTimeouts`](crate::LoadTimeouts)); what it stores
    /// then follows `options` (tiers, TTL cap).
    pub(crate) fn load_through<Q>(
        &self,
        loader: &DynLoader<K, V>,
        key: &Q,
        options: Options,
    ) -> BoxFuture<'static, Result<Option<Loaded<V>>, Error>>
    where
        K: Borrow<Q>,
        Q: ToOwned<Owned = K> + ?Sized,
    {
        let soft = self
            .inner
            .load_timeouts
            .is_some_and(|t| t.get_soft().is_some());
        if soft {
            Box::pin(Arc::clone(&self.inner).load_outliving_caller(key.to_owned(), options))
        } else {
            loader.load(key.to_owned())
        }
    }

    /// The future of `get` and the loader family, under `options`' tiers and fail-safe: its first
    /// poll answers an L1 hit in place; only a miss builds (and boxes) the future of the
    /// miss path. So the future a caller holds is a few words, not the whole state
    /// machine of fallback, loading and coalescing, and a hit never allocates.
    ///
    /// `loader` makes the loader, if any, from the cache and the key, once the quiet hit
    /// has not answered: `get`'s makes the cache's own without capturing anything, so
    /// its future holds no loader.
    pub(crate) fn hit_or_fetch<'a, Q, L, F, Fut>(
        &'a self,
        operation: Operation,
        key: &'a Q,
        loader: L,
        options: &'a Options,
    ) -> impl Future<Output = Result<Option<V>, Error>> + Send + 'a
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
        L: FnOnce(&'a Self, &'a Q) -> Option<F> + Send + 'a,
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<Option<Loaded<V>>, Error>> + Send + 'a,
    {
        let mut loader = Some(loader);
        let mut miss: Option<BoxFuture<'a, Result<Option<V>, Error>>> = None;
        std::future::poll_fn(move |context| {
            if let Some(miss) = &mut miss {
                return miss.as_mut().poll(context);
            }
            let inner = &self.inner;
            // Most hits end here: counted, and answered before an operation is set up.
            let quiet = options.reads_l1() && !inner.telemetry.listening();
            let found = match quiet.then(|| inner.quiet_look(key)).flatten() {
                Some(QuietLook::Hit(value)) => return Poll::Ready(Ok(Some(value))),
                Some(QuietLook::Found(found)) => Some(found),
                None => None,
            };
            let loader = loader.take().and_then(|make| make(self, key));
            match self.begin(operation, key, found, options, loader) {
                Begun::Answered(answer) => Poll::Ready(answer),
                Begun::Pending(mut pending) => {
                    let poll = pending.as_mut().poll(context);
                    miss = Some(pending);
                    poll
                }
            }
        })
    }

    /// The rest of [`hit_or_fetch`](Self::hit_or_fetch)'s first poll, out of line so
    /// that the quiet hit stays small: sets up the operation, judges and reports what
    /// L1 holds (`found` by the quiet look if it looked, else looked up here), and
    /// starts the miss path from where L1 left off, unless nothing is left to read or
    /// load (a miss, reported, without allocating).
    #[inline(never)]
    fn begin<'a, Q, F, Fut>(
        &'a self,
        operation: Operation,
        key: &'a Q,
        found: Option<Option<CacheEntry<V>>>,
        options: &Options,
        loader: Option<F>,
    ) -> Begun<'a, V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<Option<Loaded<V>>, Error>> + Send + 'a,
    {
        let inner = &self.inner;
        let mut op = inner.telemetry.start(operation);
        op.fail_safe = options.takes_stale();
        op.skips = options.skips();
        let from = if options.reads_l1() {
            let look = match found {
                Some(found) => inner.judge_first(key, found, &op, None),
                None => inner.first_look(key, &op),
            };
            if let FirstLook::Hit(value) = look {
                inner.telemetry.finish(&op, OperationOutcome::Hit);
                return Begun::Answered(Ok(Some(value)));
            }
            look.next_level()
        } else {
            1
        };
        let levels = options.levels(inner.levels.len());
        if from >= levels.end && loader.is_none() {
            inner.telemetry.finish(&op, OperationOutcome::Miss);
            return Begun::Answered(Ok(None));
        }
        let finish = move |op: Op, fetched| self.finish(&op, fetched);
        Begun::Pending(inner.fetch(key.to_owned(), (levels, from), loader, op, finish))
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
            Ok(Fetched::Stale(value)) => (OperationOutcome::Stale, Ok(Some(value))),
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
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, FrozenClock};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = FrozenClock::new();
    /// let cache: Cache<u64, &str> = Cache::builder().clock(&clock).build()?;
    /// let (ttl, inserted_at) = (Duration::from_secs(30), clock.now());
    /// cache.insert_with_ttl(1, "one", ttl).await?;
    /// clock.advance(Duration::from_secs(10));
    /// let entry = cache.get_entry(&1).await?.expect("still live");
    /// assert_eq!(*entry.value(), "one");
    /// assert_eq!((entry.cached_at(), entry.ttl()), (inserted_at, Some(ttl)));
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_entry<Q>(&self, key: &Q) -> Result<Option<CacheEntry<V>>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let found = self
            .look(Operation::Get, &key.to_owned(), Walk::Read)
            .await?;
        Ok(found.map(|(_, entry)| entry))
    }

    /// Whether a tier holds a live entry for `key`. Nothing is promoted or refreshed.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): the first tier failure.
    ///
    /// ```
    /// use stratacache::{Cache, CacheEntry, Fallback, MemoryTier};
    ///
    /// # futures::executor::block_on(async {
    /// let l2 = MemoryTier::new(1_000);
    /// let cache: Cache<u64, &str> =
    ///     Cache::builder().fallback(Fallback::tier(l2.clone())).build()?;
    /// l2.store(1, CacheEntry::new("one", cache.clock().now(), None), None);
    /// assert!(cache.contains(&1).await?); // found in L2...
    /// assert_eq!(cache.l1_len(), Some(0)); // ...and not promoted into L1
    /// assert!(!cache.contains(&2).await?);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
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

    /// Where `key` lives: the first tier holding a live entry for it, with the entry's
    /// timestamps and how long it has left there. Nothing is promoted or refreshed.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): the first tier failure.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, Fallback, FrozenClock, Options};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = FrozenClock::new();
    /// let cache: Cache<u64, &str> = Cache::builder()
    ///     .clock(&clock)
    ///     .fallback(Fallback::memory(|tier| tier).name("shared"))
    ///     .build()?;
    /// cache.with(Options::new().skip_l1()).insert(1, "one").await?;
    /// cache.insert_with_ttl(2, "two", Duration::from_secs(30)).await?;
    /// clock.advance(Duration::from_secs(10));
    ///
    /// let one = cache.inspect(&1).await?.expect("in L2");
    /// assert_eq!((one.tier(), one.remaining_ttl()), ("shared", None)); // no TTL
    /// let two = cache.inspect(&2).await?.expect("in L1");
    /// assert_eq!(two.tier(), "l1");
    /// assert_eq!(two.remaining_ttl(), Some(Duration::from_secs(20)));
    /// assert!(cache.inspect(&3).await?.is_none());
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn inspect<Q>(&self, key: &Q) -> Result<Option<EntryInfo>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let found = self
            .look(Operation::Inspect, &key.to_owned(), Walk::Peek)
            .await?;
        let now = self.inner.clock.now();
        Ok(found.map(|(depth, entry)| EntryInfo {
            tier: Arc::clone(&self.inner.levels[depth].name),
            cached_at: entry.cached_at(),
            ttl: entry.ttl(),
            remaining_ttl: entry.remaining_ttl(now),
        }))
    }

    /// A walk down every tier as one operation, without a loader or coalescing.
    async fn look(
        &self,
        operation: Operation,
        key: &K,
        mode: Walk,
    ) -> Result<Option<(usize, CacheEntry<V>)>, Error> {
        let inner = &self.inner;
        let op = inner.telemetry.start(operation);
        let ticket = inner.generations.ticket(key);
        let every_level = 0..inner.levels.len();
        let walked = inner.walk(key, every_level, 0, ticket, &op, mode).await;
        let found = walked.map(|walked| walked.live);
        let outcome = match &found {
            Ok(Some(_)) => OperationOutcome::Hit,
            Ok(None) => OperationOutcome::Miss,
            Err(error) => OperationOutcome::Error(error.kind()),
        };
        inner.telemetry.finish(&op, outcome);
        found
    }
}

/// Where a key lives, from [`Cache::inspect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    tier: Arc<str>,
    cached_at: SystemTime,
    ttl: Option<Duration>,
    remaining_ttl: Option<Duration>,
}

impl EntryInfo {
    /// The name of the first tier holding a live entry.
    #[must_use]
    pub fn tier(&self) -> &str {
        &self.tier
    }

    /// When the value was produced.
    #[must_use]
    pub const fn cached_at(&self) -> SystemTime {
        self.cached_at
    }

    /// The entry's TTL in that tier (from `cached_at`), `None` for no limit.
    #[must_use]
    pub const fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// How long the entry has left in that tier, by the cache's clock; `None` for no
    /// limit.
    #[must_use]
    pub const fn remaining_ttl(&self) -> Option<Duration> {
        self.remaining_ttl
    }
}
