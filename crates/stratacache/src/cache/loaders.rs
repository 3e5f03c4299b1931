//! Read-through: the `get_or_insert` family.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;

use stratacache_tier::{BoxError, Error, ErrorKind};

use super::Cache;
use crate::loader::Loaded;
use crate::options::Options;
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
    ///
    /// ```
    /// use stratacache::{Cache, Fallback};
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, String> =
    ///     Cache::builder().fallback(Fallback::memory(|tier| tier)).build()?;
    /// let first = cache.get_or_insert(&7, || async { "from the database".to_string() }).await?;
    /// let again = cache.get_or_insert(&7, || async { unreachable!("cached") }).await?;
    /// assert_eq!(first, again);
    /// assert_eq!(cache.stats().loads, 1);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
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
                move |_, _| Some(move || found(loader)),
                &Options::DEFAULT,
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
    ///
    /// ```
    /// use std::io;
    /// use stratacache::{Cache, ErrorKind};
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, String> = Cache::builder().build()?;
    /// let down = || async { Err::<String, _>(io::Error::other("database down")) };
    /// let error = cache.try_get_or_insert(&7, down).await.unwrap_err();
    /// assert_eq!(error.kind(), ErrorKind::Loader);
    /// assert!(error.source_as::<io::Error>().is_some(), "the loader's own error is kept");
    /// assert!(!cache.contains(&7).await?, "a failed load stores nothing");
    ///
    /// let up = || async { Ok::<_, io::Error>("seven".to_string()) };
    /// assert_eq!(cache.try_get_or_insert(&7, up).await?, "seven");
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
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
                move |_, _| Some(move || found_or_failed(loader)),
                &Options::DEFAULT,
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
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, String> = Cache::builder().build()?;
    /// // The database has no row 404: nothing is cached, the next call asks again.
    /// assert_eq!(cache.optionally_get_or_insert(&404, || async { None }).await?, None);
    /// assert!(!cache.contains(&404).await?);
    ///
    /// let found = cache.optionally_get_or_insert(&1, || async { Some("one".to_string()) });
    /// assert_eq!(found.await?.as_deref(), Some("one"));
    /// assert!(cache.contains(&1).await?);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
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
            move |_, _| Some(move || maybe_found(loader)),
            &Options::DEFAULT,
        )
        .await
    }
}

// What each member of the family's closure produces, in the loader's shape.

pub(crate) async fn found<V, F, Fut>(loader: F) -> Result<Option<Loaded<V>>, Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = V>,
{
    Ok(Some(Loaded::new(loader().await)))
}

pub(crate) async fn found_or_failed<V, F, Fut, E>(loader: F) -> Result<Option<Loaded<V>>, Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<V, E>>,
    E: Into<BoxError>,
{
    match loader().await {
        Ok(value) => Ok(Some(Loaded::new(value))),
        Err(error) => Err(Error::from_source(ErrorKind::Loader, error)),
    }
}

pub(crate) async fn maybe_found<V, F, Fut>(loader: F) -> Result<Option<Loaded<V>>, Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<V>>,
{
    Ok(loader().await.map(Loaded::new))
}
