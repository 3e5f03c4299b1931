use std::sync::LazyLock;
use stratacache::{Cache, cached};

static CACHE: LazyLock<Cache<u64, u64>> = LazyLock::new(|| Cache::builder().build().unwrap());

#[cached(cache = CACHE, key = id)]
fn double(id: u64) -> u64 {
    id * 2
}

fn main() {}
