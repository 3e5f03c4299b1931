//! Expiry judged with the injected clock, at every tier.

use std::time::Duration;

use stratacache::{Cache, Fallback, FrozenClock, MemoryTier};
use stratacache_tier::mock::MockTier;

const SEC: Duration = Duration::from_secs(1);

#[tokio::test]
async fn l1_entry_expires_at_its_ttl() {
    let clock = FrozenClock::new();
    let cache: Cache<u32, &str> = Cache::builder()
        .clock(&clock)
        .ttl(10 * SEC)
        .build()
        .unwrap();
    cache.insert(1, "v").await.unwrap();
    clock.advance(9 * SEC);
    assert_eq!(cache.get(&1).await.unwrap(), Some("v"));
    clock.advance(SEC);
    assert_eq!(cache.get(&1).await.unwrap(), None);
    let stats = cache.stats();
    assert_eq!((stats.tiers[0].hits, stats.tiers[0].expired), (1, 1));
}

#[tokio::test]
async fn expired_l1_entry_is_reclaimed_on_read() {
    let clock = FrozenClock::new();
    let cache: Cache<u32, &str> = Cache::builder().clock(&clock).ttl(SEC).build().unwrap();
    cache.insert(1, "v").await.unwrap();
    assert_eq!(cache.l1_len(), Some(1));
    clock.advance(SEC);
    assert_eq!(cache.get(&1).await.unwrap(), None);
    assert_eq!(
        cache.l1_len(),
        Some(0),
        "an expired entry must be removed, not only hidden"
    );
}

#[tokio::test]
async fn each_tier_judges_expiry_with_the_cache_clock() {
    let clock = FrozenClock::new();
    let l2 = MockTier::<u32, &str>::new();
    let cache: Cache<u32, &str> = Cache::builder()
        .clock(&clock)
        .ttl(5 * SEC)
        .fallback(Fallback::tier(l2.clone()).ttl(20 * SEC))
        .build()
        .unwrap();
    cache.insert(1, "v").await.unwrap();
    assert_eq!(l2.peek(&1).unwrap().ttl(), Some(20 * SEC));

    clock.advance(5 * SEC); // L1 copy gone, L2 copy live
    assert_eq!(cache.get(&1).await.unwrap(), Some("v"));
    clock.advance(15 * SEC); // both gone
    assert_eq!(cache.get(&1).await.unwrap(), None);
    assert!(
        l2.peek(&1).is_some(),
        "an expired entry below L1 is left to the tier's own expiry: a delete sent now \
         could land after a newer write of the key"
    );
    let stats = cache.stats();
    assert_eq!(stats.tiers[1].expired, 1);
}

#[tokio::test]
async fn per_entry_ttl_caps_every_tier() {
    let clock = FrozenClock::new();
    let cache: Cache<u32, &str> = Cache::builder()
        .clock(&clock)
        .ttl(60 * SEC)
        .fallback(Fallback::memory(|tier| tier).ttl(600 * SEC))
        .build()
        .unwrap();
    cache.insert_with_ttl(1, "short", 3 * SEC).await.unwrap();
    clock.advance(2 * SEC);
    assert_eq!(cache.get(&1).await.unwrap(), Some("short"));
    clock.advance(SEC);
    assert_eq!(cache.get(&1).await.unwrap(), None);
    assert_eq!(
        cache.stats().tiers[1].hits,
        0,
        "L2 must not serve it past its own TTL either"
    );
}

#[tokio::test]
async fn prebuilt_memory_tier_is_judged_with_the_cache_clock() {
    let clock = FrozenClock::new();
    let tier = MemoryTier::<u32, &str>::new(100);
    let cache: Cache<u32, &str> = Cache::builder()
        .clock(&clock)
        .tier(tier.clone())
        .ttl(SEC)
        .build()
        .unwrap();
    cache.insert(1, "v").await.unwrap();
    assert!(tier.lookup(&1).is_some());
    clock.advance(SEC);
    assert_eq!(cache.get(&1).await.unwrap(), None);
}

#[test]
fn zero_ttl_is_a_configuration_error() {
    let err = Cache::<u32, u32>::builder()
        .ttl(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), stratacache::ErrorKind::Config);
    let err = Cache::<u32, u32>::builder()
        .fallback(Fallback::memory(|tier| tier).ttl(Duration::ZERO))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("l2"), "{err}");
}

#[tokio::test]
async fn ttl_jitter_spreads_expiry_and_never_lengthens_it() {
    let clock = FrozenClock::new();
    let l2 = MemoryTier::new(1_000);
    let cache: Cache<u64, u64> = Cache::builder()
        .clock(&clock)
        .ttl(Duration::from_secs(60))
        .ttl_jitter(Duration::from_secs(20))
        .fallback(Fallback::tier(l2.clone()).ttl(Duration::from_secs(600)))
        .build()
        .unwrap();
    cache
        .insert_many((0..200).map(|key| (key, key)))
        .await
        .unwrap();
    let mut l1_ttls = std::collections::BTreeSet::new();
    for key in 0..200 {
        let l1 = cache.get_entry(&key).await.unwrap().unwrap().ttl().unwrap();
        assert!(
            l1 >= Duration::from_secs(40) && l1 <= Duration::from_secs(60),
            "{l1:?}"
        );
        l1_ttls.insert(l1);
        let l2 = l2.lookup(&key).unwrap().ttl().unwrap();
        assert!(
            l2 >= Duration::from_secs(580) && l2 <= Duration::from_secs(600),
            "{l2:?}"
        );
    }
    assert!(
        l1_ttls.len() > 100,
        "spread: {} distinct TTLs",
        l1_ttls.len()
    );
    // By the TTL itself, every L1 copy has expired.
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        cache
            .with(stratacache::Options::new().skip_remote())
            .get(&7)
            .await
            .unwrap(),
        None
    );
}
