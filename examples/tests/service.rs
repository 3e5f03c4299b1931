//! The reference service driven over HTTP: real SQLite files, the test kit's real
//! `redis-server`, services started on free ports in this process (and once as the
//! binary the README runs).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use stratacache_examples::service::{Config, ScratchDatabase, Service, User};
use stratacache_testkit::RedisServer;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client")
}

async fn get(client: &Client, service: &Service, id: u64) -> (StatusCode, Option<User>) {
    let response = client
        .get(format!("{}/users/{id}", service.url()))
        .send()
        .await
        .expect("GET answered");
    let status = response.status();
    let user = if status == StatusCode::OK {
        Some(response.json().await.expect("a user"))
    } else {
        None
    };
    (status, user)
}

async fn put(client: &Client, service: &Service, id: u64, name: &str) -> StatusCode {
    client
        .put(format!("{}/users/{id}", service.url()))
        .json(&json!({ "name": name, "email": format!("{name}@example.com") }))
        .send()
        .await
        .expect("PUT answered")
        .status()
}

fn user(id: u64, name: &str) -> User {
    User {
        id,
        name: name.into(),
        email: format!("{name}@example.com"),
    }
}

/// Polls `check` every 5 ms until it holds, for at most `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_cached_and_writes_replace_them() {
    let database = ScratchDatabase::new("service");
    reads_and_writes_over(database.url()).await;
}

/// The same over Postgres: `STRATACACHE_POSTGRES_URL=postgres://… cargo test -p
/// stratacache-examples --features service --test service -- --ignored` (users 1 to 3
/// of that database's `users` table are deleted first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Postgres server: set STRATACACHE_POSTGRES_URL"]
async fn reads_are_cached_and_writes_replace_them_over_postgres() {
    let url = std::env::var("STRATACACHE_POSTGRES_URL").expect("STRATACACHE_POSTGRES_URL");
    let users = stratacache_examples::service::Users::connect(&url)
        .await
        .expect("Postgres");
    for id in 1..=3 {
        users.delete(id).await.expect("deleted");
    }
    reads_and_writes_over(url).await;
}

async fn reads_and_writes_over(database_url: String) {
    let service = Service::start(Config::new(database_url))
        .await
        .expect("started");
    let client = client();

    assert_eq!(put(&client, &service, 1, "ada").await, StatusCode::OK);
    let queries = service.users().queries();
    for _ in 0..3 {
        assert_eq!(
            get(&client, &service, 1).await,
            (StatusCode::OK, Some(user(1, "ada")))
        );
    }
    assert_eq!(
        service.users().queries(),
        queries + 1,
        "one read reached the table, the others the cache"
    );
    let queries = service.users().queries();

    // Absent users are remembered as absent: one query for many reads.
    for _ in 0..3 {
        assert_eq!(get(&client, &service, 2).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(service.users().queries(), queries + 1);
    assert_eq!(put(&client, &service, 2, "grace").await, StatusCode::OK);
    assert_eq!(
        get(&client, &service, 2).await.1,
        Some(user(2, "grace")),
        "a write replaces the remembered absence"
    );

    assert_eq!(
        put(&client, &service, 1, "ada lovelace").await,
        StatusCode::OK
    );
    assert_eq!(
        get(&client, &service, 1).await.1,
        Some(user(1, "ada lovelace"))
    );
    let deleted = client
        .delete(format!("{}/users/1", service.url()))
        .send()
        .await
        .expect("DELETE answered");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(get(&client, &service, 1).await.0, StatusCode::NOT_FOUND);

    // Bad input: a clear status, never a panic or a stored row.
    let empty = client
        .put(format!("{}/users/3", service.url()))
        .json(&json!({ "name": "", "email": "x@example.com" }))
        .send()
        .await
        .expect("answered");
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let garbage = client
        .put(format!("{}/users/3", service.url()))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("answered");
    assert!(garbage.status().is_client_error(), "{}", garbage.status());
    let not_an_id = client
        .get(format!("{}/users/%00abc", service.url()))
        .send()
        .await
        .expect("answered");
    assert_eq!(not_an_id.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&client, &service, u64::MAX).await.0,
        StatusCode::NOT_FOUND,
        "an id beyond the table's range is absent"
    );
    assert_eq!(
        put(&client, &service, u64::MAX, "too far").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(get(&client, &service, 3).await.0, StatusCode::NOT_FOUND);

    let metrics = client
        .get(format!("{}/metrics", service.url()))
        .send()
        .await
        .expect("answered")
        .text()
        .await
        .expect("text");
    let hits = metrics
        .lines()
        .find(|line| {
            line.starts_with("cache_requests")
                && line.contains("outcome=\"hit\"")
                && line.contains("tier=\"l1\"")
        })
        .unwrap_or_else(|| panic!("no L1 hit figure in:\n{metrics}"));
    let hits: f64 = hits
        .rsplit(' ')
        .next()
        .and_then(|figure| figure.parse().ok())
        .expect("a figure");
    // User 1 read twice from L1 (a remembered absence counts as a not-found hit).
    assert!(hits >= 2.0, "{hits} hits reported");
    assert_eq!(hits, service.cache().stats().tiers[0].hits as f64);
    let queries_line = metrics
        .lines()
        .find(|line| line.starts_with("db_queries"))
        .unwrap_or_else(|| panic!("no db_queries in:\n{metrics}"));
    assert!(
        queries_line.ends_with(&format!(" {}", service.users().queries())),
        "{queries_line}"
    );
    service.stop().await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_is_read_on_another() {
    let redis = RedisServer::start().expect("redis-server");
    let database = ScratchDatabase::new("service");
    let config = Config::new(database.url()).redis(redis.url());
    let (a, b) = (
        Service::start(config.clone()).await.expect("a started"),
        Service::start(config).await.expect("b started"),
    );
    let client = client();
    assert_eq!(put(&client, &a, 1, "ada").await, StatusCode::OK);
    assert_eq!(get(&client, &a, 1).await.1, Some(user(1, "ada")));
    assert_eq!(a.users().queries(), 2, "the write and the load");
    assert_eq!(get(&client, &b, 1).await.1, Some(user(1, "ada")));
    assert_eq!(b.users().queries(), 0, "b read what a loaded from Redis");
    // b's L1 now holds ada; a renames her.
    assert_eq!(get(&client, &b, 1).await.1, Some(user(1, "ada")));

    assert_eq!(put(&client, &a, 1, "ada lovelace").await, StatusCode::OK);
    eventually(
        "b reads the renamed user",
        Duration::from_secs(2),
        || async { get(&client, &b, 1).await.1 == Some(user(1, "ada lovelace")) },
    )
    .await;
    assert_eq!(
        b.users().queries(),
        1,
        "its copies dropped, b loaded her once"
    );
    assert!(b.cache().stats().backplane_received >= 1);

    let deleted = client
        .delete(format!("{}/users/1", a.url()))
        .send()
        .await
        .expect("DELETE answered");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    eventually("b sees the deletion", Duration::from_secs(2), || async {
        get(&client, &b, 1).await.0 == StatusCode::NOT_FOUND
    })
    .await;
    a.stop().await.expect("a stopped");
    b.stop().await.expect("b stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_while_redis_is_down_or_stalled() {
    let mut redis = RedisServer::start().expect("redis-server");
    let database = ScratchDatabase::new("service");
    let service = Service::start(Config::new(database.url()).redis(redis.url()))
        .await
        .expect("started");
    let client = client();
    for id in 1..=10 {
        assert_eq!(
            put(&client, &service, id, &format!("user{id}")).await,
            StatusCode::OK
        );
        // Loaded once: now in L1 and in Redis.
        assert_eq!(get(&client, &service, id).await.0, StatusCode::OK);
    }
    // A second instance wrote users 11..=20 to the table only: this one has no copy.
    let other = Service::start(Config::new(database.url()))
        .await
        .expect("a memory-only instance");
    for id in 11..=20 {
        assert_eq!(
            put(&client, &other, id, &format!("user{id}")).await,
            StatusCode::OK
        );
    }

    redis.pause().expect("SIGSTOP");
    let stalled = Instant::now();
    for id in [1, 11, 12] {
        assert_eq!(
            get(&client, &service, id).await,
            (StatusCode::OK, Some(user(id, &format!("user{id}")))),
            "served from L1 or the table while Redis is stalled"
        );
    }
    assert!(
        stalled.elapsed() < Duration::from_secs(3),
        "three reads took {:?} with Redis stalled",
        stalled.elapsed()
    );
    redis.resume().expect("SIGCONT");

    redis
        .save()
        .expect("SAVE: the restarted server comes back with user1 … user10");
    redis.stop();
    let down = Instant::now();
    for id in (1..=10).chain(13..=20) {
        assert_eq!(
            get(&client, &service, id).await,
            (StatusCode::OK, Some(user(id, &format!("user{id}")))),
            "user {id} while Redis is down"
        );
    }
    assert_eq!(put(&client, &service, 1, "renamed").await, StatusCode::OK);
    assert_eq!(get(&client, &service, 1).await.1, Some(user(1, "renamed")));
    assert!(
        down.elapsed() < Duration::from_secs(5),
        "twenty requests took {:?} with Redis down",
        down.elapsed()
    );

    // Redis comes back holding the user the outage write replaced: the invalidation
    // waited and is replayed, so a new instance never reads the old name from Redis.
    redis.restart().expect("redis-server back on its port");
    // Misses (of users nobody has) reach Redis: once the breaker lets one through and
    // Redis answers, what waited is replayed.
    let probe = AtomicU64::new(1_000);
    eventually(
        "the waiting invalidation is replayed",
        Duration::from_secs(10),
        || async {
            let _ = get(&client, &service, probe.fetch_add(1, Ordering::Relaxed)).await;
            service.cache().stats().recovery_replayed >= 1
        },
    )
    .await;
    let fresh = Service::start(Config::new(database.url()).redis(redis.url()))
        .await
        .expect("a new instance");
    assert_eq!(get(&client, &fresh, 1).await.1, Some(user(1, "renamed")));
    fresh.stop().await.expect("stopped");
    other.stop().await.expect("stopped");
    service.stop().await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_what_the_readme_says() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    /// The service's process, killed however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let database = ScratchDatabase::new("service");
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_service"))
            .env("BIND", "127.0.0.1:0")
            .env("DATABASE_URL", database.url())
            .env_remove("REDIS_URL")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the service binary started"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let first_line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(30), first_line)
        .await
        .expect("the service printed its address within 30 s")
        .expect("joined")
        .expect("a first line");
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let client = client();
    let put = client
        .put(format!("{url}/users/7"))
        .json(&json!({ "name": "alan", "email": "alan@example.com" }))
        .send()
        .await
        .expect("PUT answered");
    assert_eq!(put.status(), StatusCode::OK);
    let read: Value = client
        .get(format!("{url}/users/7"))
        .send()
        .await
        .expect("GET answered")
        .json()
        .await
        .expect("json");
    assert_eq!(read["name"], "alan");
}
