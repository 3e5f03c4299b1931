//! Every figure a cache publishes to a metrics system, read off one snapshot, in one
//! place: the `metrics` and OpenTelemetry bridges both publish this list, with the
//! names OpenTelemetry uses for caches (`cache.requests` with attributes `cache`,
//! `tier`, `outcome`, …).

use std::time::Instant;

use stratacache_tier::CircuitState;

use super::{CacheStats, Telemetry, TierStats};

/// How a figure behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A running total.
    Counter,
    /// A value that goes up and down.
    Gauge,
}

/// One figure: a name, its kind, its attributes besides `cache`, and its value.
#[derive(Debug)]
pub(crate) struct Figure {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) attributes: Vec<(&'static str, String)>,
    pub(crate) value: u64,
}

/// The name of the load duration histogram (seconds), recorded by each load.
pub(crate) const LOAD_DURATION: &str = "cache.load.duration";

/// The cache-wide counters: name, one attribute (or none), how to read the value.
type CacheWide = (
    &'static str,
    Option<(&'static str, &'static str)>,
    fn(&CacheStats) -> u64,
);

const CACHE_WIDE: &[CacheWide] = &[
    ("cache.loads", Some(("outcome", "started")), |s| s.loads),
    ("cache.loads", Some(("outcome", "error")), |s| s.load_errors),
    ("cache.coalesced_waits", None, |s| s.coalesced_waits),
    ("cache.refreshes", Some(("outcome", "started")), |s| {
        s.refreshes_started
    }),
    ("cache.refreshes", Some(("outcome", "failed")), |s| {
        s.refreshes_failed
    }),
    ("cache.not_found_hits", None, |s| s.not_found_hits),
    ("cache.stale_served", None, |s| s.stale_served),
    ("cache.defaults_served", None, |s| s.defaults_served),
    ("cache.load.soft_timeouts", None, |s| s.soft_timeouts),
    ("cache.load.background", None, |s| s.background_loads),
    ("cache.recovery", Some(("outcome", "queued")), |s| {
        s.recovery_queued
    }),
    ("cache.recovery", Some(("outcome", "replayed")), |s| {
        s.recovery_replayed
    }),
    ("cache.recovery", Some(("outcome", "dropped")), |s| {
        s.recovery_dropped
    }),
    (
        "cache.backplane.messages",
        Some(("direction", "sent")),
        |s| s.backplane_sent,
    ),
    (
        "cache.backplane.messages",
        Some(("direction", "received")),
        |s| s.backplane_received,
    ),
    ("cache.backplane.errors", None, |s| s.backplane_errors),
    ("cache.backplane.gaps", None, |s| s.backplane_gaps),
    ("cache.lock.waits", None, |s| s.lock_waits),
    ("cache.lock.timeouts", None, |s| s.lock_timeouts),
    ("cache.tags.invalidated", None, |s| s.tags_invalidated),
    ("cache.tags.errors", None, |s| s.tag_errors),
    ("cache.integrity_failures", None, |s| s.integrity_failures),
];

/// Every figure of `stats`.
pub(crate) fn figures(stats: &CacheStats) -> Vec<Figure> {
    let mut all = Vec::with_capacity(16 * stats.tiers.len() + CACHE_WIDE.len());
    for tier in &stats.tiers {
        tier_figures(tier, &mut all);
    }
    for (name, attribute, read) in CACHE_WIDE {
        all.push(Figure {
            name,
            kind: Kind::Counter,
            attributes: attribute
                .iter()
                .map(|(key, value)| (*key, (*value).to_owned()))
                .collect(),
            value: read(stats),
        });
    }
    all
}

fn tier_figures(tier: &TierStats, all: &mut Vec<Figure>) {
    let at = |more: Option<(&'static str, &str)>| {
        let mut attributes = vec![("tier", tier.name.to_string())];
        attributes.extend(more.map(|(key, value)| (key, value.to_owned())));
        attributes
    };
    let requests = [
        ("hit", tier.hits),
        ("miss", tier.misses),
        ("expired", tier.expired),
        ("error", tier.errors),
        ("short_circuit", tier.short_circuits),
        ("refresh_hit", tier.refresh_hits),
        ("refresh_miss", tier.refresh_misses),
    ];
    for (outcome, value) in requests {
        all.push(Figure {
            name: "cache.requests",
            kind: Kind::Counter,
            attributes: at(Some(("outcome", outcome))),
            value,
        });
    }
    let writes = [
        ("stored", tier.inserts),
        ("rejected", tier.insert_rejections),
        ("removed", tier.invalidations),
    ];
    for (outcome, value) in writes {
        all.push(Figure {
            name: "cache.writes",
            kind: Kind::Counter,
            attributes: at(Some(("outcome", outcome))),
            value,
        });
    }
    all.push(Figure {
        name: "cache.evictions",
        kind: Kind::Counter,
        attributes: at(None),
        value: tier.evictions,
    });
    if let Some(entries) = tier.entries {
        all.push(Figure {
            name: "cache.entries",
            kind: Kind::Gauge,
            attributes: at(None),
            value: entries,
        });
    }
    all.push(Figure {
        name: "cache.recovery.waiting",
        kind: Kind::Gauge,
        attributes: at(None),
        value: tier.waiting,
    });
    all.push(Figure {
        name: "cache.circuit.state",
        kind: Kind::Gauge,
        attributes: at(None),
        // 0 closed (or no breaker), 1 half-open, 2 open.
        value: match tier.circuit {
            Some(CircuitState::HalfOpen) => 1,
            Some(CircuitState::Open) => 2,
            _ => 0,
        },
    });
}

/// Times a load: records its duration in every bridge the cache publishes to when
/// dropped, however the load ended (a timeout that cancelled it included).
pub(crate) struct LoadTimer<'a> {
    telemetry: &'a Telemetry,
    started: Instant,
}

impl<'a> LoadTimer<'a> {
    pub(crate) fn start(telemetry: &'a Telemetry) -> Self {
        Self {
            telemetry,
            started: Instant::now(),
        }
    }
}

impl Drop for LoadTimer<'_> {
    fn drop(&mut self) {
        let took = self.started.elapsed();
        #[cfg(feature = "metrics")]
        self.telemetry
            .metrics
            .load_took(&self.telemetry.cache, took);
        #[cfg(feature = "opentelemetry")]
        self.telemetry.otel.load_took(&self.telemetry.cache, took);
    }
}
