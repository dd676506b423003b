//! Provider settings: what differs between services that speak the Files +
//! Batches protocol (OpenAI, Azure OpenAI, Groq, a proxy).
//!
//! A [`Provider`] is plain data carried by [`ApiConfig`].
//! The request builders read it (how the key is sent, extra headers, query
//! parameters on every request, a default input file expiry) and the job's
//! settings checks read it (the completion windows the service accepts, its
//! per-file limits). [`Provider::openai`] is the default and describes
//! OpenAI's own API, so nothing changes for a caller who never sets one.
//!
//! Sources for each preset are listed in the "Providers" section of the
//! repository's README.

use std::fmt;

use crate::api::{ApiConfig, CompletionWindow};
use crate::job::ShardLimits;

/// How the API key travels.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthScheme {
    /// `Authorization: Bearer <key>`: OpenAI, Groq, and Azure OpenAI with a
    /// Microsoft Entra ID token.
    Bearer,
    /// The key as the whole value of the named header, e.g. Azure OpenAI's
    /// `api-key`.
    Header(String),
}

/// Which family of service the settings describe. It names the service in
/// messages; every behaviour comes from the other fields.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI's API (`https://api.openai.com/v1`).
    OpenAi,
    /// Azure OpenAI, either the v1 API (`.../openai/v1`) or a dated
    /// `api-version` (`.../openai?api-version=...`).
    Azure,
    /// Groq's OpenAI-compatible API (`https://api.groq.com/openai/v1`).
    Groq,
    /// Any other OpenAI-compatible service, set up by hand.
    Custom,
    /// Anthropic's Message Batches API (`https://api.anthropic.com`), a
    /// protocol of its own ([`Protocol::AnthropicMessageBatches`]).
    Anthropic,
}

/// Which wire protocol a service speaks for batches. The job's phases
/// follow it: OpenAI's uploads a file and creates a batch from it;
/// Anthropic's sends the requests inline in the create body (see
/// [`crate::anthropic`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// OpenAI's Files and Batches API (OpenAI, Azure OpenAI, Groq, and
    /// OpenAI-compatible services).
    #[default]
    OpenAiFiles,
    /// Anthropic's Message Batches API.
    AnthropicMessageBatches,
}

impl ProviderKind {
    /// The lower-case name used on the command line: `openai`, `azure`,
    /// `groq` or `custom`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Azure => "azure",
            ProviderKind::Groq => "groq",
            ProviderKind::Custom => "custom",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

/// What a service expects beyond OpenAI's wire format, as data.
///
/// Build one with a preset ([`openai`](Self::openai), [`azure`](Self::azure),
/// [`azure_dated`](Self::azure_dated), [`groq`](Self::groq),
/// [`custom`](Self::custom)) and adjust the public fields, then set it with
/// [`ApiConfig::with_provider`](crate::api::ApiConfig::with_provider).
///
/// Its `Debug` shows the values of credential headers as `****`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Provider {
    /// Which service this is (for messages).
    pub kind: ProviderKind,
    /// How the key is sent.
    pub auth: AuthScheme,
    /// Headers sent with every request, `(name, value)`. Values of headers
    /// whose names suggest a credential (`authorization`, `*key*`,
    /// `*token*`, `*secret*`) are kept out of `Debug` output and redacted
    /// from server text like the key.
    pub headers: Vec<(String, String)>,
    /// Query parameters added to every request, `(name, value)`, encoded by
    /// the builders. Azure's dated API needs `api-version` here.
    pub query: Vec<(String, String)>,
    /// The most requests one input file may hold.
    pub max_requests_per_file: u64,
    /// The most bytes one input file may hold.
    pub max_bytes_per_file: u64,
    /// The completion windows the service accepts.
    pub windows: Windows,
    /// Seconds after upload an input file expires when the caller sets no
    /// expiry of its own (sent as `expires_after`); `None` sends none.
    pub file_expires_after: Option<u64>,
    /// The batch protocol the service speaks.
    pub protocol: Protocol,
    /// How request lines' `url` and a batch's `endpoint` are written.
    pub url_style: UrlStyle,
}

/// How request lines' `url` and a batch's `endpoint` name the endpoint.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UrlStyle {
    /// `/v1/chat/completions`: OpenAI, Azure OpenAI's v1 API, Groq.
    #[default]
    Versioned,
    /// `/chat/completions`: Azure OpenAI's dated API versions, whose batch
    /// guide writes input lines and the batch's `endpoint` without `/v1`.
    Unversioned,
}

impl UrlStyle {
    /// `url` (`/v1/chat/completions`) as this style writes it.
    pub fn apply(self, url: &str) -> &str {
        match self {
            UrlStyle::Versioned => url,
            UrlStyle::Unversioned => url
                .strip_prefix("/v1")
                .filter(|rest| rest.starts_with('/'))
                .unwrap_or(url),
        }
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| {
                let shown = if Provider::is_secret_header(n) {
                    "****"
                } else {
                    v.as_str()
                };
                (n.as_str(), shown)
            })
            .collect();
        f.debug_struct("Provider")
            .field("kind", &self.kind)
            .field("auth", &self.auth)
            .field("headers", &headers)
            .field("query", &self.query)
            .field("max_requests_per_file", &self.max_requests_per_file)
            .field("max_bytes_per_file", &self.max_bytes_per_file)
            .field("windows", &self.windows)
            .field("file_expires_after", &self.file_expires_after)
            .field("url_style", &self.url_style)
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl Default for Provider {
    /// OpenAI's settings ([`Provider::openai`]).
    fn default() -> Self {
        Provider::openai()
    }
}

/// 200 MiB, the input file size the Batch API accepts.
const MAX_FILE_BYTES: u64 = 200 * 1024 * 1024;

impl Provider {
    /// The `api-version` query parameter of Azure OpenAI's dated API.
    pub const API_VERSION: &'static str = "api-version";
    /// The header Azure OpenAI reads the key from.
    pub const AZURE_KEY_HEADER: &'static str = "api-key";

    /// OpenAI: Bearer auth, 50,000 requests and 200 MiB per file, only the
    /// `24h` window, files keep OpenAI's default expiry (30 days).
    pub fn openai() -> Provider {
        Provider {
            kind: ProviderKind::OpenAi,
            auth: AuthScheme::Bearer,
            headers: Vec::new(),
            query: Vec::new(),
            max_requests_per_file: 50_000,
            max_bytes_per_file: MAX_FILE_BYTES,
            windows: Windows::Only(vec![CompletionWindow::Hours24]),
            file_expires_after: None,
            url_style: UrlStyle::Versioned,
            protocol: Protocol::OpenAiFiles,
        }
    }

    /// The header Anthropic reads the key from.
    pub const ANTHROPIC_KEY_HEADER: &'static str = "x-api-key";
    /// The header naming Anthropic's API version.
    pub const ANTHROPIC_VERSION_HEADER: &'static str = "anthropic-version";
    /// The header naming Anthropic beta features (optional; add it with
    /// [`with_header`](Self::with_header)).
    pub const ANTHROPIC_BETA_HEADER: &'static str = "anthropic-beta";

    /// Anthropic's Message Batches API (base URL `https://api.anthropic.com`,
    /// without `/v1`): the key in `x-api-key`, `anthropic-version: 2023-06-01`
    /// on every request, 100,000 requests and 256 MB of create body per
    /// batch, no completion window to choose (a batch ends within 24 hours)
    /// and no files (<https://docs.anthropic.com/en/api/creating-message-batches>).
    /// Add `anthropic-beta` with [`with_header`](Self::with_header).
    pub fn anthropic() -> Provider {
        Provider {
            kind: ProviderKind::Anthropic,
            auth: AuthScheme::Header(Self::ANTHROPIC_KEY_HEADER.to_owned()),
            headers: vec![(
                Self::ANTHROPIC_VERSION_HEADER.to_owned(),
                crate::anthropic::DEFAULT_VERSION.to_owned(),
            )],
            max_requests_per_file: crate::anthropic::MAX_REQUESTS,
            max_bytes_per_file: crate::anthropic::MAX_BODY_BYTES,
            protocol: Protocol::AnthropicMessageBatches,
            ..Provider::openai()
        }
    }

    /// Sets the `anthropic-version` header (replacing the default).
    #[must_use]
    pub fn with_anthropic_version(mut self, version: impl Into<String>) -> Provider {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(Self::ANTHROPIC_VERSION_HEADER));
        self.headers
            .push((Self::ANTHROPIC_VERSION_HEADER.to_owned(), version.into()));
        self
    }

    /// Azure OpenAI's v1 API (base URL `https://RESOURCE.openai.azure.com/openai/v1`):
    /// the key in the `api-key` header, 100,000 requests and 200 MiB per
    /// file, only `24h`, and input files that expire after 30 days (Azure
    /// keeps files without an expiry, and allows only 500 of those).
    pub fn azure() -> Provider {
        Provider {
            kind: ProviderKind::Azure,
            auth: AuthScheme::Header(Self::AZURE_KEY_HEADER.to_owned()),
            max_requests_per_file: 100_000,
            file_expires_after: Some(30 * 24 * 3600),
            ..Provider::openai()
        }
    }

    /// Azure OpenAI's dated API (base URL `https://RESOURCE.openai.azure.com/openai`):
    /// as [`azure`](Self::azure), plus `api-version=<api_version>` on every
    /// request, and endpoints without `/v1` in request lines and in the
    /// batch's `endpoint` (`/chat/completions`, [`UrlStyle::Unversioned`]).
    pub fn azure_dated(api_version: impl Into<String>) -> Provider {
        let mut p = Provider::azure();
        p.query
            .push((Self::API_VERSION.to_owned(), api_version.into()));
        p.url_style = UrlStyle::Unversioned;
        p
    }

    /// Groq: Bearer auth, 50,000 requests and 200 MiB per file, and
    /// completion windows from `24h` to `7d`.
    pub fn groq() -> Provider {
        Provider {
            kind: ProviderKind::Groq,
            windows: Windows::Hours {
                min: 24,
                max: 7 * 24,
            },
            ..Provider::openai()
        }
    }

    /// Any other OpenAI-compatible service: Bearer auth, OpenAI's file
    /// limits, and any well-formed completion window (the service refuses
    /// the ones it does not take).
    pub fn custom() -> Provider {
        Provider {
            kind: ProviderKind::Custom,
            windows: Windows::Hours {
                min: 1,
                max: u64::MAX,
            },
            ..Provider::openai()
        }
    }

    /// Adds a header sent with every request.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Provider {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a query parameter sent with every request.
    #[must_use]
    pub fn with_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Provider {
        self.query.push((name.into(), value.into()));
        self
    }

    /// The `api-version` this provider sends, if any.
    pub fn api_version(&self) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == Self::API_VERSION)
            .map(|(_, v)| v.as_str())
    }

    /// The planner's per-shard limits for this service: its requests and
    /// bytes per file, and the API's embedding inputs per batch.
    pub fn shard_limits(&self) -> ShardLimits {
        ShardLimits::new(self.max_requests_per_file, self.max_bytes_per_file)
    }

    /// Whether the service accepts `window` (see [`Windows`]).
    pub fn accepts_window(&self, window: &CompletionWindow) -> bool {
        match &self.windows {
            Windows::Only(list) => list.contains(window),
            Windows::Hours { min, max } => {
                window_hours(window.as_str()).is_some_and(|h| (*min..=*max).contains(&h))
            }
        }
    }

    /// The accepted windows in words, e.g. `24h` or `24h to 168h`.
    pub fn allowed_windows(&self) -> String {
        match &self.windows {
            Windows::Only(list) => list
                .iter()
                .map(CompletionWindow::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            Windows::Hours { min, max: u64::MAX } => format!("{min}h or more"),
            Windows::Hours { min, max } => format!("{min}h to {max}h"),
        }
    }

    /// Whether `name` is a header whose value is a credential.
    pub(crate) fn is_secret_header(name: &str) -> bool {
        let n = name.to_ascii_lowercase();
        n == "authorization" || n.contains("key") || n.contains("token") || n.contains("secret")
    }
}

// ---- presets ------------------------------------------------------------------

impl ProviderKind {
    /// Reads `openai`, `azure`, `groq`, `custom` or `anthropic` (any case).
    pub fn parse(name: &str) -> Option<ProviderKind> {
        [
            ProviderKind::OpenAi,
            ProviderKind::Azure,
            ProviderKind::Groq,
            ProviderKind::Custom,
            ProviderKind::Anthropic,
        ]
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

/// Groq's OpenAI-compatible base URL.
pub const GROQ_BASE_URL: &str = "https://api.groq.com/openai/v1";

impl ApiConfig {
    /// Azure OpenAI's v1 API on `endpoint` (the resource URL, e.g.
    /// `https://RESOURCE.openai.azure.com`; `/openai/v1` is added unless it
    /// is there), the key in the `api-key` header ([`Provider::azure`]).
    pub fn azure(endpoint: &str, api_key: impl Into<crate::api::ApiKey>) -> ApiConfig {
        ApiConfig::new(api_key)
            .with_base_url(azure_base(endpoint, "/openai/v1"))
            .with_provider(Provider::azure())
    }

    /// Azure OpenAI's dated API on `endpoint` (`/openai` is added unless it
    /// is there), with `api-version=<api_version>` on every request
    /// ([`Provider::azure_dated`]).
    pub fn azure_dated(
        endpoint: &str,
        api_key: impl Into<crate::api::ApiKey>,
        api_version: impl Into<String>,
    ) -> ApiConfig {
        ApiConfig::new(api_key)
            .with_base_url(azure_base(endpoint, "/openai"))
            .with_provider(Provider::azure_dated(api_version))
    }

    /// Groq's API ([`GROQ_BASE_URL`], [`Provider::groq`]).
    pub fn groq(api_key: impl Into<crate::api::ApiKey>) -> ApiConfig {
        ApiConfig::new(api_key)
            .with_base_url(GROQ_BASE_URL)
            .with_provider(Provider::groq())
    }

    /// Anthropic's Message Batches API ([`crate::anthropic::DEFAULT_BASE_URL`],
    /// [`Provider::anthropic`]). Set another base (without `/v1`) with
    /// [`with_base_url`](Self::with_base_url).
    pub fn anthropic(api_key: impl Into<crate::api::ApiKey>) -> ApiConfig {
        ApiConfig::new(api_key)
            .with_base_url(crate::anthropic::DEFAULT_BASE_URL)
            .with_provider(Provider::anthropic())
    }

    /// Any other OpenAI-compatible service at `base_url` (including its
    /// version path), Bearer auth ([`Provider::custom`]).
    pub fn custom(
        base_url: impl Into<String>,
        api_key: impl Into<crate::api::ApiKey>,
    ) -> ApiConfig {
        ApiConfig::new(api_key)
            .with_base_url(base_url)
            .with_provider(Provider::custom())
    }
}

/// `endpoint` without a trailing slash, ending in `suffix` (`/openai/v1`
/// or `/openai`). An endpoint that already names a path under `/openai` is
/// kept as given.
fn azure_base(endpoint: &str, suffix: &str) -> String {
    let trimmed = endpoint.trim().trim_end_matches('/');
    if trimmed.ends_with(suffix) {
        trimmed.to_owned()
    } else if suffix == "/openai/v1" && trimmed.ends_with("/openai") {
        format!("{trimmed}/v1")
    } else {
        format!("{trimmed}{suffix}")
    }
}

/// A setting the environment lacks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// A variable the provider needs is unset or empty.
    #[error("{var} is not set")]
    Missing {
        /// The variable, e.g. `AZURE_OPENAI_API_KEY`.
        var: &'static str,
    },
}

/// The API settings of `kind`, read through `var` (which the transport or
/// the command line points at the process environment) under the names
/// each ecosystem's official SDK reads:
///
/// | provider | key | base URL | other |
/// |---|---|---|---|
/// | `openai` | `OPENAI_API_KEY` | `OPENAI_BASE_URL` | `OPENAI_ORG_ID`, `OPENAI_PROJECT_ID` |
/// | `azure` | `AZURE_OPENAI_API_KEY` (`api-key` header), or `AZURE_OPENAI_AD_TOKEN`, a Microsoft Entra ID token sent as Bearer (it wins when both are set; it is not refreshed: see [`crate::credential`] for tokens that expire) | `AZURE_OPENAI_ENDPOINT` (required) | `OPENAI_API_VERSION`: a dated version (`2024-10-21`) selects the dated API; unset, `v1`, `latest` or `preview` the v1 API |
/// | `groq` | `GROQ_API_KEY` | `GROQ_BASE_URL` (default [`GROQ_BASE_URL`]) | |
/// | `custom` | `OPENAI_API_KEY` | `OPENAI_BASE_URL` | |
/// | `anthropic` | `ANTHROPIC_API_KEY` | `ANTHROPIC_BASE_URL` (default [`crate::anthropic::DEFAULT_BASE_URL`]) | |
///
/// # Errors
/// [`EnvError::Missing`] naming the first required variable that is unset.
pub fn api_config_for(
    kind: ProviderKind,
    var: impl Fn(&str) -> Option<String>,
) -> Result<ApiConfig, EnvError> {
    let get = |name: &'static str| var(name).filter(|v| !v.trim().is_empty());
    let need = |name: &'static str| get(name).ok_or(EnvError::Missing { var: name });
    Ok(match kind {
        ProviderKind::OpenAi => {
            crate::job::api_config_from_env(&var).map_err(|_| EnvError::Missing {
                var: "OPENAI_API_KEY",
            })?
        }
        ProviderKind::Azure => {
            // A Microsoft Entra ID token wins over a key, as in openai-python.
            let token = get("AZURE_OPENAI_AD_TOKEN");
            let key = match &token {
                Some(t) => t.clone(),
                None => need("AZURE_OPENAI_API_KEY")?,
            };
            let endpoint = need("AZURE_OPENAI_ENDPOINT")?;
            let mut cfg = match get("OPENAI_API_VERSION") {
                Some(v) if is_dated_version(&v) => ApiConfig::azure_dated(&endpoint, key, v),
                _ => ApiConfig::azure(&endpoint, key),
            };
            if token.is_some() {
                cfg.provider.auth = AuthScheme::Bearer;
            }
            cfg
        }
        ProviderKind::Groq => {
            let cfg = ApiConfig::groq(need("GROQ_API_KEY")?);
            match get("GROQ_BASE_URL") {
                Some(base) => cfg.with_base_url(base),
                None => cfg,
            }
        }
        ProviderKind::Custom => {
            let key = need("OPENAI_API_KEY")?;
            let base = need("OPENAI_BASE_URL")?;
            ApiConfig::custom(base, key)
        }
        ProviderKind::Anthropic => {
            let cfg = ApiConfig::anthropic(need("ANTHROPIC_API_KEY")?);
            match get("ANTHROPIC_BASE_URL") {
                Some(base) => cfg.with_base_url(base),
                None => cfg,
            }
        }
    })
}

/// Whether `version` is an Azure dated API version (`2024-10-21`,
/// `2025-04-01-preview`) rather than the v1 API's `v1`/`latest`/`preview`.
pub fn is_dated_version(version: &str) -> bool {
    let v = version.trim();
    v.len() >= 10 && v.as_bytes()[..4].iter().all(u8::is_ascii_digit) && v.as_bytes()[4] == b'-'
}

/// The completion windows a service accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Windows {
    /// Exactly these values (OpenAI and Azure OpenAI take only `24h`).
    Only(Vec<CompletionWindow>),
    /// Any whole number of hours (`36h`) or days (`2d`) from `min` to `max`
    /// hours (Groq takes `24h` to `7d`).
    Hours {
        /// The shortest window, in hours.
        min: u64,
        /// The longest window, in hours.
        max: u64,
    },
}

/// The hours of a window written as `<n>h` or `<n>d`.
fn window_hours(s: &str) -> Option<u64> {
    if let Some(n) = s.strip_suffix('h') {
        n.parse().ok()
    } else {
        s.strip_suffix('d')
            .and_then(|n| n.parse::<u64>().ok())
            .and_then(|d| d.checked_mul(24))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_is_the_default_and_takes_only_24h() {
        let p = Provider::default();
        assert_eq!(p, Provider::openai());
        assert!(p.accepts_window(&CompletionWindow::Hours24));
        assert!(!p.accepts_window(&CompletionWindow::parse("48h")));
        // The API's enum is the string `24h`; the same span written in days is refused.
        assert!(!p.accepts_window(&CompletionWindow::parse("1d")));
        assert_eq!(p.allowed_windows(), "24h");
        assert_eq!(p.shard_limits().max_requests, 50_000);
    }

    #[test]
    fn groq_takes_24h_to_7d() {
        let p = Provider::groq();
        for ok in ["24h", "1d", "72h", "7d", "168h"] {
            assert!(p.accepts_window(&CompletionWindow::parse(ok)), "{ok}");
        }
        for bad in ["23h", "8d", "169h", "soon", "h", "-1d"] {
            assert!(!p.accepts_window(&CompletionWindow::parse(bad)), "{bad}");
        }
        assert_eq!(p.allowed_windows(), "24h to 168h");
    }

    #[test]
    fn azure_presets() {
        let v1 = Provider::azure();
        assert_eq!(v1.auth, AuthScheme::Header("api-key".into()));
        assert_eq!(v1.api_version(), None);
        assert_eq!(v1.shard_limits().max_requests, 100_000);
        assert_eq!(v1.file_expires_after, Some(2_592_000));
        let dated = Provider::azure_dated("2024-10-21");
        assert_eq!(dated.api_version(), Some("2024-10-21"));
        assert_eq!(dated.auth, v1.auth);
    }

    #[test]
    fn custom_takes_any_well_formed_window() {
        let p = Provider::custom();
        assert!(p.accepts_window(&CompletionWindow::parse("1h")));
        assert!(p.accepts_window(&CompletionWindow::parse("30d")));
        assert!(!p.accepts_window(&CompletionWindow::parse("0h")));
        assert_eq!(p.allowed_windows(), "1h or more");
    }

    #[test]
    fn debug_hides_credential_headers() {
        let p = Provider::custom()
            .with_header("X-Api-Key", "hidden-value")
            .with_header("X-Team", "shown-value");
        let debug = format!("{p:?}");
        assert!(!debug.contains("hidden-value"), "{debug}");
        assert!(debug.contains("shown-value"), "{debug}");
    }

    #[test]
    fn presets_from_the_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let v1 = api_config_for(
            ProviderKind::Azure,
            env(&[
                ("AZURE_OPENAI_API_KEY", "az"),
                ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com/"),
            ]),
        )
        .expect("azure");
        assert_eq!(v1.base_url, "https://r.openai.azure.com/openai/v1");
        assert_eq!(v1.provider, Provider::azure());
        assert_eq!(v1.api_key.expose_secret(), "az");
        let dated = api_config_for(
            ProviderKind::Azure,
            env(&[
                ("AZURE_OPENAI_API_KEY", "az"),
                ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com"),
                ("OPENAI_API_VERSION", "2024-10-21"),
            ]),
        )
        .expect("azure dated");
        assert_eq!(dated.base_url, "https://r.openai.azure.com/openai");
        assert_eq!(dated.provider.api_version(), Some("2024-10-21"));
        let latest = api_config_for(
            ProviderKind::Azure,
            env(&[
                ("AZURE_OPENAI_API_KEY", "az"),
                ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com/openai"),
                ("OPENAI_API_VERSION", "preview"),
            ]),
        )
        .expect("azure v1");
        assert_eq!(latest.base_url, "https://r.openai.azure.com/openai/v1");
        let entra = api_config_for(
            ProviderKind::Azure,
            env(&[
                ("AZURE_OPENAI_API_KEY", "az"),
                ("AZURE_OPENAI_AD_TOKEN", "eyJ-token"),
                ("AZURE_OPENAI_ENDPOINT", "https://r.openai.azure.com"),
            ]),
        )
        .expect("azure entra");
        assert_eq!(entra.provider.auth, AuthScheme::Bearer);
        assert_eq!(entra.api_key.expose_secret(), "eyJ-token");
        assert_eq!(
            api_config_for(ProviderKind::Azure, env(&[("AZURE_OPENAI_API_KEY", "az")])).err(),
            Some(EnvError::Missing {
                var: "AZURE_OPENAI_ENDPOINT"
            })
        );
        let groq =
            api_config_for(ProviderKind::Groq, env(&[("GROQ_API_KEY", "gsk")])).expect("groq");
        assert_eq!(groq.base_url, GROQ_BASE_URL);
        assert_eq!(groq.provider, Provider::groq());
        assert_eq!(
            api_config_for(ProviderKind::Groq, env(&[("OPENAI_API_KEY", "sk")])).err(),
            Some(EnvError::Missing {
                var: "GROQ_API_KEY"
            })
        );
        let openai =
            api_config_for(ProviderKind::OpenAi, env(&[("OPENAI_API_KEY", "sk")])).expect("oa");
        assert_eq!(openai.base_url, ApiConfig::DEFAULT_BASE_URL);
        assert_eq!(openai.provider, Provider::openai());
        assert_eq!(
            api_config_for(ProviderKind::Custom, env(&[("OPENAI_API_KEY", "sk")])).err(),
            Some(EnvError::Missing {
                var: "OPENAI_BASE_URL"
            })
        );
        for (name, kind) in [
            ("openai", ProviderKind::OpenAi),
            ("Azure", ProviderKind::Azure),
            ("groq", ProviderKind::Groq),
            ("custom", ProviderKind::Custom),
        ] {
            assert_eq!(ProviderKind::parse(name), Some(kind));
        }
        assert_eq!(ProviderKind::parse("mistral"), None);
        assert!(is_dated_version("2025-04-01-preview"));
        assert!(!is_dated_version("v1"));
    }

    #[test]
    fn secret_header_names() {
        for n in [
            "Authorization",
            "api-key",
            "X-Api-Key",
            "x-auth-token",
            "Client-Secret",
        ] {
            assert!(Provider::is_secret_header(n), "{n}");
        }
        for n in ["x-request-source", "OpenAI-Project"] {
            assert!(!Provider::is_secret_header(n), "{n}");
        }
    }
}
