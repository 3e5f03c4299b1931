//! The versioned envelope around every value in a remote store.

use std::time::{Duration, SystemTime};

use stratacache_tier::{Error, ErrorKind, Tags};

const MAGIC: &[u8; 2] = b"SC";
const FORMAT_VERSION: u8 = 1;
const HAS_TTL: u8 = 0b01;
const HAS_KEY_CHECK: u8 = 0b10;
const HAS_TAGS: u8 = 0b100;

/// What the envelope says besides the payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    pub(crate) cached_at: SystemTime,
    pub(crate) ttl: Option<Duration>,
    pub(crate) schema_version: u32,
    pub(crate) key_check: Option<&'a [u8]>,
    pub(crate) tags: Tags,
}

/// Writes the header; the payload is appended after it.
pub(crate) fn write_header(out: &mut Vec<u8>, header: &Header<'_>) {
    let mut flags = 0;
    if header.ttl.is_some() {
        flags |= HAS_TTL;
    }
    if header.key_check.is_some() {
        flags |= HAS_KEY_CHECK;
    }
    if !header.tags.is_empty() {
        flags |= HAS_TAGS;
    }
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(flags);
    out.extend_from_slice(
        &millis(
            header
                .cached_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        )
        .to_le_bytes(),
    );
    if let Some(ttl) = header.ttl {
        out.extend_from_slice(&millis(ttl).to_le_bytes());
    }
    out.extend_from_slice(&header.schema_version.to_le_bytes());
    if let Some(check) = header.key_check {
        let len = u32::try_from(check.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(check);
    }
    if !header.tags.is_empty() {
        // Within `Tags`' limits (the cache stores nothing beyond, and the remote tier
        // refuses it): the casts hold.
        let count = u16::try_from(header.tags.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for tag in header.tags.iter().take(usize::from(count)) {
            let len = u16::try_from(tag.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&tag.as_bytes()[..usize::from(len)]);
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn corrupt(what: &str) -> Error {
    Error::new(
        ErrorKind::Codec,
        format!("not a stratacache envelope: {what}"),
    )
}

/// Reads bytes off the front of a slice, failing on truncation.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], Error> {
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

    fn u32(&mut self) -> Result<u32, Error> {
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

/// Splits stored bytes into header and payload.
///
/// # Errors
///
/// [`ErrorKind::Codec`] for bytes that are truncated, foreign, or of another format.
pub(crate) fn read(bytes: &[u8]) -> Result<(Header<'_>, &[u8]), Error> {
    let mut reader = Reader(bytes);
    if reader.take(2).map_err(|_| corrupt("too short"))? != MAGIC {
        return Err(corrupt("unknown magic bytes"));
    }
    let version = reader.u8()?;
    if version != FORMAT_VERSION {
        return Err(Error::new(
            ErrorKind::Codec,
            format!("envelope format version {version}, this build reads {FORMAT_VERSION}"),
        ));
    }
    let flags = reader.u8()?;
    if flags & !(HAS_TTL | HAS_KEY_CHECK | HAS_TAGS) != 0 {
        return Err(corrupt("unknown flags"));
    }
    let cached_at = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(reader.u64()?))
        .ok_or_else(|| corrupt("timestamp out of range"))?;
    let ttl = if flags & HAS_TTL == 0 {
        None
    } else {
        Some(Duration::from_millis(reader.u64()?))
    };
    let schema_version = reader.u32()?;
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
    Ok((
        Header {
            cached_at,
            ttl,
            schema_version,
            key_check,
            tags,
        },
        reader.0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(check: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        let header = Header {
            cached_at: SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            ttl: Some(Duration::from_secs(60)),
            schema_version: 7,
            key_check: check,
            tags: Tags::new(["tenant:7", "products"]),
        };
        write_header(&mut out, &header);
        out.extend_from_slice(b"payload");
        out
    }

    #[test]
    fn round_trip() {
        let bytes = sample(Some(b"key"));
        let (header, payload) = read(&bytes).unwrap();
        assert_eq!(
            header.cached_at,
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        assert_eq!(header.ttl, Some(Duration::from_secs(60)));
        assert_eq!(header.schema_version, 7);
        assert_eq!(header.key_check, Some(&b"key"[..]));
        assert_eq!(header.tags, Tags::new(["tenant:7", "products"]));
        assert_eq!(payload, b"payload");
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
        future[2] = 2;
        assert!(
            read(&future)
                .unwrap_err()
                .message()
                .contains("format version 2")
        );
        let mut flags = sample(None);
        flags[3] = 0x80;
        assert!(read(&flags).is_err());
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
