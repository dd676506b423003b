//! The `--provider`, `--api-version`, `--header` and `--query` flags: which
//! service the API settings describe, read from the environment variables
//! its ecosystem uses (see `batch_core::provider::api_config_for`).

use batch_core::api::{ApiConfig, Provider, ProviderKind, api_config_for};
use batch_core::job::{api_config_from_env, parse_completion_window};
use batch_core::provider::{EnvError, is_dated_version};

use crate::args::ApiArgs;
use crate::error::CliError;

/// The provider `--provider` names.
pub(crate) fn kind(args: &ApiArgs) -> ProviderKind {
    ProviderKind::parse(&args.provider).unwrap_or(ProviderKind::OpenAi)
}

/// The API settings of `--provider` from the environment, before
/// `--base-url`, `--header` and `--query`.
pub(crate) fn from_env(args: &ApiArgs) -> Result<ApiConfig, CliError> {
    let kind = kind(args);
    if let Some(v) = &args.api_version
        && !matches!(kind, ProviderKind::Azure | ProviderKind::Custom)
    {
        return Err(CliError::usage(format!(
            "--api-version {v} is for --provider azure (or custom); {} takes no api-version",
            kind.as_str()
        )));
    }
    let token_cmd = args.azure_ad_token_cmd.is_some();
    if token_cmd && kind != ProviderKind::Azure {
        return Err(CliError::usage(format!(
            "--azure-ad-token-cmd is for --provider azure, not {}",
            kind.as_str()
        )));
    }
    let var = |k: &str| {
        if k == "OPENAI_API_VERSION"
            && let Some(v) = &args.api_version
        {
            return Some(v.clone());
        }
        if token_cmd {
            // The command gives the tokens: no key is read or sent.
            match k {
                "AZURE_OPENAI_API_KEY" => return Some("from --azure-ad-token-cmd".to_owned()),
                "AZURE_OPENAI_AD_TOKEN" => return None,
                _ => {}
            }
        }
        std::env::var(k).ok()
    };
    let missing = |e: EnvError| {
        let EnvError::Missing { var } = e else {
            return CliError::usage(e.to_string());
        };
        CliError::usage(format!(
            "{var} is not set: export it for --provider {}, or pass --emulator to run \
             against the built-in emulator",
            kind.as_str()
        ))
    };
    let mut cfg = match kind {
        ProviderKind::OpenAi => api_config_from_env(var).map_err(|_| {
            CliError::usage(
                "OPENAI_API_KEY is not set: export your API key, or pass --emulator to run \
                 against the built-in emulator",
            )
        })?,
        ProviderKind::Custom if args.base_url.is_some() => {
            let key = var("OPENAI_API_KEY")
                .filter(|k| !k.trim().is_empty())
                .ok_or_else(|| {
                    missing(EnvError::Missing {
                        var: "OPENAI_API_KEY",
                    })
                })?;
            ApiConfig::custom(args.base_url.clone().unwrap_or_default(), key)
        }
        other => api_config_for(other, var).map_err(missing)?,
    };
    if kind == ProviderKind::Custom
        && let Some(v) = &args.api_version
    {
        cfg.provider = cfg.provider.with_query("api-version", v.clone());
    }
    if token_cmd {
        cfg.provider.auth = batch_core::api::AuthScheme::Bearer;
    }
    Ok(cfg)
}

/// Adds `--header` and `--query` to `cfg`.
pub(crate) fn apply_extras(mut cfg: ApiConfig, args: &ApiArgs) -> Result<ApiConfig, CliError> {
    for h in &args.header {
        let Some((name, value)) = h.split_once(':') else {
            return Err(CliError::usage(format!(
                "--header {:?}: expected NAME:VALUE",
                header_name_only(h)
            )));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(CliError::usage("--header: the header name is empty"));
        }
        cfg.provider = cfg.provider.with_header(name, value.trim());
    }
    for q in &args.query {
        let Some((name, value)) = q.split_once('=') else {
            return Err(CliError::usage(format!(
                "--query {q:?}: expected NAME=VALUE"
            )));
        };
        if name.is_empty() {
            return Err(CliError::usage("--query: the parameter name is empty"));
        }
        cfg.provider = cfg.provider.with_query(name, value);
    }
    Ok(cfg)
}

/// What of a malformed `--header` may be shown: nothing past a space, as
/// the value may be a credential.
fn header_name_only(h: &str) -> &str {
    h.split([' ', '=']).next().unwrap_or_default()
}

/// The emulator's settings for `--provider` with `--emulator`: the same
/// provider on the emulator's own base URL (`/openai/v1`, or `/openai`
/// with an `api-version` for Azure's dated API).
pub(crate) fn emulator_api(args: &ApiArgs, origin: &str, key: &str) -> ApiConfig {
    let version = args
        .api_version
        .clone()
        .or_else(|| std::env::var("OPENAI_API_VERSION").ok())
        .filter(|v| is_dated_version(v));
    match kind(args) {
        ProviderKind::Azure => match version {
            Some(v) => ApiConfig::azure_dated(origin, key, v),
            None => ApiConfig::azure(origin, key),
        },
        ProviderKind::Groq => ApiConfig::groq(key).with_base_url(format!("{origin}/openai/v1")),
        ProviderKind::Custom => ApiConfig::custom(format!("{origin}/v1"), key),
        _ => ApiConfig::new(key).with_base_url(format!("{origin}/v1")),
    }
}

/// Whether request lines go without `/v1` (`/chat/completions`): for
/// `--provider azure` with a dated API version (`--api-version` or
/// `OPENAI_API_VERSION`), as Azure's batch guide writes them.
pub(crate) fn unversioned_urls(args: &ApiArgs) -> bool {
    kind(args) == ProviderKind::Azure
        && args
            .api_version
            .clone()
            .or_else(|| std::env::var("OPENAI_API_VERSION").ok())
            .is_some_and(|v| is_dated_version(&v))
}

/// Refuses, before a journal is made, a `--completion-window` the
/// `--provider` does not accept (the job checks again before each create).
pub(crate) fn check_window(api: &ApiArgs, plan: &crate::args::PlanArgs) -> Result<(), CliError> {
    let provider = match kind(api) {
        ProviderKind::Azure => Provider::azure(),
        ProviderKind::Groq => Provider::groq(),
        ProviderKind::Custom => Provider::custom(),
        _ => Provider::openai(),
    };
    let Ok(window) = parse_completion_window(&plan.completion_window) else {
        // A malformed window is reported by the batch settings' own check.
        return Ok(());
    };
    batch_core::job::check_window(&provider, &window)
        .map_err(|e| CliError::usage(format!("--completion-window: {e}")))
}
