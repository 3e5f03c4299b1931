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
            let markers = keys.iter().zip(&answers);
            Ok(markers
                .map(|(key, bytes)| self.decode(key, bytes.as_deref()?))
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
            self.store.set(&key, self.encode(&key, at), ttl).await
        })
    }
}

impl<S> StoreMarkers<S> {
    /// The stored marker: `SCt`, the time in ms (u64 LE), and, in an encrypting tier, a
    /// tag binding both to the marker's key (so that nobody without the key can plant a
    /// marker that blocks a tag, or move one).
    fn encode(&self, key: &str, at: SystemTime) -> Bytes {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&millis(at).to_le_bytes());
        if let Some(tag) = self.transforms.authenticate(key, &bytes) {
            bytes.extend_from_slice(&tag);
        }
        Bytes::from(bytes)
    }

    /// A marker's time; `None` for bytes that are not a marker, or not authentic (read
    /// as no marker: bad bytes must not invalidate everything, nor be trusted).
    fn decode(&self, key: &str, bytes: &[u8]) -> Option<SystemTime> {
        let (marker, tag) = bytes.split_at_checked(MAGIC.len() + 8)?;
        if !self.transforms.verify(key, marker, tag) {
            return None;
        }
        let millis = marker.strip_prefix(MAGIC)?;
        let millis = u64::from_le_bytes(millis.try_into().ok()?);
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_foreign_bytes_are_none() {
        let markers = StoreMarkers {
            store: Arc::new(()),
            transforms: Transforms::default(),
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(markers.decode("k", &markers.encode("k", at)), Some(at));
        assert_eq!(markers.decode("k", b"SCt"), None);
        assert_eq!(markers.decode("k", b"garbage!!!!"), None);
        assert_eq!(markers.decode("k", &[0xff; 11]), None);
        let mut longer = markers.encode("k", at).to_vec();
        longer.push(0);
        assert_eq!(
            markers.decode("k", &longer),
            None,
            "a plain tier takes no tag"
        );
    }

    #[cfg(feature = "encryption")]
    #[test]
    fn a_sealed_tiers_markers_cannot_be_planted_or_moved() {
        let sealer = crate::Encryption::new(1, [3; 32]).derive("ns").unwrap();
        let markers = StoreMarkers {
            store: Arc::new(()),
            transforms: Transforms {
                sealer: Some(Arc::new(sealer)),
                ..Transforms::default()
            },
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let stored = markers.encode("k", at);
        assert_eq!(markers.decode("k", &stored), Some(at));
        assert_eq!(
            markers.decode("other", &stored),
            None,
            "moved to another tag"
        );
        let mut later = stored.to_vec();
        later[3] ^= 0x40;
        assert_eq!(markers.decode("k", &later), None, "time changed");
        let plain = StoreMarkers {
            store: Arc::new(()),
            transforms: Transforms::default(),
        };
        assert_eq!(
            markers.decode("k", &plain.encode("k", at)),
            None,
            "planted without the key"
        );
    }
}
