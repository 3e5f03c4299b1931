//! Which keys are being refreshed, and which are resting after a refresh that brought
//! nothing: at most one refresh per key at any time, and no storm after a fruitless one.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::SystemTime;

use crate::sharded::ShardedMap;
/// Resting keys a shard remembers before it forgets the ones whose rest is over (and,
/// past that, all resting ones: at worst a key is refreshed early). Running keys are
/// never forgotten; there are as many as refreshes in progress.
const REMEMBERED_PER_SHARD: usize = 2_048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Running,
    Resting { until: SystemTime },
}

pub(crate) struct Claims<K> {
    states: ShardedMap<K, State>,
}

impl<K: Hash + Eq> Claims<K> {
    pub(crate) fn new() -> Self {
        Self {
            states: ShardedMap::new(),
        }
    }

    /// Claims the refresh of `key` at `now`: true for one caller while no refresh of the
    /// key runs and its rest, if any, is over.
    pub(crate) fn claim<Q>(&self, key: &Q, now: SystemTime) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut shard = self.states.shard(key);
        match shard.get(key) {
            Some(State::Running) => return false,
            Some(State::Resting { until }) if now < *until => return false,
            _ => {}
        }
        if shard.len() >= REMEMBERED_PER_SHARD {
            shard.retain(|_, state| match state {
                State::Running => true,
                State::Resting { until } => now < *until,
            });
            if shard.len() >= REMEMBERED_PER_SHARD {
                shard.retain(|_, state| *state == State::Running);
            }
        }
        shard.insert(key.to_owned(), State::Running);
        true
    }

    /// Ends the refresh of `key`: it rests until `rest_until`, or (`None`) may be
    /// refreshed again as soon as its entry is stale.
    pub(crate) fn finish(&self, key: &K, rest_until: Option<SystemTime>)
    where
        K: Clone,
    {
        let mut shard = self.states.shard(key);
        match rest_until {
            Some(until) => {
                shard.insert(key.clone(), State::Resting { until });
            }
            None => {
                shard.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sharded::SHARDS;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn one_claim_while_running_then_rest() {
        let claims = Claims::<String>::new();
        let t0 = SystemTime::UNIX_EPOCH + 1_000 * SEC;
        assert!(claims.claim("k", t0));
        assert!(
            !claims.claim("k", t0 + 3_600 * SEC),
            "still running, however late"
        );
        claims.finish(&"k".to_string(), Some(t0 + 10 * SEC));
        assert!(!claims.claim("k", t0 + 9 * SEC));
        assert!(claims.claim("k", t0 + 10 * SEC));
        claims.finish(&"k".to_string(), None);
        assert!(
            claims.claim("k", t0 + 10 * SEC),
            "released: claimable at once"
        );
    }

    #[test]
    fn a_full_shard_forgets_resting_keys_never_running_ones() {
        let claims = Claims::<u64>::new();
        let t0 = SystemTime::UNIX_EPOCH + 1_000 * SEC;
        assert!(claims.claim(&u64::MAX, t0));
        for key in 0..(SHARDS * REMEMBERED_PER_SHARD * 2) as u64 {
            assert!(claims.claim(&key, t0));
            claims.finish(&key, Some(t0 + 60 * SEC));
        }
        assert!(
            !claims.claim(&u64::MAX, t0),
            "the running key is remembered"
        );
        assert!(claims.states.len() <= SHARDS * REMEMBERED_PER_SHARD + 1);
    }
}
