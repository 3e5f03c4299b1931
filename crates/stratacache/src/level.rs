//! One tier of a built cache, with the settings that belong to it.

use std::any::Any;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use stratacache_memory::MemoryTier;
use stratacache_tier::{CacheEntry, CacheTier, Error, Lookup};

use crate::breaker::Breaker;
use crate::erased::DynTier;
use crate::policy::{InsertPolicy, PromotionPolicy};
use crate::recovery::{Answer, Pending, Recovery};
use crate::telemetry::TierCounters;

/// The storage of a level. The memory tier is known by type so that a hit can be looked
/// up by a borrowed key (`&str` for `String`) without building an owned key, and answered
/// without awaiting or allocating.
pub(crate) enum TierHandle<K, V> {
    Memory(MemoryTier<K, V>),
    Dyn(Arc<dyn DynTier<K, V>>),
}

impl<K, V> TierHandle<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Any tier; a [`MemoryTier`] is recognised, so it keeps the synchronous hit path
    /// whichever door it came through.
    pub(crate) fn of<T: CacheTier<K, V>>(tier: T) -> Self {
        let mut tier = Some(tier);
        match (&mut tier as &mut dyn Any).downcast_mut::<Option<MemoryTier<K, V>>>() {
            Some(memory) => Self::Memory(memory.take().expect("set above")),
            None => Self::Dyn(Arc::new(tier.expect("not taken"))),
        }
    }
}

/// What a tier is handed to store: its copy of an entry, and how long to keep it (the
/// copy's remaining TTL, measured with the cache's clock).
pub(crate) struct Copy<V> {
    pub(crate) entry: CacheEntry<V>,
    pub(crate) keep_for: Option<Duration>,
}

pub(crate) struct Level<K, V> {
    /// Its place: 0 for L1.
    pub(crate) index: usize,
    pub(crate) name: Arc<str>,
    pub(crate) tier: TierHandle<K, V>,
    /// How long this tier keeps a copy after storing it.
    pub(crate) ttl: Option<Duration>,
    pub(crate) insert_policy: InsertPolicy<V>,
    /// Whether hits here are copied into the levels above (unused on L1).
    pub(crate) promotion: PromotionPolicy<V>,
    pub(crate) counters: Arc<TierCounters>,
    /// Skips the tier after repeated failures, when set.
    /// Shared with the tag markers when this tier keeps them.
    pub(crate) breaker: Option<Arc<Breaker>>,
    /// Changes the tier could not take, waiting for it to answer again (remote tiers).
    pub(crate) recovery: Option<Recovery<K, V>>,
}

impl<K, V> Level<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The memory tier, when this level is one: its operations need no awaiting.
    pub(crate) fn memory(&self) -> Option<&MemoryTier<K, V>> {
        match &self.tier {
            TierHandle::Memory(memory) => Some(memory),
            TierHandle::Dyn(_) => None,
        }
    }

    /// What the tier holds under `key`, or what a change of it waiting for the tier
    /// says it will hold.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every miss's future"
    )]
    pub(crate) fn get<'a>(
        &'a self,
        key: &'a K,
    ) -> impl Future<Output = Result<Option<CacheEntry<V>>, Error>> + Send + 'a {
        async move {
            // Decided before anything is awaited: a waiting change held across the read
            // would grow every miss's future. A contested one is rare, and boxed.
            let contested = match self.recovery.as_ref().and_then(|r| r.answer(key)) {
                None => None,
                Some(Answer::Waiting(answer)) => return Ok(answer),
                Some(Answer::Contested(change)) => Some(Box::pin(self.get_contested(key, change))),
            };
            match contested {
                None => self.get_stored(key).await,
                Some(contested) => contested.await,
            }
        }
    }

    /// [`get`](Self::get) of a key whose waiting change is contested.
    async fn get_contested(
        &self,
        key: &K,
        change: Pending<V>,
    ) -> Result<Option<CacheEntry<V>>, Error> {
        Ok(change.against(self.get_stored(key).await?))
    }

    /// What the tier holds under `key`.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every miss's future"
    )]
    pub(crate) fn get_stored<'a>(
        &'a self,
        key: &'a K,
    ) -> impl Future<Output = Result<Option<CacheEntry<V>>, Error>> + Send + 'a {
        async move {
            match &self.tier {
                TierHandle::Memory(memory) => Ok(memory.lookup(key)),
                TierHandle::Dyn(tier) => self.guarded(|| tier.get(key)).await,
            }
        }
    }

    /// Whether the tier holds an entry of `key` [newer](CacheEntry::is_newer_than) than
    /// `than`, the time of a change waiting for it (another instance wrote since).
    pub(crate) async fn holds_newer(&self, key: &K, than: SystemTime) -> Result<bool, Error> {
        let stored = self.get_stored(key).await?;
        Ok(stored.is_some_and(|theirs| theirs.is_newer_than(than)))
    }

    /// `call` through the tier's circuit breaker, if it has one; an `Ok` answer tells
    /// the waiting changes the tier is back.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every remote call's future"
    )]
    fn guarded<'a, T, Fut>(
        &'a self,
        call: impl FnOnce() -> Fut + Send + 'a,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'a
    where
        T: Send + 'a,
        Fut: Future<Output = Result<T, Error>> + Send + 'a,
    {
        async move {
            let answer = Breaker::guard_if_any(self.breaker.as_deref(), call).await;
            if let Some(recovery) = &self.recovery
                && answer.as_ref().is_ok()
            {
                recovery.tier_answered();
            }
            answer
        }
    }

    /// What this tier holds under each of `keys`, in one batch where the tier can.
    pub(crate) async fn get_many(&self, keys: &[K]) -> Result<Vec<Lookup<V>>, Error> {
        let Some(recovery) = self.recovery.as_ref().filter(|r| !r.is_empty()) else {
            return self.get_many_stored(keys).await;
        };
        // Keys with a change waiting answer as it; the tier is asked for the others (and
        // for contested ones, judged against their change).
        let waiting: Vec<_> = keys.iter().map(|key| recovery.answer(key)).collect();
        let asked: Vec<K> = keys
            .iter()
            .zip(&waiting)
            .filter(|(_, waiting)| !matches!(waiting, Some(Answer::Waiting(_))))
            .map(|(key, _)| key.clone())
            .collect();
        let mut stored = self.get_many_stored(&asked).await?.into_iter();
        Ok(waiting
            .into_iter()
            .map(|waiting| match waiting {
                Some(Answer::Waiting(answer)) => Ok(answer),
                Some(Answer::Contested(change)) => stored
                    .next()
                    .unwrap_or(Ok(None))
                    .map(|found| change.against(found)),
                None => stored.next().unwrap_or(Ok(None)),
            })
            .collect())
    }

    async fn get_many_stored(&self, keys: &[K]) -> Result<Vec<Lookup<V>>, Error> {
        match &self.tier {
            TierHandle::Memory(memory) => {
                Ok(keys.iter().map(|key| Ok(memory.lookup(key))).collect())
            }
            TierHandle::Dyn(tier) => self.guarded(|| tier.get_many(keys)).await,
        }
    }

    pub(crate) async fn insert(&self, key: K, copy: Copy<V>) -> Result<(), Error> {
        match &self.tier {
            TierHandle::Memory(memory) => {
                memory.store(key, copy.entry, copy.keep_for);
                Ok(())
            }
            TierHandle::Dyn(tier) => {
                self.guarded(|| tier.insert(key, copy.entry, copy.keep_for))
                    .await
            }
        }
    }

    /// Stores what a reader found below or a loader produced, unless the tier holds
    /// something newer (see [`CacheTier::fill`]); answers whether it stored.
    pub(crate) async fn fill(&self, key: K, copy: Copy<V>) -> Result<bool, Error> {
        match &self.tier {
            TierHandle::Memory(memory) => {
                memory.store(key, copy.entry, copy.keep_for);
                Ok(true)
            }
            TierHandle::Dyn(tier) => {
                self.guarded(|| tier.fill(key, copy.entry, copy.keep_for))
                    .await
            }
        }
    }

    /// Removes `key` as of `at` (see [`CacheTier::invalidate_at`]).
    pub(crate) async fn invalidate_at(&self, key: &K, at: SystemTime) -> Result<(), Error> {
        match &self.tier {
            TierHandle::Memory(memory) => {
                memory.remove(key);
                Ok(())
            }
            TierHandle::Dyn(tier) => self.guarded(|| tier.invalidate_at(key, at)).await,
        }
    }

    /// Removes `key` as of `at` unless the tier holds an entry
    /// [newer](CacheEntry::is_newer_than) than `than` (see
    /// [`CacheTier::invalidate_unless_newer`]); answers whether it removed.
    pub(crate) async fn invalidate_unless_newer(
        &self,
        key: &K,
        at: SystemTime,
        than: SystemTime,
    ) -> Result<bool, Error> {
        match &self.tier {
            TierHandle::Memory(memory) => {
                memory.remove(key);
                Ok(true)
            }
            TierHandle::Dyn(tier) => {
                self.guarded(|| tier.invalidate_unless_newer(key, at, than))
                    .await
            }
        }
    }

    pub(crate) async fn clear(&self) -> Result<(), Error> {
        match &self.tier {
            TierHandle::Memory(memory) => stratacache_tier::CacheTier::clear(memory).await,
            TierHandle::Dyn(tier) => self.guarded(|| tier.clear()).await,
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
    /// tier's TTL; with how long that leaves, for the tier to keep it. `None` when that
    /// copy would already be expired.
    pub(crate) fn copy_for(&self, entry: &CacheEntry<V>, now: SystemTime) -> Option<Copy<V>> {
        let ttl = capped_ttl(entry, self.ttl, now);
        let entry = entry.copy_with_ttl(ttl);
        if entry.is_expired(now) {
            return None;
        }
        let keep_for = entry.remaining_ttl(now);
        Some(Copy { entry, keep_for })
    }
}

/// `entry`'s TTL, cut so that it ends no later than `cap` after `now` (its age counts:
/// the TTL still runs from when the value was produced).
pub(crate) fn capped_ttl<V>(
    entry: &CacheEntry<V>,
    cap: Option<Duration>,
    now: SystemTime,
) -> Option<Duration> {
    let Some(cap) = cap else {
        return entry.ttl();
    };
    let until = entry.age(now).saturating_add(cap);
    Some(entry.ttl().map_or(until, |own| own.min(until)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(ttl: Option<Duration>) -> Level<u8, u8> {
        Level {
            index: 0,
            name: "l".into(),
            tier: TierHandle::Memory(MemoryTier::new(10)),
            ttl,
            insert_policy: InsertPolicy::always(),
            promotion: PromotionPolicy::always(),
            counters: Arc::default(),
            breaker: None,
            recovery: None,
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn copy_keeps_production_time_and_caps_by_the_tier_ttl() {
        let t0 = SystemTime::UNIX_EPOCH + 1_000 * SEC;
        let now = t0 + 30 * SEC;
        let entry = CacheEntry::new(1, t0, Some(3_600 * SEC));
        let copy = level(Some(60 * SEC)).copy_for(&entry, now).unwrap();
        assert_eq!(copy.entry.cached_at(), t0);
        assert_eq!(copy.entry.remaining_ttl(now), Some(60 * SEC));
        assert_eq!(copy.keep_for, Some(60 * SEC), "the tier is told the same");
    }

    #[test]
    fn copy_never_outlives_the_entry() {
        let t0 = SystemTime::UNIX_EPOCH + 1_000 * SEC;
        let now = t0 + 50 * SEC;
        let entry = CacheEntry::new(1, t0, Some(60 * SEC));
        let copy = level(Some(600 * SEC)).copy_for(&entry, now).unwrap();
        assert_eq!(copy.entry.remaining_ttl(now), Some(10 * SEC));
        assert_eq!(copy.keep_for, Some(10 * SEC));
        let untimed = level(None).copy_for(&entry, now).unwrap();
        assert_eq!(untimed.entry.remaining_ttl(now), Some(10 * SEC));
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
        assert_eq!(copy.entry.remaining_ttl(now), Some(10 * SEC));
        let untimed = level(None).copy_for(&entry, now).unwrap();
        assert_eq!((untimed.entry.ttl(), untimed.keep_for), (None, None));
    }
}
