//! A multi-tier cache for Rust services.
//!
//! `stratacache` puts one [`Cache<K, V>`] between application code and its database:
//! an in-process L1 (moka), any number of fallback tiers below it (another memory tier,
//! Redis, memcached, any [`CacheTier`]), and a loader for what no tier holds.
//!
//! ```
//! use std::time::Duration;
//! use stratacache::{Cache, Fallback};
//!
//! # futures::executor::block_on(async {
//! let cache: Cache<String, String> = Cache::builder()
//!     .name("profiles")
//!     .memory(|l1| l1.max_capacity(10_000))
//!     .ttl(Duration::from_secs(60))
//!     .fallback(Fallback::memory(|tier| tier).ttl(Duration::from_secs(3_600)))
//!     .build()?;
//!
//! let profile = cache
//!     .get_or_insert("alice", || async { "Alice from the database".to_string() })
//!     .await?;
//! assert_eq!(profile, "Alice from the database");
//! assert_eq!(cache.get("alice").await?.as_deref(), Some("Alice from the database"));
//! # Ok::<(), stratacache::Error>(())
//! # }).unwrap();
//! ```
//!
//! # How a lookup goes
//!
//! 1. L1: a hit in a memory L1 is answered synchronously, without allocating.
//! 2. Each [`Fallback`] tier in turn. A hit is promoted into the tiers above it (see
//!    [`PromotionPolicy`]), keeping the time its value was produced.
//! 3. The loader (the cache's, or the call's). Its value is written to every tier,
//!    lowest first. With fail-safe, a failed load answers with the last value.
//!
//! Expiry is judged with the cache's [`Clock`] at every step; tier failures are counted
//! and read as misses unless the cache is [`strict`](CacheBuilder::strict).
//!
//! # Which door do I use
//!
//! | For | Use |
//! |-----|-----|
//! | L1 in memory | [`CacheBuilder::memory`]`(configure)` |
//! | an L1 you built | [`CacheBuilder::tier`] |
//! | another memory tier below | [`Fallback::memory`] |
//! | Redis below (`serialize`) | `Fallback::remote(stratacache_redis::RedisStore)` |
//! | memcached below (`serialize`) | `Fallback::remote(stratacache_memcached::MemcachedStore)` |
//! | any [`CacheTier`] below | [`Fallback::tier`] |
//! | tower layers (timeout, retry, limit) on a tier | `stratacache_service::ServiceTier::layered` |
//! | a repository the cache reads through | [`CacheBuilder::loader`] ([`Loader`]) |
//! | a loader per call | [`get_or_insert`], [`try_get_or_insert`], [`optionally_get_or_insert`] |
//! | many keys at once | [`Cache::get_many`], [`Cache::get_or_insert_many`], [`Cache::insert_many`], [`Cache::invalidate_many`] |
//! | per-call strategy, skipped tiers, TTL | [`Cache::with`]`(`[`Options`]`)` |
//! | "not found" remembered | [`CacheBuilder::cache_not_found`] |
//! | a tier that is down skipped at once | [`Fallback::circuit_breaker`] |
//! | writes a dead tier missed, replayed | [`Fallback::auto_recovery`] (on for remote tiers) |
//! | the last value when the source fails | [`CacheBuilder::fail_safe`] ([`FailSafe`]) |
//! | slow loads answered from stale, or cut | [`CacheBuilder::load_timeouts`] ([`LoadTimeouts`]) |
//! | expiry spread across instances | [`CacheBuilder::ttl_jitter`], [`TimeToRefresh::jitter`] |
//! | instances that drop each other's stale L1 copies (`serialize`) | `CacheBuilder::backplane(stratacache_redis::RedisBackplane)` |
//! | background refresh | [`CacheBuilder::time_to_refresh`] |
//! | one load for concurrent misses (coalescing) | [`stampede_protection(true)`][stampede] |
//! | tier failures as errors, not misses | [`strict(true)`](CacheBuilder::strict) |
//! | tests that move time | [`clock`](CacheBuilder::clock)`(`[`FrozenClock`]`)` |
//! | fault injection in tests | `mock::MockTier`, `mock::MockBackplane` (`test-util`) |
//!
//! A name in parentheses is a [feature](#features) to switch on.
//!
//! [`get_or_insert`]: Cache::get_or_insert
//! [`try_get_or_insert`]: Cache::try_get_or_insert
//! [`optionally_get_or_insert`]: Cache::optionally_get_or_insert
//! [stampede]: CacheBuilder::stampede_protection
//!
//! # Features
//!
//! | feature     | enables                                                         |
//! |-------------|-----------------------------------------------------------------|
//! | `test-util` | [`mock::MockTier`] for fault injection in your own tests        |
//! | `serialize` | the codec boundary: `Remote`, `Fallback::remote`, postcard codec |

mod backplane;
mod batch;
mod breaker;
mod builder;
mod cache;
mod coalesce;
#[cfg(feature = "serialize")]
mod codec;
mod distributed_lock;
mod erased;
mod fail_safe;
mod fallback;
mod first_look;
mod flag;
mod generation;
mod inner;
mod key_lock;
mod level;
mod loader;
#[cfg(feature = "macros")]
#[doc(hidden)]
pub mod __private {
    //! What `#[cached]` expands to; not a public API.
    pub use crate::macro_support::*;
}
#[cfg(feature = "macros")]
mod macro_support;
mod not_found;
mod options;
mod outcome;
mod policy;
mod recovery;
mod refresh;
mod sharded;
mod spec;
mod tags;
pub mod telemetry;
mod tier_impl;
mod timeouts;
mod walk;
mod write;

pub use builder::CacheBuilder;
pub use cache::{Cache, EntryInfo, WithOptions};
#[cfg(feature = "compression")]
pub use codec::Compression;
#[cfg(feature = "encryption")]
pub use codec::Encryption;
#[cfg(feature = "serialize")]
pub use codec::{Codec, Postcard, Remote, SerializedTier};
pub use fail_safe::FailSafe;
pub use fallback::Fallback;
pub use loader::{LOAD_MANY_CONCURRENCY, Loaded, Loader};
pub use options::{Options, Strategy};
pub use outcome::{TierWrite, TierWriteResult, WriteOutcome};
pub use policy::{InsertPolicy, PromotionPolicy};
pub use refresh::{RefreshTask, TimeToRefresh};
#[cfg(feature = "macros")]
pub use stratacache_macros::cached;
pub use stratacache_memory::{EvictionCause, MemoryTier, MemoryTierBuilder};
#[cfg(feature = "test-util")]
pub use stratacache_tier::mock;
pub use stratacache_tier::{
    Backplane, BoxError, ByteStore, CacheEntry, CacheTier, CircuitState, Clock, DistributedLock,
    Error, ErrorKind, FrozenClock, Lookup, Subscription, Tags,
};
pub use telemetry::{CacheEvent, CacheStats, TierStats};
pub use timeouts::LoadTimeouts;

/// The README's code blocks, run as doctests so that the first code a newcomer copies
/// always compiles and runs.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
