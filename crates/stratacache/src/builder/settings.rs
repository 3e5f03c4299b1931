//! The settings of the whole cache: its name, clock, strictness, coalescing, refresh and
//! telemetry. They exist only here, never on a `Fallback`, so they cannot be set where
//! they would not apply.

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use stratacache_tier::Clock;

use super::CacheBuilder;
use crate::fail_safe::FailSafe;
use crate::loader::Loader;
use crate::refresh::TimeToRefresh;
use crate::telemetry::CacheEvent;
use crate::timeouts::LoadTimeouts;

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Whether concurrent misses of one key are coalesced (off by default): one lookup of
    /// the fallback tiers and one load run, and every waiting caller gets their result,
    /// errors included. Hits never pay for it.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stratacache::Error> {
    /// let cache: Cache<u64, String> = Cache::builder().stampede_protection(true).build()?;
    /// let slow_load = || async {
    ///     tokio::task::yield_now().await; // the database takes a while
    ///     "row 1".to_string()
    /// };
    /// let (a, b) = tokio::join!(
    ///     cache.get_or_insert(&1, slow_load),
    ///     cache.get_or_insert(&1, slow_load),
    /// );
    /// assert_eq!(a?, b?);
    /// let stats = cache.stats();
    /// assert_eq!((stats.loads, stats.coalesced_waits), (1, 1), "one load, one waiter");
    /// # Ok(()) }
    /// ```
    pub fn stampede_protection(mut self, enabled: bool) -> Self {
        self.stampede_protection = enabled;
        self
    }

    /// Refresh L1 entries in the background once they reach an age (see
    /// [`TimeToRefresh`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, FrozenClock, TimeToRefresh};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stratacache::Error> {
    /// let clock = FrozenClock::new();
    /// let refresh = TimeToRefresh::new(Duration::from_secs(60))
    ///     .loader(|_key: u64| async { Ok::<_, std::io::Error>(Some("fresh")) });
    /// let cache: Cache<u64, &str> = Cache::builder()
    ///     .clock(&clock)
    ///     .ttl(Duration::from_secs(300))
    ///     .time_to_refresh(refresh)
    ///     .build()?;
    /// cache.insert(1, "old").await?;
    /// clock.advance(Duration::from_secs(61));
    /// assert_eq!(cache.get(&1).await?, Some("old"), "stale: served at once, refresh started");
    /// let mut now = None;
    /// for _ in 0..100 {
    ///     tokio::task::yield_now().await; // let the background refresh run
    ///     now = cache.get(&1).await?;
    ///     if now == Some("fresh") {
    ///         break;
    ///     }
    /// }
    /// assert_eq!(now, Some("fresh"));
    /// # Ok(()) }
    /// ```
    pub fn time_to_refresh(mut self, time_to_refresh: TimeToRefresh<K, V>) -> Self {
        self.time_to_refresh = Some(time_to_refresh);
        self
    }

    /// Whether the cache counts and emits events (on by default). Off,
    /// [`Cache::stats`](crate::Cache::stats)
    /// stays at zero and no event is emitted.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, u64> = Cache::builder().telemetry(false).build()?;
    /// cache.insert(1, 1).await?;
    /// cache.get(&1).await?;
    /// assert_eq!(cache.stats().tiers[0].hits, 0, "nothing is counted");
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn telemetry(mut self, enabled: bool) -> Self {
        self.telemetry = enabled;
        self
    }

    /// Count evictions of the memory tiers this builder creates, and emit their events.
    ///
    /// Off by default (and on whenever an [`event_handler`](Self::event_handler) is set):
    /// it installs a moka removal listener, and moka then allocates once per
    /// housekeeping pass (about one allocation per 128 reads), which would break the
    /// allocation-free hit.
    pub fn track_evictions(mut self, track: bool) -> Self {
        self.track_evictions = track;
        self
    }

    /// Receives every tier and operation event, with request ids correlating them. It is
    /// called inline on the caller's task: keep it short and non-blocking.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use stratacache::{Cache, CacheEvent};
    ///
    /// # futures::executor::block_on(async {
    /// let completed = Arc::new(AtomicU64::new(0));
    /// let counter = Arc::clone(&completed);
    /// let cache: Cache<u64, u64> = Cache::builder()
    ///     .event_handler(move |event| {
    ///         if let CacheEvent::Operation(_) = event {
    ///             counter.fetch_add(1, Ordering::Relaxed);
    ///         }
    ///     })
    ///     .build()?;
    /// cache.insert(1, 1).await?;
    /// cache.get(&1).await?;
    /// assert_eq!(completed.load(Ordering::Relaxed), 2);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn event_handler(mut self, handler: impl Fn(&CacheEvent) + Send + Sync + 'static) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// The cache's name in stats and events (`"default"` if not set).
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// let cache: Cache<u64, u64> = Cache::builder().name("sessions").build()?;
    /// assert_eq!(cache.name(), "sessions");
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The clock every time-based decision reads, in every tier (the system clock by
    /// default). Tests pass a [`FrozenClock`](crate::FrozenClock).
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, Fallback, FrozenClock};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = FrozenClock::new();
    /// let cache: Cache<u64, &str> = Cache::builder()
    ///     .clock(&clock)
    ///     .ttl(Duration::from_secs(10))
    ///     .fallback(Fallback::memory(|tier| tier).ttl(Duration::from_secs(60)))
    ///     .build()?;
    /// cache.insert(1, "one").await?;
    /// clock.advance(Duration::from_secs(10)); // L1's copy is gone, L2's is live
    /// assert_eq!(cache.get(&1).await?, Some("one"));
    /// clock.advance(Duration::from_secs(50)); // both are gone
    /// assert_eq!(cache.get(&1).await?, None);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn clock(mut self, clock: impl Into<Clock>) -> Self {
        self.clock = clock.into();
        self
    }

    /// Return tier failures to the caller instead of reading them as misses.
    ///
    /// ```
    /// use stratacache::{Cache, ErrorKind, Fallback};
    /// # use stratacache::{CacheEntry, CacheTier, Error};
    /// # struct Down;
    /// # fn down<T>() -> Result<T, Error> { Err(Error::new(ErrorKind::Unavailable, "refused")) }
    /// # impl CacheTier<u64, u64> for Down {
    /// #     async fn get(&self, _: &u64) -> Result<Option<CacheEntry<u64>>, Error> { down() }
    /// #     async fn insert(&self, _: u64, _: CacheEntry<u64>, _: Option<std::time::Duration>)
    /// #         -> Result<(), Error> { down() }
    /// #     async fn invalidate(&self, _: &u64) -> Result<(), Error> { down() }
    /// #     async fn clear(&self) -> Result<(), Error> { down() }
    /// # }
    ///
    /// # futures::executor::block_on(async {
    /// // `Down` is a tier whose every call fails, like a Redis server that is down.
    /// let lenient: Cache<u64, u64> = Cache::builder().fallback(Fallback::tier(Down)).build()?;
    /// assert_eq!(lenient.get(&1).await?, None, "a failure reads as a (counted) miss");
    /// assert_eq!(lenient.stats().tiers[1].errors, 1);
    ///
    /// let strict: Cache<u64, u64> =
    ///     Cache::builder().strict(true).fallback(Fallback::tier(Down)).build()?;
    /// assert_eq!(strict.get(&1).await.unwrap_err().kind(), ErrorKind::Unavailable);
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// The source this cache reads through: on a miss, [`get`](crate::Cache::get) loads
    /// the key from `loader` and stores what it finds (with the TTL it chooses), and
    /// time-to-refresh refreshes through it. Closures given to the `get_or_insert`
    /// family still load per call. See [`Loader`](crate::Loader).
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// # futures::executor::block_on(async {
    /// let cache: Cache<u64, String> = Cache::builder()
    ///     .loader(|id: u64| async move { Ok::<_, std::io::Error>(Some(format!("row {id}"))) })
    ///     .build()?;
    /// assert_eq!(cache.get(&3).await?.as_deref(), Some("row 3"));
    /// assert_eq!(cache.get(&3).await?.as_deref(), Some("row 3"));
    /// assert_eq!(cache.stats().loads, 1, "the second get was a hit");
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn loader(mut self, loader: impl Loader<K, V>) -> Self {
        self.loader = Some(crate::loader::erase(loader));
        self
    }

    /// Remembers the loader's "not found" (`Ok(None)`) for `ttl`: a `get` of such a key
    /// answers `None` without loading again until then, counted as
    /// [`not_found_hits`](crate::CacheStats::not_found_hits). Any write of the key
    /// replaces the answer. The answers are kept in this instance's memory, on the
    /// cache's clock; a value another instance writes to a shared tier is still found
    /// there first. Per-call closures of the `get_or_insert` family always run.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, FrozenClock};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = FrozenClock::new();
    /// let cache: Cache<u64, String> = Cache::builder()
    ///     .clock(&clock)
    ///     .loader(|_id: u64| async { Ok::<Option<String>, std::io::Error>(None) })
    ///     .cache_not_found(Duration::from_secs(30))
    ///     .build()?;
    /// assert_eq!(cache.get(&404).await?, None); // loads: not found
    /// assert_eq!(cache.get(&404).await?, None); // remembered
    /// assert_eq!((cache.stats().loads, cache.stats().not_found_hits), (1, 1));
    /// clock.advance(Duration::from_secs(30));
    /// assert_eq!(cache.get(&404).await?, None); // forgotten: loads again
    /// assert_eq!(cache.stats().loads, 2);
    /// cache.insert(404, "created".into()).await?; // a write replaces the answer
    /// assert_eq!(cache.get(&404).await?.as_deref(), Some("created"));
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn cache_not_found(mut self, ttl: Duration) -> Self {
        self.not_found_ttl = Some(ttl);
        self
    }

    /// Fail-safe: keep entries past their TTL and serve them when the source fails (see
    /// [`FailSafe`]). Off by default.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::time::Duration;
    /// use stratacache::{Cache, FailSafe, FrozenClock};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = FrozenClock::new();
    /// let database_up = Arc::new(AtomicBool::new(true));
    /// let up = Arc::clone(&database_up);
    /// let cache: Cache<u64, String> = Cache::builder()
    ///     .clock(&clock)
    ///     .ttl(Duration::from_secs(60))
    ///     .loader(move |id: u64| {
    ///         let up = up.load(Ordering::SeqCst);
    ///         async move {
    ///             if up { Ok(Some(format!("row {id}"))) } else { Err(std::io::Error::other("down")) }
    ///         }
    ///     })
    ///     .fail_safe(FailSafe::new(Duration::from_secs(3_600)))
    ///     .build()?;
    /// assert_eq!(cache.get(&1).await?.as_deref(), Some("row 1"));
    ///
    /// database_up.store(false, Ordering::SeqCst);
    /// clock.advance(Duration::from_secs(61)); // expired, and the database is down
    /// assert_eq!(cache.get(&1).await?.as_deref(), Some("row 1"), "the stale value");
    /// assert!(cache.get_entry(&1).await?.unwrap().is_stale());
    /// assert_eq!(cache.stats().stale_served, 1);
    /// assert!(cache.get(&2).await.is_err(), "nothing to fall back on");
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn fail_safe(mut self, fail_safe: FailSafe) -> Self {
        self.fail_safe = Some(fail_safe);
        self
    }

    /// Shortens every stored copy's TTL by a random part of `jitter` (at most half of
    /// its remaining life), so that entries many instances wrote at the same moment do
    /// not all expire, and reload, at the same moment. Copies never outlive their TTL.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, FrozenClock};
    ///
    /// # futures::executor::block_on(async {
    /// let clock = FrozenClock::new();
    /// let cache: Cache<u64, u64> = Cache::builder()
    ///     .clock(&clock)
    ///     .ttl(Duration::from_secs(60))
    ///     .ttl_jitter(Duration::from_secs(10))
    ///     .build()?;
    /// cache.insert(1, 1).await?;
    /// let ttl = cache.get_entry(&1).await?.unwrap().ttl().unwrap();
    /// assert!(ttl >= Duration::from_secs(50) && ttl <= Duration::from_secs(60));
    /// # Ok::<(), stratacache::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn ttl_jitter(mut self, jitter: Duration) -> Self {
        self.ttl_jitter = Some(jitter);
        self
    }

    /// Soft and hard limits on how long a load may take (see [`LoadTimeouts`]).
    pub fn load_timeouts(mut self, timeouts: LoadTimeouts) -> Self {
        self.load_timeouts = Some(timeouts);
        self
    }

    /// How long this instance trusts a tag's marker it read from the shared tier before
    /// reading it again (see [`Cache::invalidate_tag`](crate::Cache::invalidate_tag)):
    /// the longest an invalidation that never reached this instance through a backplane
    /// goes unnoticed. Default: 1 s; 30 s with a backplane, whose announcements keep
    /// instances current (a lost subscription makes every marker be read again).
    pub fn tag_marker_refresh(mut self, every: Duration) -> Self {
        self.tag_marker_refresh = Some(every);
        self
    }

    /// How long the shared tier keeps a tag's marker. Default: for good. Never shorter
    /// than the longest an entry lives (its TTL, plus fail-safe's stale age): an entry
    /// that outlives its tag's marker is valid again.
    pub fn tag_marker_ttl(mut self, ttl: Duration) -> Self {
        self.tag_marker_ttl = Some(ttl);
        self
    }
}

#[cfg(feature = "serialize")]
impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static + serde::Serialize + serde::de::DeserializeOwned,
    V: Clone + Send + Sync + 'static,
{
    /// Keeps this instance's L1 coherent with the cache's other instances (the replicas
    /// of a service, over one Redis) through `backplane`, a publish/subscribe channel:
    /// every `insert`, `invalidate` and `clear` is announced once it is done, and what
    /// the others announce drops this instance's L1 copy of the key, so the next read
    /// takes the shared tier's. Messages carry the key (postcard-encoded), never values.
    ///
    /// Nothing is lost silently: when the subscription is lost, this instance drops its
    /// whole L1, subscribes again with backoff (50 ms to 5 s), and drops L1 once more
    /// when it is back ([`CacheStats::backplane_gaps`](crate::CacheStats::backplane_gaps)).
    /// An announcement that fails is counted
    /// ([`backplane_errors`](crate::CacheStats::backplane_errors)); the write stands.
    ///
    /// The cache must be built inside a tokio runtime: it subscribes and listens on a
    /// task of its own, which ends with the cache. Until that first subscription holds,
    /// announcements go unheard; what L1 took in meanwhile is dropped when it does.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::mock::MockBackplane;
    /// use stratacache::{Cache, Fallback, MemoryTier};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stratacache::Error> {
    /// let (redis, backplane) = (MemoryTier::new(1_000), MockBackplane::new()); // in production: Redis for both
    /// let replica = || {
    ///     Cache::<u64, String>::builder()
    ///         .fallback(Fallback::tier(redis.clone()))
    ///         .backplane(backplane.clone())
    ///         .build()
    /// };
    /// let (a, b) = (replica()?, replica()?);
    /// tokio::task::yield_now().await; // both subscribe
    /// a.insert(1, "old".into()).await?;
    /// assert_eq!(b.get(&1).await?.as_deref(), Some("old")); // now in b's L1 too
    /// a.insert(1, "new".into()).await?;
    /// while b.stats().backplane_received == 0 {
    ///     tokio::task::yield_now().await; // the message crosses over
    /// }
    /// assert_eq!(b.get(&1).await?.as_deref(), Some("new"));
    /// # Ok(()) }
    /// ```
    pub fn backplane(mut self, backplane: impl crate::Backplane) -> Self {
        use crate::codec::{Codec, Postcard};
        let encode = Box::new(postcard_key::<K>);
        let decode = Box::new(|bytes: &[u8]| Codec::<K>::decode(&Postcard, bytes));
        self.backplane = Some(crate::backplane::Link::new(backplane, encode, decode));
        self
    }

    /// How long the backplane's channel may stay quiet before this instance checks that
    /// its subscription still delivers ([`Subscription::check`](crate::Subscription::check):
    /// a `PING` on Redis), bounding the check by the same time (default: 1 s). A
    /// subscription that fails it, say on a connection that hangs without closing, is
    /// lost: L1 is dropped, as on any gap, and the instance subscribes again. So a
    /// stalled subscription costs at most twice this before L1 stops being trusted.
    pub fn backplane_heartbeat(mut self, every: Duration) -> Self {
        self.backplane_heartbeat = Some(every.max(Duration::from_millis(1)));
        self
    }

    /// A distributed stampede lock (opt-in): after the in-process coalescing, the
    /// instance about to load a key takes the key's lock in `lock` (a Redis key, shared
    /// by every instance), looks at the shared tiers once more, loads, stores, and
    /// releases; an instance that finds the lock held waits for the release and takes
    /// the value from the shared tier instead of loading it too. The lock lives `ttl` at
    /// most (make it the loader's hard timeout), which is also how long others wait.
    ///
    /// Waiters learn of the release through the [`backplane`](Self::backplane) when the
    /// cache has one; without it they look at the shared tier again with backoff (10 ms
    /// to 200 ms). Best effort: when the wait runs out, or the lock's store fails, a
    /// caller loads anyway ([`CacheStats::lock_timeouts`](crate::CacheStats::lock_timeouts)).
    /// It needs a shared tier below L1, and a tokio runtime.
    pub fn distributed_lock(mut self, lock: impl crate::DistributedLock, ttl: Duration) -> Self {
        let encode = Box::new(postcard_key::<K>);
        self.distributed_lock = Some(crate::distributed_lock::DistLock::new(lock, encode, ttl));
        self
    }
}

/// A key as the backplane and the distributed lock name it: its postcard bytes.
#[cfg(feature = "serialize")]
fn postcard_key<K: serde::Serialize + serde::de::DeserializeOwned>(
    key: &K,
) -> Result<Vec<u8>, stratacache_tier::Error> {
    use crate::codec::{Codec, Postcard};
    let mut encoded = Vec::new();
    Codec::<K>::encode(&Postcard, key, &mut encoded)?;
    Ok(encoded)
}
