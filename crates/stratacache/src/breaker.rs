//! A tier's circuit breaker, on the cache's clock: after some transient failures in a
//! row the tier is not called for a cool-down (its calls fail at once with
//! [`ErrorKind::CircuitOpen`]), then one probe decides.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stratacache_tier::{Circuit, CircuitState, Clock, Error, ErrorKind};

use crate::telemetry::Telemetry;

pub(crate) struct Breaker {
    circuit: Circuit<std::time::SystemTime>,
    cool_down: Duration,
    clock: Clock,
    /// Where its openings and closings are reported.
    telemetry: Arc<Telemetry>,
    tier: Arc<str>,
}

impl Breaker {
    pub(crate) fn new(
        (failures, cool_down): (u32, Duration),
        clock: Clock,
        telemetry: Arc<Telemetry>,
        tier: Arc<str>,
    ) -> Self {
        Self {
            circuit: Circuit::new(failures),
            cool_down,
            clock,
            telemetry,
            tier,
        }
    }

    fn reopen_until(&self) -> std::time::SystemTime {
        let now = self.clock.now();
        // Saturated: a cool-down past what a `SystemTime` can hold lasts a century.
        now.checked_add(self.cool_down)
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 60 * 60)))
            .unwrap_or(now)
    }

    pub(crate) fn state(&self) -> CircuitState {
        self.circuit.state()
    }

    /// Runs `call` through `breaker` when there is one, else as it is.
    pub(crate) async fn guard_if_any<T, Fut>(
        breaker: Option<&Self>,
        call: impl FnOnce() -> Fut,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, Error>>,
    {
        match breaker {
            Some(breaker) => breaker.guard(call).await,
            None => call().await,
        }
    }

    /// Makes `call` if the circuit lets it (see [`Circuit::pass`]), and records how it
    /// ended; an opening or closing is reported. A call the circuit skips is not made
    /// at all: nothing is encoded or allocated for a tier that is out.
    pub(crate) async fn guard<T, Fut>(&self, call: impl FnOnce() -> Fut) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, Error>>,
    {
        let Some(pass) = Circuit::pass(&self.circuit, self.clock.now(), || self.reopen_until())
        else {
            return Err(Error::new(
                ErrorKind::CircuitOpen,
                "circuit open: tier skipped",
            ));
        };
        let result = call().await;
        if let Some(changed) = pass.finish(result.as_ref().err().map(Error::kind)) {
            self.telemetry.circuit(&self.tier, changed);
        }
        result
    }
}
