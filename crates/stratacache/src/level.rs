//! One tier of a built cache, with the settings that belong to it.

use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use stratacache_memory::MemoryTier;
use stratacache_tier::{CacheEntry, Error};

use crate::erased::DynTier;
use crate::telemetry::TierCounters;
use crate::{InsertPolicy, PromotionPolicy};

/// The storage of a level. The memory tier is known by type so that a hit can be looked
/// up by a borrowed key (`&str` for `String`) without building an owned key.
pub(crate) enum TierHandle<K, V> {
    Memory(MemoryTier<K, V>),
    Dyn(Arc<dyn DynTier<K, V>>),
}

pub(crate) struct Level<K, V> {
    pub(crate) name: Arc<str>,
    pub(crate) tier: TierHandle<K, V>,
    /// How long this tier keeps a copy after storing it.
    pub(crate) ttl: Option<Duration>,
    pub(crate) insert_policy: InsertPolicy<V>,
    /// Whether hits here are copied into the levels above (unused on L1).
    pub(crate) promotion: PromotionPolicy<V>,
    pub(crate) counters: Arc<TierCounters>,
}

impl<K, V> Level<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The memory tier, when this level is one: its operations need no awaiting.
    pub(crate) fn memory(&self) -> Option<&MemoryTier<K, V>> {
        match &self.tier {
            TierHandle::Memory(memory) => Some(memory),
            TierHandle::Dyn(_) => None,
        }
    }

    pub(crate) async fn get(&self, key: &K) -> Result<Option<CacheEntry<V>>, Error> {
        match &self.tier {
            TierHandle::Memory(memory) => Ok(memory.lookup(key)),
            TierHandle::Dyn(tier) => match tier.get_now(key) {
                Some(answer) => answer,
                None => tier.get(key).await,
            },
        }
    }

    pub(crate) async fn insert(&self, key: K, entry: CacheEntry<V>) -> Result<(), Error> {
        match &self.tier {
            TierHandle::Memory(memory) => {
                memory.store(key, entry);
                Ok(())
            }
            TierHandle::Dyn(tier) => tier.insert(key, entry).await,
        }
    }

    pub(crate) async fn invalidate(&self, key: &K) -> Result<(), Error> {
        match &self.tier {
            TierHandle::Memory(memory) => {
                memory.remove(key);
                Ok(())
            }
            TierHandle::Dyn(tier) => tier.invalidate(key).await,
        }
    }

    pub(crate) async fn clear(&self) -> Result<(), Error> {
        match &self.tier {
            TierHandle::Memory(memory) => stratacache_tier::CacheTier::clear(memory).await,
            TierHandle::Dyn(tier) => tier.clear().await,
        }
    }

    pub(crate) fn len(&self) -> Option<u64> {
        match &self.tier {
            TierHandle::Memory(memory) => stratacache_tier::CacheTier::len(memory),
            TierHandle::Dyn(tier) => tier.len(),
        }
    }

    /// The copy of `entry` this tier stores at `now`: same production time, and a TTL
    /// that ends at whichever comes first, the entry's own expiry or `now` plus this
    /// tier's TTL. `None` when that copy would already be expired.
    pub(crate) fn copy_for(&self, entry: &CacheEntry<V>, now: SystemTime) -> Option<CacheEntry<V>> {
        let ttl = match (entry.ttl(), self.ttl) {
            (own, None) => own,
            (None, Some(tier)) => Some(entry.age(now).saturating_add(tier)),
            (Some(own), Some(tier)) => Some(own.min(entry.age(now).saturating_add(tier))),
        };
        let copy = CacheEntry::new(entry.value().clone(), entry.cached_at(), ttl);
        (!copy.is_expired(now)).then_some(copy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(ttl: Option<Duration>) -> Level<u8, u8> {
        Level {
            name: "l".into(),
            tier: TierHandle::Memory(MemoryTier::new(10)),
            ttl,
            insert_policy: InsertPolicy::always(),
            promotion: PromotionPolicy::always(),
            counters: Arc::default(),
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn copy_keeps_production_time_and_caps_by_the_tier_ttl() {
        let t0 = SystemTime::UNIX_EPOCH + 1_000 * SEC;
        let now = t0 + 30 * SEC;
        let entry = CacheEntry::new(1, t0, Some(3_600 * SEC));
        let copy = level(Some(60 * SEC)).copy_for(&entry, now).unwrap();
        assert_eq!(copy.cached_at(), t0);
        assert_eq!(copy.remaining_ttl(now), Some(60 * SEC));
    }

    #[test]
    fn copy_never_outlives_the_entry() {
        let t0 = SystemTime::UNIX_EPOCH + 1_000 * SEC;
        let now = t0 + 50 * SEC;
        let entry = CacheEntry::new(1, t0, Some(60 * SEC));
        let copy = level(Some(600 * SEC)).copy_for(&entry, now).unwrap();
        assert_eq!(copy.remaining_ttl(now), Some(10 * SEC));
        let untimed = level(None).copy_for(&entry, now).unwrap();
        assert_eq!(untimed.remaining_ttl(now), Some(10 * SEC));
    }

    #[test]
    fn expired_copy_is_not_made() {
        let t0 = SystemTime::UNIX_EPOCH + 1_000 * SEC;
        let entry = CacheEntry::new(1, t0, Some(60 * SEC));
        assert!(level(None).copy_for(&entry, t0 + 60 * SEC).is_none());
    }

    #[test]
    fn entry_without_ttl_gets_the_tier_ttl_from_now() {
        let t0 = SystemTime::UNIX_EPOCH + 1_000 * SEC;
        let now = t0 + 5 * SEC;
        let entry = CacheEntry::new(1, t0, None);
        let copy = level(Some(10 * SEC)).copy_for(&entry, now).unwrap();
        assert_eq!(copy.remaining_ttl(now), Some(10 * SEC));
        assert_eq!(level(None).copy_for(&entry, now).unwrap().ttl(), None);
    }
}
