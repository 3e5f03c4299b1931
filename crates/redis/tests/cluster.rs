//! `RedisStore` against a real 3-master Redis Cluster.
#![cfg(feature = "cluster")]

use std::time::Duration;

use bytes::Bytes;
use stratacache::{ByteStore, Cache, Fallback, FrozenClock, Remote};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_testkit::RedisCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_spread_over_the_masters_and_clear_reaches_them_all() {
    let cluster = RedisCluster::start().unwrap();
    let config = |namespace: &str| {
        RedisConfig::cluster(cluster.urls())
            .namespace(namespace)
            .command_timeout(Duration::from_secs(2))
    };
    let redis = RedisStore::new(config("orders")).unwrap();
    let clock = FrozenClock::new();
    let cache: Cache<u64, String> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::remote(Remote::new(redis.clone())))
        .build()
        .unwrap();
    for i in 0..300 {
        cache.insert(i, format!("order {i}")).await.unwrap();
    }
    // Every master holds a share: the client followed the slot map (and any MOVED).
    for node in cluster.nodes() {
        let size: u64 = node.cli(&["DBSIZE"]).unwrap().trim().parse().unwrap();
        assert!(size > 30, "a master holds only {size} of 300 keys");
    }
    let reader: Cache<u64, String> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::remote(Remote::new(
            RedisStore::new(config("orders")).unwrap(),
        )))
        .build()
        .unwrap();
    for i in 0..300 {
        assert_eq!(reader.get(&i).await.unwrap(), Some(format!("order {i}")));
    }
    let other = RedisStore::new(config("other")).unwrap();
    other
        .set("keep", Bytes::from_static(b"1"), None)
        .await
        .unwrap();
    cache.clear().await.unwrap();
    for node in cluster.nodes() {
        let size: u64 = node.cli(&["DBSIZE"]).unwrap().trim().parse().unwrap();
        assert!(
            size <= 1,
            "only the other namespace's key may remain, found {size}"
        );
    }
    assert_eq!(other.get("keep").await.unwrap().as_deref(), Some(&b"1"[..]));
    let values = redis.get_many(&["AQ", "Ag"]).await.unwrap();
    assert_eq!(values, vec![None, None]);
}
