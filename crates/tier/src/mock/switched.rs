//! A byte store in front of another that a test can take down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;

use crate::{ByteStore, Error, ErrorKind};

/// A [`ByteStore`] in front of `S` that a test can take down: every call then fails as
/// unreachable ([`Unavailable`](ErrorKind::Unavailable)), without reaching `S`. It counts
/// the calls made to it. Clones share the switch; two `SwitchedStore`s over clones of one
/// store are two views of it that fail apart (two instances, one cut off).
///
/// ```
/// use bytes::Bytes;
/// use stratacache_tier::mock::{MemoryStore, SwitchedStore};
/// use stratacache_tier::{ByteStore, ErrorKind};
///
/// # futures::executor::block_on(async {
/// let shared = MemoryStore::new();
/// let (a, b) = (SwitchedStore::new(shared.clone()), SwitchedStore::new(shared));
/// a.set_down(true);
/// let refused = a.set("k", Bytes::from_static(b"v"), None).await.unwrap_err();
/// assert_eq!(refused.kind(), ErrorKind::Unavailable);
/// b.set("k", Bytes::from_static(b"v"), None).await?;
/// assert_eq!((a.calls(), b.calls()), (1, 1));
/// # Ok::<(), stratacache_tier::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug, Default)]
pub struct SwitchedStore<S> {
    inner: S,
    down: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
}

impl<S> SwitchedStore<S> {
    /// `inner`, up.
    #[must_use]
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            down: Arc::default(),
            calls: Arc::default(),
        }
    }

    /// Takes the store down (`true`) or brings it back (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// How many calls were made to it, up or down.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The store behind it.
    #[must_use]
    pub const fn inner(&self) -> &S {
        &self.inner
    }

    fn reach(&self) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Unavailable, "the store is down"));
        }
        Ok(())
    }
}

impl<S: ByteStore> ByteStore for SwitchedStore<S> {
    async fn get(&self, key: &str) -> Result<Option<Bytes>, Error> {
        self.reach()?;
        self.inner.get(key).await
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<(), Error> {
        self.reach()?;
        self.inner.set(key, value, ttl).await
    }

    async fn set_if_greater(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, Error> {
        self.reach()?;
        self.inner.set_if_greater(key, value, ttl).await
    }

    async fn set_unless_within(
        &self,
        key: &str,
        value: Bytes,
        ttl: Option<Duration>,
        after: &[u8],
        up_to: &[u8],
    ) -> Result<bool, Error> {
        self.reach()?;
        self.inner
            .set_unless_within(key, value, ttl, after, up_to)
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.reach()?;
        self.inner.delete(key).await
    }

    async fn clear(&self) -> Result<(), Error> {
        self.reach()?;
        self.inner.clear().await
    }

    fn max_value_size(&self) -> Option<usize> {
        self.inner.max_value_size()
    }

    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
}
