//! Webhook delivery: when a batch ends, POST a signed event to a URL, the
//! way OpenAI does for `batch.completed`, `batch.failed`, `batch.expired` and
//! `batch.cancelled`.
//!
//! Each event is signed as Standard Webhooks prescribes (headers
//! `webhook-id`, `webhook-timestamp`, `webhook-signature`; see
//! `batch_core::webhook`), with the wall-clock time of the attempt (the
//! receiver compares it with its own clock, not the emulator's virtual
//! one). A non-2xx answer or a failed connection is retried with doubling
//! waits, a bounded number of times; every attempt carries the same
//! `webhook-id` and body, as the real service's retries do. Faults make a
//! delivery late, double or badly signed, to test a receiver's checks.
//!
//! A background task looks for batches that reached a terminal status since
//! its last look. Batches already ended when the emulator starts (a reused
//! data folder) are not announced again.
//!
//! References: <https://platform.openai.com/docs/guides/webhooks>,
//! <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use batch_core::webhook::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, WebhookSecret};
use serde_json::json;
use tokio::task::{JoinHandle, JoinSet};

use crate::model::{BatchRecord, Status, secs};
use crate::state::{Shared, lock};
use crate::util::derived_hex_id;

/// Where and how the emulator delivers webhooks.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WebhookConfig {
    /// The receiver, e.g. `http://127.0.0.1:8080/webhooks`.
    pub url: String,
    /// The signing secret (its `whsec_…` form is what the receiver is given).
    pub secret: WebhookSecret,
    /// Attempts per delivery before it is given up (default 5).
    pub max_attempts: u32,
    /// The wait before the first retry, real time; doubles per retry
    /// (default 1 s).
    pub first_retry: Duration,
    /// A misbehaviour of every delivery, if any.
    pub fault: Option<WebhookFault>,
}

impl WebhookConfig {
    /// Deliveries to `url` signed with `secret`, with the default retries
    /// and no fault.
    pub fn new(url: impl Into<String>, secret: WebhookSecret) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            secret,
            max_attempts: 5,
            first_retry: Duration::from_secs(1),
            fault: None,
        }
    }

    /// Sets the attempts per delivery (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> WebhookConfig {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the wait before the first retry.
    #[must_use]
    pub fn first_retry(mut self, d: Duration) -> WebhookConfig {
        self.first_retry = d;
        self
    }

    /// Makes every delivery misbehave.
    #[must_use]
    pub fn fault(mut self, fault: WebhookFault) -> WebhookConfig {
        self.fault = Some(fault);
        self
    }
}

/// How a delivery misbehaves, to test a receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookFault {
    /// Signed this long before it is sent, as if it sat in a queue: past a
    /// receiver's tolerance (5 minutes by default) it must be refused.
    Late(Duration),
    /// Each event is delivered twice (same id, same body).
    Twice,
    /// Signed with a key that is not the secret.
    BadSignature,
}

impl WebhookFault {
    /// Reads `late=SECS`, `twice` or `bad-signature`.
    ///
    /// # Errors
    /// Names the text that is none of these.
    pub fn parse(text: &str) -> Result<WebhookFault, WebhookFaultError> {
        let text = text.trim();
        match text {
            "twice" => return Ok(WebhookFault::Twice),
            "bad-signature" => return Ok(WebhookFault::BadSignature),
            _ => {}
        }
        if let Some(secs) = text.strip_prefix("late=") {
            if let Ok(s) = secs.parse::<u64>() {
                return Ok(WebhookFault::Late(Duration::from_secs(s)));
            }
        }
        Err(WebhookFaultError(text.to_owned()))
    }
}

/// A webhook fault spec that is not `late=SECS`, `twice` or `bad-signature`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown webhook fault `{0}` (expected late=SECS, twice or bad-signature)")]
pub struct WebhookFaultError(String);

/// One event to deliver.
struct Event {
    message_id: String,
    body: Vec<u8>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// Starts the delivery task, if webhooks are configured. Abort the handle to
/// stop it and every delivery in progress.
pub(crate) fn start(shared: &Arc<Shared>, tick: Duration) -> Option<JoinHandle<()>> {
    let cfg = shared.cfg.webhook.clone()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(_) => return None,
    };
    let shared = shared.clone();
    Some(tokio::spawn(async move {
        // Batches that had already ended are not announced again.
        let mut seen: BTreeSet<String> = ended(&shared).into_iter().map(|b| b.0).collect();
        let cfg = Arc::new(cfg);
        let mut deliveries = JoinSet::new();
        loop {
            tokio::time::sleep(tick).await;
            while deliveries.try_join_next().is_some() {}
            for (id, kind, at_ms) in ended(&shared) {
                if !seen.insert(id.clone()) {
                    continue;
                }
                let event = event(&id, kind, at_ms);
                let copies = if cfg.fault == Some(WebhookFault::Twice) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let (client, cfg, shared) = (client.clone(), cfg.clone(), shared.clone());
                    let event = Event {
                        message_id: event.message_id.clone(),
                        body: event.body.clone(),
                    };
                    deliveries.spawn(async move { deliver(&client, &cfg, &shared, &event).await });
                }
            }
        }
    }))
}

/// Every ended batch: id, event type, and when it ended (virtual ms).
fn ended(shared: &Shared) -> Vec<(String, &'static str, u64)> {
    let db = lock(&shared.db);
    db.batches
        .values()
        .filter(|b| b.status.is_terminal())
        .filter_map(|b| Some((b.id.clone(), kind(b)?, ended_at(b))))
        .collect()
}

fn kind(b: &BatchRecord) -> Option<&'static str> {
    match b.status {
        Status::Completed => Some("batch.completed"),
        Status::Failed => Some("batch.failed"),
        Status::Expired => Some("batch.expired"),
        Status::Cancelled => Some("batch.cancelled"),
        _ => None,
    }
}

fn ended_at(b: &BatchRecord) -> u64 {
    [b.completed_ms, b.failed_ms, b.expired_ms, b.cancelled_ms]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(b.created_ms)
}

/// The event body, with ids derived from the batch and the type, so every
/// delivery (and every retry) of one event is byte-identical.
fn event(batch_id: &str, kind: &str, at_ms: u64) -> Event {
    let event_id = derived_hex_id("evt_", &["webhook-event", batch_id, kind]);
    let message_id = derived_hex_id("msg_", &["webhook-message", batch_id, kind]);
    let body = json!({
        "id": event_id,
        "object": "event",
        "created_at": secs(at_ms),
        "type": kind,
        "data": {"id": batch_id},
    });
    Event {
        message_id,
        body: body.to_string().into_bytes(),
    }
}

/// Unix seconds on the wall clock: what a receiver compares the signature
/// time with.
fn wall_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Delivers one event, retrying non-2xx answers and failed connections.
async fn deliver(client: &reqwest::Client, cfg: &WebhookConfig, shared: &Shared, event: &Event) {
    let late = match cfg.fault {
        Some(WebhookFault::Late(d)) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        _ => 0,
    };
    let wrong_key;
    let key = if cfg.fault == Some(WebhookFault::BadSignature) {
        wrong_key = WebhookSecret::from_bytes(b"not the webhook secret".to_vec())
            .unwrap_or_else(|_| cfg.secret.clone());
        &wrong_key
    } else {
        &cfg.secret
    };
    let mut wait = cfg.first_retry;
    for attempt in 1..=cfg.max_attempts.max(1) {
        let timestamp = wall_secs().saturating_sub(late);
        let signature = key.sign(&event.message_id, timestamp, &event.body);
        let sent = client
            .post(&cfg.url)
            .header(HEADER_ID, &event.message_id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature)
            .header("content-type", "application/json")
            .body(event.body.clone())
            .send()
            .await;
        let ok = matches!(&sent, Ok(r) if r.status().is_success());
        {
            let mut c = lock(&shared.counters);
            c.webhook_attempts += 1;
            if ok {
                c.webhooks_delivered += 1;
            }
        }
        if ok || attempt == cfg.max_attempts {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse() {
        assert_eq!(WebhookFault::parse("twice"), Ok(WebhookFault::Twice));
        assert_eq!(
            WebhookFault::parse("bad-signature"),
            Ok(WebhookFault::BadSignature)
        );
        assert_eq!(
            WebhookFault::parse("late=600"),
            Ok(WebhookFault::Late(Duration::from_secs(600)))
        );
        assert!(WebhookFault::parse("late=soon").is_err());
        assert!(WebhookFault::parse("sometimes").is_err());
    }

    #[test]
    fn an_event_is_the_documented_shape_and_stable() {
        let e = event("batch_1", "batch.completed", 1_700_000_000_500);
        let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap_or_default();
        assert_eq!(v["object"], "event");
        assert_eq!(v["type"], "batch.completed");
        assert_eq!(v["created_at"], 1_700_000_000);
        assert_eq!(v["data"]["id"], "batch_1");
        assert!(v["id"].as_str().is_some_and(|s| s.starts_with("evt_")));
        let again = event("batch_1", "batch.completed", 1_700_000_000_500);
        assert_eq!((&e.message_id, &e.body), (&again.message_id, &again.body));
        let parsed = batch_core::webhook::WebhookEvent::parse(&again.body);
        assert_eq!(
            parsed.ok().as_ref().and_then(|p| p.batch_id()),
            Some("batch_1")
        );
    }
}
