//! The memcached meta protocol, as much of it as the tier needs: `mg`, `ms`, `md`, `ma`,
//! `mn`, and `flush_all`. Requests are written into a buffer; replies are parsed from a
//! buffered reader with a bound on every length, so a confused or hostile peer yields an
//! error, never a panic or an unbounded allocation.

use std::fmt::Display;
use std::io::Write;

use bytes::Bytes;
use stratacache_tier::{Error, ErrorKind};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// No reply line is longer than this.
const MAX_LINE: usize = 8 * 1024;

/// No item is larger than this (memcached's own limit on `-I`): a value announced larger
/// is a confused peer, not a value to read past.
const MAX_ITEM: usize = 1 << 30;

/// memcached's answer to `ma` on an item that is not a number: the one `CLIENT_ERROR`
/// that leaves the stream in step.
const NOT_A_NUMBER: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value";

/// The longest key memcached accepts, in bytes.
pub(crate) const MAX_KEY: usize = 250;

/// A key memcached accepts: 1 to 250 bytes of printable ASCII, no spaces.
pub(crate) fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(invalid_key(key.len()));
    }
    Ok(())
}

/// The error for a key of `len` bytes memcached would not accept.
pub(crate) fn invalid_key(len: usize) -> Error {
    Error::new(
        ErrorKind::Rejected,
        format!(
            "not a valid memcached key ({len} bytes): printable ASCII without spaces, at most {MAX_KEY}"
        ),
    )
}

// Requests are written into a `Vec`, whose `io::Write` never fails.

pub(crate) fn get(out: &mut Vec<u8>, key: impl Display) {
    let _ = write!(out, "mg {key} v\r\n");
}

pub(crate) fn get_ttl(out: &mut Vec<u8>, key: impl Display) {
    let _ = write!(out, "mg {key} t\r\n");
}

/// Stores `value` under `key`, to expire at `exptime` (from [`crate::exptime::exptime`]).
pub(crate) fn set(out: &mut Vec<u8>, key: impl Display, value: &[u8], exptime: u32) {
    let _ = write!(out, "ms {key} {} T{exptime}\r\n", value.len());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn delete(out: &mut Vec<u8>, key: impl Display) {
    let _ = write!(out, "md {key}\r\n");
}

/// Adds `delta` to the number under `key`, creating it at `initial` when missing; the
/// reply carries the value.
pub(crate) fn add(out: &mut Vec<u8>, key: &str, initial: u128, delta: u64) {
    let _ = write!(out, "ma {key} N0 J{initial} D{delta} v\r\n");
}

/// Asks for `key`'s value and compare-and-swap token: [`Reply::ValueAndCas`].
pub(crate) fn get_with_cas(out: &mut Vec<u8>, key: impl Display) {
    let _ = write!(out, "mg {key} v c\r\n");
}

/// Asks for `key`'s compare-and-swap token alone (`HD c<token>`), not its value.
pub(crate) fn get_cas(out: &mut Vec<u8>, key: impl Display) {
    let _ = write!(out, "mg {key} c\r\n");
}

/// Stores `value` under `key`, to expire at `exptime`, only if the item still has `cas`
/// as its token (else `EX`, or `NF` when it is gone).
pub(crate) fn set_if_unchanged(
    out: &mut Vec<u8>,
    key: impl Display,
    value: &[u8],
    exptime: u32,
    cas: u64,
) {
    let _ = write!(out, "ms {key} {} T{exptime} C{cas}\r\n", value.len());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Stores `value` under `key`, to expire at `exptime`, only if there is no such item
/// (else `NS`).
pub(crate) fn set_if_absent(out: &mut Vec<u8>, key: impl Display, value: &[u8], exptime: u32) {
    let _ = write!(out, "ms {key} {} T{exptime} ME\r\n", value.len());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub(crate) fn noop(out: &mut Vec<u8>) {
    out.extend_from_slice(b"mn\r\n");
}

pub(crate) fn flush_all(out: &mut Vec<u8>) {
    out.extend_from_slice(b"flush_all\r\n");
}

/// One reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `VA <len> <flags>` and its data.
    Value(Bytes),
    /// `VA <len> c<token>` and its data: a value asked with its compare-and-swap token.
    ValueAndCas(Bytes, u64),
    /// `HD <flags>`: done, the flags as sent back.
    Done(String),
    /// `EN`, `NF`: no such item.
    Missing,
    /// `NS`: not stored.
    NotStored,
    /// `EX`: not stored, the item changed since its compare-and-swap token was read.
    Exists,
    /// `ma` on an item that does not hold a number: memcached's `CLIENT_ERROR` for it,
    /// which concerns that request only.
    NotANumber,
    /// `MN`: the end of a pipelined batch.
    NoOp,
    /// `OK` (to `flush_all`).
    Ok,
    /// `SERVER_ERROR …`: this request failed on the server; the line as sent.
    ServerError(String),
    /// A value of this many bytes, over what the request accepts (a foreign writer's):
    /// read past, not kept.
    TooLarge(usize),
}

impl Reply {
    /// This reply as the error it is, if it is one: a `SERVER_ERROR`.
    pub(crate) fn into_result(self) -> Result<Self, Error> {
        match self {
            Self::ServerError(line) => Err(Error::new(
                if line.contains("too large") {
                    ErrorKind::Rejected
                } else {
                    ErrorKind::Other
                },
                format!("memcached: {line}"),
            )),
            // Not this client's to read: bad bytes, as foreign ones are.
            Self::TooLarge(len) => Err(Error::new(
                ErrorKind::Codec,
                format!("memcached holds a value of {len} bytes there, over this client's limit"),
            )),
            reply => Ok(reply),
        }
    }
}

/// The number a reply's flag `letter` carries (`c` the compare-and-swap token, `t` the
/// TTL), among its `flags`.
pub(crate) fn flag<'a>(flags: impl IntoIterator<Item = &'a str>, letter: char) -> Option<u64> {
    flags
        .into_iter()
        .find_map(|flag| flag.strip_prefix(letter)?.parse().ok())
}

/// Reads one reply, accepting values up to `max_value` bytes.
pub(crate) async fn read_reply<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max_value: usize,
) -> Result<Reply, Error> {
    let line = read_line(reader).await?;
    let mut words = line.split(' ');
    match words.next().unwrap_or_default() {
        "VA" => {
            let len: usize = words
                .next()
                .and_then(|len| len.parse().ok())
                .ok_or_else(|| protocol_error(&line))?;
            if len > MAX_ITEM {
                return Err(protocol_error(&line));
            }
            if len > max_value {
                // Read past it, keeping nothing, so that the stream stays in step and the
                // connection's other callers are not failed with this one.
                let skipped =
                    tokio::io::copy(&mut (&mut *reader).take(len as u64), &mut tokio::io::sink())
                        .await
                        .map_err(io_error)?;
                let mut end = [0; 2];
                if skipped != len as u64 {
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        "memcached closed the connection",
                    ));
                }
                reader.read_exact(&mut end).await.map_err(io_error)?;
                if end != *b"\r\n" {
                    return Err(protocol_error("value not terminated by CRLF"));
                }
                return Ok(Reply::TooLarge(len));
            }
            let mut data = vec![0; len + 2];
            reader.read_exact(&mut data).await.map_err(io_error)?;
            if !data.ends_with(b"\r\n") {
                return Err(protocol_error("value not terminated by CRLF"));
            }
            data.truncate(len);
            let data = Bytes::from(data);
            // The flags the request asked for: a `c` one carries the item's token.
            let cas = flag(words, 'c');
            Ok(match cas {
                Some(cas) => Reply::ValueAndCas(data, cas),
                None => Reply::Value(data),
            })
        }
        "HD" => Ok(Reply::Done(words.collect::<Vec<_>>().join(" "))),
        "EN" | "NF" => Ok(Reply::Missing),
        "NS" => Ok(Reply::NotStored),
        "EX" => Ok(Reply::Exists),
        _ if line == NOT_A_NUMBER => Ok(Reply::NotANumber),
        "MN" => Ok(Reply::NoOp),
        "OK" => Ok(Reply::Ok),
        // The server refused this one request (out of memory, an item too large) and
        // swallowed what came with it: the stream stays in step.
        "SERVER_ERROR" => Ok(Reply::ServerError(line)),
        // The server could not parse what it was sent: what it reads next is unknown.
        _ => Err(Error::new(ErrorKind::Other, format!("memcached: {line}"))),
    }
}

async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<String, Error> {
    let mut line = Vec::with_capacity(64);
    let mut limited = (&mut *reader).take(MAX_LINE as u64);
    let read = limited
        .read_until(b'\n', &mut line)
        .await
        .map_err(io_error)?;
    if read == 0 {
        return Err(Error::new(
            ErrorKind::Unavailable,
            "memcached closed the connection",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(protocol_error("reply line too long or unterminated"));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| protocol_error("reply line is not UTF-8"))
}

fn protocol_error(what: &str) -> Error {
    Error::new(
        ErrorKind::Other,
        format!("memcached protocol error: {what}"),
    )
}

pub(crate) fn io_error(error: std::io::Error) -> Error {
    Error::from_source(ErrorKind::Unavailable, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Reply, Error> {
        let mut reader = tokio::io::BufReader::new(bytes);
        read_reply(&mut reader, 1024).await
    }

    #[tokio::test]
    async fn replies_parse() {
        assert_eq!(
            parse(b"VA 3\r\nabc\r\n").await.unwrap(),
            Reply::Value(Bytes::from_static(b"abc"))
        );
        assert_eq!(
            parse(b"VA 0\r\n\r\n").await.unwrap(),
            Reply::Value(Bytes::new())
        );
        assert_eq!(
            parse(b"HD t59\r\n").await.unwrap(),
            Reply::Done("t59".into())
        );
        assert_eq!(parse(b"EN\r\n").await.unwrap(), Reply::Missing);
        assert_eq!(parse(b"NF\r\n").await.unwrap(), Reply::Missing);
        assert_eq!(parse(b"MN\r\n").await.unwrap(), Reply::NoOp);
        let too_large = parse(b"SERVER_ERROR object too large for cache\r\n")
            .await
            .unwrap();
        assert_eq!(
            too_large.into_result().unwrap_err().kind(),
            ErrorKind::Rejected
        );
        let out_of_memory = parse(b"SERVER_ERROR out of memory storing object\r\n")
            .await
            .unwrap();
        assert_eq!(
            out_of_memory.into_result().unwrap_err().kind(),
            ErrorKind::Other
        );
        assert!(
            parse(b"CLIENT_ERROR bad command line format\r\n")
                .await
                .is_err(),
            "out of step: an error that ends the connection"
        );
        assert_eq!(parse(b"EX\r\n").await.unwrap(), Reply::Exists);
        assert_eq!(
            parse(b"VA 1 c42\r\nx\r\n").await.unwrap(),
            Reply::ValueAndCas(Bytes::from_static(b"x"), 42)
        );
        assert_eq!(
            parse(b"VA 1 t59\r\nx\r\n").await.unwrap(),
            Reply::Value(Bytes::from_static(b"x")),
            "a token only when asked for"
        );
        let not_a_number = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
        assert_eq!(parse(not_a_number).await.unwrap(), Reply::NotANumber);
    }

    #[tokio::test]
    async fn a_value_over_the_requests_limit_is_read_past_and_the_stream_stays_in_step() {
        let mut stream = b"VA 2000\r\n".to_vec();
        stream.extend_from_slice(&[b'x'; 2000]);
        stream.extend_from_slice(b"\r\nVA 1\r\ny\r\n");
        let mut reader = tokio::io::BufReader::new(&stream[..]);
        let first = read_reply(&mut reader, 1024).await.unwrap();
        assert_eq!(first, Reply::TooLarge(2000));
        assert_eq!(first.into_result().unwrap_err().kind(), ErrorKind::Codec);
        assert_eq!(
            read_reply(&mut reader, 1024).await.unwrap(),
            Reply::Value(Bytes::from_static(b"y"))
        );
        let mut cut = b"VA 2000\r\n".to_vec();
        cut.extend_from_slice(&[b'x'; 10]);
        assert!(
            parse(&cut).await.is_err(),
            "the connection closed mid-value"
        );
    }

    #[tokio::test]
    async fn hostile_replies_are_errors() {
        for bytes in [
            &b"VA 99999999999\r\n"[..],
            b"VA 5\r\nabc",
            b"VA 3\r\nabcXY",
            b"VA x\r\n",
            b"",
            b"no newline at all",
            b"WAT\r\n",
        ] {
            assert!(
                parse(bytes).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let long = vec![b'A'; MAX_LINE * 2];
        assert!(parse(&long).await.is_err());
    }

    #[test]
    fn requests_are_well_formed() {
        let mut out = Vec::new();
        set(&mut out, "k", b"v1", 2);
        get(&mut out, "k");
        delete(&mut out, "k");
        noop(&mut out);
        assert_eq!(out, b"ms k 2 T2\r\nv1\r\nmg k v\r\nmd k\r\nmn\r\n");
    }

    #[test]
    fn keys_are_checked() {
        assert!(check_key("ns:0:abc").is_ok());
        for bad in ["", "has space", "ctl\u{1}", &"x".repeat(251), "ünicode"] {
            assert_eq!(
                check_key(bad).unwrap_err().kind(),
                ErrorKind::Rejected,
                "{bad:?}"
            );
        }
    }

    /// Fuzzing, bounded for CI: `STRATACACHE_FUZZ_CASES` cases (default 2 000).
    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        fn config() -> ProptestConfig {
            ProptestConfig::with_cases(stratacache_testkit::fuzz_cases())
        }

        fn parse_now(bytes: &[u8]) -> Result<Reply, Error> {
            futures::executor::block_on(parse(bytes))
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn any_bytes_parse_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
                let _ = parse_now(&bytes);
            }

            #[test]
            fn value_replies_with_any_length_and_data(
                len in prop_oneof![0..2_048_usize, any::<usize>()],
                data in prop::collection::vec(any::<u8>(), 0..1_100),
                word in prop_oneof![
                    Just("VA".to_string()),
                    Just("HD".to_string()),
                    Just("SERVER_ERROR".to_string()),
                    "[A-Z]{1,4}",
                ],
            ) {
                let mut bytes = format!("{word} {len}\r\n").into_bytes();
                bytes.extend_from_slice(&data);
                if let Ok(Reply::Value(value)) = parse_now(&bytes) {
                    // A value is returned only as long as announced, within the limit.
                    prop_assert_eq!(value.len(), len);
                    prop_assert!(len <= 1024);
                    prop_assert_eq!(&bytes[bytes.len() - data.len()..][..len], &value[..]);
                }
            }
        }
    }
}
