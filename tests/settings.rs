//! Client settings real networks need, the same in both transports: a retry
//! time budget, the proxy (a URL, the environment's, or none), extra root
//! certificates, the user-agent suffix, bring-your-own HTTP clients, and job
//! events from `submit_and_wait`. The `tracing` spans are checked in
//! `trace.rs`, a test binary of their own.
//!
//! The proxy and TLS tests talk to a small HTTP server test double that
//! answers every request with an empty batch list and records each request
//! line and `User-Agent` it saw. It plays the proxy too: a request in
//! absolute form (`GET http://host/v1/batches`, how reqwest sends plain HTTP
//! through a proxy) is answered the same way, and a `CONNECT` (how ureq
//! always goes through one) is accepted, after which the double answers the
//! tunnelled requests itself, as the server at the tunnel's end would.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use batch_core::job::{JobEvent, Proxy};

use crate::common::{self, KEY};

/// One request the double saw.
#[derive(Clone, Debug)]
struct Seen {
    /// `GET /v1/batches HTTP/1.1`, or the absolute form through a proxy.
    line: String,
    user_agent: Option<String>,
    /// The whole head, to check a tunnel's `CONNECT` does not carry the key.
    head: String,
}

/// A server that answers every request with an empty batch list.
struct Double {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Double {
    /// Plain HTTP on loopback.
    fn start() -> Double {
        Double::start_with(None)
    }

    /// HTTPS with `tls`, or plain HTTP without.
    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Double {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let record = Arc::clone(&record);
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => serve(stream, &record),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        serve(rustls::StreamOwned::new(conn, stream), &record);
                    }
                });
            }
        });
        Double { addr, seen }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

/// Answers requests on one connection until it closes.
fn serve(mut stream: impl Read + Write, seen: &Mutex<Vec<Seen>>) {
    const BODY: &str =
        r#"{"object":"list","data":[],"first_id":null,"last_id":null,"has_more":false}"#;
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let line = head.lines().next().unwrap_or_default().to_owned();
        if line.starts_with("CONNECT ") {
            seen.lock().expect("lock").push(Seen {
                line,
                user_agent: header("user-agent"),
                head: head.clone(),
            });
            let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
            if stream.write_all(ok).is_err() || stream.flush().is_err() {
                return;
            }
            continue;
        }
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if stream.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().expect("lock").push(Seen {
            line,
            user_agent: header("user-agent"),
            head: head.clone(),
        });
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        if stream.write_all(answer.as_bytes()).is_err() || stream.flush().is_err() {
            return;
        }
    }
}

/// A configuration for the server at `base` (a scheme and authority),
/// with short timeouts.
fn config(base: &str) -> batch_core::job::ClientConfig {
    let mut c = batch_core::job::ClientConfig::new(common::api_config(&format!("{base}/v1"), KEY));
    c.connect_timeout = Duration::from_secs(5);
    c.io_timeout = Duration::from_secs(20);
    c.retry = common::fast_retry();
    c
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `list` with each transport: the blocking result, then the async one.
/// Errors are flattened to their failure kind (`Transport`) or text.
fn list_both(config: &batch_core::job::ClientConfig) -> [Result<usize, String>; 2] {
    let blocking = batch_blocking::Client::new(config.clone())
        .map_err(|e| format!("setup: {e}"))
        .and_then(|c| c.list(Some(5), None).map_err(describe_blocking));
    let rt = runtime();
    let asynchronous = batch_async::Client::new(config.clone())
        .map_err(|e| format!("setup: {e}"))
        .and_then(|c| rt.block_on(c.list(Some(5), None)).map_err(describe_async));
    [
        blocking.map(|l| l.data.len()),
        asynchronous.map(|l| l.data.len()),
    ]
}

fn describe_blocking(e: batch_blocking::Error) -> String {
    match e {
        batch_blocking::Error::Transport(f) => format!("transport {:?}: {}", f.kind, f.detail),
        other => other.to_string(),
    }
}

fn describe_async(e: batch_async::Error) -> String {
    match e {
        batch_async::Error::Transport(f) => format!("transport {:?}: {}", f.kind, f.detail),
        other => other.to_string(),
    }
}

#[test]
fn a_retry_budget_ends_an_unreachable_server_early_with_events() {
    // A port nothing listens on: every connection is refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = config(&format!("http://127.0.0.1:{port}"));
    // Without the budget, 10 000 attempts at up to 50 ms apart would take minutes.
    config.retry.max_attempts = 10_000;
    config.retry.base_delay = Duration::from_millis(10);
    config.retry.max_delay = Duration::from_millis(50);
    config.retry.max_elapsed = Some(Duration::from_millis(400));
    let items = common::items(3, |_| None);
    let opts = common::options(10, 1);

    let check = |name: &str, result: Result<usize, String>, events: &[JobEvent]| {
        let message = result.expect_err("an unreachable server cannot succeed");
        assert!(message.contains("retry budget"), "{name}: {message}");
        assert!(message.contains("not sent"), "{name}: {message}");
        let retries: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                JobEvent::Retrying { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .collect();
        assert!(!retries.is_empty(), "{name}: no retry event in {events:?}");
        assert!(
            retries.iter().all(|a| *a < 10_000),
            "{name}: the attempt cap ended it, not the budget: {retries:?}"
        );
    };

    let client = batch_blocking::Client::new(config.clone()).expect("blocking client");
    let mut events = Vec::new();
    let result = client
        .submit_and_wait_with_events(&items, &common::prompt(), &opts, &mut |e| {
            events.push(e.clone());
        })
        .map(|r| r.len())
        .map_err(|e| e.to_string());
    check("blocking", result, &events);

    let client = batch_async::Client::new(config).expect("async client");
    let mut events = Vec::new();
    let result = runtime()
        .block_on(
            client.submit_and_wait_with_events(&items, &common::prompt(), &opts, &mut |e| {
                events.push(e.clone());
            }),
        )
        .map(|r| r.len())
        .map_err(|e| e.to_string());
    check("async", result, &events);
}

#[test]
fn submit_and_wait_with_events_reports_the_job_as_it_goes() {
    let emulator = common::Setup::default().start();
    let base = emulator.base_url();
    let base = base.trim_end_matches("/v1");
    let config = config(base);
    let items = common::items(4, |_| None);
    let opts = common::options(2, 2);

    let names = |events: &[JobEvent]| {
        let mut uploaded = 0;
        let mut submitted = 0;
        for e in events {
            match e {
                JobEvent::Uploaded { .. } => uploaded += 1,
                JobEvent::Submitted { .. } => submitted += 1,
                _ => {}
            }
        }
        (uploaded, submitted)
    };

    let client = batch_blocking::Client::new(config.clone()).expect("blocking client");
    let mut events = Vec::new();
    let results = client
        .submit_and_wait_with_events(&items, &common::prompt(), &opts, &mut |e| {
            events.push(e.clone());
        })
        .expect("the job succeeds");
    assert_eq!(results.len(), 4);
    assert_eq!(names(&events), (2, 2), "blocking: {events:?}");

    let client = batch_async::Client::new(config).expect("async client");
    let mut events = Vec::new();
    let results = runtime()
        .block_on(
            client.submit_and_wait_with_events(&items, &common::prompt(), &opts, &mut |e| {
                events.push(e.clone());
            }),
        )
        .expect("the job succeeds");
    assert_eq!(results.len(), 4);
    assert_eq!(names(&events), (2, 2), "async: {events:?}");
}

#[test]
fn a_proxy_url_carries_every_request_and_none_carries_none() {
    let server = Double::start();
    let proxy = Double::start();

    let mut through = config(&server.url("http"));
    through.proxy = Proxy::Url(proxy.url("http"));
    for r in list_both(&through) {
        assert_eq!(r, Ok(0));
    }
    assert_eq!(via_proxy(&proxy, &server), 3, "via the proxy");
    assert!(server.seen().is_empty(), "nothing went around the proxy");

    let mut direct = config(&server.url("http"));
    direct.proxy = Proxy::None;
    for r in list_both(&direct) {
        assert_eq!(r, Ok(0));
    }
    assert_eq!(proxy.seen().len(), 3, "the proxy saw nothing more");
    let lines: Vec<String> = server.seen().into_iter().map(|s| s.line).collect();
    assert_eq!(
        lines,
        vec!["GET /v1/batches?limit=5 HTTP/1.1"; 2],
        "straight to the server"
    );
}

/// Checks what `proxy` saw of one `list` per transport for `server`:
/// ureq's tunnel (`CONNECT`, then the request in origin form) and
/// reqwest's request in absolute form. Returns how many lines it saw.
fn via_proxy(proxy: &Double, server: &Double) -> usize {
    let seen = proxy.seen();
    for s in seen.iter().filter(|s| s.line.starts_with("CONNECT ")) {
        assert!(!s.head.contains(KEY), "the tunnel request carries the key");
    }
    let lines: Vec<String> = seen.into_iter().map(|s| s.line).collect();
    let authority = format!("127.0.0.1:{}", server.addr.port());
    assert_eq!(
        lines,
        vec![
            format!("CONNECT {authority} HTTP/1.1"),
            "GET /v1/batches?limit=5 HTTP/1.1".to_owned(),
            format!("GET http://{authority}/v1/batches?limit=5 HTTP/1.1"),
        ],
        "blocking through a tunnel, async in absolute form"
    );
    lines.len()
}

/// Run in a child process by [`proxy_none_overrides_the_environment`], with
/// `HTTP_PROXY` naming a proxy double: lists once per transport with the
/// environment's proxy, then once with none.
#[test]
#[ignore = "run in a child process by proxy_none_overrides_the_environment"]
fn proxy_env_child() {
    let Ok(base) = std::env::var("E2E_SETTINGS_SERVER") else {
        return;
    };
    let from_env = config(&base);
    assert!(matches!(from_env.proxy, Proxy::FromEnvironment));
    for r in list_both(&from_env) {
        assert_eq!(r, Ok(0), "through the environment's proxy");
    }
    let mut none = config(&base);
    none.proxy = Proxy::None;
    for r in list_both(&none) {
        assert_eq!(r, Ok(0), "without a proxy");
    }
}

#[test]
fn proxy_none_overrides_the_environment() {
    let server = Double::start();
    let proxy = Double::start();
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = std::process::Command::new(exe);
    child
        .args(["settings::proxy_env_child", "--exact", "--ignored"])
        .env("E2E_SETTINGS_SERVER", server.url("http"))
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        child.env(var, proxy.url("http"));
    }
    let out = child.output().expect("the child runs");
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // By default both transports follow HTTP_PROXY.
    assert_eq!(via_proxy(&proxy, &server), 3);
    let direct: Vec<String> = server.seen().into_iter().map(|s| s.line).collect();
    assert_eq!(
        direct,
        vec!["GET /v1/batches?limit=5 HTTP/1.1"; 2],
        "Proxy::None ignores HTTP_PROXY"
    );
}

#[test]
fn the_user_agent_names_the_transport_and_the_suffix() {
    let server = Double::start();
    let mut c = config(&server.url("http"));
    c.proxy = Proxy::None;
    c.user_agent_suffix = Some("my-app/1.2".into());
    for r in list_both(&c) {
        assert_eq!(r, Ok(0));
    }
    let agents: Vec<Option<String>> = server.seen().into_iter().map(|s| s.user_agent).collect();
    let expected = format!(
        "{} my-app/1.2",
        batch_core::api::ApiConfig::DEFAULT_USER_AGENT
    );
    assert_eq!(agents, vec![Some(expected.clone()), Some(expected)]);
}

/// A self-signed certificate for 127.0.0.1 and `localhost`: the server's
/// TLS settings and the certificate as PEM.
fn self_signed() -> (Arc<rustls::ServerConfig>, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("a certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .expect("server TLS settings");
    (Arc::new(server), ck.cert.pem())
}

#[test]
fn an_extra_root_certificate_is_trusted_and_an_unknown_issuer_is_not_sent() {
    let (tls, pem) = self_signed();
    let server = Double::start_with(Some(tls));
    let mut c = config(&server.url("https"));
    c.proxy = Proxy::None;

    // Without the root, the handshake fails before anything is sent, the
    // same in both transports.
    for r in list_both(&c) {
        let message = r.expect_err("an unknown issuer is refused");
        assert!(message.starts_with("transport NotSent"), "{message}");
    }
    assert!(server.seen().is_empty());

    // With it, beside the platform's roots, and then alone.
    c.extra_root_certificates = vec![pem.clone().into_bytes()];
    for r in list_both(&c) {
        assert_eq!(r, Ok(0));
    }
    c.platform_roots = false;
    for r in list_both(&c) {
        assert_eq!(r, Ok(0));
    }
    assert_eq!(server.seen().len(), 4);

    // A document without a certificate, or no root at all, is refused up front.
    c.extra_root_certificates = vec![b"not a certificate".to_vec()];
    for r in list_both(&c) {
        let message = r.expect_err("a bad root is refused");
        assert!(message.starts_with("setup:"), "{message}");
    }
    c.extra_root_certificates.clear();
    for r in list_both(&c) {
        let message = r.expect_err("no root at all is refused");
        assert!(
            message.contains("no root certificate is trusted"),
            "{message}"
        );
    }
}

#[test]
fn bring_your_own_http_client() {
    let server = Double::start();
    let c = config(&server.url("http"));

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_redirects_will_error(false)
        .proxy(None)
        .user_agent("own-agent")
        .build()
        .into();
    let client = batch_blocking::Client::with_agent(agent, c.clone()).expect("a good agent");
    assert_eq!(client.list(None, None).map(|l| l.data.len()).ok(), Some(0));

    let follows: ureq::Agent = ureq::Agent::config_builder().build().into();
    let refused = batch_blocking::Client::with_agent(follows, c.clone())
        .expect_err("an agent that turns statuses into errors is refused");
    assert!(
        refused.to_string().contains("http_status_as_error"),
        "{refused}"
    );

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent("own-client")
        .build()
        .expect("a reqwest client");
    let client = batch_async::Client::with_http(http, c).expect("a client");
    let listed = runtime().block_on(client.list(None, None));
    assert_eq!(listed.map(|l| l.data.len()).ok(), Some(0));

    // The requests' own `User-Agent` (the API settings') wins over the
    // clients' defaults.
    let agents: Vec<Option<String>> = server.seen().into_iter().map(|s| s.user_agent).collect();
    let ua = batch_core::api::ApiConfig::DEFAULT_USER_AGENT.to_owned();
    assert_eq!(agents, vec![Some(ua.clone()), Some(ua)]);
}

/// Keeps a connection open without answering, for the deadline test.
fn silent_server() -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming().take(64) {
            let Ok(stream) = stream else { return };
            held.push(stream);
        }
    });
    (addr, handle)
}

#[test]
fn a_request_deadline_cuts_a_silent_server() {
    let (addr, _server) = silent_server();
    let mut c = config(&format!("http://{addr}"));
    c.proxy = Proxy::None;
    // The first exchange is an upload: its deadline is the grace plus its
    // size at the rate; a stall window longer than that leaves the deadline
    // to cut it.
    c.exchange.json_deadline = Duration::from_millis(300);
    c.exchange.transfer_grace = Duration::from_millis(300);
    c.exchange.stall_window = Duration::from_secs(60);
    c.retry.max_attempts = 2;
    let items = common::items(1, |_| None);
    let opts = common::options(10, 1);

    let client = batch_blocking::Client::new(c.clone()).expect("blocking client");
    let blocking = client
        .submit_batch(&items, &common::prompt(), &opts)
        .map(|_| ())
        .expect_err("a silent server cannot take a batch")
        .to_string();
    let client = batch_async::Client::new(c).expect("async client");
    let asynchronous = runtime()
        .block_on(client.submit_batch(&items, &common::prompt(), &opts))
        .map(|_| ())
        .expect_err("a silent server cannot take a batch")
        .to_string();
    for message in [blocking, asynchronous] {
        // The upload is cut at its deadline; looking for it afterwards
        // (a JSON exchange) is cut at its own.
        assert!(message.contains("after 2 attempts"), "{message}");
        assert!(
            message.contains("no complete answer within 0.3 s (the exchange's deadline)"),
            "{message}"
        );
    }
}

#[test]
fn a_proxy_password_never_shows_in_debug() {
    let mut c = config("http://127.0.0.1:9");
    c.proxy = Proxy::Url("http://user:proxy-pass-123@127.0.0.1:3128".into());
    let shown = [
        format!("{c:?}"),
        format!(
            "{:?}",
            batch_blocking::Client::new(c.clone()).expect("blocking client")
        ),
        format!("{:?}", batch_async::Client::new(c).expect("async client")),
    ];
    for text in shown {
        assert!(!text.contains("proxy-pass-123"), "{text}");
        assert!(!text.contains(KEY), "{text}");
    }
}
