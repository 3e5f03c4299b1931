//! An L1-miss / Redis-hit `get` through stratacache beside a raw redis-rs `GET` of the
//! same key, on the same server, in one run; and a batch of 100 such keys beside one
//! `get` and beside 100 sequential `get`s.
//!
//! Uses `REDIS_URL` when set, otherwise starts a `redis-server` with the test kit.
//! `benches/redis-benchmark.sh` prints `redis-benchmark`'s ceiling beside these figures.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use stratacache::ByteStore;
use stratacache_redis::{RedisConfig, RedisStore};

fn redis_get(c: &mut Criterion) {
    let (server, url) = stratacache_benches::redis();
    let runtime = stratacache_benches::runtime();
    let _inside = runtime.enter();

    let tier = RedisStore::new(RedisConfig::from_url(&url).namespace("bench")).unwrap();
    // L1 stores nothing, so every get misses L1 and hits Redis.
    let cache = stratacache_benches::l1_miss_cache(tier.clone());
    let value = "v".repeat(100);
    runtime.block_on(cache.insert(1, value.clone())).unwrap();
    let stored = runtime
        .block_on(tier.get("AQ"))
        .unwrap()
        .expect("the value is in Redis");

    // The raw client: the same kind of multiplexed connection the store uses.
    let client = redis::Client::open(url.as_str()).unwrap();
    let raw = runtime
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();

    let mut group = c.benchmark_group("redis_get");
    group.bench_function("stratacache", |b| {
        b.iter(|| {
            let found = runtime.block_on(cache.get(black_box(&1))).unwrap();
            assert_eq!(found.as_deref(), Some(value.as_str()));
        });
    });
    group.bench_function("raw_client", |b| {
        b.iter(|| {
            let mut connection = raw.clone();
            let found: Option<Vec<u8>> = runtime
                .block_on(
                    redis::cmd("GET")
                        .arg(black_box("bench:AQ"))
                        .query_async(&mut connection),
                )
                .unwrap();
            assert_eq!(found.map(|bytes| bytes.len()), Some(stored.len()));
        });
    });
    group.finish();
    drop(server);
}

/// A batch of 100 keys, all in Redis with L1 cold, beside one single get and beside 100
/// sequential gets of the same keys.
fn redis_batch(c: &mut Criterion) {
    let (server, url) = stratacache_benches::redis();
    let runtime = stratacache_benches::runtime();
    let _inside = runtime.enter();

    let tier = RedisStore::new(RedisConfig::from_url(&url).namespace("batch")).unwrap();
    let cache = stratacache_benches::l1_miss_cache(tier);
    let keys: Vec<u64> = (0..100).collect();
    let value = "v".repeat(100);
    runtime
        .block_on(cache.insert_many(keys.iter().map(|key| (*key, value.clone()))))
        .unwrap();
    let unreachable = |_: Vec<u64>| async {
        unreachable!("every key is in Redis");
        #[expect(unreachable_code, reason = "the loader's type")]
        Ok::<std::collections::HashMap<u64, String>, std::io::Error>(Default::default())
    };

    // The floor: a raw redis-rs MGET of the same 100 stored keys.
    let client = redis::Client::open(url.as_str()).unwrap();
    let raw = runtime
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    let stored: Vec<String> = runtime
        .block_on(
            redis::cmd("KEYS")
                .arg("batch:*")
                .query_async(&mut raw.clone()),
        )
        .unwrap();
    assert_eq!(stored.len(), 100);

    let mut group = c.benchmark_group("redis_batch");
    group.bench_function("raw_mget_100", |b| {
        b.iter(|| {
            let mut connection = raw.clone();
            let found: Vec<Option<Vec<u8>>> = runtime
                .block_on(
                    redis::cmd("MGET")
                        .arg(black_box(&stored))
                        .query_async(&mut connection),
                )
                .unwrap();
            assert!(found.iter().all(Option::is_some));
        });
    });
    group.bench_function("get_one", |b| {
        b.iter(|| {
            let found = runtime.block_on(cache.get(black_box(&1))).unwrap();
            assert!(found.is_some());
        });
    });
    group.bench_function("get_or_insert_many_100", |b| {
        b.iter(|| {
            let found = runtime
                .block_on(cache.get_or_insert_many(black_box(&keys), unreachable))
                .unwrap();
            assert!(found.iter().all(Option::is_some));
        });
    });
    group.bench_function("sequential_get_100", |b| {
        b.iter(|| {
            runtime.block_on(async {
                for key in &keys {
                    assert!(cache.get(black_box(key)).await.unwrap().is_some());
                }
            });
        });
    });
    group.finish();
    drop(server);
}

/// A bench body: `ops` raw `GET`s of the hot key on a clone of `connection`.
fn raw_gets<C>(connection: C) -> impl Fn(usize, usize) -> BoxedGets
where
    C: redis::aio::ConnectionLike + Clone + Send + 'static,
{
    move |_task, ops| {
        let mut connection = connection.clone();
        Box::pin(async move {
            for _ in 0..ops {
                let found: Option<Vec<u8>> = redis::cmd("GET")
                    .arg("concurrent:AQ")
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                assert!(
                    black_box(found).is_some(),
                    "the raw client reads the cached key"
                );
            }
        })
    }
}

/// The floor of any two-tier cache built from the same parts, for the same L1-miss /
/// Redis-hit: a lookup that misses in a moka L1 (built as the memory tier builds it),
/// a raw `GET` on a clone of `connection`, and a postcard decode of the `String` at the
/// end of the bytes read. What the facade adds on top of its dependencies is the rest.
fn two_tier_floor_gets<C>(connection: C) -> impl Fn(usize, usize) -> BoxedGets
where
    C: redis::aio::ConnectionLike + Clone + Send + 'static,
{
    floor_gets(connection, Floor::TwoTier)
}

/// The two-tier floor with the `GET` bounded by a tokio timer, as every remote call of a
/// cache that never hangs on a stalled server must be (the store's default command
/// timeout). tokio's time driver arms and cancels every timer under one process-wide
/// lock: at many tasks on several workers that is a cost of its own.
fn timed_floor_gets<C>(connection: C) -> impl Fn(usize, usize) -> BoxedGets
where
    C: redis::aio::ConnectionLike + Clone + Send + 'static,
{
    floor_gets(connection, Floor::Timed)
}

/// The floor of a type-erased two-tier cache: the timed floor's lookup, `GET` and
/// decode, with the `GET` awaited through the two boxed futures such a cache allocates
/// on an L1 miss, as small as they can be: the call to the store, boxed because the
/// store's type is erased, inside the miss path, boxed so that a hit's future stays
/// small.
fn type_erased_floor_gets<C>(connection: C) -> impl Fn(usize, usize) -> BoxedGets
where
    C: redis::aio::ConnectionLike + Clone + Send + 'static,
{
    floor_gets(connection, Floor::TypeErased)
}

/// Which floor [`floor_gets`] measures: each adds to the one before.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Floor {
    /// moka miss, raw `GET`, decode.
    TwoTier,
    /// … with the `GET` under a timer.
    Timed,
    /// … awaited through two boxes.
    TypeErased,
}

/// A floor's body: `ops` moka L1 misses, raw `GET`s (timed, and through [`erased_get`],
/// as `floor` says) and decodes.
fn floor_gets<C>(connection: C, floor: Floor) -> impl Fn(usize, usize) -> BoxedGets
where
    C: redis::aio::ConnectionLike + Clone + Send + 'static,
{
    let l1: moka::sync::Cache<u64, String, ahash::RandomState> = moka::sync::Cache::builder()
        .max_capacity(10_000)
        .build_with_hasher(ahash::RandomState::new());
    let payload_len = postcard::to_allocvec(&"v".repeat(100)).unwrap().len();
    move |_task, ops| {
        let mut connection = connection.clone();
        let l1 = l1.clone();
        Box::pin(async move {
            for _ in 0..ops {
                assert!(l1.get(black_box(&1)).is_none(), "the L1 misses");
                let found = match floor {
                    Floor::TwoTier => get_bytes(&mut connection).await,
                    Floor::Timed => timed(get_bytes(&mut connection)).await,
                    Floor::TypeErased => erased_get(connection.clone()).await,
                };
                let payload = &found[found.len() - payload_len..];
                let value: String = postcard::from_bytes(payload).unwrap();
                black_box(value);
            }
        })
    }
}

/// `call` within the store's default command timeout, on a tokio timer.
async fn timed<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(COMMAND_TIMEOUT, call)
        .await
        .expect("the server answers in time")
}

/// The Redis store's default command timeout.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(250);

/// A raw `GET` of the hot key's bytes on `connection`.
async fn get_bytes<C: redis::aio::ConnectionLike>(connection: &mut C) -> Vec<u8> {
    redis::cmd("GET")
        .arg("concurrent:AQ")
        .query_async(connection)
        .await
        .unwrap()
}

/// [`get_bytes`] on its own handle (as the store's call takes one), timed, boxed,
/// awaited in a boxed miss path.
fn erased_get<C>(mut handle: C) -> BoxFuture<'static, Vec<u8>>
where
    C: redis::aio::ConnectionLike + Send + 'static,
{
    let call: BoxFuture<'static, Vec<u8>> =
        Box::pin(async move { timed(get_bytes(&mut handle)).await });
    Box::pin(call)
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

type BoxedGets = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The body of one concurrent contestant: `ops` gets from one task.
type Gets = Box<dyn Fn(usize, usize) -> BoxedGets>;

/// The store alone (its `ByteStore::get` of the same bytes as the cache's key 1): splits
/// the facade's share from the store's.
fn store_gets(tier: RedisStore) -> Gets {
    Box::new(move |_task, ops| {
        let tier = tier.clone();
        Box::pin(async move {
            for _ in 0..ops {
                assert!(black_box(tier.get("AQ").await.unwrap()).is_some());
            }
        })
    })
}

/// stratacache's contestant: `ops` L1-miss/Redis-hit gets of key 1 through `cache`.
fn cache_gets(cache: stratacache::Cache<u64, String>) -> Gets {
    Box::new(move |_task, ops| {
        let cache = cache.clone();
        Box::pin(async move {
            for _ in 0..ops {
                black_box(cache.get(&1).await.unwrap());
            }
        })
    })
}

/// Runs `group` at 1, 8, 32 and 128 concurrent tasks on `runtime`: time per operation
/// of every contestant from criterion, and time and CPU per operation of the first
/// (stratacache) against each of the others, and of each floor against the raw client,
/// printed: median times, and the medians of their ratios round by round, the
/// contestants taking turns.
fn concurrency_group(
    c: &mut Criterion,
    group: &str,
    runtime: &tokio::runtime::Runtime,
    contestants: &[(&str, Gets)],
) {
    let mut criterion_group = c.benchmark_group(group);
    for tasks in [1, 8, 32, 128] {
        // Long enough for the 10 ms ticks the CPU time is counted in (half a second or
        // more).
        let ops = 40_000 * tasks.max(16) / 16;
        let runs = stratacache_benches::turns(contestants.len(), |contestant| {
            stratacache_benches::concurrently(runtime, tasks, ops, &contestants[contestant].1)
        });
        let (ours, raw) = (
            (contestants[0].0, &runs[0][..]),
            (contestants[1].0, &runs[1][..]),
        );
        for ((name, _), run) in contestants.iter().zip(&runs).skip(1) {
            let label = format!("{group} (vs {name})");
            stratacache_benches::print_concurrency(&label, tasks, ops, ours, (name, run));
        }
        // The floors' own cost beside the raw client.
        for ((name, _), run) in contestants.iter().zip(&runs).skip(2) {
            if name.ends_with("floor") {
                let label = format!("{group} ({name} vs raw)");
                stratacache_benches::print_concurrency(&label, tasks, ops, (name, run), raw);
            }
        }
        for (name, body) in contestants {
            stratacache_benches::bench_tasks(&mut criterion_group, name, runtime, tasks, body);
        }
    }
    criterion_group.finish();
}

/// L1-miss/Redis-hit gets from 1, 8, 32 and 128 concurrent tasks on a two-worker runtime,
/// through stratacache, through a raw redis-rs multiplexed connection, through the parts
/// any two-tier cache would use (the floor: moka miss, raw `GET`, postcard decode), the
/// same with the `GET` under a timer (as every remote call must be), that with the two
/// boxed futures any type-erased two-tier cache allocates on a miss,
/// through the Redis store alone, and through a raw redis-rs `ConnectionManager` (the
/// reconnecting handle the store used before).
fn redis_concurrent(c: &mut Criterion) {
    let (server, url) = stratacache_benches::redis();
    let runtime = stratacache_benches::two_worker_runtime();
    let _inside = runtime.enter();
    let tier = RedisStore::new(RedisConfig::from_url(&url).namespace("concurrent")).unwrap();
    let cache = stratacache_benches::l1_miss_cache(tier.clone());
    runtime.block_on(cache.insert(1, "v".repeat(100))).unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let raw = runtime
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    // redis-rs's reconnecting handle, which the store used before, set up as the store
    // set it up: the floor of any store that reconnects through it.
    let manager = runtime
        .block_on(redis::aio::ConnectionManager::new_with_config(
            client,
            redis::aio::ConnectionManagerConfig::new()
                .set_response_timeout(None)
                .set_number_of_retries(1),
        ))
        .unwrap();
    let contestants: [(&str, Gets); 7] = [
        ("stratacache", cache_gets(cache)),
        ("raw", Box::new(raw_gets(raw.clone()))),
        ("two_tier_floor", Box::new(two_tier_floor_gets(raw.clone()))),
        ("timed_floor", Box::new(timed_floor_gets(raw.clone()))),
        ("type_erased_floor", Box::new(type_erased_floor_gets(raw))),
        ("store", store_gets(tier)),
        ("raw_connection_manager", Box::new(raw_gets(manager))),
    ];
    concurrency_group(c, "redis_concurrent", &runtime, &contestants);
    drop(server);
}

/// The same over a Redis Cluster of three masters (the test kit's), stratacache's
/// cluster client beside a raw redis-rs `ClusterConnection`, the three floors on it, and
/// the cluster store alone.
///
/// Skipped, with a note, when `REDIS_URL` names a server of the caller's (the cluster
/// would be started here all the same) or when no cluster can be started.
fn redis_cluster_concurrent(c: &mut Criterion) {
    if std::env::var_os("REDIS_URL").is_some() {
        println!("redis_cluster_concurrent: skipped (REDIS_URL is set)");
        return;
    }
    let cluster = match stratacache_testkit::RedisCluster::start() {
        Ok(cluster) => cluster,
        Err(error) => {
            println!("redis_cluster_concurrent: skipped (no Redis Cluster: {error})");
            return;
        }
    };
    let runtime = stratacache_benches::two_worker_runtime();
    let _inside = runtime.enter();
    let config = RedisConfig::cluster(cluster.urls()).namespace("concurrent");
    let tier = RedisStore::new(config).unwrap();
    let cache = stratacache_benches::l1_miss_cache(tier.clone());
    runtime.block_on(cache.insert(1, "v".repeat(100))).unwrap();
    let raw = runtime
        .block_on(
            redis::cluster::ClusterClient::new(cluster.urls())
                .unwrap()
                .get_async_connection(),
        )
        .unwrap();
    let contestants: [(&str, Gets); 6] = [
        ("stratacache", cache_gets(cache)),
        ("raw", Box::new(raw_gets(raw.clone()))),
        ("two_tier_floor", Box::new(two_tier_floor_gets(raw.clone()))),
        ("timed_floor", Box::new(timed_floor_gets(raw.clone()))),
        ("type_erased_floor", Box::new(type_erased_floor_gets(raw))),
        ("store", store_gets(tier)),
    ];
    concurrency_group(c, "redis_cluster_concurrent", &runtime, &contestants);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = redis_get, redis_batch, redis_concurrent, redis_cluster_concurrent
}
criterion_main!(benches);
