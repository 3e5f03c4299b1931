//! A cache over the S3-FIFO L1 engine (feature `quick_cache`): the engine keeps no time,
//! so the cache judges expiry on every hit, with any clock.
#![cfg(feature = "quick_cache")]

use std::time::Duration;

use stratacache::{Cache, Fallback, FrozenClock, MemoryTier};

const SEC: Duration = Duration::from_secs(1);

#[tokio::test]
async fn entries_expire_by_the_caches_frozen_clock() {
    let clock = FrozenClock::new();
    let l2 = MemoryTier::new(100);
    let cache: Cache<u64, String> = Cache::builder()
        .clock(clock.clone())
        .memory(|l1| l1.max_capacity(1_000).s3_fifo())
        .ttl(10 * SEC)
        .fallback(Fallback::tier(l2.clone()).ttl(60 * SEC))
        .build()
        .unwrap();
    cache.insert(1, "one".into()).await.unwrap();
    clock.advance(9 * SEC);
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("one"));
    assert_eq!(cache.stats().tiers[0].hits, 1);
    clock.advance(2 * SEC);
    // L1's copy is past its 10 s: read from L2 (60 s) and promoted again.
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("one"));
    assert_eq!(cache.stats().tiers[0].expired, 1);
    assert_eq!(cache.stats().tiers[1].hits, 1);
}

/// The system clock: with moka, L1 expires entries itself and a hit reads no clock;
/// with S3-FIFO the cache must judge. Real time, 0.6 s (a TTL long enough that a loaded
/// machine reads the entry before it expires).
#[tokio::test]
async fn with_the_system_clock_the_cache_judges_expiry_itself() {
    let cache: Cache<u64, String> = Cache::builder()
        .memory(|l1| l1.max_capacity(1_000).s3_fifo())
        .ttl(Duration::from_millis(500))
        .build()
        .unwrap();
    cache.insert(1, "one".into()).await.unwrap();
    assert!(cache.get(&1).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        cache.get(&1).await.unwrap(),
        None,
        "expired, though the engine kept it"
    );
}
