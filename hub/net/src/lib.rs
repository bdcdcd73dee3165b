//! `locker-net`: bounds on connections before anyone has logged in, for the MQTT front door and
//! the web listener: how many one source address may hold, how many there may be in all, and how
//! long a connection may sit idle. A neighbour on the LAN opening a thousand idle sockets then holds a
//! few dozen of them for a few seconds, and a real bank or browser from another address still
//! gets in.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Counts the open connections of each source address and in all.
#[derive(Debug)]
pub struct SourceLimit {
    per_source: usize,
    total: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    limit: Arc<SourceLimit>,
    source: IpAddr,
}

impl SourceLimit {
    pub fn new(per_source: usize, total: usize) -> Arc<SourceLimit> {
        Arc::new(SourceLimit {
            per_source,
            total,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A place for a new connection from `source`, or `None` if the source or everyone together
    /// hold as many as allowed.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        let held = open.1.get(&source).copied().unwrap_or(0);
        if open.0 >= self.total || held >= self.per_source {
            return None;
        }
        open.0 += 1;
        *open.1.entry(source).or_default() += 1;
        Some(Slot {
            limit: self.clone(),
            source,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.limit.open.lock() {
            open.0 = open.0.saturating_sub(1);
            if let Some(n) = open.1.get_mut(&self.source) {
                *n -= 1;
                if *n == 0 {
                    open.1.remove(&self.source);
                }
            }
        }
    }
}

/// A stream that fails with `TimedOut` when its first bytes do not arrive within `first`, or
/// when nothing is read or written for `idle` after that.
pub struct Idle<S> {
    inner: S,
    timer: Pin<Box<Sleep>>,
    idle: Duration,
    _slot: Option<Slot>,
}

impl<S> Idle<S> {
    pub fn new(inner: S, first: Duration, idle: Duration, slot: Option<Slot>) -> Self {
        Idle {
            inner,
            timer: Box::pin(tokio::time::sleep(first)),
            idle,
            _slot: slot,
        }
    }

    fn progress(&mut self) {
        let at = Instant::now() + self.idle;
        self.timer.as_mut().reset(at);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timer.as_mut().poll(cx).is_ready()
    }
}

use std::future::Future;

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.progress();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if self.expired(cx) {
                    Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progress();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                if self.expired(cx) {
                    Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
                } else {
                    Poll::Pending
                }
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The web listener with these bounds: at most `SourceLimit` connections (others are closed at
/// once), each closed when idle.
pub struct LimitedListener<L> {
    pub inner: L,
    pub limit: Arc<SourceLimit>,
    pub first: Duration,
    pub idle: Duration,
}

impl<L> axum::serve::Listener for LimitedListener<L>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = Idle<L::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            match self.limit.admit(addr.ip()) {
                Some(slot) => return (Idle::new(io, self.first, self.idle, Some(slot)), addr),
                None => {
                    tracing::debug!(%addr, "web connection refused: too many open from this address or in all");
                    drop(io);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The web client's address, for handlers (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl<L> axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, LimitedListener<L>>>
    for Peer
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, LimitedListener<L>>) -> Self {
        Peer(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn one_source_cannot_take_every_place() {
        let limit = SourceLimit::new(2, 3);
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let b = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
        let s1 = limit.admit(a).unwrap();
        let _s2 = limit.admit(a).unwrap();
        assert!(limit.admit(a).is_none());
        let _s3 = limit.admit(b).unwrap();
        assert!(limit.admit(b).is_none(), "total reached");
        drop(s1);
        assert!(limit.admit(b).is_some());
    }

    #[tokio::test]
    async fn a_silent_stream_times_out() {
        use tokio::io::AsyncReadExt;
        let (client, _server) = tokio::io::duplex(64);
        let mut s = Idle::new(
            client,
            Duration::from_millis(50),
            Duration::from_secs(60),
            None,
        );
        let mut buf = [0u8; 8];
        let e = s.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
