//! The refresh machinery of a built cache: when a stale hit starts a refresh, and what
//! one refresh does.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use stratacache_tier::{CacheEntry, ErrorKind};

use super::claims::Claims;
use super::{Spawner, TimeToRefresh};
use crate::inner::Inner;
use crate::loader::DynLoader;
use crate::telemetry::{CacheCounter, Op, Operation, OperationOutcome, TierOutcome};
use crate::walk::Look;

pub(crate) struct Refresher<K, V> {
    pub(crate) after: Duration,
    jitter: Duration,
    /// The youngest age any entry is due at (`after` less the whole jitter): a hit
    /// younger than this is judged with one comparison.
    earliest: Duration,
    timeout: Duration,
    spawner: Spawner,
    /// The refresh's own loader, else the cache's.
    reload: Option<DynLoader<K, V>>,
    claims: Claims<K>,
}

impl<K, V> Refresher<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(config: TimeToRefresh<K, V>, cache_loader: Option<DynLoader<K, V>>) -> Self {
        Self {
            after: config.after,
            jitter: config.jitter,
            earliest: config.after.saturating_sub(config.jitter),
            timeout: config.timeout.unwrap_or(config.after),
            spawner: config.spawner,
            reload: config.reload.or(cache_loader),
            claims: Claims::new(),
        }
    }
}

impl<K, V> Refresher<K, V> {
    /// The age at which `entry` is due for a refresh: `after`, less a part of the jitter
    /// fixed by when the entry's value was produced.
    fn due<T>(&self, entry: &CacheEntry<T>) -> Duration {
        let jitter = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        if jitter == 0 {
            return self.after;
        }
        let produced = entry
            .cached_at()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos() ^ (since.as_secs() as u32));
        // A multiplicative hash spreads nearby timestamps across the jitter.
        let spread = u64::from(produced).wrapping_mul(0x9E37_79B9_7F4A_7C15) % jitter;
        self.after.saturating_sub(Duration::from_nanos(spread))
    }
}

/// What one refresh came to.
struct Refreshed {
    /// A newer value was found or reloaded (and published, unless a write raced).
    newer: bool,
    /// The last failure met on the way, if any.
    failure: Option<ErrorKind>,
}

/// A refresh's hold on its key, made when the refresh is claimed and moved into its task.
/// However the task ends (done, failed, timed out, cancelled, panicked, or dropped by a
/// spawner that never ran it), the key is released: at once after a newer value, or
/// after a rest of one time-to-refresh otherwise.
struct Claim<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    inner: Arc<Inner<K, V>>,
    key: K,
    rest_until: Option<SystemTime>,
}

impl<K, V> Drop for Claim<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        if let Some(refresher) = &self.inner.refresher {
            refresher.claims.finish(&self.key, self.rest_until);
        }
    }
}

impl<K, V> Claim<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The refresh, bounded by the refresh timeout.
    async fn run(mut self, stale_since: SystemTime) {
        let inner = Arc::clone(&self.inner);
        let Some(refresher) = &inner.refresher else {
            return;
        };
        let op = inner.telemetry.start(Operation::Refresh);
        let refresh = inner.refresh(&self.key, stale_since, &op);
        let refreshed = if tokio::runtime::Handle::try_current().is_ok() {
            tokio::time::timeout(refresher.timeout, refresh)
                .await
                .unwrap_or(Refreshed {
                    newer: false,
                    failure: Some(ErrorKind::Timeout),
                })
        } else {
            refresh.await
        };
        // After a newer value the key may be refreshed when that value is stale; else it
        // rests, counted from the refresh's end so that a slow one doesn't shorten it.
        self.rest_until = if refreshed.newer {
            None
        } else {
            inner.clock.now().checked_add(refresher.after)
        };
        drop(self);
        let outcome = match refreshed {
            Refreshed { newer: true, .. } => OperationOutcome::Loaded,
            Refreshed {
                failure: Some(kind),
                ..
            } => {
                inner.telemetry.count(CacheCounter::RefreshesFailed);
                OperationOutcome::Error(kind)
            }
            Refreshed { .. } => OperationOutcome::Miss,
        };
        inner.telemetry.finish(&op, outcome);
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Starts a background refresh of `key` if its L1 entry has reached its
    /// time-to-refresh and no refresh of it runs or rests.
    pub(crate) fn refresh_if_stale<Q>(
        self: &Arc<Self>,
        key: &Q,
        entry: &CacheEntry<V>,
        now: SystemTime,
    ) where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.refresh_if_due(key, entry, None, now);
    }

    /// [`refresh_if_stale`](Self::refresh_if_stale), given the entry's age at `now` if
    /// the caller already knows it (the hit path judged expiry with the same reading).
    /// Only the entry's times are read: a caller may hand a copy of them alone.
    #[inline]
    pub(crate) fn refresh_if_due<Q, T>(
        self: &Arc<Self>,
        key: &Q,
        entry: &CacheEntry<T>,
        known_age: Option<Duration>,
        now: SystemTime,
    ) where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let Some(refresher) = &self.refresher else {
            return;
        };
        let age = known_age.unwrap_or_else(|| entry.age(now));
        if age < refresher.earliest
            || age < refresher.due(entry)
            || !refresher.claims.claim(key, now)
        {
            return;
        }
        // Until the refresh ends well, the claim rests: a task that never runs or never
        // finishes must not let every later hit start another.
        let claim = Claim {
            inner: Arc::clone(self),
            key: key.to_owned(),
            rest_until: now.checked_add(refresher.after),
        };
        if (refresher.spawner)(Box::pin(claim.run(entry.cached_at()))) {
            self.telemetry.count(CacheCounter::RefreshesStarted);
        } else {
            self.telemetry.count(CacheCounter::RefreshesFailed);
        }
    }

    /// A newer entry from the fallback tiers, else the refresh loader's value, replaces
    /// the stale one, unless a write to the key began since the refresh started.
    async fn refresh(self: &Arc<Self>, key: &K, stale_since: SystemTime, op: &Op) -> Refreshed {
        let ticket = self.generations.ticket(key);
        let mut failure = None;
        for (depth, level) in self.levels.iter().enumerate().skip(1) {
            match self.look_at(level, key, op).await {
                Look::Live(entry, stopwatch) => {
                    if entry.cached_at() > stale_since {
                        self.report(op, level, TierOutcome::RefreshHit, stopwatch);
                        self.publish(key, &entry, ticket, 0..depth, TierOutcome::Promoted, op)
                            .await;
                        return Refreshed {
                            newer: true,
                            failure,
                        };
                    }
                    // The nearest live copy is the newest the tiers hold.
                    self.report(op, level, TierOutcome::RefreshMiss, stopwatch);
                    break;
                }
                Look::Stale(_) | Look::Absent => {}
                Look::Failed(error) => failure = Some(error.kind()),
            }
        }
        let Some(reload) = self.refresher.as_ref().and_then(|r| r.reload.clone()) else {
            return Refreshed {
                newer: false,
                failure,
            };
        };
        self.telemetry.count(CacheCounter::Loads);
        let started = self.clock.now();
        match reload.load(key.clone()).await {
            Ok(Some(loaded)) => {
                let entry = loaded.into_entry(started);
                let levels = 0..self.levels.len();
                self.publish(key, &entry, ticket, levels, TierOutcome::Inserted, op)
                    .await;
                Refreshed {
                    newer: true,
                    failure,
                }
            }
            Ok(None) => Refreshed {
                newer: false,
                failure,
            },
            Err(error) => {
                self.telemetry.count(CacheCounter::LoadErrors);
                Refreshed {
                    newer: false,
                    failure: Some(error.kind()),
                }
            }
        }
    }
}
