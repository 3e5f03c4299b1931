use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Error;

/// A remote store of bytes under string keys: what Redis and memcached tiers implement.
///
/// A `ByteStore` knows nothing of types, timestamps or freshness. The facade's codec
/// boundary turns a typed key into a key that is valid for every backend (printable
/// ASCII without spaces, at most 200 bytes), wraps each value in a versioned envelope
/// carrying its timestamps, and hands the store the entry's remaining time-to-live.
/// The store adds its own namespace prefix to every key, so that [`clear`](Self::clear)
/// touches only this cache's entries.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::Duration;
///
/// use bytes::Bytes;
/// use stratacache_tier::{ByteStore, Error};
///
/// // Ignores `ttl`: a test double, not a real store.
/// #[derive(Default)]
/// struct MapStore(Mutex<HashMap<String, Bytes>>);
///
/// impl ByteStore for MapStore {
///     async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
///         Ok(self.0.lock().unwrap().get(key).cloned())
///     }
///     async fn set(&self, key: &str, value: Bytes, _: Option<Duration>) -> Result<(), Error> {
///         self.0.lock().unwrap().insert(key.to_owned(), value);
///         Ok(())
///     }
///     async fn delete(&self, key: &str) -> Result<(), Error> {
///         self.0.lock().unwrap().remove(key);
///         Ok(())
///     }
///     async fn clear(&self) -> Result<(), Error> {
///         self.0.lock().unwrap().clear();
///         Ok(())
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let store = MapStore::default();
/// store.set("k", Bytes::from_static(b"v"), None).await?;
/// assert_eq!(store.get("k").await?, Some(Bytes::from_static(b"v")));
/// store.delete("k").await?;
/// assert_eq!(store.get("k").await?, None);
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
pub trait ByteStore: Send + Sync + 'static {
    /// The bytes under `key`, if any.
    ///
    /// # Errors
    ///
    /// [`Unavailable`](crate::ErrorKind::Unavailable) or
    /// [`Timeout`](crate::ErrorKind::Timeout) when the store cannot answer in time.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, Error>> + Send;

    /// Stores `value` under `key`, to expire on the server after `ttl` (`None`: never).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get); [`Rejected`](crate::ErrorKind::Rejected) when the value
    /// is larger than the store accepts.
    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Removes `key`.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Removes every key of this store's namespace, and nothing else.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get).
    fn clear(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// The bytes under each of `keys`, in the same order. The default asks one key at a
    /// time; a store that can batch (a Redis pipeline, a memcached multi-get) overrides
    /// it with one round trip.
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get): the first failure.
    fn get_many(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>, Error>> + Send {
        async move {
            let mut values = Vec::with_capacity(keys.len());
            for key in keys {
                values.push(self.get(key).await?);
            }
            Ok(values)
        }
    }

    /// The value under each of `keys`, in the same order, each with its own answer: a
    /// store spread over servers answers the keys of those that answer when another
    /// fails. The default is [`get_many`](Self::get_many), its failure given to every
    /// key.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use stratacache_tier::ByteStore;
    /// use stratacache_tier::mock::MemoryStore;
    ///
    /// # futures::executor::block_on(async {
    /// let store = MemoryStore::new();
    /// store.set("a", Bytes::from_static(b"1"), None).await?;
    /// let found = store.get_each(&["a", "b"]).await;
    /// assert_eq!(found[0].as_ref().unwrap().as_deref(), Some(&b"1"[..]));
    /// assert_eq!(found[1].as_ref().unwrap(), &None);
    /// # Ok::<(), stratacache_tier::Error>(())
    /// # }).unwrap();
    /// ```
    fn get_each(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Vec<Result<Option<Bytes>, Error>>> + Send {
        async move {
            match self.get_many(keys).await {
                Ok(values) => values.into_iter().map(Ok).collect(),
                Err(error) => keys.iter().map(|_| Err(error.clone())).collect(),
            }
        }
    }

    /// Stores each `(key, value, ttl)`. The default stores one at a time; a store that
    /// can batch overrides it with one round trip.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set): the first failure.
    fn set_many(
        &self,
        items: &[(&str, Bytes, Option<Duration>)],
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            for (key, value, ttl) in items {
                self.set(key, value.clone(), *ttl).await?;
            }
            Ok(())
        }
    }

    /// Stores `value` under `key` (expiring after `ttl`) unless the bytes already there
    /// sort at or after it, compared byte by byte: a register that only moves forward,
    /// for values whose byte order is their order (a big-endian time, say). Two writers
    /// racing leave the greater value, whichever lands last. Answers whether it stored.
    ///
    /// The default reads, then writes: a write by someone else between the two may be
    /// overwritten. A store that can compare and set in one step (a Redis script,
    /// memcached's compare-and-swap) overrides it.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use stratacache_tier::ByteStore;
    /// use stratacache_tier::mock::MemoryStore;
    ///
    /// # futures::executor::block_on(async {
    /// let store = MemoryStore::new();
    /// assert!(store.set_if_greater("t", Bytes::from_static(b"\x00\x05"), None).await?);
    /// let older = Bytes::from_static(b"\x00\x03");
    /// assert!(!store.set_if_greater("t", older, None).await?, "kept out");
    /// assert_eq!(store.raw("t"), Some(Bytes::from_static(b"\x00\x05")));
    /// # Ok::<(), stratacache_tier::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    fn set_if_greater(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        async move {
            match self.get(key).await? {
                Some(current) if current >= value => Ok(false),
                _ => self.set(key, value, ttl).await.map(|()| true),
            }
        }
    }

    /// Stores `value` under `key` (expiring after `ttl`) unless the bytes already there
    /// sort after `after` and not after `up_to`, each compared byte by byte over its own
    /// length ([`sorts_within`]). Answers whether it stored.
    ///
    /// A write whose bounds are its own time plus a little and plus a lot (big-endian
    /// times, say) cannot replace what was written well after it: a write sent to a
    /// server that stalled, and run when the server resumed, lands on a newer value as a
    /// no-op. What is there from far ahead (a clock years off) is replaced all the same.
    ///
    /// The default reads, then writes, like [`set_if_greater`](Self::set_if_greater)'s.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use stratacache_tier::ByteStore;
    /// use stratacache_tier::mock::MemoryStore;
    ///
    /// # futures::executor::block_on(async {
    /// let store = MemoryStore::new();
    /// store.set("t", Bytes::from_static(b"\x09 newer"), None).await?;
    /// let late = Bytes::from_static(b"\x05 older");
    /// assert!(!store.set_unless_within("t", late, None, b"\x07", b"\x0f").await?, "kept out");
    /// let same_time = Bytes::from_static(b"\x09 again");
    /// assert!(store.set_unless_within("t", same_time, None, b"\x09", b"\x11").await?);
    /// assert_eq!(store.raw("t"), Some(Bytes::from_static(b"\x09 again")));
    /// let from_far_ahead = Bytes::from_static(b"\x01 stands no more");
    /// assert!(store.set_unless_within("t", from_far_ahead, None, b"\x03", b"\x05").await?);
    /// # Ok::<(), stratacache_tier::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set).
    fn set_unless_within(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        after: &[u8],
        up_to: &[u8],
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        async move {
            match self.get(key).await? {
                Some(current) if sorts_within(&current, after, up_to) => Ok(false),
                _ => self.set(key, value, ttl).await.map(|()| true),
            }
        }
    }

    /// The largest value the store accepts, when it has a limit; values over it are
    /// rejected before they are sent.
    fn max_value_size(&self) -> Option<usize> {
        None
    }

    /// The namespace the store prefixes its keys with (empty when it has none). An
    /// encrypting codec binds every ciphertext to it, so bytes copied from another
    /// cache's namespace never decrypt.
    fn namespace(&self) -> &str {
        ""
    }
}

/// Whether `current` sorts after `after` and not after `up_to`, each compared byte by
/// byte over its own length: the rule of [`ByteStore::set_unless_within`], for stores
/// that compare on the client.
///
/// ```
/// use stratacache_tier::sorts_within;
///
/// assert!(sorts_within(b"\x05 value", b"\x03", b"\x07"));
/// assert!(!sorts_within(b"\x05 value", b"\x05", b"\x07"), "equal: not after");
/// assert!(!sorts_within(b"\x09 value", b"\x03", b"\x07"), "past the upper bound");
/// ```
#[must_use]
pub fn sorts_within(current: &[u8], after: &[u8], up_to: &[u8]) -> bool {
    let sorts_after = |bound: &[u8]| current.get(..bound.len()).unwrap_or(current) > bound;
    sorts_after(after) && !sorts_after(up_to)
}

/// A store shared behind an `Arc` (one client for several caches) is a store.
impl<S: ByteStore> ByteStore for std::sync::Arc<S> {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, Error>> + Send {
        S::get(self, key)
    }

    fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        S::set(self, key, value, ttl)
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<(), Error>> + Send {
        S::delete(self, key)
    }

    fn clear(&self) -> impl Future<Output = Result<(), Error>> + Send {
        S::clear(self)
    }

    fn get_many(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>, Error>> + Send {
        S::get_many(self, keys)
    }

    fn get_each(
        &self,
        keys: &[&str],
    ) -> impl Future<Output = Vec<Result<Option<Bytes>, Error>>> + Send {
        S::get_each(self, keys)
    }

    fn set_many(
        &self,
        items: &[(&str, Bytes, Option<Duration>)],
    ) -> impl Future<Output = Result<(), Error>> + Send {
        S::set_many(self, items)
    }

    fn set_if_greater(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        S::set_if_greater(self, key, value, ttl)
    }

    fn set_unless_within(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        after: &[u8],
        up_to: &[u8],
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        S::set_unless_within(self, key, value, ttl, after, up_to)
    }

    fn max_value_size(&self) -> Option<usize> {
        S::max_value_size(self)
    }

    fn namespace(&self) -> &str {
        S::namespace(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;

    /// A store with only the required methods: the batch defaults are what is tested.
    #[derive(Default)]
    struct Map(Mutex<HashMap<String, Bytes>>);

    impl ByteStore for Map {
        async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        async fn set(&self, key: &str, value: Bytes, _ttl: Option<Duration>) -> Result<(), Error> {
            self.0.lock().unwrap().insert(key.to_string(), value);
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<(), Error> {
            self.0.lock().unwrap().remove(key);
            Ok(())
        }
        async fn clear(&self) -> Result<(), Error> {
            self.0.lock().unwrap().clear();
            Ok(())
        }
    }

    #[test]
    fn the_default_register_keeps_the_greater_value_byte_by_byte() {
        let store = Map::default();
        futures::executor::block_on(async {
            let set =
                |bytes: &'static [u8]| store.set_if_greater("k", Bytes::from_static(bytes), None);
            set(b"\x01\x00").await.unwrap();
            set(b"\x00\xff").await.unwrap(); // sorts first though its last byte is larger
            assert_eq!(
                store.get("k").await.unwrap(),
                Some(Bytes::from_static(b"\x01\x00"))
            );
            set(b"\x01\x00\x00").await.unwrap(); // a longer value with the same start is greater
            assert_eq!(
                store.get("k").await.unwrap(),
                Some(Bytes::from_static(b"\x01\x00\x00"))
            );
        });
    }

    #[test]
    fn batch_defaults_answer_in_order_key_by_key() {
        let store = Map::default();
        futures::executor::block_on(async {
            let items = [
                ("a", Bytes::from_static(b"1"), None),
                ("c", Bytes::from_static(b"3"), None),
            ];
            store.set_many(&items).await.unwrap();
            let values = store.get_many(&["a", "b", "c"]).await.unwrap();
            assert_eq!(
                values,
                vec![
                    Some(Bytes::from_static(b"1")),
                    None,
                    Some(Bytes::from_static(b"3"))
                ]
            );
        });
    }
}
