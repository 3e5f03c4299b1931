//! A loading cache in front of a repository: `get` reads through it on a miss, a user
//! the table lacks is remembered as "not found" for a while, each row chooses how long
//! it stays cached, a batch reads many users with one query for the missing ones, and
//! per-call options refresh or bypass the cache. `cargo run --example repository`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratacache::{BoxError, Cache, Fallback, Loaded, Loader, Options, Strategy};

#[derive(Clone, Debug)]
struct User {
    name: String,
    admin: bool,
}

/// A small in-process table standing in for the database, counting its reads. Cheap
/// to clone: clones share the table.
#[derive(Clone)]
struct Users {
    rows: Arc<Mutex<HashMap<u64, User>>>,
    reads: Arc<AtomicUsize>,
}

impl Users {
    /// `SELECT * FROM users WHERE id = ANY($1)`: one read for any number of ids.
    fn select(&self, ids: &[u64]) -> Result<HashMap<u64, Loaded<User>>, BoxError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let rows = self.rows.lock().map_err(|_| "table lock poisoned")?;
        Ok(ids
            .iter()
            .filter_map(|id| Some((*id, entry(rows.get(id)?.clone()))))
            .collect())
    }
}

/// Admins' rights change often: their entries live a minute, others an hour.
fn entry(user: User) -> Loaded<User> {
    let ttl = if user.admin { 60 } else { 3_600 };
    Loaded::new(user).ttl(Duration::from_secs(ttl))
}

impl Loader<u64, User> for Users {
    async fn load(&self, id: &u64) -> Result<Option<Loaded<User>>, BoxError> {
        Ok(self.select(&[*id])?.remove(id))
    }

    async fn load_many(&self, ids: &[u64]) -> Result<HashMap<u64, Loaded<User>>, BoxError> {
        self.select(ids)
    }
}

#[tokio::main]
async fn main() -> Result<(), stratacache::Error> {
    let table = HashMap::from([
        (
            1,
            User {
                name: "ada".into(),
                admin: true,
            },
        ),
        (
            2,
            User {
                name: "grace".into(),
                admin: false,
            },
        ),
        (
            4,
            User {
                name: "alan".into(),
                admin: false,
            },
        ),
    ]);
    let users = Users {
        rows: Arc::new(Mutex::new(table)),
        reads: Arc::default(),
    };
    let cache: Cache<u64, User> = Cache::builder()
        .name("users")
        .memory(|l1| l1.max_capacity(10_000))
        .fallback(Fallback::memory(|l2| l2)) // in production: Fallback::remote(redis)
        .loader(users.clone())
        .cache_not_found(Duration::from_secs(30))
        .stampede_protection(true)
        .build()?;

    for id in [1, 2, 1, 2, 3, 3, 3] {
        let user = cache.get(&id).await?;
        println!("get({id}) -> {:?}", user.map(|user| user.name));
    }
    for id in [1, 2] {
        let ttl = cache.get_entry(&id).await?.and_then(|entry| entry.ttl());
        println!("user {id} is cached for {ttl:?}, as its row chose");
    }

    // A batch: 1 and 2 are cached, 3 is remembered as absent, 4 and 5 take one query.
    let reads = users.reads.load(Ordering::SeqCst);
    let names: Vec<_> = cache
        .get_many(&[1, 2, 3, 4, 5])
        .await?
        .into_iter()
        .map(|user| user.map(|user| user.name))
        .collect();
    let queries = users.reads.load(Ordering::SeqCst) - reads;
    println!("get_many([1, 2, 3, 4, 5]) -> {names:?} with {queries} table read");

    // Per call: the row changed behind the cache's back; refresh it, or bypass the cache.
    if let Ok(mut rows) = users.rows.lock()
        && let Some(ada) = rows.get_mut(&1)
    {
        ada.name = "ada lovelace".into();
    }
    let cached = cache.get(&1).await?.map(|user| user.name);
    let refresh = Options::new().strategy(Strategy::Reload);
    let refreshed = cache.with(refresh).get(&1).await?.map(|user| user.name);
    println!("user 1: cached {cached:?}, refreshed {refreshed:?}");
    if let Some(info) = cache.inspect(&1).await? {
        println!(
            "user 1 lives in {} for {:?} more",
            info.tier(),
            info.remaining_ttl()
        );
    }

    let stats = cache.stats();
    println!(
        "table reads {}, loads {}, remembered not-found answers {}",
        users.reads.load(Ordering::SeqCst),
        stats.loads,
        stats.not_found_hits
    );
    Ok(())
}
