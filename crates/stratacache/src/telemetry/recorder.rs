//! Where counters, tracing events and the event handler are fed from.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stratacache_tier::{CircuitState, ErrorKind};
use tracing::Level;

use super::event::{
    CacheEvent, Operation, OperationEvent, OperationOutcome, TierEvent, TierOutcome,
};
use super::names::TARGET;
use super::stats::{CacheCounter, CacheCounters, TierCounter, TierCounters};

/// A typed event handler, as [`CacheBuilder::event_handler`](crate::CacheBuilder::event_handler) takes it.
pub(crate) type Handler = Arc<dyn Fn(&CacheEvent) + Send + Sync>;

/// The telemetry of one cache.
pub(crate) struct Telemetry {
    pub(crate) cache: Arc<str>,
    pub(crate) counters: CacheCounters,
    /// Handles into the `metrics` facade, once the cache publishes.
    #[cfg(feature = "metrics")]
    pub(crate) metrics: super::metrics::Metrics,
    /// Instruments of OpenTelemetry meters the cache reports to.
    #[cfg(feature = "opentelemetry")]
    pub(crate) otel: super::otel::Otel,
    counting: bool,
    handler: Option<Handler>,
    next_request: AtomicU64,
}

/// One operation in progress, as telemetry sees it. Timing and request ids are only
/// taken when someone listens (a handler, or a tracing subscriber at `DEBUG`), so that
/// an unobserved hit costs a branch and a counter.
pub(crate) struct Op {
    pub(crate) operation: Operation,
    pub(crate) request_id: u64,
    started: Option<Instant>,
    pub(crate) coalesced: bool,
    /// Whether this call lets fail-safe answer with a stale value (when the cache has
    /// fail-safe on).
    pub(crate) fail_safe: bool,
    /// Which tiers the call skips (`Options`' bits): calls that read different tiers
    /// never share a flight.
    pub(crate) skips: u8,
    /// The levels (by index, below 32) that failed this operation with a timeout, an
    /// outage or an open circuit: the operation does not call them again (its time
    /// budget is one timeout per tier).
    unreachable: AtomicU32,
}

impl Op {
    /// Remembers that level `index` failed this operation transiently.
    pub(crate) fn mark_unreachable(&self, index: usize) {
        if let Some(bit) = u32::try_from(index).ok().and_then(|i| 1_u32.checked_shl(i)) {
            self.unreachable.fetch_or(bit, Ordering::Relaxed);
        }
    }

    /// Whether level `index` failed this operation transiently.
    #[inline]
    pub(crate) fn is_unreachable(&self, index: usize) -> bool {
        let bits = self.unreachable.load(Ordering::Relaxed);
        bits != 0
            && u32::try_from(index).is_ok_and(|i| bits & 1_u32.checked_shl(i).unwrap_or(0) != 0)
    }

    #[inline]
    pub(crate) fn listening(&self) -> bool {
        self.started.is_some()
    }

    /// Starts a stopwatch for a tier call, when someone listens.
    #[inline]
    pub(crate) fn stopwatch(&self) -> Option<Instant> {
        self.started.map(|_| Instant::now())
    }
}

/// Emits one tier event. Its message is the event's name, so that plain `fmt` output
/// (which prints the message, not the name) shows which event it is; `error_kind` is
/// recorded on errors only.
macro_rules! tier_event {
    ($name:expr, $level:expr, $event:expr $(, error_kind = $kind:expr)?) => {
        tracing::event!(
            name: $name,
            target: TARGET,
            $level,
            cache = &*$event.cache,
            tier = &*$event.tier,
            operation = $event.operation.as_str(),
            outcome = $event.outcome.as_str(),
            duration_ns = $event.duration.map(nanos),
            request_id = $event.request_id,
            $(error_kind = $kind,)?
            "{}",
            $name,
        )
    };
}

impl Telemetry {
    pub(crate) fn new(cache: Arc<str>, counting: bool, handler: Option<Handler>) -> Self {
        Self {
            cache,
            counters: CacheCounters::default(),
            #[cfg(feature = "metrics")]
            metrics: super::metrics::Metrics::default(),
            #[cfg(feature = "opentelemetry")]
            otel: super::otel::Otel::default(),
            counting,
            handler,
            next_request: AtomicU64::new(1),
        }
    }

    /// Whether someone listens to operations now (a handler, or a subscriber at
    /// `DEBUG`): only then are they timed and emitted.
    #[inline]
    pub(crate) fn listening(&self) -> bool {
        self.counting && (self.handler.is_some() || tracing::enabled!(target: TARGET, Level::DEBUG))
    }

    /// Begins an operation.
    #[inline]
    pub(crate) fn start(&self, operation: Operation) -> Op {
        if self.listening() {
            Op {
                operation,
                request_id: self.next_request.fetch_add(1, Ordering::Relaxed),
                started: Some(Instant::now()),
                coalesced: false,
                fail_safe: true,
                skips: 0,
                unreachable: AtomicU32::new(0),
            }
        } else {
            Op {
                operation,
                request_id: 0,
                started: None,
                coalesced: false,
                fail_safe: true,
                skips: 0,
                unreachable: AtomicU32::new(0),
            }
        }
    }

    /// Counts a cache-wide counter.
    #[inline]
    pub(crate) fn count(&self, counter: CacheCounter) {
        if self.counting {
            self.counters.bump(counter as usize);
        }
    }

    /// Counts a hit at a tier, for an operation no one listens to (see
    /// [`listening`](Self::listening)).
    #[inline]
    pub(crate) fn quiet_hit(&self, counters: &TierCounters) {
        if self.counting {
            counters.bump(TierCounter::Hits as usize);
        }
    }

    /// Records what happened at one tier.
    #[inline]
    pub(crate) fn tier(
        &self,
        op: &Op,
        tier: &Arc<str>,
        counters: &TierCounters,
        outcome: TierOutcome,
        stopwatch: Option<Instant>,
    ) {
        if !self.counting {
            return;
        }
        counters.bump(TierCounter::of(outcome) as usize);
        // A failure is worth a warning even with no listener; a call its circuit breaker
        // turned away is not (there is one per call while a tier is down).
        let failed = matches!(outcome, TierOutcome::Error(kind) if kind != ErrorKind::CircuitOpen);
        if op.listening() || failed {
            self.observe_tier(op, tier, outcome, stopwatch);
        }
    }

    /// Emits a tier event, when someone listens: any listener of the operation, or a
    /// subscriber at `WARN` for a failure.
    #[cold]
    fn observe_tier(
        &self,
        op: &Op,
        tier: &Arc<str>,
        outcome: TierOutcome,
        stopwatch: Option<Instant>,
    ) {
        if op.listening() || tracing::enabled!(target: TARGET, Level::WARN) {
            self.emit_tier(TierEvent {
                request_id: op.request_id,
                cache: Arc::clone(&self.cache),
                tier: Arc::clone(tier),
                operation: op.operation,
                outcome,
                duration: stopwatch.map(|started| started.elapsed()),
            });
        }
    }

    #[cold]
    fn emit_tier(&self, event: TierEvent) {
        match event.outcome {
            TierOutcome::Hit => tier_event!(super::names::TIER_HIT, Level::DEBUG, event),
            TierOutcome::Miss => tier_event!(super::names::TIER_MISS, Level::DEBUG, event),
            TierOutcome::Expired => {
                tier_event!(super::names::TIER_EXPIRED, Level::DEBUG, event);
            }
            TierOutcome::RefreshHit => {
                tier_event!(super::names::TIER_REFRESH_HIT, Level::DEBUG, event);
            }
            TierOutcome::RefreshMiss => {
                tier_event!(super::names::TIER_REFRESH_MISS, Level::DEBUG, event);
            }
            TierOutcome::Inserted => {
                tier_event!(super::names::TIER_INSERTED, Level::DEBUG, event);
            }
            TierOutcome::Promoted => {
                tier_event!(super::names::TIER_PROMOTED, Level::DEBUG, event);
            }
            TierOutcome::InsertRejected => {
                tier_event!(super::names::TIER_INSERT_REJECTED, Level::DEBUG, event);
            }
            TierOutcome::Invalidated => {
                tier_event!(super::names::TIER_INVALIDATED, Level::DEBUG, event);
            }
            TierOutcome::Evicted => {
                tier_event!(super::names::TIER_EVICTED, Level::DEBUG, event);
            }
            TierOutcome::Error(ErrorKind::CircuitOpen) => {
                tier_event!(
                    super::names::TIER_ERROR,
                    Level::DEBUG,
                    event,
                    error_kind = ErrorKind::CircuitOpen.as_str()
                );
            }
            TierOutcome::Error(kind) => {
                tier_event!(
                    super::names::TIER_ERROR,
                    Level::WARN,
                    event,
                    error_kind = kind.as_str()
                );
            }
        }
        if let Some(handler) = &self.handler {
            handler(&CacheEvent::Tier(event));
        }
    }

    /// Reports a tier's circuit breaker opening or closing.
    #[cold]
    pub(crate) fn circuit(&self, tier: &str, state: CircuitState) {
        match state {
            CircuitState::Open => tracing::event!(
                name: super::names::CIRCUIT_OPENED,
                target: TARGET,
                Level::WARN,
                cache = &*self.cache,
                tier,
                "circuit opened: tier skipped"
            ),
            _ => tracing::event!(
                name: super::names::CIRCUIT_CLOSED,
                target: TARGET,
                Level::INFO,
                cache = &*self.cache,
                tier,
                "circuit closed"
            ),
        }
    }

    /// Records a tier dropping an entry on its own, outside any operation.
    pub(crate) fn evicted(&self, tier: &Arc<str>, counters: &TierCounters) {
        let op = self.start(Operation::Housekeeping);
        self.tier(
            &Op {
                request_id: 0,
                ..op
            },
            tier,
            counters,
            TierOutcome::Evicted,
            None,
        );
    }

    /// Ends an operation.
    #[inline]
    pub(crate) fn finish(&self, op: &Op, outcome: OperationOutcome) {
        if let Some(started) = op.started {
            self.emit_operation(OperationEvent {
                request_id: op.request_id,
                cache: Arc::clone(&self.cache),
                operation: op.operation,
                outcome,
                duration: started.elapsed(),
                coalesced: op.coalesced,
            });
        }
    }

    #[cold]
    fn emit_operation(&self, event: OperationEvent) {
        tracing::event!(
            name: super::names::OPERATION,
            target: TARGET,
            Level::DEBUG,
            cache = &*event.cache,
            operation = event.operation.as_str(),
            outcome = event.outcome.as_str(),
            duration_ns = nanos(event.duration),
            coalesced = event.coalesced,
            request_id = event.request_id,
            "{}",
            super::names::OPERATION,
        );
        if let Some(handler) = &self.handler {
            handler(&CacheEvent::Operation(event));
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("cache", &self.cache)
            .field("counting", &self.counting)
            .field("handler", &self.handler.is_some())
            .finish_non_exhaustive()
    }
}
