//! The source a loading cache reads through: a [`Loader`] set on the builder.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stratacache_tier::{BoxError, Error, ErrorKind};

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
}

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
}

impl<V> Loaded<V> {
    /// A found value, living by each tier's TTL.
    #[must_use]
    pub const fn new(value: V) -> Self {
        Self { value, ttl: None }
    }

    /// This entry's own TTL, which caps every tier's (as
    /// [`insert_with_ttl`](crate::Cache::insert_with_ttl) does).
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
            .finish()
    }
}

/// A loader with its type erased: what the cache and its refresher keep.
pub(crate) type DynLoader<K, V> =
    Arc<dyn Fn(K) -> BoxFuture<'static, Result<Option<Loaded<V>>, Error>> + Send + Sync>;

/// Erases `loader`'s type; its errors become [`ErrorKind::Loader`] errors.
pub(crate) fn erase<K, V>(loader: impl Loader<K, V>) -> DynLoader<K, V>
where
    K: Send + Sync + 'static,
    V: Send + 'static,
{
    let loader = Arc::new(loader);
    Arc::new(move |key: K| {
        let loader = Arc::clone(&loader);
        Box::pin(async move {
            loader
                .load(&key)
                .await
                .map_err(|error| Error::from_source(ErrorKind::Loader, error))
        })
    })
}
