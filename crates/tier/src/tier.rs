use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::entry::CacheEntry;
use crate::error::Error;

/// What a tier answers for one key: the entry stored under it (expired or not), `None`
/// when there is none, or why it could not answer.
pub type Lookup<V> = Result<Option<CacheEntry<V>>, Error>;

/// One storage level of a cache: it stores and fetches [`CacheEntry`] values.
///
/// A tier is small on purpose. It does not judge expiry, promote, refresh or coalesce:
/// the facade does all of that once, with the cache's clock, for every kind of tier. A
/// tier reads no clock: [`insert`](Self::insert) hands it how long to keep the entry,
/// already measured. A tier may still drop entries on its own (eviction, server-side
/// TTL).
///
/// Implementations write the async methods as `async fn`.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::Duration;
/// use stratacache_tier::{CacheEntry, CacheTier, Error};
///
/// #[derive(Default)]
/// struct MapTier(Mutex<HashMap<String, CacheEntry<u32>>>);
///
/// impl CacheTier<String, u32> for MapTier {
///     async fn get(&self, key: &String) -> Result<Option<CacheEntry<u32>>, Error> {
///         Ok(self.0.lock().unwrap().get(key).cloned())
///     }
///     async fn insert(
///         &self,
///         key: String,
///         entry: CacheEntry<u32>,
///         _keep_for: Option<Duration>,
///     ) -> Result<(), Error> {
///         self.0.lock().unwrap().insert(key, entry);
///         Ok(())
///     }
///     async fn invalidate(&self, key: &String) -> Result<(), Error> {
///         self.0.lock().unwrap().remove(key);
///         Ok(())
///     }
///     async fn clear(&self) -> Result<(), Error> {
///         self.0.lock().unwrap().clear();
///         Ok(())
///     }
/// }
/// ```
pub trait CacheTier<K, V>: Send + Sync + 'static {
    /// Fetches the entry stored under `key`, expired or not; `None` when there is none.
    ///
    /// # Errors
    ///
    /// When the tier cannot answer: unreachable, too slow, or its bytes can't be decoded.
    fn get(&self, key: &K) -> impl Future<Output = Result<Option<CacheEntry<V>>, Error>> + Send;

    /// Stores `entry` under `key`, replacing what was there, to be kept for `keep_for`
    /// from now (`None`: no limit).
    ///
    /// `keep_for` is the facade's judgement with the cache's clock: the entry's remaining
    /// TTL, capped by this tier's own TTL. A tier that can expire entries (moka, a
    /// server-side TTL) uses it as is; the entry's own timestamps are for the facade.
    ///
    /// # Errors
    ///
    /// When the tier cannot store it, or refuses it ([`Rejected`](crate::ErrorKind::Rejected)).
    fn insert(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Removes the entry stored under `key`, if any.
    ///
    /// # Errors
    ///
    /// When the tier cannot be reached.
    fn invalidate(&self, key: &K) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores `entry`, which a reader found below this tier or a loader produced, unless
    /// the tier holds something newer under `key`: an entry produced later, or a removal
    /// made later ([`invalidate_at`](Self::invalidate_at)). A tier that several instances
    /// share needs it: another instance's write may land between this instance's read
    /// and its fill, before this instance hears of it. Answers whether it stored;
    /// errors as [`insert`](Self::insert).
    ///
    /// The default is [`insert`](Self::insert), for a tier no other instance writes (an
    /// insert that fails [`Superseded`](crate::ErrorKind::Superseded) did not store).
    fn fill(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        let insert = self.insert(key, entry, keep_for);
        async move {
            match insert.await {
                Ok(()) => Ok(true),
                Err(error) if error.kind() == crate::ErrorKind::Superseded => Ok(false),
                Err(error) => Err(error),
            }
        }
    }

    /// Removes the entry under `key` as of `at` (the cache's time): a later
    /// [`fill`](Self::fill) of an entry produced before `at` must not bring it back.
    /// Errors as [`invalidate`](Self::invalidate).
    ///
    /// The default is [`invalidate`](Self::invalidate).
    fn invalidate_at(
        &self,
        key: &K,
        at: SystemTime,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = at;
        self.invalidate(key)
    }

    /// Removes the entry under `key` as of `at`, as [`invalidate_at`](Self::invalidate_at)
    /// does, unless the tier holds an entry [newer](CacheEntry::is_newer_than) than
    /// `than`: a removal that must not take what another instance wrote since `than`
    /// (the removal that replaces a write given up, whose outcome is unknown). Answers whether it removed. Errors as
    /// [`invalidate`](Self::invalidate).
    ///
    /// The default is [`invalidate_at`](Self::invalidate_at), for a tier no other
    /// instance writes. A tier that instances share compares and removes in one step.
    fn invalidate_unless_newer(
        &self,
        key: &K,
        at: SystemTime,
        than: SystemTime,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        let _ = than;
        let invalidate = self.invalidate_at(key, at);
        async move { invalidate.await.map(|()| true) }
    }

    /// Removes every entry this tier holds for this cache (and only for this cache).
    ///
    /// # Errors
    ///
    /// When the tier cannot be reached.
    fn clear(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// The entry under each of `keys`, in the same order, each answered as
    /// [`get`](Self::get) answers it (a key whose bytes cannot be decoded fails alone).
    /// The default asks one key at a time; a tier that can batch (a Redis pipeline, a
    /// memcached multi-get) overrides it with one round trip.
    ///
    /// # Errors
    ///
    /// When the tier cannot answer at all: the batch failed as a whole.
    fn get_many(&self, keys: &[K]) -> impl Future<Output = Result<Vec<Lookup<V>>, Error>> + Send
    where
        K: Sync,
        V: Send,
    {
        async move {
            let mut found = Vec::with_capacity(keys.len());
            for key in keys {
                found.push(self.get(key).await);
            }
            Ok(found)
        }
    }

    /// How many entries the tier holds, when it can tell cheaply; `None` otherwise.
    fn len(&self) -> Option<u64> {
        None
    }

    /// Whether the tier holds no entries, when it can tell cheaply; `None` otherwise.
    fn is_empty(&self) -> Option<bool> {
        self.len().map(|len| len == 0)
    }
}
