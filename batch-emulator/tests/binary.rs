//! The `batch-emulator` binary and the blocking handle: the first stdout
//! line, serving, state kept across a hard kill, and sync start-up.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use batch_emulator::{EmulatorConfig, EmulatorHandle, FaultConfig};
use common::{Api, chat_line};

/// Kills the child on drop, so a failing test leaves no process behind.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_batch-emulator"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn batch-emulator");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(l) => l,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no first line within 20 s");
        }
    };
    let mut server = Server {
        child,
        base: String::new(),
    };
    let line = line.trim_end();
    let base = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/v1"),
        "{base}"
    );
    server.base = base;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_prints_its_address_and_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    let server = spawn(&[
        "--port",
        "0",
        "--data-dir",
        data,
        "--speed",
        "2000",
        "--seed",
        "5",
        "--faults",
        "429-every=1000",
    ]);
    let api = Api::new(&server.base);
    let file_id = api
        .upload(&[chat_line("a", "hi"), chat_line("b", "there")])
        .await;
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let done = api
        .wait_terminal(b["id"].as_str().expect("id"), Duration::from_secs(20))
        .await;
    assert_eq!(done["status"], "completed");
    let counters = api.counters().await;
    assert_eq!(counters["batches_created"], 1);
    assert_eq!(counters["files_uploaded"], 1);
    let faults: serde_json::Value = api
        .http
        .get(format!("{}/__emulator/faults", api.root()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(faults["spec"], "429-every=1000");

    // A hard kill loses nothing that was answered.
    drop(server);
    let server = spawn(&["--port", "0", "--data-dir", data]);
    let api = Api::new(&server.base);
    let again = api.batch(b["id"].as_str().expect("id")).await;
    assert_eq!(again["status"], "completed");
    assert_eq!(api.result_lines(&again["output_file_id"]).await.len(), 2);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_checks_models_unless_told_to_accept_any() {
    let line = common::chat_line_model("a", "hi", "house-model-7");
    for (args, status, model) in [
        (&["--speed", "2000"][..], "failed", None),
        (
            &["--speed", "2000", "--any-model"][..],
            "completed",
            Some("house-model-7"),
        ),
    ] {
        let server = spawn(args);
        let api = Api::new(&server.base);
        let file_id = api.upload(std::slice::from_ref(&line)).await;
        let b = api.create_batch(&file_id, "/v1/chat/completions").await;
        let done = api
            .wait_terminal(b["id"].as_str().expect("id"), Duration::from_secs(20))
            .await;
        assert_eq!(done["status"], status, "{args:?}: {done}");
        match model {
            Some(m) => assert_eq!(done["model"], m),
            None => assert_eq!(done["errors"]["data"][0]["code"], "model_not_found"),
        }
        drop(server);
    }
}

#[cfg(unix)]
#[test]
fn binary_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = spawn(&["--data-dir", dir.path().to_str().expect("utf-8 path")]);
    let pid = server.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let mut status = None;
    for _ in 0..200 {
        if let Some(s) = server.child.try_wait().expect("try_wait") {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let status = status.expect("exited within 5 s");
    assert!(status.success(), "{status:?}");
    assert!(dir.path().join("state.json").exists());
}

#[test]
fn binary_rejects_a_bad_fault_spec() {
    let out = Command::new(env!("CARGO_BIN_EXE_batch-emulator"))
        .args(["--faults", "nonsense"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));
}

/// A minimal HTTP/1.1 GET over std, for the sync test.
fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer sk-sync\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn blocking_handle_starts_serves_and_stops() {
    let config = EmulatorConfig {
        speed: 100.0,
        faults: FaultConfig::parse("500-every=2@batches.list").expect("spec"),
        ..EmulatorConfig::default()
    };
    let emu = EmulatorHandle::start_blocking(config).expect("start");
    assert!(emu.base_url().starts_with("http://127.0.0.1:"));
    let (status, body) = raw_get(emu.addr(), "/v1/batches");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"object\":\"list\""));
    assert_eq!(raw_get(emu.addr(), "/v1/batches").0, 500);
    emu.set_faults(FaultConfig::none());
    assert_eq!(raw_get(emu.addr(), "/v1/batches").0, 200);
    let before = emu.now();
    emu.advance(Duration::from_secs(3600));
    assert!(emu.now() >= before + 3600);
    let c = emu.counters();
    assert_eq!(c.requests_on("batches.list"), 3);
    let dir = emu.data_dir().to_path_buf();
    assert!(dir.exists());
    emu.shutdown().expect("shutdown");
    // A temporary data folder is removed on shutdown.
    assert!(!dir.exists());
}
