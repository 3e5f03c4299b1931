//! The in-process stratacache tier, on [moka](https://docs.rs/moka) (or quick_cache's
//! S3-FIFO, feature `quick_cache`).
//!
//! [`MemoryTier`] keeps typed [`CacheEntry`](stratacache_tier::CacheEntry) values in a
//! concurrent moka cache:
//!
//! - capacity by entry count, or by a weigher (bytes, say) with [`MemoryTierBuilder::weigher`];
//! - per-entry expiry: each insert says how long to keep its entry (the cache measured
//!   it with its own clock), and moka reclaims the entry then, not only hides it;
//! - an eviction listener that sees key, entry and [`EvictionCause`];
//! - a second engine, quick_cache's S3-FIFO (feature `quick_cache`,
//!   [`MemoryTierBuilder::s3_fifo`]): several times cheaper hits, no timer of its own.
//!
//! The tier reads no clock: a cache's clock is the only one. A lookup never awaits, and
//! [`MemoryTier::lookup`] takes a borrowed key (`&str` for `String`).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use stratacache_memory::MemoryTier;
//! use stratacache_tier::{CacheEntry, CacheTier};
//!
//! # futures::executor::block_on(async {
//! let tier = MemoryTier::<String, u64>::builder().max_capacity(10_000).build();
//! let ttl = Some(Duration::from_secs(5));
//! tier.insert("a".to_string(), CacheEntry::new(1, SystemTime::now(), ttl), ttl)
//!     .await?;
//! assert_eq!(tier.lookup("a").map(|e| *e.value()), Some(1));
//! # Ok::<(), stratacache_tier::Error>(())
//! # }).unwrap();
//! ```

mod builder;
mod eviction;
mod expiry;
#[cfg(feature = "quick_cache")]
mod s3fifo;
mod tier;

pub use builder::MemoryTierBuilder;
pub use eviction::EvictionCause;
pub use tier::MemoryTier;
