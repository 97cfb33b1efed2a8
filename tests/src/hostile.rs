//! Misbehaving servers on loopback, for the hostile-server tests and the
//! response fuzzer: an HTTP/2 server on h2's server API whose answer to
//! each request is a script, and raw TCP servers that write bytes h2 would
//! never write.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What one request gets: the response's head, then data chunks (each
/// sent when the stream has room for it), then trailers or not.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The HTTP status. Default 200.
    pub status: u16,
    /// Response headers, in order (pseudo-headers excluded).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Body chunks, sent in turn.
    pub body: Vec<Bytes>,
    /// Trailers; `None` ends the stream with the last data frame.
    pub trailers: Option<Vec<(String, Vec<u8>)>>,
    /// Pause between chunks.
    pub pause: Duration,
    /// Keep the stream open after the body, without trailers (a server
    /// that stops answering mid-response).
    pub hang: bool,
}

impl Answer {
    /// A gRPC answer: 200, `application/grpc`, the framed `messages`, and
    /// trailers with `grpc-status` and `extra` trailers.
    pub fn grpc(messages: &[&[u8]], code: i32, extra: &[(&str, &[u8])]) -> Self {
        let mut trailers = vec![("grpc-status".to_owned(), code.to_string().into_bytes())];
        trailers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec())));
        Self {
            status: 200,
            headers: vec![("content-type".into(), b"application/grpc".to_vec())],
            body: messages.iter().map(|m| frame(m)).collect(),
            trailers: Some(trailers),
            ..Self::default()
        }
    }

    /// A trailers-only answer: the status in the response's head.
    pub fn trailers_only(code: i32, extra: &[(&str, &[u8])]) -> Self {
        let mut headers = vec![
            ("content-type".to_owned(), b"application/grpc".to_vec()),
            ("grpc-status".to_owned(), code.to_string().into_bytes()),
        ];
        headers.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec())));
        Self {
            status: 200,
            headers,
            ..Self::default()
        }
    }

    /// An error page as a proxy sends one: `status`, `text/html`, an HTML
    /// body, no gRPC at all.
    pub fn html(status: u16) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), b"text/html".to_vec())],
            body: vec![Bytes::from_static(
                b"<html><body><h1>Bad Gateway</h1>The upstream is gone.</body></html>",
            )],
            trailers: None,
            ..Self::default()
        }
    }
}

/// `message` with gRPC's 5-byte prefix.
pub fn frame(message: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(message.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    framed.into()
}

/// A `HelloReply` with `message`, encoded.
pub fn hello_reply(message: &str) -> Vec<u8> {
    use prost::Message;
    crate::helloworld::HelloReply {
        message: message.to_owned(),
    }
    .encode_to_vec()
}

/// What a scripted server saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Connections accepted.
    pub connections: AtomicUsize,
    /// Requests (streams) received.
    pub requests: AtomicUsize,
    /// The reasons of the client's resets of answered streams.
    pub resets: Mutex<Vec<h2::Reason>>,
}

impl Seen {
    /// How many streams the client reset with CANCEL.
    pub fn cancels(&self) -> usize {
        self.resets
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == h2::Reason::CANCEL)
            .count()
    }
}

/// Picks the answer to one request (it sees the request's head).
pub type Script = Arc<dyn Fn(&http::request::Parts) -> Answer + Send + Sync>;

/// An HTTP/2 server on a free loopback port that answers every request as
/// `script` says, with h2's server `builder`; its `http://` URI.
pub async fn serve_scripted(builder: h2::server::Builder, script: Script) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let accepted = seen.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            accepted.connections.fetch_add(1, Ordering::SeqCst);
            let builder = builder.clone();
            let (script, seen) = (script.clone(), accepted.clone());
            tokio::spawn(async move {
                let Ok(mut connection) = builder.handshake::<_, Bytes>(socket).await else {
                    return;
                };
                while let Some(Ok((request, respond))) = connection.accept().await {
                    seen.requests.fetch_add(1, Ordering::SeqCst);
                    let (head, body) = request.into_parts();
                    let answer = script(&head);
                    tokio::spawn(answer_with(answer, body, respond, seen.clone()));
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

async fn answer_with(
    answer: Answer,
    mut body: h2::RecvStream,
    mut respond: h2::server::SendResponse<Bytes>,
    seen: Arc<Seen>,
) {
    // Read the request to its end (within flow control), so that the
    // client's upload finishes.
    tokio::spawn(async move {
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
        }
    });
    let mut response = http::Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(name.as_str(), value.as_slice());
    }
    let Ok(response) = response.body(()) else {
        return;
    };
    let end_at_head = answer.body.is_empty() && answer.trailers.is_none() && !answer.hang;
    let Ok(mut stream) = respond.send_response(response, end_at_head) else {
        return;
    };
    if end_at_head {
        return;
    }
    let last = answer.body.len();
    for (i, chunk) in answer.body.into_iter().enumerate() {
        let end = i + 1 == last && answer.trailers.is_none() && !answer.hang;
        if !send_within_window(&mut stream, chunk, end, &seen).await {
            return;
        }
        if !answer.pause.is_zero() {
            tokio::time::sleep(answer.pause).await;
        }
    }
    if let Some(trailers) = answer.trailers {
        let mut map = http::HeaderMap::new();
        for (name, value) in trailers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_bytes(&value),
            ) {
                map.append(name, value);
            }
        }
        let _ = stream.send_trailers(map);
    }
    // Wait for the client's reset, or the stream's end.
    if let Ok(reason) = std::future::poll_fn(|cx| stream.poll_reset(cx)).await {
        seen.resets.lock().unwrap().push(reason);
    }
}

/// Sends `chunk` as the stream's window allows; false once the client
/// reset the stream (recorded in `seen`).
async fn send_within_window(
    stream: &mut h2::SendStream<Bytes>,
    mut chunk: Bytes,
    end: bool,
    seen: &Seen,
) -> bool {
    if chunk.is_empty() {
        return stream.send_data(chunk, end).is_ok();
    }
    while !chunk.is_empty() {
        stream.reserve_capacity(chunk.len());
        let granted = std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(reset) = stream.poll_reset(cx) {
                return std::task::Poll::Ready(Err(reset));
            }
            stream.poll_capacity(cx).map(Ok)
        })
        .await;
        let granted = match granted {
            Ok(Some(Ok(granted))) => granted,
            Err(Ok(reason)) => {
                seen.resets.lock().unwrap().push(reason);
                return false;
            }
            _ => return false,
        };
        let piece = chunk.split_to(granted.min(chunk.len()));
        if stream.send_data(piece, end && chunk.is_empty()).is_err() {
            return false;
        }
    }
    true
}

/// A TCP server on a free loopback port that writes `bytes` to every
/// connection once the client's first bytes arrive, then keeps it open
/// (reading and dropping whatever comes) until the client goes; its
/// `http://` URI and the connections it accepted.
pub async fn serve_raw(bytes: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(write_then_drain(socket, bytes.clone()));
        }
    });
    (format!("http://{addr}"), accepted)
}

async fn write_then_drain(mut socket: TcpStream, bytes: Vec<u8>) {
    let mut buf = vec![0; 4096];
    if matches!(socket.read(&mut buf).await, Ok(0) | Err(_)) {
        return;
    }
    if socket.write_all(&bytes).await.is_err() {
        return;
    }
    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
}

/// A listener that accepts and never sends a byte; its URI.
pub async fn serve_silent() -> (String, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}"), addr)
}

/// One HTTP/2 frame, encoded.
pub fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut bytes = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A server SETTINGS frame (no settings) and a GOAWAY with `code` and
/// `debug` data: a server that goes away as it starts.
pub fn settings_then_goaway(code: u32, debug: &[u8]) -> Vec<u8> {
    let mut bytes = h2_frame(0x4, 0, 0, &[]);
    let mut payload = 0u32.to_be_bytes().to_vec();
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(debug);
    bytes.extend(h2_frame(0x7, 0, 0, &payload));
    bytes
}

/// The process's resident memory, in bytes (Linux).
pub fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}
