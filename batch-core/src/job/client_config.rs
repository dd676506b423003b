//! Plain settings shared by both transports' clients: how a client
//! connects, and a manual time source for tests.

use std::sync::Mutex;
use std::time::Duration;

use crate::api::{ApiBase, ApiConfig, ConfigError};
use crate::retry::RetryPolicy;
use crate::time::UnixMillis;

/// How a client connects (`batch_blocking::ClientConfig` and
/// `batch_async::ClientConfig` are this type).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Base URL, key, organization, project.
    pub api: ApiConfig,
    /// Connecting (TCP and TLS) may take this long (default 30 s).
    pub connect_timeout: Duration,
    /// One read or write may stall this long (default 5 min).
    pub io_timeout: Duration,
    /// How transient failures (429, 5xx, a refused connection) are retried
    /// before an operation gives up (default: 1 s doubling to 2 min, 12
    /// attempts).
    pub retry: RetryPolicy,
}

/// What a client's operations need from its configuration, checked: the
/// API settings and the retry policy. Transports build it once in
/// `Client::new` and hand it to [`BatchJob::begin`](super::BatchJob::begin).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientSettings {
    /// Base URL, key, organization and project, checked.
    pub api: ApiBase,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
}

impl ClientSettings {
    /// The settings of `config`.
    ///
    /// # Errors
    /// Fails if the base URL is not usable.
    pub fn new(config: &ClientConfig) -> Result<ClientSettings, ConfigError> {
        Ok(ClientSettings {
            api: ApiBase::new(&config.api)?,
            retry: config.retry.clone(),
        })
    }
}

impl ClientConfig {
    /// A configuration with default timeouts.
    pub fn new(api: ApiConfig) -> Self {
        ClientConfig {
            api,
            connect_timeout: Duration::from_secs(30),
            io_timeout: Duration::from_secs(300),
            retry: RetryPolicy::default(),
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

    /// Groq's API, see [`ApiConfig::groq`].
    pub fn groq(api_key: impl Into<crate::api::ApiKey>) -> Self {
        ClientConfig::new(ApiConfig::groq(api_key))
    }

    /// Any OpenAI-compatible service at `base_url`, see [`ApiConfig::custom`].
    pub fn custom(base_url: impl Into<String>, api_key: impl Into<crate::api::ApiKey>) -> Self {
        ClientConfig::new(ApiConfig::custom(base_url, api_key))
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
