//! The distributed stampede lock: instances missing one key load it once between them;
//! a dead holder delays the others by the lock's TTL at most.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use stratacache::mock::{MockBackplane, MockLock};
use stratacache::{Cache, DistributedLock, Fallback, MemoryTier, Remote};
use stratacache_redis::{RedisBackplane, RedisConfig, RedisLock, RedisStore};
use stratacache_testkit::RedisServer;
use tokio::sync::Semaphore;

/// An instance over the shared `l2`, loading `"row {key}"` after `gate` lets it (when
/// given), counting its loads in `loads`.
fn instance(
    l2: &MemoryTier<u64, String>,
    lock: &MockLock,
    backplane: Option<&MockBackplane>,
    gate: Option<Arc<Semaphore>>,
    loads: &Arc<AtomicUsize>,
) -> Cache<u64, String> {
    let loads = Arc::clone(loads);
    let mut builder = Cache::builder()
        .fallback(Fallback::tier(l2.clone()))
        .loader(move |key: u64| {
            let (loads, gate) = (Arc::clone(&loads), gate.clone());
            async move {
                loads.fetch_add(1, Ordering::SeqCst);
                if let Some(gate) = gate {
                    gate.acquire().await.unwrap().forget();
                }
                Ok::<_, std::io::Error>(Some(format!("row {key}")))
            }
        })
        .distributed_lock(lock.clone(), Duration::from_secs(5));
    if let Some(backplane) = backplane {
        builder = builder.backplane(backplane.clone());
    }
    builder.build().unwrap()
}

/// `a`'s `get` of key 1, spawned and awaited until it holds the lock and loads (its
/// loader counts in `loads`).
async fn loading_under_the_lock(
    a: &Cache<u64, String>,
    loads: &AtomicUsize,
    lock: &MockLock,
) -> tokio::task::JoinHandle<Result<Option<String>, stratacache::Error>> {
    let a_get = tokio::spawn({
        let a = a.clone();
        async move { a.get(&1).await }
    });
    while loads.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await; // a holds the lock and loads
    }
    assert_eq!(lock.held(), 1);
    a_get
}

async fn one_load_between_two_instances(with_backplane: bool) {
    let (l2, lock, backplane) = (MemoryTier::new(100), MockLock::new(), MockBackplane::new());
    let backplane = with_backplane.then_some(&backplane);
    let (a_loads, b_loads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let gate = Arc::new(Semaphore::new(0));
    let a = instance(&l2, &lock, backplane, Some(Arc::clone(&gate)), &a_loads);
    let b = instance(&l2, &lock, backplane, None, &b_loads);
    tokio::task::yield_now().await; // both subscribe

    let a_get = loading_under_the_lock(&a, &a_loads, &lock).await;
    let b_get = tokio::spawn({
        let b = b.clone();
        async move { b.get(&1).await }
    });
    while b.stats().lock_waits == 0 {
        tokio::task::yield_now().await; // b found the lock held
    }
    gate.add_permits(1);
    assert_eq!(a_get.await.unwrap().unwrap().as_deref(), Some("row 1"));
    assert_eq!(b_get.await.unwrap().unwrap().as_deref(), Some("row 1"));
    assert_eq!(
        b_loads.load(Ordering::SeqCst),
        0,
        "b took a's value from L2"
    );
    assert_eq!((a.stats().loads, b.stats().loads), (1, 0));
    assert_eq!(lock.held(), 0, "released");
}

#[tokio::test(start_paused = true)]
async fn two_instances_load_a_key_once_told_by_the_backplane() {
    one_load_between_two_instances(true).await;
}

#[tokio::test(start_paused = true)]
async fn two_instances_load_a_key_once_looking_again_without_a_backplane() {
    one_load_between_two_instances(false).await;
}

#[tokio::test(start_paused = true)]
async fn a_dead_holder_delays_the_others_by_the_lock_ttl_at_most() {
    let (l2, lock) = (MemoryTier::new(100), MockLock::new());
    let loads = Arc::new(AtomicUsize::new(0));
    let cache = instance(&l2, &lock, None, None, &loads);
    // An instance that took the lock and died.
    let name = Bytes::from(postcard::to_allocvec(&1_u64).unwrap());
    lock.try_lock(name, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();

    let started = tokio::time::Instant::now();
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("row 1"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert_eq!(cache.stats().lock_timeouts, 1);
    assert_eq!(loads.load(Ordering::SeqCst), 1, "then it loads anyway");
}

/// Waits (yielding, at most a few rounds) until `lock` holds nothing.
async fn until_released(lock: &MockLock) {
    for _ in 0..20 {
        if lock.held() == 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_load_whose_caller_went_away_releases_the_lock() {
    let (l2, lock) = (MemoryTier::new(100), MockLock::new());
    let (a_loads, b_loads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let gate = Arc::new(Semaphore::new(0));
    let a = instance(&l2, &lock, None, Some(Arc::clone(&gate)), &a_loads);
    let a_get = loading_under_the_lock(&a, &a_loads, &lock).await;
    a_get.abort(); // a timeout, a client gone
    assert!(a_get.await.unwrap_err().is_cancelled());
    until_released(&lock).await;
    assert_eq!(lock.held(), 0, "released by the dropped load");

    // So another instance loads at once, rather than waiting out the lock's 5 s.
    let b = instance(&l2, &lock, None, None, &b_loads);
    let started = tokio::time::Instant::now();
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("row 1"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(b.stats().lock_waits, 0);
}

#[tokio::test(start_paused = true)]
async fn a_loader_that_panics_releases_the_lock() {
    let (l2, lock) = (MemoryTier::<u64, String>::new(100), MockLock::new());
    let cache: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::tier(l2))
        .loader(|key: u64| async move {
            assert_ne!(key, 1, "the loader broke");
            Ok::<_, std::io::Error>(Some(format!("row {key}")))
        })
        .distributed_lock(lock.clone(), Duration::from_secs(5))
        .build()
        .unwrap();
    let get = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get(&1).await }
    });
    assert!(get.await.unwrap_err().is_panic());
    until_released(&lock).await;
    assert_eq!(lock.held(), 0, "released while the panic unwound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_lock_is_exclusive_token_checked_and_expires() {
    let server = RedisServer::start().unwrap();
    let lock = RedisLock::new(RedisConfig::from_url(server.url()).namespace("locks")).unwrap();
    let (name, ttl) = (Bytes::from_static(b"k"), Duration::from_millis(200));
    let token = lock
        .try_lock(name.clone(), ttl)
        .await
        .unwrap()
        .expect("free");
    assert_eq!(
        lock.try_lock(name.clone(), ttl).await.unwrap(),
        None,
        "held"
    );
    lock.unlock(name.clone(), token + 1).await.unwrap();
    assert_eq!(
        lock.try_lock(name.clone(), ttl).await.unwrap(),
        None,
        "not by another token"
    );
    lock.unlock(name.clone(), token).await.unwrap();
    let again = lock
        .try_lock(name.clone(), ttl)
        .await
        .unwrap()
        .expect("released");
    // Real time: Redis expires the key itself.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        lock.try_lock(name.clone(), ttl).await.unwrap().is_some(),
        "expired"
    );
    lock.unlock(name, again).await.unwrap(); // a stale token releases nothing, no error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_whose_set_timed_out_on_a_stalled_server_is_released_when_it_resumes() {
    let server = RedisServer::start().unwrap();
    let config = RedisConfig::from_url(server.url())
        .namespace("locks")
        .command_timeout(Duration::from_millis(200));
    let (ours, theirs) = (
        RedisLock::new(config.clone()).unwrap(),
        RedisLock::new(config).unwrap(),
    );
    let name = Bytes::from_static(b"k");
    // Connected before the stall.
    let token = ours.try_lock(name.clone(), Duration::from_secs(30)).await;
    ours.unlock(name.clone(), token.unwrap().unwrap())
        .await
        .unwrap();

    server.pause().unwrap();
    let timed_out = ours.try_lock(name.clone(), Duration::from_secs(30)).await;
    assert!(timed_out.is_err(), "the stalled server did not answer");
    server.resume().unwrap();
    // The `SET` lands once the server resumes, and the release sent after it too: the
    // lock is free long before its 30 s TTL.
    let mut free = false;
    for _ in 0..100 {
        if let Ok(Some(token)) = theirs.try_lock(name.clone(), Duration::from_secs(30)).await {
            theirs.unlock(name.clone(), token).await.unwrap();
            free = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(free, "nobody holds a lock nobody knows of");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_over_redis_load_a_key_once() {
    let server = RedisServer::start().unwrap();
    let config = RedisConfig::from_url(server.url()).namespace("stampede");
    let loads = Arc::new(AtomicUsize::new(0));
    let instance = || {
        let loads = Arc::clone(&loads);
        Cache::<u64, String>::builder()
            .fallback(Fallback::remote(Remote::new(
                RedisStore::new(config.clone()).unwrap(),
            )))
            .backplane(RedisBackplane::new(config.clone()).unwrap())
            .stampede_protection(true)
            .distributed_lock(
                RedisLock::new(config.clone()).unwrap(),
                Duration::from_secs(5),
            )
            .loader(move |key: u64| {
                let loads = Arc::clone(&loads);
                async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    // Real time: a database query the other instances overlap with.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, std::io::Error>(Some(format!("row {key}")))
                }
            })
            .build()
            .unwrap()
    };
    let instances: Vec<_> = (0..3).map(|_| instance()).collect();
    let subscribed = || {
        server
            .cli(&["PUBSUB", "NUMSUB", "stampede:backplane"])
            .unwrap()
    };
    while subscribed().lines().nth(1) != Some("3") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // 100 concurrent misses on each of three instances.
    let gets: Vec<_> = instances
        .iter()
        .flat_map(|cache| (0..100).map(move |_| cache.clone()))
        .map(|cache| tokio::spawn(async move { cache.get(&7).await }))
        .collect();
    for get in gets {
        assert_eq!(get.await.unwrap().unwrap().as_deref(), Some("row 7"));
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "one load for 300 callers on three instances"
    );
}
