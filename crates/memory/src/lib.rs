//! The in-process stratacache tier, on [moka](https://docs.rs/moka).
//!
//! [`MemoryTier`] keeps typed [`CacheEntry`](stratacache_tier::CacheEntry) values in a
//! concurrent moka cache:
//!
//! - capacity by entry count, or by a weigher (bytes, say) with [`MemoryTierBuilder::weigher`];
//! - a tier-wide time-to-live and time-to-idle;
//! - per-entry expiry from each entry's own TTL, judged with the tier's [`Clock`], so that
//!   expired entries are reclaimed by moka, not only hidden;
//! - an eviction listener that sees key, entry and [`EvictionCause`].
//!
//! A lookup never awaits: [`CacheTier::get_now`](stratacache_tier::CacheTier::get_now)
//! always answers, and [`MemoryTier::lookup`] takes a borrowed key (`&str` for `String`).
//!
//! ```
//! use std::time::Duration;
//! use stratacache_memory::MemoryTier;
//! use stratacache_tier::{CacheEntry, CacheTier, FrozenClock};
//!
//! # futures::executor::block_on(async {
//! let clock = FrozenClock::new();
//! let tier = MemoryTier::<String, u64>::builder()
//!     .max_capacity(10_000)
//!     .clock(clock.clock())
//!     .build();
//! tier.insert("a".to_string(), CacheEntry::new(1, clock.now(), Some(Duration::from_secs(5))))
//!     .await?;
//! assert_eq!(tier.lookup("a").map(|e| *e.value()), Some(1));
//! # Ok::<(), stratacache_tier::Error>(())
//! # }).unwrap();
//! ```

mod builder;
mod eviction;
mod expiry;
mod tier;

pub use builder::MemoryTierBuilder;
pub use eviction::EvictionCause;
pub use stratacache_tier::Clock;
pub use tier::MemoryTier;
