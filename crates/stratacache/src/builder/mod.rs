//! `CacheBuilder`: what it holds, and how it becomes a `Cache`. Its setters are grouped
//! in the files beside this one: the whole cache's settings, and its tiers.

mod levels;
mod settings;

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use stratacache_tier::{Clock, Error, ErrorKind};

use crate::backplane::Link;
use crate::cache::Cache;
use crate::coalesce::Coalescer;
use crate::distributed_lock::DistLock;
use crate::fail_safe::FailSafe;
use crate::generation::Generations;
use crate::inner::Inner;
use crate::key_lock::KeyLocks;
use crate::level::Level;
use crate::loader::DynLoader;
use crate::not_found::NotFound;
use crate::refresh::{Refresher, TimeToRefresh};
use crate::spec::{LevelSpec, Storage};
use crate::tags::TagMarkers;
use crate::telemetry::{Handler, Telemetry};
use crate::timeouts::LoadTimeouts;

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Starts configuring a cache: an unbounded memory L1 and the system clock until told
    /// otherwise.
    ///
    /// ```
    /// use stratacache::Cache;
    ///
    /// let cache: Cache<u64, String> = Cache::builder().name("users").build()?;
    /// assert_eq!(cache.name(), "users");
    /// assert_eq!(cache.tier_names(), ["l1"]);
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::new()
    }
}

/// Configures a [`Cache`]: its L1 tier, the fallback tiers below it, and the settings of
/// the whole cache. Start with [`Cache::builder`].
///
/// Tiers are consulted in the order they are added: L1 (memory unless
/// [`tier`](Self::tier) says otherwise), then each [`fallback`](Self::fallback).
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Cache, Fallback};
///
/// let cache: Cache<u64, String> = Cache::builder()
///     .name("orders")
///     .memory(|tier| tier.max_capacity(10_000)) // L1
///     .ttl(Duration::from_secs(30)) // L1's TTL: it applies to the tier above it
///     .fallback(Fallback::memory(|tier| tier).ttl(Duration::from_secs(600))) // L2
///     .stampede_protection(true)
///     .build()?;
/// assert_eq!(cache.tier_names(), ["l1", "l2"]);
/// # Ok::<(), stratacache::Error>(())
/// ```
#[must_use]
pub struct CacheBuilder<K, V> {
    name: Option<String>,
    clock: Clock,
    strict: bool,
    l1: LevelSpec<K, V>,
    fallbacks: Vec<LevelSpec<K, V>>,
    stampede_protection: bool,
    time_to_refresh: Option<TimeToRefresh<K, V>>,
    loader: Option<DynLoader<K, V>>,
    not_found_ttl: Option<Duration>,
    fail_safe: Option<FailSafe>,
    ttl_jitter: Option<Duration>,
    load_timeouts: Option<LoadTimeouts>,
    pub(crate) backplane: Option<Link<K>>,
    pub(crate) distributed_lock: Option<DistLock<K>>,
    telemetry: bool,
    handler: Option<Handler>,
    track_evictions: bool,
    pub(crate) tag_marker_refresh: Option<Duration>,
    pub(crate) tag_marker_ttl: Option<Duration>,
    pub(crate) backplane_heartbeat: Option<Duration>,
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new() -> Self {
        Self {
            name: None,
            clock: Clock::system(),
            strict: false,
            l1: LevelSpec::new(Storage::memory(|tier| tier)),
            fallbacks: Vec::new(),
            stampede_protection: false,
            time_to_refresh: None,
            loader: None,
            not_found_ttl: None,
            fail_safe: None,
            ttl_jitter: None,
            load_timeouts: None,
            backplane: None,
            distributed_lock: None,
            telemetry: true,
            handler: None,
            track_evictions: false,
            tag_marker_refresh: None,
            tag_marker_ttl: None,
            backplane_heartbeat: None,
        }
    }

    /// Builds the cache.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when a setting cannot work, such as a zero TTL.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache::{Cache, ErrorKind, TimeToRefresh};
    ///
    /// let zero_ttl = Cache::<u64, u64>::builder().ttl(Duration::ZERO).build();
    /// assert_eq!(zero_ttl.unwrap_err().kind(), ErrorKind::Config);
    ///
    /// // A refresh needs a tier below L1 or a loader to refresh from.
    /// let nothing_to_refresh_from = Cache::<u64, u64>::builder()
    ///     .time_to_refresh(TimeToRefresh::new(Duration::from_secs(60)))
    ///     .build();
    /// assert_eq!(nothing_to_refresh_from.unwrap_err().kind(), ErrorKind::Config);
    /// ```
    pub fn build(self) -> Result<Cache<K, V>, Error> {
        let clock = self.clock;
        let name: Arc<str> = self.name.unwrap_or_else(|| "default".to_string()).into();
        let track_evictions = self.telemetry && (self.track_evictions || self.handler.is_some());
        let telemetry = Arc::new(Telemetry::new(name, self.telemetry, self.handler));
        // Markers live in the lowest tier that can hold them: the one all instances share.
        let marker_store = (self.fallbacks.iter().enumerate().rev())
            .find_map(|(index, spec)| Some((index + 1, spec.markers.clone()?)));
        let trust_markers_for = self
            .tag_marker_refresh
            .unwrap_or(if self.backplane.is_some() {
                DEFAULT_MARKER_TRUST_WITH_BACKPLANE
            } else {
                DEFAULT_MARKER_TRUST
            });
        let mut backplane = self.backplane;
        if let (Some(link), Some(every)) = (&mut backplane, self.backplane_heartbeat) {
            link.heartbeat = every;
        }
        let levels: Box<[_]> = std::iter::once(self.l1)
            .chain(self.fallbacks)
            .enumerate()
            .map(|(depth, spec)| spec.build(depth, &clock, &telemetry, track_evictions))
            .collect::<Result<_, _>>()?;
        // Called through the breaker of the tier that keeps them.
        let breaker = (marker_store.as_ref()).and_then(|(level, _)| levels[*level].breaker.clone());
        let tags = TagMarkers::new(
            marker_store,
            breaker,
            trust_markers_for,
            self.tag_marker_ttl,
        );
        let refresher = match self.time_to_refresh {
            Some(config) => {
                let config = check_refresh(config, &levels, self.loader.is_some())?;
                Some(Refresher::new(config, self.loader.clone()))
            }
            None => None,
        };
        let not_found = match self.not_found_ttl {
            None => None,
            Some(ttl) if ttl.is_zero() || self.loader.is_none() => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "cache_not_found needs a loader (CacheBuilder::loader) and a TTL above zero",
                ));
            }
            Some(ttl) => Some(NotFound::new(ttl)),
        };
        // With fail-safe, a memory L1 keeps entries past their TTL: only the cache knows.
        let l1_judges_expiry = !clock.is_system()
            || levels[0].memory().is_none_or(|l1| !l1.expires_entries())
            || self.fail_safe.is_some();
        // A lone memory L1 changes atomically; anything else is serialized per key.
        let needs_key_locks = levels.len() > 1 || levels[0].memory().is_none();
        let inner = |me: &std::sync::Weak<Inner<K, V>>| Inner {
            me: me.clone(),
            clock,
            strict: self.strict,
            levels,
            generations: Generations::new(),
            key_locks: needs_key_locks.then(KeyLocks::new),
            telemetry,
            l1_judges_expiry,
            coalescer: self.stampede_protection.then(Coalescer::new),
            loader: self.loader,
            not_found,
            fail_safe: self.fail_safe,
            ttl_jitter: self.ttl_jitter.filter(|jitter| !jitter.is_zero()),
            load_timeouts: self.load_timeouts,
            backplane,
            distributed_lock: self.distributed_lock,
            load_tasks: std::sync::atomic::AtomicUsize::new(0),
            refresher,
            tags,
        };
        let inner = Arc::new_cyclic(inner);
        inner.listen()?;
        Ok(Cache { inner })
    }
}

/// How long a marker read from the shared tier is trusted, by default.
const DEFAULT_MARKER_TRUST: Duration = Duration::from_secs(1);

/// The same with a backplane, whose announcements keep every instance current.
const DEFAULT_MARKER_TRUST_WITH_BACKPLANE: Duration = Duration::from_secs(30);

/// A refresh must have something to refresh from and a chance to run before expiry.
fn check_refresh<K, V>(
    config: TimeToRefresh<K, V>,
    levels: &[Level<K, V>],
    cache_loads: bool,
) -> Result<TimeToRefresh<K, V>, Error> {
    let invalid = |message: String| Err(Error::new(ErrorKind::Config, message));
    if config.after.is_zero() {
        return invalid("time_to_refresh is zero: every hit would start a refresh".into());
    }
    if levels.len() < 2 && config.reload.is_none() && !cache_loads {
        return invalid(
            "time_to_refresh needs a loader (the cache's or its own) or a fallback tier to \
             refresh from"
                .into(),
        );
    }
    if let Some(ttl) = levels[0].ttl.filter(|ttl| *ttl <= config.after) {
        return invalid(format!(
            "time_to_refresh ({:?}) must be shorter than the L1 TTL ({ttl:?})",
            config.after
        ));
    }
    Ok(config)
}

impl<K, V> fmt::Debug for CacheBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("name", &self.name)
            .field("clock", &self.clock)
            .field("strict", &self.strict)
            .field("l1", &self.l1)
            .field("fallbacks", &self.fallbacks)
            .field("stampede_protection", &self.stampede_protection)
            .field("time_to_refresh", &self.time_to_refresh)
            .field("loader", &self.loader.is_some())
            .field("not_found_ttl", &self.not_found_ttl)
            .field("fail_safe", &self.fail_safe)
            .field("ttl_jitter", &self.ttl_jitter)
            .field("load_timeouts", &self.load_timeouts)
            .field("backplane", &self.backplane.is_some())
            .field("distributed_lock", &self.distributed_lock.is_some())
            .field("telemetry", &self.telemetry)
            .field("event_handler", &self.handler.is_some())
            .field("track_evictions", &self.track_evictions)
            .field("tag_marker_refresh", &self.tag_marker_refresh)
            .field("tag_marker_ttl", &self.tag_marker_ttl)
            .field("backplane_heartbeat", &self.backplane_heartbeat)
            .finish()
    }
}
