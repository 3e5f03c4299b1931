//! 1,000 concurrent callers of one cold key, one database read:
//! `cargo run --example stampede`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stratacache::{Cache, Fallback};

const CALLERS: usize = 1_000;

#[tokio::main]
async fn main() -> Result<(), stratacache::Error> {
    let cache: Cache<String, String> = Cache::builder()
        .name("products")
        .stampede_protection(true)
        .ttl(Duration::from_secs(60))
        .fallback(Fallback::memory(|tier| tier))
        .build()?;
    let database_reads = Arc::new(AtomicUsize::new(0));

    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, reads) = (cache.clone(), Arc::clone(&database_reads));
            tokio::spawn(async move {
                cache
                    .get_or_insert("product:42", || async move {
                        reads.fetch_add(1, Ordering::SeqCst);
                        // A slow query: every caller arriving meanwhile waits on this one.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        "a very popular product".to_string()
                    })
                    .await
            })
        })
        .collect();
    let mut answered = 0;
    for caller in callers {
        let value = caller.await.expect("caller task")?;
        assert_eq!(value, "a very popular product");
        answered += 1;
    }
    let stats = cache.stats();
    println!("{answered} callers answered in {:?}", started.elapsed());
    println!("database reads: {}", database_reads.load(Ordering::SeqCst));
    println!(
        "loads: {}, callers that waited on another's load: {}",
        stats.loads, stats.coalesced_waits
    );
    Ok(())
}
