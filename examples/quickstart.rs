//! A two-tier cache in front of a pretend database: `cargo run --example quickstart`.
//!
//! L1 is an in-process memory tier with a short TTL; L2 is a second memory tier with a
//! longer one, or Redis when `REDIS_URL` is set (`REDIS_URL=redis://127.0.0.1:6379/`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stratacache::{Cache, Fallback, Remote};
use stratacache_redis::{RedisConfig, RedisStore};

/// Stands in for a database: counts how often it is asked.
static DATABASE_READS: AtomicUsize = AtomicUsize::new(0);

async fn load_user(id: u64) -> String {
    DATABASE_READS.fetch_add(1, Ordering::Relaxed);
    format!("user #{id} from the database")
}

/// Redis when `REDIS_URL` is set, otherwise a second memory tier.
fn l2() -> Result<Fallback<u64, String>, stratacache::Error> {
    match std::env::var("REDIS_URL") {
        Ok(url) => {
            println!("L2: Redis at {url}");
            let redis = RedisStore::new(RedisConfig::from_url(url).namespace("quickstart-users"))?;
            Ok(Fallback::remote(Remote::new(redis)).name("redis"))
        }
        Err(_) => {
            println!("L2: in memory (set REDIS_URL to use Redis)");
            Ok(Fallback::memory(|tier| tier).name("l2"))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), stratacache::Error> {
    let cache: Cache<u64, String> = Cache::builder()
        .name("users")
        .memory(|l1| l1.max_capacity(10_000))
        .ttl(Duration::from_secs(30))
        .fallback(l2()?.ttl(Duration::from_secs(600)))
        .build()?;
    println!("built {cache:?}");

    println!("get(1) on a cold cache      -> {:?}", cache.get(&1).await?);
    cache.insert(1, "user #1, inserted".to_string()).await?;
    println!("get(1) after insert         -> {:?}", cache.get(&1).await?);

    let user = cache.get_or_insert(&2, || load_user(2)).await?;
    println!("get_or_insert(2), cold      -> {user:?}");
    let user = cache.get_or_insert(&2, || load_user(2)).await?;
    println!("get_or_insert(2), warm      -> {user:?}");
    println!(
        "database reads so far       -> {}",
        DATABASE_READS.load(Ordering::Relaxed)
    );

    cache.invalidate(&1).await?;
    println!("get(1) after invalidate     -> {:?}", cache.get(&1).await?);

    let stats = cache.stats();
    for tier in &stats.tiers {
        println!(
            "tier {:<5} hits {} misses {} inserts {} (hit ratio {:.2})",
            tier.name,
            tier.hits,
            tier.misses,
            tier.inserts,
            tier.hit_ratio()
        );
    }
    println!(
        "loads {}, overall hit ratio {:.2}",
        stats.loads,
        stats.hit_ratio()
    );
    Ok(())
}
