//! The bridge to the `metrics` facade (feature `metrics`): a cache's figures, published
//! through any recorder (here metrics-util's debugging recorder), OpenTelemetry-named.
#![cfg(feature = "metrics")]

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::MetricKind;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use stratacache::{Cache, Fallback, MemoryTier};

/// The snapshot as `name{label=value,…}` → value, labels sorted.
fn read(snapshotter: &Snapshotter) -> HashMap<String, DebugValue> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (kind, key) = key.into_parts();
            let mut labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            let kind = match kind {
                MetricKind::Counter => "",
                MetricKind::Gauge => "(gauge)",
                MetricKind::Histogram => "(histogram)",
            };
            (
                format!("{}{kind}{{{}}}", key.name(), labels.join(",")),
                value,
            )
        })
        .collect()
}

#[tokio::test]
async fn the_caches_figures_reach_the_recorder_with_opentelemetry_names() {
    // Installed for the process, as an exporter is: loads record into it directly.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");
    let cache: Cache<u64, String> = Cache::builder()
        .name("users")
        .fallback(Fallback::tier(MemoryTier::new(100)))
        .loader(|id: u64| async move { Ok::<_, std::io::Error>(Some(format!("user {id}"))) })
        .build()
        .unwrap();
    cache.publish_metrics();
    cache.get(&1).await.unwrap(); // L1 miss, L2 miss, a load
    cache.get(&1).await.unwrap(); // L1 hit
    cache.invalidate(&1).await.unwrap();
    cache.publish_metrics();
    let figures = read(&snapshotter);
    let counter = |key: &str| match figures.get(key) {
        Some(DebugValue::Counter(value)) => *value,
        other => panic!(
            "{key}: {other:?} in {:?}",
            figures.keys().collect::<Vec<_>>()
        ),
    };
    assert_eq!(
        counter("cache.requests{cache=users,outcome=hit,tier=l1}"),
        1
    );
    assert_eq!(
        counter("cache.requests{cache=users,outcome=miss,tier=l1}"),
        1
    );
    assert_eq!(
        counter("cache.requests{cache=users,outcome=miss,tier=l2}"),
        1
    );
    assert_eq!(counter("cache.loads{cache=users,outcome=started}"), 1);
    assert_eq!(counter("cache.loads{cache=users,outcome=error}"), 0);
    assert_eq!(
        counter("cache.writes{cache=users,outcome=removed,tier=l1}"),
        1
    );
    assert!(figures.contains_key("cache.circuit.state(gauge){cache=users,tier=l2}"));
    assert!(figures.contains_key("cache.recovery.waiting(gauge){cache=users,tier=l2}"));
    // The load after the first publish was timed.
    match figures.get("cache.load.duration(histogram){cache=users}") {
        Some(DebugValue::Histogram(samples)) => assert_eq!(samples.len(), 1),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_spawned_publisher_ticks_and_ends_with_the_cache() {
    let cache: Cache<u64, u64> = Cache::builder().build().unwrap();
    let publisher = cache.spawn_metrics(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!publisher.is_finished());
    drop(cache);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(publisher.is_finished(), "the task ends with the cache");
}
