//! A connection (plain TCP or TLS, [`Stream`]) split into a read half and a
//! write half that two tasks of the same executor can drive at once. Both
//! halves share the stream through `Rc<RefCell<_>>`, borrowed only inside
//! `poll_*` (never across an await).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

pub use crate::tls::Stream;

/// Read half.
pub struct ReadHalf(Rc<RefCell<Stream>>);

/// Write half.
pub struct WriteHalf(Rc<RefCell<Stream>>);

/// Splits a stream.
pub fn split(stream: impl Into<Stream>) -> (ReadHalf, WriteHalf) {
    let s = Rc::new(RefCell::new(stream.into()));
    (ReadHalf(s.clone()), WriteHalf(s))
}

impl From<glommio::net::TcpStream> for Stream {
    fn from(s: glommio::net::TcpStream) -> Stream {
        Stream::Plain(s)
    }
}

impl ReadHalf {
    /// Sets the read timeout (heartbeat enforcement, handshake deadline).
    ///
    /// # Errors
    /// A zero duration.
    pub fn set_timeout(&self, t: Option<std::time::Duration>) -> io::Result<()> {
        self.0
            .borrow()
            .tcp()
            .set_read_timeout(t)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.0.borrow_mut();
        Pin::new(&mut *s).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut s = self.0.borrow_mut();
        Pin::new(&mut *s).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.0.borrow_mut();
        Pin::new(&mut *s).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut s = self.0.borrow_mut();
        Pin::new(&mut *s).poll_close(cx)
    }
}
