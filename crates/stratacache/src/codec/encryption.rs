//! Client-side encryption of what a remote tier stores (feature `encryption`): AES-256-GCM
//! from `ring` (already in the tree through rustls; hardware AES where the CPU has it,
//! audited, and it brings HKDF and HMAC too), keys derived per namespace with
//! HKDF-SHA256, and keyed hashing of store keys with HMAC-SHA256.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use stratacache_tier::{Error, ErrorKind};
use zeroize::Zeroizing;

use super::envelope::Reader;

/// The salt of every derivation: a fixed label, so a key derived here is never the
/// key of another scheme.
const SALT: &[u8] = b"stratacache/v1";

/// A 256-bit master key: zeroized when dropped, never printed.
#[derive(Clone)]
struct MasterKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Encryption of a [`Remote`](crate::Remote) tier's entries (feature `encryption`).
///
/// Values (with their tags and, for long or hashed keys, the full key) are sealed with
/// AES-256-GCM under a key derived from a master key and the store's namespace
/// (HKDF-SHA256), with a random 96-bit nonce. The associated data binds each ciphertext
/// to the namespace, its store key and the envelope's clear head, so bytes copied under
/// another key, into another cache's namespace, or with a changed TTL, never decrypt.
/// Each entry names the id of the key that sealed it: entries are sealed with the
/// current key and opened with any key given, so keys rotate without a flush: first give
/// every replica the new key to open with ([`also_open_with`](Self::also_open_with)),
/// then make it the current one (a replica that cannot open an entry deletes it). A key
/// seals at most 2³² entries with random nonces (NIST's bound): rotate well before, say
/// monthly at 1 000 writes/s.
///
/// What fails to open (tampered, truncated, unknown key id, wrong master key, plain
/// bytes where sealed ones belong) is an [`ErrorKind::Integrity`] error: a miss
/// counted in [`CacheStats::integrity_failures`](crate::CacheStats::integrity_failures),
/// and the bytes are deleted.
///
/// ```
/// use stratacache::Encryption;
///
/// // Key material comes from your secret store; here, fixed bytes.
/// let encryption = Encryption::new(2, [7; 32])
///     .also_open_with(1, [6; 32]) // the key before rotation: old entries stay readable
///     .hash_keys(); // the store sees HMACs, not identifiers
/// assert!(!format!("{encryption:?}").contains('7'), "no key material in Debug");
/// ```
#[derive(Clone, Debug)]
pub struct Encryption {
    current: (u32, MasterKey),
    older: Vec<(u32, MasterKey)>,
    hash_keys: bool,
}

impl Encryption {
    /// Seals with `master_key`, named `key_id` in every entry it seals.
    #[must_use]
    pub fn new(key_id: u32, master_key: [u8; 32]) -> Self {
        Self {
            current: (key_id, MasterKey(Zeroizing::new(master_key))),
            older: Vec::new(),
            hash_keys: false,
        }
    }

    /// Also opens entries sealed with `master_key` under `key_id` (a key being rotated
    /// out); never seals with it.
    #[must_use]
    pub fn also_open_with(mut self, key_id: u32, master_key: [u8; 32]) -> Self {
        self.older
            .push((key_id, MasterKey(Zeroizing::new(master_key))));
        self
    }

    /// Stores keys as a keyed hash (HMAC-SHA256 under a key derived from the current
    /// master key and the namespace): the store never sees your identifiers. The full
    /// key travels inside the sealed body and is checked on every read. Tag markers'
    /// keys are hashed the same way. Changing the current master key changes every
    /// store key: with hashing, a rotation starts from an empty shared tier, and during
    /// a rolling rotation replicas on either key do not see each other's entries,
    /// markers or invalidations in it (only through the backplane).
    #[must_use]
    pub const fn hash_keys(mut self) -> Self {
        self.hash_keys = true;
        self
    }

    /// The keys for `namespace`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Config`] when two keys share an id.
    pub(crate) fn derive(&self, namespace: &str) -> Result<Sealer, Error> {
        if namespace.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "encryption binds entries to the store's namespace: this store reports none \
                 (ByteStore::namespace)",
            ));
        }
        let derivation_failed = |_| Error::new(ErrorKind::Config, "key derivation failed");
        let mut keys: Vec<(u32, LessSafeKey)> = Vec::new();
        let mut macs: Vec<(u32, hmac::Key)> = Vec::new();
        for (id, master) in std::iter::once(&self.current).chain(&self.older) {
            if keys.iter().any(|(known, _)| known == id) {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("two encryption keys share the id {id}"),
                ));
            }
            let prk = Salt::new(HKDF_SHA256, SALT).extract(&master.0[..]);
            let info = [b"aead/".as_slice(), namespace.as_bytes()];
            let okm = prk.expand(&info, &AES_256_GCM).map_err(derivation_failed)?;
            keys.push((*id, LessSafeKey::new(UnboundKey::from(okm))));
            let info = [b"macs/".as_slice(), namespace.as_bytes()];
            let okm = prk
                .expand(&info, hmac::HMAC_SHA256)
                .map_err(derivation_failed)?;
            macs.push((*id, hmac::Key::from(okm)));
        }
        let hasher = if self.hash_keys {
            let prk = Salt::new(HKDF_SHA256, SALT).extract(&self.current.1.0[..]);
            let info = [b"keys/".as_slice(), namespace.as_bytes()];
            let okm = prk
                .expand(&info, hmac::HMAC_SHA256)
                .map_err(|_| Error::new(ErrorKind::Config, "key derivation failed"))?;
            Some(hmac::Key::from(okm))
        } else {
            None
        };
        Ok(Sealer {
            namespace: namespace.into(),
            current: self.current.0,
            keys,
            macs,
            hasher,
            random: SystemRandom::new(),
        })
    }
}

/// The derived keys of one namespace: what seals and opens its entries.
pub(crate) struct Sealer {
    namespace: Box<str>,
    current: u32,
    keys: Vec<(u32, LessSafeKey)>,
    /// What authenticates small values stored in clear (tag markers), by key id.
    macs: Vec<(u32, hmac::Key)>,
    hasher: Option<hmac::Key>,
    random: SystemRandom,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("namespace", &self.namespace)
            .field("current", &self.current)
            .field("hash_keys", &self.hasher.is_some())
            .finish_non_exhaustive()
    }
}

fn integrity(what: &str) -> Error {
    Error::new(ErrorKind::Integrity, what.to_string())
}

impl Sealer {
    /// The associated data: the namespace and the store key (each length-prefixed, so
    /// no two pairs read alike), then everything of the envelope before the ciphertext.
    fn aad(&self, store_key: &str, clear: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(8 + self.namespace.len() + store_key.len() + clear.len());
        for part in [self.namespace.as_bytes(), store_key.as_bytes()] {
            aad.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
            aad.extend_from_slice(part);
        }
        aad.extend_from_slice(clear);
        aad
    }

    /// Appends to `out` (which holds the clear head) the key id, a fresh nonce and the
    /// sealed `body`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] when the system's random source fails.
    pub(crate) fn seal(
        &self,
        out: &mut Vec<u8>,
        store_key: &str,
        mut body: Vec<u8>,
    ) -> Result<(), Error> {
        let mut nonce = [0; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| Error::new(ErrorKind::Other, "the system's random source failed"))?;
        out.extend_from_slice(&self.current.to_le_bytes());
        out.extend_from_slice(&nonce);
        let aad = self.aad(store_key, out);
        let key = &self.keys[0].1;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut body,
        )
        .map_err(|_| Error::new(ErrorKind::Other, "sealing failed"))?;
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Opens the sealed body that follows the clear head (`bytes[..head_len]`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Integrity`] for an unknown key id or a body that does not
    /// authenticate.
    pub(crate) fn open(
        &self,
        bytes: &[u8],
        head_len: usize,
        store_key: &str,
    ) -> Result<Vec<u8>, Error> {
        let mut reader = Reader(&bytes[head_len..]);
        let (id, nonce) = (reader.u32(), reader.take(NONCE_LEN));
        let (Ok(id), Ok(nonce)) = (id, nonce) else {
            return Err(integrity("sealed entry truncated"));
        };
        let Some((_, key)) = self.keys.iter().find(|(known, _)| *known == id) else {
            return Err(integrity(&format!(
                "sealed with key id {id}, which this cache does not hold"
            )));
        };
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| integrity("bad nonce"))?;
        let clear_len = head_len + 4 + NONCE_LEN;
        let aad = self.aad(store_key, &bytes[..clear_len]);
        let mut body = reader.0.to_vec();
        let opened = key
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| integrity("sealed entry does not authenticate"))?
            .len();
        body.truncate(opened);
        Ok(body)
    }

    /// A tag (key id, then HMAC-SHA256) authenticating `message` under the current key.
    pub(crate) fn authenticate(&self, message: &[u8]) -> Vec<u8> {
        let mut tag = self.current.to_le_bytes().to_vec();
        tag.extend_from_slice(hmac::sign(&self.macs[0].1, message).as_ref());
        tag
    }

    /// Whether `tag` (from [`authenticate`](Self::authenticate)) authenticates `message`
    /// under any key held (compared in constant time).
    pub(crate) fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        let Some((id, tag)) = tag.split_first_chunk::<4>() else {
            return false;
        };
        let id = u32::from_le_bytes(*id);
        self.macs
            .iter()
            .find(|(known, _)| *known == id)
            .is_some_and(|(_, key)| hmac::verify(key, message, tag).is_ok())
    }

    /// The store key of `encoded` when keys are hashed: `~` and the base64url HMAC.
    pub(crate) fn hash(&self, domain: &[u8], encoded: &[u8]) -> Option<String> {
        let hasher = self.hasher.as_ref()?;
        let mut context = hmac::Context::with_key(hasher);
        context.update(domain);
        context.update(encoded);
        Some(format!(
            "~{}",
            URL_SAFE_NO_PAD.encode(context.sign().as_ref())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_256_gcm_known_answer() {
        // NIST GCM test vector (gcmEncryptExtIV256, Count 0 of the empty-plaintext set):
        // zero key, zero nonce, no plaintext, no associated data.
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0; 32]).unwrap());
        let mut in_out = Vec::new();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0; NONCE_LEN]),
            Aad::empty(),
            &mut in_out,
        )
        .unwrap();
        let expected = [
            0x53, 0x0f, 0x8a, 0xfb, 0xc7, 0x45, 0x36, 0xb9, 0xa9, 0x63, 0xb4, 0xf1, 0xc4, 0xcb,
            0x73, 0x8b,
        ];
        assert_eq!(in_out, expected);
    }

    fn sealed(sealer: &Sealer, key: &str) -> Vec<u8> {
        let mut out = b"HEAD".to_vec();
        sealer.seal(&mut out, key, b"body".to_vec()).unwrap();
        out
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let sealer = Encryption::new(1, [1; 32]).derive("ns").unwrap();
        let bytes = sealed(&sealer, "k");
        assert_eq!(sealer.open(&bytes, 4, "k").unwrap(), b"body");
        for byte in 4..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[byte] ^= 1 << bit;
                let error = sealer.open(&flipped, 4, "k").unwrap_err();
                assert_eq!(error.kind(), ErrorKind::Integrity, "byte {byte} bit {bit}");
            }
        }
        // The clear head is bound too.
        let mut head = bytes.clone();
        head[0] ^= 1;
        assert!(sealer.open(&head, 4, "k").is_err());
        for len in 0..bytes.len() {
            assert!(sealer.open(&bytes[..len.max(4)], 4, "k").is_err() || len >= bytes.len());
        }
    }

    #[test]
    fn bytes_under_another_key_or_namespace_or_master_never_open() {
        let sealer = Encryption::new(1, [1; 32]).derive("ns").unwrap();
        let bytes = sealed(&sealer, "k");
        assert!(sealer.open(&bytes, 4, "other key").is_err());
        let other_cache = Encryption::new(1, [1; 32]).derive("other").unwrap();
        assert!(other_cache.open(&bytes, 4, "k").is_err());
        let wrong_master = Encryption::new(1, [2; 32]).derive("ns").unwrap();
        assert!(wrong_master.open(&bytes, 4, "k").is_err());
        let unknown_id = Encryption::new(9, [1; 32]).derive("ns").unwrap();
        let error = unknown_id.open(&bytes, 4, "k").unwrap_err();
        assert!(error.message().contains("key id 1"));
    }

    #[test]
    fn rotation_opens_old_entries_and_seals_with_the_new_key() {
        let old = Encryption::new(1, [1; 32]).derive("ns").unwrap();
        let bytes = sealed(&old, "k");
        let rotated = Encryption::new(2, [2; 32])
            .also_open_with(1, [1; 32])
            .derive("ns")
            .unwrap();
        assert_eq!(rotated.open(&bytes, 4, "k").unwrap(), b"body");
        let new = sealed(&rotated, "k");
        assert_eq!(u32::from_le_bytes(new[4..8].try_into().unwrap()), 2);
        assert!(
            old.open(&new, 4, "k").is_err(),
            "the old key cannot read the new entry"
        );
        let same_id = Encryption::new(1, [1; 32])
            .also_open_with(1, [2; 32])
            .derive("ns");
        assert_eq!(same_id.unwrap_err().kind(), ErrorKind::Config);
    }

    #[test]
    fn keyed_hashes_depend_on_key_namespace_and_domain() {
        let sealer = Encryption::new(1, [1; 32])
            .hash_keys()
            .derive("ns")
            .unwrap();
        let hashed = sealer.hash(b"k", b"user 7").unwrap();
        assert!(hashed.starts_with('~') && hashed.len() == 44);
        assert_eq!(sealer.hash(b"k", b"user 7").unwrap(), hashed);
        assert_ne!(sealer.hash(b"t", b"user 7").unwrap(), hashed);
        let other = Encryption::new(1, [1; 32])
            .hash_keys()
            .derive("other")
            .unwrap();
        assert_ne!(other.hash(b"k", b"user 7").unwrap(), hashed);
        let plain = Encryption::new(1, [1; 32]).derive("ns").unwrap();
        assert_eq!(plain.hash(b"k", b"user 7"), None);
    }
}
