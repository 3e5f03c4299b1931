//! The walk down the tiers: one place for how a tier is read, timed, judged and reported,
//! used by every lookup (`get`, the loader family, `contains`, refresh).

use std::borrow::Borrow;
use std::future::Future;
use std::hash::Hash;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use stratacache_tier::{CacheEntry, Error, ErrorKind, Lookup, Tags};

use crate::coalesce::{Fetched, Flight};
use crate::distributed_lock::LockStep;
use crate::generation::Ticket;
use crate::inner::Inner;
use crate::level::Level;
use crate::loader::Loaded;
use crate::recovery::{Recovery, is_outage};
use crate::tags::Verdict;
use crate::telemetry::{CacheCounter, Op, TierOutcome};
use crate::timeouts::Overdue;

/// What one tier holds for a key, as the cache's clock judges it.
pub(crate) enum Look<V> {
    /// A live entry. Its hit is not reported yet: what it counts as is the caller's call.
    Live(CacheEntry<V>, Option<Instant>),
    /// An expired entry that fail-safe may still serve if the source fails (reported
    /// as expired).
    Stale(CacheEntry<V>),
    /// Nothing, or an expired entry (reported).
    Absent,
    /// The tier failed (reported).
    Failed(Error),
}

/// What a walk down the tiers found.
pub(crate) struct Walked<V> {
    /// A live entry, with the level it was found at.
    pub(crate) live: Option<(usize, CacheEntry<V>)>,
    /// The first entry past its TTL that fail-safe may serve.
    pub(crate) stale: Option<CacheEntry<V>>,
    /// Whether a tier failed (and the failure was tolerated).
    pub(crate) failed: bool,
}

/// Whether a walk copies what it finds into the tiers above and refreshes stale hits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// `get` and the loader family: promote, refresh.
    Read,
    /// `contains`: look only.
    Peek,
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Reads one tier and judges what it holds with the cache's clock.
    ///
    /// An expired entry in a memory tier is reclaimed at once; one in a remote tier is
    /// left to the store's own expiry (it was handed the remaining TTL when written): a
    /// delete sent now could land after a newer write of the key and remove that.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every miss's future"
    )]
    pub(crate) fn look_at<'a>(
        &'a self,
        level: &'a Level<K, V>,
        key: &'a K,
        op: &'a Op,
    ) -> impl Future<Output = Look<V>> + Send + 'a {
        async move {
            let stopwatch = op.stopwatch();
            let answer = level.get(key).await;
            let now = self.clock.now();
            if let Ok(Some(entry)) = &answer
                && !entry.tags().is_empty()
            {
                self.learn_tags([entry.tags()], now).await;
            }
            self.judge(level, key, answer, now, op, stopwatch)
        }
    }

    /// Reads the markers of `tags` this instance does not know well enough to judge
    /// entries carrying them at `now`; a failure is counted, and what was known stands.
    ///
    /// Which markers to read is decided when this is called: the future holds only the
    /// read, if there is one (an `async fn` would also hold `tags`, twice).
    pub(crate) fn learn_tags<'a>(
        &'a self,
        tags: impl IntoIterator<Item = &'a Tags>,
        now: SystemTime,
    ) -> impl Future<Output = ()> + Send + 'a {
        let asking = self.tags.learn(tags, now);
        async move {
            if let Some(asking) = asking
                && asking.await.is_err()
            {
                self.telemetry.count(CacheCounter::TagErrors);
            }
        }
    }

    /// Drops L1's copy of `key` if a tag invalidated it by `now`.
    pub(crate) fn drop_invalidated<Q>(&self, key: &Q, now: SystemTime)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(memory) = self.levels[0].memory() {
            memory.remove_if(key, |found| {
                self.tags.verdict(found, now) == Verdict::Invalid
            });
        }
    }

    /// Judges what `level` answered for `key` at `now` (see [`look_at`](Self::look_at)),
    /// reporting all but a live entry.
    pub(crate) fn judge(
        &self,
        level: &Level<K, V>,
        key: &K,
        answer: Lookup<V>,
        now: SystemTime,
        op: &Op,
        stopwatch: Option<Instant>,
    ) -> Look<V> {
        match answer {
            Ok(Some(entry)) if self.tags.verdict(&entry, now) == Verdict::Invalid => {
                // Invalidated by a tag: gone, even for fail-safe, as after `invalidate`.
                self.report(op, level, TierOutcome::Expired, stopwatch);
                if level.memory().is_some() {
                    self.drop_invalidated(key, now);
                }
                Look::Absent
            }
            Ok(Some(entry)) => {
                if !entry.is_expired(now) {
                    return Look::Live(entry, stopwatch);
                }
                self.report(op, level, TierOutcome::Expired, stopwatch);
                if self.may_serve_stale(&entry, now, op) {
                    return Look::Stale(entry);
                }
                if let Some(memory) = level.memory() {
                    memory.remove_if(key, |found| self.reclaims(found, now));
                }
                Look::Absent
            }
            Ok(None) => {
                self.report(op, level, TierOutcome::Miss, stopwatch);
                Look::Absent
            }
            Err(error) => {
                self.report(op, level, TierOutcome::Error(error.kind()), stopwatch);
                Look::Failed(error)
            }
        }
    }

    /// The strict rule, in one place: a tier failure is returned only by a strict cache,
    /// and never for bad bytes, foreign or failing a security check (the tier is up,
    /// the codec boundary already deleted them, and the value will be reloaded).
    pub(crate) fn tolerate(&self, error: Error) -> Result<(), Error> {
        if self.strict && !matches!(error.kind(), ErrorKind::Codec | ErrorKind::Integrity) {
            Err(error)
        } else {
            Ok(())
        }
    }

    /// Looks through `levels` from level `from` down. With [`Walk::Read`], a hit below L1
    /// is published into the levels of `levels` above it (if its promotion policy allows
    /// and no write raced with `ticket`), and a stale L1 hit starts a refresh. Returns
    /// the entry found with the level it was found at.
    ///
    /// # Errors
    ///
    /// A tier's error, in strict mode only (see [`tolerate`](Self::tolerate)).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every miss's future"
    )]
    pub(crate) fn walk<'a>(
        self: &'a Arc<Self>,
        key: &'a K,
        levels: Range<usize>,
        from: usize,
        ticket: Ticket,
        op: &'a Op,
        mode: Walk,
    ) -> impl Future<Output = Result<Walked<V>, Error>> + Send + 'a {
        async move {
            // Only what the loop needs lives across its await; the promotion comes after it,
            // so the two futures share their room.
            let (mut stale, mut failed) = (None, false);
            let mut live = None;
            let unread = self.levels.iter().enumerate().take(levels.end);
            for (depth, level) in unread.skip(from.max(levels.start)) {
                match self.look_at(level, key, op).await {
                    Look::Live(entry, stopwatch) => {
                        self.report(op, level, TierOutcome::Hit, stopwatch);
                        live = Some((depth, entry));
                        break;
                    }
                    Look::Stale(entry) => {
                        stale.get_or_insert(entry);
                    }
                    Look::Absent => {}
                    Look::Failed(error) => {
                        self.tolerate(error)?;
                        failed = true;
                    }
                }
            }
            if mode == Walk::Read
                && let Some((depth, entry)) = &live
            {
                let level = &self.levels[*depth];
                if *depth == 0 {
                    self.refresh_if_stale(key, entry, self.clock.now());
                } else if level.promotion.allows(entry) {
                    self.publish(
                        key,
                        entry,
                        ticket,
                        levels.start..*depth,
                        TierOutcome::Promoted,
                        op,
                    )
                    .await;
                }
            }
            Ok(Walked {
                live,
                stale,
                failed,
            })
        }
    }

    /// The miss path for one caller (or one flight): the tiers of `levels` not looked at
    /// yet (from `from`), then the loader if there is one. What it finds or loads is
    /// published into `levels` only if no write to the key began since `ticket` was taken.
    ///
    /// Written as a function returning an `async` block, as are the phases it awaits: an
    /// `async fn` keeps a second copy of its arguments beside the locals they move into,
    /// and every miss's future carries that room.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every miss's future"
    )]
    pub(crate) fn fetch_alone<'a, F, Fut>(
        self: &'a Arc<Self>,
        key: &'a K,
        levels: Range<usize>,
        from: usize,
        ticket: Ticket,
        loader: Option<F>,
        op: &'a Op,
    ) -> impl Future<Output = Flight<V>> + Send + 'a
    where
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<Option<Loaded<V>>, Error>> + Send + 'a,
    {
        async move {
            let walked = self.walk(key, levels.clone(), from, ticket, op, Walk::Read);
            // Taken apart in a `match`: nothing of the walk outlives it into the load.
            let (stale, failed) = match walked.await? {
                Walked {
                    live: Some((_, entry)),
                    ..
                } => return Ok(Fetched::Hit(entry.into_value())),
                Walked { stale, failed, .. } => (stale, failed),
            };
            // Fail-safe: `stale` is what to answer instead of a failure.
            match loader {
                Some(loader) => {
                    self.load_alone(key, (levels, ticket), loader, stale, op)
                        .await
                }
                None => Ok(match stale {
                    Some(stale) if failed => Fetched::Stale(self.serve_stale(key, stale, ticket)),
                    _ => Fetched::Miss,
                }),
            }
        }
    }

    /// The load phase of [`fetch_alone`](Self::fetch_alone): remembered "not found"
    /// answers, the distributed lock, the load within its timeouts, what it found
    /// settled into `levels` unless a write raced it since `ticket`.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every miss's future"
    )]
    fn load_alone<'a, F, Fut>(
        self: &'a Arc<Self>,
        key: &'a K,
        (levels, ticket): (Range<usize>, Ticket),
        loader: F,
        stale: Option<CacheEntry<V>>,
        op: &'a Op,
    ) -> impl Future<Output = Flight<V>> + Send + 'a
    where
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<Option<Loaded<V>>, Error>> + Send + 'a,
    {
        async move {
            // Remembered "not found" answers stand for the cache's own loader, which only
            // `get` runs; a per-call closure always gets its turn.
            let not_found = self.remembers_not_found(op);
            if let Some(not_found) = not_found
                && not_found.holds(key, self.clock.now())
            {
                self.telemetry.count(CacheCounter::NotFoundHits);
                return Ok(Fetched::LoadedNothing);
            }
            // With a distributed lock, one instance loads; the others take its value.
            let held = match self.before_load(key, &levels, ticket, op).await {
                LockStep::Found(value) => return Ok(Fetched::Hit(value)),
                LockStep::Held(held) => Some(held),
                LockStep::Proceed => None,
            };
            self.telemetry.count(CacheCounter::Loads);
            let started = self.clock.now();
            let fetched = match self.timed_load(loader(), stale.is_some()).await {
                Ok(Ok(Some(loaded))) => {
                    let entry = loaded.into_entry(started);
                    self.publish(key, &entry, ticket, levels, TierOutcome::Inserted, op)
                        .await;
                    Ok(Fetched::Loaded(entry.into_value()))
                }
                Ok(Ok(None)) => {
                    if let Some(not_found) = not_found {
                        // Like any value a reader publishes: not if a write raced the load.
                        let now = self.clock.now();
                        self.generations
                            .publish(ticket, || not_found.remember(key.clone(), now));
                    }
                    Ok(Fetched::LoadedNothing)
                }
                Ok(Err(error)) => {
                    self.telemetry.count(CacheCounter::LoadErrors);
                    match stale {
                        Some(stale) => Ok(Fetched::Stale(self.serve_stale(key, stale, ticket))),
                        None => Err(error),
                    }
                }
                Err(Overdue::Soft) => match stale {
                    Some(stale) => Ok(Fetched::Stale(self.serve_stale(key, stale, ticket))),
                    None => unreachable!("a soft timeout applies only with a stale value at hand"),
                },
            };
            self.after_load(held).await;
            fetched
        }
    }

    /// Records what happened at `level` during `op`.
    #[inline]
    pub(crate) fn report(
        &self,
        op: &Op,
        level: &Level<K, V>,
        outcome: TierOutcome,
        stopwatch: Option<Instant>,
    ) {
        if let TierOutcome::Error(kind) = outcome {
            if is_outage(kind) {
                op.mark_unreachable(level.index);
            }
            if kind == ErrorKind::Integrity {
                // A security event: bytes that failed authentication, or a bomb.
                self.telemetry.count(CacheCounter::IntegrityFailures);
            }
        } else {
            if level.recovery.as_ref().is_some_and(Recovery::take_answered) {
                // The tier answers: what waited for it can be replayed.
                self.recover(level.index);
            }
            if self.tags.wait_for(level.index) {
                self.resend_markers();
            }
        }
        self.telemetry
            .tier(op, &level.name, &level.counters, outcome, stopwatch);
    }
}
