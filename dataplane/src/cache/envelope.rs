//! The versioned envelope every tier stores.
//!
//! One binary layout for L1, L2 and L3 so a value moves between tiers without
//! re-encoding, and the reader can serve the payload bytes as they are. The
//! version (assigned by the writer, monotonic per key) is what lets every tier
//! refuse to replace a newer value with an older one; the checksum turns a
//! corrupt value into a detectable miss instead of garbage on the wire.
//!
//! Layout (big-endian): `"CB"` magic, schema (u8), version (u64),
//! produced_at in Unix milliseconds (i64), CRC-32 of the payload (u32),
//! then the payload (pre-serialized JSON).

use bytes::{BufMut, Bytes, BytesMut};
use std::any::Any;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 2] = b"CB";
/// Bumped when the layout changes; readers treat other schemas as a miss.
pub const SCHEMA: u8 = 1;
const HEADER_LEN: usize = 2 + 1 + 8 + 8 + 4;

/// A cached value with the facts needed to serve it honestly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub version: u64,
    /// When the writer produced this version, in Unix milliseconds.
    pub produced_at_ms: i64,
    /// JSON, served to clients byte for byte.
    pub payload: Bytes,
    /// What a consumer derived from exactly this version, made once.
    pub memo: Memo,
}

/// A slot for something derived once from one version of a value: the
/// reader keeps the pre-rendered HTTP response of the version here, so each
/// request for it reuses that work instead of repeating it. Type-erased so
/// the cache knows nothing of HTTP. It is not part of the value: a clone
/// starts empty, and two envelopes compare equal whatever their memos hold.
#[derive(Default)]
pub struct Memo(OnceLock<Box<dyn Any + Send + Sync>>);

impl Memo {
    /// The memo, made by `make` on first use. `None` only if another
    /// consumer already stored a different type here.
    pub fn get_or_init<T: Any + Send + Sync>(&self, make: impl FnOnce() -> T) -> Option<&T> {
        self.0.get_or_init(|| Box::new(make())).downcast_ref()
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo::default()
    }
}

impl PartialEq for Memo {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Memo {}

impl std::fmt::Debug for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Memo(set)"
        } else {
            "Memo(empty)"
        })
    }
}

/// Why stored bytes could not be read back as an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("value shorter than the envelope header")]
    Truncated,
    #[error("value does not start with the envelope magic")]
    BadMagic,
    #[error("envelope schema {0} is not understood by this build")]
    UnknownSchema(u8),
    #[error("payload checksum mismatch")]
    Checksum,
}

impl Envelope {
    pub fn new(version: u64, produced_at_ms: i64, payload: impl Into<Bytes>) -> Self {
        Envelope {
            version,
            produced_at_ms,
            payload: payload.into(),
            memo: Memo::default(),
        }
    }

    /// The bytes stored in L2 and L3.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + self.payload.len());
        buf.put_slice(MAGIC);
        buf.put_u8(SCHEMA);
        buf.put_u64(self.version);
        buf.put_i64(self.produced_at_ms);
        buf.put_u32(crc32fast::hash(&self.payload));
        buf.put_slice(&self.payload);
        buf.freeze()
    }

    /// Reads stored bytes back; the payload shares the input's buffer.
    pub fn decode(raw: Bytes) -> Result<Self, DecodeError> {
        if raw.len() < HEADER_LEN {
            return Err(DecodeError::Truncated);
        }
        if &raw[..2] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if raw[2] != SCHEMA {
            return Err(DecodeError::UnknownSchema(raw[2]));
        }
        let version = u64::from_be_bytes(raw[3..11].try_into().expect("8 bytes"));
        let produced_at_ms = i64::from_be_bytes(raw[11..19].try_into().expect("8 bytes"));
        let crc = u32::from_be_bytes(raw[19..23].try_into().expect("4 bytes"));
        let payload = raw.slice(HEADER_LEN..);
        if crc32fast::hash(&payload) != crc {
            return Err(DecodeError::Checksum);
        }
        Ok(Envelope::new(version, produced_at_ms, payload))
    }

    /// Only the version, read without checking the payload: lets a store
    /// compare versions cheaply.
    pub fn peek_version(raw: &[u8]) -> Option<u64> {
        (raw.len() >= HEADER_LEN && &raw[..2] == MAGIC && raw[2] == SCHEMA)
            .then(|| u64::from_be_bytes(raw[3..11].try_into().expect("8 bytes")))
    }

    /// When the writer produced this version.
    pub fn produced_at(&self) -> SystemTime {
        produced_at(self.produced_at_ms)
    }

    /// Bytes held in memory, for L1's size bound.
    pub fn weight(&self) -> u32 {
        u32::try_from(HEADER_LEN + self.payload.len()).unwrap_or(u32::MAX)
    }
}

/// A production time in Unix milliseconds as a point in time (a time
/// before 1970 is clamped to it).
pub fn produced_at(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// How old something produced at `produced` is at `now` (zero if "now" is earlier).
pub fn age(produced: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(produced).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope::new(42, 1_700_000_000_123, Bytes::from_static(br#"{"a":1}"#))
    }

    #[test]
    fn round_trips() {
        let env = sample();
        let raw = env.encode();
        assert_eq!(Envelope::peek_version(&raw), Some(42));
        assert_eq!(Envelope::decode(raw).unwrap(), env);
    }

    #[test]
    fn corruption_is_detected_not_served() {
        let raw = sample().encode();
        let mut flipped = raw.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        assert_eq!(Envelope::decode(flipped.into()), Err(DecodeError::Checksum));
        assert_eq!(
            Envelope::decode(raw.slice(..10)),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            Envelope::decode(Bytes::from_static(b"not an envelope at all, just text")),
            Err(DecodeError::BadMagic)
        );
        let mut future = raw.to_vec();
        future[2] = 9;
        assert_eq!(
            Envelope::decode(future.into()),
            Err(DecodeError::UnknownSchema(9))
        );
    }
}
