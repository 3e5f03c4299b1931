//! Compression of what a remote tier stores (feature `compression`): LZ4 (`lz4_flex`,
//! pure Rust) above a size threshold, with a limit on what a payload may decompress to.

use stratacache_tier::{Error, ErrorKind};

/// LZ4 compression of a [`Remote`](crate::Remote) tier's values (feature
/// `compression`): payloads of at least [`threshold`](Self::threshold) bytes are
/// compressed when that makes them smaller, and flagged in the envelope. A stored
/// payload that claims to decompress past
/// [`max_decompressed_size`](Self::max_decompressed_size) is refused before anything
/// is allocated: an [`ErrorKind::Integrity`] error (a counted, deleted miss).
///
/// ```
/// use stratacache::Compression;
///
/// let compression = Compression::lz4().threshold(1_024).max_decompressed_size(8 << 20);
/// # let _ = compression;
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Compression {
    threshold: usize,
    max_decompressed: usize,
}

impl Compression {
    /// LZ4 above 512 bytes, decompressing to at most 64 MiB.
    #[must_use]
    pub const fn lz4() -> Self {
        Self {
            threshold: 512,
            max_decompressed: 64 << 20,
        }
    }

    /// The smallest payload compressed.
    #[must_use]
    pub const fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// The most a stored payload may decompress to.
    #[must_use]
    pub const fn max_decompressed_size(mut self, bytes: usize) -> Self {
        self.max_decompressed = bytes;
        self
    }

    /// `payload` compressed (the uncompressed length as u32 LE, then the LZ4 block),
    /// when it is over the threshold and comes out smaller.
    pub(crate) fn compress(&self, payload: &[u8]) -> Option<Vec<u8>> {
        if payload.len() < self.threshold {
            return None;
        }
        let len = u32::try_from(payload.len()).ok()?;
        let mut out = len.to_le_bytes().to_vec();
        out.extend_from_slice(&lz4_flex::block::compress(payload));
        (out.len() < payload.len()).then_some(out)
    }

    /// The payload `stored` decompresses to.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Integrity`] past the limit, [`ErrorKind::Codec`] for a malformed
    /// block.
    pub(crate) fn decompress(&self, stored: &[u8]) -> Result<Vec<u8>, Error> {
        let Some((len, block)) = stored.split_first_chunk::<4>() else {
            return Err(Error::new(ErrorKind::Codec, "compressed payload truncated"));
        };
        let len = u32::from_le_bytes(*len) as usize;
        // LZ4 expands at most 255 times (plus a little): a claim beyond that is a lie,
        // refused before anything is allocated for it.
        if len > self.max_decompressed || len > block.len().saturating_mul(255).saturating_add(16) {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "payload claims {len} bytes decompressed, over the limit of {}",
                    self.max_decompressed
                ),
            ));
        }
        let out = lz4_flex::block::decompress(block, len)
            .map_err(|error| Error::from_source(ErrorKind::Codec, error))?;
        if out.len() != len {
            return Err(Error::new(
                ErrorKind::Codec,
                "compressed payload of the wrong size",
            ));
        }
        Ok(out)
    }
}

impl Default for Compression {
    fn default() -> Self {
        Self::lz4()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_payloads_round_trip_and_small_ones_are_left_alone() {
        let compression = Compression::lz4();
        let json = br#"{"id":7,"name":"Ada Lovelace","roles":["admin","author"]}"#.repeat(40);
        let packed = compression.compress(&json).expect("compressible");
        assert!(
            packed.len() < json.len() / 4,
            "{} of {}",
            packed.len(),
            json.len()
        );
        assert_eq!(compression.decompress(&packed).unwrap(), json);
        assert!(compression.compress(b"short").is_none());
        let random: Vec<u8> = (0..4_096).map(|_| fastrand::u8(..)).collect();
        assert!(compression.compress(&random).is_none(), "incompressible");
    }

    #[test]
    fn a_bomb_is_refused_before_allocating() {
        let compression = Compression::lz4().max_decompressed_size(1 << 20);
        let huge = vec![0; 2 << 20];
        let bomb = Compression::lz4().compress(&huge).unwrap();
        assert!(bomb.len() < 16 << 10, "2 MiB of zeros packs small");
        let error = compression.decompress(&bomb).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Integrity);
        let mut lying = bomb.clone();
        lying[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            compression.decompress(&lying).unwrap_err().kind(),
            ErrorKind::Integrity
        );
        // Within the limit, but more than LZ4 could expand those few bytes to.
        let tall_tale = [&(1_000_000_u32).to_le_bytes()[..], b"\x1f\0"].concat();
        let error = Compression::lz4().decompress(&tall_tale).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Integrity);
        for garbage in [&b""[..], b"\x01", b"\x10\0\0\0garbage"] {
            assert!(compression.decompress(garbage).is_err());
        }
    }
}
