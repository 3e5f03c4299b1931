//! Type erasure of [`CacheTier`]: what lets `Cache<K, V>` be one type whatever its tiers.

use std::future::Future;
use std::pin::Pin;

use stratacache_tier::{CacheEntry, CacheTier, Error};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe twin of [`CacheTier`]. Futures are boxed here, on the async path only:
/// the synchronous [`get_now`](DynTier::get_now) is tried first and never allocates.
pub(crate) trait DynTier<K, V>: Send + Sync {
    fn get_now(&self, key: &K) -> Option<Result<Option<CacheEntry<V>>, Error>>;
    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<Option<CacheEntry<V>>, Error>>;
    fn insert(&self, key: K, entry: CacheEntry<V>) -> BoxFuture<'_, Result<(), Error>>;
    fn invalidate<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<(), Error>>;
    fn clear(&self) -> BoxFuture<'_, Result<(), Error>>;
    fn len(&self) -> Option<u64>;
}

impl<K, V, T> DynTier<K, V> for T
where
    T: CacheTier<K, V>,
    K: Send + Sync + 'static,
    V: Send + 'static,
{
    #[inline]
    fn get_now(&self, key: &K) -> Option<Result<Option<CacheEntry<V>>, Error>> {
        CacheTier::get_now(self, key)
    }

    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<Option<CacheEntry<V>>, Error>> {
        Box::pin(CacheTier::get(self, key))
    }

    fn insert(&self, key: K, entry: CacheEntry<V>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(CacheTier::insert(self, key, entry))
    }

    fn invalidate<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(CacheTier::invalidate(self, key))
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(CacheTier::clear(self))
    }

    fn len(&self) -> Option<u64> {
        CacheTier::len(self)
    }
}
