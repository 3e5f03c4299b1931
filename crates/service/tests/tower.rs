//! Tower layers around tiers, with fault injection and tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stratacache::{Cache, CacheEntry, CacheTier, ErrorKind, Fallback, FrozenClock};
use stratacache_service::{CacheRequest, CacheResponse, CacheRetry, ServiceTier, TierService};
use stratacache_tier::mock::{MockTier, TierOp};
use tower::{Service, ServiceBuilder, ServiceExt};

/// The value `tier` holds under `key`.
async fn value_of<K>(tier: &impl CacheTier<K, String>, key: K) -> Option<String> {
    tier.get(&key).await.unwrap().map(CacheEntry::into_value)
}

fn entry(value: &str) -> CacheEntry<String> {
    CacheEntry::new(value.to_string(), FrozenClock::new().now(), None)
}

#[tokio::test(start_paused = true)]
async fn a_timeout_layer_turns_a_slow_tier_into_a_timeout_error() {
    let slow = MockTier::<u32, String>::new();
    slow.delay(TierOp::Get, Duration::from_secs(10));
    let tier = ServiceTier::new(
        ServiceBuilder::new()
            .timeout(Duration::from_millis(100))
            .service(TierService::new(slow)),
    );
    let started = tokio::time::Instant::now();
    let error = tier.get(&1).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "cut at the limit, not later"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_retries_unavailable_reads_as_configured() {
    let flaky = MockTier::<u32, String>::new();
    flaky.insert(1, entry("v"), None).await.unwrap();
    flaky.reset_calls();
    let tier = ServiceTier::new(
        ServiceBuilder::new()
            .retry(CacheRetry::new(3).backoff(Duration::from_millis(10), Duration::from_millis(40)))
            .service(TierService::new(flaky.clone())),
    );
    flaky.fail_times(TierOp::Get, ErrorKind::Unavailable, 2);
    let started = tokio::time::Instant::now();
    assert_eq!(value_of(&tier, 1).await.as_deref(), Some("v"));
    assert_eq!(flaky.count(TierOp::Get), 3, "two failures, then success");
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(30),
        "backoff 10 ms, then 20 ms"
    );

    flaky.reset_calls();
    flaky.fail(TierOp::Get, ErrorKind::Unavailable);
    assert_eq!(
        tier.get(&1).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    assert_eq!(
        flaky.count(TierOp::Get),
        4,
        "one try and three retries, then it gives up"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_never_retries_codec_errors_or_writes() {
    let tier_under = MockTier::<u32, String>::new();
    let tier = ServiceTier::new(
        ServiceBuilder::new()
            .retry(CacheRetry::new(5))
            .service(TierService::new(tier_under.clone())),
    );
    tier_under.fail(TierOp::Get, ErrorKind::Codec);
    assert_eq!(tier.get(&1).await.unwrap_err().kind(), ErrorKind::Codec);
    assert_eq!(tier_under.count(TierOp::Get), 1);
    tier_under.fail(TierOp::Insert, ErrorKind::Unavailable);
    assert!(tier.insert(1, entry("v"), None).await.is_err());
    assert_eq!(
        tier_under.count(TierOp::Insert),
        1,
        "writes are not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrency_limit_holds() {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let storage = TierService::new(MockTier::<u32, String>::new());
    let counting = tower::service_fn({
        let (in_flight, most) = (Arc::clone(&in_flight), Arc::clone(&most));
        move |request: CacheRequest<u32, String>| {
            let (in_flight, most, mut storage) =
                (Arc::clone(&in_flight), Arc::clone(&most), storage.clone());
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                for _ in 0..10 {
                    tokio::task::yield_now().await; // stay in flight a while
                }
                let response = storage.call(request).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                response
            }
        }
    });
    let tier = Arc::new(ServiceTier::new(
        ServiceBuilder::new().concurrency_limit(2).service(counting),
    ));
    let calls: Vec<_> = (0..64)
        .map(|key| {
            let tier = Arc::clone(&tier);
            tokio::spawn(async move { tier.get(&key).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), None);
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "never more than the limit at once"
    );
}

#[tokio::test]
async fn a_cache_answers_as_a_service_end_to_end() {
    let cache: Cache<u32, String> = Cache::builder()
        .fallback(Fallback::memory(|tier| tier))
        .build()
        .unwrap();
    let mut service = TierService::new(cache.clone());
    let done = service
        .ready()
        .await
        .unwrap()
        .call(CacheRequest::Insert {
            key: 1,
            entry: entry("one"),
            keep_for: None,
        })
        .await
        .unwrap();
    assert_eq!(done, CacheResponse::Done);
    let got = service
        .ready()
        .await
        .unwrap()
        .call(CacheRequest::Get(1))
        .await
        .unwrap();
    assert_eq!(got, CacheResponse::Entry(Some(entry("one"))));
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("one"));
    service.oneshot(CacheRequest::Invalidate(1)).await.unwrap();
    assert_eq!(cache.get(&1).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_stacked_service_plugs_back_in_as_a_fallback() {
    let storage = MockTier::<u32, String>::new();
    storage
        .insert(1, entry("from storage"), None)
        .await
        .unwrap();
    let cache: Cache<u32, String> = Cache::builder()
        .fallback(Fallback::tier(ServiceTier::new(
            ServiceBuilder::new()
                .retry(CacheRetry::new(1))
                .timeout(Duration::from_millis(50))
                .service(TierService::new(storage.clone())),
        )))
        .build()
        .unwrap();
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("from storage")
    );
    storage.delay(TierOp::Get, Duration::from_secs(5));
    assert_eq!(
        cache.get(&2).await.unwrap(),
        None,
        "a slow L2 degrades to a miss"
    );
    let stats = cache.stats();
    assert_eq!(stats.tiers[1].errors, 1);
}

#[tokio::test(start_paused = true)]
async fn retry_retries_timeouts_and_leaves_rejections_and_bad_bytes_alone() {
    let flaky = MockTier::<u32, String>::new();
    flaky.insert(1, entry("v"), None).await.unwrap();
    let tier = ServiceTier::new(
        ServiceBuilder::new()
            .retry(CacheRetry::new(3))
            .service(TierService::new(flaky.clone())),
    );
    flaky.reset_calls();
    flaky.fail_times(TierOp::Get, ErrorKind::Timeout, 1);
    assert!(
        tier.get(&1).await.unwrap().is_some(),
        "a timeout is retried"
    );
    assert_eq!(flaky.count(TierOp::Get), 2);

    for kind in [
        ErrorKind::Rejected,
        ErrorKind::Codec,
        ErrorKind::CircuitOpen,
    ] {
        flaky.reset_calls();
        flaky.fail_times(TierOp::Get, kind, 1);
        assert_eq!(
            tier.get(&1).await.unwrap_err().kind(),
            kind,
            "{kind:?} is final"
        );
        assert_eq!(flaky.count(TierOp::Get), 1, "{kind:?} is not retried");
    }
}

#[tokio::test]
async fn fills_and_timed_removals_cross_the_service_with_their_answer() {
    let store = stratacache::mock::MemoryStore::new();
    let remote = stratacache::Remote::new(store.clone()).into_tier::<u64, String>();
    let tier = ServiceTier::layered(remote, ServiceBuilder::new());
    let at = |ms| std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
    let made = |value: &str, ms| CacheEntry::new(value.to_string(), at(ms), None);
    assert!(tier.fill(1, made("first", 10), None).await.unwrap());
    assert!(
        !tier.fill(1, made("older", 5), None).await.unwrap(),
        "the tier holds a newer entry"
    );
    tier.invalidate_at(&1, at(20)).await.unwrap();
    assert_eq!(
        tier.get(&1).await.unwrap(),
        None,
        "a tombstone reads as absent"
    );
    assert!(!tier.fill(1, made("read before", 15), None).await.unwrap());
    assert!(tier.fill(1, made("read after", 25), None).await.unwrap());
    assert_eq!(value_of(&tier, 1).await.as_deref(), Some("read after"));
    // A removal that spares what was produced after `than`, and says so.
    let removal = tier.invalidate_unless_newer(&1, at(30), at(20));
    assert!(!removal.await.unwrap(), "\"read after\" stands");
    assert_eq!(value_of(&tier, 1).await.as_deref(), Some("read after"));
    assert!(
        tier.invalidate_unless_newer(&1, at(40), at(25))
            .await
            .unwrap()
    );
    assert_eq!(tier.get(&1).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_with_a_cool_down_of_duration_max_answers_and_stays_open() {
    let tier = MockTier::<u32, String>::new();
    let breaker = ServiceTier::new(
        ServiceBuilder::new()
            .layer(stratacache_service::CircuitBreakerLayer::new(
                1,
                Duration::MAX,
            ))
            .service(TierService::new(tier.clone())),
    );
    breaker.insert(1, entry("one"), None).await.unwrap();
    assert_eq!(
        breaker
            .get(&1)
            .await
            .unwrap()
            .map(|e| e.into_value())
            .as_deref(),
        Some("one")
    );
    tier.fail(TierOp::Get, ErrorKind::Unavailable);
    assert_eq!(
        breaker.get(&1).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    tokio::time::advance(Duration::from_secs(365 * 24 * 60 * 60)).await;
    assert_eq!(
        breaker.get(&1).await.unwrap_err().kind(),
        ErrorKind::CircuitOpen,
        "open for the (saturated) cool-down, not closed by an overflow"
    );
}
