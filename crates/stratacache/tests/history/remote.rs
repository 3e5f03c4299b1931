//! The history checker against real servers: a memory L1 over Redis, and over
//! memcached, on a multi-thread runtime. Every server is started by the test kit on a
//! free loopback port.

use std::future::Future;
use std::time::Duration;

use stratacache::{ByteStore, Cache, CacheTier, Fallback, MemoryTier, Remote};
use stratacache_memcached::{MemcachedConfig, MemcachedStore};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_testkit::{MemcachedServer, RedisServer, TcpProxy};

use super::jitter::Pause;
use super::{KEYS, assert_consistent, check, diverged, drive};

/// Real servers are slower than the jitter tier: fewer operations by default.
fn remote_ops() -> usize {
    (super::total_ops() / 4).max(1_000)
}

async fn remote_run<S: ByteStore>(label: &str, store: S, inspector: S, stampede: bool) {
    let l1 = MemoryTier::builder().build();
    let cache: Cache<u64, u64> = Cache::builder()
        .tier(l1.clone())
        .fallback(Fallback::remote(store))
        .stampede_protection(stampede)
        .build()
        .unwrap();
    let history = drive(&cache, remote_ops(), Pause::Yield(4)).await;
    let l2 = Remote::new(inspector).into_tier::<u64, u64>();
    let mut in_l2 = [None; KEYS as usize];
    for key in 0..KEYS {
        in_l2[key as usize] = l2.get(&key).await.unwrap().map(|entry| *entry.value());
    }
    assert_consistent(label, &history, diverged(&l1, |key| in_l2[key as usize]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_read_returns_a_replaced_value_over_redis() {
    let server = RedisServer::start().unwrap();
    for (stampede, namespace) in [(true, "on"), (false, "off")] {
        let redis =
            RedisStore::new(RedisConfig::from_url(server.url()).namespace(namespace)).unwrap();
        let label = format!("redis/stampede {namespace}");
        remote_run(&label, redis.clone(), redis, stampede).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_read_returns_a_replaced_value_over_memcached() {
    let servers = [
        MemcachedServer::start().unwrap(),
        MemcachedServer::start().unwrap(),
    ];
    let addresses: Vec<_> = servers.iter().map(MemcachedServer::address).collect();
    for (stampede, namespace) in [(true, "on"), (false, "off")] {
        let config = || MemcachedConfig::new(addresses.clone()).namespace(namespace);
        let store = MemcachedStore::new(config()).unwrap();
        let inspector = MemcachedStore::new(config()).unwrap();
        let label = format!("memcached/stampede {namespace}");
        remote_run(&label, store, inspector, stampede).await;
    }
}

/// A protected cache over `store`, for the outage runs.
fn cache_over<S: ByteStore>(store: S) -> Cache<u64, u64> {
    Cache::builder()
        .fallback(Fallback::remote(store))
        .stampede_protection(true)
        .build()
        .unwrap()
}

/// Drives 40,000 random operations on `cache` and runs `outage` 100 ms in: every call
/// must still return within 5 s (a few timeouts, never a hang), the run must have met
/// the outage, and the history must hold for the writes that completed.
async fn through_an_outage(label: &str, cache: Cache<u64, u64>, outage: impl Future<Output = ()>) {
    let run = tokio::spawn({
        let cache = cache.clone();
        async move { drive(&cache, 40_000, Pause::Yield(4)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !run.is_finished(),
        "{label}: the outage must fall inside the run"
    );
    outage.await;
    let history = run.await.unwrap();
    assert!(
        cache.stats().tiers[1].errors > 0,
        "{label}: the run did meet the outage"
    );
    let slowest = history.slowest();
    println!("{label}: slowest call {slowest:?}");
    assert!(
        slowest < Duration::from_secs(5),
        "{label}: a call took {slowest:?}"
    );
    // A restarted server comes back empty: a miss of what a completed insert wrote is a
    // lost entry, not a stale read. Stale values are still violations.
    check(label, &history, Vec::new(), true);
}

/// Redis is killed in the middle of a run and started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_killed_mid_run_neither_hangs_a_call_nor_breaks_the_history() {
    let mut server = RedisServer::start().unwrap();
    let redis = RedisStore::new(RedisConfig::from_url(server.url()).namespace("killed")).unwrap();
    let outage = async {
        server.stop();
        tokio::time::sleep(Duration::from_millis(700)).await; // an outage, in real time
        server.restart().unwrap();
    };
    through_an_outage("redis/killed", cache_over(redis), outage).await;
}

/// Redis's connection goes silent mid-run (a half-open socket: bytes accepted, no reply):
/// calls time out and report it, and the store replaces the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_connection_stalled_mid_run_neither_hangs_a_call_nor_breaks_the_history() {
    let server = RedisServer::start().unwrap();
    let proxy = TcpProxy::start(([127, 0, 0, 1], server.port()).into()).unwrap();
    let url = format!("redis://127.0.0.1:{}/", proxy.port());
    let redis = RedisStore::new(RedisConfig::from_url(url).namespace("stalled")).unwrap();
    let outage = async { proxy.stall_open_connections() };
    through_an_outage("redis/stalled", cache_over(redis), outage).await;
}

/// Both memcached servers are killed mid-run and started again (empty, as a restarted
/// memcached is). Both: which keys land on which server depends on the servers' ports,
/// so killing one may miss them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memcached_servers_killed_mid_run_neither_hang_a_call_nor_break_the_history() {
    let mut servers = [
        MemcachedServer::start().unwrap(),
        MemcachedServer::start().unwrap(),
    ];
    let addresses: Vec<_> = servers.iter().map(MemcachedServer::address).collect();
    let store = MemcachedStore::new(MemcachedConfig::new(addresses).namespace("killed")).unwrap();
    let outage = async {
        for server in &mut servers {
            server.stop();
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        for server in &mut servers {
            server.restart().unwrap();
        }
    };
    through_an_outage("memcached/killed", cache_over(store), outage).await;
}
