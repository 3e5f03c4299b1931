//! What the facade's features cost on an L1 hit, each beside the same cache without it.
//!
//! - `telemetry_hit/{on,off}`: counters on, no subscriber, no handler, vs telemetry off.
//! - `stampede_hit/{on,off}`: stampede protection on vs off (telemetry on in both).
//! - `stampede_miss/{off,on,uniflight_alone,floor}`: a miss that runs the loader (which
//!   finds nothing, so nothing is stored and every call misses again), stampede
//!   protection off vs on, and beside them two floors: what uniflight alone costs to run
//!   one empty flight, and `floor`, the plain miss (`off`) run as a uniflight flight
//!   whose leader first looks in a moka cache again, as any coalescing that loads once
//!   per flight must (a flight that ended between a caller's miss and its join has
//!   filled L1).
//! - `metrics_hit/{published,unpublished}`: a cache that publishes to the `metrics`
//!   facade (handles registered with a recorder) vs the same cache that does not: the
//!   hit path has no metrics code, so the two must cost the same.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use futures::FutureExt;
use stratacache::{Cache, CacheBuilder};

const KEYS: u64 = 1_024;

fn filled(builder: CacheBuilder<u64, u64>) -> Cache<u64, u64> {
    let cache = builder
        .memory(|l1| l1.max_capacity(100_000))
        .build()
        .unwrap();
    for key in 0..KEYS {
        cache.insert(key, key).now_or_never().unwrap().unwrap();
    }
    cache
}

fn bench_hits(c: &mut Criterion, group: &str, contestants: [(&str, Cache<u64, u64>); 2]) {
    let mut group = c.benchmark_group(group);
    let mut key = 0;
    for (name, cache) in contestants {
        group.bench_function(name, |b| {
            b.iter(|| {
                key = (key + 1) % KEYS;
                black_box(cache.get(black_box(&key)).now_or_never().unwrap().unwrap())
            });
        });
    }
}

fn telemetry_hit(c: &mut Criterion) {
    bench_hits(
        c,
        "telemetry_hit",
        [
            ("on", filled(Cache::builder())),
            ("off", filled(Cache::builder().telemetry(false))),
        ],
    );
}

fn stampede_hit(c: &mut Criterion) {
    bench_hits(
        c,
        "stampede_hit",
        [
            ("on", filled(Cache::builder().stampede_protection(true))),
            ("off", filled(Cache::builder())),
        ],
    );
}

fn metrics_hit(c: &mut Criterion) {
    // A recorder that keeps what it is given, as an exporter would.
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let published = filled(Cache::builder());
    metrics::with_local_recorder(&recorder, || published.publish_metrics());
    bench_hits(
        c,
        "metrics_hit",
        [
            ("published", published),
            ("unpublished", filled(Cache::builder())),
        ],
    );
}

fn stampede_miss(c: &mut Criterion) {
    let loading = |builder: CacheBuilder<u64, u64>| {
        builder
            .loader(|_key: u64| async { Ok::<_, std::convert::Infallible>(None) })
            .build()
            .unwrap()
    };
    let off = loading(Cache::builder());
    let on = loading(Cache::builder().stampede_protection(true));
    let merger: uniflight::Merger<u64, Option<u64>> = uniflight::Merger::new();
    let mut group = c.benchmark_group("stampede_miss");
    for (name, cache) in [("off", off.clone()), ("on", on)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let found = cache.get(black_box(&7)).now_or_never().unwrap().unwrap();
                assert!(black_box(found).is_none());
            });
        });
    }
    group.bench_function("uniflight_alone", |b| {
        b.iter(|| {
            let found = merger
                .execute(black_box(&7), || async { None })
                .now_or_never()
                .unwrap()
                .unwrap();
            assert!(black_box(found).is_none());
        });
    });
    let flights: uniflight::Merger<u64, Result<Option<u64>, stratacache::Error>> =
        uniflight::Merger::new();
    let l1: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(10_000);
    group.bench_function("floor", |b| {
        b.iter(|| {
            let key = black_box(&7);
            let flight = flights.execute(key, || async {
                match l1.contains_key(key) {
                    true => Ok(l1.get(key)),
                    false => off.get(key).await,
                }
            });
            let found = flight.now_or_never().unwrap().unwrap().unwrap();
            assert!(black_box(found).is_none());
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = telemetry_hit, stampede_hit, stampede_miss, metrics_hit
}
criterion_main!(benches);
