//! The consistency model, one deterministic scenario per race: once a write returns, no
//! lookup that starts afterwards sees what it replaced, and L1 never holds what L2
//! lacks. Tier latency comes from `MockTier` delays on paused tokio time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stratacache::mock::{MockTier, TierOp};
use stratacache::{
    Cache, CacheEntry, CacheTier, Fallback, FrozenClock, InsertPolicy, TierWriteResult,
    TimeToRefresh,
};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn two_tiers(
    clock: &FrozenClock,
    l2: &MockTier<u32, String>,
    stampede: bool,
) -> Cache<u32, String> {
    Cache::builder()
        .clock(clock)
        .fallback(Fallback::tier(l2.clone()))
        .stampede_protection(stampede)
        .build()
        .unwrap()
}

async fn seed(l2: &MockTier<u32, String>, clock: &FrozenClock, value: &str) {
    l2.insert(
        1,
        CacheEntry::new(value.to_string(), clock.now(), None),
        None,
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_get_after_an_invalidate_never_joins_a_flight_from_before_it() {
    for stampede in [true, false] {
        let clock = FrozenClock::new();
        let l2 = MockTier::new();
        seed(&l2, &clock, "old").await;
        l2.delay(TierOp::Get, 100 * MS);
        let cache = two_tiers(&clock, &l2, stampede);

        let early = tokio::spawn({
            let cache = cache.clone();
            async move { cache.get(&1).await.unwrap() }
        });
        tokio::time::sleep(20 * MS).await;
        cache.invalidate(&1).await.unwrap();
        // Started after the invalidate returned: it must not receive the early flight's
        // "old", which was read before the invalidate.
        assert_eq!(cache.get(&1).await.unwrap(), None, "stampede = {stampede}");
        assert_eq!(
            early.await.unwrap().as_deref(),
            Some("old"),
            "overlapping: either"
        );
        assert_eq!(
            cache.get(&1).await.unwrap(),
            None,
            "and nothing was put back"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn overlapping_inserts_leave_l1_and_l2_equal() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tiers(&clock, &l2, false);
    l2.delay(TierOp::Insert, 100 * MS);
    let slow = tokio::spawn({
        let cache = cache.clone();
        async move { cache.insert(1, "first".into()).await.unwrap() }
    });
    tokio::time::sleep(10 * MS).await;
    l2.delay(TierOp::Insert, Duration::ZERO);
    cache.insert(1, "second".into()).await.unwrap();
    slow.await.unwrap();
    let in_l2 = l2.peek(&1).map(CacheEntry::into_value);
    assert_eq!(
        in_l2.as_deref(),
        Some("second"),
        "writes of a key land in order"
    );
    assert_eq!(cache.get(&1).await.unwrap(), in_l2);
}

#[tokio::test(start_paused = true)]
async fn an_insert_overlapping_a_slow_invalidate_leaves_l1_and_l2_equal() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tiers(&clock, &l2, false);
    cache.insert(1, "old".into()).await.unwrap();
    l2.delay(TierOp::Invalidate, 100 * MS);
    let invalidate = tokio::spawn({
        let cache = cache.clone();
        async move { cache.invalidate(&1).await.unwrap() }
    });
    tokio::time::sleep(10 * MS).await;
    cache.insert(1, "new".into()).await.unwrap();
    invalidate.await.unwrap();
    let in_l2 = l2.peek(&1).map(CacheEntry::into_value);
    assert_eq!(in_l2.as_deref(), Some("new"));
    assert_eq!(cache.get(&1).await.unwrap(), in_l2);
}

#[tokio::test(start_paused = true)]
async fn a_promotion_that_raced_a_write_stores_nothing_and_undoes_nothing() {
    let clock = FrozenClock::new();
    let (l1, l2) = (MockTier::new(), MockTier::new());
    seed(&l2, &clock, "old").await;
    l2.delay(TierOp::Get, 100 * MS);
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .tier(l1.clone())
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get(&1).await.unwrap() }
    });
    tokio::time::sleep(10 * MS).await;
    l2.delay(TierOp::Get, Duration::ZERO);
    cache.insert(1, "new".into()).await.unwrap();
    l1.reset_calls();
    assert_eq!(
        reader.await.unwrap().as_deref(),
        Some("old"),
        "it overlapped"
    );
    assert_eq!(
        l1.calls(),
        vec![],
        "no write of the old value into L1, and no undo that could remove the new one"
    );
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("new"));
}

#[tokio::test(start_paused = true)]
async fn a_load_that_raced_a_write_stores_nothing() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache = two_tiers(&clock, &l2, true);
    let loader = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .get_or_insert(&1, || async {
                    tokio::time::sleep(100 * MS).await;
                    "loaded before the insert".to_string()
                })
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(10 * MS).await;
    cache.insert(1, "inserted".into()).await.unwrap();
    assert_eq!(loader.await.unwrap(), "loaded before the insert");
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("inserted"));
    assert_eq!(
        l2.peek(&1).map(CacheEntry::into_value).as_deref(),
        Some("inserted")
    );
}

#[tokio::test]
async fn an_l1_that_declines_a_new_value_drops_its_old_copy() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .insert_policy(InsertPolicy::when(|entry: &CacheEntry<String>| {
            entry.value().len() <= 5
        }))
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    cache.insert(1, "short".into()).await.unwrap();
    let outcome = cache.insert(1, "much longer".into()).await.unwrap();
    assert!(outcome.is_complete());
    assert!(matches!(
        outcome.tiers()[0].result(),
        TierWriteResult::Declined
    ));
    assert_eq!(cache.l1_len(), Some(0), "the old copy is gone from L1");
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("much longer"));
}

#[tokio::test]
async fn a_clock_that_steps_back_expires_entries_from_the_future() {
    let clock = FrozenClock::new();
    let t0 = clock.now();
    let l2 = MockTier::new();
    let cache = two_tiers(&clock, &l2, false);
    cache
        .insert_with_ttl(1, "v".into(), 60 * SEC)
        .await
        .unwrap();
    clock.set(t0 - 500 * MS);
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("v"),
        "within the allowed skew the entry is fresh"
    );
    clock.set(t0 - 3_600 * SEC);
    assert_eq!(
        cache.get(&1).await.unwrap(),
        None,
        "an hour back: its age can't be judged, so it doesn't live an hour longer"
    );
}

/// Counts the refresh loads alive at once, and the most ever alive together.
#[derive(Clone, Default)]
struct Loads {
    started: Arc<AtomicUsize>,
    alive: Arc<AtomicUsize>,
    most_alive: Arc<AtomicUsize>,
}

struct Alive(Loads);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Loads {
    fn begin(&self) -> Alive {
        self.started.fetch_add(1, Ordering::SeqCst);
        let alive = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_alive.fetch_max(alive, Ordering::SeqCst);
        Alive(self.clone())
    }
}

async fn let_tasks_run() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_refresh_is_the_only_one_for_its_key_and_times_out() {
    let clock = FrozenClock::new();
    let loads = Loads::default();
    let counted = loads.clone();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .ttl(3_600 * SEC)
        .time_to_refresh(TimeToRefresh::new(10 * SEC).loader(move |_key: u32| {
            let alive = counted.begin();
            async move {
                let _alive = alive;
                std::future::pending::<Result<Option<String>, std::io::Error>>().await
            }
        }))
        .build()
        .unwrap();
    cache.insert(1, "v".into()).await.unwrap();
    for _ in 0..10 {
        clock.advance(10 * SEC);
        assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("v"));
        let_tasks_run().await;
    }
    assert_eq!(
        loads.started.load(Ordering::SeqCst),
        1,
        "one refresh, however late"
    );
    assert_eq!(loads.alive.load(Ordering::SeqCst), 1);

    tokio::time::advance(10 * SEC).await; // the refresh timeout (the interval)
    let_tasks_run().await;
    assert_eq!(loads.alive.load(Ordering::SeqCst), 0, "no task left behind");
    assert_eq!(cache.stats().refreshes_failed, 1);

    clock.advance(10 * SEC); // its rest is over
    cache.get(&1).await.unwrap();
    let_tasks_run().await;
    assert_eq!(loads.started.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn slow_refreshes_of_one_key_never_overlap() {
    let clock = FrozenClock::new();
    let loads = Loads::default();
    let counted = loads.clone();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .ttl(3_600 * SEC)
        .time_to_refresh(
            TimeToRefresh::new(SEC)
                .timeout(30 * SEC)
                .loader(move |_key: u32| {
                    let alive = counted.begin();
                    async move {
                        let _alive = alive;
                        tokio::time::sleep(5 * SEC).await;
                        Ok::<_, std::io::Error>(Some("refreshed".to_string()))
                    }
                }),
        )
        .build()
        .unwrap();
    cache.insert(1, "v".into()).await.unwrap();
    for _ in 0..40 {
        clock.advance(SEC / 2);
        cache.get(&1).await.unwrap();
        tokio::time::advance(SEC / 2).await;
        let_tasks_run().await;
    }
    assert_eq!(loads.most_alive.load(Ordering::SeqCst), 1);
    assert!(
        loads.started.load(Ordering::SeqCst) >= 2,
        "and they do repeat"
    );
}

/// A remote tier that applies a write at once and answers late, as Redis does when the
/// reply is slow.
#[derive(Clone, Default)]
struct AppliesThenWaits {
    entries: Arc<std::sync::Mutex<std::collections::HashMap<u32, CacheEntry<String>>>>,
    reply_after_ms: Arc<AtomicUsize>,
}

impl CacheTier<u32, String> for AppliesThenWaits {
    async fn get(&self, key: &u32) -> Result<Option<CacheEntry<String>>, stratacache::Error> {
        Ok(self.entries.lock().unwrap().get(key).cloned())
    }
    async fn insert(
        &self,
        key: u32,
        entry: CacheEntry<String>,
        _keep_for: Option<Duration>,
    ) -> Result<(), stratacache::Error> {
        self.entries.lock().unwrap().insert(key, entry);
        let wait = self.reply_after_ms.load(Ordering::SeqCst) as u64;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        Ok(())
    }
    async fn invalidate(&self, key: &u32) -> Result<(), stratacache::Error> {
        self.entries.lock().unwrap().remove(key);
        Ok(())
    }
    async fn clear(&self) -> Result<(), stratacache::Error> {
        self.entries.lock().unwrap().clear();
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_write_cancelled_after_reaching_l2_leaves_no_stale_l1_copy() {
    let clock = FrozenClock::new();
    let l1 = stratacache::MemoryTier::new(100);
    let l2 = AppliesThenWaits::default();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .tier(l1.clone())
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    cache.insert(1, "old".into()).await.unwrap();
    l2.reply_after_ms.store(100, Ordering::SeqCst);
    let cancelled = tokio::time::timeout(10 * MS, cache.insert(1, "new".into())).await;
    assert!(cancelled.is_err(), "the caller gave up on the write");
    assert!(
        l1.lookup(&1).is_none(),
        "L1 must not keep \"old\" while L2 already holds \"new\""
    );
    l2.reply_after_ms.store(0, Ordering::SeqCst);
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("new"));
}
