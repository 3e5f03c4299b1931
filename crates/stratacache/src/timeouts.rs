//! Loader timeouts: a soft one that answers with a stale value at hand (the load going
//! on in the background), and a hard one that fails the load.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stratacache_tier::{Error, ErrorKind};

use crate::inner::Inner;
use crate::loader::Loaded;
use crate::options::Options;
use crate::telemetry::{CacheCounter, Operation, TierOutcome};

/// Loader timeouts, for [`CacheBuilder::load_timeouts`](crate::CacheBuilder::load_timeouts).
/// They need a tokio runtime with its timer (without one, loads are not timed).
///
/// - **Soft**: applies only when [fail-safe](crate::FailSafe) has a stale value at
///   hand. When a load takes longer, the caller gets the stale value at once (as when
///   the load fails, counted in [`CacheStats::soft_timeouts`](crate::CacheStats::soft_timeouts)).
///   A load through the cache's own [`loader`](crate::CacheBuilder::loader) goes on in
///   the background and stores its value when it ends (counted in
///   [`background_loads`](crate::CacheStats::background_loads)), unless a write of the
///   key came first; a per-call closure is cancelled. At most 1 024 such loads run at
///   once; past that a load is cancelled with its caller too.
/// - **Hard**: any load that takes longer fails with [`ErrorKind::Timeout`] (and then
///   fail-safe, if on, answers with a stale value).
///
/// ```
/// use std::time::Duration;
/// use stratacache::LoadTimeouts;
///
/// let timeouts = LoadTimeouts::new()
///     .soft(Duration::from_millis(50))
///     .hard(Duration::from_secs(2));
/// assert_eq!(timeouts.get_soft(), Some(Duration::from_millis(50)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadTimeouts {
    soft: Option<Duration>,
    hard: Option<Duration>,
}

impl LoadTimeouts {
    /// No timeouts.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            soft: None,
            hard: None,
        }
    }

    /// The soft timeout.
    #[must_use]
    pub const fn soft(mut self, soft: Duration) -> Self {
        self.soft = Some(soft);
        self
    }

    /// The hard timeout.
    #[must_use]
    pub const fn hard(mut self, hard: Duration) -> Self {
        self.hard = Some(hard);
        self
    }

    /// The soft timeout, if set.
    #[must_use]
    pub const fn get_soft(&self) -> Option<Duration> {
        self.soft
    }

    /// The hard timeout, if set.
    #[must_use]
    pub const fn get_hard(&self) -> Option<Duration> {
        self.hard
    }

    /// The limit for a load, and whether it is the soft one.
    fn limit(&self, stale_at_hand: bool) -> Option<(Duration, bool)> {
        match (self.soft.filter(|_| stale_at_hand), self.hard) {
            (Some(soft), Some(hard)) if hard <= soft => Some((hard, false)),
            (Some(soft), _) => Some((soft, true)),
            (None, Some(hard)) => Some((hard, false)),
            (None, None) => None,
        }
    }
}

/// How a timed load ended when it did not answer.
pub(crate) enum Overdue {
    /// The soft timeout: answer with the stale value.
    Soft,
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Runs `load` within the cache's load timeouts. `Err(Overdue::Soft)` when the soft
    /// timeout ran out (only with a stale value at hand); a hard timeout is the load's
    /// error.
    pub(crate) async fn timed_load<Fut>(
        &self,
        load: Fut,
        stale_at_hand: bool,
    ) -> Result<Result<Option<Loaded<V>>, Error>, Overdue>
    where
        Fut: Future<Output = Result<Option<Loaded<V>>, Error>> + Send,
    {
        // Boxed: a loader's future is the caller's, of any size, and a miss that does not
        // load should not carry it.
        #[cfg(any(feature = "metrics", feature = "opentelemetry"))]
        let load = {
            let telemetry = &self.telemetry;
            async move {
                // Recorded when dropped: a load cut off by a timeout counts too.
                let _timer = crate::telemetry::LoadTimer::start(telemetry);
                load.await
            }
        };
        let load = Box::pin(load);
        let limit = self
            .load_timeouts
            .and_then(|timeouts| timeouts.limit(stale_at_hand))
            .filter(|_| tokio::runtime::Handle::try_current().is_ok());
        let Some((limit, soft)) = limit else {
            return Ok(load.await);
        };
        match tokio::time::timeout(limit, load).await {
            Ok(loaded) => Ok(loaded),
            Err(_) if soft => {
                self.telemetry.count(CacheCounter::SoftTimeouts);
                Err(Overdue::Soft)
            }
            Err(_) => Ok(Err(Error::new(
                ErrorKind::Timeout,
                format!("the load took longer than its hard timeout of {limit:?}"),
            ))),
        }
    }

    /// The cache's own load of `key`, able to outlive its caller: it runs as a tokio task
    /// (when a soft timeout is set and a runtime is at hand), and if the caller stops
    /// waiting (the soft timeout answered it), the task stores what it loads, unless a
    /// write of the key began since the load started.
    pub(crate) async fn load_outliving_caller(
        self: Arc<Self>,
        key: K,
        options: Options,
    ) -> Result<Option<Loaded<V>>, Error> {
        let Some(loader) = self.loader.clone() else {
            return Ok(None);
        };
        let soft = self.load_timeouts.and_then(|timeouts| timeouts.soft);
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (Some(_), Some(runtime)) = (soft, runtime) else {
            return loader.load(key).await;
        };
        // Bounded: past the limit a load runs in its caller and is cancelled with it.
        let Some(slot) = TaskSlot::take(&self) else {
            return loader.load(key).await;
        };
        // A load that began after a write sees that write's value at the source.
        let ticket = self.generations.ticket(&key);
        let abandoned = Arc::new(AtomicBool::new(false));
        let task = runtime.spawn({
            let (inner, abandoned) = (Arc::clone(&self), Arc::clone(&abandoned));
            async move {
                let _slot = slot;
                // The hard timeout holds here too: a hung source does not hold the task.
                let hard = inner.load_timeouts.and_then(|timeouts| timeouts.hard);
                let started = inner.clock.now();
                let loaded = match hard {
                    Some(hard) => tokio::time::timeout(hard, loader.load(key.clone()))
                        .await
                        .unwrap_or_else(|_| {
                            Err(Error::new(
                                ErrorKind::Timeout,
                                "the load took longer than its hard timeout",
                            ))
                        }),
                    None => loader.load(key.clone()).await,
                };
                if abandoned.load(Ordering::Acquire)
                    && let Ok(Some(found)) = &loaded
                {
                    inner.telemetry.count(CacheCounter::BackgroundLoads);
                    // Stored as the call would have: its tiers, its TTL cap.
                    let capped = Loaded {
                        ttl: options.cap(found.ttl),
                        ..found.clone()
                    };
                    let entry = capped.into_entry(started);
                    let op = inner.telemetry.start(Operation::Refresh);
                    let every_level = options.levels(inner.levels.len());
                    inner
                        .publish(
                            &key,
                            &entry,
                            ticket,
                            every_level,
                            TierOutcome::Inserted,
                            &op,
                        )
                        .await;
                }
                loaded
            }
        });
        let mut waiting = Abandon(Some(abandoned));
        let loaded = task.await.unwrap_or_else(|panic| {
            Err(Error::new(
                ErrorKind::Loader,
                format!("the load panicked: {panic}"),
            ))
        });
        waiting.0 = None;
        loaded
    }
}

/// At most this many loads run as tasks able to outlive their callers at once.
pub(crate) const MAX_LOAD_TASKS: usize = 1_024;

/// One of the [`MAX_LOAD_TASKS`], held by a load task while it runs.
struct TaskSlot<K, V>(Arc<Inner<K, V>>);

impl<K, V> TaskSlot<K, V> {
    fn take(inner: &Arc<Inner<K, V>>) -> Option<Self> {
        let running = inner.load_tasks.fetch_add(1, Ordering::AcqRel);
        if running >= MAX_LOAD_TASKS {
            inner.load_tasks.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(Arc::clone(inner)))
    }
}

impl<K, V> Drop for TaskSlot<K, V> {
    fn drop(&mut self) {
        self.0.load_tasks.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Marks the load abandoned if its caller stops waiting before it ends.
struct Abandon(Option<Arc<AtomicBool>>);

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(abandoned) = &self.0 {
            abandoned.store(true, Ordering::Release);
        }
    }
}
