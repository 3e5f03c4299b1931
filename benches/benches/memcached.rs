//! An L1-miss / memcached-hit `get` through stratacache beside a raw meta-protocol
//! `mg` on one TCP connection to the same server, in one run.
//!
//! Uses the first of `MEMCACHED_SERVERS` when set, otherwise starts a `memcached` with the
//! test kit. The raw side is the least a client can do (one connection, no pool, no
//! ring, no envelope), so the ratio is the whole of the tier's and the facade's cost.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use stratacache::{ByteStore, Cache, Fallback, InsertPolicy, Remote};
use stratacache_memcached::{MemcachedConfig, MemcachedStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn memcached_get(c: &mut Criterion) {
    let (server, address) = stratacache_benches::memcached();
    let runtime = stratacache_benches::runtime();
    let _inside = runtime.enter();

    let tier =
        MemcachedStore::new(MemcachedConfig::new([address.clone()]).namespace("bench")).unwrap();
    let cache: Cache<u64, String> = Cache::builder()
        .insert_policy(InsertPolicy::never())
        .fallback(Fallback::remote(Remote::new(tier)))
        .build()
        .unwrap();
    runtime.block_on(cache.insert(1, "v".repeat(100))).unwrap();

    // The raw side reads a value of the same size under a plain key.
    let value = vec![b'v'; 130];
    let mut raw = runtime.block_on(async {
        let mut stream = BufReader::new(TcpStream::connect(&address).await.unwrap());
        let mut request = format!("ms rawkey {} T0\r\n", value.len()).into_bytes();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
        stream.get_mut().write_all(&request).await.unwrap();
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HD"), "{line}");
        stream
    });

    let mut group = c.benchmark_group("memcached_get");
    group.bench_function("stratacache", |b| {
        b.iter(|| {
            assert!(
                runtime
                    .block_on(cache.get(black_box(&1)))
                    .unwrap()
                    .is_some()
            )
        });
    });
    group.bench_function("raw_client", |b| {
        b.iter(|| {
            runtime.block_on(async {
                raw.get_mut()
                    .write_all(black_box(b"mg rawkey v\r\n"))
                    .await
                    .unwrap();
                let mut line = String::new();
                raw.read_line(&mut line).await.unwrap();
                let len: usize = line.split(' ').nth(1).unwrap().trim().parse().unwrap();
                let mut data = vec![0; len + 2];
                raw.read_exact(&mut data).await.unwrap();
                black_box(data)
            })
        });
    });
    group.finish();
    let _ = runtime.block_on(async { stratacache_memcached_clear(&address).await });
    drop(server);
}

async fn stratacache_memcached_clear(address: &str) -> Result<(), stratacache::Error> {
    MemcachedStore::new(MemcachedConfig::new([address.to_string()]).namespace("bench"))?
        .clear()
        .await
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = memcached_get
}
criterion_main!(benches);
