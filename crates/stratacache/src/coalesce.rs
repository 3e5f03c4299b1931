//! Stampede protection: concurrent misses of one key share one lookup and one load.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use stratacache_tier::{Error, ErrorKind};
use uniflight::{LeaderPanicked, Merger};

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
    pub(crate) flights: Merger<K, Flight<V>>,
    pub(crate) loads: Merger<K, Flight<V>>,
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
