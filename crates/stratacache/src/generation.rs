//! Write generations: how a promotion or a load that raced with a write is kept out of
//! the cache.
//!
//! A reader that fetched a value from a lower tier (or a loader) and a writer that
//! invalidates or replaces the same key can interleave so that the reader copies the old
//! value into L1 after the writer removed it. Each key maps to one of a fixed number of
//! stripes; a writer marks its stripe busy and bumps its version before touching the tiers
//! and bumps it again after. A reader notes the stripe before it reads, declines to store
//! if a writer is busy, and removes what it stored if the version moved meanwhile.
//! Unrelated keys that share a stripe only cost an occasional skipped promotion.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

const STRIPES: usize = 64;
/// Writers in progress count in the high half; versions in the low half.
const WRITER: u64 = 1 << 32;

pub(crate) struct Generations {
    stripes: Box<[AtomicU64]>,
    hasher: RandomState,
}

/// What a reader noted before reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ticket {
    stripe: usize,
    seen: u64,
}

impl Ticket {
    /// Whether a writer was busy when the ticket was taken: then nothing may be stored.
    pub(crate) fn writer_was_busy(self) -> bool {
        self.seen >= WRITER
    }
}

impl Generations {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: RandomState::new(),
        }
    }

    fn stripe_of<K: Hash + ?Sized>(&self, key: &K) -> usize {
        // Truncation is fine: only the low bits pick a stripe.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "only the low bits select a stripe"
        )]
        let hash = self.hasher.hash_one(key) as usize;
        hash % STRIPES
    }

    /// Notes the stripe of `key` before a read whose result may be stored.
    pub(crate) fn ticket<K: Hash + ?Sized>(&self, key: &K) -> Ticket {
        let stripe = self.stripe_of(key);
        Ticket {
            stripe,
            seen: self.stripes[stripe].load(Ordering::Acquire),
        }
    }

    /// Whether a write to the stripe began since `ticket` was taken.
    pub(crate) fn moved_since(&self, ticket: Ticket) -> bool {
        self.stripes[ticket.stripe].load(Ordering::Acquire) != ticket.seen
    }

    /// Marks a write to `key` as begun; the guard marks it done when dropped.
    pub(crate) fn write<K: Hash + ?Sized>(&self, key: &K) -> WriteGuard<'_> {
        let stripe = &self.stripes[self.stripe_of(key)];
        stripe.fetch_add(WRITER + 1, Ordering::AcqRel);
        WriteGuard {
            stripes: std::slice::from_ref(stripe),
        }
    }

    /// Marks a write to every key as begun (a clear).
    pub(crate) fn write_all(&self) -> WriteGuard<'_> {
        for stripe in &*self.stripes {
            stripe.fetch_add(WRITER + 1, Ordering::AcqRel);
        }
        WriteGuard {
            stripes: &self.stripes,
        }
    }
}

/// A write in progress. Dropping it (even on a cancelled future) marks the write done.
pub(crate) struct WriteGuard<'a> {
    stripes: &'a [AtomicU64],
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        for stripe in self.stripes {
            // +1 version, -1 writer: wrapping_sub of (WRITER - 1).
            stripe.fetch_sub(WRITER - 1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_during_a_read_is_seen() {
        let generations = Generations::new();
        let ticket = generations.ticket("k");
        assert!(!ticket.writer_was_busy());
        assert!(!generations.moved_since(ticket));
        drop(generations.write("k"));
        assert!(generations.moved_since(ticket));
    }

    #[test]
    fn a_busy_writer_is_seen_and_released() {
        let generations = Generations::new();
        let guard = generations.write("k");
        assert!(generations.ticket("k").writer_was_busy());
        drop(guard);
        assert!(!generations.ticket("k").writer_was_busy());
    }

    #[test]
    fn clear_moves_every_stripe() {
        let generations = Generations::new();
        let tickets: Vec<_> = (0..1_000).map(|i| generations.ticket(&i)).collect();
        drop(generations.write_all());
        assert!(
            tickets
                .into_iter()
                .all(|ticket| generations.moved_since(ticket))
        );
    }
}
