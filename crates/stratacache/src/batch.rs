//! Batches: many keys read with one walk per tier (one pipelined round trip on a remote
//! tier) and one load for what no tier holds, published as single lookups publish.
//!
//! With stampede protection, the keys a batch must load take part in the same flights
//! as single lookups: a key whose flight is already in the air is waited on, and a key
//! the batch leads answers any single lookup that joins it. The batch's loader runs once,
//! for the keys it leads, after every key has joined or led its flight.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::hash::Hash;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use futures::future::join_all;
use futures::task::AtomicWaker;
use stratacache_tier::{Error, ErrorKind};
use tokio::sync::oneshot;

use crate::coalesce::{Coalescer, Fetched, Flight, flight_key, panicked};
use crate::first_look::FirstLook;
use crate::generation::Ticket;
use crate::inner::Inner;
use crate::loader::Loaded;
use crate::telemetry::{CacheCounter, Op, Operation, TierOutcome};
use crate::walk::Look;

/// A key of the batch still to be found: its index among the batch's keys, and the
/// ticket taken before any tier below L1 was read for it.
#[derive(Clone, Copy)]
struct Pending {
    index: usize,
    ticket: Ticket,
}

/// What a batch read found for each of its keys.
pub(crate) type Found<V> = Vec<Fetched<V>>;

/// A key whose flight the batch leads, and where its answer goes.
type Led<V> = (Pending, oneshot::Sender<Flight<V>>);

/// The loads a batch leads, gathered while its keys join their flights.
struct Leading<V> {
    /// The loads the batch leads; `None` once its loader ran: a flight handed to the
    /// batch after that (its leader dropped) ends at once without a load, and its
    /// callers load for themselves.
    led: Mutex<Option<Vec<Led<V>>>>,
    /// How many of the batch's flights have been polled once (joined or led).
    joined: AtomicUsize,
    all_joined: AtomicWaker,
}

impl<K, V> Inner<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Reads `keys` (distinct) through every tier, then loads what none holds with
    /// `loader`, if given. The answers are in the order of `keys`.
    ///
    /// # Errors
    ///
    /// A tier's error (strict only), or the loader's.
    pub(crate) async fn fetch_many<L, Fut>(
        self: &Arc<Self>,
        keys: &[K],
        loader: Option<&L>,
        op: &Op,
    ) -> Result<Found<V>, Error>
    where
        L: Fn(Vec<K>) -> Fut + Sync,
        Fut: Future<Output = Result<HashMap<K, Loaded<V>>, Error>> + Send,
    {
        let mut found: Found<V> = vec![Fetched::Miss; keys.len()];
        let mut pending = Vec::new();
        let mut from = 1;
        for (index, key) in keys.iter().enumerate() {
            match self.first_look(key, op) {
                FirstLook::Hit(value) => found[index] = Fetched::Hit(value),
                look => {
                    from = from.min(look.next_level());
                    let ticket = self.generations.ticket(key);
                    pending.push(Pending { index, ticket });
                }
            }
        }
        for depth in from..self.levels.len() {
            if pending.is_empty() {
                return Ok(found);
            }
            pending = self.look_many(depth, keys, pending, &mut found, op).await?;
        }
        let Some(loader) = loader else {
            return Ok(found);
        };
        if let Some(not_found) = self.remembers_not_found(op) {
            let now = self.clock.now();
            pending.retain(|pending| {
                let held = not_found.holds(&keys[pending.index], now);
                if held {
                    self.telemetry.count(CacheCounter::NotFoundHits);
                    found[pending.index] = Fetched::LoadedNothing;
                }
                !held
            });
        }
        if pending.is_empty() {
            return Ok(found);
        }
        let leftover = match &self.coalescer {
            Some(coalescer) => {
                self.load_coalesced(coalescer, keys, &pending, loader, &mut found, op)
                    .await?
            }
            None => pending,
        };
        if !leftover.is_empty() {
            let loaded = self.load_and_publish(keys, &leftover, loader, op).await?;
            for (pending, fetched) in leftover.iter().zip(loaded) {
                found[pending.index] = fetched;
            }
        }
        Ok(found)
    }

    /// One batch read of level `depth` for the keys still pending; hits are promoted
    /// into the levels above it. Returns the keys still missing.
    async fn look_many(
        self: &Arc<Self>,
        depth: usize,
        keys: &[K],
        pending: Vec<Pending>,
        found: &mut Found<V>,
        op: &Op,
    ) -> Result<Vec<Pending>, Error> {
        let level = &self.levels[depth];
        let asked: Vec<K> = pending.iter().map(|p| keys[p.index].clone()).collect();
        let stopwatch = op.stopwatch();
        let answers = match level.get_many(&asked).await {
            Ok(answers) if answers.len() == asked.len() => answers,
            Ok(answers) => {
                let error = Error::new(
                    ErrorKind::Other,
                    format!("tier answered {} keys of {}", answers.len(), asked.len()),
                );
                for _ in &pending {
                    self.report(op, level, TierOutcome::Error(error.kind()), stopwatch);
                }
                self.tolerate(error)?;
                return Ok(pending);
            }
            Err(error) => {
                for _ in &pending {
                    self.report(op, level, TierOutcome::Error(error.kind()), stopwatch);
                }
                self.tolerate(error)?;
                return Ok(pending);
            }
        };
        let mut missing = Vec::new();
        let mut promotions = Vec::new();
        let now = self.clock.now();
        let tagged = answers.iter().filter_map(|answer| match answer {
            Ok(Some(entry)) => Some(entry.tags()),
            _ => None,
        });
        self.learn_tags(tagged, now).await;
        for (pending, answer) in pending.into_iter().zip(answers) {
            let key = &keys[pending.index];
            match self.judge(level, key, answer, now, op, stopwatch) {
                Look::Live(entry, stopwatch) => {
                    self.report(op, level, TierOutcome::Hit, stopwatch);
                    if depth == 0 {
                        self.refresh_if_stale(key, &entry, now);
                    } else if level.promotion.allows(&entry) {
                        promotions.push((pending, entry));
                        continue;
                    }
                    found[pending.index] = Fetched::Hit(entry.into_value());
                }
                // Fail-safe does not serve stale values in batches (yet).
                Look::Stale(_) | Look::Absent => missing.push(pending),
                Look::Failed(error) => {
                    self.tolerate(error)?;
                    missing.push(pending);
                }
            }
        }
        if depth == 1 {
            // Into L1 alone: a memory L1 takes each at once, with nothing to await.
            for (pending, entry) in &promotions {
                let key = &keys[pending.index];
                self.publish(key, entry, pending.ticket, 0..1, TierOutcome::Promoted, op)
                    .await;
            }
        } else {
            let mut publishes = Vec::with_capacity(promotions.len());
            for (pending, entry) in &promotions {
                let (key, into) = (&keys[pending.index], 0..depth);
                let promoted = TierOutcome::Promoted;
                publishes.push(self.publish(key, entry, pending.ticket, into, promoted, op));
            }
            join_all(publishes).await;
        }
        for (pending, entry) in promotions {
            found[pending.index] = Fetched::Hit(entry.into_value());
        }
        Ok(missing)
    }

    /// The negative cache, when this operation consults it (only reads through the
    /// cache's own loader do: a per-call closure always gets its turn).
    pub(crate) fn remembers_not_found(&self, op: &Op) -> Option<&crate::not_found::NotFound<K>> {
        self.not_found
            .as_ref()
            .filter(|_| matches!(op.operation, Operation::Get | Operation::GetMany))
    }

    /// Runs `loader` once for the `pending` keys and publishes what it found into every
    /// level; the answers are in the order of `pending`.
    async fn load_and_publish<L, Fut>(
        self: &Arc<Self>,
        keys: &[K],
        pending: &[Pending],
        loader: &L,
        op: &Op,
    ) -> Result<Found<V>, Error>
    where
        L: Fn(Vec<K>) -> Fut + Sync,
        Fut: Future<Output = Result<HashMap<K, Loaded<V>>, Error>> + Send,
    {
        let asked: Vec<K> = pending.iter().map(|p| keys[p.index].clone()).collect();
        for _ in &asked {
            self.telemetry.count(CacheCounter::Loads);
        }
        let started = self.clock.now();
        let mut loaded = match loader(asked).await {
            Ok(loaded) => loaded,
            Err(error) => {
                self.telemetry.count(CacheCounter::LoadErrors);
                return Err(error);
            }
        };
        let now = self.clock.now();
        let not_found = self.remembers_not_found(op);
        let mut answers = Vec::with_capacity(pending.len());
        let mut entries = Vec::new();
        for pending in pending {
            let key = &keys[pending.index];
            match loaded.remove(key) {
                Some(loaded) => {
                    let entry = loaded.into_entry(started);
                    answers.push(Fetched::Loaded(entry.value().clone()));
                    entries.push((pending, entry));
                }
                None => {
                    answers.push(Fetched::LoadedNothing);
                    if let Some(not_found) = not_found {
                        self.generations
                            .publish(pending.ticket, || not_found.remember(key.clone(), now));
                    }
                }
            }
        }
        let mut publishes = Vec::with_capacity(entries.len());
        for (pending, entry) in &entries {
            let (key, every_level) = (&keys[pending.index], 0..self.levels.len());
            publishes.push(self.publish(
                key,
                entry,
                pending.ticket,
                every_level,
                TierOutcome::Inserted,
                op,
            ));
        }
        join_all(publishes).await;
        Ok(answers)
    }

    /// Joins or leads the flight of each pending key, and loads once for those it leads.
    /// Fills in `found`; returns the keys whose flight ended without a load (a lookup
    /// without a loader led it), for the caller to load.
    async fn load_coalesced<L, Fut>(
        self: &Arc<Self>,
        coalescer: &Coalescer<K, V>,
        keys: &[K],
        pending: &[Pending],
        loader: &L,
        found: &mut Found<V>,
        op: &Op,
    ) -> Result<Vec<Pending>, Error>
    where
        L: Fn(Vec<K>) -> Fut + Sync,
        Fut: Future<Output = Result<HashMap<K, Loaded<V>>, Error>> + Send,
    {
        let leading = Leading {
            led: Mutex::new(Some(Vec::new())),
            joined: AtomicUsize::new(0),
            all_joined: AtomicWaker::new(),
        };
        let mut flights = Vec::with_capacity(pending.len());
        for pending_key in pending {
            let key = &keys[pending_key.index];
            flights.push(self.join_for_batch(
                coalescer,
                key,
                *pending_key,
                &leading,
                pending.len(),
                op,
            ));
        }
        let drive = self.drive_batch_load(keys, &leading, pending.len(), loader, op);
        let (answers, ()) = futures::join!(join_all(flights), drive);
        let mut leftover = Vec::new();
        for (pending, answer) in pending.iter().zip(answers) {
            match answer? {
                Fetched::Miss => leftover.push(*pending),
                fetched => found[pending.index] = fetched,
            }
        }
        Ok(leftover)
    }

    /// One key's part in the batch's coalesced load: it leads the key's flight (and
    /// waits for the batch's load) or joins the flight already in the air.
    async fn join_for_batch(
        &self,
        coalescer: &Coalescer<K, V>,
        key: &K,
        pending: Pending,
        leading: &Leading<V>,
        count: usize,
        op: &Op,
    ) -> Flight<V> {
        let flight_key = flight_key(key, pending.ticket, op);
        let flight = coalescer.flights.execute(&flight_key, || async move {
            let (answer, answered) = oneshot::channel();
            match &mut *lock(&leading.led) {
                Some(led) => led.push((pending, answer)),
                // The batch's load already ran: no load here; the callers load.
                None => return Ok(Fetched::Miss),
            }
            answered
                .await
                .unwrap_or_else(|_| Err(Error::new(ErrorKind::Other, "the batch load was dropped")))
        });
        let mut flight = pin!(flight);
        let mut first_poll = true;
        poll_fn(|context| {
            let poll = flight.as_mut().poll(context);
            if std::mem::take(&mut first_poll) && last_to_join(leading, count) {
                leading.all_joined.wake();
            }
            poll
        })
        .await
        .unwrap_or_else(|panic| Err(panicked(&panic)))
    }

    /// Waits until every key of the batch has joined or led its flight, then loads the
    /// keys it leads in one call and answers their flights.
    async fn drive_batch_load<L, Fut>(
        self: &Arc<Self>,
        keys: &[K],
        leading: &Leading<V>,
        count: usize,
        loader: &L,
        op: &Op,
    ) where
        L: Fn(Vec<K>) -> Fut + Sync,
        Fut: Future<Output = Result<HashMap<K, Loaded<V>>, Error>> + Send,
    {
        poll_fn(|context| {
            leading.all_joined.register(context.waker());
            if leading.joined.load(Ordering::Acquire) >= count {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        let led = lock(&leading.led).take().unwrap_or_default();
        if led.is_empty() {
            return;
        }
        let pending: Vec<Pending> = led.iter().map(|(pending, _)| *pending).collect();
        match self.load_and_publish(keys, &pending, loader, op).await {
            Ok(answers) => {
                for ((_, answer), fetched) in led.into_iter().zip(answers) {
                    let _ = answer.send(Ok(fetched));
                }
            }
            Err(error) => {
                for (_, answer) in led {
                    let _ = answer.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Counts one more of the batch's flights as joined; whether it was the last.
fn last_to_join<V>(leading: &Leading<V>, count: usize) -> bool {
    leading.joined.fetch_add(1, Ordering::AcqRel) + 1 == count
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
