//! Listening sockets: a probe that refuses a port another process serves,
//! `SO_REUSEPORT` listeners (one per executor on the same port) and an
//! accept loop that ends when a latch is set.

use std::net::SocketAddr;
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};
use tracing::warn;

use crate::local::Latch;

/// Checks that nothing listens on `addr` and resolves port 0 to a free
/// port. The executors' listeners use `SO_REUSEPORT`, which would let a
/// second process bind the same port silently; a connect attempt finds a
/// live one.
///
/// # Errors
/// `AddrInUse` when something accepts connections there; bind errors.
pub fn probe(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    if addr.port() != 0 {
        let target = if addr.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        };
        // A listener of a process that was just killed can live on for a
        // moment (io_uring tears down asynchronously) and still complete
        // handshakes; a live server keeps answering. A connection to a free
        // port can also connect to itself (TCP simultaneous open).
        let mut answered = 0;
        for _ in 0..10 {
            match std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)) {
                Ok(s) if s.local_addr().ok() != s.peer_addr().ok() => answered += 1,
                _ => return Ok(addr),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if answered > 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("something already accepts connections on {addr}"),
            ));
        }
        return Ok(addr);
    }
    let domain = socket2::Domain::for_address(addr);
    let sk = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sk.set_reuse_address(true)?;
    sk.bind(&addr.into())?;
    sk.local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("bound address is not an IP address"))
}

/// Binds a listener with `SO_REUSEPORT` (one per executor on the same
/// port) and `SO_REUSEADDR` (so a restarted process can bind while
/// connections of the previous one linger in TIME_WAIT; glommio's own
/// `bind` omits it).
///
/// # Errors
/// The address cannot be bound.
#[allow(unsafe_code)]
pub fn bind_reuse(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let domain = socket2::Domain::for_address(addr);
    let sk = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sk.set_reuse_address(true)?;
    sk.set_reuse_port(true)?;
    sk.bind(&addr.into())?;
    sk.listen(1024)?;
    let fd = sk.into_raw_fd();
    // SAFETY: `fd` is a listening TCP socket we just created and own;
    // ownership moves into the glommio listener, which closes it on drop.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

/// Binds a listener of this executor alone (`SO_REUSEADDR`, no
/// `SO_REUSEPORT`): a shard's own port.
///
/// # Errors
/// The address cannot be bound (also when another socket has it).
#[allow(unsafe_code)]
pub fn bind_exclusive(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let domain = socket2::Domain::for_address(addr);
    let sk = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    sk.set_reuse_address(true)?;
    sk.bind(&addr.into())?;
    sk.listen(1024)?;
    let fd = sk.into_raw_fd();
    // SAFETY: as in `bind_reuse`: a listening socket we own, handed over.
    Ok(unsafe { TcpListener::from_raw_fd(fd) })
}

/// The next connection, or `None` once `stopping` is set. A failed accept
/// (too many open files, a connection reset before it was taken) is logged
/// and retried after a short pause.
pub async fn accept_until(listener: &TcpListener, stopping: &Latch) -> Option<TcpStream> {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stopping.wait().await;
            None
        })
        .await;
        match accepted {
            None => return None,
            Some(Ok(_)) if stopping.is_set() => return None,
            Some(Ok(stream)) => return Some(stream),
            Some(Err(e)) => {
                warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
