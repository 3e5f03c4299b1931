//! Write generations: how a promotion, a load or a refresh that raced with a write is kept
//! out of the cache, and how a flight that began before a write is kept from answering
//! callers that came after it.
//!
//! Each key maps to one of a fixed number of stripes. A stripe holds one word: a version
//! (high bits) that moves at the start and at the end of every write to any of its keys,
//! and the number of writes in progress (low bits). A reader takes a [`Ticket`] (the word)
//! before it reads anything it may later store. It may store only while the word is
//! unchanged and no write was in progress when it was taken: [`Generations::publish`]
//! checks that and stores into L1 under the stripe's lock, and writers make their own L1
//! change under the same lock, so no check-then-store can straddle a write. Readers never
//! write first and undo later.
//!
//! The word also names a flight's epoch: callers holding equal tickets started between the
//! same two writes, so they may share one lookup (see `coalesce`).
//!
//! Another instance's write, heard on the backplane, is a write like any other here, and
//! is also counted apart: a write of ours to a key of the stripe that was under way then
//! keeps its value out of L1 (see [`WriteGuard::store_in_l1`]), since the order in which
//! the two writes reached the shared tiers is unknown.
//!
//! Unrelated keys that share a stripe only cost an occasional skipped store or an extra
//! flight. The version lives in the high bits so that it wraps around harmlessly: a long
//! running process can write a stripe more than 2^32 times.

use std::hash::Hash;
use std::sync::PoisonError;

#[cfg(stratacache_loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(stratacache_loom)]
use loom::sync::{Mutex, MutexGuard};
#[cfg(not(stratacache_loom))]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(stratacache_loom))]
use std::sync::{Mutex, MutexGuard};

/// Under loom, one stripe keeps the model small enough to explore exhaustively.
const STRIPES: usize = if cfg!(stratacache_loom) { 1 } else { 256 };
/// Bits of the word that count writes in progress.
const WRITERS_BITS: u32 = 20;
const WRITERS_MASK: u64 = (1 << WRITERS_BITS) - 1;
/// One step of the version.
const VERSION: u64 = 1 << WRITERS_BITS;

struct Stripe {
    word: AtomicU64,
    /// How many writes of other instances were heard for the stripe's keys.
    heard: AtomicU64,
    /// Held while L1 is checked and changed, by readers publishing and by writers.
    l1: Mutex<()>,
}

impl Stripe {
    fn lock(&self) -> MutexGuard<'_, ()> {
        // The lock guards no data; a panic under it leaves nothing half-done.
        self.l1.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct Generations {
    stripes: Box<[Stripe]>,
    hasher: ahash::RandomState,
}

/// The state of a key's stripe when a reader started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ticket {
    stripe: usize,
    seen: u64,
}

impl Ticket {
    /// Whether a write was in progress when the ticket was taken: then nothing read under
    /// it may be stored, since the write may land after the read.
    fn writer_was_busy(self) -> bool {
        self.seen & WRITERS_MASK != 0
    }

    /// The epoch of the ticket: equal for readers with no write between them.
    pub(crate) fn epoch(self) -> u64 {
        self.seen
    }
}

impl Generations {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES)
                .map(|_| Stripe {
                    word: AtomicU64::new(0),
                    heard: AtomicU64::new(0),
                    l1: Mutex::new(()),
                })
                .collect(),
            hasher: ahash::RandomState::new(),
        }
    }

    fn stripe_of<K: Hash + ?Sized>(&self, key: &K) -> usize {
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
            seen: self.stripes[stripe].word.load(Ordering::Acquire),
        }
    }

    /// Whether what was read under `ticket` may still be stored: no write to the stripe
    /// was in progress when it was taken, and none has begun since.
    pub(crate) fn is_current(&self, ticket: Ticket) -> bool {
        !ticket.writer_was_busy()
            && self.stripes[ticket.stripe].word.load(Ordering::Acquire) == ticket.seen
    }

    /// Runs `store` (an L1 change) if `ticket` is still current, atomically with respect
    /// to every writer's L1 change on the stripe. Returns whether it ran.
    pub(crate) fn publish(&self, ticket: Ticket, store: impl FnOnce()) -> bool {
        let _l1 = self.stripes[ticket.stripe].lock();
        let current = self.is_current(ticket);
        if current {
            store();
        }
        current
    }

    /// Marks a write to `key` as begun; the guard marks it done when dropped.
    pub(crate) fn write<K: Hash + ?Sized>(&self, key: &K) -> WriteGuard<'_> {
        let stripe = &self.stripes[self.stripe_of(key)];
        let heard = stripe.heard.load(Ordering::Acquire);
        stripe.word.fetch_add(VERSION + 1, Ordering::AcqRel);
        WriteGuard {
            stripes: std::slice::from_ref(stripe),
            heard,
        }
    }

    /// Marks a write of what was read under `ticket` as begun, as [`write`](Self::write)
    /// does, only if the ticket is still current: `None` (and nothing marked) if a write
    /// to the stripe was in progress when it was taken, or has begun since. One step, so
    /// that no write can begin between the check and the mark.
    pub(crate) fn write_if_current(&self, ticket: Ticket) -> Option<WriteGuard<'_>> {
        if ticket.writer_was_busy() {
            return None;
        }
        let stripe = &self.stripes[ticket.stripe];
        let heard = stripe.heard.load(Ordering::Acquire);
        let begun = ticket.seen.wrapping_add(VERSION + 1);
        (stripe.word)
            .compare_exchange(ticket.seen, begun, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(WriteGuard {
            stripes: std::slice::from_ref(stripe),
            heard,
        })
    }

    /// Marks another instance's write to `key`, heard on the backplane, as begun here:
    /// [`write`](Self::write), and a write of ours to the stripe under way now keeps its
    /// value out of L1.
    pub(crate) fn hear<K: Hash + ?Sized>(&self, key: &K) -> WriteGuard<'_> {
        let stripe = &self.stripes[self.stripe_of(key)];
        stripe.heard.fetch_add(1, Ordering::AcqRel);
        self.write(key)
    }

    /// Marks a write to every key as begun (a clear). Each stripe moves under its lock,
    /// so a publish that checked its ticket before the move has stored before it, and
    /// the clear that follows removes what it stored.
    pub(crate) fn write_all(&self) -> WriteGuard<'_> {
        for stripe in &*self.stripes {
            let _l1 = stripe.lock();
            stripe.word.fetch_add(VERSION + 1, Ordering::AcqRel);
        }
        WriteGuard {
            stripes: &self.stripes,
            heard: 0,
        }
    }
}

/// A write in progress. Dropping it (even on a cancelled future) marks the write done.
pub(crate) struct WriteGuard<'a> {
    stripes: &'a [Stripe],
    /// The stripe's count of heard writes when this one began (one stripe only).
    heard: u64,
}

impl WriteGuard<'_> {
    /// Runs the write's L1 change under the stripe's lock, so that no publish checked
    /// before the write can store after it. (A clear's stripes already moved under their
    /// locks, which orders every publish before or after it.)
    pub(crate) fn in_l1<R>(&self, change: impl FnOnce() -> R) -> R {
        let _l1 = match self.stripes {
            [stripe] => Some(stripe.lock()),
            _ => None,
        };
        change()
    }

    /// Runs `store`, the write's own L1 copy, as [`in_l1`](Self::in_l1) does, unless
    /// another instance's write to a key of the stripe was heard since this one began:
    /// which of the two the shared tiers kept is unknown, and a copy kept here could
    /// outlive the other's announcement for good. Returns whether it stored.
    pub(crate) fn store_in_l1(&self, store: impl FnOnce()) -> bool {
        self.in_l1(|| {
            let heard = self.heard_since_begun();
            if !heard {
                store();
            }
            !heard
        })
    }

    /// Whether another instance's write to a key of the stripe was heard since this
    /// write began: which of the two the shared tiers keep is not known here.
    pub(crate) fn heard_since_begun(&self) -> bool {
        match self.stripes {
            [stripe] => stripe.heard.load(Ordering::Acquire) != self.heard,
            _ => false,
        }
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        for stripe in self.stripes {
            // One more version step, one writer fewer.
            stripe.word.fetch_add(VERSION - 1, Ordering::AcqRel);
        }
    }
}

/// Model checks of the publish protocol: every interleaving of a writer and a reader
/// that found the old value below L1. Run with
/// `RUSTFLAGS="--cfg stratacache_loom" cargo test -p stratacache --lib --release loom`.
#[cfg(all(test, stratacache_loom))]
mod loom_tests {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicU64, Ordering};

    use super::Generations;

    use loom::model;

    const EMPTY: u64 = 0;
    const OLD: u64 = 1;
    const NEW: u64 = 2;

    /// A reader takes its ticket, reads L2 and publishes what it found into L1, while
    /// `write` (returning what L1 must hold once it is done) changes the tiers. Every
    /// interleaving must end with L1 holding what the writer left.
    fn publisher_against(write: fn(&Generations, &AtomicU64, &AtomicU64) -> u64) {
        model(move || {
            let generations = Arc::new(Generations::new());
            let l1 = Arc::new(AtomicU64::new(EMPTY));
            let l2 = Arc::new(AtomicU64::new(OLD));
            let reader = {
                let (generations, l1, l2) = (generations.clone(), l1.clone(), l2.clone());
                loom::thread::spawn(move || {
                    let ticket = generations.ticket("k");
                    let found = l2.load(Ordering::SeqCst);
                    if found != EMPTY {
                        generations.publish(ticket, || l1.store(found, Ordering::SeqCst));
                    }
                })
            };
            let left = write(&generations, &l1, &l2);
            reader.join().unwrap();
            assert_eq!(l1.load(Ordering::SeqCst), left);
        });
    }

    /// `insert` (of `NEW`) or `invalidate` (`EMPTY`): L2 then L1, under the key's guard.
    fn write_key<const WRITTEN: u64>(
        generations: &Generations,
        l1: &AtomicU64,
        l2: &AtomicU64,
    ) -> u64 {
        let guard = generations.write("k");
        l2.store(WRITTEN, Ordering::SeqCst);
        guard.in_l1(|| l1.store(WRITTEN, Ordering::SeqCst));
        WRITTEN
    }

    #[test]
    fn loom_an_insert_is_never_overwritten_by_a_raced_promotion() {
        publisher_against(write_key::<NEW>);
    }

    #[test]
    fn loom_an_invalidate_is_never_undone_by_a_raced_promotion() {
        publisher_against(write_key::<EMPTY>);
    }

    /// A clear moves every stripe under its lock, then clears L1 and L2: a publish
    /// checked before the move has stored before the clear, one after it stores nothing.
    #[test]
    fn loom_a_clear_is_never_undone_by_a_raced_promotion() {
        publisher_against(|generations, l1, l2| {
            let _guard = generations.write_all();
            l1.store(EMPTY, Ordering::SeqCst);
            l2.store(EMPTY, Ordering::SeqCst);
            EMPTY
        });
    }

    /// Two writers of one stripe and a reader: the writer count never leaks, and a
    /// ticket taken once both are done is current.
    #[test]
    fn loom_concurrent_writers_leave_the_stripe_quiet() {
        model(|| {
            let generations = Arc::new(Generations::new());
            let other = {
                let generations = generations.clone();
                loom::thread::spawn(move || drop(generations.write("k")))
            };
            drop(generations.write("k"));
            other.join().unwrap();
            assert!(generations.is_current(generations.ticket("k")));
        });
    }
}

#[cfg(all(test, not(stratacache_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_write_during_a_read_is_seen() {
        let generations = Generations::new();
        let ticket = generations.ticket("k");
        assert!(generations.is_current(ticket));
        drop(generations.write("k"));
        assert!(!generations.is_current(ticket));
    }

    #[test]
    fn a_ticket_taken_during_a_write_never_publishes() {
        let generations = Generations::new();
        let guard = generations.write("k");
        let during = generations.ticket("k");
        assert!(!generations.is_current(during));
        drop(guard);
        assert!(!generations.is_current(during));
        assert!(!generations.publish(during, || panic!("must not store")));
        assert!(generations.is_current(generations.ticket("k")));
    }

    #[test]
    fn a_write_of_what_a_ticket_read_begins_only_while_the_ticket_is_current() {
        let generations = Generations::new();
        let ticket = generations.ticket("k");
        let guard = generations.write_if_current(ticket).expect("current");
        assert!(
            !generations.is_current(ticket),
            "it is a write like any other"
        );
        assert!(generations.write_if_current(ticket).is_none(), "not twice");
        drop(guard);
        assert!(
            generations.write_if_current(ticket).is_none(),
            "nor after it"
        );

        let before = generations.ticket("k");
        drop(generations.write("k"));
        assert!(
            generations.write_if_current(before).is_none(),
            "a write came first"
        );
        let during = {
            let _writing = generations.write("k");
            generations.ticket("k")
        };
        assert!(
            generations.write_if_current(during).is_none(),
            "taken mid-write"
        );
    }

    #[test]
    fn epochs_differ_across_a_write_and_never_repeat() {
        let generations = Generations::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1_000 {
            assert!(seen.insert(generations.ticket("k").epoch()));
            let guard = generations.write("k");
            assert!(seen.insert(generations.ticket("k").epoch()));
            drop(guard);
        }
    }

    #[test]
    fn the_version_wraps_without_touching_the_writer_count() {
        let generations = Generations::new();
        let stripe = generations.stripe_of("k");
        generations.stripes[stripe]
            .word
            .store(!WRITERS_MASK, Ordering::Relaxed);
        let before = generations.ticket("k");
        let guard = generations.write("k");
        assert!(!generations.is_current(before));
        drop(guard);
        let after = generations.ticket("k");
        assert!(!after.writer_was_busy(), "wrapping left a phantom writer");
        assert!(generations.is_current(after));
    }

    #[test]
    fn clear_moves_every_stripe() {
        let generations = Generations::new();
        let tickets: Vec<_> = (0..1_000).map(|i| generations.ticket(&i)).collect();
        drop(generations.write_all());
        assert!(
            tickets
                .into_iter()
                .all(|ticket| !generations.is_current(ticket))
        );
    }
}
