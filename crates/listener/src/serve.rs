//! HTTP/1.1 on a listener, within [`ListenerLimits`].
//!
//! Each accepted connection must first be admitted ([`crate::admission`]):
//! by the listener's cap, the client's cap and the process's budget; a
//! refused one gets `503` with the reason and is closed. An admitted one is
//! served by hyper with a request-head timeout (hyper restarts it whenever
//! the connection goes idle, so it is also the keep-alive idle timeout), a
//! cap on the head's bytes, and each request's body wrapped in a
//! [`TimedBody`]. Upgrades (WebSocket) are supported; what an upgraded
//! connection may hold is the service's to bound (the node's RPC counts
//! WebSockets separately).
//!
//! `accept` failing (out of descriptors, in spite of the budget) is logged
//! at most once a second and retried after a pause, never fatal.

use crate::admission::Admission;
use crate::budget::ProcessBudget;
use crate::timed_body::TimedBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What a listener allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Most connections open at once on this listener.
    pub connections_max: usize,
    /// Most connections open at once from one client address.
    pub connections_per_client_max: usize,
    /// Longest a client may take to send a request's head, and longest a
    /// kept-alive connection may sit idle between requests.
    pub header_read_timeout: Duration,
    /// Longest a client may take to send a request's body, from the end of
    /// its head.
    pub body_read_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub head_bytes_max: usize,
}

impl ListenerLimits {
    /// A worker's gateway: many clients, each a few connections.
    pub fn gateway() -> ListenerLimits {
        ListenerLimits {
            connections_max: 4_096,
            connections_per_client_max: 256,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            head_bytes_max: 64 * 1024,
        }
    }

    /// A node's JSON-RPC (HTTP; WebSockets have their own caps, see the node).
    pub fn rpc() -> ListenerLimits {
        ListenerLimits {
            connections_max: 1_024,
            connections_per_client_max: 64,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            head_bytes_max: 64 * 1024,
        }
    }

    /// A `/metrics` endpoint: a scraper or two.
    pub fn metrics() -> ListenerLimits {
        ListenerLimits {
            connections_max: 64,
            connections_per_client_max: 8,
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(5),
            head_bytes_max: 16 * 1024,
        }
    }
}

/// The error type of boxed service errors.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Adapts a tower service to hyper, with each body under its deadline.
#[derive(Clone, Debug)]
struct Limited<S> {
    inner: S,
    body_read_timeout: Duration,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Limited<S>
where
    S: tower::Service<Request<TimedBody<Incoming>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, S::Error>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let request = request.map(|body| TimedBody::new(body, self.body_read_timeout));
        Box::pin(tower::ServiceExt::oneshot(self.inner.clone(), request))
    }
}

/// The answer to a refused connection.
fn refusal(reason: &str) -> Vec<u8> {
    let body = format!("{reason}; retry later\n");
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves HTTP/1.1 on `listener` until the task is dropped; `service` makes
/// the service for a connection from a client address. `name` labels the
/// logs.
pub async fn serve<M, S, B>(listener: TcpListener, limits: ListenerLimits, name: &'static str, mut service: M)
where
    M: FnMut(SocketAddr) -> S,
    S: tower::Service<Request<TimedBody<Incoming>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let admission = Admission::new(
        limits.connections_max,
        limits.connections_per_client_max,
        Some(ProcessBudget::global().clone()),
    );
    let mut last_error: Option<Instant> = None;
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                if last_error.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(listener = name, %error, "cannot accept a connection; retrying");
                    last_error = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = match admission.try_admit(client.ip()) {
            Ok(admitted) => admitted,
            Err(refused) => {
                tracing::debug!(listener = name, %client, %refused, "connection refused");
                // A fresh socket's send buffer is empty: this never blocks.
                let _ = stream.try_write(&refusal(&refused.to_string()));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let hyper_service = Limited { inner: service(client), body_read_timeout: limits.body_read_timeout };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.head_bytes_max.max(8 * 1024));
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), hyper_service).with_upgrades();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(listener = name, %client, %error, "connection ended");
            }
            drop(admitted);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::{Read, Write};

    /// Echoes the body's length, or says the body timed out.
    #[derive(Clone)]
    struct Echo;

    impl tower::Service<Request<TimedBody<Incoming>>> for Echo {
        type Response = Response<http_body_util::Full<bytes::Bytes>>;
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<TimedBody<Incoming>>) -> Self::Future {
            Box::pin(async move {
                let text = match request.into_body().collect().await {
                    Ok(body) => format!("{} bytes", body.to_bytes().len()),
                    Err(error) => format!("body: {error}"),
                };
                Ok(Response::new(http_body_util::Full::new(bytes::Bytes::from(text))))
            })
        }
    }

    fn exchange(port: u16, request: &[u8]) -> String {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        stream.write_all(request).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_and_surplus_connections_are_cut_and_others_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let limits = ListenerLimits {
            connections_max: 8,
            connections_per_client_max: 4,
            // Long enough that the held heads below outlive a loaded
            // machine's scheduling delays (at 300 ms, CI once cut one before
            // the fifth connection arrived, and served that one).
            header_read_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_millis(300),
            head_bytes_max: 8 * 1024,
        };
        let server = tokio::spawn(serve(listener, limits, "test", |_| Echo));
        let answers = tokio::task::spawn_blocking(move || {
            let ok = exchange(port, b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc");
            assert!(ok.ends_with("3 bytes"), "{ok}");
            // Four connections hold a head open: a fifth from the same client is refused at once.
            let held: Vec<std::net::TcpStream> = (0..4)
                .map(|_| {
                    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                    stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").unwrap();
                    stream
                })
                .collect();
            std::thread::sleep(Duration::from_millis(50));
            let refused = exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            assert!(
                refused.starts_with("HTTP/1.1 503") && refused.contains("this client holds its limit"),
                "{refused}"
            );
            // The unfinished heads are cut at the head timeout, which frees the client's places.
            for mut stream in held {
                stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut rest = Vec::new();
                let started = Instant::now();
                let _ = stream.read_to_end(&mut rest);
                assert!(started.elapsed() < Duration::from_secs(3), "an unfinished head is cut");
            }
            let ok = exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
            // A body trickled past its deadline ends the read with the timeout.
            let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            slow.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\nconnection: close\r\n\r\nab").unwrap();
            slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut answer = Vec::new();
            let _ = slow.read_to_end(&mut answer);
            String::from_utf8_lossy(&answer).into_owned()
        })
        .await
        .unwrap();
        assert!(answers.contains("did not arrive within"), "{answers}");
        server.abort();
    }
}
