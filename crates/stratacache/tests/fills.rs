//! Fills of a tier that instances share: what one instance read or loaded never lands
//! over what another instance wrote or removed since, even before it hears of it (no
//! backplane here at all). Over the mock byte store (its compare-and-set under a lock),
//! a real Redis (a script) and a real memcached (compare-and-swap).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use stratacache::mock::{MemoryStore, MockTier};
use stratacache::{
    ByteStore, Cache, CacheEntry, CacheTier, Fallback, FrozenClock, Options, Remote, Strategy,
};
use stratacache_memcached::{MemcachedConfig, MemcachedStore};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_testkit::{MemcachedServer, RedisServer};
use tokio::sync::Notify;

const MS: Duration = Duration::from_millis(1);

/// Where the tests' loads wait: a load says it `started`, and answers "old row" once
/// the gate is opened (a database read made before the other instance's change,
/// answered late).
#[derive(Default)]
struct Gate {
    started: Notify,
    go: Notify,
}

impl Gate {
    async fn load(&self) -> String {
        self.started.notify_one();
        self.go.notified().await;
        "old row".to_string()
    }

    /// Waits until a load has started (it missed every tier).
    async fn loading(&self) {
        self.started.notified().await;
    }

    fn open(&self) {
        self.go.notify_one();
    }
}

/// An instance over `store` whose loader waits at `go` (see [`Gate`]).
fn instance<S: ByteStore + Clone>(
    clock: &FrozenClock,
    store: &S,
    go: &Arc<Gate>,
) -> Cache<u64, String> {
    let go = Arc::clone(go);
    Cache::builder()
        .clock(clock)
        .fallback(Fallback::remote(Remote::new(store.clone())))
        .loader(move |_key: u64| {
            let go = Arc::clone(&go);
            async move { Ok::<_, std::io::Error>(Some(go.load().await)) }
        })
        .build()
        .unwrap()
}

/// `a` loads key 1 (slowly); meanwhile `b` changes it with `change`; then `a`'s load
/// ends. What does each instance, and a fresh one, read afterwards?
async fn race<S: ByteStore + Clone>(
    store: &S,
    change: impl AsyncFnOnce(&Cache<u64, String>),
) -> [Option<String>; 3] {
    let clock = FrozenClock::new();
    let go = Arc::new(Gate::default());
    let (a, b) = (instance(&clock, store, &go), instance(&clock, store, &go));
    let loading = tokio::spawn({
        let a = a.clone();
        async move { a.get(&1).await }
    });
    go.loading().await; // `a` missed and is loading
    clock.advance(MS);
    change(&b).await;
    go.open();
    assert_eq!(
        loading.await.unwrap().unwrap().as_deref(),
        Some("old row"),
        "the caller gets what it loaded"
    );
    let fresh = instance(&clock, store, &go);
    let late = fresh
        .get_entry(&1)
        .await
        .unwrap()
        .map(|entry| entry.into_value());
    [
        a.get_entry(&1)
            .await
            .unwrap()
            .map(|entry| entry.into_value()),
        b.get_entry(&1)
            .await
            .unwrap()
            .map(|entry| entry.into_value()),
        late,
    ]
}

async fn an_insert_on_another_instance_is_not_overwritten_by_a_fill<S>(store: S)
where
    S: ByteStore + Clone,
{
    let read = race(&store, async |b| {
        b.insert(1, "new row".into()).await.unwrap();
    })
    .await;
    assert_eq!(
        read,
        [
            Some("new row".into()),
            Some("new row".into()),
            Some("new row".into())
        ]
    );
}

async fn an_invalidation_on_another_instance_is_not_undone_by_a_fill<S>(store: S)
where
    S: ByteStore + Clone,
{
    let read = race(&store, async |b| {
        b.invalidate(&1).await.unwrap();
    })
    .await;
    assert_eq!(
        read,
        [None, None, None],
        "nobody serves the row read before"
    );
}

/// A refresh (`Strategy::Reload`) on `a` whose load read the row before `b`'s insert.
async fn an_insert_on_another_instance_is_not_overwritten_by_a_refresh<S>(store: S)
where
    S: ByteStore + Clone,
{
    let clock = FrozenClock::new();
    let go = Arc::new(Gate::default());
    let (a, b) = (instance(&clock, &store, &go), instance(&clock, &store, &go));
    let refreshing = tokio::spawn({
        let (a, go) = (a.clone(), Arc::clone(&go));
        async move {
            let refresh = a.with(Options::new().strategy(Strategy::Reload));
            let load = || async move { go.load().await };
            refresh.get_or_insert(&1, load).await
        }
    });
    go.loading().await;
    clock.advance(MS);
    b.insert(1, "new row".into()).await.unwrap();
    go.open();
    refreshing.await.unwrap().unwrap();
    let fresh = instance(&clock, &store, &go);
    for (name, cache) in [("a", &a), ("b", &b), ("a fresh instance", &fresh)] {
        let read = cache
            .get_entry(&1)
            .await
            .unwrap()
            .map(|entry| entry.into_value());
        assert_eq!(read.as_deref(), Some("new row"), "{name}");
    }
}

#[tokio::test]
async fn in_process_an_insert_elsewhere_stands_against_a_late_refresh() {
    an_insert_on_another_instance_is_not_overwritten_by_a_refresh(MemoryStore::new()).await;
}

#[tokio::test]
async fn over_redis_an_insert_elsewhere_stands_against_a_late_refresh() {
    let server = RedisServer::start().unwrap();
    an_insert_on_another_instance_is_not_overwritten_by_a_refresh(redis(&server, "refresh")).await;
}

#[tokio::test]
async fn in_process_an_insert_elsewhere_stands_against_a_late_fill() {
    an_insert_on_another_instance_is_not_overwritten_by_a_fill(MemoryStore::new()).await;
}

#[tokio::test]
async fn in_process_an_invalidation_elsewhere_stands_against_a_late_fill() {
    an_invalidation_on_another_instance_is_not_undone_by_a_fill(MemoryStore::new()).await;
}

fn redis(server: &RedisServer, namespace: &str) -> RedisStore {
    RedisStore::new(RedisConfig::from_url(server.url()).namespace(namespace)).unwrap()
}

#[tokio::test]
async fn over_redis_an_insert_elsewhere_stands_against_a_late_fill() {
    let server = RedisServer::start().unwrap();
    an_insert_on_another_instance_is_not_overwritten_by_a_fill(redis(&server, "insert")).await;
}

#[tokio::test]
async fn over_redis_an_invalidation_elsewhere_stands_against_a_late_fill() {
    let server = RedisServer::start().unwrap();
    an_invalidation_on_another_instance_is_not_undone_by_a_fill(redis(&server, "removal")).await;
}

/// One client, shared by the instances (it is not `Clone`).
fn memcached(server: &MemcachedServer) -> Arc<MemcachedStore> {
    let config = MemcachedConfig::new([server.address()]);
    Arc::new(MemcachedStore::new(config).unwrap())
}

#[tokio::test]
async fn over_memcached_an_insert_elsewhere_stands_against_a_late_fill() {
    let server = MemcachedServer::start().unwrap();
    an_insert_on_another_instance_is_not_overwritten_by_a_fill(memcached(&server)).await;
}

#[tokio::test]
async fn over_memcached_an_invalidation_elsewhere_stands_against_a_late_fill() {
    let server = MemcachedServer::start().unwrap();
    an_invalidation_on_another_instance_is_not_undone_by_a_fill(memcached(&server)).await;
}

/// A write that lands late: instance `a`'s insert of "old row" was made `behind` before
/// instance `b`'s of "new row" (a's clock is that far back), but reaches the store after
/// it, as a write sent to a server that stalled does when the server resumes. What does
/// each instance, and a fresh one, read afterwards?
async fn a_write_landing_after<S: ByteStore + Clone>(
    store: &S,
    key: u64,
    behind: Duration,
) -> [Option<String>; 3] {
    let (clock_a, clock_b) = (FrozenClock::new(), FrozenClock::new());
    clock_b.advance(behind);
    let go = Arc::new(Gate::default());
    let (a, b) = (
        instance(&clock_a, store, &go),
        instance(&clock_b, store, &go),
    );
    b.insert(key, "new row".into()).await.unwrap();
    a.insert(key, "old row".into()).await.unwrap();
    let fresh = instance(&clock_b, store, &go);
    let mut read = Vec::new();
    for cache in [&a, &b, &fresh] {
        let entry = cache.get_entry(&key).await.unwrap();
        read.push(entry.map(|entry| entry.into_value()));
    }
    read.try_into().unwrap()
}

async fn a_write_landing_late_leaves_the_newer_one_standing<S: ByteStore + Clone>(store: S) {
    let newer = Some("new row".to_string());
    assert_eq!(
        a_write_landing_after(&store, 1, Duration::from_secs(5)).await,
        [newer.clone(), newer.clone(), newer],
        "made 5 s before the newer one: it changes nothing, not even its own instance's L1"
    );
    let late = Some("old row".to_string());
    assert_eq!(
        a_write_landing_after(&store, 2, Duration::from_millis(500)).await,
        [late.clone(), Some("new row".to_string()), late.clone()],
        "within a second (clocks that disagree), the last write stands, as a plain set"
    );
    assert_eq!(
        a_write_landing_after(&store, 3, Duration::from_secs(2 * 60 * 60)).await,
        [late.clone(), Some("new row".to_string()), late],
        "an entry from hours ahead (a clock far off) stands in no write's way"
    );
}

#[tokio::test]
async fn in_process_a_write_landing_late_leaves_the_newer_one_standing() {
    a_write_landing_late_leaves_the_newer_one_standing(MemoryStore::new()).await;
}

#[tokio::test]
async fn over_redis_a_write_landing_late_leaves_the_newer_one_standing() {
    let server = RedisServer::start().unwrap();
    a_write_landing_late_leaves_the_newer_one_standing(redis(&server, "late")).await;
}

#[tokio::test]
async fn over_memcached_a_write_landing_late_leaves_the_newer_one_standing() {
    let server = MemcachedServer::start().unwrap();
    a_write_landing_late_leaves_the_newer_one_standing(memcached(&server)).await;
}

/// A removal that stands back from what was written after `than`, on `tier`: an entry
/// produced after `than` stands; one produced at `than` or before, or from hours ahead
/// (a clock far off), is removed. Answers the removal's time.
async fn a_removal_unless_newer_leaves_only_what_was_written_after(
    tier: &impl CacheTier<u64, String>,
) -> SystemTime {
    let clock = FrozenClock::new();
    let than = clock.now();
    let at = than + Duration::from_secs(1);
    let written = [
        than + MS,
        than,
        than - Duration::from_secs(1),
        than + Duration::from_secs(2 * 60 * 60),
    ];
    for (key, when) in (1..).zip(written) {
        let entry = CacheEntry::new(format!("row {key}"), when, None);
        tier.insert(key, entry, None).await.unwrap();
    }
    let mut removed = Vec::new();
    for key in 1..=5 {
        removed.push(tier.invalidate_unless_newer(&key, at, than).await.unwrap());
    }
    assert_eq!(removed, [false, true, true, true, true]);
    let mut left = Vec::new();
    for key in 1..=5 {
        left.push(tier.get(&key).await.unwrap().map(CacheEntry::into_value));
    }
    assert_eq!(left, [Some("row 1".to_string()), None, None, None, None]);
    at
}

/// The same on the tier of `store` (a shared one), where the removal is a tombstone
/// dated `at`: a fill of what was read before it stays out.
async fn a_shared_removal_unless_newer_leaves_only_what_was_written_after<S: ByteStore>(store: S) {
    let tier = Remote::new(store).into_tier::<u64, String>();
    let at = a_removal_unless_newer_leaves_only_what_was_written_after(&tier).await;
    let before = CacheEntry::new("read before".to_string(), at - MS, None);
    assert!(!tier.fill(2, before, None).await.unwrap());
}

#[tokio::test]
async fn in_memory_a_removal_unless_newer_leaves_only_what_was_written_after() {
    // The mock tier compares under its lock by the same rule as the shared stores.
    a_removal_unless_newer_leaves_only_what_was_written_after(&MockTier::new()).await;
}

#[tokio::test]
async fn in_process_a_removal_unless_newer_leaves_only_what_was_written_after() {
    a_shared_removal_unless_newer_leaves_only_what_was_written_after(MemoryStore::new()).await;
}

#[tokio::test]
async fn over_redis_a_removal_unless_newer_leaves_only_what_was_written_after() {
    let server = RedisServer::start().unwrap();
    a_shared_removal_unless_newer_leaves_only_what_was_written_after(redis(&server, "unless"))
        .await;
}

#[tokio::test]
async fn over_memcached_a_removal_unless_newer_leaves_only_what_was_written_after() {
    let server = MemcachedServer::start().unwrap();
    a_shared_removal_unless_newer_leaves_only_what_was_written_after(memcached(&server)).await;
}
