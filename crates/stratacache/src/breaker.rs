//! A tier's circuit breaker, on the cache's clock: after some transient failures in a
//! row the tier is not called for a cool-down (its calls fail at once with
//! [`ErrorKind::CircuitOpen`]), then one probe decides.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stratacache_tier::{Admission, Circuit, CircuitState, Clock, Error, ErrorKind};

use crate::telemetry::Telemetry;

pub(crate) struct Breaker {
    circuit: Circuit<std::time::SystemTime>,
    cool_down: Duration,
    clock: Clock,
    /// Where its openings and closings are reported.
    telemetry: Arc<Telemetry>,
    tier: Arc<str>,
}

/// Reopens the circuit if the probe it carries is dropped before it answers.
struct Probe<'a> {
    breaker: &'a Breaker,
    pending: bool,
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if self.pending {
            self.breaker
                .circuit
                .abandon_probe(self.breaker.reopen_until());
        }
    }
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
        now.checked_add(self.cool_down).unwrap_or(now)
    }

    pub(crate) fn state(&self) -> CircuitState {
        self.circuit.state()
    }

    /// Runs `call` if the circuit lets it, and records how it ended: a transient failure
    /// counts toward opening; a success, or any answer to a probe that is not a
    /// transient failure, closes it. Other errors (bad bytes, a rejected value) say
    /// nothing about the tier's health.
    pub(crate) async fn guard<T>(
        &self,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let probe = match self.circuit.admit(self.clock.now()) {
            Admission::Call => false,
            Admission::Probe => true,
            Admission::TurnAway => {
                return Err(Error::new(
                    ErrorKind::CircuitOpen,
                    "circuit open: tier skipped",
                ));
            }
        };
        let mut pending = Probe {
            breaker: self,
            pending: probe,
        };
        let result = call.await;
        let transient = result
            .as_ref()
            .is_err_and(|error| error.kind().is_transient());
        if (result.is_ok() || transient || probe)
            && let Some(changed) = self.circuit.record(probe, transient, self.reopen_until())
        {
            self.telemetry.circuit(&self.tier, changed);
        }
        pending.pending = false;
        result
    }
}
