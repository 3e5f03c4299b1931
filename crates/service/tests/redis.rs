//! Timeout and retry around a real Redis tier: the cache keeps answering while Redis
//! is stopped, and uses it again after it restarts.

use std::time::{Duration, Instant};

use stratacache::{ByteStore, Cache, Fallback, FrozenClock, Remote, TimeToRefresh};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_service::{CacheRetry, CircuitBreakerLayer, ServiceTier, TierService};
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

/// The one-clock promise: a `FrozenClock` cache over Redis behind tower timeout and retry
/// expires and refreshes by the frozen clock alone. No clock is named anywhere but on the
/// cache builder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_clock_cache_over_redis_behind_tower_expires_and_refreshes_by_that_clock() {
    let server = RedisServer::start().unwrap();
    let clock = FrozenClock::new();
    let store = || RedisStore::new(RedisConfig::from_url(server.url()).namespace("frozen"));
    let layers = ServiceBuilder::new()
        .retry(CacheRetry::new(2).backoff(Duration::from_millis(5), Duration::from_millis(20)))
        .timeout(Duration::from_millis(500));
    let refreshed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&refreshed);
    let cache: Cache<u64, String> = Cache::builder()
        .clock(&clock)
        .ttl(Duration::from_secs(30))
        .time_to_refresh(
            TimeToRefresh::new(Duration::from_secs(20)).loader(move |key: u64| {
                let counter = std::sync::Arc::clone(&counter);
                async move {
                    let round = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    Ok::<_, std::io::Error>(Some(format!("{key} refreshed #{round}")))
                }
            }),
        )
        .fallback(
            Fallback::tier(ServiceTier::layered(
                Remote::new(store().unwrap()).into_tier(),
                layers,
            ))
            .ttl(Duration::from_secs(120)),
        )
        .build()
        .unwrap();
    cache.insert(1, "first".into()).await.unwrap();
    // Redis was handed the remaining TTL measured with the frozen clock: 120 s.
    let server_ttl = store().unwrap().server_ttl("AQ").await.unwrap().unwrap();
    assert!(
        server_ttl > Duration::from_secs(119) && server_ttl <= Duration::from_secs(120),
        "{server_ttl:?}"
    );

    // Nothing expires while the frozen clock stands still, however long real time runs.
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("first"));

    // 20 s on the frozen clock: stale, served at once, refreshed in the background.
    clock.advance(Duration::from_secs(20));
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("first"));
    let mut seen = None;
    for _ in 0..1_000 {
        seen = cache.get(&1).await.unwrap();
        if seen.as_deref() == Some("1 refreshed #1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // the refresh runs on tokio
    }
    assert_eq!(seen.as_deref(), Some("1 refreshed #1"));
    assert_eq!(refreshed.load(std::sync::atomic::Ordering::SeqCst), 1);

    // 150 s more on the frozen clock: past every TTL (the refreshed value's 30 s in L1,
    // 120 s in Redis), so the entry is gone although Redis itself still holds it.
    clock.advance(Duration::from_secs(150));
    let direct = store().unwrap();
    assert!(
        direct.get("AQ").await.unwrap().is_some(),
        "Redis's own TTL is real time"
    );
    assert_eq!(
        cache.get(&1).await.unwrap(),
        None,
        "expired by the frozen clock"
    );
}

/// Redis killed: without a breaker every L1 miss waits out the timeout; with one, after a
/// few failures the tier is skipped and misses answer at once, until Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_breaker_skips_a_dead_redis_at_once_and_uses_it_again_when_back() {
    let mut server = RedisServer::start().unwrap();
    let store = RedisStore::new(RedisConfig::from_url(server.url()).namespace("breaker")).unwrap();
    let layers = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(3, Duration::from_millis(500)))
        .timeout(Duration::from_millis(100));
    let cache: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::tier(ServiceTier::layered(
            Remote::new(store).into_tier(),
            layers,
        )))
        .build()
        .unwrap();
    cache.insert(1, "before".into()).await.unwrap();

    server.stop();
    let mut slowest_once_open = Duration::ZERO;
    for id in 0..50_u64 {
        let started = Instant::now();
        assert_eq!(cache.get(&(1_000 + id)).await.unwrap(), None);
        if id >= 3 {
            slowest_once_open = slowest_once_open.max(started.elapsed());
        }
    }
    assert!(
        slowest_once_open < Duration::from_millis(20),
        "with the circuit open a miss answers at once: {slowest_once_open:?}"
    );
    let l2 = &cache.stats().tiers[1];
    assert_eq!(l2.errors + l2.short_circuits, 50);
    assert!(l2.short_circuits >= 47, "turned away, not failed: {l2:?}");

    server.restart().unwrap();
    let mut back = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await; // the cool-down is real time
        let written = cache.insert(2, "after".into()).await.unwrap();
        if written.is_complete() {
            back = true;
            break;
        }
    }
    assert!(back, "the probe found Redis back and the circuit closed");
}
