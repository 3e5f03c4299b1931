//! A whole cache as a tier: nest caches, or serve one over tower.

use std::hash::Hash;
use std::time::Duration;

use stratacache_tier::{CacheEntry, CacheTier, Error};

use crate::cache::Cache;
use crate::level::capped_ttl;
use crate::outcome::WriteOutcome;
use crate::telemetry::Operation;
use crate::write::Change;

/// A nested cache's write is done only when every one of its tiers took it.
fn complete(written: &WriteOutcome) -> Result<(), Error> {
    written
        .first_failure()
        .map_or(Ok(()), |error| Err(error.clone()))
}

impl<K, V> CacheTier<K, V> for Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    async fn get(&self, key: &K) -> Result<Option<CacheEntry<V>>, Error> {
        self.get_entry(key).await
    }

    /// Stores the entry with its production time, its TTL capped by `keep_for` (measured
    /// with this cache's clock). A write that some tier failed is an error here, strict
    /// or not: the outer cache decides.
    async fn insert(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> Result<(), Error> {
        let ttl = capped_ttl(&entry, keep_for, self.inner.clock.now());
        let entry = entry.with_ttl(ttl);
        let every_level = 0..self.inner.levels.len();
        let written = self
            .write(Operation::Insert, &key, Change::Store(entry), every_level)
            .await?;
        complete(&written)
    }

    async fn invalidate(&self, key: &K) -> Result<(), Error> {
        complete(&Cache::invalidate(self, key).await?)
    }

    async fn clear(&self) -> Result<(), Error> {
        complete(&Cache::clear(self).await?)
    }

    fn len(&self) -> Option<u64> {
        self.l1_len()
    }
}
