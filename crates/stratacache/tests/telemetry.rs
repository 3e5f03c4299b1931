//! Counters, tracing events and the typed event handler.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratacache::telemetry::{
    CacheEvent, Operation, OperationEvent, OperationOutcome, TierEvent, TierOutcome,
};
use stratacache::{Cache, CacheEntry, ErrorKind, Fallback, FrozenClock};
use stratacache_tier::CacheTier;
use stratacache_tier::mock::{MockTier, TierOp};

type Events = Arc<Mutex<Vec<CacheEvent>>>;

fn recorded(l2: &MockTier<u32, String>) -> (Cache<u32, String>, Events) {
    let events: Events = Arc::default();
    let sink = Arc::clone(&events);
    let cache = Cache::builder()
        .name("users")
        .event_handler(move |event| sink.lock().unwrap().push(event.clone()))
        .fallback(Fallback::tier(l2.clone()).name("redis"))
        .build()
        .unwrap();
    (cache, events)
}

fn tier_outcomes(events: &[CacheEvent]) -> Vec<(String, TierOutcome)> {
    events
        .iter()
        .filter_map(|event| match event {
            CacheEvent::Tier(TierEvent { tier, outcome, .. }) => Some((tier.to_string(), *outcome)),
            _ => None,
        })
        .collect()
}

fn operations(events: &[CacheEvent]) -> Vec<&OperationEvent> {
    events
        .iter()
        .filter_map(|event| match event {
            CacheEvent::Operation(operation) => Some(operation),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn handler_sees_each_tier_outcome_and_the_operation_with_one_request_id() {
    let l2 = MockTier::new();
    let (cache, events) = recorded(&l2);
    l2.insert(
        1,
        CacheEntry::new("v".into(), FrozenClock::new().now(), None),
        None,
    )
    .await
    .unwrap();
    cache.get(&1).await.unwrap();

    let events = events.lock().unwrap().clone();
    assert_eq!(
        tier_outcomes(&events),
        [
            ("l1".to_string(), TierOutcome::Miss),
            ("redis".to_string(), TierOutcome::Hit),
            ("l1".to_string(), TierOutcome::Promoted),
        ]
    );
    let ops = operations(&events);
    assert_eq!(ops.len(), 1);
    assert_eq!(
        (ops[0].operation, ops[0].outcome),
        (Operation::Get, OperationOutcome::Hit)
    );
    assert!(!ops[0].coalesced, "a lone caller is not coalesced");
    assert_eq!(&*ops[0].cache, "users");
    let id = ops[0].request_id;
    assert!(id > 0);
    assert!(
        events.iter().all(|event| event.request_id() == id),
        "one id correlates them"
    );
}

#[tokio::test]
async fn every_loader_family_operation_reports_itself() {
    let l2 = MockTier::new();
    let (cache, events) = recorded(&l2);
    cache
        .get_or_insert(&1, || async { "a".to_string() })
        .await
        .unwrap();
    cache
        .get_or_insert(&1, || async { unreachable!() })
        .await
        .unwrap();
    cache
        .try_get_or_insert(&2, || async {
            Err::<String, _>(std::io::Error::other("no"))
        })
        .await
        .unwrap_err();
    cache
        .optionally_get_or_insert(&3, || async { None })
        .await
        .unwrap();
    let events = events.lock().unwrap().clone();
    let ops: Vec<_> = operations(&events)
        .iter()
        .map(|op| (op.operation, op.outcome))
        .collect();
    assert_eq!(
        ops,
        [
            (Operation::GetOrInsert, OperationOutcome::Loaded),
            (Operation::GetOrInsert, OperationOutcome::Hit),
            (
                Operation::TryGetOrInsert,
                OperationOutcome::Error(ErrorKind::Loader)
            ),
            (
                Operation::OptionallyGetOrInsert,
                OperationOutcome::LoadedNothing
            ),
        ]
    );
    // The load stored the value in both tiers, L2 first.
    let first: Vec<_> = events
        .iter()
        .filter(|event| event.request_id() == operations(&events)[0].request_id)
        .cloned()
        .collect();
    assert_eq!(
        tier_outcomes(&first),
        [
            ("l1".to_string(), TierOutcome::Miss),
            ("redis".to_string(), TierOutcome::Miss),
            ("redis".to_string(), TierOutcome::Inserted),
            ("l1".to_string(), TierOutcome::Inserted),
        ]
    );
}

#[tokio::test]
async fn errors_are_events_and_counters() {
    let l2 = MockTier::new();
    let (cache, events) = recorded(&l2);
    l2.fail(TierOp::Get, ErrorKind::Timeout);
    assert_eq!(cache.get(&1).await.unwrap(), None);
    let events = events.lock().unwrap().clone();
    assert!(
        tier_outcomes(&events)
            .contains(&("redis".to_string(), TierOutcome::Error(ErrorKind::Timeout)))
    );
    assert_eq!(cache.stats().tiers[1].errors, 1);
}

#[tokio::test]
async fn stats_count_per_tier_and_per_cache() {
    let l2 = MockTier::new();
    let (cache, _) = recorded(&l2);
    cache.insert(1, "a".into()).await.unwrap();
    cache.get(&1).await.unwrap(); // L1 hit
    cache.get(&2).await.unwrap(); // miss everywhere
    cache.invalidate(&1).await.unwrap();
    let stats = cache.stats();
    let (l1, l2s) = (&stats.tiers[0], &stats.tiers[1]);
    assert_eq!(
        (l1.hits, l1.misses, l1.inserts, l1.invalidations),
        (1, 1, 1, 1)
    );
    assert_eq!(
        (l2s.hits, l2s.misses, l2s.inserts, l2s.invalidations),
        (0, 1, 1, 1)
    );
    assert!((l1.hit_ratio() - 0.5).abs() < f64::EPSILON);
    assert!((stats.hit_ratio() - 0.5).abs() < f64::EPSILON);
}

#[tokio::test]
async fn telemetry_off_counts_and_emits_nothing() {
    let events: Events = Arc::default();
    let sink = Arc::clone(&events);
    let cache: Cache<u32, u32> = Cache::builder()
        .telemetry(false)
        .event_handler(move |event| sink.lock().unwrap().push(event.clone()))
        .build()
        .unwrap();
    cache.insert(1, 1).await.unwrap();
    cache.get(&1).await.unwrap();
    assert_eq!(cache.stats().tiers[0].hits, 0);
    assert!(events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn evictions_are_counted_when_tracked() {
    let cache: Cache<u32, u32> = Cache::builder()
        .memory(|l1| l1.max_capacity(10))
        .track_evictions(true)
        .build()
        .unwrap();
    for i in 0..200 {
        cache.insert(i, i).await.unwrap();
        let _ = cache.l1_len(); // runs moka's housekeeping
    }
    assert!(
        cache.stats().tiers[0].evictions >= 150,
        "{:?}",
        cache.stats().tiers[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_another_callers_load_are_marked_coalesced() {
    let events: Events = Arc::default();
    let sink = Arc::clone(&events);
    let cache: Cache<u32, u32> = Cache::builder()
        .stampede_protection(true)
        .event_handler(move |event| sink.lock().unwrap().push(event.clone()))
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut leader = Box::pin(cache.get_or_insert(&1, {
        let gate = Arc::clone(&gate);
        || async move {
            gate.notified().await;
            1
        }
    }));
    assert!(futures::poll!(&mut leader).is_pending());
    let mut follower = Box::pin(cache.get_or_insert(&1, || async { 2 }));
    assert!(futures::poll!(&mut follower).is_pending());
    gate.notify_one();
    assert_eq!((leader.await.unwrap(), follower.await.unwrap()), (1, 1));
    let events = events.lock().unwrap().clone();
    let coalesced: Vec<_> = operations(&events).iter().map(|op| op.coalesced).collect();
    assert_eq!(coalesced, [false, true]);
    assert_eq!(cache.stats().coalesced_waits, 1);
}

#[tokio::test]
async fn ttl_expiry_is_reported_as_expired() {
    let clock = FrozenClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .clock(&clock)
        .ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    cache.insert(1, 1).await.unwrap();
    clock.advance(Duration::from_secs(1));
    cache.get(&1).await.unwrap();
    assert_eq!(cache.stats().tiers[0].expired, 1);
}
