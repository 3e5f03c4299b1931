//! Batches: one walk per tier, one load for what no tier holds, coalescing with singles,
//! the write rules for `insert_many` and `invalidate_many`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratacache::{
    BoxError, Cache, CacheEntry, CacheTier, Error, ErrorKind, Fallback, FrozenClock, Loaded,
    Loader, Lookup, MemoryTier, Remote,
};
use stratacache_redis::{RedisConfig, RedisStore};
use stratacache_testkit::RedisServer;
use tokio::sync::Semaphore;

/// A memory tier that counts its batch reads and the keys they asked for.
#[derive(Clone)]
struct CountingTier {
    memory: MemoryTier<u64, String>,
    batches: Arc<Mutex<Vec<Vec<u64>>>>,
}

impl CountingTier {
    fn new() -> Self {
        Self {
            memory: MemoryTier::new(1_000),
            batches: Arc::default(),
        }
    }
}

impl CacheTier<u64, String> for CountingTier {
    async fn get(&self, key: &u64) -> Result<Option<CacheEntry<String>>, Error> {
        CacheTier::get(&self.memory, key).await
    }
    async fn get_many(&self, keys: &[u64]) -> Result<Vec<Lookup<String>>, Error> {
        self.batches.lock().unwrap().push(keys.to_vec());
        Ok(keys.iter().map(|key| Ok(self.memory.lookup(key))).collect())
    }
    async fn insert(
        &self,
        key: u64,
        entry: CacheEntry<String>,
        keep_for: Option<Duration>,
    ) -> Result<(), Error> {
        self.memory.insert(key, entry, keep_for).await
    }
    async fn invalidate(&self, key: &u64) -> Result<(), Error> {
        self.memory.invalidate(key).await
    }
    async fn clear(&self) -> Result<(), Error> {
        CacheTier::clear(&self.memory).await
    }
}

/// A repository: rows are the even keys; every `load_many` call is recorded, and may be
/// held at a gate until the test opens it.
#[derive(Clone, Default)]
struct Rows {
    calls: Arc<Mutex<Vec<Vec<u64>>>>,
    single_loads: Arc<AtomicUsize>,
    gate: Option<Arc<Gate>>,
}

/// Loads announce themselves at `entered` and wait for a permit of `open`.
struct Gate {
    entered: Semaphore,
    open: Semaphore,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            entered: Semaphore::new(0),
            open: Semaphore::new(0),
        }
    }
}

impl Gate {
    async fn pass(&self) {
        self.entered.add_permits(1);
        self.open.acquire().await.unwrap().forget();
    }

    async fn wait_for_a_load(&self) {
        self.entered.acquire().await.unwrap().forget();
    }
}

impl Loader<u64, String> for Rows {
    async fn load(&self, key: &u64) -> Result<Option<Loaded<String>>, BoxError> {
        self.single_loads.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.pass().await;
        }
        Ok(key
            .is_multiple_of(2)
            .then(|| Loaded::new(format!("row {key}"))))
    }

    async fn load_many(&self, keys: &[u64]) -> Result<HashMap<u64, Loaded<String>>, BoxError> {
        self.calls.lock().unwrap().push(keys.to_vec());
        if let Some(gate) = &self.gate {
            gate.pass().await;
        }
        Ok(keys
            .iter()
            .filter(|key| key.is_multiple_of(2))
            .map(|key| (*key, Loaded::new(format!("row {key}"))))
            .collect())
    }
}

fn cache_over(l2: &CountingTier, rows: &Rows, clock: &FrozenClock) -> Cache<u64, String> {
    Cache::builder()
        .clock(clock)
        .stampede_protection(true)
        .ttl(Duration::from_secs(60))
        .fallback(Fallback::tier(l2.clone()))
        .loader(rows.clone())
        .cache_not_found(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A cache whose loads wait at a gate the test opens.
struct Gated {
    gate: Arc<Gate>,
    rows: Rows,
    l2: CountingTier,
    cache: Cache<u64, String>,
}

fn gated() -> Gated {
    let gate = Arc::new(Gate::default());
    let rows = Rows {
        gate: Some(Arc::clone(&gate)),
        ..Rows::default()
    };
    let l2 = CountingTier::new();
    let cache = cache_over(&l2, &rows, &FrozenClock::new());
    Gated {
        gate,
        rows,
        l2,
        cache,
    }
}

fn row(key: u64) -> Option<String> {
    Some(format!("row {key}"))
}

#[tokio::test]
async fn partial_hits_across_l1_l2_and_the_loader() {
    let (clock, l2, rows) = (FrozenClock::new(), CountingTier::new(), Rows::default());
    let cache = cache_over(&l2, &rows, &clock);
    cache.insert(1, "in l1".into()).await.unwrap();
    l2.memory
        .store(3, CacheEntry::new("in l2".into(), clock.now(), None), None);

    let values = cache.get_many(&[1, 2, 3, 4, 5, 2]).await.unwrap();
    assert_eq!(
        values,
        [
            Some("in l1".into()),
            row(2),
            Some("in l2".into()),
            row(4),
            None,
            row(2)
        ]
    );
    assert_eq!(
        *l2.batches.lock().unwrap(),
        [vec![2, 3, 4, 5]],
        "one read of L2"
    );
    assert_eq!(
        *rows.calls.lock().unwrap(),
        [vec![2, 4, 5]],
        "one load of the rest"
    );
    assert_eq!(rows.single_loads.load(Ordering::SeqCst), 0);

    // Loaded rows reached both tiers; L2's hit was promoted; 5 is remembered as absent.
    assert_eq!(l2.memory.lookup(&4).map(CacheEntry::into_value), row(4));
    assert_eq!(cache.l1_len(), Some(4));
    let tiers = cache.stats().tiers;
    assert_eq!((tiers[0].entries, tiers[1].entries), (Some(4), None));
    let info = cache.inspect(&3).await.unwrap().expect("promoted");
    assert_eq!(
        (info.tier(), info.remaining_ttl()),
        ("l1", Some(Duration::from_secs(60)))
    );
    assert_eq!(cache.get_many(&[1, 2, 3, 4, 5]).await.unwrap()[4], None);
    assert_eq!(
        l2.batches.lock().unwrap().len(),
        2,
        "only key 5 went down again"
    );
    assert_eq!(
        rows.calls.lock().unwrap().len(),
        1,
        "5 is a remembered not-found"
    );
    assert_eq!(cache.stats().not_found_hits, 1);

    // The negative entry expires on its own TTL.
    clock.advance(Duration::from_secs(11));
    assert_eq!(cache.get_many(&[5]).await.unwrap(), [None]);
    assert_eq!(rows.calls.lock().unwrap().last().unwrap(), &[5]);
}

#[tokio::test]
async fn a_hundred_keys_half_in_no_tier_load_exactly_that_half_once() {
    let (clock, l2, rows) = (FrozenClock::new(), CountingTier::new(), Rows::default());
    let cache = cache_over(&l2, &rows, &clock);
    let keys: Vec<u64> = (0..100).collect();
    for key in keys.iter().filter(|key| *key % 4 < 2) {
        l2.memory.store(
            *key,
            CacheEntry::new(format!("row {key}"), clock.now(), None),
            None,
        );
    }
    let values = cache.get_many(&keys).await.unwrap();
    let expected: Vec<_> = keys
        .iter()
        .map(|key| (key % 4 < 2 || key % 2 == 0).then(|| format!("row {key}")))
        .collect();
    assert_eq!(values, expected);
    let missing: Vec<u64> = keys.iter().copied().filter(|key| key % 4 >= 2).collect();
    assert_eq!(missing.len(), 50);
    assert_eq!(*rows.calls.lock().unwrap(), [missing]);
    assert_eq!(cache.stats().loads, 50);
}

#[tokio::test]
async fn a_failed_batch_load_fails_the_batch_and_stores_nothing() {
    let cache: Cache<u64, String> = Cache::builder().build().unwrap();
    cache.insert(1, "one".into()).await.unwrap();
    let error = cache
        .get_or_insert_many(&[1, 2], |_| async {
            Err::<HashMap<u64, String>, _>(std::io::Error::other("db down"))
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Loader);
    assert_eq!(cache.l1_len(), Some(1));
    assert_eq!(cache.stats().load_errors, 1);
}

#[tokio::test]
async fn the_default_load_many_runs_load_per_key() {
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&loads);
    let cache: Cache<u64, u64> = Cache::builder()
        .loader(move |key: u64| {
            counted.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, std::io::Error>((key < 50).then_some(key * 10)) }
        })
        .build()
        .unwrap();
    let keys: Vec<u64> = (0..60).collect();
    let values = cache.get_many(&keys).await.unwrap();
    assert_eq!(values[7], Some(70));
    assert_eq!(values[55], None);
    assert_eq!(loads.load(Ordering::SeqCst), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_lookup_joins_the_batch_load() {
    let Gated {
        gate, rows, cache, ..
    } = gated();
    let batch = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_many(&[2, 4]).await }
    });
    gate.wait_for_a_load().await; // the batch is loading 2 and 4
    let single = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get(&4).await }
    });
    // The single lookup is waiting on the batch's flight, not loading itself.
    let joined = async {
        while cache.stats().coalesced_waits == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), joined)
        .await
        .expect("the single lookup joined the batch's flight");
    gate.open.add_permits(1);
    assert_eq!(batch.await.unwrap().unwrap(), [row(2), row(4)]);
    assert_eq!(single.await.unwrap().unwrap(), row(4));
    assert_eq!(*rows.calls.lock().unwrap(), [vec![2, 4]]);
    assert_eq!(rows.single_loads.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waits_on_a_single_lookup_already_loading() {
    let Gated {
        gate, rows, cache, ..
    } = gated();
    let single = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get(&2).await }
    });
    gate.wait_for_a_load().await; // the single lookup is loading 2
    let batch = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_many(&[2, 6]).await }
    });
    gate.wait_for_a_load().await; // the batch is loading what it leads
    assert_eq!(
        *rows.calls.lock().unwrap(),
        [vec![6]],
        "2 is already in flight"
    );
    gate.open.add_permits(2);
    assert_eq!(single.await.unwrap().unwrap(), row(2));
    assert_eq!(batch.await.unwrap().unwrap(), [row(2), row(6)]);
    assert_eq!(rows.single_loads.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_batch_load_is_not_overwritten() {
    let Gated {
        gate, l2, cache, ..
    } = gated();
    let batch = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_many(&[2]).await }
    });
    gate.wait_for_a_load().await;
    cache.insert(2, "written".into()).await.unwrap();
    gate.open.add_permits(1);
    assert_eq!(
        batch.await.unwrap().unwrap(),
        [row(2)],
        "its caller gets the load"
    );
    assert_eq!(cache.get(&2).await.unwrap().as_deref(), Some("written"));
    let in_l2 = l2.memory.lookup(&2).map(CacheEntry::into_value);
    assert_eq!(in_l2.as_deref(), Some("written"));
}

#[tokio::test]
async fn insert_many_and_invalidate_many_follow_the_write_rules() {
    let (clock, l2, rows) = (FrozenClock::new(), CountingTier::new(), Rows::default());
    let cache = cache_over(&l2, &rows, &clock);
    let outcomes = cache
        .insert_many([(1, "a".to_string()), (3, "b".into()), (1, "c".into())])
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 3);
    assert!(outcomes.iter().all(|outcome| outcome.is_complete()));
    assert_eq!(
        l2.memory.lookup(&1).map(CacheEntry::into_value).as_deref(),
        Some("c")
    );
    assert_eq!(
        cache.get(&1).await.unwrap().as_deref(),
        Some("c"),
        "the last value wins"
    );

    // A remembered "not found" is replaced by a write, as for a single insert.
    assert_eq!(cache.get(&5).await.unwrap(), None);
    cache.insert_many([(5, "five".to_string())]).await.unwrap();
    assert_eq!(cache.get(&5).await.unwrap().as_deref(), Some("five"));

    cache.invalidate_many(&[1, 5, 1]).await.unwrap();
    assert!(l2.memory.lookup(&1).is_none());
    assert_eq!(cache.l1_len(), Some(1));
    let cache_only = stratacache::Options::new().strategy(stratacache::Strategy::CacheOnly);
    assert_eq!(cache.with(cache_only).get(&1).await.unwrap(), None);
    assert_eq!(cache.get(&3).await.unwrap().as_deref(), Some("b"));
}

#[tokio::test]
async fn a_batch_over_redis_reads_l1_redis_and_the_loader() {
    let server = RedisServer::start().unwrap();
    let store = RedisStore::new(RedisConfig::from_url(server.url()).namespace("batch")).unwrap();
    let rows = Rows::default();
    let cache: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(Remote::new(store.clone())))
        .loader(rows.clone())
        .build()
        .unwrap();
    let other: Cache<u64, String> = Cache::builder()
        .fallback(Fallback::remote(Remote::new(store)))
        .build()
        .unwrap();
    other.insert(10, "from redis".into()).await.unwrap();
    cache.insert(11, "from l1".into()).await.unwrap();
    let values = cache.get_many(&[10, 11, 12, 13]).await.unwrap();
    assert_eq!(
        values,
        [
            Some("from redis".into()),
            Some("from l1".into()),
            row(12),
            None
        ]
    );
    assert_eq!(*rows.calls.lock().unwrap(), [vec![12, 13]]);
    // What was loaded reached Redis: a second instance finds it there.
    assert_eq!(other.get_many(&[12, 13]).await.unwrap(), [row(12), None]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_joined_flight_loses_its_leader_loads_for_itself() {
    let Gated {
        gate, rows, cache, ..
    } = gated();
    let single = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get(&2).await }
    });
    gate.wait_for_a_load().await; // the single lookup leads 2's flight, stuck loading
    let batch = tokio::spawn({
        let cache = cache.clone();
        async move { cache.get_many(&[2]).await }
    });
    let joined = async {
        while cache.stats().coalesced_waits == 0 && rows.calls.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
    };
    // The batch has joined (its own loader has nothing to lead).
    tokio::time::timeout(Duration::from_millis(200), joined)
        .await
        .ok();
    tokio::time::sleep(Duration::from_millis(20)).await;
    single.abort(); // the leader goes away mid-load
    gate.open.add_permits(10);
    let answer = tokio::time::timeout(Duration::from_secs(10), batch)
        .await
        .expect("the batch does not hang")
        .unwrap()
        .unwrap();
    assert_eq!(answer, [row(2)]);
}
