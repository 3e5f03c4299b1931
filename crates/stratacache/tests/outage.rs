//! Redis killed under load, on the real server: the cache keeps serving, never waits
//! past the command timeout once the breaker is open, never returns a wrong value, and
//! when Redis returns, L2 hits resume and the deletes made meanwhile reach it.
//!
//! Real time: the phases last a second or two each.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stratacache::{Cache, Fallback, Remote};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_testkit::RedisServer;

const TASKS: u64 = 16;
const KEYS: u64 = 4_000;
const COMMAND_TIMEOUT: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    wrong: AtomicU64,
    /// The slowest call that started in this phase, in microseconds.
    slowest_us: AtomicU64,
}

fn value(key: u64) -> String {
    format!("row {key}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_degrades_the_cache_and_recovers_within_a_second() {
    let mut server = RedisServer::start().unwrap();
    let config = RedisConfig::from_url(server.url())
        .namespace("outage")
        .command_timeout(COMMAND_TIMEOUT);
    let cache: Cache<u64, String> = Cache::builder()
        .memory(|l1| l1.max_capacity(1_000)) // most calls go on to Redis
        .ttl(Duration::from_secs(60))
        .stampede_protection(true)
        .fallback(
            Fallback::remote(Remote::new(RedisStore::new(config.clone()).unwrap()))
                .circuit_breaker(3, Duration::from_millis(300)),
        )
        .build()
        .unwrap();
    cache
        .insert_many((0..KEYS / 2).map(|key| (key, value(key))))
        .await
        .unwrap();
    // A write of that set-up that timed out (a loaded machine) waits and is replayed at
    // once: settled before the outage, so that only the outage's deletes wait then.
    let setup = Instant::now();
    while cache.stats().tiers[1].waiting > 0 {
        assert!(
            setup.elapsed() < Duration::from_secs(5),
            "{:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.save().unwrap(); // Redis comes back with these

    let running = Arc::new(AtomicBool::new(true));
    let tally = Arc::new(std::sync::Mutex::new(Arc::new(Tally::default())));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (cache, running, tally) = (cache.clone(), Arc::clone(&running), Arc::clone(&tally));
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(task);
            while running.load(Ordering::Relaxed) {
                tokio::task::yield_now().await;
                let key = rng.u64(100..KEYS); // 0..100 are invalidated below
                let current = Arc::clone(&tally.lock().unwrap());
                let started = Instant::now();
                let found = cache
                    .get_or_insert(&key, || async move { value(key) })
                    .await;
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                current.calls.fetch_add(1, Ordering::Relaxed);
                current.slowest_us.fetch_max(took, Ordering::Relaxed);
                if found.ok() != Some(value(key)) {
                    current.wrong.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let phase = |length: Duration| {
        let tally = Arc::clone(&tally);
        async move {
            let fresh = Arc::new(Tally::default());
            *tally.lock().unwrap() = Arc::clone(&fresh);
            tokio::time::sleep(length).await;
            fresh
        }
    };

    let healthy = phase(Duration::from_secs(1)).await;
    server.stop();
    phase(Duration::from_millis(500)).await; // the breaker opens
    let l2 = &cache.stats().tiers[1];
    assert_ne!(
        l2.circuit,
        Some(stratacache::CircuitState::Closed),
        "{l2:?}"
    );
    assert!(
        l2.short_circuits > 0,
        "the breaker turns calls away: {l2:?}"
    );
    let outage = phase(Duration::from_secs(1)).await;
    let before = cache.stats();
    for key in 0..100 {
        cache.invalidate(&key).await.unwrap();
    }
    let queued = cache.stats().recovery_queued - before.recovery_queued;
    assert_eq!(queued, 100);
    assert_eq!(cache.stats().tiers[1].waiting, 100);

    server.restart().unwrap(); // with the saved data: keys 0..100 are back in Redis
    let hits_before = cache.stats().tiers[1].hits;
    let back = Instant::now();
    while cache.stats().tiers[1].waiting > 0 {
        assert!(
            back.elapsed() < Duration::from_secs(1),
            "deletes replayed within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let replayed_in = back.elapsed();
    phase(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }

    let (before, during) = (
        healthy.calls.load(Ordering::Relaxed),
        outage.calls.load(Ordering::Relaxed),
    );
    eprintln!(
        "healthy {before} calls/s, outage {during} calls/s ({:.0}%), slowest call once open \
         {} us, deletes replayed in {replayed_in:?}",
        100.0 * during as f64 / before as f64,
        outage.slowest_us.load(Ordering::Relaxed),
    );
    assert!(
        during * 10 >= before * 3,
        "outage throughput {during} vs {before}"
    );
    let slowest = Duration::from_micros(outage.slowest_us.load(Ordering::Relaxed));
    assert!(
        slowest <= COMMAND_TIMEOUT.mul_f64(1.1),
        "slowest call once open: {slowest:?}"
    );
    for tally in [&healthy, &outage] {
        assert_eq!(tally.wrong.load(Ordering::Relaxed), 0, "no wrong value");
    }
    assert!(cache.stats().tiers[1].hits > hits_before, "L2 hits resumed");

    // A second instance, its L1 empty, reads none of the deleted values from Redis.
    let other: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(Remote::new(
            RedisStore::new(config).unwrap(),
        )))
        .build()
        .unwrap();
    let deleted: Vec<u64> = (0..100).collect();
    assert!(
        other
            .get_many(&deleted)
            .await
            .unwrap()
            .iter()
            .all(Option::is_none)
    );
    assert_eq!(
        other.get(&200).await.unwrap(),
        Some(value(200)),
        "the rest is back"
    );
}
