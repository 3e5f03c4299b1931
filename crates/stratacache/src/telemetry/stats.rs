use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one tier, updated with relaxed atomic increments.
#[derive(Default)]
pub(crate) struct TierCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) refresh_hits: AtomicU64,
    pub(crate) refresh_misses: AtomicU64,
    pub(crate) inserts: AtomicU64,
    pub(crate) insert_rejections: AtomicU64,
    pub(crate) invalidations: AtomicU64,
    pub(crate) evictions: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// Counters of the cache as a whole.
#[derive(Default)]
pub(crate) struct CacheCounters {
    pub(crate) loads: AtomicU64,
    pub(crate) load_errors: AtomicU64,
    pub(crate) coalesced_waits: AtomicU64,
    pub(crate) refreshes_started: AtomicU64,
    pub(crate) refreshes_failed: AtomicU64,
}

#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// A snapshot of one tier's counters.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TierStats {
    /// The tier's name (`l1`, `l2`, … unless named).
    pub name: Arc<str>,
    /// Lookups that found a live entry.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Lookups that found an entry past its TTL (counted apart from misses).
    pub expired: u64,
    /// Background refreshes that found a newer entry here (or stored a reloaded one).
    pub refresh_hits: u64,
    /// Background refreshes that found nothing newer here.
    pub refresh_misses: u64,
    /// Entries stored (inserts, loads and promotions).
    pub inserts: u64,
    /// Entries its insert policy declined.
    pub insert_rejections: u64,
    /// Entries removed by `invalidate`.
    pub invalidations: u64,
    /// Entries the tier dropped on its own (capacity or expiry): memory tiers built by
    /// the cache, with [`track_evictions`](crate::CacheBuilder::track_evictions).
    pub evictions: u64,
    /// Calls that failed.
    pub errors: u64,
}

impl TierStats {
    /// Hits over all lookups (hits, misses and expired), or 0 before any lookup.
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.hits + self.misses + self.expired)
    }

    pub(crate) fn read(name: &Arc<str>, counters: &TierCounters) -> Self {
        Self {
            name: Arc::clone(name),
            hits: read(&counters.hits),
            misses: read(&counters.misses),
            expired: read(&counters.expired),
            refresh_hits: read(&counters.refresh_hits),
            refresh_misses: read(&counters.refresh_misses),
            inserts: read(&counters.inserts),
            insert_rejections: read(&counters.insert_rejections),
            invalidations: read(&counters.invalidations),
            evictions: read(&counters.evictions),
            errors: read(&counters.errors),
        }
    }
}

/// A snapshot of a cache's counters: one [`TierStats`] per tier, L1 first, and the
/// cache-wide ones.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Per tier, L1 first.
    pub tiers: Vec<TierStats>,
    /// Loader calls.
    pub loads: u64,
    /// Loader calls that failed.
    pub load_errors: u64,
    /// Callers that waited on another caller's load instead of running their own.
    pub coalesced_waits: u64,
    /// Background refreshes started.
    pub refreshes_started: u64,
    /// Background refreshes that failed (the old value was kept).
    pub refreshes_failed: u64,
}

impl CacheStats {
    /// Requests answered by any tier over all requests, judged at L1: every request
    /// looks at L1 first, and a request that misses L1 counts as a hit if a lower tier
    /// had the value.
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        let Some(l1) = self.tiers.first() else {
            return 0.0;
        };
        let requests = l1.hits + l1.misses + l1.expired;
        let lower_hits: u64 = self.tiers.iter().skip(1).map(|tier| tier.hits).sum();
        ratio(l1.hits + lower_hits, requests)
    }

    pub(crate) fn read(tiers: Vec<TierStats>, counters: &CacheCounters) -> Self {
        Self {
            tiers,
            loads: read(&counters.loads),
            load_errors: read(&counters.load_errors),
            coalesced_waits: read(&counters.coalesced_waits),
            refreshes_started: read(&counters.refreshes_started),
            refreshes_failed: read(&counters.refreshes_failed),
        }
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "a ratio needs no more than f64 precision"
)]
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}
