use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use stratacache_tier::ErrorKind;

/// An operation of the cache, as events name it.
///
/// ```
/// use stratacache::telemetry::Operation;
///
/// assert_eq!(Operation::GetOrInsert.as_str(), "get_or_insert");
/// assert_eq!(Operation::Invalidate.to_string(), "invalidate");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// [`Cache::get`](crate::Cache::get) and [`Cache::get_entry`](crate::Cache::get_entry).
    Get,
    /// [`Cache::contains`](crate::Cache::contains).
    Contains,
    /// [`Cache::insert`](crate::Cache::insert) and its variants.
    Insert,
    /// [`Cache::invalidate`](crate::Cache::invalidate).
    Invalidate,
    /// [`Cache::clear`](crate::Cache::clear).
    Clear,
    /// [`Cache::get_or_insert`](crate::Cache::get_or_insert).
    GetOrInsert,
    /// [`Cache::try_get_or_insert`](crate::Cache::try_get_or_insert).
    TryGetOrInsert,
    /// [`Cache::optionally_get_or_insert`](crate::Cache::optionally_get_or_insert).
    OptionallyGetOrInsert,
    /// [`Cache::inspect`](crate::Cache::inspect).
    Inspect,
    /// [`Cache::get_many`](crate::Cache::get_many).
    GetMany,
    /// [`Cache::get_or_insert_many`](crate::Cache::get_or_insert_many).
    GetOrInsertMany,
    /// [`Cache::insert_many`](crate::Cache::insert_many).
    InsertMany,
    /// [`Cache::invalidate_many`](crate::Cache::invalidate_many).
    InvalidateMany,
    /// A background refresh of a stale entry.
    Refresh,
    /// A background replay of changes a tier could not take.
    Recovery,
    /// Housekeeping of a tier on its own (evictions).
    Housekeeping,
}

impl Operation {
    /// The stable lower-case name used in tracing fields.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Contains => "contains",
            Self::Insert => "insert",
            Self::Invalidate => "invalidate",
            Self::Clear => "clear",
            Self::GetOrInsert => "get_or_insert",
            Self::TryGetOrInsert => "try_get_or_insert",
            Self::OptionallyGetOrInsert => "optionally_get_or_insert",
            Self::Inspect => "inspect",
            Self::GetMany => "get_many",
            Self::GetOrInsertMany => "get_or_insert_many",
            Self::InsertMany => "insert_many",
            Self::InvalidateMany => "invalidate_many",
            Self::Refresh => "refresh",
            Self::Recovery => "recovery",
            Self::Housekeeping => "housekeeping",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened at one tier.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use stratacache::telemetry::TierOutcome;
/// use stratacache::{Cache, CacheEvent, Fallback};
///
/// # futures::executor::block_on(async {
/// let outcomes = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&outcomes);
/// let cache: Cache<u64, &str> = Cache::builder()
///     .fallback(Fallback::memory(|tier| tier))
///     .event_handler(move |event| {
///         if let CacheEvent::Tier(event) = event {
///             sink.lock().unwrap().push((event.tier.to_string(), event.outcome));
///         }
///     })
///     .build()?;
/// cache.insert(1, "one").await?;
/// // Writes go to the lowest tier first.
/// let inserted = |tier: &str| (tier.to_string(), TierOutcome::Inserted);
/// assert_eq!(*outcomes.lock().unwrap(), [inserted("l2"), inserted("l1")]);
/// assert_eq!(TierOutcome::Inserted.as_str(), "inserted");
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TierOutcome {
    /// A live entry was found.
    Hit,
    /// Nothing was found.
    Miss,
    /// An entry past its TTL was found (and removed).
    Expired,
    /// A refresh found a newer entry here, or stored a reloaded one.
    RefreshHit,
    /// A refresh found nothing newer here.
    RefreshMiss,
    /// An entry was stored.
    Inserted,
    /// An entry from a lower tier was copied here.
    Promoted,
    /// The insert policy declined an entry.
    InsertRejected,
    /// An entry was removed on request.
    Invalidated,
    /// The tier dropped an entry on its own.
    Evicted,
    /// The tier call failed.
    Error(ErrorKind),
}

impl TierOutcome {
    /// The stable lower-case name used in tracing fields.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Expired => "expired",
            Self::RefreshHit => "refresh_hit",
            Self::RefreshMiss => "refresh_miss",
            Self::Inserted => "inserted",
            Self::Promoted => "promoted",
            Self::InsertRejected => "insert_rejected",
            Self::Invalidated => "invalidated",
            Self::Evicted => "evicted",
            Self::Error(_) => "error",
        }
    }
}

/// How an operation ended.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use stratacache::telemetry::OperationOutcome;
/// use stratacache::{Cache, CacheEvent};
///
/// # futures::executor::block_on(async {
/// let outcomes = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&outcomes);
/// let cache: Cache<u64, u64> = Cache::builder()
///     .event_handler(move |event| {
///         if let CacheEvent::Operation(event) = event {
///             sink.lock().unwrap().push(event.outcome);
///         }
///     })
///     .build()?;
/// cache.get_or_insert(&1, || async { 10 }).await?;
/// cache.get_or_insert(&1, || async { 10 }).await?;
/// cache.optionally_get_or_insert(&2, || async { None }).await?;
/// use OperationOutcome::{Hit, Loaded, LoadedNothing};
/// assert_eq!(*outcomes.lock().unwrap(), [Loaded, Hit, LoadedNothing]);
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperationOutcome {
    /// A tier had the value.
    Hit,
    /// No tier had it (and no loader ran, or the lookup was all that was asked).
    Miss,
    /// The loader produced the value.
    Loaded,
    /// The loader found nothing.
    LoadedNothing,
    /// The source failed, and fail-safe served a value past its TTL.
    Stale,
    /// A write, invalidation or clear finished.
    Done,
    /// The operation failed.
    Error(ErrorKind),
}

impl OperationOutcome {
    /// The stable lower-case name used in tracing fields.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Loaded => "loaded",
            Self::LoadedNothing => "loaded_nothing",
            Self::Stale => "stale",
            Self::Done => "done",
            Self::Error(_) => "error",
        }
    }
}

/// Something that happened at one tier during an operation.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use stratacache::telemetry::TierEvent;
/// use stratacache::telemetry::TierOutcome::{Expired, Hit, Promoted};
/// use stratacache::{Cache, CacheEvent, Fallback, FrozenClock};
///
/// # futures::executor::block_on(async {
/// let (clock, seen) = (FrozenClock::new(), Arc::new(Mutex::new(Vec::new())));
/// let sink = Arc::clone(&seen);
/// let cache: Cache<u64, &str> = Cache::builder()
///     .clock(&clock)
///     .ttl(Duration::from_secs(10))
///     .fallback(Fallback::memory(|tier| tier).name("shared"))
///     .event_handler(move |event| {
///         if let CacheEvent::Tier(TierEvent { tier, outcome, .. }) = event {
///             sink.lock().unwrap().push((tier.to_string(), *outcome));
///         }
///     })
///     .build()?;
/// cache.insert(1, "one").await?;
/// clock.advance(Duration::from_secs(10));
/// seen.lock().unwrap().clear();
/// cache.get(&1).await?; // L1's copy expired; L2 has it and promotes it
/// let at = |tier: &str, outcome| (tier.to_string(), outcome);
/// let expected = [at("l1", Expired), at("shared", Hit), at("l1", Promoted)];
/// assert_eq!(*seen.lock().unwrap(), expected);
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierEvent {
    /// Correlates the event with its [`OperationEvent`]; 0 for housekeeping.
    pub request_id: u64,
    /// The cache's name.
    pub cache: Arc<str>,
    /// The tier's name.
    pub tier: Arc<str>,
    /// The operation the tier call was part of.
    pub operation: Operation,
    /// What happened.
    pub outcome: TierOutcome,
    /// How long the tier call took, when it was a call.
    pub duration: Option<Duration>,
}

/// A completed operation.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use stratacache::telemetry::{Operation, OperationEvent, OperationOutcome};
/// use stratacache::{Cache, CacheEvent};
///
/// # futures::executor::block_on(async {
/// let operations = Arc::new(Mutex::new(Vec::<OperationEvent>::new()));
/// let sink = Arc::clone(&operations);
/// let cache: Cache<u64, u64> = Cache::builder()
///     .name("users")
///     .event_handler(move |event| {
///         if let CacheEvent::Operation(event) = event {
///             sink.lock().unwrap().push(event.clone());
///         }
///     })
///     .build()?;
/// cache.get(&1).await?;
/// let operations = operations.lock().unwrap();
/// let get = &operations[0];
/// assert_eq!((&*get.cache, get.operation), ("users", Operation::Get));
/// assert_eq!(get.outcome, OperationOutcome::Miss);
/// assert!(!get.coalesced, "a caller alone is never coalesced");
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationEvent {
    /// Correlates the operation with its [`TierEvent`]s.
    pub request_id: u64,
    /// The cache's name.
    pub cache: Arc<str>,
    /// The operation.
    pub operation: Operation,
    /// How it ended.
    pub outcome: OperationOutcome,
    /// How long it took.
    pub duration: Duration,
    /// Whether this caller waited on another caller's lookup or load instead of running
    /// its own. A caller alone is never coalesced.
    pub coalesced: bool,
}

/// What a cache's [event handler](crate::CacheBuilder::event_handler) receives.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use stratacache::{Cache, CacheEvent, Fallback};
///
/// # futures::executor::block_on(async {
/// let events = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&events);
/// let cache: Cache<u64, u64> = Cache::builder()
///     .fallback(Fallback::memory(|tier| tier))
///     .event_handler(move |event: &CacheEvent| sink.lock().unwrap().push(event.clone()))
///     .build()?;
/// cache.get(&1).await?;
/// let events = events.lock().unwrap();
/// // One event per tier asked (L1, then L2), then the operation's own, last.
/// assert_eq!(events.len(), 3);
/// assert!(matches!(events[2], CacheEvent::Operation(_)));
/// assert!(events.iter().all(|event| event.request_id() == events[0].request_id()));
/// # Ok::<(), stratacache::Error>(())
/// # }).unwrap();
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheEvent {
    /// Something happened at one tier.
    Tier(TierEvent),
    /// An operation completed.
    Operation(OperationEvent),
}

impl CacheEvent {
    /// The request id of the event.
    #[must_use]
    pub fn request_id(&self) -> u64 {
        match self {
            Self::Tier(event) => event.request_id,
            Self::Operation(event) => event.request_id,
        }
    }
}
