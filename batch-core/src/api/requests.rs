//! Level-1 request builders: one pure function per operation (API notes §2).
//!
//! Each builder returns an [`http::Request`] whose body is an [`Outgoing`]
//! description; a transport sends it as is. The builders hold no state,
//! read no clock and do no IO. Paths are relative to the configured base URL,
//! which includes `/v1` (API notes §9.3), so `/batches` is sent to
//! `https://api.openai.com/v1/batches` by default.
//!
//! Every request carries the key (by default `Authorization: Bearer <key>`;
//! the [`Provider`] may name another header, such as Azure OpenAI's
//! `api-key`), marked sensitive so `http`'s `Debug` prints `Sensitive`
//! instead of the key, `User-Agent`, `Accept`, `OpenAI-Organization` /
//! `OpenAI-Project` when configured, and the provider's extra headers and
//! query parameters. Requests with a body also carry `Content-Type` and an
//! exact `Content-Length`.

use std::fmt;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RANGE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use serde::{Deserialize, Serialize};

use super::types::check_range;
use super::{CreateBatch, ExpiresAfter, FilePurpose, ParamError};
use crate::provider::{AuthScheme, Provider};

// ---- configuration ----------------------------------------------------------

/// An API key. Its `Debug` and `Display` print `ApiKey(****)`, never the key.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself. Only for building the `Authorization` header.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        ApiKey(key)
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        ApiKey(key.to_owned())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(****)")
    }
}

/// Where and as whom to call the API. Turn it into an [`ApiBase`] to build
/// requests.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ApiConfig {
    /// The base URL including the version path, e.g.
    /// `https://api.openai.com/v1` (API notes §1). Any base with a path
    /// works (a proxy, an emulator); a trailing slash is ignored. A query
    /// (`?api-version=2024-10-21`) is kept and sent with every request.
    pub base_url: String,
    /// The key, sent as `Authorization: Bearer <key>` (API notes §1) or in
    /// the header [`Provider::auth`] names.
    pub api_key: ApiKey,
    /// Sent as `OpenAI-Organization` when set.
    pub organization: Option<String>,
    /// Sent as `OpenAI-Project` when set.
    pub project: Option<String>,
    /// Sent as `User-Agent`.
    pub user_agent: String,
    /// What the service expects beyond OpenAI's wire format (default:
    /// [`Provider::openai`]).
    pub provider: Provider,
}

impl ApiConfig {
    /// The public API's base URL.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com/v1";
    /// The default `User-Agent`: `openai-batch/<crate version>`.
    pub const DEFAULT_USER_AGENT: &'static str =
        concat!("openai-batch/", env!("CARGO_PKG_VERSION"));

    /// A configuration for the public API with `api_key`, no organization or
    /// project, and the default user agent.
    pub fn new(api_key: impl Into<ApiKey>) -> ApiConfig {
        ApiConfig {
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            api_key: api_key.into(),
            organization: None,
            project: None,
            user_agent: Self::DEFAULT_USER_AGENT.to_owned(),
            provider: Provider::openai(),
        }
    }

    /// Sets the provider settings.
    pub fn with_provider(mut self, provider: Provider) -> ApiConfig {
        self.provider = provider;
        self
    }

    /// Sets the base URL.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> ApiConfig {
        self.base_url = base_url.into();
        self
    }

    /// Sets the organization header.
    pub fn with_organization(mut self, organization: impl Into<String>) -> ApiConfig {
        self.organization = Some(organization.into());
        self
    }

    /// Sets the project header.
    pub fn with_project(mut self, project: impl Into<String>) -> ApiConfig {
        self.project = Some(project.into());
        self
    }

    /// Sets the user agent.
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> ApiConfig {
        self.user_agent = user_agent.into();
        self
    }
}

/// A checked [`ApiConfig`], ready to build requests: the base URL is
/// validated and normalised, and the common headers are prepared once.
///
/// Its `Debug` shows the `Authorization` value as `Sensitive`.
#[derive(Clone)]
pub struct ApiBase {
    base: String,
    /// The query sent with every request, encoded, without `?`; may be empty.
    query: String,
    headers: HeaderMap,
    key: ApiKey,
    /// Values of extra headers that are credentials, redacted like the key.
    secrets: Vec<ApiKey>,
    /// Keys replaced by [`ApiBase::set_key`], newest last, redacted too.
    retired: Vec<ApiKey>,
    provider: Provider,
}

impl fmt::Debug for ApiBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The provider's headers may hold credentials: show their names only.
        let headers: Vec<&str> = self
            .provider
            .headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        f.debug_struct("ApiBase")
            .field("base", &self.base)
            .field("query", &self.query)
            .field("headers", &self.headers)
            .field("key", &self.key)
            .field("provider", &self.provider.kind)
            .field("extra_headers", &headers)
            .finish()
    }
}

/// An [`ApiConfig`] that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The base URL is not an absolute `http`/`https` URL without query,
    /// fragment or credentials.
    #[error("invalid base url {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The API key is empty.
    #[error("the api key is empty")]
    EmptyApiKey,
    /// The API key has characters a header value cannot hold (the key itself
    /// is not repeated here).
    #[error("the api key contains characters not allowed in an http header")]
    InvalidApiKey,
    /// A header value has characters a header cannot hold.
    #[error("the {header} value contains characters not allowed in an http header")]
    InvalidHeader {
        /// The header, e.g. `OpenAI-Project`.
        header: &'static str,
    },
    /// A provider header's name or value cannot be an http header (the
    /// value is not repeated here: it may be a credential).
    #[error("the header {name:?} is not a valid http header name and value")]
    InvalidExtraHeader {
        /// The header's name as given.
        name: String,
    },
    /// A provider query parameter has an empty name.
    #[error("a query parameter has an empty name")]
    EmptyQueryName,
}

impl ApiBase {
    /// Checks `config` and prepares the common headers.
    ///
    /// # Errors
    /// - [`ConfigError::InvalidBaseUrl`] if the base URL does not parse, is
    ///   not `http` or `https`, has no host, or has credentials, a query or a
    ///   fragment;
    /// - [`ConfigError::EmptyApiKey`] / [`ConfigError::InvalidApiKey`] if the
    ///   key is empty or cannot be a header value;
    /// - [`ConfigError::InvalidHeader`] if the organization, project or user
    ///   agent cannot be a header value;
    /// - [`ConfigError::InvalidExtraHeader`] if a provider header, or the
    ///   header the provider sends the key in, is not a valid header;
    /// - [`ConfigError::EmptyQueryName`] if a provider query parameter has
    ///   no name.
    pub fn new(config: &ApiConfig) -> Result<ApiBase, ConfigError> {
        if config.api_key.expose_secret().is_empty() {
            return Err(ConfigError::EmptyApiKey);
        }
        let mut api = ApiBase::without_key(config)?;
        api.set_key(config.api_key.clone())?;
        Ok(api)
    }

    /// Checks `config` like [`new`](Self::new), except its key: requests
    /// carry no credential until [`set_key`](Self::set_key) gives one. For
    /// a credential that comes later from a
    /// [`CredentialSource`](crate::credential::CredentialSource) (the
    /// [`Job`](crate::job::Job) asks for it before its first request).
    ///
    /// # Errors
    /// As `new`, except for the key's errors.
    pub fn without_key(config: &ApiConfig) -> Result<ApiBase, ConfigError> {
        let (base, base_query) = normalise_base_url(&config.base_url)?;
        let provider = &config.provider;
        if let AuthScheme::Header(name) = &provider.auth {
            HeaderName::try_from(name.as_str())
                .map_err(|_| ConfigError::InvalidExtraHeader { name: name.clone() })?;
        }

        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, header_value(&config.user_agent, "User-Agent")?);
        if let Some(org) = &config.organization {
            headers.insert(ORGANIZATION, header_value(org, "OpenAI-Organization")?);
        }
        if let Some(project) = &config.project {
            headers.insert(PROJECT, header_value(project, "OpenAI-Project")?);
        }
        let mut secrets = Vec::new();
        for (name, value) in &provider.headers {
            let bad = || ConfigError::InvalidExtraHeader { name: name.clone() };
            let header = HeaderName::try_from(name.as_str()).map_err(|_| bad())?;
            let mut v = HeaderValue::try_from(value.as_str()).map_err(|_| bad())?;
            if Provider::is_secret_header(name) {
                v.set_sensitive(true);
                if !value.is_empty() {
                    secrets.push(ApiKey::new(value.clone()));
                }
            }
            headers.append(header, v);
        }
        let mut query = base_query.unwrap_or_default();
        for (name, value) in &provider.query {
            if name.is_empty() {
                return Err(ConfigError::EmptyQueryName);
            }
            if !query.is_empty() {
                query.push('&');
            }
            push_encoded(&mut query, name);
            query.push('=');
            push_encoded(&mut query, value);
        }
        Ok(ApiBase {
            base,
            query,
            headers,
            key: ApiKey::new(""),
            secrets,
            retired: Vec::new(),
            provider: provider.clone(),
        })
    }

    /// Sends `key` from now on, in the header the provider's
    /// [`AuthScheme`] names (a fresh token replacing one that expires).
    /// The keys it replaces are still redacted from text (the last
    /// [`RETIRED_KEYS`](Self::RETIRED_KEYS) of them).
    ///
    /// # Errors
    /// [`ConfigError::EmptyApiKey`] or [`ConfigError::InvalidApiKey`] if
    /// `key` is empty or cannot be a header value; the key in use is kept.
    pub fn set_key(&mut self, key: ApiKey) -> Result<(), ConfigError> {
        let secret = key.expose_secret();
        if secret.is_empty() {
            return Err(ConfigError::EmptyApiKey);
        }
        let (name, value) = match &self.provider.auth {
            AuthScheme::Bearer => (AUTHORIZATION, format!("Bearer {secret}")),
            AuthScheme::Header(name) => (
                HeaderName::try_from(name.as_str())
                    .map_err(|_| ConfigError::InvalidExtraHeader { name: name.clone() })?,
                secret.to_owned(),
            ),
        };
        let mut value = HeaderValue::try_from(value).map_err(|_| ConfigError::InvalidApiKey)?;
        value.set_sensitive(true);
        self.headers.insert(name, value);
        let old = std::mem::replace(&mut self.key, key);
        if !old.expose_secret().is_empty() && old.expose_secret() != self.key.expose_secret() {
            if self.retired.len() == Self::RETIRED_KEYS {
                self.retired.remove(0);
            }
            self.retired.push(old);
        }
        Ok(())
    }

    /// Puts this base's credential header (the key, in the header the
    /// provider's [`AuthScheme`] names) into `headers`, replacing any
    /// there: a request built before [`set_key`](Self::set_key) gets the
    /// current key.
    pub fn authorize(&self, headers: &mut HeaderMap) {
        let name = match &self.provider.auth {
            AuthScheme::Bearer => Some(AUTHORIZATION),
            AuthScheme::Header(name) => HeaderName::try_from(name.as_str()).ok(),
        };
        if let Some(name) = name {
            if let Some(value) = self.headers.get(&name) {
                headers.insert(name, value.clone());
            }
        }
    }

    /// How many replaced keys [`redact`](Self::redact) still removes.
    pub const RETIRED_KEYS: usize = 4;

    /// The provider settings the requests follow.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The query sent with every request (encoded, without the `?`), empty
    /// if none.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The normalised base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `text` with every occurrence of the API key replaced by
    /// [`REDACTED`](Self::REDACTED).
    ///
    /// Use it on any text a server sent before printing or storing it: a
    /// server may echo the key (a 401 saying `Incorrect API key provided:
    /// sk-...`). The [`Job`](crate::job::Job) does this for every message,
    /// event, summary and outcome it makes from server text.
    ///
    /// The key is redacted whatever header carries it, and so are the
    /// values of the provider's credential headers (see
    /// [`Provider::headers`]).
    pub fn redact(&self, text: &str) -> String {
        let mut out = None::<String>;
        for secret in std::iter::once(&self.key)
            .chain(&self.secrets)
            .chain(&self.retired)
        {
            let s = secret.expose_secret();
            let current = out.as_deref().unwrap_or(text);
            if !s.is_empty() && current.contains(s) {
                out = Some(current.replace(s, Self::REDACTED));
            }
        }
        out.unwrap_or_else(|| text.to_owned())
    }

    /// What [`redact`](Self::redact) puts in place of the key.
    pub const REDACTED: &'static str = "[redacted key]";
}

/// The `OpenAI-Organization` header.
const ORGANIZATION: HeaderName = HeaderName::from_static("openai-organization");
/// The `OpenAI-Project` header.
const PROJECT: HeaderName = HeaderName::from_static("openai-project");

fn header_value(value: &str, header: &'static str) -> Result<HeaderValue, ConfigError> {
    HeaderValue::try_from(value).map_err(|_| ConfigError::InvalidHeader { header })
}

/// The base URL without a trailing slash, and its query if it has one.
fn normalise_base_url(url: &str) -> Result<(String, Option<String>), ConfigError> {
    let bad = |reason| ConfigError::InvalidBaseUrl {
        url: url.to_owned(),
        reason,
    };
    if url.contains('#') {
        return Err(bad("a base url cannot have a fragment"));
    }
    let scheme = match url.split_once("://") {
        Some((s, _)) if s.eq_ignore_ascii_case("https") => "https",
        Some((s, _)) if s.eq_ignore_ascii_case("http") => "http",
        Some(_) => return Err(bad("the scheme must be http or https")),
        None => return Err(bad("it must start with http:// or https://")),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a valid absolute url"))?;
    let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("credentials in the url are not supported"));
    }
    if authority.host().is_empty() {
        return Err(bad("it has no host"));
    }
    let query = uri.query().filter(|q| !q.is_empty()).map(str::to_owned);
    let path = uri.path().trim_end_matches('/');
    Ok((format!("{scheme}://{authority}{path}"), query))
}

// ---- request bodies -----------------------------------------------------------

/// A shard of input the transport streams as the file part of an upload.
///
/// The core knows only its index and exact length; the transport resolves it
/// to a reader (through the job's IO) that must yield exactly `len` bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardRef {
    /// The shard's index in the job's plan.
    pub index: u32,
    /// The shard's exact size in bytes.
    pub len: u64,
}

/// The body of a request, as a description the transport executes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outgoing {
    /// No body.
    Empty,
    /// A JSON body (`Content-Type: application/json` is set on the request).
    Json(Bytes),
    /// Any other in-memory body, sent as is (e.g. a whole multipart upload
    /// built by [`upload_file_bytes`]).
    Bytes(Bytes),
    /// `head`, then the bytes of shard `shard`, then `tail`. `len` is the
    /// exact total, and the request's `Content-Length`.
    Multipart {
        /// Everything before the file's bytes.
        head: Bytes,
        /// The file's bytes, to be streamed by the transport.
        shard: ShardRef,
        /// Everything after the file's bytes.
        tail: Bytes,
        /// `head.len() + shard.len + tail.len()`.
        len: u64,
    },
}

impl Outgoing {
    /// The body's exact length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Outgoing::Empty => 0,
            Outgoing::Json(b) | Outgoing::Bytes(b) => b.len() as u64,
            Outgoing::Multipart { len, .. } => *len,
        }
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A multipart boundary (RFC 2046 §5.1.1), restricted to characters that need
/// no quoting in the `Content-Type` header: ASCII letters, digits and `'+-._`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Boundary(String);

impl Boundary {
    /// The longest boundary RFC 2046 allows.
    pub const MAX_LEN: usize = 70;

    /// A boundary derived deterministically from `seed`:
    /// `openai-batch-boundary-` and 32 hex digits (128 bits) mixed from the seed.
    ///
    /// The body of a multipart part must not contain `CRLF--<boundary>`. The
    /// core cannot check a streamed shard, so this relies on the 128 mixed
    /// bits: input that is not crafted to contain this exact string collides
    /// with negligible probability. Pass a seed the caller drew at random (the
    /// job's seed), not a constant, when input may be hostile.
    /// [`upload_file_bytes`], which sees the content, checks it.
    pub fn from_seed(seed: u64) -> Boundary {
        let mut state = seed;
        let a = splitmix64(&mut state);
        let b = splitmix64(&mut state);
        Boundary(format!("openai-batch-boundary-{a:016x}{b:016x}"))
    }

    /// A boundary given as a string.
    ///
    /// # Errors
    /// [`RequestError::InvalidBoundary`] if it is empty, longer than 70
    /// characters, or has a character other than ASCII letters, digits and
    /// `'+-._`.
    pub fn new(boundary: impl Into<String>) -> Result<Boundary, RequestError> {
        let s = boundary.into();
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"'+-._".contains(&b));
        if ok {
            Ok(Boundary(s))
        } else {
            Err(RequestError::InvalidBoundary { boundary: s })
        }
    }

    /// The boundary string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One step of the SplitMix64 generator (a bijective 64-bit mixer).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What to upload with [`upload_file`] or [`upload_file_bytes`] (spec
/// summary §3, `CreateFileRequest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadFile {
    /// The file name sent in the file part, e.g. `shard-0003.jsonl`. Batch
    /// input files must be `.jsonl` (API notes §2).
    pub filename: String,
    /// The purpose; `batch` for batch input (API notes §3).
    pub purpose: FilePurpose,
    /// When the file expires, sent as `expires_after[anchor]` and
    /// `expires_after[seconds]` parts (API notes §3, §9.6). By default,
    /// `batch` files expire after 30 days.
    pub expires_after: Option<ExpiresAfter>,
    /// The multipart boundary.
    pub boundary: Boundary,
}

impl UploadFile {
    /// A `batch` upload named `filename`, with a boundary derived from `seed`.
    pub fn batch_input(filename: impl Into<String>, seed: u64) -> UploadFile {
        UploadFile {
            filename: filename.into(),
            purpose: FilePurpose::Batch,
            expires_after: None,
            boundary: Boundary::from_seed(seed),
        }
    }
}

/// Sort order for [`list_files`] (API notes §2, listFiles `order`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListOrder {
    /// `asc`: oldest first.
    Asc,
    /// `desc`: newest first (the API's default).
    Desc,
}

impl ListOrder {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ListOrder::Asc => "asc",
            ListOrder::Desc => "desc",
        }
    }
}

/// Query parameters of [`list_files`] (API notes §2, listFiles). Unset
/// parameters are not sent, so the API's defaults apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFiles {
    /// Only files with this purpose.
    pub purpose: Option<FilePurpose>,
    /// Page size, 1 to 10,000 (API default 10,000).
    pub limit: Option<u32>,
    /// Sort order by `created_at` (API default `desc`).
    pub order: Option<ListOrder>,
    /// Cursor: the last file id of the previous page.
    pub after: Option<String>,
}

/// Query parameters of [`list_batches`] (API notes §2, listBatches).
/// Unset parameters are not sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListBatches {
    /// Cursor: the last batch id of the previous page.
    pub after: Option<String>,
    /// Page size, 1 to 100 (API default 20).
    pub limit: Option<u32>,
}

// ---- errors -------------------------------------------------------------------

/// Why an identifier cannot go into a URL path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdProblem {
    /// The id is empty.
    #[error("is empty")]
    Empty,
    /// The id is `.` or contains `..`, which a server or proxy may resolve as
    /// a path step.
    #[error("is or contains a dot segment")]
    DotSegment,
    /// The id has a character that is not a plain path-segment character
    /// (`/`, `?`, `#`, `%`, whitespace, a control or non-ASCII character, ...).
    #[error("contains {0:?}")]
    Char(char),
}

/// A request that cannot be built from the given arguments.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// An identifier that goes into the URL path is unsafe there.
    #[error("invalid {what} {id:?}: {problem}")]
    InvalidId {
        /// Which identifier, e.g. `batch id`.
        what: &'static str,
        /// The identifier as given.
        id: String,
        /// What is wrong with it.
        problem: IdProblem,
    },
    /// A parameter is outside the spec's limits.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// A multipart boundary is not acceptable.
    #[error("invalid multipart boundary {boundary:?}")]
    InvalidBoundary {
        /// The boundary as given.
        boundary: String,
    },
    /// The multipart delimiter occurs in the file's content.
    #[error("the multipart boundary occurs in the file content; use another boundary")]
    BoundaryInContent,
    /// The provider does not accept the batch's completion window.
    #[error("completion window {window:?} is not accepted here (allowed: {allowed})")]
    WindowNotAccepted {
        /// The window asked for.
        window: String,
        /// The windows the provider accepts, in words.
        allowed: String,
    },
    /// A URL the server named (Anthropic's `results_url`) is not on the
    /// configured base URL's origin: the key is never sent elsewhere.
    #[error("refused to send the key to {url:?}: it is not on the configured origin {origin:?}")]
    ForeignOrigin {
        /// The URL as the server sent it.
        url: String,
        /// The configured base URL's scheme, host and port.
        origin: String,
    },
    /// Encoding failed although the inputs were checked; not expected.
    #[error("cannot build the request: {detail}")]
    Build {
        /// What failed.
        detail: String,
    },
}

/// Checks that `id` is a plain URL path segment: not empty, not a dot
/// segment, only RFC 3986 `pchar`s without percent signs (ASCII letters,
/// digits, `-._~!$&'()*+,;=:@`).
///
/// # Errors
/// [`RequestError::InvalidId`] naming `what` and the [`IdProblem`].
pub fn validate_id(what: &'static str, id: &str) -> Result<(), RequestError> {
    let fail = |problem| {
        Err(RequestError::InvalidId {
            what,
            id: id.to_owned(),
            problem,
        })
    };
    if id.is_empty() {
        return fail(IdProblem::Empty);
    }
    if let Some(c) = id.chars().find(|&c| !is_segment_char(c)) {
        return fail(IdProblem::Char(c));
    }
    if id == "." || id.contains("..") {
        return fail(IdProblem::DotSegment);
    }
    Ok(())
}

fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c)
}

// ---- builders -------------------------------------------------------------------

pub(crate) const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Builds a request to `base + path_and_query` with the common headers.
pub(crate) fn request(
    api: &ApiBase,
    method: Method,
    path_and_query: &str,
    accept: HeaderValue,
    body: Outgoing,
) -> Result<Request<Outgoing>, RequestError> {
    let mut uri = format!("{}{}", api.base, path_and_query);
    if !api.query.is_empty() {
        uri.push(if path_and_query.contains('?') {
            '&'
        } else {
            '?'
        });
        uri.push_str(&api.query);
    }
    let uri = Uri::try_from(uri.as_str()).map_err(|e| RequestError::Build {
        detail: format!("uri {uri:?}: {e}"),
    })?;
    let len = body.len();
    let has_body = !matches!(body, Outgoing::Empty);
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    headers.clone_from(&api.headers);
    headers.insert(ACCEPT, accept);
    if has_body {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(req)
}

/// Percent-encodes `value` for a query string: everything but ASCII letters,
/// digits and `-._~` is escaped, UTF-8 byte by byte.
fn push_encoded(out: &mut String, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
}

pub(crate) fn push_param(out: &mut String, key: &str, value: &str) {
    out.push(if out.contains('?') { '&' } else { '?' });
    out.push_str(key);
    out.push('=');
    push_encoded(out, value);
}

fn check_after(after: Option<&str>) -> Result<(), RequestError> {
    match after {
        Some("") => Err(ParamError::Empty { param: "after" }.into()),
        _ => Ok(()),
    }
}

/// The multipart envelope around the file's bytes: `(head, tail)`.
fn multipart_envelope(api: &ApiBase, upload: &UploadFile) -> Result<(Bytes, Bytes), RequestError> {
    if upload.filename.is_empty() {
        return Err(ParamError::Empty { param: "filename" }.into());
    }
    // The provider's default expiry applies when the caller sets none.
    let expires_after = upload.expires_after.clone().or_else(|| {
        api.provider
            .file_expires_after
            .map(ExpiresAfter::after_creation)
    });
    if let Some(expires) = &expires_after {
        expires.validate("expires_after.seconds")?;
    }
    let b = upload.boundary.as_str();
    let mut head = String::new();
    let mut field = |name: &str, value: &str| {
        head.push_str(&format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    };
    field("purpose", upload.purpose.as_str());
    if let Some(expires) = &expires_after {
        field("expires_after[anchor]", expires.anchor.as_str());
        field("expires_after[seconds]", &expires.seconds.to_string());
    }
    // Quotes and line breaks in the file name are escaped as browsers do
    // (WHATWG multipart/form-data encoding).
    let filename = upload
        .filename
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    head.push_str(&format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/jsonl\r\n\r\n"
    ));
    let tail = format!("\r\n--{b}--\r\n");
    Ok((Bytes::from(head), Bytes::from(tail)))
}

fn multipart_request(
    api: &ApiBase,
    upload: &UploadFile,
    body: Outgoing,
) -> Result<Request<Outgoing>, RequestError> {
    let content_type = HeaderValue::try_from(format!(
        "multipart/form-data; boundary={}",
        upload.boundary.as_str()
    ))
    .map_err(|e| RequestError::Build {
        detail: format!("content-type: {e}"),
    })?;
    let mut req = request(api, Method::POST, "/files", JSON, body)?;
    req.headers_mut().insert(CONTENT_TYPE, content_type);
    Ok(req)
}

/// `POST /files`: uploads shard `shard` as a multipart form (API notes §2,
/// createFile; §3).
///
/// The form has a `purpose` part, the `expires_after[anchor]` and
/// `expires_after[seconds]` parts when set, then the `file` part with the
/// file name and `Content-Type: application/jsonl`. The body is
/// [`Outgoing::Multipart`]: the transport streams `head`, the shard's bytes
/// and `tail`, and `Content-Length` is exact.
///
/// # Errors
/// [`RequestError::Param`] if the file name is empty or `expires_after` is
/// out of range; [`RequestError::Build`] if the length overflows.
pub fn upload_file(
    api: &ApiBase,
    upload: &UploadFile,
    shard: ShardRef,
) -> Result<Request<Outgoing>, RequestError> {
    let (head, tail) = multipart_envelope(api, upload)?;
    let len = (head.len() as u64)
        .checked_add(shard.len)
        .and_then(|n| n.checked_add(tail.len() as u64))
        .ok_or_else(|| RequestError::Build {
            detail: "body length overflows u64".to_owned(),
        })?;
    multipart_request(
        api,
        upload,
        Outgoing::Multipart {
            head,
            shard,
            tail,
            len,
        },
    )
}

/// `POST /files` for content held in memory: the same form as
/// [`upload_file`], as one [`Outgoing::Bytes`] body.
///
/// # Errors
/// As [`upload_file`], plus [`RequestError::BoundaryInContent`] if the
/// multipart delimiter occurs in `content`.
pub fn upload_file_bytes(
    api: &ApiBase,
    upload: &UploadFile,
    content: &[u8],
) -> Result<Request<Outgoing>, RequestError> {
    let delimiter = format!("\r\n--{}", upload.boundary.as_str());
    // The first part's delimiter needs no leading CRLF, so also check the start.
    let at_start = content.starts_with(&delimiter.as_bytes()[2..]);
    if at_start || memchr::memmem::find(content, delimiter.as_bytes()).is_some() {
        return Err(RequestError::BoundaryInContent);
    }
    let (head, tail) = multipart_envelope(api, upload)?;
    let mut body = Vec::with_capacity(head.len() + content.len() + tail.len());
    body.extend_from_slice(&head);
    body.extend_from_slice(content);
    body.extend_from_slice(&tail);
    multipart_request(api, upload, Outgoing::Bytes(Bytes::from(body)))
}

/// `GET /files/{file_id}` (API notes §2, retrieveFile).
///
/// # Errors
/// [`RequestError::InvalidId`] if `file_id` is not a plain path segment.
pub fn retrieve_file(api: &ApiBase, file_id: &str) -> Result<Request<Outgoing>, RequestError> {
    validate_id("file id", file_id)?;
    request(
        api,
        Method::GET,
        &format!("/files/{file_id}"),
        JSON,
        Outgoing::Empty,
    )
}

/// `DELETE /files/{file_id}` (API notes §2, deleteFile).
///
/// # Errors
/// [`RequestError::InvalidId`] if `file_id` is not a plain path segment.
pub fn delete_file(api: &ApiBase, file_id: &str) -> Result<Request<Outgoing>, RequestError> {
    validate_id("file id", file_id)?;
    request(
        api,
        Method::DELETE,
        &format!("/files/{file_id}"),
        JSON,
        Outgoing::Empty,
    )
}

/// `GET /files/{file_id}/content` (API notes §2, downloadFile): the raw
/// file, e.g. a batch's JSONL output. Read the body as bytes, never as one
/// JSON document (API notes §9.4).
///
/// With `resume_from = Some(n)`, asks for the bytes from offset `n` on
/// (`Range: bytes=n-`), to continue a cut download. A server that ignores
/// ranges answers `200` with the whole file instead of `206`; the caller must
/// check the status before appending.
///
/// # Errors
/// [`RequestError::InvalidId`] if `file_id` is not a plain path segment.
pub fn file_content(
    api: &ApiBase,
    file_id: &str,
    resume_from: Option<u64>,
) -> Result<Request<Outgoing>, RequestError> {
    validate_id("file id", file_id)?;
    let accept = HeaderValue::from_static("application/binary");
    let mut req = request(
        api,
        Method::GET,
        &format!("/files/{file_id}/content"),
        accept,
        Outgoing::Empty,
    )?;
    if let Some(offset) = resume_from {
        let range =
            HeaderValue::try_from(format!("bytes={offset}-")).map_err(|e| RequestError::Build {
                detail: format!("range: {e}"),
            })?;
        req.headers_mut().insert(RANGE, range);
    }
    Ok(req)
}

/// `GET /files` with query parameters (API notes §2, listFiles).
///
/// # Errors
/// [`RequestError::Param`] if `limit` is not in 1..=10,000 or `after` is empty.
pub fn list_files(api: &ApiBase, query: &ListFiles) -> Result<Request<Outgoing>, RequestError> {
    check_after(query.after.as_deref())?;
    let mut path = String::from("/files");
    if let Some(purpose) = &query.purpose {
        push_param(&mut path, "purpose", purpose.as_str());
    }
    if let Some(limit) = query.limit {
        check_range("limit", u64::from(limit), 1, 10_000)?;
        push_param(&mut path, "limit", &limit.to_string());
    }
    if let Some(order) = query.order {
        push_param(&mut path, "order", order.as_str());
    }
    if let Some(after) = &query.after {
        push_param(&mut path, "after", after);
    }
    request(api, Method::GET, &path, JSON, Outgoing::Empty)
}

/// `POST /batches` with a JSON [`CreateBatch`] body (API notes §2,
/// createBatch; §4).
///
/// # Errors
/// [`RequestError::Param`] if [`CreateBatch::validate`] fails;
/// [`RequestError::WindowNotAccepted`] if the provider does not take the
/// completion window ([`Provider::accepts_window`]).
pub fn create_batch(api: &ApiBase, body: &CreateBatch) -> Result<Request<Outgoing>, RequestError> {
    body.validate()?;
    if !api.provider.accepts_window(&body.completion_window) {
        return Err(RequestError::WindowNotAccepted {
            window: body.completion_window.as_str().to_owned(),
            allowed: api.provider.allowed_windows(),
        });
    }
    let styled = api.provider.url_style.apply(body.endpoint.as_str());
    let json = if styled == body.endpoint.as_str() {
        serde_json::to_vec(body)
    } else {
        // Azure's dated API names the endpoint without `/v1`.
        let mut body = body.clone();
        body.endpoint = super::Endpoint::parse(styled);
        serde_json::to_vec(&body)
    }
    .map_err(|e| RequestError::Build {
        detail: format!("json: {e}"),
    })?;
    let mut req = request(
        api,
        Method::POST,
        "/batches",
        JSON,
        Outgoing::Json(Bytes::from(json)),
    )?;
    req.headers_mut().insert(CONTENT_TYPE, JSON);
    Ok(req)
}

/// `GET /batches/{batch_id}` (API notes §2, retrieveBatch).
///
/// # Errors
/// [`RequestError::InvalidId`] if `batch_id` is not a plain path segment.
pub fn retrieve_batch(api: &ApiBase, batch_id: &str) -> Result<Request<Outgoing>, RequestError> {
    retrieve_batch_at(api, "/batches", batch_id)
}

/// `GET {batches}/{batch_id}`: a batch read under a protocol's batches
/// path (`/batches`, or Anthropic's `/v1/messages/batches`).
pub(crate) fn retrieve_batch_at(
    api: &ApiBase,
    batches: &str,
    batch_id: &str,
) -> Result<Request<Outgoing>, RequestError> {
    validate_id("batch id", batch_id)?;
    request(
        api,
        Method::GET,
        &format!("{batches}/{batch_id}"),
        JSON,
        Outgoing::Empty,
    )
}

/// `POST /batches/{batch_id}/cancel` (API notes §2, cancelBatch): no body,
/// `Content-Length: 0`.
///
/// # Errors
/// [`RequestError::InvalidId`] if `batch_id` is not a plain path segment.
pub fn cancel_batch(api: &ApiBase, batch_id: &str) -> Result<Request<Outgoing>, RequestError> {
    cancel_batch_at(api, "/batches", batch_id)
}

/// `POST {batches}/{batch_id}/cancel`, no body, `Content-Length: 0`: a
/// cancel under a protocol's batches path.
pub(crate) fn cancel_batch_at(
    api: &ApiBase,
    batches: &str,
    batch_id: &str,
) -> Result<Request<Outgoing>, RequestError> {
    validate_id("batch id", batch_id)?;
    let mut req = request(
        api,
        Method::POST,
        &format!("{batches}/{batch_id}/cancel"),
        JSON,
        Outgoing::Empty,
    )?;
    req.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(0u64));
    Ok(req)
}

/// `GET /batches` with query parameters (API notes §2, listBatches).
///
/// # Errors
/// [`RequestError::Param`] if `limit` is not in 1..=100 or `after` is empty.
pub fn list_batches(api: &ApiBase, query: &ListBatches) -> Result<Request<Outgoing>, RequestError> {
    check_after(query.after.as_deref())?;
    let mut path = String::from("/batches");
    if let Some(after) = &query.after {
        push_param(&mut path, "after", after);
    }
    if let Some(limit) = query.limit {
        check_range("limit", u64::from(limit), 1, 100)?;
        push_param(&mut path, "limit", &limit.to_string());
    }
    request(api, Method::GET, &path, JSON, Outgoing::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_normalisation() {
        let ok = |url: &str| normalise_base_url(url).expect(url).0;
        assert_eq!(ok("https://api.openai.com/v1"), "https://api.openai.com/v1");
        assert_eq!(
            ok("https://api.openai.com/v1/"),
            "https://api.openai.com/v1"
        );
        assert_eq!(ok("HTTP://127.0.0.1:4010"), "http://127.0.0.1:4010");
        assert_eq!(ok("http://127.0.0.1:4010/"), "http://127.0.0.1:4010");
        assert_eq!(
            ok("http://[::1]:8080/proxy/openai/v1//"),
            "http://[::1]:8080/proxy/openai/v1"
        );
    }

    #[test]
    fn bad_base_urls() {
        for (url, reason) in [
            ("", "it must start with http:// or https://"),
            ("https://", "not a valid absolute url"),
            (
                "api.openai.com/v1",
                "it must start with http:// or https://",
            ),
            ("ftp://example.com/v1", "the scheme must be http or https"),
            (
                "https://user:pw@example.com/v1",
                "credentials in the url are not supported",
            ),
            (
                "https://example.com/v1#top",
                "a base url cannot have a fragment",
            ),
            ("https://exa mple.com/v1", "not a valid absolute url"),
        ] {
            assert_eq!(
                normalise_base_url(url),
                Err(ConfigError::InvalidBaseUrl {
                    url: url.into(),
                    reason
                }),
                "{url}"
            );
        }
    }

    #[test]
    fn base_url_queries_are_kept() {
        assert_eq!(
            normalise_base_url("https://r.openai.azure.com/openai/?api-version=2024-10-21"),
            Ok((
                "https://r.openai.azure.com/openai".to_owned(),
                Some("api-version=2024-10-21".to_owned())
            ))
        );
        assert_eq!(
            normalise_base_url("https://h/v1?"),
            Ok(("https://h/v1".to_owned(), None))
        );
    }

    #[test]
    fn config_errors() {
        assert_eq!(
            ApiBase::new(&ApiConfig::new("")).err(),
            Some(ConfigError::EmptyApiKey)
        );
        assert_eq!(
            ApiBase::new(&ApiConfig::new("sk-\nx")).err(),
            Some(ConfigError::InvalidApiKey)
        );
        assert_eq!(
            ApiBase::new(&ApiConfig::new("sk").with_project("p\r\n")).err(),
            Some(ConfigError::InvalidHeader {
                header: "OpenAI-Project"
            })
        );
        let e = ConfigError::InvalidApiKey.to_string();
        assert!(e.starts_with("the api key"), "{e}");
    }

    #[test]
    fn boundary_from_seed_is_deterministic_and_valid() {
        let a = Boundary::from_seed(7);
        assert_eq!(a, Boundary::from_seed(7));
        assert_ne!(a, Boundary::from_seed(8));
        assert_eq!(Boundary::new(a.as_str()), Ok(a.clone()));
        assert!(a.as_str().len() <= Boundary::MAX_LEN);
        assert_eq!(a.as_str().len(), "openai-batch-boundary-".len() + 32);
    }

    #[test]
    fn boundary_rules() {
        assert!(Boundary::new("abc'+-._XYZ09").is_ok());
        assert!(Boundary::new("x".repeat(70)).is_ok());
        for bad in [
            String::new(),
            "x".repeat(71),
            "a b".into(),
            "a;b".into(),
            "a\"b".into(),
        ] {
            assert_eq!(
                Boundary::new(bad.clone()),
                Err(RequestError::InvalidBoundary { boundary: bad })
            );
        }
    }

    #[test]
    fn query_encoding() {
        let mut s = String::new();
        push_encoded(&mut s, "a b&c=d/é~-._");
        assert_eq!(s, "a%20b%26c%3Dd%2F%C3%A9~-._");
        let mut path = String::from("/x");
        push_param(&mut path, "a", "1");
        push_param(&mut path, "b", "2");
        assert_eq!(path, "/x?a=1&b=2");
    }

    #[test]
    fn id_rules() {
        assert_eq!(validate_id("file id", "file-abc_123"), Ok(()));
        assert_eq!(validate_id("file id", "a.b"), Ok(()));
        let problem = |id: &str| match validate_id("file id", id) {
            Err(RequestError::InvalidId { problem, .. }) => problem,
            other => panic!("{id:?}: {other:?}"),
        };
        assert_eq!(problem(""), IdProblem::Empty);
        assert_eq!(problem("."), IdProblem::DotSegment);
        assert_eq!(problem(".."), IdProblem::DotSegment);
        assert_eq!(problem("a..b"), IdProblem::DotSegment);
        for (id, c) in [
            ("a/b", '/'),
            ("a?b", '?'),
            ("a#b", '#'),
            ("a%2Fb", '%'),
            ("a b", ' '),
            ("a\tb", '\t'),
            ("a\u{7f}", '\u{7f}'),
            ("fïle", 'ï'),
            ("a\\b", '\\'),
            ("a\"b", '"'),
        ] {
            assert_eq!(problem(id), IdProblem::Char(c), "{id:?}");
        }
    }

    #[test]
    fn outgoing_len() {
        assert_eq!(Outgoing::Empty.len(), 0);
        assert!(Outgoing::Empty.is_empty());
        assert_eq!(Outgoing::Json(Bytes::from_static(b"{}")).len(), 2);
        let m = Outgoing::Multipart {
            head: Bytes::new(),
            shard: ShardRef { index: 0, len: 9 },
            tail: Bytes::new(),
            len: 9,
        };
        assert_eq!(m.len(), 9);
    }
}
