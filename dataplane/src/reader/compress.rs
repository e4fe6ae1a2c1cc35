//! gzip and brotli answers that cost about what an uncompressed one does.
//!
//! A data answer is a per-version part (rendered once, see [`super::render`])
//! followed by a per-request tail of a few dozen bytes (`tier`, `age_ms`,
//! `stale`). Compressing the whole body per request would cost a 31 KB
//! deflate per hit. Instead the per-version part is compressed once, ending
//! on a byte boundary without closing the stream (a sync flush for deflate,
//! a flush for brotli), and each request appends its tail as one
//! *uncompressed* block of the same stream and closes it:
//!
//! - gzip: header + deflate(part, sync flush) (kept) ++ a final stored
//!   block holding the tail + CRC-32 and length of the whole (per request;
//!   the CRC of the kept part is kept too, so only the tail is hashed);
//! - brotli: brotli(part, flush) (kept) ++ an uncompressed meta-block
//!   holding the tail + the empty last meta-block (per request).
//!
//! Either way the client receives one ordinary, complete stream (one gzip
//! member; one brotli stream) that decodes to exactly the uncompressed body.
//! Static bodies (the API document, the pages) are compressed whole, once.

use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE, VARY};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// Bodies smaller than this are sent as they are: compressing them saves
/// a few hundred bytes at most and costs more than it saves.
pub const MIN_BYTES: usize = 1024;

/// brotli quality 5: most of the gain of 11 at a small fraction of the time
/// (it runs once per version of every answer asked for compressed).
const BROTLI_QUALITY: u32 = 5;
/// brotli window: 4 MiB, far above any answer.
const BROTLI_WINDOW_BITS: u32 = 22;

/// The content coding an answer is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    /// The coding to use for a request's `Accept-Encoding` values: brotli
    /// when accepted at least as much as gzip, then gzip, else none. A
    /// coding with `q=0` is refused; `*` stands for codings not named.
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a HeaderValue>) -> Encoding {
        let (mut br, mut gzip, mut any) = (None, None, None);
        for value in accept {
            let Ok(text) = value.to_str() else { continue };
            for item in text.split(',') {
                let mut fields = item.split(';');
                let coding = fields.next().unwrap_or("").trim();
                let q = fields
                    .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                    .find_map(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                if coding.eq_ignore_ascii_case("br") {
                    br = Some(q);
                } else if coding.eq_ignore_ascii_case("gzip")
                    || coding.eq_ignore_ascii_case("x-gzip")
                {
                    gzip = Some(q);
                } else if coding == "*" {
                    any = Some(q);
                }
            }
        }
        let br = br.or(any).unwrap_or(0.0);
        let gzip = gzip.or(any).unwrap_or(0.0);
        if br > 0.0 && br >= gzip {
            Encoding::Brotli
        } else if gzip > 0.0 {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }

    /// The `Content-Encoding` value, none for identity.
    pub fn header(self) -> Option<HeaderValue> {
        match self {
            Encoding::Identity => None,
            Encoding::Gzip => Some(HeaderValue::from_static("gzip")),
            Encoding::Brotli => Some(HeaderValue::from_static("br")),
        }
    }
}

/// A per-version part's compressed form, made off the request path: the
/// first request that wants it starts the compression on tokio's blocking
/// pool and is answered uncompressed (identity is always acceptable), like
/// every request until it is done. Compressing a 31 KB answer with brotli
/// takes about a millisecond; done inline, the first request after each
/// update held every other request on its worker for that long.
#[derive(Default)]
pub struct Lazy {
    cell: Arc<tokio::sync::OnceCell<Prefix>>,
    started: AtomicBool,
}

impl Lazy {
    /// The compressed `part`, if made; else starts making it (once) and
    /// answers `None`. Without a runtime (a unit test, a tool) it compresses
    /// here.
    pub fn get_or_start(&self, encoding: Encoding, part: &Bytes) -> Option<&Prefix> {
        if let Some(prefix) = self.cell.get() {
            return Some(prefix);
        }
        if self.started.swap(true, Ordering::Relaxed) {
            return None;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let _ = self.cell.set(Prefix::new(encoding, part));
            return self.cell.get();
        };
        let (cell, part) = (Arc::clone(&self.cell), part.clone());
        runtime.spawn(async move {
            cell.get_or_init(|| async move {
                tokio::task::spawn_blocking(move || Prefix::new(encoding, &part))
                    .await
                    .expect("compressing into memory cannot fail")
            })
            .await;
        });
        None
    }

    /// The compressed `part`, waiting for (or doing) the compression.
    pub async fn wait(&self, encoding: Encoding, part: &Bytes) -> &Prefix {
        self.cell
            .get_or_init(|| async { Prefix::new(encoding, part) })
            .await
    }
}

/// A body's first part compressed once, open for a per-request tail.
pub struct Prefix {
    /// The compressed bytes, ending on a byte boundary, stream not closed.
    bytes: Bytes,
    /// gzip only: the CRC-32 of the uncompressed part, to continue per request.
    crc: crc32fast::Hasher,
    /// gzip only: the uncompressed length of the part.
    len: u32,
    encoding: Encoding,
}

impl Prefix {
    /// Compresses `part` for `encoding` (not identity).
    pub fn new(encoding: Encoding, part: &[u8]) -> Prefix {
        let mut crc = crc32fast::Hasher::new();
        let bytes = match encoding {
            Encoding::Brotli => brotli_open(part),
            _ => {
                crc.update(part);
                gzip_open(part)
            }
        };
        Prefix {
            bytes: Bytes::from(bytes),
            crc,
            len: part.len() as u32,
            encoding,
        }
    }

    /// The kept compressed part, shared.
    pub fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    /// Bytes held.
    pub fn weight(&self) -> usize {
        self.bytes.len()
    }

    /// What completes the stream: `tail` uncompressed, then the end.
    pub fn finish(&self, tail: &[u8]) -> Bytes {
        match self.encoding {
            Encoding::Brotli => brotli_close(tail),
            _ => self.gzip_close(tail),
        }
    }

    /// A final stored deflate block holding `tail`, then the gzip trailer.
    fn gzip_close(&self, tail: &[u8]) -> Bytes {
        // A stored block holds at most 65535 bytes; tails are ~80.
        let len = u16::try_from(tail.len()).expect("a per-request tail is small");
        let mut crc = self.crc.clone();
        crc.update(tail);
        let mut out = BytesMut::with_capacity(tail.len() + 13);
        // BFINAL=1, BTYPE=00 (stored), padding to the byte boundary.
        out.put_u8(0x01);
        out.put_u16_le(len);
        out.put_u16_le(!len);
        out.put_slice(tail);
        out.put_u32_le(crc.finalize());
        out.put_u32_le(self.len.wrapping_add(u32::from(len)));
        out.freeze()
    }
}

/// gzip header and the deflated part, sync-flushed (byte-aligned, open).
fn gzip_open(part: &[u8]) -> Vec<u8> {
    // ID1 ID2, CM=deflate, no flags, no mtime, no extra flags, OS unknown.
    let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut deflate =
        flate2::write::DeflateEncoder::new(header.to_vec(), flate2::Compression::default());
    // Writing to a Vec cannot fail; flush() is a sync flush.
    deflate.write_all(part).expect("deflate into memory");
    deflate.flush().expect("deflate into memory");
    deflate.get_ref().clone()
}

/// The part as a brotli stream, flushed (byte-aligned, open).
fn brotli_open(part: &[u8]) -> Vec<u8> {
    let out = Vec::with_capacity(part.len() / 4 + 64);
    let mut brotli = brotli::CompressorWriter::new(out, 4096, BROTLI_QUALITY, BROTLI_WINDOW_BITS);
    brotli.write_all(part).expect("brotli into memory");
    brotli.flush().expect("brotli into memory");
    // Dropping (or unwrapping) the writer closes the stream: keep a copy of
    // what the flush wrote; the closing bytes go away with the writer.
    brotli.get_ref().clone()
}

/// An uncompressed meta-block holding `tail`, then the empty last one.
fn brotli_close(tail: &[u8]) -> Bytes {
    let len = u32::try_from(tail.len()).expect("a per-request tail is small");
    assert!((1..=1 << 16).contains(&len), "4-nibble MLEN");
    // ISLAST=0, MNIBBLES=4 (code 0), MLEN-1 in 16 bits, ISUNCOMPRESSED=1,
    // zero padding to the byte boundary: 24 bits.
    let header = ((len - 1) << 3) | (1 << 19);
    let mut out = BytesMut::with_capacity(tail.len() + 4);
    out.put_slice(&header.to_le_bytes()[..3]);
    out.put_slice(tail);
    // ISLAST=1, ISLASTEMPTY=1.
    out.put_u8(0x03);
    out.freeze()
}

/// A whole body compressed at once (static answers).
pub fn whole(encoding: Encoding, body: &[u8]) -> Bytes {
    match encoding {
        Encoding::Identity => Bytes::copy_from_slice(body),
        Encoding::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(body).expect("gzip into memory");
            Bytes::from(gz.finish().expect("gzip into memory"))
        }
        Encoding::Brotli => {
            let mut out = Vec::new();
            {
                let mut brotli = brotli::CompressorWriter::new(
                    &mut out,
                    4096,
                    BROTLI_QUALITY,
                    BROTLI_WINDOW_BITS,
                );
                brotli.write_all(body).expect("brotli into memory");
            }
            Bytes::from(out)
        }
    }
}

/// A fixed body (a document, a page, a script), compressed at most once
/// per coding, on first demand.
pub struct Static {
    body: Bytes,
    content_type: HeaderValue,
    gzip: OnceLock<Bytes>,
    brotli: OnceLock<Bytes>,
}

impl Static {
    pub fn new(body: impl Into<Bytes>, content_type: &'static str) -> Static {
        Static {
            body: body.into(),
            content_type: HeaderValue::from_static(content_type),
            gzip: OnceLock::new(),
            brotli: OnceLock::new(),
        }
    }

    /// The uncompressed body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The 200 answer, in `encoding` when the body is worth compressing.
    /// The first compression of a large body (the renderer bundle is 1 MB)
    /// runs on the blocking pool, not on a thread serving requests.
    pub async fn respond(self: Arc<Self>, encoding: Encoding) -> Response {
        let encoding = if self.body.len() < MIN_BYTES {
            Encoding::Identity
        } else {
            encoding
        };
        let body = match self.cell(encoding) {
            None => self.body.clone(),
            Some(cell) => match cell.get() {
                Some(done) => done.clone(),
                None => {
                    let me = Arc::clone(&self);
                    tokio::task::spawn_blocking(move || me.compressed(encoding))
                        .await
                        .expect("compressing into memory does not panic")
                }
            },
        };
        let mut response = Response::new(Body::from(body));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, self.content_type.clone());
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        if let Some(coding) = encoding.header() {
            headers.insert(CONTENT_ENCODING, coding);
        }
        response
    }

    fn cell(&self, encoding: Encoding) -> Option<&OnceLock<Bytes>> {
        match encoding {
            Encoding::Identity => None,
            Encoding::Gzip => Some(&self.gzip),
            Encoding::Brotli => Some(&self.brotli),
        }
    }

    /// The body in `encoding` (not identity), compressed now if not yet.
    fn compressed(&self, encoding: Encoding) -> Bytes {
        match self.cell(encoding) {
            Some(cell) => cell.get_or_init(|| whole(encoding, &self.body)).clone(),
            None => self.body.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        // GzDecoder reads one member: the answer must be one.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("a valid gzip stream");
        out
    }

    fn unbrotli(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(bytes, 4096)
            .read_to_end(&mut out)
            .expect("a valid brotli stream");
        out
    }

    fn part() -> Vec<u8> {
        let mut body = b"{\"data\":[".to_vec();
        for i in 0..500 {
            body.extend_from_slice(format!("{{\"symbol\":\"S{i}\",\"last\":{i}.25}},").as_bytes());
        }
        body.extend_from_slice(b"{}],\"meta\":{\"etag\":\"v1\",");
        body
    }

    #[test]
    fn kept_part_plus_per_request_tail_is_one_valid_stream() {
        let part = part();
        for tail in [&b"\"tier\":\"L1\",\"age_ms\":3}}"[..], b"x", &[b'7'; 300]] {
            let mut whole = part.clone();
            whole.extend_from_slice(tail);
            let gzip = Prefix::new(Encoding::Gzip, &part);
            let mut sent = gzip.bytes().to_vec();
            sent.extend_from_slice(&gzip.finish(tail));
            assert_eq!(gunzip(&sent), whole);
            assert!(sent.len() < whole.len() / 3, "it does compress");

            let br = Prefix::new(Encoding::Brotli, &part);
            let mut sent = br.bytes().to_vec();
            sent.extend_from_slice(&br.finish(tail));
            assert_eq!(unbrotli(&sent), whole);
            assert!(sent.len() < whole.len() / 3, "it does compress");
        }
    }

    #[test]
    fn whole_bodies_round_trip() {
        let body = part();
        assert_eq!(gunzip(&whole(Encoding::Gzip, &body)), body);
        assert_eq!(unbrotli(&whole(Encoding::Brotli, &body)), body);
    }

    #[test]
    fn negotiation_follows_the_header() {
        let pick = |v: &'static str| Encoding::negotiate([&HeaderValue::from_static(v)]);
        assert_eq!(Encoding::negotiate([]), Encoding::Identity);
        assert_eq!(pick("gzip, deflate, br, zstd"), Encoding::Brotli);
        assert_eq!(pick("gzip"), Encoding::Gzip);
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Encoding::Gzip);
        assert_eq!(pick("br;q=0, gzip"), Encoding::Gzip);
        assert_eq!(pick("gzip;q=0"), Encoding::Identity);
        assert_eq!(pick("*"), Encoding::Brotli);
        assert_eq!(pick("*;q=0, gzip"), Encoding::Gzip);
        assert_eq!(pick("identity"), Encoding::Identity);
        assert_eq!(pick("deflate"), Encoding::Identity);
    }
}
