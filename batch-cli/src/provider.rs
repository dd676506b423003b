//! The `--provider`, `--api-version`, `--header` and `--query` flags: which
//! service the API settings describe, read from the environment variables
//! its ecosystem uses (see `batch_core::provider::api_config_for`).

use batch_core::api::{ApiConfig, Provider, ProviderKind, api_config_for};
use batch_core::job::{StoredProvider, api_config_from_env, parse_completion_window};
use batch_core::provider::{EnvError, is_dated_version};

use crate::args::ApiArgs;
use crate::error::CliError;

/// The provider `--provider` names.
pub(crate) fn kind(args: &ApiArgs) -> ProviderKind {
    args.provider
        .as_deref()
        .and_then(ProviderKind::parse)
        .unwrap_or(ProviderKind::OpenAi)
}

/// The API flags of a command that continues the job in `journal`, whose
/// provider was recorded as `recorded`: the recorded provider, api-version,
/// query parameters and headers, with the values of credential headers
/// taken from the flags (they are never recorded). A flag that says
/// otherwise than the journal is refused.
///
/// # Errors
/// A usage error naming the flag, what the journal holds, and what to do.
pub(crate) fn with_recorded(
    args: &ApiArgs,
    recorded: Option<&StoredProvider>,
    journal: &std::path::Path,
) -> Result<ApiArgs, CliError> {
    let Some(rec) = recorded else {
        return Ok(args.clone());
    };
    let conflict = |flag: String, recorded: String| {
        CliError::usage(format!(
            "{flag} differs from the job in {}, which runs with {recorded}: leave the flag out \
             (the journal remembers it), or use a new --journal for another job",
            journal.display()
        ))
    };
    let mut out = args.clone();
    if let Some(p) = &args.provider
        && *p != rec.preset
    {
        return Err(conflict(
            format!("--provider {p}"),
            format!("--provider {}", rec.preset),
        ));
    }
    out.provider = Some(rec.preset.clone());
    if args.api_version != rec.api_version
        && let Some(v) = &args.api_version
    {
        return Err(conflict(
            format!("--api-version {v}"),
            match &rec.api_version {
                Some(r) => format!("--api-version {r}"),
                None => "no --api-version".to_owned(),
            },
        ));
    }
    out.api_version = rec.api_version.clone();
    let given_query: Vec<(String, String)> = args
        .query
        .iter()
        .filter_map(|q| q.split_once('=').map(|(n, v)| (n.to_owned(), v.to_owned())))
        .collect();
    if !args.query.is_empty() && given_query != rec.query {
        let show = |q: &[(String, String)]| {
            if q.is_empty() {
                "no --query".to_owned()
            } else {
                q.iter()
                    .map(|(n, v)| format!("--query {n}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        return Err(conflict(show(&given_query), show(&rec.query)));
    }
    out.query = rec.query.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let given_headers: Vec<(String, String)> = args
        .header
        .iter()
        .filter_map(|h| {
            h.split_once(':')
                .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    for (name, _) in &given_headers {
        if !rec
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Err(conflict(
                format!("--header {name}"),
                "no such header".to_owned(),
            ));
        }
    }
    let mut headers = Vec::new();
    for (name, value) in &rec.headers {
        let given = given_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v);
        match (value, given) {
            (Some(v), Some(g)) if v != g => {
                return Err(conflict(
                    format!("--header {name}:{g}"),
                    format!("--header {name}:{v}"),
                ));
            }
            (Some(v), _) => headers.push(format!("{name}:{v}")),
            (None, Some(g)) => headers.push(format!("{name}:{g}")),
            (None, None) => {
                return Err(CliError::usage(format!(
                    "the job in {} sends the header {name}, whose value is a credential and is \
                     not kept in the journal: pass --header {name}:VALUE again",
                    journal.display()
                )));
            }
        }
    }
    for (flag, name, given) in [
        (
            "--anthropic-version",
            Provider::ANTHROPIC_VERSION_HEADER,
            &args.anthropic_version,
        ),
        (
            "--anthropic-beta",
            Provider::ANTHROPIC_BETA_HEADER,
            &args.anthropic_beta,
        ),
    ] {
        let Some(given) = given else { continue };
        let recorded = rec
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.clone());
        if recorded.as_deref() != Some(given.as_str()) {
            return Err(conflict(
                format!("{flag} {given}"),
                match recorded {
                    Some(r) => format!("{flag} {r}"),
                    None => format!("no {flag}"),
                },
            ));
        }
    }
    out.header = headers;
    out.recorded = Some(rec.clone());
    Ok(out)
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
        // A job's recorded base URL stands in for the endpoint variable.
        let recorded_base = args
            .recorded
            .as_ref()
            .map(|r| r.base_url.clone())
            .filter(|b| !b.is_empty());
        if matches!(
            k,
            "AZURE_OPENAI_ENDPOINT" | "OPENAI_BASE_URL" | "ANTHROPIC_BASE_URL"
        ) && recorded_base.is_some()
            && std::env::var(k).map_or(true, |v| v.trim().is_empty())
        {
            return recorded_base;
        }
        if k == "OPENAI_API_VERSION" {
            // A job's recorded api-version (or none) wins over the environment.
            if args.recorded.is_some() {
                return args.api_version.clone();
            }
            if let Some(v) = &args.api_version {
                return Some(v.clone());
            }
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

/// Adds `--header`, `--query`, and for `--provider anthropic`
/// `--anthropic-version` and `--anthropic-beta`, to `cfg`.
///
/// # Errors
/// A usage error for a malformed flag, or an Anthropic flag given for
/// another provider.
pub(crate) fn apply_extras(mut cfg: ApiConfig, args: &ApiArgs) -> Result<ApiConfig, CliError> {
    cfg = apply_extra_flags(cfg, args)?;
    let anthropic = cfg.provider.kind == ProviderKind::Anthropic;
    for (flag, value) in [
        ("--anthropic-version", &args.anthropic_version),
        ("--anthropic-beta", &args.anthropic_beta),
    ] {
        let Some(value) = value else { continue };
        if !anthropic {
            return Err(CliError::usage(format!(
                "{flag} is for --provider anthropic, not {}",
                cfg.provider.kind.as_str()
            )));
        }
        if value.trim().is_empty() {
            return Err(CliError::usage(format!("{flag}: the value is empty")));
        }
    }
    if let Some(v) = &args.anthropic_version {
        cfg.provider = cfg.provider.with_anthropic_version(v.trim());
    }
    if let Some(b) = &args.anthropic_beta {
        cfg.provider
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(Provider::ANTHROPIC_BETA_HEADER));
        cfg.provider = cfg
            .provider
            .with_header(Provider::ANTHROPIC_BETA_HEADER, b.trim());
    }
    Ok(cfg)
}

/// Adds `--header` and `--query` to `cfg`.
fn apply_extra_flags(mut cfg: ApiConfig, args: &ApiArgs) -> Result<ApiConfig, CliError> {
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
        // A header the provider already sends (anthropic-version) is
        // replaced, not sent twice.
        cfg.provider
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
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
/// with an `api-version` for Azure's dated API, or the bare origin for
/// Anthropic's Message Batches).
pub(crate) fn emulator_api(args: &ApiArgs, origin: &str, key: &str) -> ApiConfig {
    let version = match &args.recorded {
        Some(_) => args.api_version.clone(),
        None => args
            .api_version
            .clone()
            .or_else(|| std::env::var("OPENAI_API_VERSION").ok()),
    }
    .filter(|v| is_dated_version(v));
    match kind(args) {
        ProviderKind::Azure => match version {
            Some(v) => ApiConfig::azure_dated(origin, key, v),
            None => ApiConfig::azure(origin, key),
        },
        ProviderKind::Groq => ApiConfig::groq(key).with_base_url(format!("{origin}/openai/v1")),
        ProviderKind::Custom => ApiConfig::custom(format!("{origin}/v1"), key),
        // Message Batches paths carry their own `/v1`.
        ProviderKind::Anthropic => ApiConfig::anthropic(key).with_base_url(origin),
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
        ProviderKind::Anthropic => Provider::anthropic(),
        _ => Provider::openai(),
    };
    let Ok(window) = parse_completion_window(&plan.completion_window) else {
        // A malformed window is reported by the batch settings' own check.
        return Ok(());
    };
    batch_core::job::check_window(&provider, &window)
        .map_err(|e| CliError::usage(format!("--completion-window: {e}")))
}
