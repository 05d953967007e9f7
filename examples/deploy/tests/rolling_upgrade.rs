//! The deployment example's programs, each a binary of its own, run as separate processes:
//! programs built apart share bodies through a crate; a client and a server of different
//! versions call what both have (a rolling upgrade), and the one body only the newer build has
//! fails at once, saying where it is and what to do; a client may start before its server.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A server program running until the test drops it (its standard input closes then).
struct Server {
    process: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.process.stdin.take());
        if self.process.wait().is_err() {
            let _ = self.process.kill();
        }
    }
}

fn start_server(program: &str, addr: &str) -> Server {
    let mut process = Command::new(program)
        .arg(addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the server starts");
    let stdout = process.stdout.take().expect("piped");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its URL");
        if let Some(url) = line.strip_prefix("url ") {
            break url.to_owned();
        }
    };
    Server { process, url }
}

/// Runs a client program against `url` to its end; its lines of output.
fn run_client(program: &str, url: &str) -> Vec<String> {
    let output = Command::new(program)
        .arg(url)
        .stderr(Stdio::inherit())
        .output()
        .expect("the client runs");
    assert!(output.status.success(), "{program} failed: {output:?}");
    String::from_utf8(output.stdout)
        .expect("text")
        .lines()
        .map(str::to_owned)
        .collect()
}

const SERVER: &str = env!("CARGO_BIN_EXE_server");
const SERVER_NEXT: &str = env!("CARGO_BIN_EXE_server-next");
const CLIENT: &str = env!("CARGO_BIN_EXE_client");
const CLIENT_NEXT: &str = env!("CARGO_BIN_EXE_client-next");

const SHARED_CALLS: [&str; 3] = ["resize: 320", "words: 3", "own: ran here"];
/// `reports::summary` as each version of the server implements it.
const SUMMARY_1: &str = "summary: 3 words";
const SUMMARY_2: &str = "summary: 3 words, 11 letters";

#[test]
fn programs_built_apart_call_the_bodies_they_share() {
    let server = start_server(SERVER, "127.0.0.1:0");
    let lines = run_client(CLIENT, &server.url);
    assert_eq!(lines[..3], SHARED_CALLS);
    assert_eq!(lines[3..], [SUMMARY_1]);
    let server = start_server(SERVER_NEXT, "127.0.0.1:0");
    let lines = run_client(CLIENT_NEXT, &server.url);
    assert_eq!(lines[..3], SHARED_CALLS);
    assert_eq!(lines[3..], [SUMMARY_2, "shout: HELLO"]);
}

#[test]
fn a_newer_client_calls_an_older_server_and_only_the_new_body_fails() {
    let server = start_server(SERVER, "127.0.0.1:0");
    let lines = run_client(CLIENT_NEXT, &server.url);
    assert_eq!(lines[..3], SHARED_CALLS, "the bodies both have work");
    assert_eq!(lines[3], SUMMARY_1, "the older implementation answers");
    let failure = &lines[4];
    assert!(
        failure
            .starts_with("shout failed: peer `server` does not serve body `deploy_bodies::next::")
            && failure.contains("bodies-next/src/lib.rs:")
            && failure.contains("no body of module `deploy_bodies::next`"),
        "{failure}"
    );
}

/// Among them a `#[remote_fn]` whose implementation changed: the older client reaches the
/// newer implementation, because the function's name fingerprints its signature, not its code.
#[test]
fn an_older_client_calls_a_newer_server() {
    let server = start_server(SERVER_NEXT, "127.0.0.1:0");
    let lines = run_client(CLIENT, &server.url);
    assert_eq!(lines[..3], SHARED_CALLS);
    assert_eq!(lines[3..], [SUMMARY_2]);
}

#[test]
fn a_client_started_before_its_server_waits_for_it() {
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("its address")
    };
    let url = format!("ws://{addr}");
    let client = std::thread::spawn(move || run_client(CLIENT, &url));
    std::thread::sleep(Duration::from_millis(500));
    let _server = start_server(SERVER, &addr.to_string());
    let lines = client.join().expect("the client finishes");
    assert_eq!(lines[..3], SHARED_CALLS);
    assert_eq!(lines[3..], [SUMMARY_1]);
}

/// `link!` is needed exactly when a binary serves bodies of a library it never calls into: the
/// linker then leaves the library out. Here that server serves none of them, and the first call
/// fails at once (the client exits with the error, as `main` prints it), saying what to add.
#[test]
fn a_server_that_forgot_link_refuses_calls_with_what_to_add() {
    let server = start_server(env!("CARGO_BIN_EXE_server-unlinked"), "127.0.0.1:0");
    let output = Command::new(CLIENT)
        .arg(&server.url)
        .output()
        .expect("the client runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).expect("text");
    assert!(
        stderr.starts_with("Error: peer `server` does not serve body `deploy_bodies::jobs::")
            && stderr.contains("no body of module `deploy_bodies::jobs`")
            && stderr.contains("remote_scope::link!("),
        "{stderr}"
    );
}
