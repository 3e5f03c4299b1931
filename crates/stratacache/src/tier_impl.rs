//! A whole cache as a tier: nest caches, or serve one over tower.

use std::hash::Hash;

use stratacache_tier::{CacheEntry, CacheTier, Error};

use crate::Cache;
use crate::telemetry::{Operation, TierOutcome};

impl<K, V> CacheTier<K, V> for Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    async fn get(&self, key: &K) -> Result<Option<CacheEntry<V>>, Error> {
        self.get_entry(key).await
    }

    /// Stores the entry as it is: its production time and TTL are kept.
    async fn insert(&self, key: K, entry: CacheEntry<V>) -> Result<(), Error> {
        let inner = &*self.inner;
        let op = inner.telemetry.start(Operation::Insert);
        let result = {
            let _write = inner.generations.write(&key);
            let now = inner.clock.now();
            inner
                .store_in(&inner.levels, &key, &entry, now, TierOutcome::Inserted, &op)
                .await
        };
        self.finish_write(&op, result)
    }

    async fn invalidate(&self, key: &K) -> Result<(), Error> {
        Cache::invalidate(self, key).await
    }

    async fn clear(&self) -> Result<(), Error> {
        Cache::clear(self).await
    }

    fn len(&self) -> Option<u64> {
        self.l1_len()
    }
}
