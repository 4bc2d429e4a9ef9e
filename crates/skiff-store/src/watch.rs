//! The stream a watch hands out, and the live half shared by the local backends.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::sync::broadcast;

use crate::{Event, Revision, StoreError};

/// Events of one watch, in revision order. Ends after its first error.
pub struct WatchStream {
    inner: BoxStream<'static, Result<Event, StoreError>>,
    done: bool,
}

impl WatchStream {
    pub(crate) fn new(
        inner: impl Stream<Item = Result<Event, StoreError>> + Send + 'static,
    ) -> Self {
        WatchStream {
            inner: inner.boxed(),
            done: false,
        }
    }

    /// The next event; `None` once the stream has ended.
    pub async fn recv(&mut self) -> Option<Result<Event, StoreError>> {
        self.next().await
    }
}

impl Stream for WatchStream {
    type Item = Result<Event, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = self.inner.as_mut().poll_next(cx);
        match &item {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.done = true,
            _ => {}
        }
        item
    }
}

/// Live events from a backend's broadcast: those for `prefix` with revision > `after`.
///
/// The receiver must have been subscribed before the replay that covers revisions up to
/// `after` was read, so nothing falls between the two.
pub(crate) fn live(
    rx: broadcast::Receiver<Event>,
    prefix: String,
    after: Revision,
) -> impl Stream<Item = Result<Event, StoreError>> + Send + 'static {
    stream::unfold(Some(rx), move |rx| {
        let prefix = prefix.clone();
        async move {
            let mut rx = rx?;
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if event.revision() > after && event.kv.key.starts_with(&prefix) {
                            return Some((Ok(event), Some(rx)));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some((Err(StoreError::WatchLagged(n)), None));
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        return Some((Err(StoreError::Closed), None));
                    }
                }
            }
        }
    })
}
