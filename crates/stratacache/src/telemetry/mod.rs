//! What a cache reports about itself: counters, tracing events and typed events.
//!
//! - **Counters**: [`Cache::stats`](crate::Cache::stats) returns a [`CacheStats`]
//!   snapshot, one [`TierStats`] per tier.
//! - **Tracing**: events on the target [`names::TARGET`], one per tier outcome and one
//!   per completed operation, with the names and fields listed in [`names`].
//! - **Typed events**: [`CacheBuilder::event_handler`](crate::CacheBuilder::event_handler)
//!   receives every [`CacheEvent`], with a request id correlating an operation and its
//!   tier events.
//!
//! With no subscriber listening at `DEBUG` and no handler, an operation costs a few
//! counter bumps in cells of the calling thread's own: no clock read, no allocation,
//! no locked instruction.

mod counters;
mod event;
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
mod figures;
#[cfg(feature = "metrics")]
mod metrics;
#[cfg(feature = "opentelemetry")]
mod otel;

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
pub(crate) use figures::LoadTimer;
pub mod names;
mod recorder;
mod stats;

pub use event::{CacheEvent, Operation, OperationEvent, OperationOutcome, TierEvent, TierOutcome};
pub(crate) use recorder::{Handler, Op, Telemetry};
pub(crate) use stats::{CacheCounter, TierCounters};
pub use stats::{CacheStats, TierStats};
