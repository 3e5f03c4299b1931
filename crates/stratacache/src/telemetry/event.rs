use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use stratacache_tier::ErrorKind;

/// An operation of the cache, as events name it.
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
    /// A background refresh of a stale entry.
    Refresh,
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
            Self::Refresh => "refresh",
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
            Self::Done => "done",
            Self::Error(_) => "error",
        }
    }
}

/// Something that happened at one tier during an operation.
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
