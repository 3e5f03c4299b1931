//! The memory hot paths of stratacache beside raw moka and cachet 0.16, in one run.
//!
//! Every group names its contestants `stratacache`, `moka` and `cachet`, so each figure
//! reads as a ratio against the others measured in the same process. The hit groups add
//! `moka_ahash` (moka with the memory tier's hasher) and `moka_expiry` (moka with the
//! memory tier's hasher, entry type and per-entry expiry, no facade): the floor of the
//! memory tier's hit, so the facade's own cost reads as `stratacache - moka_expiry` —
//! and `memory_tier` (the memory tier alone) splits that into the tier's and the facade's.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use futures::FutureExt;
use stratacache::{Cache, CacheEntry, Fallback, InsertPolicy, MemoryTier};

const KEYS: u64 = 1_024;

/// Polls a future that must complete without awaiting (a memory-tier operation).
fn now<F: Future>(future: F) -> F::Output {
    future
        .now_or_never()
        .expect("memory operations complete without awaiting")
}

fn ours<V: Clone + Send + Sync + 'static>() -> Cache<u64, V> {
    Cache::builder()
        .memory(|l1| l1.max_capacity(100_000))
        .build()
        .unwrap()
}

/// The same cache with a loader: a hit must cost what it costs without one.
fn ours_loading<V: Clone + Send + Sync + 'static>() -> Cache<u64, V> {
    Cache::builder()
        .memory(|l1| l1.max_capacity(100_000))
        .loader(|_key: u64| async { Ok::<Option<V>, std::io::Error>(None) })
        .build()
        .unwrap()
}

fn raw_moka<V: Clone + Send + Sync + 'static>() -> moka::sync::Cache<u64, V> {
    moka::sync::Cache::new(100_000)
}

/// moka with the hasher stratacache's memory tier uses: isolates the hasher's share.
fn raw_moka_ahash<V: Clone + Send + Sync + 'static>()
-> moka::sync::Cache<u64, V, ahash::RandomState> {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .build_with_hasher(ahash::RandomState::new())
}

/// Per-entry expiry as the memory tier asks moka for it: a deadline from each entry's TTL.
struct EntryTtl;

impl<K, V> moka::Expiry<K, CacheEntry<V>> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &K,
        entry: &CacheEntry<V>,
        _now: Instant,
    ) -> Option<Duration> {
        entry.ttl()
    }
}

/// moka with the hasher and the per-entry expiry of stratacache's memory tier, and no
/// facade: the floor of any moka L1 that reclaims entries at their own TTL. moka calls
/// the expiry's read hook on every hit, whether or not the hook changes anything.
fn raw_moka_expiry<V: Clone + Send + Sync + 'static>()
-> moka::sync::Cache<u64, CacheEntry<V>, ahash::RandomState> {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .expire_after(EntryTtl)
        .build_with_hasher(ahash::RandomState::new())
}

fn cachet_cache<V: Clone + Send + Sync + 'static>(
    runtime: &tokio::runtime::Runtime,
) -> cachet::Cache<u64, V> {
    let _enter = runtime.enter();
    cachet::Cache::builder::<u64, V>(tick::Clock::new_tokio())
        .memory()
        .build()
}

/// The three u64 caches, each holding every key of `0..KEYS`.
fn filled_u64(
    runtime: &tokio::runtime::Runtime,
) -> (
    Cache<u64, u64>,
    moka::sync::Cache<u64, u64>,
    cachet::Cache<u64, u64>,
) {
    let cache = ours::<u64>();
    let moka = raw_moka::<u64>();
    let peer = cachet_cache::<u64>(runtime);
    for key in 0..KEYS {
        now(cache.insert(key, key)).unwrap();
        moka.insert(key, key);
        now(peer.insert(key, cachet::CacheEntry::new(key))).unwrap();
    }
    (cache, moka, peer)
}

fn hit_group<V: Clone + Send + Sync + 'static>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    value: impl Fn(u64) -> V,
) {
    let cache = ours::<V>();
    let loading = ours_loading::<V>();
    let moka = raw_moka::<V>();
    let moka_ahash = raw_moka_ahash::<V>();
    let moka_expiry = raw_moka_expiry::<V>();
    let tier = MemoryTier::<u64, V>::new(100_000);
    let peer = cachet_cache::<V>(runtime);
    for key in 0..KEYS {
        now(cache.insert(key, value(key))).unwrap();
        now(loading.insert(key, value(key))).unwrap();
        moka.insert(key, value(key));
        moka_ahash.insert(key, value(key));
        moka_expiry.insert(key, CacheEntry::new(value(key), SystemTime::now(), None));
        tier.store(
            key,
            CacheEntry::new(value(key), SystemTime::now(), None),
            None,
        );
        now(peer.insert(key, cachet::CacheEntry::new(value(key)))).unwrap();
    }
    let mut key = 0;
    group.bench_function("stratacache", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(now(cache.get(black_box(&key))).unwrap())
        });
    });
    group.bench_function("stratacache_loading", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(now(loading.get(black_box(&key))).unwrap())
        });
    });
    group.bench_function("moka", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(moka.get(black_box(&key)))
        });
    });
    group.bench_function("moka_ahash", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(moka_ahash.get(black_box(&key)))
        });
    });
    group.bench_function("moka_expiry", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(moka_expiry.get(black_box(&key)).map(CacheEntry::into_value))
        });
    });
    group.bench_function("memory_tier", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(tier.lookup(black_box(&key)).map(CacheEntry::into_value))
        });
    });
    group.bench_function("cachet", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(now(peer.get(black_box(&key))).unwrap())
        });
    });
}

fn l1_hit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    hit_group(&mut c.benchmark_group("l1_hit_u64"), &runtime, |key| key);
    hit_group(&mut c.benchmark_group("l1_hit_arc_str"), &runtime, |key| {
        Arc::<str>::from(key.to_string())
    });
}

fn l1_miss(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cache = ours::<u64>();
    let moka = raw_moka::<u64>();
    let peer = cachet_cache::<u64>(&runtime);
    let mut group = c.benchmark_group("miss");
    let mut key = 0;
    group.bench_function("stratacache", |b| {
        b.iter(|| {
            key += 1;
            black_box(now(cache.get(black_box(&key))).unwrap())
        });
    });
    group.bench_function("moka", |b| {
        b.iter(|| {
            key += 1;
            black_box(moka.get(black_box(&key)))
        });
    });
    group.bench_function("cachet", |b| {
        b.iter(|| {
            key += 1;
            black_box(now(peer.get(black_box(&key))).unwrap())
        });
    });
}

fn insert(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cache = ours::<u64>();
    let moka = raw_moka::<u64>();
    let peer = cachet_cache::<u64>(&runtime);
    let mut group = c.benchmark_group("insert");
    let mut key = 0;
    group.bench_function("stratacache", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            now(cache.insert(black_box(key), key)).unwrap();
        });
    });
    group.bench_function("moka", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            moka.insert(black_box(key), key);
        });
    });
    group.bench_function("cachet", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            now(peer.insert(black_box(key), cachet::CacheEntry::new(key))).unwrap();
        });
    });
}

/// L1 misses, L2 (a second memory tier) hits; L1's insert policy is `never` in both
/// caches, so no hit is copied up and every iteration takes the same path.
fn l2_hit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cache: Cache<u64, u64> = Cache::builder()
        .insert_policy(InsertPolicy::never())
        .fallback(Fallback::memory(|tier| tier))
        .build()
        .unwrap();
    let (l1, l2) = (raw_moka::<u64>(), raw_moka::<u64>());
    let peer = {
        let _enter = runtime.enter();
        let clock = tick::Clock::new_tokio();
        let fallback = cachet::Cache::builder::<u64, u64>(clock.clone()).memory();
        cachet::Cache::builder::<u64, u64>(clock)
            .memory()
            .insert_policy(cachet::InsertPolicy::never())
            .fallback(fallback)
            .build()
    };
    for key in 0..KEYS {
        now(cache.insert(key, key)).unwrap();
        now(peer.insert(key, cachet::CacheEntry::new(key))).unwrap();
        l2.insert(key, key);
    }
    assert_eq!(cache.l1_len(), Some(0));
    let mut group = c.benchmark_group("l2_hit");
    let mut key = 0;
    group.bench_function("stratacache", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(now(cache.get(black_box(&key))).unwrap())
        });
    });
    group.bench_function("moka", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(l1.get(black_box(&key)).or_else(|| l2.get(&key)))
        });
    });
    group.bench_function("cachet", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(now(peer.get(black_box(&key))).unwrap())
        });
    });
}

fn get_or_insert_hit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (cache, moka, peer) = filled_u64(&runtime);
    let mut group = c.benchmark_group("get_or_insert_hit");
    let mut key = 0;
    group.bench_function("stratacache", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(now(cache.get_or_insert(black_box(&key), || async { 0 })).unwrap())
        });
    });
    group.bench_function("moka", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(moka.get_with(black_box(key), || 0))
        });
    });
    group.bench_function("cachet", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(now(peer.get_or_insert(black_box(&key), || async { 0 })).unwrap())
        });
    });
}

/// Runs `lookup` `iters` times on each of `THREADS` threads at once; the time is the
/// wall time of the whole, so a figure is the cost of one lookup with every core busy.
fn on_all_threads(iters: u64, lookup: impl Fn(u64) + Sync) -> Duration {
    const THREADS: u64 = 2;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let lookup = &lookup;
            scope.spawn(move || {
                for round in 0..iters {
                    lookup((round + thread * 512) % KEYS);
                }
            });
        }
    });
    start.elapsed()
}

/// L1 hits from two threads at once (this machine has two cores): what sharing a cache
/// between cores costs each contestant.
fn l1_hit_two_threads(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (cache, moka, peer) = filled_u64(&runtime);
    let mut group = c.benchmark_group("l1_hit_two_threads");
    group.bench_function("stratacache", |b| {
        b.iter_custom(|iters| {
            on_all_threads(iters, |key| {
                black_box(now(cache.get(black_box(&key))).unwrap());
            })
        });
    });
    group.bench_function("moka", |b| {
        b.iter_custom(|iters| {
            on_all_threads(iters, |key| {
                black_box(moka.get(black_box(&key)));
            })
        });
    });
    group.bench_function("cachet", |b| {
        b.iter_custom(|iters| {
            on_all_threads(iters, |key| {
                black_box(now(peer.get(black_box(&key))).unwrap());
            })
        });
    });
}

/// A hit with time-to-refresh on (never due here: the check itself is measured) beside
/// the same cache without it (same TTL: moka's own expiry costs both the same) and moka.
fn ttr_hit(c: &mut Criterion) {
    let plain: Cache<u64, u64> = Cache::builder()
        .memory(|l1| l1.max_capacity(100_000))
        .ttl(std::time::Duration::from_secs(7_200))
        .build()
        .unwrap();
    let refreshing: Cache<u64, u64> = Cache::builder()
        .memory(|l1| l1.max_capacity(100_000))
        .ttl(std::time::Duration::from_secs(7_200))
        .loader(|key: u64| async move { Ok::<_, std::io::Error>(Some(key)) })
        .time_to_refresh(stratacache::TimeToRefresh::new(
            std::time::Duration::from_secs(3_600),
        ))
        .build()
        .unwrap();
    let moka = raw_moka::<u64>();
    for key in 0..KEYS {
        now(plain.insert(key, key)).unwrap();
        now(refreshing.insert(key, key)).unwrap();
        moka.insert(key, key);
    }
    let mut group = c.benchmark_group("ttr_hit");
    let mut key = 0;
    group.bench_function("stratacache", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(now(plain.get(black_box(&key))).unwrap())
        });
    });
    group.bench_function("stratacache_ttr", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(now(refreshing.get(black_box(&key))).unwrap())
        });
    });
    group.bench_function("moka", |b| {
        b.iter(|| {
            key = (key + 1) % KEYS;
            black_box(moka.get(black_box(&key)))
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = l1_hit, l1_hit_two_threads, l1_miss, insert, l2_hit, get_or_insert_hit, ttr_hit
}
criterion_main!(benches);
