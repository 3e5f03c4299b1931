//! What `#[cached]` (feature `macros`) expands to: an `async fn` body read through a
//! cache, by return type. Not a public API: the macro's expansion calls it.

use std::future::Future;
use std::hash::Hash;
use std::pin::{Pin, pin};
use std::sync::{Mutex, PoisonError};

use futures::FutureExt;
use futures::future::{Fuse, FusedFuture};

use crate::{Cache, Error};

/// Takes the one value out of a slot.
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

fn put<T>(slot: &Mutex<Option<T>>, value: T) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
}

/// The marker error a failed body hands the cache (its own error is kept aside).
#[derive(Debug)]
struct BodyFailed;

impl std::fmt::Display for BodyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the #[cached] function failed")
    }
}

impl std::error::Error for BodyFailed {}

/// A function returning `V`: cached. Should the cache fail (strict, or a hard load
/// timeout), what the body produced is returned, or the body's future is awaited to its
/// end: it lives here, so a load the cache gave up on is finished, never started again.
pub async fn value<K, V, F, Fut>(cache: &Cache<K, V>, key: K, body: F) -> V
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = V> + Send,
{
    let mut running = pin!(body().fuse());
    let produced = Mutex::new(None);
    let read = cache
        .get_or_insert(&key, || async {
            let value = running.as_mut().await;
            put(&produced, value.clone());
            value
        })
        .await;
    match read {
        Ok(value) => value,
        Err(_) => match take(&produced) {
            Some(value) => value,
            None => finish(running).await,
        },
    }
}

/// A function returning `Option<V>`: `Some` cached, `None` not; a cache failure answered
/// as [`value`] answers it.
pub async fn option<K, V, F, Fut>(cache: &Cache<K, V>, key: K, body: F) -> Option<V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Option<V>> + Send,
{
    let mut running = pin!(body().fuse());
    let produced = Mutex::new(None);
    let read = cache
        .optionally_get_or_insert(&key, || async {
            let found = running.as_mut().await;
            put(&produced, found.clone());
            found
        })
        .await;
    match read {
        Ok(found) => found,
        Err(_) => match take(&produced) {
            Some(found) => found,
            None => finish(running).await,
        },
    }
}

/// Awaits the body's future to its end. It has not ended: an ended body put its value
/// in `produced` in the same poll.
async fn finish<T>(running: Pin<&mut Fuse<impl Future<Output = T>>>) -> T {
    assert!(!running.is_terminated(), "an ended body left its value");
    running.await
}

/// A function returning `Result<V, E>`: `Ok` cached, errors never. A caller whose body
/// failed gets its own error; one that waited on another's failed load, or met a cache
/// failure, gets `E::from(error)`.
pub async fn result<K, V, E, F, Fut>(cache: &Cache<K, V>, key: K, body: F) -> Result<V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: From<Error> + Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<V, E>> + Send,
{
    let (body, produced, failure) = (Mutex::new(Some(body)), Mutex::new(None), Mutex::new(None));
    let read = cache
        .try_get_or_insert(&key, || async {
            let run = take(&body).expect("the body runs once");
            match run().await {
                Ok(value) => {
                    put(&produced, value.clone());
                    Ok(value)
                }
                Err(error) => {
                    put(&failure, error);
                    Err(BodyFailed)
                }
            }
        })
        .await;
    match read {
        Ok(value) => Ok(value),
        Err(error) => match (take(&failure), take(&produced)) {
            (Some(own), _) => Err(own),
            (None, Some(value)) => Ok(value),
            (None, None) => Err(E::from(error)),
        },
    }
}
