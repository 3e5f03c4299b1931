//! Announcements on their way out: kept (one per subject) until the sender task
//! publishes them, up to [`BATCH`] in one message. The sender owns what it needs, so
//! what waits when the cache is dropped is still sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use stratacache_tier::Backplane;
use tokio::sync::Notify;

use super::{Action, FIRST_BACKOFF, LAST_BACKOFF, VERSION};
use crate::telemetry::{CacheCounter, Telemetry};

/// How many subjects' announcements wait before they are folded into one "overflowed".
const MAX_UNSENT: usize = 10_000;

/// How many announcements one message carries at most.
const BATCH: usize = 64;

/// How many bytes of announcements one message carries at most (past the first): a
/// batch of large keys must not make a message the backplane keeps refusing.
const BATCH_BYTES: usize = 64 * 1024;

/// What a waiting announcement is about: a key (as encoded), a tag, or a lock. A newer
/// announcement about the same subject replaces the older.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) enum Subject {
    Key(Vec<u8>),
    Tag(Box<str>),
    Lock(Vec<u8>),
}

/// How many lock releases wait at most, apart from other announcements; past it, a
/// release is dropped (its waiters look again when their wait runs out).
const MAX_UNSENT_RELEASES: usize = 1_024;

/// Announcements waiting: one per subject, or one about everything: "cleared", or past
/// [`MAX_UNSENT`], "overflowed" (drop L1). Lock releases stand apart from "everything",
/// and count apart.
#[derive(Default)]
struct Waiting {
    subjects: HashMap<Subject, Bytes>,
    everything: Option<Bytes>,
    /// How many of `subjects` are lock releases.
    releases: usize,
}

impl Waiting {
    fn insert(&mut self, subject: Subject, message: Bytes, replace: bool) {
        let release = matches!(subject, Subject::Lock(_));
        match self.subjects.entry(subject) {
            std::collections::hash_map::Entry::Occupied(mut kept) => {
                if replace {
                    kept.insert(message);
                }
            }
            std::collections::hash_map::Entry::Vacant(room) => {
                room.insert(message);
                self.releases += usize::from(release);
            }
        }
    }

    fn remove(&mut self, subject: &Subject) -> Option<Bytes> {
        let removed = self.subjects.remove(subject);
        if removed.is_some() && matches!(subject, Subject::Lock(_)) {
            self.releases -= 1;
        }
        removed
    }

    /// Drops every announcement but lock releases: one about everything replaces them.
    fn keep_only_releases(&mut self) {
        self.subjects
            .retain(|subject, _| matches!(subject, Subject::Lock(_)));
    }
}

pub(super) struct Outbox {
    transport: Arc<dyn Backplane>,
    /// This instance's id: its own messages come back, and are skipped.
    origin: u64,
    waiting: Mutex<Waiting>,
    /// Wakes the sender: announcements wait, or the outbox closed.
    wake: Notify,
    closed: AtomicBool,
}

impl Outbox {
    pub(super) fn new(transport: Arc<dyn Backplane>, origin: u64) -> Self {
        Self {
            transport,
            origin,
            waiting: Mutex::default(),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    pub(super) const fn origin(&self) -> u64 {
        self.origin
    }

    /// An announcement of `action` about `key` (raw bytes), from this instance.
    pub(super) fn message(&self, action: Action, key: Option<&[u8]>) -> Bytes {
        let mut message = vec![VERSION, action as u8];
        message.extend_from_slice(&self.origin.to_le_bytes());
        message.extend_from_slice(key.unwrap_or_default());
        Bytes::from(message)
    }

    /// Leaves an announcement for the sender (replacing an older one about `subject`),
    /// and wakes it. `None`: about everything.
    pub(super) fn queue(&self, subject: Option<Subject>, message: Bytes) {
        self.keep(subject, message, true);
        self.wake.notify_one();
    }

    /// Keeps an announcement; `replace`: over an older one about the same subject (a
    /// refused one put back replaces nothing newer).
    fn keep(&self, subject: Option<Subject>, message: Bytes, replace: bool) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        // A lock's release is kept apart from "everything": whoever waits for the lock
        // must hear it, whatever else was lost.
        match subject {
            Some(subject @ Subject::Lock(_)) => {
                if waiting.releases < MAX_UNSENT_RELEASES || waiting.subjects.contains_key(&subject)
                {
                    waiting.insert(subject, message, replace);
                }
            }
            Some(_) if waiting.everything.is_some() => {}
            Some(subject) if waiting.subjects.len() - waiting.releases < MAX_UNSENT => {
                waiting.insert(subject, message, replace);
            }
            Some(_) => {
                // Too many: what they said is lost; the others are told to drop L1.
                waiting.keep_only_releases();
                waiting.everything = Some(self.message(Action::Overflowed, None));
            }
            None => {
                // About everything: "cleared" or "overflowed", this one or one put back.
                // A "cleared" waiting is never turned into the lesser "overflowed".
                waiting.keep_only_releases();
                let cleared = |message: &Bytes| message.get(1) == Some(&(Action::Cleared as u8));
                if !waiting.everything.as_ref().is_some_and(cleared) || cleared(&message) {
                    waiting.everything = Some(message);
                }
            }
        }
    }

    /// Takes up to [`BATCH`] waiting announcements ("drop everything" first).
    fn take_batch(&self) -> Vec<(Option<Subject>, Bytes)> {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let everything = waiting.everything.take().map(|all| (None, all));
        let mut batch: Vec<_> = everything.into_iter().collect();
        let mut bytes: usize = batch.iter().map(|(_, message)| message.len()).sum();
        let mut subjects = Vec::new();
        for (subject, message) in &waiting.subjects {
            if subjects.len() + batch.len() >= BATCH
                || (!subjects.is_empty() && bytes + message.len() > BATCH_BYTES)
            {
                break;
            }
            bytes += message.len();
            subjects.push(subject.clone());
        }
        for subject in subjects {
            if let Some(message) = waiting.remove(&subject) {
                batch.push((Some(subject), message));
            }
        }
        batch
    }

    /// One message carrying every announcement of `batch`.
    fn bundle(&self, batch: &[(Option<Subject>, Bytes)]) -> Bytes {
        if let [(_, single)] = batch {
            return single.clone();
        }
        let mut message = self.message(Action::Batch, None).to_vec();
        for (_, announcement) in batch {
            let len = u32::try_from(announcement.len()).unwrap_or(u32::MAX);
            message.extend_from_slice(&len.to_le_bytes());
            message.extend_from_slice(announcement);
        }
        Bytes::from(message)
    }

    /// No more announcements: the sender sends what waits (once) and ends.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// The sender task: publishes what waits whenever woken; what the backplane refuses
/// waits again, and is tried again after a backoff. Once the outbox is closed, it tries
/// what is left once and ends.
pub(super) async fn send(outbox: Arc<Outbox>, telemetry: Arc<Telemetry>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        outbox.wake.notified().await;
        loop {
            let batch = outbox.take_batch();
            if batch.is_empty() {
                break;
            }
            if outbox
                .transport
                .publish(outbox.bundle(&batch))
                .await
                .is_ok()
            {
                for _ in &batch {
                    telemetry.count(CacheCounter::BackplaneSent);
                }
                backoff = FIRST_BACKOFF;
                continue;
            }
            telemetry.count(CacheCounter::BackplaneErrors);
            if outbox.closed.load(Ordering::Acquire) {
                return;
            }
            for (subject, message) in batch {
                outbox.keep(subject, message, false);
            }
            // A new announcement cuts the wait short: the backplane may be back, and a
            // write made then should not wait out a backoff grown during the outage.
            // Still at least the first backoff: steady writes during an outage must not
            // turn the retries into a busy loop.
            let pause = std::pin::pin!(tokio::time::sleep(backoff));
            let woken = std::pin::pin!(async {
                outbox.wake.notified().await;
                tokio::time::sleep(FIRST_BACKOFF).await;
            });
            futures::future::select(pause, woken).await;
            backoff = (backoff * 2).min(LAST_BACKOFF);
        }
        if outbox.closed.load(Ordering::Acquire) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use stratacache_tier::mock::MockBackplane;

    use super::*;

    fn action(message: &Bytes) -> u8 {
        message[1]
    }

    #[test]
    fn an_overflow_put_back_stays_an_overflow_and_a_clear_is_never_lessened() {
        let outbox = Outbox::new(Arc::new(MockBackplane::new()), 7);
        for n in 0..=MAX_UNSENT {
            let key = n.to_le_bytes().to_vec();
            let message = outbox.message(Action::Written, Some(&key));
            outbox.keep(Some(Subject::Key(key)), message, true);
        }
        let batch = outbox.take_batch();
        assert_eq!(batch.len(), 1);
        assert_eq!(action(&batch[0].1), Action::Overflowed as u8);
        // The backplane refused it: put back, it is still "overflowed", not "cleared"
        // (which would make the others drop their changes waiting for a tier).
        let (subject, message) = batch.into_iter().next().unwrap();
        outbox.keep(subject, message.clone(), false);
        let batch = outbox.take_batch();
        assert_eq!(action(&batch[0].1), Action::Overflowed as u8);

        outbox.queue(None, outbox.message(Action::Cleared, None));
        outbox.keep(None, message, false);
        let batch = outbox.take_batch();
        assert_eq!(action(&batch[0].1), Action::Cleared as u8, "a clear stands");
    }

    #[test]
    fn a_batch_stops_at_its_byte_budget_but_always_carries_one() {
        let outbox = Outbox::new(Arc::new(MockBackplane::new()), 7);
        for n in 0..4_u8 {
            let key = vec![n; 40 * 1024];
            let message = outbox.message(Action::Written, Some(&key));
            outbox.keep(Some(Subject::Key(key)), message, true);
        }
        let sizes: Vec<usize> = (0..4).map(|_| outbox.take_batch().len()).collect();
        assert_eq!(sizes, [1, 1, 1, 1], "40 KiB each: one per message");
    }

    #[test]
    fn lock_releases_count_apart_and_are_bounded() {
        let outbox = Outbox::new(Arc::new(MockBackplane::new()), 7);
        for n in 0..MAX_UNSENT_RELEASES + 100 {
            let name = n.to_le_bytes().to_vec();
            let message = outbox.message(Action::Released, Some(&name));
            outbox.keep(Some(Subject::Lock(name)), message, true);
        }
        for n in 0..MAX_UNSENT {
            let key = n.to_le_bytes().to_vec();
            let message = outbox.message(Action::Written, Some(&key));
            outbox.keep(Some(Subject::Key(key)), message, true);
        }
        let waiting = outbox.waiting.lock().unwrap();
        assert_eq!(waiting.releases, MAX_UNSENT_RELEASES, "the excess dropped");
        assert!(
            waiting.everything.is_none(),
            "the keys alone fit: no overflow"
        );
        assert_eq!(waiting.subjects.len(), MAX_UNSENT + MAX_UNSENT_RELEASES);
    }
}
