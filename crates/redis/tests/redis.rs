//! `RedisStore` against a real `redis-server` started by the test kit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use stratacache::mock::MockTier;
use stratacache::{
    ByteStore, Cache, CacheEntry, CacheTier, ErrorKind, Fallback, FrozenClock, Remote,
};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_testkit::{RedisServer, TcpProxy};

const SEC: Duration = Duration::from_secs(1);

fn tier(server: &RedisServer, namespace: &str) -> RedisStore {
    RedisStore::new(
        RedisConfig::from_url(server.url())
            .namespace(namespace)
            .command_timeout(Duration::from_millis(200)),
    )
    .unwrap()
}

fn cache_on(clock: &FrozenClock, redis: RedisStore) -> Cache<u64, String> {
    Cache::builder()
        .clock(clock)
        .ttl(60 * SEC)
        .fallback(
            Fallback::remote(Remote::new(redis))
                .name("redis")
                .ttl(600 * SEC),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn values_round_trip_between_two_instances_with_their_age() {
    let server = RedisServer::start().unwrap();
    let clock = FrozenClock::new();
    let writer = cache_on(&clock, tier(&server, "users"));
    let produced = clock.now();
    writer.insert(1, "alice".into()).await.unwrap();

    clock.advance(30 * SEC);
    let reader = cache_on(&clock, tier(&server, "users")); // another process, same Redis
    let entry = reader.get_entry(&1).await.unwrap().unwrap();
    assert_eq!(entry.value(), "alice");
    assert_eq!(
        entry.cached_at(),
        produced,
        "the age travels with the value"
    );
    assert_eq!(reader.stats().tiers[1].hits, 1);
}

#[tokio::test]
async fn server_ttl_is_the_remaining_ttl() {
    let server = RedisServer::start().unwrap();
    let clock = FrozenClock::new();
    let redis = tier(&server, "ttl");
    let origin = MockTier::<u64, String>::new();
    let cache: Cache<u64, String> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::remote(redis.clone()))
        .fallback(Fallback::tier(origin.clone()))
        .build()
        .unwrap();
    origin
        .insert(
            1,
            CacheEntry::new("v".into(), clock.now(), Some(60 * SEC)),
            None,
        )
        .await
        .unwrap();
    clock.advance(20 * SEC);
    assert!(cache.get(&1).await.unwrap().is_some()); // promoted into Redis

    let key = "AQ"; // base64url of postcard(1u64)
    let ttl = redis
        .server_ttl(key)
        .await
        .unwrap()
        .expect("Redis holds a TTL");
    assert!(
        ttl <= 40 * SEC && ttl > 39 * SEC,
        "PX must be the remaining 40 s, was {ttl:?}"
    );

    cache.insert(2, "w".into()).await.unwrap();
    assert_eq!(
        redis.server_ttl("Ag").await.unwrap(),
        None,
        "no TTL configured, none set"
    );
}

#[tokio::test]
async fn namespaces_are_isolated_and_clear_keeps_foreign_keys() {
    let server = RedisServer::start().unwrap();
    let clock = FrozenClock::new();
    let (a, b) = (tier(&server, "a"), tier(&server, "b"));
    a.set("k", Bytes::from_static(b"from a"), None)
        .await
        .unwrap();
    b.set("k", Bytes::from_static(b"from b"), None)
        .await
        .unwrap();
    server.cli(&["SET", "foreign", "keep me"]).unwrap();
    for i in 0..1_200 {
        a.set(&format!("bulk{i}"), Bytes::from_static(b"x"), None)
            .await
            .unwrap();
    }
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"from a"[..]));
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"from b"[..]));

    let cache_a = cache_on(&clock, a.clone());
    cache_a.clear().await.unwrap();
    assert_eq!(a.get("k").await.unwrap(), None);
    assert_eq!(
        a.get("bulk1199").await.unwrap(),
        None,
        "every SCAN page is cleared"
    );
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"from b"[..]));
    assert_eq!(server.cli(&["GET", "foreign"]).unwrap().trim(), "keep me");
}

#[tokio::test]
async fn corrupt_and_foreign_bytes_are_counted_misses_and_deleted() {
    let server = RedisServer::start().unwrap();
    let clock = FrozenClock::new();
    let redis = tier(&server, "bad");
    let good = cache_on(&clock, redis.clone());
    good.insert(1, "valid".into()).await.unwrap();
    let valid = redis.get("AQ").await.unwrap().unwrap();

    let other_schema = Cache::<u64, String>::builder()
        .clock(&clock)
        .fallback(Fallback::remote(
            Remote::new(redis.clone()).schema_version(9),
        ))
        .build()
        .unwrap();
    let mut truncated = valid.to_vec();
    truncated.truncate(10);
    let mut bad_payload = valid.to_vec();
    bad_payload.truncate(valid.len() - 2);
    bad_payload.push(0xff);
    let mut trailing = valid.to_vec();
    trailing.extend_from_slice(b"trailing garbage");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\x01 not an envelope".to_vec()),
        ("json", br#"{"name":"alice"}"#.to_vec()),
        ("truncated", truncated),
        ("bad payload", bad_payload),
        ("a good envelope with trailing bytes", trailing),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        // A raw SET: the bytes reach Redis as they are, past every codec.
        redis.set("AQ", Bytes::from(bytes), None).await.unwrap();
        let reader = cache_on(&clock, redis.clone());
        assert_eq!(
            reader.get(&1).await.unwrap(),
            None,
            "{what}: a miss, not a panic"
        );
        assert_eq!(reader.stats().tiers[1].errors, 1, "{what}: counted");
        assert_eq!(
            redis.get("AQ").await.unwrap(),
            None,
            "{what}: deleted from Redis"
        );
    }

    // Bytes another program wrote with redis-cli.
    server
        .cli(&["SET", "bad:AQ", "written by someone else"])
        .unwrap();
    assert_eq!(cache_on(&clock, redis.clone()).get(&1).await.unwrap(), None);
    assert_eq!(server.cli(&["EXISTS", "bad:AQ"]).unwrap().trim(), "0");

    // Another schema version: a miss for the reader, then its loader repopulates.
    redis.set("AQ", valid.clone(), None).await.unwrap();
    let loaded = other_schema
        .get_or_insert(&1, || async { "reloaded".to_string() })
        .await
        .unwrap();
    assert_eq!(loaded, "reloaded");
    assert_eq!(other_schema.stats().loads, 1);

    // Strict caches read bad bytes as misses too.
    let strict = Cache::<u64, String>::builder()
        .strict(true)
        .fallback(Fallback::remote(Remote::new(redis.clone())))
        .build()
        .unwrap();
    redis
        .set("AQ", Bytes::from_static(b"junk"), None)
        .await
        .unwrap();
    assert_eq!(strict.get(&1).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_fails_fast_and_is_used_again_after_restart() {
    let mut server = RedisServer::start().unwrap();
    let clock = FrozenClock::new();
    let redis = tier(&server, "restart");
    let cache = cache_on(&clock, redis.clone());
    let strict = Cache::<u64, String>::builder()
        .clock(&clock)
        .strict(true)
        .memory(|l1| l1.max_capacity(0))
        .fallback(Fallback::remote(Remote::new(redis.clone())))
        .build()
        .unwrap();
    cache.insert(1, "before".into()).await.unwrap();

    server.stop();
    for key in [2_u64, 3, 4] {
        let started = Instant::now();
        assert_eq!(cache.get(&key).await.unwrap(), None, "degrades to a miss");
        assert!(
            // The timeout is 200 ms; a hang would never return. Ten times the timeout
            // holds on a loaded two-core machine.
            started.elapsed() < Duration::from_secs(2),
            "bounded by the timeout: {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        let error = strict.get(&key).await.unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::Timeout | ErrorKind::Unavailable),
            "{error}"
        );
        assert!(
            // The timeout is 200 ms; a hang would never return. Ten times the timeout
            // holds on a loaded two-core machine.
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("before"),
        "L1 still serves"
    );
    let loaded = cache
        .get_or_insert(&5, || async { "loaded".to_string() })
        .await
        .unwrap();
    assert_eq!(
        loaded, "loaded",
        "the loader's value reaches the caller while Redis is down"
    );
    assert!(cache.stats().tiers[1].errors >= 4);

    server.restart().unwrap();
    // The same cache, not rebuilt, uses Redis again once it is back.
    let mut recovered = false;
    for _ in 0..50 {
        if cache.insert(6, "after".into()).await.is_ok()
            && redis.get("Bg").await.is_ok_and(|v| v.is_some())
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // reconnect back-off is real time
    }
    assert!(recovered, "the tier reconnects by itself");
    let other = cache_on(&clock, redis.clone());
    assert_eq!(other.get(&6).await.unwrap().as_deref(), Some("after"));
}

/// A socket that stays open while replies stop (a vanished host, a stuck proxy) is never
/// noticed by the connection itself; after `reconnect_after_timeouts` timeouts in a row
/// the tier makes a new connection and is answered again.
#[tokio::test]
async fn a_connection_that_stops_answering_is_replaced_after_timeouts_in_a_row() {
    let server = RedisServer::start().unwrap();
    let proxy = TcpProxy::start(([127, 0, 0, 1], server.port()).into()).unwrap();
    let limit = Duration::from_millis(100);
    let tier = |reconnect_after| {
        RedisStore::new(
            RedisConfig::new("127.0.0.1", proxy.port())
                .namespace("halfopen")
                .command_timeout(limit)
                .reconnect_after_timeouts(reconnect_after),
        )
        .unwrap()
    };
    let (replacing, keeping) = (tier(3), tier(0));
    for store in [&replacing, &keeping] {
        store
            .set("k", Bytes::from_static(b"v"), None)
            .await
            .unwrap();
    }
    assert_eq!(proxy.accepted(), 2);

    proxy.stall_open_connections();
    for attempt in 1..=3 {
        for store in [&replacing, &keeping] {
            let started = Instant::now();
            let error = store.get("k").await.unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Timeout, "attempt {attempt}");
            assert!(
                started.elapsed() < limit * 5,
                "bounded by the command timeout"
            );
        }
    }

    assert_eq!(
        replacing.get("k").await.unwrap(),
        Some(Bytes::from_static(b"v")),
        "answered on a new connection"
    );
    assert_eq!(proxy.accepted(), 3, "exactly one new connection");
    let error = keeping.get("k").await.unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::Timeout,
        "with replacement off, the silent connection is kept"
    );
}

#[test]
fn outside_a_runtime_new_is_an_error_not_a_panic() {
    let error = RedisStore::new(RedisConfig::from_url("redis://127.0.0.1:1/")).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn batches_are_pipelined_and_oversized_keys_are_safe() {
    let server = RedisServer::start().unwrap();
    let redis = tier(&server, "batch");
    let items: Vec<(String, Bytes, Option<Duration>)> = (0..100)
        .map(|i| {
            (
                format!("k{i}"),
                Bytes::from(format!("v{i}")),
                Some(60 * SEC),
            )
        })
        .collect();
    let borrowed: Vec<(&str, Bytes, Option<Duration>)> = items
        .iter()
        .map(|(k, v, t)| (k.as_str(), v.clone(), *t))
        .collect();
    redis.set_many(&borrowed).await.unwrap();
    let keys: Vec<&str> = items
        .iter()
        .map(|(k, _, _)| k.as_str())
        .chain(["missing"])
        .collect();
    server.cli(&["CONFIG", "RESETSTAT"]).unwrap();
    let values = redis.get_many(&keys).await.unwrap();
    assert_eq!(values.len(), 101);
    assert_eq!(values[42].as_deref(), Some(&b"v42"[..]));
    assert_eq!(values[100], None);
    // One command for the whole batch, not one per key.
    let stats = server.cli(&["INFO", "commandstats"]).unwrap();
    assert!(stats.contains("cmdstat_mget:calls=1,"), "{stats}");
    assert!(!stats.contains("cmdstat_get:"), "{stats}");

    let clock = FrozenClock::new();
    let cache: Cache<String, String> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::remote(Remote::new(redis)))
        .build()
        .unwrap();
    let hostile = format!("{} \r\n*\0{}", "x".repeat(10_000), "ü");
    cache.insert(hostile.clone(), "ok".into()).await.unwrap();
    let fresh: Cache<String, String> = Cache::builder()
        .clock(&clock)
        .fallback(Fallback::remote(Remote::new(tier(&server, "batch"))))
        .build()
        .unwrap();
    assert_eq!(fresh.get(&hostile).await.unwrap().as_deref(), Some("ok"));
}

/// The common set-up (memory L1, Redis L2, one writer): Redis always holds a copy as old
/// as L1's, so a refresh that only looks for a newer copy never refreshes. With a loader
/// on the cache, time-to-refresh reads the source and both tiers get the new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_refresh_over_redis_reads_through_the_cache_loader() {
    let server = RedisServer::start().unwrap();
    let clock = FrozenClock::new();
    let version = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
    let source = std::sync::Arc::clone(&version);
    let cache: Cache<u64, String> = Cache::builder()
        .clock(&clock)
        .ttl(60 * SEC)
        .loader(move |id: u64| {
            let version = source.load(std::sync::atomic::Ordering::SeqCst);
            async move { Ok::<_, std::io::Error>(Some(format!("{id} v{version}"))) }
        })
        .time_to_refresh(stratacache::TimeToRefresh::new(20 * SEC))
        .fallback(Fallback::remote(tier(&server, "refresh")).ttl(600 * SEC))
        .build()
        .unwrap();
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("1 v1"));
    version.store(2, std::sync::atomic::Ordering::SeqCst); // the source changes

    clock.advance(20 * SEC);
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("1 v1"),
        "stale: served at once"
    );
    let mut seen = None;
    for _ in 0..1_000 {
        seen = cache.get(&1).await.unwrap();
        if seen.as_deref() == Some("1 v2") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // the refresh runs on tokio
    }
    assert_eq!(
        seen.as_deref(),
        Some("1 v2"),
        "refreshed through the loader"
    );
    let other = cache_on(&clock, tier(&server, "refresh"));
    assert_eq!(
        other.get(&1).await.unwrap().as_deref(),
        Some("1 v2"),
        "and Redis holds the refreshed value"
    );
    assert_eq!(cache.stats().loads, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_starts_while_redis_is_down_and_uses_it_once_it_is_up() {
    let mut server = RedisServer::start().unwrap();
    server.stop();
    let config = RedisConfig::from_url(server.url())
        .namespace("lazy")
        .command_timeout(Duration::from_millis(200));
    // Nothing connects yet: the store and the cache build with Redis down.
    let store = RedisStore::new(config.clone()).unwrap();
    let cache: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(Remote::new(store)))
        .build()
        .unwrap();
    assert_eq!(cache.get(&1).await.unwrap(), None, "a miss, not an error");
    assert!(cache.stats().tiers[1].errors >= 1);

    server.restart().unwrap();
    // The first write after the restart connects (an attempt that raced the restart
    // may still fail: that write waits in the recovery queue).
    let restarted = Instant::now();
    loop {
        let outcome = cache.insert(1, "up".into()).await.unwrap();
        if outcome.is_complete() {
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(2),
            "Redis still unused {:?} after it came back: {outcome:?}",
            restarted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(Remote::new(
            RedisStore::new(config).unwrap(),
        )))
        .build()
        .unwrap();
    assert_eq!(other.get(&1).await.unwrap().as_deref(), Some("up"));
}

#[tokio::test]
async fn the_store_reports_its_namespace_for_encryption_to_bind() {
    // No server needed: the store connects lazily.
    let store =
        RedisStore::new(RedisConfig::from_url("redis://127.0.0.1:1/").namespace("users")).unwrap();
    assert_eq!(store.namespace(), "users");
}

/// A raw connection of the test's own, to look at and act on the server.
async fn admin(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn connections_received(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(admin)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("total_connections_received")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_is_replaced_within_the_same_call() {
    let server = RedisServer::start().unwrap();
    let tier = tier(&server, "killed");
    tier.set("k", Bytes::from_static(b"v"), None).await.unwrap();
    let mut admin = admin(&server).await;
    // Every client but this one: the store's connection is closed under it.
    let killed: u64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(killed, 1, "the store's one connection");
    // The call finds its connection closed, opens a new one and is made again.
    assert_eq!(tier.get("k").await.unwrap(), Some(Bytes::from_static(b"v")));
    assert_eq!(tier.get("k").await.unwrap(), Some(Bytes::from_static(b"v")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_calls_open_one_connection() {
    let server = RedisServer::start().unwrap();
    let mut admin = admin(&server).await;
    let before = connections_received(&mut admin).await;
    let tier = std::sync::Arc::new(tier(&server, "first"));
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let tier = std::sync::Arc::clone(&tier);
            tokio::spawn(async move { tier.get(&format!("k{i}")).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), None);
    }
    assert_eq!(
        connections_received(&mut admin).await - before,
        1,
        "200 concurrent first calls shared one attempt to connect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_is_unavailable_not_a_hard_error() {
    let server = RedisServer::start().unwrap();
    let tier = tier(&server, "loading");
    tier.set("k", Bytes::from_static(b"v"), None).await.unwrap();
    let mut admin = admin(&server).await;
    // A replica refuses writes with `READONLY`, as a master demoted by a failover does.
    let _: () = redis::cmd("REPLICAOF")
        .arg(&["127.0.0.1", "1"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    let error = tier
        .set("k", Bytes::from_static(b"w"), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert!(error.is_transient());
    let _: () = redis::cmd("REPLICAOF")
        .arg(&["NO", "ONE"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    tier.set("k", Bytes::from_static(b"w"), None).await.unwrap();
}

#[tokio::test]
async fn set_if_greater_keeps_the_greater_bytes_in_one_step_on_the_server() {
    let server = RedisServer::start().unwrap();
    let redis = tier(&server, "register");
    let set = |bytes: &'static [u8], ttl| redis.set_if_greater("r", Bytes::from_static(bytes), ttl);
    set(b"\x01\x00", Some(60 * SEC)).await.unwrap();
    // Byte order, not the server's collation: 0x00 sorts first, 0xff last.
    set(b"\x00\xff", None).await.unwrap();
    assert_eq!(
        redis.get("r").await.unwrap().as_deref(),
        Some(&b"\x01\x00"[..])
    );
    set(b"\x01\x00", None).await.unwrap(); // equal: kept as it is, with its TTL
    let ttl = redis
        .server_ttl("r")
        .await
        .unwrap()
        .expect("the first TTL stands");
    assert!(ttl > 59 * SEC, "{ttl:?}");
    set(b"\x01\x00\x00", None).await.unwrap(); // a longer value with the same start
    assert_eq!(
        redis.get("r").await.unwrap().as_deref(),
        Some(&b"\x01\x00\x00"[..])
    );
    assert_eq!(
        redis.server_ttl("r").await.unwrap(),
        None,
        "no TTL asked, none set"
    );
    set(b"\xff", Some(SEC)).await.unwrap();
    let ttl = redis.server_ttl("r").await.unwrap().expect("a TTL");
    assert!(ttl <= SEC && ttl > SEC / 2, "{ttl:?}");

    // Many writers racing: the greatest value stands, whatever the order they land in.
    redis.delete("race").await.unwrap();
    let writes = (0..64_u16).map(|n| {
        let redis = redis.clone();
        tokio::spawn(async move {
            let value = Bytes::copy_from_slice(&((n * 37) % 64).to_be_bytes());
            redis.set_if_greater("race", value, None).await
        })
    });
    for write in futures::future::join_all(writes).await {
        write.unwrap().unwrap();
    }
    assert_eq!(
        redis.get("race").await.unwrap().as_deref(),
        Some(&63_u16.to_be_bytes()[..])
    );
}

#[tokio::test]
async fn a_ttl_past_what_redis_holds_and_an_empty_batch_are_taken() {
    let server = RedisServer::start().unwrap();
    let redis = tier(&server, "edges");
    let value = || Bytes::from_static(b"v");
    redis
        .set("long", value(), Some(Duration::MAX))
        .await
        .unwrap();
    redis
        .set_if_greater("long", Bytes::from_static(b"w"), Some(Duration::MAX))
        .await
        .unwrap();
    let ttl = redis
        .server_ttl("long")
        .await
        .unwrap()
        .expect("a TTL, cut short");
    assert!(
        ttl > Duration::from_secs(1_000_000 * 365 * 24 * 3600),
        "{ttl:?}"
    );
    redis.set_many(&[]).await.unwrap();
    assert_eq!(
        redis.get_many(&[]).await.unwrap(),
        Vec::<Option<Bytes>>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_is_not_dialled_by_every_command() {
    // Accepts and hangs up at once: every attempt to connect fails, fast.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dials = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&dials);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let redis = RedisStore::new(
        RedisConfig::new("127.0.0.1", port).command_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    let began = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let redis = redis.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    assert!(redis.get("k").await.is_err());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let (dials, took) = (dials.load(Ordering::SeqCst), began.elapsed());
    // One attempt per 100 ms at most (and the one under way when that ends).
    let most = 2 * (took.as_millis() / 100 + 1);
    assert!(
        (dials as u128) <= most,
        "{dials} attempts in {took:?} from 1,280 commands"
    );
}

#[tokio::test]
async fn timeouts_of_duration_max_are_taken_as_a_day() {
    let server = RedisServer::start().unwrap();
    let store = RedisStore::new(
        RedisConfig::from_url(server.url())
            .namespace("forever")
            .connect_timeout(Duration::MAX)
            .command_timeout(Duration::MAX),
    )
    .unwrap();
    store
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    assert_eq!(
        store.get("k").await.unwrap(),
        Some(Bytes::from_static(b"v"))
    );
}

#[tokio::test]
async fn set_unless_within_compares_each_bound_s_length_byte_by_byte() {
    let server = RedisServer::start().unwrap();
    let store = tier(&server, "bounded");
    let set = |value: &'static [u8], after: &'static [u8], up_to: &'static [u8]| {
        store.set_unless_within("k", Bytes::from_static(value), None, after, up_to)
    };
    assert!(
        set(b"\x05 first", b"\x05", b"\x09").await.unwrap(),
        "absent"
    );
    assert!(
        !set(b"\x03 late", b"\x04", b"\x09").await.unwrap(),
        "within"
    );
    assert!(
        set(b"\x05 again", b"\x05", b"\x09").await.unwrap(),
        "an equal head"
    );
    assert!(
        set(b"\x01 far", b"\x02", b"\x04").await.unwrap(),
        "\\x05 is past \\x04"
    );
    // Byte order, not the server's collation: 0xff sorts after 0x7f.
    assert!(set(b"\xff high", b"\xff", b"\xff").await.unwrap());
    assert!(!set(b"\x7f low", b"\x7f\xff", b"\xff\xff").await.unwrap());
    store
        .set("k", Bytes::from_static(b"\x01"), None)
        .await
        .unwrap();
    assert!(
        set(b"\x02 longer", b"\x01\x00", b"\x09").await.unwrap(),
        "what is there is shorter than the bound, and a prefix of it: it sorts before"
    );
    assert_eq!(
        store.get("k").await.unwrap(),
        Some(Bytes::from_static(b"\x02 longer"))
    );
}

#[tokio::test]
async fn a_fill_equal_to_a_large_stored_value_does_not_block_the_server() {
    let server = RedisServer::start().unwrap();
    let store = tier(&server, "large"); // 200 ms per command
    let large = Bytes::from(vec![7_u8; 16 << 20]);
    store.set("k", large.clone(), None).await.unwrap();
    // Two instances filling one entry send equal bytes: compared byte by byte in Lua, 16
    // MiB kept the server busy past the timeout.
    assert!(!store.set_if_greater("k", large, None).await.unwrap());
}

#[tokio::test]
async fn conditional_sets_go_by_their_sha_and_resend_the_script_to_a_server_without_it() {
    let server = RedisServer::start().unwrap();
    let store = tier(&server, "scripts");
    let calls = |command: &str| -> u64 {
        let stats = server.cli(&["INFO", "commandstats"]).unwrap();
        stats
            .lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap())
    };
    for n in 1..=3_u8 {
        assert!(
            store
                .set_if_greater("k", Bytes::from(vec![n]), None)
                .await
                .unwrap()
        );
    }
    assert_eq!(calls("eval"), 1, "the script's text went once");
    assert_eq!(calls("evalsha"), 3, "then by its SHA-1");
    server.cli(&["SCRIPT", "FLUSH"]).unwrap();
    assert!(
        store
            .set_if_greater("k", Bytes::from_static(&[9]), None)
            .await
            .unwrap()
    );
    assert_eq!(calls("eval"), 2, "sent again to a server that lost it");
}
