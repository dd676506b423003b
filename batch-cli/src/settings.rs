//! The batch settings of a job: `--completion-window`, `--metadata`,
//! `--output-expires-after` and `--file-expires-after`. They are read from the
//! flags and checked before a journal is made or anything is sent, stored in
//! the journal's `round-0.job.json`, and given to the job of every round.

use std::collections::BTreeMap;

use batch_core::job::{
    JobConfig, parse_completion_window, validate_expires_after, validate_metadata,
};
use serde::{Deserialize, Serialize};

use crate::args::PlanArgs;
use crate::error::CliError;

/// The completion window without `--completion-window`.
pub(crate) const DEFAULT_WINDOW: &str = "24h";

/// The batch settings of a job, as stored in the journal's `round-0.job.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchSettings {
    /// `24h`, `7d`, ...
    #[serde(default = "default_window")]
    pub(crate) completion_window: String,
    /// The user's metadata, stamped on every batch beside the job's keys.
    #[serde(default)]
    pub(crate) metadata: BTreeMap<String, String>,
    /// Seconds after creation the output and error files expire.
    #[serde(default)]
    pub(crate) output_expires_after: Option<u64>,
    /// Seconds after upload the input files expire.
    #[serde(default)]
    pub(crate) file_expires_after: Option<u64>,
}

fn default_window() -> String {
    DEFAULT_WINDOW.to_owned()
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings {
            completion_window: default_window(),
            metadata: BTreeMap::new(),
            output_expires_after: None,
            file_expires_after: None,
        }
    }
}

impl BatchSettings {
    /// The settings the flags ask for, checked against the API's limits.
    ///
    /// # Errors
    /// A usage error naming the flag: a `--metadata` that is not
    /// `KEY=VALUE` or repeats a key, more than 13 pairs, a key of the job's
    /// own, a key over 64 or a value over 512 characters; a
    /// `--completion-window` that is not hours or days (`24h`, `7d`); an
    /// expiry outside 3600..=2592000 seconds.
    pub(crate) fn from_args(args: &PlanArgs) -> Result<BatchSettings, CliError> {
        let mut metadata = BTreeMap::new();
        for pair in &args.metadata {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(CliError::usage(format!(
                    "--metadata takes KEY=VALUE, not {pair:?}"
                )));
            };
            if metadata.insert(key.to_owned(), value.to_owned()).is_some() {
                return Err(CliError::usage(format!(
                    "--metadata: key {key:?} is given twice"
                )));
            }
        }
        validate_metadata(&metadata).map_err(|e| CliError::usage(format!("--metadata: {e}")))?;
        parse_completion_window(&args.completion_window)
            .map_err(|e| CliError::usage(format!("--completion-window: {e}")))?;
        let check = |flag: &str, setting: &'static str, v: Option<u64>| match v {
            Some(s) => validate_expires_after(setting, s)
                .map_err(|_| {
                    CliError::usage(format!(
                        "{flag} {s}: allowed are 3600 (1 hour) to 2592000 (30 days) seconds"
                    ))
                })
                .map(|()| Some(s)),
            None => Ok(None),
        };
        Ok(BatchSettings {
            completion_window: args.completion_window.clone(),
            metadata,
            output_expires_after: check(
                "--output-expires-after",
                "output_expires_after",
                args.output_expires_after,
            )?,
            file_expires_after: check(
                "--file-expires-after",
                "file_expires_after",
                args.file_expires_after,
            )?,
        })
    }

    /// Sets these settings on a job's configuration.
    pub(crate) fn apply(&self, cfg: &mut JobConfig) {
        cfg.completion_window = batch_core::api::CompletionWindow::parse(&self.completion_window);
        cfg.metadata = self.metadata.clone();
        cfg.output_expires_after = self.output_expires_after;
        cfg.file_expires_after = self.file_expires_after;
    }

    /// The flags that give these settings, for messages.
    pub(crate) fn flags(&self) -> String {
        let mut parts = vec![format!("--completion-window {}", self.completion_window)];
        for (k, v) in &self.metadata {
            parts.push(format!("--metadata {:?}", format!("{k}={v}")));
        }
        if let Some(s) = self.output_expires_after {
            parts.push(format!("--output-expires-after {s}"));
        }
        if let Some(s) = self.file_expires_after {
            parts.push(format!("--file-expires-after {s}"));
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    fn settings(flags: &[&str]) -> Result<BatchSettings, String> {
        let mut argv = vec!["openai-batch", "submit", "in.jsonl"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Submit(args) = cli.command else {
            return Err("not submit".into());
        };
        BatchSettings::from_args(&args.plan).map_err(|e| match e {
            CliError::Usage(msg) => msg,
            other => format!("{other:?}"),
        })
    }

    #[test]
    fn defaults_are_a_day_and_nothing_else() {
        assert_eq!(settings(&[]), Ok(BatchSettings::default()));
        assert_eq!(BatchSettings::default().completion_window, "24h");
    }

    #[test]
    fn flags_become_settings() {
        let s = settings(&[
            "--completion-window",
            "7d",
            "--metadata",
            "team=ml",
            "--metadata",
            "note=a=b",
            "--output-expires-after",
            "7200",
            "--file-expires-after",
            "86400",
        ])
        .expect("valid");
        assert_eq!(s.completion_window, "7d");
        assert_eq!(
            s.metadata,
            BTreeMap::from([
                ("note".to_owned(), "a=b".to_owned()),
                ("team".to_owned(), "ml".to_owned())
            ])
        );
        assert_eq!(s.output_expires_after, Some(7200));
        assert_eq!(s.file_expires_after, Some(86_400));
        assert_eq!(
            s.flags(),
            "--completion-window 7d --metadata \"note=a=b\" --metadata \"team=ml\" \
             --output-expires-after 7200 --file-expires-after 86400"
        );
    }

    #[test]
    fn bad_flags_name_themselves() {
        let err = |flags: &[&str]| settings(flags).expect_err("refused");
        assert!(err(&["--metadata", "team"]).starts_with("--metadata takes KEY=VALUE"));
        assert!(err(&["--metadata", "a=1", "--metadata", "a=2"]).contains("given twice"));
        assert!(err(&["--metadata", "openai_batch_job=x"]).contains("set by the job itself"));
        let many: Vec<String> = (0..14).map(|i| format!("k{i}=v")).collect();
        let mut flags = Vec::new();
        for m in &many {
            flags.extend(["--metadata", m.as_str()]);
        }
        assert!(err(&flags).contains("at most 13"));
        assert!(err(&["--completion-window", "1 week"]).starts_with("--completion-window:"));
        assert!(err(&["--output-expires-after", "60"]).starts_with("--output-expires-after 60:"));
        assert!(err(&["--file-expires-after", "2592001"]).starts_with("--file-expires-after"));
    }
}
