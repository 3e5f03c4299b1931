//! What a backplane costs and how fast it is, over one Redis (`REDIS_URL`, or a
//! `redis-server` started by the test kit):
//!
//! - `backplane_insert`: an `insert` on memory L1 + Redis L2 with and without a
//!   `RedisBackplane`, in one run (announcements are sent by a task of their own, up to
//!   64 a message, so a write does not wait for them);
//! - propagation: instance A invalidates a key every millisecond (1,000/s) while
//!   instance B holds every key in L1; the time from A's `invalidate` returning to the
//!   key leaving B's L1, p50/p99/max over 2,000 invalidations, printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use stratacache::{Cache, Fallback, MemoryTier, Remote};
use stratacache_redis::{RedisBackplane, RedisConfig, RedisStore};

fn cache(config: &RedisConfig, backplane: bool, l1: MemoryTier<u64, String>) -> Cache<u64, String> {
    let builder = Cache::builder()
        .tier(l1)
        .fallback(Fallback::remote(Remote::new(
            RedisStore::new(config.clone()).unwrap(),
        )));
    let builder = if backplane {
        builder.backplane(RedisBackplane::new(config.clone()).unwrap())
    } else {
        builder
    };
    builder.build().unwrap()
}

fn backplane_insert(c: &mut Criterion) {
    let (server, url) = stratacache_benches::redis();
    let runtime = stratacache_benches::runtime();
    let _inside = runtime.enter();
    let config = RedisConfig::from_url(&url).namespace("bench-backplane");
    let plain = cache(&config, false, MemoryTier::new(10_000));
    let announced = cache(&config, true, MemoryTier::new(10_000));
    // A second instance listening, as in production.
    let _listener = cache(&config, true, MemoryTier::new(10_000));
    runtime.block_on(tokio::time::sleep(Duration::from_millis(100)));
    let value = "v".repeat(100);
    let mut group = c.benchmark_group("backplane_insert");
    let mut key = 0_u64;
    group.bench_function("without", |b| {
        b.iter(|| {
            key = (key + 1) % 1_000;
            runtime.block_on(plain.insert(key, value.clone())).unwrap();
        });
    });
    group.bench_function("with", |b| {
        b.iter(|| {
            key = (key + 1) % 1_000;
            runtime
                .block_on(announced.insert(key, value.clone()))
                .unwrap();
        });
    });
    group.finish();
    drop(server);
}

fn propagation(_: &mut Criterion) {
    let (server, url) = stratacache_benches::redis();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = RedisConfig::from_url(&url).namespace("bench-propagation");
    const KEYS: u64 = 2_000;
    let latencies = runtime.block_on(async {
        let b_l1 = MemoryTier::new(10_000);
        let a = cache(&config, true, MemoryTier::new(10_000));
        let b = cache(&config, true, b_l1.clone());
        tokio::time::sleep(Duration::from_millis(200)).await; // both subscribed
        for key in 0..KEYS {
            a.insert(key, format!("value {key}")).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // b heard the inserts
        for key in 0..KEYS {
            assert!(b.get(&key).await.unwrap().is_some());
        }
        let sent: Arc<Vec<std::sync::OnceLock<Instant>>> =
            Arc::new((0..KEYS).map(|_| std::sync::OnceLock::new()).collect());
        let done = Arc::new(AtomicBool::new(false));
        // B's side: notes when each key leaves its L1.
        let watcher = tokio::spawn({
            let (sent, done) = (Arc::clone(&sent), Arc::clone(&done));
            async move {
                let mut latencies = Vec::with_capacity(KEYS as usize);
                let mut next = 0;
                while next < KEYS && !done.load(Ordering::Acquire) {
                    match sent[next as usize].get() {
                        Some(at) if b_l1.lookup(&next).is_none() => {
                            latencies.push(at.elapsed());
                            next += 1;
                        }
                        _ => tokio::task::yield_now().await,
                    }
                }
                latencies
            }
        });
        // A's side: one invalidation a millisecond.
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for key in 0..KEYS {
            tick.tick().await;
            a.invalidate(&key).await.unwrap();
            let _ = sent[key as usize].set(Instant::now());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        done.store(true, Ordering::Release);
        watcher.await.unwrap()
    });
    let mut sorted = latencies.clone();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q) as usize];
    println!(
        "backplane propagation at 1,000 invalidations/s over Redis: {} of {KEYS} seen, \
         p50 {:?}, p99 {:?}, max {:?}",
        sorted.len(),
        at(0.5),
        at(0.99),
        sorted.last().copied().unwrap_or_default()
    );
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = backplane_insert, propagation
}
criterion_main!(benches);
