//! Records a concurrent history of cache operations and checks it against the cache's
//! consistency model:
//!
//! - per key, no read returns a value older than a write that completed (fully) before
//!   the read began: the value a read returns must come from a producer (an insert, a
//!   load, or for `None` an invalidate or the empty start) that no complete write
//!   *followed* (started after the producer ended) and *preceded the read* (ended
//!   before the read started);
//! - every value read was produced by someone, and not after the read ended.
//!
//! Times are ticks of one logical clock taken right before an operation starts and right
//! after it returns, so `a.end < b.start` means `a` returned before `b` began.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// What one operation did.
#[derive(Clone, Copy, Debug)]
pub(crate) enum What {
    /// `insert(key, value)`; `complete` when every tier took it. When the cache gave up
    /// writes ([`History::writes_given_up`]), an incomplete one may also have ended as a
    /// removal: a write the tier times out on when it is replayed is given up, and a
    /// removal takes its place (a miss, never a stale read).
    Insert { value: u64, complete: bool },
    /// `invalidate(key)`; `complete` when every tier took it.
    Invalidate { complete: bool },
    /// A loader produced `value` (its interval: from the loader's start to the end of the
    /// operation that ran it).
    Load { value: u64 },
    /// A read (`get`, or the loader family) returned `value`.
    Read { value: Option<u64> },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    pub(crate) key: u64,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) what: What,
}

#[derive(Default)]
pub(crate) struct History {
    ticks: AtomicU64,
    /// Set: ticks are nanoseconds since this instant (still strictly increasing), so a
    /// window of real time can be allowed between a write and the reads it binds.
    wall: Option<Instant>,
    records: Mutex<Vec<Record>>,
    values: AtomicU64,
    /// The longest any one call took, in wall-clock microseconds.
    slowest_micros: AtomicU64,
    /// Set: the cache gave up some writes (see [`What::Insert`]).
    given_up: AtomicBool,
}

impl History {
    /// A history whose ticks follow real time (see [`violations`](Self::violations)'s
    /// window).
    pub(crate) fn wall_clock() -> Self {
        Self {
            wall: Some(Instant::now()),
            ..Self::default()
        }
    }

    /// A tick of the logical clock: never twice the same, always increasing.
    pub(crate) fn now(&self) -> u64 {
        let Some(base) = self.wall else {
            return self.ticks.fetch_add(1, Ordering::SeqCst) + 1;
        };
        let elapsed = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let previous = self
            .ticks
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |tick| {
                Some(elapsed.max(tick + 1))
            })
            .unwrap_or_default();
        elapsed.max(previous + 1)
    }

    /// A value never produced before.
    pub(crate) fn fresh_value(&self) -> u64 {
        self.values.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn record(&self, key: u64, start: u64, what: What) {
        let end = self.now();
        self.records.lock().unwrap().push(Record {
            key,
            start,
            end,
            what,
        });
    }

    /// Notes that the cache gave up some writes: from then on an incomplete insert may
    /// have ended as a removal.
    pub(crate) fn writes_given_up(&self) {
        self.given_up.store(true, Ordering::Relaxed);
    }

    /// Notes how long one call took.
    pub(crate) fn took(&self, elapsed: std::time::Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.slowest_micros.fetch_max(micros, Ordering::Relaxed);
    }

    /// The longest any one call took.
    pub(crate) fn slowest(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.slowest_micros.load(Ordering::Relaxed))
    }

    pub(crate) fn len(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    /// Every violation of the model, described. With `misses_allowed`, a read of nothing
    /// is never one: a run where a store loses its data (a restarted server) may miss
    /// what a completed insert wrote, as an eviction would; a stale *value* is still one.
    /// A write binds only the reads that began more than `window` ticks after it ended
    /// (nanoseconds, in a [wall-clock](Self::wall_clock) history): the propagation window
    /// of many instances.
    pub(crate) fn violations(&self, misses_allowed: bool, window: u64) -> Vec<String> {
        let records = self.records.lock().unwrap();
        let mut by_key: HashMap<u64, Vec<Record>> = HashMap::new();
        for record in records.iter() {
            by_key.entry(record.key).or_default().push(*record);
        }
        by_key
            .into_iter()
            .flat_map(|(key, records)| {
                KeyHistory::new(records, self.given_up.load(Ordering::Relaxed)).violations(
                    key,
                    misses_allowed,
                    window,
                )
            })
            .collect()
    }
}

/// Intervals sorted by start, with the smallest end of every suffix: answers "did some
/// interval start after `a` and end before `b`?" in O(log n).
struct Followers {
    starts: Vec<u64>,
    min_end_from: Vec<u64>,
}

impl Followers {
    fn new(mut intervals: Vec<(u64, u64)>) -> Self {
        intervals.sort_unstable();
        let mut min_end_from = vec![u64::MAX; intervals.len() + 1];
        for i in (0..intervals.len()).rev() {
            min_end_from[i] = min_end_from[i + 1].min(intervals[i].1);
        }
        Self {
            starts: intervals.iter().map(|(start, _)| *start).collect(),
            min_end_from,
        }
    }

    fn any_between(&self, after: u64, before: u64) -> bool {
        let first = self.starts.partition_point(|start| *start <= after);
        self.min_end_from[first] < before
    }
}

struct KeyHistory {
    reads: Vec<Record>,
    /// Value → the interval of the operation that produced it.
    producers: HashMap<u64, (u64, u64)>,
    /// Invalidates sorted by start, with the largest end of every prefix.
    removal_starts: Vec<u64>,
    removal_max_end_to: Vec<u64>,
    /// Complete writes of any kind, and complete inserts alone.
    writes: Followers,
    inserts: Followers,
}

impl KeyHistory {
    /// `given_up`: an incomplete insert may have ended as a removal.
    fn new(records: Vec<Record>, given_up: bool) -> Self {
        let mut producers = HashMap::new();
        let (mut writes, mut inserts, mut removals, mut reads) = (vec![], vec![], vec![], vec![]);
        for record in records {
            let interval = (record.start, record.end);
            match record.what {
                What::Insert { value, complete } => {
                    producers.insert(value, interval);
                    if complete {
                        writes.push(interval);
                        inserts.push(interval);
                    } else if given_up {
                        // Given up when replayed, it removes the key. On one instance,
                        // no later write completes while its change waits (it settles
                        // the change, under the key's lock), so the removal lands before
                        // any write that began after it.
                        removals.push(interval);
                    }
                }
                What::Invalidate { complete } => {
                    removals.push(interval);
                    if complete {
                        writes.push(interval);
                    }
                }
                What::Load { value } => {
                    producers.insert(value, interval);
                }
                What::Read { .. } => reads.push(record),
            }
        }
        // The empty cache at the start is a removal that ended before anything began.
        removals.push((0, 0));
        removals.sort_unstable();
        let mut max_end = 0;
        let removal_max_end_to = removals
            .iter()
            .map(|(_, end)| {
                max_end = max_end.max(*end);
                max_end
            })
            .collect();
        Self {
            reads,
            producers,
            removal_starts: removals.iter().map(|(start, _)| *start).collect(),
            removal_max_end_to,
            writes: Followers::new(writes),
            inserts: Followers::new(inserts),
        }
    }

    fn violations(&self, key: u64, misses_allowed: bool, window: u64) -> Vec<String> {
        let mut found = Vec::new();
        for read in &self.reads {
            let What::Read { value } = read.what else {
                continue;
            };
            // Writes bind this read only if they ended before this.
            let bound_by = read.start.saturating_sub(window);
            match value {
                Some(value) => {
                    let Some(&(start, end)) = self.producers.get(&value) else {
                        found.push(format!("key {key}: read {value}, which nobody wrote"));
                        continue;
                    };
                    if start > read.end {
                        found.push(format!("key {key}: read {value} before it was written"));
                    } else if self.writes.any_between(end, bound_by) {
                        found.push(format!(
                            "key {key}: read {value} (written {start}..{end}) at {}..{}, \
                             after a write that replaced it had completed",
                            read.start, read.end
                        ));
                    }
                }
                None if misses_allowed => {}
                None => {
                    // The latest-ending removal that began before the read ended.
                    let began = self.removal_starts.partition_point(|s| *s < read.end);
                    let latest_end = self.removal_max_end_to[began - 1];
                    if self.inserts.any_between(latest_end, bound_by) {
                        found.push(format!(
                            "key {key}: read nothing at {}..{}, after an insert had \
                             completed",
                            read.start, read.end
                        ));
                    }
                }
            }
        }
        found
    }
}
