//! The stable names of every tracing event and field stratacache emits.
//!
//! Events go to the target [`TARGET`]. Tier outcomes are `DEBUG` (errors `WARN`);
//! completed operations are `DEBUG`. Filter with, for example,
//! `RUST_LOG=stratacache=debug`.

/// The tracing target of every event.
pub const TARGET: &str = "stratacache";

/// A tier held a live entry.
pub const TIER_HIT: &str = "stratacache.tier.hit";
/// A tier held nothing for the key.
pub const TIER_MISS: &str = "stratacache.tier.miss";
/// A tier held an entry past its TTL (it is removed).
pub const TIER_EXPIRED: &str = "stratacache.tier.expired";
/// A background refresh found a newer entry in this tier (or loaded one).
pub const TIER_REFRESH_HIT: &str = "stratacache.tier.refresh_hit";
/// A background refresh found nothing newer in this tier.
pub const TIER_REFRESH_MISS: &str = "stratacache.tier.refresh_miss";
/// A tier stored an entry (insert or load).
pub const TIER_INSERTED: &str = "stratacache.tier.inserted";
/// A tier stored an entry copied up from a lower tier.
pub const TIER_PROMOTED: &str = "stratacache.tier.promoted";
/// A tier's insert policy declined an entry.
pub const TIER_INSERT_REJECTED: &str = "stratacache.tier.insert_rejected";
/// A tier removed an entry on `invalidate`.
pub const TIER_INVALIDATED: &str = "stratacache.tier.invalidated";
/// A tier dropped an entry on its own (capacity or expiry).
pub const TIER_EVICTED: &str = "stratacache.tier.evicted";
/// A tier call failed.
pub const TIER_ERROR: &str = "stratacache.tier.error";
/// An operation of the cache completed.
pub const OPERATION: &str = "stratacache.operation";
/// A tier's circuit breaker opened (`WARN`), with `cache` and `tier`.
pub const CIRCUIT_OPENED: &str = "stratacache.circuit.opened";
/// A tier's circuit breaker closed again after a probe succeeded (`INFO`).
pub const CIRCUIT_CLOSED: &str = "stratacache.circuit.closed";

/// Field: the cache's name.
pub const FIELD_CACHE: &str = "cache";
/// Field: the tier's name.
pub const FIELD_TIER: &str = "tier";
/// Field: the operation (`get`, `insert`, `get_or_insert`, …).
pub const FIELD_OPERATION: &str = "operation";
/// Field: how the operation or tier call ended.
pub const FIELD_OUTCOME: &str = "outcome";
/// Field: how long it took, in nanoseconds.
pub const FIELD_DURATION_NS: &str = "duration_ns";
/// Field: whether this caller waited on another caller's load.
pub const FIELD_COALESCED: &str = "coalesced";
/// Field: the id that correlates an operation with its tier events.
pub const FIELD_REQUEST_ID: &str = "request_id";
/// Field: the error kind, on error events.
pub const FIELD_ERROR_KIND: &str = "error_kind";
