//! Stampede protection with real concurrency: many callers, one load.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::poll;
use stratacache::{Cache, ErrorKind, Fallback};
use stratacache_tier::mock::{MockTier, TierOp};

const CALLERS: usize = 1_000;
/// Wall-clock bound on every concurrent test: a hang fails instead of blocking CI.
const BOUND: Duration = Duration::from_secs(30);

fn protected() -> Cache<String, u64> {
    Cache::builder().stampede_protection(true).build().unwrap()
}

/// Waits until `count` reaches `target`, yielding to the runtime meanwhile.
async fn until(count: &AtomicUsize, target: usize) {
    while count.load(Ordering::SeqCst) < target {
        tokio::task::yield_now().await;
    }
}

/// Spawns `CALLERS` tasks that each call `call` once the previous poll has registered
/// them with the cache (the first poll of a miss joins the key's flight), and returns
/// their results.
async fn stampede<T, F, Fut>(joined: &Arc<AtomicUsize>, call: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let future = call();
            let joined = Arc::clone(joined);
            tokio::spawn(async move {
                let mut future = pin!(future);
                if let std::task::Poll::Ready(value) = poll!(&mut future) {
                    joined.fetch_add(1, Ordering::SeqCst);
                    return value;
                }
                joined.fetch_add(1, Ordering::SeqCst);
                future.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(CALLERS);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_callers_run_one_load() {
    let cache = protected();
    let loads = Arc::new(AtomicUsize::new(0));
    let joined = Arc::new(AtomicUsize::new(0));
    let results = tokio::time::timeout(
        BOUND,
        stampede(&joined, || {
            let (cache, loads, joined) = (cache.clone(), Arc::clone(&loads), Arc::clone(&joined));
            async move {
                cache
                    .get_or_insert("cold", || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        // Hold the load open until every caller has joined it.
                        until(&joined, CALLERS).await;
                        42
                    })
                    .await
            }
        }),
    )
    .await
    .expect("no caller hangs");
    assert_eq!(loads.load(Ordering::SeqCst), 1, "exactly one load");
    assert_eq!(results.len(), CALLERS);
    assert!(results.into_iter().all(|result| result.unwrap() == 42));
    let stats = cache.stats();
    assert_eq!(stats.loads, 1);
    assert_eq!(
        stats.coalesced_waits,
        CALLERS as u64 - 1,
        "all but the leader waited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_load_runs_once_and_fails_everyone() {
    let cache = protected();
    let loads = Arc::new(AtomicUsize::new(0));
    let joined = Arc::new(AtomicUsize::new(0));
    let results = tokio::time::timeout(
        BOUND,
        stampede(&joined, || {
            let (cache, loads, joined) = (cache.clone(), Arc::clone(&loads), Arc::clone(&joined));
            async move {
                cache
                    .try_get_or_insert("cold", || async move {
                        loads.fetch_add(1, Ordering::SeqCst);
                        until(&joined, CALLERS).await;
                        Err::<u64, _>(std::io::Error::other("database down"))
                    })
                    .await
            }
        }),
    )
    .await
    .expect("no caller hangs");
    assert_eq!(loads.load(Ordering::SeqCst), 1, "exactly one load");
    for result in results {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Loader);
        assert_eq!(error.message(), "database down");
    }
    assert_eq!(cache.get("cold").await.unwrap(), None, "nothing cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn different_keys_load_side_by_side() {
    // Each loader waits for the other to have started: serialised, they would deadlock.
    let cache = protected();
    let (a_started, b_started) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let load = |mine: Arc<AtomicBool>, other: Arc<AtomicBool>, key: &'static str| {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_insert(key, || async move {
                    mine.store(true, Ordering::SeqCst);
                    while !other.load(Ordering::SeqCst) {
                        tokio::task::yield_now().await;
                    }
                    1
                })
                .await
        })
    };
    let a = load(Arc::clone(&a_started), Arc::clone(&b_started), "a");
    let b = load(b_started, a_started, "b");
    let (a, b) = tokio::time::timeout(BOUND, async { (a.await, b.await) })
        .await
        .expect("loads of different keys must not wait on each other");
    assert_eq!((a.unwrap().unwrap(), b.unwrap().unwrap()), (1, 1));
}

#[tokio::test]
async fn a_cancelled_leader_hands_over_to_a_waiter() {
    let cache = protected();
    let mut leader = Box::pin(cache.get_or_insert("k", std::future::pending::<u64>));
    assert!(poll!(&mut leader).is_pending());
    let mut waiter = Box::pin(cache.get_or_insert("k", || async { 7 }));
    assert!(
        poll!(&mut waiter).is_pending(),
        "the waiter joins the leader's load"
    );
    drop(leader);
    let value = tokio::time::timeout(BOUND, waiter)
        .await
        .expect("the waiter never hangs");
    assert_eq!(value.unwrap(), 7, "the waiter ran its own loader");
    assert_eq!(cache.get("k").await.unwrap(), Some(7));
}

#[tokio::test]
async fn a_panicking_load_fails_its_waiters_without_hanging() {
    let cache = protected();
    let mut leader = Box::pin(cache.get_or_insert("k", || async {
        tokio::task::yield_now().await;
        panic!("loader bug")
    }));
    assert!(poll!(&mut leader).is_pending());
    let mut waiter = Box::pin(cache.get_or_insert("k", || async { 1 }));
    assert!(
        poll!(&mut waiter).is_pending(),
        "the waiter joins the leader's load"
    );
    let (leader, waiter) = tokio::join!(leader, waiter);
    for result in [leader, waiter] {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Loader);
        assert!(error.message().contains("loader bug"), "{error}");
    }
}

#[tokio::test]
async fn get_and_get_or_insert_of_one_key_coalesce() {
    let l2 = MockTier::<String, u64>::new();
    let cache: Cache<String, u64> = Cache::builder()
        .stampede_protection(true)
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut loading = Box::pin(cache.get_or_insert("k", {
        let gate = Arc::clone(&gate);
        || async move {
            gate.notified().await;
            5
        }
    }));
    assert!(poll!(&mut loading).is_pending());
    let mut reading = Box::pin(cache.get("k"));
    assert!(
        poll!(&mut reading).is_pending(),
        "the get waits on the load in flight"
    );
    gate.notify_one();
    assert_eq!(loading.await.unwrap(), 5);
    assert_eq!(
        reading.await.unwrap(),
        Some(5),
        "the get shares the loaded value"
    );
    assert_eq!(
        l2.count(TierOp::Get),
        1,
        "one lookup of L2 for both callers"
    );
}

#[tokio::test(start_paused = true)]
async fn loaders_waiting_on_a_plain_get_still_load_once() {
    let l2 = MockTier::<String, u64>::new();
    l2.delay(TierOp::Get, Duration::from_millis(10));
    let cache: Cache<String, u64> = Cache::builder()
        .stampede_protection(true)
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    let loads = AtomicUsize::new(0);
    let load = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        9
    };
    let (read, a, b) = tokio::join!(
        cache.get("k"),
        cache.get_or_insert("k", load),
        cache.get_or_insert("k", load)
    );
    assert_eq!(read.unwrap(), None, "the get led a lookup-only flight");
    assert_eq!((a.unwrap(), b.unwrap()), (9, 9));
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "the two loaders coalesced in the second stage"
    );
}

#[tokio::test]
async fn an_optional_loader_finding_nothing_does_not_starve_a_real_one() {
    let cache = protected();
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut optional = Box::pin(cache.optionally_get_or_insert("k", {
        let gate = Arc::clone(&gate);
        || async move {
            gate.notified().await;
            None
        }
    }));
    assert!(poll!(&mut optional).is_pending());
    let mut real = Box::pin(cache.get_or_insert("k", || async { 3 }));
    assert!(poll!(&mut real).is_pending());
    gate.notify_one();
    assert_eq!(optional.await.unwrap(), None);
    assert_eq!(real.await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn waiting_callers_are_counted_as_they_join_not_when_the_load_ends() {
    let cache = protected();
    let leader = tokio::spawn({
        let cache = cache.clone();
        async move {
            cache
                .get_or_insert("k", || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    1
                })
                .await
        }
    });
    tokio::task::yield_now().await;
    let waiters: Vec<_> = (0..9)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get_or_insert("k", || async { 2 }).await })
        })
        .collect();
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        cache.stats().coalesced_waits,
        9,
        "nine callers are waiting on the load right now"
    );
    assert_eq!(leader.await.unwrap().unwrap(), 1);
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap().unwrap(), 1);
    }
    assert_eq!(cache.stats().coalesced_waits, 9, "and counted once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loading_cache_runs_one_load_for_concurrent_gets() {
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&loads);
    let cache: Cache<String, u64> = Cache::builder()
        .stampede_protection(true)
        .loader(move |_key: String| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::io::Error>(Some(42))
            }
        })
        .build()
        .unwrap();
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("k").await })
        })
        .collect();
    tokio::time::timeout(BOUND, async {
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), Some(42));
        }
    })
    .await
    .unwrap();
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "one load for 100 concurrent gets"
    );
}

#[tokio::test]
async fn waiters_of_a_successful_load_take_its_value_without_looking_again() {
    let l2 = MockTier::<String, u64>::new();
    let cache: Cache<String, u64> = Cache::builder()
        .stampede_protection(true)
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    let loads = Arc::new(AtomicUsize::new(0));
    let mut callers: Vec<_> = (0..10)
        .map(|_| {
            let (gate, loads) = (Arc::clone(&gate), Arc::clone(&loads));
            Box::pin(cache.get_or_insert("k", move || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                gate.notified().await;
                7
            }))
        })
        .collect();
    for caller in &mut callers {
        assert!(poll!(caller).is_pending(), "all join the one flight");
    }
    gate.notify_one();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 7);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(
        l2.count(TierOp::Get),
        1,
        "one lookup of L2 for all ten callers"
    );
    assert_eq!(
        cache.stats().tiers[1].hits + cache.stats().tiers[1].misses,
        1
    );
}

/// A caller that missed L1 just as the key's flight ended finds the value in L1 when it
/// leads the next flight, and loads nothing: with a load that only yields, callers keep
/// arriving around the end of flights.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_arriving_as_a_flight_ends_do_not_load_again() {
    let cache = protected();
    let loads = Arc::new(AtomicUsize::new(0));
    for round in 0..2_000 {
        let key = format!("key {round}");
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let (cache, loads, key) = (cache.clone(), Arc::clone(&loads), key.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_insert(&key, || async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            7
                        })
                        .await
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), 7);
        }
        assert_eq!(
            loads.load(Ordering::SeqCst),
            round + 1,
            "round {round}: one load"
        );
    }
}
