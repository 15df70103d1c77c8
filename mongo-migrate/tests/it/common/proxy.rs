//! A TCP proxy between one runner and the test server that can hold back a
//! chosen command in flight: the network delay (or paused process) that
//! makes a write land after the runner lost its lock, on demand.
//!
//! It reads the client's messages whole (MongoDB wire protocol, `OP_MSG`).
//! When one's command document matches the armed [`Hold`], it stops every
//! client-to-server stream (the runner's heartbeat too, as for a paused
//! process) until the hold is released.

use std::sync::{Arc, Mutex};

use mongo_migrate::bson::Document;
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

#[derive(Clone)]
pub struct Proxy {
    /// `mongodb://…` of the proxy, one direct connection to the server behind it.
    pub uri: String,
    armed: Arc<Mutex<Option<Armed>>>,
}

#[derive(Clone)]
struct Shared {
    armed: Arc<Mutex<Option<Armed>>>,
    frozen: Arc<watch::Sender<bool>>,
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
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&host).await.unwrap();
                tokio::spawn(pipe(client, server, shared.clone()));
            }
        });
        Proxy { uri, armed }
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
    let replies = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });
    loop {
        let mut header = [0u8; 16];
        if client_read.read_exact(&mut header).await.is_err() {
            break;
        }
        let length = i32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let mut body = vec![0u8; length - 16];
        if client_read.read_exact(&mut body).await.is_err() {
            break;
        }
        let op_code = i32::from_le_bytes(header[12..16].try_into().unwrap());
        if op_code == 2013 {
            if let Some(command) = command_of(&body) {
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
                    docs.push(mongo_migrate::bson::Bson::Document(
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
