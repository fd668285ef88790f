//! `process::run` against ordinary shell utilities.

use std::process::Command;
use std::time::{Duration, Instant};

use cib_tools::process::{run, run_checked, STDERR_LIMIT};
use cib_tools::Error;

const T: Duration = Duration::from_secs(60);

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

#[test]
fn captures_stdout_and_stderr() {
    let out = run(&mut sh("echo out; echo err >&2"), None, T).unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
}

#[test]
fn nonzero_exit_is_returned_by_run() {
    let out = run(&mut sh("echo oops >&2; exit 3"), None, T).unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn nonzero_exit_is_failed_with_stderr() {
    let err = run_checked(&mut sh("echo '  oops  ' >&2; exit 3"), None, T).unwrap_err();
    match &err {
        Error::Failed {
            program,
            args,
            code,
            stderr,
        } => {
            assert_eq!(program, "sh");
            assert!(args.starts_with("-c '"), "{args}");
            assert_eq!(*code, Some(3));
            assert_eq!(stderr, "oops");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("exited with code 3") && msg.ends_with(": oops"),
        "{msg}"
    );
}

#[test]
fn killed_by_signal_has_no_code() {
    let err = run_checked(&mut sh("kill -9 $$"), None, T).unwrap_err();
    assert!(matches!(err, Error::Failed { code: None, .. }), "{err:?}");
}

#[test]
fn failed_stderr_is_bounded_and_keeps_the_tail() {
    let script = "head -c 100000 /dev/zero | tr '\\0' a >&2; echo; echo VERDICT >&2; exit 1";
    match run_checked(&mut sh(script), None, T).unwrap_err() {
        Error::Failed { stderr, .. } => {
            assert!(stderr.len() <= STDERR_LIMIT + 64, "{} bytes", stderr.len());
            assert!(
                stderr.ends_with("VERDICT"),
                "{}",
                &stderr[stderr.len() - 40..]
            );
            assert!(stderr.contains("bytes omitted"));
        }
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn stdin_is_fed_and_closed() {
    let out = run(&mut Command::new("cat"), Some(b"hello"), T).unwrap();
    assert_eq!(out.stdout, b"hello");
}

#[test]
fn no_stdin_means_dev_null() {
    let out = run(&mut Command::new("cat"), None, Duration::from_secs(5)).unwrap();
    assert!(out.stdout.is_empty());
}

#[test]
fn child_ignoring_stdin_is_fine() {
    let input = vec![b'x'; 5_000_000];
    let out = run(&mut Command::new("true"), Some(&input), T).unwrap();
    assert!(out.status.success());
}

#[test]
fn timeout_kills_quickly() {
    let start = Instant::now();
    let err = run(
        Command::new("sleep").arg("10"),
        None,
        Duration::from_millis(200),
    )
    .unwrap_err();
    let took = start.elapsed();
    match err {
        Error::Timeout { program, after } => {
            assert_eq!(program, "sleep");
            assert_eq!(after, Duration::from_millis(200));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn timeout_after_streams_closed() {
    // Closes stdout and stderr, then keeps running: the exit wait times out.
    let start = Instant::now();
    let err = run(
        &mut sh("exec >&- 2>&-; exec sleep 10"),
        None,
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn large_stdout_does_not_deadlock() {
    let out = run(&mut sh("head -c 20000000 /dev/zero"), None, T).unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 20_000_000);
}

#[test]
fn large_stdout_and_stderr_and_stdin_together() {
    // cat copies 20 MB of stdin to stdout while 5 MB go to stderr first.
    let input = vec![b'c'; 20_000_000];
    let out = run(
        &mut sh("head -c 5000000 /dev/zero >&2; cat"),
        Some(&input),
        T,
    )
    .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 20_000_000);
    assert_eq!(out.stderr.len(), 5_000_000);
}

#[test]
fn spawn_error_names_program_and_package() {
    let err = run(&mut Command::new("crm_no_such_tool"), None, T).unwrap_err();
    assert!(matches!(err, Error::Spawn { ref program, .. } if program == "crm_no_such_tool"));
    assert!(err.to_string().contains("pacemaker-cli-utils"), "{err}");

    let err = run(&mut Command::new("no-such-program-xyz"), None, T).unwrap_err();
    assert!(matches!(err, Error::Spawn { .. }));
    assert!(!err.to_string().contains("pacemaker"), "{err}");
}
