//! Type erasure of [`CacheTier`]: what lets `Cache<K, V>` be one type whatever its tiers.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use stratacache_tier::{CacheEntry, CacheTier, Error, Lookup};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Boxes the future `make` returns, allocating first so that the compiler can write it
/// straight into its box.
///
/// `Box::pin(future)` builds the future on the stack and copies all of it into the box:
/// the room its largest state needs, though a future not yet polled holds only its
/// captures. Used for the boxes made on every miss (its path below L1) and every remote
/// call; rarer paths keep `Box::pin`.
#[inline(always)]
pub(crate) fn boxed<'a, F>(make: impl FnOnce() -> F) -> BoxFuture<'a, F::Output>
where
    F: Future + Send + 'a,
{
    let boxed: Box<F> = Box::write(Box::new_uninit(), make());
    Box::into_pin(boxed)
}

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
    fn invalidate_unless_newer<'a>(
        &'a self,
        key: &'a K,
        at: SystemTime,
        than: SystemTime,
    ) -> BoxFuture<'a, Result<bool, Error>>;
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
        boxed(|| CacheTier::get(self, key))
    }

    fn get_many<'a>(&'a self, keys: &'a [K]) -> BoxFuture<'a, Result<Vec<Lookup<V>>, Error>> {
        boxed(|| CacheTier::get_many(self, keys))
    }

    fn insert(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> BoxFuture<'_, Result<(), Error>> {
        boxed(|| CacheTier::insert(self, key, entry, keep_for))
    }

    fn fill(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> BoxFuture<'_, Result<bool, Error>> {
        boxed(|| CacheTier::fill(self, key, entry, keep_for))
    }

    fn invalidate_at<'a>(&'a self, key: &'a K, at: SystemTime) -> BoxFuture<'a, Result<(), Error>> {
        boxed(|| CacheTier::invalidate_at(self, key, at))
    }

    fn invalidate_unless_newer<'a>(
        &'a self,
        key: &'a K,
        at: SystemTime,
        than: SystemTime,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        boxed(|| CacheTier::invalidate_unless_newer(self, key, at, than))
    }

    fn clear(&self) -> BoxFuture<'_, Result<(), Error>> {
        boxed(|| CacheTier::clear(self))
    }

    fn len(&self) -> Option<u64> {
        CacheTier::len(self)
    }
}
