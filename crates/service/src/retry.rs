use std::time::Duration;

use tower::retry::Policy;

use crate::request::CacheRequest;

/// A `tower::retry::Policy` for cache tiers.
///
/// Retries a [`Get`](CacheRequest::Get) that failed as
/// [`Unavailable`](stratacache_tier::ErrorKind::Unavailable) or
/// [`Timeout`](stratacache_tier::ErrorKind::Timeout), at most `max_retries` times,
/// waiting `base · 2ⁿ` (capped) before the n-th retry. Codec, rejected and other errors
/// are final, and writes are never retried: a cache would rather miss than pile writes
/// onto a struggling store.
///
/// Put it outside the timeout (`.retry(..).timeout(..)`) so each attempt has its own.
///
/// ```
/// use stratacache_service::{CacheRetry, ServiceTier};
/// use stratacache_tier::mock::{MockTier, TierOp};
/// use stratacache_tier::{CacheTier, ErrorKind};
/// use tower::ServiceBuilder;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stratacache_tier::Error> {
/// let storage = MockTier::<u64, String>::new();
/// storage.fail_times(TierOp::Get, ErrorKind::Unavailable, 2);
/// let layers = ServiceBuilder::new().retry(CacheRetry::new(3));
/// let tier = ServiceTier::layered(storage.clone(), layers);
/// assert_eq!(tier.get(&1).await?, None); // two failures, then an answer
/// assert_eq!(storage.count(TierOp::Get), 3);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CacheRetry {
    retries_left: u32,
    attempt: u32,
    base: Duration,
    max: Duration,
}

impl CacheRetry {
    /// At most `max_retries` retries, backing off from 10 ms up to 1 s.
    ///
    /// Only transient errors are retried:
    ///
    /// ```
    /// use stratacache_service::{CacheRetry, ServiceTier};
    /// use stratacache_tier::mock::{MockTier, TierOp};
    /// use stratacache_tier::{CacheTier, ErrorKind};
    /// use tower::ServiceBuilder;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let storage = MockTier::<u64, String>::new();
    /// storage.fail_times(TierOp::Get, ErrorKind::Codec, 1);
    /// let layers = ServiceBuilder::new().retry(CacheRetry::new(3));
    /// let tier = ServiceTier::layered(storage.clone(), layers);
    /// let err = tier.get(&1).await.unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::Codec);
    /// assert_eq!(storage.count(TierOp::Get), 1); // not retried
    /// # }
    /// ```
    #[must_use]
    pub const fn new(max_retries: u32) -> Self {
        Self {
            retries_left: max_retries,
            attempt: 0,
            base: Duration::from_millis(10),
            max: Duration::from_secs(1),
        }
    }

    /// The first wait and the longest.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache_service::{CacheRetry, ServiceTier};
    /// use stratacache_tier::mock::{MockTier, TierOp};
    /// use stratacache_tier::{CacheTier, ErrorKind};
    /// use tower::ServiceBuilder;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), stratacache_tier::Error> {
    /// let storage = MockTier::<u64, String>::new();
    /// storage.fail_times(TierOp::Get, ErrorKind::Timeout, 3);
    /// let retry = CacheRetry::new(3)
    ///     .backoff(Duration::from_secs(1), Duration::from_secs(3));
    /// let tier = ServiceTier::layered(storage, ServiceBuilder::new().retry(retry));
    /// let start = tokio::time::Instant::now();
    /// tier.get(&1).await?;
    /// assert_eq!(start.elapsed().as_secs(), 1 + 2 + 3); // doubling, capped at 3 s
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub const fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base = base;
        self.max = max;
        self
    }

    fn next_delay(&self) -> Duration {
        let factor = 2_u32.saturating_pow(self.attempt);
        self.base.saturating_mul(factor).min(self.max)
    }

    fn step<K, V>(
        &mut self,
        request: &CacheRequest<K, V>,
        transient: bool,
    ) -> Option<tokio::time::Sleep> {
        if !request.is_read() || !transient || self.retries_left == 0 {
            return None;
        }
        let delay = self.next_delay();
        self.retries_left -= 1;
        self.attempt += 1;
        Some(tokio::time::sleep(delay))
    }
}

mod judged {
    use stratacache_tier::{BoxError, Error, ErrorKind};

    use crate::error::kind_of;

    /// The errors a [`CacheRetry`](super::CacheRetry) can judge: a tower stack's boxed
    /// error, or a tier error. Sealed: judged by [`Error::is_transient`]'s rule.
    pub trait Judged {
        fn is_transient(&self) -> bool;
    }

    impl Judged for BoxError {
        fn is_transient(&self) -> bool {
            kind_of(self.as_ref()).is_some_and(ErrorKind::is_transient)
        }
    }

    impl Judged for Error {
        fn is_transient(&self) -> bool {
            Error::is_transient(self)
        }
    }
}

impl<K: Clone, V: Clone, Res, E: judged::Judged> Policy<CacheRequest<K, V>, Res, E> for CacheRetry {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        request: &mut CacheRequest<K, V>,
        result: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        let transient = result
            .as_ref()
            .err()
            .is_some_and(judged::Judged::is_transient);
        result
            .is_err()
            .then(|| self.step(request, transient))
            .flatten()
    }

    fn clone_request(&mut self, request: &CacheRequest<K, V>) -> Option<CacheRequest<K, V>> {
        request.is_read().then(|| request.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut policy =
            CacheRetry::new(10).backoff(Duration::from_millis(10), Duration::from_millis(50));
        let mut delays = Vec::new();
        for _ in 0..4 {
            delays.push(policy.next_delay());
            policy.attempt += 1;
        }
        assert_eq!(delays, [10, 20, 40, 50].map(Duration::from_millis));
    }
}
