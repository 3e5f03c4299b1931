//! The second engine (feature `quick_cache`): quick_cache's S3-FIFO cache. No timer
//! wheel and no TTL of its own: entries stay until evicted or replaced, and the cache
//! that owns the tier judges expiry by its clock on every read (see
//! [`MemoryTier::expires_entries`](crate::MemoryTier::expires_entries)).

use std::hash::Hash;
use std::sync::Arc;

use crate::eviction::{EvictionCause, Listener, Weigher};
use crate::expiry::Stored;

pub(crate) type Quick<K, V> =
    quick_cache::sync::Cache<K, Stored<V>, Weight<K, V>, ahash::RandomState, Evictions<K, V>>;

/// Weighs an entry with the builder's weigher (1 without one: capacity by count).
pub(crate) struct Weight<K, V>(pub(crate) Option<Weigher<K, V>>);

impl<K, V> Clone for Weight<K, V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K, V> quick_cache::Weighter<K, Stored<V>> for Weight<K, V> {
    fn weight(&self, key: &K, stored: &Stored<V>) -> u64 {
        // A zero weight would pin an entry in quick_cache: weigh at least one.
        self.0.as_ref().map_or(1, |weigh| {
            u64::from(weigh(key, stored.entry.value()).max(1))
        })
    }
}

/// Collects what the engine drops during a request, and tells the builder's listeners
/// once the engine's lock is released.
pub(crate) struct Evictions<K, V>(pub(crate) Arc<[Listener<K, V>]>);

impl<K, V> Clone for Evictions<K, V> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<K, V> Evictions<K, V>
where
    V: Clone,
{
    /// Tells the listeners about `dropped`: the first one `Replaced` when the request
    /// overwrote an entry (the engine drops the old value first), the rest `Size`.
    pub(crate) fn report(&self, dropped: Vec<(K, Stored<V>)>, replaced: bool) {
        if self.0.is_empty() {
            return;
        }
        for (index, (key, stored)) in dropped.into_iter().enumerate() {
            let cause = if replaced && index == 0 {
                EvictionCause::Replaced
            } else {
                EvictionCause::Size
            };
            let key = Arc::new(key);
            for listener in self.0.iter() {
                listener(Arc::clone(&key), stored.entry.clone(), cause);
            }
        }
    }
}

impl<K, V> quick_cache::Lifecycle<K, Stored<V>> for Evictions<K, V>
where
    K: Hash + Eq,
    V: Clone,
{
    type RequestState = Vec<(K, Stored<V>)>;

    fn begin_request(&self) -> Self::RequestState {
        Vec::new()
    }

    fn on_evict(&self, dropped: &mut Self::RequestState, key: K, stored: Stored<V>) {
        if !self.0.is_empty() {
            dropped.push((key, stored));
        }
    }

    fn end_request(&self, dropped: Self::RequestState) {
        // Requests other than `MemoryTier::store` (which reports itself): evictions.
        self.report(dropped, false);
    }
}

/// The capacity of an S3-FIFO tier built without one: the engine keeps no time, so an
/// unbounded tier would keep expired entries nobody reads again for ever.
pub(crate) const DEFAULT_CAPACITY: u64 = 100_000;

/// An S3-FIFO cache holding `max_weight` (entries, or the weigher's units), sized for
/// about `estimated_entries` (which sets its shards and its ghost queue).
pub(crate) fn build<K, V>(
    max_weight: u64,
    estimated_entries: usize,
    weigher: Option<Weigher<K, V>>,
    evictions: Evictions<K, V>,
) -> Quick<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    quick_cache::sync::Cache::with(
        estimated_entries,
        max_weight,
        Weight(weigher),
        ahash::RandomState::new(),
        evictions,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::SystemTime;

    use stratacache_tier::CacheEntry;

    use crate::{EvictionCause, MemoryTier};

    fn entry(value: u64) -> CacheEntry<u64> {
        CacheEntry::new(value, SystemTime::UNIX_EPOCH, None)
    }

    #[test]
    fn the_s3_fifo_engine_stores_looks_up_and_removes() {
        let tier = MemoryTier::<String, u64>::builder()
            .max_capacity(1_000)
            .s3_fifo()
            .build();
        assert!(!tier.expires_entries());
        tier.store("a".into(), entry(1), None);
        tier.store("b".into(), entry(2), None);
        assert_eq!(
            tier.lookup("a").map(|e| *e.value()),
            Some(1),
            "borrowed key"
        );
        assert!(
            !tier.remove_if("a", |found| *found.value() == 9),
            "condition false"
        );
        assert!(tier.remove_if("a", |found| *found.value() == 1));
        assert!(tier.lookup("a").is_none());
        tier.remove("b");
        assert_eq!(tier.entry_count(), 0);
        tier.store("c".into(), entry(3), None);
        tier.remove_all();
        assert!(tier.lookup("c").is_none());
    }

    #[test]
    fn an_overwrite_is_a_replacement_not_an_eviction() {
        let heard = std::sync::Arc::new(Mutex::new(Vec::new()));
        let listener = std::sync::Arc::clone(&heard);
        let tier = MemoryTier::<u64, u64>::builder()
            .max_capacity(1_000)
            .eviction_listener(move |key, entry, cause| {
                listener.lock().unwrap().push((*key, *entry.value(), cause));
            })
            .s3_fifo()
            .build();
        tier.store(1, entry(1), None);
        tier.store(1, entry(2), None);
        assert_eq!(*heard.lock().unwrap(), [(1, 1, EvictionCause::Replaced)]);
        assert_eq!(tier.lookup(&1).map(|e| *e.value()), Some(2));
    }

    #[test]
    fn capacity_by_count_and_by_weight_evicts_and_tells_the_listeners() {
        let evicted = std::sync::Arc::new(Mutex::new(Vec::new()));
        let heard = std::sync::Arc::clone(&evicted);
        let tier = MemoryTier::<u64, u64>::builder()
            .max_capacity(100)
            .eviction_listener(move |key, _, cause| heard.lock().unwrap().push((*key, cause)))
            .s3_fifo()
            .build();
        for key in 0..1_000 {
            tier.store(key, entry(key), None);
        }
        assert!(
            tier.entry_count() <= 110,
            "{} entries kept",
            tier.entry_count()
        );
        let evicted = evicted.lock().unwrap();
        assert!(evicted.len() >= 890, "{} evictions heard", evicted.len());
        assert!(
            evicted
                .iter()
                .all(|(_, cause)| *cause == EvictionCause::Size)
        );

        let weighed = MemoryTier::<u64, Vec<u8>>::builder()
            .max_capacity(10_000)
            .weigher(|_, value: &Vec<u8>| u32::try_from(value.len()).unwrap())
            .s3_fifo()
            .build();
        for key in 0..100 {
            weighed.store(
                key,
                CacheEntry::new(vec![0; 1_000], SystemTime::UNIX_EPOCH, None),
                None,
            );
        }
        assert!(
            weighed.weighted_size() <= 11_000,
            "{}",
            weighed.weighted_size()
        );
    }
}
