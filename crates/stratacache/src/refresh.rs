//! Time-to-refresh: serve a stale entry at once and refresh it in the background.

use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use stratacache_tier::{BoxError, Error, ErrorKind};

use crate::erased::BoxFuture;

/// A future handed to a [spawner](TimeToRefresh::spawner).
pub type RefreshTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

type Spawner = Arc<dyn Fn(RefreshTask) -> bool + Send + Sync>;
type Reload<K, V> = Arc<dyn Fn(K) -> BoxFuture<'static, Result<Option<V>, Error>> + Send + Sync>;

/// When entries count as stale, how refreshes run, and what they may reload from.
///
/// An L1 hit older than `after` (but within its TTL) is returned at once, and one
/// background refresh of that key starts. The refresh reads the fallback tiers for a
/// newer entry; when they have none and a [`loader`](Self::loader) is set, it runs that
/// loader and stores its value in every tier. A refresh never re-runs the closure given
/// to a `get_or_insert` call: that closure belongs to its caller and is gone.
///
/// Refreshes are coalesced per key: one runs at a time. A refresh that stores a newer
/// value ends its claim, and the next refresh comes when that value reaches its own
/// time-to-refresh. A refresh that finds nothing newer (an L2 copy as old as the L1 one)
/// or fails holds its claim for `after`, so it does not make every later read start
/// another. A failed refresh keeps the old value until its TTL.
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Cache, Fallback, TimeToRefresh};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stratacache::Error> {
/// let cache: Cache<u64, String> = Cache::builder()
///     .ttl(Duration::from_secs(300))
///     .time_to_refresh(TimeToRefresh::new(Duration::from_secs(60)))
///     .fallback(Fallback::memory())
///     .build()?;
/// # Ok(()) }
/// ```
pub struct TimeToRefresh<K, V> {
    pub(crate) after: Duration,
    pub(crate) spawner: Spawner,
    pub(crate) reload: Option<Reload<K, V>>,
}

impl<K, V> TimeToRefresh<K, V> {
    /// Entries older than `after` are refreshed in the background, on the current tokio
    /// runtime. (Outside a runtime no refresh can start; that counts as a failed refresh.)
    #[must_use]
    pub fn new(after: Duration) -> Self {
        Self {
            after,
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

    /// Runs refreshes with `spawn` instead of tokio: any executor, or a test's queue.
    #[must_use]
    pub fn spawner(mut self, spawn: impl Fn(RefreshTask) + Send + Sync + 'static) -> Self {
        self.spawner = Arc::new(move |task| {
            spawn(task);
            true
        });
        self
    }

    /// What a refresh runs when no fallback tier holds a newer entry: typically the same
    /// database read the callers' loaders do. `Ok(None)` means "nothing new".
    #[must_use]
    pub fn loader<F, Fut, E>(mut self, load: F) -> Self
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<V>, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.reload = Some(Arc::new(move |key| {
            let loading = load(key);
            Box::pin(async move {
                loading
                    .await
                    .map_err(|error| Error::from_source(ErrorKind::Loader, error))
            })
        }));
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
            .field("loader", &self.reload.is_some())
            .finish_non_exhaustive()
    }
}

/// The refresh machinery of a built cache.
pub(crate) struct Refresher<K, V> {
    pub(crate) after: Duration,
    pub(crate) spawner: Spawner,
    pub(crate) reload: Option<Reload<K, V>>,
    /// When each key's last refresh started (bounded; the cache clock's time).
    started: moka::sync::Cache<K, SystemTime, ahash::RandomState>,
}

/// How many keys' refresh start times are remembered. Past it the oldest are forgotten,
/// which at worst allows an early second refresh of a key.
const REMEMBERED_REFRESHES: u64 = 100_000;

impl<K, V> Refresher<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(config: TimeToRefresh<K, V>) -> Self {
        Self {
            after: config.after,
            spawner: config.spawner,
            reload: config.reload,
            started: moka::sync::Cache::builder()
                .max_capacity(REMEMBERED_REFRESHES)
                .build_with_hasher(ahash::RandomState::new()),
        }
    }

    /// Claims the refresh of `key` at `now`: true for exactly one caller per key until
    /// `after` has passed since the last claim.
    pub(crate) fn claim<Q>(&self, key: &Q, now: SystemTime) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let after = self.after;
        self.started
            .entry_by_ref(key)
            .or_insert_with_if(
                || now,
                |last| last.checked_add(after).is_none_or(|due| now >= due),
            )
            .is_fresh()
    }

    /// Forgets the claim on `key`: its new value brings its own time-to-refresh.
    pub(crate) fn release(&self, key: &K) {
        self.started.invalidate(key);
    }
}
