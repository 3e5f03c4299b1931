//! The shared state of a built cache. The algorithms that use it live beside the concept
//! they implement: the walk down the tiers in `walk`, the write rules in `write`, flights
//! in `coalesce`, refreshes in `refresh`.

use std::sync::{Arc, Weak};

use stratacache_tier::Clock;

use crate::backplane::Link;
use crate::coalesce::Coalescer;
use crate::distributed_lock::DistLock;
use crate::fail_safe::FailSafe;
use crate::generation::Generations;
use crate::key_lock::KeyLocks;
use crate::level::Level;
use crate::loader::DynLoader;
use crate::not_found::NotFound;
use crate::refresh::Refresher;
use crate::tags::TagMarkers;
use crate::telemetry::Telemetry;
use crate::timeouts::LoadTimeouts;

pub(crate) struct Inner<K, V> {
    /// Itself, for the background work it starts (recovery replays).
    pub(crate) me: Weak<Self>,
    pub(crate) clock: Clock,
    pub(crate) strict: bool,
    /// L1 first. Never empty.
    pub(crate) levels: Box<[Level<K, V>]>,
    pub(crate) generations: Generations,
    /// Per-key serialization of changes below L1; `None` for a cache whose only tier is
    /// a memory L1, where every change is atomic already.
    pub(crate) key_locks: Option<KeyLocks<K>>,
    pub(crate) telemetry: Arc<Telemetry>,
    /// Whether an L1 hit must be checked against the clock. A memory L1 on the system
    /// clock, in a cache on the system clock, never returns an entry past its deadline
    /// (moka checks the deadline it was handed at insertion on every read), so the hit
    /// path skips a second clock read there. Any other clock is always consulted.
    pub(crate) l1_judges_expiry: bool,
    pub(crate) coalescer: Option<Coalescer<K, V>>,
    /// What `get` loads through on a miss, when set.
    pub(crate) loader: Option<DynLoader<K, V>>,
    /// The loader's "not found" answers, remembered when the builder asked for it.
    pub(crate) not_found: Option<NotFound<K>>,
    /// How much shorter than its TTL a stored copy may live, at random.
    pub(crate) ttl_jitter: Option<std::time::Duration>,
    /// Soft and hard limits on loads, when set.
    pub(crate) load_timeouts: Option<LoadTimeouts>,
    /// Loads running as tasks that may outlive their callers (bounded).
    pub(crate) load_tasks: std::sync::atomic::AtomicUsize,
    /// The channel to the cache's other instances, when set.
    pub(crate) backplane: Option<Link<K>>,
    /// The lock instances take so that one of them loads a key, when set.
    pub(crate) distributed_lock: Option<DistLock<K>>,
    /// Serving stale values when the source fails, when set.
    pub(crate) fail_safe: Option<FailSafe>,
    pub(crate) refresher: Option<Refresher<K, V>>,
    /// What this instance knows of tag invalidations.
    pub(crate) tags: TagMarkers,
}
