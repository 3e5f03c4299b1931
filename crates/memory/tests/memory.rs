//! `MemoryTier` behaviour through its public API.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::executor::block_on;
use stratacache_memory::{EvictionCause, MemoryTier};
use stratacache_tier::{CacheEntry, CacheTier};

type Seen = Arc<Mutex<Vec<(u32, String, EvictionCause)>>>;

fn recording_tier(max: u64) -> (MemoryTier<u32, String>, Seen) {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    let tier = MemoryTier::builder()
        .max_capacity(max)
        .eviction_listener(move |key, entry: CacheEntry<String>, cause| {
            sink.lock().unwrap().push((*key, entry.into_value(), cause));
        })
        .build();
    (tier, seen)
}

fn entry(value: &str) -> CacheEntry<String> {
    CacheEntry::new(value.to_string(), SystemTime::now(), None)
}

#[test]
fn round_trip_and_borrowed_lookup() {
    let tier = MemoryTier::<String, u32>::new(100);
    block_on(tier.insert(
        "k".into(),
        CacheEntry::new(5, SystemTime::now(), None),
        None,
    ))
    .unwrap();
    assert_eq!(tier.lookup("k").map(CacheEntry::into_value), Some(5));
    assert_eq!(
        block_on(tier.get(&"k".to_string()))
            .unwrap()
            .map(CacheEntry::into_value),
        Some(5)
    );
    block_on(tier.invalidate(&"k".to_string())).unwrap();
    assert!(tier.lookup("k").is_none());
}

#[test]
fn capacity_by_count_evicts_and_reports_size() {
    let (tier, seen) = recording_tier(10);
    for i in 0..100 {
        tier.store(i, entry("v"), None);
        tier.run_pending_tasks();
    }
    assert!(tier.entry_count() <= 10, "holds {}", tier.entry_count());
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .filter(|(_, _, cause)| *cause == EvictionCause::Size)
            .count()
            >= 90
    );
}

#[test]
fn capacity_by_weight_bounds_total_bytes() {
    let tier = MemoryTier::<u32, String>::builder()
        .max_capacity(1_000)
        .weigher(|_, value: &String| u32::try_from(value.len()).unwrap_or(u32::MAX))
        .build();
    for i in 0..50 {
        tier.store(i, entry(&"x".repeat(100)), None);
        tier.run_pending_tasks();
    }
    assert!(
        tier.weighted_size() <= 1_000,
        "weighs {}",
        tier.weighted_size()
    );
    assert!(tier.entry_count() <= 10);
}

#[test]
fn listener_sees_key_value_and_cause() {
    let (tier, seen) = recording_tier(100);
    tier.store(1, entry("first"), None);
    tier.store(1, entry("second"), None);
    block_on(tier.invalidate(&1)).unwrap();
    tier.run_pending_tasks();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (1, "first".to_string(), EvictionCause::Replaced),
            (1, "second".to_string(), EvictionCause::Explicit),
        ]
    );
}

#[test]
fn entry_past_the_time_it_was_handed_is_dropped_by_moka_itself() {
    // moka, not only the facade, must treat the entry as gone once the time the cache
    // handed over (measured with the cache's clock) has passed. The tier reads no clock:
    // a zero keep-for is already past.
    let tier = MemoryTier::<u32, String>::builder().build();
    let produced = SystemTime::now();
    let young = CacheEntry::new("young".into(), produced, Some(Duration::from_secs(3_600)));
    tier.store(2, young, Some(Duration::from_secs(3_600)));
    let old = CacheEntry::new("old".into(), produced, Some(Duration::from_secs(10)));
    tier.store(1, old, Some(Duration::ZERO));
    tier.run_pending_tasks();
    assert!(
        tier.lookup(&1).is_none(),
        "moka must drop the expired entry"
    );
    assert!(tier.lookup(&2).is_some());
}

#[test]
fn clear_empties_the_tier_and_len_reports_it() {
    let (tier, _) = recording_tier(100);
    for i in 0..20 {
        tier.store(i, entry("v"), None);
    }
    assert_eq!(CacheTier::len(&tier), Some(20));
    block_on(tier.clear()).unwrap();
    assert_eq!(CacheTier::len(&tier), Some(0));
}
