//! `--azure-ad-token-cmd`: a command that prints a Microsoft Entra ID
//! token, run whenever a job needs a fresh one (before its first request,
//! before the token expires, after a `401`).
//!
//! The command runs through the shell (`sh -c`, or `cmd /C` on Windows).
//! Its standard output is either the token alone, or JSON as
//! `az account get-access-token --resource https://cognitiveservices.azure.com`
//! prints it: the token in `accessToken` (or `access_token`), its expiry
//! in `expires_on` (Unix seconds; a number or a string of digits). Without
//! an expiry, a new token is asked for only after a `401`.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use batch_core::UnixMillis;
use batch_core::credential::{Credential, CredentialError, CredentialSource};

/// How long the command may take; past it, it is killed and the job stops
/// as on any failing credential source (`az` answers in seconds).
const LIMIT: Duration = Duration::from_secs(120);

/// A credential source that runs `cmd` for each token.
pub(crate) fn source(cmd: String) -> CredentialSource {
    CredentialSource::blocking(move || run(&cmd))
}

fn run(cmd: &str) -> Result<Credential, CredentialError> {
    let mut c = if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.arg("/C");
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c");
        c
    };
    let out = run_bounded(c.arg(cmd), LIMIT)?;
    if !out.status.success() {
        // The first line of its error output says why; the output itself
        // may hold a token and is not shown.
        let why = String::from_utf8_lossy(&out.stderr)
            .lines()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().chars().take(200).collect::<String>())
            .unwrap_or_default();
        let status = out
            .status
            .code()
            .map_or_else(|| "a signal".to_owned(), |c| format!("status {c}"));
        return Err(CredentialError::new(if why.is_empty() {
            format!("--azure-ad-token-cmd exited with {status}")
        } else {
            format!("--azure-ad-token-cmd exited with {status}: {why}")
        }));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Runs `c` to its end with its output captured, killing it past `limit`.
fn run_bounded(c: &mut Command, limit: Duration) -> Result<Output, CredentialError> {
    let could_not = |e: std::io::Error| {
        CredentialError::new(format!("--azure-ad-token-cmd could not run: {e}"))
    };
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(could_not)?;
    // Both pipes are drained as the command writes, so it never blocks on
    // a full pipe while this thread waits for it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(could_not)? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CredentialError::new(format!(
                "--azure-ad-token-cmd did not finish within {} s and was stopped",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// The token (and expiry) in a command's output.
fn parse(output: &str) -> Result<Credential, CredentialError> {
    let text = output.trim();
    if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|_| {
            CredentialError::new("--azure-ad-token-cmd printed JSON that does not parse")
        })?;
        let token = ["accessToken", "access_token"]
            .iter()
            .find_map(|k| v.get(*k).and_then(serde_json::Value::as_str))
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                CredentialError::new(
                    "--azure-ad-token-cmd printed JSON without an accessToken field",
                )
            })?;
        let expires = v.get("expires_on").and_then(|e| {
            e.as_i64()
                .or_else(|| e.as_str().and_then(|s| s.trim().parse::<i64>().ok()))
        });
        return Ok(Credential::new(
            token.trim(),
            expires.map(UnixMillis::from_secs),
        ));
    }
    if text.is_empty() || text.contains(char::is_whitespace) {
        return Err(CredentialError::new(
            "--azure-ad-token-cmd printed no token (expected the token alone, or JSON with accessToken)",
        ));
    }
    Ok(Credential::new(text, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_bare_token_or_az_json() {
        let bare = parse("eyJ0eXAi.token\n").expect("bare");
        assert_eq!(bare.token.expose_secret(), "eyJ0eXAi.token");
        assert_eq!(bare.expires_at, None);
        let az = parse(
            r#"{"accessToken": "eyJ-az", "expiresOn": "2026-01-01 10:00:00.000000", "expires_on": 1767261600, "tokenType": "Bearer"}"#,
        )
        .expect("az json");
        assert_eq!(az.token.expose_secret(), "eyJ-az");
        assert_eq!(az.expires_at, Some(UnixMillis::from_secs(1_767_261_600)));
        let string_expiry =
            parse(r#"{"access_token": "t", "expires_on": "1767261600"}"#).expect("string");
        assert_eq!(
            string_expiry.expires_at,
            Some(UnixMillis(1_767_261_600_000))
        );
        for bad in ["", "two words", "{\"token\": 1}", "{not json"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.message().contains("--azure-ad-token-cmd"), "{e}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_command_is_an_error_with_its_reason_not_its_output() {
        let e = run("echo secret-output; echo 'not logged in' >&2; exit 3").expect_err("fails");
        assert!(e.message().contains("status 3: not logged in"), "{e}");
        assert!(!e.message().contains("secret-output"), "{e}");
        let ok = run("printf 'tok-123'").expect("runs");
        assert_eq!(ok.token.expose_secret(), "tok-123");
    }

    #[cfg(unix)]
    #[test]
    fn a_command_that_never_ends_is_stopped() {
        let mut c = Command::new("sh");
        c.args(["-c", "exec sleep 600"]);
        let e = run_bounded(&mut c, Duration::from_secs(1)).expect_err("stopped");
        assert!(e.message().contains("did not finish within 1 s"), "{e}");
    }
}
