//! Memory L1 in front of Redis L2, with typed values crossing the codec boundary:
//! `REDIS_URL=redis://127.0.0.1:6379/ cargo run --example redis_two_tier`.
//!
//! Without `REDIS_URL` it starts nothing and says how to run it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use stratacache::{Cache, Fallback, Remote, TimeToRefresh};
use stratacache_redis::{RedisConfig, RedisStore};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Profile {
    id: u64,
    name: String,
    plan: String,
}

async fn load_profile(id: u64) -> Result<Profile, std::io::Error> {
    Ok(Profile {
        id,
        name: format!("user {id}"),
        plan: "pro".into(),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        eprintln!("set REDIS_URL (say, redis://127.0.0.1:6379/) to run this example");
        return Ok(());
    };
    let redis = RedisStore::new(
        RedisConfig::from_url(&url)
            .namespace("example-profiles")
            .command_timeout(Duration::from_millis(100)),
    )?;
    let cache: Cache<u64, Profile> = Cache::builder()
        .name("profiles")
        .memory(|l1| l1.max_capacity(10_000))
        .ttl(Duration::from_secs(30))
        .stampede_protection(true)
        .time_to_refresh(TimeToRefresh::new(Duration::from_secs(20)))
        .fallback(
            Fallback::remote(Remote::new(redis).schema_version(1))
                .name("redis")
                .ttl(Duration::from_secs(600)),
        )
        .build()?;

    let profile = cache.try_get_or_insert(&7, || load_profile(7)).await?;
    println!("loaded   {profile:?}");
    let profile = cache.get(&7).await?;
    println!("from L1  {profile:?}");

    // A second instance of the service: its L1 is empty, Redis has the profile.
    let other: Cache<u64, Profile> = Cache::builder()
        .name("profiles")
        .fallback(Fallback::remote(
            Remote::new(RedisStore::new(
                RedisConfig::from_url(&url).namespace("example-profiles"),
            )?)
            .schema_version(1),
        ))
        .build()?;
    println!("other instance, from Redis: {:?}", other.get(&7).await?);
    for tier in other.stats().tiers {
        println!(
            "  tier {:<6} hits {} misses {} errors {}",
            tier.name, tier.hits, tier.misses, tier.errors
        );
    }
    cache.clear().await?;
    Ok(())
}
