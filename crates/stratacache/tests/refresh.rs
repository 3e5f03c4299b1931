//! Time-to-refresh, driven by a frozen clock and a test-owned spawner (one test is on
//! the system clock, where L1 drops entries at their deadline itself: it plants entries
//! of known ages rather than waiting).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use stratacache::{
    Cache, CacheEntry, ErrorKind, Fallback, FrozenClock, MemoryTier, RefreshTask, TimeToRefresh,
};
use stratacache_tier::CacheTier;
use stratacache_tier::mock::{MockTier, TierOp};

const SEC: Duration = Duration::from_secs(1);

/// Refresh tasks queued by the cache, run when the test says so.
#[derive(Clone, Default)]
struct Queue(Arc<Mutex<Vec<RefreshTask>>>);

impl Queue {
    fn refresh(&self) -> TimeToRefresh<u32, String> {
        let queue = self.clone();
        TimeToRefresh::new(10 * SEC).spawner(move |task| queue.0.lock().unwrap().push(task))
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    async fn run(&self) {
        let tasks: Vec<_> = self.0.lock().unwrap().drain(..).collect();
        for task in tasks {
            task.await;
        }
    }
}

fn cache(clock: &FrozenClock, l2: &MockTier<u32, String>, queue: &Queue) -> Cache<u32, String> {
    Cache::builder()
        .clock(clock)
        .ttl(60 * SEC)
        .time_to_refresh(queue.refresh())
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn stale_hit_is_served_at_once_and_refreshed_once() {
    let clock = FrozenClock::new();
    let (l2, queue) = (MockTier::new(), Queue::default());
    let cache = cache(&clock, &l2, &queue);
    cache.insert(1, "old".into()).await.unwrap();

    clock.advance(9 * SEC);
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("old"));
    assert_eq!(queue.len(), 0, "younger than its time-to-refresh");

    clock.advance(SEC);
    for _ in 0..5 {
        assert_eq!(
            cache.get(&1).await.unwrap().as_deref(),
            Some("old"),
            "served stale at once"
        );
    }
    assert_eq!(queue.len(), 1, "five stale reads start one refresh");
    assert_eq!(cache.stats().refreshes_started, 1);

    // Meanwhile another instance wrote a newer value to L2.
    l2.insert(1, CacheEntry::new("new".into(), clock.now(), None), None)
        .await
        .unwrap();
    queue.run().await;
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("new"));
    assert_eq!(cache.stats().tiers[1].refresh_hits, 1);

    // The next refresh comes when the new value reaches its own time-to-refresh.
    clock.advance(9 * SEC);
    cache.get(&1).await.unwrap();
    assert_eq!(queue.len(), 0);
    clock.advance(SEC);
    cache.get(&1).await.unwrap();
    assert_eq!(queue.len(), 1);
}

/// On the system clock a moka L1 drops entries at their deadline itself, and its hits
/// are judged by the clock only for a refresh; a hit due for one must still start it.
/// The entries' ages are planted in L1, not waited for.
#[tokio::test]
async fn on_the_system_clock_a_quiet_hit_due_for_a_refresh_starts_one() {
    let (l1, l2, queue) = (MemoryTier::new(100), MockTier::new(), Queue::default());
    let cache: Cache<u32, String> = Cache::builder()
        .tier(l1.clone())
        .ttl(60 * SEC)
        .time_to_refresh(queue.refresh())
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    let now = SystemTime::now();
    let planted =
        |value: &str, age: Duration| CacheEntry::new(value.to_owned(), now - age, Some(60 * SEC));
    l1.store(1, planted("young", 5 * SEC), Some(55 * SEC));
    l1.store(2, planted("due", 20 * SEC), Some(40 * SEC));

    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("young"));
    assert_eq!(queue.len(), 0, "younger than its time-to-refresh");
    for _ in 0..3 {
        assert_eq!(cache.get(&2).await.unwrap().as_deref(), Some("due"));
    }
    assert_eq!(queue.len(), 1, "three hits due for a refresh start one");
    assert_eq!(cache.stats().refreshes_started, 1);
    assert_eq!(cache.stats().tiers[0].hits, 4, "every quiet hit is counted");

    l2.insert(
        2,
        CacheEntry::new("new".into(), SystemTime::now(), None),
        None,
    )
    .await
    .unwrap();
    queue.run().await;
    assert_eq!(cache.get(&2).await.unwrap().as_deref(), Some("new"));
}

#[tokio::test]
async fn refresh_that_finds_the_same_stale_value_does_not_storm() {
    let clock = FrozenClock::new();
    let (l2, queue) = (MockTier::new(), Queue::default());
    let cache = cache(&clock, &l2, &queue);
    cache.insert(1, "v".into()).await.unwrap(); // L2 holds a copy exactly as old as L1's
    clock.advance(10 * SEC);
    for _ in 0..5 {
        cache.get(&1).await.unwrap();
    }
    assert_eq!(queue.len(), 1);
    queue.run().await;
    assert_eq!(cache.stats().tiers[1].refresh_misses, 1);

    for _ in 0..5 {
        assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("v"));
    }
    assert_eq!(
        queue.len(),
        0,
        "no refresh storm after a refresh that found nothing newer"
    );
    clock.advance(9 * SEC);
    cache.get(&1).await.unwrap();
    assert_eq!(queue.len(), 0);
    clock.advance(SEC);
    cache.get(&1).await.unwrap();
    assert_eq!(
        queue.len(),
        1,
        "the next attempt one time-to-refresh after the last"
    );
    assert_eq!(l2.count(TierOp::Get), 1, "only the refresh itself read L2");
}

#[tokio::test]
async fn failed_refresh_keeps_the_old_value_until_its_ttl() {
    let clock = FrozenClock::new();
    let (l2, queue) = (MockTier::new(), Queue::default());
    let cache = cache(&clock, &l2, &queue);
    cache.insert(1, "v".into()).await.unwrap();
    l2.fail(TierOp::Get, ErrorKind::Unavailable);
    clock.advance(10 * SEC);
    cache.get(&1).await.unwrap();
    queue.run().await;
    let stats = cache.stats();
    assert_eq!((stats.refreshes_started, stats.refreshes_failed), (1, 1));
    clock.advance(49 * SEC);
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("v"));
    clock.advance(SEC);
    assert_eq!(
        cache.get(&1).await.unwrap(),
        None,
        "gone at its TTL; L2 is still down"
    );
}

#[tokio::test]
async fn refresh_loader_reloads_a_single_tier_cache() {
    let clock = FrozenClock::new();
    let queue = Queue::default();
    let version = Arc::new(Mutex::new(1));
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .ttl(60 * SEC)
        .time_to_refresh(queue.refresh().loader({
            let version = Arc::clone(&version);
            move |key| {
                let version = *version.lock().unwrap();
                async move { Ok::<_, std::io::Error>(Some(format!("{key} v{version}"))) }
            }
        }))
        .build()
        .unwrap();
    let loaded = cache
        .get_or_insert(&7, || async { "7 v1".to_string() })
        .await
        .unwrap();
    assert_eq!(loaded, "7 v1");
    *version.lock().unwrap() = 2;
    clock.advance(10 * SEC);
    assert_eq!(cache.get(&7).await.unwrap().as_deref(), Some("7 v1"));
    queue.run().await;
    assert_eq!(cache.get(&7).await.unwrap().as_deref(), Some("7 v2"));
    let stats = cache.stats();
    assert_eq!((stats.loads, stats.refreshes_failed), (2, 0));
}

#[tokio::test]
async fn default_spawner_refreshes_on_the_tokio_runtime() {
    let clock = FrozenClock::new();
    let l2 = MockTier::new();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .ttl(60 * SEC)
        .time_to_refresh(TimeToRefresh::new(10 * SEC))
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    cache.insert(1, "old".into()).await.unwrap();
    clock.advance(10 * SEC);
    l2.insert(1, CacheEntry::new("new".into(), clock.now(), None), None)
        .await
        .unwrap();
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("old"));
    for _ in 0..100 {
        if cache.stats().tiers[1].refresh_hits == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("new"));
}

#[test]
fn refresh_settings_that_cannot_work_are_rejected() {
    let too_late = Cache::<u32, String>::builder()
        .ttl(10 * SEC)
        .time_to_refresh(TimeToRefresh::new(10 * SEC))
        .fallback(Fallback::memory(|tier| tier))
        .build()
        .unwrap_err();
    assert_eq!(too_late.kind(), ErrorKind::Config);
    let nothing_to_refresh_from = Cache::<u32, String>::builder()
        .time_to_refresh(TimeToRefresh::new(10 * SEC))
        .build()
        .unwrap_err();
    assert_eq!(nothing_to_refresh_from.kind(), ErrorKind::Config);
}

#[test]
fn outside_a_runtime_a_refresh_fails_visibly_and_the_value_is_still_served() {
    let clock = FrozenClock::new();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .time_to_refresh(TimeToRefresh::new(10 * SEC))
        .fallback(Fallback::memory(|tier| tier))
        .build()
        .unwrap();
    futures::executor::block_on(async {
        cache.insert(1, "v".into()).await.unwrap();
        clock.advance(10 * SEC);
        assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("v"));
        assert_eq!(cache.stats().refreshes_failed, 1);
        cache.get(&1).await.unwrap();
        assert_eq!(cache.stats().refreshes_failed, 1, "the key rests, no storm");
        clock.advance(10 * SEC);
        cache.get(&1).await.unwrap();
        assert_eq!(
            cache.stats().refreshes_failed,
            2,
            "and is tried again: a task that never ran does not hold its key forever"
        );
    });
}

#[tokio::test]
async fn a_refresh_task_its_spawner_dropped_releases_its_key() {
    let clock = FrozenClock::new();
    let (l2, queue) = (MockTier::new(), Queue::default());
    let cache = cache(&clock, &l2, &queue);
    cache.insert(1, "v".into()).await.unwrap();
    clock.advance(10 * SEC);
    cache.get(&1).await.unwrap();
    assert_eq!(queue.len(), 1);
    queue.0.lock().unwrap().clear(); // dropped, never run
    clock.advance(10 * SEC);
    cache.get(&1).await.unwrap();
    assert_eq!(queue.len(), 1, "claimed again after its rest");
}

#[tokio::test]
async fn refresh_jitter_spreads_refreshes_before_their_time() {
    let (clock, queue) = (FrozenClock::new(), Queue::default());
    let sink = queue.clone();
    let cache: Cache<u32, String> = Cache::builder()
        .clock(&clock)
        .time_to_refresh(
            TimeToRefresh::new(60 * SEC)
                .jitter(30 * SEC)
                .spawner(move |task| sink.0.lock().unwrap().push(task)),
        )
        .fallback(Fallback::memory(|tier| tier))
        .build()
        .unwrap();
    for key in 0..100 {
        cache.insert(key, "v".into()).await.unwrap();
        clock.advance(Duration::from_millis(7)); // produced at slightly different times
    }
    clock.advance(29 * SEC);
    for key in 0..100 {
        cache.get(&key).await.unwrap();
    }
    assert_eq!(queue.len(), 0, "none before after - jitter");
    clock.advance(16 * SEC); // ages 45 s to 45.7 s: halfway into the jitter
    for key in 0..100 {
        cache.get(&key).await.unwrap();
    }
    let early = queue.len();
    assert!((15..=85).contains(&early), "about half due: {early}");
    clock.advance(15 * SEC); // every entry past 60 s
    for key in 0..100 {
        cache.get(&key).await.unwrap();
    }
    assert_eq!(queue.len(), 100, "all due by `after`");
}
