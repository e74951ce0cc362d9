//! ringmq broker engine: thread-per-core shards on glommio.
//!
//! What it is: the broker — sharded queues, replicated exchanges and
//! bindings, sessions speaking the native protocol — as a library with a
//! [`Broker`] handle (used by the `ringmq` binary and by tests) .
//!
//! What it is not: the AMQP gateway (a separate process, `gateway/`) or
//! the wire codec (`ringmq-protocol`).
//!
//! ```text
//! socket -> rt::connection -> protocol::frame::FrameDecoder -> net::session (frames.rs)
//!   -> session::publish -> meta::Vhost::route (on the receiving core, replicated metadata)
//!   -> shard::outbox -> channel mesh (hop only if another shard owns the queue)
//!   -> shard::dispatch -> queue::Queue::publish -> shard::sink (log append; deliver)
//!   -> shard::outbox -> shard::clients::Client::deliver (session::output)
//!   -> Client::flush (protocol encode_deliveries: DeliverBatch frames) -> writer -> socket
//! ```
//!
//! See `docs/architecture.md` for the design.

pub mod admin;
pub mod auth;
pub mod config;
pub mod definitions;
pub mod exchange;
pub mod log;
pub mod memory;
pub mod message;
pub mod meta;
pub mod net;
pub mod password;
pub mod queue;
pub mod resources;
pub mod shard;
pub mod stream;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use ringmq_rt::pool::{PoolConfig, Ready, ServeError, Server};
use tracing::info;

pub use config::Config;
pub use ringmq_rt::pool::Stopper;

use crate::shard::mesh::ShardMsg;
use crate::shard::Shard;

/// Capacity of each mesh channel, in batches.
const MESH_CHANNEL_BATCHES: usize = 256;

/// The broker could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The listen address is taken, or the shards could not start.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The data directory cannot be used.
    #[error("data directory {dir}: {reason}")]
    DataDir {
        /// The directory.
        dir: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Stored data could not be recovered.
    #[error(transparent)]
    Storage(#[from] log::LogError),
    /// The TLS files cannot be used.
    #[error("tls: {0}")]
    Tls(#[from] ringmq_rt::tls::TlsError),
}

/// A running broker: a [`Server`] (address, stopper, wait, stop) started by
/// [`Broker::start`], and the resources its shards share.
pub struct Broker {
    server: Server,
    resources: Arc<resources::Resources>,
    tls_addr: Option<SocketAddr>,
}

/// The TLS listener's address (port 0 resolved) and acceptor, when
/// `tls.listen` is set.
fn tls_listener(
    config: &Config,
) -> Result<Option<(SocketAddr, ringmq_rt::tls::TlsAcceptor)>, StartError> {
    let (Some(listen), Some(files)) = (config.tls.listen, config.tls.files()?) else {
        return Ok(None);
    };
    let server_config = ringmq_rt::tls::server_config(&files)?;
    let addr = Server::probe(listen)?;
    Ok(Some((
        addr,
        ringmq_rt::tls::TlsAcceptor::from(server_config),
    )))
}

impl std::ops::Deref for Broker {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

impl Broker {
    /// Starts the shards and listens; returns once every shard accepts.
    ///
    /// # Errors
    /// Invalid configuration, a listen address in use, executor failures.
    pub fn start(mut config: Config) -> Result<Broker, StartError> {
        config.validate()?;
        // glommio opens the shards' log directories by absolute path only
        // (a relative one fails with EBADF): `--data-dir ./data` must work.
        if let Ok(abs) = std::path::absolute(&config.storage.data_dir) {
            config.storage.data_dir = abs;
        }
        let want = config.server.listen;
        let addr = Server::probe(want)?;

        let shards = config.shard_count();
        let data_dir = config.storage.data_dir.clone();
        check_layout(&data_dir, shards)?;
        let meta_ops = Arc::new(log::meta_store::load_and_compact(
            &data_dir.join("meta"),
            &config,
            config.storage.meta_on_corruption,
        )?);
        let pool_config = PoolConfig {
            name: "ringmq-shard",
            threads: shards,
            pin: config.server.pin_cores,
            spin_before_park: Duration::from_micros(config.server.spin_before_park_us),
        };
        let mesh = MeshBuilder::<Vec<ShardMsg>, _>::full(shards, MESH_CHANNEL_BATCHES);
        let resources = resources::Resources::new(&config, shards);
        let shared_resources = resources.clone();
        let config = Arc::new(config);
        let tls = tls_listener(&config)?;
        let tls_addr = tls.as_ref().map(|(a, _)| *a);
        let server = Server::start(addr, &pool_config, move |ready, stopper| {
            let shared = Shared {
                config,
                resources,
                meta_ops,
                tls: tls.clone(),
            };
            run_shard(shared, mesh, addr, stopper, ready)
        })?;
        info!(%addr, shards, "ringmq listening");
        if let Some(a) = tls_addr {
            info!(addr = %a, "ringmq listening (TLS)");
        }
        Ok(Broker {
            server,
            resources: shared_resources,
            tls_addr,
        })
    }

    /// The TLS listener's address, when there is one.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Bytes of memory the shards hold by their own count (messages,
    /// queue entries, connection buffers), as they last published it
    /// (every [`shard::memory::MEMORY_TICK`]).
    pub fn memory_held(&self) -> u64 {
        self.resources.memory_held()
    }

    /// The memory high watermark, bytes.
    pub fn memory_high_watermark(&self) -> u64 {
        self.resources.watermark
    }

    /// What the management API needs to see this broker.
    pub fn admin(&self, config: Arc<Config>) -> admin::AdminHandle {
        admin::AdminHandle::new(config, self.resources.clone(), self.local_addr())
    }
}

/// Checks (or records) how many shards wrote the data directory: queues
/// and their logs belong to shards, so the count cannot change under data.
fn check_layout(dir: &std::path::Path, shards: usize) -> Result<(), StartError> {
    let bad = |reason: String| StartError::DataDir {
        dir: dir.to_owned(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    let path = dir.join("layout.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(format!("layout.json: {e}")))?;
            let stored = v
                .get("shards")
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0) as usize;
            if stored != shards {
                return Err(bad(format!(
                    "was written by {stored} shards; start with --cores {stored} (queues live on their shard)"
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = serde_json::json!({ "version": 1, "shards": shards }).to_string();
            let tmp = dir.join("layout.json.tmp");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::File::open(&tmp).and_then(|f| f.sync_all()))
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| bad(e.to_string()))
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Restores a shard's durable state: the metadata first (it creates the
/// queues this shard owns), then this shard's log, whose messages go into
/// those queues; shard 0 also opens the metadata store.
async fn open_storage(
    shard: &Rc<Shard>,
    config: &Config,
    meta_ops: &[meta::MetaOp],
) -> Result<(), String> {
    let id = shard.id;
    let now = shard::now_ms();
    for op in meta_ops {
        shard.apply_meta(op, now);
    }
    // Recovered bodies stay in memory up to the same budget as new ones.
    let mut storage = config.storage.clone();
    storage.memory_budget_bytes = shard.resources.page_out_above;
    let storage = &storage;
    let log_dir = storage.data_dir.join(format!("shard-{id}"));
    let (log, recovered) = log::Log::open(id, &log_dir, storage)
        .await
        .map_err(|e| format!("shard {id}: {e}"))?;
    shard
        .restore(&log, recovered)
        .map_err(|e| format!("shard {id}: {e}"))?;
    shard.set_log(log.clone());
    let s = shard.clone();
    glommio::spawn_local(log.run(move |e| s.on_log_event(e))).detach();
    glommio::spawn_local(shard.clone().reclaim_segments()).detach();
    if id == 0 {
        let store = log::meta_store::MetaStore::open(&storage.data_dir.join("meta"))
            .await
            .map_err(|e| e.to_string())?;
        shard.set_meta_store(store);
    }
    Ok(())
}

/// What every shard starts from.
struct Shared {
    config: Arc<Config>,
    resources: Arc<resources::Resources>,
    /// The metadata recovered from the store.
    meta_ops: Arc<Vec<meta::MetaOp>>,
    /// The TLS listener's address and acceptor, when configured.
    tls: Option<(SocketAddr, ringmq_rt::tls::TlsAcceptor)>,
}

/// This shard cannot start: report it, and stop together with the shards
/// that did start (they wait for the coordinator's Exit, through the mesh).
async fn fail_start(shard: &Rc<Shard>, ready: &Ready, why: String) {
    ready.fail(why);
    shard.shutdown_all();
    shard.exit.wait().await;
}

async fn run_shard(
    shared: Shared,
    mesh: MeshBuilder<Vec<ShardMsg>, glommio::channels::channel_mesh::Full>,
    addr: SocketAddr,
    stopper: Stopper,
    ready: Ready,
) {
    let Shared {
        config,
        resources,
        meta_ops,
        tls,
    } = shared;
    let count = mesh.nr_peers() as u16;
    let (senders, mut receivers) = match mesh.join().await {
        Ok(pair) => pair,
        Err(e) => {
            ready.fail(format_args!("mesh join failed: {e}"));
            return;
        }
    };
    let id = senders.peer_id() as u16;
    let shard = Rc::new(Shard::new(
        id,
        count,
        Rc::new((*config).clone()),
        resources,
        Some(senders),
    ));
    let storage = open_storage(&shard, &config, &meta_ops).await;
    for (peer, rx) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(batch) = rx.recv().await {
                shard.handle_batch(peer as u16, batch);
            }
        })
        .detach();
    }
    for to in 0..count {
        glommio::spawn_local(shard.clone().run_outbox(to)).detach();
    }
    if let Err(why) = storage {
        return fail_start(&shard, &ready, why).await;
    }
    glommio::spawn_local(shard.clone().run_timers()).detach();
    glommio::spawn_local(
        shard
            .clone()
            .serve_admin(shard.resources.admin_register(id)),
    )
    .detach();
    glommio::spawn_local(shard.clone().run_memory_monitor()).detach();
    let listener = match ringmq_rt::listener::bind_reuse(addr) {
        Ok(l) => l,
        Err(e) => {
            let why = format!("shard {id} cannot listen on {addr}: {e}");
            return fail_start(&shard, &ready, why).await;
        }
    };
    glommio::spawn_local(net::listener::serve(listener, shard.clone())).detach();
    let base = shard.config.server.shard_port_base;
    if base != 0 {
        let Some(port) = ringmq_protocol::placement::shard_port(base, id) else {
            let why =
                format!("server.shard_port_base {base}: shard {id} would listen past port 65535");
            return fail_start(&shard, &ready, why).await;
        };
        let own = SocketAddr::new(addr.ip(), port);
        let listener = match ringmq_rt::listener::bind_exclusive(own) {
            Ok(l) => l,
            Err(e) => {
                let why = format!("shard {id} cannot listen on its own port {own}: {e}");
                return fail_start(&shard, &ready, why).await;
            }
        };
        glommio::spawn_local(net::listener::serve(listener, shard.clone())).detach();
    }
    if let Some((addr, acceptor)) = tls {
        let listener = match ringmq_rt::listener::bind_reuse(addr) {
            Ok(l) => l,
            Err(e) => {
                let why = format!("shard {id} cannot listen (TLS) on {addr}: {e}");
                return fail_start(&shard, &ready, why).await;
            }
        };
        glommio::spawn_local(net::listener::serve_tls(listener, shard.clone(), acceptor)).detach();
    }
    if id == 0 {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            stopper.stopped().await;
            info!("shutting down");
            shard.shutdown_all();
        })
        .detach();
    }
    ready.ok();
    shard.exit.wait().await;
    // Let the last replies (Exit to the other shards) leave the outboxes.
    glommio::timer::sleep(Duration::from_millis(5)).await;
    info!(shard = id, "shard stopped");
}
