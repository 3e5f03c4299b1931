//! A loading cache in front of a repository: `get` reads through it on a miss, a user
//! the table lacks is remembered as "not found" for a while, and each row chooses how
//! long it stays cached. `cargo run --example repository`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stratacache::{BoxError, Cache, Fallback, Loaded, Loader};

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

impl Loader<u64, User> for Users {
    async fn load(&self, id: &u64) -> Result<Option<Loaded<User>>, BoxError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let row = self
            .rows
            .lock()
            .map_err(|_| "table lock poisoned")?
            .get(id)
            .cloned();
        Ok(row.map(|user| {
            // Admins' rights change often: their entries live a minute, others an hour.
            let ttl = if user.admin { 60 } else { 3_600 };
            Loaded::new(user).ttl(Duration::from_secs(ttl))
        }))
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
    let stats = cache.stats();
    println!(
        "table reads {}, loads {}, remembered not-found answers {}",
        users.reads.load(Ordering::SeqCst),
        stats.loads,
        stats.not_found_hits
    );
    Ok(())
}
