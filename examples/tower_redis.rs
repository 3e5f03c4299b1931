//! A microservice-style cache with Tower retry and timeout composed around Redis as L2:
//! `REDIS_URL=redis://127.0.0.1:6379/ cargo run --example tower_redis`.
//!
//! Without `REDIS_URL` the same stack wraps an in-memory L2, so the example runs anywhere.

use std::time::Duration;

use stratacache::{Cache, CacheTier, Fallback, MemoryTier, Remote};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_service::{CacheRetry, ServiceTier};
use tower::ServiceBuilder;

/// Retry (reads only, twice, backing off) around a 50 ms timeout per attempt, and at most
/// 256 calls in flight.
fn resilient<T: CacheTier<u64, String>>(storage: T) -> Fallback<u64, String> {
    let layers = ServiceBuilder::new()
        .retry(CacheRetry::new(2).backoff(Duration::from_millis(5), Duration::from_millis(50)))
        .timeout(Duration::from_millis(50))
        .concurrency_limit(256);
    Fallback::tier(ServiceTier::layered(storage, layers)).ttl(Duration::from_secs(600))
}

#[tokio::main]
async fn main() -> Result<(), stratacache::Error> {
    let l2 = match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("L2: Redis at {url}, behind retry + timeout + concurrency limit");
            let redis = RedisStore::new(RedisConfig::from_url(url).namespace("tower-orders"))?;
            resilient(Remote::new(redis).into_tier::<u64, String>()).name("redis")
        }
        Err(_) => {
            println!("L2: in memory, behind the same layers (set REDIS_URL to use Redis)");
            resilient(MemoryTier::<u64, String>::new(100_000)).name("memory-l2")
        }
    };
    let cache: Cache<u64, String> = Cache::builder()
        .name("orders")
        .memory(|l1| l1.max_capacity(10_000))
        .ttl(Duration::from_secs(30))
        .stampede_protection(true)
        .fallback(l2)
        .build()?;

    for id in [1, 2, 1, 3, 2] {
        let order = cache
            .get_or_insert(
                &id,
                || async move { format!("order #{id} from the database") },
            )
            .await?;
        println!("order {id}: {order}");
    }
    let stats = cache.stats();
    for tier in &stats.tiers {
        println!(
            "tier {:<9} hits {} misses {} errors {}",
            tier.name, tier.hits, tier.misses, tier.errors
        );
    }
    println!("loads {}", stats.loads);
    cache.clear().await?;
    Ok(())
}
