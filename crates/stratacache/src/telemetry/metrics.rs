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
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Label};
use stratacache_tier::CircuitState;

use super::{CacheStats, TierStats};
use crate::Cache;
use crate::inner::Inner;

/// One tier's handles.
struct TierHandles {
    requests: [Counter; 7],
    writes: [Counter; 3],
    evictions: Counter,
    entries: Gauge,
    circuit: Gauge,
}

/// Request outcomes of a tier, in the order of [`TierHandles::requests`].
const OUTCOMES: [&str; 7] = [
    "hit",
    "miss",
    "expired",
    "error",
    "short_circuit",
    "refresh_hit",
    "refresh_miss",
];

/// Write outcomes of a tier, in the order of [`TierHandles::writes`].
const WRITES: [&str; 3] = ["stored", "rejected", "removed"];

/// A cache-wide counter: how to read it from a snapshot, and its handle.
type Published = (fn(&CacheStats) -> u64, Counter);

/// A cache's handles, registered on first use.
pub(crate) struct MetricHandles {
    tiers: Vec<TierHandles>,
    /// `cache.loads`: started, error.
    loads: [Counter; 2],
    /// The cache-wide counters: (value in the snapshot, handle).
    events: Vec<Published>,
}

fn labels(cache: &str, more: &[(&'static str, &str)]) -> Vec<Label> {
    std::iter::once(Label::new("cache", cache.to_owned()))
        .chain(
            more.iter()
                .map(|(key, value)| Label::new(*key, (*value).to_owned())),
        )
        .collect()
}

impl MetricHandles {
    fn register(cache: &str, stats: &CacheStats) -> Self {
        let tiers = stats
            .tiers
            .iter()
            .map(|tier| {
                let name = &*tier.name;
                let at =
                    |key: &'static str, value: &str| labels(cache, &[("tier", name), (key, value)]);
                TierHandles {
                    requests: OUTCOMES
                        .map(|outcome| metrics::counter!("cache.requests", at("outcome", outcome))),
                    writes: WRITES
                        .map(|outcome| metrics::counter!("cache.writes", at("outcome", outcome))),
                    evictions: metrics::counter!(
                        "cache.evictions",
                        labels(cache, &[("tier", name)])
                    ),
                    entries: metrics::gauge!("cache.entries", labels(cache, &[("tier", name)])),
                    circuit: metrics::gauge!(
                        "cache.circuit.state",
                        labels(cache, &[("tier", name)])
                    ),
                }
            })
            .collect();
        let counter = |name: &'static str, more: &[(&'static str, &str)]| {
            metrics::counter!(name, labels(cache, more))
        };
        let events: Vec<Published> = vec![
            (|s| s.coalesced_waits, counter("cache.coalesced_waits", &[])),
            (
                |s| s.refreshes_started,
                counter("cache.refreshes", &[("outcome", "started")]),
            ),
            (
                |s| s.refreshes_failed,
                counter("cache.refreshes", &[("outcome", "failed")]),
            ),
            (|s| s.not_found_hits, counter("cache.not_found_hits", &[])),
            (|s| s.stale_served, counter("cache.stale_served", &[])),
            (|s| s.defaults_served, counter("cache.defaults_served", &[])),
            (
                |s| s.soft_timeouts,
                counter("cache.load.soft_timeouts", &[]),
            ),
            (
                |s| s.background_loads,
                counter("cache.load.background", &[]),
            ),
            (
                |s| s.recovery_queued,
                counter("cache.recovery", &[("outcome", "queued")]),
            ),
            (
                |s| s.recovery_replayed,
                counter("cache.recovery", &[("outcome", "replayed")]),
            ),
            (
                |s| s.recovery_dropped,
                counter("cache.recovery", &[("outcome", "dropped")]),
            ),
            (
                |s| s.backplane_sent,
                counter("cache.backplane.messages", &[("direction", "sent")]),
            ),
            (
                |s| s.backplane_received,
                counter("cache.backplane.messages", &[("direction", "received")]),
            ),
            (
                |s| s.backplane_errors,
                counter("cache.backplane.errors", &[]),
            ),
            (|s| s.backplane_gaps, counter("cache.backplane.gaps", &[])),
            (|s| s.lock_waits, counter("cache.lock.waits", &[])),
            (|s| s.lock_timeouts, counter("cache.lock.timeouts", &[])),
            (
                |s| s.tags_invalidated,
                counter("cache.tags.invalidated", &[]),
            ),
            (|s| s.tag_errors, counter("cache.tags.errors", &[])),
            (
                |s| s.integrity_failures,
                counter("cache.integrity_failures", &[]),
            ),
        ];
        Self {
            tiers,
            loads: [
                counter("cache.loads", &[("outcome", "started")]),
                counter("cache.loads", &[("outcome", "error")]),
            ],
            events,
        }
    }

    fn publish(&self, stats: &CacheStats) {
        for (handles, tier) in self.tiers.iter().zip(&stats.tiers) {
            publish_tier(handles, tier);
        }
        self.loads[0].absolute(stats.loads);
        self.loads[1].absolute(stats.load_errors);
        for (value, counter) in &self.events {
            counter.absolute(value(stats));
        }
    }
}

fn publish_tier(handles: &TierHandles, tier: &TierStats) {
    let requests = [
        tier.hits,
        tier.misses,
        tier.expired,
        tier.errors,
        tier.short_circuits,
        tier.refresh_hits,
        tier.refresh_misses,
    ];
    for (counter, value) in handles.requests.iter().zip(requests) {
        counter.absolute(value);
    }
    let writes = [tier.inserts, tier.insert_rejections, tier.invalidations];
    for (counter, value) in handles.writes.iter().zip(writes) {
        counter.absolute(value);
    }
    handles.evictions.absolute(tier.evictions);
    #[expect(clippy::cast_precision_loss, reason = "a gauge is a float")]
    if let Some(entries) = tier.entries {
        handles.entries.set(entries as f64);
    }
    handles.circuit.set(match tier.circuit {
        None | Some(CircuitState::Closed) => 0.0,
        Some(CircuitState::HalfOpen) => 1.0,
        Some(CircuitState::Open) => 2.0,
        Some(_) => -1.0, // a state added later
    });
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
            metrics::histogram!("cache.load.duration", labels(cache, &[]))
                .record(took.as_secs_f64());
        }
    }
}

/// Times a load: records its duration when dropped, however the load ended.
pub(crate) struct LoadTimer<'a> {
    metrics: &'a Metrics,
    cache: &'a str,
    started: Instant,
}

impl<'a> LoadTimer<'a> {
    pub(crate) fn start(metrics: &'a Metrics, cache: &'a str) -> Self {
        Self {
            metrics,
            cache,
            started: Instant::now(),
        }
    }
}

impl Drop for LoadTimer<'_> {
    fn drop(&mut self) {
        self.metrics.load_took(self.cache, self.started.elapsed());
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
    ///   rejected, removed), `cache.evictions`, gauges `cache.entries` and
    ///   `cache.circuit.state` (0 closed, 1 half-open, 2 open), per tier;
    /// - `cache.loads` (ok, error), histogram `cache.load.duration` (seconds; recorded by
    ///   each load once the cache has published), `cache.stale_served`,
    ///   `cache.coalesced_waits`, `cache.refreshes`, `cache.recovery`,
    ///   `cache.backplane.messages` (direction sent, received), `cache.backplane.gaps`,
    ///   `cache.lock.waits`, `cache.tags.invalidated`, `cache.integrity_failures`, and the
    ///   other [`CacheStats`] counters.
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
        MetricHandles::register(&telemetry.cache, &stats).publish(&stats);
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
