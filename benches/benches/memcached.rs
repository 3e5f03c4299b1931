//! An L1-miss / memcached-hit `get` through stratacache beside a raw meta-protocol
//! `mg` on one TCP connection to the same server, in one run; and the same from 1 to 128
//! concurrent tasks beside a raw client with one connection per task.
//!
//! Uses the first of `MEMCACHED_SERVERS` when set, otherwise starts a `memcached` with the
//! test kit. The raw side is the least a client can do (one connection, no pool, no
//! ring, no envelope), so the ratio is the whole of the tier's and the facade's cost.

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{Criterion, criterion_group, criterion_main};
use stratacache::ByteStore;
use stratacache_memcached::{MemcachedConfig, MemcachedStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn memcached_get(c: &mut Criterion) {
    let (server, address) = stratacache_benches::memcached();
    let runtime = stratacache_benches::runtime();
    let _inside = runtime.enter();

    let tier =
        MemcachedStore::new(MemcachedConfig::new([address.clone()]).namespace("bench")).unwrap();
    let cache = stratacache_benches::l1_miss_cache(tier);
    runtime.block_on(cache.insert(1, "v".repeat(100))).unwrap();

    // The raw side reads a value of the same size under a plain key.
    let mut raw = runtime.block_on(async {
        let mut raw = RawClient::connect(&address).await;
        raw.set("rawkey", &[b'v'; 130]).await;
        raw
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
            runtime.block_on(async { black_box(raw.get(black_box(b"mg rawkey v\r\n")).await) })
        });
    });
    group.finish();
    let _ = runtime.block_on(async { stratacache_memcached_clear(&address).await });
    drop(server);
}

/// A raw meta-protocol client: one connection, one request at a time.
struct RawClient(BufReader<TcpStream>);

impl RawClient {
    async fn connect(address: &str) -> Self {
        Self(BufReader::new(TcpStream::connect(address).await.unwrap()))
    }

    async fn set(&mut self, key: &str, value: &[u8]) {
        let mut request = format!("ms {key} {} T0\r\n", value.len()).into_bytes();
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
        self.0.get_mut().write_all(&request).await.unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).await.unwrap();
        assert!(line.starts_with("HD"), "{line}");
    }

    async fn get(&mut self, request: &[u8]) -> Vec<u8> {
        self.0.get_mut().write_all(request).await.unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).await.unwrap();
        let len: usize = line.split(' ').nth(1).unwrap().trim().parse().unwrap();
        let mut data = vec![0; len + 2];
        self.0.read_exact(&mut data).await.unwrap();
        data
    }
}

/// L1-miss/memcached-hit gets from 1, 8, 32 and 128 concurrent tasks on a two-worker
/// runtime: through stratacache (its multiplexed connections) and through a raw client
/// with one connection per task; time per operation from criterion, CPU per operation
/// printed.
fn memcached_concurrent(c: &mut Criterion) {
    let (server, address) = stratacache_benches::memcached();
    let runtime = stratacache_benches::two_worker_runtime();
    let _inside = runtime.enter();
    let tier = MemcachedStore::new(MemcachedConfig::new([address.clone()]).namespace("concurrent"))
        .unwrap();
    let cache = stratacache_benches::l1_miss_cache(tier);
    runtime.block_on(cache.insert(1, "v".repeat(100))).unwrap();
    let connections: Arc<Vec<Mutex<Option<RawClient>>>> = Arc::new(runtime.block_on(async {
        let mut connections = Vec::new();
        for _ in 0..128 {
            connections.push(Mutex::new(Some(RawClient::connect(&address).await)));
        }
        let mut first = connections[0].lock().unwrap().take().unwrap();
        first.set("rawkey", &[b'v'; 130]).await;
        *connections[0].lock().unwrap() = Some(first);
        connections
    }));
    let ours = move |_task: usize, ops: usize| {
        let cache = cache.clone();
        async move {
            for _ in 0..ops {
                black_box(cache.get(&1).await.unwrap());
            }
        }
    };
    let theirs = move |task: usize, ops: usize| {
        let connections = Arc::clone(&connections);
        async move {
            let mut client = connections[task].lock().unwrap().take().unwrap();
            for _ in 0..ops {
                black_box(client.get(b"mg rawkey v\r\n").await);
            }
            *connections[task].lock().unwrap() = Some(client);
        }
    };
    let mut group = c.benchmark_group("memcached_concurrent");
    for tasks in [1, 8, 32, 128] {
        // Long enough for the 10 ms ticks the CPU time is counted in.
        let ops = 40_000 * tasks.max(16) / 16;
        let runs = stratacache_benches::turns(2, |contestant| {
            if contestant == 0 {
                stratacache_benches::concurrently(&runtime, tasks, ops, &ours)
            } else {
                stratacache_benches::concurrently(&runtime, tasks, ops, &theirs)
            }
        });
        stratacache_benches::print_concurrency(
            "memcached_concurrent",
            tasks,
            ops,
            ("stratacache", &runs[0]),
            ("raw", &runs[1]),
        );
        stratacache_benches::bench_tasks(&mut group, "stratacache", &runtime, tasks, &ours);
        stratacache_benches::bench_tasks(
            &mut group,
            "raw_connection_per_task",
            &runtime,
            tasks,
            &theirs,
        );
    }
    group.finish();
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
    targets = memcached_get, memcached_concurrent
}
criterion_main!(benches);
