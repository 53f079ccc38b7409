//! A request body that must arrive within a deadline: a client trickling
//! its body a byte at a time holds its connection and the handler reading
//! it only until then.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The error a body read ends with when its deadline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(pub Duration);

/// `B`, failing with [`BodyTimeout`] once its deadline passes unfinished.
#[derive(Debug)]
pub struct TimedBody<B> {
    inner: B,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B> TimedBody<B> {
    /// `inner`, due within `limit` from now.
    pub fn new(inner: B, limit: Duration) -> TimedBody<B> {
        TimedBody { inner, limit, deadline: Box::pin(tokio::time::sleep(limit)) }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout(this.limit))))),
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
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn a_body_arriving_late_fails_and_one_in_time_passes() {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let stream = futures::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        let body = TimedBody::new(StreamBody::new(stream), Duration::from_millis(200));
        sender.send(Ok(Frame::data(Bytes::from_static(b"first")))).await.unwrap();
        // The rest never comes: the read ends at the deadline, with the timeout.
        let error = body.collect().await.unwrap_err();
        assert_eq!(error.downcast_ref::<BodyTimeout>(), Some(&BodyTimeout(Duration::from_millis(200))));

        let whole =
            TimedBody::new(http_body_util::Full::new(Bytes::from_static(b"all of it")), Duration::from_millis(200));
        assert_eq!(whole.collect().await.unwrap().to_bytes(), Bytes::from_static(b"all of it"));
    }
}
