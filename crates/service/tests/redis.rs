//! Timeout and retry around a real Redis tier: the cache keeps answering while Redis
//! is stopped, and uses it again after it restarts.

use std::time::{Duration, Instant};

use stratacache::{Cache, Fallback, FrozenClock, Remote};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_service::{CacheRetry, ServiceTier, TierService};
use stratacache_testkit::RedisServer;
use tower::ServiceBuilder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_retry_keep_a_cache_answering_through_a_redis_outage() {
    let mut server = RedisServer::start().unwrap();
    let clock = FrozenClock::new();
    let redis = RedisStore::new(RedisConfig::from_url(server.url()).namespace("tower")).unwrap();
    let typed = Remote::new(redis).into_tier::<u64, String>();
    let cache: Cache<u64, String> = Cache::builder()
        .clock(&clock)
        .ttl(Duration::from_secs(60))
        .fallback(Fallback::tier(ServiceTier::new(
            ServiceBuilder::new()
                .retry(
                    CacheRetry::new(2).backoff(Duration::from_millis(5), Duration::from_millis(20)),
                )
                .timeout(Duration::from_millis(100))
                .service(TierService::new(typed)),
        )))
        .build()
        .unwrap();
    cache.insert(1, "cached".into()).await.unwrap();

    server.stop();
    let started = Instant::now();
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("cached"),
        "L1 answers"
    );
    let loaded = cache
        .get_or_insert(&2, || async { "from the database".to_string() })
        .await
        .unwrap();
    assert_eq!(loaded, "from the database", "the loader answers");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(cache.stats().tiers[1].errors >= 1);

    server.restart().unwrap();
    let mut back = false;
    for _ in 0..50 {
        cache.insert(3, "after".into()).await.unwrap();
        cache.invalidate(&99).await.unwrap();
        let fresh =
            RedisStore::new(RedisConfig::from_url(server.url()).namespace("tower")).unwrap();
        let reader: Cache<u64, String> = Cache::builder()
            .clock(&clock)
            .fallback(Fallback::remote(Remote::new(fresh)))
            .build()
            .unwrap();
        if reader.get(&3).await.unwrap().is_some() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // reconnect back-off is real time
    }
    assert!(back, "the same cache writes to Redis again once it is back");
}
