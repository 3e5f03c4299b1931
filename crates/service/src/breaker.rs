//! A circuit breaker for a tier or a store: after some failures in a row it stops calling
//! it for a cool-down, answering at once, then lets one probe decide.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use stratacache_tier::{BoxError, Error, ErrorKind};
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::error::kind_of;

/// A `tower::Layer` that opens a circuit after `failures` transient failures in a row
/// (timeouts, unavailable), skips the inner service for `cool_down` (every call fails
/// at once with [`ErrorKind::Unavailable`]: the cache reads a miss, a write reports the
/// tier), then lets one call through as a probe: success closes the circuit, failure
/// opens it again. Other errors (bad bytes, a rejected value) say nothing about the
/// tier's health and leave the count alone.
///
/// Put it outside the timeout, so a timed-out call counts as a failure. With it, an
/// outage costs each caller one command timeout until the circuit opens, then nothing.
///
/// ```
/// use std::time::Duration;
/// use stratacache::{Cache, ErrorKind, Fallback};
/// use stratacache::mock::{MockTier, TierOp};
/// use stratacache_service::{CircuitBreakerLayer, ServiceTier};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stratacache::Error> {
/// let redis = MockTier::<u64, String>::new(); // in production: Remote::new(redis).into_tier()
/// redis.fail(TierOp::Get, ErrorKind::Timeout);
/// let breaker = CircuitBreakerLayer::new(3, Duration::from_secs(5));
/// let cache: Cache<u64, String> = Cache::builder()
///     .fallback(Fallback::tier(ServiceTier::layered(redis.clone(), breaker)))
///     .build()?;
/// for id in 0..10 {
///     assert_eq!(cache.get(&id).await?, None, "a failing tier reads as a miss");
/// }
/// assert_eq!(redis.count(TierOp::Get), 3, "after three failures it is not called");
/// tokio::time::advance(Duration::from_secs(5)).await;
/// redis.heal();
/// cache.get(&1).await?; // the probe
/// cache.get(&2).await?;
/// assert_eq!(redis.count(TierOp::Get), 5, "closed again");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    failures: u32,
    cool_down: Duration,
}

impl CircuitBreakerLayer {
    /// Opens after `failures` (at least 1) transient failures in a row, for `cool_down`.
    #[must_use]
    pub fn new(failures: u32, cool_down: Duration) -> Self {
        Self {
            failures: failures.max(1),
            cool_down,
        }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreaker<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            failures: self.failures,
            cool_down: self.cool_down,
            state: Arc::new(Mutex::new(State::Closed { failures: 0 })),
        }
    }
}

/// The service a [`CircuitBreakerLayer`] makes. Clones share one circuit.
pub struct CircuitBreaker<S> {
    inner: S,
    failures: u32,
    cool_down: Duration,
    state: Arc<Mutex<State>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; everyone else is turned away until it answers.
    Probing,
}

impl<S: Clone> Clone for CircuitBreaker<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            failures: self.failures,
            cool_down: self.cool_down,
            state: Arc::clone(&self.state),
        }
    }
}

impl<S> fmt::Debug for CircuitBreaker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("failures", &self.failures)
            .field("cool_down", &self.cool_down)
            .field("state", &*lock(&self.state))
            .finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Every change of the state is one assignment: a panic leaves it whole.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the circuit lets a call do.
enum Admission {
    Call,
    Probe,
    TurnAway,
}

impl<S> CircuitBreaker<S> {
    fn admit(&self) -> Admission {
        let mut state = lock(&self.state);
        match *state {
            State::Closed { .. } => Admission::Call,
            State::Open { until } if Instant::now() >= until => {
                *state = State::Probing;
                Admission::Probe
            }
            State::Open { .. } | State::Probing => Admission::TurnAway,
        }
    }
}

/// Records how a call that went through ended.
struct Verdict {
    state: Arc<Mutex<State>>,
    failures: u32,
    cool_down: Duration,
    probe: bool,
}

impl Verdict {
    fn record(&self, transient_failure: bool) {
        let mut state = lock(&self.state);
        *state = match (transient_failure, *state) {
            (false, _) => State::Closed { failures: 0 },
            (true, State::Closed { failures }) if failures + 1 < self.failures && !self.probe => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (true, _) => State::Open {
                until: Instant::now() + self.cool_down,
            },
        };
    }
}

impl Drop for Verdict {
    fn drop(&mut self) {
        // A probe dropped unanswered (its caller gave up) must not leave the circuit
        // probing forever: it counts as a failure.
        if self.probe && *lock(&self.state) == State::Probing {
            self.record(true);
        }
    }
}

impl<S, Request> Service<Request> for CircuitBreaker<S>
where
    S: Service<Request>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(context).map_err(Into::into)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let probe = match self.admit() {
            Admission::Call => false,
            Admission::Probe => true,
            Admission::TurnAway => {
                let open = Error::new(ErrorKind::Unavailable, "circuit open: tier skipped");
                return Box::pin(std::future::ready(Err(open.into())));
            }
        };
        let verdict = Verdict {
            state: Arc::clone(&self.state),
            failures: self.failures,
            cool_down: self.cool_down,
            probe,
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await.map_err(Into::into);
            let transient = match &result {
                Ok(_) => false,
                Err(error) => kind_of(error.as_ref()).is_some_and(ErrorKind::is_transient),
            };
            if result.is_ok() || transient {
                verdict.record(transient);
            } else if probe {
                // A non-transient answer still proves the tier is up.
                verdict.record(false);
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(state: &Arc<Mutex<State>>, probe: bool) -> Verdict {
        Verdict {
            state: Arc::clone(state),
            failures: 2,
            cool_down: Duration::from_secs(1),
            probe,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_a_row_and_a_success_resets_the_count() {
        let state = Arc::new(Mutex::new(State::Closed { failures: 0 }));
        verdict(&state, false).record(true);
        verdict(&state, false).record(false);
        verdict(&state, false).record(true);
        assert_eq!(*lock(&state), State::Closed { failures: 1 });
        verdict(&state, false).record(true);
        assert!(matches!(*lock(&state), State::Open { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_dropped_unanswered_reopens_the_circuit() {
        let state = Arc::new(Mutex::new(State::Probing));
        drop(verdict(&state, true));
        assert!(matches!(*lock(&state), State::Open { .. }));
    }
}
