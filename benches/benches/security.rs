//! What privacy and compression cost, in one run each:
//!
//! - `sealed_redis_get`: an L1-miss / Redis-hit `get` of a 1 KiB value, plain beside
//!   encrypted (AES-256-GCM open on every read; keys hashed), on the same server
//!   (`REDIS_URL`, or a `redis-server` started by the test kit);
//! - `compression_10k`: reading and writing a 10 KiB JSON-like value through the codec
//!   boundary over an in-memory store, plain beside LZ4; the compression ratio is
//!   printed.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use stratacache::mock::MemoryStore;
use stratacache::{
    Cache, CacheEntry, CacheTier, Compression, Encryption, Fallback, InsertPolicy, Remote,
};
use stratacache_redis::{RedisConfig, RedisStore};

fn sealed_redis_get(c: &mut Criterion) {
    let (server, url) = stratacache_benches::redis();
    let runtime = stratacache_benches::runtime();
    let _inside = runtime.enter();
    let value = "x".repeat(1_024);
    let cache = |remote: Remote<RedisStore>| -> Cache<u64, String> {
        Cache::builder()
            .insert_policy(InsertPolicy::never()) // every get misses L1
            .fallback(Fallback::remote(remote))
            .build()
            .unwrap()
    };
    let store = |namespace: &str| {
        RedisStore::new(RedisConfig::from_url(&url).namespace(namespace)).unwrap()
    };
    let plain = cache(Remote::new(store("bench-plain")));
    let sealed = cache(
        Remote::new(store("bench-sealed"))
            .encrypt(&Encryption::new(1, [7; 32]).hash_keys())
            .unwrap(),
    );
    for cache in [&plain, &sealed] {
        runtime.block_on(cache.insert(1, value.clone())).unwrap();
    }
    let mut group = c.benchmark_group("sealed_redis_get");
    for (name, cache) in [("plain", &plain), ("encrypted", &sealed)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let found = runtime.block_on(cache.get(black_box(&1))).unwrap();
                assert_eq!(found.map(|v| v.len()), Some(1_024));
            });
        });
    }
    group.finish();
    drop(server);
}

/// About 10 KiB of JSON-like text: records with repeated field names, varied values.
fn json_like() -> String {
    let mut out = String::from("[");
    let mut id = 0;
    while out.len() < 10 * 1_024 {
        id += 1;
        out.push_str(&format!(
            r#"{{"id":{id},"name":"user {id}","email":"user{id}@example.com","active":{},"score":{}}},"#,
            id % 3 == 0,
            (id * 7_919) % 1_000
        ));
    }
    out.push(']');
    out
}

fn compression_10k(c: &mut Criterion) {
    let value = json_like();
    let now = SystemTime::now();
    let mut group = c.benchmark_group("compression_10k");
    for (name, compress) in [("plain", false), ("lz4", true)] {
        // An in-memory store, to measure the codec boundary alone.
        let store = MemoryStore::new();
        let remote = Remote::new(store.clone());
        let remote = if compress {
            remote.compress(Compression::lz4())
        } else {
            remote
        };
        let tier = remote.into_tier::<u64, String>();
        let entry = CacheEntry::new(value.clone(), now, None);
        futures::executor::block_on(tier.insert(1, entry.clone(), None)).unwrap();
        let stored: usize = store
            .keys()
            .iter()
            .filter_map(|key| store.raw(key))
            .map(|bytes| bytes.len())
            .sum();
        println!(
            "compression_10k/{name}: {} bytes of JSON-like text stored as {stored} bytes ({:.1}%)",
            value.len(),
            100.0 * stored as f64 / value.len() as f64
        );
        group.bench_function(format!("{name}/read"), |b| {
            b.iter(|| {
                let found = futures::executor::block_on(tier.get(black_box(&1))).unwrap();
                assert_eq!(found.map(|entry| entry.value().len()), Some(value.len()));
            });
        });
        group.bench_function(format!("{name}/write"), |b| {
            b.iter(|| {
                futures::executor::block_on(tier.insert(1, black_box(entry.clone()), None))
                    .unwrap();
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = sealed_redis_get, compression_10k
}
criterion_main!(benches);
