//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Runs OpenAI Batch API jobs of any size to completion, resumably, with progress.
///
/// Exit codes: 0 all requests succeeded; 1 finished with some failed or
/// not-processed requests; 2 bad input or usage (nothing was sent); 3 the
/// run failed; 130, 143, 129 stopped by Ctrl-C, SIGTERM, SIGHUP (run the
/// same command again to resume).
#[derive(Debug, Parser)]
#[command(name = "openai-batch", version, about, long_about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Runs a whole job: validate, shard, submit, wait, download, write RESULTS.
    Run(RunArgs),
    /// Validates and submits a job's batches, prints their ids, and returns.
    Submit(SubmitArgs),
    /// Shows the status of a journal's batches, or of batches by id.
    Status(StatusArgs),
    /// Continues a journal's job to its end and writes its results.
    Results(ResultsArgs),
    /// Cancels a journal's batches, or batches by id.
    Cancel(CancelArgs),
    /// Lists recent batches.
    List(ListArgs),
}

/// Where the API is.
#[derive(Clone, Debug, Args)]
pub(crate) struct ApiArgs {
    /// API base URL [default: $OPENAI_BASE_URL, else https://api.openai.com/v1].
    #[arg(long, value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// The service: openai (OPENAI_API_KEY), azure (AZURE_OPENAI_API_KEY,
    /// AZURE_OPENAI_ENDPOINT, OPENAI_API_VERSION), groq (GROQ_API_KEY), or
    /// custom (OPENAI_API_KEY and OPENAI_BASE_URL or --base-url, Bearer auth,
    /// any completion window), or anthropic (Message Batches; ANTHROPIC_API_KEY,
    /// ANTHROPIC_BASE_URL; short lines get --max-tokens) [default: the
    /// journal's, else openai]. A
    /// journal records it with --api-version, --query and --header (the
    /// names of credential headers only), so commands that continue a job
    /// need none of them.
    #[arg(
        long,
        value_name = "NAME",
        value_parser = ["openai", "azure", "groq", "custom", "anthropic"]
    )]
    pub(crate) provider: Option<String>,
    /// Azure OpenAI's dated API version, e.g. 2024-10-21, sent as
    /// `api-version` on every request [default: the journal's, else
    /// $OPENAI_API_VERSION; unset, the v1 API].
    #[arg(long, value_name = "VERSION")]
    pub(crate) api_version: Option<String>,
    /// With --provider anthropic: the `anthropic-version` header
    /// [default: the journal's, else 2023-06-01].
    #[arg(long, value_name = "VERSION")]
    pub(crate) anthropic_version: Option<String>,
    /// With --provider anthropic: the `anthropic-beta` header, beta
    /// features by name, comma-separated [default: the journal's, else none].
    #[arg(long, value_name = "FEATURES")]
    pub(crate) anthropic_beta: Option<String>,
    /// A header for every request, NAME:VALUE; repeat for more. Values of
    /// headers named like a credential (authorization, *key*, *token*,
    /// *secret*) are never printed.
    #[arg(long, value_name = "NAME:VALUE")]
    pub(crate) header: Vec<String>,
    /// A query parameter for every request, NAME=VALUE; repeat for more.
    #[arg(long, value_name = "NAME=VALUE")]
    pub(crate) query: Vec<String>,
    /// The provider recorded in the job's journal, when continuing a job:
    /// it decides the provider, api-version and query parameters.
    #[arg(skip)]
    pub(crate) recorded: Option<batch_core::job::StoredProvider>,
    /// With --provider azure: a command that prints a Microsoft Entra ID
    /// token, e.g. `az account get-access-token --resource
    /// https://cognitiveservices.azure.com`. It runs before the first
    /// request, again before the token expires and after a 401. It prints
    /// the token alone, or az's JSON (accessToken, expires_on). Without it,
    /// $AZURE_OPENAI_AD_TOKEN is sent as a fixed token, else
    /// $AZURE_OPENAI_API_KEY as the api-key header.
    #[arg(long, value_name = "CMD")]
    pub(crate) azure_ad_token_cmd: Option<String>,
    /// Run against the built-in emulator on a loopback port: no key, no network.
    #[arg(long)]
    pub(crate) emulator: bool,
    /// Allow a plain http:// base URL to a host other than this machine
    /// (the API key then crosses the network unencrypted).
    #[arg(long)]
    pub(crate) allow_insecure_http: bool,
    /// With --emulator: how fast its batches run, in virtual seconds per
    /// real second (a 24h window passes in 7 minutes at the default).
    #[arg(long, value_name = "FACTOR", default_value_t = 200.0)]
    pub(crate) emulator_speed: f64,
    /// With --emulator: faults it injects, e.g. `429-every=7,expire` (every
    /// 7th request is refused with 429, batches expire half way; the fault
    /// spec of the batch-emulator crate).
    #[arg(long, value_name = "SPEC")]
    pub(crate) emulator_faults: Option<String>,
}

/// How input lines become requests and shards.
#[derive(Clone, Debug, Args)]
pub(crate) struct PlanArgs {
    /// The model of short lines (`prompt`/`messages`) that do not name one.
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// The system prompt of short lines; `@FILE` reads it from a file.
    #[arg(long, value_name = "TEXT|@FILE")]
    pub(crate) system: Option<String>,
    /// With --provider anthropic: the `max_tokens` of short lines that do
    /// not set one (Anthropic requires it on every request) [default: 1024].
    #[arg(long, value_name = "N")]
    pub(crate) max_tokens: Option<u32>,
    /// The endpoint, e.g. /v1/chat/completions, /v1/responses, /v1/embeddings
    /// [default: the first full line's url, else /v1/chat/completions].
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// Most requests in one batch (Azure allows 100000).
    #[arg(long, value_name = "N", default_value_t = 50_000)]
    pub(crate) max_requests_per_batch: u64,
    /// Most bytes in one batch input file.
    #[arg(long, value_name = "N", default_value_t = 200 * 1024 * 1024)]
    pub(crate) max_bytes_per_batch: u64,
    /// The batches' completion window, hours or days (e.g. 24h, 7d). OpenAI
    /// accepts only 24h; other providers allow longer windows.
    #[arg(long, value_name = "WINDOW", default_value = crate::settings::DEFAULT_WINDOW)]
    pub(crate) completion_window: String,
    /// Metadata for every batch, KEY=VALUE; repeat for more pairs (at most
    /// 13, as the job adds 3 of the API's 16; keys up to 64 characters,
    /// values up to 512).
    #[arg(long, value_name = "KEY=VALUE")]
    pub(crate) metadata: Vec<String>,
    /// Expire the batches' output and error files this many seconds after
    /// they are created (3600 to 2592000) [default: the provider's].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) output_expires_after: Option<u64>,
    /// Expire the uploaded input files this many seconds after upload (3600
    /// to 2592000) [default: the provider's; OpenAI keeps batch files 30
    /// days, Azure keeps them but allows only 500 that never expire].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) file_expires_after: Option<u64>,
}

/// How a job is driven and shown.
#[derive(Clone, Debug, Args)]
pub(crate) struct DriveArgs {
    /// The journal folder [default: RESULTS.journal beside the output].
    #[arg(long, value_name = "DIR")]
    pub(crate) journal: Option<PathBuf>,
    /// How many shards are in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(crate) parallel: usize,
    /// The longest wait between status polls, in seconds, fractions allowed (a batch is polled
    /// sooner after it changes, and when its counts say it is done) [default: 60; 0.5 with
    /// --emulator].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) poll_interval: Option<f64>,
    /// Stop waiting after this many seconds; the batches keep running.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) max_wait: Option<f64>,
    /// Resubmit failed and not-processed requests up to N more rounds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) retry_failed: u32,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Print only errors and the final summary.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Seconds before a batch refused for a full queue is created again
    /// (doubling each time) [default: 60; 1 with --emulator].
    #[arg(long, hide = true, value_name = "SECONDS")]
    pub(crate) requeue_delay: Option<f64>,
    /// The longest gap between progress lines in a pipe [default: 10].
    #[arg(long, hide = true, value_name = "SECONDS")]
    pub(crate) progress_every: Option<f64>,
    /// A status poll, create, cancel or look-up is cut and retried after
    /// this many seconds [default: 120].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) request_timeout: Option<f64>,
    /// The slowest average rate an upload or a download may have, in
    /// bytes per second: its deadline is 2 minutes plus its size at this
    /// rate [default: 65536].
    #[arg(long, value_name = "BYTES_PER_SECOND")]
    pub(crate) min_transfer_rate: Option<u64>,
    /// An exchange that receives less than 1 KiB in this many seconds is
    /// cut and retried (a silent or trickling server) [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) stall_timeout: Option<f64>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Input JSONL: batch request lines, or short lines with `prompt` or `messages`.
    pub(crate) input: PathBuf,
    /// Where to write one result line per input request, in input order.
    #[arg(short, long, value_name = "RESULTS")]
    pub(crate) output: PathBuf,
    #[command(flatten)]
    pub(crate) plan: PlanArgs,
    #[command(flatten)]
    pub(crate) drive: DriveArgs,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// Input JSONL.
    pub(crate) input: PathBuf,
    /// The journal folder [default: INPUT.journal beside the input].
    #[arg(long, value_name = "DIR")]
    pub(crate) journal: Option<PathBuf>,
    /// Print the job as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Print only errors and the batch ids.
    #[arg(long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) plan: PlanArgs,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Batch ids (or give --journal).
    #[arg(value_name = "BATCH_ID", required_unless_present = "journal")]
    pub(crate) batch_ids: Vec<String>,
    /// The journal of a job.
    #[arg(long, value_name = "DIR", conflicts_with = "batch_ids")]
    pub(crate) journal: Option<PathBuf>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ResultsArgs {
    /// The journal of a job (from `run` or `submit`). It holds everything
    /// the job needs: the input file and the provider flags it was started
    /// with are not needed again.
    #[arg(long, value_name = "DIR")]
    pub(crate) journal: PathBuf,
    /// Where to write the results.
    #[arg(short, long, value_name = "RESULTS")]
    pub(crate) output: PathBuf,
    /// How many shards are in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub(crate) parallel: usize,
    /// The longest wait between status polls, in seconds [default: 60; 0.5 with --emulator].
    #[arg(long, value_name = "SECONDS")]
    pub(crate) poll_interval: Option<f64>,
    /// Stop waiting after this many seconds; the batches keep running.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) max_wait: Option<f64>,
    /// Resubmit failed and not-processed requests up to N more rounds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) retry_failed: u32,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Print only errors and the final summary.
    #[arg(long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    /// Batch ids (or give --journal).
    #[arg(value_name = "BATCH_ID", required_unless_present = "journal")]
    pub(crate) batch_ids: Vec<String>,
    /// The journal of a job: cancels its batches and its unsubmitted shards.
    #[arg(long, value_name = "DIR", conflicts_with = "batch_ids")]
    pub(crate) journal: Option<PathBuf>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// How many batches to list (1 to 100).
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: u32,
    /// List the batches of the service a job's journal runs on (its
    /// provider and base URL, or its built-in emulator, whose batches live
    /// in the journal).
    #[arg(long, value_name = "DIR")]
    pub(crate) journal: Option<PathBuf>,
    /// Print JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) api: ApiArgs,
}

impl From<&ResultsArgs> for DriveArgs {
    fn from(a: &ResultsArgs) -> Self {
        DriveArgs {
            journal: Some(a.journal.clone()),
            parallel: a.parallel,
            poll_interval: a.poll_interval,
            max_wait: a.max_wait,
            retry_failed: a.retry_failed,
            json: a.json,
            quiet: a.quiet,
            requeue_delay: None,
            progress_every: None,
            request_timeout: None,
            min_transfer_rate: None,
            stall_timeout: None,
        }
    }
}
