//! Tower adapters for stratacache, both ways.
//!
//! - [`ServiceTier`]: any `tower::Service<CacheRequest<K, V>>` becomes a
//!   [`CacheTier`](stratacache_tier::CacheTier), so timeout, retry, rate-limit,
//!   concurrency-limit and circuit-breaker layers compose around storage.
//! - [`TierService`]: any `CacheTier` (a memory tier, a Redis tier behind the codec
//!   boundary, or a whole `stratacache::Cache`) becomes a `tower::Service`.
//! - [`CacheRetry`]: a retry policy fit for caches: reads are retried on unavailable and
//!   timeout errors, a bounded number of times with exponential backoff; codec and
//!   rejected errors, and writes, never are.
//! - [`CircuitBreakerLayer`]: after some timeouts in a row, a tier is skipped for a
//!   cool-down (each call answers at once), then one probe decides.
//!
//! ```
//! use std::time::Duration;
//! use stratacache::{Cache, Fallback, MemoryTier};
//! use stratacache_service::{CacheRetry, ServiceTier};
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), stratacache::Error> {
//! let storage = MemoryTier::<u64, String>::new(1_000); // in production: Redis, memcached
//! let layers = ServiceBuilder::new()
//!     .retry(CacheRetry::new(2))
//!     .timeout(Duration::from_millis(50));
//! let cache: Cache<u64, String> = Cache::builder()
//!     .fallback(Fallback::tier(ServiceTier::layered(storage, layers)))
//!     .build()?;
//! cache.insert(1, "one".into()).await?;
//! # Ok(()) }
//! ```

mod breaker;
mod error;
mod request;
mod retry;
mod service_tier;
mod tier_service;

pub use breaker::{CircuitBreaker, CircuitBreakerLayer};
pub use request::{CacheRequest, CacheResponse};
pub use retry::CacheRetry;
pub use service_tier::ServiceTier;
pub use tier_service::{TierFuture, TierService};
