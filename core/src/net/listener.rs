//! Accepts connections on one shard's `SO_REUSEPORT` listener.

use std::rc::Rc;

use glommio::net::TcpListener;
use ringmq_rt::listener::accept_until;
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
        glommio::spawn_local(session.run(stream, pass)).detach();
    }
    info!(shard = shard.id, "listener closed");
}
