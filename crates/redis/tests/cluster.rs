//! `RedisStore` against a real 3-master Redis Cluster.
#![cfg(feature = "cluster")]

use std::time::Duration;

use bytes::Bytes;
use stratacache::{ByteStore, Cache, Fallback, FrozenClock, Remote};
use stratacache_redis::{RedisBackplane, RedisConfig, RedisStore};
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

    // The compare-and-set script runs on the master of its key's slot, for any key.
    for key in ["a", "b", "c", "d", "e", "f"] {
        for value in [&b"\x02"[..], b"\x01", b"\x03"] {
            let value = Bytes::copy_from_slice(value);
            redis.set_if_greater(key, value, None).await.unwrap();
        }
        assert_eq!(redis.get(key).await.unwrap().as_deref(), Some(&b"\x03"[..]));
    }
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let (every, within) = (Duration::from_millis(5), Duration::from_secs(20));
    stratacache_testkit::until(what, every, within, done).await;
}

/// How many subscribers each node counts on the shard channel.
fn shard_subscribers(cluster: &RedisCluster, channel: &str) -> Vec<u64> {
    cluster
        .nodes()
        .iter()
        .map(|node| {
            let answer = node.cli(&["PUBSUB", "SHARDNUMSUB", channel]).unwrap();
            answer
                .lines()
                .nth(1)
                .unwrap_or("0")
                .trim()
                .parse()
                .unwrap_or(0)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backplane_runs_on_one_shard_and_survives_a_dropped_connection() {
    let cluster = RedisCluster::start().unwrap();
    let config = RedisConfig::cluster(cluster.urls())
        .namespace("replicas")
        .command_timeout(Duration::from_secs(1));
    let replica = || {
        Cache::<u64, String>::builder()
            .fallback(Fallback::remote(Remote::new(
                RedisStore::new(config.clone()).unwrap(),
            )))
            .backplane(RedisBackplane::new(config.clone()).unwrap())
            .build()
            .unwrap()
    };
    let (a, b) = (replica(), replica());
    let channel = "replicas:backplane";
    until("both subscribed", || {
        shard_subscribers(&cluster, channel).iter().sum::<u64>() == 2
    })
    .await;
    let counts = shard_subscribers(&cluster, channel);
    assert_eq!(
        counts.iter().filter(|count| **count > 0).count(),
        1,
        "one shard carries the channel: {counts:?}"
    );

    a.insert(1, "old".into()).await.unwrap();
    until("b heard the write", || b.stats().backplane_received == 1).await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("old"));
    a.insert(1, "new".into()).await.unwrap();
    until("b heard the second write", || {
        b.stats().backplane_received == 2
    })
    .await;
    assert_eq!(
        b.get(&1).await.unwrap().as_deref(),
        Some("new"),
        "b's L1 copy was dropped"
    );

    // The shard drops the subscribers' connections: a gap, then a new subscription.
    let shard = counts.iter().position(|count| *count > 0).unwrap();
    cluster.nodes()[shard]
        .cli(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .unwrap();
    until("b noticed the gap", || b.stats().backplane_gaps >= 1).await;
    until("both subscribed again", || {
        shard_subscribers(&cluster, channel).iter().sum::<u64>() >= 2
    })
    .await;
    let heard = b.stats().backplane_received;
    a.insert(1, "newer".into()).await.unwrap();
    until("b heard the write after the gap", || {
        b.stats().backplane_received > heard
    })
    .await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("newer"));
}

/// The node (index) whose `CLUSTER NODES` line says it holds `slot`, and every node's id.
fn owner_of(cluster: &RedisCluster, slot: u16) -> (usize, Vec<String>) {
    let ids: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|node| node.cli(&["CLUSTER", "MYID"]).unwrap().trim().to_string())
        .collect();
    let owner = cluster
        .nodes()
        .iter()
        .position(|node| {
            let count: u64 = node
                .cli(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()])
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            count > 0
        })
        .expect("some node holds the key");
    (owner, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_follow_a_slot_moved_mid_test_ask_then_moved() {
    let cluster = RedisCluster::start().unwrap();
    let config = RedisConfig::cluster(cluster.urls())
        .namespace("moving")
        .command_timeout(Duration::from_secs(2));
    let store = RedisStore::new(config).unwrap();
    // The key as stored: the namespace, then the base64url of postcard(1u64).
    let key = "moving:AQ";
    store
        .set("AQ", Bytes::from_static(b"before"), None)
        .await
        .unwrap();
    let slot: u16 = cluster.nodes()[0]
        .cli(&["CLUSTER", "KEYSLOT", key])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (source, ids) = owner_of(&cluster, slot);
    let target = (source + 1) % ids.len();
    let (source_node, target_node) = (&cluster.nodes()[source], &cluster.nodes()[target]);
    let slot_text = slot.to_string();

    // Migration under way: the key moved, the slot not yet. The source answers ASK.
    target_node
        .cli(&["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &ids[source]])
        .unwrap();
    source_node
        .cli(&["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &ids[target]])
        .unwrap();
    let migrated = source_node
        .cli(&[
            "MIGRATE",
            "127.0.0.1",
            &target_node.port().to_string(),
            "",
            "0",
            "5000",
            "KEYS",
            key,
        ])
        .unwrap();
    assert!(migrated.contains("OK"), "{migrated}");
    assert_eq!(
        store.get("AQ").await.unwrap().as_deref(),
        Some(&b"before"[..]),
        "the client followed ASK to the importing node"
    );

    // The slot now belongs to the target everywhere: the client's map is stale, MOVED.
    for node in cluster.nodes() {
        node.cli(&["CLUSTER", "SETSLOT", &slot_text, "NODE", &ids[target]])
            .unwrap();
    }
    store
        .set("AQ", Bytes::from_static(b"after"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get("AQ").await.unwrap().as_deref(),
        Some(&b"after"[..])
    );
    let on_target = target_node.cli(&["GET", key]).unwrap();
    assert!(
        on_target.contains("after"),
        "the write reached the new owner: {on_target}"
    );
    let on_source: u64 = source_node
        .cli(&["DBSIZE"])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(on_source, 0, "nothing was written to the old owner");
}
