//! Tags: `invalidate_tag` invalidates every entry carrying the tag, in every tier and
//! every instance: through the backplane at once, through the marker in the shared tier
//! for instances that missed the announcement or started later. In process (frozen
//! clock, mock backplane) and over a real Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use stratacache::mock::{MemoryStore, MockBackplane, SwitchedStore};
use stratacache::{
    BoxError, Cache, ErrorKind, Fallback, FrozenClock, Loaded, Loader, MemoryTier, Remote, Tags,
};
use stratacache_redis::{RedisBackplane, RedisConfig, RedisStore};
use stratacache_testkit::RedisServer;
use tokio::sync::Notify;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// A loader of "order {id}, v{n}", tagged with its customer (`id % 2`), counting loads.
struct Orders(Arc<AtomicUsize>);

impl Loader<u64, String> for Orders {
    async fn load(&self, id: &u64) -> Result<Option<Loaded<String>>, BoxError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let loaded = Loaded::new(format!("order {id}, v{n}"));
        Ok(Some(loaded.tags([format!("customer:{}", id % 2)])))
    }
}

fn orders(loads: &Arc<AtomicUsize>) -> Orders {
    Orders(Arc::clone(loads))
}

/// Tags every value `load` finds with `tag`.
struct Tagged<F>(&'static str, F);

impl<F, Fut> Loader<u64, String> for Tagged<F>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = String> + Send,
{
    async fn load(&self, id: &u64) -> Result<Option<Loaded<String>>, BoxError> {
        Ok(Some(Loaded::new((self.1)(*id).await).tags([self.0])))
    }
}

#[tokio::test]
async fn invalidating_a_tag_invalidates_its_entries_in_every_tier_and_no_other() {
    let (clock, l2, loads) = (FrozenClock::new(), MemoryTier::new(100), Arc::default());
    let cache: Cache<u64, String> = Cache::builder()
        .clock(clock.clone())
        .fallback(Fallback::tier(l2.clone()))
        .loader(orders(&loads))
        .build()
        .unwrap();
    for id in 1..=4 {
        cache.get(&id).await.unwrap();
    }
    assert_eq!(
        l2.lookup(&1).unwrap().tags(),
        &Tags::new(["customer:1"]),
        "tags travel with the entry into every tier"
    );
    clock.advance(MS);
    cache.invalidate_tag("customer:1").await.unwrap();
    assert_eq!(cache.stats().tags_invalidated, 1);
    // Neither L1's copy nor L2's is served: both are reloaded.
    assert!(cache.get_entry(&1).await.unwrap().is_none());
    assert!(cache.get_entry(&3).await.unwrap().is_none());
    assert_eq!(
        cache.get_entry(&2).await.unwrap().unwrap().value(),
        "order 2, v2"
    );
    clock.advance(MS);
    assert_eq!(cache.get(&1).await.unwrap().as_deref(), Some("order 1, v5"));
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("order 1, v5"),
        "what was loaded after the invalidation is kept"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn call_tags_join_the_loaders_and_a_later_insert_is_valid() {
    let clock = FrozenClock::new();
    let cache: Cache<u64, String> = Cache::builder().clock(clock.clone()).build().unwrap();
    cache.tagged(["a"]).insert(1, "one".into()).await.unwrap();
    let loaded = cache
        .tagged(["b"])
        .get_or_insert(&2, || async { "two".to_string() })
        .await
        .unwrap();
    assert_eq!(loaded.as_deref(), Some("two"));
    assert_eq!(
        cache.get_entry(&2).await.unwrap().unwrap().tags(),
        &Tags::new(["b"])
    );
    clock.advance(MS);
    cache.invalidate_tag("b").await.unwrap();
    assert!(cache.get(&1).await.unwrap().is_some());
    assert!(cache.get(&2).await.unwrap().is_none());
    // An entry written after the invalidation carries the tag and stays valid.
    clock.advance(MS);
    cache
        .tagged(["b"])
        .insert(2, "two again".into())
        .await
        .unwrap();
    assert_eq!(cache.get(&2).await.unwrap().as_deref(), Some("two again"));
}

#[tokio::test]
async fn a_load_in_flight_during_the_invalidation_is_not_kept() {
    let clock = FrozenClock::new();
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let loads = Arc::new(AtomicUsize::new(0));
    let loader = {
        let (entered, release, loads) = (entered.clone(), release.clone(), loads.clone());
        move |id: u64| {
            let (entered, release, loads) = (entered.clone(), release.clone(), loads.clone());
            async move {
                if loads.fetch_add(1, Ordering::SeqCst) == 0 {
                    entered.notify_one();
                    release.notified().await;
                }
                format!("v{id}")
            }
        }
    };
    let loader = Tagged("t", loader);
    let cache: Cache<u64, String> = Cache::builder()
        .clock(clock.clone())
        .fallback(Fallback::tier(MemoryTier::new(10)))
        .loader(loader)
        .stampede_protection(true)
        .build()
        .unwrap();
    let reader = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get(&1).await }
    });
    entered.notified().await;
    // The source changes, and the tag is invalidated, while the load runs.
    clock.advance(5 * MS);
    cache.invalidate_tag("t").await.unwrap();
    clock.advance(MS); // the load ends after the invalidation
    release.notify_one();
    assert_eq!(reader.await.unwrap().unwrap().as_deref(), Some("v1"));
    clock.advance(MS);
    assert!(
        cache.get_entry(&1).await.unwrap().is_none(),
        "what the load read before the invalidation is in no tier"
    );
    cache.get(&1).await.unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn hostile_tags_are_refused_not_stored() {
    let cache: Cache<u64, String> = Cache::builder().build().unwrap();
    let long = "x".repeat(Tags::MAX_TAG_LEN + 1);
    assert_eq!(
        cache.invalidate_tag(&long).await.unwrap_err().kind(),
        ErrorKind::Config
    );
    // Unusual characters are fine: a tag is any UTF-8 text.
    cache
        .tagged(["with space\r\n", "ключ"])
        .insert(1, "v".into())
        .await
        .unwrap();
    cache.invalidate_tag("with space\r\n").await.unwrap();
    assert!(cache.get(&1).await.unwrap().is_none());
}

#[tokio::test]
async fn another_instance_drops_tagged_entries_when_it_hears_the_invalidation() {
    let (l2, backplane) = (MemoryTier::new(100), MockBackplane::new());
    let replica = || {
        Cache::<u64, String>::builder()
            .fallback(Fallback::tier(l2.clone()))
            .backplane(backplane.clone())
            .build()
            .unwrap()
    };
    let (a, b) = (replica(), replica());
    tokio::task::yield_now().await; // both subscribe
    a.tagged(["t"]).insert(1, "one".into()).await.unwrap();
    assert!(b.get(&1).await.unwrap().is_some(), "now in b's L1");
    tokio::time::sleep(2 * MS).await; // markers have millisecond precision
    a.invalidate_tag("t").await.unwrap();
    let heard = || b.stats().tags_invalidated > 0;
    stratacache_testkit::until("b heard the invalidation", MS, 10 * SEC, heard).await;
    assert!(b.get(&1).await.unwrap().is_none(), "b's L1 copy is invalid");
}

fn redis_cache(
    server: &RedisServer,
    clock: &FrozenClock,
    loads: &Arc<AtomicUsize>,
) -> Cache<u64, String> {
    let config = RedisConfig::from_url(server.url()).namespace("tags");
    Cache::builder()
        .clock(clock.clone())
        .fallback(Fallback::remote(Remote::new(
            RedisStore::new(config).unwrap(),
        )))
        .loader(orders(loads))
        .tag_marker_refresh(SEC)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_marker_in_redis_reaches_an_instance_started_later_and_one_that_missed_it() {
    let server = RedisServer::start().unwrap();
    let (clock, loads) = (FrozenClock::new(), Arc::new(AtomicUsize::new(0)));
    let a = redis_cache(&server, &clock, &loads);
    let b = redis_cache(&server, &clock, &loads);
    a.get(&1).await.unwrap(); // loaded, stored in Redis
    assert_eq!(
        b.get(&1).await.unwrap().as_deref(),
        Some("order 1, v1"),
        "from Redis"
    );
    clock.advance(MS);
    // No backplane: b hears nothing.
    a.invalidate_tag("customer:1").await.unwrap();
    let raw = server.cli(&["--raw", "KEYS", "tags:*"]).unwrap();
    assert!(raw.contains("!t:"), "the marker is in Redis: {raw}");

    // An instance started after the invalidation never serves what Redis still holds.
    let late = redis_cache(&server, &clock, &loads);
    assert!(late.get_entry(&1).await.unwrap().is_none());

    // b trusts what it knew for `tag_marker_refresh`, then reads the marker again.
    assert!(
        b.get_entry(&1).await.unwrap().is_some(),
        "within the refresh window"
    );
    clock.advance(SEC);
    // On its hit path (`get`, L1): the knowledge is out of date, the marker is read, the
    // entry is invalid and reloaded.
    assert_eq!(b.get(&1).await.unwrap().as_deref(), Some("order 1, v2"));
}

#[tokio::test]
async fn a_marker_redis_refused_is_written_once_it_answers() {
    let mut server = RedisServer::start().unwrap();
    let (clock, loads) = (FrozenClock::new(), Arc::new(AtomicUsize::new(0)));
    let a = redis_cache(&server, &clock, &loads);
    a.get(&1).await.unwrap();
    server.save().unwrap();
    server.stop();
    clock.advance(MS);
    let refused = a.invalidate_tag("customer:1").await;
    assert!(refused.is_err(), "the marker could not be written");
    assert!(
        a.get_entry(&1).await.unwrap().is_none(),
        "this instance knows at once"
    );
    server.restart().unwrap();
    // The first call Redis answers sends what waited (one made within 100 ms of the last
    // failed attempt to connect fails as that attempt did).
    let written = || server.cli(&["KEYS", "tags:!t*"]).unwrap().contains("!t:");
    for _ in 0..500 {
        a.get_entry(&2).await.unwrap();
        if written() {
            break;
        }
        tokio::time::sleep(20 * MS).await;
    }
    assert!(written(), "the marker is in Redis");
    let late = redis_cache(&server, &clock, &loads);
    assert!(
        late.get_entry(&1).await.unwrap().is_none(),
        "the entry Redis kept across its restart is invalid for a new instance too"
    );
}

#[tokio::test]
async fn over_redis_with_a_backplane_the_invalidation_crosses_at_once() {
    let server = RedisServer::start().unwrap();
    let config = RedisConfig::from_url(server.url()).namespace("tagged");
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
    let subscribed = async {
        // Until both listen, announcements go unheard: probe with writes.
        loop {
            a.insert(0, "probe".into()).await.unwrap();
            tokio::time::sleep(10 * MS).await;
            if b.stats().backplane_received > 0 {
                break;
            }
        }
    };
    tokio::time::timeout(10 * SEC, subscribed).await.unwrap();
    a.tagged(["t"]).insert(1, "one".into()).await.unwrap();
    assert!(b.get(&1).await.unwrap().is_some());
    tokio::time::sleep(2 * MS).await;
    a.invalidate_tag("t").await.unwrap();
    let heard = || b.stats().tags_invalidated > 0;
    stratacache_testkit::until("b heard the invalidation", MS, 10 * SEC, heard).await;
    assert!(b.get(&1).await.unwrap().is_none());
}

#[tokio::test]
async fn a_load_on_another_instance_that_read_before_the_invalidation_is_not_served() {
    let server = RedisServer::start().unwrap();
    let clock = FrozenClock::new();
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let slow = {
        let (entered, release) = (entered.clone(), release.clone());
        move |id: u64| {
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                entered.notify_one();
                release.notified().await;
                format!("read before, {id}")
            }
        }
    };
    let config = RedisConfig::from_url(server.url()).namespace("in-flight");
    let remote = || Fallback::remote(Remote::new(RedisStore::new(config.clone()).unwrap()));
    let a: Cache<u64, String> = Cache::builder()
        .clock(clock.clone())
        .fallback(remote())
        .build()
        .unwrap();
    let b: Cache<u64, String> = Cache::builder()
        .clock(clock.clone())
        .fallback(remote())
        .loader(Tagged("t", slow))
        .build()
        .unwrap();
    let reader = tokio::spawn({
        let b = b.clone();
        async move { b.get(&1).await }
    });
    entered.notified().await; // b read the source
    clock.advance(5 * MS);
    a.invalidate_tag("t").await.unwrap(); // b hears nothing: no backplane
    clock.advance(5 * MS);
    release.notify_one();
    reader.await.unwrap().unwrap();
    // What b stored is older than the marker, wherever it is read.
    assert!(a.get_entry(&1).await.unwrap().is_none());
    let late: Cache<u64, String> = Cache::builder()
        .clock(clock.clone())
        .fallback(remote())
        .build()
        .unwrap();
    assert!(late.get_entry(&1).await.unwrap().is_none());
}

#[tokio::test]
async fn too_many_or_too_long_tags_are_refused_on_insert_and_not_cached_on_load() {
    let clock = FrozenClock::new();
    let cache: Cache<u64, String> = Cache::builder().clock(clock.clone()).build().unwrap();
    let many: Vec<String> = (0..=Tags::MAX_TAGS).map(|i| i.to_string()).collect();
    let refused = cache.tagged(many.clone()).insert(1, "v".into()).await;
    assert_eq!(refused.unwrap_err().kind(), ErrorKind::Config);
    let loaded = cache
        .tagged(many)
        .get_or_insert(&2, || async { "loaded".to_string() })
        .await
        .unwrap();
    assert_eq!(loaded.as_deref(), Some("loaded"), "served");
    assert!(cache.get_entry(&2).await.unwrap().is_none(), "not cached");
}

#[tokio::test]
async fn a_loaded_entrys_age_counts_from_when_its_load_began() {
    struct Slow(FrozenClock);
    impl Loader<u64, String> for Slow {
        async fn load(&self, _: &u64) -> Result<Option<Loaded<String>>, BoxError> {
            self.0.advance(5 * SEC); // the query takes five seconds
            Ok(Some(Loaded::new("v".to_string()).ttl(10 * SEC).tags(["t"])))
        }
    }
    let clock = FrozenClock::new();
    let cache: Cache<u64, String> = Cache::builder()
        .clock(clock.clone())
        .loader(Slow(clock.clone()))
        .build()
        .unwrap();
    cache.get(&1).await.unwrap();
    let info = cache.inspect(&1).await.unwrap().unwrap();
    assert_eq!(
        info.remaining_ttl(),
        Some(5 * SEC),
        "what it read is five seconds old"
    );
    clock.advance(5 * SEC);
    assert!(cache.get_entry(&1).await.unwrap().is_none());
}

#[tokio::test]
async fn while_the_markers_tier_is_skipped_tagged_reads_and_invalidations_do_not_call_it() {
    let store = SwitchedStore::new(MemoryStore::new());
    let (clock, loads) = (FrozenClock::new(), Arc::default());
    let cache: Cache<u64, String> = Cache::builder()
        .clock(clock.clone())
        .fallback(Fallback::remote(Remote::new(store.clone())).circuit_breaker(2, 10 * SEC))
        .loader(orders(&loads))
        .tag_marker_refresh(SEC)
        .build()
        .unwrap();
    cache.get(&1).await.unwrap(); // loaded, tagged "customer:1", kept in L1
    store.set_down(true);
    // Reads of the tier fail until its circuit opens.
    for id in [10, 12, 14] {
        cache.get(&id).await.unwrap();
    }
    let reached = store.calls();
    clock.advance(SEC); // what this instance knows of "customer:1" is now out of date

    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("order 1, v1"),
        "served from L1 on what was known: the marker could not be read"
    );
    let refused = cache.invalidate_tag("customer:0").await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::CircuitOpen, "{refused}");
    assert_eq!(
        store.calls(),
        reached,
        "neither the marker's read nor its write reached a tier whose circuit is open"
    );
    assert!(cache.stats().tag_errors >= 2, "both were counted");

    // Once the tier answers again, the marker that waited is written.
    store.set_down(false);
    clock.advance(10 * SEC);
    cache.get(&20).await.unwrap();
    let written = || store.inner().keys().iter().any(|key| key.contains("!t"));
    stratacache_testkit::until("the marker is in the store", MS, 10 * SEC, written).await;
}

#[tokio::test]
async fn two_invalidations_racing_leave_the_later_marker_in_redis_whichever_lands_last() {
    let server = RedisServer::start().unwrap();
    let loads = Arc::new(AtomicUsize::new(0));
    let start = FrozenClock::new().now();
    let at = |offset: Duration| FrozenClock::at(start + offset);
    // An entry produced at +5 s is in Redis.
    let writer = redis_cache(&server, &at(5 * SEC), &loads);
    writer.get(&1).await.unwrap();
    // Two instances invalidate its tag: the one whose time is later (+10 s) writes
    // first, the one at +0 s (its clock behind, or its write delayed) writes last.
    let ahead = redis_cache(&server, &at(10 * SEC), &loads);
    ahead.invalidate_tag("customer:1").await.unwrap();
    let behind = redis_cache(&server, &at(Duration::ZERO), &loads);
    behind.invalidate_tag("customer:1").await.unwrap();

    // An instance that heard neither (no backplane) reads the marker from Redis: the
    // later one, which invalidates the entry of +5 s.
    let late = redis_cache(&server, &at(11 * SEC), &loads);
    assert!(
        late.get_entry(&1).await.unwrap().is_none(),
        "the entry produced before the later invalidation is invalid"
    );
}

#[tokio::test]
async fn bytes_planted_where_a_marker_goes_do_not_block_the_tags_markers() {
    let store = MemoryStore::new();
    let clock = FrozenClock::new();
    let loads = Arc::default();
    let cache: Cache<u64, String> = Cache::builder()
        .clock(clock.clone())
        .fallback(Fallback::remote(Remote::new(store.clone())))
        .loader(orders(&loads))
        .build()
        .unwrap();
    cache.invalidate_tag("customer:1").await.unwrap();
    let key = store
        .keys()
        .into_iter()
        .find(|key| key.contains("!t"))
        .expect("a marker");
    let ours = store.raw(&key).unwrap();
    // Bytes that sort after any marker: garbage, and a marker whose bytes were changed.
    let mut forged = ours.to_vec();
    forged[3] = 0xff;
    forged.push(0); // a plain tier's marker has no tag: this one no longer decodes
    for planted in [&b"\xff\xff garbage"[..], &forged] {
        store.plant(&key, bytes::Bytes::copy_from_slice(planted));
        clock.advance(SEC);
        cache.invalidate_tag("customer:1").await.unwrap();
        let now = store.raw(&key).unwrap();
        assert!(
            now.starts_with(b"SCu") && now[..] != *planted,
            "replaced: {now:?}"
        );
    }
}
