//! The circuit breaker's state machine, shared by the facade's per-tier breaker and the
//! service crate's `tower` layer: after some transient failures in a row it turns calls
//! away for a cool-down, then lets one probe decide.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::ErrorKind;

/// Where a [`Circuit`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls are turned away until the cool-down ends.
    Open,
    /// One probe is out; other calls are turned away until it answers.
    HalfOpen,
}

impl CircuitState {
    /// A short, stable, lower-case name for logs and metrics labels.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// What a [`Circuit`] lets a call do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Call,
    /// Go ahead as the probe: its answer closes or reopens the circuit.
    Probe,
    /// Don't call; answer at once (with [`ErrorKind::CircuitOpen`](crate::ErrorKind::CircuitOpen)).
    TurnAway,
}

/// A circuit: closed until `failures` transient failures in a row, then open until a
/// time the caller chose, then half-open for one probe. `T` is the caller's notion of
/// time (a `SystemTime` from the cache's clock, tokio's `Instant`).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use stratacache_tier::{Admission, Circuit, CircuitState};
///
/// let circuit = Circuit::new(2);
/// let (start, cool_down) = (SystemTime::UNIX_EPOCH, Duration::from_secs(5));
/// for _ in 0..2 {
///     assert_eq!(circuit.admit(start), Admission::Call);
///     circuit.record(false, true, start + cool_down); // a timeout
/// }
/// assert_eq!(circuit.state(), CircuitState::Open);
/// assert_eq!(circuit.admit(start), Admission::TurnAway);
/// let later = start + cool_down;
/// assert_eq!(circuit.admit(later), Admission::Probe);
/// assert_eq!(circuit.admit(later), Admission::TurnAway, "one probe at a time");
/// circuit.record(true, false, later + cool_down); // the probe succeeded
/// assert_eq!(circuit.state(), CircuitState::Closed);
/// ```
///
/// A healthy circuit (closed, no failure counted) is what nearly every call finds: it is
/// read without the lock, and a success leaves it unwritten, so that calls on many
/// threads share a healthy circuit without contending for it.
pub struct Circuit<T> {
    failures: u32,
    /// Whether `state` is `Closed { failures: 0 }`; written under its lock.
    healthy: AtomicBool,
    state: Mutex<State<T>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State<T> {
    Closed { failures: u32 },
    Open { until: T },
    Probing,
}

impl<T: Copy + Ord> Circuit<T> {
    /// A closed circuit that opens after `failures` (at least 1) transient failures in a
    /// row.
    #[must_use]
    pub fn new(failures: u32) -> Self {
        Self {
            failures: failures.max(1),
            healthy: AtomicBool::new(true),
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// When a circuit opened at `now` reopens after `cool_down`, by `checked_add` (the
    /// time type's own): a cool-down past what the type can hold lasts a century, and
    /// past even that, none.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use stratacache_tier::Circuit;
    ///
    /// let now = SystemTime::UNIX_EPOCH;
    /// let until = Circuit::reopen_at(now, Duration::from_secs(5), SystemTime::checked_add);
    /// assert_eq!(until, now + Duration::from_secs(5));
    /// let never = Circuit::reopen_at(now, Duration::MAX, SystemTime::checked_add);
    /// assert!(never > now + Duration::from_secs(99 * 365 * 24 * 60 * 60));
    /// ```
    pub fn reopen_at(
        now: T,
        cool_down: Duration,
        checked_add: impl Fn(&T, Duration) -> Option<T>,
    ) -> T {
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
        checked_add(&now, cool_down)
            .or_else(|| checked_add(&now, CENTURY))
            .unwrap_or(now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // Every change of the state is one assignment: a panic leaves it whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a call may go through at `now`; the first call after the cool-down is
    /// the probe.
    pub fn admit(&self, now: T) -> Admission {
        self.admit_at(|| now)
    }

    /// [`admit`](Self::admit), asking for the time only when the circuit is not healthy.
    fn admit_at(&self, now: impl FnOnce() -> T) -> Admission {
        if self.healthy.load(Ordering::Relaxed) {
            return Admission::Call;
        }
        let now = now();
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Admission::Call,
            State::Open { until } if now >= until => {
                self.set(&mut state, State::Probing);
                Admission::Probe
            }
            State::Open { .. } | State::Probing => Admission::TurnAway,
        }
    }

    /// Records how an admitted call ended: a transient failure (timeout, unavailable)
    /// counts toward opening, until `reopen_until` if it opens; anything else (success,
    /// or an answer that proves the tier is up) closes the circuit. A probe's failure
    /// reopens it at once.
    ///
    /// Returns the circuit's new state when this changed it (it opened or closed).
    pub fn record(
        &self,
        probe: bool,
        transient_failure: bool,
        reopen_until: T,
    ) -> Option<CircuitState> {
        self.record_with(probe, transient_failure, || reopen_until)
    }

    /// [`record`](Self::record), asking when to reopen only if the call opens the
    /// circuit. A success on a healthy circuit changes nothing, and writes nothing.
    fn record_with(
        &self,
        probe: bool,
        transient_failure: bool,
        reopen_until: impl FnOnce() -> T,
    ) -> Option<CircuitState> {
        if !transient_failure && !probe && self.healthy.load(Ordering::Relaxed) {
            return None;
        }
        let mut state = self.lock();
        let before = public(&state);
        let next = match (transient_failure, *state) {
            (false, _) => State::Closed { failures: 0 },
            (true, State::Closed { failures }) if failures + 1 < self.failures && !probe => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (true, _) => State::Open {
                until: reopen_until(),
            },
        };
        self.set(&mut state, next);
        let after = public(&state);
        (after != before).then_some(after)
    }

    /// Moves to `next`, under the lock `state` holds.
    fn set(&self, state: &mut State<T>, next: State<T>) {
        *state = next;
        self.healthy.store(
            matches!(next, State::Closed { failures: 0 }),
            Ordering::Relaxed,
        );
    }

    /// A probe dropped before it answered (its caller gave up): the circuit reopens
    /// rather than stay half-open forever.
    pub fn abandon_probe(&self, reopen_until: T) {
        let mut state = self.lock();
        if *state == State::Probing {
            self.set(
                &mut state,
                State::Open {
                    until: reopen_until,
                },
            );
        }
    }

    /// Where the circuit stands now.
    #[must_use]
    pub fn state(&self) -> CircuitState {
        public(&self.lock())
    }
}

fn public<T>(state: &State<T>) -> CircuitState {
    match state {
        State::Closed { .. } => CircuitState::Closed,
        State::Open { .. } => CircuitState::Open,
        State::Probing => CircuitState::HalfOpen,
    }
}

impl<T: Copy + Ord> Circuit<T> {
    /// Lets a call through `circuit` at the time `now` tells, or turns it away (`None`).
    /// The pass says how the call ended ([`Pass::finish`]); `reopen_until` tells, when
    /// the call opens the circuit, until when. Neither is asked while the circuit is
    /// healthy: a call through a healthy circuit reads no clock.
    pub fn pass<C, N, F>(circuit: C, now: N, reopen_until: F) -> Option<Pass<C, T, F>>
    where
        C: Deref<Target = Self>,
        N: FnOnce() -> T,
        F: Fn() -> T,
    {
        let probe = match circuit.admit_at(now) {
            Admission::Call => false,
            Admission::Probe => true,
            Admission::TurnAway => return None,
        };
        Some(Pass {
            circuit,
            probe,
            reopen_until,
            finished: false,
        })
    }
}

/// A call a [`Circuit`] let through. A probe dropped before it [finished](Self::finish)
/// (its caller gave up) reopens the circuit rather than leave it half-open forever.
pub struct Pass<C, T, F>
where
    C: Deref<Target = Circuit<T>>,
    T: Copy + Ord,
    F: Fn() -> T,
{
    circuit: C,
    probe: bool,
    reopen_until: F,
    finished: bool,
}

impl<C, T, F> Pass<C, T, F>
where
    C: Deref<Target = Circuit<T>>,
    T: Copy + Ord,
    F: Fn() -> T,
{
    /// Records how the call ended (`failure`: its error's kind): a transient failure
    /// counts toward opening; a success, or any other answer to a probe (the tier is
    /// up), closes the circuit; other errors (bad bytes, a rejected value) say nothing
    /// of the tier's health. Returns the circuit's new state when this changed it.
    pub fn finish(mut self, failure: Option<ErrorKind>) -> Option<CircuitState> {
        self.finished = true;
        let transient = failure.is_some_and(ErrorKind::is_transient);
        if failure.is_none() || transient || self.probe {
            self.circuit
                .record_with(self.probe, transient, &self.reopen_until)
        } else {
            None
        }
    }
}

impl<C, T, F> Drop for Pass<C, T, F>
where
    C: Deref<Target = Circuit<T>>,
    T: Copy + Ord,
    F: Fn() -> T,
{
    fn drop(&mut self) {
        if self.probe && !self.finished {
            self.circuit.abandon_probe((self.reopen_until)());
        }
    }
}

impl<T: Copy + Ord> fmt::Debug for Circuit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Circuit")
            .field("failures", &self.failures)
            .field("state", &self.state())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_resets_the_count() {
        let circuit = Circuit::new(2);
        circuit.record(false, true, 10);
        circuit.record(false, false, 10);
        circuit.record(false, true, 10);
        assert_eq!(circuit.state(), CircuitState::Closed);
        circuit.record(false, true, 10);
        assert_eq!(circuit.state(), CircuitState::Open);
    }

    #[test]
    fn a_pass_records_its_call_and_a_dropped_probe_reopens() {
        let circuit = Circuit::new(1);
        let pass = Circuit::pass(&circuit, || 0, || 10).unwrap();
        assert_eq!(pass.finish(Some(ErrorKind::Codec)), None, "says nothing");
        let pass = Circuit::pass(&circuit, || 0, || 10).unwrap();
        assert_eq!(
            pass.finish(Some(ErrorKind::Timeout)),
            Some(CircuitState::Open)
        );
        assert!(
            Circuit::pass(&circuit, || 5, || 10).is_none(),
            "turned away"
        );
        drop(Circuit::pass(&circuit, || 10, || 20).unwrap()); // a probe, abandoned
        assert_eq!(circuit.state(), CircuitState::Open);
        let probe = Circuit::pass(&circuit, || 20, || 30).unwrap();
        assert_eq!(
            probe.finish(Some(ErrorKind::Rejected)),
            Some(CircuitState::Closed),
            "up"
        );
    }

    #[test]
    fn a_healthy_circuit_reads_no_clock() {
        let circuit = Circuit::new(2);
        let asked = std::cell::Cell::new(0);
        let clock = || {
            asked.set(asked.get() + 1);
            0
        };
        let pass = Circuit::pass(&circuit, clock, clock).unwrap();
        assert_eq!(pass.finish(None), None);
        assert_eq!(
            asked.get(),
            0,
            "healthy: neither the time nor a reopening asked"
        );
        let pass = Circuit::pass(&circuit, clock, clock).unwrap();
        assert_eq!(
            pass.finish(Some(ErrorKind::Timeout)),
            None,
            "counted, not open"
        );
        assert_eq!(
            asked.get(),
            0,
            "a failure that does not open asks no reopening"
        );
        // A failure is counted: the circuit is not healthy, and the next call asks the time.
        let pass = Circuit::pass(&circuit, clock, clock).unwrap();
        assert_eq!(asked.get(), 1);
        assert_eq!(pass.finish(None), None, "closed it was, closed it stays");
        // The success reset the count: healthy again.
        let pass = Circuit::pass(&circuit, clock, clock).unwrap();
        assert_eq!(pass.finish(Some(ErrorKind::Timeout)), None);
        assert_eq!(asked.get(), 1);
        let pass = Circuit::pass(&circuit, clock, clock).unwrap();
        assert_eq!(
            pass.finish(Some(ErrorKind::Timeout)),
            Some(CircuitState::Open)
        );
        assert_eq!(asked.get(), 3, "the time, then when to reopen");
    }

    #[test]
    fn healthy_is_closed_with_no_failure_after_every_step() {
        let circuit = Circuit::new(3);
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for now in 0..10_000_u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let failure = match seed % 4 {
                0 => None,
                1 => Some(ErrorKind::Codec),
                _ => Some(ErrorKind::Timeout),
            };
            match Circuit::pass(&circuit, || now, || now + seed % 8) {
                Some(pass) if seed.is_multiple_of(16) => drop(pass),
                Some(pass) => drop(pass.finish(failure)),
                None => {}
            }
            let state = *circuit.lock();
            assert_eq!(
                circuit.healthy.load(Ordering::Relaxed),
                state == State::Closed { failures: 0 },
                "{state:?}"
            );
        }
    }

    #[test]
    fn a_failed_or_abandoned_probe_reopens() {
        let circuit = Circuit::new(1);
        circuit.record(false, true, 10);
        assert_eq!(circuit.admit(10), Admission::Probe);
        circuit.record(true, true, 20);
        assert_eq!(circuit.admit(15), Admission::TurnAway);
        assert_eq!(circuit.admit(20), Admission::Probe);
        circuit.abandon_probe(30);
        assert_eq!(circuit.state(), CircuitState::Open);
        assert_eq!(circuit.admit(29), Admission::TurnAway);
    }
}
