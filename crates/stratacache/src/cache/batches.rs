//! Batches: `get_many`, `get_or_insert_many`, `insert_many`, `invalidate_many` (the read
//! algorithm is in `batch`).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;

use futures::future::join_all;
use stratacache_tier::{BoxError, CacheEntry, Error, ErrorKind};

use super::Cache;
use crate::coalesce::Fetched;
use crate::loader::Loaded;
use crate::outcome::WriteOutcome;
use crate::telemetry::{Operation, OperationOutcome};
use crate::write::Change;

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The value under each of `keys`, in order: L1 first, then one batch read per tier
    /// below for the keys still missing (one pipelined round trip on Redis, one
    /// multi-get on memcached), and on a cache with a [`loader`](crate::CacheBuilder::loader)
    /// one [`Loader::load_many`](crate::Loader::load_many) for the keys no tier holds.
    /// What is found below L1 or loaded is stored as single lookups store it; with
    /// stampede protection, the loads coalesce with concurrent single lookups of the
    /// same keys. A key asked twice is looked up once.
    ///
    /// # Errors
    ///
    /// With [`strict`](crate::CacheBuilder::strict), a tier's failure; the loader's error
    /// (the whole batch fails).
    ///
    /// ```
    /// use stratacache::{Cache, Fallback};
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, String> = Cache::builder()
    ///     .fallback(Fallback::memory(|tier| tier))
    ///     .loader(|id: u64| async move {
    ///         Ok::<_, std::io::Error>((id % 2 == 0).then(|| format!("row {id}")))
    ///     })
    ///     .build()?;
    /// cache.insert(1, "cached".to_string()).await?;
    /// let values = cache.get_many(&[1, 2, 3]).await?;
    /// assert_eq!(values, [Some("cached".into()), Some("row 2".into()), None]);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_many(&self, keys: &[K]) -> Result<Vec<Option<V>>, Error> {
        let loader = self.inner.loader.as_ref();
        let load_many = loader.map(|loader| move |keys: Vec<K>| loader.load_many(keys));
        self.read_many(Operation::GetMany, keys, load_many.as_ref())
            .await
    }

    /// Like [`get_many`](Self::get_many), loading the keys no tier holds with `load`:
    /// called at most once per batch (a second time only for keys whose concurrent
    /// single lookup ended without loading), with the distinct missing keys, it returns
    /// the values it found by key; a key it leaves out is not found (`None`, nothing
    /// stored).
    ///
    /// # Errors
    ///
    /// `load`'s error, as [`ErrorKind::Loader`]; with
    /// [`strict`](crate::CacheBuilder::strict), a tier's failure.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, String> = Cache::builder().build()?;
    /// cache.insert(1, "cached".to_string()).await?;
    /// let rows = |ids: Vec<u64>| async move {
    ///     assert_eq!(ids, [2, 3], "only the keys no tier holds");
    ///     // SELECT id, name FROM users WHERE id = ANY($1)
    ///     Ok::<_, std::io::Error>(HashMap::from([(2, "row 2".to_string())]))
    /// };
    /// let values = cache.get_or_insert_many(&[1, 2, 3], rows).await?;
    /// assert_eq!(values, [Some("cached".into()), Some("row 2".into()), None]);
    /// assert_eq!(cache.get(&2).await?.as_deref(), Some("row 2"), "stored");
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn get_or_insert_many<F, Fut, E>(
        &self,
        keys: &[K],
        load: F,
    ) -> Result<Vec<Option<V>>, Error>
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync,
        Fut: Future<Output = Result<HashMap<K, V>, E>> + Send,
        E: Into<BoxError>,
    {
        let load_many = |keys: Vec<K>| loaded_many(load(keys));
        self.read_many(Operation::GetOrInsertMany, keys, Some(&load_many))
            .await
    }

    async fn read_many<L, Fut>(
        &self,
        operation: Operation,
        keys: &[K],
        loader: Option<&L>,
    ) -> Result<Vec<Option<V>>, Error>
    where
        L: Fn(Vec<K>) -> Fut + Sync,
        Fut: Future<Output = Result<HashMap<K, Loaded<V>>, Error>> + Send,
    {
        let op = self.inner.telemetry.start(operation);
        let (distinct, positions) = distinct(keys);
        let found = self.inner.fetch_many(&distinct, loader, &op).await;
        let outcome = match &found {
            Err(error) => OperationOutcome::Error(error.kind()),
            Ok(found) => batch_outcome(found),
        };
        self.inner.telemetry.finish(&op, outcome);
        let mut values: Vec<Option<V>> = found?
            .into_iter()
            .map(|fetched| match fetched {
                Fetched::Hit(value) | Fetched::Loaded(value) | Fetched::Stale(value) => Some(value),
                Fetched::Miss | Fetched::LoadedNothing => None,
            })
            .collect();
        // A key asked once (the common case) hands its value over; only repeats clone.
        let mut uses = vec![0_usize; values.len()];
        for position in &positions {
            uses[*position] += 1;
        }
        Ok(positions
            .into_iter()
            .map(|position| {
                uses[position] -= 1;
                if uses[position] == 0 {
                    values[position].take()
                } else {
                    values[position].clone()
                }
            })
            .collect())
    }

    /// Inserts every `(key, value)`: each key is written as [`insert`](Self::insert)
    /// writes it (the same rules and order), all keys at once, so a remote tier sees
    /// the commands together (pipelined on Redis). When a key comes twice, the last
    /// value is the one stored. The outcomes are in the order of `entries`.
    ///
    /// # Errors
    ///
    /// With [`strict`](crate::CacheBuilder::strict), the first incomplete write's error;
    /// the other writes are still carried out.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, &str> = Cache::builder().build()?;
    /// let outcomes = cache.insert_many([(1, "one"), (2, "two"), (1, "uno")]).await?;
    /// assert!(outcomes.iter().all(|outcome| outcome.is_complete()));
    /// assert_eq!(cache.get_many(&[1, 2]).await?, [Some("uno"), Some("two")]);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn insert_many(
        &self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Vec<WriteOutcome>, Error> {
        let now = self.inner.clock.now();
        let mut keys = Vec::new();
        let mut last = HashMap::new();
        for (key, value) in entries {
            last.insert(key.clone(), value);
            keys.push(key);
        }
        let changes = last
            .into_iter()
            .map(|(key, value)| (key, Change::Store(CacheEntry::new(value, now, None))));
        self.write_many(Operation::InsertMany, &keys, changes).await
    }

    /// Invalidates each of `keys` as [`invalidate`](Self::invalidate) does, all at once.
    /// The outcomes are in the order of `keys`.
    ///
    /// # Errors
    ///
    /// With [`strict`](crate::CacheBuilder::strict), the first incomplete invalidation's
    /// error; the others are still carried out.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, &str> = Cache::builder().build()?;
    /// cache.insert_many([(1, "one"), (2, "two"), (3, "three")]).await?;
    /// cache.invalidate_many(&[1, 3]).await?;
    /// assert_eq!(cache.get_many(&[1, 2, 3]).await?, [None, Some("two"), None]);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn invalidate_many(&self, keys: &[K]) -> Result<Vec<WriteOutcome>, Error> {
        let (distinct, _) = distinct(keys);
        let changes = distinct.into_iter().map(|key| (key, Change::Remove));
        self.write_many(Operation::InvalidateMany, keys, changes)
            .await
    }

    /// Applies each distinct key's change concurrently as one operation; one outcome per
    /// key of `keys`.
    async fn write_many(
        &self,
        operation: Operation,
        keys: &[K],
        changes: impl Iterator<Item = (K, Change<V>)>,
    ) -> Result<Vec<WriteOutcome>, Error> {
        let inner = &self.inner;
        let op = inner.telemetry.start(operation);
        let changes: Vec<(K, Change<V>)> = changes.collect();
        let every_level = 0..inner.levels.len();
        let mut writes = Vec::with_capacity(changes.len());
        for (key, change) in changes {
            let op = &op;
            let levels = every_level.clone();
            writes.push(async move {
                let written = inner.write(&key, change, levels, op).await;
                (key, written)
            });
        }
        let mut outcomes = HashMap::with_capacity(writes.len());
        let mut failure = None;
        for (key, written) in join_all(writes).await {
            match written {
                Ok(outcome) => {
                    outcomes.insert(key, outcome);
                }
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        let result = match failure {
            Some(error) => Err(error),
            None => Ok(keys.iter().map(|key| outcomes[key].clone()).collect()),
        };
        self.finish_write(&op, result)
    }
}

/// The distinct keys of `keys` in first-seen order, and for each key of `keys` the
/// position of its distinct twin.
fn distinct<K: Hash + Eq + Clone>(keys: &[K]) -> (Vec<K>, Vec<usize>) {
    let mut seen: HashMap<&K, usize> = HashMap::with_capacity(keys.len());
    let mut distinct = Vec::with_capacity(keys.len());
    let positions = keys
        .iter()
        .map(|key| {
            *seen.entry(key).or_insert_with(|| {
                distinct.push(key.clone());
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, positions)
}

/// How a batch read ends: a hit when every key hit; loaded when any key was loaded.
fn batch_outcome<V>(found: &[Fetched<V>]) -> OperationOutcome {
    let any = |wanted: fn(&Fetched<V>) -> bool| found.iter().any(wanted);
    if found
        .iter()
        .all(|fetched| matches!(fetched, Fetched::Hit(_)))
    {
        OperationOutcome::Hit
    } else if any(|fetched| matches!(fetched, Fetched::Stale(_))) {
        OperationOutcome::Stale
    } else if any(|fetched| matches!(fetched, Fetched::Loaded(_))) {
        OperationOutcome::Loaded
    } else if any(|fetched| matches!(fetched, Fetched::LoadedNothing)) {
        OperationOutcome::LoadedNothing
    } else {
        OperationOutcome::Miss
    }
}

/// A per-call batch load's answer in the loader's shape.
async fn loaded_many<K, V, E>(
    load: impl Future<Output = Result<HashMap<K, V>, E>>,
) -> Result<HashMap<K, Loaded<V>>, Error>
where
    K: Hash + Eq,
    E: Into<BoxError>,
{
    match load.await {
        Ok(found) => Ok(found
            .into_iter()
            .map(|(key, value)| (key, Loaded::new(value)))
            .collect()),
        Err(error) => Err(Error::from_source(ErrorKind::Loader, error)),
    }
}
