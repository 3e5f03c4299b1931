//! Counters (and, with the tracing events, everything a cache reports about itself).

mod stats;

pub(crate) use stats::{CacheCounters, TierCounters, bump};
pub use stats::{CacheStats, TierStats};
