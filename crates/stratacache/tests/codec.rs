//! Bad bytes in a remote tier, in process: whatever a store hands back that is not an
//! entry of this cache is a counted miss, deleted, and reloaded; never a panic.

use bytes::Bytes;
use stratacache::{Cache, Fallback, Remote};
use stratacache_tier::mock::MemoryStore;

#[tokio::test]
async fn bad_bytes_are_counted_misses_deleted_and_reloaded() {
    let store = MemoryStore::new();
    let cache: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(Remote::new(store.clone())))
        .build()
        .unwrap();
    let below = stratacache::Options::new().skip_l1();
    let foreign: [&[u8]; 5] = [
        b"",
        b"\x00",
        b"not an envelope at all",
        &[0xff; 64],
        b"\x53\x43\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff", // a header that claims too much
    ];
    for (round, garbage) in foreign.iter().enumerate() {
        cache.insert(1, "one".into()).await.unwrap();
        store.spoil(garbage);
        let read = cache.with(below).get(&1).await.unwrap();
        assert_eq!(read, None, "garbage {round} is a miss");
        assert_eq!(store.deletes(), round + 1, "and is deleted");
        let loaded = cache
            .with(below)
            .get_or_insert(&1, || async { "reloaded".to_string() })
            .await
            .unwrap();
        assert_eq!(loaded.as_deref(), Some("reloaded"));
    }
    assert_eq!(cache.stats().tiers[1].errors, foreign.len() as u64);
}

#[tokio::test]
async fn bad_bytes_in_a_batch_fail_their_own_key_alone() {
    let store = MemoryStore::new();
    let cache: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(Remote::new(store.clone())))
        .build()
        .unwrap();
    cache
        .with(stratacache::Options::new().skip_l1())
        .insert(1, "one".into())
        .await
        .unwrap();
    let other: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(Remote::new(store.clone())))
        .build()
        .unwrap();
    other.insert(2, "two".into()).await.unwrap();
    assert_eq!(store.keys().len(), 2);
    // Spoil key 1's bytes only.
    for key in store.keys() {
        if store.raw(&key).is_some_and(|value| value.ends_with(b"one")) {
            store.plant(&key, Bytes::from_static(b"\x00garbage"));
        }
    }
    let fresh: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(Remote::new(store.clone())))
        .build()
        .unwrap();
    let values = fresh.get_many(&[1, 2]).await.unwrap();
    assert_eq!(values, [None, Some("two".into())]);
    assert_eq!(fresh.stats().tiers[1].errors, 1);
    assert_eq!(store.deletes(), 1, "the bad bytes are deleted");
}
