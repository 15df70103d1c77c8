//! Where a child runner is, by construction rather than by timing: the child
//! announces what it reached on its stdout, and waits at a gate (its stdin)
//! that only the parent opens. A pause or a kill the parent sends after an
//! announcement, while the gate is shut, lands where the test means it to on
//! any machine, however loaded: the child cannot finish its run, and release
//! its lock, before the parent lets it.
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// In a child started by [`gated`]: says that it reached `event` (stdout is
/// line-buffered, so the parent reads it at once). Elsewhere (the parent
/// running the same migrations to recover) it says nothing.
pub fn announce(event: &str) {
    if std::env::var_os(GATED).is_some() {
        println!("ANNOUNCE {event}");
    }
}

/// Set in a child started by [`gated`].
const GATED: &str = "MM_TEST_GATED_CHILD";

/// Starts a child with its gate shut: its stdin is a pipe the parent holds.
pub fn gated(cmd: &mut Command) -> &mut Command {
    cmd.env(GATED, "1").stdin(Stdio::piped())
}

/// In a child started by [`gated`]: waits until the parent opens the gate by
/// closing the child's stdin. Anywhere else (the parent running the same
/// migrations to recover, a child started without a gate) it passes at once.
pub async fn gate() {
    if std::env::var_os(GATED).is_none() {
        return;
    }
    tokio::task::spawn_blocking(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    })
    .await
    .unwrap();
}

/// In the parent: a child's announcements as they come, its whole stdout at
/// the end, and the gate it waits at.
pub struct Watched {
    events: mpsc::Receiver<String>,
    reader: Option<JoinHandle<String>>,
    gate: Option<ChildStdin>,
}

impl Watched {
    /// Takes `child`'s piped stdout (and its piped stdin, the gate, if any).
    pub fn new(child: &mut Child) -> Self {
        let stdout = child.stdout.take().expect("the child's stdout is piped");
        let (tx, events) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The test harness may have begun the line ("test x ... ").
                if let Some((_, event)) = line.split_once("ANNOUNCE ") {
                    let _ = tx.send(event.to_string());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        Watched {
            events,
            reader: Some(reader),
            gate: child.stdin.take(),
        }
    }

    /// Waits until the child announces `event`; panics if it exits first or
    /// does not get there within `within`.
    pub async fn reached(&self, event: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            match self.events.try_recv() {
                Ok(e) if e == event => return,
                Ok(_) => continue,
                Err(mpsc::TryRecvError::Disconnected) => panic!("the child exited before it announced {event:?}"),
                Err(mpsc::TryRecvError::Empty) => {
                    assert!(
                        Instant::now() < deadline,
                        "the child did not announce {event:?} in {within:?}"
                    );
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
        }
    }

    /// Opens the gate: the child's stdin reaches its end.
    pub fn open_gate(&mut self) {
        self.gate.take();
    }

    /// Opens the gate and returns everything the child printed, once it has
    /// closed its stdout (it exited).
    pub async fn output(mut self) -> String {
        self.open_gate();
        let reader = self.reader.take().unwrap();
        tokio::task::spawn_blocking(move || reader.join().unwrap())
            .await
            .unwrap()
    }
}
