//! Keep serving when a tier or the source breaks: the per-tier circuit breaker, the time
//! budget of one failure per tier per operation, fail-safe.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use stratacache::mock::{MockTier, TierOp};
use stratacache::{
    Cache, CacheEntry, CircuitState, ErrorKind, FailSafe, Fallback, FrozenClock, LoadTimeouts,
    MemoryTier, TierWriteResult,
};

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

    // Open: neither reads nor writes reach the tier; a write waits for it to recover,
    // and L1 serves the new value meanwhile.
    let outcome = cache.insert(3, "three".into()).await.unwrap();
    let failure = outcome.failures().next().expect("L2 reported");
    assert_eq!(
        (failure.0, failure.1.kind()),
        ("l2", ErrorKind::CircuitOpen)
    );
    assert!(matches!(
        outcome.tiers()[1].result(),
        TierWriteResult::Queued(_)
    ));
    assert!(matches!(
        outcome.tiers()[0].result(),
        TierWriteResult::Stored
    ));
    assert_eq!(cache.get(&3).await.unwrap().as_deref(), Some("three"));
    assert_eq!((l2.count(TierOp::Get), l2.count(TierOp::Insert)), (2, 0));
    let stats = &cache.stats().tiers[1];
    assert_eq!((stats.errors, stats.short_circuits), (2, 1));

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
    assert_eq!(cache.get(&6).await.unwrap().as_deref(), Some("six"));

    // The tier answered: the write it missed is replayed in the background.
    let replayed = async {
        while cache.stats().recovery_replayed == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), replayed)
        .await
        .expect("replayed");
    assert_eq!(l2.count(TierOp::Insert), 2);
    let stored = l2.peek(&3).map(CacheEntry::into_value);
    assert_eq!(stored.as_deref(), Some("three"));
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
    assert_eq!(
        l2.count(TierOp::Insert),
        0,
        "one timeout per tier per operation"
    );
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
            Ok::<_, std::io::Error>(
                keys.into_iter()
                    .map(|key| (key, format!("{key}")))
                    .collect(),
            )
        })
        .await
        .unwrap();
    assert_eq!(loaded, [Some("3".into()), Some("4".into())]);
    assert_eq!(l2.count(TierOp::Insert), 1);
}

/// A loading cache over an L2, with fail-safe: an hour of stale age, a 10 s throttle.
/// The loader fails while `down` is set, and counts its calls.
struct FailSafeSetup {
    clock: FrozenClock,
    l2: MemoryTier<u64, String>,
    down: Arc<AtomicBool>,
    loads: Arc<AtomicUsize>,
    cache: Cache<u64, String>,
}

fn fail_safe_setup() -> FailSafeSetup {
    let (clock, l2) = (FrozenClock::new(), MemoryTier::new(100));
    let (down, loads) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (is_down, counted) = (Arc::clone(&down), Arc::clone(&loads));
    let cache = Cache::builder()
        .clock(&clock)
        .ttl(Duration::from_secs(60))
        .fallback(Fallback::tier(l2.clone()).ttl(Duration::from_secs(60)))
        .loader(move |id: u64| {
            counted.fetch_add(1, Ordering::SeqCst);
            let down = is_down.load(Ordering::SeqCst);
            async move {
                if down {
                    Err(std::io::Error::other("database down"))
                } else {
                    Ok(Some(format!("row {id}")))
                }
            }
        })
        .fail_safe(FailSafe::new(Duration::from_secs(3_600)).throttle(Duration::from_secs(10)))
        .build()
        .unwrap();
    FailSafeSetup {
        clock,
        l2,
        down,
        loads,
        cache,
    }
}

#[tokio::test]
async fn fail_safe_serves_the_stale_value_throttles_the_source_and_gives_up_at_the_max_age() {
    let s = fail_safe_setup();
    assert_eq!(s.cache.get(&1).await.unwrap().as_deref(), Some("row 1"));
    s.down.store(true, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(61));

    assert_eq!(s.cache.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(s.loads.load(Ordering::SeqCst), 2, "the source was tried");
    let entry = s.cache.get_entry(&1).await.unwrap().expect("kept in L1");
    assert!(entry.is_stale());

    // Throttled: within 10 s nobody asks the failing source again.
    for _ in 0..5 {
        assert_eq!(s.cache.get(&1).await.unwrap().as_deref(), Some("row 1"));
    }
    assert_eq!(s.loads.load(Ordering::SeqCst), 2);
    s.clock.advance(Duration::from_secs(10));
    assert_eq!(s.cache.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(
        s.loads.load(Ordering::SeqCst),
        3,
        "tried again after the throttle"
    );
    assert_eq!(s.cache.stats().stale_served, 2);

    // Past its TTL plus the stale age, the error comes through.
    s.clock.advance(Duration::from_secs(3_600));
    let error = s.cache.get(&1).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Loader);

    // The source back: a fresh value, no longer stale.
    s.down.store(false, Ordering::SeqCst);
    assert_eq!(s.cache.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert!(!s.cache.get_entry(&1).await.unwrap().unwrap().is_stale());
}

#[tokio::test]
async fn fail_safe_falls_back_on_a_lower_tier_and_never_on_a_replaced_value() {
    let s = fail_safe_setup();
    s.cache.get(&1).await.unwrap();
    s.cache.get(&2).await.unwrap();
    s.down.store(true, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(61));

    // L1 lost its copy (evicted, or another instance wrote L2): L2's stale copy serves.
    let l1_only = stratacache::Options::new().skip_remote();
    s.cache
        .with(l1_only)
        .insert(1, "l1 copy".into())
        .await
        .unwrap();
    s.cache.invalidate(&1).await.unwrap();
    let expired = CacheEntry::new(
        "from l2".to_string(),
        s.clock.now() - Duration::from_secs(61),
        Some(Duration::from_secs(60)),
    );
    s.l2.store(1, expired, None);
    assert_eq!(s.cache.get(&1).await.unwrap().as_deref(), Some("from l2"));

    // An invalidated key has nothing to fall back on: the failure comes through.
    s.cache.invalidate(&2).await.unwrap();
    assert_eq!(s.cache.get(&2).await.unwrap_err().kind(), ErrorKind::Loader);
}

#[tokio::test]
async fn fail_safe_without_a_loader_answers_stale_when_a_tier_fails() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache: Cache<u64, String> = Cache::builder()
        .clock(&clock)
        .ttl(Duration::from_secs(60))
        .fallback(Fallback::tier(l2.clone()).ttl(Duration::from_secs(60)))
        .fail_safe(FailSafe::new(Duration::from_secs(600)))
        .build()
        .unwrap();
    cache.insert(1, "one".into()).await.unwrap();
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        cache.get(&1).await.unwrap(),
        None,
        "L2 answered: expired is a miss"
    );
    cache.insert(1, "one".into()).await.unwrap();
    clock.advance(Duration::from_secs(61));
    l2.fail(TierOp::Get, ErrorKind::Timeout);
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("one"),
        "L2 down: stale"
    );
    assert_eq!(cache.stats().stale_served, 1);
}

/// A loading cache whose loader answers `"v{n}"` for its n-th call, after `slow` from
/// the second call on (tokio's paused clock: the tests don't wait).
fn timed_cache(clock: &FrozenClock, slow: Duration, timeouts: LoadTimeouts) -> Cache<u64, String> {
    let calls = Arc::new(AtomicUsize::new(0));
    Cache::builder()
        .clock(clock)
        .ttl(Duration::from_secs(60))
        .loader(move |_id: u64| {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if call > 1 {
                    tokio::time::sleep(slow).await;
                }
                Ok::<_, std::io::Error>(Some(format!("v{call}")))
            }
        })
        .fail_safe(FailSafe::new(Duration::from_secs(3_600)))
        .load_timeouts(timeouts)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_soft_timeout_answers_stale_and_the_load_lands_in_the_background() {
    let clock = FrozenClock::new();
    let timeouts = LoadTimeouts::new()
        .soft(Duration::from_millis(100))
        .hard(Duration::from_secs(30));
    let cache = timed_cache(&clock, Duration::from_secs(5), timeouts);
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("v1"));
    clock.advance(Duration::from_secs(61));

    let started = tokio::time::Instant::now();
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("v1"),
        "stale, at once"
    );
    assert_eq!(started.elapsed(), Duration::from_millis(100));
    assert_eq!(cache.stats().soft_timeouts, 1);

    tokio::time::sleep(Duration::from_secs(5)).await; // the load ends
    let wait = async {
        while cache.stats().background_loads == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap();
    let entry = cache.get_entry(&1).await.unwrap().unwrap();
    assert_eq!((entry.value().as_str(), entry.is_stale()), ("v2", false));
}

#[tokio::test(start_paused = true)]
async fn a_soft_timeout_needs_a_stale_value_and_a_hard_one_fails_the_load() {
    let clock = FrozenClock::new();
    let timeouts = LoadTimeouts::new()
        .soft(Duration::from_millis(100))
        .hard(Duration::from_secs(2));
    let cache = timed_cache(&clock, Duration::from_secs(1), timeouts);
    cache.get(&1).await.unwrap(); // the first call is quick

    // Nothing stale at hand: the soft timeout does not apply, the load is waited for.
    let started = tokio::time::Instant::now();
    assert_eq!(cache.get(&2).await.unwrap().as_deref(), Some("v2"));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(cache.stats().soft_timeouts, 0);

    let slow = timed_cache(&clock, Duration::from_secs(5), timeouts);
    slow.get(&1).await.unwrap();
    let error = slow.get(&2).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(slow.stats().load_errors, 1);
}

#[tokio::test(start_paused = true)]
async fn a_background_load_never_overwrites_a_later_write() {
    let clock = FrozenClock::new();
    let timeouts = LoadTimeouts::new().soft(Duration::from_millis(100));
    let cache = timed_cache(&clock, Duration::from_secs(5), timeouts);
    cache.get(&1).await.unwrap();
    clock.advance(Duration::from_secs(61));
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("v1"), "stale");
    cache.insert(1, "written".into()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await; // the background load ends
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("written"));
}

#[tokio::test]
async fn a_failing_loader_is_asked_once_per_throttle_window_per_key() {
    let s = fail_safe_setup(); // throttle: 10 s
    for key in 0..10 {
        s.cache.get(&key).await.unwrap();
    }
    s.down.store(true, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(61));
    let loads_before = s.loads.load(Ordering::SeqCst);
    // 30 s of failures, a request for every key every 100 ms.
    for _ in 0..300 {
        for key in 0..10 {
            let value = s.cache.get(&key).await.unwrap();
            assert_eq!(
                value,
                Some(format!("row {key}")),
                "every request gets the value"
            );
        }
        s.clock.advance(Duration::from_millis(100));
    }
    let loads = s.loads.load(Ordering::SeqCst) - loads_before;
    assert_eq!(loads, 10 * 3, "one load per key per 10 s throttle window");
}

#[tokio::test]
async fn a_call_can_refuse_stale_values_or_bring_its_own_default() {
    let s = fail_safe_setup();
    s.cache.get(&1).await.unwrap();
    s.down.store(true, Ordering::SeqCst);
    s.clock.advance(Duration::from_secs(61));
    let fresh_only = s
        .cache
        .with(stratacache::Options::new().without_fail_safe());
    assert_eq!(
        fresh_only.get(&1).await.unwrap_err().kind(),
        ErrorKind::Loader
    );
    assert_eq!(s.cache.stats().stale_served, 0);
    assert_eq!(
        s.cache.get(&1).await.unwrap().as_deref(),
        Some("row 1"),
        "others may"
    );
    assert_eq!(s.cache.stats().stale_served, 1);

    // Nothing stale for key 2: the call's default is the last resort.
    let guest = s
        .cache
        .with(stratacache::Options::new())
        .fail_safe_default("guest".into());
    assert_eq!(guest.get(&2).await.unwrap().as_deref(), Some("guest"));
    assert_eq!(s.cache.stats().defaults_served, 1);
    assert_eq!(
        s.cache.get(&2).await.unwrap_err().kind(),
        ErrorKind::Loader,
        "not stored"
    );
}

#[tokio::test(start_paused = true)]
async fn a_background_load_stores_as_its_call_would_have() {
    let (clock, l2) = (FrozenClock::new(), MockTier::<u64, String>::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let cache: Cache<u64, String> = Cache::builder()
        .clock(&clock)
        .ttl(Duration::from_secs(60))
        .fallback(Fallback::tier(l2.clone()).ttl(Duration::from_secs(60)))
        .loader(move |_id: u64| {
            let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if call > 1 {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Ok::<_, std::io::Error>(Some(format!("v{call}")))
            }
        })
        .fail_safe(FailSafe::new(Duration::from_secs(3_600)))
        .load_timeouts(LoadTimeouts::new().soft(Duration::from_millis(100)))
        .build()
        .unwrap();
    cache.get(&1).await.unwrap();
    let inserts = l2.count(TierOp::Insert);
    clock.advance(Duration::from_secs(61));
    let local = stratacache::Options::new()
        .skip_remote()
        .ttl(Duration::from_secs(5));
    assert_eq!(
        cache.with(local).get(&1).await.unwrap().as_deref(),
        Some("v1"),
        "stale"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let landed = async {
        while cache.stats().background_loads == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), landed)
        .await
        .unwrap();
    let entry = cache.with(local).get(&1).await.unwrap();
    assert_eq!(entry.as_deref(), Some("v2"));
    assert_eq!(
        l2.count(TierOp::Insert),
        inserts,
        "the call skipped L2: so did its load"
    );
    let ttl = cache.get_entry(&1).await.unwrap().unwrap().ttl();
    assert_eq!(ttl, Some(Duration::from_secs(5)), "and its TTL cap held");
}

/// postcard, counting the values it encodes.
#[derive(Clone, Default)]
struct CountingCodec(Arc<AtomicUsize>);

impl<T: serde::Serialize + serde::de::DeserializeOwned> stratacache::Codec<T> for CountingCodec {
    fn encode(&self, value: &T, out: &mut Vec<u8>) -> Result<(), stratacache::Error> {
        self.0.fetch_add(1, Ordering::Relaxed);
        stratacache::Codec::<T>::encode(&stratacache::Postcard, value, out)
    }

    fn decode(&self, bytes: &[u8]) -> Result<T, stratacache::Error> {
        stratacache::Codec::<T>::decode(&stratacache::Postcard, bytes)
    }
}

#[tokio::test]
async fn a_write_the_open_circuit_skips_encodes_nothing() {
    let store = Arc::new(stratacache::mock::SwitchedStore::new(
        stratacache::mock::MemoryStore::new(),
    ));
    let codec = CountingCodec::default();
    let cache: Cache<u64, String> = Cache::builder()
        .fallback(
            Fallback::remote(stratacache::Remote::new(Arc::clone(&store)).codec(codec.clone()))
                .circuit_breaker(1, Duration::from_secs(60)),
        )
        .build()
        .unwrap();
    store.set_down(true);
    assert_eq!(cache.get(&1).await.unwrap(), None, "L2 down: a miss");
    assert_eq!(cache.stats().tiers[1].circuit, Some(CircuitState::Open));
    let (encoded, calls) = (codec.0.load(Ordering::Relaxed), store.calls());
    let outcome = cache.insert(2, "two".into()).await.unwrap();
    assert_eq!(
        outcome.failures().next().map(|(_, error)| error.kind()),
        Some(ErrorKind::CircuitOpen)
    );
    assert_eq!(store.calls(), calls, "the store is not called");
    assert_eq!(
        codec.0.load(Ordering::Relaxed),
        encoded,
        "nothing is encoded for a tier the circuit skips"
    );
    assert_eq!(
        cache.get(&2).await.unwrap().as_deref(),
        Some("two"),
        "L1 has it"
    );
}
