//! Keys valid for every backend: base64url of the encoded key, or a digest when long.

use std::fmt;
use std::ops::Deref;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use smallvec::SmallVec;

/// The longest key handed to a store; the store's namespace prefix must fit in the rest
/// of memcached's 250 bytes.
pub(crate) const MAX_KEY_LEN: usize = 200;

/// A key as the store sees it.
pub(crate) struct StoreKey {
    pub(crate) text: KeyText,
    /// The full encoded key, when `text` is a digest of it.
    pub(crate) check: Option<Vec<u8>>,
}

/// The text of a [`StoreKey`]: printable ASCII, kept in place when it is short (as
/// nearly every key is), so that a call to a store allocates nothing for its key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeyText(SmallVec<[u8; KeyText::INLINE]>);

impl KeyText {
    /// The longest text kept in place: a UUID's, in base64url, fits.
    const INLINE: usize = 64;

    /// The text as a `&str`.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("built only from `&str`s and base64url")
    }
}

impl From<&str> for KeyText {
    fn from(text: &str) -> Self {
        Self(SmallVec::from_slice(text.as_bytes()))
    }
}

impl From<String> for KeyText {
    /// Keeps the `String`'s buffer when the text is too long to keep in place.
    fn from(text: String) -> Self {
        Self(SmallVec::from_vec(text.into_bytes()))
    }
}

impl Deref for KeyText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for KeyText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for KeyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

pub(crate) fn store_key(encoded: &[u8]) -> StoreKey {
    let text_len = base64::encoded_len(encoded.len(), false);
    if let Some(text_len) = text_len.filter(|&len| len <= MAX_KEY_LEN) {
        // Into room of the right size, filled in place (`Engine::encode` would allocate
        // a zeroed `String`); every byte is overwritten.
        let mut text = SmallVec::from_elem(b'=', text_len);
        let written = URL_SAFE_NO_PAD.encode_slice(encoded, &mut text);
        debug_assert_eq!(written.ok(), Some(text_len));
        return StoreKey {
            text: KeyText(text),
            check: None,
        };
    }
    StoreKey {
        text: KeyText::from(digest_text("#", encoded)),
        check: Some(encoded.to_vec()),
    }
}

/// The store key of a tag's marker: `!t:` and the tag in base64url, or `!t#` and its
/// SHA-256 when long. Never a cache key: those are base64url, or `#` and a digest.
pub(crate) fn marker_key(tag: &str) -> String {
    let text = URL_SAFE_NO_PAD.encode(tag);
    if text.len() + 3 <= MAX_KEY_LEN {
        return format!("!t:{text}");
    }
    digest_text("!t#", tag.as_bytes())
}

/// `prefix`, then the SHA-256 of `bytes` in lowercase hex.
fn digest_text(prefix: &str, bytes: &[u8]) -> String {
    format!("{prefix}{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_its_prefix_and_sixty_four_lowercase_hex_digits() {
        // SHA-256("abc"), the FIPS 180-2 example: stored keys must not change form.
        assert_eq!(
            digest_text("#", b"abc"),
            "#ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    fn is_safe(key: &str) -> bool {
        key.bytes().all(|byte| byte.is_ascii_graphic()) && key.len() <= MAX_KEY_LEN
    }

    #[test]
    fn hostile_keys_become_safe() {
        for raw in [
            b"with space".to_vec(),
            b"\r\nflush_all\r\n".to_vec(),
            vec![0; 10],
            vec![0xff; 10_000],
        ] {
            let key = store_key(&raw);
            assert!(is_safe(&key.text), "{:?}", key.text);
        }
    }

    #[test]
    fn a_text_in_place_or_not_is_the_base64url_of_the_key() {
        // 48 bytes are 64 characters, the most kept in place; 150 bytes, 200.
        for len in [0_u8, 1, 47, 48, 49, 100, 150] {
            let encoded: Vec<u8> = (0..len).collect();
            let key = store_key(&encoded);
            assert_eq!(key.text, URL_SAFE_NO_PAD.encode(&encoded).as_str(), "{len}");
            assert_eq!(key.check, None);
        }
    }

    #[test]
    fn long_keys_are_digested_and_keep_a_check() {
        let long = vec![7; 1_000];
        let key = store_key(&long);
        assert!(key.text.starts_with('#'));
        assert_eq!(key.check, Some(long));
        let short = store_key(b"abc");
        assert_eq!(short.check, None);
        assert_eq!(short.text, "YWJj");
    }

    #[test]
    fn marker_keys_are_safe_and_never_cache_keys() {
        for tag in ["tenant:7", "with space\r\n", &"x".repeat(5_000)] {
            let key = marker_key(tag);
            assert!(is_safe(&key), "{key:?}");
            assert!(key.starts_with("!t"));
        }
        assert_ne!(marker_key(&"a".repeat(500)), marker_key(&"b".repeat(500)));
    }

    #[test]
    fn encoding_is_stable() {
        assert_eq!(store_key(&[1; 300]).text, store_key(&[1; 300]).text);
        assert_ne!(store_key(&[1; 300]).text, store_key(&[2; 300]).text);
    }
}
