//! A TCP proxy whose link a test can cut, in each of the ways a
//! connection can break: closed, reset, half-closed, or silent (packets
//! dropped, or the far side no longer reading) without closing.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the link is cut. "Near" is the side that connected to the proxy
/// (e.g. the gateway), "far" the side the proxy connected to (e.g. the
/// broker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Cut {
    /// Not cut: everything is forwarded.
    None,
    /// FIN to both sides.
    Close,
    /// RST to both sides (`SO_LINGER` 0).
    Reset,
    /// FIN to the far side only; far -> near still flows.
    HalfToFar,
    /// FIN to the near side only; near -> far still flows.
    HalfToNear,
    /// Both directions read and dropped; nothing closed.
    BlackHole,
    /// near -> far dropped; far -> near still flows.
    BlackHoleToFar,
    /// far -> near dropped; near -> far still flows.
    BlackHoleToNear,
    /// Neither side read any more; nothing closed.
    Stall,
}

impl Cut {
    /// Every way to cut, for tests that try them all.
    pub const ALL: [Cut; 8] = [
        Cut::Close,
        Cut::Reset,
        Cut::HalfToFar,
        Cut::HalfToNear,
        Cut::BlackHole,
        Cut::BlackHoleToFar,
        Cut::BlackHoleToNear,
        Cut::Stall,
    ];

    fn from_u8(v: u8) -> Cut {
        Cut::ALL
            .into_iter()
            .find(|c| *c as u8 == v)
            .unwrap_or(Cut::None)
    }

    /// Whether bytes going `to_far` still get through.
    fn forwards(self, to_far: bool) -> bool {
        match self {
            Cut::None => true,
            Cut::HalfToFar | Cut::BlackHoleToFar => !to_far,
            Cut::HalfToNear | Cut::BlackHoleToNear => to_far,
            _ => false,
        }
    }
}

/// One proxied connection: the near and far sockets, one fd each (the
/// pumps share them), so dropping the last `Arc` closes the socket.
struct Link {
    near: Arc<TcpStream>,
    far: Arc<TcpStream>,
    /// How it is cut (a `Cut`).
    cut: Arc<AtomicU8>,
}

/// A proxy to one address. [`Proxy::cut`] cuts the connections made so
/// far; later ones are forwarded.
pub struct Proxy {
    /// The address to connect to instead of the target.
    pub addr: SocketAddr,
    links: Arc<Mutex<Vec<Link>>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let links = Arc::new(Mutex::new(Vec::new()));
        let l = links.clone();
        std::thread::spawn(move || {
            for near in listener.incoming() {
                let Ok(near) = near else { return };
                let Ok(far) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = (near.set_nodelay(true), far.set_nodelay(true));
                let (near, far) = (Arc::new(near), Arc::new(far));
                let cut = Arc::new(AtomicU8::new(Cut::None as u8));
                pump(near.clone(), far.clone(), true, cut.clone());
                pump(far.clone(), near.clone(), false, cut.clone());
                l.lock().unwrap().push(Link { near, far, cut });
            }
        });
        Proxy { addr, links }
    }

    /// Cuts every connection made so far, as `how` says.
    pub fn cut(&self, how: Cut) {
        let mut links = self.links.lock().unwrap();
        for link in links.iter() {
            link.cut.store(how as u8, Ordering::SeqCst);
            match how {
                Cut::Close => {
                    let _ = link.near.shutdown(Shutdown::Both);
                    let _ = link.far.shutdown(Shutdown::Both);
                }
                Cut::Reset => {
                    for s in [&link.near, &link.far] {
                        let _ = socket2::SockRef::from(&**s).set_linger(Some(Duration::ZERO));
                        // Wakes the pumps, which then drop their handles.
                        let _ = s.shutdown(Shutdown::Read);
                    }
                }
                Cut::HalfToFar => {
                    let _ = link.far.shutdown(Shutdown::Write);
                }
                Cut::HalfToNear => {
                    let _ = link.near.shutdown(Shutdown::Write);
                }
                _ => {}
            }
        }
        if how == Cut::Reset {
            // The last handles: the sockets close with a reset.
            links.clear();
        }
    }
}

/// Copies `from` to `to` on a thread of its own while the cut lets it.
fn pump(from: Arc<TcpStream>, to: Arc<TcpStream>, to_far: bool, cut: Arc<AtomicU8>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let now = Cut::from_u8(cut.load(Ordering::SeqCst));
            if now == Cut::Stall {
                // Hold the sockets open, read nothing.
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            if now == Cut::Reset {
                return;
            }
            let n = match (&*from).read(&mut buf) {
                Ok(0) | Err(_) => {
                    if Cut::from_u8(cut.load(Ordering::SeqCst)).forwards(to_far) {
                        let _ = to.shutdown(Shutdown::Write);
                    }
                    return;
                }
                Ok(n) => n,
            };
            let now = Cut::from_u8(cut.load(Ordering::SeqCst));
            if now.forwards(to_far) && (&*to).write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
}
