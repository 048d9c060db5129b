//! The relay's TCP edge: every accepted connection is wrapped in [`Conn`],
//! which gives every route one write timeout (`server.viewer_write_timeout`):
//! a peer that takes no bytes for that long gets its connection closed,
//! whatever it asked for (MJPEG, WebSocket, a snapshot). It also counts the
//! bytes the kernel has taken, so that a route can tell when what it handed
//! to hyper has really been written ([`ConnInfo::written_at_least`]).
//!
//! Sockets get `TCP_NOTSENT_LOWAT`, so the kernel keeps at most
//! [`NOTSENT_LOWAT`] unsent bytes per connection: a slow viewer's backlog
//! stays in the relay, where the newest frame replaces it, not in a queue.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Sleep;

/// Unsent bytes the kernel may hold per connection.
pub const NOTSENT_LOWAT: usize = 32 << 10;

/// What the routes can see of their connection.
#[derive(Debug)]
pub struct ConnInfo {
    written: watch::Sender<u64>,
    timed_out: AtomicBool,
    /// The peer's address, as accepted.
    pub peer: std::net::SocketAddr,
}

impl ConnInfo {
    fn new(peer: std::net::SocketAddr) -> ConnInfo {
        ConnInfo {
            written: watch::channel(0).0,
            timed_out: AtomicBool::new(false),
            peer,
        }
    }

    /// Bytes written to the socket so far.
    pub fn written(&self) -> u64 {
        *self.written.borrow()
    }

    /// Completes once at least `n` bytes have been written (never, if the
    /// connection stalls: the write timeout then closes it).
    pub fn written_at_least(&self, n: u64) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.written.subscribe();
        async move {
            let _ = rx.wait_for(|w| *w >= n).await;
        }
    }

    /// Was the connection closed because its peer stopped taking bytes?
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }
}

/// The handle routes extract (`ConnectInfo<ConnHandle>`).
#[derive(Debug, Clone)]
pub struct ConnHandle(pub Arc<ConnInfo>);

impl Connected<IncomingStream<'_, RelayListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, RelayListener>) -> Self {
        ConnHandle(stream.io().info.clone())
    }
}

/// A TCP listener whose connections are [`Conn`]s.
#[derive(Debug)]
pub struct RelayListener {
    inner: TcpListener,
    write_timeout: Duration,
}

impl RelayListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, write_timeout: Duration) -> RelayListener {
        RelayListener {
            inner,
            write_timeout,
        }
    }
}

impl Listener for RelayListener {
    type Io = Conn;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Conn, std::net::SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((s, addr)) => {
                    tune(&s);
                    return (Conn::new(s, addr, self.write_timeout), addr);
                }
                Err(e) => {
                    // Out of fds or memory: wait a moment instead of spinning.
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

/// Nagle off (frames are latency-bound) and a small kernel send queue.
fn tune(s: &TcpStream) {
    let _ = s.set_nodelay(true);
    use std::os::fd::AsRawFd;
    let v = NOTSENT_LOWAT as libc::c_int;
    // SAFETY: one int option on a TCP socket we own.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// A connection with a write timeout and a count of bytes written.
pub struct Conn {
    inner: TcpStream,
    info: Arc<ConnInfo>,
    timeout: Duration,
    /// Armed while a write waits for the socket.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Conn {
    fn new(inner: TcpStream, peer: std::net::SocketAddr, timeout: Duration) -> Conn {
        Conn {
            inner,
            info: Arc::new(ConnInfo::new(peer)),
            timeout,
            stalled: None,
        }
    }

    /// Turns a pending write into a timeout error once the socket has
    /// taken nothing for `timeout`; any progress disarms the timer.
    fn check<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    self.info.timed_out.store(true, Ordering::Relaxed);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the peer took no data for {} s (server.viewer_write_timeout)",
                            timeout.as_secs_f64()
                        ),
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.info.written.send_modify(|w| *w += n as u64);
        }
        self.check(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.info.written.send_modify(|w| *w += n as u64);
        }
        self.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_peer_that_takes_nothing_times_out_and_progress_disarms() {
        // A real socket pair whose reader never reads: writes stall once the
        // kernel buffers are full.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = l.accept().await.unwrap();
        let mut conn = Conn::new(server, peer, Duration::from_secs(10));
        let info = conn.info.clone();
        let chunk = vec![0u8; 64 << 10];
        let r = tokio::time::timeout(Duration::from_secs(3600), async {
            loop {
                conn.write_all(&chunk).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), io::Error>(())
        })
        .await
        .expect("the write timeout fires before an hour");
        let e = r.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(info.timed_out());
        assert!(info.written() > 0, "bytes were counted until the stall");
        drop(client);
    }
}
