//! Keep serving when a tier breaks: the per-tier circuit breaker, and the time budget of
//! one failure per tier per operation.

use std::time::Duration;

use stratacache::mock::{MockTier, TierOp};
use stratacache::{Cache, CircuitState, ErrorKind, Fallback, FrozenClock, TierWriteResult};

fn guarded(clock: &FrozenClock, l2: &MockTier<u64, String>) -> Cache<u64, String> {
    Cache::builder()
        .clock(clock)
        .fallback(Fallback::tier(l2.clone()).circuit_breaker(2, Duration::from_secs(10)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_open_circuit_skips_reads_and_writes_until_a_probe_succeeds() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = guarded(&clock, &l2);
    l2.fail(TierOp::Get, ErrorKind::Timeout);
    l2.fail(TierOp::Insert, ErrorKind::Timeout);
    assert_eq!(cache.get(&1).await.unwrap(), None);
    assert_eq!(cache.stats().tiers[1].circuit, Some(CircuitState::Closed));
    assert_eq!(cache.get(&2).await.unwrap(), None);
    assert_eq!(cache.stats().tiers[1].circuit, Some(CircuitState::Open));

    // Open: neither reads nor writes reach the tier; a write says so and drops L1's copy.
    let outcome = cache.insert(3, "three".into()).await.unwrap();
    let failure = outcome.failures().next().expect("L2 reported");
    assert_eq!((failure.0, failure.1.kind()), ("l2", ErrorKind::CircuitOpen));
    assert!(matches!(outcome.tiers()[0].result(), TierWriteResult::Dropped));
    assert_eq!(cache.get(&3).await.unwrap(), None);
    assert_eq!((l2.count(TierOp::Get), l2.count(TierOp::Insert)), (2, 0));
    let stats = &cache.stats().tiers[1];
    assert_eq!((stats.errors, stats.short_circuits), (2, 2));

    // Still open just before the cool-down ends; then one probe, which fails: open again.
    clock.advance(Duration::from_secs(9));
    cache.get(&4).await.unwrap();
    assert_eq!(l2.count(TierOp::Get), 2);
    clock.advance(Duration::from_secs(1));
    cache.get(&4).await.unwrap();
    assert_eq!(l2.count(TierOp::Get), 3, "the probe");
    assert_eq!(cache.stats().tiers[1].circuit, Some(CircuitState::Open));
    cache.get(&5).await.unwrap();
    assert_eq!(l2.count(TierOp::Get), 3, "reopened for another cool-down");

    // The tier heals: the next probe closes the circuit and everything flows again.
    l2.heal();
    clock.advance(Duration::from_secs(10));
    cache.insert(6, "six".into()).await.unwrap();
    assert_eq!(cache.stats().tiers[1].circuit, Some(CircuitState::Closed));
    assert_eq!(l2.count(TierOp::Insert), 1);
    assert_eq!(cache.get(&6).await.unwrap().as_deref(), Some("six"));
}

#[tokio::test]
async fn errors_that_prove_the_tier_is_up_do_not_open_it() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = guarded(&clock, &l2);
    l2.fail(TierOp::Get, ErrorKind::Codec);
    for key in 0..5 {
        assert_eq!(cache.get(&key).await.unwrap(), None);
    }
    assert_eq!(l2.count(TierOp::Get), 5);
    assert_eq!(cache.stats().tiers[1].circuit, Some(CircuitState::Closed));
}

#[tokio::test]
async fn a_load_after_a_timed_out_read_does_not_wait_on_the_tier_again() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache: Cache<u64, String> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    l2.fail(TierOp::Get, ErrorKind::Timeout);
    let value = cache
        .get_or_insert(&1, || async { "loaded".to_string() })
        .await
        .unwrap();
    assert_eq!(value, "loaded");
    assert_eq!(l2.count(TierOp::Insert), 0, "one timeout per tier per operation");
    assert_eq!(cache.l1_len(), Some(1), "L1 still serves it");

    // A tier that answers is filled as before.
    l2.heal();
    cache
        .get_or_insert(&2, || async { "two".to_string() })
        .await
        .unwrap();
    assert_eq!(l2.count(TierOp::Insert), 1);

    // The same budget holds for a batch.
    l2.fail(TierOp::Get, ErrorKind::Unavailable);
    let loaded = cache
        .get_or_insert_many(&[3, 4], |keys| async move {
            Ok::<_, std::io::Error>(keys.into_iter().map(|key| (key, format!("{key}"))).collect())
        })
        .await
        .unwrap();
    assert_eq!(loaded, [Some("3".into()), Some("4".into())]);
    assert_eq!(l2.count(TierOp::Insert), 1);
}
