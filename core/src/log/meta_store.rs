//! Durable metadata (exchanges, queues, bindings), separate from the
//! message segments: `meta/snapshot.json` plus `meta/ops.log`.
//!
//! At start the snapshot is loaded and the op log replayed, then a fresh
//! snapshot is written to a temporary file, synced, and renamed over the
//! old one (atomic), and the op log starts empty. Only a bad *final* op is
//! a torn tail (a write cut by a crash) and dropped; a bad op with a valid
//! op, or bytes that are not just a partial final op, after it refuses the
//! start (or, with `storage.meta_on_corruption = "truncate"`, drops it and
//! every later op, loudly).
//! While running, the coordinator appends each durable change to the op log
//! with group commit and answers the client only once it is synced.
//!
//! Op log records: `[len u32][crc32c u32][JSON of one MetaOp]`, little
//! endian, `len` counting the JSON bytes.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::BufferedFile;
use tracing::{error, info, warn};

use super::error::LogError;
use super::recovery::RangeCrc;
use crate::config::{Config, MetaOnCorruption};
use crate::exchange::Dest;
use crate::meta::{first_queue_id, DestName, Meta, MetaOp, PREDECLARED};
use ringmq_mgmt::view::{AccessChange, PermissionRow, UserRow, VhostRow};
use ringmq_rt::local::Notify;

const SNAPSHOT: &str = "snapshot.json";
const OPS: &str = "ops.log";

fn err(e: impl std::fmt::Display) -> LogError {
    LogError::Io {
        shard: 0,
        seq: 0,
        cause: format!("metadata store: {e}"),
    }
}

/// True when `op` changes durable state and must be stored (evaluated
/// before it is applied).
pub fn is_durable(meta: &Meta, op: &MetaOp) -> bool {
    match op {
        MetaOp::DeclareExchange { def, .. } => def.durable,
        MetaOp::DeleteExchange { vhost, name } => meta
            .vhost(vhost)
            .and_then(|v| v.exchange(name))
            .is_some_and(|x| x.def.durable),
        MetaOp::DeclareQueue { def, .. } => def.durable && def.exclusive_owner.is_none(),
        MetaOp::DeleteQueue { vhost, id } => meta
            .vhost(vhost)
            .and_then(|v| v.queue_by_id(*id))
            .is_some_and(|q| q.durable && q.exclusive_owner.is_none()),
        MetaOp::Bind {
            vhost,
            source,
            dest,
            ..
        }
        | MetaOp::Unbind {
            vhost,
            source,
            dest,
            ..
        } => {
            let Some(v) = meta.vhost(vhost) else {
                return false;
            };
            let source_durable = v.exchange(source).is_some_and(|x| x.def.durable);
            let dest_durable = match dest {
                DestName::Queue(q) => v
                    .queue(q)
                    .is_some_and(|q| q.durable && q.exclusive_owner.is_none()),
                DestName::Exchange(x) => v.exchange(x).is_some_and(|x| x.def.durable),
            };
            source_durable && dest_durable
        }
        MetaOp::ReserveQueueIds { .. } | MetaOp::Reset | MetaOp::Seeded | MetaOp::Access(_) => true,
    }
}

/// The ops that create the configuration's users and vhosts (seed data,
/// applied once to a store that has none: see [`MetaOp::Seeded`]).
pub fn seed_ops(config: &Config) -> Vec<MetaOp> {
    let mut ops = vec![MetaOp::Seeded];
    for v in &config.vhosts {
        let mut row = VhostRow::named(v);
        if v == "/" {
            "Default virtual host".clone_into(&mut row.description);
        }
        ops.push(MetaOp::Access(AccessChange::PutVhost(row)));
    }
    for u in &config.users {
        ops.push(MetaOp::Access(AccessChange::PutUser(UserRow {
            name: u.name.clone(),
            password_hash: u.password_hash.clone(),
            hashing_algorithm: crate::password::SHA256.to_owned(),
            tags: u.tags.clone(),
        })));
        for v in &u.vhosts {
            ops.push(MetaOp::Access(AccessChange::SetPermissions(
                PermissionRow {
                    user: u.name.clone(),
                    vhost: v.clone(),
                    configure: ".*".to_owned(),
                    write: ".*".to_owned(),
                    read: ".*".to_owned(),
                },
            )));
        }
    }
    ops
}

/// The ops that rebuild the durable part of `meta`.
pub fn durable_state(meta: &Meta) -> Vec<MetaOp> {
    // Always first, even at 0: a snapshot without it predates it.
    let mut ops = vec![MetaOp::ReserveQueueIds {
        below: meta.queue_ids_below(),
    }];
    if meta.seeded() {
        ops.push(MetaOp::Seeded);
    }
    let mut vhosts: Vec<&crate::meta::Vhost> = meta.vhosts().collect();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    for v in &vhosts {
        ops.push(MetaOp::Access(AccessChange::PutVhost(v.info.clone())));
    }
    let access = meta.access();
    for u in access.users() {
        ops.push(MetaOp::Access(AccessChange::PutUser(u.clone())));
    }
    for p in access.permissions() {
        ops.push(MetaOp::Access(AccessChange::SetPermissions(p.clone())));
    }
    for t in access.topic_permissions() {
        ops.push(MetaOp::Access(AccessChange::SetTopicPermissions(t.clone())));
    }
    // Before the queues and exchanges they apply to.
    for operator in [false, true] {
        for row in meta.policies().rows(operator) {
            ops.push(MetaOp::Access(AccessChange::SetPolicy {
                operator,
                row: row.clone(),
            }));
        }
    }
    for v in vhosts {
        let vhost = || v.name.clone();
        for x in v.exchanges() {
            let predeclared = PREDECLARED.iter().any(|(n, _)| *n == x.def.name);
            if x.def.durable && !predeclared {
                ops.push(MetaOp::DeclareExchange {
                    vhost: vhost(),
                    def: x.def.clone(),
                });
            }
        }
        for q in v.queues() {
            if q.durable && q.exclusive_owner.is_none() {
                ops.push(MetaOp::DeclareQueue {
                    vhost: vhost(),
                    def: q.clone(),
                });
            }
        }
        for x in v.exchanges() {
            if !x.def.durable {
                continue;
            }
            for (dest, key, args) in x.bindings() {
                let dest = match dest {
                    Dest::Queue(r) => match v.queue_by_id(r.id) {
                        Some(q) if q.durable && q.exclusive_owner.is_none() => {
                            DestName::Queue(q.name.clone())
                        }
                        _ => continue,
                    },
                    Dest::Exchange(name) => match v.exchange(name) {
                        Some(d) if d.def.durable => DestName::Exchange(name.clone()),
                        _ => continue,
                    },
                };
                ops.push(MetaOp::Bind {
                    vhost: vhost(),
                    source: x.def.name.clone(),
                    dest,
                    key: key.to_owned(),
                    args: args.clone(),
                });
            }
        }
    }
    ops
}

/// The ops of the op log, up to a torn final op.
///
/// # Errors
/// I/O errors; a bad op that is not a torn final op (unless `policy` says
/// to truncate there).
fn read_ops_log(path: &Path, policy: MetaOnCorruption) -> Result<Vec<MetaOp>, LogError> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(format!("{}: {e}", path.display()))),
    };
    let mut ops = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let Some((json, next)) = op_at(&data, at) else {
            match not_torn(&data, at) {
                Some(reason) => corrupt(path, &data, at, reason, policy)?,
                None if data[at..].iter().any(|b| *b != 0) => warn!(
                    file = %path.display(),
                    at,
                    bytes_cut = data.len() - at,
                    "metadata op log: torn final op ignored"
                ),
                None => {}
            }
            break;
        };
        match serde_json::from_slice(json) {
            Ok(op) => ops.push(op),
            Err(_) => {
                corrupt(
                    path,
                    &data,
                    at,
                    "its checksum matches but it is not an op",
                    policy,
                )?;
                break;
            }
        }
        at = next;
    }
    Ok(ops)
}

/// The JSON of the whole op with a matching checksum at `at`, and where
/// the next op starts.
fn op_at(data: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let (len, crc) = op_header(data.get(at..)?)?;
    let json = data.get(at + 8..(at + 8).checked_add(len)?)?;
    (len > 0 && crc32c::crc32c(json) == crc).then_some((json, at + 8 + len))
}

/// The length and checksum an op header at the start of `bytes` announces.
fn op_header(bytes: &[u8]) -> Option<(usize, u32)> {
    let h = bytes.get(..8)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    Some((len, u32::from_le_bytes([h[4], h[5], h[6], h[7]])))
}

/// Why the bad op at `at` is not a torn final op, if it is not: a torn
/// append leaves a bad last op (cut short, or whole with a bad checksum),
/// then nothing, zeros, or the start of one more op cut short.
fn not_torn(data: &[u8], at: usize) -> Option<&'static str> {
    if later_valid_op(data, at + 1) {
        return Some("a valid op follows it");
    }
    let Some((len, _)) = op_header(&data[at..]) else {
        return None; // a partial header
    };
    let after = at + 8 + len;
    if len > 0 && after >= data.len() {
        return None; // the last op, cut short or damaged
    }
    let rest = &data[after.min(data.len())..];
    let cut_op = op_header(rest).is_none_or(|(n, _)| n > 0 && 8 + n > rest.len());
    (!rest.iter().all(|b| *b == 0) && !cut_op)
        .then_some("bytes that are not just a partial final op follow it")
}

/// Whether a whole op with a matching checksum starts at or after `from`
/// (in linear time: only where the JSON could be an object is the
/// checksum computed, from prefix checksums).
fn later_valid_op(data: &[u8], from: usize) -> bool {
    let mut crc = RangeCrc::new(data);
    (from..data.len()).any(|j| {
        let Some((len, stored)) = op_header(&data[j..]) else {
            return false;
        };
        let Some(json) = data.get(j + 8..(j + 8).saturating_add(len)) else {
            return false;
        };
        json.first() == Some(&b'{')
            && json.last() == Some(&b'}')
            && crc.range(j + 8, j + 8 + len) == stored
    })
}

fn corrupt(
    path: &Path,
    data: &[u8],
    at: usize,
    reason: &'static str,
    policy: MetaOnCorruption,
) -> Result<(), LogError> {
    if policy == MetaOnCorruption::Refuse {
        return Err(LogError::MetaCorrupt {
            path: path.to_owned(),
            at: at as u64,
            reason,
        });
    }
    error!(
        file = %path.display(),
        at,
        bytes_dropped = data.len() - at,
        reason,
        "metadata op log truncated at a bad op (storage.meta_on_corruption = truncate): the changes from there on are lost"
    );
    Ok(())
}

fn encode_op(op: &MetaOp) -> Result<Vec<u8>, LogError> {
    let json = serde_json::to_vec(op).map_err(err)?;
    let mut rec = Vec::with_capacity(json.len() + 8);
    rec.extend_from_slice(&(json.len() as u32).to_le_bytes());
    rec.extend_from_slice(&crc32c::crc32c(&json).to_le_bytes());
    rec.extend_from_slice(&json);
    Ok(rec)
}

/// Loads the stored metadata, compacts it into a new snapshot (atomic
/// rename) and returns the ops that rebuild it. Blocking: call before the
/// shards start.
///
/// # Errors
/// I/O errors, a snapshot that does not parse, or a bad op in the op log
/// that is not a torn final op (unless `policy` says to truncate there).
pub fn load_and_compact(
    dir: &Path,
    config: &Config,
    policy: MetaOnCorruption,
) -> Result<Vec<MetaOp>, LogError> {
    std::fs::create_dir_all(dir).map_err(err)?;
    let (mut ops, n_logged) = load(dir, policy)?;
    if !ops.iter().any(|op| matches!(op, MetaOp::Seeded)) {
        // A new store, or one from before users and vhosts were stored:
        // the configuration's come first (queues refer to their vhosts).
        let at = usize::from(matches!(ops.first(), Some(MetaOp::ReserveQueueIds { .. })));
        let seed = seed_ops(config);
        info!(
            users = config.users.len(),
            vhosts = config.vhosts.len(),
            "metadata seeded with the configuration's users and vhosts"
        );
        ops.splice(at..at, seed);
    }
    let mut meta = Meta::default();
    for op in &ops {
        meta.apply(op);
    }
    if let Some(path) = &config.load_definitions {
        let failed = |reason: String| LogError::Definitions {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
        let doc: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| failed(format!("not JSON: {e}")))?;
        let now = crate::shard::now_ms();
        let applied =
            crate::definitions::ops(&mut meta, &doc, config.shard_count(), now).map_err(failed)?;
        info!(file = %path.display(), ops = applied.len(), "definitions loaded");
    }
    let state = durable_state(&meta);
    let tmp = dir.join("snapshot.json.tmp");
    {
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&serde_json::to_vec_pretty(&state).map_err(err)?)
            .map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, dir.join(SNAPSHOT)).map_err(err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    let ops_file = std::fs::File::create(dir.join(OPS)).map_err(err)?;
    ops_file.sync_all().map_err(err)?;
    if state.len() > 1 || n_logged > 0 {
        info!(ops = state.len(), replayed = n_logged, "metadata loaded");
    }
    Ok(state)
}

/// The snapshot's ops followed by the op log's, and how many came from
/// the op log.
fn load(dir: &Path, policy: MetaOnCorruption) -> Result<(Vec<MetaOp>, usize), LogError> {
    let snap_path = dir.join(SNAPSHOT);
    let (mut ops, had_snapshot): (Vec<MetaOp>, bool) = match std::fs::read(&snap_path) {
        Ok(data) => (
            serde_json::from_slice(&data)
                .map_err(|e| err(format!("{} is unreadable: {e}", snap_path.display())))?,
            true,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), false),
        Err(e) => return Err(err(format!("{}: {e}", snap_path.display()))),
    };
    let mut logged = read_ops_log(&dir.join(OPS), policy)?;
    if let Some(reset) = logged.iter().rposition(|op| matches!(op, MetaOp::Reset)) {
        // The op log was rewritten whole after a failed write: it alone
        // holds the metadata.
        ops.clear();
        logged.drain(..=reset);
    }
    let n_logged = logged.len();
    ops.extend(logged);
    let reserved = ops
        .iter()
        .any(|op| matches!(op, MetaOp::ReserveQueueIds { .. }));
    if had_snapshot && !reserved {
        // Written before queue ids were reserved: the coordinator then
        // started at `first_queue_id(start time)` and counted up, so every
        // id it issued is below the one it would start at now.
        let below = first_queue_id(crate::shard::now_ms());
        info!(
            below,
            "metadata from before queue id reservations: the queue ids issued so far are taken to be below the current time's"
        );
        ops.insert(0, MetaOp::ReserveQueueIds { below });
    }
    Ok((ops, n_logged))
}

/// The op log, appended by the coordinator with group commit.
pub struct MetaStore {
    /// Replaced (never written again) after a failed write or sync.
    file: RefCell<Rc<BufferedFile>>,
    end: Cell<u64>,
    pending: RefCell<Vec<u8>>,
    /// Records handed in / made durable, as counters.
    submitted: Cell<u64>,
    done: Cell<u64>,
    writing: Cell<bool>,
    synced: Notify,
    poisoned: RefCell<Option<String>>,
    path: PathBuf,
}

impl MetaStore {
    /// Opens the (empty, freshly compacted) op log for appending.
    ///
    /// # Errors
    /// I/O errors.
    pub async fn open(dir: &Path) -> Result<Rc<MetaStore>, LogError> {
        let path = dir.join(OPS);
        let file: BufferedFile = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(&path)
            .await
            .map_err(err)?;
        let end = file.file_size().await.map_err(err)?;
        Ok(Rc::new(MetaStore {
            file: RefCell::new(Rc::new(file)),
            end: Cell::new(end),
            pending: RefCell::new(Vec::new()),
            submitted: Cell::new(0),
            done: Cell::new(0),
            writing: Cell::new(false),
            synced: Notify::new(),
            poisoned: RefCell::new(None),
            path,
        }))
    }

    /// Appends `op` and returns once it is synced (group commit: ops
    /// appended while a sync runs share the next one).
    ///
    /// # Errors
    /// I/O errors (the store is then poisoned).
    pub async fn append(&self, op: &MetaOp) -> Result<(), LogError> {
        let ticket = self.submit(op)?;
        self.synced(ticket).await
    }

    /// Queues `op` for the next sync, in call order; returns its ticket.
    ///
    /// # Errors
    /// The store is poisoned, or the op does not serialize.
    pub fn submit(&self, op: &MetaOp) -> Result<u64, LogError> {
        if let Some(p) = self.poisoned.borrow().clone() {
            return Err(err(p));
        }
        let rec = encode_op(op)?;
        self.pending.borrow_mut().extend_from_slice(&rec);
        let ticket = self.submitted.get() + 1;
        self.submitted.set(ticket);
        Ok(ticket)
    }

    /// Resolves once the op with `ticket` is synced (writing and syncing
    /// everything pending if no other task is).
    ///
    /// # Errors
    /// I/O errors (the store is then poisoned).
    pub async fn synced(&self, ticket: u64) -> Result<(), LogError> {
        loop {
            if self.done.get() >= ticket {
                return Ok(());
            }
            if let Some(p) = self.poisoned.borrow().clone() {
                return Err(err(p));
            }
            if self.writing.replace(true) {
                self.synced.wait().await;
                continue;
            }
            let result = self.write_all_pending().await;
            self.writing.set(false);
            self.synced.notify();
            result?;
        }
    }

    /// True after a failed write or sync, until [`MetaStore::heal`].
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.borrow().is_some()
    }

    /// After a failed write or sync the op log file is never written
    /// again (its page-cache state is unknown): a new one replaces it
    /// (atomic rename), holding a [`MetaOp::Reset`] and then `state`, the
    /// whole durable metadata as the coordinator holds it — changes whose
    /// callers were told the store failed included, since they were
    /// applied. On success the store accepts changes again.
    ///
    /// # Errors
    /// I/O errors: the store stays poisoned.
    pub async fn heal(&self, state: &[MetaOp]) -> Result<(), LogError> {
        let Some(cause) = self.poisoned.borrow().clone() else {
            return Ok(());
        };
        #[cfg(feature = "failpoints")]
        if super::fault::meta_writes_fail() {
            return Err(err("injected metadata write failure (fault injection)"));
        }
        let mut bytes = encode_op(&MetaOp::Reset)?;
        for op in state {
            bytes.extend_from_slice(&encode_op(op)?);
        }
        let tmp = self.path.with_extension("log.new");
        {
            let mut f = std::fs::File::create(&tmp).map_err(err)?;
            f.write_all(&bytes).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        let file: BufferedFile = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .buffered_open(&self.path)
            .await
            .map_err(err)?;
        let old = std::mem::replace(&mut *self.file.borrow_mut(), Rc::new(file));
        if let Ok(old) = Rc::try_unwrap(old) {
            let _ = old.close().await;
        }
        self.pending.borrow_mut().clear();
        self.end.set(bytes.len() as u64);
        self.done.set(self.submitted.get());
        *self.poisoned.borrow_mut() = None;
        self.synced.notify();
        info!(file = %self.path.display(), earlier = %cause, ops = state.len(), "metadata store rewritten: durable changes are accepted again");
        Ok(())
    }

    async fn write_all_pending(&self) -> Result<(), LogError> {
        loop {
            let batch = std::mem::take(&mut *self.pending.borrow_mut());
            if batch.is_empty() {
                return Ok(());
            }
            let upto = self.submitted.get();
            let len = batch.len() as u64;
            let pos = self.end.get();
            let file = self.file.borrow().clone();
            let res = async {
                #[cfg(feature = "failpoints")]
                if super::fault::meta_writes_fail() {
                    return Err(err("injected metadata write failure (fault injection)"));
                }
                let n = file.write_at(batch, pos).await.map_err(err)?;
                if (n as u64) < len {
                    return Err(err(format!("short write to {}", self.path.display())));
                }
                file.fdatasync().await.map_err(err)
            }
            .await;
            if let Err(e) = res {
                error!(file = %self.path.display(), error = %e, "metadata store write failed: durable changes are refused until the store is rewritten (at the next change)");
                *self.poisoned.borrow_mut() = Some(e.to_string());
                return Err(e);
            }
            self.end.set(pos + len);
            self.done.set(upto);
            self.synced.notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use ringmq_protocol::FieldValue;

    /// A durable declare with a NaN or infinite float argument must load
    /// again (a JSON number cannot hold those).
    #[test]
    fn non_finite_float_arguments_survive_the_store() {
        for v in [
            FieldValue::F64(f64::NAN),
            FieldValue::F64(f64::NEG_INFINITY),
            FieldValue::F32(f32::INFINITY),
            FieldValue::F64(1.5),
        ] {
            let text = serde_json::to_string(&v).unwrap();
            let back: FieldValue = serde_json::from_str(&text).unwrap();
            match (&v, &back) {
                (FieldValue::F64(a), FieldValue::F64(b)) if a.is_nan() => assert!(b.is_nan()),
                _ => assert_eq!(v, back, "{text}"),
            }
        }
        // Stores written before: `null` reads as NaN instead of failing.
        let old: FieldValue = serde_json::from_str(r#"{"F64":null}"#).unwrap();
        assert!(matches!(old, FieldValue::F64(f) if f.is_nan()));
    }
}
