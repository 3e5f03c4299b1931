use std::sync::LazyLock;
use stratacache::{Cache, cached};

static CACHE: LazyLock<Cache<u64, u64>> = LazyLock::new(|| Cache::builder().build().unwrap());

#[derive(Debug)]
struct MyError;

// `MyError` cannot be made from a cache error: the compiler says so.
#[cached(cache = CACHE, key = id)]
async fn double(id: u64) -> Result<u64, MyError> {
    Ok(id * 2)
}

fn main() {}
