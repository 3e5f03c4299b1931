//! The distributed stampede lock: after the in-process flight, the instance about to load
//! a key takes the key's lock in a store every instance shares, looks at the shared tiers
//! once more, loads, stores, and releases; an instance that finds the lock held waits for
//! the release (told by the backplane, else by looking again with backoff) and takes the
//! value from the shared tier. Best effort: past the wait, or when the lock's store fails,
//! a caller loads anyway.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use stratacache_tier::{DistributedLock, Error};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::generation::Ticket;
use crate::inner::Inner;
use crate::telemetry::{CacheCounter, Op};
use crate::walk::Walk;

type EncodeKey<K> = Box<dyn Fn(&K) -> Result<Vec<u8>, Error> + Send + Sync>;

/// How often a waiter with no backplane looks at the shared tier: from the first to the
/// last, doubling.
const FIRST_LOOK: Duration = Duration::from_millis(10);
const LAST_LOOK: Duration = Duration::from_millis(200);

/// A cache's distributed lock and how it uses it.
pub(crate) struct DistLock<K> {
    lock: Arc<dyn DistributedLock>,
    encode: EncodeKey<K>,
    /// How long a lock lives (and so how long others wait for its holder).
    ttl: Duration,
    /// Waiters in this instance, by lock name, woken when the backplane says the lock
    /// was released.
    waiting: Mutex<HashMap<Vec<u8>, Arc<Notify>>>,
}

impl<K> DistLock<K> {
    #[cfg_attr(
        not(feature = "serialize"),
        expect(
            dead_code,
            reason = "made by a builder method of the `serialize` feature"
        )
    )]
    pub(crate) fn new(lock: impl DistributedLock, encode: EncodeKey<K>, ttl: Duration) -> Self {
        Self {
            lock: Arc::new(lock),
            encode,
            ttl,
            waiting: Mutex::new(HashMap::new()),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Arc<Notify>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A caller waiting in this instance for a lock's release; leaves the map with the last.
struct Waiter<'a, K> {
    dist: &'a DistLock<K>,
    name: &'a [u8],
    notify: Arc<Notify>,
}

impl<'a, K> Waiter<'a, K> {
    fn new(dist: &'a DistLock<K>, name: &'a [u8]) -> Self {
        let notify = Arc::clone(dist.waiting().entry(name.to_vec()).or_default());
        Self { dist, name, notify }
    }
}

impl<K> Drop for Waiter<'_, K> {
    fn drop(&mut self) {
        let mut waiting = self.dist.waiting();
        // The map's and this one's: no other caller waits on this lock here.
        let last = waiting.get(self.name).is_some_and(|notify| {
            Arc::ptr_eq(notify, &self.notify) && Arc::strong_count(notify) <= 2
        });
        if last {
            waiting.remove(self.name);
        }
    }
}

/// What the lock step before a load decided.
pub(crate) enum LockStep<V> {
    /// Another instance loaded it meanwhile: its value, from the shared tier.
    Found(V),
    /// This caller holds the lock: load, store, then release.
    Held(Held),
    /// No lock to take (none configured, no shared tier, its store failed, or the wait
    /// ran out): load.
    Proceed,
}

/// A held lock, to release after the load.
///
/// A load dropped before it released the lock (its caller went away, or its loader
/// panicked) releases it from a task of its own: otherwise every instance would wait out
/// the lock's TTL.
pub(crate) struct Held {
    name: Bytes,
    token: u64,
    orphaned: Option<Box<dyn FnOnce(Bytes, u64) + Send>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(release) = self.orphaned.take() {
            release(self.name.clone(), self.token);
        }
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Takes `key`'s distributed lock before a load, or waits for the instance that
    /// holds it and takes its value from the shared tiers of `levels`.
    pub(crate) async fn before_load(
        self: &Arc<Self>,
        key: &K,
        levels: &Range<usize>,
        ticket: Ticket,
        op: &Op,
    ) -> LockStep<V> {
        let Some(dist) = &self.distributed_lock else {
            return LockStep::Proceed;
        };
        // Only a shared tier below L1 can carry another instance's value here.
        let shared = levels.start.max(1);
        if shared >= levels.end || tokio::runtime::Handle::try_current().is_err() {
            return LockStep::Proceed;
        }
        // Boxed: the lock and the wait make a large future (1.5 KB), and inline it would
        // make every miss's future that large, with a distributed lock or without.
        Box::pin(self.lock_or_wait(dist, key, levels, shared, ticket, op)).await
    }

    /// [`before_load`](Self::before_load) once the lock applies: `shared` is the first
    /// shared tier of `levels`.
    async fn lock_or_wait(
        self: &Arc<Self>,
        dist: &DistLock<K>,
        key: &K,
        levels: &Range<usize>,
        shared: usize,
        ticket: Ticket,
        op: &Op,
    ) -> LockStep<V> {
        let Ok(name) = (dist.encode)(key) else {
            return LockStep::Proceed;
        };
        let deadline = Instant::now()
            .checked_add(dist.ttl)
            .unwrap_or_else(|| Instant::now() + LAST_LOOK);
        let mut pause = FIRST_LOOK;
        let waiter = Waiter::new(dist, &name);
        loop {
            // Listening before asking: a release that comes in between is not missed.
            let notified = waiter.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match dist
                .lock
                .try_lock(Bytes::from(name.clone()), dist.ttl)
                .await
            {
                Ok(Some(token)) => {
                    let me = Arc::downgrade(self);
                    let held = Held {
                        name: Bytes::from(name.clone()),
                        token,
                        orphaned: Some(Box::new(move |name, token| {
                            let (Ok(runtime), Some(inner)) =
                                (tokio::runtime::Handle::try_current(), me.upgrade())
                            else {
                                return;
                            };
                            runtime.spawn(async move { inner.release(&name, token).await });
                        })),
                    };
                    // Loaded by another between this caller's walk and its lock?
                    if let Some(value) = self.look_below(key, levels, shared, ticket, op).await {
                        self.after_load(Some(held)).await;
                        return LockStep::Found(value);
                    }
                    return LockStep::Held(held);
                }
                Ok(None) => {}
                Err(_) => return LockStep::Proceed,
            }
            // Held by another instance: wait for its release, then take its value.
            self.telemetry.count(CacheCounter::LockWaits);
            if let Some(value) = self.look_below(key, levels, shared, ticket, op).await {
                return LockStep::Found(value);
            }
            let now = Instant::now();
            if now >= deadline {
                self.telemetry.count(CacheCounter::LockTimeouts);
                return LockStep::Proceed;
            }
            let wait = if self.backplane.is_some() {
                deadline - now
            } else {
                pause.min(deadline - now)
            };
            let _ = tokio::time::timeout(wait, notified).await;
            pause = (pause * 2).min(LAST_LOOK);
            if let Some(value) = self.look_below(key, levels, shared, ticket, op).await {
                return LockStep::Found(value);
            }
        }
    }

    /// Releases the lock taken before a load (once its value is stored), and tells the
    /// other instances.
    pub(crate) async fn after_load(&self, held: Option<Held>) {
        let Some(mut held) = held else {
            return;
        };
        self.release(&held.name, held.token).await;
        held.orphaned = None;
    }

    /// Releases the lock `name` if `token` still holds it, and tells the other instances.
    async fn release(&self, name: &Bytes, token: u64) {
        let Some(dist) = &self.distributed_lock else {
            return;
        };
        let _ = dist.lock.unlock(name.clone(), token).await;
        self.announce_released(name);
    }

    /// Wakes this instance's waiters for the lock `name`: its holder released it. They
    /// stay listening (the last one out leaves the map): one that finds no value and the
    /// lock taken by a third instance must hear that one's release too.
    pub(crate) fn lock_released(&self, name: &[u8]) {
        if let Some(dist) = &self.distributed_lock
            && let Some(waiters) = dist.waiting().get(name)
        {
            waiters.notify_waiters();
        }
    }

    /// A live value in the shared tiers of `levels` (from `shared` down), promoted into
    /// the levels above as a lookup's would be.
    async fn look_below(
        self: &Arc<Self>,
        key: &K,
        levels: &Range<usize>,
        shared: usize,
        ticket: Ticket,
        op: &Op,
    ) -> Option<V> {
        let walked = self
            .walk(key, levels.clone(), shared, ticket, op, Walk::Read)
            .await
            .ok()?;
        walked.live.map(|(_, entry)| entry.into_value())
    }
}
