//! `batch-emulator`: serve the emulated Files and Batches API.
//!
//! The first line on stdout is `listening on http://HOST:PORT/v1`
//! (`http://HOST:PORT` with `--provider anthropic`).

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use batch_core::webhook::WebhookSecret;
use batch_emulator::{Emulator, FaultConfig, WebhookConfig, WebhookFault};
use clap::Parser;

/// An offline server for the OpenAI Files and Batches API.
#[derive(Debug, Parser)]
#[command(name = "batch-emulator", version, about)]
struct Args {
    /// Port to listen on; 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Folder for file bytes and state; reuse it to keep files and batches
    /// across restarts. Default: a temporary folder removed on exit.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Virtual seconds per real second (1000 makes a 60 s validation take 60 ms).
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Fault spec, e.g. `429-every=7,cut-content-every=3,expire`.
    #[arg(long, default_value = "")]
    faults: String,
    /// Seed for ids, output order and probabilistic faults.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Virtual time at start-up, in Unix seconds (default: the wall clock).
    #[arg(long)]
    start_time: Option<i64>,
    /// Stepped clock: ignore real time and move virtual time this many
    /// seconds before each API request (makes answers reproducible).
    #[arg(long)]
    step_secs: Option<f64>,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Accept only this bearer token (default: any non-empty token).
    #[arg(long)]
    api_key: Option<String>,
    /// Answer as this service: openai (`/v1`, Bearer), azure (`/openai/v1`
    /// and `/openai?api-version=`, `api-key` header, 100000 requests per
    /// file, batches never expire), groq (`/openai/v1`, windows 24h to 7d)
    /// or anthropic (Message Batches under `/v1/messages/batches`,
    /// `x-api-key` and `anthropic-version`; the base URL is the bare root).
    #[arg(long, default_value = "openai", value_parser = ["openai", "azure", "groq", "anthropic"])]
    provider: String,
    /// Largest batch input file in bytes [default: 209715200, the API's 200
    /// MiB; 256000000 with `--provider anthropic`, the largest create body].
    #[arg(long)]
    max_batch_file_bytes: Option<u64>,
    /// Most requests in one batch [default: 50000, the API's limit; 100000
    /// for azure and anthropic].
    #[arg(long)]
    max_requests: Option<u64>,
    /// Most embedding inputs in one embeddings batch [default: 50000, the API's limit].
    #[arg(long)]
    max_embedding_inputs: Option<u64>,
    /// Accept any model name (by default an unknown model fails the batch
    /// with `model_not_found`).
    #[arg(long)]
    any_model: bool,
    /// POST a signed event here when a batch ends (`batch.completed`, …).
    #[arg(long, requires = "webhook_secret")]
    webhook_url: Option<String>,
    /// The webhook signing secret, `whsec_` followed by base64.
    #[arg(long, requires = "webhook_url")]
    webhook_secret: Option<String>,
    /// Webhook misbehaviour: `late=SECS` (signed that long ago), `twice`,
    /// or `bad-signature`.
    #[arg(long, requires = "webhook_url")]
    webhook_fault: Option<String>,
    /// Attempts per webhook delivery (non-2xx answers are retried).
    #[arg(long, default_value_t = 5)]
    webhook_attempts: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let faults = match FaultConfig::parse(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "batch-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    if !(args.speed.is_finite() && args.speed > 0.0) {
        let _ = writeln!(
            std::io::stderr(),
            "batch-emulator: --speed must be positive"
        );
        return ExitCode::from(2);
    }
    let mut builder = Emulator::builder()
        .host(args.host)
        .port(args.port)
        .speed(args.speed)
        .seed(args.seed)
        .faults(faults);
    if let Some(t) = args.start_time {
        builder = builder.start_time(t);
    }
    if let Some(step) = args.step_secs {
        match std::time::Duration::try_from_secs_f64(step) {
            Ok(d) => builder = builder.step_per_request(d),
            Err(_) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "batch-emulator: --step-secs must be >= 0"
                );
                return ExitCode::from(2);
            }
        }
    }
    if let Some(mode) = batch_emulator::ProviderMode::parse(&args.provider) {
        builder = builder.provider(mode);
    }
    if let Some(dir) = args.data_dir {
        builder = builder.data_dir(dir);
    }
    if let Some(key) = args.api_key {
        builder = builder.api_key(key);
    }
    if let Some(n) = args.max_batch_file_bytes {
        builder = builder.max_batch_file_bytes(n);
    }
    if let Some(n) = args.max_requests {
        builder = builder.max_requests_per_batch(n);
    }
    if let Some(n) = args.max_embedding_inputs {
        builder = builder.max_embedding_inputs(n);
    }
    builder = builder.accept_any_model(args.any_model);
    if let (Some(url), Some(secret)) = (args.webhook_url, args.webhook_secret) {
        let secret = match WebhookSecret::parse(&secret) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "batch-emulator: --webhook-secret: {e}");
                return ExitCode::from(2);
            }
        };
        let mut webhook = WebhookConfig::new(url, secret).max_attempts(args.webhook_attempts);
        if let Some(spec) = args.webhook_fault {
            match WebhookFault::parse(&spec) {
                Ok(f) => webhook = webhook.fault(f),
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "batch-emulator: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        builder = builder.webhook(webhook);
    }
    let emu = match builder.start().await {
        Ok(e) => e,
        Err(e) => {
            let mut msg = format!("batch-emulator: {e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            let _ = writeln!(std::io::stderr(), "{msg}");
            return ExitCode::FAILURE;
        }
    };
    let signals = Signals::register();
    {
        let mut out = std::io::stdout().lock();
        #[allow(clippy::print_stdout)]
        let written = writeln!(out, "listening on {}", emu.base_url()).and_then(|()| out.flush());
        if written.is_err() {
            return ExitCode::FAILURE;
        }
    }
    signals.wait().await;
    match emu.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "batch-emulator: saving state failed: {e}"
            );
            ExitCode::FAILURE
        }
    }
}

/// Stop signals, registered before the listening line is printed so a
/// signal sent right after it is never missed.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    #[cfg(unix)]
    async fn wait(mut self) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        if self.term.is_none() && self.int.is_none() {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
        tokio::select! {
            _ = recv(&mut self.term) => {}
            _ = recv(&mut self.int) => {}
        }
    }

    #[cfg(not(unix))]
    async fn wait(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
