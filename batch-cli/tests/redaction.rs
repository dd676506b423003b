//! A server whose 401 quotes the API key it was sent: the `openai-batch`
//! binary prints the server's message and stores it in its journal with
//! the key redacted, never the key itself.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const KEY: &str = "sk-proj-redaction-test-0123456789abcdef";
const BIN: &str = env!("CARGO_BIN_EXE_openai-batch");
/// What the key is replaced with.
const REDACTED: &str = batch_core::api::ApiBase::REDACTED;

/// Answers every request `401` with OpenAI's message, quoting the bearer
/// token it got. Returns the base URL and a request counter.
fn echoing_server() -> (String, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let count = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            c.fetch_add(1, Ordering::Relaxed);
            std::thread::spawn(move || answer(stream));
        }
    });
    (base, count)
}

fn answer(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut key = String::new();
    let mut length = 0usize;
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "authorization" => key = v.trim().trim_start_matches("Bearer ").to_owned(),
                "content-length" => length = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    let _ = stream.read_exact(&mut body);
    let json = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    let reply = format!(
        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_key_echoed_in_a_401_is_redacted_from_stderr_summary_and_spill() {
    let (base, requests) = echoing_server();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"custom_id\":\"a\",\"prompt\":\"x\"}\n{\"custom_id\":\"b\",\"prompt\":\"y\"}\n",
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let mut child = Command::new(BIN)
        .args(["run", input.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(["--model", "gpt-4o-mini", "--base-url", &base])
        .env("OPENAI_API_KEY", KEY)
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a refused key ends the run at once.
    let mut waited = Duration::ZERO;
    while child.try_wait().unwrap().is_none() {
        assert!(waited < Duration::from_secs(60), "the run did not end");
        std::thread::sleep(Duration::from_millis(50));
        waited += Duration::from_millis(50);
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        requests.load(Ordering::Relaxed) >= 1,
        "the server was asked"
    );
    assert_ne!(output.status.code(), Some(0), "a refused key is a failure");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !contains(&output.stderr, KEY),
        "the key is on stderr:\n{stderr}"
    );
    assert!(!contains(&output.stdout, KEY), "the key is on stdout");
    assert!(
        stderr.contains(&format!("Incorrect API key provided: {REDACTED}")),
        "the server's message, redacted, is on stderr:\n{stderr}"
    );

    let journal = dir.path().join("out.jsonl.journal");
    let stored = files(&journal);
    let named = |name: &str| {
        stored
            .iter()
            .find(|p| p.file_name().is_some_and(|n| n == name))
            .unwrap_or_else(|| panic!("no {name} in the journal: {stored:?}"))
    };
    for name in ["summary.json", "results.spill"] {
        let bytes = std::fs::read(named(name)).unwrap();
        assert!(!contains(&bytes, KEY), "the key is in {name}");
        assert!(
            contains(&bytes, REDACTED),
            "{name} keeps the server's message, redacted: {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    for f in stored
        .iter()
        .chain(std::iter::once(&out).filter(|p| p.exists()))
    {
        let bytes = std::fs::read(f).unwrap();
        assert!(!contains(&bytes, KEY), "the key is in {}", f.display());
    }
}
