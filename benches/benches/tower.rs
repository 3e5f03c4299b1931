//! An L2 get (L1 misses, Redis hits) through a tier wrapped in `ServiceTier` with an
//! identity layer, beside the same tier bare, in one run.
//!
//! Uses `REDIS_URL` when set, otherwise starts a `redis-server` with the test kit.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use stratacache::{Cache, Fallback, InsertPolicy, Remote};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_service::ServiceTier;
use tower::layer::util::Identity;

fn l2_get(c: &mut Criterion) {
    let (server, url) = stratacache_benches::redis();
    let runtime = stratacache_benches::runtime();
    let _inside = runtime.enter();
    let typed = || {
        let redis = RedisStore::new(RedisConfig::from_url(&url).namespace("bench-tower")).unwrap();
        Remote::new(redis).into_tier::<u64, String>()
    };
    let bare: Cache<u64, String> = Cache::builder()
        .insert_policy(InsertPolicy::never())
        .fallback(Fallback::tier(typed()))
        .build()
        .unwrap();
    let wrapped: Cache<u64, String> = Cache::builder()
        .insert_policy(InsertPolicy::never())
        .fallback(Fallback::tier(ServiceTier::layered(
            typed(),
            Identity::new(),
        )))
        .build()
        .unwrap();
    runtime.block_on(bare.insert(1, "v".repeat(100))).unwrap();

    let mut group = c.benchmark_group("tower_l2_get");
    for (name, cache) in [("bare_tier", &bare), ("service_tier", &wrapped)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                assert!(
                    runtime
                        .block_on(cache.get(black_box(&1)))
                        .unwrap()
                        .is_some()
                )
            });
        });
    }
    group.finish();
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = l2_get
}
criterion_main!(benches);
