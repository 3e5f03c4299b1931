//! Many instances, one truth: writes announced on a backplane drop the other instances'
//! L1 copies; a lost subscription drops all of L1. In process (the mock backplane, for
//! fault injection) and over a real Redis.

use std::time::Duration;

use bytes::Bytes;
use stratacache::mock::{MemoryStore, MockBackplane, SwitchedStore};
use stratacache::{Backplane, Cache, CacheTier, Fallback, MemoryTier, Remote};
use stratacache_redis::{RedisBackplane, RedisConfig, RedisStore};
use stratacache_testkit::RedisServer;

/// Two instances over one shared L2 and one backplane.
fn replicas<T>(l2: &T, backplane: &MockBackplane) -> [Cache<u64, String>; 2]
where
    T: CacheTier<u64, String> + Clone,
{
    let replica = || {
        Cache::builder()
            .fallback(Fallback::tier(l2.clone()))
            .backplane(backplane.clone())
            .build()
            .unwrap()
    };
    [replica(), replica()]
}

/// Waits (bounded) until `done` holds, letting the listening tasks run.
async fn until(what: &str, done: impl Fn() -> bool) {
    let (every, within) = (Duration::from_millis(1), Duration::from_secs(10));
    stratacache_testkit::until(what, every, within, done).await;
}

#[tokio::test]
async fn a_write_on_one_instance_drops_the_others_copy() {
    let (l2, backplane) = (MemoryTier::new(100), MockBackplane::new());
    let [a, b] = replicas(&l2, &backplane);
    tokio::task::yield_now().await; // both subscribe
    a.insert(1, "old".into()).await.unwrap();
    // Announcements are sent in the background: the write does not wait for them.
    until("b heard the first write", || {
        b.stats().backplane_received == 1
    })
    .await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("old"));

    a.insert(1, "new".into()).await.unwrap();
    until("b heard the write", || b.stats().backplane_received == 2).await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("new"));

    a.invalidate(&1).await.unwrap();
    until("b heard the invalidation", || {
        b.stats().backplane_received == 3
    })
    .await;
    assert_eq!(b.get(&1).await.unwrap(), None);

    // An instance ignores its own announcements: a keeps its L1.
    assert_eq!(a.stats().backplane_received, 0);
    assert_eq!(a.stats().backplane_sent, 3);
}

/// A shared tier whose next insert, once armed, stores and then waits for a signal:
/// the write has reached the shared tier and not yet L1.
#[derive(Clone)]
struct LandsThenWaits {
    inner: MemoryTier<u64, String>,
    hold: std::sync::Arc<std::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>>,
}

impl CacheTier<u64, String> for LandsThenWaits {
    async fn get(
        &self,
        key: &u64,
    ) -> Result<Option<stratacache::CacheEntry<String>>, stratacache::Error> {
        self.inner.get(key).await
    }

    async fn insert(
        &self,
        key: u64,
        entry: stratacache::CacheEntry<String>,
        keep_for: Option<Duration>,
    ) -> Result<(), stratacache::Error> {
        self.inner.insert(key, entry, keep_for).await?;
        let hold = self.hold.lock().unwrap().take();
        if let Some(hold) = hold {
            let _ = hold.await;
        }
        Ok(())
    }

    async fn invalidate(&self, key: &u64) -> Result<(), stratacache::Error> {
        self.inner.invalidate(key).await
    }

    async fn clear(&self) -> Result<(), stratacache::Error> {
        self.inner.clear().await
    }
}

#[tokio::test]
async fn a_write_that_hears_another_instances_write_of_the_key_keeps_no_l1_copy() {
    // a's write reaches the shared tier first, b's lands over it and is announced, and
    // only then does a's write go on to its L1: the shared tier holds b's value, so a
    // must not keep its own in L1, where no announcement would ever drop it.
    let l2 = LandsThenWaits {
        inner: MemoryTier::new(100),
        hold: std::sync::Arc::default(),
    };
    let backplane = MockBackplane::new();
    let [a, b] = replicas(&l2, &backplane);
    tokio::task::yield_now().await;
    let (release, hold) = tokio::sync::oneshot::channel();
    *l2.hold.lock().unwrap() = Some(hold);
    let writing = tokio::spawn({
        let a = a.clone();
        async move { a.insert(1, "a".into()).await.unwrap() }
    });
    until("a's value reached the shared tier", || {
        l2.inner.lookup(&1).is_some()
    })
    .await;
    b.insert(1, "b".into()).await.unwrap();
    until("a heard b's write", || a.stats().backplane_received == 1).await;
    release.send(()).unwrap();
    let outcome = writing.await.unwrap();
    assert!(
        matches!(
            outcome.tiers()[0].result(),
            stratacache::TierWriteResult::Dropped
        ),
        "a's L1 keeps no copy: {outcome:?}"
    );
    let shared = l2.inner.lookup(&1).map(|entry| entry.value().clone());
    assert_eq!(shared.as_deref(), Some("b"));
    assert_eq!(
        a.get(&1).await.unwrap().as_deref(),
        Some("b"),
        "a reads what is shared"
    );
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("b"));
}

#[tokio::test]
async fn a_clear_on_one_instance_empties_the_others_l1() {
    let (l2, backplane) = (MemoryTier::new(100), MockBackplane::new());
    let [a, b] = replicas(&l2, &backplane);
    tokio::task::yield_now().await;
    b.insert(1, "one".into()).await.unwrap();
    b.insert(2, "two".into()).await.unwrap();
    a.clear().await.unwrap();
    until("b heard the clear", || b.stats().backplane_received == 1).await;
    assert_eq!(b.l1_len(), Some(0));
}

#[tokio::test]
async fn a_lost_subscription_drops_l1_and_resubscribes() {
    let (l2, backplane) = (MemoryTier::new(100), MockBackplane::new());
    let [a, b] = replicas(&l2, &backplane);
    tokio::task::yield_now().await;
    b.insert(1, "one".into()).await.unwrap();
    assert_eq!(b.l1_len(), Some(1));

    backplane.cut();
    until("b noticed the gap", || b.stats().backplane_gaps == 1).await;
    assert_eq!(b.l1_len(), Some(0), "what may have been missed is dropped");

    // Subscribed again: announcements flow.
    tokio::time::sleep(Duration::from_millis(10)).await;
    b.get(&1).await.unwrap();
    a.insert(1, "after".into()).await.unwrap();
    until("b heard the write", || b.stats().backplane_received == 1).await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("after"));
}

#[tokio::test]
async fn a_failed_announcement_or_a_foreign_message_is_counted_and_drops_l1() {
    let (l2, backplane) = (MemoryTier::new(100), MockBackplane::new());
    let [a, b] = replicas(&l2, &backplane);
    tokio::task::yield_now().await;
    backplane.set_down(true);
    let outcome = a.insert(1, "one".into()).await.unwrap();
    assert!(outcome.is_complete(), "the write stands");
    until("the sender met the failure", || {
        a.stats().backplane_errors >= 1
    })
    .await;
    backplane.set_down(false);
    // The refused announcement is sent again, with the next.
    a.insert(2, "two".into()).await.unwrap();
    until("b heard both", || b.stats().backplane_received == 2).await;
    assert_eq!(a.stats().backplane_sent, 2);

    b.get(&1).await.unwrap();
    assert_eq!(b.l1_len(), Some(1));
    for garbage in [
        &b""[..],
        b"\x01",
        b"\x09\x01garbage!",
        b"\x01\x08\0\0\0\0\0\0\0\0",
        // A batch whose first announcement claims more bytes than it has.
        b"\x01\x06\0\0\0\0\0\0\0\0\xff\xff\xff\xff\x01",
    ] {
        backplane
            .publish(Bytes::copy_from_slice(garbage))
            .await
            .unwrap();
    }
    until("b read them", || b.stats().backplane_errors == 5).await;
    assert_eq!(b.stats().backplane_received, 2);
    assert_eq!(
        b.l1_len(),
        Some(0),
        "what an unreadable message announced is unknown: L1 is dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_over_redis_stay_coherent_and_survive_a_restart() {
    let mut server = RedisServer::start().unwrap();
    let config = RedisConfig::from_url(server.url())
        .namespace("replicas")
        .command_timeout(Duration::from_millis(200));
    let replica = || {
        Cache::<u64, String>::builder()
            .fallback(Fallback::remote(Remote::new(
                RedisStore::new(config.clone()).unwrap(),
            )))
            .backplane(RedisBackplane::new(config.clone()).unwrap())
            .build()
            .unwrap()
    };
    let (a, b) = (replica(), replica());
    // Until b's subscription holds, announcements go unheard: wait for it.
    let subscribed = || {
        server
            .cli(&["PUBSUB", "NUMSUB", "replicas:backplane"])
            .unwrap()
    };
    until("both subscribed", || {
        subscribed().lines().nth(1) == Some("2")
    })
    .await;

    a.insert(1, "old".into()).await.unwrap();
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("old"));
    let heard = b.stats().backplane_received;
    a.insert(1, "new".into()).await.unwrap();
    until("b heard the write", || b.stats().backplane_received > heard).await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("new"));

    server.stop();
    until("b noticed the gap", || b.stats().backplane_gaps >= 1).await;
    assert_eq!(b.l1_len(), Some(0));
    server.restart().unwrap();
    until("both subscribed again", || {
        server
            .cli(&["PUBSUB", "NUMSUB", "replicas:backplane"])
            .is_ok_and(|answer| answer.lines().nth(1) == Some("2"))
    })
    .await;
    b.insert(2, "b's".into()).await.unwrap();
    assert_eq!(b.get(&2).await.unwrap().as_deref(), Some("b's"));
    let outcome = a.insert(2, "a's".into()).await.unwrap();
    assert!(
        outcome.is_complete(),
        "the first command after the restart is retried"
    );
    // Announcements refused during the outage may arrive first: wait for this one.
    let crossed = async {
        while b.get(&2).await.unwrap().as_deref() != Some("a's") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), crossed)
        .await
        .expect("b reads a's write after the restart");
}

#[tokio::test(start_paused = true)]
async fn a_write_dropped_half_way_is_announced_too() {
    use stratacache::mock::{MockTier, TierOp};
    let (l2, backplane) = (MockTier::<u64, String>::new(), MockBackplane::new());
    let [a, b] = replicas(&l2, &backplane);
    tokio::task::yield_now().await;
    b.insert(1, "old".into()).await.unwrap();
    until("a heard b", || a.stats().backplane_received == 1).await;
    assert_eq!(b.l1_len(), Some(1));

    // a's write stalls in L2 and its caller gives up: it may have reached L2.
    l2.delay(TierOp::Insert, Duration::from_secs(10));
    let gave_up = tokio::time::timeout(Duration::from_millis(10), a.insert(1, "new".into())).await;
    assert!(gave_up.is_err());
    until("b heard the unfinished write", || {
        b.stats().backplane_received == 1
    })
    .await;
    assert_eq!(b.l1_len(), Some(0), "b dropped its copy");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_subscription_is_found_out_by_the_heartbeat() {
    let (l2, backplane) = (MemoryTier::new(100), MockBackplane::new());
    let replica = || {
        Cache::<u64, String>::builder()
            .fallback(Fallback::tier(l2.clone()))
            .backplane(backplane.clone())
            .backplane_heartbeat(Duration::from_millis(100))
            .build()
            .unwrap()
    };
    let (a, b) = (replica(), replica());
    tokio::time::sleep(Duration::from_millis(10)).await; // both subscribed
    a.insert(1, "old".into()).await.unwrap();
    until("b heard the write", || b.stats().backplane_received == 1).await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("old"));
    // A quiet channel over a live subscription: checks pass, nothing is dropped.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(b.stats().backplane_gaps, 0);
    assert_eq!(b.l1_len(), Some(1));

    // b's connection hangs without closing: a's next write never reaches it.
    backplane.stall();
    a.insert(1, "new".into()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(b.stats().backplane_received, 1, "lost to b");
    assert_eq!(
        b.get(&1).await.unwrap().as_deref(),
        Some("old"),
        "the window a stall opens"
    );
    // Within two heartbeats, the check that never answers gives the stall away.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(b.stats().backplane_gaps, 1);
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("new"));

    // Subscribed again: announcements reach b.
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.insert(1, "newer".into()).await.unwrap();
    until("b heard the write", || b.stats().backplane_received == 2).await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("newer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_is_found_out_and_l1_distrusted() {
    let server = RedisServer::start().unwrap();
    let config = RedisConfig::from_url(server.url())
        .namespace("stalled")
        .command_timeout(Duration::from_millis(100));
    let b = Cache::<u64, String>::builder()
        .fallback(Fallback::remote(Remote::new(
            RedisStore::new(config.clone()).unwrap(),
        )))
        .backplane(RedisBackplane::new(config.clone()).unwrap())
        .backplane_heartbeat(Duration::from_millis(100))
        .build()
        .unwrap();
    until("b subscribed", || {
        server
            .cli(&["PUBSUB", "NUMSUB", "stalled:backplane"])
            .unwrap()
            .lines()
            .nth(1)
            == Some("1")
    })
    .await;
    b.insert(1, "one".into()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        b.stats().backplane_gaps,
        0,
        "a live, quiet subscription passes its checks"
    );
    assert_eq!(b.l1_len(), Some(1));

    // SIGSTOP: the connection stays open, and nothing comes through it.
    server.pause().unwrap();
    until("b found the stall", || b.stats().backplane_gaps >= 1).await;
    assert_eq!(b.l1_len(), Some(0), "what may have been missed is dropped");
    server.resume().unwrap();
    until("b subscribed again", || {
        server
            .cli(&["PUBSUB", "NUMSUB", "stalled:backplane"])
            .is_ok_and(|answer| answer.lines().nth(1) == Some("1"))
    })
    .await;
}

#[tokio::test]
async fn what_a_dropped_instance_wrote_last_is_still_announced() {
    let (l2, backplane) = (MemoryTier::new(100), MockBackplane::new());
    let [a, b] = replicas(&l2, &backplane);
    tokio::task::yield_now().await;
    b.insert(1, "old".into()).await.unwrap();
    a.insert(1, "new".into()).await.unwrap();
    drop(a); // before its sender ran
    until("b heard the write", || b.stats().backplane_received == 1).await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("new"));
}

/// Two instances over one store (`a` sees it through a switch it can lose) and one
/// backplane, with one clock; both subscribed.
async fn cut_off_pair(
    clock: &stratacache::FrozenClock,
    backplane: &MockBackplane,
) -> (
    SwitchedStore<MemoryStore>,
    Cache<u64, String>,
    Cache<u64, String>,
) {
    let shared = MemoryStore::new();
    let a_view = SwitchedStore::new(shared.clone());
    let instance = |store: Remote<_>| {
        Cache::builder()
            .clock(clock)
            .fallback(Fallback::remote(store))
            .backplane(backplane.clone())
            .backplane_heartbeat(Duration::from_millis(100))
            .build()
            .unwrap()
    };
    let (a, b) = (
        instance(Remote::new(a_view.clone())),
        instance(Remote::new(SwitchedStore::new(shared))),
    );
    // Subscribed (in the background): each hears the other. Announcements made before
    // a subscription are lost to it, so they are made until both have heard one.
    let heard = || a.stats().backplane_received > 0 && b.stats().backplane_received > 0;
    for _ in 0..2_000 {
        a.insert(u64::MAX, String::new()).await.unwrap();
        b.insert(u64::MAX - 1, String::new()).await.unwrap();
        if heard() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(heard(), "both subscribed");
    (a_view, a, b)
}

/// `first` writes key 1, then (1 ms later) `second` writes it while its store is cut off
/// (its write waits for recovery); `first`'s announcement reaches `second` only after
/// that. Once `a`'s store is back and the replay has run, what do both read, and was
/// `a`'s change replayed (`true`) or dropped?
async fn late_announcement(a_writes_first: bool) -> ([Option<String>; 2], bool) {
    let (clock, backplane) = (stratacache::FrozenClock::new(), MockBackplane::new());
    let (a_view, a, b) = cut_off_pair(&clock, &backplane).await;
    let (heard_by_a, heard_by_b) = (a.stats().backplane_received, b.stats().backplane_received);
    a_view.set_down(true);
    backplane.set_down(true); // announcements wait in the outboxes
    let (first, second) = if a_writes_first { (&a, &b) } else { (&b, &a) };
    first.insert(1, "first".into()).await.unwrap();
    clock.advance(Duration::from_millis(1));
    second.insert(1, "second".into()).await.unwrap();
    backplane.set_down(false);
    until("each heard the other", || {
        a.stats().backplane_received > heard_by_a && b.stats().backplane_received > heard_by_b
    })
    .await;
    a_view.set_down(false);
    a.get(&99).await.unwrap(); // the store answers: the replay starts
    until("replayed", || {
        let stats = a.stats();
        stats.recovery_replayed + stats.recovery_dropped > 0
    })
    .await;
    let replayed = a.stats().recovery_replayed > 0;
    (
        [a.get(&1).await.unwrap(), b.get(&1).await.unwrap()],
        replayed,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_waiting_for_a_tier_stands_against_an_older_write_heard_late() {
    // b's write (first) is older than a's (second), which waited for the store: hearing
    // b's late announcement must not throw a's away.
    let (read, replayed) = late_announcement(false).await;
    assert_eq!(read, [Some("second".into()), Some("second".into())]);
    assert!(replayed, "a's change reached the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_waiting_for_a_tier_gives_way_to_a_newer_write() {
    // a's write (first) waited for the store; b's (second) is newer: the replay of a's
    // must not land over it.
    let (read, replayed) = late_announcement(true).await;
    assert_eq!(read, [Some("second".into()), Some("second".into())]);
    assert!(!replayed, "the store refused a's older change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_write_is_announced_so_no_instance_keeps_what_it_replaced() {
    let (clock, backplane) = (stratacache::FrozenClock::new(), MockBackplane::new());
    let (a_view, a, b) = cut_off_pair(&clock, &backplane).await;
    b.insert(1, "old".into()).await.unwrap();
    a_view.set_down(true);
    clock.advance(Duration::from_millis(1));
    let heard = b.stats().backplane_received;
    a.insert(1, "new".into()).await.unwrap(); // waits for a's store
    until("b heard a's write", || b.stats().backplane_received > heard).await;
    // The shared store still holds "old": b reads it into its L1.
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("old"));

    let heard = b.stats().backplane_received;
    a_view.set_down(false);
    a.get(&99).await.unwrap(); // a's store answers: the replay starts
    until("replayed", || a.stats().recovery_replayed > 0).await;
    until("b heard the replay", || {
        b.stats().backplane_received > heard
    })
    .await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("new"));
    assert_eq!(a.get(&1).await.unwrap().as_deref(), Some("new"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_gap_a_waiting_change_gives_way_to_a_newer_write_that_went_unheard() {
    let (clock, backplane) = (stratacache::FrozenClock::new(), MockBackplane::new());
    let (a_view, a, b) = cut_off_pair(&clock, &backplane).await;
    a_view.set_down(true);
    a.insert(1, "a's".into()).await.unwrap(); // waits for a's store
    assert_eq!(a.get(&1).await.unwrap().as_deref(), Some("a's"));

    // The subscriptions hang: b's newer write is announced, and lost to a.
    tokio::time::sleep(Duration::from_millis(50)).await; // the setup's announcements land
    let (gaps, heard) = (a.stats().backplane_gaps, a.stats().backplane_received);
    backplane.stall();
    clock.advance(Duration::from_millis(1));
    b.insert(1, "b's, newer".into()).await.unwrap();
    until("a's heartbeat found the gap", || {
        a.stats().backplane_gaps > gaps
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await; // a subscribes again
    assert_eq!(
        a.stats().backplane_received,
        heard,
        "a never heard b's write"
    );

    // a's change may be older than what it missed: the store, once back, decides.
    a_view.set_down(false);
    assert_eq!(a.get(&1).await.unwrap().as_deref(), Some("b's, newer"));
    until("a's change was replayed or dropped", || {
        let stats = a.stats();
        stats.recovery_replayed + stats.recovery_dropped > 0
    })
    .await;
    assert_eq!(
        a.stats().recovery_dropped,
        1,
        "the store held a newer entry"
    );
    assert_eq!(a.get(&1).await.unwrap().as_deref(), Some("b's, newer"));
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("b's, newer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_that_overflowed_tells_the_others_to_drop_l1_not_their_waiting_changes() {
    let (clock, backplane) = (stratacache::FrozenClock::new(), MockBackplane::new());
    let (a_view, a, b) = cut_off_pair(&clock, &backplane).await;
    a_view.set_down(true);
    a.insert(1, "a's".into()).await.unwrap(); // waits for a's store

    // b's announcements cannot go out, and pile up past what its outbox keeps.
    backplane.set_down(true);
    for key in 1_000..11_001 {
        b.insert(key, "b's".into()).await.unwrap();
    }
    let heard = a.stats().backplane_received;
    backplane.set_down(false);
    until("a heard b's outbox overflowed", || {
        a.stats().backplane_received > heard
    })
    .await;

    a_view.set_down(false);
    a.get(&99).await.unwrap(); // a's store answers: the replay starts
    until("replayed", || a.stats().recovery_replayed > 0).await;
    assert_eq!(
        b.get(&1).await.unwrap().as_deref(),
        Some("a's"),
        "a's change was kept, and reached the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_change_is_replayed_even_if_only_its_own_key_is_read() {
    let (clock, backplane) = (stratacache::FrozenClock::new(), MockBackplane::new());
    let (a_view, a, b) = cut_off_pair(&clock, &backplane).await;
    a_view.set_down(true);
    a.insert(1, "a's".into()).await.unwrap(); // waits for a's store
    a_view.set_down(false);
    // a reads key 1 only: the waiting change answers, and the store is never asked.
    until("replayed on a timer", || {
        assert!(
            futures::FutureExt::now_or_never(a.get(&1)).is_some_and(|read| read.is_ok()),
            "answered in place"
        );
        a.stats().recovery_replayed > 0
    })
    .await;
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("a's"));
}
