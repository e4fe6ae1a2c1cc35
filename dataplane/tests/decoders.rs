//! Property-based fuzzing of every decoder that takes bytes from outside the
//! process: NDJSON and CSV ticks (ingest bodies, replay files), the cache
//! envelope (whatever Redis or Memcached hand back), coherence messages
//! (pub/sub JSON and stream entries) and the config file.
//!
//! Each decoder gets random and mutated inputs, and for each: no panic, at
//! most [`ALLOC_PER_BYTE`] bytes allocated per input byte (measured by the
//! counting allocator below, on the decoding thread), and every rejection a
//! clear error. The checked-in corpus (`tests/corpus/<decoder>/*`) holds
//! inputs worth keeping — edge cases and anything a run ever found — and is
//! replayed on every run; proptest also replays its own shrunk failures
//! from `decoders.proptest-regressions`.
//!
//! Cases per property: `CACHEBRIDGE_FUZZ_CASES` (default 256, small enough
//! for CI; raise it for a longer hunt).

use bytes::Bytes;
use cachebridge_dataplane::cache::envelope::{DecodeError, Envelope};
use cachebridge_dataplane::cache::l3::redis::notice_of;
use cachebridge_dataplane::cache::l3::{Message, Notice};
use cachebridge_dataplane::config::{Config, ConfigError};
use cachebridge_dataplane::market::tick::{
    MAX_PRICE, MAX_SYMBOL_LEN, MAX_VOLUME, MIN_PRICE, Tick, TickError, parse_csv, parse_ndjson,
};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

/// Bytes a decoder may hold at its peak per byte of input, plus
/// [`ALLOC_SLACK`]. Generous (a JSON `[1,1,…]` costs a 32-byte value per
/// two input bytes, doubled by vector growth); what it rules out is growth
/// out of proportion to the input, the way a decompression bomb or an
/// unchecked length field would.
const ALLOC_PER_BYTE: usize = 64;
const ALLOC_SLACK: usize = 256 * 1024;

// ---- the counting allocator -------------------------------------------------

/// The system allocator, counting the bytes live on each thread and their
/// peak, so a property can measure what one call allocated.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: allocations during thread teardown are not counted.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `decode` and returns its result with the most bytes it held at once
/// (including what the result keeps).
fn measured<T>(decode: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = decode();
    let peak = PEAK.with(Cell::get) - base;
    (out, usize::try_from(peak).unwrap_or(0))
}

fn assert_bounded(what: &str, input_len: usize, peak: usize) {
    let bound = ALLOC_PER_BYTE * input_len + ALLOC_SLACK;
    assert!(
        peak <= bound,
        "{what}: {input_len} input bytes held {peak} bytes at once (bound {bound})"
    );
}

// ---- the checks per decoder ---------------------------------------------------

const TICK_FIELDS: [&str; 5] = ["symbol", "price", "volume", "ts", "line"];

/// A tick decoder's answer: valid ticks, at most one per line; or an error
/// naming a line of the input, a known field and a reason.
fn check_ticks(text: &str, decode: fn(&str) -> Result<Vec<Tick>, TickError>) {
    let (result, peak) = measured(|| decode(text));
    assert_bounded("ticks", text.len(), peak);
    let lines = text.lines().count();
    match result {
        Ok(ticks) => {
            assert!(
                ticks.len() <= lines,
                "{} ticks from {lines} lines",
                ticks.len()
            );
            for t in ticks {
                assert!(!t.symbol.is_empty() && t.symbol.chars().count() <= MAX_SYMBOL_LEN);
                assert!((MIN_PRICE..=MAX_PRICE).contains(&t.price), "{}", t.price);
                assert!(t.volume <= MAX_VOLUME);
            }
        }
        Err(e) => {
            assert!(
                e.line >= 1 && e.line <= lines.max(1),
                "line {} of {lines}",
                e.line
            );
            assert!(TICK_FIELDS.contains(&e.field.as_str()), "field {}", e.field);
            assert!(!e.reason.trim().is_empty(), "an empty reason: {e:?}");
            assert!(e.to_string().starts_with(&format!("line {}: ", e.line)));
        }
    }
}

/// The envelope decoder: what it accepts re-encodes to the same bytes, and
/// the checksum-free version peek agrees with it.
fn check_envelope(raw: &[u8]) {
    let (result, peak) = measured(|| Envelope::decode(Bytes::copy_from_slice(raw)));
    assert_bounded("envelope", raw.len(), peak);
    match result {
        Ok(env) => {
            assert_eq!(&env.encode()[..], raw, "decode then encode is the identity");
            assert_eq!(Envelope::peek_version(raw), Some(env.version));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let peeked = Envelope::peek_version(raw);
            match e {
                DecodeError::Checksum => assert!(peeked.is_some()),
                _ => assert_eq!(peeked, None, "{e}"),
            }
        }
    }
}

/// A pub/sub message: events or a serde error; what decodes round-trips.
fn check_event(raw: &[u8]) {
    let (result, peak) = measured(|| serde_json::from_slice::<Message>(raw));
    assert_bounded("event", raw.len(), peak);
    match result {
        Ok(message) => {
            let again = serde_json::to_vec(&message).unwrap();
            let decoded = serde_json::from_slice::<Message>(&again).unwrap();
            assert_eq!(decoded.into_events(), message.into_events());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// A stream entry: a notice only when its id and both fields say so.
fn check_stream_entry(id: &str, fields: &[(String, Vec<u8>)]) {
    let entry = redis::streams::StreamId {
        id: id.to_owned(),
        map: fields
            .iter()
            .map(|(k, v)| (k.clone(), redis::Value::BulkString(v.clone())))
            .collect(),
        ..Default::default()
    };
    let (notice, peak) = measured(|| notice_of(&entry));
    let input_len = id.len() + fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    assert_bounded("stream entry", input_len, peak);
    if let Some(Notice { key, version, seq }) = notice {
        let field = |name: &str| {
            entry.map.get(name).and_then(|v| match v {
                redis::Value::BulkString(b) => Some(b.clone()),
                _ => None,
            })
        };
        assert_eq!(field("key"), Some(key.into_bytes()));
        assert_eq!(field("version"), Some(version.to_string().into_bytes()));
        assert_eq!(
            id.split_once('-').map(|(s, _)| s.parse().ok()),
            Some(Some(seq))
        );
    }
}

/// The config file: a config that validates or not, or an error naming the file.
fn check_config(dir: &Path, text: &[u8]) {
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    let (result, peak) =
        measured(|| Config::from_file(&path).and_then(|c| c.validate().map(|()| c)));
    assert_bounded("config", text.len(), peak);
    match result {
        Ok(_) => {}
        Err(e @ (ConfigError::Read { .. } | ConfigError::Parse { .. })) => {
            assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}")
        }
        Err(e @ ConfigError::Invalid(_)) => assert!(!e.to_string().trim().is_empty()),
    }
}

// ---- inputs -----------------------------------------------------------------

fn cases() -> u32 {
    std::env::var("CACHEBRIDGE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn settings() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a long input is slow; the first counterexample will do
        // with a bound on how long shrinking may try.
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

/// Values a field of a tick might take, valid or not.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"AAPL\"".to_owned()),
        Just("\"2026-01-02T15:04:05Z\"".to_owned()),
        Just("\"2099-01-01T00:00:00Z\"".to_owned()),
        Just("null".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just("1e300".to_owned()),
        Just("-0.0".to_owned()),
        Just("NaN".to_owned()),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "\"[^\"\\\\]{0,24}\"",
        "\\[[0-9,]{0,16}\\]",
    ]
}

/// An NDJSON line that looks like a tick, with any field possibly wrong.
fn ndjson_line() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("symbol"),
        Just("price"),
        Just("volume"),
        Just("ts"),
        Just("x")
    ];
    prop::collection::vec((field, field_value()), 0..6).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

/// Text that looks like NDJSON: tick-shaped lines and noise.
fn ndjson_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![4 => ndjson_line(), 1 => "[ -~]{0,40}", 1 => Just(String::new())];
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

/// Text that looks like CSV: a header of the known columns (maybe missing
/// or repeated) and rows of field-like cells.
fn csv_text() -> impl Strategy<Value = String> {
    let column = prop_oneof![
        Just("symbol"),
        Just("price"),
        Just("volume"),
        Just("ts"),
        Just("Extra"),
        Just("")
    ];
    let header = prop::collection::vec(column, 0..7).prop_map(|c| c.join(","));
    let cell = prop_oneof![
        Just("AAPL".to_owned()),
        Just("2026-01-02T15:04:05Z".to_owned()),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[ -~]{0,12}",
    ];
    let row = prop::collection::vec(cell, 0..7).prop_map(|c| c.join(","));
    (header, prop::collection::vec(row, 0..10))
        .prop_map(|(h, rows)| format!("{h}\n{}", rows.join("\n")))
}

/// A valid envelope, then maybe cut short, extended, or with bytes changed.
fn envelope_bytes() -> impl Strategy<Value = Vec<u8>> {
    let valid = (
        any::<u64>(),
        any::<i64>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(v, at, p)| Envelope::new(v, at, p).encode().to_vec());
    let edit = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3);
    (valid, edit, any::<Option<prop::sample::Index>>()).prop_map(|(mut raw, edits, cut)| {
        for (at, byte) in edits {
            let i = at.index(raw.len());
            raw[i] = byte;
        }
        if let Some(cut) = cut {
            raw.truncate(cut.index(raw.len() + 1));
        }
        raw
    })
}

/// Coherence JSON: updates and heartbeats with any field values, and noise.
fn event_json() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just("key"),
        Just("version"),
        Just("seq"),
        Just("heartbeat"),
        Just("x")
    ];
    let shaped = prop::collection::vec((name, field_value()), 0..5).prop_map(|fields| {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(",")).into_bytes()
    });
    let shaped = shaped.boxed();
    let batch = prop::collection::vec(shaped.clone(), 0..4).prop_map(|events| {
        let inner: Vec<String> = events
            .into_iter()
            .map(|e| String::from_utf8(e).unwrap())
            .collect();
        format!("{{\"updates\":[{}]}}", inner.join(",")).into_bytes()
    });
    prop_oneof![
        3 => shaped,
        2 => batch,
        1 => prop::collection::vec(any::<u8>(), 0..64)
    ]
}

/// A stream entry's id and fields, as a client with stream access could write them.
fn stream_entry() -> impl Strategy<Value = (String, Vec<(String, Vec<u8>)>)> {
    let id = prop_oneof![
        any::<u64>().prop_map(|s| format!("{s}-0")),
        "[0-9a-z-]{0,24}",
    ];
    let name = prop_oneof![
        Just("key".to_owned()),
        Just("version".to_owned()),
        "[a-z]{1,8}"
    ];
    let value = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string().into_bytes()),
        any::<i64>().prop_map(|n| n.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..24),
    ];
    (id, prop::collection::vec((name, value), 0..4))
}

/// YAML shaped like the config: known sections and keys with odd values,
/// anchors and aliases, and noise.
fn config_text() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("bridge:\n  namespace"),
        Just("bridge:\n  name"),
        Just("redis:\n  url"),
        Just("memcached:\n  servers"),
        Just("reader:\n  listen"),
        Just("cache:\n  l1_ttl"),
        Just("cache:\n  tier_timeout"),
        Just("writer:\n  source"),
        Just("coherence:\n  stream_max_len"),
        Just("key_prefix"),
        Just("unknown"),
    ];
    let value = prop_oneof![
        Just("\"10s\"".to_owned()),
        Just("-1".to_owned()),
        Just("~".to_owned()),
        Just("[a, b]".to_owned()),
        Just("{type: Replay}".to_owned()),
        Just("&a [*a]".to_owned()),
        Just("\"127.0.0.1:99999\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[ -~]{0,20}",
    ];
    let shaped = prop::collection::vec((key, value), 0..5).prop_map(|entries| {
        entries
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect::<String>()
            .into_bytes()
    });
    prop_oneof![3 => shaped, 1 => prop::collection::vec(any::<u8>(), 0..96)]
}

// ---- the properties -----------------------------------------------------------

proptest! {
    #![proptest_config(settings())]

    #[test]
    fn ndjson_ticks(text in ndjson_text()) {
        check_ticks(&text, parse_ndjson);
    }

    #[test]
    fn ndjson_any_text(text in "\\PC{0,200}") {
        check_ticks(&text, parse_ndjson);
    }

    #[test]
    fn csv_ticks(text in csv_text()) {
        check_ticks(&text, parse_csv);
    }

    #[test]
    fn csv_any_text(text in "\\PC{0,200}") {
        check_ticks(&text, parse_csv);
    }

    #[test]
    fn envelopes(raw in envelope_bytes()) {
        check_envelope(&raw);
    }

    #[test]
    fn envelope_any_bytes(raw in prop::collection::vec(any::<u8>(), 0..64)) {
        check_envelope(&raw);
    }

    #[test]
    fn coherence_events(raw in event_json()) {
        check_event(&raw);
    }

    #[test]
    fn stream_entries((id, fields) in stream_entry()) {
        check_stream_entry(&id, &fields);
    }

    #[test]
    fn config_files(text in config_text()) {
        let dir = tempfile::tempdir().unwrap();
        check_config(dir.path(), &text);
    }
}

// ---- the corpus -----------------------------------------------------------------

fn corpus(decoder: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(decoder);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "the {decoder} corpus is empty");
    inputs
}

#[test]
fn the_corpus_replays_clean() {
    for (path, raw) in corpus("ticks") {
        let text = String::from_utf8_lossy(&raw);
        println!("{}", path.display());
        check_ticks(&text, parse_ndjson);
        check_ticks(&text, parse_csv);
    }
    for (_, raw) in corpus("envelope") {
        check_envelope(&raw);
    }
    for (_, raw) in corpus("event") {
        check_event(&raw);
    }
    let dir = tempfile::tempdir().unwrap();
    for (_, raw) in corpus("config") {
        check_config(dir.path(), &raw);
    }
}

/// Large inputs stay within the allocation bound (proptest's are small).
#[test]
fn large_inputs_stay_bounded() {
    let line = r#"{"symbol":"AAPL","price":189.5,"volume":300,"ts":"2026-01-02T15:04:05Z"}"#;
    let many = vec![line; 20_000].join("\n");
    check_ticks(&many, parse_ndjson);
    let array = format!("[{}1]", "1,".repeat(500_000));
    check_ticks(&array, parse_ndjson);
    check_event(array.as_bytes());
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    check_ticks(&nested, parse_ndjson);
    check_event(nested.as_bytes());
    let csv = format!(
        "symbol,price,volume,ts\n{}",
        "AAPL,1.5,2,2026-01-02T15:04:05Z\n".repeat(20_000)
    );
    check_ticks(&csv, parse_csv);
    let wide = format!("symbol,price,volume,ts{}\n", ",x".repeat(200_000));
    check_ticks(&wide, parse_csv);
    // YAML aliases that would expand exponentially ("billion laughs").
    let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    for (i, c) in ('b'..='j').enumerate() {
        let prev = (b'a' + i as u8) as char;
        laughs.push_str(&format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    check_config(dir.path(), laughs.as_bytes());
}
