//! A circuit breaker for a tier or a store: after some failures in a row it stops calling
//! it for a cool-down, answering at once, then lets one probe decide.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use stratacache_tier::{BoxError, Circuit, CircuitState, Error, ErrorKind};
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::error::kind_of;

/// A `tower::Layer` that opens a circuit after `failures` transient failures in a row
/// (timeouts, unavailable), skips the inner service for `cool_down` (every call fails
/// at once with [`ErrorKind::CircuitOpen`]: the cache reads a miss, a write reports the
/// tier), then lets one call through as a probe: success closes the circuit, failure
/// opens it again. The state machine is [`stratacache_tier::Circuit`], the one the
/// cache's own per-tier breaker runs. Other errors (bad bytes, a rejected value) say nothing about the
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
            cool_down: self.cool_down,
            circuit: Arc::new(Circuit::new(self.failures)),
        }
    }
}

/// The service a [`CircuitBreakerLayer`] makes. Clones share one circuit.
pub struct CircuitBreaker<S> {
    inner: S,
    cool_down: Duration,
    circuit: Arc<Circuit<Instant>>,
}

impl<S: Clone> Clone for CircuitBreaker<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cool_down: self.cool_down,
            circuit: Arc::clone(&self.circuit),
        }
    }
}

impl<S> CircuitBreaker<S> {
    /// Where the circuit stands now.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        self.circuit.state()
    }
}

impl<S> fmt::Debug for CircuitBreaker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("cool_down", &self.cool_down)
            .field("circuit", &self.circuit)
            .finish_non_exhaustive()
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
        let cool_down = self.cool_down;
        let reopen_until =
            move || Circuit::reopen_at(Instant::now(), cool_down, Instant::checked_add);
        let Some(pass) = Circuit::pass(Arc::clone(&self.circuit), Instant::now, reopen_until)
        else {
            let open = Error::new(ErrorKind::CircuitOpen, "circuit open: tier skipped");
            return Box::pin(std::future::ready(Err(open.into())));
        };
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await.map_err(Into::into);
            let failure = result
                .as_ref()
                .err()
                .map(|error| kind_of(error.as_ref()).unwrap_or(ErrorKind::Other));
            pass.finish(failure);
            result
        })
    }
}
