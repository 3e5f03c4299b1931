use std::time::{Duration, Instant};

use moka::Expiry;
use stratacache_tier::CacheEntry;

/// An entry as the tier keeps it: with how long it was to be kept when stored.
#[derive(Clone, Debug)]
pub(crate) struct Stored<V> {
    pub(crate) entry: CacheEntry<V>,
    pub(crate) keep_for: Option<Duration>,
}

/// Tells moka to drop each entry when the time it was handed at insertion runs out.
///
/// moka keeps time with its own monotonic clock; the facade measured `keep_for` with the
/// cache's clock, so the tier reads no clock of its own. Under a frozen cache clock the
/// facade's read-time check is what hides an entry; moka reclaims it later.
pub(crate) struct KeepFor;

impl<K, V> Expiry<K, Stored<V>> for KeepFor {
    fn expire_after_create(&self, _key: &K, stored: &Stored<V>, _at: Instant) -> Option<Duration> {
        stored.keep_for
    }

    fn expire_after_update(
        &self,
        _key: &K,
        stored: &Stored<V>,
        _at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        // A replaced entry brings its own time; the old deadline must not carry over.
        stored.keep_for
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn stored(keep_for: Option<Duration>) -> Stored<()> {
        Stored {
            entry: CacheEntry::new((), SystemTime::UNIX_EPOCH, None),
            keep_for,
        }
    }

    #[test]
    fn the_deadline_is_what_the_facade_handed_over() {
        let six = Some(Duration::from_secs(6));
        assert_eq!(
            KeepFor.expire_after_create(&(), &stored(six), Instant::now()),
            six
        );
        let updated = KeepFor.expire_after_update(
            &(),
            &stored(six),
            Instant::now(),
            Some(Duration::from_secs(99)),
        );
        assert_eq!(updated, six);
    }

    #[test]
    fn no_limit_has_no_deadline_and_an_update_clears_the_old_one() {
        assert_eq!(
            KeepFor.expire_after_create(&(), &stored(None), Instant::now()),
            None
        );
        let updated = KeepFor.expire_after_update(
            &(),
            &stored(None),
            Instant::now(),
            Some(Duration::from_secs(1)),
        );
        assert_eq!(updated, None);
    }
}
