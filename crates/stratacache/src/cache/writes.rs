//! Writes: `insert`, `insert_with_ttl`, `invalidate`, `clear`, each returning what it did
//! at every tier (the rules themselves are in `write`).

use std::borrow::Borrow;
use std::hash::Hash;
use std::ops::Range;
use std::time::Duration;

use stratacache_tier::{CacheEntry, Error, ErrorKind};

use super::Cache;
use crate::outcome::WriteOutcome;
use crate::telemetry::{Op, Operation, OperationOutcome};
use crate::write::Change;

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Stores `value` under `key` in every tier, lowest first, each with its own TTL.
    ///
    /// Once it returns, no lookup that starts afterwards sees the value it replaced (see
    /// the [semantics](Self#semantics)). A tier that fails the write makes the tiers above
    /// it drop the key rather than hold a value it may lack.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): the lowest tier that failed (the
    /// tiers above it then hold no copy). Without it, failures are in the
    /// [`WriteOutcome`].
    ///
    /// ```
    /// use stratacache::{Cache, Fallback};
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, &str> =
    ///     Cache::builder().fallback(Fallback::memory(|tier| tier)).build()?;
    /// let outcome = cache.insert(1, "one").await?;
    /// assert!(outcome.is_complete());
    /// assert_eq!(outcome.tiers().len(), 2); // L1 and L2 both took it
    /// cache.insert(1, "uno").await?; // replaces it in every tier
    /// assert_eq!(cache.get(&1).await?, Some("uno"));
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn insert(&self, key: K, value: V) -> Result<WriteOutcome, Error> {
        self.insert_entry(key, value, None).await
    }

    /// Like [`insert`](Self::insert), with a TTL for this entry that caps every tier's own.
    ///
    /// # Errors
    ///
    /// As [`insert`](Self::insert).
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, FrozenClock};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = FrozenClock::new();
    /// let cache: Cache<u64, &str> =
    ///     Cache::builder().clock(&clock).ttl(Duration::from_secs(600)).build()?;
    /// cache.insert_with_ttl(1, "short-lived", Duration::from_secs(5)).await?;
    /// cache.insert(2, "long-lived").await?;
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(cache.get(&1).await?, None, "its own TTL caps L1's");
    /// assert_eq!(cache.get(&2).await?, Some("long-lived"));
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn insert_with_ttl(
        &self,
        key: K,
        value: V,
        ttl: Duration,
    ) -> Result<WriteOutcome, Error> {
        self.insert_entry(key, value, Some(ttl)).await
    }

    async fn insert_entry(
        &self,
        key: K,
        value: V,
        ttl: Option<Duration>,
    ) -> Result<WriteOutcome, Error> {
        let entry = CacheEntry::new(value, self.inner.clock.now(), ttl);
        let every_level = 0..self.inner.levels.len();
        self.write(Operation::Insert, &key, Change::Store(entry), every_level)
            .await
    }

    /// Removes `key` from every tier, L1 first.
    ///
    /// Once it returns, no lookup that starts afterwards sees the removed value, unless
    /// a tier failed to remove it (see the [`WriteOutcome`]).
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): the lowest tier that failed (every
    /// tier is still tried).
    ///
    /// ```
    /// use stratacache::{Cache, Fallback};
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, &str> =
    ///     Cache::builder().fallback(Fallback::memory(|tier| tier)).build()?;
    /// cache.insert(1, "one").await?;
    /// assert!(cache.invalidate(&1).await?.is_complete());
    /// assert_eq!(cache.get(&1).await?, None, "gone from L1 and L2");
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn invalidate<Q>(&self, key: &Q) -> Result<WriteOutcome, Error>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let every_level = 0..self.inner.levels.len();
        self.write(
            Operation::Invalidate,
            &key.to_owned(),
            Change::Remove,
            every_level,
        )
        .await
    }

    /// One write as one operation.
    pub(crate) async fn write(
        &self,
        operation: Operation,
        key: &K,
        change: Change<V>,
        levels: Range<usize>,
    ) -> Result<WriteOutcome, Error> {
        let op = self.inner.telemetry.start(operation);
        let result = self.inner.write(key, change, levels, &op).await;
        self.finish_write(&op, result)
    }

    /// Removes every entry of this cache from every tier, L1 first.
    ///
    /// # Errors
    ///
    /// Only with [`strict`](crate::CacheBuilder::strict): the lowest tier that failed (every
    /// tier is still tried).
    ///
    /// ```
    /// use stratacache::{Cache, Fallback};
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, &str> =
    ///     Cache::builder().fallback(Fallback::memory(|tier| tier)).build()?;
    /// cache.insert(1, "one").await?;
    /// cache.insert(2, "two").await?;
    /// assert!(cache.clear().await?.is_complete());
    /// assert!(!cache.contains(&1).await?);
    /// assert!(!cache.contains(&2).await?);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn clear(&self) -> Result<WriteOutcome, Error> {
        let op = self.inner.telemetry.start(Operation::Clear);
        let result = self.inner.clear_all(&op).await;
        self.finish_write(&op, result)
    }

    /// Invalidates every entry carrying `tag` (given by [`Loaded::tags`](crate::Loaded::tags)
    /// or [`WithOptions::tags`](crate::WithOptions::tags)), in every tier, here and in
    /// every instance of the cache: once it returns, no read here returns such an entry
    /// produced before it; other instances stop within the
    /// [backplane](crate::CacheBuilder::backplane)'s propagation, or, without one (or
    /// when its message is lost), within
    /// [`tag_marker_refresh`](crate::CacheBuilder::tag_marker_refresh).
    ///
    /// Entries are not removed one by one: the tag's *marker* (its invalidation time) is
    /// written to the lowest [remote](crate::Fallback::remote) tier, the one the instances
    /// share (and kept in memory without one), and every read compares a tagged entry's
    /// production time with its tags' markers. So it reaches instances started later,
    /// and survives restarts. Instances' clocks must agree (to well under the time a
    /// value takes to change twice): a marker is compared with production times taken
    /// on other hosts.
    ///
    /// ```
    /// use stratacache::{BoxError, Cache, Loaded, Loader};
    ///
    /// struct Orders;
    ///
    /// impl Loader<u64, String> for Orders {
    ///     async fn load(&self, id: &u64) -> Result<Option<Loaded<String>>, BoxError> {
    ///         let customer = id % 2; // SELECT customer_id, ... FROM orders WHERE id = $1
    ///         Ok(Some(Loaded::new(format!("order {id}")).tags([format!("customer:{customer}")])))
    ///     }
    /// }
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, String> = Cache::builder().loader(Orders).build()?;
    /// cache.get(&1).await?;
    /// cache.get(&2).await?;
    /// // Customer 1 was merged into another: all their orders change.
    /// cache.invalidate_tag("customer:1").await?;
    /// assert!(cache.get_entry(&1).await?.is_none(), "invalidated");
    /// assert!(cache.get_entry(&2).await?.is_some(), "another customer's order");
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) for a tag longer than
    /// [`Tags::MAX_TAG_LEN`](crate::Tags::MAX_TAG_LEN); the shared tier's error when the
    /// marker could not be written there (whether strict or not). This instance, and
    /// those the announcement reaches, treat the tag as invalidated all the same, and the
    /// marker is written again before the next marker is read or written.
    pub async fn invalidate_tag(&self, tag: &str) -> Result<(), Error> {
        self.inner.invalidate_tag(tag).await
    }

    pub(crate) fn finish_write<W: Written>(
        &self,
        op: &Op,
        result: Result<W, Error>,
    ) -> Result<W, Error> {
        let outcome = match &result {
            Ok(written) => match written.failure() {
                None => OperationOutcome::Done,
                Some(kind) => OperationOutcome::Error(kind),
            },
            Err(error) => OperationOutcome::Error(error.kind()),
        };
        self.inner.telemetry.finish(op, outcome);
        result
    }
}

/// What a write operation returns: one outcome, or one per key of a batch.
pub(crate) trait Written {
    /// The kind of the first failure it holds.
    fn failure(&self) -> Option<ErrorKind>;
}

impl Written for WriteOutcome {
    fn failure(&self) -> Option<ErrorKind> {
        self.first_failure().map(Error::kind)
    }
}

impl Written for Vec<WriteOutcome> {
    fn failure(&self) -> Option<ErrorKind> {
        self.iter().find_map(Written::failure)
    }
}
