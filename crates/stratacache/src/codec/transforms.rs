//! What happens to an entry's bytes between the codec and the store, in one place:
//! serialize → compress → encrypt on the way in, the reverse on the way out; and how
//! keys become store keys (base64url, a digest when long, or a keyed hash).

#[cfg(feature = "encryption")]
use std::sync::Arc;

use stratacache_tier::{Error, ErrorKind, Tags};

#[cfg(feature = "compression")]
use super::compression::Compression;
#[cfg(feature = "encryption")]
use super::encryption::Sealer;
use super::envelope::{self, Body, COMPRESSED, ENCRYPTED, Head, TOMBSTONE};
use super::key::{StoreKey, marker_key, store_key};

/// The transforms of one remote tier (none by default).
#[derive(Clone, Default)]
pub(crate) struct Transforms {
    #[cfg(feature = "compression")]
    pub(crate) compression: Option<Compression>,
    #[cfg(feature = "encryption")]
    pub(crate) sealer: Option<Arc<Sealer>>,
}

impl Transforms {
    /// The store key of an encoded key.
    pub(crate) fn store_key(&self, encoded: &[u8]) -> StoreKey {
        #[cfg(feature = "encryption")]
        if let Some(text) = self.sealer.as_ref().and_then(|s| s.hash(b"key/", encoded)) {
            // The full key travels in the sealed body: a hash collision reads as a miss.
            return StoreKey {
                text: super::key::KeyText::from(text),
                check: Some(encoded.to_vec()),
            };
        }
        store_key(encoded)
    }

    /// The store key of `tag`'s marker.
    pub(crate) fn marker_key(&self, tag: &str) -> String {
        #[cfg(feature = "encryption")]
        if let Some(hash) = self
            .sealer
            .as_ref()
            .and_then(|s| s.hash(b"tag/", tag.as_bytes()))
        {
            return format!("!t{hash}");
        }
        marker_key(tag)
    }

    /// A tag authenticating `value` stored under `key` in clear (a tag marker), in a
    /// sealing tier; `None` in a plain one.
    pub(crate) fn authenticate(&self, key: &str, value: &[u8]) -> Option<Vec<u8>> {
        #[cfg(feature = "encryption")]
        if let Some(sealer) = &self.sealer {
            return Some(sealer.authenticate(&[key.as_bytes(), b"\0", value].concat()));
        }
        let _ = (key, value);
        None
    }

    /// Whether `tag` authenticates `value` under `key` (from
    /// [`authenticate`](Self::authenticate)): in a plain tier, only an empty tag does.
    pub(crate) fn verify(&self, key: &str, value: &[u8], tag: &[u8]) -> bool {
        #[cfg(feature = "encryption")]
        if let Some(sealer) = &self.sealer {
            return sealer.verify(&[key.as_bytes(), b"\0", value].concat(), tag);
        }
        let _ = (key, value);
        tag.is_empty()
    }

    fn sealed(&self) -> bool {
        #[cfg(feature = "encryption")]
        return self.sealer.is_some();
        #[cfg(not(feature = "encryption"))]
        false
    }

    /// The bytes stored for an entry: `head` (its flags are set here), then the body
    /// (`key`'s check, `tags`, and the payload `encode` writes), compressed and sealed
    /// as configured.
    pub(crate) fn write(
        &self,
        mut head: Head,
        key: &StoreKey,
        tags: &Tags,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
    ) -> Result<Vec<u8>, Error> {
        let check = key.check.as_deref();
        head.flags = envelope::body_flags(check, tags) | (head.flags & TOMBSTONE);
        let mut out = Vec::with_capacity(64);
        if !self.sealed() && !self.compresses() {
            envelope::write_head(&mut out, &head);
            envelope::write_body(&mut out, check, tags);
            encode(&mut out)?;
            return Ok(out);
        }
        let mut payload = Vec::with_capacity(64);
        encode(&mut payload)?;
        if let Some(packed) = self.compress(&payload) {
            payload = packed;
            head.flags |= COMPRESSED;
        }
        let mut body = Vec::with_capacity(payload.len() + 64);
        envelope::write_body(&mut body, check, tags);
        body.extend_from_slice(&payload);
        #[cfg(feature = "encryption")]
        if let Some(sealer) = &self.sealer {
            head.flags |= ENCRYPTED;
            envelope::write_head(&mut out, &head);
            sealer.seal(&mut out, &key.text, body)?;
            return Ok(out);
        }
        envelope::write_head(&mut out, &head);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Reads stored `bytes` under `key`: opens and decompresses them as their head says,
    /// and hands the head and body to `read`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Codec`] for malformed bytes; [`ErrorKind::Integrity`] for a sealed
    /// body that does not open, plain bytes where this tier seals, sealed bytes where it
    /// holds no key, or a payload over the decompression limit.
    pub(crate) fn read<R>(
        &self,
        bytes: &[u8],
        key: &StoreKey,
        read: impl FnOnce(&Head, Body<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let (head, rest) = envelope::read_head(bytes)?;
        let sealed = head.flags & ENCRYPTED != 0;
        if sealed != self.sealed() {
            return Err(Error::new(
                ErrorKind::Integrity,
                if sealed {
                    "an encrypted entry, and this tier holds no key"
                } else {
                    "a plain entry where this tier stores encrypted ones"
                },
            ));
        }
        let opened;
        let body_bytes = if sealed {
            opened = self.open(bytes, bytes.len() - rest.len(), &key.text)?;
            &opened[..]
        } else {
            rest
        };
        let body = envelope::read_body(head.flags, body_bytes)?;
        if head.flags & COMPRESSED == 0 {
            return read(&head, body);
        }
        let payload = self.decompress(body.payload)?;
        read(
            &head,
            Body {
                payload: &payload,
                ..body
            },
        )
    }

    #[cfg(feature = "encryption")]
    fn open(&self, bytes: &[u8], head_len: usize, key: &str) -> Result<Vec<u8>, Error> {
        match &self.sealer {
            Some(sealer) => sealer.open(bytes, head_len, key),
            None => unreachable!("checked by `read`"),
        }
    }

    #[cfg(not(feature = "encryption"))]
    fn open(&self, _: &[u8], _: usize, _: &str) -> Result<Vec<u8>, Error> {
        unreachable!("checked by `read`")
    }

    fn compresses(&self) -> bool {
        #[cfg(feature = "compression")]
        return self.compression.is_some();
        #[cfg(not(feature = "compression"))]
        false
    }

    #[cfg(feature = "compression")]
    fn compress(&self, payload: &[u8]) -> Option<Vec<u8>> {
        self.compression?.compress(payload)
    }

    #[cfg(not(feature = "compression"))]
    fn compress(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }

    /// Decompresses with this tier's limit (the default one when it does not compress:
    /// entries written by another instance that does are still read).
    #[cfg(feature = "compression")]
    fn decompress(&self, stored: &[u8]) -> Result<Vec<u8>, Error> {
        self.compression.unwrap_or_default().decompress(stored)
    }

    #[cfg(not(feature = "compression"))]
    fn decompress(&self, _: &[u8]) -> Result<Vec<u8>, Error> {
        Err(Error::new(
            ErrorKind::Codec,
            "a compressed entry: build with the `compression` feature to read it",
        ))
    }
}

/// Fuzzing, bounded for CI: `STRATACACHE_FUZZ_CASES` cases (default 2 000) each.
#[cfg(test)]
mod fuzz {
    use std::time::{Duration, SystemTime};

    use proptest::prelude::*;

    use super::*;

    fn config() -> ProptestConfig {
        ProptestConfig::with_cases(stratacache_testkit::fuzz_cases())
    }

    /// Every kind of tier: plain, compressing, sealing, both, hashing keys.
    fn tiers() -> Vec<Transforms> {
        let mut all = vec![Transforms::default()];
        #[cfg(feature = "compression")]
        all.push(Transforms {
            compression: Some(Compression::lz4().threshold(8)),
            ..Transforms::default()
        });
        #[cfg(feature = "encryption")]
        for hash in [false, true] {
            let mut encryption = super::super::Encryption::new(1, [5; 32]);
            if hash {
                encryption = encryption.hash_keys();
            }
            all.push(Transforms {
                sealer: Some(Arc::new(encryption.derive("fuzz").unwrap())),
                #[cfg(feature = "compression")]
                compression: Some(Compression::lz4().threshold(8)),
            });
        }
        all
    }

    fn read_all(transforms: &Transforms, bytes: &[u8], key: &StoreKey) -> Result<Vec<u8>, Error> {
        transforms.read(bytes, key, |_, body| Ok(body.payload.to_vec()))
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn any_bytes_read_or_fail_without_panicking(
            bytes in prop::collection::vec(any::<u8>(), 0..300),
            prefix in prop_oneof![Just(vec![]), Just(b"SC\x01".to_vec())],
        ) {
            let mut stored = prefix;
            stored.extend_from_slice(&bytes);
            let key = store_key(b"k");
            for transforms in tiers() {
                let _ = read_all(&transforms, &stored, &key);
            }
        }

        #[test]
        fn entries_round_trip_and_any_damage_is_caught_or_harmless(
            millis in 0..u64::from(u32::MAX),
            ttl in prop::option::of(0..u64::from(u32::MAX)),
            schema in any::<u32>(),
            tags in prop::collection::vec("[a-z:0-9 ]{1,12}", 0..4),
            payload in prop::collection::vec(any::<u8>(), 0..400),
            encoded_key in prop::collection::vec(any::<u8>(), 0..300),
            damage in any::<(usize, u8)>(),
        ) {
            let tags = Tags::new(tags);
            for transforms in tiers() {
                let key = transforms.store_key(&encoded_key);
                let head = Head {
                    cached_at: SystemTime::UNIX_EPOCH + Duration::from_millis(millis),
                    ttl: ttl.map(Duration::from_millis),
                    schema_version: schema,
                    flags: 0,
                };
                let stored = transforms
                    .write(head, &key, &tags, |out| {
                        out.extend_from_slice(&payload);
                        Ok(())
                    })
                    .unwrap();
                let read = transforms.read(&stored, &key, |head, body| {
                    Ok((head.cached_at, head.ttl, head.schema_version, body.key_check.map(<[u8]>::to_vec), body.tags, body.payload.to_vec()))
                });
                let (at, read_ttl, read_schema, check, read_tags, read_payload) = read.unwrap();
                prop_assert_eq!(at, SystemTime::UNIX_EPOCH + Duration::from_millis(millis));
                prop_assert_eq!(read_ttl, ttl.map(Duration::from_millis));
                prop_assert_eq!(read_schema, schema);
                prop_assert_eq!(check, key.check.clone());
                prop_assert_eq!(&read_tags, &tags);
                prop_assert_eq!(&read_payload, &payload);
                // One damaged byte: a sealed entry never reads; any entry never panics.
                let (at, xor) = damage;
                let mut damaged = stored.clone();
                let at = at % damaged.len();
                damaged[at] ^= xor.max(1);
                let result = read_all(&transforms, &damaged, &key);
                #[cfg(feature = "encryption")]
                if transforms.sealer.is_some() {
                    prop_assert!(result.is_err(), "a damaged sealed entry read at byte {}", at);
                }
                let _ = result;
            }
        }

        #[test]
        fn any_key_becomes_a_safe_distinct_store_key(
            a in prop::collection::vec(any::<u8>(), 0..400),
            b in prop::collection::vec(any::<u8>(), 0..400),
        ) {
            for transforms in tiers() {
                let (key_a, key_b) = (transforms.store_key(&a), transforms.store_key(&b));
                prop_assert!(key_a.text.len() <= super::super::key::MAX_KEY_LEN);
                prop_assert!(key_a.text.bytes().all(|byte| byte.is_ascii_graphic()));
                if a != b {
                    prop_assert!(key_a.text != key_b.text || key_a.check != key_b.check);
                }
            }
        }
    }
}
