//! A tier's circuit breaker, on the cache's clock: after some transient failures in a
//! row the tier is not called for a cool-down (its calls fail at once with
//! [`ErrorKind::CircuitOpen`]), then one probe decides.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use stratacache_tier::{Circuit, CircuitState, Clock, Error, ErrorKind, Pass};

use crate::telemetry::Telemetry;

pub(crate) struct Breaker {
    circuit: Circuit<SystemTime>,
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

    fn reopen_until(&self) -> SystemTime {
        Circuit::reopen_at(self.clock.now(), self.cool_down, SystemTime::checked_add)
    }

    pub(crate) fn state(&self) -> CircuitState {
        self.circuit.state()
    }

    /// Runs `call` through `breaker` when there is one, else as it is. A call the
    /// circuit turns away is not made at all: nothing is encoded or allocated for a tier
    /// that is out.
    ///
    /// One future, not one per step: every remote call of the cache goes through this,
    /// and each layer of futures is state to copy and poll on every call.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would store its arguments twice in every remote call's future"
    )]
    pub(crate) fn guard_if_any<'a, T, Fut>(
        breaker: Option<&'a Self>,
        call: impl FnOnce() -> Fut + Send + 'a,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'a
    where
        Fut: Future<Output = Result<T, Error>> + Send + 'a,
    {
        async move {
            let admitted = match breaker {
                Some(breaker) => Some((breaker, breaker.admit()?)),
                None => None,
            };
            let result = call().await;
            if let Some((breaker, pass)) = admitted {
                breaker.settle(pass, result.as_ref().err().map(Error::kind));
            }
            result
        }
    }

    /// Lets a call through if the circuit does (see [`Circuit::pass`]). Dropped
    /// unsettled (the call was cancelled), a probe's pass reopens the circuit for another
    /// cool-down.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::CircuitOpen`] while the circuit turns calls away.
    fn admit(
        &self,
    ) -> Result<Pass<&Circuit<SystemTime>, SystemTime, impl Fn() -> SystemTime>, Error> {
        Circuit::pass(&self.circuit, || self.clock.now(), || self.reopen_until())
            .ok_or_else(|| Error::new(ErrorKind::CircuitOpen, "circuit open: tier skipped"))
    }

    /// Records how an admitted call ended (`failure`, if it failed); an opening or
    /// closing of the circuit is reported.
    fn settle(
        &self,
        pass: Pass<&Circuit<SystemTime>, SystemTime, impl Fn() -> SystemTime>,
        failure: Option<ErrorKind>,
    ) {
        if let Some(changed) = pass.finish(failure) {
            self.telemetry.circuit(&self.tier, changed);
        }
    }
}
