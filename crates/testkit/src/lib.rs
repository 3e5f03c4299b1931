#![doc = include_str!("../README.md")]

mod error;
mod memcached;
mod process;
mod proxy;
mod redis;
mod wait;

pub use error::Error;
pub use memcached::MemcachedServer;
pub use proxy::TcpProxy;
pub use redis::{RedisCluster, RedisServer, RedisTlsServer};
pub use wait::until;

/// How many cases each fuzz target (a property test over arbitrary bytes) runs:
/// `STRATACACHE_FUZZ_CASES`, or 2 000, which keeps CI bounded. Longer runs:
/// `STRATACACHE_FUZZ_CASES=1000000 cargo test fuzz`.
#[must_use]
pub fn fuzz_cases() -> u32 {
    std::env::var("STRATACACHE_FUZZ_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(2_000)
}
