//! Type erasure of [`CacheTier`]: what lets `Cache<K, V>` be one type whatever its tiers.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use stratacache_tier::{CacheEntry, CacheTier, Error, Lookup};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe twin of [`CacheTier`]. Futures are boxed here; a memory tier never
/// comes this way (see `TierHandle`), so its hits don't.
pub(crate) trait DynTier<K, V>: Send + Sync {
    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<Option<CacheEntry<V>>, Error>>;
    fn get_many<'a>(&'a self, keys: &'a [K]) -> BoxFuture<'a, Result<Vec<Lookup<V>>, Error>>;
    fn insert(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> BoxFuture<'_, Result<(), Error>>;
    fn fill(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> BoxFuture<'_, Result<bool, Error>>;
    fn invalidate_at<'a>(&'a self, key: &'a K, at: SystemTime) -> BoxFuture<'a, Result<(), Error>>;
    fn clear(&self) -> BoxFuture<'_, Result<(), Error>>;
    fn len(&self) -> Option<u64>;
}

impl<K, V, T> DynTier<K, V> for T
where
    T: CacheTier<K, V>,
    K: Send + Sync + 'static,
    V: Send + 'static,
{
    fn get<'a>(&'a self, key: &'a K) -> BoxFuture<'a, Result<Option<CacheEntry<V>>, Error>> {
        Box::pin(CacheTier::get(self, key))
    }

    fn get_many<'a>(&'a self, keys: &'a [K]) -> BoxFuture<'a, Result<Vec<Lookup<V>>, Error>> {
        Box::pin(CacheTier::get_many(self, keys))
    }

    fn insert(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(CacheTier::insert(self, key, entry, keep_for))
    }

    fn fill(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(CacheTier::fill(self, key, entry, keep_for))
    }

    fn invalidate_at<'a>(&'a self, key: &'a K, at: SystemTime) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(CacheTier::invalidate_at(self, key, at))
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(CacheTier::clear(self))
    }

    fn len(&self) -> Option<u64> {
        CacheTier::len(self)
    }
}
