//! An in-process distributed lock, for tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::backplane::BoxFuture;
use crate::error::Error;
use crate::lock::DistributedLock;

/// A [`DistributedLock`] within one process, on tokio's clock: clones share the locks.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use stratacache_tier::DistributedLock;
/// use stratacache_tier::mock::MockLock;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), stratacache_tier::Error> {
/// let lock = MockLock::new();
/// let name = Bytes::from_static(b"key");
/// let token = lock.try_lock(name.clone(), Duration::from_secs(1)).await?.unwrap();
/// assert_eq!(lock.try_lock(name.clone(), Duration::from_secs(1)).await?, None, "held");
/// lock.unlock(name.clone(), token).await?;
/// assert!(lock.try_lock(name, Duration::from_secs(1)).await?.is_some(), "free again");
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct MockLock {
    held: Arc<Mutex<HashMap<Bytes, (u64, Instant)>>>,
    next_token: Arc<AtomicU64>,
}

impl MockLock {
    /// No lock held.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many locks are held now (expired ones excluded).
    #[must_use]
    pub fn held(&self) -> usize {
        let now = Instant::now();
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.values().filter(|(_, until)| *until > now).count()
    }
}

impl DistributedLock for MockLock {
    fn try_lock(&self, name: Bytes, ttl: Duration) -> BoxFuture<'_, Result<Option<u64>, Error>> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = match held.get(&name) {
            Some((_, until)) if *until > now => None,
            _ => {
                let token = self.next_token.fetch_add(1, Ordering::Relaxed) + 1;
                held.insert(name, (token, now + ttl));
                Some(token)
            }
        };
        Box::pin(std::future::ready(Ok(taken)))
    }

    fn unlock(&self, name: Bytes, token: u64) -> BoxFuture<'_, Result<(), Error>> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.get(&name).is_some_and(|(holder, _)| *holder == token) {
            held.remove(&name);
        }
        Box::pin(std::future::ready(Ok(())))
    }
}
