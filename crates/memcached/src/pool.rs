//! The connections to one memcached server: a few multiplexed [`Pipeline`]s shared by
//! every caller (the first one not busy), and the server's health.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use stratacache_tier::{Error, ErrorKind};

use crate::pipeline::Pipeline;
use crate::protocol::Reply;

/// One connection slot: the open pipeline, if any, and a lock held while opening one
/// (so that concurrent callers open it once).
#[derive(Debug, Default)]
struct Slot {
    open: RwLock<Option<Arc<Pipeline>>>,
    opening: tokio::sync::Mutex<()>,
    /// Calls using this slot now.
    in_flight: AtomicUsize,
}

/// Calls in flight on one connection before the next one is used (opened if need
/// be): sequential and light traffic share one socket, heavy traffic spreads.
const BUSY: usize = 32;

/// A call counted in its slot's `in_flight` until it ends (or is dropped).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Slot {
    /// Closes `pipeline` if it is still this slot's.
    fn close(&self, pipeline: &Arc<Pipeline>) {
        let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
        if open
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, pipeline))
        {
            *open = None;
        }
    }

    fn current(&self) -> Option<Arc<Pipeline>> {
        self.open
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|pipeline| !pipeline.is_broken())
            .cloned()
    }
}

/// One server: its connections and its health.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) address: String,
    slots: Box<[Slot]>,
    connect_timeout: Duration,
    failures: AtomicU32,
    /// When the pool was made: the origin of `down_until`.
    born: Instant,
    /// Until when (ms after `born`) the server is marked down; 0: it is not.
    down_until: AtomicU64,
    /// How many connections to the server ended: shared with each connection's task.
    ends: Arc<Ends>,
}

/// How many connections to a server ended: all of them, and those that failed or the
/// server closed (not this client).
#[derive(Debug, Default)]
pub(crate) struct Ends {
    pub(crate) all: AtomicU64,
    pub(crate) failed: AtomicU64,
}

impl Pool {
    pub(crate) fn new(address: String, connections: usize, connect_timeout: Duration) -> Self {
        Self {
            address,
            slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
            connect_timeout,
            failures: AtomicU32::new(0),
            born: Instant::now(),
            down_until: AtomicU64::new(0),
            ends: Arc::default(),
        }
    }

    /// How many connections to the server ended so far, and how many of them failed or
    /// the server closed: after one ended, the server may have restarted behind it (and
    /// lost its namespace generation).
    pub(crate) fn connections_ended(&self) -> (u64, u64) {
        (
            self.ends.all.load(Ordering::Acquire),
            self.ends.failed.load(Ordering::Acquire),
        )
    }

    /// Sends `request` (one or more commands) and reads `replies` replies on the first
    /// connection with fewer than [`BUSY`] calls in flight (the least busy when all
    /// are; opened when it is not), all within `timeout`. A connection
    /// that read nothing while this call waited out its timeout is stalled (a hung
    /// server, a half-open socket) and is closed; one that was only slow to answer
    /// this call stays open and in step.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold its arguments twice in every command's future"
    )]
    pub(crate) fn exchange(
        &self,
        request: Vec<u8>,
        replies: usize,
        max_value: usize,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<Reply>, Error>> + Send + '_ {
        async move {
            let now = tokio::time::Instant::now();
            // A timeout past what an `Instant` holds (`Duration::MAX`) is a year: still bounded.
            let deadline =
                (now.checked_add(timeout)).unwrap_or(now + Duration::from_secs(365 * 86_400));
            let slot = self.choose();
            let _in_flight = InFlight::new(&slot.in_flight);
            let pipeline = match slot.current() {
                Some(pipeline) => pipeline,
                // Boxed, as it is rare: inline, connecting would be part of every command's
                // future.
                None => tokio::time::timeout_at(deadline, Box::pin(self.open(slot)))
                    .await
                    .map_err(|_| self.timed_out(timeout))??,
            };
            let read_before = pipeline.replies_read();
            match tokio::time::timeout_at(deadline, pipeline.exchange(request, replies, max_value))
                .await
            {
                Ok(answer) => answer,
                Err(_) => {
                    if pipeline.replies_read() == read_before {
                        slot.close(&pipeline);
                    }
                    Err(self.timed_out(timeout))
                }
            }
        }
    }

    fn choose(&self) -> &Slot {
        let mut least = &self.slots[0];
        for slot in &self.slots {
            let load = slot.in_flight.load(Ordering::Relaxed);
            if load < BUSY {
                return slot;
            }
            if load < least.in_flight.load(Ordering::Relaxed) {
                least = slot;
            }
        }
        least
    }

    fn timed_out(&self, timeout: Duration) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "memcached at {} did not answer within {timeout:?}",
                self.address
            ),
        )
    }

    async fn open(&self, slot: &Slot) -> Result<Arc<Pipeline>, Error> {
        let _opening = slot.opening.lock().await;
        if let Some(pipeline) = slot.current() {
            return Ok(pipeline);
        }
        let pipeline = Pipeline::connect(&self.address, self.connect_timeout, &self.ends).await?;
        let pipeline = Arc::new(pipeline);
        *slot.open.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&pipeline));
        Ok(pipeline)
    }

    /// Counts one command's outcome; after `limit` failures in a row, marks the server
    /// down for `down_for`. Returns whether this call marked it down.
    pub(crate) fn record(&self, ok: bool, limit: Option<u32>, down_for: Duration) -> bool {
        if ok {
            if self.failures.load(Ordering::Relaxed) != 0 {
                self.failures.store(0, Ordering::Relaxed);
            }
            return false;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if limit.is_some_and(|limit| failures >= limit) {
            let until = self.born.elapsed().saturating_add(down_for).as_millis();
            self.down_until.store(
                u64::try_from(until).unwrap_or(u64::MAX).max(1),
                Ordering::Relaxed,
            );
            self.failures.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Whether the server is marked down now (lock-free: asked on every routing).
    pub(crate) fn is_down(&self) -> bool {
        let until = self.down_until.load(Ordering::Relaxed);
        until != 0 && u128::from(until) > self.born.elapsed().as_millis()
    }
}
