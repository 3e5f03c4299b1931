//! An L1 hit allocates nothing: proven with a counting global allocator.
#![expect(
    unsafe_code,
    reason = "a counting global allocator must implement GlobalAlloc"
)]

#[expect(
    dead_code,
    reason = "its largest-allocation probe serves alloc_miss.rs"
)]
mod counting;

use std::sync::Arc;

use counting::allocations_during;
use futures::FutureExt;
use stratacache::{Cache, Fallback};

const READS: u64 = 10_000;

#[track_caller]
fn assert_hits_do_not_allocate<K, V, Q>(cache: &Cache<K, V>, key: &Q)
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static + std::borrow::Borrow<Q>,
    V: Clone + Send + Sync + 'static,
    Q: std::hash::Hash + Eq + ToOwned<Owned = K> + Sync + ?Sized,
{
    // Warm up: let moka size its internal structures.
    for _ in 0..READS {
        assert!(cache.get(key).now_or_never().unwrap().unwrap().is_some());
    }
    let allocations = allocations_during(|| {
        for _ in 0..READS {
            let hit = cache.get(key).now_or_never().expect("a hit never awaits");
            assert!(hit.unwrap().is_some());
        }
    });
    assert_eq!(
        allocations, 0,
        "{READS} L1 hits allocated {allocations} times"
    );
}

#[test]
fn l1_hits_allocate_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let numbers: Cache<u64, u64> = Cache::builder()
        .fallback(Fallback::memory(|tier| tier))
        .build()
        .unwrap();
    runtime.block_on(numbers.insert(1, 10)).unwrap();
    assert_hits_do_not_allocate(&numbers, &1);

    let strings: Cache<u64, Arc<str>> = Cache::builder().build().unwrap();
    runtime
        .block_on(strings.insert(1, Arc::from("shared text")))
        .unwrap();
    assert_hits_do_not_allocate(&strings, &1);

    // A borrowed `&str` looks up a `String` key without building one.
    let by_name: Cache<String, u64> = Cache::builder().build().unwrap();
    runtime
        .block_on(by_name.insert("alice".to_string(), 1))
        .unwrap();
    assert_hits_do_not_allocate(&by_name, "alice");

    // Stampede protection and time-to-refresh add nothing to a hit.
    let protected: Cache<u64, u64> = Cache::builder()
        .stampede_protection(true)
        .ttl(std::time::Duration::from_secs(600))
        .time_to_refresh(stratacache::TimeToRefresh::new(
            std::time::Duration::from_secs(300),
        ))
        .fallback(Fallback::memory(|tier| tier))
        .build()
        .unwrap();
    runtime.block_on(protected.insert(1, 10)).unwrap();
    assert_hits_do_not_allocate(&protected, &1);

    // A loading cache's hit path is the same: the loader is not touched on a hit.
    let loading: Cache<String, u64> = Cache::builder()
        .loader(|_name: String| async { Ok::<_, std::io::Error>(Some(7)) })
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(loading.get("bob")).unwrap(), Some(7));
    assert_hits_do_not_allocate(&loading, "bob");

    // The loader family's hit path is the same.
    let allocations = allocations_during(|| {
        for _ in 0..READS {
            let value = by_name
                .get_or_insert("alice", || async { unreachable!() })
                .now_or_never()
                .unwrap()
                .unwrap();
            assert_eq!(value, 1);
        }
    });
    assert_eq!(allocations, 0);
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let allocations = allocations_during(|| drop(std::hint::black_box(Box::new(1_u64))));
    assert_eq!(allocations, 1);
}
