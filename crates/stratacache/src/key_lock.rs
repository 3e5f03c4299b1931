//! Per-key serialization of everything that changes a key below L1.
//!
//! Writes and publishes that reach an async tier (Redis, memcached, any `CacheTier`) take
//! their key's lock, so that two of them never interleave their tier writes: without it
//! an `insert` whose Redis `SET` is slow could land after a later `insert`'s, leaving L1
//! and L2 with different values, and a load could put its value into L2 after an
//! `invalidate` removed the key. A `clear` takes every key at once.
//!
//! Locks exist only while someone holds or waits for them: the map holds one entry per
//! key in use, removed by the last guard to leave.

use std::hash::Hash;
use std::sync::Arc;

use tokio::sync::{
    Mutex as AsyncMutex, OwnedMutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use crate::sharded::ShardedMap;

pub(crate) struct KeyLocks<K> {
    locks: ShardedMap<K, Arc<AsyncMutex<()>>>,
    /// Read by every key's holder, written by a clear.
    every_key: RwLock<()>,
}

impl<K: Hash + Eq + Clone> KeyLocks<K> {
    pub(crate) fn new() -> Self {
        Self {
            locks: ShardedMap::new(),
            every_key: RwLock::new(()),
        }
    }

    /// Waits until no one else holds `key` (nor every key), then holds it until the guard
    /// is dropped.
    pub(crate) async fn lock(&self, key: &K) -> KeyGuard<'_, K> {
        let shared = self.every_key.read().await;
        let slot = self.slot(key);
        let held = slot.handle().lock_owned().await;
        KeyGuard {
            _held: held,
            _slot: slot,
            _shared: shared,
        }
    }

    /// Holds `key` if no one else holds it (nor every key) right now. A reader publishing
    /// what it found uses this: when a writer holds the key, what the reader found is
    /// already outdated, and when another reader does, its value is as good; either way
    /// skipping costs nothing, and a reader never waits behind a slow write.
    pub(crate) fn try_lock(&self, key: &K) -> Option<KeyGuard<'_, K>> {
        let shared = self.every_key.try_read().ok()?;
        let slot = self.slot(key);
        let held = slot.handle().try_lock_owned().ok()?;
        Some(KeyGuard {
            _held: held,
            _slot: slot,
            _shared: shared,
        })
    }

    /// A claim on `key`'s entry in the map, made if missing.
    fn slot(&self, key: &K) -> Slot<'_, K> {
        Slot {
            locks: self,
            key: key.clone(),
            lock: Some(Arc::clone(
                self.locks.shard(key).entry(key.clone()).or_default(),
            )),
        }
    }

    /// Waits until no key is held, then holds every key until the guard is dropped.
    pub(crate) async fn lock_all(&self) -> RwLockWriteGuard<'_, ()> {
        self.every_key.write().await
    }
}

/// A held key. Fields drop in order: the key's lock, then its map entry, then the shared
/// hold on every key.
pub(crate) struct KeyGuard<'a, K: Hash + Eq + Clone> {
    _held: OwnedMutexGuard<()>,
    _slot: Slot<'a, K>,
    _shared: RwLockReadGuard<'a, ()>,
}

/// A claim on a key's map entry, held while waiting for its lock and while holding it.
struct Slot<'a, K: Hash + Eq + Clone> {
    locks: &'a KeyLocks<K>,
    key: K,
    lock: Option<Arc<AsyncMutex<()>>>,
}

impl<K: Hash + Eq + Clone> Slot<'_, K> {
    fn handle(&self) -> Arc<AsyncMutex<()>> {
        Arc::clone(self.lock.as_ref().expect("taken only on drop"))
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<'_, K> {
    fn drop(&mut self) {
        let mut shard = self.locks.locks.shard(&self.key);
        if let Some(lock) = self.lock.take() {
            // Handles are cloned and dropped only under the shard's lock (the held guard's
            // own handle is gone by now), so two means: the map's and ours, no one else.
            if Arc::strong_count(&lock) == 2 {
                shard.remove(&self.key);
            }
            drop(lock);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn entries<K: Hash + Eq + Clone>(locks: &KeyLocks<K>) -> usize {
        locks.locks.len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn holders_of_one_key_never_overlap_and_leave_no_entry_behind() {
        let locks = Arc::new(KeyLocks::new());
        let inside: Arc<[AtomicUsize; 2]> = Arc::default();
        let tasks: Vec<_> = (0..64_usize)
            .map(|i| {
                let (locks, inside) = (Arc::clone(&locks), Arc::clone(&inside));
                tokio::spawn(async move {
                    let key = i % 2;
                    for _ in 0..50 {
                        let _guard = locks.lock(&key).await;
                        assert_eq!(inside[key].fetch_add(1, Ordering::SeqCst), 0);
                        tokio::task::yield_now().await;
                        inside[key].fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(entries(&locks), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_leaves_no_entry_behind() {
        let locks = KeyLocks::new();
        let guard = locks.lock(&1).await;
        let waiting = tokio::time::timeout(Duration::from_millis(10), locks.lock(&1)).await;
        assert!(waiting.is_err(), "the key is held");
        drop(guard);
        assert_eq!(entries(&locks), 0);
    }

    #[tokio::test]
    async fn try_lock_declines_a_held_key_and_leaves_no_entry_behind() {
        let locks = KeyLocks::new();
        let guard = locks.lock(&1).await;
        assert!(locks.try_lock(&1).is_none());
        assert!(locks.try_lock(&2).is_some(), "other keys are free");
        drop(guard);
        assert!(locks.try_lock(&1).is_some());
        assert_eq!(entries(&locks), 0);
        let all = locks.lock_all().await;
        assert!(locks.try_lock(&3).is_none(), "a clear holds every key");
        drop(all);
    }

    #[tokio::test(start_paused = true)]
    async fn lock_all_waits_for_every_key_holder() {
        let locks = KeyLocks::new();
        let guard = locks.lock(&1).await;
        let all = tokio::time::timeout(Duration::from_millis(10), locks.lock_all()).await;
        assert!(all.is_err(), "a key is held");
        drop(guard);
        let _all = locks.lock_all().await;
        let key = tokio::time::timeout(Duration::from_millis(10), locks.lock(&2)).await;
        assert!(key.is_err(), "every key is held");
    }
}
