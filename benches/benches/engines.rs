//! The two L1 engines in one run: stratacache over moka (the default) and over
//! quick_cache's S3-FIFO (`MemoryTierBuilder::s3_fifo`, feature `quick_cache`), beside raw
//! moka and raw quick_cache.
//!
//! - `engine_hit`: a hit among 1,024 keys;
//! - `engine_hit_1m`: a hit among 1,000,000 keys, in random order (every contestant
//!   checked to hold them all first);
//! - both hit groups also run `memory_tier_s3fifo` (the S3-FIFO memory tier alone) and
//!   `quick_cache_entry` (raw quick_cache holding the tier's entry type: the floor of
//!   any L1 that keeps an entry's timestamps and tags beside its value);
//! - `engine_zipf_mixed`: two threads, 90% `get` / 10% `insert`, keys drawn from a Zipf
//!   (s = 1) over 1,000,000 keys, capacity 100,000: time per operation; each
//!   contestant's hit ratio over the same 2,000,000 draws is printed.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use futures::FutureExt;
use stratacache::{Cache, CacheEntry, MemoryTier};

fn now<F: std::future::Future>(future: F) -> F::Output {
    future
        .now_or_never()
        .expect("memory operations complete without awaiting")
}

fn ours(capacity: u64, s3_fifo: bool) -> Cache<u64, u64> {
    Cache::builder()
        .memory(move |l1| {
            let l1 = l1.max_capacity(capacity);
            if s3_fifo { l1.s3_fifo() } else { l1 }
        })
        .build()
        .unwrap()
}

fn raw_moka(capacity: u64) -> moka::sync::Cache<u64, u64> {
    moka::sync::Cache::new(capacity)
}

fn raw_quick(capacity: u64) -> quick_cache::sync::Cache<u64, u64> {
    quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap())
}

/// The contestants, filled with `keys`.
struct Contestants {
    moka_l1: Cache<u64, u64>,
    s3_fifo_l1: Cache<u64, u64>,
    moka: moka::sync::Cache<u64, u64>,
    quick: quick_cache::sync::Cache<u64, u64>,
    quick_entry: quick_cache::sync::Cache<u64, CacheEntry<u64>>,
    s3_fifo_tier: MemoryTier<u64, u64>,
}

impl Contestants {
    fn new(capacity: u64) -> Self {
        Self {
            moka_l1: ours(capacity, false),
            s3_fifo_l1: ours(capacity, true),
            moka: raw_moka(capacity),
            quick: raw_quick(capacity),
            quick_entry: quick_cache::sync::Cache::new(usize::try_from(capacity).unwrap()),
            s3_fifo_tier: MemoryTier::builder()
                .max_capacity(capacity)
                .s3_fifo()
                .build(),
        }
    }

    fn fill(&self, keys: impl Iterator<Item = u64>) {
        for key in keys {
            now(self.moka_l1.insert(key, key)).unwrap();
            now(self.s3_fifo_l1.insert(key, key)).unwrap();
            self.moka.insert(key, key);
            self.quick.insert(key, key);
            let entry = CacheEntry::new(key, std::time::SystemTime::now(), None);
            self.quick_entry.insert(key, entry.clone());
            self.s3_fifo_tier.store(key, entry, None);
        }
        self.moka.run_pending_tasks();
    }
}

fn hits(group: &mut BenchmarkGroup<'_, WallTime>, caches: &Contestants, order: &[u64]) {
    let mut at = 0;
    let mut next = move || {
        at = (at + 1) % order.len();
        order[at]
    };
    group.bench_function("stratacache", |b| {
        b.iter(|| black_box(now(caches.moka_l1.get(black_box(&next()))).unwrap()));
    });
    group.bench_function("stratacache_s3fifo", |b| {
        b.iter(|| black_box(now(caches.s3_fifo_l1.get(black_box(&next()))).unwrap()));
    });
    group.bench_function("moka", |b| {
        b.iter(|| black_box(caches.moka.get(black_box(&next()))))
    });
    group.bench_function("quick_cache", |b| {
        b.iter(|| black_box(caches.quick.get(black_box(&next()))));
    });
    group.bench_function("memory_tier_s3fifo", |b| {
        b.iter(|| {
            black_box(
                caches
                    .s3_fifo_tier
                    .lookup(black_box(&next()))
                    .map(CacheEntry::into_value),
            )
        });
    });
    group.bench_function("quick_cache_entry", |b| {
        b.iter(|| {
            black_box(
                caches
                    .quick_entry
                    .get(black_box(&next()))
                    .map(CacheEntry::into_value),
            )
        });
    });
}

fn engine_hit(c: &mut Criterion) {
    let caches = Contestants::new(100_000);
    caches.fill(0..1_024);
    let order: Vec<u64> = (0..1_024).collect();
    hits(&mut c.benchmark_group("engine_hit"), &caches, &order);
}

fn engine_hit_1m(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let caches = Contestants::new(N + N / 10);
    caches.fill(0..N);
    let mut order: Vec<u64> = (0..N).collect();
    fastrand::seed(7);
    fastrand::shuffle(&mut order);
    // Every key must still be there, or the group would time misses.
    let held = |get: &dyn Fn(u64) -> bool| (0..N).filter(|&key| get(key)).count();
    let counts = [
        held(&|key| now(caches.moka_l1.get(&key)).unwrap().is_some()),
        held(&|key| now(caches.s3_fifo_l1.get(&key)).unwrap().is_some()),
        held(&|key| caches.moka.contains_key(&key)),
        held(&|key| caches.quick.contains_key(&key)),
        held(&|key| caches.s3_fifo_tier.contains_key(&key)),
        held(&|key| caches.quick_entry.contains_key(&key)),
    ];
    assert!(
        counts.iter().all(|&count| count == N as usize),
        "keys held of {N}: {counts:?}"
    );
    let mut group = c.benchmark_group("engine_hit_1m");
    hits(&mut group, &caches, &order);
}

/// `count` draws from a Zipf distribution (s = 1) over `0..n`.
fn zipf(n: usize, count: usize) -> Vec<u64> {
    let mut cumulative = Vec::with_capacity(n);
    let mut total = 0.0;
    for rank in 1..=n {
        total += 1.0 / rank as f64;
        cumulative.push(total);
    }
    fastrand::seed(11);
    (0..count)
        .map(|_| {
            let draw = fastrand::f64() * total;
            cumulative.partition_point(|c| *c < draw) as u64
        })
        .collect()
}

/// Runs `op` for `iters` operations split over two threads, over `draws`.
fn two_threads(iters: u64, draws: &Arc<Vec<u64>>, op: impl Fn(u64, bool) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..2_u64 {
            let (op, draws) = (&op, Arc::clone(draws));
            scope.spawn(move || {
                let mut at = (thread as usize) * draws.len() / 2;
                for i in 0..iters / 2 {
                    at = (at + 1) % draws.len();
                    op(draws[at], i % 10 == 0);
                }
            });
        }
    });
    start.elapsed()
}

fn engine_zipf_mixed(c: &mut Criterion) {
    const CAPACITY: u64 = 100_000;
    let draws = Arc::new(zipf(1_000_000, 2_000_000));
    let caches = Contestants::new(CAPACITY);
    // Hit ratios over the same draws, each contestant on its own (reads miss, then insert).
    let ratio = |get: &dyn Fn(u64) -> bool, insert: &dyn Fn(u64)| {
        let mut found = 0;
        for key in draws.iter() {
            if get(*key) {
                found += 1;
            } else {
                insert(*key);
            }
        }
        f64::from(found) / draws.len() as f64
    };
    let fresh = Contestants::new(CAPACITY);
    println!(
        "engine_zipf_mixed hit ratio: stratacache {:.3}, stratacache_s3fifo {:.3}, moka {:.3}, quick_cache {:.3}",
        ratio(&|k| now(fresh.moka_l1.get(&k)).unwrap().is_some(), &|k| {
            drop(now(fresh.moka_l1.insert(k, k)).unwrap())
        }),
        ratio(
            &|k| now(fresh.s3_fifo_l1.get(&k)).unwrap().is_some(),
            &|k| drop(now(fresh.s3_fifo_l1.insert(k, k)).unwrap())
        ),
        ratio(&|k| fresh.moka.get(&k).is_some(), &|k| fresh
            .moka
            .insert(k, k)),
        ratio(&|k| fresh.quick.get(&k).is_some(), &|k| fresh
            .quick
            .insert(k, k)),
    );
    let stratacache_op = |key, write| {
        if write {
            now(caches.moka_l1.insert(key, key)).unwrap();
        } else {
            black_box(now(caches.moka_l1.get(&key)).unwrap());
        }
    };
    let s3_fifo_op = |key, write| {
        if write {
            now(caches.s3_fifo_l1.insert(key, key)).unwrap();
        } else {
            black_box(now(caches.s3_fifo_l1.get(&key)).unwrap());
        }
    };
    let moka_op = |key, write| {
        if write {
            caches.moka.insert(key, key);
        } else {
            black_box(caches.moka.get(&key));
        }
    };
    // Two threads on two shared cores swing from run to run (a run whose threads share
    // a core takes twice as long): the S3-FIFO L1 and moka also take turns, and their
    // medians are compared.
    const OPS: u64 = 2_000_000;
    let turns = stratacache_benches::median_runs(2, |contestant| {
        let wall = if contestant == 0 {
            two_threads(OPS, &draws, s3_fifo_op)
        } else {
            two_threads(OPS, &draws, moka_op)
        };
        (wall, wall)
    });
    let per_op = |wall: Duration| wall.as_nanos() as f64 / OPS as f64;
    println!(
        "engine_zipf_mixed medians of {} turns: stratacache_s3fifo {:.1} ns, moka {:.1} ns per op: {:.2}x the throughput",
        stratacache_benches::ROUNDS,
        per_op(turns[0].0),
        per_op(turns[1].0),
        per_op(turns[1].0) / per_op(turns[0].0),
    );
    let mut group = c.benchmark_group("engine_zipf_mixed");
    group.bench_function("stratacache", |b| {
        b.iter_custom(|iters| two_threads(iters, &draws, stratacache_op));
    });
    group.bench_function("stratacache_s3fifo", |b| {
        b.iter_custom(|iters| two_threads(iters, &draws, s3_fifo_op));
    });
    group.bench_function("moka", |b| {
        b.iter_custom(|iters| two_threads(iters, &draws, moka_op));
    });
    group.bench_function("quick_cache", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, &draws, |key, write| {
                if write {
                    caches.quick.insert(key, key);
                } else {
                    black_box(caches.quick.get(&key));
                }
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = engine_hit, engine_hit_1m, engine_zipf_mixed
}
criterion_main!(benches);
