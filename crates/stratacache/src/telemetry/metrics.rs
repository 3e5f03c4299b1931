//! The bridge to the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`), so
//! that any exporter (Prometheus, StatsD, OpenTelemetry through `metrics`…) shows a
//! cache's figures, named as OpenTelemetry names caches' (`cache.requests` with
//! attributes `cache`, `tier`, `outcome`, …).
//!
//! The hot path pays nothing for it: the counters a cache keeps anyway are published as
//! absolute values on a schedule ([`Cache::spawn_metrics`]) or on demand
//! ([`Cache::publish_metrics`]), each time through the recorder installed then. Only
//! loads record a histogram sample each (`cache.load.duration`), once the cache has
//! published.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use metrics::Label;

use super::figures::{Kind, LOAD_DURATION, figures};
use crate::Cache;
use crate::inner::Inner;

fn labels(cache: &str, attributes: &[(&'static str, String)]) -> Vec<Label> {
    std::iter::once(Label::new("cache", cache.to_owned()))
        .chain(
            attributes
                .iter()
                .map(|(key, value)| Label::new(*key, value.clone())),
        )
        .collect()
}

/// A cache's link to the `metrics` facade: whether it publishes (loads then record
/// their duration), and under which name.
#[derive(Default)]
pub(crate) struct Metrics {
    publishing: AtomicBool,
}

impl Metrics {
    /// Records how long a load took (cancelled or timed out included), once the cache
    /// publishes.
    pub(crate) fn load_took(&self, cache: &str, took: Duration) {
        if self.publishing.load(Ordering::Relaxed) {
            metrics::histogram!(LOAD_DURATION, labels(cache, &[])).record(took.as_secs_f64());
        }
    }
}

impl<K, V> Cache<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Publishes this cache's figures to the `metrics` facade now (feature `metrics`):
    ///
    /// - `cache.requests` (attributes `cache`, `tier`, `outcome`: hit, miss, expired,
    ///   error, short_circuit, refresh_hit, refresh_miss), `cache.writes` (stored,
    ///   rejected, removed), `cache.evictions`, gauges `cache.entries`,
    ///   `cache.recovery.waiting` and `cache.circuit.state` (0 closed, 1 half-open,
    ///   2 open), per tier;
    /// - `cache.loads` (started, error), histogram `cache.load.duration` (seconds; recorded by
    ///   each load once the cache has published), `cache.stale_served`,
    ///   `cache.coalesced_waits`, `cache.refreshes`, `cache.recovery`,
    ///   `cache.backplane.messages` (direction sent, received), `cache.backplane.gaps`,
    ///   `cache.lock.waits`, `cache.tags.invalidated`, `cache.integrity_failures`, and the
    ///   other [`CacheStats`](crate::CacheStats) counters.
    ///
    /// Counters are set to the cache's totals (`absolute`), so publishing often costs
    /// nothing on the hit path. Give each cache its own [name](crate::CacheBuilder::name):
    /// caches of one name publish to the same series. See
    /// [`spawn_metrics`](Self::spawn_metrics).
    pub fn publish_metrics(&self) {
        let stats = self.stats();
        let telemetry = &self.inner.telemetry;
        telemetry.metrics.publishing.store(true, Ordering::Relaxed);
        // Registered each time: the recorder installed now gets them.
        for figure in figures(&stats) {
            let labels = labels(&telemetry.cache, &figure.attributes);
            match figure.kind {
                Kind::Counter => metrics::counter!(figure.name, labels).absolute(figure.value),
                #[expect(clippy::cast_precision_loss, reason = "a gauge is a float")]
                Kind::Gauge => metrics::gauge!(figure.name, labels).set(figure.value as f64),
            }
        }
    }

    /// Publishes [`publish_metrics`](Self::publish_metrics) every `every` on a tokio task,
    /// which ends when the cache is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn_metrics(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let cache: Weak<Inner<K, V>> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(inner) = cache.upgrade() else {
                    return;
                };
                Cache { inner }.publish_metrics();
            }
        })
    }
}
