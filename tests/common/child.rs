//! The test binary run again as a child process, for tests where a node must live in a process
//! of its own (to be killed, or so that a crash shows).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// Starts this test binary again with `env` set. Its stdin is a pipe from the test, so the
/// child can go when the test does ([`exit_with_parent`]); its stdout is read line by line into
/// the returned channel.
pub fn spawn_self(env: &[(&str, &str)]) -> (Child, mpsc::Receiver<String>) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut process = command.spawn().expect("the child process starts");
    let stdout = process.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (process, lines)
}

/// In the child: exits (with status 3) once the test process is gone, as its stdin then
/// closes, so no child outlives a test that died.
pub fn exit_with_parent() {
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(3);
    });
}
