//! Shared set-up of the benches in `benches/`: the servers they measure against.
//! Run them with `cargo bench -p stratacache-benches`.

use stratacache::{ByteStore, Cache, Fallback, InsertPolicy, Remote};
use stratacache_testkit::{MemcachedServer, RedisServer};

/// A cache over `store` whose L1 stores nothing: every `get` misses L1 and reads the
/// store (the L1-miss/L2-hit path the remote benches measure).
///
/// # Panics
///
/// When the cache cannot be built.
#[must_use]
pub fn l1_miss_cache<S: ByteStore>(store: S) -> Cache<u64, String> {
    Cache::builder()
        .insert_policy(InsertPolicy::never())
        .fallback(Fallback::remote(Remote::new(store)))
        .build()
        .expect("a cache")
}

/// A Redis to bench against: `REDIS_URL` when set, otherwise a `redis-server` started
/// here (kept alive by the returned guard).
///
/// # Panics
///
/// When no `REDIS_URL` is set and `redis-server` cannot be started.
#[must_use]
pub fn redis() -> (Option<RedisServer>, String) {
    if let Ok(url) = std::env::var("REDIS_URL") {
        return (None, url);
    }
    let server = RedisServer::start().expect("start redis-server (or set REDIS_URL)");
    let url = server.url();
    (Some(server), url)
}

/// A memcached to bench against: the first of `MEMCACHED_SERVERS` when set, otherwise a
/// `memcached` started here (kept alive by the returned guard).
///
/// # Panics
///
/// When no `MEMCACHED_SERVERS` is set and `memcached` cannot be started.
#[must_use]
pub fn memcached() -> (Option<MemcachedServer>, String) {
    if let Some(first) = std::env::var("MEMCACHED_SERVERS").ok().and_then(|list| {
        list.split([',', ' '])
            .find(|server| !server.is_empty())
            .map(str::to_string)
    }) {
        return (None, first);
    }
    let server = MemcachedServer::start().expect("start memcached (or set MEMCACHED_SERVERS)");
    let address = server.address();
    (Some(server), address)
}

/// A current-thread tokio runtime, entered for the rest of the bench (tiers spawn their
/// connection tasks on it).
#[must_use]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A multi-thread tokio runtime with two workers (this machine's cores), for the
/// concurrency groups.
#[must_use]
pub fn two_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// This process's CPU time so far (user + system), from `/proc/self/stat`.
#[must_use]
pub fn cpu_time() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 (1-based), 11 and 12 after the state field.
    std::time::Duration::from_millis((ticks(11) + ticks(12)) * 10) // 100 ticks a second
}

/// Runs `tasks` tasks at once, task `i` running `body(i, ops / tasks)` (its share of
/// `ops` operations): the wall time and this process's CPU time they took.
///
/// # Panics
///
/// When a task panics.
pub fn concurrently<F, Fut>(
    runtime: &tokio::runtime::Runtime,
    tasks: usize,
    ops: usize,
    body: F,
) -> (std::time::Duration, std::time::Duration)
where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (wall, cpu) = (std::time::Instant::now(), cpu_time());
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|task| tokio::spawn(body(task, ops / tasks)))
            .collect();
        for handle in handles {
            handle.await.expect("a bench task");
        }
    });
    (wall.elapsed(), cpu_time().saturating_sub(cpu))
}

/// How many runs of each contestant [`turns`] takes.
pub const ROUNDS: usize = 7;

/// Runs each of `count` contestants [`ROUNDS`] times, taking turns, so that the
/// machine's slow spells fall on all of them alike; `run(i)` runs contestant `i` once
/// and returns its `(wall, cpu)` times. Returns each contestant's times, round by round.
///
/// # Panics
///
/// When `count` is zero.
#[must_use]
pub fn turns(
    count: usize,
    mut run: impl FnMut(usize) -> (std::time::Duration, std::time::Duration),
) -> Vec<Vec<(std::time::Duration, std::time::Duration)>> {
    assert!(count > 0, "no contestant");
    let mut runs = vec![Vec::with_capacity(ROUNDS); count];
    for _ in 0..ROUNDS {
        for (contestant, times) in runs.iter_mut().enumerate() {
            times.push(run(contestant));
        }
    }
    runs
}

/// Each contestant's median wall time and median CPU time over [`turns`].
///
/// # Panics
///
/// When `count` is zero.
#[must_use]
pub fn median_runs(
    count: usize,
    run: impl FnMut(usize) -> (std::time::Duration, std::time::Duration),
) -> Vec<(std::time::Duration, std::time::Duration)> {
    turns(count, run)
        .into_iter()
        .map(|times| {
            let (walls, cpus): (Vec<_>, Vec<_>) = times.into_iter().unzip();
            (median(walls), median(cpus))
        })
        .collect()
}

/// The median of `values` (the upper one of an even count).
fn median<T: PartialOrd>(mut values: Vec<T>) -> T {
    values.sort_unstable_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    values.swap_remove(values.len() / 2)
}

/// Prints one line of a concurrency group: the median time and CPU per operation of
/// `ours` and `theirs` (each a name and its `(wall, cpu)` times over `ops` operations,
/// round by round, as [`turns`] gives them), and the medians of their ratios round by
/// round: a slow spell of the machine falls within a round on both, where it could
/// fall on the median of one and not the other's.
///
/// # Panics
///
/// When either has no round, or they have not as many.
pub fn print_concurrency(
    group: &str,
    tasks: usize,
    ops: usize,
    (our_name, ours): (&str, &[(std::time::Duration, std::time::Duration)]),
    (their_name, theirs): (&str, &[(std::time::Duration, std::time::Duration)]),
) {
    assert_eq!(ours.len(), theirs.len(), "rounds taken in turn");
    let per_op = |times: &[(std::time::Duration, std::time::Duration)], cpu: bool| {
        let pick = |&(wall, used): &(std::time::Duration, std::time::Duration)| {
            if cpu { used } else { wall }
        };
        median(times.iter().map(pick).collect()).as_nanos() as f64 / ops as f64 / 1_000.0
    };
    let rounds = ours.iter().zip(theirs);
    let throughput = median(
        rounds
            .clone()
            .map(|(ours, theirs)| theirs.0.as_secs_f64() / ours.0.as_secs_f64())
            .collect(),
    );
    let cpu = median(
        rounds
            .map(|(ours, theirs)| {
                ours.1.as_secs_f64() / theirs.1.as_secs_f64().max(f64::MIN_POSITIVE)
            })
            .collect(),
    );
    println!(
        "{group}/{tasks} tasks: {our_name} {:.1} µs wall {:.1} µs CPU per op, \
         {their_name} {:.1} µs wall {:.1} µs CPU per op: throughput {throughput:.2}×, CPU {cpu:.2}×",
        per_op(ours, false),
        per_op(ours, true),
        per_op(theirs, false),
        per_op(theirs, true),
    );
}

/// Adds `name/{tasks}` to `group`: `tasks` tasks running `body` (see [`concurrently`]),
/// timed per operation.
///
/// # Panics
///
/// When a task panics.
pub fn bench_tasks<F, Fut>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    runtime: &tokio::runtime::Runtime,
    tasks: usize,
    body: &F,
) where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    group.bench_function(format!("{name}/{tasks}"), |b| {
        b.iter_custom(|iters| {
            let ops = usize::try_from(iters).unwrap_or(usize::MAX).div_ceil(tasks) * tasks;
            let (wall, _) = concurrently(runtime, tasks, ops, body);
            wall.mul_f64(iters as f64 / ops as f64)
        });
    });
}
