//! Time-to-refresh: serve a stale entry at once and refresh it in the background.

mod claims;
mod refresher;

pub(crate) use refresher::Refresher;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use stratacache_tier::BoxError;

use crate::loader::DynLoader;

/// A future handed to a [spawner](TimeToRefresh::spawner).
pub type RefreshTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

type Spawner = Arc<dyn Fn(RefreshTask) -> bool + Send + Sync>;

/// When entries count as stale, how refreshes run, and what they may reload from.
///
/// An L1 hit older than `after` (but within its TTL) is returned at once, and one
/// background refresh of that key starts. The refresh reads the fallback tiers for a
/// newer entry; when they have none and a [`loader`](Self::loader) is set, it runs that
/// loader and stores its value in every tier. A refresh never re-runs the closure given
/// to a `get_or_insert` call: that closure belongs to its caller and is gone.
///
/// Refreshes are coalesced per key: one runs at a time, however long it takes, and none
/// outlives its [`timeout`](Self::timeout) (the refresh interval unless set). A refresh
/// that stores a newer value ends its claim, and the next refresh comes when that value
/// reaches its own time-to-refresh. A refresh that finds nothing newer (an L2 copy as old
/// as the L1 one), fails or times out holds its claim for `after`, so it does not make
/// every later read start another. A failed refresh keeps the old value until its TTL.
///
/// A refresh is a reader like any other: what it finds or reloads is stored only if no
/// `insert` or `invalidate` of the key began since it started.
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Cache, Fallback, TimeToRefresh};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stratacache::Error> {
/// let cache: Cache<u64, String> = Cache::builder()
///     .ttl(Duration::from_secs(300))
///     .time_to_refresh(TimeToRefresh::new(Duration::from_secs(60)))
///     .fallback(Fallback::memory(|tier| tier))
///     .build()?;
/// # Ok(()) }
/// ```
pub struct TimeToRefresh<K, V> {
    pub(crate) after: Duration,
    pub(crate) jitter: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) spawner: Spawner,
    pub(crate) reload: Option<DynLoader<K, V>>,
}

impl<K, V> TimeToRefresh<K, V> {
    /// Entries older than `after` are refreshed in the background, on the current tokio
    /// runtime. (Outside a runtime no refresh can start; that counts as a failed refresh.)
    #[must_use]
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            jitter: Duration::ZERO,
            timeout: None,
            spawner: Arc::new(|task| match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(task);
                    true
                }
                Err(_) => false,
            }),
            reload: None,
        }
    }

    /// Spreads refreshes: each entry is refreshed up to `jitter` before `after` (an
    /// amount fixed per entry, from when its value was produced), so that entries many
    /// instances loaded together are not all refreshed together.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::TimeToRefresh;
    ///
    /// let ttr: TimeToRefresh<u64, String> =
    ///     TimeToRefresh::new(Duration::from_secs(60)).jitter(Duration::from_secs(10));
    /// # let _ = ttr;
    /// ```
    #[must_use]
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter.min(self.after);
        self
    }

    /// Runs refreshes with `spawn` instead of tokio: any executor, or a test's queue.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use stratacache::{Cache, Fallback, FrozenClock, RefreshTask, TimeToRefresh};
    ///
    /// # futures::executor::block_on(async {
    /// // Refreshes wait in a queue until the test runs them.
    /// let queue: Arc<Mutex<Vec<RefreshTask>>> = Arc::default();
    /// let sink = Arc::clone(&queue);
    /// let clock = FrozenClock::new();
    /// let cache: Cache<u64, &str> = Cache::builder()
    ///     .clock(&clock)
    ///     .time_to_refresh(
    ///         TimeToRefresh::new(Duration::from_secs(60))
    ///             .spawner(move |task| sink.lock().unwrap().push(task)),
    ///     )
    ///     .fallback(Fallback::memory(|tier| tier))
    ///     .build()?;
    /// cache.insert(1, "v").await?;
    /// clock.advance(Duration::from_secs(60));
    /// cache.get(&1).await?; // stale: a refresh is queued
    /// cache.get(&1).await?; // one at a time per key: no second one
    /// let tasks: Vec<_> = queue.lock().unwrap().drain(..).collect();
    /// assert_eq!(tasks.len(), 1);
    /// futures::future::join_all(tasks).await;
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn spawner(mut self, spawn: impl Fn(RefreshTask) + Send + Sync + 'static) -> Self {
        self.spawner = Arc::new(move |task| {
            spawn(task);
            true
        });
        self
    }

    /// What a refresh runs when no fallback tier holds a newer entry: typically the same
    /// database read the callers' loaders do. `Ok(None)` means "nothing new". Without
    /// it, a refresh runs the cache's [`loader`](crate::CacheBuilder::loader) if it has
    /// one; with neither, a refresh can only take a *newer* copy from a fallback tier
    /// (written there by another instance), which a single writer never produces.
    #[must_use]
    pub fn loader<F, Fut, E>(mut self, load: F) -> Self
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Send + 'static,
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<V>, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.reload = Some(crate::loader::erase(load));
        self
    }

    /// How long one refresh may run (the refresh interval, `after`, unless set). A refresh
    /// still running then is cancelled and counts as failed, so a hung loader or tier
    /// leaves no task behind. The timer is tokio's: a refresh that a custom
    /// [`spawner`](Self::spawner) runs outside any tokio runtime has none.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The age after which an entry is refreshed.
    #[must_use]
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl<K, V> fmt::Debug for TimeToRefresh<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeToRefresh")
            .field("after", &self.after)
            .field("jitter", &self.jitter)
            .field("timeout", &self.timeout)
            .field("loader", &self.reload.is_some())
            .finish_non_exhaustive()
    }
}
