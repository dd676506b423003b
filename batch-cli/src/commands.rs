//! The commands: `run`, `submit`, `status`, `results`, `cancel`, `list`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use batch_blocking::{Clock, SystemClock};
use batch_core::api::{self, Batch};
use batch_core::job::{Checkpoint, StopAfter};
use serde_json::json;

use crate::args::{CancelArgs, DriveArgs, ListArgs, ResultsArgs, RunArgs, StatusArgs, SubmitArgs};
use crate::error::{CliError, EXIT_OK, EXIT_SOME_FAILED, chain};
use crate::job::{self, Api, Ctx, Drive, Driven, Prepared};
use crate::journal::{self, Journal, PlanFile};
use crate::price;
use crate::term;

fn absolute(p: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(p).map_err(|e| CliError::usage(format!("{}: {e}", p.display())))
}

/// The default journal of a `run` writing `output`, or of a `submit` of `input`.
pub(crate) fn default_journal(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".journal");
    PathBuf::from(s)
}

fn limits_of(p: &PlanFile) -> batch_core::job::ShardLimits {
    batch_core::job::ShardLimits::new(
        p.options.max_requests_per_batch,
        p.options.max_bytes_per_batch,
    )
}

/// The input file as an absolute path, once it is known to be a regular
/// file: it is read more than once (to check it, to plan it, to resume), so
/// a pipe or a device cannot be used.
fn checked_input(p: &Path) -> Result<PathBuf, CliError> {
    let input = absolute(p)?;
    let meta = fs::metadata(&input).map_err(|e| {
        CliError::usage(if e.kind() == io::ErrorKind::NotFound {
            format!("cannot read {}: no such file", p.display())
        } else {
            format!("cannot read {}: {e}", p.display())
        })
    })?;
    if meta.is_dir() {
        return Err(CliError::usage(format!(
            "{} is a folder, not a JSONL file",
            p.display()
        )));
    }
    if !meta.is_file() {
        return Err(CliError::usage(format!(
            "{} is not a regular file (a pipe, a device or standard input): the input is read \
             more than once (to check it, to plan the batches, to resume), so save it to a file \
             and pass that",
            p.display()
        )));
    }
    Ok(input)
}

/// Whether `a` and `b` are the same file: same device and inode on unix,
/// so a hard link or another spelling of the path is caught.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (fs::canonicalize(a), fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// Checks, before anything is uploaded, that the results can be written to
/// `output`: it is not the input, not a folder, and its folder takes a new
/// file (the results are written to `RESULTS.partial`, then renamed).
fn check_output(output: &Path, input: &Path) -> Result<(), CliError> {
    let refuse = |why: String| {
        CliError::usage(format!(
            "cannot write the results to {}: {why}",
            output.display()
        ))
    };
    let partial = journal::partial_path(output);
    if same_file(output, input) || same_file(&partial, input) {
        return Err(refuse(format!(
            "it is the input file {}, which the results would replace; choose another -o",
            input.display()
        )));
    }
    if output.is_dir() {
        return Err(refuse("it is a folder".into()));
    }
    let probe = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&partial);
    match probe {
        Ok(_) => {
            let _ = fs::remove_file(&partial);
            Ok(())
        }
        Err(e) => Err(refuse(e.to_string())),
    }
}

/// `openai-batch run INPUT -o RESULTS`.
pub(crate) fn run(ctx: &Ctx, args: &RunArgs) -> Result<u8, CliError> {
    // Everything that can be refused is refused before a journal is made.
    Drive::from_args(&args.drive, args.api.emulator)?;
    let input = checked_input(&args.input)?;
    check_output(&args.output, &input)?;
    let journal = Journal::new(
        args.drive
            .journal
            .clone()
            .unwrap_or_else(|| default_journal(&args.output)),
    );
    let stored = journal.read_plan()?;
    let api_args = recorded_api(&args.api, stored.as_ref(), &journal)?;
    let requested = job::requested_options(&args.plan, &api_args)?;
    crate::provider::check_window(&api_args, &args.plan)?;
    job::preflight(&api_args, stored.as_ref())?;
    let lock = journal.lock()?;
    let source = args.input.display().to_string();
    let prepared = job::prepare(
        ctx,
        Some(&input),
        &source,
        Some(&requested),
        &journal,
        &lock,
    )?;
    run_prepared(
        ctx,
        &journal,
        &source,
        prepared,
        &args.drive,
        &api_args,
        &args.output,
    )
}

/// `openai-batch results --journal DIR -o RESULTS`.
pub(crate) fn results(ctx: &Ctx, args: &ResultsArgs) -> Result<u8, CliError> {
    let drive: DriveArgs = args.into();
    Drive::from_args(&drive, args.api.emulator)?;
    let journal = Journal::new(args.journal.clone());
    let planfile = journal.read_plan()?.ok_or_else(|| no_job(&journal))?;
    check_output(&args.output, &planfile.input)?;
    let api_args = recorded_api(&args.api, Some(&planfile), &journal)?;
    job::preflight(&api_args, Some(&planfile))?;
    let lock = journal.lock()?;
    // The job is rebuilt from the journal alone: the input file may be gone.
    let prepared = job::prepare(
        ctx,
        None,
        &planfile.input.display().to_string(),
        None,
        &journal,
        &lock,
    )?;
    run_prepared(
        ctx,
        &journal,
        &planfile.input.display().to_string(),
        prepared,
        &drive,
        &api_args,
        &args.output,
    )
}

fn no_job(journal: &Journal) -> CliError {
    CliError::usage(format!(
        "there is no job in {} (no round-0.job.json, nor a plan.json of an earlier version)",
        journal.dir().display()
    ))
}

/// The API flags for the job of `journal`: its recorded provider settings
/// with the flags' credentials (see `provider::with_recorded`).
fn recorded_api(
    args: &crate::args::ApiArgs,
    stored: Option<&PlanFile>,
    journal: &Journal,
) -> Result<crate::args::ApiArgs, CliError> {
    crate::provider::with_recorded(
        args,
        stored.and_then(|p| p.provider.as_ref()),
        journal.dir(),
    )
}

fn run_prepared(
    ctx: &Ctx,
    journal: &Journal,
    source: &str,
    mut prepared: Prepared,
    drive_args: &DriveArgs,
    api_args: &crate::args::ApiArgs,
    output: &Path,
) -> Result<u8, CliError> {
    let started = ctx.started;
    let pf = prepared.planfile.clone();
    let pf = &pf;
    if prepared.fresh {
        ctx.note(&format!(
            "{source}: {} requests in {} shard{} for {} (journal {})",
            pf.digest.requests,
            pf.digest.shards,
            if pf.digest.shards == 1 { "" } else { "s" },
            pf.options.endpoint,
            journal.dir().display()
        ));
    } else {
        ctx.note(&format!(
            "resuming job {} from {} (round {})",
            pf.job_id,
            journal.dir().display(),
            pf.round
        ));
    }
    let limits = limits_of(pf);
    let api = job::connect(ctx, api_args, Some(journal), Some(pf), Some(&limits))?;
    let drive = Drive::from_args(drive_args, api.emulator.is_some())?;
    ctx.progress.borrow_mut().set_heartbeat(drive.heartbeat);
    job::commit_plan(journal, &mut prepared, &api)?;
    let planfile = prepared.planfile.clone();
    let driven = job::drive(ctx, &api, journal, prepared, &drive)?;
    finish(
        journal,
        &planfile,
        &driven,
        output,
        started,
        drive_args.json,
    )
}

/// Writes RESULTS, prints the summary, and chooses the exit code.
fn finish(
    journal: &Journal,
    pf: &PlanFile,
    driven: &Driven,
    output: &Path,
    started: Instant,
    json_out: bool,
) -> Result<u8, CliError> {
    let last = driven.summaries.last();
    if let Some(error) = last.and_then(|s| s.error.clone()) {
        return Err(CliError::failed(format!(
            "{}; the job is kept in {}: fix the problem and run the same command again",
            error.trim_end_matches('.'),
            journal.dir().display()
        )));
    }
    let expected = journal::ShardIds::new(journal.shard_paths(&pf.shards)?);
    let counts = journal::write_output(output, |w| driven.store.assemble(expected, w))?;
    let (mut input_tokens, mut output_tokens, mut bad_lines) = (0, 0, 0);
    for s in &driven.summaries {
        input_tokens += s.usage.input_tokens;
        output_tokens += s.usage.output_tokens;
        bad_lines += s.bad_lines;
    }
    let batches = distinct(
        driven
            .summaries
            .iter()
            .flat_map(|s| s.shards.iter().filter_map(|sh| sh.batch_id.as_deref())),
    );
    let timed_out = last.is_some_and(|s| s.timed_out);
    let anthropic = pf.options.endpoint == batch_core::anthropic::MESSAGES_PATH;
    let cost = pf
        .model
        .as_deref()
        .and_then(|m| price::estimate(anthropic, m, input_tokens, output_tokens));
    let elapsed = started.elapsed().as_secs_f64();
    let requests = driven.store.len();
    let rounds = driven.summaries.len();
    if json_out {
        term::out(
            &json!({
                "job_id": pf.job_id,
                "requests": requests,
                "succeeded": counts.succeeded,
                "failed": counts.failed,
                "not_processed": counts.not_processed,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "model": pf.model,
                "cost_estimate_usd": cost,
                "elapsed_seconds": elapsed,
                "rounds": rounds,
                "batches": batches,
                "timed_out": timed_out,
                "output": output,
                "journal": journal.dir(),
            })
            .to_string(),
        );
    } else {
        let mut lines = vec![
            format!(
                "{} requests in {:.1}s (job {}, {} round{})",
                requests,
                elapsed,
                pf.job_id,
                rounds,
                if rounds == 1 { "" } else { "s" }
            ),
            format!("  succeeded      {}", counts.succeeded),
            format!("  failed         {}", counts.failed),
            format!("  not processed  {}", counts.not_processed),
            format!("  tokens         {input_tokens} in, {output_tokens} out"),
        ];
        let model = pf.model.as_deref().unwrap_or("unknown model");
        lines.push(match cost {
            Some(c) => format!("  cost estimate  ${c:.4} ({model} at batch prices)"),
            None if anthropic => {
                format!("  cost estimate  unknown (no Anthropic price known for {model})")
            }
            None => format!("  cost estimate  unknown (no price known for {model})"),
        });
        lines.push(format!("  batches        {}", short_list(&batches)));
        lines.push(format!("  results        {}", output.display()));
        if bad_lines > 0 {
            lines.push(format!(
                "  note: {bad_lines} result lines from the server could not be read"
            ));
        }
        if timed_out {
            lines.push(format!(
                "  note: stopped waiting after --max-wait; the batches keep running: run the same \
                 command again to collect them, or `openai-batch cancel --journal {}`",
                journal.dir().display()
            ));
        }
        for l in lines {
            term::err(&l);
        }
    }
    Ok(if counts.failed + counts.not_processed == 0 {
        EXIT_OK
    } else {
        EXIT_SOME_FAILED
    })
}

/// The batch ids, each once, in the order first named: a batch can be
/// named again (a reconcile that found the batch an earlier attempt
/// created).
fn distinct<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.filter(|id| seen.insert(*id))
        .map(str::to_owned)
        .collect()
}

fn short_list(items: &[String]) -> String {
    const SHOWN: usize = 4;
    if items.is_empty() {
        return "none".into();
    }
    let mut s = items[..items.len().min(SHOWN)].join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" (+{} more)", items.len() - SHOWN));
    }
    s
}

/// `openai-batch submit INPUT`.
pub(crate) fn submit(ctx: &Ctx, args: &SubmitArgs) -> Result<u8, CliError> {
    let input = checked_input(&args.input)?;
    let journal = Journal::new(
        args.journal
            .clone()
            .unwrap_or_else(|| default_journal(&args.input)),
    );
    let stored = journal.read_plan()?;
    let api_args = recorded_api(&args.api, stored.as_ref(), &journal)?;
    let requested = job::requested_options(&args.plan, &api_args)?;
    crate::provider::check_window(&api_args, &args.plan)?;
    job::preflight(&api_args, stored.as_ref())?;
    let lock = journal.lock()?;
    let mut prepared = job::prepare(
        ctx,
        Some(&input),
        &args.input.display().to_string(),
        Some(&requested),
        &journal,
        &lock,
    )?;
    let limits = limits_of(&prepared.planfile);
    let api = job::connect(
        ctx,
        &api_args,
        Some(&journal),
        Some(&prepared.planfile),
        Some(&limits),
    )?;
    let drive = Drive::single(StopAfter::Submitted, false, api.emulator.is_some());
    job::commit_plan(&journal, &mut prepared, &api)?;
    let pf = prepared.planfile.clone();
    let driven = job::drive(ctx, &api, &journal, prepared, &drive)?;
    let last = driven.summaries.last();
    if let Some(error) = last.and_then(|s| s.error.clone()) {
        return Err(CliError::failed(error));
    }
    let shards: Vec<_> = last.map(|s| s.shards.clone()).unwrap_or_default();
    if args.json {
        let list: Vec<_> = shards
            .iter()
            .map(|s| {
                json!({
                    "shard": s.shard,
                    "requests": s.requests,
                    "batch_id": s.batch_id,
                    "status": s.status.as_ref().map(|st| st.as_str().to_owned()),
                })
            })
            .collect();
        term::out(
            &json!({"job_id": pf.job_id, "journal": journal.dir(), "batches": list}).to_string(),
        );
    } else {
        for s in &shards {
            if let Some(b) = &s.batch_id {
                term::out(b);
            }
        }
        if !args.quiet {
            term::err(&submitted_note(
                shards.iter().filter(|s| s.batch_id.is_some()).count(),
                journal.dir(),
            ));
        }
    }
    Ok(EXIT_OK)
}

/// What `submit` says once its batches exist: how many, and the commands
/// that follow them up, naming the journal.
fn submitted_note(batches: usize, journal: &Path) -> String {
    let j = journal.display();
    format!(
        "submitted {batches} batch{}; `openai-batch status --journal {j}` shows them, \
         `openai-batch results --journal {j} -o RESULTS.jsonl` waits and writes the results",
        if batches == 1 { "" } else { "es" }
    )
}

/// Retrieves one batch, in the protocol of `api` (a Message Batch is read
/// as a batch for `--provider anthropic`).
fn retrieve(api: &Api, id: &str) -> Result<Batch, CliError> {
    batch_op(api, id, false)
}

/// Retrieves batch `id`, or with `cancel` asks the server to cancel it,
/// through the client (which follows the provider's protocol and keeps the
/// key out of the server's words).
fn batch_op(api: &Api, id: &str, cancel: bool) -> Result<Batch, CliError> {
    api::validate_id("batch id", id).map_err(|e| CliError::usage(e.to_string()))?;
    let answer = if cancel {
        api.client.cancel_batch(id)
    } else {
        api.client.retrieve_batch(id)
    };
    answer.map_err(|e| CliError::failed(format!("batch {id}: {}", chain(&e))))
}

fn counts_text(b: &Batch) -> String {
    match &b.request_counts {
        Some(c) => format!(
            "{}/{} done, {} failed",
            c.completed + c.failed,
            c.total,
            c.failed
        ),
        None => "no counts yet".into(),
    }
}

/// `openai-batch status`.
pub(crate) fn status(ctx: &Ctx, args: &StatusArgs) -> Result<u8, CliError> {
    let (journal, pf, api_args) = match &args.journal {
        Some(dir) => {
            let j = Journal::new(dir.clone());
            let pf = j.read_plan()?.ok_or_else(|| no_job(&j))?;
            let api_args = recorded_api(&args.api, Some(&pf), &j)?;
            (Some(j), Some(pf), api_args)
        }
        None => (None, None, args.api.clone()),
    };
    let api = job::connect(ctx, &api_args, journal.as_ref(), pf.as_ref(), None)?;
    let mut rows = Vec::new();
    if let (Some(j), Some(pf)) = (&journal, &pf) {
        // Read-only: the checkpoint's batches are retrieved; nothing is submitted.
        let cp: Option<Checkpoint> = j.read_checkpoint(pf.round)?;
        let shards = cp.map(|c| c.shards).unwrap_or_default();
        if shards.is_empty() {
            term::err(&format!("job {}: nothing submitted yet", pf.job_id));
        }
        for (i, s) in shards.iter().enumerate() {
            match &s.batch_id {
                Some(id) => rows.push((Some(i), Ok(retrieve(&api, id)?))),
                None if args.json => {}
                None => rows.push((
                    Some(i),
                    Err(if s.end.is_some() {
                        "ended without a batch"
                    } else {
                        "not submitted"
                    }),
                )),
            }
        }
    } else {
        for id in &args.batch_ids {
            rows.push((None, Ok(retrieve(&api, id)?)));
        }
    }
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .filter_map(|(shard, b)| b.as_ref().ok().map(|b| json!({"shard": shard, "batch": b})))
            .collect();
        term::out(&serde_json::Value::Array(list).to_string());
    } else {
        for (shard, b) in &rows {
            let prefix = shard.map(|i| format!("shard {i:<4} ")).unwrap_or_default();
            term::out(&match b {
                Ok(b) => format!(
                    "{prefix}{:<40} {:<12} {}",
                    b.id,
                    b.status.as_str(),
                    counts_text(b)
                ),
                Err(what) => format!("{prefix}{:<40} {what}", "-"),
            });
        }
    }
    Ok(EXIT_OK)
}

/// `openai-batch cancel`.
pub(crate) fn cancel(ctx: &Ctx, args: &CancelArgs) -> Result<u8, CliError> {
    if let Some(dir) = &args.journal {
        let journal = Journal::new(dir.clone());
        let pf = journal.read_plan()?.ok_or_else(|| no_job(&journal))?;
        let api_args = recorded_api(&args.api, Some(&pf), &journal)?;
        job::preflight(&api_args, Some(&pf))?;
        let lock = journal.lock()?;
        let mut prepared = job::prepare(
            ctx,
            None,
            &pf.input.display().to_string(),
            None,
            &journal,
            &lock,
        )?;
        let limits = limits_of(&pf);
        let api = job::connect(ctx, &api_args, Some(&journal), Some(&pf), Some(&limits))?;
        let drive = Drive::single(StopAfter::Polled, true, api.emulator.is_some());
        job::commit_plan(&journal, &mut prepared, &api)?;
        let driven = job::drive(ctx, &api, &journal, prepared, &drive)?;
        let shards: Vec<_> = driven
            .summaries
            .last()
            .map(|s| s.shards.clone())
            .unwrap_or_default();
        report_cancelled(
            args.json,
            shards.iter().filter_map(|s| {
                s.batch_id.clone().map(|b| {
                    (
                        b,
                        s.status
                            .as_ref()
                            .map_or("unknown".into(), |st| st.as_str().to_owned()),
                    )
                })
            }),
        );
        if !args.json {
            term::err(&format!(
                "cancel requested; `openai-batch results --journal {} -o RESULTS.jsonl` collects \
                 what the batches finished",
                journal.dir().display()
            ));
        }
        return Ok(EXIT_OK);
    }
    let api = job::connect(ctx, &args.api, None, None, None)?;
    let mut done = Vec::new();
    for id in &args.batch_ids {
        let b = batch_op(&api, id, true)?;
        done.push((b.id, b.status.as_str().to_owned()));
    }
    report_cancelled(args.json, done.into_iter());
    Ok(EXIT_OK)
}

fn report_cancelled(json_out: bool, rows: impl Iterator<Item = (String, String)>) {
    let rows: Vec<_> = rows.collect();
    if json_out {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, st)| json!({"batch_id": id, "status": st}))
            .collect();
        term::out(&serde_json::Value::Array(list).to_string());
    } else {
        for (id, st) in rows {
            term::out(&format!("{id:<40} {st}"));
        }
    }
}

/// `openai-batch list`.
pub(crate) fn list(ctx: &Ctx, args: &ListArgs) -> Result<u8, CliError> {
    if !(1..=100).contains(&args.limit) {
        return Err(CliError::usage("--limit must be between 1 and 100"));
    }
    let (journal, pf, api_args) = match &args.journal {
        Some(dir) => {
            let j = Journal::new(dir.clone());
            let pf = j.read_plan()?.ok_or_else(|| no_job(&j))?;
            let api_args = recorded_api(&args.api, Some(&pf), &j)?;
            (Some(j), Some(pf), api_args)
        }
        None => (None, None, args.api.clone()),
    };
    let api = job::connect(ctx, &api_args, journal.as_ref(), pf.as_ref(), None)?;
    let page = api
        .client
        .list(Some(args.limit), None)
        .map_err(|e| CliError::failed(chain(&e)))?;
    if args.json {
        term::out(&serde_json::to_string(&page.data).unwrap_or_else(|_| "[]".into()));
        return Ok(EXIT_OK);
    }
    let data = page.data;
    let now = i64::try_from(SystemClock.now().as_secs()).unwrap_or(i64::MAX);
    for b in &data {
        term::out(&format!(
            "{:<40} {:<12} {:>8} ago  {:<22} {}",
            b.id,
            b.status.as_str(),
            ago(now - b.created_at),
            b.endpoint.as_str(),
            counts_text(b)
        ));
    }
    if data.is_empty() {
        term::err(if api.emulator.is_some() && journal.is_none() {
            "no batches (the built-in emulator starts empty; `list --journal DIR` lists the \
             batches of a job run on it)"
        } else {
            "no batches"
        });
    }
    Ok(EXIT_OK)
}

fn ago(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_submit_note_names_the_journal_not_the_count() {
        let note = submitted_note(3, Path::new("work/in.jsonl.journal"));
        assert_eq!(
            note,
            "submitted 3 batches; `openai-batch status --journal work/in.jsonl.journal` shows \
             them, `openai-batch results --journal work/in.jsonl.journal -o RESULTS.jsonl` waits \
             and writes the results"
        );
        assert!(submitted_note(1, Path::new("j")).starts_with("submitted 1 batch;"));
    }

    #[test]
    fn each_batch_is_listed_once_in_first_named_order() {
        let ids = [
            "msgbatch_b",
            "msgbatch_a",
            "msgbatch_b",
            "msgbatch_c",
            "msgbatch_a",
        ];
        assert_eq!(
            distinct(ids.into_iter()),
            ["msgbatch_b", "msgbatch_a", "msgbatch_c"]
        );
    }
}
