//! Stampede protection: concurrent misses of one key share one lookup and one load.
//!
//! A flight is keyed by its key and its epoch, the [`Ticket`] its callers took: callers
//! join a flight only if no write to the key (or its stripe) began or ended between its
//! start and theirs. A caller that arrives after an `insert` or `invalidate` returned so
//! starts a flight of its own, and never receives a value read before that write.

use std::future::{Future, poll_fn};
use std::hash::Hash;
use std::ops::Range;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use stratacache_tier::{Error, ErrorKind};
use uniflight::{LeaderPanicked, Merger};

use crate::erased::{BoxFuture, boxed};
use crate::generation::Ticket;
use crate::inner::Inner;
use crate::loader::Loaded;
use crate::telemetry::{CacheCounter, Op};

/// What the miss path found. Shared, cloned, by every caller of one flight.
#[derive(Clone, Debug)]
pub(crate) enum Fetched<V> {
    /// A tier had it.
    Hit(V),
    /// No tier had it, and no loader ran.
    Miss,
    /// A loader produced it.
    Loaded(V),
    /// A loader ran and found nothing.
    LoadedNothing,
    /// The source failed and fail-safe served this value past its TTL.
    Stale(V),
}

pub(crate) type Flight<V> = Result<Fetched<V>, Error>;

/// The two stages a miss can be coalesced in.
///
/// Every miss of a key (a `get` or any of the loader family) joins the key's *flight*:
/// its first caller looks through the tiers and, if it has a loader, loads. A caller
/// with a loader that joined a flight which ended without running one (a `get` led it)
/// then joins the key's *load*, where one of them loads for all.
pub(crate) struct Coalescer<K, V> {
    pub(crate) flights: Merger<(K, u64), Flight<V>>,
    loads: Merger<(K, u64), Flight<V>>,
}

impl<K, V> Coalescer<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub(crate) fn new() -> Self {
        Self {
            flights: Merger::new(),
            loads: Merger::new(),
        }
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The miss path of `get` and the loader family: the lower tiers, then the loader if
    /// there is one; coalesced per key and epoch when stampede protection is on. `finish`
    /// turns what it found into the caller's answer.
    ///
    /// Boxed once, here, as one of two futures: the walk and load in place, or the
    /// coalesced path (whose walk and load uniflight boxes). As one future the miss
    /// would carry room for both, above the sizes the allocator serves fastest.
    pub(crate) fn fetch<'a, F, Fut, R>(
        self: &'a Arc<Self>,
        key: K,
        (levels, from): (Range<usize>, usize),
        loader: Option<F>,
        mut op: Op,
        finish: impl FnOnce(Op, Flight<V>) -> R + Send + 'a,
    ) -> BoxFuture<'a, R>
    where
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<Option<Loaded<V>>, Error>> + Send + 'a,
    {
        // Taken before any tier is read: a write from now on keeps what is read out of
        // the cache, and out of the hands of callers that come after the write.
        let ticket = self.generations.ticket(&key);
        match &self.coalescer {
            None => boxed(|| async move {
                let flight = self
                    .fetch_alone(&key, levels, from, ticket, loader, &op)
                    .await;
                finish(op, flight)
            }),
            Some(coalescer) => boxed(|| async move {
                let span = (levels, from);
                let flight = self
                    .fetch_coalesced(coalescer, &key, span, ticket, loader, &mut op)
                    .await;
                finish(op, flight)
            }),
        }
    }

    /// The coalesced miss path: join the key's flight for this epoch, then (for a caller
    /// with a loader whose flight ran none) its load.
    ///
    /// Written as a function returning an `async` block, as is [`join`](Self::join): an
    /// `async fn` keeps a second copy of its arguments in its future, and this one is
    /// boxed (so copied) on every coalesced miss.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every coalesced miss"
    )]
    fn fetch_coalesced<'a, F, Fut>(
        self: &'a Arc<Self>,
        coalescer: &'a Coalescer<K, V>,
        key: &'a K,
        (levels, from): (Range<usize>, usize),
        ticket: Ticket,
        loader: Option<F>,
        op: &'a mut Op,
    ) -> impl Future<Output = Flight<V>> + Send + 'a
    where
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<Option<Loaded<V>>, Error>> + Send + 'a,
    {
        async move {
            let flight_key = flight_key(key, ticket, op);
            let wants_load = loader.is_some();
            let slot = LoaderSlot::new(loader);
            let flight = self
                .join(
                    &coalescer.flights,
                    &flight_key,
                    &slot,
                    (levels.clone(), from),
                    ticket,
                    op,
                    false,
                )
                .await;
            op.coalesced = !slot.led();
            // A caller with a loader that waited on a flight which ran no loader (a `get`
            // led it, or another caller's loader found nothing) loads now, once for all such.
            let ran_no_loader = matches!(flight, Ok(Fetched::Miss | Fetched::LoadedNothing));
            // A leader's flight took its loader, unless it found the value in L1 (a hit,
            // which loads nothing more): only a caller that waited is asked for its own.
            let waited_for_nothing = wants_load && ran_no_loader && !slot.led();
            let Some(loader) = waited_for_nothing.then(|| slot.take()).flatten() else {
                return flight;
            };
            let second = LoaderSlot::new(Some(loader));
            let counted = op.coalesced;
            let loaded = self
                .join(
                    &coalescer.loads,
                    &flight_key,
                    &second,
                    (levels.clone(), levels.start),
                    ticket,
                    op,
                    counted,
                )
                .await;
            op.coalesced |= !second.led();
            // The load it waited on found nothing (an optional loader led it): this caller's
            // own loader still gets its turn.
            if let (Ok(Fetched::LoadedNothing), Some(loader)) = (&loaded, second.take()) {
                // Boxed: a rare turn, and inline it would make every miss's future hold a
                // second walk and load.
                return Box::pin(self.fetch_alone(
                    key,
                    levels.clone(),
                    levels.start,
                    ticket,
                    Some(loader),
                    op,
                ))
                .await;
            }
            loaded
        }
    }

    /// Takes part in the flight of `merger` under `flight_key`: leads it (running the
    /// slot's loader, if any) or waits on its leader. A wait is counted the moment this
    /// caller joins, so the counter shows callers waiting now, not only those done.
    #[expect(
        clippy::too_many_arguments,
        reason = "the flight's coordinates, all borrowed"
    )]
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every coalesced miss"
    )]
    fn join<'a, F, Fut>(
        self: &'a Arc<Self>,
        merger: &'a Merger<(K, u64), Flight<V>>,
        flight_key: &'a (K, u64),
        slot: &'a LoaderSlot<F>,
        (levels, from): (Range<usize>, usize),
        ticket: Ticket,
        op: &'a Op,
        counted: bool,
    ) -> impl Future<Output = Flight<V>> + Send + 'a
    where
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<Option<Loaded<V>>, Error>> + Send + 'a,
    {
        async move {
            let key = &flight_key.0;
            let flight = merger.execute(flight_key, || async move {
                // A flight that ended after this caller missed L1 has put its value there:
                // the leader takes it rather than load a second time.
                if levels.start == 0
                    && from == 1
                    && let Some(value) = self.live_in_l1(key)
                {
                    slot.mark_led();
                    return Ok(Fetched::Hit(value));
                }
                self.fetch_alone(key, levels, from, ticket, slot.lead(), op)
                    .await
            });
            let mut flight = pin!(flight);
            // The leader's loader starts on its first poll; a caller that has not led by the
            // end of its first poll has joined someone else's flight.
            let mut first_poll = true;
            poll_fn(|context| {
                let poll = flight.as_mut().poll(context);
                if std::mem::take(&mut first_poll) && !slot.led() && !counted {
                    self.telemetry.count(CacheCounter::CoalescedWaits);
                }
                poll
            })
            .await
            .unwrap_or_else(|panic| Err(panicked(&panic)))
        }
    }
}

/// A caller's loader, kept where the flight's leader can take it and a follower keeps it.
pub(crate) struct LoaderSlot<F> {
    slot: Mutex<Option<F>>,
    ran: AtomicBool,
}

impl<F> LoaderSlot<F> {
    pub(crate) fn new(loader: Option<F>) -> Self {
        Self {
            slot: Mutex::new(loader),
            ran: AtomicBool::new(false),
        }
    }

    /// Called by the future only the flight's leader runs.
    /// Marks this caller as the flight's leader, though it ran no loader.
    pub(crate) fn mark_led(&self) {
        self.ran.store(true, Ordering::Relaxed);
    }

    pub(crate) fn lead(&self) -> Option<F> {
        self.ran.store(true, Ordering::Relaxed);
        self.slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Whether this caller led (ran its own future) rather than waited on another's.
    pub(crate) fn led(&self) -> bool {
        self.ran.load(Ordering::Relaxed)
    }

    /// The loader, if the leader did not take it (this caller waited).
    pub(crate) fn take(&self) -> Option<F> {
        self.slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// The key of `key`'s flight for a caller holding `ticket`: its epoch, whether the
/// caller takes stale values and which tiers it skips (callers that differ there never
/// share a flight).
pub(crate) fn flight_key<K: Clone>(key: &K, ticket: Ticket, op: &Op) -> (K, u64) {
    let lane = u64::from(!op.fail_safe) | u64::from(op.skips) << 1;
    (key.clone(), ticket.epoch() << 3 | lane)
}

/// A panic in the caller that ran the load reaches every waiter as a loader error.
pub(crate) fn panicked(panic: &LeaderPanicked) -> Error {
    Error::new(
        ErrorKind::Loader,
        format!("the load panicked: {}", panic.message()),
    )
}
