//! Redis killed under load: a memory L1 over Redis with a circuit breaker and fail-safe,
//! driven by 16 tasks through three phases (healthy, Redis killed, Redis back). Prints
//! throughput, errors, stale serves and the slowest call each second, then what the
//! cache counted.
//!
//! `cargo run --release --example resilience` starts its own `redis-server` (it must be
//! installed: `./scripts/test.sh` installs it); with `REDIS_URL` set it cannot kill
//! that server, and says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use stratacache::{Cache, FailSafe, Fallback, Remote};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_testkit::RedisServer;

const TASKS: usize = 16;
/// Twice what L1 holds: about half the calls miss L1.
const KEYS: u64 = 20_000;
const COMMAND_TIMEOUT: Duration = Duration::from_millis(100);
/// What the database takes to answer (Redis answers in tens of microseconds).
const DATABASE_LATENCY: Duration = Duration::from_millis(1);

/// What the load saw in one phase.
#[derive(Default)]
struct Phase {
    calls: AtomicU64,
    errors: AtomicU64,
    /// The slowest call, in microseconds.
    slowest_us: AtomicU64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var("REDIS_URL").is_ok() {
        eprintln!("this example kills its own redis-server: unset REDIS_URL to run it");
        return Ok(());
    }
    let mut server = RedisServer::start()?;
    let redis = RedisStore::new(
        RedisConfig::from_url(server.url())
            .namespace("resilience")
            .command_timeout(COMMAND_TIMEOUT),
    )?;
    let cache: Cache<u64, String> = Cache::builder()
        .name("resilience")
        .memory(|l1| l1.max_capacity(10_000))
        .ttl(Duration::from_secs(2))
        .ttl_jitter(Duration::from_millis(500))
        .stampede_protection(true)
        .fail_safe(FailSafe::new(Duration::from_secs(60)).throttle(Duration::from_secs(1)))
        .fallback(
            Fallback::remote(Remote::new(redis))
                .name("redis")
                .ttl(Duration::from_secs(60))
                .circuit_breaker(5, Duration::from_millis(500)),
        )
        .build()?;

    // The "database": always up here, and slower than Redis.
    let load = |id: u64| async move {
        tokio::time::sleep(DATABASE_LATENCY).await;
        format!("row {id}")
    };

    let running = Arc::new(AtomicBool::new(true));
    let phase = Arc::new(std::sync::Mutex::new(Arc::new(Phase::default())));
    let mut tasks = Vec::new();
    for task in 0..TASKS as u64 {
        let (cache, running, phase) = (cache.clone(), Arc::clone(&running), Arc::clone(&phase));
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(task);
            while running.load(Ordering::Relaxed) {
                // A request arrives (a real service awaits its socket here).
                tokio::task::yield_now().await;
                let id = rng.u64(0..KEYS);
                let current = Arc::clone(&phase.lock().unwrap());
                let started = Instant::now();
                let answer = cache.get_or_insert(&id, || load(id)).await;
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                current.calls.fetch_add(1, Ordering::Relaxed);
                current.slowest_us.fetch_max(took, Ordering::Relaxed);
                if answer.is_err() {
                    current.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // Runs a phase for `seconds`, printing each second; answers its calls per second.
    let run = |name: &'static str, seconds: u64| {
        let (phase, cache) = (Arc::clone(&phase), cache.clone());
        async move {
            let mut total = 0;
            for second in 1..=seconds {
                let fresh = Arc::new(Phase::default());
                *phase.lock().unwrap() = Arc::clone(&fresh);
                let stale_before = cache.stats().stale_served;
                tokio::time::sleep(Duration::from_secs(1)).await;
                let calls = fresh.calls.load(Ordering::Relaxed);
                total += calls;
                println!(
                    "{name:<14} {second}s {calls:>8} calls/s  errors {:>4}  stale {:>4}  \
                     slowest {:>6.1} ms",
                    fresh.errors.load(Ordering::Relaxed),
                    cache.stats().stale_served - stale_before,
                    fresh.slowest_us.load(Ordering::Relaxed) as f64 / 1_000.0
                );
            }
            total / seconds
        }
    };

    run("warming up", 2).await;
    let healthy = run("healthy", 3).await;
    server.stop();
    let first_second = run("redis killed", 1).await;
    let outage = run("circuit open", 3).await;
    // Deletes while Redis is down: they wait for it in the recovery queue.
    for id in 0..100 {
        cache.invalidate(&id).await?;
    }
    let queued = cache.stats().recovery_queued;
    server.restart()?;
    let restarted = Instant::now();
    while cache.stats().recovery_replayed < queued && restarted.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let replay_took = restarted.elapsed();
    let replayed = cache.stats().recovery_replayed;
    let back = run("redis back", 3).await;
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }

    let stats = cache.stats();
    let redis_tier = &stats.tiers[1];
    println!(
        "\nduring the outage: {:.0}% of healthy throughput ({outage} vs {healthy} calls/s; \
         {first_second} in the first second); after: {:.0}%",
        100.0 * outage as f64 / healthy as f64,
        100.0 * back as f64 / healthy as f64,
    );
    println!(
        "redis: {} errors, {} calls skipped by the open circuit, circuit now {:?}",
        redis_tier.errors, redis_tier.short_circuits, redis_tier.circuit
    );
    println!(
        "loads {}, stale values served {}, L1 hit ratio {:.2}",
        stats.loads,
        stats.stale_served,
        stats.tiers[0].hit_ratio()
    );
    println!(
        "recovery: {queued} deletes queued during the outage, {replayed} replayed {:.0} ms \
         after the restart began, {} dropped",
        replay_took.as_secs_f64() * 1_000.0,
        stats.recovery_dropped
    );
    Ok(())
}
