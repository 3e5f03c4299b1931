//! Read-through: the `get_or_insert` family.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;

use stratacache_tier::{BoxError, CacheEntry, Error, ErrorKind};

use crate::Cache;
use crate::inner::FirstLook;
use crate::telemetry::bump;

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value under `key`, or the one `loader` produces, which is then stored in every
    /// tier.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): a tier failure while looking.
    /// A failure to store the loaded value is reported, never returned: the caller
    /// always gets the value.
    pub async fn get_or_insert<Q, F, Fut>(&self, key: &Q, loader: F) -> Result<V, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = V> + Send,
    {
        let loaded = self
            .load(key, || async move { Ok(Some(loader().await)) })
            .await?;
        Ok(loaded.expect("an infallible loader always produces a value"))
    }

    /// Like [`get_or_insert`](Self::get_or_insert) with a loader that can fail; on failure
    /// nothing is stored.
    ///
    /// # Errors
    ///
    /// The loader's error, as [`ErrorKind::Loader`] with the original as its source (see
    /// [`Error::source_as`]); with [`strict`](crate::CacheBuilder::strict), a tier failure.
    pub async fn try_get_or_insert<Q, F, Fut, E>(&self, key: &Q, loader: F) -> Result<V, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<V, E>> + Send,
        E: Into<BoxError>,
    {
        let loaded = self
            .load(key, || async move {
                match loader().await {
                    Ok(value) => Ok(Some(value)),
                    Err(error) => Err(Error::from_source(ErrorKind::Loader, error)),
                }
            })
            .await?;
        Ok(loaded.expect("a loader that succeeded produced a value"))
    }

    /// Like [`get_or_insert`](Self::get_or_insert) with a loader that may find nothing;
    /// then nothing is stored and `None` returned.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): a tier failure while looking.
    pub async fn optionally_get_or_insert<Q, F, Fut>(
        &self,
        key: &Q,
        loader: F,
    ) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Option<V>> + Send,
    {
        self.load(key, || async move { Ok(loader().await) }).await
    }

    /// The one path of the loader family: L1 at once, then the lower tiers, then the
    /// loader, whose value (if any) is stored unless a write raced with it.
    async fn load<Q, F, Fut>(&self, key: &Q, loader: F) -> Result<Option<V>, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<Option<V>, Error>> + Send,
    {
        let inner = &*self.inner;
        let start = match inner.first_look(key) {
            FirstLook::Hit(value) => return Ok(Some(value)),
            FirstLook::Miss => 1,
            FirstLook::Deferred => 0,
        };
        let key = key.to_owned();
        // Taken before the lookup: a write during the lookup or the load keeps the
        // loaded value out of the cache.
        let ticket = inner.generations.ticket(&key);
        if let Some(entry) = inner.look_from(&key, start).await? {
            return Ok(Some(CacheEntry::into_value(entry)));
        }
        bump(&inner.counters.loads);
        match loader().await {
            Ok(Some(value)) => {
                inner.store_loaded(&key, &value, ticket).await;
                Ok(Some(value))
            }
            Ok(None) => Ok(None),
            Err(error) => {
                bump(&inner.counters.load_errors);
                Err(error)
            }
        }
    }
}
