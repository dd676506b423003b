//! Credentials that expire during a job, such as the Microsoft Entra ID
//! bearer tokens Azure OpenAI accepts in place of a key (they live about an
//! hour; a batch job may run for a day).
//!
//! The core stays pure: it never calls anything to get a token. A
//! [`Job`](crate::job::Job) configured with a [`CredentialRefresh`] says
//! when it needs one with [`Step::RefreshCredential`](crate::job::Step::RefreshCredential):
//! before its first request, when the credential it holds is within
//! [`CredentialRefresh::margin`] of its expiry, and after a request sent
//! with it was refused with `401`. The transport then calls the user's
//! [`CredentialSource`] and hands the answer back with
//! [`Job::set_credential`](crate::job::Job::set_credential), or the failure
//! with [`Job::handle_credential_failure`](crate::job::Job::handle_credential_failure).
//!
//! The request refused with `401` is sent again with the new credential,
//! and nothing about it is counted as a failed attempt. If the new
//! credential is refused too, the refusal is final, as a wrong key is. A
//! source that fails stops the job (every request still gets exactly one
//! outcome, and the job can be resumed later).
//!
//! A token never appears in `Debug` output, errors, events, traces or
//! checkpoints: [`Credential`]'s `Debug` hides it, and the job redacts the
//! current and recent tokens from every text it makes out of server
//! answers, as it does the key.
//!
//! Azure documents Microsoft Entra ID authentication in "Authentication"
//! of its [REST API reference](https://learn.microsoft.com/azure/foundry/openai/authoring-reference-preview):
//! the token goes in `Authorization: Bearer <token>`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::api::{ApiBase, ApiKey};
use crate::time::UnixMillis;

/// A token and the time it stops being valid.
#[derive(Clone)]
pub struct Credential {
    /// The token, sent as `Authorization: Bearer <token>` (or in the header
    /// the provider names).
    pub token: ApiKey,
    /// When the token expires (Azure's `expires_on`, in Unix time), if
    /// known. Without it the job asks for a new token only after a `401`.
    pub expires_at: Option<UnixMillis>,
}

impl Credential {
    /// A token valid until `expires_at` (`None`: unknown).
    pub fn new(token: impl Into<ApiKey>, expires_at: Option<UnixMillis>) -> Credential {
        Credential {
            token: token.into(),
            expires_at,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("token", &self.token)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a credential source could not give a credential. Its message is
/// shown to the user: it must not hold the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CredentialError {
    message: String,
}

impl CredentialError {
    /// A failure described by `message` (no secrets in it).
    pub fn new(message: impl Into<String>) -> CredentialError {
        CredentialError {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// What a blocking credential source is: a function that returns a fresh
/// credential each time it is called.
pub type BlockingSource = dyn Fn() -> Result<Credential, CredentialError> + Send + Sync;

/// The future an async credential source returns.
pub type CredentialFuture =
    Pin<Box<dyn Future<Output = Result<Credential, CredentialError>> + Send + 'static>>;

/// What an async credential source is: a function that returns a future of
/// a fresh credential each time it is called.
pub type AsyncSource = dyn Fn() -> CredentialFuture + Send + Sync;

/// Where fresh credentials come from: the user's code, called by the
/// transport when the job asks (see the [module docs](self)).
///
/// - [`blocking`](Self::blocking): a plain function (run a command such as
///   `az account get-access-token`, read a file a sidecar refreshes). Both
///   transports take it; `batch-async` calls it on tokio's blocking pool.
/// - [`from_async`](Self::from_async): an async function, as
///   `azure_identity`'s `TokenCredential::get_token` is. Only `batch-async`
///   takes it; `batch-blocking` stops the job with a clear error.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use batch_core::UnixMillis;
/// use batch_core::credential::{Credential, CredentialError, CredentialSource};
///
/// let source = CredentialSource::blocking(|| {
///     // In real code: ask your identity library for a token.
///     let token = std::env::var("MY_TOKEN").map_err(|_| CredentialError::new("MY_TOKEN is not set"))?;
///     let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
///     let secs = in_an_hour.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
///     Ok(Credential::new(token, Some(UnixMillis::from_secs(secs as i64))))
/// });
/// assert_eq!(format!("{source:?}"), "CredentialSource::Blocking");
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum CredentialSource {
    /// A blocking function.
    Blocking(Arc<BlockingSource>),
    /// An async function.
    Async(Arc<AsyncSource>),
}

impl CredentialSource {
    /// A source that calls `f` for each credential.
    pub fn blocking(
        f: impl Fn() -> Result<Credential, CredentialError> + Send + Sync + 'static,
    ) -> CredentialSource {
        CredentialSource::Blocking(Arc::new(f))
    }

    /// A source that awaits `f()` for each credential.
    pub fn from_async<F, Fut>(f: F) -> CredentialSource
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Credential, CredentialError>> + Send + 'static,
    {
        CredentialSource::Async(Arc::new(move || -> CredentialFuture { Box::pin(f()) }))
    }

    /// Calls a blocking source. An async source cannot be called this way:
    /// its answer is an error saying so.
    ///
    /// # Errors
    /// The source's own error, or the one for an async source.
    pub fn call_blocking(&self) -> Result<Credential, CredentialError> {
        match self {
            CredentialSource::Blocking(f) => f(),
            CredentialSource::Async(_) => Err(CredentialError::new(
                "the credential source is async: run the job with batch-async, or give a blocking source",
            )),
        }
    }
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialSource::Blocking(_) => "CredentialSource::Blocking",
            CredentialSource::Async(_) => "CredentialSource::Async",
        })
    }
}

/// When a job asks for a fresh credential
/// ([`JobConfig::credential`](crate::job::JobConfig::credential)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialRefresh {
    /// A credential this close to its expiry is replaced before the next
    /// request (default 5 minutes). A credential that is already this
    /// close when it arrives is replaced half way to its expiry.
    pub margin: Duration,
    /// How many credentials in a row may be asked for without a request
    /// being accepted in between (each refused with `401`, or each about to
    /// expire when it came) before the job stops (default 3).
    pub max_in_row: u32,
}

impl Default for CredentialRefresh {
    fn default() -> Self {
        CredentialRefresh {
            margin: Duration::from_secs(300),
            max_in_row: 3,
        }
    }
}

/// Why the job asks for a credential ([`Step::RefreshCredential`](crate::job::Step::RefreshCredential)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshReason {
    /// The job holds none yet.
    Initial,
    /// The one it holds expires at `expires_at`, within the margin.
    Expiring {
        /// When the current credential expires.
        expires_at: UnixMillis,
    },
    /// A request sent with the current credential was refused with `401`.
    Refused,
}

/// What a transport does to get a credential ([`CredentialCache::for_job`],
/// [`CredentialCache::for_request`]): the one thing the core cannot do is
/// call the user's source, which may block or be async.
#[derive(Debug)]
pub enum CredentialNeed<'a> {
    /// The answer, known without calling the source.
    Ready(Result<Credential, CredentialError>),
    /// Call this source (blocking or async, as the transport can) and hand
    /// its answer back.
    Call(&'a CredentialSource),
}

/// The last credential a client's source gave, shared by the client's jobs:
/// a new job starts with it instead of calling the source again (the job
/// still asks for a new one when it nears its expiry). Transports keep one
/// per client.
#[derive(Debug, Default)]
pub struct CredentialCache {
    last: Mutex<Option<Credential>>,
}

impl CredentialCache {
    /// The credential to answer `reason` with without calling the source:
    /// the last one, for a job that holds none yet; else `None`.
    pub fn reuse(&self, reason: &RefreshReason) -> Option<Credential> {
        match reason {
            RefreshReason::Initial => self.lock().clone(),
            _ => None,
        }
    }

    /// The last credential if it is valid for more than `margin` after
    /// `now` (or its expiry is unknown), for a single request sent outside
    /// a job.
    pub fn current(&self, now: UnixMillis, margin: Duration) -> Option<Credential> {
        self.lock()
            .clone()
            .filter(|c| c.expires_at.is_none_or(|t| t > now.saturating_add(margin)))
    }

    /// Remembers `credential` for the next job.
    pub fn store(&self, credential: &Credential) {
        *self.lock() = Some(credential.clone());
    }

    /// How to answer a job's [`Step::RefreshCredential`](crate::job::Step::RefreshCredential)
    /// for `reason`, given the client's `source`: at once (the last
    /// credential, for a job that holds none yet; an error without a
    /// source), or by calling the source and handing its answer to
    /// [`answer_job`](Self::answer_job).
    pub fn for_job<'a>(
        &self,
        source: Option<&'a CredentialSource>,
        reason: &RefreshReason,
    ) -> CredentialNeed<'a> {
        match (source, self.reuse(reason)) {
            (None, _) => CredentialNeed::Ready(Err(CredentialError::new(
                "the job needs a credential, but the client has no credential source (ClientConfig::credential)",
            ))),
            (Some(_), Some(c)) => CredentialNeed::Ready(Ok(c)),
            (Some(source), None) => CredentialNeed::Call(source),
        }
    }

    /// Hands `answer` to `job` ([`Job::set_credential`](crate::job::Job::set_credential)
    /// or [`Job::handle_credential_failure`](crate::job::Job::handle_credential_failure)),
    /// remembering a credential for the client's next job.
    pub fn answer_job(
        &self,
        job: &mut crate::job::Job,
        answer: Result<Credential, CredentialError>,
        now: UnixMillis,
    ) {
        match answer {
            Ok(c) => {
                self.store(&c);
                job.set_credential(c.token, c.expires_at, now);
            }
            Err(e) => job.handle_credential_failure(&e, now),
        }
    }

    /// How to get the credential of a single request sent outside a job:
    /// `None` without a source (the configured key is sent); else the last
    /// credential while it is valid for more than `margin` after `now`, or
    /// the source to call. Hand the answer to [`authorize`](Self::authorize).
    pub fn for_request<'a>(
        &self,
        source: Option<&'a CredentialSource>,
        now: UnixMillis,
        margin: Duration,
    ) -> Option<CredentialNeed<'a>> {
        let source = source?;
        Some(match self.current(now, margin) {
            Some(c) => CredentialNeed::Ready(Ok(c)),
            None => CredentialNeed::Call(source),
        })
    }

    /// Puts the credential `answer` into `headers` the way `api` sends its
    /// key, remembering it for later requests and jobs.
    ///
    /// # Errors
    /// A one-line reason when the source failed or gave a token that
    /// cannot be sent in a header.
    pub fn authorize(
        &self,
        api: &ApiBase,
        answer: Result<Credential, CredentialError>,
        headers: &mut http::HeaderMap,
    ) -> Result<(), String> {
        let credential = answer.map_err(|e| format!("the credential source failed: {e}"))?;
        self.store(&credential);
        let mut api = api.clone();
        api.set_key(credential.token)
            .map_err(|e| format!("the credential source gave a token that cannot be sent: {e}"))?;
        api.authorize(headers);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Credential>> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_token() {
        let c = Credential::new("eyJ-secret-token", Some(UnixMillis(5)));
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("UnixMillis(5)"), "{shown}");
    }

    #[test]
    fn a_blocking_source_is_called_each_time() {
        let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = Arc::clone(&n);
        let source = CredentialSource::blocking(move || {
            let k = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Credential::new(format!("t{k}"), None))
        });
        let a = source.call_blocking().expect("a token");
        let b = source.call_blocking().expect("a token");
        assert_eq!(a.token.expose_secret(), "t0");
        assert_eq!(b.token.expose_secret(), "t1");
        let asynchronous =
            CredentialSource::from_async(|| async { Ok(Credential::new("t", None)) });
        let err = asynchronous.call_blocking().expect_err("async");
        assert!(err.message().contains("batch-async"), "{err}");
    }
}
