//! The history checker: many tasks run random `insert` / `invalidate` / `get` /
//! `get_or_insert` calls over a few keys, every call's start, end and result is recorded,
//! and the history is checked against the consistency model stated on `Cache`: no read
//! returns a value that a write completed before the read began had replaced. At
//! quiescence, L1 must hold nothing that L2 lacks or holds differently.
//!
//! `STRATACACHE_HISTORY_OPS` sets the operations per run (default 40,000; the 1M-op
//! runs are `STRATACACHE_HISTORY_OPS=1000000 cargo test --release --test history`).

mod checker;
mod jitter;
#[cfg(feature = "serialize")]
mod remote;
#[cfg(feature = "serialize")]
mod replicas;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratacache::{Cache, CacheTier, Fallback, MemoryTier};

use checker::{History, What};
use jitter::{JitterTier, Pause};

const TASKS: usize = 16;
const KEYS: u64 = 4;

fn total_ops() -> usize {
    std::env::var("STRATACACHE_HISTORY_OPS")
        .ok()
        .and_then(|ops| ops.parse().ok())
        .unwrap_or(40_000)
}

fn cache(
    l1: &MemoryTier<u64, u64>,
    l2: impl CacheTier<u64, u64>,
    stampede: bool,
) -> Cache<u64, u64> {
    Cache::builder()
        .tier(l1.clone())
        .fallback(Fallback::tier(l2))
        .stampede_protection(stampede)
        .build()
        .unwrap()
}

/// Runs `ops` random operations from [`TASKS`] tasks and returns their history.
async fn drive(cache: &Cache<u64, u64>, ops: usize, loader_pause: Pause) -> Arc<History> {
    let history = Arc::new(History::default());
    drive_on(std::slice::from_ref(cache), 1, history, ops, loader_pause).await
}

/// Runs `ops` random operations from [`TASKS`] tasks spread over `instances` (task `i`
/// calls instance `i % n`) and records them in `history`. Only the first `writers`
/// instances write; the others only read.
async fn drive_on(
    instances: &[Cache<u64, u64>],
    writers: usize,
    history: Arc<History>,
    ops: usize,
    loader_pause: Pause,
) -> Arc<History> {
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let instance = task % instances.len();
            let reads_only = instance >= writers;
            let cache = instances[instance].clone();
            let history = Arc::clone(&history);
            tokio::spawn(async move {
                fastrand::seed(task as u64 + 1);
                for _ in 0..ops / TASKS {
                    one_op(&cache, &history, loader_pause, reads_only).await;
                    if reads_only {
                        // Readers mostly hit L1: pace them, so that they read all along
                        // the writers' run.
                        loader_pause.wait().await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    history
}

async fn one_op(
    cache: &Cache<u64, u64>,
    history: &Arc<History>,
    loader_pause: Pause,
    reads_only: bool,
) {
    let began = std::time::Instant::now();
    one_call(cache, history, loader_pause, reads_only).await;
    history.took(began.elapsed());
}

async fn one_call(
    cache: &Cache<u64, u64>,
    history: &Arc<History>,
    loader_pause: Pause,
    reads_only: bool,
) {
    let key = fastrand::u64(0..KEYS);
    let start = history.now();
    // Reads are the first 55 in a hundred: `get`, then the loader family.
    match fastrand::u32(0..if reads_only { 55 } else { 100 }) {
        0..30 => {
            let value = cache.get(&key).await.unwrap();
            history.record(key, start, What::Read { value });
        }
        30..55 => {
            let loaded = Arc::new(Mutex::new(None));
            let (slot, loader_history) = (Arc::clone(&loaded), Arc::clone(history));
            let value = cache
                .get_or_insert(&key, || async move {
                    let began = loader_history.now();
                    loader_pause.wait().await;
                    let value = loader_history.fresh_value();
                    *slot.lock().unwrap() = Some((value, began));
                    value
                })
                .await
                .unwrap();
            if let Some((produced, began)) = loaded.lock().unwrap().take() {
                history.record(key, began, What::Load { value: produced });
            }
            history.record(key, start, What::Read { value: Some(value) });
        }
        55..80 => {
            let value = history.fresh_value();
            let complete = cache.insert(key, value).await.unwrap().is_complete();
            history.record(key, start, What::Insert { value, complete });
        }
        _ => {
            let complete = cache.invalidate(&key).await.unwrap().is_complete();
            history.record(key, start, What::Invalidate { complete });
        }
    }
}

/// Keys where L1 holds a value that L2 lacks or holds differently.
fn diverged(l1: &MemoryTier<u64, u64>, l2: impl Fn(u64) -> Option<u64>) -> Vec<String> {
    (0..KEYS)
        .filter_map(|key| {
            let upper = l1.lookup(&key).map(|entry| *entry.value());
            let lower = l2(key);
            (upper.is_some() && upper != lower)
                .then(|| format!("key {key}: L1 holds {upper:?}, L2 holds {lower:?}"))
        })
        .collect()
}

/// Asserts the history holds (misses included unless `misses_allowed`) and no key
/// diverged.
fn assert_consistent(label: &str, history: &History, diverged: Vec<String>) {
    check(label, history, diverged, false);
}

fn check(label: &str, history: &History, diverged: Vec<String>, misses_allowed: bool) {
    let violations = history.violations(misses_allowed, 0);
    println!(
        "{label}: {} operations, {} violations, {} diverged keys",
        history.len(),
        violations.len(),
        diverged.len()
    );
    assert!(
        violations.is_empty() && diverged.is_empty(),
        "{label}: {} violations, e.g. {:?}; diverged at quiescence: {diverged:?}",
        violations.len(),
        violations.iter().take(5).collect::<Vec<_>>()
    );
}

async fn jitter_run(label: &str, pause: Pause, failures_per_mille: u32, stampede: bool) {
    let l1 = MemoryTier::builder().build();
    let l2 = JitterTier::new(pause, failures_per_mille);
    let cache = cache(&l1, l2.clone(), stampede);
    let history = drive(&cache, total_ops(), pause).await;
    let given_up = cache.stats().recovery_dropped;
    if given_up > 0 {
        println!("{label}: {given_up} writes given up");
        history.writes_given_up();
    }
    // L1 equals L2 at quiescence when every write reached L2. When L2 failed some, a
    // loaded value may rightly sit in L1 alone (L1 keeps serving while L2 is down); the
    // history must hold all the same.
    let diverged = if failures_per_mille == 0 {
        diverged(&l1, |key| l2.peek(key))
    } else {
        Vec::new()
    };
    assert_consistent(label, &history, diverged);
}

const SLEEP: Pause = Pause::Sleep(Duration::from_micros(300));

#[tokio::test(start_paused = true)]
async fn no_read_returns_a_replaced_value_with_stampede_protection() {
    jitter_run("sleep/stampede", SLEEP, 0, true).await;
}

#[tokio::test(start_paused = true)]
async fn no_read_returns_a_replaced_value_without_stampede_protection() {
    jitter_run("sleep/alone", SLEEP, 0, false).await;
}

#[tokio::test(start_paused = true)]
async fn complete_writes_hold_while_l2_fails_at_random() {
    jitter_run("sleep/failures/stampede", SLEEP, 20, true).await;
    jitter_run("sleep/failures/alone", SLEEP, 20, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_read_returns_a_replaced_value_on_many_threads() {
    jitter_run("threads/stampede", Pause::Yield(4), 0, true).await;
    jitter_run("threads/alone", Pause::Yield(4), 0, false).await;
}

/// The checker itself must catch what it is meant to catch.
mod checker_catches {
    use super::checker::{History, What};

    #[test]
    fn a_read_of_a_value_replaced_before_it_began() {
        let history = History::default();
        let start = history.now();
        history.record(
            1,
            start,
            What::Insert {
                value: 10,
                complete: true,
            },
        );
        let start = history.now();
        history.record(
            1,
            start,
            What::Insert {
                value: 11,
                complete: true,
            },
        );
        let start = history.now();
        history.record(1, start, What::Read { value: Some(10) });
        assert_eq!(history.violations(false, 0).len(), 1);
    }

    #[test]
    fn a_read_of_nothing_after_a_completed_insert() {
        let history = History::default();
        let start = history.now();
        history.record(
            1,
            start,
            What::Insert {
                value: 10,
                complete: true,
            },
        );
        let start = history.now();
        history.record(1, start, What::Read { value: None });
        assert_eq!(history.violations(false, 0).len(), 1);
    }

    #[test]
    fn a_miss_after_an_incomplete_insert_only_until_a_later_one_completes() {
        let history = History::default();
        let insert = |value, complete| {
            let start = history.now();
            history.record(1, start, What::Insert { value, complete });
        };
        let read_nothing = || {
            let start = history.now();
            history.record(1, start, What::Read { value: None });
        };
        insert(10, true);
        insert(11, false);
        read_nothing();
        assert_eq!(
            history.violations(false, 0).len(),
            1,
            "no write was given up"
        );
        // The incomplete insert may have been given up: a removal in its place.
        history.writes_given_up();
        assert_eq!(history.violations(false, 0).len(), 0);
        insert(12, true);
        read_nothing();
        assert_eq!(history.violations(false, 0).len(), 1);
    }

    #[test]
    fn only_stale_values_when_misses_are_allowed() {
        let history = History::default();
        let start = history.now();
        history.record(
            1,
            start,
            What::Insert {
                value: 10,
                complete: true,
            },
        );
        let start = history.now();
        history.record(1, start, What::Read { value: None });
        assert_eq!(
            history.violations(true, 0).len(),
            0,
            "a lost entry is a miss"
        );
        let start = history.now();
        history.record(
            1,
            start,
            What::Insert {
                value: 11,
                complete: true,
            },
        );
        let start = history.now();
        history.record(1, start, What::Read { value: Some(10) });
        assert_eq!(
            history.violations(true, 0).len(),
            1,
            "a stale value never is"
        );
    }

    #[test]
    fn but_not_a_read_that_overlaps_the_write_or_follows_an_incomplete_one() {
        let history = History::default();
        let first = history.now();
        history.record(
            1,
            first,
            What::Insert {
                value: 10,
                complete: true,
            },
        );
        let write = history.now();
        let read = history.now();
        history.record(1, read, What::Read { value: Some(10) });
        history.record(
            1,
            write,
            What::Insert {
                value: 11,
                complete: true,
            },
        );
        let start = history.now();
        history.record(1, start, What::Invalidate { complete: false });
        let start = history.now();
        history.record(1, start, What::Read { value: Some(11) });
        let start = history.now();
        history.record(1, start, What::Read { value: None });
        assert_eq!(history.violations(false, 0), Vec::<String>::new());
    }
}
