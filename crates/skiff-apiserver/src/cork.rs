//! A connection's writes, corked until the tasks that are ready have had their turn.
//!
//! An HTTP/2 connection task writes whatever frames its streams have queued and flushes. When
//! an event wakes thousands of watch streams, each stream queues one frame and wakes the
//! connection task, and tokio runs a task woken by the running one next: the connection would
//! flush after every single frame, one TLS record and one `write` system call per watcher per
//! event. `Corked` buffers writes and answers the first flush by yielding once (the task goes
//! to the back of the run queue) so that the other ready streams queue their frames first, and
//! again while they keep adding frames (a bounded number of times); then it writes them all at
//! once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Past this many buffered bytes a flush goes out without yielding first.
const FLUSH_NOW: usize = 64 * 1024;
/// At most this many yields before a flush writes.
const MAX_YIELDS: u32 = 16;

pub struct Corked<T> {
    inner: T,
    buf: Vec<u8>,
    /// How much of `buf` the inner writer has taken.
    written: usize,
    /// How many flushes in a row yielded, and the buffer's length at the last of them.
    yields: u32,
    len_at_yield: usize,
}

impl<T> Corked<T> {
    pub fn new(inner: T) -> Corked<T> {
        Corked {
            inner,
            buf: Vec::new(),
            written: 0,
            yields: 0,
            len_at_yield: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> Corked<T> {
    /// Hands the whole buffer to the inner writer.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        if self.buf.capacity() > 4 * FLUSH_NOW {
            self.buf.shrink_to(FLUSH_NOW);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Corked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Corked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.buf.len() >= FLUSH_NOW {
            ready!(this.poll_drain(cx))?;
        }
        let mut n = 0;
        for b in bufs {
            this.buf.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.buf.is_empty() {
            this.yields = 0;
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        let growing = this.yields == 0 || this.buf.len() > this.len_at_yield;
        if growing && this.yields < MAX_YIELDS && this.buf.len() < FLUSH_NOW {
            // Let the other ready tasks run (and queue their frames) before writing, for as
            // long as they keep adding to what goes out.
            this.yields += 1;
            this.len_at_yield = this.buf.len();
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        ready!(this.poll_drain(cx))?;
        this.yields = 0;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A writer that counts its writes and takes at most `chunk` bytes per write.
    struct Counting {
        data: Vec<u8>,
        writes: usize,
        chunk: usize,
        flushes: usize,
        shut: bool,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.chunk);
            self.data.extend_from_slice(&buf[..n]);
            self.writes += 1;
            Poll::Ready(Ok(n))
        }
        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut = true;
            Poll::Ready(Ok(()))
        }
    }

    fn counting(chunk: usize) -> Corked<Counting> {
        Corked::new(Counting {
            data: Vec::new(),
            writes: 0,
            chunk,
            flushes: 0,
            shut: false,
        })
    }

    #[tokio::test]
    async fn writes_between_flushes_go_out_together() {
        let mut c = counting(usize::MAX);
        for i in 0..100u8 {
            c.write_all(&[i; 10]).await.expect("buffered");
        }
        assert_eq!(c.inner.writes, 0, "nothing is written before a flush");
        c.flush().await.expect("flushed");
        assert_eq!(c.inner.writes, 1);
        assert_eq!(c.inner.flushes, 1);
        assert_eq!(c.inner.data.len(), 1000);
        assert!(c.inner.data[..10].iter().all(|b| *b == 0));
        assert!(c.inner.data[990..].iter().all(|b| *b == 99));
    }

    #[tokio::test]
    async fn the_first_flush_yields_once() {
        let mut c = counting(usize::MAX);
        c.write_all(b"frame").await.expect("buffered");
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_pending());
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
        assert_eq!(c.inner.data, b"frame");
        // Nothing buffered: a flush passes straight through.
        assert!(Pin::new(&mut c).poll_flush(&mut cx).is_ready());
        assert_eq!(c.inner.writes, 1);
    }

    #[tokio::test]
    async fn partial_inner_writes_keep_every_byte_in_order() {
        let mut c = counting(7);
        let payload: Vec<u8> = (0..=255u8).cycle().take(FLUSH_NOW * 3).collect();
        for part in payload.chunks(1000) {
            c.write_all(part).await.expect("buffered");
        }
        c.shutdown().await.expect("shut down");
        assert_eq!(c.inner.data, payload);
        assert!(c.inner.shut);
    }

    #[tokio::test]
    async fn reads_pass_through() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut c = Corked::new(a);
        b.write_all(b"hello").await.expect("written");
        let mut got = [0u8; 5];
        c.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hello");
        c.write_all(b"back").await.expect("buffered");
        c.flush().await.expect("flushed");
        let mut back = [0u8; 4];
        b.read_exact(&mut back).await.expect("read back");
        assert_eq!(&back, b"back");
    }
}
