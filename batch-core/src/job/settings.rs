//! Checks of the batch settings a caller chooses: the metadata stamped on
//! each batch, the completion window, and when the uploaded input files and
//! the batches' output files expire. They are plain values carried by
//! [`JobConfig`] and [`BatchOptions`]; these checks run before anything is
//! sent, so a bad setting is a usage error, not a refused request halfway
//! through a job.
//!
//! The limits come from OpenAI's API reference ("Create batch" and "Upload
//! file"; API notes §3 and §4): at most 16 metadata pairs, keys of at most
//! 64 characters and values of at most 512; an expiry of 3600 (1 hour) to
//! 2592000 (30 days) seconds after the file's creation. The job stamps three
//! metadata keys of its own on every batch ([`META_JOB`], [`META_SHARD`],
//! [`META_ATTEMPT`]), so a caller has 13 pairs, under other keys.

use std::collections::BTreeMap;

use crate::api::{CompletionWindow, CreateBatch, ExpiresAfter};
use crate::job::memory::BatchOptions;
use crate::job::types::JobConfig;
use crate::job::{META_ATTEMPT, META_JOB, META_SHARD};
use crate::provider::Provider;

/// The metadata keys the job sets on every batch itself; a caller's
/// metadata may not use them.
pub const RESERVED_METADATA_KEYS: [&str; 3] = [META_JOB, META_SHARD, META_ATTEMPT];

/// The most metadata pairs a caller may add: the API's 16, less the job's
/// own three ([`RESERVED_METADATA_KEYS`]).
pub const MAX_USER_METADATA_PAIRS: usize =
    CreateBatch::METADATA_MAX_PAIRS - RESERVED_METADATA_KEYS.len();

/// A batch setting the API would refuse, found before anything is sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// More metadata pairs than fit beside the job's own.
    #[error(
        "metadata has {count} pairs; at most {max} are allowed (the API takes 16 and the job \
         adds 3 of its own)"
    )]
    TooManyMetadataPairs {
        /// How many pairs were given.
        count: usize,
        /// [`MAX_USER_METADATA_PAIRS`].
        max: usize,
    },
    /// A metadata key is one the job sets itself.
    #[error("metadata key {key:?} is set by the job itself; choose another key")]
    ReservedMetadataKey {
        /// The key.
        key: String,
    },
    /// A metadata key is empty.
    #[error("a metadata key is empty")]
    EmptyMetadataKey,
    /// A metadata key is too long.
    #[error("metadata key {key:?} has {chars} characters; at most 64 are allowed")]
    MetadataKeyTooLong {
        /// The key.
        key: String,
        /// Its length in characters.
        chars: usize,
    },
    /// A metadata value is too long.
    #[error("the metadata value of {key:?} has {chars} characters; at most 512 are allowed")]
    MetadataValueTooLong {
        /// The key whose value is too long.
        key: String,
        /// The value's length in characters.
        chars: usize,
    },
    /// The completion window is not a number of hours or days.
    #[error(
        "completion window {value:?} is not a whole number of hours or days, such as 24h or 7d"
    )]
    CompletionWindow {
        /// The value given.
        value: String,
    },
    /// The provider does not accept this completion window.
    #[error("completion window {value:?} is not accepted by {provider} (allowed: {allowed})")]
    WindowNotAccepted {
        /// The value given.
        value: String,
        /// The provider, e.g. `openai`.
        provider: &'static str,
        /// The windows it accepts, in words.
        allowed: String,
    },
    /// A file expiry outside the API's range.
    #[error("{setting} is {seconds} seconds; allowed are 3600 (1 hour) to 2592000 (30 days)")]
    ExpiresAfter {
        /// Which expiry: `output_expires_after` or `file_expires_after`.
        setting: &'static str,
        /// The value given.
        seconds: u64,
    },
}

impl SettingsError {
    /// The setting at fault: `metadata`, `completion_window`,
    /// `output_expires_after` or `file_expires_after`.
    pub fn setting(&self) -> &'static str {
        match self {
            SettingsError::CompletionWindow { .. } | SettingsError::WindowNotAccepted { .. } => {
                "completion_window"
            }
            SettingsError::ExpiresAfter { setting, .. } => setting,
            _ => "metadata",
        }
    }
}

/// Checks a caller's metadata: at most [`MAX_USER_METADATA_PAIRS`] pairs,
/// none under a [`RESERVED_METADATA_KEYS`] key, keys of 1 to 64 characters
/// and values of at most 512.
///
/// # Errors
/// The first rule broken, as a [`SettingsError`].
pub fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), SettingsError> {
    if metadata.len() > MAX_USER_METADATA_PAIRS {
        return Err(SettingsError::TooManyMetadataPairs {
            count: metadata.len(),
            max: MAX_USER_METADATA_PAIRS,
        });
    }
    for (key, value) in metadata {
        if key.is_empty() {
            return Err(SettingsError::EmptyMetadataKey);
        }
        if RESERVED_METADATA_KEYS.contains(&key.as_str()) {
            return Err(SettingsError::ReservedMetadataKey { key: key.clone() });
        }
        let chars = key.chars().count();
        if chars > CreateBatch::METADATA_MAX_KEY_CHARS {
            return Err(SettingsError::MetadataKeyTooLong {
                key: key.clone(),
                chars,
            });
        }
        let chars = value.chars().count();
        if chars > CreateBatch::METADATA_MAX_VALUE_CHARS {
            return Err(SettingsError::MetadataValueTooLong {
                key: key.clone(),
                chars,
            });
        }
    }
    Ok(())
}

/// Reads a completion window: a whole, positive number of hours or days,
/// `24h` or `7d`.
///
/// Only the form is checked. OpenAI accepts only `24h` today (API notes
/// §4, `completion_window`); other providers accept longer windows, so a
/// server that does not take the window refuses the batch itself.
///
/// ```
/// use batch_core::api::CompletionWindow;
/// use batch_core::job::parse_completion_window;
///
/// assert_eq!(parse_completion_window("24h"), Ok(CompletionWindow::Hours24));
/// assert_eq!(parse_completion_window("7d").map(|w| w.as_str().to_owned()), Ok("7d".to_owned()));
/// assert!(parse_completion_window("24").is_err());
/// assert!(parse_completion_window("0h").is_err());
/// ```
///
/// # Errors
/// [`SettingsError::CompletionWindow`] if `value` is not digits (not
/// starting with 0) followed by `h` or `d`.
pub fn parse_completion_window(value: &str) -> Result<CompletionWindow, SettingsError> {
    let number = value
        .strip_suffix('h')
        .or_else(|| value.strip_suffix('d'))
        .unwrap_or_default();
    let well_formed = !number.is_empty()
        && number.len() <= 6
        && number.bytes().all(|b| b.is_ascii_digit())
        && !number.starts_with('0');
    if well_formed {
        Ok(CompletionWindow::parse(value))
    } else {
        Err(SettingsError::CompletionWindow {
            value: value.to_owned(),
        })
    }
}

/// Checks a file expiry in seconds: 3600 to 2592000
/// ([`ExpiresAfter::MIN_SECONDS`] to [`ExpiresAfter::MAX_SECONDS`]).
/// `setting` names it in the error.
///
/// # Errors
/// [`SettingsError::ExpiresAfter`] if `seconds` is out of range.
pub fn validate_expires_after(setting: &'static str, seconds: u64) -> Result<(), SettingsError> {
    if (ExpiresAfter::MIN_SECONDS..=ExpiresAfter::MAX_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        Err(SettingsError::ExpiresAfter { setting, seconds })
    }
}

/// Checks that `provider` accepts `window`.
///
/// # Errors
/// [`SettingsError::WindowNotAccepted`] if it does not.
pub fn check_window(provider: &Provider, window: &CompletionWindow) -> Result<(), SettingsError> {
    if provider.accepts_window(window) {
        Ok(())
    } else {
        Err(SettingsError::WindowNotAccepted {
            value: window.as_str().to_owned(),
            provider: provider.kind.as_str(),
            allowed: provider.allowed_windows(),
        })
    }
}

/// Checks the batch settings of a job: the metadata, the completion window's
/// form and both expiries.
fn validate_all(
    metadata: &BTreeMap<String, String>,
    window: &CompletionWindow,
    output_expires_after: Option<u64>,
    file_expires_after: Option<u64>,
) -> Result<(), SettingsError> {
    validate_metadata(metadata)?;
    parse_completion_window(window.as_str())?;
    if let Some(s) = output_expires_after {
        validate_expires_after("output_expires_after", s)?;
    }
    if let Some(s) = file_expires_after {
        validate_expires_after("file_expires_after", s)?;
    }
    Ok(())
}

impl JobConfig {
    /// Checks the batch settings (metadata, completion window, expiries)
    /// before a job starts. A job started with settings that fail here has
    /// its uploads or creates refused as it goes.
    ///
    /// # Errors
    /// The first setting the API would refuse, as a [`SettingsError`].
    ///
    /// The completion window is also checked against the provider's
    /// ([`Provider::accepts_window`](crate::provider::Provider::accepts_window)).
    pub fn validate_settings(&self) -> Result<(), SettingsError> {
        validate_all(
            &self.metadata,
            &self.completion_window,
            self.output_expires_after,
            self.file_expires_after,
        )?;
        check_window(self.api.provider(), &self.completion_window)
    }
}

impl BatchOptions {
    /// Checks the batch settings (metadata, completion window, expiries)
    /// before anything is sent.
    ///
    /// # Errors
    /// The first setting the API would refuse, as a [`SettingsError`].
    pub fn validate(&self) -> Result<(), SettingsError> {
        validate_all(
            &self.metadata,
            &self.completion_window,
            self.output_expires_after,
            self.file_expires_after,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn thirteen_pairs_fit_beside_the_jobs_three() {
        let thirteen: BTreeMap<String, String> =
            (0..13).map(|i| (format!("k{i}"), "v".to_owned())).collect();
        assert_eq!(validate_metadata(&thirteen), Ok(()));
        let mut fourteen = thirteen;
        fourteen.insert("k13".into(), "v".into());
        assert_eq!(
            validate_metadata(&fourteen),
            Err(SettingsError::TooManyMetadataPairs { count: 14, max: 13 })
        );
    }

    #[test]
    fn keys_and_values_are_measured_in_characters() {
        let key64 = "é".repeat(64);
        let value512 = "é".repeat(512);
        assert_eq!(validate_metadata(&meta(&[(&key64, &value512)])), Ok(()));
        let key65 = "k".repeat(65);
        assert_eq!(
            validate_metadata(&meta(&[(&key65, "v")])),
            Err(SettingsError::MetadataKeyTooLong {
                key: key65.clone(),
                chars: 65
            })
        );
        let value513 = "v".repeat(513);
        assert_eq!(
            validate_metadata(&meta(&[("k", &value513)])),
            Err(SettingsError::MetadataValueTooLong {
                key: "k".into(),
                chars: 513
            })
        );
        assert_eq!(
            validate_metadata(&meta(&[("", "v")])),
            Err(SettingsError::EmptyMetadataKey)
        );
    }

    #[test]
    fn the_jobs_own_keys_are_refused() {
        for key in RESERVED_METADATA_KEYS {
            assert_eq!(
                validate_metadata(&meta(&[(key, "x")])),
                Err(SettingsError::ReservedMetadataKey { key: key.into() })
            );
        }
    }

    #[test]
    fn completion_windows_are_hours_or_days() {
        for ok in ["24h", "48h", "7d", "1d"] {
            assert_eq!(
                parse_completion_window(ok).map(|w| w.as_str().to_owned()),
                Ok(ok.to_owned())
            );
        }
        for bad in [
            "", "h", "24", "24m", "-1h", "0h", "024h", "1.5d", " 24h", "24H",
        ] {
            assert_eq!(
                parse_completion_window(bad),
                Err(SettingsError::CompletionWindow { value: bad.into() }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn expiries_are_one_hour_to_thirty_days() {
        assert_eq!(validate_expires_after("x", 3600), Ok(()));
        assert_eq!(validate_expires_after("x", 2_592_000), Ok(()));
        assert!(validate_expires_after("x", 3599).is_err());
        let e = validate_expires_after("file_expires_after", 2_592_001).expect_err("too long");
        assert_eq!(
            e.to_string(),
            "file_expires_after is 2592001 seconds; allowed are 3600 (1 hour) to 2592000 (30 days)"
        );
    }

    #[test]
    fn options_are_checked_as_a_whole() {
        let ok = BatchOptions::new("m")
            .completion_window(CompletionWindow::parse("7d"))
            .metadata("team", "ml")
            .output_expires_after(7200)
            .file_expires_after(86_400);
        assert_eq!(ok.validate(), Ok(()));
        let bad = ok.clone().file_expires_after(60);
        assert_eq!(
            bad.validate().map_err(|e| e.setting()),
            Err("file_expires_after")
        );
        assert_eq!(
            bad.validate(),
            Err(SettingsError::ExpiresAfter {
                setting: "file_expires_after",
                seconds: 60
            })
        );
        let bad = ok.completion_window(CompletionWindow::parse("soon"));
        assert!(matches!(
            bad.validate(),
            Err(SettingsError::CompletionWindow { .. })
        ));
    }
}
