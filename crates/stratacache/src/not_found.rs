//! Negative caching: a loader's "not found", remembered in this instance for a while so
//! that a key the source lacks is not looked up again on every `get`.

use std::hash::Hash;
use std::time::{Duration, SystemTime};

/// How many keys' "not found" answers are remembered. Past it moka forgets the least
/// useful, which at worst costs a load.
const REMEMBERED: u64 = 100_000;

pub(crate) struct NotFound<K> {
    ttl: Duration,
    /// Until when (the cache clock's time) each key counts as not found.
    until: moka::sync::Cache<K, SystemTime, ahash::RandomState>,
}

impl<K: Hash + Eq + Send + Sync + 'static> NotFound<K> {
    pub(crate) fn new(ttl: Duration) -> Self {
        // Longer is for ever: a century still adds to any clock's time.
        let ttl = ttl.min(Duration::from_secs(100 * 365 * 24 * 60 * 60));
        Self {
            ttl,
            until: moka::sync::Cache::builder()
                .max_capacity(REMEMBERED)
                // Reclaims on real time; the cache clock decides what is still valid. moka
                // refuses a TTL over 1,000 years: a year is as good as for ever here.
                .time_to_live(ttl.min(Duration::from_secs(365 * 24 * 60 * 60)))
                .build_with_hasher(ahash::RandomState::new()),
        }
    }

    /// Whether `key` was found missing less than the TTL ago.
    pub(crate) fn holds(&self, key: &K, now: SystemTime) -> bool {
        self.until.get(key).is_some_and(|until| now < until)
    }

    pub(crate) fn remember(&self, key: K, now: SystemTime) {
        if let Some(until) = now.checked_add(self.ttl) {
            self.until.insert(key, until);
        }
    }

    pub(crate) fn forget(&self, key: &K) {
        self.until.invalidate(key);
    }

    pub(crate) fn forget_all(&self) {
        self.until.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_for_its_ttl_by_the_given_clock() {
        let not_found = NotFound::new(Duration::from_secs(10));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert!(!not_found.holds(&1, t0));
        not_found.remember(1, t0);
        assert!(not_found.holds(&1, t0 + Duration::from_secs(9)));
        assert!(!not_found.holds(&1, t0 + Duration::from_secs(10)));
        not_found.forget(&1);
        assert!(!not_found.holds(&1, t0));
    }
}
