//! Running a child process with a timeout, capturing stdout and stderr.
//!
//! Modelled on ripgrep's `crates/cli/src/process.rs`: one wrapper, and a
//! failure keeps the program's stderr in the error.
//!
//! [`run`] feeds stdin from one thread and drains stdout and stderr on two
//! more, so a child that writes megabytes to both streams while we are still
//! writing its input cannot deadlock. The child is killed and reaped when
//! the timeout expires. The exit status is returned as is: the caller
//! decides which codes are success ([`run_checked`] accepts only 0).
//!
//! The child inherits the environment and the working directory of the
//! caller, as configured on the [`Command`] (nothing is cleared here).

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Upper bound (bytes) of the stderr text kept in [`Error::Failed`].
pub const STDERR_LIMIT: usize = 4096;

/// Runs `cmd` to completion and returns its status, stdout and stderr.
///
/// - `stdin`: bytes written to the child's stdin, which is then closed;
///   `None` connects stdin to `/dev/null`.
/// - `timeout`: wall-clock limit for the whole run (until both output
///   streams are closed and the child has exited). On expiry the child is
///   killed (SIGKILL) and reaped, and [`Error::Timeout`] is returned. Only
///   the direct child is killed: a grandchild that keeps the output pipes
///   open also makes the run time out, and its reader threads are left to
///   end when it does.
///
/// A non-zero exit status is *not* an error here; see [`run_checked`].
///
/// # Errors
///
/// [`Error::Spawn`] if the program cannot be started, [`Error::Timeout`],
/// or [`Error::Io`] if reading the pipes or waiting for the child fails.
pub fn run(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    run_shared(cmd, stdin.map(|data| -> SharedInput { Arc::new(data.to_vec()) }), timeout)
}

/// Largest stdout buffer reserved up front.
const MAX_OUTPUT_HINT: usize = 64 << 20;

/// Input shared with the thread that writes it to a child's stdin.
pub type SharedInput = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// [`run`] with input the caller shares instead of lending: the thread
/// that writes it needs no copy (an 8 MB scope given to `xsltproc`, say).
pub fn run_shared(cmd: &mut Command, stdin: Option<SharedInput>, timeout: Duration) -> Result<Output> {
    let program = program_name(cmd);
    tracing::debug!(program = %program, args = %joined_args(cmd), ?timeout, "running");

    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    let start = Instant::now();
    let deadline = start.checked_add(timeout);

    // A filter's output is usually about as long as its input: sized
    // once, the buffer is not copied as it grows (reserved memory that is
    // not written costs nothing).
    let expected = stdin.as_ref().map_or(0, |d| (**d).as_ref().len().min(MAX_OUTPUT_HINT));
    let writer = stdin
        .zip(child.stdin.take())
        .map(|(data, pipe)| spawn_writer(data, pipe));

    let (tx, rx) = mpsc::channel();
    spawn_reader(child.stdout.take(), Stream::Stdout, tx.clone(), expected);
    spawn_reader(child.stderr.take(), Stream::Stderr, tx, 0);

    let (stdout, stderr) = match collect(&rx, deadline, &program, timeout) {
        Ok(streams) => streams,
        Err(e) => {
            kill_and_reap(&mut child);
            return Err(e);
        }
    };

    // Both streams are closed; the child is exiting (or closed them early).
    let status = wait_until(&mut child, deadline).map_err(|source| Error::Io {
        context: format!("waiting for `{program}`"),
        source,
    })?;
    let Some(status) = status else {
        kill_and_reap(&mut child);
        return Err(Error::Timeout {
            program,
            after: timeout,
        });
    };

    if let Some(handle) = writer {
        // If the thread is still blocked, a grandchild holds stdin open;
        // the thread is left detached.
        if handle.is_finished() {
            let result = handle
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("stdin writer thread panicked")));
            result.map_err(|source| Error::Io {
                context: format!("writing stdin of `{program}`"),
                source,
            })?;
        }
    }

    tracing::debug!(program = %program, code = ?status.code(), elapsed = ?start.elapsed(), "finished");
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Like [`run`], but a non-zero exit status (or death by signal) becomes
/// [`Error::Failed`] carrying the bounded stderr.
///
/// # Errors
///
/// Everything [`run`] returns, plus [`Error::Failed`].
pub fn run_checked(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Result<Output> {
    let output = run(cmd, stdin, timeout)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(failed(cmd, &output))
    }
}

/// Builds [`Error::Failed`] for `cmd` from its `output`.
#[must_use]
pub fn failed(cmd: &Command, output: &Output) -> Error {
    Error::Failed {
        program: program_name(cmd),
        args: joined_args(cmd),
        code: output.status.code(),
        stderr: bounded_text(&output.stderr, STDERR_LIMIT),
    }
}

/// The program of `cmd` as a (lossy) string, for messages.
#[must_use]
pub fn program_name(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// The arguments of `cmd` joined with spaces; arguments that are empty or
/// contain whitespace or quotes are single-quoted (for messages only).
#[must_use]
pub fn joined_args(cmd: &Command) -> String {
    cmd.get_args().map(quote_arg).collect::<Vec<_>>().join(" ")
}

fn quote_arg(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    if !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"')
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Decodes `bytes` lossily, trims it, and bounds it to about `limit` bytes
/// by keeping the head (a quarter) and the tail (the rest) around an
/// "omitted" marker — Pacemaker tools print their verdict last, sometimes
/// after dumping a whole CIB.
#[must_use]
pub fn bounded_text(bytes: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.len() <= limit {
        return text.to_owned();
    }
    let head_end = floor_char_boundary(text, limit / 4);
    let tail_start = ceil_char_boundary(text, text.len() - (limit - limit / 4));
    format!(
        "{}\n[... {} bytes omitted ...]\n{}",
        &text[..head_end],
        tail_start - head_end,
        &text[tail_start..]
    )
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Feeds `data` to the child's stdin on its own thread, then closes it.
/// The data is an owned copy so that the thread can outlive [`run`] if a
/// grandchild keeps the pipe open (it ends with EPIPE once every reader is
/// gone).
fn spawn_writer(data: SharedInput, mut pipe: ChildStdin) -> thread::JoinHandle<io::Result<()>> {
    thread::spawn(move || {
        match pipe.write_all((*data).as_ref()) {
            // The child may legitimately exit without reading all of its
            // input; its exit status tells the story.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
        // `pipe` is dropped here: the child sees EOF.
    })
}

/// Waits for both reader threads until `deadline`; returns (stdout, stderr).
/// On error the caller kills the child.
fn collect(
    rx: &mpsc::Receiver<Received>,
    deadline: Option<Instant>,
    program: &str,
    timeout: Duration,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut stdout = None;
    let mut stderr = None;
    while stdout.is_none() || stderr.is_none() {
        let received = match remaining(deadline) {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(left) => rx.recv_timeout(left),
        };
        match received {
            Ok((Stream::Stdout, Ok(bytes))) => stdout = Some(bytes),
            Ok((Stream::Stderr, Ok(bytes))) => stderr = Some(bytes),
            Ok((stream, Err(source))) => {
                return Err(Error::Io {
                    context: format!("reading {} of `{program}`", stream.name()),
                    source,
                })
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(Error::Timeout {
                    program: program.to_owned(),
                    after: timeout,
                })
            }
            // Cannot happen: each reader sends exactly once before it drops
            // its sender. Treat it as an I/O failure anyway.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Io {
                    context: format!("reader thread of `{program}` vanished"),
                    source: io::Error::other("reader thread ended without a result"),
                })
            }
        }
    }
    Ok((stdout.unwrap_or_default(), stderr.unwrap_or_default()))
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

type Received = (Stream, io::Result<Vec<u8>>);

trait Pipe: Read + Send + 'static {}
impl Pipe for ChildStdout {}
impl Pipe for ChildStderr {}

fn spawn_reader<P: Pipe>(pipe: Option<P>, stream: Stream, tx: mpsc::Sender<Received>, capacity: usize) {
    thread::spawn(move || {
        let mut buf = Vec::with_capacity(capacity);
        let result = match pipe {
            Some(mut p) => p.read_to_end(&mut buf).map(|_| buf),
            None => Ok(buf),
        };
        // The receiver is gone only if run() already returned (timeout).
        let _ = tx.send((stream, result));
    });
}

/// Time left until `deadline`; `None` means no deadline (timeout overflowed).
fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

/// Polls the child until it exits or the deadline passes (`Ok(None)`).
fn wait_until(
    child: &mut Child,
    deadline: Option<Instant>,
) -> io::Result<Option<std::process::ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let sleep = match remaining(deadline) {
            Some(left) if left.is_zero() => return Ok(None),
            Some(left) => pause.min(left),
            None => pause,
        };
        thread::sleep(sleep);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn kill_and_reap(child: &mut Child) {
    // kill() fails only if the child has already exited; wait() reaps it
    // either way so no zombie is left behind.
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_keeps_head_and_tail() {
        let mut s = String::from("HEAD");
        s.push_str(&"é".repeat(10_000));
        s.push_str("TAIL");
        let b = bounded_text(s.as_bytes(), 100);
        assert!(b.starts_with("HEAD"));
        assert!(b.ends_with("TAIL"));
        assert!(b.contains("bytes omitted"));
        assert!(b.len() < 200);
    }

    #[test]
    fn bounded_text_trims_short_text() {
        assert_eq!(bounded_text(b"  oops\n", 100), "oops");
    }

    #[test]
    fn quoting_for_messages() {
        let mut cmd = Command::new("x");
        cmd.args(["a", "b c", "", "it's"]);
        assert_eq!(joined_args(&cmd), r"a 'b c' '' 'it'\''s'");
    }
}
