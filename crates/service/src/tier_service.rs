use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use stratacache_tier::{CacheTier, Error};
use tower::Service;

use crate::request::{CacheRequest, CacheResponse};

/// The future of a [`TierService`] call.
///
/// ```
/// use stratacache_service::{CacheRequest, CacheResponse, TierFuture, TierService};
/// use stratacache_tier::mock::MockTier;
/// use tower::{Service, ServiceExt};
///
/// # futures::executor::block_on(async {
/// let mut service: TierService<_, u64, String> = TierService::new(MockTier::new());
/// let future: TierFuture<String> = service.ready().await?.call(CacheRequest::Clear);
/// assert_eq!(future.await?, CacheResponse::Done);
/// # Ok::<(), stratacache_tier::Error>(())
/// # }).unwrap();
/// ```
pub type TierFuture<V> = Pin<Box<dyn Future<Output = Result<CacheResponse<V>, Error>> + Send>>;

/// Any [`CacheTier`] as a `tower::Service<CacheRequest<K, V>>`, always ready. Cheap to
/// clone. A `stratacache::Cache` is a `CacheTier` too, so a whole cache can be served.
///
/// ```
/// use stratacache::{Cache, MemoryTier};
/// use stratacache_service::{CacheRequest, CacheResponse, TierService};
/// use tower::{Service, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stratacache::Error> {
/// let cache: Cache<u64, String> = Cache::builder().build()?;
/// cache.insert(1, "one".into()).await?;
/// let mut service = TierService::new(cache);
/// let answer = service.ready().await?.call(CacheRequest::Get(1)).await?;
/// assert!(matches!(answer, CacheResponse::Entry(Some(entry)) if entry.value() == "one"));
/// # Ok(()) }
/// ```
pub struct TierService<T, K, V> {
    tier: Arc<T>,
    _types: PhantomData<fn(K, V)>,
}

impl<T, K, V> TierService<T, K, V> {
    /// Serves `tier`.
    #[must_use]
    pub fn new(tier: T) -> Self {
        Self::shared(Arc::new(tier))
    }

    /// Serves a tier already shared elsewhere.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use stratacache_service::{CacheRequest, CacheResponse, TierService};
    /// use stratacache_tier::mock::{MockTier, TierOp};
    /// use tower::{Service, ServiceExt};
    ///
    /// # futures::executor::block_on(async {
    /// let tier = Arc::new(MockTier::<u64, String>::new());
    /// let mut service: TierService<_, u64, String> = TierService::shared(Arc::clone(&tier));
    /// let answer = service.ready().await?.call(CacheRequest::Get(1)).await?;
    /// assert_eq!(answer, CacheResponse::Entry(None));
    /// assert_eq!(tier.count(TierOp::Get), 1); // the service called the shared tier
    /// # Ok::<(), stratacache_tier::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn shared(tier: Arc<T>) -> Self {
        Self {
            tier,
            _types: PhantomData,
        }
    }
}

impl<T, K, V> Clone for TierService<T, K, V> {
    fn clone(&self) -> Self {
        Self::shared(Arc::clone(&self.tier))
    }
}

impl<T, K, V> fmt::Debug for TierService<T, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TierService").finish_non_exhaustive()
    }
}

impl<T, K, V> Service<CacheRequest<K, V>> for TierService<T, K, V>
where
    T: CacheTier<K, V>,
    K: Send + Sync + 'static,
    V: Send + 'static,
{
    type Response = CacheResponse<V>;
    type Error = Error;
    type Future = TierFuture<V>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: CacheRequest<K, V>) -> Self::Future {
        let tier = Arc::clone(&self.tier);
        Box::pin(async move {
            match request {
                CacheRequest::Get(key) => tier.get(&key).await.map(CacheResponse::Entry),
                CacheRequest::Insert {
                    key,
                    entry,
                    keep_for,
                } => tier
                    .insert(key, entry, keep_for)
                    .await
                    .map(|()| CacheResponse::Done),
                CacheRequest::Invalidate(key) => {
                    tier.invalidate(&key).await.map(|()| CacheResponse::Done)
                }
                CacheRequest::Fill {
                    key,
                    entry,
                    keep_for,
                } => tier
                    .fill(key, entry, keep_for)
                    .await
                    .map(CacheResponse::Filled),
                CacheRequest::InvalidateAt { key, at } => tier
                    .invalidate_at(&key, at)
                    .await
                    .map(|()| CacheResponse::Done),
                CacheRequest::InvalidateUnlessNewer { key, at, than } => tier
                    .invalidate_unless_newer(&key, at, than)
                    .await
                    .map(CacheResponse::Invalidated),
                CacheRequest::Clear => tier.clear().await.map(|()| CacheResponse::Done),
            }
        })
    }
}
