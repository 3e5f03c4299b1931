//! The bridge to OpenTelemetry (feature `opentelemetry`): a cache's figures collected by
//! a meter provider's reader, into the SDK's in-memory exporter.
#![cfg(feature = "opentelemetry")]

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use stratacache::{Cache, Fallback, MemoryTier};

/// The value of the `name` series whose attributes include all of `with`.
fn value(exporter: &InMemoryMetricExporter, name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let exported = exporter.get_finished_metrics().unwrap();
    let latest = exported.last()?;
    for scope in latest.scope_metrics() {
        for metric in scope.metrics().filter(|metric| metric.name() == name) {
            let matches = |attributes: Vec<(String, String)>| {
                with.iter()
                    .all(|(k, v)| attributes.iter().any(|(key, value)| key == k && value == v))
            };
            let pairs = |kv: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                kv.map(|kv| (kv.key.to_string(), kv.value.to_string()))
                    .collect::<Vec<_>>()
            };
            match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                    for point in sum.data_points() {
                        if matches(pairs(&mut point.attributes())) {
                            return Some(point.value() as f64);
                        }
                    }
                }
                AggregatedMetrics::U64(MetricData::Gauge(gauge)) => {
                    for point in gauge.data_points() {
                        if matches(pairs(&mut point.attributes())) {
                            return Some(point.value() as f64);
                        }
                    }
                }
                AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
                    for point in histogram.data_points() {
                        if matches(pairs(&mut point.attributes())) {
                            return Some(point.count() as f64);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    None
}

#[tokio::test]
async fn a_meter_collects_the_caches_figures() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let cache: Cache<u64, String> = Cache::builder()
        .name("users")
        .fallback(Fallback::tier(MemoryTier::new(100)))
        .loader(|id: u64| async move { Ok::<_, std::io::Error>(Some(format!("user {id}"))) })
        .build()
        .unwrap();
    cache.observe_with(&provider.meter("test"));
    cache.get(&1).await.unwrap(); // L1 miss, L2 miss, a load
    cache.get(&1).await.unwrap(); // L1 hit
    provider.force_flush().unwrap();
    let hits = value(
        &exporter,
        "cache.requests",
        &[("cache", "users"), ("tier", "l1"), ("outcome", "hit")],
    );
    assert_eq!(hits, Some(1.0));
    let misses = value(
        &exporter,
        "cache.requests",
        &[("tier", "l2"), ("outcome", "miss")],
    );
    assert_eq!(
        misses,
        Some(1.0),
        "one instrument per name, every tier's series"
    );
    assert_eq!(
        value(&exporter, "cache.loads", &[("outcome", "started")]),
        Some(1.0)
    );
    assert_eq!(
        value(&exporter, "cache.entries", &[("tier", "l1")]),
        Some(1.0)
    );
    assert_eq!(
        value(&exporter, "cache.load.duration", &[("cache", "users")]),
        Some(1.0),
        "one load timed"
    );
}
