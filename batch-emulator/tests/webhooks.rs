//! Webhook delivery: a batch that ends is announced to a receiver, signed,
//! retried on non-2xx answers, and misdelivered on purpose by the faults.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use batch_core::UnixMillis;
use batch_core::webhook::{EventType, Verifier, WebhookError, WebhookSecret};
use batch_emulator::{Emulator, RunningEmulator, WebhookConfig, WebhookFault};
use common::{Api, chat_line};
use serde_json::json;
use tokio::sync::mpsc;

/// No test here waits longer for a delivery; past it, it fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(30);

/// A receiver that records every delivery and refuses the first `refuse` with 503.
struct Receiver {
    url: String,
    got: mpsc::UnboundedReceiver<(HeaderMap, Bytes)>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Inbox {
    tx: mpsc::UnboundedSender<(HeaderMap, Bytes)>,
    refuse: Arc<Mutex<u32>>,
}

async fn hook(State(inbox): State<Inbox>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let _ = inbox.tx.send((headers, body));
    let mut refuse = inbox.refuse.lock().unwrap_or_else(|e| e.into_inner());
    if *refuse > 0 {
        *refuse -= 1;
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn receiver(refuse: u32) -> Receiver {
    let (tx, got) = mpsc::unbounded_channel();
    let inbox = Inbox {
        tx,
        refuse: Arc::new(Mutex::new(refuse)),
    };
    let app = Router::new().route("/hook", post(hook)).with_state(inbox);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}/hook"),
        got,
        server,
    }
}

impl Receiver {
    async fn next(&mut self) -> (HeaderMap, Bytes) {
        tokio::time::timeout(LIMIT, self.got.recv())
            .await
            .expect("a delivery in time")
            .expect("receiver open")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn secret() -> WebhookSecret {
    WebhookSecret::parse("whsec_dGhlIGVtdWxhdG9yIHRlc3Qgc2VjcmV0").expect("secret")
}

fn wall_now() -> UnixMillis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    UnixMillis(u64::try_from(ms).unwrap_or(u64::MAX))
}

async fn emulator(webhook: WebhookConfig) -> (RunningEmulator, Api) {
    emulator_at(2000.0, webhook).await
}

async fn emulator_at(speed: f64, webhook: WebhookConfig) -> (RunningEmulator, Api) {
    let emu = Emulator::builder()
        .speed(speed)
        .seed(11)
        .webhook(webhook.first_retry(Duration::from_millis(20)))
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    (emu, api)
}

async fn one_batch(api: &Api) -> String {
    let file = api
        .upload(&[chat_line("a", "hello"), chat_line("b", "world")])
        .await;
    let batch = api.create_batch(&file, "/v1/chat/completions").await;
    batch["id"].as_str().expect("batch id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_batch_is_announced_signed_and_retried_until_accepted() {
    let mut rx = receiver(2).await;
    let (emu, api) = emulator(WebhookConfig::new(rx.url.clone(), secret())).await;
    let batch_id = one_batch(&api).await;
    let verifier = Verifier::new(secret());
    // Two refusals, then the same message a third time.
    let attempts = [rx.next().await, rx.next().await, rx.next().await];
    for (headers, body) in &attempts {
        // A retry repeats the message (its id and body); it is signed
        // again at its own time, so a late retry is not refused as old.
        assert_eq!(
            headers.get("webhook-id"),
            attempts[0].0.get("webhook-id"),
            "retries repeat the message"
        );
        assert_eq!(body, &attempts[0].1);
        let event = verifier
            .unwrap(headers, body, wall_now())
            .expect("a good signature");
        assert_eq!(event.kind, EventType::BatchCompleted);
        assert_eq!(event.batch_id(), Some(batch_id.as_str()));
        assert!(event.id.starts_with("evt_"));
    }
    // When the event arrives, the batch reads as ended.
    assert_eq!(api.batch(&batch_id).await["status"], "completed");
    // The emulator counts a delivery once it has read the answer, which
    // comes a moment after the receiver took the request: wait for it.
    let mut counted = (0, 0);
    for _ in 0..3000 {
        let c = emu.counters();
        counted = (c.webhook_attempts, c.webhooks_delivered);
        if counted.1 > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counted, (3, 1));
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_batch_is_announced_as_cancelled() {
    let mut rx = receiver(0).await;
    // Slow enough that the cancel comes while the batch validates.
    let (emu, api) = emulator_at(50.0, WebhookConfig::new(rx.url.clone(), secret())).await;
    let lines: Vec<String> = (0..50).map(|i| chat_line(&format!("r{i}"), "hi")).collect();
    let file = api.upload(&lines).await;
    let batch = api.create_batch(&file, "/v1/chat/completions").await;
    let id = batch["id"].as_str().expect("id").to_owned();
    let (status, _) = api.post(&format!("/batches/{id}/cancel"), &json!({})).await;
    assert_eq!(status, 200);
    let (headers, body) = rx.next().await;
    let event = Verifier::new(secret())
        .unwrap(&headers, &body, wall_now())
        .expect("verified");
    assert_eq!(event.kind, EventType::BatchCancelled);
    assert_eq!(event.batch_id(), Some(id.as_str()));
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_deliver_twice_late_or_badly_signed() {
    // Twice: the same message, byte for byte, two times.
    let mut rx = receiver(0).await;
    let cfg = WebhookConfig::new(rx.url.clone(), secret()).fault(WebhookFault::Twice);
    let (emu, api) = emulator(cfg).await;
    let id = one_batch(&api).await;
    let (h1, b1) = rx.next().await;
    let (h2, b2) = rx.next().await;
    assert_eq!(h1.get("webhook-id"), h2.get("webhook-id"));
    assert_eq!(b1, b2);
    let verifier = Verifier::new(secret());
    for (h, b) in [(&h1, &b1), (&h2, &b2)] {
        let event = verifier.unwrap(h, b, wall_now()).expect("verified");
        assert_eq!(event.batch_id(), Some(id.as_str()));
    }
    emu.shutdown().await.expect("shutdown");

    // Late: signed ten minutes ago, so refused at the default tolerance,
    // while the signature itself is right.
    let mut rx = receiver(0).await;
    let cfg = WebhookConfig::new(rx.url.clone(), secret())
        .fault(WebhookFault::Late(Duration::from_secs(600)));
    let (emu, api) = emulator(cfg).await;
    one_batch(&api).await;
    let (h, b) = rx.next().await;
    assert!(matches!(
        verifier.verify(&h, &b, wall_now()),
        Err(WebhookError::TooOld { age_secs }) if age_secs >= 600
    ));
    let lenient = Verifier::new(secret()).tolerance(Duration::from_secs(3600));
    assert_eq!(lenient.verify(&h, &b, wall_now()), Ok(()));
    emu.shutdown().await.expect("shutdown");

    // Bad signature: refused.
    let mut rx = receiver(0).await;
    let cfg = WebhookConfig::new(rx.url.clone(), secret()).fault(WebhookFault::BadSignature);
    let (emu, api) = emulator(cfg).await;
    one_batch(&api).await;
    let (h, b) = rx.next().await;
    assert_eq!(
        verifier.verify(&h, &b, wall_now()),
        Err(WebhookError::Mismatch)
    );
    emu.shutdown().await.expect("shutdown");
}
