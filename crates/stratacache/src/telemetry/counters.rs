//! Counters sharded by thread, so that counting a hit stays off the shared cache lines.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

/// `N` counters, each thread counting in cells of its own.
///
/// A bump is a plain load and store on the calling thread's own cache line: no locked
/// instruction, and no line bouncing between cores when many threads hit one cache. A
/// read sums every thread's cells. Only the owning thread writes its cells, so no count
/// is ever lost; a read racing with bumps may miss the ones still in flight.
pub(crate) struct Counters<const N: usize> {
    per_thread: ThreadLocal<CachePadded<[AtomicU64; N]>>,
}

impl<const N: usize> Counters<N> {
    /// Adds one to counter `index`.
    #[inline]
    pub(crate) fn bump(&self, index: usize) {
        // The thread's cells exist after its first count: that path stays out of line.
        let cells = match self.per_thread.get() {
            Some(cells) => cells,
            None => self.first_cells(),
        };
        let cell = &cells[index];
        // The calling thread is the only writer of its cells.
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
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
}
