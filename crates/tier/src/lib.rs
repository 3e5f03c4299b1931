//! The contract every stratacache tier implements.
//!
//! A tier stores [`CacheEntry`] values under keys and answers `get`, `insert`,
//! `invalidate` and `clear` through the [`CacheTier`] trait. Tiers are deliberately
//! small: expiry checks, promotion, refresh and coalescing live once, in the
//! `stratacache` facade, for every kind of tier.
//!
//! This crate also holds what all tiers share:
//!
//! - [`CacheEntry`]: a value with the time it was produced and its time-to-live.
//! - [`Error`] and [`ErrorKind`]: one error type whose kind callers can match.
//! - [`Clock`] and [`FrozenClock`]: the injectable clock every time-based decision reads.
//! - [`Backplane`]: the publish/subscribe contract instances of a cache share.
//! - [`DistributedLock`]: the lock instances take so that one of them loads a key.
//! - [`Circuit`]: the circuit breaker's state machine, shared by the facade and the
//!   service crate.
//! - [`ByteStore`]: the bytes-level contract of remote stores (Redis, memcached), which
//!   the facade's codec boundary turns into a typed tier.
//! - [`mock::MockTier`] (feature `test-util`): a tier that records calls and injects faults.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use stratacache_tier::{CacheEntry, FrozenClock};
//!
//! let clock = FrozenClock::new();
//! let entry = CacheEntry::new("value", clock.now(), Some(Duration::from_secs(60)));
//! clock.advance(Duration::from_secs(45));
//! assert_eq!(entry.remaining_ttl(clock.now()), Some(Duration::from_secs(15)));
//! clock.advance(Duration::from_secs(15));
//! assert!(entry.is_expired(clock.now()));
//! ```
//!
//! # Features
//!
//! | feature     | enables                                                        |
//! |-------------|----------------------------------------------------------------|
//! | `test-util` | [`mock::MockTier`], a tier with fault and latency injection     |

mod backplane;
mod circuit;
mod clock;
mod entry;
mod error;
mod lock;
mod store;
mod tags;
mod tier;

#[cfg(feature = "test-util")]
pub mod mock;

pub use backplane::{Backplane, BoxFuture, Subscription};
pub use circuit::{Admission, Circuit, CircuitState, Pass};
pub use clock::{Clock, FrozenClock};
pub use entry::{CacheEntry, LATE_WRITE_HORIZON, MAX_CLOCK_SKEW};
pub use error::{BoxError, Error, ErrorKind};
pub use lock::DistributedLock;
pub use store::{ByteStore, sorts_within};
pub use tags::Tags;
pub use tier::{CacheTier, Lookup};
