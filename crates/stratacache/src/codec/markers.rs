//! Tag markers kept in a bytes-level store, beside the entries of the same namespace.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use stratacache_tier::{ByteStore, Error, ErrorKind};

use super::transforms::Transforms;
use crate::erased::BoxFuture;
use crate::tags::{MarkerStore, millis};

/// A marker as written now: its bytes sort as its time does.
const MAGIC: &[u8; 3] = b"SCu";
/// A marker as written before 0.2 (time little-endian), still read. It sorts before
/// every marker written now, so one of those replaces it whatever its time.
const LEGACY_MAGIC: &[u8; 3] = b"SCt";

/// The markers of a [`Remote`](crate::Remote) tier, in its store: `b"SCu"` then the
/// marker's time in ms since the Unix epoch (u64 big-endian), so that the bytes sort as
/// the times do. A marker is written with [`ByteStore::set_if_greater`]: when two
/// instances invalidate one tag at once, the later time stands, whichever write lands
/// last.
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
            let marker = self.encode(&key, at);
            if self.store.set_if_greater(&key, marker.clone(), ttl).await? {
                return Ok(());
            }
            // A later marker stands, unless it is no marker of this cache's (bytes that
            // sort high but do not decode or authenticate): those would block every marker
            // of the tag, and are replaced. (A marker far ahead of every clock is read as
            // at most `MAX_CLOCK_SKEW` ahead of the reader's.)
            let there = self.store.get(&key).await?;
            match (there.as_deref()).and_then(|bytes| self.decode(&key, bytes)) {
                Some(standing) if standing >= at => Ok(()),
                // Refused, yet older: the store gave up under others' writes (memcached's
                // compare-and-swap). Failed, so that the marker is sent again. Not an outage (the store answers): `Other`, so no breaker counts it.
                Some(_) => Err(Error::new(
                    ErrorKind::Other,
                    "the tag's marker was changed under each attempt to write it",
                )),
                None => self.store.set(&key, marker, ttl).await,
            }
        })
    }
}

impl<S> StoreMarkers<S> {
    /// The stored marker: `SCu`, the time in ms (u64 big-endian), and, in an encrypting
    /// tier, a tag binding both to the marker's key (so that nobody without the key can
    /// plant a marker that blocks a tag, or move one).
    fn encode(&self, key: &str, at: SystemTime) -> Bytes {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&millis(at).to_be_bytes());
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
        let millis = match marker.split_at(MAGIC.len()) {
            (magic, millis) if magic == MAGIC => u64::from_be_bytes(millis.try_into().ok()?),
            (magic, millis) if magic == LEGACY_MAGIC => u64::from_le_bytes(millis.try_into().ok()?),
            _ => return None,
        };
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

    #[test]
    fn markers_sort_as_their_times_and_after_legacy_ones_which_still_read() {
        let markers = StoreMarkers {
            store: Arc::new(()),
            transforms: Transforms::default(),
        };
        let at = |ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        let times = [
            0,
            255,
            256,
            1_700_000_000_123,
            1_700_000_000_124,
            u64::MAX >> 1,
        ];
        for pair in times.windows(2) {
            let (earlier, later) = (
                markers.encode("k", at(pair[0])),
                markers.encode("k", at(pair[1])),
            );
            assert!(earlier < later, "{pair:?}");
        }
        let mut legacy = LEGACY_MAGIC.to_vec();
        legacy.extend_from_slice(&1_700_000_000_123_u64.to_le_bytes());
        assert_eq!(markers.decode("k", &legacy), Some(at(1_700_000_000_123)));
        assert!(
            legacy[..] < markers.encode("k", at(0))[..],
            "replaced by any new marker"
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
