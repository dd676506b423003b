//! Plain settings shared by both transports' clients: how a client
//! connects, and a manual time source for tests.

use std::sync::Mutex;
use std::time::Duration;

use crate::api::{ApiBase, ApiConfig, ConfigError};
use crate::credential::{CredentialRefresh, CredentialSource};
use crate::job::types::{ExchangeLimits, JobConfig};
use crate::retry::RetryPolicy;
use crate::time::UnixMillis;

/// How a client connects (`batch_blocking::ClientConfig` and
/// `batch_async::ClientConfig` are this type). Both transports read every
/// field the same way.
///
/// ```
/// use std::time::Duration;
/// use batch_core::api::ApiConfig;
/// use batch_core::job::{ClientConfig, Proxy};
///
/// let mut config = ClientConfig::new(ApiConfig::new("sk-..."));
/// // Give up on an unreachable server after a minute, not a quarter hour.
/// config.retry.max_elapsed = Some(Duration::from_secs(60));
/// // Ignore HTTP_PROXY and friends.
/// config.proxy = Proxy::None;
/// config.user_agent_suffix = Some("my-app/1.2".into());
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Base URL, key, organization, project.
    pub api: ApiConfig,
    /// Connecting (TCP and TLS) may take this long (default 30 s).
    pub connect_timeout: Duration,
    /// One read or write may stall this long (default 5 min).
    pub io_timeout: Duration,
    /// How transient failures (429, 5xx, a refused connection, a cut
    /// exchange) are retried before an operation gives up (default: 1 s
    /// doubling to 2 min, 12 attempts, no time budget; set
    /// [`RetryPolicy::max_elapsed`] for one).
    pub retry: RetryPolicy,
    /// The total deadline, stall rule and size cap of every request the
    /// client's jobs send (default: 2 min for a JSON exchange; uploads and
    /// downloads scale with their size). A request past its bound is cut
    /// and retried under [`retry`](Self::retry).
    pub exchange: ExchangeLimits,
    /// The HTTP proxy requests go through (default
    /// [`Proxy::FromEnvironment`]).
    pub proxy: Proxy,
    /// Whether the platform's trusted roots verify the server's certificate
    /// (default `true`: the operating system's store, which honours
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR` on Linux). With `false`, only
    /// [`extra_root_certificates`](Self::extra_root_certificates) are trusted.
    pub platform_roots: bool,
    /// More root certificates to trust, each a PEM document holding one or
    /// more `CERTIFICATE` blocks (a private CA, a TLS-inspecting proxy's
    /// CA). Default: none. A document without a certificate is refused
    /// when the client is built.
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// Appended, after a space, to the `User-Agent` every request carries
    /// ([`ApiConfig::user_agent`], `openai-batch/VERSION` by default), to
    /// name your application in the provider's logs. Default: none.
    pub user_agent_suffix: Option<String>,
    /// Where fresh credentials come from, for a credential that expires
    /// during a job (a Microsoft Entra ID token for Azure OpenAI). Default:
    /// none, and the key in [`api`](Self::api) is used throughout. With a
    /// source, `api`'s key is not used: each job asks the source before its
    /// first request, before the token expires and after a `401` (see
    /// [`crate::credential`]); the token goes in the header
    /// [`Provider::auth`](crate::provider::Provider::auth) names (Bearer
    /// for Entra ID).
    pub credential: Option<CredentialSource>,
    /// When a job asks [`credential`](Self::credential) for a new token
    /// (default: 5 minutes before it expires; 3 refused in a row stop).
    pub credential_refresh: CredentialRefresh,
}

/// Which HTTP proxy a client uses.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Proxy {
    /// The proxy the environment names (`HTTPS_PROXY`, `HTTP_PROXY`,
    /// `ALL_PROXY` and `NO_PROXY`, upper or lower case), if any: the
    /// default, as `curl` does.
    #[default]
    FromEnvironment,
    /// No proxy, whatever the environment says.
    None,
    /// Every request through this proxy (`http://host:port`, with
    /// `user:password@` for basic authentication; the password never
    /// appears in `Debug`).
    Url(String),
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proxy::FromEnvironment => f.write_str("FromEnvironment"),
            Proxy::None => f.write_str("None"),
            Proxy::Url(url) => f.debug_tuple("Url").field(&redact_userinfo(url)).finish(),
        }
    }
}

/// `url` with its `user:password@` part, if any, replaced by `***@`.
fn redact_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

/// What a client's operations need from its configuration, checked: the
/// API settings, the retry policy and the exchange limits. Transports build
/// it once in `Client::new` and hand it to
/// [`BatchJob::begin`](super::BatchJob::begin).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientSettings {
    /// Base URL, key, organization and project, checked.
    pub api: ApiBase,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
    /// The bounds of every exchange.
    pub exchange: ExchangeLimits,
    /// Where fresh credentials come from ([`ClientConfig::credential`]).
    pub credential: Option<CredentialSource>,
    /// When a job asks for one.
    pub credential_refresh: CredentialRefresh,
}

impl ClientSettings {
    /// The settings of `config`.
    ///
    /// # Errors
    /// Fails if the base URL is not usable, or the key (without a
    /// credential source) is empty or cannot be a header value.
    pub fn new(config: &ClientConfig) -> Result<ClientSettings, ConfigError> {
        let mut api = config.api.clone();
        api.user_agent = config.user_agent();
        let api = match &config.credential {
            // The token comes from the source when a job asks for it.
            Some(_) => ApiBase::without_key(&api)?,
            None => ApiBase::new(&api)?,
        };
        Ok(ClientSettings {
            api,
            retry: config.retry.clone(),
            exchange: config.exchange.clone(),
            credential: config.credential.clone(),
            credential_refresh: config.credential_refresh.clone(),
        })
    }

    /// A job configuration with these settings and the other defaults
    /// (with a credential source, the job asks for its credentials).
    pub fn job_config(&self) -> JobConfig {
        let mut cfg = JobConfig::new(self.api.clone());
        cfg.retry = self.retry.clone();
        cfg.exchange = self.exchange.clone();
        if self.credential.is_some() {
            cfg.credential = Some(self.credential_refresh.clone());
        }
        cfg
    }
}

impl ClientConfig {
    /// A configuration with the defaults: timeouts, retries and exchange
    /// limits as documented on each field, the environment's proxy, the
    /// platform's roots, no user-agent suffix.
    pub fn new(api: ApiConfig) -> Self {
        ClientConfig {
            api,
            connect_timeout: Duration::from_secs(30),
            io_timeout: Duration::from_secs(300),
            retry: RetryPolicy::default(),
            exchange: ExchangeLimits::default(),
            proxy: Proxy::FromEnvironment,
            platform_roots: true,
            extra_root_certificates: Vec::new(),
            user_agent_suffix: None,
            credential: None,
            credential_refresh: CredentialRefresh::default(),
        }
    }

    /// Takes its credentials from `source` (see [`credential`](Self::credential)).
    #[must_use]
    pub fn with_credential(mut self, source: CredentialSource) -> Self {
        self.credential = Some(source);
        self
    }

    /// The `User-Agent` requests carry: the API settings' one, then the
    /// suffix after a space.
    pub fn user_agent(&self) -> String {
        match self.user_agent_suffix.as_deref().map(str::trim) {
            Some(suffix) if !suffix.is_empty() => format!("{} {suffix}", self.api.user_agent),
            _ => self.api.user_agent.clone(),
        }
    }
}

/// Presets for services other than OpenAI (see
/// [`Provider`](crate::provider::Provider) and the README's "Providers"
/// section).
impl ClientConfig {
    /// OpenAI's API with `api_key` (the same as `ClientConfig::new(ApiConfig::new(api_key))`).
    pub fn openai(api_key: impl Into<crate::api::ApiKey>) -> Self {
        ClientConfig::new(ApiConfig::new(api_key))
    }

    /// Azure OpenAI's v1 API on the resource `endpoint`
    /// (`https://RESOURCE.openai.azure.com`), see [`ApiConfig::azure`].
    pub fn azure(endpoint: &str, api_key: impl Into<crate::api::ApiKey>) -> Self {
        ClientConfig::new(ApiConfig::azure(endpoint, api_key))
    }

    /// Azure OpenAI's dated API (`api-version=<api_version>`) on the
    /// resource `endpoint`, see [`ApiConfig::azure_dated`].
    pub fn azure_dated(
        endpoint: &str,
        api_key: impl Into<crate::api::ApiKey>,
        api_version: impl Into<String>,
    ) -> Self {
        ClientConfig::new(ApiConfig::azure_dated(endpoint, api_key, api_version))
    }

    /// Azure OpenAI's v1 API on the resource `endpoint` with Microsoft
    /// Entra ID: `Authorization: Bearer <token>`, each token from `source`,
    /// refreshed before it expires and after a `401` (see
    /// [`crate::credential`]).
    ///
    /// ```
    /// use batch_core::credential::{Credential, CredentialSource};
    /// use batch_core::job::ClientConfig;
    ///
    /// let source = CredentialSource::blocking(|| Ok(Credential::new("token-from-your-identity-library", None)));
    /// let config = ClientConfig::azure_entra("https://RESOURCE.openai.azure.com", source);
    /// assert_eq!(config.api.base_url, "https://RESOURCE.openai.azure.com/openai/v1");
    /// ```
    pub fn azure_entra(endpoint: &str, source: CredentialSource) -> Self {
        let mut api = ApiConfig::azure(endpoint, "");
        api.provider.auth = crate::provider::AuthScheme::Bearer;
        ClientConfig::new(api).with_credential(source)
    }

    /// As [`azure_entra`](Self::azure_entra) on Azure OpenAI's dated API
    /// (`api-version=<api_version>`).
    pub fn azure_dated_entra(
        endpoint: &str,
        api_version: impl Into<String>,
        source: CredentialSource,
    ) -> Self {
        let mut api = ApiConfig::azure_dated(endpoint, "", api_version);
        api.provider.auth = crate::provider::AuthScheme::Bearer;
        ClientConfig::new(api).with_credential(source)
    }

    /// Groq's API, see [`ApiConfig::groq`].
    pub fn groq(api_key: impl Into<crate::api::ApiKey>) -> Self {
        ClientConfig::new(ApiConfig::groq(api_key))
    }

    /// Any OpenAI-compatible service at `base_url`, see [`ApiConfig::custom`].
    pub fn custom(base_url: impl Into<String>, api_key: impl Into<crate::api::ApiKey>) -> Self {
        ClientConfig::new(ApiConfig::custom(base_url, api_key))
    }

    /// Anthropic's Message Batches API, see [`ApiConfig::anthropic`]
    /// (`from_env` with [`ProviderKind::Anthropic`](crate::provider::ProviderKind::Anthropic)
    /// reads `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL`).
    pub fn anthropic(api_key: impl Into<crate::api::ApiKey>) -> Self {
        ClientConfig::new(ApiConfig::anthropic(api_key))
    }

    /// The preset `kind` from the environment variables its ecosystem uses
    /// (see [`api_config_for`](crate::provider::api_config_for)), read
    /// through `var`, e.g. `|k| std::env::var(k).ok()`.
    ///
    /// # Errors
    /// Names the first required variable that is unset.
    pub fn from_env(
        kind: crate::provider::ProviderKind,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::provider::EnvError> {
        crate::provider::api_config_for(kind, var).map(ClientConfig::new)
    }
}

/// A virtual clock whose waits jump forward at once, so a 24-hour job runs
/// in milliseconds in tests. Both transports implement their `Clock` trait
/// for it (`batch_blocking::ManualClock` and `batch_async::ManualClock` are
/// this type).
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Mutex<UnixMillis>,
}

impl ManualClock {
    /// A clock that reads `start`.
    pub fn new(start: UnixMillis) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// The time it reads.
    pub fn time(&self) -> UnixMillis {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.saturating_add(d);
    }

    /// Moves the clock to `t` unless it is already past it (a wait that
    /// ends at `t`).
    pub fn advance_to(&self, t: UnixMillis) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = (*now).max(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_debug_hides_the_password() {
        let p = Proxy::Url("http://user:s3cret@proxy.example:3128/".into());
        let shown = format!("{p:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("proxy.example:3128"), "{shown}");
        let plain = Proxy::Url("http://proxy.example:3128".into());
        assert!(format!("{plain:?}").contains("http://proxy.example:3128"));
    }

    #[test]
    fn the_user_agent_suffix_follows_the_api_user_agent() {
        let mut c = ClientConfig::new(ApiConfig::new("k").with_user_agent("base/1"));
        assert_eq!(c.user_agent(), "base/1");
        c.user_agent_suffix = Some(" my-app/2 ".into());
        assert_eq!(c.user_agent(), "base/1 my-app/2");
        let s = ClientSettings::new(&c).expect("the default base URL is usable");
        let request = crate::api::list_batches(&s.api, &crate::api::ListBatches::default())
            .expect("a request");
        assert_eq!(request.headers()["user-agent"], "base/1 my-app/2");
    }

    #[test]
    fn settings_carry_the_exchange_limits_into_jobs() {
        let mut c = ClientConfig::new(ApiConfig::new("k"));
        c.exchange.json_deadline = Duration::from_secs(7);
        c.retry.max_elapsed = Some(Duration::from_secs(9));
        let s = ClientSettings::new(&c).expect("the default base URL is usable");
        let cfg = s.job_config();
        assert_eq!(cfg.exchange.json_deadline, Duration::from_secs(7));
        assert_eq!(cfg.retry.max_elapsed, Some(Duration::from_secs(9)));
    }
}
