//! Accepts connections on one shard's `SO_REUSEPORT` listener.

use std::rc::Rc;

use glommio::net::TcpListener;
use tracing::{info, warn};

use crate::net::session::Session;
use crate::shard::Shard;

/// Accepts until the shard starts shutting down.
pub async fn serve(listener: TcpListener, shard: Rc<Shard>) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            shard.stopping.wait().await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                warn!(error = %e, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if shard.is_stopping() {
            break;
        }
        let peer = match stream.peer_addr() {
            Ok(p) => p,
            Err(_) => continue,
        };
        let pass = shard.gate.enter();
        let session = Session::new(shard.clone(), peer);
        glommio::spawn_local(session.run(stream, pass)).detach();
    }
    info!(shard = shard.id, "listener closed");
}
