//! A TCP proxy between one runner and the test server that can hold back a
//! chosen command in flight: the network delay (or paused process) that
//! makes a write land after the runner lost its lock, on demand. It also
//! injects network faults at a seeded rate ([`Faults`]): replies dropped
//! after the server applied the command (the connection is cut instead),
//! connections reset before a command reaches the server, and a black hole
//! that forwards nothing for a while; and it counts the commands it sees.
//!
//! It also impersonates a replica set in a failover ([`Faults`]'s
//! `stepdown_per_1000` and `not_primary_per_1000`): a protocol write (an
//! `update`, `insert`, `delete` or `findAndModify` of the tracking or lock
//! collection, outside a transaction) is forwarded and its reply given the
//! `writeConcernError` a stepping-down primary answers with after the write
//! landed (`ok: 1`, code 91 `ShutdownInProgress` or 189
//! `PrimarySteppedDown`), or it is refused before it reaches the server
//! with the reply of a secondary (`ok: 0`, code 10107
//! `NotWritablePrimary`). The shapes are mongod's: `writeConcernError` is
//! a top-level `{code, codeName, errmsg}` beside `ok: 1`
//! (`src/mongo/db/write_concern.cpp`, `appendWriteConcernErrorToCmdResponse`;
//! the retryable-writes specification's "Determining Retryable Errors"
//! lists both codes), and a write on a secondary fails whole with
//! `NotWritablePrimary` (`src/mongo/base/error_codes.yml`, code 10107).
//!
//! It impersonates a `mongos` ([`Proxy::mongos`]) to the runtime: its own
//! `hello` (not the driver's monitoring) is answered with `msg: "isdbgrid"`
//! (`src/mongo/s/commands/cluster_hello_cmd.cpp`), and `$indexStats`
//! answers one document per index per shard, each with its `shard`
//! (`CommonMongodProcessInterface::getIndexStats`), an index left out on
//! the shards where a build is to have failed.
//!
//! It reads the client's messages whole (MongoDB wire protocol, `OP_MSG`).
//! When one's command document matches the armed [`Hold`], it stops every
//! client-to-server stream (the runner's heartbeat too, as for a paused
//! process) until the hold is released.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mongo_migrations::bson::Document;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

type Matcher = Box<dyn Fn(&Document) -> bool + Send>;

/// One armed hold: the first matching command waits for [`Hold::release`].
pub struct Hold {
    held: watch::Receiver<bool>,
    release: Option<oneshot::Sender<()>>,
}

impl Hold {
    /// Completes once a matching command is held.
    pub async fn reached(&mut self) {
        self.held.wait_for(|held| *held).await.expect("the proxy is gone");
    }

    pub fn is_reached(&self) -> bool {
        *self.held.borrow()
    }

    /// Lets the held command (and everything behind it) go on.
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

struct Armed {
    matcher: Matcher,
    held: watch::Sender<bool>,
    release: oneshot::Receiver<()>,
}

/// Network faults, each at a rate per thousand messages, drawn from a
/// seeded generator (the same seed, the same draws in the same order).
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Replies cut off: the server applied the command, the client never hears.
    pub drop_reply_per_1000: u64,
    /// Connections reset before a command reaches the server.
    pub reset_per_1000: u64,
    /// This reply (1 is the first after [`Proxy::faults`]) is dropped
    /// whatever the draws: a trial that must meet at least one fault does.
    pub drop_reply_number: Option<u64>,
    /// Protocol writes forwarded, then answered with a stepdown's
    /// `writeConcernError`: the write landed, the majority wait failed.
    pub stepdown_per_1000: u64,
    /// Protocol writes refused before the server, as a secondary refuses them.
    pub not_primary_per_1000: u64,
    /// This protocol write (1 is the first after [`Proxy::faults`]) gets a
    /// stepdown's `writeConcernError` whatever the draws.
    pub stepdown_number: Option<u64>,
    /// The first `createIndexes` of this collection after [`Proxy::faults`]
    /// is forwarded, and at once answered `InterruptedDueToReplStateChange`
    /// (code 11602), as mongod answers the command that waited for a build
    /// when its primary steps down; the build goes on in the server, whose
    /// own reply is swallowed.
    pub interrupt_build_of: Option<&'static str>,
    /// Every `createIndexes` of this collection is forwarded and its reply
    /// swallowed: the client waits, as for a build whose commit quorum is
    /// never reached (a member down). The commands are kept
    /// ([`Proxy::silenced_builds`]).
    pub silence_builds_of: Option<&'static str>,
    pub seed: u64,
}

/// What the proxy does to the server's reply to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rewrite {
    /// Adds a `writeConcernError` of this code.
    WriteConcernError(i32),
    /// Drops it: the client was answered already.
    Swallow,
    /// Answers as the impersonated `mongos` (see [`Mongos`]).
    Mongos,
}

/// A `mongos` the proxy impersonates, over shards that do not exist.
#[derive(Debug, Clone, Default)]
pub struct Mongos {
    /// The shards' names, as `$indexStats` gives them.
    pub shards: Vec<&'static str>,
    /// `(index, shard)`: the index is missing on that shard.
    pub missing: Vec<(&'static str, &'static str)>,
}

impl Mongos {
    /// The server's reply to `command`, as this `mongos` answers it.
    fn answer(&self, command: &str, mut reply: Document) -> Document {
        use mongo_migrations::bson::Bson;
        match command {
            "hello" => {
                reply.insert("msg", "isdbgrid");
            }
            _ => {
                let Ok(cursor) = reply.get_document_mut("cursor") else {
                    return reply;
                };
                let Ok(batch) = cursor.get_array("firstBatch") else {
                    return reply;
                };
                let mut per_shard = Vec::new();
                for shard in &self.shards {
                    for stat in batch.iter().filter_map(Bson::as_document) {
                        let name = stat.get_str("name").unwrap_or_default();
                        if self.missing.iter().any(|(i, s)| *i == name && s == shard) {
                            continue;
                        }
                        let mut stat = stat.clone();
                        stat.insert("shard", *shard);
                        per_shard.push(Bson::Document(stat));
                    }
                }
                cursor.insert("firstBatch", per_shard);
            }
        }
        reply
    }
}

/// The command the impersonated `mongos` answers, if `command` is one: the
/// runtime's own `hello`, sent in a session (`lsid`; the driver's handshake
/// and monitoring are not, and are left to the server, so the driver still
/// sees the test server), or an `$indexStats` aggregation.
fn mongos_command(command: &Document) -> Option<&'static str> {
    let (name, _) = command.iter().next()?;
    match name.as_str() {
        "hello" if command.contains_key("lsid") && !command.contains_key("client") => Some("hello"),
        "aggregate"
            if command
                .get_array("pipeline")
                .ok()
                .and_then(|p| p.first())
                .and_then(|s| s.as_document())
                .is_some_and(|s| s.contains_key("$indexStats")) =>
        {
            Some("aggregate")
        }
        _ => None,
    }
}

/// What the proxy does to one protocol write.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Failover {
    /// Forwarded; the reply gets a `writeConcernError` of this code.
    SteppedDown(i32),
    /// Answered here: `NotWritablePrimary`.
    NotPrimary,
}

/// Whether `command` is one of the run protocol's writes: on the tracking
/// or the lock collection (their default names), outside a transaction.
fn protocol_write(command: &Document) -> bool {
    let Some((name, target)) = command.iter().next() else {
        return false;
    };
    matches!(name.as_str(), "update" | "insert" | "delete" | "findAndModify")
        && matches!(target.as_str(), Some("migrations" | "migration_locks"))
        && !command.contains_key("autocommit")
}

/// An `OP_MSG` reply to request `response_to` holding `reply`.
fn op_msg(response_to: i32, reply: &Document) -> ([u8; 16], Vec<u8>) {
    let mut body = vec![0u8; 4];
    body.push(0);
    reply.to_writer(&mut body).expect("a document serializes");
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&((body.len() + 16) as i32).to_le_bytes());
    header[4..8].copy_from_slice(&(response_to ^ 0x5a5a).to_le_bytes());
    header[8..12].copy_from_slice(&response_to.to_le_bytes());
    header[12..16].copy_from_slice(&2013i32.to_le_bytes());
    (header, body)
}

/// The server's reply `(header, body)` with `writeConcernError` of `code`
/// added, as a primary that stepped down during the majority wait answers.
fn with_write_concern_error(header: &[u8; 16], body: &[u8], code: i32) -> Option<([u8; 16], Vec<u8>)> {
    let mut reply = command_of(body)?;
    let name = if code == 91 {
        "ShutdownInProgress"
    } else {
        "PrimarySteppedDown"
    };
    reply.insert(
        "writeConcernError",
        mongo_migrations::bson::doc! {
            "code": code,
            "codeName": name,
            "errmsg": "Replication is being shut down",
            "errInfo": { "writeConcern": { "w": "majority", "wtimeout": 0, "provenance": "clientSupplied" } },
        },
    );
    let response_to = i32::from_le_bytes(header[8..12].try_into().ok()?);
    Some(op_msg(response_to, &reply))
}

#[derive(Clone)]
pub struct Proxy {
    /// `mongodb://…` of the proxy, one direct connection to the server behind it.
    pub uri: String,
    armed: Arc<Mutex<Option<Armed>>>,
    shared: Shared,
}

#[derive(Clone)]
struct Shared {
    armed: Arc<Mutex<Option<Armed>>>,
    frozen: Arc<watch::Sender<bool>>,
    faults: Arc<Mutex<(Faults, u64)>>,
    /// Forward nothing, either way, while set.
    blackhole: Arc<AtomicBool>,
    /// Commands seen, by name.
    commands: Arc<Mutex<Vec<String>>>,
    /// Commands seen, by name and the collection they name.
    targeted: Arc<Mutex<Vec<(String, String)>>>,
    dropped: Arc<AtomicU64>,
    resets: Arc<AtomicU64>,
    /// Replies seen since the faults were set.
    replies: Arc<AtomicU64>,
    /// Protocol writes seen since the faults were set.
    writes: Arc<AtomicU64>,
    /// `createIndexes` of the chosen collection seen since the faults were set.
    builds: Arc<AtomicU64>,
    /// The `createIndexes` commands whose replies were swallowed.
    silenced: Arc<Mutex<Vec<Document>>>,
    /// The reply to `connectionStatus`, in place of the server's.
    connection_status: Arc<Mutex<Option<Document>>>,
    /// The `mongos` impersonated, if any.
    mongos: Arc<Mutex<Option<Mongos>>>,
    /// Which command each request awaiting a `mongos` answer was.
    mongos_requests: Arc<Mutex<std::collections::HashMap<i32, &'static str>>>,
    stepdowns: Arc<AtomicU64>,
    refusals: Arc<AtomicU64>,
}

impl Shared {
    /// One draw: whether a fault at `per_1000` happens now.
    fn draw(&self, per_1000: impl Fn(&Faults) -> u64) -> bool {
        let mut faults = self.faults.lock().unwrap();
        let rate = per_1000(&faults.0);
        if rate == 0 {
            return false;
        }
        // xorshift64*
        let x = &mut faults.1;
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % 1000 < rate
    }

    /// Whether the reply now passing is dropped: the chosen one, or by draw.
    fn drop_reply(&self) -> bool {
        let number = self.replies.fetch_add(1, Ordering::SeqCst) + 1;
        let chosen = self.faults.lock().unwrap().0.drop_reply_number == Some(number);
        self.draw(|f| f.drop_reply_per_1000) || chosen
    }

    /// What happens to the protocol write now passing, if anything.
    fn failover(&self) -> Option<Failover> {
        let number = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let chosen = self.faults.lock().unwrap().0.stepdown_number == Some(number);
        if self.draw(|f| f.stepdown_per_1000) || chosen {
            let code = if self.draw(|_| 500) { 91 } else { 189 };
            self.stepdowns.fetch_add(1, Ordering::SeqCst);
            return Some(Failover::SteppedDown(code));
        }
        if self.draw(|f| f.not_primary_per_1000) {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            return Some(Failover::NotPrimary);
        }
        None
    }

    async fn through_blackhole(&self) {
        while self.blackhole.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Proxy {
    /// Starts a proxy to the first host of `server_uri`.
    pub async fn start(server_uri: &str) -> Self {
        let rest = server_uri.strip_prefix("mongodb://").expect("a mongodb:// URI");
        let host = rest.split(['/', ',', '?']).next().unwrap().to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("mongodb://{}/?directConnection=true", listener.local_addr().unwrap());
        let armed: Arc<Mutex<Option<Armed>>> = Arc::default();
        let shared = Shared {
            armed: armed.clone(),
            frozen: Arc::new(watch::channel(false).0),
            faults: Arc::new(Mutex::new((Faults::default(), 1))),
            blackhole: Arc::default(),
            commands: Arc::default(),
            targeted: Arc::default(),
            dropped: Arc::default(),
            resets: Arc::default(),
            replies: Arc::default(),
            writes: Arc::default(),
            builds: Arc::default(),
            silenced: Arc::default(),
            connection_status: Arc::default(),
            mongos: Arc::default(),
            mongos_requests: Arc::default(),
            stepdowns: Arc::default(),
            refusals: Arc::default(),
        };
        let accepting = shared.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                // A server that is down (killed, restarting): the client sees a reset.
                let Ok(server) = TcpStream::connect(&host).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, accepting.clone()));
            }
        });
        Proxy { uri, armed, shared }
    }

    /// Injects `faults` from now on (replacing earlier ones).
    pub fn faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = (faults, faults.seed | 1);
        self.shared.replies.store(0, Ordering::SeqCst);
        self.shared.writes.store(0, Ordering::SeqCst);
        self.shared.builds.store(0, Ordering::SeqCst);
    }

    /// The `createIndexes` commands of [`Faults::interrupt_build_of`]'s
    /// collection seen, the interrupted one included.
    pub fn builds_seen(&self) -> u64 {
        self.shared.builds.load(Ordering::SeqCst)
    }

    /// The `createIndexes` commands [`Faults::silence_builds_of`] swallowed the replies of.
    pub fn silenced_builds(&self) -> Vec<Document> {
        self.shared.silenced.lock().unwrap().clone()
    }

    /// Answers `connectionStatus` with `reply` (the server's own with `None`):
    /// the proxy impersonates a user with other privileges.
    pub fn connection_status(&self, reply: Option<Document>) {
        *self.shared.connection_status.lock().unwrap() = reply;
    }

    /// Answers the runtime as `mongos` does (none: as the server).
    pub fn mongos(&self, mongos: Option<Mongos>) {
        *self.shared.mongos.lock().unwrap() = mongos;
    }

    /// The same proxy, its URI with `options` (`name=value&…`) added.
    pub fn with_options(&self, options: &str) -> Proxy {
        Proxy {
            uri: format!("{}&{options}", self.uri),
            ..self.clone()
        }
    }

    /// Protocol writes answered with a stepdown's `writeConcernError`, and
    /// refused as by a secondary, so far.
    pub fn failovers(&self) -> (u64, u64) {
        (
            self.shared.stepdowns.load(Ordering::SeqCst),
            self.shared.refusals.load(Ordering::SeqCst),
        )
    }

    /// Forwards nothing, either way, for `d` (connections stay open).
    pub async fn blackhole(&self, d: Duration) {
        self.shared.blackhole.store(true, Ordering::SeqCst);
        tokio::time::sleep(d).await;
        self.shared.blackhole.store(false, Ordering::SeqCst);
    }

    /// The commands seen so far, by name, in order; and clears the list.
    pub fn take_commands(&self) -> Vec<String> {
        std::mem::take(&mut *self.shared.commands.lock().unwrap())
    }

    /// The commands seen so far, by name and the collection they name, in
    /// order; and clears the list.
    pub fn take_targeted(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.shared.targeted.lock().unwrap())
    }

    /// Replies dropped and connections reset so far.
    pub fn injected(&self) -> (u64, u64) {
        (
            self.shared.dropped.load(Ordering::SeqCst),
            self.shared.resets.load(Ordering::SeqCst),
        )
    }

    /// Holds the next command for which `matcher` is true.
    pub fn hold(&self, matcher: impl Fn(&Document) -> bool + Send + 'static) -> Hold {
        let (held_tx, held) = watch::channel(false);
        let (release, release_rx) = oneshot::channel();
        *self.armed.lock().unwrap() = Some(Armed {
            matcher: Box::new(matcher),
            held: held_tx,
            release: release_rx,
        });
        Hold {
            held,
            release: Some(release),
        }
    }
}

async fn pipe(client: TcpStream, server: TcpStream, shared: Shared) {
    let mut frozen = shared.frozen.subscribe();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Replies, message by message: one may be dropped, the connection cut,
    // or given a `writeConcernError`; replies made here (a refusal) join them.
    let (cut_tx, mut cut) = watch::channel(false);
    let reply_shared = shared.clone();
    let rewrite: Arc<Mutex<std::collections::HashMap<i32, Rewrite>>> = Arc::default();
    let rewrites = rewrite.clone();
    let (made_tx, mut made) = tokio::sync::mpsc::unbounded_channel::<([u8; 16], Vec<u8>)>();
    let replies = tokio::spawn(async move {
        loop {
            let (header, body) = tokio::select! {
                m = read_message(&mut server_read) => match m {
                    Some(m) => m,
                    None => break,
                },
                Some((header, body)) = made.recv() => {
                    if client_write.write_all(&header).await.is_err() || client_write.write_all(&body).await.is_err() {
                        break;
                    }
                    continue;
                }
            };
            let response_to = i32::from_le_bytes(header[8..12].try_into().unwrap());
            let (header, body) = match rewrites.lock().unwrap().remove(&response_to) {
                Some(Rewrite::Swallow) => continue,
                Some(Rewrite::WriteConcernError(code)) => {
                    with_write_concern_error(&header, &body, code).unwrap_or((header, body))
                }
                Some(Rewrite::Mongos) => {
                    let command = reply_shared.mongos_requests.lock().unwrap().remove(&response_to);
                    let mongos = reply_shared.mongos.lock().unwrap().clone();
                    match (command, mongos, command_of(&body)) {
                        (Some(command), Some(mongos), Some(reply)) => {
                            op_msg(response_to, &mongos.answer(command, reply))
                        }
                        _ => (header, body),
                    }
                }
                None => (header, body),
            };
            reply_shared.through_blackhole().await;
            if reply_shared.drop_reply() {
                reply_shared.dropped.fetch_add(1, Ordering::SeqCst);
                let _ = cut_tx.send(true);
                break;
            }
            if client_write.write_all(&header).await.is_err() || client_write.write_all(&body).await.is_err() {
                break;
            }
        }
        // Dropping both halves closes the client's connection.
    });
    loop {
        let message = tokio::select! {
            m = read_message(&mut client_read) => m,
            _ = cut.wait_for(|c| *c) => None,
        };
        let Some((header, body)) = message else { break };
        shared.through_blackhole().await;
        if shared.draw(|f| f.reset_per_1000) {
            shared.resets.fetch_add(1, Ordering::SeqCst);
            break;
        }
        let op_code = i32::from_le_bytes(header[12..16].try_into().unwrap());
        if op_code == 2013 {
            if let Some(command) = command_of(&body) {
                if let Some((name, target)) = command.iter().next() {
                    shared.commands.lock().unwrap().push(name.clone());
                    let target = target.as_str().unwrap_or_default().to_string();
                    shared.targeted.lock().unwrap().push((name.clone(), target));
                }
                let hit = {
                    let mut armed = shared.armed.lock().unwrap();
                    if armed.as_ref().is_some_and(|a| (a.matcher)(&command)) {
                        armed.take()
                    } else {
                        None
                    }
                };
                if let Some(hit) = hit {
                    shared.frozen.send_replace(true);
                    hit.held.send_replace(true);
                    let _ = hit.release.await;
                    shared.frozen.send_replace(false);
                }
                let request_id = i32::from_le_bytes(header[4..8].try_into().unwrap());
                let status = shared.connection_status.lock().unwrap().clone();
                if let (true, Some(reply)) = (command.contains_key("connectionStatus"), status) {
                    let _ = made_tx.send(op_msg(request_id, &reply));
                    continue;
                }
                if let (Some(name), true) = (mongos_command(&command), shared.mongos.lock().unwrap().is_some()) {
                    shared.mongos_requests.lock().unwrap().insert(request_id, name);
                    rewrite.lock().unwrap().insert(request_id, Rewrite::Mongos);
                }
                let target = command.get_str("createIndexes").ok();
                let silenced = shared.faults.lock().unwrap().0.silence_builds_of;
                if target.is_some() && target == silenced {
                    rewrite.lock().unwrap().insert(request_id, Rewrite::Swallow);
                    shared.silenced.lock().unwrap().push(command.clone());
                }
                let chosen = shared.faults.lock().unwrap().0.interrupt_build_of;
                if target.is_some() && target == chosen {
                    let number = shared.builds.fetch_add(1, Ordering::SeqCst) + 1;
                    if number == 1 {
                        rewrite.lock().unwrap().insert(request_id, Rewrite::Swallow);
                        let interrupted = mongo_migrations::bson::doc! {
                            "ok": 0.0,
                            "errmsg": "operation was interrupted because of a replication state change",
                            "code": 11602,
                            "codeName": "InterruptedDueToReplStateChange",
                        };
                        let _ = made_tx.send(op_msg(request_id, &interrupted));
                    }
                }
                if protocol_write(&command) {
                    match shared.failover() {
                        Some(Failover::SteppedDown(code)) => {
                            rewrite
                                .lock()
                                .unwrap()
                                .insert(request_id, Rewrite::WriteConcernError(code));
                        }
                        Some(Failover::NotPrimary) => {
                            let refusal = mongo_migrations::bson::doc! {
                                "ok": 0.0,
                                "errmsg": "not primary",
                                "code": 10107,
                                "codeName": "NotWritablePrimary",
                            };
                            let _ = made_tx.send(op_msg(request_id, &refusal));
                            continue;
                        }
                        None => {}
                    }
                }
            }
        }
        if frozen.wait_for(|f| !*f).await.is_err() {
            break;
        }
        if server_write.write_all(&header).await.is_err() || server_write.write_all(&body).await.is_err() {
            break;
        }
    }
    replies.abort();
}

/// One whole wire message: its 16-byte header and the rest.
async fn read_message(from: &mut (impl AsyncReadExt + Unpin)) -> Option<([u8; 16], Vec<u8>)> {
    let mut header = [0u8; 16];
    from.read_exact(&mut header).await.ok()?;
    let length = i32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    let mut body = vec![0u8; length.checked_sub(16)?];
    from.read_exact(&mut body).await.ok()?;
    Some((header, body))
}

/// The command document of an `OP_MSG` body (after the header): its kind-0
/// section, with any kind-1 document sequences added as arrays.
fn command_of(body: &[u8]) -> Option<Document> {
    let flags = u32::from_le_bytes(body.get(..4)?.try_into().ok()?);
    let end = if flags & 1 == 1 { body.len() - 4 } else { body.len() };
    let mut at = 4;
    let mut command: Option<Document> = None;
    let mut sequences = Vec::new();
    while at < end {
        let kind = body[at];
        at += 1;
        let size = i32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?) as usize;
        match kind {
            0 => command = Document::from_reader(&body[at..at + size]).ok(),
            1 => {
                let section = &body[at + 4..at + size];
                let nul = section.iter().position(|&b| b == 0)?;
                let name = String::from_utf8_lossy(&section[..nul]).into_owned();
                let mut docs = Vec::new();
                let mut rest = &section[nul + 1..];
                while !rest.is_empty() {
                    let n = i32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
                    docs.push(mongo_migrations::bson::Bson::Document(
                        Document::from_reader(&rest[..n]).ok()?,
                    ));
                    rest = &rest[n..];
                }
                sequences.push((name, docs));
            }
            _ => return None,
        }
        at += size;
    }
    let mut command = command?;
    for (name, docs) in sequences {
        command.insert(name, docs);
    }
    Some(command)
}
