//! Microsoft Entra ID tokens for the Azure mode
//! ([`EmulatorConfig::entra_token_ttl`](crate::EmulatorConfig::entra_token_ttl)).
//!
//! Azure OpenAI accepts `Authorization: Bearer <token>` with a Microsoft
//! Entra ID access token instead of the `api-key` header, and refuses a
//! token past its expiry with `401`. The emulator issues tokens of its own
//! ([`EntraIssuer::issue`], or `POST /__emulator/entra-token`) that expire
//! on its virtual clock after the configured lifetime. A token names its
//! expiry and carries a check derived from the emulator's seed, so it is
//! verified without remembering it (and still after a restart on the same
//! data folder):
//!
//! ```text
//! emu-entra.<expires_on, Unix seconds>.<32 hex digits>
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::state::Shared;
use crate::util::derived_hex_id;

/// The first part of every token the emulator issues.
const PREFIX: &str = "emu-entra.";

/// A token the emulator issued.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntraToken {
    /// The access token, sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// When it expires, in Unix seconds of the emulator's virtual clock
    /// (Azure's `expires_on`).
    pub expires_on: i64,
}

/// Issues tokens for one emulator; clone it into a credential source.
#[derive(Clone)]
pub struct EntraIssuer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for EntraIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntraIssuer")
    }
}

impl EntraIssuer {
    pub(crate) fn new(shared: Arc<Shared>) -> EntraIssuer {
        EntraIssuer { shared }
    }

    /// A new token valid for the configured lifetime from the virtual now
    /// (an hour if the emulator was started without one).
    pub fn issue(&self) -> EntraToken {
        issue(&self.shared)
    }
}

/// A token valid for the configured lifetime from the virtual now.
pub(crate) fn issue(shared: &Shared) -> EntraToken {
    let ttl = shared
        .cfg
        .entra_token_ttl
        .unwrap_or(Duration::from_secs(3600));
    shared.count(|c| c.entra_tokens_issued += 1);
    let now = crate::model::secs(shared.clock.now_ms());
    let expires_on = now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    EntraToken {
        token: token_for(shared.seed(), expires_on),
        expires_on,
    }
}

fn token_for(seed: u64, expires_on: i64) -> String {
    let check = derived_hex_id("", &["entra", &seed.to_string(), &expires_on.to_string()]);
    format!("{PREFIX}{expires_on}.{check}")
}

/// What the emulator makes of a bearer token in Azure mode.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Issued here and not expired.
    Valid,
    /// Issued here, past its expiry.
    Expired,
    /// Not a token the emulator issued.
    Unknown,
}

/// Checks `token` against the emulator's seed and virtual clock.
pub(crate) fn check(shared: &Shared, token: &str) -> Verdict {
    let Some((expires, _)) = token
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('.'))
    else {
        return Verdict::Unknown;
    };
    let Ok(expires_on) = expires.parse::<i64>() else {
        return Verdict::Unknown;
    };
    if token != token_for(shared.seed(), expires_on) {
        return Verdict::Unknown;
    }
    if crate::model::secs(shared.clock.now_ms()) >= expires_on {
        Verdict::Expired
    } else {
        Verdict::Valid
    }
}
