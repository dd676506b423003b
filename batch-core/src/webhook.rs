//! Webhooks: verify and parse the events OpenAI sends when a batch ends.
//!
//! OpenAI can call an HTTPS endpoint of yours when a batch ends
//! (`batch.completed`, `batch.failed`, `batch.expired`, `batch.cancelled`),
//! so that a job does not have to poll every minute to notice. The calls
//! follow the Standard Webhooks specification: three headers,
//!
//! - `webhook-id`: the message id (the same on every retry of one message),
//! - `webhook-timestamp`: Unix seconds when it was signed,
//! - `webhook-signature`: one or more space-separated `v1,<base64>` entries,
//!   each an HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}` keyed
//!   with the endpoint's secret (`whsec_` followed by base64),
//!
//! and a JSON body such as
//! `{"id":"evt_…","object":"event","created_at":1719168000,"type":"batch.completed","data":{"id":"batch_…"}}`.
//!
//! [`Verifier::unwrap`] checks the headers against the raw body bytes and the
//! current time you pass in, and returns a typed [`WebhookEvent`]; it reads no
//! clock and does no IO. Messages signed more than the tolerance (5 minutes by
//! default) before or after `now` are refused, which bounds replays. A
//! verified event only says that a batch changed: hand its
//! [`batch_id`](WebhookEvent::batch_id) to
//! [`Job::handle_batch_changed`](crate::job::Job::handle_batch_changed), which
//! polls that batch now. Deliveries can repeat and arrive late; both are
//! harmless there.
//!
//! References:
//! - OpenAI webhooks guide: <https://platform.openai.com/docs/guides/webhooks>
//! - Event payloads: <https://platform.openai.com/docs/api-reference/webhook-events>
//! - Standard Webhooks: <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>
//! - The official Python SDK's check (`webhooks.unwrap`):
//!   <https://github.com/openai/openai-python/blob/main/src/openai/lib/_webhooks.py>

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::time::UnixMillis;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the message id.
pub const HEADER_ID: &str = "webhook-id";
/// Header carrying the signing time, in Unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the signatures (`v1,<base64>`, space-separated).
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The default tolerance between the signing time and `now`, either way
/// (the official SDKs use 300 seconds).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// A webhook signing secret. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// Parses a secret as the dashboard shows it: `whsec_` followed by
    /// base64. A string without the prefix is used as raw key bytes, as the
    /// official SDKs do.
    ///
    /// # Errors
    /// Fails if the text after `whsec_` is not base64, or if the key is empty.
    pub fn parse(text: &str) -> Result<WebhookSecret, SecretError> {
        let text = text.trim();
        let key = match text.strip_prefix(SECRET_PREFIX) {
            Some(b64) => STANDARD.decode(b64).map_err(|_| SecretError::NotBase64)?,
            None => text.as_bytes().to_vec(),
        };
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(WebhookSecret(key))
    }

    /// A secret from raw key bytes.
    ///
    /// # Errors
    /// Fails if `key` is empty.
    pub fn from_bytes(key: impl Into<Vec<u8>>) -> Result<WebhookSecret, SecretError> {
        let key = key.into();
        if key.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(WebhookSecret(key))
    }

    /// The secret in its `whsec_<base64>` form, for configuring a sender
    /// (the emulator, a test).
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The `v1,<base64>` signature of one message: HMAC-SHA256 over
    /// `{id}.{timestamp}.{body}`. This is what a sender puts in
    /// `webhook-signature`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = self.mac(id, &timestamp.to_string(), body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        // HMAC accepts a key of any length; `new_from_slice` cannot fail for it.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// A webhook secret could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The text after `whsec_` is not standard base64.
    #[error("the webhook secret after `whsec_` is not base64")]
    NotBase64,
    /// The key is empty.
    #[error("the webhook secret is empty")]
    Empty,
}

/// Checks webhook signatures with one secret and a time tolerance.
///
/// ```
/// use batch_core::UnixMillis;
/// use batch_core::http::HeaderMap;
/// use batch_core::webhook::{EventType, Verifier, WebhookSecret};
///
/// let secret = WebhookSecret::parse("whsec_c2VjcmV0LWtleS1ieXRlcw==")?;
/// let body = br#"{"id":"evt_1","object":"event","created_at":1700000000,"type":"batch.completed","data":{"id":"batch_1"}}"#;
/// let mut headers = HeaderMap::new();
/// headers.insert("webhook-id", "msg_1".parse()?);
/// headers.insert("webhook-timestamp", "1700000000".parse()?);
/// headers.insert("webhook-signature", secret.sign("msg_1", 1_700_000_000, body).parse()?);
///
/// let event = Verifier::new(secret).unwrap(&headers, body, UnixMillis::from_secs(1_700_000_010))?;
/// assert_eq!(event.kind, EventType::BatchCompleted);
/// assert_eq!(event.batch_id(), Some("batch_1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Verifier {
    secret: WebhookSecret,
    tolerance: Duration,
}

impl Verifier {
    /// A verifier for `secret` with the default 5-minute tolerance.
    pub fn new(secret: WebhookSecret) -> Verifier {
        Verifier {
            secret,
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    /// Sets how far the signing time may be from `now`, either way.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Verifier {
        self.tolerance = tolerance;
        self
    }

    /// Checks that `body` was signed with the secret within the tolerance
    /// of `now`.
    ///
    /// `body` must be the raw bytes as received: re-serialized JSON does not
    /// verify. Any one of several listed signatures may match (a sender
    /// lists more than one while a secret is rotated); each is compared in
    /// constant time.
    ///
    /// # Errors
    /// A [`WebhookError`] naming the first check that failed: a missing or
    /// unreadable header, a timestamp that is not an integer, too old or
    /// from the future, no `v1` signature, or no signature that matches.
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<(), WebhookError> {
        let id = header(headers, HEADER_ID)?;
        let timestamp = header(headers, HEADER_TIMESTAMP)?;
        let signatures = header(headers, HEADER_SIGNATURE)?;
        let signed_at: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| WebhookError::BadTimestamp)?;
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let tolerance = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        let age = now_secs.saturating_sub(signed_at);
        if age > tolerance {
            return Err(WebhookError::TooOld {
                age_secs: age.unsigned_abs(),
            });
        }
        if -age > tolerance {
            return Err(WebhookError::FromFuture {
                ahead_secs: age.unsigned_abs(),
            });
        }
        let mac = self.secret.mac(id, timestamp, body);
        let mut any = false;
        for entry in signatures.split_whitespace() {
            let Some(b64) = entry.strip_prefix("v1,") else {
                continue;
            };
            any = true;
            let Ok(candidate) = STANDARD.decode(b64) else {
                continue;
            };
            // `verify_slice` compares in constant time.
            if mac.clone().verify_slice(&candidate).is_ok() {
                return Ok(());
            }
        }
        if any {
            Err(WebhookError::Mismatch)
        } else {
            Err(WebhookError::NoSignature)
        }
    }

    /// Verifies the message (see [`verify`](Self::verify)), then parses its
    /// body as an event. What the official SDKs call `webhooks.unwrap`.
    ///
    /// # Errors
    /// As `verify`, plus [`WebhookError::Body`] if a verified body is not an
    /// event.
    pub fn unwrap(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: UnixMillis,
    ) -> Result<WebhookEvent, WebhookError> {
        self.verify(headers, body, now)?;
        WebhookEvent::parse(body)
    }
}

fn header<'h>(headers: &'h http::HeaderMap, name: &'static str) -> Result<&'h str, WebhookError> {
    let value = headers.get(name).ok_or(WebhookError::MissingHeader(name))?;
    value
        .to_str()
        .map_err(|_| WebhookError::UnreadableHeader(name))
}

/// Why a webhook was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A required header is absent.
    #[error("the webhook has no `{0}` header")]
    MissingHeader(&'static str),
    /// A header is not visible ASCII.
    #[error("the webhook's `{0}` header is not readable text")]
    UnreadableHeader(&'static str),
    /// `webhook-timestamp` is not an integer number of seconds.
    #[error("the webhook timestamp is not a number of seconds")]
    BadTimestamp,
    /// Signed longer ago than the tolerance: a late delivery or a replay.
    #[error("the webhook was signed {age_secs} s ago, more than the tolerance")]
    TooOld {
        /// How long ago it was signed.
        age_secs: u64,
    },
    /// Signed further in the future than the tolerance: a clock is wrong.
    #[error("the webhook was signed {ahead_secs} s in the future, more than the tolerance")]
    FromFuture {
        /// How far ahead of `now` it was signed.
        ahead_secs: u64,
    },
    /// `webhook-signature` lists no `v1,` signature.
    #[error("the webhook carries no v1 signature")]
    NoSignature,
    /// No listed signature matches the secret and the body.
    #[error("no webhook signature matches")]
    Mismatch,
    /// The body verified but is not an event.
    #[error("the webhook body is not an event: {0}")]
    Body(String),
}

/// The type of an event (`type` in the body).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventType {
    /// `batch.completed`: the batch finished; its output and error files are ready.
    BatchCompleted,
    /// `batch.failed`: the batch failed (for example, its input did not validate).
    BatchFailed,
    /// `batch.expired`: the completion window passed; partial results are kept.
    BatchExpired,
    /// `batch.cancelled`: the batch was cancelled; partial results are kept.
    BatchCancelled,
    /// Any other event (responses, fine-tuning, evals, …), by its type.
    Other(String),
}

impl EventType {
    /// Reads a `type` value; unknown values become [`EventType::Other`].
    pub fn parse(s: &str) -> EventType {
        match s {
            "batch.completed" => EventType::BatchCompleted,
            "batch.failed" => EventType::BatchFailed,
            "batch.expired" => EventType::BatchExpired,
            "batch.cancelled" => EventType::BatchCancelled,
            other => EventType::Other(other.to_owned()),
        }
    }

    /// The wire value, e.g. `batch.completed`.
    pub fn as_str(&self) -> &str {
        match self {
            EventType::BatchCompleted => "batch.completed",
            EventType::BatchFailed => "batch.failed",
            EventType::BatchExpired => "batch.expired",
            EventType::BatchCancelled => "batch.cancelled",
            EventType::Other(s) => s,
        }
    }

    /// Whether this is one of the four batch events.
    pub fn is_batch(&self) -> bool {
        !matches!(self, EventType::Other(_))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed webhook event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookEvent {
    /// The event id (`evt_…`); the same on every delivery of one event.
    pub id: String,
    /// The event's type.
    pub kind: EventType,
    /// Unix seconds when the underlying change happened (for a batch, when
    /// it ended).
    pub created_at: i64,
    /// `data.id`: for a batch event, the batch's id. Absent for event types
    /// whose data carries no `id`.
    pub data_id: Option<String>,
}

#[derive(Deserialize)]
struct WireEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created_at: i64,
    #[serde(default)]
    data: Option<WireData>,
}

#[derive(Deserialize)]
struct WireData {
    #[serde(default)]
    id: Option<String>,
}

impl WebhookEvent {
    /// Parses an event body without checking a signature. Use
    /// [`Verifier::unwrap`] on anything received from the network.
    ///
    /// # Errors
    /// Fails if `body` is not JSON with `id`, `type` and `created_at`, or if a
    /// batch event has no `data.id`.
    pub fn parse(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
        let wire: WireEvent =
            serde_json::from_slice(body).map_err(|e| WebhookError::Body(e.to_string()))?;
        let kind = EventType::parse(&wire.kind);
        let data_id = wire.data.and_then(|d| d.id);
        if kind.is_batch() && data_id.is_none() {
            return Err(WebhookError::Body(format!(
                "a {kind} event has no `data.id`"
            )));
        }
        Ok(WebhookEvent {
            id: wire.id,
            kind,
            created_at: wire.created_at,
            data_id,
        })
    }

    /// The batch this event is about, if it is a batch event.
    pub fn batch_id(&self) -> Option<&str> {
        if self.kind.is_batch() {
            self.data_id.as_deref()
        } else {
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;
    const BODY: &[u8] = br#"{"id":"evt_685343a1381c819085d44c354e1b330e","object":"event","created_at":1750000000,"type":"batch.completed","data":{"id":"batch_abc123"}}"#;

    fn secret() -> WebhookSecret {
        WebhookSecret::from_bytes(b"a test key of some length".to_vec()).unwrap()
    }

    fn headers(id: &str, ts: &str, sig: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(HEADER_ID, id.parse().unwrap());
        h.insert(HEADER_TIMESTAMP, ts.parse().unwrap());
        h.insert(HEADER_SIGNATURE, sig.parse().unwrap());
        h
    }

    fn signed(ts: i64, body: &[u8]) -> http::HeaderMap {
        headers("msg_1", &ts.to_string(), &secret().sign("msg_1", ts, body))
    }

    fn at(secs: i64) -> UnixMillis {
        UnixMillis::from_secs(secs)
    }

    #[test]
    fn a_good_signature_verifies_and_parses() {
        let v = Verifier::new(secret());
        let ev = v.unwrap(&signed(NOW, BODY), BODY, at(NOW + 3)).unwrap();
        assert_eq!(ev.id, "evt_685343a1381c819085d44c354e1b330e");
        assert_eq!(ev.kind, EventType::BatchCompleted);
        assert_eq!(ev.created_at, NOW);
        assert_eq!(ev.batch_id(), Some("batch_abc123"));
    }

    /// The example message of the Standard Webhooks reference libraries
    /// (its signature also checked with Python's `hmac` and `base64`, the way
    /// the official SDK computes it), so the signing formula itself is
    /// pinned, not only its round trip.
    #[test]
    fn the_signature_matches_an_independent_computation() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let other = WebhookSecret::from_bytes(b"another key".to_vec()).unwrap();
        let v = Verifier::new(other);
        assert_eq!(
            v.verify(&signed(NOW, BODY), BODY, at(NOW)),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let v = Verifier::new(secret());
        let tampered = String::from_utf8(BODY.to_vec())
            .unwrap()
            .replace("batch_abc123", "batch_abc124");
        assert_eq!(
            v.verify(&signed(NOW, BODY), tampered.as_bytes(), at(NOW)),
            Err(WebhookError::Mismatch)
        );
        // A changed id or timestamp breaks it too: both are signed.
        let sig = secret().sign("msg_1", NOW, BODY);
        assert_eq!(
            v.verify(&headers("msg_2", &NOW.to_string(), &sig), BODY, at(NOW)),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            v.verify(
                &headers("msg_1", &(NOW + 1).to_string(), &sig),
                BODY,
                at(NOW)
            ),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn too_old_and_from_the_future_are_refused_at_the_tolerance() {
        let v = Verifier::new(secret());
        // Exactly at the tolerance is accepted, one second more is not.
        assert_eq!(v.verify(&signed(NOW, BODY), BODY, at(NOW + 300)), Ok(()));
        assert_eq!(
            v.verify(&signed(NOW, BODY), BODY, at(NOW + 301)),
            Err(WebhookError::TooOld { age_secs: 301 })
        );
        assert_eq!(v.verify(&signed(NOW, BODY), BODY, at(NOW - 300)), Ok(()));
        assert_eq!(
            v.verify(&signed(NOW, BODY), BODY, at(NOW - 301)),
            Err(WebhookError::FromFuture { ahead_secs: 301 })
        );
        // A custom tolerance.
        let strict = Verifier::new(secret()).tolerance(Duration::from_secs(10));
        assert_eq!(
            strict.verify(&signed(NOW, BODY), BODY, at(NOW + 11)),
            Err(WebhookError::TooOld { age_secs: 11 })
        );
    }

    #[test]
    fn one_good_signature_among_several_is_enough() {
        let v = Verifier::new(secret());
        let old = WebhookSecret::from_bytes(b"the rotated-out key".to_vec()).unwrap();
        let good = secret().sign("msg_1", NOW, BODY);
        let bad = old.sign("msg_1", NOW, BODY);
        for list in [
            format!("{bad} {good}"),
            format!("{good} {bad}"),
            format!("v1,not*base64 v2,{} {good}", &good[3..]),
        ] {
            let h = headers("msg_1", &NOW.to_string(), &list);
            assert_eq!(v.verify(&h, BODY, at(NOW)), Ok(()), "{list}");
        }
        // Only bad ones: refused.
        let h = headers("msg_1", &NOW.to_string(), &format!("{bad} {bad}"));
        assert_eq!(v.verify(&h, BODY, at(NOW)), Err(WebhookError::Mismatch));
        // A good MAC under another scheme version is not a v1 signature.
        let h = headers("msg_1", &NOW.to_string(), &format!("v1a,{}", &good[3..]));
        assert_eq!(v.verify(&h, BODY, at(NOW)), Err(WebhookError::NoSignature));
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let v = Verifier::new(secret());
        let mut h = signed(NOW, BODY);
        h.remove(HEADER_SIGNATURE);
        assert_eq!(
            v.verify(&h, BODY, at(NOW)),
            Err(WebhookError::MissingHeader("webhook-signature"))
        );
        let mut h = signed(NOW, BODY);
        h.remove(HEADER_ID);
        assert_eq!(
            v.verify(&h, BODY, at(NOW)),
            Err(WebhookError::MissingHeader("webhook-id"))
        );
        let h = headers("msg_1", "yesterday", &secret().sign("msg_1", NOW, BODY));
        assert_eq!(v.verify(&h, BODY, at(NOW)), Err(WebhookError::BadTimestamp));
    }

    #[test]
    fn secrets_parse_and_never_show() {
        let s = WebhookSecret::parse("whsec_c2VjcmV0").unwrap();
        assert_eq!(s, WebhookSecret::from_bytes(b"secret".to_vec()).unwrap());
        assert_eq!(s.to_whsec(), "whsec_c2VjcmV0");
        assert_eq!(
            WebhookSecret::parse("whsec_***"),
            Err(SecretError::NotBase64)
        );
        assert_eq!(WebhookSecret::parse("whsec_"), Err(SecretError::Empty));
        let shown = format!("{:?}", Verifier::new(s));
        assert!(!shown.contains("c2VjcmV0"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn event_bodies_parse_by_type() {
        for (ty, kind) in [
            ("batch.completed", EventType::BatchCompleted),
            ("batch.failed", EventType::BatchFailed),
            ("batch.expired", EventType::BatchExpired),
            ("batch.cancelled", EventType::BatchCancelled),
        ] {
            let body = format!(
                r#"{{"id":"evt_1","object":"event","created_at":5,"type":"{ty}","data":{{"id":"batch_9"}}}}"#
            );
            let ev = WebhookEvent::parse(body.as_bytes()).unwrap();
            assert_eq!(ev.kind, kind);
            assert_eq!(ev.kind.as_str(), ty);
            assert_eq!(ev.batch_id(), Some("batch_9"));
        }
        let other = WebhookEvent::parse(
            br#"{"id":"evt_2","created_at":5,"type":"response.completed","data":{"id":"resp_1"}}"#,
        )
        .unwrap();
        assert_eq!(other.kind, EventType::Other("response.completed".into()));
        assert_eq!(other.batch_id(), None);
        assert!(matches!(
            WebhookEvent::parse(br#"{"id":"evt_3","created_at":5,"type":"batch.failed"}"#),
            Err(WebhookError::Body(_))
        ));
        assert!(matches!(
            WebhookEvent::parse(b"not json"),
            Err(WebhookError::Body(_))
        ));
    }
}
