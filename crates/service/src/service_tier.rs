use std::fmt;
use std::sync::{Mutex, PoisonError};

use std::time::{Duration, SystemTime};

use stratacache_tier::{BoxError, CacheEntry, CacheTier, Error, ErrorKind};
use tower::{Layer, Service, ServiceExt};

use crate::error::to_tier_error;
use crate::request::{CacheRequest, CacheResponse};
use crate::tier_service::TierService;

/// A `tower::Service<CacheRequest<K, V>>` as a [`CacheTier`].
///
/// Each call clones the service (the tower convention for sharing one), waits for it to
/// be ready (`poll_ready`), then calls it: back-pressure from a concurrency or rate
/// limit is honoured, and nothing is buffered behind the caller's back. Errors become
/// tier errors: a stratacache error keeps its kind, a tower timeout is a
/// [`Timeout`](ErrorKind::Timeout), load shedding
/// [`Unavailable`](ErrorKind::Unavailable), anything else [`Other`](ErrorKind::Other).
///
/// [`layered`](Self::layered) puts layers around a tier in one call:
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Cache, Fallback, MemoryTier};
/// use stratacache_service::{CacheRetry, ServiceTier};
/// use tower::ServiceBuilder;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stratacache::Error> {
/// let storage = MemoryTier::<u64, String>::new(1_000); // in production: Remote::new(redis).into_tier()
/// let layers = ServiceBuilder::new()
///     .retry(CacheRetry::new(2))
///     .timeout(Duration::from_millis(50));
/// let cache: Cache<u64, String> = Cache::builder()
///     .fallback(Fallback::tier(ServiceTier::layered(storage, layers)))
///     .build()?;
/// cache.insert(1, "one".into()).await?;
/// assert_eq!(cache.get(&1).await?.as_deref(), Some("one"));
/// # Ok(()) }
/// ```
pub struct ServiceTier<S> {
    service: Mutex<S>,
}

impl<S> ServiceTier<S> {
    /// Wraps `service`.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_service::{ServiceTier, TierService};
    /// use stratacache_tier::mock::MockTier;
    /// use stratacache_tier::{CacheEntry, CacheTier};
    ///
    /// # futures::executor::block_on(async {
    /// let storage = MockTier::<u64, &str>::new();
    /// let service: TierService<_, u64, &str> = TierService::new(storage.clone());
    /// let tier = ServiceTier::new(service); // or any tower stack of it
    /// tier.insert(1, CacheEntry::new("one", SystemTime::UNIX_EPOCH, None), None).await?;
    /// assert_eq!(storage.stored(), 1);
    /// # Ok::<(), stratacache_tier::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn new(service: S) -> Self {
        Self {
            service: Mutex::new(service),
        }
    }

    /// `tier` behind `layer` (a `tower::ServiceBuilder`, or any layer): the tier is
    /// served as a [`TierService`], wrapped, and the result used as a tier again.
    #[must_use]
    pub fn layered<T, K, V, L>(tier: T, layer: L) -> Self
    where
        T: CacheTier<K, V>,
        L: Layer<TierService<T, K, V>, Service = S>,
    {
        Self::new(layer.layer(TierService::new(tier)))
    }

    fn handle(&self) -> S
    where
        S: Clone,
    {
        self.service
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn call<K, V>(&self, request: CacheRequest<K, V>) -> Result<CacheResponse<V>, Error>
    where
        S: Service<CacheRequest<K, V>, Response = CacheResponse<V>> + Clone,
        S::Error: Into<BoxError>,
    {
        let mut service = self.handle();
        let ready = service
            .ready()
            .await
            .map_err(|error| to_tier_error(error.into()))?;
        ready
            .call(request)
            .await
            .map_err(|error| to_tier_error(error.into()))
    }
}

fn unexpected<V>(response: &CacheResponse<V>) -> Error {
    let what = match response {
        CacheResponse::Entry(_) => "an entry",
        CacheResponse::Done => "done",
        CacheResponse::Filled(_) => "a fill's outcome",
        CacheResponse::Invalidated(_) => "a conditional removal's outcome",
    };
    Error::new(
        ErrorKind::Other,
        format!("the service answered {what} to the wrong request"),
    )
}

impl<K, V, S> CacheTier<K, V> for ServiceTier<S>
where
    K: Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: Service<CacheRequest<K, V>, Response = CacheResponse<V>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    async fn get(&self, key: &K) -> Result<Option<CacheEntry<V>>, Error> {
        match self.call(CacheRequest::Get(key.clone())).await? {
            CacheResponse::Entry(entry) => Ok(entry),
            other => Err(unexpected(&other)),
        }
    }

    async fn insert(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> Result<(), Error> {
        let request = CacheRequest::Insert {
            key,
            entry,
            keep_for,
        };
        match self.call(request).await? {
            CacheResponse::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn invalidate(&self, key: &K) -> Result<(), Error> {
        match self.call(CacheRequest::Invalidate(key.clone())).await? {
            CacheResponse::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn fill(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> Result<bool, Error> {
        let request = CacheRequest::Fill {
            key,
            entry,
            keep_for,
        };
        match self.call(request).await? {
            CacheResponse::Filled(stored) => Ok(stored),
            other => Err(unexpected(&other)),
        }
    }

    async fn invalidate_at(&self, key: &K, at: SystemTime) -> Result<(), Error> {
        let request = CacheRequest::InvalidateAt {
            key: key.clone(),
            at,
        };
        match self.call(request).await? {
            CacheResponse::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn invalidate_unless_newer(
        &self,
        key: &K,
        at: SystemTime,
        than: SystemTime,
    ) -> Result<bool, Error> {
        let request = CacheRequest::InvalidateUnlessNewer {
            key: key.clone(),
            at,
            than,
        };
        match self.call(request).await? {
            CacheResponse::Invalidated(removed) => Ok(removed),
            other => Err(unexpected(&other)),
        }
    }

    async fn clear(&self) -> Result<(), Error> {
        match self.call(CacheRequest::Clear).await? {
            CacheResponse::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

impl<S> fmt::Debug for ServiceTier<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceTier").finish_non_exhaustive()
    }
}
