//! The bridge to OpenTelemetry (feature `opentelemetry`): a cache's figures as
//! observable instruments of a meter, read from the cache's own counters when the meter
//! collects (nothing on the hit path), and a histogram of load durations.

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Histogram, Meter};

use super::figures::{Kind, LOAD_DURATION, figures};
use crate::Cache;
use crate::inner::Inner;

/// The instruments a cache registered with meters: kept alive with the cache.
#[derive(Default)]
pub(crate) struct Otel {
    instruments: Mutex<Vec<Box<dyn Any + Send + Sync>>>,
    /// One per meter the cache reports to.
    load_durations: Mutex<Vec<Histogram<f64>>>,
}

impl Otel {
    /// Records how long a load took, once the cache reports to a meter.
    pub(crate) fn load_took(&self, cache: &str, took: Duration) {
        let histograms = self
            .load_durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for histogram in histograms.iter() {
            histogram.record(
                took.as_secs_f64(),
                &[KeyValue::new("cache", cache.to_owned())],
            );
        }
    }

    fn keep(&self, instrument: impl Any + Send + Sync) {
        self.instruments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(instrument));
    }
}

fn attributes(cache: &str, more: &[(&'static str, String)]) -> Vec<KeyValue> {
    std::iter::once(KeyValue::new("cache", cache.to_owned()))
        .chain(
            more.iter()
                .map(|(key, value)| KeyValue::new(*key, value.clone())),
        )
        .collect()
}

impl<K, V> Cache<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Reports this cache's figures to `meter` (feature `opentelemetry`): the same names
    /// and attributes as [`publish_metrics`](Self::publish_metrics) (`cache.requests`
    /// with `cache`, `tier`, `outcome`; `cache.entries`; `cache.circuit.state`; …), as
    /// observable counters and gauges read from the cache's counters when the meter
    /// collects, so a hit pays nothing; and a `cache.load.duration` histogram (seconds)
    /// each load records. The callbacks live as long as the meter provider; once the
    /// cache is dropped they observe nothing (they hold it weakly).
    ///
    /// ```
    /// use opentelemetry::metrics::MeterProvider;
    /// use stratacache::Cache;
    ///
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let cache: Cache<u64, String> = Cache::builder().name("users").build()?;
    /// cache.observe_with(&provider.meter("my-service"));
    /// # Ok::<(), stratacache::Error>(())
    /// ```
    pub fn observe_with(&self, meter: &Meter) {
        let telemetry = &self.inner.telemetry;
        let mut instruments: Vec<(&'static str, Kind)> = figures(&self.stats())
            .into_iter()
            .map(|figure| (figure.name, figure.kind))
            .collect();
        // One instrument per name: its callback observes every series of the name.
        instruments.sort_by_key(|(name, _)| *name);
        instruments.dedup_by_key(|(name, _)| *name);
        for (name, kind) in instruments {
            let cache: Weak<Inner<K, V>> = Arc::downgrade(&self.inner);
            let observe = move |observer: &dyn AsyncInstrument<u64>| {
                let Some(inner) = cache.upgrade() else {
                    return;
                };
                let cache = Cache { inner };
                let stats = cache.stats();
                let named = &cache.inner.telemetry.cache;
                for figure in figures(&stats).into_iter().filter(|f| f.name == name) {
                    observer.observe(figure.value, &attributes(named, &figure.attributes));
                }
            };
            match kind {
                Kind::Counter => telemetry.otel.keep(
                    meter
                        .u64_observable_counter(name)
                        .with_callback(observe)
                        .build(),
                ),
                Kind::Gauge => telemetry.otel.keep(
                    meter
                        .u64_observable_gauge(name)
                        .with_callback(observe)
                        .build(),
                ),
            }
        }
        let histogram = meter.f64_histogram(LOAD_DURATION).with_unit("s").build();
        telemetry
            .otel
            .load_durations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(histogram);
    }
}
