//! Per-call control: `Cache::with(options)` and the calls it offers.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;

use stratacache_tier::{BoxError, CacheEntry, Error, ErrorKind, Tags};

use super::Cache;
use super::loaders::{found, found_or_failed, maybe_found};
use crate::coalesce::Fetched;
use crate::loader::Loaded;
use crate::options::{Options, Strategy};
use crate::outcome::WriteOutcome;
use crate::telemetry::{CacheCounter, Operation};
use crate::write::Change;

/// A cache seen through per-call [`Options`]; made by [`Cache::with`]. Cheap: a
/// reference and the options.
///
/// Its lookups return `Ok(None)` when nothing was found or loaded (under
/// [`Strategy::CacheOnly`], a miss), whichever loader they were given.
#[derive(Debug)]
pub struct WithOptions<'a, K, V> {
    cache: &'a Cache<K, V>,
    options: Options,
    default: Option<V>,
    tags: Tags,
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// This cache, for calls made with `options`: a [`Strategy`], tiers to skip, a TTL.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, Fallback, Options, Strategy};
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, String> = Cache::builder()
    ///     .fallback(Fallback::memory(|tier| tier))
    ///     .loader(|id: u64| async move { Ok::<_, std::io::Error>(Some(format!("row {id}"))) })
    ///     .build()?;
    ///
    /// // Never load: a miss is a miss.
    /// let cache_only = Options::new().strategy(Strategy::CacheOnly);
    /// assert_eq!(cache.with(cache_only).get(&1).await?, None);
    ///
    /// // Load and overwrite, whatever the tiers hold, with a short TTL.
    /// cache.insert(1, "stale".to_string()).await?;
    /// let refresh = Options::new().strategy(Strategy::Reload).ttl(Duration::from_secs(5));
    /// assert_eq!(cache.with(refresh).get(&1).await?.as_deref(), Some("row 1"));
    /// let entry = cache.get_entry(&1).await?.unwrap();
    /// assert_eq!((entry.value().as_str(), entry.ttl()), ("row 1", Some(Duration::from_secs(5))));
    ///
    /// // Straight from the source, storing nothing.
    /// let bypass = Options::new().strategy(Strategy::Bypass);
    /// assert_eq!(cache.with(bypass).get(&2).await?.as_deref(), Some("row 2"));
    /// assert!(!cache.contains(&2).await?);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub const fn with(&self, options: Options) -> WithOptions<'_, K, V> {
        WithOptions {
            cache: self,
            options,
            default: None,
            tags: Tags::none(),
        }
    }

    /// [`with`](Self::with) the default options, giving what the call stores `tags`
    /// (see [`WithOptions::tags`]).
    #[must_use]
    pub fn tagged<I>(&self, tags: I) -> WithOptions<'_, K, V>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.with(Options::DEFAULT).tags(tags)
    }
}

impl<K, V> WithOptions<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Tags for what the call stores, inserted or loaded (added to a loader's own
    /// [`Loaded::tags`](crate::Loaded::tags)): [`Cache::invalidate_tag`] of any of them
    /// invalidates it. Beyond [`Tags::MAX_TAGS`] tags or [`Tags::MAX_TAG_LEN`] bytes a
    /// tag, `insert` fails with [`ErrorKind::Config`] and a loaded value is returned but
    /// not cached.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, &str> = Cache::builder().build()?;
    /// cache.tagged(["customer:3"]).insert(7, "order 7").await?;
    /// cache.tagged(["customer:4"]).insert(8, "order 8").await?;
    /// cache.invalidate_tag("customer:3").await?;
    /// assert_eq!(cache.get(&7).await?, None);
    /// assert_eq!(cache.get(&8).await?, Some("order 8"));
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn tags<I>(mut self, tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tags = Tags::new(tags);
        self
    }

    /// The last resort of these calls' lookups: when the load fails (its error, or its
    /// hard timeout) and fail-safe has no stale value to offer, they answer `value`
    /// instead of the error (counted in
    /// [`CacheStats::defaults_served`](crate::CacheStats::defaults_served); nothing is
    /// stored).
    ///
    /// ```
    /// use stratacache::{Cache, Options};
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, String> = Cache::builder().build()?;
    /// let down = || async { Err::<String, _>(std::io::Error::other("database down")) };
    /// let read = cache.with(Options::new()).fail_safe_default("guest".to_string());
    /// assert_eq!(read.try_get_or_insert(&7, down).await?.as_deref(), Some("guest"));
    /// assert!(!cache.contains(&7).await?, "the default is not cached");
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn fail_safe_default(mut self, value: V) -> Self {
        self.default = Some(value);
        self
    }

    /// [`Cache::get`] with these options: the cache's [`loader`](crate::CacheBuilder::loader)
    /// is the source, if it has one.
    ///
    /// # Errors
    ///
    /// As [`Cache::get`]; [`ErrorKind::Config`] for [`Strategy::Reload`] or
    /// [`Strategy::Bypass`] on a cache without a loader.
    pub async fn get<Q>(&self, key: &Q) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
    {
        let load = self
            .cache
            .inner
            .loader
            .as_ref()
            .map(|load| move || self.cache.load_through(load, key, self.options));
        self.read(Operation::Get, key, load).await
    }

    /// [`Cache::get_or_insert`] with these options.
    ///
    /// # Errors
    ///
    /// As [`Cache::get_or_insert`].
    pub async fn get_or_insert<Q, F, Fut>(&self, key: &Q, loader: F) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = V> + Send,
    {
        self.read(Operation::GetOrInsert, key, Some(move || found(loader)))
            .await
    }

    /// [`Cache::try_get_or_insert`] with these options.
    ///
    /// # Errors
    ///
    /// As [`Cache::try_get_or_insert`].
    pub async fn try_get_or_insert<Q, F, Fut, E>(
        &self,
        key: &Q,
        loader: F,
    ) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<V, E>> + Send,
        E: Into<BoxError>,
    {
        let load = Some(move || found_or_failed(loader));
        self.read(Operation::TryGetOrInsert, key, load).await
    }

    /// [`Cache::optionally_get_or_insert`] with these options.
    ///
    /// # Errors
    ///
    /// As [`Cache::optionally_get_or_insert`].
    pub async fn optionally_get_or_insert<Q, F, Fut>(
        &self,
        key: &Q,
        loader: F,
    ) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Option<V>> + Send,
    {
        let load = Some(move || maybe_found(loader));
        self.read(Operation::OptionallyGetOrInsert, key, load).await
    }

    /// [`Cache::insert`] with these options: the value is stored in the tiers not
    /// skipped, with the call's TTL; the skipped tiers drop the key. The strategy does
    /// not apply to writes.
    ///
    /// ```
    /// use stratacache::{Cache, Fallback, MemoryTier, Options};
    ///
    /// # futures::executor::block_on(async {
    /// let l2 = MemoryTier::new(100);
    /// let cache: Cache<u64, &str> = Cache::builder().fallback(Fallback::tier(l2.clone())).build()?;
    /// cache.insert(1, "old").await?;
    /// cache.with(Options::new().skip_remote()).insert(1, "new").await?;
    /// assert_eq!(cache.get(&1).await?, Some("new")); // from L1
    /// assert!(l2.lookup(&1).is_none(), "L2 dropped the value the insert replaced");
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Cache::insert`].
    pub async fn insert(&self, key: K, value: V) -> Result<WriteOutcome, Error> {
        if !self.tags.within_limits() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "an entry carries at most {} tags of at most {} bytes",
                    Tags::MAX_TAGS,
                    Tags::MAX_TAG_LEN
                ),
            ));
        }
        let inner = &self.cache.inner;
        let entry = CacheEntry::new(value, inner.clock.now(), self.options.get_ttl())
            .with_tags(self.tags.clone());
        let levels = self.options.levels(inner.levels.len());
        self.cache
            .write(Operation::Insert, &key, Change::Store(entry), levels)
            .await
    }

    /// A lookup of the `get` family under these options.
    async fn read<Q, F, Fut>(
        &self,
        operation: Operation,
        key: &Q,
        loader: Option<F>,
    ) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<Option<Loaded<V>>, Error>> + Send,
    {
        let options = self.options;
        let call_tags = &self.tags;
        let loader = loader
            .filter(|_| options.get_strategy() != Strategy::CacheOnly)
            .map(|load| {
                move || async move {
                    let loaded = load().await?;
                    Ok(loaded.map(|found| {
                        let ttl = options.cap(found.ttl);
                        let tags = found.tags.union(call_tags);
                        Loaded { ttl, tags, ..found }
                    }))
                }
            });
        let read = match options.get_strategy() {
            Strategy::ReadThrough | Strategy::CacheOnly => {
                self.cache
                    .hit_or_fetch(operation, key, move |_, _| loader, &options)
                    .await
            }
            Strategy::InvalidateThenLoad => {
                self.cache.invalidate(key).await?;
                self.cache
                    .hit_or_fetch(operation, key, move |_, _| loader, &options)
                    .await
            }
            Strategy::Reload | Strategy::Bypass => {
                let Some(loader) = loader else {
                    return Err(Error::new(
                        ErrorKind::Config,
                        "Strategy::Reload and Strategy::Bypass need a loader: the call's or the cache's",
                    ));
                };
                self.reload(operation, &key.to_owned(), loader).await
            }
        };
        match (read, &self.default) {
            // The last resort: the source failed and nothing stale was at hand.
            (Err(error), Some(default)) if is_source_failure(&error, self.cache.inner.strict) => {
                self.cache
                    .inner
                    .telemetry
                    .count(CacheCounter::DefaultsServed);
                Ok(Some(default.clone()))
            }
            (read, _) => read,
        }
    }

    /// [`Strategy::Reload`] and [`Strategy::Bypass`]: the loader, without reading the
    /// tiers; a refresh then writes what it loaded (or removes the key) as `insert` does.
    async fn reload<F, Fut>(
        &self,
        operation: Operation,
        key: &K,
        loader: F,
    ) -> Result<Option<V>, Error>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<Option<Loaded<V>>, Error>> + Send,
    {
        let inner = &self.cache.inner;
        let op = inner.telemetry.start(operation);
        // A write that begins during the load outdates what it reads.
        let ticket = inner.generations.ticket(key);
        inner.telemetry.count(CacheCounter::Loads);
        let started = inner.clock.now();
        let fetched = match loader().await {
            Err(error) => {
                inner.telemetry.count(CacheCounter::LoadErrors);
                Err(error)
            }
            Ok(found) if self.options.get_strategy() == Strategy::Bypass => Ok(match found {
                Some(loaded) => Fetched::Loaded(loaded.value),
                None => Fetched::LoadedNothing,
            }),
            Ok(found) => {
                let levels = self.options.levels(inner.levels.len());
                let (change, fetched) = match found {
                    Some(loaded) => {
                        let value = loaded.value.clone();
                        let entry = loaded.into_entry(started);
                        (Change::Store(entry), Fetched::Loaded(value))
                    }
                    None => (Change::Remove, Fetched::LoadedNothing),
                };
                // A write begun since the load began stands (nothing is written); the
                // caller still gets what it loaded.
                let written = inner.write_if_current(key, change, levels, &op, ticket);
                written.await.map(|_| fetched)
            }
        };
        self.cache.finish(&op, fetched)
    }
}

/// Whether `error` says the source failed (rather than a tier, or the call's settings):
/// the loader's error, or its hard timeout (a tier's timeout reaches a caller only on a
/// strict cache, where a timeout is therefore not the source's).
fn is_source_failure(error: &Error, strict: bool) -> bool {
    match error.kind() {
        ErrorKind::Loader => true,
        ErrorKind::Timeout => !strict,
        _ => false,
    }
}
