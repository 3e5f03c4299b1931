//! `#[cached]`: an async fn read through a cache, by return type, with real concurrency.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use stratacache::{Cache, cached};

#[derive(Debug, PartialEq)]
enum DbError {
    NotReachable,
    Cache(stratacache::ErrorKind),
}

impl From<stratacache::Error> for DbError {
    fn from(error: stratacache::Error) -> Self {
        Self::Cache(error.kind())
    }
}

static RESULTS: LazyLock<Cache<u64, String>> =
    LazyLock::new(|| Cache::builder().stampede_protection(true).build().unwrap());
static RESULT_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = RESULTS, key = id)]
async fn user(id: u64) -> Result<String, DbError> {
    RESULT_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    if id == 0 {
        return Err(DbError::NotReachable);
    }
    Ok(format!("user {id}"))
}

#[tokio::test]
async fn ok_values_are_cached_and_errors_come_back_as_they_were_never_cached() {
    assert_eq!(user(1).await.as_deref(), Ok("user 1"));
    assert_eq!(user(1).await.as_deref(), Ok("user 1"));
    assert_eq!(
        RESULT_RUNS.load(Ordering::SeqCst),
        1,
        "the second call hit the cache"
    );
    assert_eq!(
        user(0).await,
        Err(DbError::NotReachable),
        "the function's own error"
    );
    assert_eq!(user(0).await, Err(DbError::NotReachable));
    assert_eq!(
        RESULT_RUNS.load(Ordering::SeqCst),
        3,
        "errors are never cached"
    );
    assert!(!RESULTS.contains(&0).await.unwrap());
}

static OPTIONS: LazyLock<Cache<u64, String>> = LazyLock::new(|| Cache::builder().build().unwrap());
static OPTION_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = OPTIONS, key = id)]
async fn maybe_user(id: u64) -> Option<String> {
    OPTION_RUNS.fetch_add(1, Ordering::SeqCst);
    (id < 100).then(|| format!("user {id}"))
}

#[tokio::test]
async fn some_is_cached_and_none_is_not() {
    assert_eq!(maybe_user(7).await.as_deref(), Some("user 7"));
    assert_eq!(maybe_user(7).await.as_deref(), Some("user 7"));
    assert_eq!(maybe_user(500).await, None);
    assert_eq!(maybe_user(500).await, None);
    assert_eq!(OPTION_RUNS.load(Ordering::SeqCst), 3);
}

static NONES: LazyLock<Cache<u64, Option<String>>> =
    LazyLock::new(|| Cache::builder().build().unwrap());
static NONE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cached(cache = NONES, key = id, cache_none)]
async fn remembered(id: u64) -> Option<String> {
    NONE_RUNS.fetch_add(1, Ordering::SeqCst);
    (id < 100).then(|| format!("user {id}"))
}

#[tokio::test]
async fn with_cache_none_a_none_is_cached_too() {
    assert_eq!(remembered(500).await, None);
    assert_eq!(remembered(500).await, None);
    assert_eq!(NONE_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(NONES.get(&500).await.unwrap(), Some(None));
}

/// A repository with its cache as a field, keyed on two arguments.
struct Orders {
    cache: Cache<(u64, u32), u64>,
    runs: AtomicUsize,
}

impl Orders {
    #[cached(cache = self.cache, key = (customer, year))]
    async fn total(&self, customer: u64, year: u32) -> u64 {
        self.runs.fetch_add(1, Ordering::SeqCst);
        // A query that takes a while: every caller arrives while it runs.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        customer * 1_000 + u64::from(year)
    }
}

/// Tokio's paused clock: the query's second passes only once every caller waits on it.
#[tokio::test(start_paused = true)]
async fn a_method_keyed_on_two_arguments_runs_once_for_many_concurrent_callers() {
    let orders = std::sync::Arc::new(Orders {
        cache: Cache::builder().stampede_protection(true).build().unwrap(),
        runs: AtomicUsize::new(0),
    });
    let callers: Vec<_> = (0..64)
        .map(|_| {
            let orders = std::sync::Arc::clone(&orders);
            tokio::spawn(async move { orders.total(7, 2026).await })
        })
        .collect();
    for caller in callers {
        assert_eq!(caller.await.unwrap(), 9_026);
    }
    assert_eq!(
        orders.runs.load(Ordering::SeqCst),
        1,
        "one run for 64 callers"
    );
    assert_eq!(orders.total(7, 2025).await, 9_025, "another key");
    assert_eq!(orders.runs.load(Ordering::SeqCst), 2);
}

#[test]
fn misuse_fails_to_compile_with_a_clear_message() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

static SLOW: LazyLock<Cache<u64, u64>> = LazyLock::new(|| {
    Cache::builder()
        .load_timeouts(stratacache::LoadTimeouts::new().hard(std::time::Duration::from_millis(100)))
        .build()
        .unwrap()
});

#[cached(cache = SLOW, key = id)]
async fn slow(id: u64) -> u64 {
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    id + 1
}

/// The cache gives up on a load past its hard timeout; the function still answers, by
/// finishing the body it started (never a panic, never a second run).
#[tokio::test(start_paused = true)]
async fn a_load_the_cache_timed_out_is_finished_by_the_function() {
    assert_eq!(slow(1).await, 2);
    assert!(
        !SLOW.contains(&1).await.unwrap(),
        "nothing cached: the cache gave up"
    );
}
