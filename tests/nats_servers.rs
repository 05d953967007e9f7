//! The NATS servers the tests start (`common::nats`) are real ones: they speak the NATS
//! protocol on the port they report, route messages between the servers of a cluster, and are
//! gone once killed. Spoken to here in the protocol's own text, with no client library.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::nats::NatsServer;

/// A client connection in the protocol's text form.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(server: &NatsServer) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", server.port())).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a timeout");
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().expect("a second handle")),
            writer: stream,
        };
        let info = client.line().expect("the server's INFO");
        assert!(info.starts_with("INFO {"), "{info}");
        assert!(
            info.contains(&format!("\"port\":{}", server.port())),
            "{info}"
        );
        client.send("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n");
        assert_eq!(client.line().as_deref(), Some("PONG"));
        client
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).expect("sent");
    }

    /// The next line, without its CRLF; `None` if none comes within the read timeout.
    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(n) if n > 0 => Some(line.trim_end().to_owned()),
            _ => None,
        }
    }

    /// Waits up to `within` for a message on `subject`; its payload.
    fn message(&mut self, subject: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            match self.line() {
                Some(line) if line.starts_with(&format!("MSG {subject} ")) => return self.line(),
                Some(line) if line == "PING" => self.send("PONG\r\n"),
                _ => {}
            }
        }
        None
    }
}

#[test]
fn a_server_listens_on_the_port_it_reports_and_delivers_messages() {
    let server = NatsServer::start();
    assert!(
        server.url.starts_with("nats://127.0.0.1:"),
        "{}",
        server.url
    );
    let mut client = Client::connect(&server);
    client.send("SUB greet 1\r\nPUB greet 5\r\nhello\r\n");
    assert_eq!(
        client.message("greet", Duration::from_secs(5)).as_deref(),
        Some("hello")
    );
}

#[test]
fn a_cluster_routes_a_message_from_one_server_to_another() {
    let cluster = NatsServer::cluster(3);
    let mut listener = Client::connect(&cluster[0]);
    listener.send("SUB work 1\r\nPING\r\n");
    assert_eq!(listener.line().as_deref(), Some("PONG"));
    let mut sender = Client::connect(&cluster[2]);
    // Interest takes a moment to reach the other servers: publish until it arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    let received = loop {
        sender.send("PUB work 4\r\njob1\r\n");
        if let Some(payload) = listener.message("work", Duration::from_millis(200)) {
            break payload;
        }
        assert!(
            Instant::now() < deadline,
            "no message crossed the cluster; logs:\n{}\n{}",
            cluster[0].log(),
            cluster[2].log()
        );
    };
    assert_eq!(received, "job1");
}

#[test]
fn a_killed_server_is_gone() {
    let mut server = NatsServer::start();
    let port = server.port();
    let _client = Client::connect(&server);
    server.kill();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still accepts"
    );
}
