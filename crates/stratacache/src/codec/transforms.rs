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
use super::envelope::{self, Body, COMPRESSED, ENCRYPTED, Head};
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
    pub(crate) fn store_key(&self, encoded: Vec<u8>) -> StoreKey {
        #[cfg(feature = "encryption")]
        if let Some(text) = self.sealer.as_ref().and_then(|s| s.hash(b"key/", &encoded)) {
            // The full key travels in the sealed body: a hash collision reads as a miss.
            return StoreKey {
                text,
                check: Some(encoded),
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
        head.flags = envelope::body_flags(check, tags);
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
