//! Fallback between tiers: promotion, policies, depth, invalidation and clear.

use std::time::Duration;

use stratacache::{Cache, CacheEntry, Fallback, FrozenClock, InsertPolicy, PromotionPolicy};
use stratacache_tier::CacheTier;
use stratacache_tier::mock::{MockTier, TierCall, TierOp};

const SEC: Duration = Duration::from_secs(1);

fn two_tier(clock: &FrozenClock, l2: &MockTier<u32, String>) -> Cache<u32, String> {
    Cache::builder()
        .clock(clock)
        .ttl(60 * SEC)
        .fallback(Fallback::tier(l2.clone()).ttl(3_600 * SEC))
        .build()
        .unwrap()
}

#[tokio::test]
async fn l2_hit_is_promoted_with_its_remaining_ttl_and_age() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tier(&clock, &l2);
    let produced = clock.now();
    l2.insert(
        1,
        CacheEntry::new("v".to_string(), produced, Some(100 * SEC)),
        None,
    )
    .await
    .unwrap();
    clock.advance(70 * SEC);

    let entry = cache.get_entry(&1).await.unwrap().unwrap();
    assert_eq!(
        entry.cached_at(),
        produced,
        "promotion must not make the value younger"
    );
    // L1 keeps it for min(30 s left in L2, 60 s L1 TTL): 30 s.
    l2.fail(TierOp::Get, stratacache::ErrorKind::Unavailable);
    clock.advance(29 * SEC);
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("v"),
        "served by L1"
    );
    clock.advance(SEC);
    assert_eq!(
        cache.get(&1).await.unwrap(),
        None,
        "the L1 copy must expire with the L2 entry"
    );
}

#[tokio::test]
async fn promotion_is_capped_by_the_l1_ttl() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tier(&clock, &l2);
    l2.insert(
        1,
        CacheEntry::new("v".to_string(), clock.now(), Some(3_600 * SEC)),
        None,
    )
    .await
    .unwrap();
    assert!(cache.get(&1).await.unwrap().is_some());
    l2.reset_calls();
    clock.advance(59 * SEC);
    assert!(cache.get(&1).await.unwrap().is_some());
    assert_eq!(l2.count(TierOp::Get), 0, "L1 answers within its TTL");
    clock.advance(SEC);
    assert!(cache.get(&1).await.unwrap().is_some());
    assert_eq!(
        l2.count(TierOp::Get),
        1,
        "after the L1 TTL, L2 is asked again"
    );
}

#[tokio::test]
async fn promotion_policy_never_keeps_l1_empty() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::tier(l2.clone()).promotion(PromotionPolicy::never()))
        .build()
        .unwrap();
    l2.insert(1, CacheEntry::new("v".into(), clock.now(), None), None)
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(cache.get(&1).await.unwrap().is_some());
    }
    assert_eq!(l2.count(TierOp::Get), 3);
    assert_eq!(cache.l1_len(), Some(0));
}

#[tokio::test]
async fn promotion_predicate_sees_the_entry() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::tier(l2.clone()).promotion(PromotionPolicy::when(
            |entry: &CacheEntry<String>| entry.value().len() < 4,
        )))
        .build()
        .unwrap();
    l2.insert(1, CacheEntry::new("abc".into(), clock.now(), None), None)
        .await
        .unwrap();
    l2.insert(2, CacheEntry::new("abcdef".into(), clock.now(), None), None)
        .await
        .unwrap();
    cache.get(&1).await.unwrap();
    cache.get(&2).await.unwrap();
    assert_eq!(cache.l1_len(), Some(1));
    assert_eq!(cache.stats().tiers[0].inserts, 1);
}

#[tokio::test]
async fn insert_policy_per_tier() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .insert_policy(InsertPolicy::when(|entry: &CacheEntry<String>| {
            entry.value() != "big"
        }))
        .fallback(Fallback::tier(l2.clone()).insert_policy(InsertPolicy::never()))
        .build()
        .unwrap();
    cache.insert(1, "small".into()).await.unwrap();
    cache.insert(2, "big".into()).await.unwrap();
    assert_eq!(l2.count(TierOp::Insert), 0);
    assert_eq!(cache.l1_len(), Some(1));
    let stats = cache.stats();
    assert_eq!(stats.tiers[0].insert_rejections, 1);
    assert_eq!(stats.tiers[1].insert_rejections, 2);
}

#[tokio::test]
async fn insert_writes_the_lowest_tier_first() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let l3 = MockTier::new();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .tier(MockTier::<u32, String>::new())
        .fallback(Fallback::tier(l2.clone()))
        .fallback(Fallback::tier(l3.clone()))
        .build()
        .unwrap();
    // Strict, with L3 failing: nothing above it may be written.
    let strict: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .strict(true)
        .fallback(Fallback::tier(l2.clone()))
        .fallback(Fallback::tier(l3.clone()))
        .build()
        .unwrap();
    cache.insert(1, "v".into()).await.unwrap();
    assert!(l2.peek(&1).is_some() && l3.peek(&1).is_some());
    l3.fail(TierOp::Insert, stratacache::ErrorKind::Unavailable);
    assert!(strict.insert(2, "w".into()).await.is_err());
    assert!(l2.peek(&2).is_none());
    assert_eq!(strict.l1_len(), Some(0));
}

#[tokio::test]
async fn three_tiers_fall_through_and_promote_to_both_above() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let l3 = MockTier::new();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::tier(l2.clone()).name("l2"))
        .fallback(Fallback::tier(l3.clone()).name("db"))
        .build()
        .unwrap();
    assert_eq!(cache.tier_names(), ["l1", "l2", "db"]);
    l3.insert(7, CacheEntry::new("deep".into(), clock.now(), None), None)
        .await
        .unwrap();
    assert_eq!(cache.get(&7).await.unwrap().as_deref(), Some("deep"));
    assert!(l2.peek(&7).is_some(), "promoted into L2");
    assert_eq!(cache.l1_len(), Some(1), "and into L1");
    // L2 was written before L1.
    assert_eq!(l2.calls(), vec![TierCall::Get(7), TierCall::Insert(7)]);
    let stats = cache.stats();
    assert_eq!(
        (
            stats.tiers[0].misses,
            stats.tiers[1].misses,
            stats.tiers[2].hits
        ),
        (1, 1, 1)
    );
    assert!((stats.hit_ratio() - 1.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn invalidate_and_clear_reach_every_tier_l1_first() {
    let clock = FrozenClock::new();
    let l1 = MockTier::new();
    let l2 = MockTier::new();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .tier(l1.clone())
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    cache.insert(1, "a".into()).await.unwrap();
    cache.insert(2, "b".into()).await.unwrap();
    cache.invalidate(&1).await.unwrap();
    assert!(l1.peek(&1).is_none() && l2.peek(&1).is_none());
    assert_eq!(l1.calls().last(), Some(&TierCall::Invalidate(1)));
    assert_eq!(cache.get(&1).await.unwrap(), None);
    assert_eq!(cache.get(&2).await.unwrap().as_deref(), Some("b"));
    cache.clear().await.unwrap();
    assert_eq!((l1.stored(), l2.stored()), (0, 0));
    assert_eq!(cache.get(&2).await.unwrap(), None);
}

#[tokio::test]
async fn contains_does_not_promote() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tier(&clock, &l2);
    l2.insert(1, CacheEntry::new("v".into(), clock.now(), Some(SEC)), None)
        .await
        .unwrap();
    assert!(cache.contains(&1).await.unwrap());
    assert_eq!(cache.l1_len(), Some(0));
    clock.advance(SEC);
    assert!(!cache.contains(&1).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn invalidate_during_a_slow_l2_read_is_not_undone_by_promotion() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tier(&clock, &l2);
    l2.insert(1, CacheEntry::new("old".into(), clock.now(), None), None)
        .await
        .unwrap();
    l2.delay(TierOp::Get, 10 * SEC);

    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get(&1).await }
    });
    tokio::task::yield_now().await; // the reader is now inside the slow L2 read
    assert_eq!(
        l2.in_flight(TierOp::Get),
        1,
        "the reader is inside the L2 read"
    );
    l2.heal();
    cache.invalidate(&1).await.unwrap();
    // The reader read "old" before the invalidation; it may return it, but must not
    // leave it in L1 for later readers.
    let _ = reader.await.unwrap().unwrap();
    assert_eq!(cache.get(&1).await.unwrap(), None);
    assert_eq!(cache.l1_len(), Some(0));
}

/// A tier that writes each change it receives into a log shared by every tier.
#[derive(Clone)]
struct Logged {
    name: &'static str,
    inner: MockTier<u32, String>,
    log: std::sync::Arc<std::sync::Mutex<Vec<(&'static str, &'static str)>>>,
}

impl Logged {
    fn note(&self, op: &'static str) {
        self.log.lock().unwrap().push((self.name, op));
    }
}

impl CacheTier<u32, String> for Logged {
    async fn get(&self, key: &u32) -> Result<Option<CacheEntry<String>>, stratacache::Error> {
        self.inner.get(key).await
    }
    async fn insert(
        &self,
        key: u32,
        entry: CacheEntry<String>,
        keep_for: Option<Duration>,
    ) -> Result<(), stratacache::Error> {
        self.note("insert");
        self.inner.insert(key, entry, keep_for).await
    }
    async fn invalidate(&self, key: &u32) -> Result<(), stratacache::Error> {
        self.note("invalidate");
        self.inner.invalidate(key).await
    }
    async fn clear(&self) -> Result<(), stratacache::Error> {
        self.note("clear");
        self.inner.clear().await
    }
}

#[tokio::test]
async fn writes_go_lowest_first_and_removals_l1_first_across_tiers() {
    let log = std::sync::Arc::default();
    let tier = |name| Logged {
        name,
        inner: MockTier::new(),
        log: std::sync::Arc::clone(&log),
    };
    let cache: Cache<u32, String> = Cache::builder()
        .tier(tier("l1"))
        .fallback(Fallback::tier(tier("l2")))
        .build()
        .unwrap();
    let take = || std::mem::take(&mut *log.lock().unwrap());
    cache.insert(1, "a".into()).await.unwrap();
    assert_eq!(take(), [("l2", "insert"), ("l1", "insert")]);
    cache.invalidate(&1).await.unwrap();
    assert_eq!(take(), [("l1", "invalidate"), ("l2", "invalidate")]);
    cache.clear().await.unwrap();
    assert_eq!(take(), [("l1", "clear"), ("l2", "clear")]);
}
