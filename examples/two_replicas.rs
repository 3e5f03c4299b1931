//! Two replicas of a service, each with its own memory L1, over one Redis with a
//! backplane: a write on one drops the other's L1 copy, so it never serves the value the
//! write replaced; a tag invalidated on one invalidates its entries on both. `cargo run --example two_replicas` (uses `REDIS_URL` when set,
//! otherwise starts its own `redis-server`).

use std::time::{Duration, Instant};

use stratacache::{Cache, Fallback, Remote};
use stratacache_redis::{RedisBackplane, RedisConfig, RedisStore};

fn replica(config: &RedisConfig) -> Result<Cache<u64, String>, stratacache::Error> {
    Cache::builder()
        .ttl(Duration::from_secs(300)) // long: without the backplane, replaced values would live that long
        .fallback(Fallback::remote(Remote::new(RedisStore::new(
            config.clone(),
        )?)))
        .backplane(RedisBackplane::new(config.clone())?)
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = stratacache_examples::redis()?;
    let config = RedisConfig::from_url(url).namespace("two-replicas");
    let (a, b) = (replica(&config)?, replica(&config)?);
    tokio::time::sleep(Duration::from_millis(100)).await; // both subscribe

    a.insert(1, "ada".into()).await?;
    println!("b reads {:?} (from Redis, now in b's L1)", b.get(&1).await?);

    a.insert(1, "ada lovelace".into()).await?;
    let sent = Instant::now();
    while b.stats().backplane_received < 2 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "a renamed user 1; {:?} later b reads {:?}",
        sent.elapsed(),
        b.get(&1).await?
    );

    a.invalidate(&1).await?;
    while b.stats().backplane_received < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("a deleted user 1; b reads {:?}", b.get(&1).await?);

    // Tags: one invalidation for every entry that carries the tag, on every replica.
    a.tagged(["team:7"]).insert(2, "grace".into()).await?;
    a.tagged(["team:7"]).insert(3, "edsger".into()).await?;
    println!(
        "b reads users 2 and 3: {:?}, {:?}",
        b.get(&2).await?,
        b.get(&3).await?
    );
    tokio::time::sleep(Duration::from_millis(2)).await; // markers are in milliseconds
    let sent = Instant::now();
    a.invalidate_tag("team:7").await?;
    while b.stats().tags_invalidated == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "a invalidated tag team:7; {:?} later b reads {:?}, {:?} (its marker is in Redis too)",
        sent.elapsed(),
        b.get(&2).await?,
        b.get(&3).await?
    );
    let stats = b.stats();
    println!(
        "b: {} announcements heard, {} gaps; a: {} sent",
        stats.backplane_received,
        stats.backplane_gaps,
        a.stats().backplane_sent
    );
    Ok(())
}
