//! Accepts connections on one shard's `SO_REUSEPORT` listeners: the
//! plain one, and the TLS one when configured (the handshake runs in the
//! connection's own task, with a deadline, so a client that stalls or
//! speaks plain TCP to it holds up nobody).

use std::rc::Rc;

use glommio::net::TcpListener;
use ringmq_rt::connection::Stream;
use ringmq_rt::listener::accept_until;
use ringmq_rt::tls::TlsAcceptor;
use tracing::info;

use crate::net::session::Session;
use crate::shard::Shard;

/// Accepts until the shard starts shutting down.
pub async fn serve(listener: TcpListener, shard: Rc<Shard>) {
    while let Some(stream) = accept_until(&listener, &shard.stopping).await {
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        let pass = shard.gate.enter();
        // Past `connection_max` the session only answers the Hello with
        // the refusal.
        let admitted = shard.resources.admit();
        let local = stream.local_addr().unwrap_or(peer);
        let session = Session::new(shard.clone(), (peer, local), admitted);
        glommio::spawn_local(session.run(Stream::Plain(stream), pass)).detach();
    }
    info!(shard = shard.id, "listener closed");
}

/// Accepts TLS connections until the shard starts shutting down.
pub async fn serve_tls(listener: TcpListener, shard: Rc<Shard>, acceptor: TlsAcceptor) {
    while let Some(stream) = accept_until(&listener, &shard.stopping).await {
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        let local = stream.local_addr().unwrap_or(peer);
        let pass = shard.gate.enter();
        let shard = shard.clone();
        let acceptor = acceptor.clone();
        glommio::spawn_local(async move {
            match ringmq_rt::tls::accept(&acceptor, stream).await {
                Ok(tls) => {
                    let admitted = shard.resources.admit();
                    let session = Session::new(shard.clone(), (peer, local), admitted);
                    session.run(tls, pass).await;
                }
                Err(e) => info!(%peer, error = %e, "TLS handshake failed"),
            }
        })
        .detach();
    }
    info!(shard = shard.id, "TLS listener closed");
}
