//! Read-through: the `get_or_insert` family.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;

use stratacache_tier::{BoxError, Error, ErrorKind};

use crate::Cache;
use crate::telemetry::Operation;

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value under `key`, or the one `loader` produces, which is then stored in every
    /// tier.
    ///
    /// With [`stampede_protection`](crate::CacheBuilder::stampede_protection), concurrent
    /// callers for one key run one loader and all get its value. If the caller running it
    /// is dropped, its load is cancelled and one of the waiting callers runs its own
    /// loader instead: waiters never hang.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): a tier failure while looking.
    /// A failure to store the loaded value is reported, never returned: the caller
    /// always gets the value.
    pub async fn get_or_insert<Q, F, Fut>(&self, key: &Q, loader: F) -> Result<V, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = V> + Send,
    {
        let loaded = self
            .hit_or_fetch(
                Operation::GetOrInsert,
                key,
                Some(|| async move { Ok(Some(loader().await)) }),
            )
            .await?;
        loaded.ok_or_else(|| Error::new(ErrorKind::Other, "an infallible loader produced no value"))
    }

    /// Like [`get_or_insert`](Self::get_or_insert) with a loader that can fail; on failure
    /// nothing is stored. With stampede protection, every waiter gets the same error.
    ///
    /// # Errors
    ///
    /// The loader's error, as [`ErrorKind::Loader`] with the original as its source (see
    /// [`Error::source_as`]); with [`strict`](crate::CacheBuilder::strict), a tier failure.
    pub async fn try_get_or_insert<Q, F, Fut, E>(&self, key: &Q, loader: F) -> Result<V, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<V, E>> + Send,
        E: Into<BoxError>,
    {
        let loaded = self
            .hit_or_fetch(
                Operation::TryGetOrInsert,
                key,
                Some(|| async move {
                    match loader().await {
                        Ok(value) => Ok(Some(value)),
                        Err(error) => Err(Error::from_source(ErrorKind::Loader, error)),
                    }
                }),
            )
            .await?;
        loaded.ok_or_else(|| Error::new(ErrorKind::Other, "a successful loader produced no value"))
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
        Q: Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Option<V>> + Send,
    {
        self.hit_or_fetch(
            Operation::OptionallyGetOrInsert,
            key,
            Some(|| async move { Ok(loader().await) }),
        )
        .await
    }
}
