//! What the blocking transport puts on the wire, checked against a minimal
//! loopback server that records each request.
#![allow(missing_docs, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use batch_blocking::{Client, ClientConfig};
use batch_core::Endpoint;
use batch_core::api::{self, ApiConfig, CreateBatch};

const BATCH: &str = r#"{"id":"batch_1","object":"batch","endpoint":"/v1/chat/completions","input_file_id":"file-1","completion_window":"24h","status":"validating","created_at":1700000000}"#;

/// A request as the server saw it: its head lines, lowercased, and its body.
type Seen = (Vec<String>, Vec<u8>);

/// Serves `n` requests on a loopback port; sends each request's head lines
/// (lowercased) and body back over the channel.
fn server(n: usize) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_ascii_lowercase());
            }
            let len = head
                .iter()
                .find_map(|h| h.strip_prefix("content-length: "))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).expect("body");
            let mut stream = stream;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BATCH}",
                BATCH.len()
            );
            stream.write_all(answer.as_bytes()).expect("answer");
            tx.send((head, body)).expect("send");
        }
    });
    (url, rx)
}

fn has(head: &[String], prefix: &str) -> bool {
    head.iter().any(|h| h.starts_with(prefix))
}

#[test]
fn a_get_carries_no_body_and_json_carries_its_length() {
    let (url, rx) = server(2);
    let client = Client::new(ClientConfig::new(
        ApiConfig::new("sk-test").with_base_url(url),
    ))
    .expect("client");

    let get = api::retrieve_batch(client.api(), "batch_1").expect("request");
    let (head, _) = client.execute(get).expect("retrieve");
    assert_eq!(head.status, 200);
    let (seen, body) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("request seen");
    assert!(seen[0].starts_with("get /v1/batches/batch_1 "), "{seen:?}");
    assert!(
        !has(&seen, "transfer-encoding"),
        "a GET must not be chunked: {seen:?}"
    );
    assert!(body.is_empty());

    let create = api::create_batch(
        client.api(),
        &CreateBatch::new("file-1", Endpoint::ChatCompletions),
    )
    .expect("request");
    client.execute(create).expect("create");
    let (seen, body) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("request seen");
    assert!(seen[0].starts_with("post /v1/batches "), "{seen:?}");
    assert!(!has(&seen, "transfer-encoding"), "{seen:?}");
    assert!(
        has(&seen, &format!("content-length: {}", body.len())),
        "{seen:?}"
    );
    assert!(body.starts_with(b"{"), "{}", String::from_utf8_lossy(&body));
}
