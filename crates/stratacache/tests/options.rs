//! Per-call control: `Cache::with(Options)`, each strategy, skipped tiers, a per-call TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stratacache::{
    Cache, CacheEntry, ErrorKind, Fallback, FrozenClock, MemoryTier, Options, Strategy,
    TierWriteResult,
};
use stratacache_tier::mock::{MockTier, TierOp};

/// A memory L1 over a mock L2, loading `"row {key}"` for keys under 100 (counted).
struct Setup {
    clock: FrozenClock,
    l2: MockTier<u64, String>,
    loads: Arc<AtomicUsize>,
    cache: Cache<u64, String>,
}

fn setup() -> Setup {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&loads);
    let cache = Cache::builder()
        .clock(&clock)
        .ttl(Duration::from_secs(60))
        .fallback(Fallback::tier(l2.clone()))
        .loader(move |key: u64| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>((key < 100).then(|| format!("row {key}")))
            }
        })
        .build()
        .unwrap();
    Setup {
        clock,
        l2,
        loads,
        cache,
    }
}

fn in_l2(setup: &Setup, key: u64) -> Option<String> {
    setup.l2.peek(&key).map(CacheEntry::into_value)
}

fn strategy(strategy: Strategy) -> Options {
    Options::new().strategy(strategy)
}

#[tokio::test]
async fn cache_only_never_loads_through_any_loader() {
    let s = setup();
    let cache_only = s.cache.with(strategy(Strategy::CacheOnly));
    assert_eq!(cache_only.get(&1).await.unwrap(), None);
    let closure = cache_only
        .get_or_insert(&1, || async { unreachable!("cache only") })
        .await
        .unwrap();
    assert_eq!(closure, None);
    assert_eq!(s.loads.load(Ordering::SeqCst), 0);
    assert_eq!(s.l2.count(TierOp::Get), 2, "the tiers were read");

    s.cache.insert(1, "cached".into()).await.unwrap();
    assert_eq!(cache_only.get(&1).await.unwrap().as_deref(), Some("cached"));
}

#[tokio::test]
async fn reload_loads_without_reading_and_overwrites_every_tier() {
    let s = setup();
    s.cache.insert(1, "stale".into()).await.unwrap();
    let reads = s.l2.count(TierOp::Get);
    let refresh = s.cache.with(strategy(Strategy::Reload));
    assert_eq!(refresh.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(s.l2.count(TierOp::Get), reads, "no tier was read");
    assert_eq!(s.loads.load(Ordering::SeqCst), 1);
    assert_eq!(in_l2(&s, 1).as_deref(), Some("row 1"));
    assert_eq!(s.cache.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(s.l2.count(TierOp::Get), reads, "the next get hits L1");

    // The source no longer has it: the refresh removes it everywhere.
    s.cache
        .insert(500, "deleted upstream".into())
        .await
        .unwrap();
    assert_eq!(refresh.get(&500).await.unwrap(), None);
    assert_eq!(in_l2(&s, 500), None);
    assert_eq!(s.cache.l1_len(), Some(1), "only key 1 is left in L1");

    // A per-call closure refreshes the same way.
    let closure = refresh.get_or_insert(&1, || async { "from the closure".to_string() });
    assert_eq!(closure.await.unwrap().as_deref(), Some("from the closure"));
    assert_eq!(in_l2(&s, 1).as_deref(), Some("from the closure"));
}

#[tokio::test]
async fn a_failed_refresh_keeps_what_the_tiers_hold() {
    let s = setup();
    s.cache.insert(1, "kept".into()).await.unwrap();
    let refresh = s.cache.with(strategy(Strategy::Reload));
    let failing = refresh.try_get_or_insert(&1, || async {
        Err::<String, _>(std::io::Error::other("db down"))
    });
    assert_eq!(failing.await.unwrap_err().kind(), ErrorKind::Loader);
    assert_eq!(s.cache.get(&1).await.unwrap().as_deref(), Some("kept"));
    assert_eq!(s.cache.stats().load_errors, 1);
}

#[tokio::test]
async fn invalidate_then_load_replaces_a_stale_l2_copy() {
    let s = setup();
    s.cache.insert(1, "stale".into()).await.unwrap();
    let fresh = s.cache.with(strategy(Strategy::InvalidateThenLoad));
    assert_eq!(fresh.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(s.l2.count(TierOp::Invalidate), 1);
    assert_eq!(s.loads.load(Ordering::SeqCst), 1);
    assert_eq!(in_l2(&s, 1).as_deref(), Some("row 1"));
}

#[tokio::test]
async fn bypass_loads_and_stores_nothing() {
    let s = setup();
    s.cache.insert(1, "cached".into()).await.unwrap();
    let (reads, writes) = (s.l2.count(TierOp::Get), s.l2.count(TierOp::Insert));
    let bypass = s.cache.with(strategy(Strategy::Bypass));
    assert_eq!(bypass.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(bypass.get(&500).await.unwrap(), None);
    assert_eq!(
        (s.l2.count(TierOp::Get), s.l2.count(TierOp::Insert)),
        (reads, writes),
        "no tier read or written"
    );
    assert_eq!(s.cache.get(&1).await.unwrap().as_deref(), Some("cached"));
    assert_eq!(s.loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn reload_and_bypass_without_a_loader_are_config_errors() {
    let cache: Cache<u64, String> = Cache::builder().build().unwrap();
    for strategy_ in [Strategy::Reload, Strategy::Bypass] {
        let error = cache.with(strategy(strategy_)).get(&1).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
    }
}

#[tokio::test]
async fn skip_l1_reads_and_fills_only_the_tiers_below() {
    let s = setup();
    let below = s.cache.with(Options::new().skip_l1());
    assert_eq!(below.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(s.cache.l1_len(), Some(0), "L1 was not filled");
    assert_eq!(in_l2(&s, 1).as_deref(), Some("row 1"));
    assert_eq!(below.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(s.l2.count(TierOp::Get), 2, "both reads went to L2");
    assert_eq!(s.cache.l1_len(), Some(0), "a hit in L2 is not promoted");
}

#[tokio::test]
async fn skip_remote_reads_and_fills_only_l1() {
    let s = setup();
    let local = s.cache.with(Options::new().skip_remote());
    assert_eq!(local.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(s.l2.count(TierOp::Get), 0);
    assert_eq!(s.l2.count(TierOp::Insert), 0);
    assert_eq!(s.cache.l1_len(), Some(1));
    assert_eq!(local.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(s.loads.load(Ordering::SeqCst), 1, "the second get hit L1");
}

#[tokio::test]
async fn an_insert_that_skips_a_tier_drops_its_copy() {
    let clock = FrozenClock::new();
    let l2 = MemoryTier::new(100);
    let cache: Cache<u64, &str> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    cache.insert(1, "old").await.unwrap();
    let outcome = cache
        .with(Options::new().skip_l1())
        .insert(1, "new")
        .await
        .unwrap();
    assert!(matches!(
        outcome.tiers()[0].result(),
        TierWriteResult::Declined
    ));
    assert_eq!(cache.l1_len(), Some(0), "L1 dropped the replaced value");
    assert_eq!(l2.lookup(&1).map(CacheEntry::into_value), Some("new"));
    assert_eq!(cache.get(&1).await.unwrap(), Some("new"));
}

#[tokio::test]
async fn the_call_ttl_caps_loads_and_inserts() {
    let s = setup();
    let short = Options::new().ttl(Duration::from_secs(5));
    assert_eq!(
        s.cache.with(short).get(&1).await.unwrap().as_deref(),
        Some("row 1")
    );
    s.cache.with(short).insert(2, "two".into()).await.unwrap();
    for key in [1, 2] {
        let entry = s.cache.get_entry(&key).await.unwrap().unwrap();
        assert_eq!(entry.ttl(), Some(Duration::from_secs(5)));
    }
    s.clock.advance(Duration::from_secs(6));
    let cache_only = s.cache.with(strategy(Strategy::CacheOnly));
    assert_eq!(
        cache_only.get(&1).await.unwrap(),
        None,
        "expired everywhere"
    );
    assert_eq!(cache_only.get(&2).await.unwrap(), None);
    assert_eq!(s.cache.get(&3).await.unwrap().as_deref(), Some("row 3"));
    let entry = s.cache.get_entry(&3).await.unwrap().unwrap();
    assert_eq!(
        entry.ttl(),
        Some(Duration::from_secs(60)),
        "others keep the cache's TTL"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refresh_overtaken_by_a_write_while_it_waited_for_the_key_writes_nothing() {
    let s = setup();
    s.l2.delay(TierOp::Insert, Duration::from_millis(100));
    let settle = || tokio::time::sleep(Duration::from_millis(1));
    // A `get` whose load is published into L2 slowly, under the key's lock.
    let cache = s.cache.clone();
    let publisher = tokio::spawn(async move { cache.get(&1).await });
    settle().await;
    // A refresh whose load ends only when told.
    let go = Arc::new(tokio::sync::Notify::new());
    let (cache, told) = (s.cache.clone(), Arc::clone(&go));
    let refresh = tokio::spawn(async move {
        let refresh = cache.with(strategy(Strategy::Reload));
        let load = || async move {
            told.notified().await;
            "read before the write".to_string()
        };
        refresh.get_or_insert(&1, load).await
    });
    settle().await;
    // A write, waiting for the key's lock; then the refresh's load ends, and the refresh
    // waits for the lock behind it.
    let cache = s.cache.clone();
    let writer = tokio::spawn(async move { cache.insert(1, "written".into()).await });
    settle().await;
    go.notify_one();
    publisher.await.unwrap().unwrap();
    writer.await.unwrap().unwrap();
    let refreshed = refresh.await.unwrap().unwrap();
    assert_eq!(
        refreshed.as_deref(),
        Some("read before the write"),
        "the caller gets what it loaded"
    );
    assert_eq!(
        in_l2(&s, 1).as_deref(),
        Some("written"),
        "the write stands in L2"
    );
    assert_eq!(s.cache.get(&1).await.unwrap().as_deref(), Some("written"));
}

/// cache-kit's four strategies, by cache-kit's names, do what they do there: `Fresh`
/// never loads, `Refresh` loads only on a miss and stores it, `Invalidate` removes the
/// key and loads, `Bypass` loads and stores nothing.
#[tokio::test]
async fn cache_kit_s_strategies_by_their_names_do_what_they_do_there() {
    let s = setup();
    let fresh = s.cache.with(strategy(Strategy::Fresh));
    assert_eq!(fresh.get(&1).await.unwrap(), None, "a miss, not a load");
    assert_eq!(s.loads.load(Ordering::SeqCst), 0);

    let refresh = s.cache.with(strategy(Strategy::Refresh));
    assert_eq!(refresh.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(s.loads.load(Ordering::SeqCst), 1, "loaded on the miss");
    assert_eq!(in_l2(&s, 1).as_deref(), Some("row 1"), "and stored");
    s.cache.insert(1, "cached".into()).await.unwrap();
    assert_eq!(refresh.get(&1).await.unwrap().as_deref(), Some("cached"));
    assert_eq!(s.loads.load(Ordering::SeqCst), 1, "a hit loads nothing");
    assert_eq!(fresh.get(&1).await.unwrap().as_deref(), Some("cached"));

    let invalidate = s.cache.with(strategy(Strategy::Invalidate));
    assert_eq!(invalidate.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert_eq!(s.loads.load(Ordering::SeqCst), 2, "removed, then loaded");
    assert_eq!(in_l2(&s, 1).as_deref(), Some("row 1"));

    s.cache.insert(2, "cached".into()).await.unwrap();
    let bypass = s.cache.with(strategy(Strategy::Bypass));
    assert_eq!(bypass.get(&2).await.unwrap().as_deref(), Some("row 2"));
    assert_eq!(s.loads.load(Ordering::SeqCst), 3, "loaded, though cached");
    assert_eq!(
        in_l2(&s, 2).as_deref(),
        Some("cached"),
        "and stored nowhere"
    );
    assert_eq!(s.cache.get(&2).await.unwrap().as_deref(), Some("cached"));
}
