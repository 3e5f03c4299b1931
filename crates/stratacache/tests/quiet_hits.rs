//! A hit no one listens to (no event handler, no subscriber at `DEBUG`) is answered on a
//! shorter path than one someone listens to. Both must answer, count, expire, refresh
//! and serve stale values alike: each scenario runs on a cache with an event handler
//! and on one without, and their answers and stats must be the same.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratacache::{
    Cache, CacheBuilder, CacheStats, FailSafe, Fallback, FrozenClock, MemoryTier, RefreshTask,
    TimeToRefresh,
};

const SEC: Duration = Duration::from_secs(1);

/// What a scenario saw: every answer, then the cache's stats.
type Seen = (Vec<Option<String>>, CacheStats);

/// `builder`, with an event handler when `listening` (every operation takes the full
/// path), built.
fn build(builder: CacheBuilder<u64, String>, listening: bool) -> Cache<u64, String> {
    let builder = if listening {
        builder.event_handler(|_| {})
    } else {
        builder
    };
    builder.build().unwrap()
}

async fn expiry(l1_s3_fifo: bool, listening: bool) -> Seen {
    let clock = FrozenClock::new();
    let cache = build(
        Cache::builder()
            .clock(&clock)
            .memory(move |l1| if l1_s3_fifo { l1.s3_fifo() } else { l1 })
            .ttl(10 * SEC)
            .fallback(Fallback::tier(MemoryTier::new(100)).ttl(60 * SEC)),
        listening,
    );
    cache.insert(1, "one".into()).await.unwrap();
    cache
        .insert_with_ttl(2, "two".into(), 20 * SEC)
        .await
        .unwrap();
    let mut seen = Vec::new();
    for advance in [0, 9, 2, 5, 10] {
        clock.advance(advance * SEC);
        for key in [1, 2, 3] {
            seen.push(cache.get(&key).await.unwrap());
        }
    }
    (seen, cache.stats())
}

#[tokio::test]
async fn expiry_on_moka_is_judged_alike() {
    let (quiet, listened) = (expiry(false, false).await, expiry(false, true).await);
    assert_eq!(quiet, listened);
    assert!(quiet.1.tiers[0].hits > 0 && quiet.1.tiers[1].hits > 0);
}

#[cfg(feature = "quick_cache")]
#[tokio::test]
async fn expiry_on_s3_fifo_is_judged_alike() {
    let (quiet, listened) = (expiry(true, false).await, expiry(true, true).await);
    assert_eq!(quiet, listened);
    assert!(
        quiet.1.tiers[0].expired > 0,
        "the engine kept expired entries"
    );
}

async fn fail_safe(listening: bool) -> Seen {
    let clock = FrozenClock::new();
    let down = Arc::new(AtomicBool::new(false));
    let is_down = Arc::clone(&down);
    let cache = build(
        Cache::builder()
            .clock(&clock)
            .ttl(60 * SEC)
            .loader(move |id: u64| {
                let down = is_down.load(Ordering::SeqCst);
                async move {
                    if down {
                        Err(std::io::Error::other("database down"))
                    } else {
                        Ok(Some(format!("row {id}")))
                    }
                }
            })
            .fail_safe(FailSafe::new(3_600 * SEC).throttle(10 * SEC)),
        listening,
    );
    let mut seen = vec![cache.get(&1).await.unwrap()];
    down.store(true, Ordering::SeqCst);
    for advance in [61, 0, 5, 6, 3_600] {
        clock.advance(advance * SEC);
        seen.push(cache.get(&1).await.ok().flatten());
    }
    (seen, cache.stats())
}

#[tokio::test]
async fn fail_safe_serves_stale_values_alike() {
    let (quiet, listened) = (fail_safe(false).await, fail_safe(true).await);
    assert_eq!(quiet, listened);
    assert!(quiet.1.stale_served > 0);
}

async fn refresh(listening: bool) -> (Seen, usize) {
    let clock = FrozenClock::new();
    let queued = Arc::new(Mutex::new(Vec::<RefreshTask>::new()));
    let queue = Arc::clone(&queued);
    let cache = build(
        Cache::builder()
            .clock(&clock)
            .ttl(60 * SEC)
            .loader(|id: u64| async move { Ok::<_, std::io::Error>(Some(format!("new {id}"))) })
            .time_to_refresh(
                TimeToRefresh::new(10 * SEC).spawner(move |task| queue.lock().unwrap().push(task)),
            ),
        listening,
    );
    cache.insert(1, "old".into()).await.unwrap();
    let mut seen = Vec::new();
    for advance in [0, 9, 1, 0, 0] {
        clock.advance(advance * SEC);
        seen.push(cache.get(&1).await.unwrap());
    }
    let tasks: Vec<_> = queued.lock().unwrap().drain(..).collect();
    let started = tasks.len();
    for task in tasks {
        task.await;
    }
    seen.push(cache.get(&1).await.unwrap());
    ((seen, cache.stats()), started)
}

#[tokio::test]
async fn refreshes_start_alike() {
    let (quiet, listened) = (refresh(false).await, refresh(true).await);
    assert_eq!(quiet, listened);
    assert_eq!(quiet.1, 1, "three hits due for a refresh start one");
}

async fn tags(listening: bool) -> Seen {
    let clock = FrozenClock::new();
    let cache = build(Cache::builder().clock(&clock).ttl(60 * SEC), listening);
    cache.tagged(["t"]).insert(1, "one".into()).await.unwrap();
    cache.insert(2, "two".into()).await.unwrap();
    let mut seen = vec![cache.get(&1).await.unwrap(), cache.get(&2).await.unwrap()];
    clock.advance(SEC);
    cache.invalidate_tag("t").await.unwrap();
    seen.extend([cache.get(&1).await.unwrap(), cache.get(&2).await.unwrap()]);
    (seen, cache.stats())
}

#[tokio::test]
async fn tagged_entries_are_judged_alike() {
    let (quiet, listened) = (tags(false).await, tags(true).await);
    assert_eq!(quiet, listened);
    assert_eq!(quiet.0[2], None, "invalidated by its tag");
}

/// A `get`'s future is a few words, with a loader as without: the loader is made only
/// once the quiet hit has not answered, so a hit's first poll copies none of it out of
/// the future (it was 24 bytes more, over this bound).
#[test]
fn a_gets_future_carries_no_loader() {
    let loading: Cache<u64, u64> = Cache::builder()
        .loader(|key: u64| async move { Ok::<_, std::io::Error>(Some(key)) })
        .build()
        .unwrap();
    let size = std::mem::size_of_val(&loading.get(&1));
    assert!(
        size <= 6 * std::mem::size_of::<usize>(),
        "a get's future is {size} bytes"
    );
}
