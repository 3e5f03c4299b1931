//! The source a loading cache reads through: a [`Loader`] set on the builder.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::stream::{FuturesUnordered, StreamExt};
use stratacache_tier::{BoxError, CacheEntry, Error, ErrorKind, Tags};

use crate::erased::BoxFuture;

/// The source a loading cache reads through on a miss: your repository (a database
/// table, a service). Set it with [`CacheBuilder::loader`](crate::CacheBuilder::loader).
///
/// On a cache with a loader, [`get`](crate::Cache::get) loads what no tier holds, and
/// time-to-refresh refreshes through it. Closures given to the `get_or_insert` family
/// still load per call. An async closure `Fn(K) -> Future<Output = Result<Option<V>, E>>`
/// is a loader; a type can implement the trait to choose each entry's TTL with
/// [`Loaded::ttl`].
///
/// ```
/// use std::time::Duration;
/// use stratacache::{BoxError, Cache, Loaded, Loader};
///
/// struct Users;
///
/// impl Loader<u64, String> for Users {
///     async fn load(&self, id: &u64) -> Result<Option<Loaded<String>>, BoxError> {
///         Ok((*id < 100).then(|| {
///             // Admins change often: their entries live a minute, not the cache's hour.
///             let ttl = if *id == 1 { 60 } else { 3_600 };
///             Loaded::new(format!("user {id}")).ttl(Duration::from_secs(ttl))
///         }))
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let cache: Cache<u64, String> = Cache::builder().loader(Users).build()?;
/// assert_eq!(cache.get(&7).await?.as_deref(), Some("user 7"), "loaded on a miss");
/// assert_eq!(cache.get(&500).await?, None, "not found");
/// let admin = cache.get_entry(&1).await?;
/// assert!(admin.is_none(), "get_entry never loads");
/// cache.get(&1).await?;
/// assert_eq!(cache.get_entry(&1).await?.unwrap().ttl(), Some(Duration::from_secs(60)));
/// assert_eq!(cache.stats().loads, 3);
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
pub trait Loader<K, V>: Send + Sync + 'static {
    /// Loads the value under `key`: `Ok(Some(..))` when found, `Ok(None)` when the
    /// source has none (nothing is cached; `get` returns `None`).
    ///
    /// # Errors
    ///
    /// Whatever the source fails with; the caller gets it as an
    /// [`ErrorKind::Loader`] error, and nothing is cached.
    fn load(&self, key: &K) -> impl Future<Output = Result<Option<Loaded<V>>, BoxError>> + Send;

    /// Loads the values under `keys` (distinct keys, none held by any tier): the ones
    /// found, by key; a key missing from the map is "not found". Batch reads
    /// ([`Cache::get_many`](crate::Cache::get_many)) call it once for all the keys no
    /// tier holds.
    ///
    /// The default runs [`load`](Self::load) for each key, at most
    /// [`LOAD_MANY_CONCURRENCY`] at a time; a source that can answer many keys in one
    /// query (`WHERE id = ANY($1)`) overrides it.
    ///
    /// # Errors
    ///
    /// The first failure: the whole batch fails, and nothing of it is cached.
    fn load_many(
        &self,
        keys: &[K],
    ) -> impl Future<Output = Result<HashMap<K, Loaded<V>>, BoxError>> + Send
    where
        K: Hash + Eq + Clone + Send + Sync,
        V: Send,
    {
        async move {
            // A plain loop rather than a stream of closures: the futures borrow `keys`.
            let (mut waiting, mut running) = (keys.iter(), FuturesUnordered::new());
            let mut found = HashMap::with_capacity(keys.len());
            loop {
                while running.len() < LOAD_MANY_CONCURRENCY {
                    let Some(key) = waiting.next() else { break };
                    running.push(keyed(key, self.load(key)));
                }
                let Some((key, loaded)) = running.next().await else {
                    return Ok(found);
                };
                if let Some(loaded) = loaded? {
                    found.insert(key.clone(), loaded);
                }
            }
        }
    }
}

/// A load's answer with its key.
async fn keyed<K, T>(key: &K, load: impl Future<Output = T>) -> (&K, T) {
    (key, load.await)
}

/// How many [`Loader::load`] calls the default [`Loader::load_many`] runs at once.
pub const LOAD_MANY_CONCURRENCY: usize = 16;

impl<K, V, F, Fut, E> Loader<K, V> for F
where
    K: Clone + Send + Sync + 'static,
    F: Fn(K) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<V>, E>> + Send,
    E: Into<BoxError>,
{
    async fn load(&self, key: &K) -> Result<Option<Loaded<V>>, BoxError> {
        match self(key.clone()).await {
            Ok(found) => Ok(found.map(Loaded::new)),
            Err(error) => Err(error.into()),
        }
    }
}

/// A value a [`Loader`] found, with the settings it chooses for its entry.
///
/// ```
/// use std::time::Duration;
/// use stratacache::Loaded;
///
/// let loaded = Loaded::new("row").ttl(Duration::from_secs(30));
/// assert_eq!(loaded.value(), &"row");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Loaded<V> {
    pub(crate) value: V,
    pub(crate) ttl: Option<Duration>,
    pub(crate) tags: Tags,
}

impl<V> Loaded<V> {
    /// A found value, living by each tier's TTL.
    #[must_use]
    pub const fn new(value: V) -> Self {
        Self {
            value,
            ttl: None,
            tags: Tags::none(),
        }
    }

    /// Tags for this entry: [`invalidate_tag`](crate::Cache::invalidate_tag) of any of
    /// them invalidates it (at most [`Tags::MAX_TAGS`], each at most
    /// [`Tags::MAX_TAG_LEN`] bytes; beyond, the value is served but not cached).
    ///
    /// ```
    /// use stratacache::Loaded;
    ///
    /// let loaded = Loaded::new("order 7").tags(["customer:3", "orders"]);
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

    /// The entry a load that began at `started` stores: produced when the load began,
    /// so that a tag invalidated while it ran invalidates what it read. Its age, and so
    /// its TTL, counts from then too (what it read is that old).
    pub(crate) fn into_entry(self, started: SystemTime) -> CacheEntry<V> {
        CacheEntry::new(self.value, started, self.ttl).with_tags(self.tags)
    }

    /// This entry's own TTL, which caps every tier's (as
    /// [`insert_with_ttl`](crate::Cache::insert_with_ttl) does). Like every loaded
    /// entry's age, it counts from when the load began.
    #[must_use]
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The value.
    #[must_use]
    pub const fn value(&self) -> &V {
        &self.value
    }
}

impl<V: fmt::Debug> fmt::Debug for Loaded<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("value", &self.value)
            .field("ttl", &self.ttl)
            .field("tags", &self.tags)
            .finish()
    }
}

/// A loader with its type erased: what the cache and its refresher keep.
pub(crate) type DynLoader<K, V> = Arc<dyn DynLoad<K, V>>;

/// The object-safe twin of [`Loader`], its errors turned into [`ErrorKind::Loader`]
/// errors and its futures owning what they need.
pub(crate) trait DynLoad<K, V>: Send + Sync {
    fn load(&self, key: K) -> BoxFuture<'static, Result<Option<Loaded<V>>, Error>>;
    fn load_many(&self, keys: Vec<K>) -> BoxFuture<'static, Result<HashMap<K, Loaded<V>>, Error>>;
}

struct Erased<L>(Arc<L>);

impl<K, V, L> DynLoad<K, V> for Erased<L>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + 'static,
    L: Loader<K, V>,
{
    fn load(&self, key: K) -> BoxFuture<'static, Result<Option<Loaded<V>>, Error>> {
        let loader = Arc::clone(&self.0);
        Box::pin(async move { loader.load(&key).await.map_err(failed) })
    }

    fn load_many(&self, keys: Vec<K>) -> BoxFuture<'static, Result<HashMap<K, Loaded<V>>, Error>> {
        let loader = Arc::clone(&self.0);
        Box::pin(async move { loader.load_many(&keys).await.map_err(failed) })
    }
}

fn failed(error: BoxError) -> Error {
    Error::from_source(ErrorKind::Loader, error)
}

/// Erases `loader`'s type.
pub(crate) fn erase<K, V>(loader: impl Loader<K, V>) -> DynLoader<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + 'static,
{
    Arc::new(Erased(Arc::new(loader)))
}
