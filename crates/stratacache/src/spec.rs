//! The settings of one level before the cache is built, shared by the builder (for L1)
//! and [`Fallback`](crate::Fallback) (for the tiers below).

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use stratacache_memory::{EvictionCause, MemoryTier, MemoryTierBuilder};
use stratacache_tier::{CacheTier, Clock, Error, ErrorKind};

use crate::breaker::Breaker;
use crate::level::{Level, TierHandle};
use crate::policy::{InsertPolicy, PromotionPolicy};
use crate::recovery::Recovery;
use crate::tags::MarkerStore;
use crate::telemetry::{Telemetry, TierCounters};

type ConfigureMemory<K, V> =
    Box<dyn FnOnce(MemoryTierBuilder<K, V>) -> MemoryTierBuilder<K, V> + Send>;

/// How many changes may wait for a remote tier to recover, unless set.
pub(crate) const DEFAULT_RECOVERY_CAPACITY: usize = 10_000;

/// Where a level keeps its entries, before the cache is built.
pub(crate) enum Storage<K, V> {
    /// A memory tier the builder makes (and can watch for evictions).
    Memory(ConfigureMemory<K, V>),
    /// A tier made elsewhere.
    Tier(TierHandle<K, V>),
}

impl<K, V> Storage<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn memory(
        configure: impl FnOnce(MemoryTierBuilder<K, V>) -> MemoryTierBuilder<K, V> + Send + 'static,
    ) -> Self {
        Self::Memory(Box::new(configure))
    }

    pub(crate) fn tier(tier: impl CacheTier<K, V>) -> Self {
        Self::Tier(TierHandle::of(tier))
    }

    fn build(
        self,
        name: &Arc<str>,
        counters: &Arc<TierCounters>,
        telemetry: &Arc<Telemetry>,
        track_evictions: bool,
    ) -> TierHandle<K, V> {
        match self {
            Self::Memory(configure) => {
                let mut builder = configure(MemoryTier::builder());
                if track_evictions {
                    let (name, counters, telemetry) = (
                        Arc::clone(name),
                        Arc::clone(counters),
                        Arc::clone(telemetry),
                    );
                    builder =
                        builder.eviction_listener(move |_key, _entry, cause: EvictionCause| {
                            if cause.was_evicted() {
                                telemetry.evicted(&name, &counters);
                            }
                        });
                }
                TierHandle::Memory(builder.build())
            }
            Self::Tier(handle) => handle,
        }
    }
}

/// The settings of one level, before the cache is built.
pub(crate) struct LevelSpec<K, V> {
    pub(crate) storage: Storage<K, V>,
    pub(crate) name: Option<String>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) insert_policy: InsertPolicy<V>,
    pub(crate) promotion: PromotionPolicy<V>,
    /// Transient failures in a row that open the tier's circuit, and for how long.
    pub(crate) breaker: Option<(u32, Duration)>,
    /// How many changes may wait for the tier to recover; `None`: the default (a queue
    /// for a remote tier, none for a memory tier).
    pub(crate) recovery: Option<usize>,
    /// Where tag markers are kept, for a tier over a bytes-level store.
    pub(crate) markers: Option<Arc<dyn MarkerStore>>,
}

impl<K, V> LevelSpec<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(storage: Storage<K, V>) -> Self {
        Self {
            storage,
            name: None,
            ttl: None,
            insert_policy: InsertPolicy::always(),
            promotion: PromotionPolicy::always(),
            breaker: None,
            recovery: None,
            markers: None,
        }
    }

    pub(crate) fn build(
        self,
        depth: usize,
        clock: &Clock,
        telemetry: &Arc<Telemetry>,
        track_evictions: bool,
    ) -> Result<Level<K, V>, Error> {
        let name: Arc<str> = match self.name {
            Some(name) => name.into(),
            None => format!("l{}", depth + 1).into(),
        };
        if self.ttl == Some(Duration::ZERO) {
            return Err(Error::new(
                ErrorKind::Config,
                format!("tier `{name}` has a zero TTL: it could never serve an entry"),
            ));
        }
        let counters = Arc::default();
        let remote = matches!(self.storage, Storage::Tier(TierHandle::Dyn(_)));
        let recovery = match self.recovery {
            Some(capacity) => capacity,
            None if remote => DEFAULT_RECOVERY_CAPACITY,
            None => 0,
        };
        let recovery = (recovery > 0 && depth > 0).then(|| Recovery::new(recovery));
        let breaker = self.breaker.map(|settings| {
            Arc::new(Breaker::new(
                settings,
                clock.clone(),
                Arc::clone(telemetry),
                Arc::clone(&name),
            ))
        });
        Ok(Level {
            index: depth,
            tier: self
                .storage
                .build(&name, &counters, telemetry, track_evictions),
            name,
            ttl: self.ttl,
            insert_policy: self.insert_policy,
            promotion: self.promotion,
            counters,
            breaker,
            recovery,
        })
    }
}

impl<K, V> fmt::Debug for LevelSpec<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let storage = match &self.storage {
            Storage::Memory(_) | Storage::Tier(TierHandle::Memory(_)) => "memory",
            Storage::Tier(TierHandle::Dyn(_)) => "tier",
        };
        f.debug_struct("LevelSpec")
            .field("storage", &storage)
            .field("name", &self.name)
            .field("ttl", &self.ttl)
            .field("insert_policy", &self.insert_policy)
            .field("promotion", &self.promotion)
            .field("breaker", &self.breaker)
            .field("recovery", &self.recovery)
            .finish()
    }
}
