//! The shared state of a cache and the paths every operation takes through its tiers.

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::SystemTime;

use stratacache_tier::{CacheEntry, Clock, Error, ErrorKind};

use crate::coalesce::{Coalescer, Fetched, Flight, LoaderSlot, panicked};
use crate::generation::{Generations, Ticket};
use crate::level::{Level, TierHandle};
use crate::refresh::Refresher;
use crate::telemetry::{CacheCounter, Op, Operation, OperationOutcome, Telemetry, TierOutcome};

pub(crate) struct Inner<K, V> {
    pub(crate) clock: Clock,
    pub(crate) strict: bool,
    /// L1 first. Never empty.
    pub(crate) levels: Box<[Level<K, V>]>,
    pub(crate) generations: Generations,
    pub(crate) telemetry: Arc<Telemetry>,
    /// Whether an L1 hit must be checked against the clock. A memory L1 on the system
    /// clock, in a cache on the system clock, never returns an entry past its deadline
    /// (moka checks the deadline it was handed at insertion on every read), so the hit
    /// path skips a second clock read there. Any other clock is always consulted.
    pub(crate) l1_judges_expiry: bool,
    pub(crate) coalescer: Option<Coalescer<K, V>>,
    pub(crate) refresher: Option<Refresher<K, V>>,
}

/// What the synchronous look at L1 found.
pub(crate) enum FirstLook<V> {
    Hit(V),
    /// Nothing usable in L1 (missing or expired, and already counted): go on from L2.
    Miss,
    /// L1 cannot answer without awaiting: take the async path from L1.
    Deferred,
}

impl<V> FirstLook<V> {
    /// The level the miss path starts at.
    pub(crate) fn next_level(&self) -> usize {
        match self {
            Self::Hit(_) | Self::Miss => 1,
            Self::Deferred => 0,
        }
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The hit path: an L1 lookup that neither allocates nor awaits.
    #[inline]
    pub(crate) fn first_look<Q>(self: &Arc<Self>, key: &Q, op: &Op) -> FirstLook<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let l1 = &self.levels[0];
        let TierHandle::Memory(memory) = &l1.tier else {
            return FirstLook::Deferred;
        };
        let stopwatch = op.stopwatch();
        let Some(entry) = memory.lookup(key) else {
            self.telemetry
                .tier(op, &l1.name, &l1.counters, TierOutcome::Miss, stopwatch);
            return FirstLook::Miss;
        };
        if self.refresher.is_none() && !self.l1_judges_expiry {
            self.telemetry
                .tier(op, &l1.name, &l1.counters, TierOutcome::Hit, stopwatch);
            return FirstLook::Hit(entry.into_value());
        }
        let now = self.clock.now();
        if entry.is_expired(now) {
            self.telemetry
                .tier(op, &l1.name, &l1.counters, TierOutcome::Expired, stopwatch);
            // Reclaim now rather than waiting for moka's timer wheel.
            memory.remove(key);
            return FirstLook::Miss;
        }
        self.telemetry
            .tier(op, &l1.name, &l1.counters, TierOutcome::Hit, stopwatch);
        self.refresh_if_stale(key, &entry, now);
        FirstLook::Hit(entry.into_value())
    }

    /// Looks through the levels from `start` down, promoting a hit into the levels above
    /// it. Expired entries are removed where they are found.
    ///
    /// # Errors
    ///
    /// A tier's error, in strict mode only; otherwise failures count and read as misses.
    pub(crate) async fn look_from(
        self: &Arc<Self>,
        key: &K,
        start: usize,
        op: &Op,
    ) -> Result<Option<CacheEntry<V>>, Error> {
        let ticket = self.generations.ticket(key);
        for (depth, level) in self.levels.iter().enumerate().skip(start) {
            let stopwatch = op.stopwatch();
            match level.get(key).await {
                Ok(Some(entry)) => {
                    let now = self.clock.now();
                    if entry.is_expired(now) {
                        self.report(op, level, TierOutcome::Expired, stopwatch);
                        self.invalidate_at(level, key, op).await;
                        continue;
                    }
                    self.report(op, level, TierOutcome::Hit, stopwatch);
                    if depth == 0 {
                        self.refresh_if_stale(key, &entry, now);
                    } else if level.promotion.allows(&entry) {
                        self.promote(key, &entry, depth, ticket, now, op).await;
                    }
                    return Ok(Some(entry));
                }
                Ok(None) => {
                    self.report(op, level, TierOutcome::Miss, stopwatch);
                }
                Err(error) => {
                    self.tier_failed(level, &error, op, stopwatch);
                    // Bad bytes are a miss even when strict: the tier is up, and the
                    // entry (already deleted by the codec boundary) will be reloaded.
                    if self.strict && error.kind() != ErrorKind::Codec {
                        return Err(error);
                    }
                }
            }
        }
        Ok(None)
    }

    /// The miss path of `get` and the loader family: the lower tiers, then the loader if
    /// there is one; coalesced per key when stampede protection is on.
    pub(crate) async fn fetch<F, Fut>(
        self: &Arc<Self>,
        key: &K,
        start: usize,
        loader: Option<F>,
        op: &mut Op,
    ) -> Flight<V>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<Option<V>, Error>> + Send,
    {
        let Some(coalescer) = &self.coalescer else {
            return self.fetch_alone(key, start, loader, op).await;
        };
        let wants_load = loader.is_some();
        let slot = LoaderSlot::new(loader);
        let flight = {
            let (slot, op) = (&slot, &*op);
            coalescer
                .flights
                .execute(key, || async move {
                    self.fetch_alone(key, start, slot.lead(), op).await
                })
                .await
                .unwrap_or_else(|panic| Err(panicked(&panic)))
        };
        if !slot.led() {
            op.coalesced = true;
            self.telemetry.count(CacheCounter::CoalescedWaits);
        }
        // A caller with a loader that waited on a flight which ran no loader (a `get`
        // led it, or another caller's loader found nothing) loads now, once for all such.
        if wants_load
            && matches!(flight, Ok(Fetched::Miss | Fetched::LoadedNothing))
            && let Some(loader) = slot.take()
        {
            {
                let second = LoaderSlot::new(Some(loader));
                let loaded = {
                    let (second, op) = (&second, &*op);
                    coalescer
                        .loads
                        .execute(key, || async move {
                            self.fetch_alone(key, 0, second.lead(), op).await
                        })
                        .await
                        .unwrap_or_else(|panic| Err(panicked(&panic)))
                };
                if !second.led() && !op.coalesced {
                    op.coalesced = true;
                    self.telemetry.count(CacheCounter::CoalescedWaits);
                }
                // The load it waited on found nothing (an optional loader led it): this
                // caller's own loader still gets its turn.
                if let (Ok(Fetched::LoadedNothing), Some(loader)) = (&loaded, second.take()) {
                    return self.fetch_alone(key, 0, Some(loader), op).await;
                }
                return loaded;
            }
        }
        flight
    }

    /// The miss path for one caller alone.
    async fn fetch_alone<F, Fut>(
        self: &Arc<Self>,
        key: &K,
        start: usize,
        loader: Option<F>,
        op: &Op,
    ) -> Flight<V>
    where
        F: FnOnce() -> Fut + Send,
        Fut: Future<Output = Result<Option<V>, Error>> + Send,
    {
        // Taken before the lookup: a write during the lookup or the load keeps the
        // loaded value out of the cache.
        let ticket = self.generations.ticket(key);
        if let Some(entry) = self.look_from(key, start, op).await? {
            return Ok(Fetched::Hit(entry.into_value()));
        }
        let Some(loader) = loader else {
            return Ok(Fetched::Miss);
        };
        self.telemetry.count(CacheCounter::Loads);
        match loader().await {
            Ok(Some(value)) => {
                self.store_loaded(key, &value, ticket, op).await;
                Ok(Fetched::Loaded(value))
            }
            Ok(None) => Ok(Fetched::LoadedNothing),
            Err(error) => {
                self.telemetry.count(CacheCounter::LoadErrors);
                Err(error)
            }
        }
    }

    /// Copies an entry found at `depth` into the levels above it, nearest first, unless a
    /// write to the key raced with the lookup.
    async fn promote(
        &self,
        key: &K,
        entry: &CacheEntry<V>,
        depth: usize,
        ticket: Ticket,
        now: SystemTime,
        op: &Op,
    ) {
        if ticket.writer_was_busy() {
            return;
        }
        let above = &self.levels[..depth];
        self.store_in(above, key, entry, now, TierOutcome::Promoted, op)
            .await
            .ok();
        if self.generations.moved_since(ticket) {
            self.undo(above, key, op).await;
        }
    }

    /// Writes `entry` into `levels`, lowest first, so that an upper tier never holds what a
    /// lower one lacks. Each tier gets its own copy (see [`Level::copy_for`]).
    ///
    /// # Errors
    ///
    /// In strict mode the first failure stops the write (the tiers above stay untouched)
    /// and is returned. Otherwise failures are reported and the other tiers still written.
    pub(crate) async fn store_in(
        &self,
        levels: &[Level<K, V>],
        key: &K,
        entry: &CacheEntry<V>,
        now: SystemTime,
        stored: TierOutcome,
        op: &Op,
    ) -> Result<(), Error> {
        for level in levels.iter().rev() {
            if !level.insert_policy.allows(entry) {
                self.report(op, level, TierOutcome::InsertRejected, None);
                continue;
            }
            let Some(copy) = level.copy_for(entry, now) else {
                continue;
            };
            let stopwatch = op.stopwatch();
            match level.insert(key.clone(), copy).await {
                Ok(()) => self
                    .telemetry
                    .tier(op, &level.name, &level.counters, stored, stopwatch),
                Err(error) => {
                    self.tier_failed(level, &error, op, stopwatch);
                    if self.strict {
                        return Err(error);
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes `key` from `levels`, nearest first.
    ///
    /// # Errors
    ///
    /// In strict mode, the first failure (after trying every tier).
    pub(crate) async fn remove_from(
        &self,
        levels: &[Level<K, V>],
        key: &K,
        op: &Op,
    ) -> Result<(), Error> {
        let mut first_error = None;
        for level in levels {
            let stopwatch = op.stopwatch();
            match level.invalidate(key).await {
                Ok(()) => {
                    self.report(op, level, TierOutcome::Invalidated, stopwatch);
                }
                Err(error) => {
                    self.tier_failed(level, &error, op, stopwatch);
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) if self.strict => Err(error),
            _ => Ok(()),
        }
    }

    /// Takes back a write that raced with a newer one. Best effort: failures are reported.
    async fn undo(&self, levels: &[Level<K, V>], key: &K, op: &Op) {
        for level in levels {
            self.invalidate_at(level, key, op).await;
        }
    }

    /// Removes an entry from one tier as housekeeping (expired, or a raced write).
    async fn invalidate_at(&self, level: &Level<K, V>, key: &K, op: &Op) {
        let stopwatch = op.stopwatch();
        if let Err(error) = level.invalidate(key).await {
            self.tier_failed(level, &error, op, stopwatch);
        }
    }

    /// Stores a freshly loaded value unless a write to the key raced with the load.
    pub(crate) async fn store_loaded(&self, key: &K, value: &V, ticket: Ticket, op: &Op) {
        if ticket.writer_was_busy() || self.generations.moved_since(ticket) {
            return;
        }
        let now = self.clock.now();
        let entry = CacheEntry::new(value.clone(), now, None);
        // A failed store never costs the caller the value: it is reported and dropped.
        self.store_in(&self.levels, key, &entry, now, TierOutcome::Inserted, op)
            .await
            .ok();
        if self.generations.moved_since(ticket) {
            self.undo(&self.levels, key, op).await;
        }
    }

    /// Records what happened at `level` during `op`.
    #[inline]
    pub(crate) fn report(
        &self,
        op: &Op,
        level: &Level<K, V>,
        outcome: TierOutcome,
        stopwatch: Option<std::time::Instant>,
    ) {
        self.telemetry
            .tier(op, &level.name, &level.counters, outcome, stopwatch);
    }

    pub(crate) fn tier_failed(
        &self,
        level: &Level<K, V>,
        error: &Error,
        op: &Op,
        stopwatch: Option<std::time::Instant>,
    ) {
        let outcome = TierOutcome::Error(error.kind());
        self.telemetry
            .tier(op, &level.name, &level.counters, outcome, stopwatch);
    }

    /// Starts a background refresh of `key` if its L1 entry has reached its
    /// time-to-refresh and no refresh of it started within the last time-to-refresh.
    fn refresh_if_stale<Q>(self: &Arc<Self>, key: &Q, entry: &CacheEntry<V>, now: SystemTime)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let Some(refresher) = &self.refresher else {
            return;
        };
        if entry.age(now) < refresher.after || !refresher.claim(key, now) {
            return;
        }
        let task = Box::pin(Arc::clone(self).refresh(key.to_owned(), entry.cached_at()));
        if (refresher.spawner)(task) {
            self.telemetry.count(CacheCounter::RefreshesStarted);
        } else {
            self.telemetry.count(CacheCounter::RefreshesFailed);
        }
    }

    /// One background refresh: a newer entry from the fallback tiers, else the refresh
    /// loader's value, replaces the stale one. A failure keeps the old value.
    async fn refresh(self: Arc<Self>, key: K, stale_since: SystemTime) {
        let op = self.telemetry.start(Operation::Refresh);
        let ticket = self.generations.ticket(&key);
        let mut failure = None;
        let mut refreshed = false;
        for (depth, level) in self.levels.iter().enumerate().skip(1) {
            let stopwatch = op.stopwatch();
            match level.get(&key).await {
                Ok(Some(entry)) if !entry.is_expired(self.clock.now()) => {
                    if entry.cached_at() > stale_since {
                        self.report(&op, level, TierOutcome::RefreshHit, stopwatch);
                        self.promote(&key, &entry, depth, ticket, self.clock.now(), &op)
                            .await;
                        refreshed = true;
                    } else {
                        self.report(&op, level, TierOutcome::RefreshMiss, stopwatch);
                    }
                    // The nearest live copy is the newest the tiers hold.
                    break;
                }
                Ok(_) => {
                    self.report(&op, level, TierOutcome::RefreshMiss, stopwatch);
                }
                Err(error) => {
                    self.tier_failed(level, &error, &op, stopwatch);
                    failure = Some(error.kind());
                }
            }
        }
        let reload = self
            .refresher
            .as_ref()
            .and_then(|refresher| refresher.reload.clone());
        if let (false, Some(reload)) = (refreshed, reload) {
            self.telemetry.count(CacheCounter::Loads);
            match reload(key.clone()).await {
                Ok(Some(value)) => {
                    self.store_loaded(&key, &value, ticket, &op).await;
                    refreshed = true;
                }
                Ok(None) => {}
                Err(error) => {
                    self.telemetry.count(CacheCounter::LoadErrors);
                    failure = Some(error.kind());
                }
            }
        }
        if refreshed && let Some(refresher) = &self.refresher {
            refresher.release(&key);
        }
        let outcome = match (refreshed, failure) {
            (true, _) => OperationOutcome::Loaded,
            (false, Some(kind)) => {
                self.telemetry.count(CacheCounter::RefreshesFailed);
                OperationOutcome::Error(kind)
            }
            (false, None) => OperationOutcome::Miss,
        };
        self.telemetry.finish(&op, outcome);
    }
}
