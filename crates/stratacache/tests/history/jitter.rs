//! A tier whose every operation takes a random time, lands at a random point within it,
//! and (when asked) fails writes at random, before or after taking effect, as a timed-out
//! remote call would. Reads never fail: a failed read is a reported miss by design (a
//! strict cache returns it), which a history cannot tell from a stale answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratacache::{CacheEntry, CacheTier, Error, ErrorKind};

/// How the tier waits.
#[derive(Clone, Copy)]
pub(crate) enum Pause {
    /// `tokio::time::sleep` of up to this long (under `tokio::time::pause`, virtual time).
    Sleep(Duration),
    /// Up to this many `yield_now`s (real concurrency on a multi-thread runtime).
    Yield(u32),
}

impl Pause {
    /// Waits a random time up to the bound.
    pub(crate) async fn wait(self) {
        match self {
            Pause::Sleep(max) => {
                let micros = fastrand::u64(0..=max.as_micros() as u64);
                tokio::time::sleep(Duration::from_micros(micros)).await;
            }
            Pause::Yield(max) => {
                for _ in 0..fastrand::u32(0..=max) {
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

#[derive(Clone)]
pub(crate) struct JitterTier {
    map: Arc<Mutex<HashMap<u64, CacheEntry<u64>>>>,
    pause: Pause,
    /// Out of 1,000 writes, how many fail.
    failures_per_mille: u32,
}

impl JitterTier {
    pub(crate) fn new(pause: Pause, failures_per_mille: u32) -> Self {
        Self {
            map: Arc::default(),
            pause,
            failures_per_mille,
        }
    }

    pub(crate) fn peek(&self, key: u64) -> Option<u64> {
        self.map.lock().unwrap().get(&key).map(|e| *e.value())
    }

    fn fails(&self) -> bool {
        fastrand::u32(0..1_000) < self.failures_per_mille
    }

    /// Waits, maybe fails, applies `effect`, waits, maybe fails (the effect stays).
    async fn call<R>(
        &self,
        may_fail: bool,
        effect: impl FnOnce(&mut HashMap<u64, CacheEntry<u64>>) -> R,
    ) -> Result<R, Error> {
        self.pause.wait().await;
        if may_fail && self.fails() {
            return Err(Error::new(ErrorKind::Unavailable, "jitter: failed before"));
        }
        let result = effect(&mut self.map.lock().unwrap());
        self.pause.wait().await;
        if may_fail && self.fails() {
            return Err(Error::new(ErrorKind::Timeout, "jitter: timed out after"));
        }
        Ok(result)
    }
}

impl CacheTier<u64, u64> for JitterTier {
    async fn get(&self, key: &u64) -> Result<Option<CacheEntry<u64>>, Error> {
        self.call(false, |map| map.get(key).cloned()).await
    }

    async fn insert(
        &self,
        key: u64,
        entry: CacheEntry<u64>,
        _keep_for: Option<Duration>,
    ) -> Result<(), Error> {
        self.call(true, |map| {
            map.insert(key, entry);
        })
        .await
    }

    async fn invalidate(&self, key: &u64) -> Result<(), Error> {
        self.call(true, |map| {
            map.remove(key);
        })
        .await
    }

    async fn clear(&self) -> Result<(), Error> {
        self.call(true, HashMap::clear).await
    }
}
