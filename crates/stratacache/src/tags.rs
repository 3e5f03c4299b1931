//! Tag invalidation. Invalidating a tag sets its *marker*: "every entry carrying this
//! tag produced at or before this time is invalid". Markers are written to the shared
//! (lowest remote) tier, so they survive restarts and reach instances that missed the
//! announcement; each instance remembers what it learnt of a marker for a while, and
//! every read of a tagged entry, in any tier, compares the entry's production time with
//! its tags' markers.
//!
//! Marker times are rounded up to the next millisecond (the precision of remote
//! entries' timestamps), so a marker never reads as older than it is; an entry produced
//! in the same millisecond as the marker counts as invalid (a miss, never a stale read).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use std::hash::Hash;

use stratacache_tier::{CacheEntry, Error, ErrorKind, MAX_CLOCK_SKEW, Tags};

use crate::breaker::Breaker;
use crate::erased::BoxFuture;
use crate::flag::Raised;
use crate::inner::Inner;
use crate::sharded::ShardedMap;
use crate::telemetry::CacheCounter;

/// Where markers are kept beyond this instance: the shared tier's store.
pub(crate) trait MarkerStore: Send + Sync {
    /// The markers of `tags`, in order (`None`: never invalidated).
    fn get_many<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<SystemTime>>, Error>>;

    /// Sets `tag`'s marker to `at`, kept for `ttl` (`None`: for good).
    fn set<'a>(
        &'a self,
        tag: &'a str,
        at: SystemTime,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// What this instance knows of one tag's marker.
#[derive(Clone, Copy)]
struct Known {
    /// The marker; `None` when the tag was never invalidated.
    at: Option<SystemTime>,
    /// When the store last confirmed it (`None`: only heard, or set here without a store).
    checked: Option<SystemTime>,
}

/// How an entry's tags judge it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No tag of it was invalidated after it was produced.
    Valid,
    /// One of its tags was invalidated at or after its production.
    Invalid,
    /// A marker must be read from the store first.
    Unknown,
}

/// The markers an instance knows, and the store that keeps them for every instance.
pub(crate) struct TagMarkers {
    store: Option<Arc<dyn MarkerStore>>,
    known: ShardedMap<Box<str>, Known>,
    /// How long a marker read from the store is trusted before it is read again.
    trust_for: Duration,
    /// How long the store keeps a marker.
    marker_ttl: Option<Duration>,
    /// Markers the store did not take, set again when its tier next answers (or before
    /// the next marker is read or written).
    unsent: Mutex<HashMap<Box<str>, SystemTime>>,
    /// Whether some wait in `unsent`.
    waiting: AtomicBool,
    /// Whether a task is writing them.
    resending: Arc<AtomicBool>,
    /// The level whose store keeps the markers.
    level: Option<usize>,
    /// That level's circuit breaker: while it skips the tier, markers are neither read
    /// (what is known stands) nor written (they wait to be resent), so a tagged read or
    /// an invalidation does not wait on a tier known to be down.
    breaker: Option<Arc<Breaker>>,
    /// Moved by [`distrust`](Self::distrust): a read of the store that began before
    /// it confirms nothing.
    epoch: AtomicU64,
}

/// Past this many known markers per shard, those the store can tell again are dropped.
const KNOWN_PER_SHARD: usize = 2_048;

/// How long a marker that no store confirmed (heard from another instance, or set here
/// with no store) is remembered once there are more than [`KNOWN_PER_SHARD`].
const FORGET_UNCONFIRMED_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

impl TagMarkers {
    /// Markers kept in `store`, the store of level `level`, called through `breaker`
    /// (that level's).
    pub(crate) fn new(
        store: Option<(usize, Arc<dyn MarkerStore>)>,
        breaker: Option<Arc<Breaker>>,
        trust_for: Duration,
        marker_ttl: Option<Duration>,
    ) -> Self {
        let (level, store) = store.unzip();
        Self {
            store,
            known: ShardedMap::new(),
            trust_for,
            marker_ttl,
            unsent: Mutex::default(),
            waiting: AtomicBool::new(false),
            resending: Arc::default(),
            level,
            breaker,
            epoch: AtomicU64::new(0),
        }
    }

    /// Whether markers wait for level `level` to answer.
    #[inline]
    pub(crate) fn wait_for(&self, level: usize) -> bool {
        self.level == Some(level) && self.waiting.load(Ordering::Relaxed)
    }

    /// Judges `entry` by what this instance knows of its tags' markers at `now`.
    #[inline]
    pub(crate) fn verdict<V>(&self, entry: &CacheEntry<V>, now: SystemTime) -> Verdict {
        let tags = entry.tags();
        if tags.is_empty() {
            return Verdict::Valid;
        }
        let mut verdict = Verdict::Valid;
        for tag in tags.iter() {
            match self.known.shard(tag).get(tag).copied() {
                Some(known) if known.at.is_some_and(|at| entry.cached_at() <= at) => {
                    return Verdict::Invalid;
                }
                Some(known) if !self.outdated(known, now) => {}
                Some(_) | None if self.store.is_some() => verdict = Verdict::Unknown,
                Some(_) | None => {}
            }
        }
        verdict
    }

    fn outdated(&self, known: Known, now: SystemTime) -> bool {
        self.store.is_some()
            && known.checked.is_none_or(|checked| {
                now.duration_since(checked)
                    .map_or(true, |age| age >= self.trust_for)
            })
    }

    /// The read of the markers of `tags` this instance does not know, or knows from too
    /// long ago: `None` when there is nothing to read (decided now, without awaiting).
    /// On a failure, what it knew stands until `trust_for` has passed (the store that
    /// holds the markers is the one that is down).
    pub(crate) fn learn<'a>(
        &'a self,
        tags: impl IntoIterator<Item = &'a Tags>,
        now: SystemTime,
    ) -> Option<BoxFuture<'a, Result<(), Error>>> {
        let store = self.store.as_ref()?;
        let mut asked: Vec<&str> = Vec::new();
        for tag in tags.into_iter().flat_map(Tags::iter) {
            let known = self.known.shard(tag).get(tag).copied();
            if known.is_none_or(|known| self.outdated(known, now)) && !asked.contains(&tag) {
                asked.push(tag);
            }
        }
        // Boxed: only a read of markers takes this path, and inline its future would
        // enlarge every read's.
        (!asked.is_empty()).then(|| Box::pin(self.ask(store.as_ref(), asked, now)) as _)
    }

    /// Reads the markers of the `asked` tags (not known well enough at `now`).
    async fn ask(
        &self,
        store: &dyn MarkerStore,
        asked: Vec<&str>,
        now: SystemTime,
    ) -> Result<(), Error> {
        self.resend(store).await;
        let epoch = self.epoch.load(Ordering::Acquire);
        let read = Breaker::guard_if_any(self.breaker.as_deref(), || store.get_many(&asked));
        let answer = match read.await {
            Ok(markers) if markers.len() == asked.len() => Ok(markers),
            Ok(markers) => Err(Error::new(
                ErrorKind::Other,
                format!(
                    "the store answered {} markers of {}",
                    markers.len(),
                    asked.len()
                ),
            )),
            Err(error) => Err(error),
        };
        // What was asked before a gap confirms nothing: it is asked again.
        let confirmed = (self.epoch.load(Ordering::Acquire) == epoch).then_some(now);
        for (index, tag) in asked.iter().enumerate() {
            // On a failure, what was known stands until `trust_for` has passed.
            let at = answer.as_ref().ok().and_then(|markers| markers[index]);
            self.update(tag, at, confirmed, now);
        }
        self.sweep(asked.first().copied(), now);
        answer.map(drop)
    }

    /// Takes in what was learnt of `tag`'s marker: a marker time (`at`), and when the
    /// store confirmed what is known. A marker never moves back, nor further ahead of
    /// `now` than [`MAX_CLOCK_SKEW`] (a host whose clock runs ahead must not block a
    /// tag for as long as it is ahead).
    fn update(
        &self,
        tag: &str,
        at: Option<SystemTime>,
        checked: Option<SystemTime>,
        now: SystemTime,
    ) {
        let latest = now.checked_add(MAX_CLOCK_SKEW).unwrap_or(now);
        let mut shard = self.known.shard(tag);
        let known = shard.entry(tag.into()).or_insert(Known {
            at: None,
            checked: None,
        });
        known.at = known.at.max(at.map(|at| at.min(latest)));
        if checked.is_some() {
            known.checked = checked;
        }
    }

    /// Writes `tag`'s marker `at` to the store (after what waits).
    ///
    /// # Errors
    ///
    /// The store's failure; the marker waits, and is written when the store's tier next
    /// answers, or before the next marker is read or written.
    pub(crate) async fn write(&self, tag: &str, at: SystemTime) -> Result<(), Error> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        self.resend(store.as_ref()).await;
        let written = self.send(store.as_ref(), tag, at).await;
        if written.is_err() {
            self.keep(tag, at);
        }
        written
    }

    /// Takes in a marker set here, or announced by another instance, at `now`.
    pub(crate) fn heard(&self, tag: &str, at: SystemTime, now: SystemTime) {
        self.update(tag, Some(at), None, now);
        self.sweep(Some(tag), now);
    }

    /// Forgets when markers were confirmed: announcements may have been missed, so
    /// each is read from the store again before it is trusted.
    pub(crate) fn distrust(&self) {
        if self.store.is_some() {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.known.for_each(|_, known| known.checked = None);
        }
    }

    /// Writes `tag`'s marker `at` to `store`, through the breaker.
    async fn send(&self, store: &dyn MarkerStore, tag: &str, at: SystemTime) -> Result<(), Error> {
        let set = || store.set(tag, at, self.marker_ttl);
        Breaker::guard_if_any(self.breaker.as_deref(), set).await
    }

    fn keep(&self, tag: &str, at: SystemTime) {
        let mut unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = unsent.entry(tag.into()).or_insert(at);
        *kept = (*kept).max(at);
        self.waiting.store(true, Ordering::Relaxed);
    }

    /// Writes the markers the store refused before (each as the latest known, so a late
    /// resend never moves a marker back); stops at the first it refuses again. Each
    /// waits until written: a resend dropped half-way (its caller went away) loses none.
    async fn resend(&self, store: &dyn MarkerStore) {
        // One resend at a time (another caller's covers what waits); the flag comes down
        // however this one ends.
        let Some(_resending) = Raised::raise(&self.resending) else {
            return;
        };
        // `waiting` stays up until a whole pass has gone: a resend dropped half-way
        // leaves the sign for the next.
        let waiting: Vec<(Box<str>, SystemTime)> = {
            let unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
            unsent.iter().map(|(tag, at)| (tag.clone(), *at)).collect()
        };
        for (tag, at) in waiting {
            let known = self.known.shard(&*tag).get(&tag).and_then(|known| known.at);
            let at = known.map_or(at, |known| known.max(at));
            if self.send(store, &tag, at).await.is_err() {
                return;
            }
            let mut unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
            // Unless a later marker of the tag was kept meanwhile.
            if unsent.get(&tag).is_some_and(|kept| *kept <= at) {
                unsent.remove(&tag);
            }
        }
        let unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
        self.waiting.store(!unsent.is_empty(), Ordering::Relaxed);
    }

    /// Bounds what is remembered: past [`KNOWN_PER_SHARD`] in `tag`'s shard (looked at
    /// every 64 more), what the store can tell again (confirmed by it, out of date, not
    /// waiting to be written) is dropped, and so is a marker only heard or set here,
    /// never confirmed, once older than [`FORGET_UNCONFIRMED_AFTER`] (the store may
    /// never hold such a marker: its writer may have failed; an entry cached under the
    /// tag more than a day before, and still live, would then be served). Without a
    /// store, nothing is dropped.
    fn sweep(&self, tag: Option<&str>, now: SystemTime) {
        let Some(tag) = tag else { return };
        let mut shard = self.known.shard(tag);
        // Without a store, nothing could tell a marker again: none is forgotten.
        if shard.len() <= KNOWN_PER_SHARD || !shard.len().is_multiple_of(64) || self.store.is_none()
        {
            return;
        }
        let long_ago = |at: Option<SystemTime>| {
            at.is_none_or(|at| {
                now.duration_since(at)
                    .is_ok_and(|age| age >= FORGET_UNCONFIRMED_AFTER)
            })
        };
        let unsent = self.unsent.lock().unwrap_or_else(PoisonError::into_inner);
        shard.retain(|tag, known| {
            unsent.contains_key(tag)
                || if known.checked.is_none() {
                    !long_ago(known.at)
                } else {
                    !self.outdated(*known, now)
                }
        });
    }
}

/// A marker being written: kept for a resend if its write is dropped before it ended.
struct Unwritten<'a> {
    markers: &'a TagMarkers,
    tag: &'a str,
    at: SystemTime,
    written: bool,
}

impl Drop for Unwritten<'_> {
    fn drop(&mut self) {
        if !self.written && self.markers.store.is_some() {
            self.markers.keep(self.tag, self.at);
        }
    }
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Invalidates every entry carrying `tag`: known here at once (loads in flight here
    /// store nothing), then the marker is written to the shared tier and announced to
    /// the other instances.
    pub(crate) async fn invalidate_tag(&self, tag: &str) -> Result<(), Error> {
        if tag.len() > Tags::MAX_TAG_LEN {
            return Err(Error::new(
                ErrorKind::Config,
                format!("a tag is at most {} bytes", Tags::MAX_TAG_LEN),
            ));
        }
        let at = round_up(self.clock.now());
        self.tag_invalidated(tag, at);
        // Told before the write is awaited, and kept for a resend unless written: a
        // caller that goes away meanwhile leaves nothing unsaid.
        self.announce_tag(tag, at);
        let mut unwritten = Unwritten {
            markers: &self.tags,
            tag,
            at,
            written: false,
        };
        let written = self.tags.write(tag, at).await;
        unwritten.written = true;
        if written.is_err() {
            self.telemetry.count(CacheCounter::TagErrors);
        }
        written
    }

    /// Writes the markers the shared tier refused, on a task of their own: it answers
    /// again (see [`TagMarkers::wait_for`]).
    pub(crate) fn resend_markers(&self) {
        let (Some(store), Ok(runtime), Some(inner)) = (
            self.tags.store.clone(),
            tokio::runtime::Handle::try_current(),
            self.me.upgrade(),
        ) else {
            return;
        };
        if !self.tags.resending.load(Ordering::Acquire) {
            runtime.spawn(async move { inner.tags.resend(store.as_ref()).await });
        }
    }

    /// Takes in an invalidation of `tag` at `at`, made here or announced by another
    /// instance.
    pub(crate) fn tag_invalidated(&self, tag: &str, at: SystemTime) {
        // Loads in flight here may have read what the invalidation replaces: they store
        // nothing, and later callers do not join them.
        drop(self.generations.write_all());
        self.tags.heard(tag, at, self.clock.now());
        self.telemetry.count(CacheCounter::TagsInvalidated);
    }
}

/// `at`, rounded up to a whole millisecond since the Unix epoch.
fn round_up(at: SystemTime) -> SystemTime {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let millis = u64::try_from(since.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX);
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .unwrap_or(at)
}

/// `at` in whole milliseconds since the Unix epoch.
pub(crate) fn millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_up_to_the_millisecond() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(10_700);
        assert_eq!(
            round_up(at),
            SystemTime::UNIX_EPOCH + Duration::from_millis(11)
        );
        let whole = SystemTime::UNIX_EPOCH + Duration::from_millis(11);
        assert_eq!(round_up(whole), whole);
    }

    /// A store whose writes never end (a stalled server, with no timeout here), or
    /// succeed at once.
    struct Store {
        stalls: bool,
    }

    impl MarkerStore for Store {
        fn get_many<'a>(
            &'a self,
            tags: &'a [&'a str],
        ) -> BoxFuture<'a, Result<Vec<Option<SystemTime>>, Error>> {
            Box::pin(std::future::ready(Ok(vec![None; tags.len()])))
        }

        fn set<'a>(
            &'a self,
            _tag: &'a str,
            _at: SystemTime,
            _ttl: Option<Duration>,
        ) -> BoxFuture<'a, Result<(), Error>> {
            if self.stalls {
                Box::pin(std::future::pending())
            } else {
                Box::pin(std::future::ready(Ok(())))
            }
        }
    }

    fn markers(stalls: bool) -> TagMarkers {
        let store: Arc<dyn MarkerStore> = Arc::new(Store { stalls });
        TagMarkers::new(Some((1, store)), None, Duration::from_secs(1), None)
    }

    fn unsent(markers: &TagMarkers) -> Vec<Box<str>> {
        let unsent = markers.unsent.lock().unwrap();
        let mut tags: Vec<_> = unsent.keys().cloned().collect();
        tags.sort();
        tags
    }

    #[test]
    fn a_marker_write_dropped_half_way_waits_to_be_resent() {
        let markers = markers(true);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        {
            let _unwritten = Unwritten {
                markers: &markers,
                tag: "users",
                at,
                written: false,
            };
            let write = markers.write("users", at);
            assert!(futures::FutureExt::now_or_never(write).is_none(), "stalled");
        } // the caller went away
        assert_eq!(unsent(&markers), ["users".into()]);
    }

    #[test]
    fn a_resend_dropped_half_way_loses_no_marker() {
        let stalled = markers(true);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        stalled.keep("a", at);
        stalled.keep("b", at);
        let resend = stalled.resend(stalled.store.as_deref().unwrap());
        assert!(
            futures::FutureExt::now_or_never(resend).is_none(),
            "stalled"
        );
        assert_eq!(
            unsent(&stalled),
            ["a".into(), "b".into()],
            "both still wait"
        );

        let answering = markers(false);
        answering.keep("a", at);
        answering.keep("b", at);
        let resend = answering.resend(answering.store.as_deref().unwrap());
        futures::FutureExt::now_or_never(resend).expect("written at once");
        assert!(unsent(&answering).is_empty());
        assert!(!answering.waiting.load(Ordering::Relaxed));
    }

    #[test]
    fn unconfirmed_markers_are_bounded_only_past_a_day() {
        let markers = markers(false);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10 * 24 * 3_600);
        let all = crate::sharded::SHARDS * (KNOWN_PER_SHARD + 200);
        for n in 0..all {
            markers.heard(
                &format!("recent:{n}"),
                now - Duration::from_secs(3_600),
                now,
            );
        }
        assert_eq!(
            markers.known.len(),
            all,
            "an hour old: all kept (the store may lack them)"
        );
        for n in 0..all {
            markers.heard(
                &format!("old:{n}"),
                now - Duration::from_secs(2 * 24 * 3_600),
                now,
            );
        }
        assert!(
            markers.known.len() < 2 * all - all / 2,
            "two days old: most dropped, {} of {} kept",
            markers.known.len(),
            2 * all
        );
    }
}
