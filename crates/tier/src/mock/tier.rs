//! A tier for tests: it stores entries in a map, records every call, and can be told to
//! fail or to stall any operation.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::entry::CacheEntry;
use crate::error::{Error, ErrorKind};
use crate::tier::CacheTier;

/// An operation of [`CacheTier`], to aim a fault at.
///
/// ```
/// use stratacache_tier::mock::{MockTier, TierOp};
/// use stratacache_tier::{CacheTier, ErrorKind};
///
/// # futures::executor::block_on(async {
/// let tier = MockTier::<u32, u32>::new();
/// tier.fail(TierOp::Invalidate, ErrorKind::Timeout);
/// assert!(tier.invalidate(&1).await.is_err());
/// assert!(tier.get(&1).await.is_ok()); // other operations are unaffected
/// # });
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TierOp {
    /// [`CacheTier::get`].
    Get,
    /// [`CacheTier::insert`].
    Insert,
    /// [`CacheTier::invalidate`].
    Invalidate,
    /// [`CacheTier::clear`].
    Clear,
}

/// A call the mock received, in order.
///
/// ```
/// use stratacache_tier::CacheTier;
/// use stratacache_tier::mock::{MockTier, TierCall, TierOp};
///
/// # futures::executor::block_on(async {
/// let tier = MockTier::<u32, &str>::new();
/// tier.get(&1).await?;
/// tier.clear().await?;
/// assert_eq!(tier.calls(), [TierCall::Get(1), TierCall::Clear]);
/// assert_eq!(tier.calls()[0].op(), TierOp::Get);
/// # Ok::<(), stratacache_tier::Error>(())
/// # }).unwrap();
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TierCall<K> {
    /// `get(key)`.
    Get(K),
    /// `insert(key, entry)`.
    Insert(K),
    /// `invalidate(key)`.
    Invalidate(K),
    /// `clear()`.
    Clear,
}

impl<K> TierCall<K> {
    /// The operation this call was.
    #[must_use]
    pub const fn op(&self) -> TierOp {
        match self {
            Self::Get(_) => TierOp::Get,
            Self::Insert(_) => TierOp::Insert,
            Self::Invalidate(_) => TierOp::Invalidate,
            Self::Clear => TierOp::Clear,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Fault {
    fail: Option<(ErrorKind, Option<u32>)>,
    delay: Option<Duration>,
}

/// An in-memory [`CacheTier`] that records calls and injects failures and latency.
///
/// Clones share state: keep one handle in the test, give another to the cache.
/// Delays use `tokio::time::sleep`, so they obey `tokio::time::pause`. A delayed `get`
/// answers with what was stored when it was called.
///
/// ```
/// use stratacache_tier::mock::{MockTier, TierOp};
/// use stratacache_tier::{CacheTier, ErrorKind};
///
/// # futures::executor::block_on(async {
/// let tier = MockTier::<u32, &str>::new();
/// tier.fail(TierOp::Get, ErrorKind::Unavailable);
/// let err = tier.get(&1).await.unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Unavailable);
/// tier.heal();
/// assert_eq!(tier.get(&1).await.unwrap(), None);
/// assert_eq!(tier.count(TierOp::Get), 2);
/// # });
/// ```
pub struct MockTier<K, V> {
    state: Arc<Mutex<State<K, V>>>,
}

struct State<K, V> {
    /// Each entry with the `keep_for` it was stored with.
    entries: HashMap<K, (CacheEntry<V>, Option<Duration>)>,
    calls: Vec<TierCall<K>>,
    faults: HashMap<TierOp, Fault>,
    /// Calls that arrived and have not answered yet, by operation.
    in_flight: HashMap<TierOp, usize>,
}

impl<K, V> MockTier<K, V> {
    /// An empty mock that succeeds at everything.
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                entries: HashMap::new(),
                calls: Vec::new(),
                faults: HashMap::new(),
                in_flight: HashMap::new(),
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<K, V>> {
        // A test that panicked while holding the lock must not poison later assertions.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes every following `op` fail with `kind`, until [`heal`](Self::heal).
    pub fn fail(&self, op: TierOp, kind: ErrorKind) {
        self.state().faults.entry(op).or_default().fail = Some((kind, None));
    }

    /// Makes the next `times` calls of `op` fail with `kind`; later ones succeed.
    ///
    /// ```
    /// use stratacache_tier::mock::{MockTier, TierOp};
    /// use stratacache_tier::{CacheTier, ErrorKind};
    ///
    /// # futures::executor::block_on(async {
    /// let tier = MockTier::<u32, u32>::new();
    /// tier.fail_times(TierOp::Get, ErrorKind::Unavailable, 2);
    /// assert!(tier.get(&1).await.is_err());
    /// assert!(tier.get(&1).await.is_err());
    /// assert!(tier.get(&1).await.is_ok());
    /// # });
    /// ```
    pub fn fail_times(&self, op: TierOp, kind: ErrorKind, times: u32) {
        self.state().faults.entry(op).or_default().fail = Some((kind, Some(times)));
    }

    /// Makes every following `op` wait `delay` (tokio time) before answering.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stratacache_tier::CacheTier;
    /// use stratacache_tier::mock::{MockTier, TierOp};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let tier = MockTier::<u32, u32>::new();
    /// tier.delay(TierOp::Get, Duration::from_secs(5));
    /// let start = tokio::time::Instant::now();
    /// tier.get(&1).await.unwrap();
    /// // Time is paused, so the test waits in tokio time only, not for real.
    /// assert!(start.elapsed() >= Duration::from_secs(5));
    /// # }
    /// ```
    pub fn delay(&self, op: TierOp, delay: Duration) {
        self.state().faults.entry(op).or_default().delay = Some(delay);
    }

    /// Removes every injected failure and delay.
    pub fn heal(&self) {
        self.state().faults.clear();
    }

    /// How many times `op` was called.
    #[must_use]
    pub fn count(&self, op: TierOp) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|call| call.op() == op)
            .count()
    }

    /// Forgets the recorded calls (entries and faults stay).
    pub fn reset_calls(&self) {
        self.state().calls.clear();
    }

    /// How many entries are stored.
    #[must_use]
    pub fn stored(&self) -> usize {
        self.state().entries.len()
    }

    /// Takes the next fault for `op`: the delay to wait and the error to return.
    fn take_fault(&self, op: TierOp) -> (Option<Duration>, Option<ErrorKind>) {
        let mut state = self.state();
        let Some(fault) = state.faults.get_mut(&op) else {
            return (None, None);
        };
        let error = match &mut fault.fail {
            Some((kind, None)) => Some(*kind),
            Some((kind, Some(left))) if *left > 0 => {
                *left -= 1;
                Some(*kind)
            }
            _ => None,
        };
        (fault.delay, error)
    }

    /// How many `op` calls have arrived and not answered yet (stalled by a delay).
    #[must_use]
    pub fn in_flight(&self, op: TierOp) -> usize {
        self.state().in_flight.get(&op).copied().unwrap_or(0)
    }

    async fn enter(&self, op: TierOp) -> Result<(), Error> {
        let (delay, error) = self.take_fault(op);
        if let Some(delay) = delay {
            *self.state().in_flight.entry(op).or_default() += 1;
            let _answered = InFlight { tier: self, op };
            tokio::time::sleep(delay).await;
        }
        match error {
            Some(kind) => Err(Error::new(kind, format!("injected {op:?} failure"))),
            None => Ok(()),
        }
    }
}

/// Counts a stalled call out when it answers or is dropped.
struct InFlight<'a, K, V> {
    tier: &'a MockTier<K, V>,
    op: TierOp,
}

impl<K, V> Drop for InFlight<'_, K, V> {
    fn drop(&mut self) {
        if let Some(count) = self.tier.state().in_flight.get_mut(&self.op) {
            *count = count.saturating_sub(1);
        }
    }
}

impl<K: Clone, V> MockTier<K, V> {
    /// Every call received so far, in order.
    #[must_use]
    pub fn calls(&self) -> Vec<TierCall<K>> {
        self.state().calls.clone()
    }
}

impl<K: Hash + Eq, V: Clone> MockTier<K, V> {
    /// The stored entry for `key`, read without recording a call.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_tier::mock::{MockTier, TierOp};
    /// use stratacache_tier::{CacheEntry, CacheTier};
    ///
    /// # futures::executor::block_on(async {
    /// let tier = MockTier::<u32, &str>::new();
    /// let entry = CacheEntry::new("v", SystemTime::UNIX_EPOCH, None);
    /// tier.insert(1, entry.clone(), None).await?;
    /// assert_eq!(tier.peek(&1), Some(entry));
    /// assert_eq!(tier.count(TierOp::Get), 0);
    /// # Ok::<(), stratacache_tier::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn peek(&self, key: &K) -> Option<CacheEntry<V>> {
        self.state()
            .entries
            .get(key)
            .map(|(entry, _)| entry.clone())
    }

    /// Stores `entry` under `key` as another writer of the tier would (another instance
    /// of the cache), past any injected failure or delay and without recording a call.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use stratacache_tier::mock::{MockTier, TierOp};
    /// use stratacache_tier::{CacheEntry, ErrorKind};
    ///
    /// let tier = MockTier::<u32, &str>::new();
    /// tier.fail(TierOp::Insert, ErrorKind::Unavailable);
    /// let entry = CacheEntry::new("theirs", SystemTime::UNIX_EPOCH, None);
    /// tier.put(1, entry.clone());
    /// assert_eq!(tier.peek(&1), Some(entry));
    /// assert_eq!(tier.count(TierOp::Insert), 0);
    /// ```
    pub fn put(&self, key: K, entry: CacheEntry<V>) {
        self.state().entries.insert(key, (entry, None));
    }

    /// How long the tier was asked to keep the entry under `key` when it was stored
    /// (`Some(None)`: no limit); `None` when nothing is stored.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::mock::MockTier;
    /// use stratacache_tier::{CacheEntry, CacheTier};
    ///
    /// # futures::executor::block_on(async {
    /// let tier = MockTier::<u32, &str>::new();
    /// let keep = Some(Duration::from_secs(30));
    /// tier.insert(1, CacheEntry::new("v", SystemTime::UNIX_EPOCH, None), keep).await?;
    /// assert_eq!(tier.kept_for(&1), Some(keep));
    /// assert_eq!(tier.kept_for(&2), None);
    /// assert_eq!(tier.stored(), 1);
    /// # Ok::<(), stratacache_tier::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn kept_for(&self, key: &K) -> Option<Option<Duration>> {
        self.state().entries.get(key).map(|(_, keep_for)| *keep_for)
    }
}

impl<K, V> Clone for MockTier<K, V> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<K, V> Default for MockTier<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> fmt::Debug for MockTier<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("MockTier")
            .field("entries", &state.entries.len())
            .field("calls", &state.calls.len())
            .finish_non_exhaustive()
    }
}

impl<K, V> CacheTier<K, V> for MockTier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    async fn get(&self, key: &K) -> Result<Option<CacheEntry<V>>, Error> {
        // The answer is read when the call arrives and delivered after the delay, like a
        // reply in flight: a write during the delay does not change it.
        let answer = {
            let mut state = self.state();
            state.calls.push(TierCall::Get(key.clone()));
            state.entries.get(key).map(|(entry, _)| entry.clone())
        };
        self.enter(TierOp::Get).await?;
        Ok(answer)
    }

    async fn insert(
        &self,
        key: K,
        entry: CacheEntry<V>,
        keep_for: Option<Duration>,
    ) -> Result<(), Error> {
        self.state().calls.push(TierCall::Insert(key.clone()));
        self.enter(TierOp::Insert).await?;
        self.state().entries.insert(key, (entry, keep_for));
        Ok(())
    }

    async fn invalidate(&self, key: &K) -> Result<(), Error> {
        self.state().calls.push(TierCall::Invalidate(key.clone()));
        self.enter(TierOp::Invalidate).await?;
        self.state().entries.remove(key);
        Ok(())
    }

    /// As [`invalidate`](Self::invalidate) (the call, its faults), then compared and
    /// removed in one step under the tier's lock, as a shared tier does.
    async fn invalidate_unless_newer(
        &self,
        key: &K,
        _at: SystemTime,
        than: SystemTime,
    ) -> Result<bool, Error> {
        self.state().calls.push(TierCall::Invalidate(key.clone()));
        self.enter(TierOp::Invalidate).await?;
        let mut state = self.state();
        let newer = |(entry, _): &(CacheEntry<V>, _)| entry.is_newer_than(than);
        if state.entries.get(key).is_some_and(newer) {
            return Ok(false);
        }
        state.entries.remove(key);
        Ok(true)
    }

    async fn clear(&self) -> Result<(), Error> {
        self.state().calls.push(TierCall::Clear);
        self.enter(TierOp::Clear).await?;
        self.state().entries.clear();
        Ok(())
    }

    fn len(&self) -> Option<u64> {
        u64::try_from(self.state().entries.len()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fail_times_fails_exactly_that_often() {
        let tier = MockTier::<u8, u8>::new();
        tier.fail_times(TierOp::Insert, ErrorKind::Timeout, 2);
        let entry = CacheEntry::new(1, SystemTime::UNIX_EPOCH, None);
        assert!(tier.insert(1, entry.clone(), None).await.is_err());
        assert!(tier.insert(1, entry.clone(), None).await.is_err());
        assert!(tier.insert(1, entry, None).await.is_ok());
        assert_eq!(tier.stored(), 1);
        assert_eq!(tier.calls(), vec![TierCall::Insert(1); 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_waits_in_tokio_time() {
        let tier = MockTier::<u8, u8>::new();
        tier.delay(TierOp::Get, Duration::from_secs(30));
        let start = tokio::time::Instant::now();
        assert_eq!(tier.get(&1).await.unwrap(), None);
        assert!(start.elapsed() >= Duration::from_secs(30));
    }
}
