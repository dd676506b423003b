//! Provider modes: the emulator can answer as OpenAI, as Azure OpenAI, as
//! a Groq-like OpenAI-compatible service, or as Anthropic's Message Batches
//! API, so clients configured for each are tested offline.
//!
//! | mode | paths | key | completion windows | per file | expiry |
//! |---|---|---|---|---|---|
//! | [`ProviderMode::OpenAi`] | `/v1/...` | `Authorization: Bearer` | `24h` | 50,000 | at `expires_at` |
//! | [`ProviderMode::Azure`] | `/openai/v1/...`, and `/openai/...?api-version=` | `api-key` header | `24h` | 100,000 | never |
//! | [`ProviderMode::Groq`] | `/openai/v1/...` | `Authorization: Bearer` | `24h` to `7d` | 50,000 | at `expires_at` |
//! | [`ProviderMode::Anthropic`] | `/v1/messages/batches...` | `x-api-key` and `anthropic-version` | 24 h | 100,000 (256 MB) | at `expires_at` |

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
    /// Anthropic's Message Batches API: requests inline in the create body
    /// under `/v1/messages/batches`, `x-api-key` and `anthropic-version`
    /// headers, Anthropic's error envelope, 100,000 requests or 256 MB per
    /// batch, results as JSONL from `results_url`. The base URL is the
    /// server's root (clients add `/v1/messages/batches`), as
    /// `https://api.anthropic.com` is. See the crate's README.
    Anthropic,
}

impl ProviderMode {
    /// Reads `openai`, `azure`, `groq` or `anthropic`.
    pub fn parse(name: &str) -> Option<ProviderMode> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(ProviderMode::OpenAi),
            "azure" => Some(ProviderMode::Azure),
            "groq" => Some(ProviderMode::Groq),
            "anthropic" => Some(ProviderMode::Anthropic),
            _ => None,
        }
    }

    /// The path prefixes the API is served under.
    pub(crate) fn prefixes(self) -> &'static [&'static str] {
        match self {
            ProviderMode::OpenAi | ProviderMode::Anthropic => &["/v1"],
            ProviderMode::Azure => &["/openai/v1", "/openai"],
            ProviderMode::Groq => &["/openai/v1"],
        }
    }

    /// The base URL path of the mode's main API (`/v1` or `/openai/v1`);
    /// empty for Anthropic, whose clients add `/v1/messages/batches` to the
    /// server's root themselves.
    pub fn base_path(self) -> &'static str {
        match self {
            ProviderMode::Anthropic => "",
            _ => self.prefixes()[0],
        }
    }

    /// The length of `window` if this mode accepts it, else the message of
    /// the 400 answer.
    pub(crate) fn window(self, window: &str) -> Result<Option<Duration>, String> {
        match self {
            ProviderMode::OpenAi | ProviderMode::Azure | ProviderMode::Anthropic => {
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

    /// Whether batches expire when they pass their window.
    pub(crate) fn expires(self) -> bool {
        self != ProviderMode::Azure
    }

    /// The most requests one batch input file (Anthropic: one create
    /// body) may hold.
    pub fn max_requests_per_batch(self) -> u64 {
        match self {
            ProviderMode::Azure | ProviderMode::Anthropic => 100_000,
            _ => 50_000,
        }
    }

    /// The largest batch input file (Anthropic: create body) in bytes:
    /// 200 MiB for the OpenAI-shaped modes, 256 MB (256,000,000 bytes) for
    /// Anthropic.
    pub fn max_batch_bytes(self) -> u64 {
        match self {
            ProviderMode::Anthropic => 256_000_000,
            _ => 200 * 1024 * 1024,
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
        assert_eq!(
            ProviderMode::parse("anthropic"),
            Some(ProviderMode::Anthropic)
        );
        assert_eq!(ProviderMode::Anthropic.base_path(), "");
        assert_eq!(ProviderMode::Anthropic.max_requests_per_batch(), 100_000);
    }
}
