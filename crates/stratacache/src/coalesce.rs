//! Stampede protection: concurrent misses of one key share one lookup and one load.
//!
//! A flight is keyed by its key and its epoch, the [`Ticket`] its callers took: callers
//! join a flight only if no write to the key (or its stripe) began or ended between its
//! start and theirs. A caller that arrives after an `insert` or `invalidate` returned so
//! starts a flight of its own, and never receives a value read before that write.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use stratacache_tier::{Error, ErrorKind};
use uniflight::{LeaderPanicked, Merger};

use crate::inner::Inner;
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
}

pub(crate) type Flight<V> = Result<Fetched<V>, Error>;

/// The two stages a miss can be coalesced in.
///
/// Every miss of a key (a `get` or any of the loader family) joins the key's *flight*:
/// its first caller looks through the tiers and, if it has a loader, loads. A caller
/// with a loader that joined a flight which ended without running one (a `get` led it)
/// then joins the key's *load*, where one of them loads for all.
pub(crate) struct Coalescer<K, V> {
    flights: Merger<(K, u64), Flight<V>>,
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
    /// there is one; coalesced per key and epoch when stampede protection is on.
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
        // Taken before any tier is read: a write from now on keeps what is read out of
        // the cache, and out of the hands of callers that come after the write.
        let ticket = self.generations.ticket(key);
        let Some(coalescer) = &self.coalescer else {
            return self.fetch_alone(key, start, ticket, loader, op).await;
        };
        let flight_key = (key.clone(), ticket.epoch());
        let wants_load = loader.is_some();
        let slot = LoaderSlot::new(loader);
        let flight = {
            let (slot, op) = (&slot, &*op);
            coalescer
                .flights
                .execute(&flight_key, || async move {
                    self.fetch_alone(key, start, ticket, slot.lead(), op).await
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
        let ran_no_loader = matches!(flight, Ok(Fetched::Miss | Fetched::LoadedNothing));
        let Some(loader) = slot.take().filter(|_| wants_load && ran_no_loader) else {
            return flight;
        };
        let second = LoaderSlot::new(Some(loader));
        let loaded = {
            let (second, op) = (&second, &*op);
            coalescer
                .loads
                .execute(&flight_key, || async move {
                    self.fetch_alone(key, 0, ticket, second.lead(), op).await
                })
                .await
                .unwrap_or_else(|panic| Err(panicked(&panic)))
        };
        if !second.led() && !op.coalesced {
            op.coalesced = true;
            self.telemetry.count(CacheCounter::CoalescedWaits);
        }
        // The load it waited on found nothing (an optional loader led it): this caller's
        // own loader still gets its turn.
        if let (Ok(Fetched::LoadedNothing), Some(loader)) = (&loaded, second.take()) {
            return self.fetch_alone(key, 0, ticket, Some(loader), op).await;
        }
        loaded
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

/// A panic in the caller that ran the load reaches every waiter as a loader error.
pub(crate) fn panicked(panic: &LeaderPanicked) -> Error {
    Error::new(
        ErrorKind::Loader,
        format!("the load panicked: {}", panic.message()),
    )
}
