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

/// A socket read buffer that starts small and grows while reads fill it:
/// an idle connection holds [`ReadBuf::MIN`] bytes, a busy one reaches
/// [`ReadBuf::MAX`] after a few reads (one read then takes up to that much).
#[derive(Debug)]
pub struct ReadBuf {
    buf: Vec<u8>,
}

impl Default for ReadBuf {
    fn default() -> Self {
        ReadBuf::new()
    }
}

impl ReadBuf {
    /// What an idle connection holds.
    pub const MIN: usize = 16 * 1024;
    /// What a busy one grows to.
    pub const MAX: usize = 256 * 1024;

    /// A buffer of [`ReadBuf::MIN`] bytes.
    pub fn new() -> ReadBuf {
        ReadBuf {
            buf: vec![0; Self::MIN],
        }
    }

    /// Where the next read goes.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// The `n` bytes a read put in; grows the buffer (×4, up to
    /// [`ReadBuf::MAX`]) when the read filled it.
    pub fn filled(&mut self, n: usize) -> &[u8] {
        if n == self.buf.len() && n < Self::MAX {
            // The bytes read are kept: they are at the front.
            self.buf.resize((n * 4).min(Self::MAX), 0);
        }
        &self.buf[..n.min(self.buf.len())]
    }

    /// Bytes held.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod read_buf_tests {
    use super::ReadBuf;

    #[test]
    fn grows_while_reads_fill_it_and_keeps_what_was_read() {
        let mut b = ReadBuf::new();
        assert_eq!(b.space().len(), ReadBuf::MIN);
        let space = b.space();
        space[0] = 7;
        let n = space.len();
        assert_eq!(b.filled(10).len(), 10, "a short read does not grow it");
        assert_eq!(b.space().len(), ReadBuf::MIN);
        let read = b.filled(n);
        assert_eq!((read.len(), read[0]), (n, 7));
        assert_eq!(b.space().len(), 4 * ReadBuf::MIN);
        for _ in 0..4 {
            let n = b.space().len();
            b.filled(n);
        }
        assert_eq!(b.space().len(), ReadBuf::MAX);
    }
}
