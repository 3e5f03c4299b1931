//! The namespace generation of one server: the number in the prefix of every key stored
//! there (`namespace:generation:key`), what this client knows of it, and whether the
//! server's contents can still be trusted.
//!
//! memcached has no namespace delete, so `clear` moves the generation and the keys under
//! the old one are never read again (they age out or are evicted). Each server keeps its
//! own generation, under `namespace:generation` on that server, never routed elsewhere:
//!
//! - **Losing a server loses only its entries.** A server that is lost, restarted or
//!   evicts its generation key creates it again at the current time in ms (a prefix
//!   never used before there); the other servers' generations, and entries, are
//!   untouched. With one shared generation key, losing its server moved the prefix of
//!   every key on every server.
//! - **Distrust.** A server this client routed around (marked down after
//!   `failure_limit` failures: its keys were written and deleted on another server
//!   meanwhile, so what it holds may be older), or one that missed a `clear`, is
//!   *distrusted*. Before this client uses it again, its generation is moved on the server
//!   itself, so that its old entries are never served again, by this client at once and
//!   by every other instance once it re-reads the generation (within its
//!   `generation_refresh`). The cost is that server's share of the cache.
//! - **One question at a time.** A read or move of the generation is asked by one caller
//!   while the others wait for its answer (within the command timeout), so that a
//!   returning server's generation is moved once, not once per concurrent request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use stratacache_tier::{Error, ErrorKind};

/// What this client knows of one server's generation. The known generation is read
/// without a lock (every command asks for it); questions and their failures are kept
/// under one.
#[derive(Debug)]
pub(crate) struct Generation {
    /// The generation last read from the server.
    known: AtomicU64,
    /// When it was read: ms after `born`, plus one; 0 when it never was.
    read_at: AtomicU64,
    /// How many connections to the server had ended when it was read (see
    /// [`Pool::connections_ended`](crate::pool::Pool::connections_ended)): after one more
    /// ends, the server may have restarted, lost its generation and made a new one
    /// (other clients may use that already), so it is read again before it is used.
    ended_when_read: AtomicU64,
    /// When the last read of it timed out: ms after `born`, plus one; 0 when it did not.
    failed_at: AtomicU64,
    /// How many connections had failed (ended by the server) when it timed out.
    failed_when_failed: AtomicU64,
    born: Instant,
    /// How many times the server's contents were distrusted.
    distrusted: AtomicU64,
    /// The value of `distrusted` that the last move answered: while the two differ, the
    /// generation must be moved before the server is used.
    moved_for: AtomicU64,
    state: Mutex<State>,
    /// Held by the caller asking the server; see the module docs.
    pub(crate) asking: tokio::sync::Mutex<()>,
}

impl Default for Generation {
    fn default() -> Self {
        Self {
            known: AtomicU64::new(0),
            read_at: AtomicU64::new(0),
            ended_when_read: AtomicU64::new(0),
            failed_at: AtomicU64::new(0),
            failed_when_failed: AtomicU64::new(0),
            born: Instant::now(),
            distrusted: AtomicU64::new(0),
            moved_for: AtomicU64::new(0),
            state: Mutex::default(),
            asking: tokio::sync::Mutex::default(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// How many questions have been answered (or failed), so that a caller who waited
    /// for one can tell that it ended.
    answers: u64,
    /// Why the last question failed, for the callers that waited on it.
    failure: Option<Error>,
}

/// A question to put to the server, from [`Generation::question`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Question {
    /// What to add to the generation: 1 to move it, 0 to read it.
    pub(crate) delta: u64,
    /// `distrusted` when the question was asked: a move answers distrust up to here only.
    distrusted: u64,
}

impl Generation {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ms_since_born(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Marks `when` (one of the times kept as ms after `born`, plus one) as now.
    fn stamp(&self, when: &AtomicU64) {
        when.store(self.ms_since_born().saturating_add(1), Ordering::Release);
    }

    /// How long ago `when` was marked; `None` when it never was (or was cleared).
    fn age(&self, when: &AtomicU64) -> Option<Duration> {
        let at = when.load(Ordering::Acquire).checked_sub(1)?;
        Some(Duration::from_millis(
            self.ms_since_born().saturating_sub(at),
        ))
    }

    fn trusted(&self) -> bool {
        self.distrusted.load(Ordering::Acquire) == self.moved_for.load(Ordering::Acquire)
    }

    /// The known generation, if one was read and the server is trusted, and how long
    /// ago it was read.
    fn known(&self) -> Option<(u64, Duration)> {
        let age = self.age(&self.read_at).filter(|_| self.trusted())?;
        Some((self.known.load(Ordering::Acquire), age))
    }

    /// The known generation when it was read less than `refresh` ago, with no
    /// connection ended since (`ended` so far), and the server is trusted: usable
    /// without asking.
    pub(crate) fn fresh(&self, refresh: Duration, ended: u64) -> Option<u64> {
        if self.ended_when_read.load(Ordering::Acquire) != ended {
            return None;
        }
        self.known()
            .filter(|(_, age)| *age < refresh)
            .map(|(generation, _)| generation)
    }

    /// The known generation however old, when the server is trusted: what to keep using
    /// while the server cannot be asked.
    pub(crate) fn last_known(&self) -> Option<u64> {
        self.known().map(|(generation, _)| generation)
    }

    /// How many questions have been answered so far.
    pub(crate) fn answers(&self) -> u64 {
        self.state().answers
    }

    /// Why the last question failed, if it did.
    pub(crate) fn last_failure(&self) -> Option<Error> {
        self.state().failure.clone()
    }

    /// The question to ask now: a move when `moving` (a `clear`) or the server is
    /// distrusted, otherwise a read.
    pub(crate) fn question(&self, moving: bool) -> Question {
        Question {
            delta: u64::from(moving || !self.trusted()),
            distrusted: self.distrusted.load(Ordering::Acquire),
        }
    }

    /// Records the server's answer to `question`, asked when `(ended, failed)`
    /// connections to it had ended, and failed (see
    /// [`Pool::connections_ended`](crate::pool::Pool::connections_ended)).
    pub(crate) fn answered(
        &self,
        question: Question,
        answer: &Result<u64, Error>,
        (ended, failed): (u64, u64),
    ) {
        let mut state = self.state();
        state.answers += 1;
        match answer {
            Ok(generation) => {
                self.known.store(*generation, Ordering::Release);
                self.ended_when_read.store(ended, Ordering::Release);
                self.stamp(&self.read_at);
                state.failure = None;
                self.failed_at.store(0, Ordering::Release);
                if question.delta > 0 {
                    // Distrust that arrived while the move was under way is still pending.
                    self.moved_for
                        .fetch_max(question.distrusted, Ordering::AcqRel);
                }
            }
            Err(error) => {
                state.failure = Some(error.clone());
                // A server that refuses answers at once when asked again (and may be
                // restarting: its new generation must be read as soon as it is up).
                if error.kind() == ErrorKind::Timeout && question.delta == 0 {
                    self.failed_when_failed.store(failed, Ordering::Release);
                    self.stamp(&self.failed_at);
                } else {
                    self.failed_at.store(0, Ordering::Release);
                }
            }
        }
    }

    /// Why the last read of the generation timed out, if it did less than `pause` ago
    /// with no connection failed since (`failed` so far: ended by the server, maybe a
    /// restart; this client closes stalled ones itself), none was answered since, and a
    /// generation is known to fall back on: it is not asked again until then (a stalled
    /// server would otherwise cost every call a second timeout).
    pub(crate) fn failed_within(&self, pause: Duration, failed: u64) -> Option<Error> {
        let age = self.age(&self.failed_at)?;
        // A distrusted server is asked (its generation moved) before it is used at all;
        // one never read has nothing to fall back on; one whose connection ended since
        // may have restarted, with a new generation.
        if age >= pause
            || self.known().is_none()
            || self.failed_when_failed.load(Ordering::Acquire) != failed
        {
            return None;
        }
        self.state().failure.clone()
    }

    /// Marks the server's contents as untrusted until its generation has been moved.
    pub(crate) fn distrust(&self) {
        self.distrusted.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    fn read(generation: &Generation, value: u64) {
        let question = generation.question(false);
        assert_eq!(question.delta, 0);
        generation.answered(question, &Ok(value), (0, 0));
    }

    #[test]
    fn a_read_generation_is_used_until_it_is_old() {
        let generation = Generation::default();
        assert_eq!(generation.fresh(LONG, 0), None);
        read(&generation, 7);
        assert_eq!(generation.fresh(LONG, 0), Some(7));
        assert_eq!(generation.fresh(Duration::ZERO, 0), None);
        assert_eq!(generation.last_known(), Some(7));
    }

    #[test]
    fn a_distrusted_server_is_not_used_until_its_generation_moves() {
        let generation = Generation::default();
        read(&generation, 7);
        generation.distrust();
        assert_eq!(generation.fresh(LONG, 0), None);
        assert_eq!(
            generation.last_known(),
            None,
            "no fallback to the old prefix"
        );
        let question = generation.question(false);
        assert_eq!(question.delta, 1, "a move, not a read");
        generation.answered(
            question,
            &Err(Error::new(ErrorKind::Timeout, "hung")),
            (0, 0),
        );
        assert_eq!(
            generation.question(false).delta,
            1,
            "still owed after a failure"
        );
        assert_eq!(
            generation.last_failure().map(|error| error.kind()),
            Some(ErrorKind::Timeout)
        );
        let question = generation.question(false);
        generation.answered(question, &Ok(8), (0, 0));
        assert_eq!(generation.fresh(LONG, 0), Some(8));
        assert_eq!(generation.question(false).delta, 0);
        assert!(generation.last_failure().is_none());
    }

    #[test]
    fn distrust_during_a_move_is_not_lost() {
        let generation = Generation::default();
        generation.distrust();
        let question = generation.question(false);
        generation.distrust();
        generation.answered(question, &Ok(8), (0, 0));
        assert_eq!(generation.fresh(LONG, 0), None);
        assert_eq!(generation.question(false).delta, 1);
    }

    #[test]
    fn a_read_does_not_answer_distrust() {
        let generation = Generation::default();
        let question = generation.question(false);
        generation.distrust();
        generation.answered(question, &Ok(7), (0, 0));
        assert_eq!(generation.fresh(LONG, 0), None);
    }

    #[test]
    fn clearing_always_moves() {
        let generation = Generation::default();
        assert_eq!(generation.question(true).delta, 1);
        assert_eq!(generation.answers(), 0);
        generation.answered(generation.question(true), &Ok(9), (0, 0));
        assert_eq!(generation.answers(), 1);
        assert_eq!(generation.fresh(LONG, 0), Some(9));
    }

    #[test]
    fn a_new_connection_has_the_generation_read_again() {
        let generation = Generation::default();
        generation.answered(generation.question(false), &Ok(7), (1, 1));
        assert_eq!(generation.fresh(LONG, 1), Some(7));
        assert_eq!(
            generation.fresh(LONG, 2),
            None,
            "the server may have restarted"
        );
        assert_eq!(generation.last_known(), Some(7), "still the fallback");
        generation.answered(generation.question(false), &Ok(9), (2, 2));
        assert_eq!(generation.fresh(LONG, 2), Some(9));
    }

    #[test]
    fn a_failed_question_is_not_asked_again_at_once() {
        let generation = Generation::default();
        generation.answered(generation.question(false), &Ok(7), (0, 0));
        let hung = Error::new(ErrorKind::Timeout, "hung");
        generation.answered(generation.question(false), &Err(hung), (0, 0));
        let failure = generation.failed_within(LONG, 0).expect("failed just now");
        assert_eq!(failure.kind(), ErrorKind::Timeout);
        assert!(
            generation.failed_within(Duration::ZERO, 0).is_none(),
            "after the pause"
        );
        generation.answered(generation.question(false), &Ok(8), (0, 0));
        assert!(
            generation.failed_within(LONG, 0).is_none(),
            "answered since"
        );
        let hung = Error::new(ErrorKind::Timeout, "hung again");
        generation.answered(generation.question(false), &Err(hung), (0, 0));
        assert!(
            generation.failed_within(LONG, 1).is_none(),
            "a connection ended since"
        );
        let refused = Error::new(ErrorKind::Unavailable, "refused");
        generation.answered(generation.question(false), &Err(refused), (0, 0));
        assert!(
            generation.failed_within(LONG, 0).is_none(),
            "asked again: it answers at once"
        );
    }
}
