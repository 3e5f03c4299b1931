//! An in-memory byte store whose bytes a test can read, plant and spoil.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;

use crate::{ByteStore, Error};

/// A [`ByteStore`] over a map shared by its clones, in an optional namespace: what a
/// test puts behind the codec boundary to look at, or tamper with, what the codec
/// writes. It keeps no TTL and counts deletes.
///
/// ```
/// use bytes::Bytes;
/// use stratacache_tier::ByteStore;
/// use stratacache_tier::mock::MemoryStore;
///
/// # futures::executor::block_on(async {
/// let store = MemoryStore::new().namespace("users");
/// store.set("k", Bytes::from_static(b"v"), None).await?;
/// assert_eq!(store.raw("k"), Some(Bytes::from_static(b"v")));
/// store.spoil(b"garbage");
/// assert_eq!(store.get("k").await?, Some(Bytes::from_static(b"garbage")));
/// store.delete("k").await?;
/// assert_eq!((store.keys().len(), store.deletes()), (0, 1));
/// # Ok::<(), stratacache_tier::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    namespace: Arc<str>,
    bytes: Arc<Mutex<HashMap<String, Bytes>>>,
    deletes: Arc<AtomicUsize>,
}

impl MemoryStore {
    /// An empty store without a namespace.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The same store reporting `namespace` (see [`ByteStore::namespace`]).
    #[must_use]
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.into();
        self
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Bytes>> {
        self.bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every key it holds.
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// The bytes under `key`, as stored.
    #[must_use]
    pub fn raw(&self, key: &str) -> Option<Bytes> {
        self.map().get(key).cloned()
    }

    /// Stores `bytes` under `key` as they are, as a foreign writer would.
    pub fn plant(&self, key: &str, bytes: Bytes) {
        self.map().insert(key.to_owned(), bytes);
    }

    /// Replaces every stored value with `garbage`.
    pub fn spoil(&self, garbage: &[u8]) {
        for value in self.map().values_mut() {
            *value = Bytes::copy_from_slice(garbage);
        }
    }

    /// How many deletes it was asked for.
    #[must_use]
    pub fn deletes(&self) -> usize {
        self.deletes.load(Ordering::Relaxed)
    }
}

impl ByteStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
        Ok(self.raw(key))
    }

    async fn set(&self, key: &str, value: Bytes, _ttl: Option<Duration>) -> Result<(), Error> {
        self.plant(key, value);
        Ok(())
    }

    async fn set_if_greater(
        &self,
        key: &str,
        value: Bytes,
        _ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        // Compared and set under the map's lock: one step, as a real store's script.
        let mut map = self.map();
        let greater = map.get(key).is_none_or(|current| *current < value);
        if greater {
            map.insert(key.to_owned(), value);
        }
        Ok(greater)
    }

    async fn set_unless_within(
        &self,
        key: &str,
        value: Bytes,
        _ttl: Option<Duration>,
        after: &[u8],
        up_to: &[u8],
    ) -> Result<bool, Error> {
        let mut map = self.map();
        let stands = map
            .get(key)
            .is_some_and(|current| crate::store::sorts_within(current, after, up_to));
        if !stands {
            map.insert(key.to_owned(), value);
        }
        Ok(!stands)
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.deletes.fetch_add(1, Ordering::Relaxed);
        self.map().remove(key);
        Ok(())
    }

    async fn clear(&self) -> Result<(), Error> {
        self.map().clear();
        Ok(())
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }
}
