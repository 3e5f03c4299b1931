//! The backplane link: every write is announced to the cache's other instances, and what
//! they announce drops this instance's L1 copy of the key, so the next read takes the
//! shared tier's.
//!
//! Messages carry no values: a version, the action, the sending instance's id, and the
//! key as its codec encodes it. An instance skips its own messages. Nothing is lost
//! silently: when the subscription ends (the connection dropped, it lagged) or fails
//! the check made after a quiet heartbeat (a stalled connection), this instance
//! distrusts its whole L1 (drops it), subscribes again with backoff, and drops L1 once
//! more when subscribed, for what it may have missed in between. The first
//! subscription, made in the background after the cache is built, drops L1 too.
//!
//! A write does not wait for its announcement: the [`outbox`] keeps it (one per key;
//! past 10 000, one "cleared" for all) until a sender task publishes it, batched;
//! what the backplane refuses is tried again with backoff.

use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::{Either, select};
use stratacache_tier::{Backplane, Error, ErrorKind};
use tokio::sync::oneshot;

mod outbox;

use outbox::{Outbox, Subject};

use crate::generation::WriteGuard;
use crate::inner::Inner;
use crate::tags::millis;
use crate::telemetry::CacheCounter;

const VERSION: u8 = 1;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest pause between two attempts to subscribe (or to announce). Short: between
/// the backplane's return and this instance's subscription, the others' announcements
/// go unheard, and what L1 took in meanwhile is served until the subscription drops it.
const LAST_BACKOFF: Duration = Duration::from_secs(1);

/// How long the channel may stay quiet before the subscription is checked, by default.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

type EncodeKey<K> = Box<dyn Fn(&K) -> Result<Vec<u8>, Error> + Send + Sync>;
type DecodeKey<K> = Box<dyn Fn(&[u8]) -> Result<K, Error> + Send + Sync>;

/// What a message says happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Written = 1,
    Invalidated = 2,
    Cleared = 3,
    /// A distributed stampede lock was released (the key is the lock's name).
    Released = 4,
    /// A tag was invalidated (the key is the marker's time in ms, u64 LE, then the tag).
    TagInvalidated = 5,
    /// Several announcements in one message: each as a u32 LE length and the message.
    Batch = 6,
    /// Announcements were lost on the way out (too many waited): whatever they said,
    /// drop L1. Unlike [`Cleared`](Self::Cleared), changes waiting for a tier stay.
    Overflowed = 7,
}

/// A cache's link to its backplane.
pub(crate) struct Link<K> {
    transport: Arc<dyn Backplane>,
    encode: EncodeKey<K>,
    decode: DecodeKey<K>,
    /// Dropped with the cache: the listening task then ends.
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    /// Announcements on their way out, shared with the sender task.
    outbox: Arc<Outbox>,
    /// How long the channel may stay quiet before the subscription is checked.
    pub(crate) heartbeat: Duration,
}

impl<K> Link<K> {
    #[cfg_attr(
        not(feature = "serialize"),
        expect(
            dead_code,
            reason = "made by a builder method of the `serialize` feature"
        )
    )]
    pub(crate) fn new(
        transport: impl Backplane,
        encode: EncodeKey<K>,
        decode: DecodeKey<K>,
    ) -> Self {
        let transport: Arc<dyn Backplane> = Arc::new(transport);
        Self {
            outbox: Arc::new(Outbox::new(Arc::clone(&transport), fastrand::u64(..))),
            transport,
            encode,
            decode,
            shutdown: Mutex::new(None),
            heartbeat: DEFAULT_HEARTBEAT,
        }
    }
}

impl<K> Drop for Link<K> {
    fn drop(&mut self) {
        // The sender sends what is left, and ends.
        self.outbox.close();
    }
}

/// A message from another instance, decoded.
enum Heard<K> {
    Changed(K),
    Cleared,
    Overflowed,
    Released(Vec<u8>),
    TagInvalidated(String, SystemTime),
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Tells the other instances that `key` (all keys for [`Action::Cleared`]) changed:
    /// left for the sender, which publishes it shortly (the write it follows does not
    /// wait for the backplane).
    pub(crate) fn announce(&self, action: Action, key: Option<&K>) {
        let Some(link) = &self.backplane else {
            return;
        };
        let key = match key.map(|key| (link.encode)(key)).transpose() {
            Ok(key) => key,
            Err(_) => {
                // The key cannot be named: the others drop their whole L1 instead.
                self.telemetry.count(CacheCounter::BackplaneErrors);
                let message = link.outbox.message(Action::Overflowed, None);
                return link.outbox.queue(None, message);
            }
        };
        let message = link.outbox.message(action, key.as_deref());
        link.outbox.queue(key.map(Subject::Key), message);
    }

    /// Tells the other instances that `tag` was invalidated at `at` (through the sender).
    pub(crate) fn announce_tag(&self, tag: &str, at: SystemTime) {
        let Some(link) = &self.backplane else {
            return;
        };
        let mut body = millis(at).to_le_bytes().to_vec();
        body.extend_from_slice(tag.as_bytes());
        let message = link.outbox.message(Action::TagInvalidated, Some(&body));
        link.outbox.queue(Some(Subject::Tag(tag.into())), message);
    }

    /// Tells the other instances that the lock `name` was released (through the sender).
    pub(crate) fn announce_released(&self, name: &[u8]) {
        if let Some(link) = &self.backplane {
            let message = link.outbox.message(Action::Released, Some(name));
            link.outbox
                .queue(Some(Subject::Lock(name.to_vec())), message);
        }
    }

    /// Starts listening to the backplane, on the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] outside a tokio runtime.
    pub(crate) fn listen(self: &Arc<Self>) -> Result<(), Error> {
        let Some(link) = &self.backplane else {
            return Ok(());
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::Config,
                "a backplane listens on a tokio runtime: build the cache inside one",
            )
        })?;
        let (stop, stopped) = oneshot::channel();
        *link.shutdown.lock().unwrap_or_else(PoisonError::into_inner) = Some(stop);
        let transport = Arc::clone(&link.transport);
        runtime.spawn(listen(
            Arc::downgrade(self),
            transport,
            link.heartbeat,
            stopped,
        ));
        runtime.spawn(outbox::send(
            Arc::clone(&link.outbox),
            Arc::clone(&self.telemetry),
        ));
        Ok(())
    }

    /// Acts on a message from the backplane: one announcement, or a batch of them.
    fn hear(&self, message: &[u8]) {
        match unbundle(message) {
            Some(Ok(announcements)) => {
                for announcement in announcements {
                    self.hear_one(announcement);
                }
            }
            Some(Err(_)) => self.unreadable(),
            None => self.hear_one(message),
        }
    }

    /// Acts on one announcement.
    fn hear_one(&self, message: &[u8]) {
        let Some(link) = &self.backplane else {
            return;
        };
        let heard = match decode(link, message) {
            Ok(Some(heard)) => heard,
            Ok(None) => return, // our own
            Err(_) => return self.unreadable(),
        };
        match heard {
            Heard::Changed(key) => self.forget_in_l1(&key),
            Heard::Cleared => {
                for level in &self.levels {
                    if let Some(recovery) = &level.recovery {
                        recovery.clear();
                    }
                }
                self.distrust_l1();
            }
            Heard::Overflowed => self.distrust_l1(),
            Heard::Released(name) => self.lock_released(&name),
            Heard::TagInvalidated(tag, at) => self.tag_invalidated(&tag, at),
        }
        // Counted once acted on: whoever sees the count sees its effect.
        self.telemetry.count(CacheCounter::BackplaneReceived);
    }

    /// A message that cannot be read (another version's, a key this codec cannot decode,
    /// bytes from elsewhere) may have announced any change: L1 is dropped, as after a gap.
    fn unreadable(&self) {
        self.distrust_l1();
        self.telemetry.count(CacheCounter::BackplaneErrors);
    }

    /// Drops L1's copy of `key`, as a write does: readers that started before it do not
    /// put what they read back.
    fn forget_in_l1(&self, key: &K) {
        // Which of another instance's write and a change of ours still waiting for a
        // tier is newer is not known here (the announcement may be late): the change
        // stops answering reads, and its replay, compared by time in the tier, decides.
        for level in &self.levels {
            if let Some(recovery) = &level.recovery {
                recovery.contest(key);
            }
        }
        self.forget_here(key, &self.generations.hear(key));
    }

    /// Drops what this instance keeps of `key` in memory (its L1 copy, a remembered "not
    /// found") under the write `guard`, after a change of the key it did not see land in
    /// the shared tier: another instance's write, or a replay of its own.
    pub(crate) fn forget_here(&self, key: &K, guard: &WriteGuard<'_>) {
        if let Some(memory) = self.levels[0].memory() {
            guard.in_l1(|| memory.remove(key));
        }
        if let Some(not_found) = &self.not_found {
            guard.in_l1(|| not_found.forget(key));
        }
    }

    /// Drops all of L1: what another instance said may have been missed.
    fn distrust_l1(&self) {
        // Changes waiting for a tier may have been overtaken by writes that went unheard:
        // their replays, compared by time in the tier, decide.
        for level in &self.levels {
            if let Some(recovery) = &level.recovery {
                recovery.contest_all();
            }
        }
        let guard = self.generations.write_all();
        if let Some(memory) = self.levels[0].memory() {
            guard.in_l1(|| memory.remove_all());
        }
        if let Some(not_found) = &self.not_found {
            not_found.forget_all();
        }
        // Tag announcements may have been missed as well: markers are read again.
        self.tags.distrust();
    }
}

/// The announcements a batch carries; `None` for a message that is not a batch.
fn unbundle(message: &[u8]) -> Option<Result<Vec<&[u8]>, Error>> {
    let corrupt = || Error::new(ErrorKind::Codec, "not a stratacache backplane batch");
    if message.get(1) != Some(&(Action::Batch as u8)) {
        return None;
    }
    let mut rest = message.get(2 + 8..)?;
    let mut announcements = Vec::new();
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Some(Err(corrupt()));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Some(Err(corrupt()));
        }
        let (announcement, tail) = tail.split_at(len);
        if announcement.get(1) == Some(&(Action::Batch as u8)) {
            // Batches do not nest.
            return Some(Err(corrupt()));
        }
        announcements.push(announcement);
        rest = tail;
    }
    Some(Ok(announcements))
}

/// Decodes a message: `None` for one of this instance's own.
fn decode<K>(link: &Link<K>, message: &[u8]) -> Result<Option<Heard<K>>, Error> {
    let corrupt = || Error::new(ErrorKind::Codec, "not a stratacache backplane message");
    let (&[version, action], rest) = message.split_first_chunk::<2>().ok_or_else(corrupt)?;
    let (origin, key) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    if version != VERSION {
        return Err(corrupt());
    }
    if u64::from_le_bytes(*origin) == link.outbox.origin() {
        return Ok(None);
    }
    match action {
        1 | 2 => Ok(Some(Heard::Changed((link.decode)(key)?))),
        3 => Ok(Some(Heard::Cleared)),
        7 => Ok(Some(Heard::Overflowed)),
        4 => Ok(Some(Heard::Released(key.to_vec()))),
        5 => {
            let (at, tag) = key.split_first_chunk::<8>().ok_or_else(corrupt)?;
            let at = SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_millis(u64::from_le_bytes(*at)))
                .ok_or_else(corrupt)?;
            let tag = std::str::from_utf8(tag).map_err(|_| corrupt())?;
            if tag.len() > stratacache_tier::Tags::MAX_TAG_LEN {
                return Err(corrupt());
            }
            Ok(Some(Heard::TagInvalidated(tag.to_owned(), at)))
        }
        _ => Err(corrupt()),
    }
}

/// What the listener heard within a heartbeat.
enum Heartbeat {
    Message(Option<Bytes>),
    Quiet,
}

/// The listening task: subscribes, acts on every message, checks a quiet subscription
/// every `heartbeat`, and on a lost (or stalled) subscription drops L1 and subscribes
/// again with backoff. Ends with the cache.
async fn listen<K, V>(
    cache: Weak<Inner<K, V>>,
    transport: Arc<dyn Backplane>,
    heartbeat: Duration,
    mut stopped: oneshot::Receiver<()>,
) where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    let mut backoff = FIRST_BACKOFF;
    // Until the first subscription holds, announcements go unheard: what L1 takes in
    // meanwhile is dropped once it does.
    let mut missed = true;
    loop {
        let subscribed = match select(transport.subscribe(), &mut stopped).await {
            Either::Left((subscribed, _)) => subscribed,
            Either::Right(_) => return,
        };
        let Some(inner) = cache.upgrade() else {
            return;
        };
        let mut subscription = match subscribed {
            Ok(subscription) => subscription,
            Err(_) => {
                if !std::mem::replace(&mut missed, true) {
                    inner.distrust_l1();
                    inner.telemetry.count(CacheCounter::BackplaneGaps);
                }
                drop(inner);
                let pause = Box::pin(tokio::time::sleep(backoff));
                if let Either::Right(_) = select(pause, &mut stopped).await {
                    return;
                }
                backoff = (backoff * 2).min(LAST_BACKOFF);
                continue;
            }
        };
        if std::mem::take(&mut missed) {
            // Subscribed again: whatever was said meanwhile is lost.
            inner.distrust_l1();
        }
        backoff = FIRST_BACKOFF;
        drop(inner);
        loop {
            let heard = {
                let quiet = Box::pin(tokio::time::sleep(heartbeat));
                match select(select(subscription.next(), quiet), &mut stopped).await {
                    Either::Left((Either::Left((message, _)), _)) => Heartbeat::Message(message),
                    Either::Left((Either::Right(_), _)) => Heartbeat::Quiet,
                    Either::Right(_) => return,
                }
            };
            let alive = match heard {
                Heartbeat::Message(Some(message)) => {
                    let Some(inner) = cache.upgrade() else {
                        return;
                    };
                    inner.hear(&message);
                    continue;
                }
                Heartbeat::Message(None) => false,
                // Quiet for a heartbeat: a stalled connection is quiet too. Prove it.
                Heartbeat::Quiet => {
                    let check = Box::pin(tokio::time::timeout(heartbeat, subscription.check()));
                    match select(check, &mut stopped).await {
                        Either::Left((checked, _)) => matches!(checked, Ok(Ok(()))),
                        Either::Right(_) => return,
                    }
                }
            };
            if !alive {
                let Some(inner) = cache.upgrade() else {
                    return;
                };
                // Dropped before it is counted: whoever sees the gap sees L1 without it.
                inner.distrust_l1();
                inner.telemetry.count(CacheCounter::BackplaneGaps);
                missed = true;
                break;
            }
        }
    }
}
