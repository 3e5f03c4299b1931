//! `MemcachedStore` against real `memcached` processes started by the test kit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use stratacache::{ByteStore, Cache, ErrorKind, Fallback, FrozenClock, InsertPolicy, Remote};
use stratacache_memcached::{MemcachedConfig, MemcachedStore};
use stratacache_testkit::MemcachedServer;

const SEC: Duration = Duration::from_secs(1);

fn config(servers: &[&MemcachedServer]) -> MemcachedConfig {
    MemcachedConfig::new(servers.iter().map(|server| server.address()))
        .command_timeout(Duration::from_millis(200))
        .connect_timeout(Duration::from_millis(200))
}

fn cache_over(clock: &FrozenClock, tier: MemcachedStore) -> Cache<String, String> {
    Cache::builder()
        .clock(clock)
        .ttl(60 * SEC)
        .fallback(
            Fallback::remote(Remote::new(tier))
                .name("memcached")
                .ttl(600 * SEC),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn values_round_trip_with_their_age() {
    let server = MemcachedServer::start().unwrap();
    let clock = FrozenClock::new();
    let writer = cache_over(
        &clock,
        MemcachedStore::new(config(&[&server]).namespace("users")).unwrap(),
    );
    let produced = clock.now();
    writer.insert("alice".into(), "Alice".into()).await.unwrap();
    clock.advance(10 * SEC);
    let reader = cache_over(
        &clock,
        MemcachedStore::new(config(&[&server]).namespace("users")).unwrap(),
    );
    let entry = reader
        .get_entry(&"alice".to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entry.value(), "Alice");
    assert_eq!(entry.cached_at(), produced);
}

#[tokio::test]
async fn the_server_holds_the_ttl() {
    let server = MemcachedServer::start().unwrap();
    let tier = MemcachedStore::new(config(&[&server])).unwrap();
    tier.set(
        "short",
        Bytes::from_static(b"v"),
        Some(Duration::from_millis(45_200)),
    )
    .await
    .unwrap();
    tier.set("forever", Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    let ttl = tier.server_ttl("short").await.unwrap().unwrap();
    assert!(
        ttl <= 46 * SEC && ttl >= 45 * SEC,
        "rounded up to whole seconds: {ttl:?}"
    );
    assert_eq!(tier.server_ttl("forever").await.unwrap(), None);
}

/// memcached reads a TTL over 30 days as an absolute Unix time, and answers `HD` but
/// keeps nothing for one past 2038: such TTLs (`Duration::MAX` too) are clamped to the
/// last second it can express, and the value is stored.
#[tokio::test]
async fn ttls_past_2038_are_clamped_and_the_value_is_stored() {
    let server = MemcachedServer::start().unwrap();
    let tier = MemcachedStore::new(config(&[&server])).unwrap();
    let day = 24 * 3600 * SEC;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let until_2038 = Duration::from_secs(2_147_483_647).saturating_sub(now);
    for (key, ttl) in [
        ("max", Duration::MAX),
        ("twelve-years", 12 * 365 * day),
        (
            "thirty-days-and-a-millisecond",
            30 * day + Duration::from_millis(1),
        ),
    ] {
        tier.set(key, Bytes::from_static(b"v"), Some(ttl))
            .await
            .unwrap();
        assert_eq!(
            tier.get(key).await.unwrap().as_deref(),
            Some(&b"v"[..]),
            "{key}"
        );
        let held = tier.server_ttl(key).await.unwrap().unwrap();
        assert!(held >= 29 * day, "{key}: {held:?}");
        // A few seconds of slack: memcached's clock ticks once a second.
        assert!(
            held <= ttl.min(until_2038.max(30 * day)) + 5 * SEC,
            "{key}: {held:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_share_ten_thousand_keys_and_batches_span_them() {
    let servers: Vec<_> = (0..3).map(|_| MemcachedServer::start().unwrap()).collect();
    let refs: Vec<&MemcachedServer> = servers.iter().collect();
    let tier = MemcachedStore::new(config(&refs).max_connections(8)).unwrap();
    let keys: Vec<String> = (0..10_000).map(|i| format!("key-{i}")).collect();
    for chunk in keys.chunks(500) {
        let writes = chunk
            .iter()
            .map(|key| tier.set(key, Bytes::from(key.clone()), None));
        futures::future::try_join_all(writes).await.unwrap();
    }
    for server in &servers {
        let share = stat(server, "curr_items");
        assert!(
            (2_000..=4_800).contains(&share),
            "a server holds {share} of 10000 keys"
        );
    }
    let some: Vec<&str> = keys
        .iter()
        .step_by(97)
        .map(String::as_str)
        .chain(["absent"])
        .collect();
    let values = tier.get_many(&some).await.unwrap();
    assert!(
        values[..values.len() - 1]
            .iter()
            .zip(&some)
            .all(|(value, key)| value.as_deref() == Some(key.as_bytes()))
    );
    assert_eq!(values.last().unwrap(), &None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_fails_its_keys_fast_and_the_others_keep_serving() {
    let mut servers: Vec<_> = (0..3).map(|_| MemcachedServer::start().unwrap()).collect();
    let refs: Vec<&MemcachedServer> = servers.iter().collect();
    let tier = MemcachedStore::new(config(&refs)).unwrap();
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    for key in &keys {
        tier.set(key, Bytes::from(key.clone()), None).await.unwrap();
    }
    let dead_address = servers[1].address();
    servers[1].stop();
    let (mut served, mut failed) = (0, 0);
    for key in &keys {
        let started = Instant::now();
        match tier.get(key).await {
            Ok(value) => {
                assert_eq!(value.as_deref(), Some(key.as_bytes()));
                served += 1;
            }
            Err(error) => {
                assert!(error.is_transient(), "{error}");
                assert!(
                    // 200 ms timeouts; ten times that holds on a loaded machine, and a
                    // hang never returns at all.
                    started.elapsed() < Duration::from_secs(2),
                    "{:?}",
                    started.elapsed()
                );
                failed += 1;
            }
        }
    }
    assert!(
        served > 100 && failed > 50,
        "served {served}, failed {failed}"
    );
    assert!(
        keys.iter()
            .any(|key| tier.server_for(key) == Some(dead_address.as_str()))
    );

    servers[1].restart().unwrap();
    let mut back = false;
    for _ in 0..50 {
        let probe = keys
            .iter()
            .find(|key| tier.server_for(key) == Some(dead_address.as_str()))
            .unwrap();
        if tier
            .set(probe, Bytes::from_static(b"again"), None)
            .await
            .is_ok()
        {
            back = tier.get(probe).await.unwrap().as_deref() == Some(&b"again"[..]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the restarted server is used again");
}

#[tokio::test]
async fn with_a_failure_limit_a_dead_servers_keys_move_to_the_next_server() {
    let mut servers: Vec<_> = (0..2).map(|_| MemcachedServer::start().unwrap()).collect();
    let refs: Vec<&MemcachedServer> = servers.iter().collect();
    let tier =
        MemcachedStore::new(config(&refs).failure_limit(1).retry_down_after(60 * SEC)).unwrap();
    let key = (0..100)
        .map(|i| format!("k{i}"))
        .find(|key| tier.server_for(key) == Some(&servers[0].address()))
        .unwrap();
    servers[0].stop();
    assert!(
        tier.set(&key, Bytes::from_static(b"v"), None)
            .await
            .is_err(),
        "the first failure is reported"
    );
    tier.set(&key, Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    assert_eq!(tier.server_for(&key), Some(servers[1].address().as_str()));
    assert_eq!(tier.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn oversized_values_are_rejected_before_sending() {
    let server = MemcachedServer::start().unwrap();
    let clock = FrozenClock::new();
    let tier = MemcachedStore::new(config(&[&server])).unwrap();
    let error = tier
        .set("big", Bytes::from(vec![0; 2 * 1024 * 1024]), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    let strict: Cache<String, String> = Cache::builder()
        .clock(&clock)
        .strict(true)
        .fallback(Fallback::remote(Remote::new(tier)))
        .build()
        .unwrap();
    let error = strict
        .insert("big".into(), "x".repeat(2 * 1024 * 1024))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Rejected);
    // The value never crossed the wire. The cache then removed any older copy of the key:
    // a tombstone of a few bytes, beside the server's namespace generation.
    assert!(
        stat(&server, "bytes") < 1_024,
        "{} bytes stored: the value was sent",
        stat(&server, "bytes")
    );
    assert_eq!(strict.get("big").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_value_over_the_limit_fails_its_own_read_not_the_connection() {
    let server = MemcachedServer::start().unwrap();
    // A writer that takes larger values than the reader does (a foreign one, say).
    let writer = MemcachedStore::new(config(&[&server])).unwrap();
    let reader = std::sync::Arc::new(
        MemcachedStore::new(config(&[&server]).max_value_size(1_000).max_connections(1)).unwrap(),
    );
    writer
        .set("big", Bytes::from(vec![7; 50_000]), None)
        .await
        .unwrap();
    writer
        .set("small", Bytes::from_static(b"s"), None)
        .await
        .unwrap();
    reader.get("small").await.unwrap(); // the one connection is open
    let connections = stat(&server, "total_connections");
    // Reads of both at once, pipelined on the one connection.
    let reads: Vec<_> = (0..20)
        .map(|n| {
            let reader = std::sync::Arc::clone(&reader);
            tokio::spawn(async move {
                let key = if n % 2 == 0 { "big" } else { "small" };
                (key, reader.get(key).await)
            })
        })
        .collect();
    for read in reads {
        match read.await.unwrap() {
            ("big", answer) => assert_eq!(answer.unwrap_err().kind(), ErrorKind::Codec),
            (_, answer) => assert_eq!(answer.unwrap().as_deref(), Some(&b"s"[..])),
        }
    }
    assert_eq!(
        stat(&server, "total_connections"),
        connections + 1, // this `stats` read's own
        "no connection was broken and replaced"
    );
    // In a batch, it is absent; the other keys are read.
    let batch = reader.get_many(&["big", "small"]).await.unwrap();
    assert_eq!(batch, vec![None, Some(Bytes::from_static(b"s"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_planted_under_the_generation_key_are_replaced_by_one_new_generation() {
    let server = MemcachedServer::start().unwrap();
    let mut raw = TcpStream::connect(server.address()).unwrap();
    raw.write_all(b"set stratacache:generation 0 0 7\r\ngarbage\r\n")
        .unwrap();
    let mut stored = [0; 8];
    raw.read_exact(&mut stored).unwrap();
    assert_eq!(&stored, b"STORED\r\n");
    // Fresh clients, at once: they agree on one new generation, and work.
    let stores: Vec<_> = (0..4)
        .map(|_| std::sync::Arc::new(MemcachedStore::new(config(&[&server])).unwrap()))
        .collect();
    let writes = stores.iter().enumerate().map(|(n, store)| {
        let store = std::sync::Arc::clone(store);
        tokio::spawn(async move {
            store
                .set(&format!("k{n}"), Bytes::from_static(b"v"), None)
                .await
        })
    });
    for write in futures::future::join_all(writes).await {
        write.unwrap().unwrap();
    }
    for store in &stores {
        for n in 0..stores.len() {
            let value = store.get(&format!("k{n}")).await.unwrap();
            assert_eq!(
                value.as_deref(),
                Some(&b"v"[..]),
                "every client reads every key"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_first_calls_find_connections_that_work() {
    let mut server = MemcachedServer::start().unwrap();
    let tier = std::sync::Arc::new(MemcachedStore::new(config(&[&server])).unwrap());
    // Several idle connections: concurrent calls opened them.
    let calls = (0..32).map(|n| {
        let tier = std::sync::Arc::clone(&tier);
        tokio::spawn(async move {
            tier.set(&format!("k{n}"), Bytes::from_static(b"v"), None)
                .await
        })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    server.stop();
    server.restart().unwrap();
    // The connections' tasks saw the server close them while idle.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let calls = (0..32).map(|n| {
        let tier = std::sync::Arc::clone(&tier);
        tokio::spawn(async move {
            tier.set(&format!("k{n}"), Bytes::from_static(b"w"), None)
                .await
        })
    });
    for call in futures::future::join_all(calls).await {
        call.unwrap()
            .expect("no call is the one to find its connection closed");
    }
}

#[tokio::test]
async fn hostile_keys_round_trip() {
    let server = MemcachedServer::start().unwrap();
    let clock = FrozenClock::new();
    let writer = cache_over(&clock, MemcachedStore::new(config(&[&server])).unwrap());
    let hostile = [
        "has spaces in it".to_string(),
        "line\r\nbreaks\0and nul".to_string(),
        "x".repeat(10_000),
        "flush_all\r\n".to_string(),
        "ünïcödé 🚀".to_string(),
    ];
    for (i, key) in hostile.iter().enumerate() {
        writer
            .insert(key.clone(), format!("value {i}"))
            .await
            .unwrap();
    }
    let reader = cache_over(&clock, MemcachedStore::new(config(&[&server])).unwrap());
    for (i, key) in hostile.iter().enumerate() {
        assert_eq!(
            reader.get(key).await.unwrap(),
            Some(format!("value {i}")),
            "{key:?}"
        );
    }
    assert_eq!(reader.stats().tiers[1].errors, 0);
}

#[tokio::test]
async fn clear_moves_the_namespace_and_leaves_others_alone() {
    let server = MemcachedServer::start().unwrap();
    let users = MemcachedStore::new(config(&[&server]).namespace("users")).unwrap();
    let orders = MemcachedStore::new(config(&[&server]).namespace("orders")).unwrap();
    users
        .set("k", Bytes::from_static(b"u"), None)
        .await
        .unwrap();
    orders
        .set("k", Bytes::from_static(b"o"), None)
        .await
        .unwrap();
    users.clear().await.unwrap();
    assert_eq!(users.get("k").await.unwrap(), None);
    assert_eq!(orders.get("k").await.unwrap().as_deref(), Some(&b"o"[..]));
    // Another instance of the users cache sees the clear once it re-reads the generation.
    let other = MemcachedStore::new(config(&[&server]).namespace("users")).unwrap();
    assert_eq!(other.get("k").await.unwrap(), None);
    users
        .set("k", Bytes::from_static(b"new"), None)
        .await
        .unwrap();
    assert_eq!(other.get("k").await.unwrap().as_deref(), Some(&b"new"[..]));

    let flushing =
        MemcachedStore::new(config(&[&server]).namespace("x").allow_flush_all(true)).unwrap();
    flushing.clear().await.unwrap();
    assert_eq!(
        orders.get("k").await.unwrap(),
        None,
        "flush_all drops everything, as opted in"
    );
}

/// A `stats` counter of a server.
fn stat(server: &MemcachedServer, name: &str) -> u64 {
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream.write_all(b"stats\r\n").unwrap();
    let mut text = String::new();
    let mut buffer = [0; 4096];
    while !text.ends_with("END\r\n") {
        let read = stream.read(&mut buffer).unwrap();
        text.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
    let prefix = format!("STAT {name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|count| count.trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_sees_a_clear_within_generation_refresh() {
    let server = MemcachedServer::start().unwrap();
    let refresh = Duration::from_millis(300);
    let instance = || {
        MemcachedStore::new(
            config(&[&server])
                .namespace("users")
                .generation_refresh(refresh),
        )
        .unwrap()
    };
    let (a, b) = (instance(), instance());
    a.set("k", Bytes::from_static(b"v"), None).await.unwrap();
    // b reads the generation now, before the clear.
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    a.clear().await.unwrap();
    assert_eq!(a.get("k").await.unwrap(), None);
    // Real time: the refresh is measured by the store's monotonic clock.
    tokio::time::sleep(refresh + Duration::from_millis(50)).await;
    assert_eq!(
        b.get("k").await.unwrap(),
        None,
        "b re-read the generation and no longer sees what the clear removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_and_never_more_than_max_connections() {
    let server = MemcachedServer::start().unwrap();
    let before = stat(&server, "total_connections");
    let tier =
        std::sync::Arc::new(MemcachedStore::new(config(&[&server]).max_connections(3)).unwrap());
    for i in 0..200 {
        tier.set(&format!("k{i}"), Bytes::from_static(b"v"), None)
            .await
            .unwrap();
    }
    // One stats connection of ours, one of the tier's (sequential calls reuse it).
    assert_eq!(stat(&server, "total_connections") - before, 2, "reused");
    let calls: Vec<_> = (0..64)
        .map(|i| {
            let tier = std::sync::Arc::clone(&tier);
            tokio::spawn(async move { tier.get(&format!("k{}", i % 200)).await })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().as_deref(), Some(&b"v"[..]));
    }
    let opened = stat(&server, "total_connections") - before - 1;
    assert!(
        opened <= 3 + 1,
        "64 concurrent calls opened {opened} connections with max_connections(3)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_out_within_the_command_timeout() {
    let server = MemcachedServer::start().unwrap();
    let proxy =
        stratacache_testkit::TcpProxy::start(([127, 0, 0, 1], server.port()).into()).unwrap();
    let timeout = Duration::from_millis(200);
    let tier = MemcachedStore::new(
        MemcachedConfig::new([format!("127.0.0.1:{}", proxy.port())])
            .command_timeout(timeout)
            .max_connections(1),
    )
    .unwrap();
    tier.set("k", Bytes::from_static(b"v"), None).await.unwrap();
    // The connection stays open and silent: bytes go in, nothing comes back.
    proxy.stall_open_connections();
    let started = Instant::now();
    let error = tier.get("k").await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
    assert!(took >= timeout, "{took:?}");
    assert!(
        took < timeout * 10,
        "bounded by the timeout, not hung: {took:?}"
    );
    // The stalled connection is not reused: a new one reaches the server.
    assert_eq!(tier.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn the_store_reports_its_namespace_for_encryption_to_bind() {
    // No server needed: the store connects lazily.
    let store =
        MemcachedStore::new(MemcachedConfig::new(["127.0.0.1:1"]).namespace("users")).unwrap();
    assert_eq!(store.namespace(), "users");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_a_few_sockets_and_each_gets_its_own_reply() {
    let server = MemcachedServer::start().unwrap();
    let before = stat(&server, "total_connections");
    // A generous timeout: 1,536 calls on a busy two-core machine.
    let tier = std::sync::Arc::new(
        MemcachedStore::new(
            config(&[&server])
                .max_connections(2)
                .command_timeout(Duration::from_secs(5)),
        )
        .unwrap(),
    );
    // Distinct values of distinct sizes: a reply handed to the wrong caller shows.
    let calls: Vec<_> = (0..512)
        .map(|i| {
            let tier = std::sync::Arc::clone(&tier);
            tokio::spawn(async move {
                let value = Bytes::from(format!("value {i} {}", "x".repeat(i % 97)));
                tier.set(&format!("k{i}"), value.clone(), None).await?;
                let read = tier.get(&format!("k{i}")).await?;
                let missing = tier.get(&format!("absent{i}")).await?;
                Ok::<_, stratacache::Error>((value, read, missing))
            })
        })
        .collect();
    for call in calls {
        let (value, read, missing) = call.await.unwrap().unwrap();
        assert_eq!(read, Some(value));
        assert_eq!(missing, None);
    }
    let opened = stat(&server, "total_connections") - before - 1; // our stats connection
    assert!(
        (1..=2).contains(&opened),
        "512 concurrent callers opened {opened} connections with max_connections(2)"
    );
}

/// 64 tasks call the store without pause while `fault` runs; returns the slowest call
/// and how many calls failed, once `fault` is over and one more second has passed.
async fn load_through(
    tier: &std::sync::Arc<MemcachedStore>,
    fault: impl std::future::Future<Output = ()>,
) -> (Duration, usize) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..64)
        .map(|task| {
            let (tier, stop) = (std::sync::Arc::clone(tier), std::sync::Arc::clone(&stop));
            tokio::spawn(async move {
                let (mut slowest, mut failed) = (Duration::ZERO, 0);
                let mut i = 0_u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("k{}", (task * 1_000 + i) % 500);
                    let value = Bytes::from(key.clone());
                    let started = Instant::now();
                    let outcome = if i.is_multiple_of(4) {
                        tier.set(&key, value.clone(), None).await.map(|()| None)
                    } else {
                        tier.get(&key).await
                    };
                    slowest = slowest.max(started.elapsed());
                    match outcome {
                        // A reply is never another key's value.
                        Ok(Some(read)) => assert_eq!(read, value, "{key}"),
                        Ok(None) => {}
                        Err(_) => failed += 1,
                    }
                    i += 1;
                }
                (slowest, failed)
            })
        })
        .collect();
    fault.await;
    tokio::time::sleep(SEC).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut result = (Duration::ZERO, 0);
    for worker in workers {
        let (slowest, failed) = worker.await.unwrap();
        result = (result.0.max(slowest), result.1 + failed);
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_stalled_then_killed_server_costs_timeouts_never_a_hang_or_a_wrong_reply() {
    let mut server = MemcachedServer::start().unwrap();
    let tier = std::sync::Arc::new(MemcachedStore::new(config(&[&server])).unwrap());

    let (slowest, failed) = load_through(&tier, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.pause().unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
        server.resume().unwrap();
    })
    .await;
    assert!(failed > 0, "the stall was felt");
    // The command timeout (200 ms), connecting included, with room for a busy machine.
    assert!(
        slowest < 10 * Duration::from_millis(200),
        "slowest call {slowest:?}"
    );
    let after_stall = tier.get("k1").await;
    assert!(after_stall.is_ok(), "{after_stall:?}");

    let (slowest, failed) = load_through(&tier, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.stop();
        tokio::time::sleep(Duration::from_millis(500)).await;
        server.restart().unwrap();
    })
    .await;
    assert!(failed > 0, "the outage was felt");
    assert!(
        slowest < 10 * Duration::from_millis(200),
        "slowest call {slowest:?}"
    );
    tier.set("k1", Bytes::from_static(b"k1"), None)
        .await
        .unwrap();
    assert_eq!(
        tier.get("k1").await.unwrap(),
        Some(Bytes::from_static(b"k1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_if_greater_keeps_the_greater_bytes_by_compare_and_swap() {
    let server = MemcachedServer::start().unwrap();
    let store = std::sync::Arc::new(MemcachedStore::new(config(&[&server])).unwrap());
    let set = |bytes: &'static [u8]| store.set_if_greater("r", Bytes::from_static(bytes), None);
    assert!(set(b"\x01\x00").await.unwrap(), "absent: added");
    assert!(
        !set(b"\x00\xff").await.unwrap(),
        "byte order: 0x00 sorts first"
    );
    assert!(!set(b"\x01\x00").await.unwrap(), "equal: kept");
    assert!(
        set(b"\x01\x00\x00").await.unwrap(),
        "longer with the same start"
    );
    assert_eq!(
        store.get("r").await.unwrap().as_deref(),
        Some(&b"\x01\x00\x00"[..])
    );
    let ttl = Some(60 * SEC);
    assert!(
        store
            .set_if_greater("r", Bytes::from_static(b"\xff"), ttl)
            .await
            .unwrap()
    );
    let held = store.server_ttl("r").await.unwrap().expect("a TTL");
    assert!(held > 58 * SEC && held <= 60 * SEC, "{held:?}");

    // Many writers racing: the greatest value stands, whatever the order they land in.
    let writes = (0..64_u16).map(|n| {
        let store = std::sync::Arc::clone(&store);
        tokio::spawn(async move {
            let value = Bytes::copy_from_slice(&((n * 37) % 64).to_be_bytes());
            store.set_if_greater("race", value, None).await
        })
    });
    for write in futures::future::join_all(writes).await {
        write.unwrap().unwrap();
    }
    assert_eq!(
        store.get("race").await.unwrap().as_deref(),
        Some(&63_u16.to_be_bytes()[..])
    );
}

/// After a restart: `early` writes `k`, then `newcomer` (which never knew the old
/// generation) does, and `early` must read the newer write. Both clients are on the
/// restarted server's one generation, not `early` on an old prefix.
async fn a_newcomer_s_write_reaches(early: &MemcachedStore, newcomer: &MemcachedStore) {
    early
        .set("k", Bytes::from_static(b"early"), None)
        .await
        .unwrap();
    newcomer
        .set("k", Bytes::from_static(b"newer"), None)
        .await
        .unwrap();
    assert_eq!(
        early.get("k").await.unwrap().as_deref(),
        Some(&b"newer"[..]),
        "every client is on the restarted server's one generation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_every_client_reads_the_server_s_new_generation() {
    let mut server = MemcachedServer::start().unwrap();
    // Generations are re-read every minute only: what follows is within that window.
    let config = config(&[&server]).generation_refresh(60 * SEC);
    let client = || MemcachedStore::new(config.clone()).unwrap();
    let (early, late) = (client(), client());
    early
        .set("k", Bytes::from_static(b"before"), None)
        .await
        .unwrap();
    assert_eq!(
        late.get("k").await.unwrap().as_deref(),
        Some(&b"before"[..])
    );

    // The server restarts: its generation key is gone, and made anew by the next client
    // to ask. `early` writes first, then a client that never knew the old generation
    // does; `late` must read the newer write, not `early`'s under an old prefix.
    server.restart().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await; // the clients see the close
    a_newcomer_s_write_reaches(&early, &client()).await;
    assert_eq!(late.get("k").await.unwrap().as_deref(), Some(&b"newer"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_costs_a_call_one_timeout_not_two() {
    let server = MemcachedServer::start().unwrap();
    // The generation is read again before every call: a stall finds it out at once.
    let config = config(&[&server]).generation_refresh(Duration::ZERO);
    let tier = MemcachedStore::new(config).unwrap();
    tier.set("k", Bytes::from_static(b"v"), None).await.unwrap();
    server.pause().unwrap(); // SIGSTOP: connections stay open, nothing answers
    // The first calls find out: the connection is closed, the generation asked again
    // (by the first call after the closed connection's task has ended).
    for _ in 0..3 {
        let error = tier.get("k").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Timeout);
    }
    // Later calls spend the command's timeout only: the generation that could not be
    // read just now is not asked again (for a second), the last known one is used.
    let started = Instant::now();
    let error = tier.get("k").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(350),
        "{took:?} for a 200 ms timeout"
    );
    server.resume().unwrap();
}

#[tokio::test]
async fn a_batch_read_answers_the_keys_of_live_servers_when_one_is_dead() {
    let mut servers: Vec<_> = (0..3).map(|_| MemcachedServer::start().unwrap()).collect();
    let config = config(&servers.iter().collect::<Vec<_>>());
    let tier = MemcachedStore::new(config.clone()).unwrap();
    let keys: Vec<String> = (0..60).map(|n| format!("key{n}")).collect();
    for key in &keys {
        tier.set(key, Bytes::from(key.clone()), None).await.unwrap();
    }
    // The same keys through a cache that keeps nothing in L1: every read is a batch
    // read of memcached.
    let cache: Cache<u64, String> = Cache::builder()
        .insert_policy(InsertPolicy::never())
        .fallback(Fallback::remote(Remote::new(
            MemcachedStore::new(config).unwrap(),
        )))
        .build()
        .unwrap();
    let ids: Vec<u64> = (0..60).collect();
    for id in &ids {
        cache.insert(*id, id.to_string()).await.unwrap();
    }

    let dead = servers[1].address();
    servers[1].stop();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let found = tier.get_each(&keys).await;
    let (mut served, mut failed) = (0, 0);
    for (key, found) in keys.iter().zip(found) {
        if tier.server_for(key) == Some(dead.as_str()) {
            assert!(found.unwrap_err().is_transient());
            failed += 1;
        } else {
            assert_eq!(found.unwrap().as_deref(), Some(key.as_bytes()));
            served += 1;
        }
    }
    assert!(
        served > 20 && failed > 5,
        "served {served}, failed {failed}"
    );
    assert!(
        tier.get_many(&keys).await.is_err(),
        "get_many fails as a whole, as documented"
    );

    let read = cache.get_many(&ids).await.unwrap();
    let hits = read.iter().filter(|value| value.is_some()).count();
    assert!(
        (20..60).contains(&hits),
        "the live servers' keys hit, the dead one's miss: {hits} of 60"
    );
    for (id, value) in ids.iter().zip(&read) {
        if let Some(value) = value {
            assert_eq!(value, &id.to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_behind_a_stalled_connection_is_not_missed() {
    let mut server = MemcachedServer::start().unwrap();
    let config = config(&[&server]).generation_refresh(60 * SEC);
    let client = || MemcachedStore::new(config.clone()).unwrap();
    let early = client();
    early
        .set("k", Bytes::from_static(b"before"), None)
        .await
        .unwrap();
    // The server hangs: this client closes its stalled connection itself, and the server
    // is then restarted (its generation lost) with no connection of this client open.
    server.pause().unwrap();
    let got = early.get("k").await;
    assert!(got.is_err(), "{got:?}");
    server.restart().unwrap();
    a_newcomer_s_write_reaches(&early, &client()).await;
}

#[tokio::test]
async fn a_cache_reads_a_foreign_value_over_its_limit_as_bad_bytes_and_a_write_replaces_it() {
    let server = MemcachedServer::start().unwrap();
    let cache = |limit: usize| -> Cache<String, String> {
        let store = MemcachedStore::new(config(&[&server]).max_value_size(limit)).unwrap();
        Cache::builder()
            .strict(true)
            .insert_policy(InsertPolicy::never())
            .fallback(Fallback::remote(Remote::new(store)))
            .build()
            .unwrap()
    };
    // A writer that takes larger values than the reader does.
    let (writer, reader) = (cache(1 << 20), cache(1_000));
    writer
        .insert("big".into(), "x".repeat(50_000))
        .await
        .unwrap();
    assert_eq!(
        reader.get("big").await.unwrap(),
        None,
        "a miss, even strict: bad bytes, not a failing tier"
    );
    reader.insert("big".into(), "small".into()).await.unwrap();
    assert_eq!(
        writer.get("big").await.unwrap().as_deref(),
        Some("small"),
        "a write replaces it"
    );
}

#[tokio::test]
async fn a_planted_generation_over_the_client_s_limit_is_replaced_too() {
    let server = MemcachedServer::start().unwrap();
    let mut raw = TcpStream::connect(server.address()).unwrap();
    let garbage = vec![b'g'; 5_000];
    raw.write_all(format!("set stratacache:generation 0 0 {}\r\n", garbage.len()).as_bytes())
        .unwrap();
    raw.write_all(&garbage).unwrap();
    raw.write_all(b"\r\n").unwrap();
    let mut stored = [0; 8];
    raw.read_exact(&mut stored).unwrap();
    assert_eq!(&stored, b"STORED\r\n");
    let store = MemcachedStore::new(config(&[&server]).max_value_size(1_000)).unwrap();
    store
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn a_write_replaces_a_value_over_the_client_s_limit() {
    let server = MemcachedServer::start().unwrap();
    let writer = MemcachedStore::new(config(&[&server])).unwrap();
    let reader = MemcachedStore::new(config(&[&server]).max_value_size(1_000)).unwrap();
    writer
        .set("k", Bytes::from(vec![7; 5_000]), None)
        .await
        .unwrap();
    assert_eq!(reader.get("k").await.unwrap_err().kind(), ErrorKind::Codec);
    let small = Bytes::from_static(b"\x05 small");
    assert!(
        reader
            .set_if_greater("k", small.clone(), None)
            .await
            .unwrap()
    );
    assert_eq!(reader.get("k").await.unwrap(), Some(small));
    writer
        .set("j", Bytes::from(vec![7; 5_000]), None)
        .await
        .unwrap();
    let late = Bytes::from_static(b"\x01 late");
    assert!(
        reader
            .set_unless_within("j", late.clone(), None, b"\x00", b"\x02")
            .await
            .unwrap()
    );
    assert_eq!(reader.get("j").await.unwrap(), Some(late));
}
