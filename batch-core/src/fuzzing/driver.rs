//! A driver for a [`Job`] that answers its requests with a server the fuzz
//! input controls, crashes and resumes it, and checks the job's promises.
//!
//! The driver is a faithful transport: it keeps several exchanges open at
//! once (the job asks for at most one per shard), reports each one's head,
//! body chunks and end (or failure) in an order the input chooses, and
//! stores every checkpoint before polling again. Everything else is the
//! input's to decide: the server's status codes, headers and bodies
//! (plausible JSON or garbage), cut-offs, transport failures, the clock, a
//! user's cancel, and crashes (the process dies, results not yet persisted
//! are lost, and the job is resumed from the last stored checkpoint).
//!
//! When the input runs out, a well-behaved server takes over and the job is
//! driven to its end within a step bound (see [`World::settle`]).
//!
//! Checked on the way, whatever the server did:
//! - a result names a request of the plan by its index and `custom_id`,
//!   and no request gets two results within one run;
//! - at every `Done`, every request has a durable outcome and the summary's
//!   counts are those outcomes' counts;
//! - an upload or create leaves only once the stored checkpoint says it may
//!   have happened (write-ahead);
//! - no shard's upload or create is sent again while an earlier one's
//!   outcome is unknown, unless a listing of files or batches was read in
//!   between (reconciliation). With several shards in flight the listing is
//!   not tied to its shard, so the check is exact only with one;
//! - every checkpoint survives a JSON round trip;
//! - the job terminates against the well-behaved server.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use http::{HeaderValue, Method, Request, StatusCode};
use serde_json::{Value, json};

use super::input::Input;
use crate::Endpoint;
use crate::api::{self, ApiBase, ApiConfig, ApiKey, Outgoing};
use crate::credential::{CredentialError, CredentialRefresh};
use crate::input::BatchRequest;
use crate::job::{
    Checkpoint, EffectState, ExchangeId, FailureKind, Job, JobConfig, JobOutcome, JobPlan,
    JobResult, JobSummary, META_ATTEMPT, META_SHARD, OnTimeout, PlanBuilder, ShardEnd, ShardLimits,
    Step, TransportFailure, shard_filename,
};
use crate::retry::{StatusClass, classify_status};
use crate::time::UnixMillis;

/// The base URL the job's requests go to.
const BASE: &str = "http://fuzz.invalid/v1";
/// The job's start time.
const T0: u64 = 1_700_000_000_000;
/// Polls allowed when driving the job to its end against the well-behaved server.
const SETTLE_POLLS: u64 = 200_000;
/// Resumes allowed in that phase (a run stopped by a timeout or a fatal
/// error is resumed, as a user would run the job again).
const SETTLE_RESUMES: u32 = 16;

/// A job and its plan, built from the first bytes of the input.
pub(super) struct Setup {
    pub(super) plan: JobPlan,
    pub(super) cfg: JobConfig,
    /// Whether the well-behaved server ignores `Range`.
    pub(super) ignore_range: bool,
}

/// The API settings every fuzzed job uses.
pub(super) fn api_base() -> ApiBase {
    ApiBase::new(&ApiConfig::new("sk-fuzz-secret").with_base_url(BASE)).expect("a valid base URL")
}

/// A plan of `n` chat requests, `per_shard` to a shard, with ids that
/// need escaping now and then (`odd` picks which).
pub(super) fn small_plan(n: u64, per_shard: u64, odd: u8) -> JobPlan {
    const SUFFIXES: [&str; 6] = ["", "-\u{e9}", "\"q\"", "a/b", " x", "\\"];
    let mut builder = PlanBuilder::new(
        "job-fuzz",
        Endpoint::ChatCompletions,
        ShardLimits::new(per_shard, 1 << 20),
        "fuzz",
    );
    let mut out = Vec::new();
    for i in 0..n {
        let suffix = SUFFIXES
            [usize::from(odd.rotate_left(u32::try_from(i % 8).unwrap_or(0))) % SUFFIXES.len()];
        let line = json!({
            "custom_id": format!("r{i}{suffix}"),
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q"}]},
        });
        let req = BatchRequest::parse_line("fuzz", i + 1, line.to_string().as_bytes())
            .expect("a valid request line");
        builder
            .push(i + 1, &req, &mut out)
            .expect("a valid request");
    }
    builder.finish().expect("unique ids")
}

impl Setup {
    /// Reads the job's shape and configuration from the input.
    pub(super) fn read(input: &mut Input<'_>) -> Setup {
        let n = 1 + input.below(12);
        let per_shard = 1 + input.below(4);
        let plan = small_plan(n, per_shard, input.byte());
        let mut cfg = JobConfig::new(api_base());
        cfg.poll_interval = Duration::from_secs(1 + input.below(600));
        cfg.max_parallel = 1 + input.pick(3);
        cfg.seed = u64::from(input.u32());
        cfg.retry.max_attempts = 1 + u32::from(input.byte() % 8);
        cfg.max_requeues = u32::from(input.byte() % 4);
        let flags = input.byte();
        if flags & 0b11 == 0b11 {
            cfg.max_wait = Some(Duration::from_secs(60 * (5 + input.below(180))));
            if flags & 0b100 != 0 {
                cfg.on_timeout = OnTimeout::Cancel;
            }
        }
        if flags & 0b1_1000 == 0b1_1000 {
            cfg.max_json_body = 256 + input.pick(4096);
        }
        if flags & 0b110_0000 == 0b110_0000 {
            cfg.max_line_bytes = 16 + input.pick(2048);
        }
        if flags & 0b1000_0000 != 0 {
            // A credential that expires: the job asks for it, and the
            // input decides what the source answers (see `fuzzed_step`).
            cfg.credential = Some(CredentialRefresh::default());
        }
        Setup {
            plan,
            cfg,
            ignore_range: false,
        }
    }
}

/// The request kinds the job sends.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Upload {
        shard: u32,
        len: u64,
    },
    ListFiles,
    Create {
        shard: usize,
        attempt: u32,
    },
    ListBatches,
    Retrieve {
        batch_id: String,
    },
    Cancel {
        batch_id: String,
    },
    /// `GET /files/{id}`: the file object read before its content.
    FileInfo {
        file_id: String,
    },
    Content {
        file_id: String,
        from: u64,
        if_range: Option<String>,
    },
    Other,
}

fn kind_of(req: &Request<Outgoing>) -> Kind {
    let path = req.uri().path();
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method(), segs.as_slice()) {
        (&Method::POST, ["files"]) => match req.body() {
            Outgoing::Multipart { shard, .. } => Kind::Upload {
                shard: shard.index,
                len: shard.len,
            },
            _ => Kind::Other,
        },
        (&Method::GET, ["files"]) => Kind::ListFiles,
        (&Method::POST, ["batches"]) => {
            let meta = match req.body() {
                Outgoing::Json(b) => serde_json::from_slice::<Value>(b).ok(),
                _ => None,
            };
            let field = |k: &str| -> Option<u64> {
                meta.as_ref()?
                    .get("metadata")?
                    .get(k)?
                    .as_str()?
                    .parse()
                    .ok()
            };
            match (field(META_SHARD), field(META_ATTEMPT)) {
                (Some(shard), Some(attempt)) => Kind::Create {
                    shard: usize::try_from(shard).unwrap_or(usize::MAX),
                    attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                },
                _ => Kind::Other,
            }
        }
        (&Method::GET, ["batches"]) => Kind::ListBatches,
        (&Method::GET, ["batches", id]) => Kind::Retrieve {
            batch_id: (*id).to_owned(),
        },
        (&Method::POST, ["batches", id, "cancel"]) => Kind::Cancel {
            batch_id: (*id).to_owned(),
        },
        (&Method::GET, ["files", id]) => Kind::FileInfo {
            file_id: (*id).to_owned(),
        },
        (&Method::GET, ["files", id, "content"]) => {
            let from = req
                .headers()
                .get(http::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse().ok())
                .unwrap_or(0);
            let if_range = req
                .headers()
                .get(http::header::IF_RANGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Kind::Content {
                file_id: (*id).to_owned(),
                from,
                if_range,
            }
        }
        _ => Kind::Other,
    }
}

/// One report of an exchange to the job.
#[derive(Debug)]
enum Report {
    Head(http::response::Parts),
    Chunk(Vec<u8>),
    End,
    Fail(FailureKind),
}

/// An exchange the job asked for and the driver has not finished reporting.
#[derive(Debug)]
struct Open {
    id: ExchangeId,
    kind: Kind,
    reports: VecDeque<Report>,
    status: Option<StatusCode>,
    body: Vec<u8>,
}

/// What the server side knows about effects whose outcome the job may not.
#[derive(Debug, Default)]
struct Ledger {
    /// Per shard: a create was sent and its outcome is unknown to the job;
    /// the value is the count of batch listings read at that time.
    create_open: BTreeMap<usize, u64>,
    /// The same for uploads and file listings.
    upload_open: BTreeMap<usize, u64>,
    batch_lists: u64,
    file_lists: u64,
}

impl Ledger {
    fn sent(&mut self, kind: &Kind) {
        match kind {
            Kind::Create { shard, .. } => {
                if let Some(at) = self.create_open.get(shard) {
                    assert!(
                        self.batch_lists > *at,
                        "shard {shard}: a second create was sent while the first one's outcome \
                         was unknown, and no batch listing was read in between"
                    );
                }
                self.create_open.insert(*shard, self.batch_lists);
            }
            Kind::Upload { shard, .. } => {
                let shard = usize::try_from(*shard).unwrap_or(usize::MAX);
                if let Some(at) = self.upload_open.get(&shard) {
                    assert!(
                        self.file_lists > *at,
                        "shard {shard}: a second upload was sent while the first one's outcome \
                         was unknown, and no file listing was read in between"
                    );
                }
                self.upload_open.insert(shard, self.file_lists);
            }
            _ => {}
        }
    }

    /// An exchange ended: with its whole body (`whole`), or cut off after
    /// its head. Only a whole answer tells the job what happened.
    fn finished(&mut self, ex: &Open, whole: bool) {
        let Some(status) = ex.status.filter(|_| whole) else {
            return;
        };
        let mut head = http::Response::new(()).into_parts().0;
        head.status = status;
        let refused = status == StatusCode::TOO_MANY_REQUESTS
            || (!status.is_success() && classify_status(status) == StatusClass::Final);
        match &ex.kind {
            Kind::Create { shard, .. } if refused || api::parse_batch(&head, &ex.body).is_ok() => {
                self.create_open.remove(shard);
            }
            Kind::Upload { shard, .. } if refused || api::parse_file(&head, &ex.body).is_ok() => {
                self.upload_open
                    .remove(&usize::try_from(*shard).unwrap_or(usize::MAX));
            }
            Kind::ListBatches if api::parse_batch_list(&head, &ex.body).is_ok() => {
                self.batch_lists += 1;
            }
            Kind::ListFiles if api::parse_file_list(&head, &ex.body).is_ok() => {
                self.file_lists += 1;
            }
            _ => {}
        }
    }

    /// An exchange failed before its head with nothing sent: it did not act.
    fn not_sent(&mut self, kind: &Kind) {
        match kind {
            Kind::Create { shard, .. } => {
                self.create_open.remove(shard);
            }
            Kind::Upload { shard, .. } => {
                self.upload_open
                    .remove(&usize::try_from(*shard).unwrap_or(usize::MAX));
            }
            _ => {}
        }
    }
}

/// A short code for an outcome, for counting.
fn outcome_code(o: &JobOutcome) -> u8 {
    match o {
        JobOutcome::Succeeded(_) => 0,
        JobOutcome::Failed(_) => 1,
        JobOutcome::NotProcessed(_) => 2,
    }
}

/// The driver, the server's state and everything a check needs.
pub(super) struct World {
    plan: JobPlan,
    cfg: JobConfig,
    job: Job,
    now: UnixMillis,
    /// The last stored checkpoint.
    checkpoint: Option<Checkpoint>,
    /// Outcomes made durable (index → outcome code); a redelivery overwrites.
    durable: BTreeMap<u64, u8>,
    /// Outcomes delivered since the last persist (lost in a crash).
    volatile: BTreeMap<u64, u8>,
    /// Indexes delivered in the current run.
    run_seen: BTreeSet<u64>,
    /// Indexes whose durable outcome predates this driver (a resumed
    /// checkpoint's finished shards): they count as delivered.
    assumed: BTreeSet<u64>,
    open: Vec<Open>,
    ledger: Ledger,
    /// A counter for ids the server makes up.
    serial: u64,
    finished: bool,
    /// The well-behaved server ignores `Range` (see [`World::good_content`]).
    ignore_range: bool,
}

impl World {
    /// A fresh job started at the fuzz epoch.
    pub(super) fn new(setup: Setup) -> World {
        let now = UnixMillis(T0);
        let job = Job::new(setup.cfg.clone(), setup.plan.clone(), now);
        let mut world = World::with_job(setup.plan, setup.cfg, job, now, None);
        world.ignore_range = setup.ignore_range;
        world
    }

    /// A driver for `job`, which was resumed from `checkpoint` (if any).
    pub(super) fn with_job(
        plan: JobPlan,
        cfg: JobConfig,
        job: Job,
        now: UnixMillis,
        checkpoint: Option<Checkpoint>,
    ) -> World {
        let mut assumed = BTreeSet::new();
        if let Some(cp) = &checkpoint {
            for (s, saved) in plan.shards().iter().zip(&cp.shards) {
                if matches!(saved.end, Some(ShardEnd::Finished | ShardEnd::NotSubmitted)) {
                    assumed.extend(s.range());
                }
            }
        }
        World {
            plan,
            cfg,
            job,
            now,
            checkpoint,
            durable: BTreeMap::new(),
            volatile: BTreeMap::new(),
            run_seen: BTreeSet::new(),
            assumed,
            open: Vec::new(),
            ledger: Ledger::default(),
            serial: 0,
            finished: false,
            ignore_range: false,
        }
    }

    /// Drives the job against the fuzzed server until the input runs out
    /// or the job completes.
    pub(super) fn fuzz(&mut self, input: &mut Input<'_>) {
        while !self.finished && !input.is_empty() {
            let action = input.byte();
            match action {
                0..=95 if !self.open.is_empty() => {
                    let k = input.pick(self.open.len());
                    let drain = input.byte();
                    self.report(k, drain);
                }
                96..=103 => self.crash(input.byte()),
                104 => self.job.cancel(self.now),
                105..=108 => self.jump(input.byte(), input.u16()),
                _ => {
                    let step = self.job.poll(self.now);
                    self.fuzzed_step(step, input);
                }
            }
        }
    }

    fn fuzzed_step(&mut self, step: Step, input: &mut Input<'_>) {
        match step {
            Step::Send { id, request } => {
                let kind = self.sending(&request);
                let reports = self.fuzzed_response(&kind, &request, input);
                self.open.push(Open {
                    id,
                    kind,
                    reports,
                    status: None,
                    body: Vec::new(),
                });
            }
            Step::Wait { until, .. } => {
                assert!(until >= self.now, "a wait in the past");
                if self.open.is_empty() {
                    // On time, early (the job must wait again) or late.
                    let b = input.byte();
                    self.now = match b % 8 {
                        0 => UnixMillis(until.as_millis().saturating_sub(u64::from(b) * 40)),
                        1 | 2 => until.plus_millis(u64::from(input.u16()) * 100),
                        _ => until,
                    };
                }
            }
            Step::Persist(cp) => {
                if input.chance(6) {
                    // The process died before the checkpoint was stored.
                    self.crash(input.byte());
                } else {
                    self.store(cp);
                }
            }
            Step::Done(summary) => self.done(&summary, |_| {}),
            Step::RefreshCredential { .. } => {
                let b = input.byte();
                if b < 8 {
                    let failure = CredentialError::new("fuzzed credential source failure");
                    self.job.handle_credential_failure(&failure, self.now);
                } else {
                    // Anything from already expired to hours ahead, or unknown.
                    let expires =
                        (b & 1 == 0).then(|| self.now.plus_millis(u64::from(input.u16()) * 1_000));
                    self.serial += 1;
                    let token = ApiKey::new(format!("fuzz-token-{}", self.serial));
                    self.job.set_credential(token, expires, self.now);
                }
            }
            other => self.common_step(other),
        }
    }

    /// Steps every phase handles alike.
    fn common_step(&mut self, step: Step) {
        match step {
            Step::Event(ev) => {
                let _ = ev;
            }
            Step::Result(r) => self.deliver(r),
            // The job dropped an exchange (over its deadline, stalled or
            // past its declared size): nothing more of it is reported.
            Step::Abort(id) => self.open.retain(|o| o.id != id),
            // A well-behaved credential source: a token valid for a day.
            Step::RefreshCredential { .. } => {
                self.serial += 1;
                let token = ApiKey::new(format!("fuzz-token-{}", self.serial));
                let expires = self.now.plus_millis(24 * 3_600_000);
                self.job.set_credential(token, Some(expires), self.now);
            }
            // A step this driver does not know: it cannot honour the
            // contract, so it must be taught the new step.
            other => panic!("the fuzz driver does not handle {other:?}"),
        }
    }

    /// Checks and records a request the job is sending; returns its kind.
    fn sending(&mut self, request: &Request<Outgoing>) -> Kind {
        let kind = kind_of(request);
        let cp = self.checkpoint.as_ref();
        match &kind {
            Kind::Upload { shard, .. } => {
                let saved = cp.and_then(|cp| cp.shards.get(usize::try_from(*shard).ok()?));
                assert_eq!(
                    saved.map(|s| s.upload),
                    Some(EffectState::MaybeSent),
                    "shard {shard} was uploaded before its checkpoint said so"
                );
            }
            Kind::Create { shard, attempt } => {
                let saved = cp.and_then(|cp| cp.shards.get(*shard));
                assert_eq!(
                    saved.map(|s| (s.create, s.create_attempt)),
                    Some((EffectState::MaybeSent, *attempt)),
                    "shard {shard}'s create was sent before its checkpoint said so"
                );
            }
            Kind::Cancel { .. } => assert!(
                cp.is_some_and(|cp| cp.cancel_requested),
                "a cancel was sent before the checkpoint recorded it"
            ),
            Kind::Other => panic!("the job sent a request no API route matches: {request:?}"),
            _ => {}
        }
        self.ledger.sent(&kind);
        kind
    }

    /// Reports the next event of open exchange `k`.
    fn report(&mut self, k: usize, drain: u8) {
        let now = self.now;
        let Some(ex) = self.open.get_mut(k) else {
            return;
        };
        let id = ex.id;
        match ex.reports.pop_front() {
            Some(Report::Head(head)) => {
                ex.status = Some(head.status);
                self.job
                    .handle_head(id, head, now)
                    .expect("a head in order");
            }
            Some(Report::Chunk(chunk)) => {
                if matches!(
                    ex.kind,
                    Kind::Create { .. } | Kind::Upload { .. } | Kind::ListBatches | Kind::ListFiles
                ) {
                    ex.body.extend_from_slice(&chunk);
                }
                // Take some of the results now; the rest come out of `poll`.
                let take = if drain < 200 {
                    usize::MAX
                } else {
                    usize::from(drain % 4)
                };
                let mut feed = self.job.handle_body(id, &chunk).expect("a chunk in order");
                let mut got = Vec::new();
                for _ in 0..take {
                    match feed.next_result() {
                        Some(r) => got.push(r),
                        None => break,
                    }
                }
                drop(feed);
                for r in got {
                    self.deliver(r);
                }
            }
            Some(Report::End) | None => {
                let ex = self.open.swap_remove(k);
                self.job.handle_end(id, now).expect("an end in order");
                self.ledger.finished(&ex, true);
            }
            Some(Report::Fail(kind)) => {
                let ex = self.open.swap_remove(k);
                if ex.status.is_none() && kind == FailureKind::NotSent {
                    self.ledger.not_sent(&ex.kind);
                }
                self.job
                    .handle_failure(id, TransportFailure::new(kind, "fuzzed failure"), now)
                    .expect("a failure in order");
                self.ledger.finished(&ex, false);
            }
        }
    }

    fn deliver(&mut self, r: JobResult) {
        assert!(r.index < self.plan.len(), "a result for no request: {r:?}");
        assert_eq!(
            r.custom_id,
            self.plan.custom_id(r.index),
            "a result under the wrong custom_id"
        );
        assert!(
            self.run_seen.insert(r.index),
            "request {} was given two outcomes in one run",
            r.index
        );
        self.volatile.insert(r.index, outcome_code(&r.outcome));
    }

    fn store(&mut self, cp: Checkpoint) {
        let v = std::mem::take(&mut self.volatile);
        self.durable.extend(v);
        let text = serde_json::to_string(&cp).expect("a checkpoint serializes");
        let back: Checkpoint = serde_json::from_str(&text).expect("a checkpoint parses back");
        assert_eq!(back, cp, "a checkpoint changed in a JSON round trip");
        self.checkpoint = Some(back);
    }

    /// The process dies: open exchanges and unpersisted results are lost;
    /// the job is resumed from the last stored checkpoint with a skewed clock.
    fn crash(&mut self, skew: u8) {
        self.open.clear();
        self.volatile.clear();
        self.run_seen.clear();
        let ms = u64::from(skew) * 60_000;
        self.now = if skew & 1 == 0 {
            self.now.plus_millis(ms * 10)
        } else {
            UnixMillis(self.now.as_millis().saturating_sub(ms))
        };
        self.restart(self.cfg.clone());
    }

    fn restart(&mut self, cfg: JobConfig) {
        self.job = match self.checkpoint.clone() {
            Some(cp) => Job::resume(cfg, self.plan.clone(), cp, self.now)
                .expect("a checkpoint the job wrote resumes"),
            None => Job::new(cfg, self.plan.clone(), self.now),
        };
    }

    /// The clock jumps, forwards (up to days) or backwards.
    fn jump(&mut self, how: u8, amount: u16) {
        let ms = u64::from(amount) * if how & 2 == 0 { 1_000 } else { 10_000 };
        self.now = if how & 1 == 0 {
            self.now.plus_millis(ms)
        } else {
            UnixMillis(self.now.as_millis().saturating_sub(ms))
        };
    }

    /// A `Done`: checks the outcomes and the summary, then either stops (the
    /// job is complete) or resumes the job as a user running it again would.
    fn done(&mut self, summary: &JobSummary, adjust: impl FnOnce(&mut JobConfig)) {
        assert!(self.open.is_empty(), "done with exchanges still open");
        let v = std::mem::take(&mut self.volatile);
        self.durable.extend(v);
        let n = self.plan.len();
        assert_eq!(summary.requests, n);
        for i in 0..n {
            assert!(
                self.durable.contains_key(&i) || self.assumed.contains(&i),
                "request {i} has no outcome at Done: {summary:?}"
            );
        }
        if self.assumed.is_empty() {
            let mut counts = [0u64; 3];
            for code in self.durable.values() {
                counts[usize::from(*code)] += 1;
            }
            assert_eq!(
                [summary.succeeded, summary.failed, summary.not_processed],
                counts,
                "the summary's counts are not the outcomes' counts"
            );
        }
        if summary.complete {
            self.finished = true;
            return;
        }
        // Stopped (a timeout, a fatal error, shards given up): run it again.
        self.run_seen.clear();
        let mut cfg = self.cfg.clone();
        adjust(&mut cfg);
        self.restart(cfg);
    }

    /// Drives the job to its end against a well-behaved server: exchanges
    /// still open get their scripted answers, every new request a correct
    /// one, waits elapse exactly, and a run stopped early is resumed
    /// without a maximum wait (the clock may have left backoffs far ahead),
    /// until it completes or stops twice in a row the same way.
    pub(super) fn settle(&mut self) {
        while !self.open.is_empty() {
            self.report(0, 0);
        }
        let mut resumes = 0u32;
        let mut polls = 0u64;
        let mut last: Option<JobSummary> = None;
        while !self.finished {
            polls += 1;
            assert!(
                polls <= SETTLE_POLLS,
                "the job did not finish against a well-behaved server within {SETTLE_POLLS} polls"
            );
            match self.job.poll(self.now) {
                Step::Send { id, request } => {
                    let kind = self.sending(&request);
                    let reports = self.good_response(&kind);
                    self.open.push(Open {
                        id,
                        kind,
                        reports,
                        status: None,
                        body: Vec::new(),
                    });
                    while !self.open.is_empty() {
                        self.report(0, 0);
                    }
                }
                Step::Wait { until, .. } => {
                    assert!(until >= self.now, "a wait in the past");
                    self.now = until;
                }
                Step::Persist(cp) => self.store(cp),
                Step::Done(summary) => {
                    if !summary.complete {
                        if last.as_ref() == Some(&summary) {
                            // Run again, the job stops the same way: what
                            // stops it is in its durable state (say, a batch
                            // id the API cannot be asked about), not in the
                            // server. Every run ended with every outcome.
                            self.done(&summary, |_| {});
                            return;
                        }
                        resumes += 1;
                        assert!(
                            resumes <= SETTLE_RESUMES,
                            "the job stopped {resumes} times against a well-behaved server: {summary:?}"
                        );
                    }
                    self.done(&summary, |cfg| cfg.max_wait = None);
                    last = Some(summary);
                }
                other => self.common_step(other),
            }
        }
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    // ----- the well-behaved server -----

    /// A correct answer: uploads and creates succeed, batches are complete
    /// at once, listings are empty, and every result file holds a success
    /// for every request of the plan (each shard takes its own; it ignores
    /// `Range` and sends the whole file, which HTTP allows).
    fn good_response(&mut self, kind: &Kind) -> VecDeque<Report> {
        let k = self.next_serial();
        let (status, body) = match kind {
            Kind::Upload { shard, len } => (
                200,
                file_json(
                    &format!("file-wb{k}"),
                    &shard_filename(self.plan.job_id(), *shard),
                    *len,
                    "batch",
                ),
            ),
            Kind::ListFiles | Kind::ListBatches => (200, page(Vec::new(), false)),
            Kind::Create { .. } => (
                200,
                batch_json(
                    &format!("batch_wb{k}"),
                    "completed",
                    Some("file-wbout"),
                    None,
                    None,
                    None,
                ),
            ),
            Kind::Retrieve { batch_id } => (
                200,
                batch_json(batch_id, "completed", Some("file-wbout"), None, None, None),
            ),
            Kind::Cancel { batch_id } => (
                200,
                batch_json(batch_id, "cancelled", Some("file-wbout"), None, None, None),
            ),
            Kind::FileInfo { file_id } => (
                200,
                file_json(
                    file_id,
                    "batch_output.jsonl",
                    self.good_file().len() as u64,
                    "batch_output",
                ),
            ),
            Kind::Content { from, if_range, .. } => {
                return self.good_content(self.good_file(), *from, if_range.as_deref());
            }
            Kind::Other => (
                404,
                json!({"error": {"message": "no route", "type": "invalid_request_error"}}),
            ),
        };
        whole(status, serde_json::to_vec(&body).expect("JSON serializes"))
    }

    /// The well-behaved server's result file: a success for every request.
    fn good_file(&self) -> Vec<u8> {
        let mut file = Vec::new();
        for i in 0..self.plan.len() {
            file.extend_from_slice(success_line(self.plan.custom_id(i), i).as_bytes());
            file.push(b'\n');
        }
        file
    }

    /// A result file as RFC 9110 §14 serves it: with an `ETag`; a `Range`
    /// is honoured (206, or 416 past the end) unless an `If-Range` names
    /// another validator, which gets the whole file (200). With
    /// `ignore_range`, every request gets the whole file, which a server
    /// may also do.
    fn good_content(&self, file: Vec<u8>, from: u64, if_range: Option<&str>) -> VecDeque<Report> {
        const ETAG: &str = "\"wb\"";
        let len = file.len() as u64;
        let honour = !self.ignore_range && from > 0 && if_range.is_none_or(|v| v == ETAG);
        let (status, body, range) = match usize::try_from(from).ok().and_then(|f| file.get(f..)) {
            Some(rest) if honour && !rest.is_empty() => (
                206,
                rest.to_vec(),
                Some(format!("bytes {from}-{}/{len}", len - 1)),
            ),
            _ if honour => (416, Vec::new(), Some(format!("bytes */{len}"))),
            _ => (200, file, None),
        };
        let mut reports = whole(status, body);
        if let Some(Report::Head(head)) = reports.front_mut() {
            head.headers
                .insert(http::header::ETAG, HeaderValue::from_static(ETAG));
            if let Some(v) = range.and_then(|r| HeaderValue::from_str(&r).ok()) {
                head.headers.insert(http::header::CONTENT_RANGE, v);
            }
        }
        reports
    }

    // ----- the fuzzed server -----

    /// Whatever the input says: a transport failure before the head, or a
    /// status, headers and a body (plausible or garbage), delivered in
    /// chunks and maybe cut off.
    fn fuzzed_response(
        &mut self,
        kind: &Kind,
        request: &Request<Outgoing>,
        input: &mut Input<'_>,
    ) -> VecDeque<Report> {
        let mode = input.byte();
        if mode < 20 {
            let kind = [
                FailureKind::NotSent,
                FailureKind::OutcomeUnknown,
                FailureKind::BodyInterrupted,
            ][usize::from(mode % 3)];
            return VecDeque::from([Report::Fail(kind)]);
        }
        const STATUSES: [u16; 26] = [
            200, 200, 200, 200, 200, 200, 200, 200, 201, 204, 206, 301, 304, 400, 401, 404, 408,
            409, 410, 416, 429, 429, 500, 502, 503, 504,
        ];
        let status = match input.pick(STATUSES.len() + 1) {
            i if i < STATUSES.len() => STATUSES[i],
            _ => 100 + u16::try_from(input.below(900)).unwrap_or(0),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        let body = match input.byte() % 8 {
            0 => Vec::new(),
            1 => input.bytes(64).to_vec(),
            2 => error_body(input),
            _ => self.plausible_body(kind, request, input),
        };
        let mut r = http::Response::new(());
        *r.status_mut() = status;
        let headers = r.headers_mut();
        match input.byte() % 4 {
            0 => {}
            1 => {
                let v = HeaderValue::from(body.len().saturating_sub(1 + input.pick(8)));
                headers.insert(http::header::CONTENT_LENGTH, v);
            }
            _ => {
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
        }
        let extra = input.byte();
        if extra & 1 != 0 {
            const RETRY_AFTER: [&str; 9] = [
                "0",
                "5",
                "120",
                "86400",
                "18446744073709551615",
                "-3",
                "soon",
                "Wed, 21 Oct 2015 07:28:00 GMT",
                "Sun, 06 Nov 2094 08:49:37 GMT",
            ];
            let v = RETRY_AFTER[input.pick(RETRY_AFTER.len())];
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static(v));
        }
        if extra & 2 != 0 {
            const MS: [&str; 5] = ["1500", "0.5", "1e30", "NaN", "-1"];
            let v = MS[input.pick(MS.len())];
            headers.insert("retry-after-ms", HeaderValue::from_static(v));
        }
        if extra & 4 != 0 {
            const ETAGS: [&str; 3] = ["\"a\"", "\"b\"", "W/\"a\""];
            let v = ETAGS[input.pick(ETAGS.len())];
            headers.insert(http::header::ETAG, HeaderValue::from_static(v));
        }
        if extra & 8 != 0 {
            let from = match kind {
                Kind::Content { from, .. } => *from,
                _ => 0,
            };
            let v = match input.byte() % 4 {
                0 => "bytes */100".to_owned(),
                1 => "garbage".to_owned(),
                2 => {
                    let a = input.below(4096);
                    format!("bytes {a}-{}/{}", a + input.below(4096), input.below(8192))
                }
                _ => {
                    let end = from + (body.len() as u64).max(1) - 1;
                    format!("bytes {from}-{end}/{}", end + 1)
                }
            };
            if let Ok(v) = HeaderValue::from_str(&v) {
                headers.insert(http::header::CONTENT_RANGE, v);
            }
        }
        if extra & 16 != 0 {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let (head, ()) = r.into_parts();
        let mut reports = VecDeque::from([Report::Head(head)]);
        // Chunks at cut points the input chooses, then an end or a cut-off.
        let mut rest = &body[..];
        let pieces = input.below(4);
        for _ in 0..pieces {
            let n = input.pick(rest.len() + 1);
            let (a, b) = rest.split_at(n);
            if !a.is_empty() {
                reports.push_back(Report::Chunk(a.to_vec()));
            }
            rest = b;
        }
        let cut = input.byte();
        if cut < 24 && !rest.is_empty() {
            let n = input.pick(rest.len());
            if n > 0 {
                reports.push_back(Report::Chunk(rest[..n].to_vec()));
            }
            let kind = [
                FailureKind::BodyInterrupted,
                FailureKind::OutcomeUnknown,
                FailureKind::NotSent,
            ][usize::from(cut % 3)];
            reports.push_back(Report::Fail(kind));
            return reports;
        }
        if !rest.is_empty() {
            reports.push_back(Report::Chunk(rest.to_vec()));
        }
        reports.push_back(Report::End);
        reports
    }

    /// A body shaped like the answer to `kind`, with fields the input picks.
    fn plausible_body(
        &mut self,
        kind: &Kind,
        request: &Request<Outgoing>,
        input: &mut Input<'_>,
    ) -> Vec<u8> {
        let value = match kind {
            Kind::Upload { shard, len } => self.fuzzed_file(Some((*shard, *len)), input),
            Kind::ListFiles => {
                let n = input.below(4);
                let mut files = Vec::new();
                for _ in 0..n {
                    let shard = u32::try_from(input.below(self.plan.shards().len() as u64 + 1))
                        .unwrap_or(0);
                    let len = self
                        .plan
                        .shards()
                        .get(usize::try_from(shard).unwrap_or(usize::MAX))
                        .map_or(0, |s| s.bytes);
                    files.push(self.fuzzed_file(Some((shard, len)), input));
                }
                page(files, input.chance(64))
            }
            Kind::Create { shard, attempt } => {
                let meta = echo_metadata(request, *shard, *attempt, input);
                self.fuzzed_batch(None, meta, input)
            }
            Kind::ListBatches => {
                let n = input.below(4);
                let mut batches = Vec::new();
                for _ in 0..n {
                    let shard = input.pick(self.plan.shards().len() + 1);
                    let attempt = u32::try_from(input.below(4)).unwrap_or(0);
                    let meta = echo_metadata(request, shard, attempt, input);
                    batches.push(self.fuzzed_batch(None, meta, input));
                }
                page(batches, input.chance(64))
            }
            Kind::Retrieve { batch_id } | Kind::Cancel { batch_id } => {
                let id = batch_id.clone();
                self.fuzzed_batch(Some(&id), None, input)
            }
            Kind::FileInfo { file_id } => {
                // Mostly the right size, sometimes any size.
                let mut file = self.fuzzed_file(None, input);
                file["id"] = Value::from(file_id.clone());
                if input.byte() < 160 {
                    file["bytes"] = Value::from(self.good_file().len() as u64);
                }
                file
            }
            Kind::Content { .. } => return self.fuzzed_file_content(input),
            Kind::Other => json!({}),
        };
        serde_json::to_vec(&value).expect("JSON serializes")
    }

    fn fuzzed_file(&mut self, shard: Option<(u32, u64)>, input: &mut Input<'_>) -> Value {
        let k = self.next_serial();
        let id = pick_id(input, &format!("file-{k}"));
        let (name, len) = match shard {
            Some((s, len)) if input.byte() < 200 => (shard_filename(self.plan.job_id(), s), len),
            _ => ("other.jsonl".to_owned(), input.below(1 << 20)),
        };
        let len = if input.chance(32) {
            input.below(1 << 20)
        } else {
            len
        };
        const PURPOSES: [&str; 3] = ["batch", "batch_output", "fine-tune"];
        file_json(&id, &name, len, PURPOSES[input.pick(PURPOSES.len())])
    }

    fn fuzzed_batch(
        &mut self,
        id: Option<&str>,
        metadata: Option<Value>,
        input: &mut Input<'_>,
    ) -> Value {
        const STATUSES: [&str; 9] = [
            "validating",
            "in_progress",
            "finalizing",
            "completed",
            "failed",
            "expired",
            "cancelling",
            "cancelled",
            "paused",
        ];
        let k = self.next_serial();
        let own = format!("batch_{k}");
        let id = match id {
            Some(id) if input.byte() < 220 => id.to_owned(),
            _ => pick_id(input, &own),
        };
        let status = STATUSES[input.pick(STATUSES.len())];
        let out = (input.byte() < 160).then(|| pick_id(input, "file-out"));
        let err = (input.byte() < 80).then(|| pick_id(input, "file-err"));
        let errors = match input.byte() % 4 {
            0 => Some(json!({"object": "list", "data": [{
                "code": "token_limit_exceeded",
                "message": "Enqueued token limit reached.",
                "param": null,
                "line": null,
            }]})),
            1 => Some(json!({"object": "list", "data": [{
                "code": "invalid_request",
                "message": "bad line",
                "param": "body",
                "line": input.below(16),
            }]})),
            _ => None,
        };
        let total = self.plan.len();
        let counts = json!({
            "total": total,
            "completed": input.below(total + 2),
            "failed": input.below(total + 2),
        });
        let created = if input.chance(32) {
            0
        } else {
            i64::try_from(self.now.as_secs()).unwrap_or(0)
        };
        let mut v = batch_json(
            &id,
            status,
            out.as_deref(),
            err.as_deref(),
            errors,
            metadata,
        );
        v["request_counts"] = counts;
        v["created_at"] = json!(created);
        v
    }

    /// A result file: lines for the plan's requests (or others), in any
    /// order, with any outcome, some garbage, repeats and odd line ends.
    fn fuzzed_file_content(&mut self, input: &mut Input<'_>) -> Vec<u8> {
        let n = self.plan.len();
        let lines = input.below(2 * n + 3);
        let mut file = Vec::new();
        for _ in 0..lines {
            let index = input.below(n + 1);
            let id = if index < n {
                self.plan.custom_id(index).to_owned()
            } else {
                "not-in-the-plan".to_owned()
            };
            let line = match input.byte() % 8 {
                0..=2 => success_line(&id, index),
                3 => json!({
                    "id": format!("batch_req_{index}"),
                    "custom_id": id,
                    "response": {"status_code": 400, "request_id": "req", "body": {"error": {
                        "message": "Invalid 'messages'.", "type": "invalid_request_error",
                        "param": "messages", "code": null}}},
                    "error": null,
                })
                .to_string(),
                4 => {
                    const CODES: [&str; 3] = ["batch_expired", "batch_cancelled", "server_error"];
                    json!({
                        "id": format!("batch_req_{index}"),
                        "custom_id": id,
                        "response": null,
                        "error": {"code": CODES[input.pick(CODES.len())], "message": "not run"},
                    })
                    .to_string()
                }
                5 => {
                    // A line cut short: its id can be salvaged.
                    let full = success_line(&id, index);
                    let keep = input.pick(full.len());
                    full.get(..keep).unwrap_or_default().to_owned()
                }
                6 => String::from_utf8_lossy(input.bytes(24)).replace('\n', " "),
                _ => String::new(),
            };
            file.extend_from_slice(line.as_bytes());
            file.extend_from_slice(if input.chance(32) { b"\r\n" } else { b"\n" });
        }
        if input.chance(48) {
            file.pop();
        }
        file
    }
}

/// The batch's metadata as the create sent it, or altered.
fn echo_metadata(
    request: &Request<Outgoing>,
    shard: usize,
    attempt: u32,
    input: &mut Input<'_>,
) -> Option<Value> {
    let sent = match request.body() {
        Outgoing::Json(b) => serde_json::from_slice::<Value>(b)
            .ok()
            .and_then(|v| v.get("metadata").cloned()),
        _ => None,
    };
    match input.byte() % 4 {
        0 => None,
        1 => Some(json!({
            crate::job::META_JOB: "job-fuzz",
            META_SHARD: shard.to_string(),
            META_ATTEMPT: attempt.to_string(),
        })),
        _ => sent.or_else(|| {
            Some(json!({
                crate::job::META_JOB: "job-fuzz",
                META_SHARD: shard.to_string(),
                META_ATTEMPT: attempt.to_string(),
            }))
        }),
    }
}

/// An id: usually `own`, sometimes one shared with other answers, sometimes
/// one the request builders must refuse.
fn pick_id(input: &mut Input<'_>, own: &str) -> String {
    const IDS: [&str; 6] = ["batch_a", "file-out", "file-a", "", "../x", "a b"];
    match input.byte() % 8 {
        0 | 1 => IDS[input.pick(IDS.len())].to_owned(),
        _ => own.to_owned(),
    }
}

fn error_body(input: &mut Input<'_>) -> Vec<u8> {
    const CODES: [&str; 4] = [
        "rate_limit_exceeded",
        "server_error",
        "invalid_api_key",
        "token_limit_exceeded",
    ];
    let code = CODES[input.pick(CODES.len())];
    serde_json::to_vec(&json!({"error": {
        "message": "fuzzed error", "type": "invalid_request_error", "param": null, "code": code,
    }}))
    .expect("JSON serializes")
}

fn success_line(custom_id: &str, index: u64) -> String {
    json!({
        "id": format!("batch_req_{index}"),
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": format!("req_{index}"), "body": {
            "id": format!("chatcmpl-{index}"), "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }},
        "error": null,
    })
    .to_string()
}

fn file_json(id: &str, filename: &str, bytes: u64, purpose: &str) -> Value {
    json!({
        "id": id, "object": "file", "bytes": bytes, "created_at": T0 / 1000,
        "expires_at": null, "filename": filename, "purpose": purpose,
        "status": "processed", "status_details": null,
    })
}

fn batch_json(
    id: &str,
    status: &str,
    output_file_id: Option<&str>,
    error_file_id: Option<&str>,
    errors: Option<Value>,
    metadata: Option<Value>,
) -> Value {
    json!({
        "id": id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": errors,
        "input_file_id": "file-in", "completion_window": "24h", "status": status,
        "output_file_id": output_file_id, "error_file_id": error_file_id,
        "created_at": T0 / 1000, "in_progress_at": null, "expires_at": null,
        "request_counts": {"total": 0, "completed": 0, "failed": 0},
        "metadata": metadata,
    })
}

fn page(data: Vec<Value>, has_more: bool) -> Value {
    let first = data.first().and_then(|v| v.get("id")).cloned();
    let last = data.last().and_then(|v| v.get("id")).cloned();
    json!({"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more})
}

/// A whole response: head with `Content-Length`, the body, the end.
fn whole(status: u16, body: Vec<u8>) -> VecDeque<Report> {
    let mut r = http::Response::new(());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let (head, ()) = r.into_parts();
    VecDeque::from([Report::Head(head), Report::Chunk(body), Report::End])
}
