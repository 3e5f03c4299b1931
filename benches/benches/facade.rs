//! What the facade's features cost on an L1 hit, each beside the same cache without it.
//!
//! - `telemetry_hit/{on,off}`: counters on, no subscriber, no handler, vs telemetry off.
//! - `stampede_hit/{on,off}`: stampede protection on vs off (telemetry on in both).
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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = telemetry_hit, stampede_hit, metrics_hit
}
criterion_main!(benches);
