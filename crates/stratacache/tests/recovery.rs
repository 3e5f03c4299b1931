//! Auto-recovery: changes a remote tier could not take wait for it, are what reads of it
//! see meanwhile, and are replayed when it answers again, unless something newer is
//! already there.

use std::time::Duration;

use stratacache::mock::{MockTier, TierOp};
use stratacache::{
    Cache, CacheEntry, CacheTier, ErrorKind, Fallback, FrozenClock, Options, TierWriteResult,
};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_testkit::RedisServer;

fn cache(clock: &FrozenClock, l2: &MockTier<u64, String>, capacity: usize) -> Cache<u64, String> {
    Cache::builder()
        .clock(clock)
        .fallback(Fallback::tier(l2.clone()).auto_recovery(capacity))
        .build()
        .unwrap()
}

fn in_l2(l2: &MockTier<u64, String>, key: u64) -> Option<String> {
    l2.peek(&key).map(CacheEntry::into_value)
}

/// Answers once `done` holds, waiting on the background replay (bounded).
async fn until(done: impl Fn() -> bool) {
    let wait = async {
        while !done() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("the replay finished");
}

#[tokio::test]
async fn a_queued_invalidation_hides_the_old_value_and_is_replayed() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = cache(&clock, &l2, 100);
    cache.insert(1, "old".into()).await.unwrap();
    l2.fail(TierOp::Invalidate, ErrorKind::Timeout);
    let outcome = cache.invalidate(&1).await.unwrap();
    assert!(matches!(
        outcome.tiers()[1].result(),
        TierWriteResult::Queued(_)
    ));

    // L2 still holds "old", but no read gets it back.
    assert_eq!(in_l2(&l2, 1).as_deref(), Some("old"));
    assert_eq!(cache.get(&1).await.unwrap(), None);
    let below = cache.with(Options::new().skip_l1());
    assert_eq!(below.get(&1).await.unwrap(), None);
    assert_eq!(cache.get_many(&[1]).await.unwrap(), [None]);

    l2.heal();
    cache.get(&99).await.unwrap(); // L2 answers: the replay starts
    until(|| cache.stats().recovery_replayed == 1).await;
    assert_eq!(in_l2(&l2, 1), None);
}

#[tokio::test]
async fn the_latest_change_wins_and_a_later_write_settles_it() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = cache(&clock, &l2, 100);
    l2.fail(TierOp::Insert, ErrorKind::Unavailable);
    cache.insert(1, "v1".into()).await.unwrap();
    cache.insert(1, "v2".into()).await.unwrap();
    cache.insert(2, "queued".into()).await.unwrap();
    assert_eq!(cache.stats().recovery_queued, 3);
    // Three changes queued, two waiting: one per key.
    assert_eq!(
        (
            cache.stats().tiers[0].waiting,
            cache.stats().tiers[1].waiting
        ),
        (0, 2)
    );
    l2.heal();
    cache.insert(2, "written".into()).await.unwrap(); // reaches L2: 2's change is settled
    assert_eq!(cache.stats().tiers[1].waiting, 1);
    until(|| cache.stats().recovery_replayed == 1).await;
    assert_eq!(cache.stats().tiers[1].waiting, 0);
    assert_eq!(
        in_l2(&l2, 1).as_deref(),
        Some("v2"),
        "only the latest change of 1"
    );
    assert_eq!(in_l2(&l2, 2).as_deref(), Some("written"));
    assert_eq!(
        l2.count(TierOp::Insert),
        5,
        "three failed, then 2's insert and 1's replay"
    );
}

#[tokio::test]
async fn a_change_older_than_what_the_tier_holds_is_dropped() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = cache(&clock, &l2, 100);
    l2.fail(TierOp::Insert, ErrorKind::Timeout);
    cache.insert(1, "ours".into()).await.unwrap();
    // Meanwhile another instance, whose connection works, writes a newer value.
    clock.advance(Duration::from_secs(1));
    l2.heal();
    let theirs = CacheEntry::new("theirs".to_string(), clock.now(), None);
    l2.insert(1, theirs, None).await.unwrap();
    cache.get(&99).await.unwrap();
    until(|| cache.stats().recovery_dropped == 1).await;
    assert_eq!(in_l2(&l2, 1).as_deref(), Some("theirs"));
    assert_eq!(cache.stats().recovery_replayed, 0);
}

/// A cache whose L2 holds "old" under 1, then a write of "new" there (for `ttl`, if any)
/// that the tier failed with `kind`, queued.
async fn queued_over_old(
    clock: &FrozenClock,
    l2: &MockTier<u64, String>,
    kind: ErrorKind,
    ttl: Option<Duration>,
) -> Cache<u64, String> {
    let cache = cache(clock, l2, 100);
    cache.insert(1, "old".into()).await.unwrap();
    clock.advance(Duration::from_secs(1));
    l2.fail(TierOp::Insert, kind);
    let outcome = match ttl {
        Some(ttl) => cache.insert_with_ttl(1, "new".into(), ttl).await,
        None => cache.insert(1, "new".into()).await,
    };
    assert!(matches!(
        outcome.unwrap().tiers()[1].result(),
        TierWriteResult::Queued(_)
    ));
    cache
}

#[tokio::test]
async fn a_write_the_answering_tier_times_out_on_becomes_a_removal() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    // The tier answers reads, but this value never reaches it in time.
    let cache = queued_over_old(&clock, &l2, ErrorKind::Timeout, None).await;
    let writes = l2.count(TierOp::Insert);
    cache.get(&99).await.unwrap(); // L2 answers: the replay starts
    until(|| cache.stats().recovery_dropped == 1).await;
    assert_eq!(
        l2.count(TierOp::Insert),
        writes + 1,
        "sent once more, then given up"
    );
    assert_eq!(
        in_l2(&l2, 1),
        None,
        "what it replaced is gone from the tier"
    );
    // However often the tier answers, the value is not sent again.
    for key in 100..110 {
        cache.get(&key).await.unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(l2.count(TierOp::Insert), writes + 1);
    assert_eq!(cache.stats().recovery_replayed, 0);
    // Neither value is served: the next read goes to the source.
    assert_eq!(cache.get(&1).await.unwrap(), None);
}

/// A cache whose write of key 1 waits for `l2`, with its replay's write sent, to time
/// out a second later (in paused tokio time).
async fn replaying_a_write_that_times_out(
    clock: &FrozenClock,
    l2: &MockTier<u64, String>,
) -> Cache<u64, String> {
    let cache = queued_over_old(clock, l2, ErrorKind::Timeout, None).await;
    l2.delay(TierOp::Insert, Duration::from_secs(1));
    cache.get(&99).await.unwrap(); // L2 answers: the replay starts
    until(|| l2.in_flight(TierOp::Insert) == 1).await;
    cache
}

/// Another instance writes "theirs" under key 1, a second later than anything before.
fn another_instance_writes_theirs(clock: &FrozenClock, l2: &MockTier<u64, String>) {
    clock.advance(Duration::from_secs(1));
    l2.put(1, CacheEntry::new("theirs".into(), clock.now(), None));
}

/// Waits until `cache` gave up its write and nothing waits for the tier any more.
async fn given_up_and_settled(cache: &Cache<u64, String>) {
    until(|| cache.stats().recovery_dropped == 1).await;
    until(|| cache.stats().tiers[1].waiting == 0).await;
}

#[tokio::test(start_paused = true)]
async fn a_given_up_write_leaves_what_another_instance_wrote_meanwhile() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = replaying_a_write_that_times_out(&clock, &l2).await;
    // Meanwhile another instance writes a newer value.
    another_instance_writes_theirs(&clock, &l2);
    // Tokio time, paused: the write's second passes while this sleeps.
    tokio::time::sleep(Duration::from_secs(2)).await;
    given_up_and_settled(&cache).await;
    assert_eq!(
        in_l2(&l2, 1).as_deref(),
        Some("theirs"),
        "the removal that replaces the given-up write is not sent over theirs"
    );
    assert_eq!(l2.count(TierOp::Invalidate), 0);
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("theirs"));
}

#[tokio::test(start_paused = true)]
async fn a_given_up_write_removes_what_a_clock_far_off_wrote_meanwhile() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = replaying_a_write_that_times_out(&clock, &l2).await;
    // Meanwhile an instance whose clock is two hours ahead writes: its value is not
    // taken for a newer one (the rule a shared store's removal follows too).
    let far_ahead = clock.now() + Duration::from_secs(2 * 60 * 60);
    l2.put(1, CacheEntry::new("from far ahead".into(), far_ahead, None));
    tokio::time::sleep(Duration::from_secs(2)).await;
    given_up_and_settled(&cache).await;
    assert_eq!(l2.count(TierOp::Invalidate), 1, "the removal was sent");
    assert_eq!(in_l2(&l2, 1), None);
    assert_eq!(cache.get(&1).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn a_given_up_write_leaves_what_another_instance_wrote_after_it_looked() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = replaying_a_write_that_times_out(&clock, &l2).await;
    // The write times out; the look at the tier before its removal is answered late,
    // and another instance writes a newer value while that answer is on its way.
    l2.delay(TierOp::Get, Duration::from_secs(1));
    // Tokio time, paused: the write fails at 1 s, the look is answered at 2 s.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(l2.in_flight(TierOp::Get), 1, "the look is on its way");
    another_instance_writes_theirs(&clock, &l2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    given_up_and_settled(&cache).await;
    assert_eq!(
        l2.count(TierOp::Invalidate),
        1,
        "the look missed theirs: the removal was sent"
    );
    assert_eq!(
        in_l2(&l2, 1).as_deref(),
        Some("theirs"),
        "the removal took nothing newer than the given-up write"
    );
    l2.heal();
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("theirs"));
}

#[tokio::test]
async fn a_given_up_write_whose_removal_fails_leaves_only_the_removal_waiting() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = queued_over_old(&clock, &l2, ErrorKind::Timeout, None).await;
    l2.fail_times(TierOp::Invalidate, ErrorKind::Timeout, 1);
    let writes = l2.count(TierOp::Insert);
    cache.get(&99).await.unwrap();
    until(|| l2.count(TierOp::Invalidate) >= 1).await;
    assert_eq!(in_l2(&l2, 1).as_deref(), Some("old"), "the removal failed");
    assert_eq!(cache.stats().recovery_dropped, 1, "the write is given up");
    // Nothing reads "old" back meanwhile.
    assert_eq!(cache.get(&1).await.unwrap(), None);
    let below = cache.with(Options::new().skip_l1());
    assert_eq!(below.get(&1).await.unwrap(), None);
    // The removal is tried again when the tier answers, and the value never is.
    cache.get(&98).await.unwrap();
    until(|| cache.stats().recovery_replayed == 1).await;
    assert_eq!(
        l2.count(TierOp::Insert),
        writes + 1,
        "the value was sent once more only"
    );
    assert_eq!(in_l2(&l2, 1), None);
    assert_eq!(cache.get(&1).await.unwrap(), None);
}

#[tokio::test]
async fn a_write_that_expired_while_it_waited_removes_what_it_replaced() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let short = Some(Duration::from_secs(5));
    let cache = queued_over_old(&clock, &l2, ErrorKind::Unavailable, short).await;
    clock.advance(Duration::from_secs(10));
    l2.heal();
    cache.get(&99).await.unwrap();
    until(|| cache.stats().recovery_dropped == 1).await;
    until(|| in_l2(&l2, 1).is_none()).await;
    assert_eq!(
        cache.get(&1).await.unwrap(),
        None,
        "\"old\" is not left in the tier"
    );
}

#[tokio::test]
async fn a_removal_replayed_hours_later_takes_what_a_clock_far_ahead_wrote_before_it() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = cache(&clock, &l2, 100);
    // An instance whose clock runs two hours ahead wrote "old"; this one removes it
    // (the row changed), while the tier does not answer it.
    let two_hours = Duration::from_secs(2 * 60 * 60);
    l2.put(
        1,
        CacheEntry::new("old".into(), clock.now() + two_hours, None),
    );
    l2.fail(TierOp::Invalidate, ErrorKind::Timeout);
    cache.invalidate(&1).await.unwrap(); // queued
    // Replayed an hour and a half later: "old" is now within an hour of the present,
    // but not of the removal, and is not taken for something written after it.
    clock.advance(Duration::from_secs(90 * 60));
    l2.heal();
    cache.get(&99).await.unwrap(); // L2 answers: the replay starts
    until(|| cache.stats().recovery_replayed == 1).await;
    assert_eq!(in_l2(&l2, 1), None);
    assert_eq!(cache.get(&1).await.unwrap(), None);
}

#[tokio::test]
async fn a_write_the_tier_refuses_at_replay_removes_what_it_replaced() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = queued_over_old(&clock, &l2, ErrorKind::Unavailable, None).await;
    // Back, but refusing this value (too large for it, say).
    l2.fail(TierOp::Insert, ErrorKind::Rejected);
    cache.get(&99).await.unwrap();
    until(|| cache.stats().recovery_dropped == 1).await;
    assert_eq!(
        in_l2(&l2, 1),
        None,
        "\"old\" is not left for other instances"
    );
    assert_eq!(cache.get(&1).await.unwrap(), None);
}

#[tokio::test]
async fn a_write_the_tier_refuses_settles_an_older_change_waiting() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = queued_over_old(&clock, &l2, ErrorKind::Unavailable, None).await;
    // Back, but refusing the next value: "new", still waiting, is what it replaced.
    clock.advance(Duration::from_secs(1));
    l2.fail(TierOp::Insert, ErrorKind::Rejected);
    let outcome = cache.insert(1, "newest".into()).await.unwrap();
    assert!(matches!(
        outcome.tiers()[1].result(),
        TierWriteResult::Failed(_)
    ));
    assert_eq!(
        cache.get(&1).await.unwrap(),
        None,
        "neither \"new\" nor \"old\""
    );
    assert_eq!(in_l2(&l2, 1), None);
}

#[tokio::test]
async fn a_full_queue_drops_the_change_and_falls_back_to_dropping_the_copies_above() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = cache(&clock, &l2, 1);
    l2.fail(TierOp::Insert, ErrorKind::Unavailable);
    cache.insert(1, "one".into()).await.unwrap();
    let outcome = cache.insert(2, "two".into()).await.unwrap();
    assert!(matches!(
        outcome.tiers()[1].result(),
        TierWriteResult::Failed(_)
    ));
    assert!(matches!(
        outcome.tiers()[0].result(),
        TierWriteResult::Dropped
    ));
    let stats = cache.stats();
    assert_eq!((stats.recovery_queued, stats.recovery_dropped), (1, 1));
}

#[tokio::test]
async fn strict_and_memory_tiers_queue_nothing() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let strict: Cache<u64, String> = Cache::builder()
        .clock(&clock)
        .strict(true)
        .fallback(Fallback::tier(l2.clone()))
        .build()
        .unwrap();
    l2.fail(TierOp::Insert, ErrorKind::Timeout);
    let error = strict.insert(1, "one".into()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(strict.stats().recovery_queued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_a_redis_outage_reach_it_after_a_restart() {
    let mut server = RedisServer::start().unwrap();
    let config = RedisConfig::from_url(server.url())
        .namespace("recovery")
        .command_timeout(Duration::from_millis(200));
    let store = RedisStore::new(config.clone()).unwrap();
    let cache: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(stratacache::Remote::new(store)))
        .build()
        .unwrap();
    cache.insert(1, "before".into()).await.unwrap();
    cache.insert(2, "kept".into()).await.unwrap();

    server.stop();
    let outcome = cache.insert(1, "during".into()).await.unwrap();
    assert!(matches!(
        outcome.tiers()[1].result(),
        TierWriteResult::Queued(_)
    ));
    cache.invalidate(&2).await.unwrap();
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("during"));

    server.restart().unwrap(); // an empty Redis on the same port
    let started = std::time::Instant::now();
    while cache.stats().recovery_replayed < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never replayed"
        );
        // Any call Redis answers starts the replay; real time: the server is restarting.
        let _ = cache.get(&99).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let replayed_in = started.elapsed();
    let other: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(stratacache::Remote::new(
            RedisStore::new(config).unwrap(),
        )))
        .build()
        .unwrap();
    assert_eq!(other.get(&1).await.unwrap().as_deref(), Some("during"));
    assert_eq!(other.get(&2).await.unwrap(), None);
    assert!(replayed_in < Duration::from_secs(5), "{replayed_in:?}");
}

#[tokio::test]
async fn a_clear_the_tier_missed_hides_everything_there_and_is_replayed() {
    let (clock, l2) = (FrozenClock::new(), MockTier::new());
    let cache = cache(&clock, &l2, 100);
    cache
        .insert_many([(1, "one".to_string()), (2, "two".to_string())])
        .await
        .unwrap();
    l2.fail(TierOp::Clear, ErrorKind::Timeout);
    let outcome = cache.clear().await.unwrap();
    assert!(matches!(
        outcome.tiers()[1].result(),
        TierWriteResult::Queued(_)
    ));
    assert_eq!(in_l2(&l2, 1).as_deref(), Some("one"), "L2 still holds it");
    let below = cache.with(Options::new().skip_l1());
    assert_eq!(below.get(&1).await.unwrap(), None, "but reads as cleared");
    assert_eq!(cache.get_many(&[1, 2]).await.unwrap(), [None, None]);

    // A write after the clear reads as itself.
    l2.fail(TierOp::Insert, ErrorKind::Timeout);
    cache.insert(3, "three".into()).await.unwrap();
    assert_eq!(below.get(&3).await.unwrap().as_deref(), Some("three"));

    l2.heal();
    cache.get(&99).await.unwrap(); // L2 answers: the replay starts
    until(|| cache.stats().recovery_replayed == 2).await;
    assert_eq!((in_l2(&l2, 1), in_l2(&l2, 2)), (None, None));
    assert_eq!(
        in_l2(&l2, 3).as_deref(),
        Some("three"),
        "replayed after the clear"
    );
}
