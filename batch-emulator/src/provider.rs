//! Provider modes: the emulator can answer as OpenAI, as Azure OpenAI, or
//! as a Groq-like OpenAI-compatible service, so clients configured for each
//! are tested offline.
//!
//! | mode | paths | key | completion windows | per file | expiry |
//! |---|---|---|---|---|---|
//! | [`ProviderMode::OpenAi`] | `/v1/...` | `Authorization: Bearer` | `24h` | 50,000 | at `expires_at` |
//! | [`ProviderMode::Azure`] | `/openai/v1/...`, and `/openai/...?api-version=` | `api-key` header | `24h` | 100,000 | never |
//! | [`ProviderMode::Groq`] | `/openai/v1/...` | `Authorization: Bearer` | `24h` to `7d` | 50,000 | at `expires_at` |

use std::time::Duration;

/// Which service the emulator answers as.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderMode {
    /// OpenAI's API (the default).
    #[default]
    OpenAi,
    /// Azure OpenAI: the key in an `api-key` header, the v1 API under
    /// `/openai/v1` and the dated API under `/openai` (every request needs
    /// `api-version`), 100,000 requests per file, and batches that are not
    /// expired when they pass their window.
    Azure,
    /// A Groq-like service: Bearer auth under `/openai/v1`, and completion
    /// windows from `24h` to `7d`.
    Groq,
}

impl ProviderMode {
    /// Reads `openai`, `azure` or `groq`.
    pub fn parse(name: &str) -> Option<ProviderMode> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(ProviderMode::OpenAi),
            "azure" => Some(ProviderMode::Azure),
            "groq" => Some(ProviderMode::Groq),
            _ => None,
        }
    }

    /// The path prefixes the API is served under.
    pub(crate) fn prefixes(self) -> &'static [&'static str] {
        match self {
            ProviderMode::OpenAi => &["/v1"],
            ProviderMode::Azure => &["/openai/v1", "/openai"],
            ProviderMode::Groq => &["/openai/v1"],
        }
    }

    /// The base URL path of the mode's main API (`/v1` or `/openai/v1`).
    pub fn base_path(self) -> &'static str {
        self.prefixes()[0]
    }

    /// The length of `window` if this mode accepts it, else the message of
    /// the 400 answer.
    pub(crate) fn window(self, window: &str) -> Result<Option<Duration>, String> {
        match self {
            ProviderMode::OpenAi | ProviderMode::Azure => {
                if window == "24h" {
                    Ok(None)
                } else {
                    Err(format!(
                        "Invalid value: '{window}'. Supported values are: '24h'."
                    ))
                }
            }
            ProviderMode::Groq => {
                let hours = window
                    .strip_suffix('h')
                    .and_then(|n| n.parse::<u64>().ok())
                    .or_else(|| {
                        window
                            .strip_suffix('d')
                            .and_then(|n| n.parse::<u64>().ok())
                            .and_then(|d| d.checked_mul(24))
                    });
                match hours {
                    Some(h) if (24..=168).contains(&h) => Ok(Some(Duration::from_secs(h * 3600))),
                    _ => Err(format!(
                        "Invalid value: '{window}'. The completion window must be between 24h \
                         and 7d."
                    )),
                }
            }
        }
    }

    /// Whether endpoints may be written without `/v1` (`/chat/completions`)
    /// in request lines and in a create, as Azure OpenAI's dated API
    /// versions document them.
    pub(crate) fn unversioned_urls(self) -> bool {
        self == ProviderMode::Azure
    }

    /// Whether batches expire when they pass their window.
    pub(crate) fn expires(self) -> bool {
        self != ProviderMode::Azure
    }

    /// The most requests one batch input file may hold.
    pub fn max_requests_per_batch(self) -> u64 {
        match self {
            ProviderMode::Azure => 100_000,
            _ => 50_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_per_mode() {
        assert_eq!(ProviderMode::OpenAi.window("24h"), Ok(None));
        assert!(ProviderMode::OpenAi.window("7d").is_err());
        assert!(ProviderMode::Azure.window("48h").is_err());
        assert_eq!(
            ProviderMode::Groq.window("7d"),
            Ok(Some(Duration::from_secs(7 * 24 * 3600)))
        );
        assert_eq!(
            ProviderMode::Groq.window("36h"),
            Ok(Some(Duration::from_secs(36 * 3600)))
        );
        assert!(ProviderMode::Groq.window("8d").is_err());
        assert!(ProviderMode::Groq.window("12h").is_err());
        assert_eq!(ProviderMode::parse("Azure"), Some(ProviderMode::Azure));
        assert_eq!(ProviderMode::parse("mistral"), None);
    }
}
