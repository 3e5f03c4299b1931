//! The shared state of a cache and the paths every operation takes through its tiers.

use std::hash::Hash;
use std::sync::Arc;
use std::time::SystemTime;

use stratacache_tier::{CacheEntry, Clock, Error};

use crate::generation::{Generations, Ticket};
use crate::level::{Level, TierHandle};
use crate::telemetry::{CacheCounters, bump};

pub(crate) struct Inner<K, V> {
    pub(crate) name: Arc<str>,
    pub(crate) clock: Clock,
    pub(crate) strict: bool,
    /// L1 first. Never empty.
    pub(crate) levels: Box<[Level<K, V>]>,
    pub(crate) generations: Generations,
    pub(crate) counters: CacheCounters,
    /// Whether an L1 hit must be checked against the clock. A memory L1 on the system
    /// clock, in a cache on the system clock, never returns an entry past its deadline
    /// (moka checks the deadline it was handed at insertion on every read), so the hit
    /// path skips a second clock read there. Any other clock is always consulted.
    pub(crate) l1_judges_expiry: bool,
}

/// What the synchronous look at L1 found.
pub(crate) enum FirstLook<V> {
    Hit(V),
    /// Nothing usable in L1 (missing or expired, and already counted): go on from L2.
    Miss,
    /// L1 cannot answer without awaiting: take the async path from L1.
    Deferred,
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The hit path: an L1 lookup that neither allocates nor awaits.
    #[inline]
    pub(crate) fn first_look<Q>(&self, key: &Q) -> FirstLook<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let l1 = &self.levels[0];
        let TierHandle::Memory(memory) = &l1.tier else {
            return FirstLook::Deferred;
        };
        match memory.lookup(key) {
            Some(entry) if !self.l1_judges_expiry || !entry.is_expired(self.clock.now()) => {
                bump(&l1.counters.hits);
                FirstLook::Hit(entry.into_value())
            }
            Some(_) => {
                bump(&l1.counters.expired);
                // Reclaim now rather than waiting for moka's timer wheel.
                memory.remove(key);
                FirstLook::Miss
            }
            None => {
                bump(&l1.counters.misses);
                FirstLook::Miss
            }
        }
    }

    /// Looks through the levels from `start` down, promoting a hit into the levels above
    /// it. Expired entries are removed where they are found.
    ///
    /// # Errors
    ///
    /// A tier's error, in strict mode only; otherwise failures count and read as misses.
    pub(crate) async fn look_from(
        &self,
        key: &K,
        start: usize,
    ) -> Result<Option<CacheEntry<V>>, Error> {
        let ticket = self.generations.ticket(key);
        for (depth, level) in self.levels.iter().enumerate().skip(start) {
            match level.get(key).await {
                Ok(Some(entry)) => {
                    let now = self.clock.now();
                    if entry.is_expired(now) {
                        bump(&level.counters.expired);
                        if let Err(error) = level.invalidate(key).await {
                            self.tier_failed(level, &error);
                        }
                        continue;
                    }
                    bump(&level.counters.hits);
                    if depth > 0 && level.promotion.allows(&entry) {
                        self.promote(key, &entry, depth, ticket, now).await;
                    }
                    return Ok(Some(entry));
                }
                Ok(None) => bump(&level.counters.misses),
                Err(error) => {
                    self.tier_failed(level, &error);
                    if self.strict {
                        return Err(error);
                    }
                }
            }
        }
        Ok(None)
    }

    /// Copies an entry found at `depth` into the levels above it, nearest first, unless a
    /// write to the key raced with the lookup.
    async fn promote(
        &self,
        key: &K,
        entry: &CacheEntry<V>,
        depth: usize,
        ticket: Ticket,
        now: SystemTime,
    ) {
        if ticket.writer_was_busy() {
            return;
        }
        let above = &self.levels[..depth];
        self.store_in(above, key, entry, now).await.ok();
        if self.generations.moved_since(ticket) {
            self.undo(above, key).await;
        }
    }

    /// Writes `entry` into `levels`, lowest first, so that an upper tier never holds what a
    /// lower one lacks. Each tier gets its own copy (see [`Level::copy_for`]).
    ///
    /// # Errors
    ///
    /// In strict mode the first failure stops the write (the tiers above stay untouched)
    /// and is returned. Otherwise failures are reported and the other tiers still written.
    pub(crate) async fn store_in(
        &self,
        levels: &[Level<K, V>],
        key: &K,
        entry: &CacheEntry<V>,
        now: SystemTime,
    ) -> Result<(), Error> {
        for level in levels.iter().rev() {
            if !level.insert_policy.allows(entry) {
                bump(&level.counters.insert_rejections);
                continue;
            }
            let Some(copy) = level.copy_for(entry, now) else {
                continue;
            };
            match level.insert(key.clone(), copy).await {
                Ok(()) => bump(&level.counters.inserts),
                Err(error) => {
                    self.tier_failed(level, &error);
                    if self.strict {
                        return Err(error);
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes `key` from `levels`, nearest first.
    ///
    /// # Errors
    ///
    /// In strict mode, the first failure (after trying every tier).
    pub(crate) async fn remove_from(&self, levels: &[Level<K, V>], key: &K) -> Result<(), Error> {
        let mut first_error = None;
        for level in levels {
            match level.invalidate(key).await {
                Ok(()) => bump(&level.counters.invalidations),
                Err(error) => {
                    self.tier_failed(level, &error);
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) if self.strict => Err(error),
            _ => Ok(()),
        }
    }

    /// Takes back a write that raced with a newer one. Best effort: failures are reported.
    async fn undo(&self, levels: &[Level<K, V>], key: &K) {
        for level in levels {
            if let Err(error) = level.invalidate(key).await {
                self.tier_failed(level, &error);
            }
        }
    }

    /// Stores a freshly loaded value unless a write to the key raced with the load.
    pub(crate) async fn store_loaded(&self, key: &K, value: &V, ticket: Ticket) {
        if ticket.writer_was_busy() || self.generations.moved_since(ticket) {
            return;
        }
        let now = self.clock.now();
        let entry = CacheEntry::new(value.clone(), now, None);
        // A failed store never costs the caller the value: it is reported and dropped.
        self.store_in(&self.levels, key, &entry, now).await.ok();
        if self.generations.moved_since(ticket) {
            self.undo(&self.levels, key).await;
        }
    }

    pub(crate) fn tier_failed(&self, level: &Level<K, V>, _error: &Error) {
        bump(&level.counters.errors);
    }
}
