use std::time::{Duration, Instant};

use moka::Expiry;
use stratacache_tier::{CacheEntry, Clock};

/// Tells moka to drop each entry when its own TTL runs out, as the tier's clock sees it.
///
/// moka keeps time with its own monotonic clock, so the deadline is handed over as a
/// duration from now; with a frozen clock in tests that duration is measured against a
/// standing clock, and the facade's read-time check is what hides the entry.
pub(crate) struct EntryExpiry {
    pub(crate) clock: Clock,
}

impl EntryExpiry {
    fn remaining<V>(&self, entry: &CacheEntry<V>) -> Option<Duration> {
        entry.remaining_ttl(self.clock.now())
    }
}

impl<K, V> Expiry<K, CacheEntry<V>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &K,
        entry: &CacheEntry<V>,
        _created_at: Instant,
    ) -> Option<Duration> {
        self.remaining(entry)
    }

    fn expire_after_update(
        &self,
        _key: &K,
        entry: &CacheEntry<V>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        // A replaced entry brings its own TTL; the old deadline must not carry over.
        self.remaining(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratacache_tier::FrozenClock;

    #[test]
    fn deadline_is_the_remaining_ttl_at_insertion() {
        let clock = FrozenClock::new();
        let expiry = EntryExpiry {
            clock: clock.clock(),
        };
        let produced = clock.now();
        clock.advance(Duration::from_secs(4));
        let entry = CacheEntry::new((), produced, Some(Duration::from_secs(10)));
        let after_create = expiry.expire_after_create(&(), &entry, Instant::now());
        assert_eq!(after_create, Some(Duration::from_secs(6)));
        let after_update =
            expiry.expire_after_update(&(), &entry, Instant::now(), Some(Duration::from_secs(99)));
        assert_eq!(after_update, Some(Duration::from_secs(6)));
    }

    #[test]
    fn entry_without_ttl_has_no_deadline_and_an_update_clears_the_old_one() {
        let clock = FrozenClock::new();
        let expiry = EntryExpiry {
            clock: clock.clock(),
        };
        let entry = CacheEntry::new((), clock.now(), None);
        assert_eq!(
            expiry.expire_after_create(&(), &entry, Instant::now()),
            None
        );
        let updated =
            expiry.expire_after_update(&(), &entry, Instant::now(), Some(Duration::from_secs(1)));
        assert_eq!(updated, None);
    }

    #[test]
    fn already_expired_entry_gets_a_zero_deadline() {
        let clock = FrozenClock::new();
        let expiry = EntryExpiry {
            clock: clock.clock(),
        };
        let entry = CacheEntry::new((), clock.now(), Some(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(5));
        assert_eq!(
            expiry.expire_after_create(&(), &entry, Instant::now()),
            Some(Duration::ZERO)
        );
    }
}
