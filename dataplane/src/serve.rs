//! The one HTTP server loop of every dataplane process (reader API, writer
//! ingest, writer status), with limits on what a client may hold.
//!
//! `axum::serve` waits for a slow or silent client forever: a client that
//! sends half a header, or announces a body and never sends it, keeps a
//! socket and its buffers until it gives up. This module accepts connections
//! itself and serves each with hyper's HTTP/1 connection, adding:
//! - a header read timeout, from a request's first byte to the end of its
//!   header, and an idle timeout while a connection waits for a request
//!   (both watched per connection here: hyper's own header timer also runs
//!   while a kept-alive connection is idle, which would make the two one);
//! - a body read timeout, from the end of the header to the end of the body
//!   (answered 408 by handlers that read bodies, see [`is_body_timeout`]);
//! - a write timeout: a response that makes no progress for that long (the
//!   client stopped reading and the socket's buffers are full) closes the
//!   connection instead of holding it, and the response, forever;
//! - a connection cap: past it, a new connection gets a fixed 503 written
//!   straight to its socket and is closed, without parsing anything, so a
//!   flood costs one write per connection and never waits on the client;
//! - a body size limit answered 413 as soon as `Content-Length` says too much
//!   (and enforced while reading a body without one).
//!
//! Requests without a body (every GET of the reader) pay for none of the
//! body handling: no deadline, no limit wrapper, no layer. That is part of
//! what keeps an L1 hit near the cost of a static response.
//!
//! Stopping is graceful: the listener closes, each connection finishes its
//! request in flight and closes; idle connections close at once.

use crate::config::HttpConfig;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The answer to a connection over the cap: complete, tiny, and the same
/// every time, so it is written without parsing the request.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 38\r\n\r\n\
too many connections; try again later\n";

/// Pause after an accept error (out of descriptors, say) before retrying,
/// so the loop does not spin while nothing can be accepted.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` within `limits` until `stopping` turns true,
/// then lets requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpConfig,
    mut stopping: watch::Receiver<bool>,
) {
    let limits = Arc::new(limits.clone());
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let tell_connections = stopping.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => match Arc::clone(&slots).try_acquire_owned() {
                    Ok(slot) => {
                        let conn = Connection { router: router.clone(), limits: Arc::clone(&limits), _slot: slot };
                        connections.spawn(conn.run(tcp, tell_connections.clone()));
                    }
                    Err(_) => refuse(tcp),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next() => {}
            _ = stopped(&mut stopping) => break,
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Resolves once `stopping` turns true (or its sender is gone), holding no
/// borrow of the value across the wait.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Answers a connection over the cap without waiting on it. The socket is
/// fresh, so its send buffer has room: a non-blocking write either sends the
/// whole answer or the client has already gone.
fn refuse(tcp: TcpStream) {
    let _ = tcp.try_write(BUSY);
}

/// One accepted connection and what it needs to be served.
struct Connection {
    router: Router,
    limits: Arc<HttpConfig>,
    /// Held while the connection lives: its place under the cap.
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(self, tcp: TcpStream, mut stopping: watch::Receiver<bool>) {
        // Small JSON answers: send them now rather than waiting to coalesce.
        let _ = tcp.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Watched {
            inner: tcp,
            activity: Arc::clone(&activity),
        });
        let service = RequestService {
            router: self.router,
            activity: Arc::clone(&activity),
            body_timeout: self.limits.body_read_timeout,
            max_body_bytes: self.limits.max_body_bytes,
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        // The header timeout is enforced below (see the module comment).
        builder.timer(TokioTimer::new()).header_read_timeout(None);
        let conn =
            builder.serve_connection(io, hyper_util::service::TowerToHyperService::new(service));
        tokio::pin!(conn);
        let mut draining = false;
        loop {
            let deadline = activity.next_check(&self.limits);
            tokio::select! {
                served = conn.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = stopped(&mut stopping), if !draining => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if let Some(why) = activity.expired(&self.limits, Instant::now()) {
                        tracing::debug!(why, "closing a connection");
                        return;
                    }
                }
            }
        }
    }
}

/// Where a connection stands, shared by its socket, its requests and its
/// watchdog.
struct Activity {
    phase: Mutex<Phase>,
    /// Since when writes to the client have made no progress, in
    /// nanoseconds after `origin` (at least 1); 0 while they progress. An
    /// atomic, not part of `phase`: it is checked on every write.
    stalled_since: AtomicU64,
    origin: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request since then; no byte of it yet.
    Idle(Instant),
    /// A request's first bytes arrived then; its header is not complete.
    Header(Instant),
    /// Requests being served (from their header until their response is
    /// sent); their bodies have their own deadline.
    Busy(usize),
}

impl Activity {
    fn new() -> Arc<Self> {
        let origin = Instant::now();
        Arc::new(Activity {
            phase: Mutex::new(Phase::Idle(origin)),
            stalled_since: AtomicU64::new(0),
            origin,
        })
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        // The lock guards a plain value; a panic cannot leave it half-written.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes came in: the start of a header, if the connection was idle.
    fn read_some(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Header(Instant::now());
        }
    }

    /// A request's header is complete.
    fn request_started(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
    }

    /// A response has been sent (or dropped).
    fn request_finished(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
    }

    /// A write could not proceed: the stall starts now, unless it already
    /// started.
    fn write_blocked(&self) {
        let since = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let _ = self.stalled_since.compare_exchange(
            0,
            since.max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// A write went through: no stall.
    fn write_progressed(&self) {
        if self.stalled_since.load(Ordering::Relaxed) != 0 {
            self.stalled_since.store(0, Ordering::Relaxed);
        }
    }

    /// Why the connection should close now, if it should.
    fn expired(&self, limits: &HttpConfig, now: Instant) -> Option<&'static str> {
        let stalled = self.stalled_since.load(Ordering::Relaxed);
        if stalled != 0 && now >= self.origin + Duration::from_nanos(stalled) + limits.write_timeout
        {
            return Some("write timeout");
        }
        match *self.phase() {
            Phase::Idle(since) if now >= since + limits.idle_timeout => Some("idle timeout"),
            Phase::Header(since) if now >= since + limits.header_read_timeout => {
                Some("header read timeout")
            }
            _ => None,
        }
    }

    /// When to look again: the current phase's deadline, but no later than
    /// the shortest timeout from now, since a phase or a stall that starts
    /// later (a header after idling, a write that blocks) may end sooner.
    fn next_check(&self, limits: &HttpConfig) -> Instant {
        let shortest = limits
            .header_read_timeout
            .min(limits.idle_timeout)
            .min(limits.write_timeout);
        let soonest = Instant::now() + shortest;
        let due = match *self.phase() {
            Phase::Idle(since) => since + limits.idle_timeout,
            Phase::Header(since) => since + limits.header_read_timeout,
            Phase::Busy(_) => soonest,
        };
        due.min(soonest)
    }
}

/// The socket, telling [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read_some();
        }
        read
    }
}

impl Watched {
    /// Tells [`Activity`] whether the client is taking what we send.
    fn note_write(&self, written: &Poll<io::Result<usize>>) {
        match written {
            Poll::Pending => self.activity.write_blocked(),
            Poll::Ready(_) => self.activity.write_progressed(),
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note_write(&written);
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note_write(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Hands each request to the router with a deadline and a size limit on its
/// body, and marks the connection busy until the response is sent.
#[derive(Clone)]
struct RequestService {
    router: Router,
    activity: Arc<Activity>,
    body_timeout: Duration,
    max_body_bytes: u64,
}

impl tower::Service<Request<Incoming>> for RequestService {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        self.activity.request_started();
        let busy = Busy(Arc::clone(&self.activity));
        // Most requests (GETs) have no body: no deadline, no limit for them.
        let request = if request.body().is_end_stream() {
            request.map(Body::new)
        } else if announced_length(&request).is_some_and(|n| n > self.max_body_bytes) {
            let response = sent(too_large(self.max_body_bytes), busy);
            return Box::pin(std::future::ready(Ok(response)));
        } else {
            let (limit, timeout) = (self.max_body_bytes, self.body_timeout);
            request.map(|body| Body::new(Deadline::new(body, timeout, limit)))
        };
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request).await?;
            Ok(sent(response, busy))
        })
    }
}

/// The response, holding the connection busy until its body is sent.
fn sent(response: Response<Body>, busy: Busy) -> Response<Body> {
    response.map(|body| {
        Body::new(Sent {
            inner: body,
            _busy: busy,
        })
    })
}

/// Marks the connection idle again when dropped (the response is sent, or
/// the connection went away).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that holds the connection busy until it is dropped.
struct Sent {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for Sent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The body did not arrive within the body read timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(Duration);

/// Whether a failure to read a request body (an extractor's rejection, say)
/// was the body read timeout: handlers answer that 408, not 400.
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<BodyTimeout>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A request body that fails once its deadline passes, or once more bytes
/// than the limit arrived (for bodies whose length was not announced, or
/// was announced wrongly).
struct Deadline {
    inner: http_body_util::Limited<Incoming>,
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
}

impl Deadline {
    fn new(inner: Incoming, limit: Duration, max_bytes: u64) -> Self {
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        Deadline {
            inner: http_body_util::Limited::new(inner, max_bytes),
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

/// The body length a request announces in `Content-Length`, if any.
fn announced_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// 413, before the body is read.
fn too_large(max: u64) -> Response<Body> {
    let detail = format!("the request body is larger than {max} bytes");
    crate::reader::respond::problem(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "Request body too large",
        detail,
    )
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(self.limit).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpConfig {
        HttpConfig {
            header_read_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            ..HttpConfig::default()
        }
    }

    #[test]
    fn busy_answer_is_one_complete_response() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }

    #[test]
    fn each_phase_has_its_own_deadline() {
        let limits = limits();
        let secs = Duration::from_secs;
        let activity = Activity::new();
        let start = Instant::now();
        assert_eq!(activity.expired(&limits, start + secs(4)), None);
        assert_eq!(
            activity.expired(&limits, start + secs(5)),
            Some("idle timeout")
        );
        activity.read_some();
        let header = Instant::now();
        assert_eq!(activity.expired(&limits, start + secs(1)), None);
        assert_eq!(
            activity.expired(&limits, header + secs(2)),
            Some("header read timeout")
        );
        activity.request_started();
        assert_eq!(activity.expired(&limits, header + secs(60)), None, "busy");
        activity.request_finished();
        let idle = Instant::now();
        assert!(activity.next_check(&limits) <= Instant::now() + secs(2));
        assert_eq!(activity.expired(&limits, idle + secs(2)), None);
        assert_eq!(
            activity.expired(&limits, idle + secs(5)),
            Some("idle timeout")
        );
    }

    #[test]
    fn a_write_that_makes_no_progress_expires_after_the_write_timeout() {
        let limits = HttpConfig {
            write_timeout: Duration::from_secs(3),
            ..limits()
        };
        let secs = Duration::from_secs;
        let activity = Activity::new();
        activity.request_started();
        let start = Instant::now();
        activity.write_blocked();
        assert_eq!(activity.expired(&limits, start + secs(2)), None);
        // A second blocked write does not restart the stall.
        activity.write_blocked();
        assert_eq!(
            activity.expired(&limits, Instant::now() + secs(3)),
            Some("write timeout")
        );
        activity.write_progressed();
        assert_eq!(activity.expired(&limits, Instant::now() + secs(30)), None);
    }

    #[test]
    fn a_body_timeout_is_found_under_the_errors_that_wrap_it() {
        let wrapped = axum::Error::new(BodyTimeout(Duration::from_secs(1)));
        assert!(is_body_timeout(&wrapped));
        let other = axum::Error::new(io::Error::other("reset"));
        assert!(!is_body_timeout(&other));
    }
}
