//! Counters sharded by thread, so that counting a hit stays off the shared cache lines.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

/// `N` counters, each thread counting in cells of its own.
///
/// A bump is a plain load and store on the calling thread's own cache line: no locked
/// instruction, and no line bouncing between cores when many threads hit one cache. A
/// read sums every thread's cells. Only the owning thread writes its cells, so no count
/// is ever lost; a read racing with bumps may miss the ones still in flight. (One
/// exception: a count made by a thread's own thread-local destructors after
/// `thread_local` released the thread's slot to a new thread may race with that thread
/// and be lost. Without the remembered slot, such a count panicked.)
pub(crate) struct Counters<const N: usize> {
    /// Never cleared: a thread's [`REMEMBERED`] may point into it (a reset would need a
    /// new `id` too).
    per_thread: ThreadLocal<CachePadded<[AtomicU64; N]>>,
    /// Never shared by two sets of counters, so that a thread's [`REMEMBERED`] names one.
    id: u64,
}

/// The ids of sets of counters.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How many sets of counters a thread remembers its cells in: one per slot, the slot its
/// id names. A cache's own counters and its tiers' are made one after another, so a
/// miss that counts in three of them finds each remembered.
const SLOTS: usize = 4;

thread_local! {
    /// Sets of counters this thread counted in, and its cells there, each in the slot its
    /// id names: a count in a remembered set skips the lookup of the thread's cells.
    static REMEMBERED: [Cell<(u64, *const AtomicU64)>; SLOTS] =
        const { [const { Cell::new((0, std::ptr::null())) }; SLOTS] };
}

impl<const N: usize> Counters<N> {
    /// Adds one to counter `index`.
    #[inline]
    pub(crate) fn bump(&self, index: usize) {
        let cell = match REMEMBERED.try_with(|slots| slots[self.slot()].get()) {
            Ok((id, cells)) if id == self.id => {
                #[expect(unsafe_code, reason = "a count's hot path: see SAFETY")]
                // SAFETY: `cells` points at this thread's `N` cells in `self.per_thread`:
                // ids are never reused, so a slot naming `self.id` was set by `cells()`
                // below for these counters, which are alive (`self` is borrowed).
                // `ThreadLocal` never moves a thread's value, and frees it only when
                // cleared or dropped, which needs `&mut self` (nothing here clears it).
                // The `assert!` keeps the offset within the `N` cells.
                unsafe {
                    assert!(index < N);
                    &*cells.add(index)
                }
            }
            _ => &self.cells()[index],
        };
        // The calling thread is the only writer of its cells.
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// The slot of [`REMEMBERED`] these counters are remembered in.
    #[inline]
    fn slot(&self) -> usize {
        // Lossless: the remainder is below `SLOTS`.
        (self.id % SLOTS as u64) as usize
    }

    /// The calling thread's cells, remembered in their slot.
    #[inline(never)]
    fn cells(&self) -> &[AtomicU64; N] {
        let cells = match self.per_thread.get() {
            Some(cells) => cells,
            None => self.first_cells(),
        };
        let _ = REMEMBERED.try_with(|slots| slots[self.slot()].set((self.id, cells.as_ptr())));
        cells
    }

    /// Makes the calling thread's cells.
    #[cold]
    #[inline(never)]
    fn first_cells(&self) -> &CachePadded<[AtomicU64; N]> {
        self.per_thread
            .get_or(|| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
    }

    /// Every counter, summed over all threads.
    pub(crate) fn read(&self) -> [u64; N] {
        let mut sums = [0_u64; N];
        for cells in &self.per_thread {
            for (sum, cell) in sums.iter_mut().zip(cells.iter()) {
                *sum = sum.wrapping_add(cell.load(Ordering::Relaxed));
            }
        }
        sums
    }
}

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Self {
            per_thread: ThreadLocal::new(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn counts_from_many_threads_add_up_exactly() {
        let counters = Arc::new(Counters::<3>::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    for round in 0..10_000 {
                        counters.bump(round % 2);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counters.read(), [40_000, 40_000, 0]);
    }

    #[test]
    fn counts_alternating_between_sets_land_in_their_own_set() {
        // More sets than slots: some share a slot and evict each other's cells, the others
        // stay remembered; no count goes astray either way.
        let sets: Vec<Counters<2>> = (0..SLOTS + 2).map(|_| Counters::default()).collect();
        for round in 0..1_000 {
            for (n, set) in sets.iter().enumerate() {
                set.bump(n % 2);
                if round % 3 == 0 && n == 1 {
                    set.bump(1);
                }
            }
        }
        sets[0].bump(0);
        assert_eq!(sets[0].read(), [1_001, 0]);
        assert_eq!(sets[1].read(), [0, 1_334]);
        for (n, set) in sets.iter().enumerate().skip(2) {
            let expected = if n % 2 == 0 { [1_000, 0] } else { [0, 1_000] };
            assert_eq!(set.read(), expected, "set {n}");
        }
        // A set made after another is dropped (perhaps at the same address) starts at
        // zero, though this thread last counted in the dropped one.
        drop(sets);
        let fresh = Counters::<2>::default();
        fresh.bump(0);
        assert_eq!(fresh.read(), [1, 0]);
    }
}
