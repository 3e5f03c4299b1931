//! Many tasks on many threads against one cache: no lost or torn values.

use std::sync::Arc;
use std::time::Duration;

use stratacache::{Cache, Fallback};

/// A value whose halves must always agree; a torn read would break the invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pair {
    key: u64,
    version: u64,
    check: Arc<[u64; 2]>,
}

impl Pair {
    fn new(key: u64, version: u64) -> Self {
        Self {
            key,
            version,
            check: Arc::new([key, version]),
        }
    }

    fn is_whole(&self) -> bool {
        *self.check == [self.key, self.version]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hammering_one_cache_loses_and_tears_nothing() {
    let cache: Cache<u64, Pair> = Cache::builder()
        .memory(|l1| l1.max_capacity(64)) // small: evictions and L2 promotion happen
        .fallback(Fallback::memory(|tier| tier))
        .build()
        .unwrap();
    const TASKS: u64 = 32;
    const KEYS_PER_TASK: u64 = 50;
    const ROUNDS: u64 = 20;

    let work = (0..TASKS).map(|task| {
        let cache = cache.clone();
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                for i in 0..KEYS_PER_TASK {
                    let key = task * 1_000 + i; // each task owns its keys
                    cache.insert(key, Pair::new(key, round)).await.unwrap();
                    let read = cache
                        .get(&key)
                        .await
                        .unwrap()
                        .expect("own write is visible");
                    assert!(read.is_whole());
                    assert_eq!((read.key, read.version), (key, round), "no lost update");
                    // Everyone also reads a shared key and loads another.
                    let shared = cache
                        .get_or_insert(&7, || async { Pair::new(7, 0) })
                        .await
                        .unwrap();
                    assert!(shared.is_whole() && shared.key == 7);
                }
            }
        })
    });
    let joined = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(work))
        .await
        .expect("the hammer finishes in time");
    for result in joined {
        result.unwrap();
    }
    // Every task's last write survives in some tier.
    for task in 0..TASKS {
        for i in 0..KEYS_PER_TASK {
            let key = task * 1_000 + i;
            assert_eq!(
                cache.get(&key).await.unwrap(),
                Some(Pair::new(key, ROUNDS - 1))
            );
        }
    }
}
