//! The versioned envelope around every value in a remote store: a head always in clear
//! (what the entry is and how to read the rest), then a body (the key check, the tags
//! and the payload), in clear or sealed (see `Remote`'s docs for the layout).

use std::time::{Duration, SystemTime};

use stratacache_tier::{Error, ErrorKind, LATE_WRITE_HORIZON, MAX_CLOCK_SKEW, Tags};

const MAGIC: &[u8; 2] = b"SC";
/// The format written: the production time comes first, big-endian, so that the bytes of
/// two entries of one key sort as their times (see `CacheTier::fill`).
const FORMAT_VERSION: u8 = 2;
/// The format written before 0.2 (flags, then the time little-endian), still read.
const LEGACY_FORMAT_VERSION: u8 = 1;
const HAS_TTL: u8 = 0b1;
/// The body starts with the full encoded key.
pub(crate) const HAS_KEY_CHECK: u8 = 0b10;
/// The body carries tags.
pub(crate) const HAS_TAGS: u8 = 0b100;
/// The body is sealed: key id, nonce, then the AEAD ciphertext of the body.
pub(crate) const ENCRYPTED: u8 = 0b1000;
/// The payload is compressed.
pub(crate) const COMPRESSED: u8 = 0b1_0000;
/// No value: the key was removed at the head's time. Read as absent; kept so that a
/// fill of what was read before the removal does not bring it back.
pub(crate) const TOMBSTONE: u8 = 0b10_0000;
const KNOWN_FLAGS: u8 = HAS_TTL | HAS_KEY_CHECK | HAS_TAGS | ENCRYPTED | COMPRESSED | TOMBSTONE;

/// The part of the envelope always in clear.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) cached_at: SystemTime,
    pub(crate) ttl: Option<Duration>,
    pub(crate) schema_version: u32,
    /// The flags above, but [`HAS_TTL`] (set from `ttl`).
    pub(crate) flags: u8,
}

/// What the envelope carries with the value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Body<'a> {
    pub(crate) key_check: Option<&'a [u8]>,
    pub(crate) tags: Tags,
    pub(crate) payload: &'a [u8],
}

/// Writes the head.
pub(crate) fn write_head(out: &mut Vec<u8>, head: &Head) {
    let mut flags = head.flags & !HAS_TTL;
    if head.ttl.is_some() {
        flags |= HAS_TTL;
    }
    out.extend_from_slice(&order(head.cached_at));
    out.push(flags);
    if let Some(ttl) = head.ttl {
        out.extend_from_slice(&millis(ttl).to_le_bytes());
    }
    out.extend_from_slice(&head.schema_version.to_le_bytes());
}

/// Writes the body but its payload, which the caller appends: the key check and the
/// tags the head's flags announce.
pub(crate) fn write_body(out: &mut Vec<u8>, key_check: Option<&[u8]>, tags: &Tags) {
    if let Some(check) = key_check {
        let len = u32::try_from(check.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(check);
    }
    if !tags.is_empty() {
        // Within `Tags`' limits (the cache stores nothing beyond, and the remote tier
        // refuses it): the casts hold.
        let count = u16::try_from(tags.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for tag in tags.iter().take(usize::from(count)) {
            let len = u16::try_from(tag.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&tag.as_bytes()[..usize::from(len)]);
        }
    }
}

/// The flags a body with `key_check` and `tags` needs.
pub(crate) fn body_flags(key_check: Option<&[u8]>, tags: &Tags) -> u8 {
    let mut flags = 0;
    if key_check.is_some() {
        flags |= HAS_KEY_CHECK;
    }
    if !tags.is_empty() {
        flags |= HAS_TAGS;
    }
    flags
}

/// The bounds a write of an entry produced at `cached_at` is stored within
/// ([`ByteStore::set_unless_within`](stratacache_tier::ByteStore::set_unless_within)):
/// the heads of entries produced [`MAX_CLOCK_SKEW`] and [`LATE_WRITE_HORIZON`] later. An
/// entry there produced between the two stands: the write is one sent long ago that
/// landed late (after a server stalled). Within the first, instances whose clocks
/// disagree overwrite each other.
pub(crate) fn late_write_bounds(cached_at: SystemTime) -> ([u8; ORDER_LEN], [u8; ORDER_LEN]) {
    written_after(cached_at, MAX_CLOCK_SKEW)
}

/// The bounds that keep out, of the entries a removal could take, those
/// [newer](stratacache_tier::CacheEntry::is_newer_than) than `than`: produced after it, and within
/// [`LATE_WRITE_HORIZON`] of it.
pub(crate) fn newer_than_bounds(than: SystemTime) -> ([u8; ORDER_LEN], [u8; ORDER_LEN]) {
    written_after(than, Duration::ZERO)
}

/// The heads of entries produced `margin` and [`LATE_WRITE_HORIZON`] after `since`.
fn written_after(since: SystemTime, margin: Duration) -> ([u8; ORDER_LEN], [u8; ORDER_LEN]) {
    let later = |ahead: Duration| order(since.checked_add(ahead).unwrap_or(since));
    (later(margin), later(LATE_WRITE_HORIZON))
}

/// How many bytes of a head sort two entries by time: [`order`].
const ORDER_LEN: usize = MAGIC.len() + 1 + 8;

/// The start of the head of an entry produced at `cached_at`: magic, format, and the
/// time in ms big-endian, so that heads sort as their times.
fn order(cached_at: SystemTime) -> [u8; ORDER_LEN] {
    let since_epoch = cached_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut order = [0; ORDER_LEN];
    order[..MAGIC.len()].copy_from_slice(MAGIC);
    order[MAGIC.len()] = FORMAT_VERSION;
    order[MAGIC.len() + 1..].copy_from_slice(&millis(since_epoch).to_be_bytes());
    order
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn corrupt(what: &str) -> Error {
    Error::new(
        ErrorKind::Codec,
        format!("not a stratacache envelope: {what}"),
    )
}

/// Reads bytes off the front of a slice, failing on truncation.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < len {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let bytes = self.take(2)?;
        Ok(u16::from_le_bytes([bytes[0], bytes[1]]))
    }

    /// Tags, within `Tags`' limits: hostile counts and lengths fail before allocating.
    fn tags(&mut self) -> Result<Tags, Error> {
        let count = usize::from(self.u16()?);
        if count == 0 || count > Tags::MAX_TAGS {
            return Err(corrupt("bad tag count"));
        }
        let mut tags = Vec::with_capacity(count);
        for _ in 0..count {
            let len = usize::from(self.u16()?);
            if len > Tags::MAX_TAG_LEN {
                return Err(corrupt("tag too long"));
            }
            let tag = std::str::from_utf8(self.take(len)?).map_err(|_| corrupt("tag not UTF-8"))?;
            tags.push(tag);
        }
        Ok(Tags::new(tags))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let bytes = self.take(8)?;
        let mut array = [0; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }
}

/// Splits stored bytes into the head and what follows it.
///
/// # Errors
///
/// [`ErrorKind::Codec`] for bytes that are truncated, foreign, or of another format.
pub(crate) fn read_head(bytes: &[u8]) -> Result<(Head, &[u8]), Error> {
    let mut reader = Reader(bytes);
    if reader.take(2).map_err(|_| corrupt("too short"))? != MAGIC {
        return Err(corrupt("unknown magic bytes"));
    }
    let (flags, cached_at) = match reader.u8()? {
        FORMAT_VERSION => {
            let cached_at = u64::from_be_bytes(reader.u64()?.to_le_bytes());
            (reader.u8()?, cached_at)
        }
        LEGACY_FORMAT_VERSION => {
            let flags = reader.u8()?;
            (flags, reader.u64()?)
        }
        version => {
            return Err(Error::new(
                ErrorKind::Codec,
                format!(
                    "envelope format version {version}, this build reads \
                     {LEGACY_FORMAT_VERSION} and {FORMAT_VERSION}"
                ),
            ));
        }
    };
    if flags & !KNOWN_FLAGS != 0 {
        return Err(corrupt("unknown flags"));
    }
    let cached_at = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(cached_at))
        .ok_or_else(|| corrupt("timestamp out of range"))?;
    let ttl = if flags & HAS_TTL == 0 {
        None
    } else {
        Some(Duration::from_millis(reader.u64()?))
    };
    let schema_version = reader.u32()?;
    let head = Head {
        cached_at,
        ttl,
        schema_version,
        flags,
    };
    Ok((head, reader.0))
}

/// Reads a body (in clear, or once opened) as `flags` announce it.
///
/// # Errors
///
/// [`ErrorKind::Codec`] for a truncated or malformed body.
pub(crate) fn read_body(flags: u8, bytes: &[u8]) -> Result<Body<'_>, Error> {
    let mut reader = Reader(bytes);
    let key_check = if flags & HAS_KEY_CHECK == 0 {
        None
    } else {
        let len = reader.u32()? as usize;
        Some(reader.take(len)?)
    };
    let tags = if flags & HAS_TAGS == 0 {
        Tags::none()
    } else {
        reader.tags()?
    };
    Ok(Body {
        key_check,
        tags,
        payload: reader.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(check: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        let tags = Tags::new(["tenant:7", "products"]);
        let head = Head {
            cached_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            ttl: Some(Duration::from_secs(60)),
            schema_version: 7,
            flags: body_flags(check, &tags),
        };
        write_head(&mut out, &head);
        write_body(&mut out, check, &tags);
        out.extend_from_slice(b"payload");
        out
    }

    /// Reads a body in clear.
    fn read(bytes: &[u8]) -> Result<(Head, Body<'_>), Error> {
        let (head, rest) = read_head(bytes)?;
        let body = read_body(head.flags, rest)?;
        Ok((head, body))
    }

    #[test]
    fn round_trip() {
        let bytes = sample(Some(b"key"));
        let (head, body) = read(&bytes).unwrap();
        assert_eq!(
            head.cached_at,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        assert_eq!(head.ttl, Some(Duration::from_secs(60)));
        assert_eq!(head.schema_version, 7);
        assert_eq!(body.key_check, Some(&b"key"[..]));
        assert_eq!(body.tags, Tags::new(["tenant:7", "products"]));
        assert_eq!(body.payload, b"payload");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = sample(Some(b"key"));
        let header_len = bytes.len() - b"payload".len();
        for len in 0..header_len {
            assert_eq!(
                read(&bytes[..len]).unwrap_err().kind(),
                ErrorKind::Codec,
                "len {len}"
            );
        }
    }

    #[test]
    fn foreign_and_future_bytes_are_rejected() {
        assert!(read(b"{\"json\": true}").is_err());
        let mut future = sample(None);
        future[2] = 3;
        assert!(
            read(&future)
                .unwrap_err()
                .message()
                .contains("format version 3")
        );
        let mut flags = sample(None);
        flags[2 + 1 + 8] = 0x80; // a flag from a future build
        assert!(read(&flags).is_err());
    }

    #[test]
    fn the_legacy_format_still_reads() {
        let current = sample(Some(b"key"));
        // Version 1: the flags before the time, the time little-endian.
        let mut legacy = b"SC\x01".to_vec();
        legacy.push(current[2 + 1 + 8]);
        let millis = u64::from_be_bytes(current[3..11].try_into().unwrap());
        legacy.extend_from_slice(&millis.to_le_bytes());
        legacy.extend_from_slice(&current[12..]);
        let (head, body) = read(&legacy).unwrap();
        assert_eq!(
            head.cached_at,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        assert_eq!(head.ttl, Some(Duration::from_secs(60)));
        assert_eq!(body.payload, b"payload");
        assert!(
            legacy < current,
            "a legacy entry sorts before any current one"
        );
    }

    #[test]
    fn entries_sort_as_their_times() {
        let at = |millis: u64| {
            let mut out = Vec::new();
            let head = Head {
                cached_at: SystemTime::UNIX_EPOCH + Duration::from_millis(millis),
                ttl: None,
                schema_version: 1,
                flags: TOMBSTONE,
            };
            write_head(&mut out, &head);
            out
        };
        let times = [0, 1, 255, 256, 1_700_000_000_123, 1_700_000_000_124];
        for pair in times.windows(2) {
            assert!(at(pair[0]) < at(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn absurd_lengths_do_not_allocate_or_panic() {
        let mut bytes = sample(Some(b"k"));
        // Overwrite the key-check length with u32::MAX.
        let at = 2 + 1 + 1 + 8 + 8 + 4;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read(&bytes).is_err());
    }

    #[test]
    fn hostile_tag_counts_and_lengths_are_rejected() {
        let bytes = sample(None);
        // The tags start after the fixed header: magic, version, flags, time, TTL, schema.
        let at = 2 + 1 + 1 + 8 + 8 + 4;
        for count in [0, u16::MAX] {
            let mut hostile = bytes.clone();
            hostile[at..at + 2].copy_from_slice(&count.to_le_bytes());
            assert!(read(&hostile).is_err(), "count {count}");
        }
        let mut long = bytes.clone();
        long[at + 2..at + 4].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(read(&long).is_err());
        let mut not_utf8 = bytes;
        not_utf8[at + 4] = 0xff;
        assert!(read(&not_utf8).is_err());
    }
}
