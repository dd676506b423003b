//! Credentials that expire, driven by hand against a small fake server
//! that knows which tokens it issued and when each expires: the job asks
//! for a token before its first request, before the one it holds expires,
//! and after a `401`; it sends the refused request again; a fresh token
//! that is refused too is final; a source that fails, or keeps giving
//! tokens about to expire, stops the job with every request accounted for.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use batch_core::UnixMillis;
use batch_core::api::{ApiBase, ApiConfig, ApiKey, AuthScheme, Outgoing, Provider};
use batch_core::credential::{CredentialError, CredentialRefresh, RefreshReason};
use batch_core::http::{self, Request, Response};
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{
    BatchJob, BatchOptions, Job, JobIo, JobOutcome, JobSummary, Step, StopAfter,
};

const T0: u64 = 1_700_000_000_000;
const MINUTE: u64 = 60_000;

/// The fake server: one upload, one batch that completes `runs_for` after
/// its creation, one output file. It accepts `Authorization: Bearer` tokens
/// it knows until their expiry.
struct Server {
    tokens: BTreeMap<String, UnixMillis>,
    runs_for: u64,
    created_at: Option<UnixMillis>,
    creates: u32,
    refused: u32,
    /// Each request's method and path, its token, and whether it was
    /// refused, in order.
    log: Vec<(String, String, bool)>,
}

const OUT: &str = r#"{"id":"batch_req_1","custom_id":"q1","response":{"status_code":200,"request_id":"req_1","body":{"object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}]}},"error":null}
"#;

impl Server {
    fn new(runs_for: u64) -> Server {
        Server {
            tokens: BTreeMap::new(),
            runs_for,
            created_at: None,
            creates: 0,
            refused: 0,
            log: Vec::new(),
        }
    }

    /// A token valid until `expires`.
    fn issue(&mut self, expires: UnixMillis) -> String {
        let t = format!("tok-{}", self.tokens.len() + 1);
        self.tokens.insert(t.clone(), expires);
        t
    }

    fn answer(
        &mut self,
        req: &Request<Outgoing>,
        now: UnixMillis,
    ) -> (http::response::Parts, Vec<u8>) {
        let token = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_owned();
        let valid = self.tokens.get(&token).is_some_and(|exp| now < *exp);
        let what = format!("{} {}", req.method(), req.uri().path());
        self.log.push((what, token, !valid));
        if !valid {
            self.refused += 1;
            let body = r#"{"statusCode":401,"message":"Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired."}"#;
            return respond(401, body);
        }
        let file = |id: &str, bytes: usize| {
            format!(
                r#"{{"id":"{id}","object":"file","bytes":{bytes},"created_at":1,"filename":"f.jsonl","purpose":"batch"}}"#
            )
        };
        let batch = |status: &str, out: &str| {
            format!(
                r#"{{"id":"batch_1","object":"batch","endpoint":"/v1/chat/completions","input_file_id":"file-in","completion_window":"24h","status":"{status}","output_file_id":{out},"created_at":1}}"#
            )
        };
        let body = match (req.method().as_str(), req.uri().path()) {
            ("POST", "/v1/files") => file("file-in", 200),
            ("POST", "/v1/batches") => {
                self.creates += 1;
                self.created_at = Some(now);
                batch("validating", "null")
            }
            ("GET", "/v1/batches/batch_1") => {
                let done = self
                    .created_at
                    .is_some_and(|c| now >= c.plus_millis(self.runs_for));
                if done {
                    batch("completed", r#""file-out""#)
                } else {
                    batch("in_progress", "null")
                }
            }
            ("GET", "/v1/files/file-out") => file("file-out", OUT.len()),
            ("GET", "/v1/files/file-out/content") => OUT.to_owned(),
            (method, path) => panic!("unexpected {method} {path}"),
        };
        respond(200, &body)
    }
}

fn respond(status: u16, body: &str) -> (http::response::Parts, Vec<u8>) {
    let head = Response::builder()
        .status(status)
        .header("content-length", body.len())
        .body(())
        .unwrap()
        .into_parts()
        .0;
    (head, body.as_bytes().to_vec())
}

/// What the source answers when the job asks.
enum Source {
    /// A token valid for `ttl`, with its expiry told to the job or not.
    Valid { ttl: u64, tell_expiry: bool },
    /// A token the server does not know.
    Unknown,
    /// A token that expires now.
    Expired,
    /// The source fails.
    Fails,
}

struct Run {
    summary: JobSummary,
    reasons: Vec<RefreshReason>,
    server: Server,
    outcomes: Vec<JobOutcome>,
    job_debug: String,
}

/// Runs a one-request job with Bearer tokens from `source` (the `n`th ask
/// answered by `source(n)`), polling every minute.
fn run(runs_for: u64, margin: Duration, source: impl Fn(usize) -> Source) -> Run {
    let items = [Item::new("q1", "What is 2 + 2?")];
    let mut opts = BatchOptions::new("gpt-4o-mini");
    opts.poll_interval = Duration::from_secs(60);
    let mut handle = BatchJob::from_items(&items, &SystemPrompt::None, &opts, 1).unwrap();
    let mut config = ApiConfig::new("").with_base_url("http://fake.invalid/v1");
    config.provider = Provider::custom();
    config.provider.auth = AuthScheme::Bearer;
    let api = ApiBase::without_key(&config).unwrap();
    let mut now = UnixMillis(T0);
    let mut job = handle.job(api, StopAfter::Finished, now).unwrap();
    let mut refresh = CredentialRefresh::default();
    refresh.margin = margin;
    job = with_credential(job, refresh);
    let mut server = Server::new(runs_for);
    let mut reasons = Vec::new();
    let mut outcomes = Vec::new();
    let mut io = handle.io(false, |r| outcomes.push(r.outcome), |_| {});
    let mut polls = 0u32;
    let summary = loop {
        polls += 1;
        assert!(polls < 10_000, "the job did not end (livelock?)");
        match job.poll(now) {
            Step::Send { id, request } => {
                let (head, body) = server.answer(&request, now);
                job.handle_head(id, head, now).unwrap();
                for r in job.handle_body(id, &body).unwrap() {
                    io.result(r).unwrap();
                }
                job.handle_end(id, now).unwrap();
            }
            Step::RefreshCredential { reason } => {
                reasons.push(reason);
                match source(reasons.len()) {
                    Source::Valid { ttl, tell_expiry } => {
                        let expires = now.plus_millis(ttl);
                        let token = server.issue(expires);
                        job.set_credential(ApiKey::new(token), tell_expiry.then_some(expires), now);
                    }
                    Source::Unknown => job.set_credential(ApiKey::new("tok-forged"), None, now),
                    Source::Expired => {
                        let token = server.issue(now);
                        job.set_credential(ApiKey::new(token), Some(now), now);
                    }
                    Source::Fails => job.handle_credential_failure(
                        &CredentialError::new("the identity service is unavailable"),
                        now,
                    ),
                }
            }
            Step::Wait { until, .. } => now = until,
            Step::Persist(cp) => io.persist(&cp).unwrap(),
            Step::Result(r) => io.result(r).unwrap(),
            Step::Event(e) => io.event(&e).unwrap(),
            Step::Done(summary) => break summary,
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            now.as_millis() < T0 + 48 * 60 * MINUTE,
            "the job did not end"
        );
    };
    let job_debug = format!("{job:?}");
    Run {
        summary,
        reasons,
        server,
        outcomes,
        job_debug,
    }
}

/// `job` with credential refresh on (as a client with a credential source
/// configures it).
fn with_credential(job: Job, refresh: CredentialRefresh) -> Job {
    let mut cfg = job.config().clone();
    cfg.credential = Some(refresh);
    Job::new(cfg, job.plan().clone(), UnixMillis(T0))
}

#[test]
fn a_token_is_replaced_before_it_expires_without_a_refusal() {
    // Tokens live 20 minutes; the batch runs an hour; refresh 5 minutes early.
    let r = run(60 * MINUTE, Duration::from_secs(300), |_| Source::Valid {
        ttl: 20 * MINUTE,
        tell_expiry: true,
    });
    assert!(r.summary.complete, "{:?}", r.summary);
    assert_eq!(r.summary.succeeded, 1);
    assert_eq!(r.server.refused, 0, "no request went with an expired token");
    assert_eq!(r.reasons[0], RefreshReason::Initial);
    assert!(r.reasons.len() >= 3, "{:?}", r.reasons);
    assert!(
        r.reasons[1..]
            .iter()
            .all(|x| matches!(x, RefreshReason::Expiring { .. })),
        "{:?}",
        r.reasons
    );
    // Requests after a refresh carry the new token.
    let tokens: Vec<&str> = r.server.log.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(tokens.first(), Some(&"tok-1"));
    assert!(tokens.contains(&"tok-3"), "{tokens:?}");
}

#[test]
fn a_refused_request_is_sent_again_with_a_new_token() {
    // The job is not told when tokens expire: it learns from the 401s.
    let r = run(60 * MINUTE, Duration::from_secs(300), |_| Source::Valid {
        ttl: 20 * MINUTE,
        tell_expiry: false,
    });
    assert!(r.summary.complete, "{:?}", r.summary);
    assert_eq!(r.summary.succeeded, 1);
    assert!(r.server.refused >= 2, "tokens expired under the job");
    let refusals = r
        .reasons
        .iter()
        .filter(|x| **x == RefreshReason::Refused)
        .count();
    assert_eq!(
        refusals as u32, r.server.refused,
        "one new token per refusal"
    );
    assert_eq!(r.server.creates, 1, "nothing done twice");
    // Every refused request was sent again, next, with a new token.
    for pair in r.server.log.windows(2) {
        let [(what, token, refused), (again, next, _)] = pair else {
            continue;
        };
        if *refused {
            assert_eq!(again, what, "the refused request goes again first");
            assert_ne!(next, token, "with a new token");
        }
    }
}

#[test]
fn a_fresh_token_that_is_refused_too_is_final() {
    let r = run(60 * MINUTE, Duration::from_secs(300), |n| {
        if n == 1 {
            Source::Valid {
                ttl: 5 * MINUTE,
                tell_expiry: false,
            }
        } else {
            Source::Unknown
        }
    });
    assert!(!r.summary.complete);
    let error = r.summary.error.clone().unwrap_or_default();
    assert!(error.starts_with("authentication failed"), "{error}");
    assert_eq!(r.reasons.last(), Some(&RefreshReason::Refused));
    assert_eq!(r.outcomes.len(), 1, "the request still gets one outcome");
    assert!(matches!(r.outcomes[0], JobOutcome::NotProcessed(_)));
}

#[test]
fn a_failing_source_stops_the_job_with_its_error() {
    let r = run(60 * MINUTE, Duration::from_secs(300), |n| {
        if n == 1 {
            Source::Valid {
                ttl: 20 * MINUTE,
                tell_expiry: true,
            }
        } else {
            Source::Fails
        }
    });
    assert!(!r.summary.complete);
    let error = r.summary.error.clone().unwrap_or_default();
    assert_eq!(
        error,
        "the credential source failed: the identity service is unavailable"
    );
    assert_eq!(r.server.refused, 0);
    assert_eq!(r.outcomes.len(), 1);
    let JobOutcome::NotProcessed(np) = &r.outcomes[0] else {
        panic!("{:?}", r.outcomes);
    };
    assert_eq!(np.code, "job_stopped");
    assert!(!np.is_final(), "a resumed run replaces it");
    assert!(!r.job_debug.contains("tok-1"), "{}", r.job_debug);
}

#[test]
fn tokens_that_keep_arriving_expired_stop_the_job_after_the_cap() {
    let r = run(60 * MINUTE, Duration::from_secs(300), |_| Source::Expired);
    assert!(!r.summary.complete);
    let error = r.summary.error.clone().unwrap_or_default();
    assert!(error.starts_with("gave up on the credential"), "{error}");
    let cap = CredentialRefresh::default().max_in_row as usize;
    assert_eq!(r.reasons.len(), cap, "{:?}", r.reasons);
    assert_eq!(r.outcomes.len(), 1);
}
