//! Tag markers kept in a bytes-level store, beside the entries of the same namespace.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use stratacache_tier::{ByteStore, Error};

use super::transforms::Transforms;
use crate::erased::BoxFuture;
use crate::tags::{MarkerStore, millis};

const MAGIC: &[u8; 3] = b"SCt";

/// The markers of a [`Remote`](crate::Remote) tier, in its store: `b"SCt"` then the
/// marker's time in ms since the Unix epoch (u64 LE).
pub(crate) struct StoreMarkers<S> {
    pub(crate) store: Arc<S>,
    /// How marker keys are made (hashed, when the tier hashes keys).
    pub(crate) transforms: Transforms,
}

impl<S: ByteStore> MarkerStore for StoreMarkers<S> {
    fn get_many<'a>(
        &'a self,
        tags: &'a [&'a str],
    ) -> BoxFuture<'a, Result<Vec<Option<SystemTime>>, Error>> {
        Box::pin(async move {
            let keys: Vec<String> = tags
                .iter()
                .map(|tag| self.transforms.marker_key(tag))
                .collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let answers = self.store.get_many(&keys).await?;
            Ok(answers
                .iter()
                .map(|bytes| bytes.as_deref().and_then(decode))
                .collect())
        })
    }

    fn set<'a>(
        &'a self,
        tag: &'a str,
        at: SystemTime,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let key = self.transforms.marker_key(tag);
            self.store.set(&key, encode(at), ttl).await
        })
    }
}

fn encode(at: SystemTime) -> Bytes {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&millis(at).to_le_bytes());
    Bytes::from(bytes)
}

/// A marker's time; `None` for bytes that are not a marker (read as no marker: bad
/// bytes must not invalidate everything, nor be trusted).
fn decode(bytes: &[u8]) -> Option<SystemTime> {
    let millis = bytes.strip_prefix(MAGIC)?;
    let millis = u64::from_le_bytes(millis.try_into().ok()?);
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_foreign_bytes_are_none() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(decode(&encode(at)), Some(at));
        assert_eq!(decode(b"SCt"), None);
        assert_eq!(decode(b"garbage!!!!"), None);
        assert_eq!(decode(&[0xff; 11]), None);
    }
}
