//! What the transports put on the wire, seen by a recording proxy between
//! them and the emulator: every body announced by an exact
//! `Content-Length` (uploads streamed, never chunked), no body on a request
//! that has none, and the same requests from both transports.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;

/// The bytes one client connection sent, kept as they pass.
type Record = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy that records the bytes each client connection sends.
struct Proxy {
    addr: SocketAddr,
    sent: Arc<Mutex<Vec<Record>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let sent: Arc<Mutex<Vec<Record>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (sent2, stop2) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                client.set_nonblocking(false).expect("blocking");
                let server = TcpStream::connect(upstream).expect("upstream");
                let record = Arc::new(Mutex::new(Vec::new()));
                sent2.lock().expect("sent").push(record.clone());
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                std::thread::spawn(move || pump(client, server, Some(record)));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        Proxy { addr, sent, stop }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request sent so far, parsed.
    fn requests(&self) -> Vec<Req> {
        let conns = self.sent.lock().expect("sent");
        conns
            .iter()
            .flat_map(|c| parse(&c.lock().expect("conn")))
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, record: Option<Record>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(r) = &record {
                    r.lock().expect("record").extend_from_slice(&buf[..n]);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// One request as it crossed the wire.
#[derive(Debug)]
struct Req {
    method: String,
    path: String,
    /// Header names (lowercase) and values.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits one connection's bytes into requests (`Content-Length` or chunked
/// bodies; a partial last request is dropped).
fn parse(mut bytes: &[u8]) -> Vec<Req> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut rest = &bytes[end + 4..];
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_owned();
        let path = first.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut req = Req {
            method,
            path,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = req.header("content-length") {
            let len: usize = len.parse().expect("content-length");
            if rest.len() < len {
                break;
            }
            req.body = rest[..len].to_vec();
            rest = &rest[len..];
        } else if req.header("transfer-encoding").is_some() {
            // chunked: size line, data, CRLF ... 0 CRLF CRLF
            loop {
                let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
                    return out;
                };
                let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
                    .expect("chunk size");
                rest = &rest[eol + 2..];
                if rest.len() < size + 2 {
                    return out;
                }
                req.body.extend_from_slice(&rest[..size]);
                rest = &rest[size + 2..];
                if size == 0 {
                    break;
                }
            }
        }
        out.push(req);
        bytes = rest;
    }
    out
}

/// A multipart body with its boundary (its first line, after `--`)
/// replaced by `BOUNDARY`.
fn without_boundary(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).into_owned();
    let first = text.split("\r\n").next().unwrap_or_default().to_owned();
    match first.strip_prefix("--") {
        Some(boundary) if !boundary.is_empty() => text.replace(boundary, "BOUNDARY"),
        _ => text,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn both_transports_send_exact_lengths_and_no_body_where_there_is_none() {
    let items = items(600, |_| None);
    let handle = plan(&items, 200, 2);
    let mut seen = Vec::new();
    for blocking in [true, false] {
        let emu = Setup::default().start();
        let proxy = Proxy::start(emu.addr());
        let t: Box<dyn Transport> = if blocking {
            Box::new(Blocking::new(&proxy.base_url(), KEY))
        } else {
            Box::new(Async::new(&proxy.base_url(), KEY))
        };
        let mut job = batch_core::job::Job::new(
            job_config(&proxy.base_url(), 2),
            handle.plan().clone(),
            t.now(),
        );
        let mut io = Recorder::new(handle.shard_bytes());
        let summary = t.run(&mut job, &mut io).expect("run");
        assert!(summary.all_succeeded(), "{}: {summary:?}", t.name());
        drop(t);
        let requests = proxy.requests();
        let who = if blocking { "blocking" } else { "async" };
        let mut uploads = Vec::new();
        for r in &requests {
            assert_eq!(
                r.header("transfer-encoding"),
                None,
                "{who}: {} {}",
                r.method,
                r.path
            );
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {KEY}").as_str()),
                "{who}"
            );
            match r.method.as_str() {
                "GET" => {
                    assert!(r.body.is_empty(), "{who}: a GET with a body: {}", r.path);
                    assert!(
                        r.header("content-length").is_none_or(|l| l == "0"),
                        "{who}: {}",
                        r.path
                    );
                }
                "POST" => {
                    let len = r.header("content-length").expect("a POST has a length");
                    assert_eq!(len, r.body.len().to_string(), "{who}: {}", r.path);
                    if r.path == "/v1/files" {
                        uploads.push(without_boundary(&r.body));
                    }
                }
                other => panic!("{who}: unexpected {other} {}", r.path),
            }
        }
        assert_eq!(
            requests.len() as u64,
            emu.counters().requests_total,
            "{who}: the proxy and the emulator saw the same requests"
        );
        // Each shard went up once, whole and unchanged, inside its envelope.
        assert_eq!(uploads.len(), 3, "{who}");
        // (The async transport runs shards side by side, so the uploads may
        // come in any order.)
        for shard in handle.shard_bytes() {
            let holding = uploads.iter().filter(|u| find(u.as_bytes(), shard)).count();
            assert_eq!(holding, 1, "{who}: a shard is not in exactly one upload");
        }
        uploads.sort();
        let kinds: BTreeSet<(String, String)> = requests
            .iter()
            .map(|r| (r.method.clone(), mask_ids(&r.path)))
            .collect();
        seen.push((kinds, uploads));
    }
    let [(kb, ub), (ka, ua)] = <[_; 2]>::try_from(seen).expect("two runs");
    assert_eq!(
        kb.symmetric_difference(&ka).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "the transports sent different kinds of requests"
    );
    // The multipart boundary is drawn from the job's generator, whose state
    // depends on how many polls came first; apart from it, the bytes agree.
    assert!(ub == ua, "the transports uploaded different bytes");
}
