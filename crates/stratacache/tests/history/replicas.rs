//! The history checker across instances: three caches, each with its own L1, over one
//! shared L2 and one backplane, the tasks spread over them. A write on one instance binds
//! the reads on the others once it has propagated: the check allows a window of real
//! time between a write's end and the reads it binds, and reports the smallest window
//! the run needed (the worst staleness any read saw).

use std::sync::Arc;
use std::time::Duration;

use stratacache::mock::MockBackplane;
use stratacache::{Cache, CacheTier, Fallback, Remote};
use stratacache_redis::{RedisBackplane, RedisConfig, RedisStore};
use stratacache_testkit::RedisServer;

use super::checker::History;
use super::jitter::{JitterTier, Pause};
use super::{drive_on, total_ops};

const INSTANCES: usize = 3;

/// What the runs must stay within: a read may return a replaced value only if it began
/// less than this after the write ended. Generous for a loaded 2-core CI machine; the
/// figure each run needed is printed.
const WINDOW: Duration = Duration::from_millis(250);

/// The smallest window (in ticks, nanoseconds here) with no violation.
fn needed_window(history: &History) -> u64 {
    if history.violations(false, 0).is_empty() {
        return 0;
    }
    let (mut enough, mut not_enough) = (u64::try_from(WINDOW.as_nanos()).unwrap() * 40, 0);
    if !history.violations(false, enough).is_empty() {
        return enough;
    }
    while enough - not_enough > 10_000 {
        let middle = not_enough + (enough - not_enough) / 2;
        if history.violations(false, middle).is_empty() {
            enough = middle;
        } else {
            not_enough = middle;
        }
    }
    enough
}

/// Runs the instances (only the first `writers` write) and checks the history within
/// [`WINDOW`].
async fn replicas_run(
    label: &str,
    instances: &[Cache<u64, u64>],
    writers: usize,
    ops: usize,
    pause: Pause,
) {
    let history = Arc::new(History::wall_clock());
    let history = drive_on(instances, writers, history, ops, pause).await;
    let needed = Duration::from_nanos(needed_window(&history));
    let received: u64 = instances
        .iter()
        .map(|cache| cache.stats().backplane_received)
        .sum();
    println!(
        "{label}: {} operations on {} instances, {received} announcements heard, \
         worst staleness {needed:?}",
        history.len(),
        instances.len()
    );
    assert!(received > 0, "{label}: the instances talked");
    assert!(
        needed <= WINDOW,
        "{label}: a read returned a value replaced {needed:?} before it began: {:?}",
        history
            .violations(false, u64::try_from(WINDOW.as_nanos()).unwrap())
            .iter()
            .take(5)
            .collect::<Vec<_>>()
    );
}

/// Waits until every instance has subscribed (announcements made before go unheard).
async fn subscribed(instances: &[Cache<u64, u64>]) {
    let probe = async {
        loop {
            instances[0].insert(u64::MAX, 0).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            if instances[1..]
                .iter()
                .all(|cache| cache.stats().backplane_received > 0)
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), probe)
        .await
        .expect("every instance subscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_in_process_never_read_a_replaced_value_after_the_window() {
    // Every instance writes; then one writes and the others only read, so that nothing
    // but the backplane replaces their L1 copies, in a run that lasts long (the shared
    // tier and the loader take up to a millisecond) next to the window.
    let slow = Pause::Sleep(Duration::from_millis(1));
    let runs = [
        (true, INSTANCES, Pause::Yield(4), total_ops()),
        (false, INSTANCES, Pause::Yield(4), total_ops()),
        (true, 1, slow, total_ops() / 2),
    ];
    for (stampede, writers, pause, ops) in runs {
        let (l2, backplane) = (JitterTier::new(pause, 0), MockBackplane::new());
        let instances: Vec<Cache<u64, u64>> = (0..INSTANCES)
            .map(|_| {
                Cache::builder()
                    .fallback(Fallback::tier(l2.clone()))
                    .backplane(backplane.clone())
                    .stampede_protection(stampede)
                    .build()
                    .unwrap()
            })
            .collect();
        subscribed(&instances).await;
        let label = format!("replicas/in process/stampede {stampede}/{writers} writing");
        replicas_run(&label, &instances, writers, ops, pause).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_over_redis_never_read_a_replaced_value_after_the_window() {
    let server = RedisServer::start().unwrap();
    for (writers, namespace) in [(INSTANCES, "all-write"), (1, "one-writes")] {
        let config = RedisConfig::from_url(server.url()).namespace(namespace);
        let instances: Vec<Cache<u64, u64>> = (0..INSTANCES)
            .map(|_| {
                Cache::builder()
                    .fallback(Fallback::remote(Remote::new(
                        RedisStore::new(config.clone()).unwrap(),
                    )))
                    .backplane(RedisBackplane::new(config.clone()).unwrap())
                    .stampede_protection(true)
                    .build()
                    .unwrap()
            })
            .collect();
        subscribed(&instances).await;
        let label = format!("replicas/redis/{writers} writing");
        let ops = (total_ops() / 8).max(1_000);
        replicas_run(&label, &instances, writers, ops, Pause::Yield(4)).await;
        // At quiescence, every instance reads what Redis holds.
        let l2 = Remote::new(RedisStore::new(config).unwrap()).into_tier::<u64, u64>();
        tokio::time::sleep(Duration::from_millis(100)).await;
        for key in 0..super::KEYS {
            let shared = l2.get(&key).await.unwrap().map(|entry| *entry.value());
            for cache in &instances {
                assert_eq!(cache.get(&key).await.unwrap(), shared, "{label}: key {key}");
            }
        }
    }
}
