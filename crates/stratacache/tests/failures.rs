//! A failing tier degrades to a reported miss; `strict` returns the error instead.

use std::time::Duration;

use stratacache::{Cache, CacheEntry, ErrorKind, Fallback, FrozenClock, TierWriteResult};
use stratacache_tier::CacheTier;
use stratacache_tier::mock::{MockTier, TierOp};

fn cache(clock: &FrozenClock, l2: &MockTier<u32, String>, strict: bool) -> Cache<u32, String> {
    Cache::builder()
        .clock(clock)
        .strict(strict)
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn l2_failure_on_get_is_a_counted_miss() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = cache(&clock, &l2, false);
    l2.insert(1, CacheEntry::new("v".into(), clock.now(), None), None)
        .await
        .unwrap();
    l2.fail(TierOp::Get, ErrorKind::Unavailable);
    assert_eq!(cache.get(&1).await.unwrap(), None);
    assert_eq!(cache.stats().tiers[1].errors, 1);
    l2.heal();
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("v"),
        "used again once it recovers"
    );
}

#[tokio::test]
async fn strict_cache_returns_the_tier_error() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = cache(&clock, &l2, true);
    l2.fail(TierOp::Get, ErrorKind::Timeout);
    let err = cache.get(&1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    let err = cache
        .get_or_insert(&1, || async { "loaded".to_string() })
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Timeout,
        "strict: no load behind a failing tier"
    );
    assert_eq!(cache.stats().loads, 0);
}

#[tokio::test]
async fn l1_serves_while_l2_is_down() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = cache(&clock, &l2, false);
    cache.insert(1, "v".into()).await.unwrap();
    l2.fail(TierOp::Get, ErrorKind::Unavailable);
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("v"));
    assert_eq!(l2.count(TierOp::Get), 0);
}

#[tokio::test]
async fn failed_l2_write_is_in_the_outcome_and_l1_drops_its_copy() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::tier(l2.clone()).auto_recovery(0))
        .build()
        .unwrap();
    cache.insert(1, "old".into()).await.unwrap();
    l2.fail(TierOp::Insert, ErrorKind::Unavailable);
    let outcome = cache.insert(1, "new".into()).await.unwrap();
    assert!(!outcome.is_complete());
    let failures: Vec<_> = outcome.failures().collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, "l2");
    assert_eq!(failures[0].1.kind(), ErrorKind::Unavailable);
    assert!(matches!(
        outcome.tiers()[0].result(),
        TierWriteResult::Dropped
    ));
    // Without a recovery queue, L1 holds neither the new value (L2 may lack it) nor the
    // old one (L2 may differ): the next read asks L2, which still holds "old".
    assert_eq!(cache.stats().tiers[1].errors, 1);
    assert_eq!(cache.l1_len(), Some(0));
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("old"));
}

#[tokio::test]
async fn a_write_l2_could_not_take_waits_for_it_and_is_what_reads_see() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = cache(&clock, &l2, false);
    cache.insert(1, "old".into()).await.unwrap();
    l2.fail(TierOp::Insert, ErrorKind::Unavailable);
    let outcome = cache.insert(1, "new".into()).await.unwrap();
    assert!(!outcome.is_complete(), "not yet in L2");
    assert!(
        matches!(outcome.tiers()[1].result(), TierWriteResult::Queued(e) if e.kind() == ErrorKind::Unavailable)
    );
    assert!(matches!(
        outcome.tiers()[0].result(),
        TierWriteResult::Stored
    ));
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("new"));
    let below = cache.with(stratacache::Options::new().skip_l1());
    let read = below.get(&1).await.unwrap();
    assert_eq!(read.as_deref(), Some("new"), "L2 reads as the queued write");
    let stored = l2.peek(&1).map(CacheEntry::into_value);
    assert_eq!(
        stored.as_deref(),
        Some("old"),
        "which L2 itself has not taken yet"
    );
    assert_eq!(cache.stats().recovery_queued, 1);
}

#[tokio::test]
async fn strict_insert_returns_the_failure_and_leaves_no_l1_copy() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = cache(&clock, &l2, true);
    cache.insert(1, "old".into()).await.unwrap();
    l2.fail(TierOp::Insert, ErrorKind::Timeout);
    let error = cache.insert(1, "new".into()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(cache.l1_len(), Some(0));
}

#[tokio::test]
async fn failed_invalidate_is_in_the_outcome() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = cache(&clock, &l2, false);
    cache.insert(1, "v".into()).await.unwrap();
    l2.fail(TierOp::Invalidate, ErrorKind::Timeout);
    let outcome = cache.invalidate(&1).await.unwrap();
    assert!(!outcome.is_complete());
    assert!(matches!(
        outcome.tiers()[0].result(),
        TierWriteResult::Removed
    ));
    assert!(
        matches!(outcome.tiers()[1].result(), TierWriteResult::Queued(e) if e.kind() == ErrorKind::Timeout)
    );
    assert_eq!(
        cache.get(&1).await.unwrap(),
        None,
        "L2 reads as the queued invalidation"
    );
}

#[tokio::test]
async fn l1_keeps_serving_loaded_values_while_l2_is_down() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = cache(&clock, &l2, false);
    l2.fail(TierOp::Get, ErrorKind::Unavailable);
    l2.fail(TierOp::Insert, ErrorKind::Unavailable);
    for _ in 0..5 {
        let value = cache
            .get_or_insert(&1, || async { "from the database".to_string() })
            .await
            .unwrap();
        assert_eq!(value, "from the database");
    }
    assert_eq!(
        cache.stats().loads,
        1,
        "one database read: the loaded value reached L1 though L2 is down"
    );
    assert_eq!(
        l2.count(TierOp::Insert),
        0,
        "L2 failed the read: the operation does not wait on it a second time"
    );
}

#[tokio::test]
async fn loaded_value_survives_a_failed_store_even_when_strict() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    for strict in [false, true] {
        let cache = cache(&clock, &l2, strict);
        l2.fail(TierOp::Insert, ErrorKind::Unavailable);
        let value = cache
            .get_or_insert(&1, || async { "loaded".to_string() })
            .await
            .unwrap();
        assert_eq!(value, "loaded", "strict = {strict}");
        assert_eq!(cache.stats().tiers[1].errors, 1, "strict = {strict}");
        l2.heal();
    }
}

#[tokio::test]
async fn failing_invalidate_still_tries_every_tier() {
    let clock = FrozenClock::new();
    let l1 = MockTier::new();
    let l2 = MockTier::new();
    for strict in [false, true] {
        let cache: Cache<u32, String> = Cache::builder()
            .clock(&clock)
            .strict(strict)
            .tier(l1.clone())
            .fallback(Fallback::tier(l2.clone()))
            .build()
            .unwrap();
        cache.insert(1, "v".into()).await.unwrap();
        l1.fail(TierOp::Invalidate, ErrorKind::Unavailable);
        assert_eq!(cache.invalidate(&1).await.is_err(), strict);
        assert!(
            l2.peek(&1).is_none(),
            "L2 must be invalidated although L1 failed"
        );
        l1.heal();
    }
}

#[tokio::test(start_paused = true)]
async fn slow_tier_is_only_as_slow_as_it_is() {
    // No hidden retries: one slow call costs its delay once.
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = cache(&clock, &l2, false);
    l2.delay(TierOp::Get, Duration::from_millis(200));
    let start = tokio::time::Instant::now();
    assert_eq!(cache.get(&1).await.unwrap(), None);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    assert_eq!(l2.count(TierOp::Get), 1);
}

#[tokio::test]
async fn a_tier_that_rejects_a_value_drops_the_one_it_replaced() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = cache(&clock, &l2, false);
    cache.insert(1, "small".into()).await.unwrap();
    l2.fail_times(TierOp::Insert, ErrorKind::Rejected, 1);
    let outcome = cache.insert(1, "far too large".into()).await.unwrap();
    assert!(matches!(
        outcome.tiers()[1].result(),
        TierWriteResult::Failed(e) if e.kind() == ErrorKind::Rejected
    ));
    assert!(l2.peek(&1).is_none(), "L2 must not keep serving \"small\"");
    assert_eq!(cache.get(&1).await.unwrap(), None);
}

/// Redis out of memory (`maxmemory` under `noeviction`) refuses writes but still
/// deletes: a write it refuses leaves neither the value it replaces nor its own, for this
/// instance or another, and an invalidation whose tombstone it refuses still removes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_redis_refuses_for_memory_leaves_nothing_it_replaced() {
    use stratacache::Remote;
    use stratacache_redis::{RedisConfig, RedisStore};
    use stratacache_testkit::RedisServer;

    let server = RedisServer::start().unwrap();
    let store = RedisStore::new(RedisConfig::from_url(server.url()).namespace("oom")).unwrap();
    let cache = || -> Cache<u32, String> {
        Cache::builder()
            .fallback(Fallback::remote(Remote::new(store.clone())))
            .build()
            .unwrap()
    };
    let (ours, theirs) = (cache(), cache());
    for key in [1, 2] {
        assert!(ours.insert(key, "old".into()).await.unwrap().is_complete());
    }
    // Any write is now over the limit; reads and deletes are not refused.
    server
        .cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .unwrap();
    server.cli(&["CONFIG", "SET", "maxmemory", "1"]).unwrap();

    let outcome = ours.insert(1, "new".into()).await.unwrap();
    let TierWriteResult::Failed(error) = outcome.tiers()[1].result() else {
        panic!("Redis refuses the write: {outcome:?}");
    };
    assert_eq!(error.kind(), ErrorKind::Other, "{error}");
    assert_eq!(
        ours.get(&1).await.unwrap(),
        None,
        "not the value it replaced"
    );
    assert_eq!(theirs.get(&1).await.unwrap(), None);

    let outcome = ours.invalidate(&2).await.unwrap();
    assert!(
        matches!(outcome.tiers()[1].result(), TierWriteResult::Removed),
        "{outcome:?}"
    );
    assert_eq!(theirs.get(&2).await.unwrap(), None);
}
