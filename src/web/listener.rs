//! The HTTP listener with Prometheus's `--web.max-connections`: at most that many
//! connections are open at once; further clients wait in the kernel's accept queue until one
//! closes, as Go's `netutil.LimitListener` makes Prometheus do, so many slow or idle clients
//! cannot exhaust the server's file descriptors or memory. With a web configuration that
//! asks for TLS, each connection is handshaken with the TLS settings in force when it was
//! accepted.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::WebConfigFile;
use super::stream::Stream;

/// A TCP listener that accepts only while fewer than its limit of connections are open.
pub struct LimitedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    web: Option<Arc<WebConfigFile>>,
}

impl LimitedListener {
    /// `max_connections` of 0 means no limit.
    pub fn new(
        inner: TcpListener,
        max_connections: usize,
        web: Option<Arc<WebConfigFile>>,
    ) -> LimitedListener {
        let limit = match max_connections {
            0 => Semaphore::MAX_PERMITS,
            n => n.min(Semaphore::MAX_PERMITS),
        };
        LimitedListener {
            inner,
            permits: Arc::new(Semaphore::new(limit)),
            web,
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = (self.permits.clone().acquire_owned().await)
            .expect("the connection semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let tls = self.web.as_ref().and_then(|web| web.current().tls.clone());
                    let stream = LimitedStream {
                        stream: match tls {
                            Some(config) => Stream::tls(stream, config.into()),
                            None => Stream::Plain(stream),
                        },
                        _permit: permit,
                    };
                    return (stream, addr);
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning, as
                    // axum's own listener does.
                    tracing::warn!(error = %e, "accepting an HTTP connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection; its slot frees when it is dropped.
pub struct LimitedStream {
    stream: Stream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
