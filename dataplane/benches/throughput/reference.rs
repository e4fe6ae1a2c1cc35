//! The references the reader is compared with: bare axum servers, run as
//! this bench executable re-executed with a hidden first argument, with the
//! same runtime set-up as the reader binary (`#[tokio::main]`'s
//! multi-thread runtime, so `TOKIO_WORKER_THREADS` applies the same way)
//! and the same socket option (`TCP_NODELAY`).
//!
//! - `static`: answers every GET with the status line, headers and body
//!   captured from the reader for the case's URL, from memory: what the
//!   platform costs for exactly these bytes.
//! - `redis`: the same headers, the body from one Redis `GET` per request
//!   (over the `ConnectionManager` the reader's Redis tier uses): what the
//!   platform costs when every answer needs one Redis round trip.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Hidden first arguments of the bench executable.
pub const STATIC: &str = "__reference-static";
pub const REDIS: &str = "__reference-redis";

/// A response captured from the reader: what the references send back.
#[derive(Debug, Clone)]
pub struct Captured {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Captured {
    /// From a reader's answer, without the headers hyper writes itself
    /// (`date`, `content-length`) or that describe the connection.
    pub fn new(headers: &HeaderMap, body: Bytes) -> Captured {
        let mut kept = HeaderMap::new();
        for (name, value) in headers {
            let own = ["date", "content-length", "transfer-encoding", "connection"];
            if !own.contains(&name.as_str()) {
                kept.append(name.clone(), value.clone());
            }
        }
        Captured {
            headers: kept,
            body,
        }
    }

    /// Stores it as `STEM.headers` (one `name: value` a line) and `STEM.body`.
    pub fn save(&self, stem: &Path) -> std::io::Result<()> {
        let mut text = String::new();
        for (name, value) in &self.headers {
            let value = value.to_str().unwrap_or_default();
            text.push_str(&format!("{name}: {value}\n"));
        }
        std::fs::write(stem.with_extension("headers"), text)?;
        std::fs::write(stem.with_extension("body"), &self.body)
    }

    fn load(stem: &Path) -> Result<Captured, String> {
        let read = |ext| {
            let path = stem.with_extension(ext);
            std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let text = String::from_utf8(read("headers")?).map_err(|e| e.to_string())?;
        let mut headers = HeaderMap::new();
        for line in text.lines() {
            let (name, value) = line
                .split_once(": ")
                .ok_or_else(|| format!("bad header line {line:?}"))?;
            let name = HeaderName::try_from(name).map_err(|e| e.to_string())?;
            let value = HeaderValue::try_from(value).map_err(|e| e.to_string())?;
            headers.append(name, value);
        }
        Ok(Captured {
            headers,
            body: Bytes::from(read("body")?),
        })
    }
}

/// The arguments: `LISTEN STEM` for `static`, `LISTEN STEM REDIS_URL KEY`
/// for `redis`.
pub fn main(kind: &str, args: &[String]) -> ExitCode {
    match serve(kind, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("reference server: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(kind: &str, args: &[String]) -> Result<(), String> {
    let (listen, stem) = match args {
        [listen, stem, ..] => (listen, PathBuf::from(stem)),
        _ => return Err("usage: LISTEN STEM [REDIS_URL KEY]".into()),
    };
    let listen: SocketAddr = listen.parse().map_err(|e| format!("{listen}: {e}"))?;
    let captured = Captured::load(&stem)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let router = match (kind, &args[2..]) {
            (STATIC, []) => Router::new()
                .fallback(from_memory)
                .with_state(Arc::new(captured)),
            (REDIS, [url, key]) => {
                let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
                let conn = ConnectionManager::new(client)
                    .await
                    .map_err(|e| e.to_string())?;
                let state = FromRedis {
                    conn,
                    key: Arc::from(key.as_str()),
                    headers: Arc::new(captured.headers),
                };
                Router::new().fallback(from_redis).with_state(state)
            }
            _ => return Err(format!("{kind}: wrong arguments {args:?}")),
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("bind {listen}: {e}"))?
            .tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
        // Spawned like the reader's server, so connections are accepted on
        // a worker thread in both.
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        match server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
}

async fn from_memory(State(captured): State<Arc<Captured>>) -> Response {
    (
        StatusCode::OK,
        captured.headers.clone(),
        captured.body.clone(),
    )
        .into_response()
}

#[derive(Clone)]
struct FromRedis {
    conn: ConnectionManager,
    key: Arc<str>,
    headers: Arc<HeaderMap>,
}

/// In a key given to the Redis reference: replaced by the request path's
/// last segment.
pub const SYMBOL: &str = "{symbol}";

async fn from_redis(State(mut s): State<FromRedis>, uri: Uri) -> Response {
    let found: redis::RedisResult<Option<Vec<u8>>> = if s.key.contains(SYMBOL) {
        let symbol = uri.path().rsplit('/').next().unwrap_or_default();
        s.conn.get(s.key.replace(SYMBOL, symbol)).await
    } else {
        s.conn.get(&*s.key).await
    };
    match found {
        Ok(Some(body)) => (StatusCode::OK, (*s.headers).clone(), Bytes::from(body)).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such key").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}
