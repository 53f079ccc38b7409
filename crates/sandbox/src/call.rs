//! The host's side of one agent call: where the agent's response goes.
//!
//! The prelude hands the response over with `respond(status, headers, body)`
//! (body `null` when it will stream) and then `write(chunk)` per streamed
//! chunk. A body known whole goes out at once as one
//! [`ResponsePart::Complete`] (before any `waitUntil` work finishes, when
//! the channel has room). A streamed body goes out as a
//! [`ResponsePart::Head`] with the first chunk, then [`ResponsePart::Body`]
//! chunks, so it reaches the client while the agent is still producing it;
//! the channel's capacity is the backpressure.

use std::sync::Mutex;
use tokio::sync::mpsc;

/// Status and headers of an agent's response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Lowercased names, sorted, as `Headers` iterates them.
    pub headers: Vec<(String, String)>,
}

/// What a call sends to its caller: one `Complete`, or one `Head` followed
/// by `Body` chunks (the end of the channel ends the body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponsePart {
    /// A response whose body was known whole.
    Complete(ResponseHead, Vec<u8>),
    /// The head of a streamed response.
    Head(ResponseHead),
    /// The next chunk of a streamed body.
    Body(Vec<u8>),
}

/// Why the response could not be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Undeliverable {
    /// The body grew past the limit.
    TooLarge,
    /// The receiver is gone (the client disconnected).
    Closed,
    /// `respond` twice, or `write` without a streaming `respond`.
    OutOfOrder,
}

#[derive(Debug, Default)]
struct Inner {
    sink: Option<mpsc::Sender<ResponsePart>>,
    head: Option<ResponseHead>,
    /// A body given in one piece that did not fit the channel yet.
    body: Option<Vec<u8>>,
    responded: bool,
    streaming: bool,
    body_bytes: usize,
    body_bytes_max: usize,
    failure: Option<Undeliverable>,
}

/// Per-sandbox slot for the call in progress (a sandbox runs one call at a time).
#[derive(Debug, Default)]
pub(crate) struct Call {
    inner: Mutex<Inner>,
}

impl Call {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a call whose response goes to `sink`.
    pub(crate) fn start(&self, sink: mpsc::Sender<ResponsePart>, body_bytes_max: usize) {
        *self.lock() = Inner { sink: Some(sink), body_bytes_max, ..Inner::default() };
    }

    /// Ends the call: drops the sink so the receiver sees the end. Returns
    /// why the response could not be delivered, if so, and how many body
    /// bytes the agent handed over.
    pub(crate) fn finish(&self) -> (Option<Undeliverable>, usize) {
        let mut inner = self.lock();
        let (failure, bytes) = (inner.failure, inner.body_bytes);
        *inner = Inner::default();
        (failure, bytes)
    }

    fn fail(inner: &mut Inner, failure: Undeliverable) -> Undeliverable {
        inner.failure.get_or_insert(failure);
        failure
    }

    /// The agent's response head, with its whole body or `None` if it streams.
    pub(crate) fn respond(&self, head: ResponseHead, body: Option<Vec<u8>>) -> Result<(), Undeliverable> {
        let mut inner = self.lock();
        if inner.responded {
            return Err(Self::fail(&mut inner, Undeliverable::OutOfOrder));
        }
        inner.responded = true;
        if let Some(body) = &body {
            if body.len() > inner.body_bytes_max {
                return Err(Self::fail(&mut inner, Undeliverable::TooLarge));
            }
            inner.body_bytes = body.len();
        }
        inner.streaming = body.is_none();
        match body {
            None => inner.head = Some(head),
            Some(body) => match inner.sink.as_ref().map(|sink| sink.try_send(ResponsePart::Complete(head, body))) {
                Some(Err(mpsc::error::TrySendError::Full(ResponsePart::Complete(head, body)))) => {
                    inner.head = Some(head);
                    inner.body = Some(body);
                }
                Some(Err(mpsc::error::TrySendError::Closed(_))) => {
                    return Err(Self::fail(&mut inner, Undeliverable::Closed));
                }
                _ => {}
            },
        }
        Ok(())
    }

    /// One streamed chunk: sends the head first if it has not gone yet.
    pub(crate) async fn write(&self, chunk: Vec<u8>) -> Result<(), Undeliverable> {
        let (sink, head) = {
            let mut inner = self.lock();
            if !inner.streaming {
                return Err(Self::fail(&mut inner, Undeliverable::OutOfOrder));
            }
            inner.body_bytes += chunk.len();
            if inner.body_bytes > inner.body_bytes_max {
                return Err(Self::fail(&mut inner, Undeliverable::TooLarge));
            }
            let Some(sink) = inner.sink.clone() else { return Err(Self::fail(&mut inner, Undeliverable::Closed)) };
            (sink, inner.head.take())
        };
        let sent = async {
            if let Some(head) = head {
                sink.send(ResponsePart::Head(head)).await?;
            }
            if !chunk.is_empty() {
                sink.send(ResponsePart::Body(chunk)).await?;
            }
            Ok::<_, mpsc::error::SendError<ResponsePart>>(())
        };
        sent.await.map_err(|_| Self::fail(&mut self.lock(), Undeliverable::Closed))
    }

    /// After the agent's promise settled: sends what has not gone yet (the
    /// head of an empty stream, or a one-piece response).
    pub(crate) async fn flush(&self) -> Result<(), Undeliverable> {
        let (sink, head, body) = {
            let mut inner = self.lock();
            if let Some(failure) = inner.failure {
                return Err(failure);
            }
            let Some(sink) = inner.sink.clone() else { return Ok(()) };
            (sink, inner.head.take(), inner.body.take())
        };
        let sent = async {
            match (head, body) {
                (Some(head), Some(body)) => sink.send(ResponsePart::Complete(head, body)).await?,
                (Some(head), None) => sink.send(ResponsePart::Head(head)).await?,
                _ => {}
            }
            Ok::<_, mpsc::error::SendError<ResponsePart>>(())
        };
        sent.await.map_err(|_| Self::fail(&mut self.lock(), Undeliverable::Closed))
    }

    /// Whether `respond` was called.
    pub(crate) fn responded(&self) -> bool {
        self.lock().responded
    }
}
