//! The `get_or_insert` family.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stratacache::{Cache, CacheEntry, ErrorKind, Fallback, FrozenClock};
use stratacache_tier::CacheTier;
use stratacache_tier::mock::{MockTier, TierOp};

fn two_tier(clock: &FrozenClock, l2: &MockTier<String, u64>) -> Cache<String, u64> {
    Cache::builder()
        .clock(clock)
        .ttl(Duration::from_secs(60))
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap()
}

#[derive(Debug)]
struct DbError(&'static str);
impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for DbError {}

#[tokio::test]
async fn get_or_insert_loads_once_then_hits() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tier(&clock, &l2);
    let loads = AtomicUsize::new(0);
    for _ in 0..3 {
        let value = cache
            .get_or_insert("k", || async {
                loads.fetch_add(1, Ordering::SeqCst);
                42
            })
            .await
            .unwrap();
        assert_eq!(value, 42);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(
        l2.peek(&"k".to_string()).map(CacheEntry::into_value),
        Some(42)
    );
    assert_eq!(cache.stats().loads, 1);
}

#[tokio::test]
async fn get_or_insert_prefers_l2_over_the_loader() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tier(&clock, &l2);
    l2.insert("k".into(), CacheEntry::new(7, clock.now(), None), None)
        .await
        .unwrap();
    let value = cache
        .get_or_insert("k", || async { unreachable!("L2 had it") })
        .await
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(cache.stats().loads, 0);
}

#[tokio::test]
async fn try_get_or_insert_returns_the_loader_error_and_caches_nothing() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tier(&clock, &l2);
    let err = cache
        .try_get_or_insert("k", || async { Err::<u64, _>(DbError("db down")) })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Loader);
    assert_eq!(err.source_as::<DbError>().map(|e| e.0), Some("db down"));
    assert_eq!(l2.count(TierOp::Insert), 0);
    assert_eq!(cache.get("k").await.unwrap(), None);
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.load_errors), (1, 1));

    let value = cache
        .try_get_or_insert("k", || async { Ok::<_, DbError>(5) })
        .await
        .unwrap();
    assert_eq!(value, 5);
    assert_eq!(cache.get("k").await.unwrap(), Some(5));
}

#[tokio::test]
async fn optionally_get_or_insert_caches_nothing_when_nothing_is_found() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tier(&clock, &l2);
    assert_eq!(
        cache
            .optionally_get_or_insert("k", || async { None })
            .await
            .unwrap(),
        None
    );
    assert_eq!(l2.count(TierOp::Insert), 0);
    assert_eq!(
        cache
            .optionally_get_or_insert("k", || async { Some(3) })
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(cache.get("k").await.unwrap(), Some(3));
}

#[tokio::test]
async fn loaded_value_ages_from_when_it_was_loaded() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tier(&clock, &l2);
    cache.get_or_insert("k", || async { 1 }).await.unwrap();
    clock.advance(Duration::from_secs(59));
    assert_eq!(cache.get("k").await.unwrap(), Some(1));
    clock.advance(Duration::from_secs(1));
    // L1 copy expired; L2 (no TTL) still has it and promotes it again.
    assert_eq!(cache.get("k").await.unwrap(), Some(1));
    assert_eq!(cache.stats().tiers[0].expired, 1);
}

#[tokio::test(start_paused = true)]
async fn a_write_during_a_load_wins_over_the_loaded_value() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tier(&clock, &l2);
    let gate = Arc::new(tokio::sync::Notify::new());
    let loader = tokio::spawn({
        let cache = cache.clone();
        let gate = Arc::clone(&gate);
        async move {
            cache
                .get_or_insert("k", || async move {
                    gate.notified().await;
                    1 // read from the database before the write below
                })
                .await
        }
    });
    tokio::task::yield_now().await;
    cache.insert("k".into(), 2).await.unwrap();
    gate.notify_one();
    assert_eq!(
        loader.await.unwrap().unwrap(),
        1,
        "the caller still gets what it loaded"
    );
    assert_eq!(
        cache.get("k").await.unwrap(),
        Some(2),
        "but the newer write stays cached"
    );
    assert_eq!(
        l2.peek(&"k".to_string()).map(CacheEntry::into_value),
        Some(2)
    );
}

#[tokio::test]
async fn borrowed_keys_work_across_the_family() {
    let cache: Cache<String, u64> = Cache::builder().build().unwrap();
    cache.insert("a".to_string(), 1).await.unwrap();
    assert_eq!(cache.get("a").await.unwrap(), Some(1));
    assert!(cache.contains("a").await.unwrap());
    cache.invalidate("a").await.unwrap();
    assert!(!cache.contains("a").await.unwrap());
}

mod loading_cache {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use stratacache::{Cache, FrozenClock};

    const SEC: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_not_found_answer_that_raced_a_write_is_not_remembered() {
        let clock = FrozenClock::new();
        let cache: Cache<u64, String> = Cache::builder()
            .clock(&clock)
            .loader(|_id: u64| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<Option<String>, std::io::Error>(None)
            })
            .cache_not_found(60 * SEC)
            .build()
            .unwrap();
        let reader = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(&1).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        cache.insert(1, "written".into()).await.unwrap();
        cache.invalidate(&1).await.unwrap();
        assert_eq!(reader.await.unwrap(), None, "it overlapped the writes");
        let loads = cache.stats().loads;
        assert_eq!(cache.get(&1).await.unwrap(), None);
        assert_eq!(
            cache.stats().loads,
            loads + 1,
            "the raced answer was not remembered: this get loaded"
        );
        assert_eq!(cache.stats().not_found_hits, 0);
    }

    #[tokio::test]
    async fn a_not_found_ttl_of_duration_max_builds_and_remembers() {
        let cache: Cache<u64, String> = Cache::builder()
            .loader(|_id: u64| async { Ok::<Option<String>, std::io::Error>(None) })
            .cache_not_found(Duration::MAX)
            .build()
            .expect("moka's 1,000-year limit is not the caller's problem");
        assert_eq!(cache.get(&1).await.unwrap(), None);
        assert_eq!(cache.get(&1).await.unwrap(), None);
        assert_eq!((cache.stats().loads, cache.stats().not_found_hits), (1, 1));
    }

    #[tokio::test]
    async fn per_call_loaders_still_run_for_a_key_remembered_as_not_found() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let cache: Cache<u64, String> = Cache::builder()
            .loader(move |_id: u64| {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Ok::<Option<String>, std::io::Error>(None) }
            })
            .cache_not_found(60 * SEC)
            .build()
            .unwrap();
        assert_eq!(cache.get(&1).await.unwrap(), None);
        assert_eq!(cache.get(&1).await.unwrap(), None);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let made = cache
            .get_or_insert(&1, || async { "made here".to_string() })
            .await
            .unwrap();
        assert_eq!(
            made, "made here",
            "get_or_insert's closure always gets its turn"
        );
        assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("made here"));
    }

    #[test]
    fn cache_not_found_without_a_loader_is_a_configuration_error() {
        let error = Cache::<u64, String>::builder()
            .cache_not_found(SEC)
            .build()
            .unwrap_err();
        assert_eq!(error.kind(), stratacache::ErrorKind::Config);
    }
}
