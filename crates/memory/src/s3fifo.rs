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

/// Tells the builder's listeners what the engine evicted to make room.
pub(crate) struct Evictions<K, V>(pub(crate) Arc<[Listener<K, V>]>);

impl<K, V> Clone for Evictions<K, V> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<K, V> quick_cache::Lifecycle<K, Stored<V>> for Evictions<K, V>
where
    K: Hash + Eq,
    V: Clone,
{
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _state: &mut Self::RequestState, key: K, stored: Stored<V>) {
        if self.0.is_empty() {
            return;
        }
        let key = Arc::new(key);
        for listener in self.0.iter() {
            listener(Arc::clone(&key), stored.entry.clone(), EvictionCause::Size);
        }
    }
}

/// An S3-FIFO cache holding `max_weight` (entries, or the weigher's units), sized for
/// about `estimated_entries`.
pub(crate) fn build<K, V>(
    max_weight: Option<u64>,
    estimated_entries: usize,
    weigher: Option<Weigher<K, V>>,
    listeners: Vec<Listener<K, V>>,
) -> Quick<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    quick_cache::sync::Cache::with(
        estimated_entries,
        max_weight.unwrap_or(u64::MAX),
        Weight(weigher),
        ahash::RandomState::new(),
        Evictions(listeners.into()),
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
