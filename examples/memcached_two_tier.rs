//! Memory L1 in front of memcached L2 (several servers on a consistent-hash ring):
//! `MEMCACHED_SERVERS=127.0.0.1:11211,127.0.0.1:11212 cargo run --example memcached_two_tier`.
//!
//! Without `MEMCACHED_SERVERS` the L2 is in memory, so the example runs anywhere.

use std::time::Duration;

use stratacache::{Cache, Fallback, Remote};
use stratacache_memcached::{MemcachedConfig, MemcachedStore};

#[tokio::main]
async fn main() -> Result<(), stratacache::Error> {
    let l2 = match std::env::var("MEMCACHED_SERVERS") {
        Ok(servers) => {
            println!("L2: memcached at {servers}");
            let memcached = MemcachedStore::new(
                MemcachedConfig::from_list(&servers).namespace("example-sessions"),
            )?;
            Fallback::remote(Remote::new(memcached)).name("memcached")
        }
        Err(_) => {
            println!("L2: in memory (set MEMCACHED_SERVERS to use memcached)");
            Fallback::memory(|tier| tier).name("memory-l2")
        }
    };
    let cache: Cache<String, String> = Cache::builder()
        .name("sessions")
        .ttl(Duration::from_secs(30))
        .fallback(l2.ttl(Duration::from_secs(3_600)))
        .build()?;

    for user in ["ada", "grace", "ada"] {
        let session = cache
            .get_or_insert(user, || async move { format!("session of {user}") })
            .await?;
        println!("{user}: {session}");
    }
    // A key memcached itself would refuse (spaces, control characters, 10 kB) is fine.
    let hostile = format!("weird key \r\n{}", "x".repeat(10_000));
    cache
        .insert(hostile.clone(), "stored safely".into())
        .await?;
    println!("hostile key -> {:?}", cache.get(&hostile).await?);
    for tier in cache.stats().tiers {
        println!(
            "tier {:<9} hits {} misses {} errors {}",
            tier.name, tier.hits, tier.misses, tier.errors
        );
    }
    cache.clear().await?;
    Ok(())
}
