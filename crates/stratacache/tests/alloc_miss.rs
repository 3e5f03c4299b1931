//! Stampede protection costs a miss only uniflight's own allocations, and a miss that
//! reads L2 makes no allocation too large for the allocator's per-thread cache: proven
//! with a counting global allocator. (A binary of its own: the misses' epoch garbage would be
//! collected, allocating, by the threads of `alloc.rs`'s hit tests.)
#![expect(
    unsafe_code,
    reason = "a counting global allocator must implement GlobalAlloc"
)]

mod counting;

use counting::allocations_during;
use futures::FutureExt;
use stratacache::Cache;

/// Allocations per call of `miss`, after a warm-up.
fn allocations_per_call(mut miss: impl FnMut()) -> u64 {
    for _ in 0..1_000 {
        miss();
    }
    allocations_during(|| {
        for _ in 0..1_000 {
            miss();
        }
    }) / 1_000
}

#[test]
fn stampede_protection_adds_only_uniflights_allocations_to_a_miss() {
    let loading = |protected: bool| -> Cache<u64, u64> {
        Cache::builder()
            .stampede_protection(protected)
            .loader(|_key: u64| async { Ok::<_, std::io::Error>(None) })
            .build()
            .unwrap()
    };
    let (plain, protected) = (loading(false), loading(true));
    let miss = |cache: &Cache<u64, u64>| {
        let found = cache.get(&7).now_or_never().expect("nothing awaits");
        assert_eq!(found.unwrap(), None);
    };
    let plain_allocations = allocations_per_call(|| miss(&plain));
    let protected_allocations = allocations_per_call(|| miss(&protected));
    // One flight in uniflight alone: its shared cell and its boxed future.
    let merger: uniflight::Merger<u64, Option<u64>> = uniflight::Merger::new();
    let uniflight_allocations = allocations_per_call(|| {
        let found = merger.execute(&7, || async { None }).now_or_never();
        assert_eq!(found.map(Result::ok), Some(Some(None)));
    });
    assert_eq!(
        protected_allocations,
        plain_allocations + uniflight_allocations,
        "a protected miss allocates {protected_allocations} times, a plain one \
         {plain_allocations}, uniflight's flight {uniflight_allocations}"
    );
}

/// glibc's limit: other allocators have others, and the futures' sizes are the
/// compiler's (checked on x86_64 Linux, where CI runs).
#[cfg(all(target_os = "linux", target_env = "gnu", target_arch = "x86_64"))]
mod thread_cache {
    use futures::FutureExt;
    use stratacache::{Cache, Fallback, InsertPolicy, Remote};
    use stratacache_tier::mock::MemoryStore;

    use crate::counting::largest_allocation_during;

    /// The largest request glibc's per-thread cache serves without taking its arena's lock,
    /// which 128 concurrent callers on two workers contend for.
    const THREAD_CACHE_LIMIT: usize = 1_032;

    #[test]
    fn a_miss_that_finds_the_value_below_l1_fits_the_allocators_thread_cache() {
        let remote = |loads: bool, protected: bool| -> Cache<u64, String> {
            let builder = Cache::builder()
                .insert_policy(InsertPolicy::never())
                .stampede_protection(protected)
                .fallback(Fallback::remote(Remote::new(MemoryStore::new())));
            let builder = if loads {
                builder.loader(|_key: u64| async { Ok::<_, std::io::Error>(None) })
            } else {
                builder
            };
            builder.build().unwrap()
        };
        for (loads, protected) in [(false, false), (true, false), (false, true), (true, true)] {
            let cache = remote(loads, protected);
            let value = "v".repeat(100);
            let inserted = cache.insert(1, value.clone()).now_or_never();
            assert!(matches!(inserted, Some(Ok(_))));
            let largest = largest_allocation_during(|| {
                let found = cache.get(&1).now_or_never().expect("nothing awaits");
                assert_eq!(found.unwrap().as_ref(), Some(&value), "read from L2");
            });
            assert!(
                largest <= THREAD_CACHE_LIMIT,
                "with a loader: {loads}, stampede protection: {protected}: an allocation of \
                 {largest} bytes"
            );
        }
    }
}
