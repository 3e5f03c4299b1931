use std::sync::Arc;

use stratacache_tier::{CircuitState, ErrorKind};

use super::counters::Counters;
use super::event::TierOutcome;

/// Counters of one tier, one per [`TierCounter`].
pub(crate) type TierCounters = Counters<{ TierCounter::COUNT }>;

/// Counters of the cache as a whole, one per [`CacheCounter`].
pub(crate) type CacheCounters = Counters<{ CacheCounter::COUNT }>;

/// What a tier counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TierCounter {
    Hits,
    Misses,
    Expired,
    RefreshHits,
    RefreshMisses,
    Inserts,
    InsertRejections,
    Invalidations,
    Evictions,
    ShortCircuits,
    Errors,
}

impl TierCounter {
    const COUNT: usize = Self::Errors as usize + 1;

    /// The counter an outcome at a tier adds to.
    #[inline]
    pub(crate) const fn of(outcome: TierOutcome) -> Self {
        match outcome {
            TierOutcome::Hit => Self::Hits,
            TierOutcome::Miss => Self::Misses,
            TierOutcome::Expired => Self::Expired,
            TierOutcome::RefreshHit => Self::RefreshHits,
            TierOutcome::RefreshMiss => Self::RefreshMisses,
            TierOutcome::Inserted | TierOutcome::Promoted => Self::Inserts,
            TierOutcome::InsertRejected => Self::InsertRejections,
            TierOutcome::Invalidated => Self::Invalidations,
            TierOutcome::Evicted => Self::Evictions,
            TierOutcome::Error(ErrorKind::CircuitOpen) => Self::ShortCircuits,
            TierOutcome::Error(_) => Self::Errors,
        }
    }
}

/// What a cache counts as a whole.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CacheCounter {
    Loads,
    LoadErrors,
    CoalescedWaits,
    RefreshesStarted,
    RefreshesFailed,
    NotFoundHits,
    StaleServed,
    RecoveryQueued,
    RecoveryReplayed,
    RecoveryDropped,
    SoftTimeouts,
    BackgroundLoads,
    DefaultsServed,
    BackplaneSent,
    BackplaneReceived,
    BackplaneErrors,
    BackplaneGaps,
    LockWaits,
    LockTimeouts,
    TagsInvalidated,
    TagErrors,
    IntegrityFailures,
}

impl CacheCounter {
    const COUNT: usize = Self::IntegrityFailures as usize + 1;
}

/// A snapshot of one tier's counters.
///
/// ```
/// use stratacache::{Cache, Fallback};
///
/// # futures::executor::block_on(async {
/// let cache: Cache<u64, &str> =
///     Cache::builder().fallback(Fallback::memory(|tier| tier).name("shared")).build()?;
/// cache.insert(1, "one").await?;
/// cache.get(&1).await?; // an L1 hit: L2 is not asked
/// cache.get(&2).await?; // a miss in both
/// let stats = cache.stats();
/// let (l1, l2) = (&stats.tiers[0], &stats.tiers[1]);
/// assert_eq!((&*l1.name, l1.hits, l1.misses, l1.inserts), ("l1", 1, 1, 1));
/// assert_eq!((&*l2.name, l2.hits, l2.misses, l2.inserts), ("shared", 0, 1, 1));
/// assert!((l1.hit_ratio() - 0.5).abs() < f64::EPSILON);
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
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
    /// Calls that failed (not counting those its circuit breaker turned away).
    pub errors: u64,
    /// Calls its [circuit breaker](crate::Fallback::circuit_breaker) turned away.
    pub short_circuits: u64,
    /// Where its circuit breaker stands, when it has one.
    pub circuit: Option<CircuitState>,
    /// How many entries the tier holds now, when it can tell cheaply (a memory tier;
    /// `None` for a remote one). Expired entries not yet reclaimed may count.
    pub entries: Option<u64>,
    /// Changes waiting for the tier to answer again, to be replayed
    /// ([`auto_recovery`](crate::Fallback::auto_recovery)); a clear counts as one. 0 for a
    /// tier without a queue.
    pub waiting: u64,
}

impl TierStats {
    /// Hits over all lookups (hits, misses and expired), or 0 before any lookup.
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.hits + self.misses + self.expired)
    }

    pub(crate) fn read(
        name: &Arc<str>,
        counters: &TierCounters,
        entries: Option<u64>,
        circuit: Option<CircuitState>,
        waiting: u64,
    ) -> Self {
        let counts = counters.read();
        let count = |counter: TierCounter| counts[counter as usize];
        Self {
            name: Arc::clone(name),
            hits: count(TierCounter::Hits),
            misses: count(TierCounter::Misses),
            expired: count(TierCounter::Expired),
            refresh_hits: count(TierCounter::RefreshHits),
            refresh_misses: count(TierCounter::RefreshMisses),
            inserts: count(TierCounter::Inserts),
            insert_rejections: count(TierCounter::InsertRejections),
            invalidations: count(TierCounter::Invalidations),
            evictions: count(TierCounter::Evictions),
            errors: count(TierCounter::Errors),
            short_circuits: count(TierCounter::ShortCircuits),
            circuit,
            entries,
            waiting,
        }
    }
}

/// A snapshot of a cache's counters: one [`TierStats`] per tier, L1 first, and the
/// cache-wide ones.
///
/// ```
/// use stratacache::Cache;
///
/// # futures::executor::block_on(async {
/// let cache: Cache<u64, String> = Cache::builder().build()?;
/// cache.get_or_insert(&1, || async { "one".to_string() }).await?; // loads
/// cache.get_or_insert(&1, || async { "one".to_string() }).await?; // hits
/// let error = cache.try_get_or_insert(&2, || async { Err::<String, _>("db down") }).await;
/// assert!(error.is_err());
/// let stats = cache.stats();
/// assert_eq!((stats.loads, stats.load_errors), (2, 1));
/// assert_eq!(stats.tiers.len(), 1);
/// assert!((stats.hit_ratio() - 1.0 / 3.0).abs() < 1e-9);
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
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
    /// `get`s answered "not found" from a remembered answer of the loader, without
    /// loading (see [`cache_not_found`](crate::CacheBuilder::cache_not_found)).
    pub not_found_hits: u64,
    /// Values served past their TTL because their source failed (see
    /// [`fail_safe`](crate::CacheBuilder::fail_safe)).
    pub stale_served: u64,
    /// Changes a remote tier could not take, queued for its recovery (see
    /// [`auto_recovery`](crate::Fallback::auto_recovery)).
    pub recovery_queued: u64,
    /// Queued changes replayed into their recovered tier.
    pub recovery_replayed: u64,
    /// Changes dropped: the queue was full, or at replay the tier held something newer,
    /// or a write was given up (the tier timed out on it or refused it just after
    /// answering, or it expired while it waited: the key is removed there instead).
    pub recovery_dropped: u64,
    /// Loads that ran past the soft timeout, answered with a stale value (see
    /// [`LoadTimeouts`](crate::LoadTimeouts)).
    pub soft_timeouts: u64,
    /// Loads that went on after their caller was answered, and stored their value.
    pub background_loads: u64,
    /// Lookups answered with their call's
    /// [`fail_safe_default`](crate::WithOptions::fail_safe_default) after the source
    /// failed.
    pub defaults_served: u64,
    /// Changes announced to the other instances (see
    /// [`backplane`](crate::CacheBuilder::backplane)).
    pub backplane_sent: u64,
    /// Changes other instances announced, acted on.
    pub backplane_received: u64,
    /// Announcements that could not be sent, and messages that could not be read.
    pub backplane_errors: u64,
    /// Times the subscription was lost and all of L1 dropped, for what may have been
    /// missed.
    pub backplane_gaps: u64,
    /// Waits for another instance's [distributed lock](crate::CacheBuilder::distributed_lock)
    /// on a key before taking its value.
    pub lock_waits: u64,
    /// Waits that ran out: the caller loaded anyway.
    pub lock_timeouts: u64,
    /// Tags invalidated here or by another instance (see
    /// [`invalidate_tag`](crate::Cache::invalidate_tag)).
    pub tags_invalidated: u64,
    /// Tag markers the shared tier could not read or write; what this instance knew of
    /// them stood, and the markers it could not write are written again.
    pub tag_errors: u64,
    /// Entries that failed a security check in a remote tier (see
    /// [`ErrorKind::Integrity`](crate::ErrorKind::Integrity)): read as misses, deleted.
    /// Apart from codec errors, as these may mean an attack or a wrong key.
    pub integrity_failures: u64,
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
        let counts = counters.read();
        let count = |counter: CacheCounter| counts[counter as usize];
        Self {
            tiers,
            loads: count(CacheCounter::Loads),
            load_errors: count(CacheCounter::LoadErrors),
            coalesced_waits: count(CacheCounter::CoalescedWaits),
            refreshes_started: count(CacheCounter::RefreshesStarted),
            refreshes_failed: count(CacheCounter::RefreshesFailed),
            not_found_hits: count(CacheCounter::NotFoundHits),
            stale_served: count(CacheCounter::StaleServed),
            recovery_queued: count(CacheCounter::RecoveryQueued),
            recovery_replayed: count(CacheCounter::RecoveryReplayed),
            recovery_dropped: count(CacheCounter::RecoveryDropped),
            soft_timeouts: count(CacheCounter::SoftTimeouts),
            background_loads: count(CacheCounter::BackgroundLoads),
            defaults_served: count(CacheCounter::DefaultsServed),
            backplane_sent: count(CacheCounter::BackplaneSent),
            backplane_received: count(CacheCounter::BackplaneReceived),
            backplane_errors: count(CacheCounter::BackplaneErrors),
            backplane_gaps: count(CacheCounter::BackplaneGaps),
            tags_invalidated: count(CacheCounter::TagsInvalidated),
            tag_errors: count(CacheCounter::TagErrors),
            integrity_failures: count(CacheCounter::IntegrityFailures),
            lock_waits: count(CacheCounter::LockWaits),
            lock_timeouts: count(CacheCounter::LockTimeouts),
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
