//! Running a built harness: the request on its stdin, progress and the
//! answer on its stdout, Ctrl-C shared with it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use anyhow::{Context as _, Result};
use mongo_migrations::harness::{Answer, Reply, Request};

use crate::exit::{Code, Failure};
use crate::workspace::show_command;

/// Runs the harness with `request`; calls `progress` for each progress line
/// and returns the result value, or a failure with the right exit code.
pub fn run(
    bin: &Path,
    request: &Request,
    verbose: bool,
    mut progress: impl FnMut(&mongo_migrations::Progress),
) -> Result<Answer> {
    let interrupted = request.command.applies().then(outlive_ctrl_c);
    let mut cmd = Command::new(bin);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if verbose {
        show_command(&cmd);
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot run {}", bin.display()))?;
    {
        // The URI goes through stdin so it never shows in a process list.
        let mut stdin = child.stdin.take().expect("piped");
        serde_json::to_writer(&mut stdin, request)?;
        stdin.write_all(b"\n")?;
    }
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut outcome = None;
    for line in stdout.lines() {
        let line = line?;
        match serde_json::from_str::<Reply>(&line) {
            Ok(Reply::Progress(p)) => progress(&p),
            Ok(Reply::Result(answer)) => outcome = Some(Ok(*answer)),
            Ok(Reply::Error(e)) => outcome = Some(Err(e)),
            // Migrations may print; pass it on, to stderr: stdout carries
            // the report alone (`--json | jq`).
            Err(_) => eprintln!("{line}"),
        }
    }
    let status = child.wait()?;
    match outcome {
        Some(Ok(answer)) => Ok(answer),
        Some(Err(e)) => Err(Failure::from_reply(e, verbose).into()),
        None if interrupted.is_some_and(|seen| seen.load(Ordering::SeqCst)) => Err(Failure::new(
            Code::Interrupted,
            "aborted: the migration in progress was cut off",
        )
        .hint("its lock expires on its own; then see `cargo mongo-migrate status` and settle it with `resolve`")
        .into()),
        None => Err(Failure::new(
            Code::Failed,
            format!("the migration harness exited with {status} and no answer"),
        )
        .hint("a migration may have aborted the process; check `status`")
        .into()),
    }
}

/// Ctrl-C reaches the harness too, in the same process group: the first one
/// stops it after the migration in progress, a second one aborts it. The CLI
/// stays alive meanwhile, to report what happened and exit with its code.
fn outlive_ctrl_c() -> &'static AtomicBool {
    static SEEN: AtomicBool = AtomicBool::new(false);
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Without the handler Ctrl-C ends the CLI early; nothing worse.
        let _ = ctrlc::set_handler(|| {
            SEEN.store(true, Ordering::SeqCst);
            // The harness now writes to the terminal: no bar over its lines.
            mongo_migrations::cli::output::interrupted();
        });
    });
    &SEEN
}
