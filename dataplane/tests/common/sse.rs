//! A Server-Sent Events client for the tests and benches of
//! `/api/v1/stream`: hyper's HTTP/1 client on a socket we open ourselves
//! (so a test can shrink its receive buffer to play a client that does not
//! read), and a parser of the event format.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// One event as the spec defines it (comments and `retry:` are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event {} is not JSON ({e}): {}", self.name, self.data))
    }
}

/// An open stream.
pub struct Sse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    buffer: String,
    /// Keeps the connection task alive with the stream.
    _conn: tokio::task::JoinHandle<()>,
}

/// How the stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The server finished the response (the chunked terminator arrived).
    Clean,
    /// The connection broke off mid-response.
    Broken(String),
}

impl Sse {
    /// `GET path` on `addr`, with `Last-Event-ID` if given, and the socket's
    /// receive buffer set to `recv_buffer` bytes if given.
    pub async fn open(
        addr: SocketAddr,
        path: &str,
        last_event_id: Option<&str>,
        recv_buffer: Option<u32>,
    ) -> Sse {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let tcp = socket.connect(addr).await.expect("connect to the reader");
        tcp.set_nodelay(true).expect("TCP_NODELAY");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("HTTP/1 handshake");
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut request = Request::get(path).header("host", addr.to_string());
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let request = request
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("a request");
        let response = sender.send_request(request).await.expect("a response");
        let (parts, body) = response.into_parts();
        Sse {
            status: parts.status,
            headers: parts.headers,
            body,
            buffer: String::new(),
            _conn: conn,
        }
    }

    /// The whole body of a response that is not a stream (an error).
    pub async fn text(self) -> String {
        let bytes = self.body.collect().await.expect("a body").to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The next event with data, or how the stream ended.
    pub async fn next(&mut self) -> Result<Event, End> {
        loop {
            if let Some(event) = self.parse_one() {
                return Ok(event);
            }
            match self.body.frame().await {
                None => return Err(End::Clean),
                Some(Err(e)) => return Err(End::Broken(e.to_string())),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer
                            .push_str(std::str::from_utf8(&data).expect("UTF-8"));
                    }
                }
            }
        }
    }

    /// The next event not named `status`.
    pub async fn next_value(&mut self) -> Event {
        loop {
            let event = self.next().await.expect("the stream goes on");
            if event.name != "status" {
                return event;
            }
        }
    }

    fn parse_one(&mut self) -> Option<Event> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut event = Event {
                name: "message".into(),
                id: None,
                data: String::new(),
            };
            let mut has_data = false;
            for line in block.lines() {
                let (field, value) = line.split_once(": ").unwrap_or((line, ""));
                match field {
                    "event" => event.name = value.to_owned(),
                    "id" => event.id = Some(value.to_owned()),
                    "data" => {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(value);
                        has_data = true;
                    }
                    _ => {} // comments, retry
                }
            }
            if has_data {
                return Some(event);
            }
        }
    }
}
