//! Auto-recovery: writes and invalidations a remote tier could not take wait, latest
//! per key, and are replayed when the tier answers again.
//!
//! While a change waits, the tier's lookups of that key answer what the change says (the
//! new value, or nothing), not what the tier still holds: a replaced value is not
//! promoted back while Redis is down or flapping. A change is settled (forgotten) when a
//! later write of the key reaches the tier, or a reader stores a newer value there; it is
//! dropped at replay when the tier already holds an entry newer than it (another instance
//! wrote since). A change whose key another instance is heard writing is *contested*:
//! which of the two is newer is not known here, so lookups ask the tier again, and the
//! replay (a fill, compared by time in the store) decides. A write the tier answers for
//! but does not take at replay (too large for its timeout, refused) is given up for a
//! removal of the key, which waits in its place. Changes are queued, settled and
//! replayed under the key's lock.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use stratacache_tier::{CacheEntry, Error, ErrorKind};

use crate::backplane::Action;
use crate::flag::Raised;
use crate::inner::Inner;
use crate::level::Level;
use crate::telemetry::{CacheCounter, Op, Operation, TierOutcome};

/// A change waiting for its tier.
#[derive(Clone)]
pub(crate) enum Pending<V> {
    Store(CacheEntry<V>),
    Remove { at: SystemTime },
}

impl<V> Pending<V> {
    /// When the change was made: its entry's production time, or the removal's.
    pub(crate) fn made_at(&self) -> SystemTime {
        match self {
            Self::Store(entry) => entry.cached_at(),
            Self::Remove { at } => *at,
        }
    }

    /// What a lookup answers while this change is contested, given what the tier holds:
    /// what its replay will leave there. The tier's entry if newer than this change, this
    /// change if newer than the tier's entry; nothing when the tier holds nothing (absent,
    /// or removed after this change: which is not known).
    pub(crate) fn against(self, stored: Option<CacheEntry<V>>) -> Option<CacheEntry<V>> {
        let theirs = stored?;
        let made_at = self.made_at();
        match self {
            Self::Store(mine) if made_at > theirs.cached_at() => Some(mine),
            Self::Store(_) => Some(theirs),
            Self::Remove { .. } => theirs.is_newer_than(made_at).then_some(theirs),
        }
    }
}

/// What a lookup of a key at a tier answers while a change of the key waits.
pub(crate) enum Answer<V> {
    /// What the change says the tier will hold.
    Waiting(Option<CacheEntry<V>>),
    /// The change is contested: ask the tier, then [`Pending::against`].
    Contested(Pending<V>),
}

/// A waiting change, and whether another instance was heard writing its key since.
struct Waiting<V> {
    change: Pending<V>,
    contested: bool,
}

/// One tier's waiting changes.
pub(crate) struct Recovery<K, V> {
    pending: Mutex<HashMap<K, Waiting<V>>>,
    /// How many changes wait: lookups skip the lock while it is zero.
    len: AtomicUsize,
    capacity: usize,
    replaying: Arc<AtomicBool>,
    /// A task tries the replay on a timer (see [`Inner::retry_later`]).
    retrying: Arc<AtomicBool>,
    /// Set by every call the tier itself answered: the sign to replay.
    answered: AtomicBool,
    /// A clear the tier missed waits: until replayed, every key reads as absent there
    /// (but those changed since, which read as their change).
    cleared: AtomicBool,
}

impl<K: Hash + Eq + Clone, V: Clone> Recovery<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            len: AtomicUsize::new(0),
            capacity,
            replaying: Arc::default(),
            retrying: Arc::default(),
            answered: AtomicBool::new(false),
            cleared: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Waiting<V>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many changes wait, a waiting clear counting as one.
    pub(crate) fn waiting_count(&self) -> u64 {
        let len = u64::try_from(self.len.load(Ordering::Acquire)).unwrap_or(u64::MAX);
        len.saturating_add(u64::from(self.cleared.load(Ordering::Acquire)))
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0 && !self.cleared.load(Ordering::Acquire)
    }

    /// Notes that the tier itself answered a call.
    #[inline]
    pub(crate) fn tier_answered(&self) {
        if !self.is_empty() {
            self.answered.store(true, Ordering::Release);
        }
    }

    /// Whether the tier answered a call since this was last asked, with changes waiting.
    #[inline]
    pub(crate) fn take_answered(&self) -> bool {
        !self.is_empty() && self.answered.swap(false, Ordering::AcqRel)
    }

    /// What a lookup of `key` at this tier answers while a change of it waits; `None`
    /// when none does (ask the tier).
    #[inline]
    pub(crate) fn answer(&self, key: &K) -> Option<Answer<V>> {
        if self.is_empty() {
            return None;
        }
        let pending = self.lock();
        match pending.get(key) {
            Some(waiting) if waiting.contested => Some(Answer::Contested(waiting.change.clone())),
            Some(Waiting {
                change: Pending::Store(entry),
                ..
            }) => Some(Answer::Waiting(Some(entry.clone()))),
            Some(Waiting {
                change: Pending::Remove { .. },
                ..
            }) => Some(Answer::Waiting(None)),
            None if self.cleared.load(Ordering::Acquire) => Some(Answer::Waiting(None)),
            None => None,
        }
    }

    /// Queues a clear the tier missed: it replaces every waiting change.
    pub(crate) fn queue_clear(&self) {
        let mut pending = self.lock();
        pending.clear();
        self.len.store(0, Ordering::Release);
        self.cleared.store(true, Ordering::Release);
    }

    /// Queues `change` of `key`, replacing an older one (`contested` if another
    /// instance was heard writing the key since the change began); false when the queue
    /// is full.
    pub(crate) fn queue(&self, key: K, change: Pending<V>, contested: bool) -> bool {
        let mut pending = self.lock();
        if pending.len() >= self.capacity && !pending.contains_key(&key) {
            return false;
        }
        pending.insert(key, Waiting { change, contested });
        self.len.store(pending.len(), Ordering::Release);
        true
    }

    /// Marks every waiting change contested: what other instances wrote meanwhile may
    /// have gone unheard (the backplane lost messages).
    pub(crate) fn contest_all(&self) {
        if self.is_empty() {
            return;
        }
        for waiting in self.lock().values_mut() {
            waiting.contested = true;
        }
    }

    /// Marks the change of `key` contested: another instance was heard writing the key.
    pub(crate) fn contest(&self, key: &K) {
        if self.is_empty() {
            return;
        }
        if let Some(waiting) = self.lock().get_mut(key) {
            waiting.contested = true;
        }
    }

    /// Forgets the change of `key`: the tier took a newer one.
    pub(crate) fn settle(&self, key: &K) {
        if self.is_empty() {
            return;
        }
        let mut pending = self.lock();
        pending.remove(key);
        self.len.store(pending.len(), Ordering::Release);
    }

    /// Forgets the change of `key` if made at or before `than`: the tier holds an entry
    /// newer than `than`, so the replay of such a change would change nothing.
    pub(crate) fn settle_older(&self, key: &K, than: SystemTime) {
        if self.is_empty() {
            return;
        }
        let mut pending = self.lock();
        let older = pending
            .get(key)
            .is_some_and(|waiting| waiting.change.made_at() <= than);
        if older {
            pending.remove(key);
            self.len.store(pending.len(), Ordering::Release);
        }
    }

    /// Forgets every change: the tier was cleared.
    pub(crate) fn clear(&self) {
        let mut pending = self.lock();
        pending.clear();
        self.len.store(0, Ordering::Release);
        self.cleared.store(false, Ordering::Release);
    }

    fn waiting(&self, key: &K) -> Option<Pending<V>> {
        self.lock().get(key).map(|waiting| waiting.change.clone())
    }

    fn some_keys(&self, count: usize) -> Vec<K> {
        self.lock().keys().take(count).cloned().collect()
    }
}

/// The first pause before a queued change is tried again without a sign that the tier
/// is back; pauses double from here.
const FIRST_RETRY: Duration = Duration::from_millis(100);
/// The longest pause between two such tries.
const LAST_RETRY: Duration = Duration::from_secs(1);

/// How a replayed change ended.
enum Replayed {
    /// The tier took it.
    Applied,
    /// Not needed any more (expired, or the tier holds something newer), or refused.
    Dropped,
    /// A write given up: the key was removed there in its place.
    Removed,
    /// A write given up, over which the tier holds something newer: nothing to remove.
    Overtaken,
    /// The tier failed again: stop until it answers.
    Failed,
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Starts a replay of level `depth`'s waiting changes in the background (on the
    /// current tokio runtime), unless one runs already.
    pub(crate) fn recover(&self, depth: usize) {
        let Some(recovery) = &self.levels[depth].recovery else {
            return;
        };
        if recovery.is_empty() || recovery.replaying.load(Ordering::Acquire) {
            return;
        }
        let (Ok(runtime), Some(inner)) = (tokio::runtime::Handle::try_current(), self.me.upgrade())
        else {
            return;
        };
        // Lowered however the replay ends: a panic (in a value's `Serialize`, say), or
        // the runtime dropping the task; else no replay would ever start again.
        if let Some(replaying) = Raised::raise(&recovery.replaying) {
            runtime.spawn(async move {
                let _replaying = replaying;
                inner.replay(depth).await;
            });
        }
    }

    /// After a change was queued at level `depth`: tries the replay on a timer (from
    /// [`FIRST_RETRY`], doubling to [`LAST_RETRY`]) until nothing waits. Lookups of a key
    /// whose change waits are answered here, never by the tier: an instance reading only
    /// such keys would otherwise never see the tier answer, and never replay.
    pub(crate) fn retry_later(&self, depth: usize) {
        let Some(recovery) = &self.levels[depth].recovery else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(retrying) = Raised::raise(&recovery.retrying) else {
            return;
        };
        let me = self.me.clone();
        runtime.spawn(async move {
            let mut retrying = Some(retrying);
            let mut pause = FIRST_RETRY;
            loop {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LAST_RETRY);
                // Not kept alive by its retries: a dropped cache stops them.
                let Some(inner) = me.upgrade() else {
                    return;
                };
                let Some(recovery) = &inner.levels[depth].recovery else {
                    return;
                };
                if recovery.is_empty() {
                    drop(retrying.take());
                    // A change queued meanwhile found the flag up: carry on for it.
                    if recovery.is_empty() {
                        return;
                    }
                    match Raised::raise(&recovery.retrying) {
                        Some(again) => retrying = Some(again),
                        None => return,
                    }
                }
                inner.recover(depth);
            }
        });
    }

    /// Replays level `depth`'s waiting changes until none is left or the tier fails.
    async fn replay(self: &Arc<Self>, depth: usize) {
        let Some(recovery) = &self.levels[depth].recovery else {
            return;
        };
        if recovery.cleared.load(Ordering::Acquire) && !self.replay_clear(depth).await {
            return;
        }
        loop {
            let keys = recovery.some_keys(64);
            if keys.is_empty() {
                return;
            }
            for key in keys {
                let _key = match &self.key_locks {
                    Some(locks) => Some(locks.lock(&key).await),
                    None => None,
                };
                let Some(change) = recovery.waiting(&key) else {
                    continue;
                };
                let action = match change {
                    Pending::Store(_) => Action::Written,
                    Pending::Remove { .. } => Action::Invalidated,
                };
                match self.replay_one(depth, &key, change).await {
                    Replayed::Applied => {
                        recovery.settle(&key);
                        self.telemetry.count(CacheCounter::RecoveryReplayed);
                        self.replayed(&key, action);
                    }
                    Replayed::Dropped => {
                        recovery.settle(&key);
                        self.telemetry.count(CacheCounter::RecoveryDropped);
                        // L1 may hold the change, as lookups answered it: the tier does
                        // not, and never will.
                        self.forget_here(&key, &self.generations.write(&key));
                    }
                    // Counted as dropped when given up.
                    Replayed::Removed => {
                        recovery.settle(&key);
                        self.replayed(&key, Action::Invalidated);
                    }
                    // Counted as dropped, and forgotten here, when given up.
                    Replayed::Overtaken => recovery.settle(&key),
                    Replayed::Failed => return,
                }
            }
        }
    }

    /// After a replay changed the shared tier: what was read from it before (by this
    /// instance while the change was contested, or by any other) may sit in an L1. This
    /// one forgets the key, as a write does, and the others are told.
    fn replayed(&self, key: &K, action: Action) {
        self.forget_here(key, &self.generations.write(key));
        self.announce(action, Some(key));
    }

    /// Replays a clear the tier missed, holding every key as a clear does; whether the
    /// tier took it.
    async fn replay_clear(&self, depth: usize) -> bool {
        let level = &self.levels[depth];
        let Some(recovery) = &level.recovery else {
            return true;
        };
        let _every_key = match &self.key_locks {
            Some(locks) => Some(locks.lock_all().await),
            None => None,
        };
        if !recovery.cleared.load(Ordering::Acquire) {
            return true;
        }
        let op = self.telemetry.start(Operation::Recovery);
        let stopwatch = op.stopwatch();
        match level.clear().await {
            Ok(()) => {
                // Changes queued after the clear stay, to be replayed over it.
                recovery.cleared.store(false, Ordering::Release);
                self.telemetry.count(CacheCounter::RecoveryReplayed);
                true
            }
            Err(error) => {
                self.report(&op, level, TierOutcome::Error(error.kind()), stopwatch);
                false
            }
        }
    }

    /// Applies one waiting change, unless the tier already holds something newer.
    ///
    /// A write whose read the tier answered, but which it then does not take (it times
    /// out: a value too large to send within the timeout; or it fails otherwise than by
    /// being down) is given up rather than sent again at every replay, each time holding
    /// up every other command on the connection: a removal of the key, dated now, waits
    /// in its place and is sent, so that the tier keeps nothing the write replaced. So is
    /// a write with nothing left to store (expired, or declined by the insert policy), as
    /// a write is. One such failure is enough; it costs a miss, never a stale read. The
    /// tier is read once more before that removal: if another instance wrote meanwhile,
    /// what the write replaced is gone already, and the removal is not sent over theirs;
    /// and the removal itself stands back, in one step where it lands
    /// ([`CacheTier::invalidate_unless_newer`](stratacache_tier::CacheTier::invalidate_unless_newer)),
    /// from an entry produced after the write, so one landing after that read stands
    /// too. A removal replayed stands back from entries produced after it.
    async fn replay_one(&self, depth: usize, key: &K, change: Pending<V>) -> Replayed {
        let level = &self.levels[depth];
        let op = self.telemetry.start(Operation::Recovery);
        let newer_than = change.made_at();
        match level.holds_newer(key, newer_than).await {
            Ok(true) => return Replayed::Dropped,
            Err(error) if is_outage(error.kind()) => return Replayed::Failed,
            _ => {}
        }
        let mut stopwatch = op.stopwatch();
        let (at, given_up) = match change {
            Pending::Store(entry) => {
                match self.copy_to_keep(level, &entry, || self.clock.now(), &op) {
                    None => (self.give_up(depth, key), true),
                    // Not over what another instance wrote since (compared in one step).
                    Some(copy) => match level.fill(key.clone(), copy).await {
                        Ok(true) => {
                            self.report(&op, level, TierOutcome::Inserted, stopwatch);
                            return Replayed::Applied;
                        }
                        Ok(false) => return Replayed::Dropped,
                        Err(error)
                            if error.kind() == ErrorKind::Timeout || is_refusal(error.kind()) =>
                        {
                            self.report(&op, level, TierOutcome::Error(error.kind()), stopwatch);
                            stopwatch = op.stopwatch();
                            (self.give_up(depth, key), true)
                        }
                        Err(error) => return self.replay_failed(&op, level, &error, stopwatch),
                    },
                }
            }
            Pending::Remove { at } => (at, false),
        };
        if given_up && matches!(level.holds_newer(key, newer_than).await, Ok(true)) {
            // Another instance wrote while this write waited on the tier: what the write
            // replaced is gone already, and the removal would take theirs.
            return Replayed::Overtaken;
        }
        // Compared again where the removal lands, in one step: a write of theirs
        // landing after the read above stands too. A removal replayed stands back from
        // what was written after it.
        let (than, overtaken) = if given_up {
            (newer_than, Replayed::Overtaken)
        } else {
            (at, Replayed::Dropped)
        };
        match level.invalidate_unless_newer(key, at, than).await {
            Ok(false) => overtaken,
            Ok(true) => {
                self.report(&op, level, TierOutcome::Invalidated, stopwatch);
                if given_up {
                    Replayed::Removed
                } else {
                    Replayed::Applied
                }
            }
            Err(error) => self.replay_failed(&op, level, &error, stopwatch),
        }
    }

    /// Gives up the waiting write of `key` at level `depth` (see
    /// [`replay_one`](Self::replay_one)), counted as dropped: a removal dated now waits
    /// in its place, tried on a timer too, and this instance forgets the key, as lookups
    /// of it now read nothing there. Returns the removal's time.
    fn give_up(&self, depth: usize, key: &K) -> SystemTime {
        let at = self.clock.now();
        if let Some(recovery) = &self.levels[depth].recovery {
            // The key's change is there, and its lock held: its replacement has room
            // (unless a clear heard meanwhile emptied the queue, and with it the tier).
            recovery.queue(key.clone(), Pending::Remove { at }, false);
        }
        self.telemetry.count(CacheCounter::RecoveryDropped);
        self.forget_here(key, &self.generations.write(key));
        self.retry_later(depth);
        at
    }

    /// Reports a replayed change's failure at `level`: the change waits on if the tier
    /// is down, and is dropped if it refused it.
    fn replay_failed(
        &self,
        op: &Op,
        level: &Level<K, V>,
        error: &Error,
        stopwatch: Option<Instant>,
    ) -> Replayed {
        self.report(op, level, TierOutcome::Error(error.kind()), stopwatch);
        if is_outage(error.kind()) {
            Replayed::Failed
        } else {
            Replayed::Dropped
        }
    }
}

/// Whether a tier's error says it is down (so a change should wait) rather than that
/// it refused the change.
pub(crate) fn is_outage(kind: ErrorKind) -> bool {
    kind.is_transient() || kind == ErrorKind::CircuitOpen
}

/// Whether a tier's error on a write says it did not take the value though it is up
/// (too large, out of memory, an error reply) or the value could not be encoded here:
/// what the write replaces must not stay there. Not a write superseded by a newer
/// entry, which stands.
pub(crate) fn is_refusal(kind: ErrorKind) -> bool {
    !is_outage(kind) && kind != ErrorKind::Superseded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(value: &str) -> Pending<String> {
        Pending::Store(CacheEntry::new(
            value.to_owned(),
            SystemTime::UNIX_EPOCH,
            None,
        ))
    }

    #[test]
    fn a_contested_change_waits_for_its_replay_without_answering_reads() {
        let recovery = Recovery::<u64, String>::new(10);
        assert!(recovery.queue(1, entry("ours"), false));
        let Some(Answer::Waiting(answered)) = recovery.answer(&1) else {
            panic!("answered by the change");
        };
        assert_eq!(
            answered.map(CacheEntry::into_value).as_deref(),
            Some("ours")
        );
        recovery.contest(&1);
        assert!(
            matches!(recovery.answer(&1), Some(Answer::Contested(_))),
            "the tier is asked again"
        );
        assert!(recovery.waiting(&1).is_some(), "still to be replayed");

        // Queued after another instance was heard: contested from the start.
        assert!(recovery.queue(2, entry("ours"), true));
        assert!(matches!(recovery.answer(&2), Some(Answer::Contested(_))));
        // A later change of ours, with nothing heard since it began, answers again.
        assert!(recovery.queue(2, entry("later"), false));
        assert!(matches!(recovery.answer(&2), Some(Answer::Waiting(_))));
        // A gap in what was heard contests every change.
        recovery.contest_all();
        assert!(matches!(recovery.answer(&2), Some(Answer::Contested(_))));
    }

    #[test]
    fn a_contested_change_answers_what_its_replay_will_leave() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let stored = |value: &str, secs| Some(CacheEntry::new(value.to_owned(), at(secs), None));
        let store = |secs| Pending::Store(CacheEntry::new("ours".to_owned(), at(secs), None));
        let value = |answer: Option<CacheEntry<String>>| answer.map(CacheEntry::into_value);
        assert_eq!(
            value(store(5).against(stored("theirs", 9))).as_deref(),
            Some("theirs")
        );
        assert_eq!(
            value(store(9).against(stored("theirs", 5))).as_deref(),
            Some("ours")
        );
        assert_eq!(
            value(store(9).against(None)),
            None,
            "absent, or removed later"
        );
        let remove = |secs| Pending::<String>::Remove { at: at(secs) };
        assert_eq!(
            value(remove(5).against(stored("theirs", 9))).as_deref(),
            Some("theirs")
        );
        assert_eq!(value(remove(9).against(stored("theirs", 5))), None);
    }

    #[test]
    fn a_superseded_write_settles_only_older_changes() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let recovery = Recovery::<u64, String>::new(10);
        assert!(recovery.queue(1, Pending::Remove { at: at(10) }, false));
        recovery.settle_older(&1, at(3));
        assert!(
            recovery.waiting(&1).is_some(),
            "newer than the superseded write: kept"
        );
        recovery.settle_older(&1, at(10));
        assert!(recovery.waiting(&1).is_none());
    }
}
