//! The write rules: how `insert`, `invalidate` and `clear` change the tiers, and how a
//! reader publishes what it found or loaded without ever overwriting a newer write.
//!
//! - A write holds its key (see `key_lock`) for its whole course, so writes of one key
//!   reach every tier in the same order, and marks its stripe (see `generation`) so that
//!   readers which started before it or during it store nothing.
//! - A value is written lowest tier first. A tier that fails makes every tier above it
//!   drop the key: an upper tier never keeps a value the tiers below may lack or hold
//!   differently. A tier whose insert policy declines the value drops its older copy, and
//!   so does a tier that is up but refuses it (too large, out of memory).
//! - A publish (promotion, load, refresh) stores only if no write to the key began since
//!   its reader's ticket, checked under the key's lock (and, for L1, the stripe's lock)
//!   right before it stores: never write first and undo later. It never waits for the
//!   key: when someone holds it, the publish is skipped. A tier that fails a publish is
//!   skipped, not the tiers above it: what a reader found or loaded is no older than
//!   what the failing tier holds, and L1 keeps serving while Redis is down.

use std::hash::Hash;
use std::ops::Range;
use std::sync::Arc;

use stratacache_tier::{CacheEntry, Error, ErrorKind};

use crate::backplane::Action;
use crate::generation::{Ticket, WriteGuard};
use crate::inner::Inner;
use crate::key_lock::KeyGuard;
use crate::level::{Copy, Level};
use crate::outcome::{TierWrite, TierWriteResult, WriteOutcome};
use crate::recovery::{Pending, is_outage, is_refusal};
use crate::telemetry::{CacheCounter, Op, TierOutcome};

/// A write in progress; if it is dropped before it finishes, its key leaves the memory
/// L1 (under the stripe's lock, like every writer's L1 change), and the other instances
/// are told (it may have reached a shared tier).
struct Unfinished<'a, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    inner: &'a Inner<K, V>,
    key: &'a K,
    guard: &'a WriteGuard<'a>,
    finished: bool,
}

impl<K, V> Drop for Unfinished<'_, K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        if let Some(l1) = self.inner.levels[0].memory() {
            self.guard.in_l1(|| l1.remove(self.key));
        }
        self.inner.announce(Action::Invalidated, Some(self.key));
    }
}

/// What a write does to a key.
pub(crate) enum Change<V> {
    Store(CacheEntry<V>),
    Remove,
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Holds `key` against every other write and publish below L1 in this cache (a no-op
    /// for a cache whose only tier is a memory L1: its changes are atomic already).
    async fn hold(&self, key: &K) -> Option<KeyGuard<'_, K>> {
        match &self.key_locks {
            Some(locks) => Some(locks.lock(key).await),
            None => None,
        }
    }

    /// Applies `change` to every tier (see the module docs for the order and rules). A
    /// value is stored only in `levels`; the tiers outside drop their copy of the key.
    ///
    /// # Errors
    ///
    /// With [`strict`](crate::CacheBuilder::strict), the lowest failing tier's error, after
    /// every tier was dealt with. Otherwise failures are in the outcome.
    pub(crate) async fn write(
        &self,
        key: &K,
        change: Change<V>,
        levels: Range<usize>,
        op: &Op,
    ) -> Result<WriteOutcome, Error> {
        let held = self.hold(key).await;
        let guard = self.generations.write(key);
        self.apply(key, change, levels, op, (held, guard, false))
            .await
    }

    /// [`write`](Self::write)s a change made from what was read under `ticket` (a
    /// refresh's load): `None`, and nothing changed, if a write to the key's stripe began
    /// since. Checked as the write begins, under the key's lock: a write that was waiting
    /// for the lock when the load ended goes first, and stands. A value is stored in the
    /// remote tiers as a fill: not over what another instance wrote since the load began
    /// (the tiers above that one then keep nothing).
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    pub(crate) async fn write_if_current(
        &self,
        key: &K,
        change: Change<V>,
        levels: Range<usize>,
        op: &Op,
        ticket: Ticket,
    ) -> Result<Option<WriteOutcome>, Error> {
        let held = self.hold(key).await;
        let Some(guard) = self.generations.write_if_current(ticket) else {
            return Ok(None);
        };
        self.apply(key, change, levels, op, (held, guard, true))
            .await
            .map(Some)
    }

    /// Applies `change` once its write has begun (`guard`), under the key's lock if the
    /// cache has key locks (`held`); a value goes into remote tiers as a fill if `fill`.
    async fn apply(
        &self,
        key: &K,
        change: Change<V>,
        levels: Range<usize>,
        op: &Op,
        (held, guard, fill): (Option<KeyGuard<'_, K>>, WriteGuard<'_>, bool),
    ) -> Result<WriteOutcome, Error> {
        // A write dropped half-way (its caller timed out, say) may have reached a remote
        // tier and not L1: L1 then drops the key rather than keep what that tier replaced.
        let mut unfinished = Unfinished {
            inner: self,
            key,
            guard: &guard,
            finished: false,
        };
        let now = self.clock.now();
        let mut results = self.blank_outcome();
        match &change {
            Change::Store(entry) => {
                let (mut below_failed, mut stored_below) = (false, false);
                for (depth, level) in self.levels.iter().enumerate().rev() {
                    let copy = (!below_failed && levels.contains(&depth))
                        .then(|| self.copy_to_keep(level, entry, || now, op))
                        .flatten();
                    let stores = copy.is_some();
                    let shared = stored_below;
                    stored_below |= stores;
                    let result = match copy {
                        Some(copy) => {
                            let how = (&guard, shared, fill);
                            match self.store_at(level, key, copy, how, op).await {
                                // The tier is up but refuses this value (too large, out of
                                // memory): it must not keep serving the one this write
                                // replaces.
                                TierWriteResult::Failed(error) if is_refusal(error.kind()) => {
                                    let removed =
                                        self.remove_at(level, key, (&guard, now), op).await;
                                    // Settles an older change waiting for this tier (reads
                                    // would serve it), or waits in its place.
                                    let removal = || Pending::Remove { at: now };
                                    self.recover_later(level, key, (removed, &guard), removal);
                                    TierWriteResult::Failed(error)
                                }
                                stored => stored,
                            }
                        }
                        None => {
                            let removed = self.remove_at(level, key, (&guard, now), op).await;
                            match (removed, below_failed) {
                                (TierWriteResult::Failed(error), _) => {
                                    TierWriteResult::Failed(error)
                                }
                                (_, true) => TierWriteResult::Dropped,
                                (_, false) => TierWriteResult::Declined,
                            }
                        }
                    };
                    let result =
                        self.recover_later(level, key, (result, &guard), || match stores {
                            true => Pending::Store(entry.clone()),
                            false => Pending::Remove { at: now },
                        });
                    // A change queued for recovery counts as made: the tier reads as it. A
                    // fill a remote tier refused (it holds something newer) is kept out of
                    // the tiers above, as a failure is.
                    let refused = fill
                        && level.memory().is_none()
                        && matches!(result, TierWriteResult::Dropped);
                    below_failed |= refused || matches!(result, TierWriteResult::Failed(_));
                    results[depth].result = result;
                }
            }
            Change::Remove => {
                for (depth, level) in self.levels.iter().enumerate() {
                    let removed = self.remove_at(level, key, (&guard, now), op).await;
                    results[depth].result =
                        self.recover_later(level, key, (removed, &guard), || Pending::Remove {
                            at: now,
                        });
                }
            }
        }
        if let Some(not_found) = &self.not_found {
            // Any write replaces a remembered "not found".
            guard.in_l1(|| not_found.forget(key));
        }
        unfinished.finished = true;
        drop(unfinished);
        drop(guard);
        let action = match change {
            Change::Store(_) => Action::Written,
            Change::Remove => Action::Invalidated,
        };
        // Announced once the write reached every tier (the sender publishes it later).
        drop(held);
        self.announce(action, Some(key));
        self.conclude(results)
    }

    /// Settles `level`'s recovery queue for `key` after a write's `result` there: a
    /// change the tier took replaces any waiting one; a change it could not take because
    /// it is down waits (not in strict mode, where the error is the caller's), contested
    /// if another instance's write was heard since this one (`guard`) began.
    fn recover_later(
        &self,
        level: &Level<K, V>,
        key: &K,
        (result, guard): (TierWriteResult, &WriteGuard<'_>),
        change: impl FnOnce() -> Pending<V>,
    ) -> TierWriteResult {
        let Some(recovery) = &level.recovery else {
            return result;
        };
        match result {
            TierWriteResult::Failed(error) if is_outage(error.kind()) && !self.strict => {
                let contested = guard.heard_since_begun();
                if recovery.queue(key.clone(), change(), contested) {
                    self.telemetry.count(CacheCounter::RecoveryQueued);
                    self.retry_later(level.index);
                    TierWriteResult::Queued(error)
                } else {
                    self.telemetry.count(CacheCounter::RecoveryDropped);
                    TierWriteResult::Failed(error)
                }
            }
            // The tier holds an entry newer than this write: a change waiting for it that
            // is no newer than this write can change nothing there any more either.
            TierWriteResult::Failed(error) if error.kind() == ErrorKind::Superseded => {
                recovery.settle_older(key, change().made_at());
                TierWriteResult::Failed(error)
            }
            TierWriteResult::Failed(error) => TierWriteResult::Failed(error),
            done => {
                recovery.settle(key);
                done
            }
        }
    }

    /// Removes every entry of this cache from every tier, L1 first.
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    pub(crate) async fn clear_all(&self, op: &Op) -> Result<WriteOutcome, Error> {
        let every_key = match &self.key_locks {
            Some(locks) => Some(locks.lock_all().await),
            None => None,
        };
        let guard = self.generations.write_all();
        if let Some(not_found) = &self.not_found {
            not_found.forget_all();
        }
        let mut results = self.blank_outcome();
        for (depth, level) in self.levels.iter().enumerate() {
            if let Some(recovery) = &level.recovery {
                // What waited is older than the clear.
                recovery.clear();
            }
            let stopwatch = op.stopwatch();
            if let Err(error) = level.clear().await {
                self.report(op, level, TierOutcome::Error(error.kind()), stopwatch);
                results[depth].result = match &level.recovery {
                    // The tier is down: the clear waits for it, and it reads as cleared.
                    Some(recovery) if is_outage(error.kind()) && !self.strict => {
                        recovery.queue_clear();
                        self.telemetry.count(CacheCounter::RecoveryQueued);
                        self.retry_later(depth);
                        TierWriteResult::Queued(error)
                    }
                    _ => TierWriteResult::Failed(error),
                };
            }
        }
        drop(guard);
        drop(every_key);
        self.announce(Action::Cleared, None);
        self.conclude(results)
    }

    /// One result per tier, to be filled in (one allocation per write).
    fn blank_outcome(&self) -> Vec<TierWrite> {
        self.levels
            .iter()
            .map(|level| TierWrite {
                tier: Arc::clone(&level.name),
                result: TierWriteResult::Removed,
            })
            .collect()
    }

    /// The outcome of a write, or under `strict` the error of an incomplete one.
    fn conclude(&self, tiers: Vec<TierWrite>) -> Result<WriteOutcome, Error> {
        let outcome = WriteOutcome::new(tiers);
        match outcome.first_failure() {
            Some(error) if self.strict => Err(error.clone()),
            _ => Ok(outcome),
        }
    }

    /// Stores `copy` at `level` under the write's `guard`. A memory L1 over tiers this
    /// write stored into (`below`) keeps no copy if another instance's write of the key
    /// was heard meanwhile ([`Dropped`](TierWriteResult::Dropped)): the tiers below hold
    /// one of the two values, and which is unknown.
    async fn store_at(
        &self,
        level: &Level<K, V>,
        key: &K,
        copy: Copy<V>,
        (guard, below, fill): (&WriteGuard<'_>, bool, bool),
        op: &Op,
    ) -> TierWriteResult {
        let stopwatch = op.stopwatch();
        let stored = match level.memory() {
            Some(memory) => {
                let store = || memory.store(key.clone(), copy.entry, copy.keep_for);
                if below {
                    if !guard.store_in_l1(store) {
                        return TierWriteResult::Dropped;
                    }
                } else {
                    guard.in_l1(store);
                }
                Ok(())
            }
            None if fill => match level.fill(key.clone(), copy).await {
                Ok(true) => Ok(()),
                // The tier holds something newer than this value: it stands.
                Ok(false) => return TierWriteResult::Dropped,
                Err(error) => Err(error),
            },
            None => level.insert(key.clone(), copy).await,
        };
        self.settle(
            level,
            stored,
            TierOutcome::Inserted,
            TierWriteResult::Stored,
            op,
            stopwatch,
        )
    }

    /// Removes `key` from `level` as of `at`, the write's time.
    async fn remove_at(
        &self,
        level: &Level<K, V>,
        key: &K,
        (guard, at): (&WriteGuard<'_>, std::time::SystemTime),
        op: &Op,
    ) -> TierWriteResult {
        let stopwatch = op.stopwatch();
        let removed = match level.memory() {
            Some(memory) => {
                guard.in_l1(|| memory.remove(key));
                Ok(())
            }
            None => level.invalidate_at(key, at).await,
        };
        let done = TierWriteResult::Removed;
        self.settle(
            level,
            removed,
            TierOutcome::Invalidated,
            done,
            op,
            stopwatch,
        )
    }

    /// Reports a tier's answer to a write and turns it into that tier's result.
    fn settle(
        &self,
        level: &Level<K, V>,
        answer: Result<(), Error>,
        reported: TierOutcome,
        done: TierWriteResult,
        op: &Op,
        stopwatch: Option<std::time::Instant>,
    ) -> TierWriteResult {
        match answer {
            Ok(()) => {
                self.report(op, level, reported, stopwatch);
                done
            }
            Err(error) => {
                self.report(op, level, TierOutcome::Error(error.kind()), stopwatch);
                TierWriteResult::Failed(error)
            }
        }
    }

    /// Stores `entry`, found or produced by a reader holding `ticket`, into the levels
    /// `into` (those above where it was found; all of them for a load), lowest first, unless a write to the key
    /// began since the ticket was taken. A tier that fails is skipped and the tiers above
    /// still take the value: it came from the source (a load) or a live lower tier (a
    /// promotion), so it is no older than what the failing tier holds, and L1 keeps
    /// serving while a remote tier is down.
    pub(crate) async fn publish(
        &self,
        key: &K,
        entry: &CacheEntry<V>,
        ticket: Ticket,
        into: Range<usize>,
        stored: TierOutcome,
        op: &Op,
    ) {
        if into.is_empty() || !self.generations.is_current(ticket) {
            return;
        }
        if !entry.tags().within_limits() {
            // Served to its caller, never cached: no tier could be told to forget it.
            return;
        }
        // Only a memory L1 to fill: one check-and-store under the stripe's lock, no key
        // lock (the common promotion from L2 pays nothing more).
        if into == (0..1)
            && let Some(memory) = self.levels[0].memory()
        {
            self.publish_in_memory(&self.levels[0], memory, key, entry, ticket, stored, op);
            return;
        }
        // Boxed: a promotion into L1, the common case, never takes this path, and inline
        // its future would enlarge every miss's.
        Box::pin(self.publish_to_tiers(key, entry, ticket, into, stored, op)).await;
    }

    /// [`publish`](Self::publish) into tiers that are not all a memory L1: under the key's
    /// lock, lowest first.
    async fn publish_to_tiers(
        &self,
        key: &K,
        entry: &CacheEntry<V>,
        ticket: Ticket,
        into: Range<usize>,
        stored: TierOutcome,
        op: &Op,
    ) {
        // A key held by a writer (whose write outdates this value) or by another publisher
        // (whose value is as good): skip rather than wait.
        let _key = match &self.key_locks {
            Some(locks) => match locks.try_lock(key) {
                Some(guard) => Some(guard),
                None => return,
            },
            None => None,
        };
        let mut filled = false;
        for level in self.levels[into].iter().rev() {
            if op.is_unreachable(level.index) {
                // It failed this operation already: one timeout per tier is the budget.
                continue;
            }
            if let Some(memory) = level.memory() {
                self.publish_in_memory(level, memory, key, entry, ticket, stored, op);
                continue;
            }
            let Some(copy) = self.copy_to_keep(level, entry, || self.clock.now(), op) else {
                continue;
            };
            // Under the key's lock no write of this key can begin; a write of another key
            // on the stripe only makes this conservative.
            if !self.generations.is_current(ticket) {
                break;
            }
            let stopwatch = op.stopwatch();
            // A fill: another instance's write may have landed since the read.
            match level.fill(key.clone(), copy).await {
                Ok(true) => {
                    filled = true;
                    // What a reader found since a waiting change is newer than it.
                    if let Some(recovery) = &level.recovery {
                        recovery.settle(key);
                    }
                    self.report(op, level, stored, stopwatch);
                }
                // The tier holds something newer (another instance's write or removal,
                // not heard of yet): the tiers above must not keep this value either.
                Ok(false) => break,
                Err(error) => self.report(op, level, TierOutcome::Error(error.kind()), stopwatch),
            }
        }
        if filled {
            // The shared tier now holds this value: another instance's L1 may hold the
            // one it replaced (its own load, landed first).
            self.announce(Action::Written, Some(key));
        }
    }

    /// Publishes into a memory tier: the ticket is checked and the copy stored under the
    /// stripe's lock, which every writer's change of a memory tier also takes.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site per path, all borrowed"
    )]
    fn publish_in_memory(
        &self,
        level: &Level<K, V>,
        memory: &stratacache_memory::MemoryTier<K, V>,
        key: &K,
        entry: &CacheEntry<V>,
        ticket: Ticket,
        stored: TierOutcome,
        op: &Op,
    ) {
        let Some(copy) = self.copy_to_keep(level, entry, || self.clock.now(), op) else {
            return;
        };
        let stopwatch = op.stopwatch();
        if self.generations.publish(ticket, || {
            memory.store(key.clone(), copy.entry, copy.keep_for)
        }) {
            self.report(op, level, stored, stopwatch);
        }
    }

    /// `copy`, shortened by a random part of the cache's TTL jitter (at most half of
    /// what it has left), so that copies written together by many instances do not
    /// expire together. A copy never outlives its TTL: jitter only shortens.
    fn jittered(&self, copy: Copy<V>) -> Copy<V> {
        let (Some(jitter), Some(keep_for)) = (self.ttl_jitter, copy.keep_for) else {
            return copy;
        };
        let most = jitter.min(keep_for / 2);
        let nanos = u64::try_from(most.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return copy;
        }
        let cut = std::time::Duration::from_nanos(fastrand::u64(0..=nanos));
        let ttl = copy.entry.ttl().map(|ttl| ttl.saturating_sub(cut));
        Copy {
            entry: copy.entry.with_ttl(ttl),
            keep_for: Some(keep_for - cut),
        }
    }

    /// The copy `level` keeps of `entry` at `now` (read only if the insert policy takes
    /// the value): none when the policy declines it (reported) or the copy would already
    /// be expired.
    pub(crate) fn copy_to_keep(
        &self,
        level: &Level<K, V>,
        entry: &CacheEntry<V>,
        now: impl FnOnce() -> std::time::SystemTime,
        op: &Op,
    ) -> Option<Copy<V>> {
        if !level.insert_policy.allows(entry) {
            self.report(op, level, TierOutcome::InsertRejected, None);
            return None;
        }
        let copy = self.jittered(level.copy_for(entry, now())?);
        // With fail-safe, a copy outlives its TTL by the stale age, to be served if the
        // source fails.
        Some(match (self.stale_age(), copy.keep_for) {
            (Some(stale_age), Some(keep_for)) => Copy {
                keep_for: Some(keep_for.saturating_add(stale_age)),
                ..copy
            },
            _ => copy,
        })
    }
}
