//! A map split into shards, each behind its own lock, so that keys rarely contend: what
//! the per-key write locks and the refresh claims are kept in.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// How many shards a map has.
pub(crate) const SHARDS: usize = 64;

type Map<K, T> = HashMap<K, T, ahash::RandomState>;

pub(crate) struct ShardedMap<K, T> {
    shards: Box<[Mutex<Map<K, T>>]>,
    hasher: ahash::RandomState,
}

impl<K: Hash + Eq, T> ShardedMap<K, T> {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: ahash::RandomState::new(),
        }
    }

    /// The locked shard that holds `key` (any borrowed form of it).
    pub(crate) fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Map<K, T>> {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "only the low bits select a shard"
        )]
        let index = self.hasher.hash_one(key) as usize % SHARDS;
        // No shard is left half-changed by a panic: every change is one map call.
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on every entry, one shard locked at a time.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&K, &mut T)) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, value) in shard.iter_mut() {
                f(key, value);
            }
        }
    }

    /// How many entries all shards hold together.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap().len())
            .sum()
    }
}
