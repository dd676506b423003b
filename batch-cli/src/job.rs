//! Running a journal's job: planning (or re-planning to resume), connecting,
//! driving each round with `batch_blocking::run`, and retry rounds.
//!
//! Everything the job decides (what to send, when to wait, what to retry
//! inside a round, how to reconcile after a crash) is `batch_core::job::Job`'s.
//! This module only stores what the job hands it ([`JournalIo`]), shows its
//! events, and chooses between rounds (`--retry-failed`).

use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use batch_blocking::{Client, ClientConfig, Clock, SystemClock};
use batch_core::api::{ApiConfig, ShardRef};
use batch_core::job::{
    Checkpoint, ExchangeLimits, Job, JobEvent, JobIo, JobPlan, JobResult, JobSummary, ShardLimits,
    StopAfter, StoredJob, StoredProvider, StoredShardFile,
};
use batch_emulator::{Emulator, EmulatorHandle, FaultConfig};

use crate::args::{ApiArgs, DriveArgs, PlanArgs};
use crate::error::{CliError, chain};
use crate::input::{self, PlanSpec, shard_file_name};
use crate::interrupt::{CliClock, Interrupt, Signal, parked_notifier};
use crate::journal::{
    IndexMap, Journal, JournalLock, PlanFile, PlanOptions, ResultStore, RoundFile,
    create_private_dir_all, create_private_file,
};
use crate::progress::Progress;
use crate::render;
use crate::settings::BatchSettings;
use crate::term;

/// What every command shares: the Ctrl-C flag, the supervisor's channel
/// and the progress display.
pub(crate) struct Ctx {
    pub(crate) interrupt: Interrupt,
    pub(crate) supervisor: Sender<Signal<Result<u8, CliError>>>,
    pub(crate) progress: Rc<RefCell<Progress>>,
    /// When the command started.
    pub(crate) started: std::time::Instant,
}

impl Ctx {
    pub(crate) fn note(&self, line: &str) {
        self.progress.borrow().note(line);
    }
}

/// The API a command talks to, and the emulator behind it if it is built in.
pub(crate) struct Api {
    pub(crate) client: Client,
    pub(crate) base_url: String,
    pub(crate) emulator: Option<EmulatorHandle>,
    /// The provider settings to record in the journal (no key).
    pub(crate) provider: StoredProvider,
}

/// The key used with the built-in emulator (it accepts any key).
const EMULATOR_KEY: &str = "sk-emulator";

/// The `max_tokens` of a Message Batches job's short lines that set none
/// when `--max-tokens` is not given (Anthropic requires it on every request).
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 1024;

/// The `max_tokens` short lines without one get: `--max-tokens`, else
/// [`DEFAULT_MAX_TOKENS`] for a Message Batches job, else none.
fn effective_max_tokens(opts: &PlanOptions) -> Option<u32> {
    let anthropic = opts.endpoint == batch_core::anthropic::MESSAGES_PATH;
    opts.max_tokens.or(anthropic.then_some(DEFAULT_MAX_TOKENS))
}

/// Checks, before a journal is made, what [`connect`] would refuse: a job
/// that needs a key and has none, or a key that would go over plain
/// `http://` to a host that is not this machine.
pub(crate) fn preflight(args: &ApiArgs, stored: Option<&PlanFile>) -> Result<(), CliError> {
    if args.emulator || stored.is_some_and(|p| p.emulator) {
        return Ok(());
    }
    api_config(args, stored).map(|_| ())
}

/// The API's settings from the environment: the key, and the base URL from
/// `--base-url`, else `OPENAI_BASE_URL`, else the journal's, else the
/// public API's. Refuses plain `http://` to anything but a loopback address
/// without `--allow-insecure-http`: the key is sent with every request.
fn api_config(args: &ApiArgs, stored: Option<&PlanFile>) -> Result<ApiConfig, CliError> {
    let mut cfg = crate::provider::from_env(args)?;
    let env_base = std::env::var(match crate::provider::kind(args) {
        batch_core::api::ProviderKind::Azure => "AZURE_OPENAI_ENDPOINT",
        batch_core::api::ProviderKind::Groq => "GROQ_BASE_URL",
        batch_core::api::ProviderKind::Anthropic => "ANTHROPIC_BASE_URL",
        _ => "OPENAI_BASE_URL",
    })
    .ok()
    .filter(|b| !b.trim().is_empty());
    if let Some(base) = &args.base_url {
        cfg = cfg.with_base_url(base.clone());
    } else if env_base.is_none()
        && let Some(p) = stored.filter(|p| !p.base_url.is_empty())
    {
        cfg = cfg.with_base_url(p.base_url.clone());
    }
    let cfg = crate::provider::apply_extras(cfg, args)?;
    if !args.allow_insecure_http {
        check_not_plain_http(&cfg.base_url)?;
    }
    Ok(cfg)
}

/// Refuses an `http://` base URL whose host is not a loopback address.
fn check_not_plain_http(base_url: &str) -> Result<(), CliError> {
    let Ok(uri) = base_url.trim().parse::<http::Uri>() else {
        return Ok(());
    };
    if !uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http"))
    {
        return Ok(());
    }
    let host = uri.host().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "the base URL is plain http:// to {host}, which would send the API key \
             unencrypted: use https://, or pass --allow-insecure-http if the network to it \
             is trusted"
        )))
    }
}

/// The same URL, whatever its trailing slashes.
fn same_base_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

/// Connects to the API: the built-in emulator (with `--emulator`, or for a
/// journal made with it), or the API of [`api_config`] with
/// `OPENAI_API_KEY`. Warns when a journal's job is resumed against another
/// base URL than the one its batches were created on.
pub(crate) fn connect(
    ctx: &Ctx,
    args: &ApiArgs,
    journal: Option<&Journal>,
    stored: Option<&PlanFile>,
    limits: Option<&ShardLimits>,
) -> Result<Api, CliError> {
    if let Some(p) = stored.filter(|p| args.emulator && !p.emulator && !p.base_url.is_empty()) {
        return Err(CliError::usage(format!(
            "the job in this journal runs against {}, not the built-in emulator: run it \
             without --emulator",
            p.base_url
        )));
    }
    let use_emulator = args.emulator || stored.is_some_and(|p| p.emulator);
    if use_emulator {
        if !(args.emulator_speed.is_finite() && args.emulator_speed > 0.0) {
            return Err(CliError::usage(
                "--emulator-speed must be a positive number",
            ));
        }
        let mut b = Emulator::builder().speed(args.emulator_speed);
        let mode = match crate::provider::kind(args) {
            batch_core::api::ProviderKind::Azure => batch_emulator::ProviderMode::Azure,
            batch_core::api::ProviderKind::Groq => batch_emulator::ProviderMode::Groq,
            batch_core::api::ProviderKind::Anthropic => batch_emulator::ProviderMode::Anthropic,
            _ => batch_emulator::ProviderMode::OpenAi,
        };
        if mode != batch_emulator::ProviderMode::OpenAi {
            b = b.provider(mode);
        }
        if mode == batch_emulator::ProviderMode::Anthropic {
            // Inputs written for OpenAI name OpenAI's models; Anthropic's
            // API answers those with `not_found_error`. Said only by the
            // commands that send requests (`limits` given).
            b = b.accept_any_model(true);
            if limits.is_some() {
                ctx.note(
                    "the built-in emulator's Anthropic mode accepts any model name; \
                     Anthropic's API refuses models it does not serve",
                );
            }
        }
        if let Some(j) = journal {
            b = b.data_dir(j.emulator_dir());
        }
        // The emulator keeps the Batch API's own limits, so a batch the API
        // would refuse fails here too; say so when the flags ask for more.
        if let Some(l) = limits {
            let real = b.config();
            let (max_requests, max_bytes) =
                (real.max_requests_per_batch, real.max_batch_file_bytes);
            if l.max_requests > max_requests {
                ctx.note(&format!(
                    "--max-requests-per-batch {} is above the Batch API's limit of {max_requests}; \
                     the emulator keeps that limit, so larger batches fail validation",
                    l.max_requests
                ));
            }
            if l.max_bytes > max_bytes {
                ctx.note(&format!(
                    "--max-bytes-per-batch {} is above the Batch API's limit of {max_bytes} \
                     bytes; the emulator keeps that limit, so larger files are refused",
                    l.max_bytes
                ));
            }
        }
        if let Some(spec) = &args.emulator_faults {
            let faults = FaultConfig::parse(spec)
                .map_err(|e| CliError::usage(format!("--emulator-faults: {e}")))?;
            b = b.faults(faults);
        }
        let handle = b.start_blocking().map_err(|e| {
            CliError::failed(format!(
                "the built-in emulator did not start: {}",
                chain(&e)
            ))
        })?;
        let cfg =
            crate::provider::emulator_api(args, &format!("http://{}", handle.addr()), EMULATOR_KEY);
        let cfg = crate::provider::apply_extras(cfg, args)?;
        let base_url = cfg.base_url.clone();
        ctx.note(&format!(
            "running against the built-in emulator at {base_url} as {} (no key, no network)",
            crate::provider::kind(args).as_str()
        ));
        let mut provider = StoredProvider::from_config(&cfg);
        // The emulator's port changes from run to run.
        provider.base_url = String::new();
        if args.azure_ad_token_cmd.is_some() {
            ctx.note("the built-in emulator takes no token: --azure-ad-token-cmd is not run");
        }
        let client = client(cfg, None)?;
        return Ok(Api {
            client,
            base_url,
            emulator: Some(handle),
            provider,
        });
    }
    let cfg = api_config(args, stored)?;
    let base_url = cfg.base_url.clone();
    if let Some(p) = stored.filter(|p| !p.base_url.is_empty())
        && !same_base_url(&p.base_url, &base_url)
    {
        term::err(&format!(
            "warning: the job in this journal was created on {}, but this run talks to \
                 {base_url}: its batches and files may not be found there",
            p.base_url
        ));
    }
    let provider = StoredProvider::from_config(&cfg);
    Ok(Api {
        client: client(cfg, args.azure_ad_token_cmd.as_ref())?,
        base_url,
        emulator: None,
        provider,
    })
}

/// A client for `cfg`, taking its tokens from `token_cmd` if given.
fn client(cfg: ApiConfig, token_cmd: Option<&String>) -> Result<Client, CliError> {
    let mut config = ClientConfig::new(cfg);
    if let Some(cmd) = token_cmd {
        config = config.with_credential(crate::token_cmd::source(cmd.clone()));
    }
    Client::new(config).map_err(|e| CliError::usage(chain(&e)))
}

/// A job's plan, new or rebuilt from the same input to resume.
pub(crate) struct Prepared {
    pub(crate) planfile: PlanFile,
    pub(crate) plan: JobPlan,
    /// True when the plan is new: `round-0.job.json` is written once connected.
    pub(crate) fresh: bool,
}

/// The plan options the user asked for.
pub(crate) struct Requested {
    opts: PlanOptions,
    /// Whether `--endpoint` was given (else it comes from the input).
    endpoint_given: bool,
}

/// The longest `--system @FILE` read.
const MAX_SYSTEM_BYTES: u64 = 1024 * 1024;

/// Reads the system prompt of `--system @FILE`: at most [`MAX_SYSTEM_BYTES`]
/// of UTF-8 text, its trailing newlines removed.
fn read_system(path: &str) -> Result<String, CliError> {
    let fail =
        |why: String| CliError::usage(format!("cannot read the system prompt from {path}: {why}"));
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SYSTEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_SYSTEM_BYTES {
        return Err(fail(format!(
            "it is over {} MiB; a system prompt is sent with every request",
            MAX_SYSTEM_BYTES / (1024 * 1024)
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| fail("it is not UTF-8 text".into()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Checks the plan options the user asked for (reading `--system @FILE`);
/// `api` says how request lines write their url.
///
/// A Message Batches job (`--provider anthropic`) has the `/v1/messages`
/// endpoint and takes `--max-tokens` (else [`DEFAULT_MAX_TOKENS`]); other
/// providers refuse `--max-tokens` (a short line sets its own `max_tokens`).
pub(crate) fn requested_options(args: &PlanArgs, api: &ApiArgs) -> Result<Requested, CliError> {
    let system = match &args.system {
        Some(s) if s.starts_with('@') => Some(read_system(&s[1..])?),
        other => other.clone(),
    };
    let anthropic = crate::provider::kind(api) == batch_core::api::ProviderKind::Anthropic;
    let endpoint = match (&args.endpoint, anthropic) {
        (Some(e), true) => {
            return Err(CliError::usage(format!(
                "--endpoint {e}: --provider anthropic sends every request to {} (Message \
                 Batches); leave --endpoint out",
                batch_core::anthropic::MESSAGES_PATH
            )));
        }
        (None, true) => Some(batch_core::anthropic::messages_endpoint()),
        (Some(e), false) => Some(input::parse_endpoint(e).map_err(CliError::usage)?),
        (None, false) => None,
    };
    if let Some(n) = args.max_tokens {
        if !anthropic {
            return Err(CliError::usage(format!(
                "--max-tokens {n} is for --provider anthropic; for {} give each short line \
                 its own \"max_tokens\"",
                crate::provider::kind(api).as_str()
            )));
        }
        if n == 0 {
            return Err(CliError::usage("--max-tokens must be at least 1"));
        }
    }
    if args.max_requests_per_batch == 0 {
        return Err(CliError::usage(
            "--max-requests-per-batch must be at least 1",
        ));
    }
    if args.max_bytes_per_batch == 0 {
        return Err(CliError::usage("--max-bytes-per-batch must be at least 1"));
    }
    let batch = BatchSettings::from_args(args)?;
    Ok(Requested {
        opts: PlanOptions {
            model: args.model.clone(),
            system,
            endpoint: endpoint
                .as_ref()
                .map(|e| e.as_str().to_owned())
                .unwrap_or_default(),
            max_requests_per_batch: args.max_requests_per_batch,
            max_bytes_per_batch: args.max_bytes_per_batch,
            max_tokens: args.max_tokens,
            batch,
            unversioned_urls: crate::provider::unversioned_urls(api),
        },
        endpoint_given: endpoint.is_some(),
    })
}

/// The spec of a retry round's input: full request lines, as encoded for round 0.
fn round_spec(pf: &PlanFile) -> PlanSpec {
    PlanSpec {
        model: None,
        system: None,
        shard_lines: true,
        ..spec_of(&pf.options)
    }
}

fn spec_of(opts: &PlanOptions) -> PlanSpec {
    PlanSpec {
        model: opts.model.clone(),
        system: opts.system.clone(),
        endpoint: batch_core::Endpoint::parse(&opts.endpoint),
        limits: ShardLimits::new(opts.max_requests_per_batch, opts.max_bytes_per_batch),
        url_style: if opts.unversioned_urls {
            batch_core::provider::UrlStyle::Unversioned
        } else {
            batch_core::provider::UrlStyle::Versioned
        },
        max_tokens: effective_max_tokens(opts),
        anthropic: opts.endpoint == batch_core::anthropic::MESSAGES_PATH,
        shard_lines: false,
    }
}

/// Plans the job of `input` in `journal` (locked by `lock`), or rebuilds
/// the plan of the job already there from its shard files. `requested` is
/// `None` to take the options stored in the journal; `input` is `None` when
/// the command names only the journal (the input may be gone: it is not
/// needed once the job is planned).
pub(crate) fn prepare(
    ctx: &Ctx,
    input: Option<&Path>,
    source: &str,
    requested: Option<&Requested>,
    journal: &Journal,
    lock: &JournalLock,
) -> Result<Prepared, CliError> {
    if let Some(pf) = journal.read_plan()? {
        if let Some(r) = requested {
            check_same_options(journal, &pf.options, &r.opts, r.endpoint_given)?;
        }
        if let Some(input) = input {
            let (len, hash) = input::input_digest(input)?;
            if len != pf.input_len || hash != pf.input_hash {
                return Err(CliError::usage(format!(
                    "{source} changed since the job in {} started: restore it, or use a new \
                     --journal",
                    journal.dir().display()
                )));
            }
        }
        let plan = plan_from_shards(ctx, journal, &pf.shards, &spec_of(&pf.options), &pf.job_id)?;
        if plan.digest() != pf.digest {
            return Err(CliError::failed(format!(
                "the journal is damaged: the shard files of the job in {} rebuild another plan \
                 than the one it started with",
                journal.dir().display()
            )));
        }
        return Ok(Prepared {
            planfile: pf,
            plan,
            fresh: false,
        });
    }
    let Some(input) = input else {
        return Err(CliError::usage(format!(
            "there is no job in {}",
            journal.dir().display()
        )));
    };
    let Some(requested) = requested else {
        return Err(CliError::usage(format!(
            "there is no job in {}",
            journal.dir().display()
        )));
    };
    let mut opts = requested.opts.clone();
    if !requested.endpoint_given {
        opts.endpoint = input::detect_endpoint(input)?.as_str().to_owned();
    }
    let created = lock.created();
    let shards = journal.shards_dir(0);
    clear_unplanned(journal)?;
    create_private_dir_all(&shards)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", shards.display())))?;
    let job_id = format!("ob-{:016x}", random_u64());
    let planned = input::build_plan(
        input,
        source,
        &spec_of(&opts),
        &job_id,
        Some(&shards),
        &ctx.interrupt,
    );
    let planned = match planned {
        Ok(p) => p,
        Err(e) => {
            // Nothing was sent: leave no trace of the refused input.
            let _ = if created {
                fs::remove_dir_all(journal.dir())
            } else {
                fs::remove_dir_all(&shards)
            };
            return Err(e);
        }
    };
    if planned.filled_max_tokens > 0 && opts.max_tokens.is_none() {
        let n = planned.filled_max_tokens;
        ctx.note(&format!(
            "{n} short line{} set{} no max_tokens: sending max_tokens {DEFAULT_MAX_TOKENS}, the \
             default of --max-tokens",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" },
        ));
    }
    // The shard files' names are durable before the job that names them.
    crate::journal::sync_dir(&shards)
        .map_err(|e| CliError::failed(format!("cannot sync {}: {e}", shards.display())))?;
    let shards = planned
        .shard_files
        .into_iter()
        .map(|mut f| {
            f.file = Journal::shard_record_name(0, &f.file);
            f
        })
        .collect();
    let planfile = PlanFile {
        job_id,
        input: input.to_owned(),
        input_len: planned.input_len,
        input_hash: planned.input_hash,
        options: opts,
        digest: planned.plan.digest(),
        model: planned.model,
        round: 0,
        created_at: SystemClock.now().as_millis(),
        base_url: String::new(),
        emulator: false,
        seed: random_u64(),
        shards,
        provider: None,
    };
    Ok(Prepared {
        planfile,
        plan: planned.plan,
        fresh: true,
    })
}

/// Removes what a run that never committed its plan may have left.
fn clear_unplanned(journal: &Journal) -> Result<(), CliError> {
    let dir = journal.dir();
    for name in ["shards", "rounds"] {
        let p = dir.join(name);
        if p.exists() {
            fs::remove_dir_all(&p)
                .map_err(|e| CliError::failed(format!("cannot clear {}: {e}", p.display())))?;
        }
    }
    let entries = fs::read_dir(dir)
        .map_err(|e| CliError::failed(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let leftover = name.ends_with(".job.json")
            || matches!(
                name.as_str(),
                "checkpoint.json" | "summary.json" | "results.spill" | "results.index"
            );
        if leftover {
            let p = entry.path();
            fs::remove_file(&p)
                .map_err(|e| CliError::failed(format!("cannot clear {}: {e}", p.display())))?;
        }
    }
    Ok(())
}

fn check_same_options(
    journal: &Journal,
    have: &PlanOptions,
    want: &PlanOptions,
    endpoint_given: bool,
) -> Result<(), CliError> {
    let differs = |what: String| {
        CliError::usage(format!(
            "the job in {} was started with {what}: run the same command to resume it, \
             or use a new --journal",
            journal.dir().display()
        ))
    };
    let show = |flag: &str, v: &Option<String>| match v {
        Some(s) => format!("{flag} {s:?}"),
        None => format!("no {flag}"),
    };
    if have.model != want.model {
        return Err(differs(show("--model", &have.model)));
    }
    if have.system != want.system {
        return Err(differs(show("--system", &have.system)));
    }
    if endpoint_given && have.endpoint != want.endpoint {
        return Err(differs(format!("--endpoint {}", have.endpoint)));
    }
    if effective_max_tokens(have) != effective_max_tokens(want) {
        return Err(differs(
            match (have.max_tokens, effective_max_tokens(have)) {
                (Some(n), _) => format!("--max-tokens {n}"),
                (None, Some(n)) => format!("no --max-tokens (its default, {n})"),
                (None, None) => "no --max-tokens".to_owned(),
            },
        ));
    }
    if have.max_requests_per_batch != want.max_requests_per_batch {
        return Err(differs(format!(
            "--max-requests-per-batch {}",
            have.max_requests_per_batch
        )));
    }
    if have.max_bytes_per_batch != want.max_bytes_per_batch {
        return Err(differs(format!(
            "--max-bytes-per-batch {}",
            have.max_bytes_per_batch
        )));
    }
    if have.batch != want.batch {
        return Err(differs(have.batch.flags()));
    }
    Ok(())
}

/// Records where the job's batches live and commits the plan: from here on,
/// the same command resumes this job.
pub(crate) fn commit_plan(
    journal: &Journal,
    prepared: &mut Prepared,
    api: &Api,
) -> Result<(), CliError> {
    if prepared.fresh {
        prepared.planfile.base_url = if api.emulator.is_some() {
            String::new()
        } else {
            api.base_url.clone()
        };
        prepared.planfile.emulator = api.emulator.is_some();
        prepared.planfile.provider = Some(api.provider.clone());
        journal.write_plan(&prepared.planfile)?;
        prepared.fresh = false;
    }
    Ok(())
}

/// How a job is driven.
pub(crate) struct Drive {
    pub(crate) parallel: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) max_wait: Option<Duration>,
    pub(crate) retry_failed: u32,
    pub(crate) requeue_delay: Option<Duration>,
    pub(crate) stop: StopAfter,
    pub(crate) cancel: bool,
    /// The longest gap between progress lines in a pipe.
    pub(crate) heartbeat: Duration,
    /// How long one exchange may take, and how slow it may be.
    pub(crate) exchange: ExchangeLimits,
}

/// The longest duration a flag takes: a year, far past any batch's
/// completion window.
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

fn seconds(flag: &str, v: f64) -> Result<Duration, CliError> {
    if v.is_finite() && v > 0.0 && v <= MAX_SECONDS {
        Duration::try_from_secs_f64(v).map_err(|e| CliError::usage(format!("{flag}: {e}")))
    } else {
        Err(CliError::usage(format!(
            "{flag} must be a positive number of seconds, at most {MAX_SECONDS} (a year)"
        )))
    }
}

impl Drive {
    /// The poll interval without `--poll-interval`: a minute, half a second
    /// with the built-in emulator.
    fn default_poll(emulator: bool) -> Duration {
        if emulator {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(60)
        }
    }

    /// The requeue delay without `--requeue-delay`: the core's, one second
    /// with the built-in emulator.
    fn default_requeue(emulator: bool) -> Option<Duration> {
        emulator.then(|| Duration::from_secs(1))
    }

    /// For a single operation (`submit`, `cancel`): every shard at once, one round.
    pub(crate) fn single(stop: StopAfter, cancel: bool, emulator: bool) -> Drive {
        Drive {
            parallel: usize::MAX,
            poll_interval: Self::default_poll(emulator),
            max_wait: None,
            retry_failed: 0,
            requeue_delay: Self::default_requeue(emulator),
            stop,
            cancel,
            heartbeat: crate::progress::PLAIN_EVERY,
            exchange: ExchangeLimits::default(),
        }
    }

    pub(crate) fn from_args(d: &DriveArgs, emulator: bool) -> Result<Drive, CliError> {
        if d.parallel == 0 {
            return Err(CliError::usage("--parallel must be at least 1"));
        }
        let poll_interval = match d.poll_interval {
            Some(s) => seconds("--poll-interval", s)?,
            None => Self::default_poll(emulator),
        };
        let max_wait = d.max_wait.map(|s| seconds("--max-wait", s)).transpose()?;
        let requeue_delay = match d.requeue_delay {
            Some(s) => Some(seconds("--requeue-delay", s)?),
            None => Self::default_requeue(emulator),
        };
        let heartbeat = match d.progress_every {
            Some(s) => seconds("--progress-every", s)?,
            None => crate::progress::PLAIN_EVERY,
        };
        let mut exchange = ExchangeLimits::default();
        if let Some(s) = d.request_timeout {
            exchange.json_deadline = seconds("--request-timeout", s)?;
        }
        if let Some(rate) = d.min_transfer_rate {
            if rate == 0 {
                return Err(CliError::usage("--min-transfer-rate must be at least 1"));
            }
            exchange.transfer_rate = rate;
        }
        if let Some(s) = d.stall_timeout {
            exchange.stall_window = seconds("--stall-timeout", s)?;
        }
        Ok(Drive {
            heartbeat,
            exchange,
            parallel: d.parallel,
            poll_interval,
            max_wait,
            retry_failed: d.retry_failed,
            requeue_delay,
            stop: StopAfter::Finished,
            cancel: false,
        })
    }
}

/// What driving a job produced.
pub(crate) struct Driven {
    /// The summary of each round run or found, in order.
    pub(crate) summaries: Vec<JobSummary>,
    pub(crate) store: ResultStore,
}

/// Drives the job of `prepared` through its rounds.
pub(crate) fn drive(
    ctx: &Ctx,
    api: &Api,
    journal: &Journal,
    prepared: Prepared,
    d: &Drive,
) -> Result<Driven, CliError> {
    let Prepared {
        mut planfile, plan, ..
    } = prepared;
    let mut store = ResultStore::open(journal.dir(), plan.len())?;
    let mut round = planfile.round;
    let mut summaries = Vec::new();
    for r in 0..round {
        if let Some(s) = journal.read_summary::<JobSummary>(r)? {
            summaries.push(s);
        }
    }
    let mut first = Some(plan);
    loop {
        let (plan, map) = if round == 0 {
            match first.take() {
                Some(p) => (p, None),
                None => return Err(CliError::failed("round 0 was run twice")),
            }
        } else {
            first = None;
            load_round(ctx, journal, &planfile, round)?
        };
        let summary = run_round(
            ctx,
            api,
            journal,
            round,
            &planfile.options.batch,
            plan,
            map.as_ref(),
            &mut store,
            d,
        )?;
        if d.stop != StopAfter::Finished {
            summaries.push(summary);
            break;
        }
        journal.write_summary(round, &summary)?;
        let stopped = summary.error.is_some() || summary.timed_out || summary.cancelled;
        summaries.push(summary);
        if stopped || round >= d.retry_failed {
            break;
        }
        if !new_round(ctx, journal, &mut planfile, &store, round + 1)? {
            break;
        }
        round += 1;
    }
    Ok(Driven { summaries, store })
}

/// Rebuilds a plan from recorded shard files (the requests as encoded, so
/// no model or system prompt is applied again) and checks that it has the
/// same shards as the files.
fn plan_from_shards(
    ctx: &Ctx,
    journal: &Journal,
    files: &[StoredShardFile],
    spec: &PlanSpec,
    job_id: &str,
) -> Result<JobPlan, CliError> {
    if files.is_empty() {
        return Err(CliError::failed(format!(
            "the journal is damaged: the job in {} records no shard files",
            journal.dir().display()
        )));
    }
    let spec = PlanSpec {
        model: None,
        system: None,
        shard_lines: true,
        ..spec.clone()
    };
    let what = format!("the shard files in {}", journal.dir().display());
    let planned = input::build_plan_from(
        journal.shard_reader(files)?,
        &what,
        None,
        "shards",
        &spec,
        job_id,
        None,
        &ctx.interrupt,
    )?;
    journal.check_shards(files, &planned.plan)?;
    Ok(planned.plan)
}

/// Rebuilds the plan of retry round `round` from its shard files.
fn load_round(
    ctx: &Ctx,
    journal: &Journal,
    pf: &PlanFile,
    round: u32,
) -> Result<(JobPlan, Option<IndexMap>), CliError> {
    let damaged = || {
        CliError::failed(format!(
            "the journal is damaged: round {round} of the job in {} is incomplete",
            journal.dir().display()
        ))
    };
    let rf = journal.read_round(round)?.ok_or_else(damaged)?;
    let plan = plan_from_shards(ctx, journal, &rf.shards, &round_spec(pf), &rf.job_id)?;
    if plan.digest() != rf.digest {
        return Err(damaged());
    }
    let map = IndexMap::open(&journal.round_dir(round).join("map.bin"))?;
    Ok((plan, Some(map)))
}

/// Starts retry round `round` with every request whose outcome is worth
/// another try. Returns false if there is none.
fn new_round(
    ctx: &Ctx,
    journal: &Journal,
    pf: &mut PlanFile,
    store: &ResultStore,
    round: u32,
) -> Result<bool, CliError> {
    let dir = journal.round_dir(round);
    let fail = |what: &Path, e: io::Error| {
        CliError::failed(format!("cannot write {}: {e}", what.display()))
    };
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| fail(&dir, e))?;
    }
    let shards = journal.shards_dir(round);
    create_private_dir_all(&shards).map_err(|e| fail(&shards, e))?;
    let input_path = dir.join("input.jsonl");
    let map_path = dir.join("map.bin");
    let mut input_w =
        BufWriter::new(create_private_file(&input_path).map_err(|e| fail(&input_path, e))?);
    let mut map_w = BufWriter::new(create_private_file(&map_path).map_err(|e| fail(&map_path, e))?);
    let mut kinds = store.kinds();
    let mut index = 0u64;
    let mut chosen = 0u64;
    let mut line = Vec::new();
    for path in journal.shard_paths(&pf.shards)? {
        let read_err =
            |e: io::Error| CliError::failed(format!("cannot read {}: {e}", path.display()));
        let mut r = BufReader::new(File::open(&path).map_err(read_err)?);
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).map_err(read_err)? == 0 {
                break;
            }
            let kind = kinds
                .next()
                .transpose()
                .map_err(|e| CliError::failed(format!("cannot read results.index: {e}")))?
                .ok_or_else(|| {
                    CliError::failed("the journal is damaged: more shard lines than results")
                })?;
            if kind.is_retryable() {
                input_w.write_all(&line).map_err(|e| fail(&input_path, e))?;
                map_w
                    .write_all(&index.to_le_bytes())
                    .map_err(|e| fail(&map_path, e))?;
                chosen += 1;
            }
            index += 1;
        }
    }
    let finish = |w: BufWriter<File>, p: &Path| -> Result<(), CliError> {
        let f = w.into_inner().map_err(|e| fail(p, e.into_error()))?;
        f.sync_all().map_err(|e| fail(p, e))
    };
    finish(input_w, &input_path)?;
    finish(map_w, &map_path)?;
    if chosen == 0 {
        fs::remove_dir_all(&dir).map_err(|e| fail(&dir, e))?;
        return Ok(false);
    }
    let job_id = format!("{}-r{round}", pf.job_id);
    let planned = input::build_plan(
        &input_path,
        &format!("rounds/{round}/input.jsonl"),
        &round_spec(pf),
        &job_id,
        Some(&shards),
        &ctx.interrupt,
    )?;
    crate::journal::sync_dir(&shards).map_err(|e| fail(&shards, e))?;
    let shards = planned
        .shard_files
        .into_iter()
        .map(|mut f| {
            f.file = Journal::shard_record_name(round, &f.file);
            f
        })
        .collect();
    journal.write_round(
        &RoundFile {
            job_id,
            round,
            requests: planned.plan.len(),
            input_hash: planned.input_hash,
            digest: planned.plan.digest(),
            shards,
        },
        pf,
    )?;
    pf.round = round;
    journal.write_plan(pf)?;
    // The round's requests are in its shard files now.
    fs::remove_file(&input_path).map_err(|e| fail(&input_path, e))?;
    ctx.note(&format!(
        "round {round}: resubmitting {chosen} failed or unprocessed requests"
    ));
    Ok(true)
}

/// Runs one round's job from its checkpoint (or from the start) to its stop point.
#[allow(clippy::too_many_arguments)]
fn run_round(
    ctx: &Ctx,
    api: &Api,
    journal: &Journal,
    round: u32,
    batch: &BatchSettings,
    plan: JobPlan,
    map: Option<&IndexMap>,
    store: &mut ResultStore,
    d: &Drive,
) -> Result<JobSummary, CliError> {
    // With --azure-ad-token-cmd, the job asks for its tokens.
    let mut cfg = api.client.job_config();
    batch.apply(&mut cfg);
    // The service may not take the window (OpenAI and Azure take only 24h).
    batch_core::job::check_window(cfg.api.provider(), &cfg.completion_window)
        .map_err(|e| CliError::usage(format!("--completion-window: {e}")))?;
    cfg.poll_interval = d.poll_interval;
    // `--poll-interval` is the longest wait: a batch is polled soon after
    // it changes and when its counts say it is done.
    cfg.adaptive_polling = true;
    cfg.max_wait = d.max_wait;
    cfg.max_parallel = d.parallel;
    cfg.exchange = d.exchange.clone();
    cfg.seed = random_u64();
    if let Some(delay) = d.requeue_delay {
        cfg.requeue_delay = delay;
    }
    cfg.stop_after = d.stop;
    let now = SystemClock.now();
    let label = if round == 0 {
        "job".to_owned()
    } else {
        format!("round {round}")
    };
    ctx.progress
        .borrow_mut()
        .start_round(&label, plan.len(), plan.shards());
    let stored = journal.stored(round)?.ok_or_else(|| {
        CliError::failed(format!(
            "the journal is damaged: {} is missing",
            journal.job_path(round).display()
        ))
    })?;
    let mut job = match stored.checkpoint.clone() {
        Some(cp) => Job::resume(cfg, plan, cp, now).map_err(|e| {
            CliError::failed(format!(
                "cannot resume the job in {}: {e}",
                journal.dir().display()
            ))
        })?,
        None => Job::new(cfg, plan, now),
    };
    if d.cancel {
        job.cancel(now);
    }
    let mut io = JournalIo {
        panic_after_submit: std::env::var_os(PANIC_AFTER_SUBMIT).is_some(),
        journal,
        round,
        stored,
        ids: ShardIds::new(&journal.round_dir(round), job.plan().shards()),
        dir: journal.round_dir(round),
        store,
        map,
        progress: ctx.progress.clone(),
        interrupt: ctx.interrupt.clone(),
        line: Vec::new(),
    };
    let progress = ctx.progress.clone();
    let parked_progress = ctx.progress.clone();
    let notify = parked_notifier(ctx.supervisor.clone());
    let clock = CliClock::new(
        ctx.interrupt.clone(),
        Box::new(move || {
            parked_progress.borrow_mut().finish();
            notify();
        }),
        Box::new(move || progress.borrow_mut().tick()),
    );
    let result = batch_blocking::run(&mut job, &api.client, &clock, &mut io);
    ctx.progress.borrow_mut().finish();
    match result {
        Ok(summary) => Ok(summary),
        Err(batch_blocking::Error::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {
            Err(CliError::Interrupted)
        }
        Err(e) => Err(CliError::failed(chain(&e))),
    }
}

/// A hidden fault point: with this variable set, the worker panics right
/// after the first batch is created (and checkpointed), so the tests can
/// check that a panic ends the run with exit 3 and a resumable journal.
const PANIC_AFTER_SUBMIT: &str = "OPENAI_BATCH_PANIC_AFTER_SUBMIT";

/// The journal as the job's storage.
struct JournalIo<'a> {
    /// See [`PANIC_AFTER_SUBMIT`].
    panic_after_submit: bool,
    /// Where the round's job is stored.
    journal: &'a Journal,
    round: u32,
    /// The round's stored job, saved with each new checkpoint.
    stored: StoredJob,
    /// The round's folder (shards).
    dir: PathBuf,
    store: &'a mut ResultStore,
    /// Round index → input index, for retry rounds.
    map: Option<&'a IndexMap>,
    progress: Rc<RefCell<Progress>>,
    interrupt: Interrupt,
    line: Vec<u8>,
    /// The ids the plan does not keep.
    ids: ShardIds,
}

/// Reads the `custom_id` of a request from its shard file: the plan keeps
/// no ids, and a result without a server line comes without one.
struct ShardIds {
    dir: PathBuf,
    /// The index of each shard's first request.
    starts: Vec<u64>,
    /// The shard file being read, and the offset of the line it reads next.
    reader: Option<(u32, BufReader<File>, u64)>,
    buf: Vec<u8>,
}

impl ShardIds {
    fn new(round_dir: &Path, shards: &[batch_core::job::ShardPlan]) -> Self {
        ShardIds {
            dir: round_dir.join("shards"),
            starts: shards.iter().map(|s| s.start).collect(),
            reader: None,
            buf: Vec::new(),
        }
    }

    /// The `custom_id` of request `index` of shard `shard`.
    fn read(&mut self, shard: u32, index: u64) -> io::Result<String> {
        let path = self.dir.join(shard_file_name(shard));
        let start = usize::try_from(shard)
            .ok()
            .and_then(|s| self.starts.get(s))
            .copied()
            .unwrap_or(0);
        let offset = index.saturating_sub(start);
        let fresh = match &self.reader {
            Some((s, _, next)) => *s != shard || *next > offset,
            None => true,
        };
        if fresh {
            self.reader = Some((shard, BufReader::new(File::open(&path)?), 0));
        }
        let missing = || io::Error::other(format!("{} has no request {index}", path.display()));
        let Some((_, reader, next)) = self.reader.as_mut() else {
            return Err(missing());
        };
        loop {
            self.buf.clear();
            if reader.read_until(b'\n', &mut self.buf)? == 0 {
                return Err(missing());
            }
            *next += 1;
            if *next > offset {
                return batch_core::results::salvage_custom_id(&self.buf).ok_or_else(missing);
            }
        }
    }
}

impl JobIo for JournalIo<'_> {
    fn persist(&mut self, checkpoint: &Checkpoint) -> io::Result<()> {
        self.store.sync()?;
        self.stored.checkpoint = Some(checkpoint.clone());
        self.journal.save_stored_io(self.round, &self.stored)?;
        self.interrupt.check()
    }

    fn result(&mut self, mut result: JobResult) -> io::Result<()> {
        if result.custom_id.is_empty() {
            result.custom_id = self.ids.read(result.shard, result.index)?;
        }
        let slot = match self.map {
            Some(m) => m.get(result.index)?,
            None => result.index,
        };
        render::render(&result, &mut self.line);
        self.store
            .put(slot, render::kind(&result.outcome), &self.line)?;
        self.interrupt.check()
    }

    fn event(&mut self, event: &JobEvent) -> io::Result<()> {
        if self.panic_after_submit && matches!(event, JobEvent::Submitted { .. }) {
            panic!("{PANIC_AFTER_SUBMIT} is set");
        }
        self.progress.borrow_mut().event(event);
        self.interrupt.check()
    }

    fn open_shard(&mut self, shard: &ShardRef) -> io::Result<Box<dyn Read + Send>> {
        self.interrupt.check()?;
        let path = self.dir.join("shards").join(shard_file_name(shard.index));
        let f = File::open(&path)?;
        let len = f.metadata()?.len();
        if len != shard.len {
            return Err(io::Error::other(format!(
                "{} has {len} bytes, the plan says {}",
                path.display(),
                shard.len
            )));
        }
        Ok(Box::new(f))
    }
}

/// A random number for job ids and backoff jitter, from the OS's hash seed,
/// the time and the process id.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SystemClock.now().as_millis());
    h.write_u32(std::process::id());
    h.finish()
}
