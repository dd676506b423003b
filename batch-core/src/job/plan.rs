//! The plan of a job: which requests go into which shard.
//!
//! Shards are contiguous runs of the input, in input order, each under the
//! per-file limits (requests and bytes, and for `/v1/embeddings` the
//! embedding inputs of all its requests). Every request is known by its global
//! input index, so results can be placed by index (no sorting, no map from
//! ids to results).
//!
//! Ids are found by 8-byte digests in an open-addressing table of 4-byte
//! indexes: about 15 bytes a request, whatever the ids' length. Two
//! requests whose digests are equal are compared by their ids before a
//! duplicate is reported, so a digest collision never makes a false
//! "duplicate" error. The ids themselves are kept too, in one arena
//! (`len(id) + 8` bytes a request), unless the plan is built
//! [`without_ids`](PlanBuilder::without_ids): then the caller, who keeps the
//! requests in its shard files anyway, reads an id back when one is needed.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::api::Endpoint;
use crate::error::{InputError, Problem};
use crate::input::BatchRequest;
use crate::jsonl::{EncodeConfig, Push, ShardEncoder, ShardLimit};
use crate::provider::UrlStyle;

/// Rewrites the `url` of the encoded request line in `line` to `style`, and
/// returns how many bytes shorter the line became. The line format puts
/// `,"method":"POST","url":"` right after the `custom_id` string, whose own
/// quotes are escaped, so the first such run is the url.
fn restyle_url(style: UrlStyle, line: &mut Vec<u8>) -> u64 {
    const KEY: &[u8] = b",\"method\":\"POST\",\"url\":\"";
    if style == UrlStyle::Versioned {
        return 0;
    }
    let Some(at) = line.windows(KEY.len()).position(|w| w == KEY) else {
        return 0;
    };
    let start = at + KEY.len();
    let Some(len) = line[start..].iter().position(|b| *b == b'"') else {
        return 0;
    };
    let url = String::from_utf8_lossy(&line[start..start + len]).into_owned();
    let styled = style.apply(&url);
    let cut = url.len() - styled.len();
    if cut > 0 {
        line.drain(start..start + cut);
    }
    cut as u64
}

/// Limits for splitting input into shards (API notes §2 and §4: at most
/// 50,000 requests and 200 MB per batch input file, and at most 50,000
/// embedding inputs in one `/v1/embeddings` batch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShardLimits {
    /// Requests per shard.
    pub max_requests: u64,
    /// Bytes per shard file (JSONL, newlines included).
    pub max_bytes: u64,
    /// Embedding inputs per shard, counted by
    /// [`embedding_inputs`](crate::jsonl::embedding_inputs); applies to
    /// `/v1/embeddings` only.
    #[serde(default = "default_max_inputs")]
    pub max_inputs: u64,
}

fn default_max_inputs() -> u64 {
    EncodeConfig::MAX_EMBEDDING_INPUTS
}

impl Default for ShardLimits {
    /// 50,000 requests, 200 MB (200 × 1024 × 1024 bytes) and 50,000
    /// embedding inputs.
    fn default() -> Self {
        ShardLimits {
            max_requests: 50_000,
            max_bytes: 200 * 1024 * 1024,
            max_inputs: default_max_inputs(),
        }
    }
}

impl ShardLimits {
    /// Limits of `max_requests` requests and `max_bytes` bytes per shard,
    /// and the API's 50,000 embedding inputs.
    pub fn new(max_requests: u64, max_bytes: u64) -> Self {
        ShardLimits {
            max_requests,
            max_bytes,
            max_inputs: default_max_inputs(),
        }
    }

    /// Sets the most embedding inputs per shard (`/v1/embeddings` only).
    #[must_use]
    pub fn with_max_inputs(mut self, max_inputs: u64) -> Self {
        self.max_inputs = max_inputs;
        self
    }
}

/// One shard of a plan: requests `start..start + requests` of the input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    /// The shard's position in the plan, from 0.
    pub index: u32,
    /// The global input index of its first request.
    pub start: u64,
    /// How many requests it holds.
    pub requests: u64,
    /// The exact byte length of its JSONL file.
    pub bytes: u64,
    /// Its embedding inputs (0 unless the endpoint is `/v1/embeddings`).
    #[serde(default)]
    pub inputs: u64,
}

impl ShardPlan {
    /// The global indexes of its requests.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.start..self.start + self.requests
    }
}

/// Which shard a request was placed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Placement {
    /// The request's global input index.
    pub index: u64,
    /// The shard it goes into.
    pub shard: u32,
    /// True when this request opens a new shard: the caller starts a new file.
    pub new_shard: bool,
}

/// Builds a [`JobPlan`] one request at a time, deciding the shard boundaries.
///
/// Each request is validated by a [`ShardEncoder`] (empty or repeated
/// `custom_id`, url not the endpoint, mixed models, size limits) before it
/// is placed, and encoded into a line the caller appends to its shard file.
///
/// `custom_id`s must be unique across the whole input. The builder checks
/// that itself, by 8-byte digests of the ids (see
/// [`PlanBuilder::without_ids`]), rather than with the encoder's map of ids.
pub struct PlanBuilder {
    job_id: String,
    endpoint: Endpoint,
    limits: ShardLimits,
    source: String,
    encoder: ShardEncoder,
    /// Set for a Message Batches plan: it encodes and checks instead of `encoder`.
    anthropic: Option<crate::anthropic::RequestEncoder>,
    ids: IdTable,
    /// Reads back the `custom_id` of an earlier input line, for a plan
    /// built without its ids.
    read_back: Option<ReadBack>,
    /// Each id's length in bytes (255: see `long_lens`), for the digest.
    lens: Chunks<u8>,
    /// The lengths of 255 bytes or more, by index.
    long_lens: Vec<(u64, u64)>,
    /// FNV-1a over the job id, the endpoint and the ids so far.
    hash: Fnv64,
    shards: Vec<ShardPlan>,
    url_style: UrlStyle,
}

/// See [`PlanBuilder::without_ids`].
type ReadBack = Box<dyn FnMut(u64) -> Option<String> + Send>;

impl fmt::Debug for PlanBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlanBuilder")
            .field("job_id", &self.job_id)
            .field("endpoint", &self.endpoint)
            .field("limits", &self.limits)
            .field("source", &self.source)
            .field("requests", &self.ids.len)
            .field("keeps_ids", &self.ids.stored.is_some())
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl PlanBuilder {
    /// Starts a plan for the job `job_id` targeting `endpoint`. `source` names
    /// the input in error messages.
    pub fn new(
        job_id: impl Into<String>,
        endpoint: Endpoint,
        limits: ShardLimits,
        source: impl Into<String>,
    ) -> Self {
        let source = source.into();
        let job_id = job_id.into();
        let encoder = ShardEncoder::new(
            EncodeConfig::new(source.clone(), endpoint.clone())
                .max_requests(limits.max_requests)
                .max_bytes(limits.max_bytes)
                .max_inputs(limits.max_inputs),
        )
        .without_id_tracking();
        let mut hash = Fnv64::new();
        hash.write(job_id.as_bytes());
        hash.write(endpoint.as_str().as_bytes());
        PlanBuilder {
            job_id,
            endpoint,
            limits,
            source,
            encoder,
            anthropic: None,
            ids: IdTable::keeping_ids(),
            read_back: None,
            lens: Chunks::default(),
            long_lens: Vec::new(),
            hash,
            shards: Vec::new(),
            url_style: UrlStyle::Versioned,
        }
    }

    /// Writes each request line's `url` in `style`: Azure OpenAI's dated
    /// API versions take `/chat/completions` where OpenAI takes
    /// `/v1/chat/completions` (see [`Provider::url_style`](crate::provider::Provider::url_style)).
    /// The plan's endpoint stays the same; only the lines' bytes change.
    #[must_use]
    pub fn url_style(mut self, style: UrlStyle) -> Self {
        self.url_style = style;
        self
    }

    /// Starts a plan for the job `job_id` whose shards are Anthropic
    /// Message Batches: requests carry `params` (see
    /// [`crate::anthropic::parse_request_line`] and
    /// [`MessagesTemplate`](crate::anthropic::MessagesTemplate)), `limits`
    /// bound each batch's requests and its create body, framing included
    /// (see [`Provider::anthropic`](crate::provider::Provider::anthropic)),
    /// and each shard is encoded by [`RequestEncoder`](crate::anthropic::RequestEncoder)
    /// for [`create_batch`](crate::anthropic::create_batch).
    pub fn anthropic(
        job_id: impl Into<String>,
        limits: ShardLimits,
        source: impl Into<String>,
    ) -> Self {
        let source = source.into();
        let mut b = PlanBuilder::new(
            job_id,
            crate::anthropic::messages_endpoint(),
            limits.clone(),
            source.clone(),
        );
        b.anthropic = Some(crate::anthropic::RequestEncoder::new(
            source,
            limits.max_requests,
            limits.max_bytes,
        ));
        b
    }

    /// Builds a plan that does not keep the `custom_id`s: planning then
    /// costs about 15 bytes a request, however long the ids are. The plan
    /// still finds a request by its id ([`JobPlan::index_of`], by digest),
    /// but [`JobPlan::custom_id`] is empty: a job on such a plan names a
    /// request that has no result line by its index only (its
    /// [`JobResult::custom_id`](crate::job::JobResult::custom_id) is empty)
    /// and the caller reads the id from its shard file.
    ///
    /// `read_back(line)` returns the `custom_id` of the earlier input line
    /// `line` (a line this builder accepted). It is called only when two
    /// requests' digests are equal, to tell a duplicate from a digest
    /// collision; if it returns `None`, the request is reported as a
    /// duplicate.
    #[must_use]
    pub fn without_ids(
        mut self,
        read_back: impl FnMut(u64) -> Option<String> + Send + 'static,
    ) -> Self {
        self.ids.stored = None;
        self.read_back = Some(Box::new(read_back));
        self
    }

    /// Validates `req` (read from input line `line`), encodes it into
    /// `line_out` (cleared first: it receives exactly this request's JSONL
    /// line) and places it in a shard. When the placement says `new_shard`,
    /// the caller starts a new shard file before appending the line.
    ///
    /// # Errors
    /// An [`InputError`] naming the line and field, for an empty or repeated
    /// `custom_id` (a repeated one names the line it was first used on), a
    /// url that is not the plan's endpoint, a model that
    /// differs from the first line's, a line larger than a shard may be, or
    /// an embeddings request with more inputs than a shard may hold
    /// ([`Problem::InputsOverLimit`], field `body.input`).
    pub fn push(
        &mut self,
        line: u64,
        req: &BatchRequest,
        line_out: &mut Vec<u8>,
    ) -> Result<Placement, InputError> {
        line_out.clear();
        let collided = self.check_unique(line, &req.custom_id)?;
        let mut new_shard = self.shards.is_empty();
        if let Some(enc) = self.anthropic.as_mut() {
            let bytes = match enc.try_push(line, req, line_out)? {
                Push::Written { bytes } => bytes,
                Push::Full(_) => {
                    enc.finish_shard();
                    new_shard = true;
                    match enc.try_push(line, req, line_out)? {
                        Push::Written { bytes } => bytes,
                        Push::Full(_) => {
                            let max = self.limits.max_bytes;
                            return Err(InputError::new(
                                &self.source,
                                line,
                                "",
                                Problem::TooManyBytes { max },
                            ));
                        }
                    }
                }
            };
            let placement = self.place(&req.custom_id, line, bytes, 0, new_shard);
            if !collided.is_empty() {
                self.ids.collide(&req.custom_id, placement.index, collided);
            }
            return Ok(placement);
        }
        let written = match self.encoder.try_push(line, req, line_out)? {
            Push::Written { bytes } => bytes,
            Push::Full(_) => {
                self.encoder.finish_shard();
                new_shard = true;
                match self.encoder.try_push(line, req, line_out)? {
                    Push::Written { bytes } => bytes,
                    Push::Full(limit) => {
                        // The encoder never reports an empty shard full; this
                        // is a guard, not a path.
                        let problem = match limit {
                            ShardLimit::Requests => Problem::TooManyRequests {
                                max: self.limits.max_requests,
                            },
                            ShardLimit::Inputs => Problem::TooManyInputs {
                                max: self.limits.max_inputs,
                            },
                            _ => Problem::TooManyBytes {
                                max: self.limits.max_bytes,
                            },
                        };
                        return Err(InputError::new(&self.source, line, "", problem));
                    }
                }
            }
        };
        let bytes = written - restyle_url(self.url_style, line_out);
        let inputs = self.encoder.inputs();
        let placement = self.place(&req.custom_id, line, bytes, inputs, new_shard);
        if !collided.is_empty() {
            self.ids.collide(&req.custom_id, placement.index, collided);
        }
        Ok(placement)
    }

    /// Checks that `custom_id`, of input line `line`, is not taken. Returns
    /// the earlier requests whose digests are equal though their ids
    /// differ (almost always none), with their ids.
    fn check_unique(
        &mut self,
        line: u64,
        custom_id: &str,
    ) -> Result<Vec<(String, u64)>, InputError> {
        // An empty id is the encoder's to report.
        if custom_id.is_empty() {
            return Ok(Vec::new());
        }
        let duplicate = |ids: &IdTable, first: u64| {
            InputError::new(
                &self.source,
                line,
                "custom_id",
                Problem::Duplicate {
                    value: custom_id.to_owned(),
                    first_line: ids.line_of(first),
                },
            )
        };
        if self.ids.len >= u64::from(u32::MAX - 1) {
            return Err(InputError::new(
                &self.source,
                line,
                "",
                Problem::Invalid("a plan holds at most 4,294,967,294 requests".into()),
            ));
        }
        if let Some(&first) = self.ids.collided.get(custom_id) {
            return Err(duplicate(&self.ids, first));
        }
        let h = (self.ids.digest)(custom_id);
        let mut collided = Vec::new();
        let candidates: Vec<u64> = self.ids.probe(h).collect();
        for first in candidates {
            let earlier = match (&self.ids.stored, self.read_back.as_mut()) {
                (Some(stored), _) => Some(stored.get(first).to_owned()),
                (None, Some(read)) => read(self.ids.line_of(first)),
                (None, None) => None,
            };
            match earlier {
                Some(id) if id != custom_id => collided.push((id, first)),
                _ => return Err(duplicate(&self.ids, first)),
            }
        }
        Ok(collided)
    }

    /// Records a request written to the current shard, which now holds
    /// `shard_inputs` embedding inputs in all.
    fn place(
        &mut self,
        custom_id: &str,
        line: u64,
        line_bytes: u64,
        shard_inputs: u64,
        new_shard: bool,
    ) -> Placement {
        let index = self.ids.len;
        if new_shard {
            let next = u32::try_from(self.shards.len()).unwrap_or(u32::MAX);
            self.shards.push(ShardPlan {
                index: next,
                start: index,
                requests: 0,
                bytes: 0,
                inputs: 0,
            });
        }
        let shard = self.shards.last_mut().expect("a shard was just ensured");
        shard.requests += 1;
        shard.bytes += line_bytes;
        shard.inputs = shard_inputs;
        self.ids.insert(custom_id, line);
        self.hash.write(custom_id.as_bytes());
        let len = custom_id.len() as u64;
        match u8::try_from(len) {
            Ok(short) if short < u8::MAX => self.lens.push(short),
            _ => {
                self.lens.push(u8::MAX);
                self.long_lens.push((index, len));
            }
        }
        Placement {
            index,
            shard: shard.index,
            new_shard,
        }
    }

    /// How many requests have been placed.
    pub fn len(&self) -> u64 {
        self.ids.len
    }

    /// Whether no request has been placed.
    pub fn is_empty(&self) -> bool {
        self.ids.len == 0
    }

    /// Finishes the plan.
    ///
    /// # Errors
    /// Fails if the input was empty. (A `custom_id` that appears twice in
    /// the input is refused by [`push`](Self::push), naming the later line
    /// and the first one: results are matched by `custom_id`, so ids must be
    /// unique across all shards.)
    pub fn finish(self) -> Result<JobPlan, InputError> {
        if self.ids.len == 0 {
            return Err(InputError::new(
                &self.source,
                0,
                "custom_id",
                Problem::Invalid("the input holds no requests".into()),
            ));
        }
        // The digest reads as if all ids were in one arena followed by
        // their end offsets (the digest of earlier versions).
        let mut h = self.hash;
        let mut end = 0u64;
        let mut long = self.long_lens.iter().peekable();
        for index in 0..self.ids.len {
            end += match self.lens.get(index) {
                u8::MAX => long.next().map_or(0, |&(_, len)| len),
                short => u64::from(short),
            };
            h.write(&end.to_le_bytes());
        }
        for s in &self.shards {
            h.write(&s.start.to_le_bytes());
            h.write(&s.requests.to_le_bytes());
            h.write(&s.bytes.to_le_bytes());
        }
        let digest = PlanDigest {
            requests: self.ids.len,
            shards: self.shards.len() as u64,
            hash: format!("{:016x}", h.finish()),
        };
        Ok(JobPlan {
            job_id: self.job_id,
            endpoint: self.endpoint,
            ids: self.ids,
            shards: self.shards,
            by_id: None,
            digest: Some(digest),
        })
    }
}

/// The whole job: its id, endpoint, shards and every request's `custom_id`.
///
/// Build it with [`PlanBuilder`]. It is not part of the checkpoint: a resumed
/// job is given the same plan again (rebuilt from the same input), and the
/// checkpoint's [`PlanDigest`] proves it is the same.
///
/// A plan for a batch the process did not create ([`JobPlan::for_batch`])
/// is *open*: one shard whose batch is known, whose `custom_id`s are learned
/// from its result files as they stream in.
#[derive(Clone, Debug)]
pub struct JobPlan {
    job_id: String,
    endpoint: Endpoint,
    ids: IdTable,
    shards: Vec<ShardPlan>,
    by_id: Option<OpenIds>,
    /// The digest of a plan built from input, taken when it was finished.
    digest: Option<PlanDigest>,
}

/// The ids of an open plan, learned in the order their results arrive.
#[derive(Clone, Debug)]
struct OpenIds {
    batch_id: String,
    index: HashMap<Box<str>, u64>,
}

impl JobPlan {
    /// The plan of a job that reads an existing batch by its id: one shard,
    /// already submitted as `batch_id`, whose job starts at the poll phase.
    ///
    /// The batch's `custom_id`s are not known in advance: each is learned
    /// (and given the next index, from 0) when it is first read: from the
    /// batch's input file (in input order), then from the output file and
    /// the error file, so a request is reported once even if several files
    /// hold a line for it. The shard's
    /// request count grows as ids are learned; the batch's
    /// `request_counts.total` says how many there should be (see
    /// [`Job::summary`](crate::job::Job::summary)). The endpoint is not
    /// known either and reads as [`Endpoint::Unknown`] (empty): a by-id job
    /// never creates a batch.
    pub fn for_batch(job_id: impl Into<String>, batch_id: impl Into<String>) -> JobPlan {
        JobPlan {
            job_id: job_id.into(),
            endpoint: Endpoint::Unknown(String::new()),
            ids: IdTable::keeping_ids(),
            shards: vec![ShardPlan {
                index: 0,
                start: 0,
                requests: 0,
                bytes: 0,
                inputs: 0,
            }],
            by_id: Some(OpenIds {
                batch_id: batch_id.into(),
                index: HashMap::new(),
            }),
            digest: None,
        }
    }

    /// The batch of a plan built by [`for_batch`](Self::for_batch), or `None`
    /// for a plan built from input.
    pub fn batch_id(&self) -> Option<&str> {
        self.by_id.as_ref().map(|o| o.batch_id.as_str())
    }

    /// Whether the plan learns its ids from results ([`for_batch`](Self::for_batch)).
    pub fn is_open(&self) -> bool {
        self.by_id.is_some()
    }

    /// Learns `custom_id` in an open plan: its index, and whether it is new
    /// (then the plan and its one shard hold one more request). `None` for
    /// a plan built from input, whose ids are fixed.
    pub(crate) fn learn(&mut self, custom_id: &str) -> Option<(u64, bool)> {
        let open = self.by_id.as_mut()?;
        if let Some(ix) = open.index.get(custom_id) {
            return Some((*ix, false));
        }
        let ix = self.ids.len;
        open.index.insert(custom_id.into(), ix);
        self.ids.learn(custom_id);
        if let Some(s) = self.shards.first_mut() {
            s.requests += 1;
        }
        Some((ix, true))
    }

    /// The job's id, stamped into each batch's metadata.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }
    /// The endpoint every request targets.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
    /// The shards, in order.
    pub fn shards(&self) -> &[ShardPlan] {
        &self.shards
    }
    /// The number of requests (for an open plan, the ids learned so far).
    pub fn len(&self) -> u64 {
        self.ids.len()
    }
    /// Whether the plan has no requests (never true for a plan built from
    /// input; true for an open plan until it learns its first id).
    pub fn is_empty(&self) -> bool {
        self.ids.len() == 0
    }
    /// The `custom_id` of request `index`; empty for a plan built
    /// [`without_ids`](PlanBuilder::without_ids).
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn custom_id(&self, index: u64) -> &str {
        assert!(index < self.ids.len, "request {index} is not in the plan");
        self.ids.get(index)
    }

    /// Whether the plan keeps its `custom_id`s (see
    /// [`PlanBuilder::without_ids`]).
    pub fn keeps_ids(&self) -> bool {
        self.ids.stored.is_some()
    }
    /// The global index of `custom_id`, if the plan has it. A plan built
    /// [`without_ids`](PlanBuilder::without_ids) finds it by its 8-byte
    /// digest alone (ids of the input whose digests are equal are told apart
    /// by their text), so a foreign id is taken for a planned one only if
    /// their digests are equal, a chance of about one in 2^64 per id.
    pub fn index_of(&self, custom_id: &str) -> Option<u64> {
        match &self.by_id {
            Some(open) => open.index.get(custom_id).copied(),
            None => self.ids.find(custom_id),
        }
    }
    /// A digest that identifies this plan in a checkpoint. An open plan's
    /// digest names its batch only: the ids it learns do not change it.
    pub fn digest(&self) -> PlanDigest {
        let mut h = Fnv64::new();
        if let Some(open) = &self.by_id {
            h.write(self.job_id.as_bytes());
            h.write(b"\0by-batch-id\0");
            h.write(open.batch_id.as_bytes());
            return PlanDigest {
                requests: 0,
                shards: 1,
                hash: format!("{:016x}", h.finish()),
            };
        }
        match &self.digest {
            Some(d) => d.clone(),
            // Not reached: a plan is either open or built by `finish`.
            None => PlanDigest {
                requests: self.len(),
                shards: self.shards.len() as u64,
                hash: format!("{:016x}", h.finish()),
            },
        }
    }
}

/// Identifies a plan: request and shard counts and a hash of ids and shard boundaries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDigest {
    /// The number of requests.
    pub requests: u64,
    /// The number of shards.
    pub shards: u64,
    /// FNV-1a 64 of the job id, endpoint, ids and shard boundaries, in hex.
    pub hash: String,
}

/// Every request's `custom_id`: an 8-byte digest by index, an
/// open-addressing table of indexes by digest, the input line of each
/// index, and the ids themselves unless the plan does without them.
#[derive(Clone, Debug)]
struct IdTable {
    /// How many requests.
    len: u64,
    /// The digest of each request's id, by index.
    hashes: Chunks<u64>,
    /// Linear probing: the index + 1 of a request whose digest starts its
    /// probe here or earlier, 0 where empty. At most 85 % full.
    slots: Vec<u32>,
    /// Where the input line of an index is not one after the previous
    /// index's: `(index, line)`, in order.
    lines: Vec<(u64, u64)>,
    /// The ids, unless the plan does without them.
    stored: Option<Stored>,
    /// Ids whose digests are equal though the ids differ, with their
    /// indexes, and their digests.
    collided: HashMap<Box<str>, u64>,
    collided_digests: Vec<u64>,
    /// The digest function (a weaker one in tests, to make collisions).
    digest: fn(&str) -> u64,
}

/// The ids in one arena, with each one's end offset.
#[derive(Clone, Debug, Default)]
struct Stored {
    arena: String,
    ends: Vec<u64>,
}

impl Stored {
    fn get(&self, index: u64) -> &str {
        let i = usize::try_from(index).expect("index fits in memory");
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let (start, end) = (
            usize::try_from(start).unwrap_or(0),
            usize::try_from(self.ends[i]).unwrap_or(0),
        );
        &self.arena[start..end]
    }
}

impl IdTable {
    fn keeping_ids() -> Self {
        IdTable {
            len: 0,
            hashes: Chunks::default(),
            slots: Vec::new(),
            lines: Vec::new(),
            stored: Some(Stored::default()),
            collided: HashMap::new(),
            collided_digests: Vec::new(),
            digest: id_digest,
        }
    }

    fn len(&self) -> u64 {
        self.len
    }

    /// The id of `index`, or `""` when the ids are not kept.
    fn get(&self, index: u64) -> &str {
        self.stored.as_ref().map_or("", |s| s.get(index))
    }

    /// The input line of `index`.
    fn line_of(&self, index: u64) -> u64 {
        let at = self.lines.partition_point(|&(ix, _)| ix <= index);
        match at.checked_sub(1).and_then(|k| self.lines.get(k)) {
            Some(&(ix, line)) => line + (index - ix),
            None => index + 1,
        }
    }

    fn home(&self, h: u64) -> usize {
        // Multiply-shift maps the digest onto any table size.
        ((u128::from(h) * self.slots.len() as u128) >> 64) as usize
    }

    /// The indexes whose digest is `h`.
    fn probe(&self, h: u64) -> impl Iterator<Item = u64> + '_ {
        let n = self.slots.len();
        let mut i = if n == 0 { 0 } else { self.home(h) };
        let mut left = n;
        std::iter::from_fn(move || {
            while left > 0 {
                let slot = self.slots[i];
                if slot == 0 {
                    return None;
                }
                left -= 1;
                i = if i + 1 == n { 0 } else { i + 1 };
                let index = u64::from(slot - 1);
                if self.hashes.get(index) == h {
                    return Some(index);
                }
            }
            None
        })
    }

    /// Records the next request's id, read from input line `line`.
    fn insert(&mut self, id: &str, line: u64) {
        let index = self.len;
        // Up to 85 % full; then 1.5 times the size. The old table is freed
        // before the new one is filled from the digests, so the two never
        // take memory at once.
        if (index + 1) * 20 > self.slots.len() as u64 * 17 {
            let size = (self.slots.len() * 3 / 2).max(1024);
            self.slots = Vec::new();
            self.slots = vec![0; size];
            for ix in 0..index {
                self.place(ix, self.hashes.get(ix));
            }
        }
        let h = (self.digest)(id);
        self.hashes.push(h);
        self.place(index, h);
        if self.line_of(index) != line {
            self.lines.push((index, line));
        }
        if let Some(s) = self.stored.as_mut() {
            s.arena.push_str(id);
            s.ends.push(s.arena.len() as u64);
        }
        self.len += 1;
    }

    fn place(&mut self, index: u64, h: u64) {
        let n = self.slots.len();
        let mut i = self.home(h);
        while self.slots[i] != 0 {
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        // The builder keeps `index` below `u32::MAX - 1`.
        self.slots[i] = u32::try_from(index + 1).unwrap_or(u32::MAX);
    }

    /// Notes that `id` (at `index`) has the digest of the earlier,
    /// different ids in `earlier`: they are found by their text from now on.
    fn collide(&mut self, id: &str, index: u64, earlier: Vec<(String, u64)>) {
        self.collided_digests.push((self.digest)(id));
        for (other, ix) in earlier {
            self.collided.insert(other.into_boxed_str(), ix);
        }
        self.collided.insert(id.into(), index);
    }

    /// In an open plan, records the next id learned (found through the
    /// open plan's own map, not the digests).
    fn learn(&mut self, id: &str) {
        if let Some(s) = self.stored.as_mut() {
            s.arena.push_str(id);
            s.ends.push(s.arena.len() as u64);
        }
        self.len += 1;
    }

    fn find(&self, id: &str) -> Option<u64> {
        let h = (self.digest)(id);
        if self.collided_digests.contains(&h) {
            return self.collided.get(id).copied();
        }
        match &self.stored {
            Some(s) => self.probe(h).find(|&ix| s.get(ix) == id),
            None => self.probe(h).next(),
        }
    }
}

/// The digest of an id: FNV-1a 64 with a final mix, so every bit of it
/// depends on every byte.
fn id_digest(id: &str) -> u64 {
    let mut h = Fnv64::new();
    h.write(id.as_bytes());
    let mut k = h.finish();
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// A growable array in fixed chunks: no reallocation copies the whole, so
/// its memory never doubles for a moment as a `Vec`'s can.
#[derive(Clone, Debug)]
struct Chunks<T> {
    chunks: Vec<Vec<T>>,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks { chunks: Vec::new() }
    }
}

/// Items per chunk.
const CHUNK: usize = 1 << 16;

impl<T: Copy> Chunks<T> {
    fn push(&mut self, v: T) {
        match self.chunks.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(v),
            _ => {
                let mut c = Vec::with_capacity(CHUNK);
                c.push(v);
                self.chunks.push(c);
            }
        }
    }

    fn get(&self, index: u64) -> T {
        let i = usize::try_from(index).expect("index fits in memory");
        self.chunks[i / CHUNK][i % CHUNK]
    }
}

/// FNV-1a, 64 bits: a stable, dependency-free hash for plan digests.
#[derive(Clone, Copy, Debug)]
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(max_requests: u64, max_bytes: u64) -> PlanBuilder {
        PlanBuilder::new(
            "job",
            Endpoint::ChatCompletions,
            ShardLimits::new(max_requests, max_bytes),
            "in.jsonl",
        )
    }

    fn req(id: &str, pad: usize) -> BatchRequest {
        let line = format!(
            r#"{{"custom_id":"{id}","method":"POST","url":"/v1/chat/completions","body":{{"model":"m","messages":[],"x":"{}"}}}}"#,
            "p".repeat(pad)
        );
        BatchRequest::parse_line("in.jsonl", 1, line.as_bytes()).expect("valid line")
    }

    fn len_of(r: &BatchRequest) -> u64 {
        crate::jsonl::encoded_len(r)
    }

    #[test]
    fn shards_by_count_and_bytes() {
        let small = len_of(&req("id-0", 0));
        let big = len_of(&req("id-5", 200));
        // Room for three small lines, or one big and one small.
        let mut b = builder(3, big + small);
        let mut placed = Vec::new();
        let mut line = Vec::new();
        for i in 0..7u64 {
            let r = req(&format!("id-{i}"), if i == 5 { 200 } else { 0 });
            let p = b.push(i + 1, &r, &mut line).expect("push");
            assert_eq!(line.len() as u64, len_of(&r));
            placed.push((p.shard, p.new_shard));
        }
        // 0,1,2 | 3,4 (5 is too big to join) | 5,6
        assert_eq!(
            placed,
            vec![
                (0, true),
                (0, false),
                (0, false),
                (1, true),
                (1, false),
                (2, true),
                (2, false)
            ]
        );
        let plan = b.finish().expect("plan");
        assert_eq!(
            plan.shards()[1],
            ShardPlan {
                index: 1,
                start: 3,
                requests: 2,
                bytes: 2 * small,
                inputs: 0
            }
        );
        assert_eq!(plan.shards()[2].bytes, big + small);
        assert_eq!(plan.index_of("id-4"), Some(4));
        assert_eq!(plan.index_of("id-9"), None);
        assert_eq!(plan.custom_id(6), "id-6");
    }

    fn embed(id: &str, input: serde_json::Value) -> BatchRequest {
        let line = serde_json::json!({
            "custom_id": id,
            "url": "/v1/embeddings",
            "body": {"model": "e", "input": input}
        })
        .to_string();
        BatchRequest::parse_line("in.jsonl", 1, line.as_bytes()).expect("valid line")
    }

    fn embeddings_builder(limits: ShardLimits) -> PlanBuilder {
        PlanBuilder::new("job", Endpoint::Embeddings, limits, "in.jsonl")
    }

    #[test]
    fn embeddings_are_sharded_by_inputs() {
        use serde_json::json;
        let mut b = embeddings_builder(ShardLimits::new(100, 1 << 20).with_max_inputs(5));
        let mut line = Vec::new();
        let inputs = [
            json!(["a", "b"]),         // 2
            json!([1, 2, 3, 4, 5, 6]), // a token array: 1
            json!("c"),                // 1 -> 4
            json!([[1], [2]]),         // 2: over 5, a new shard
            json!(["d", "e", "f"]),    // 3 -> 5
            json!("g"),                // a new shard
        ];
        let mut placed = Vec::new();
        for (i, input) in inputs.into_iter().enumerate() {
            let p = b
                .push(i as u64 + 1, &embed(&format!("e{i}"), input), &mut line)
                .expect("push");
            placed.push(p.shard);
        }
        assert_eq!(placed, vec![0, 0, 0, 1, 1, 2]);
        let plan = b.finish().expect("plan");
        let per_shard: Vec<(u64, u64)> = plan
            .shards()
            .iter()
            .map(|s| (s.requests, s.inputs))
            .collect();
        assert_eq!(per_shard, vec![(3, 4), (2, 5), (1, 1)]);
    }

    #[test]
    fn the_default_plan_keeps_embedding_batches_at_fifty_thousand_inputs() {
        let texts = serde_json::Value::Array(vec![serde_json::json!("t"); 20_000]);
        let mut b = embeddings_builder(ShardLimits::default());
        let mut line = Vec::new();
        for i in 0..5u64 {
            b.push(i + 1, &embed(&format!("e{i}"), texts.clone()), &mut line)
                .expect("push");
        }
        let plan = b.finish().expect("plan");
        let inputs: Vec<u64> = plan.shards().iter().map(|s| s.inputs).collect();
        assert_eq!(inputs, vec![40_000, 40_000, 20_000]);
    }

    #[test]
    fn an_embeddings_request_over_the_limit_alone_is_named() {
        let mut b = embeddings_builder(ShardLimits::new(100, 1 << 20).with_max_inputs(3));
        let mut line = Vec::new();
        let err = b
            .push(
                9,
                &embed("big", serde_json::json!(["a", "b", "c", "d"])),
                &mut line,
            )
            .expect_err("over the limit");
        assert_eq!(err.line, 9);
        assert_eq!(err.field, "body.input");
        assert_eq!(err.problem, Problem::InputsOverLimit { inputs: 4, max: 3 });
    }

    #[test]
    fn duplicate_ids_name_both_lines() {
        let mut b = builder(2, 10_000);
        let mut line = Vec::new();
        b.push(1, &req("a", 0), &mut line).expect("a");
        b.push(2, &req("b", 0), &mut line).expect("b");
        b.push(4, &req("c", 0), &mut line).expect("c");
        let err = b.push(7, &req("b", 0), &mut line).expect_err("duplicate");
        assert_eq!(err.line, 7);
        assert_eq!(err.field, "custom_id");
        assert_eq!(
            err.problem,
            Problem::Duplicate {
                value: "b".into(),
                first_line: 2
            }
        );
    }

    /// Pushes `ids` (input lines 1, 3, 5, ...) into `b`; the errors, by line.
    fn push_all(b: &mut PlanBuilder, ids: &[&str]) -> Vec<(u64, Problem)> {
        let mut line = Vec::new();
        let mut errors = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let n = 2 * i as u64 + 1;
            if let Err(e) = b.push(n, &req(id, 0), &mut line) {
                errors.push((e.line, e.problem));
            }
        }
        errors
    }

    /// A builder without ids that reads ids back from `ids` as pushed by
    /// [`push_all`].
    fn flat_builder(ids: &[&str]) -> PlanBuilder {
        let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        builder(2, 10_000).without_ids(move |line| {
            let k = usize::try_from((line - 1) / 2).ok()?;
            ids.get(k).cloned()
        })
    }

    #[test]
    fn a_plan_without_ids_finds_them_and_refuses_repeats() {
        let ids = ["a", "b", "c", "b", "d", "a"];
        let mut b = flat_builder(&ids);
        let errors = push_all(&mut b, &ids);
        let dup = |value: &str, first_line| Problem::Duplicate {
            value: value.into(),
            first_line,
        };
        assert_eq!(errors, vec![(7, dup("b", 3)), (11, dup("a", 1))]);
        let plan = b.finish().expect("plan");
        assert!(!plan.keeps_ids());
        assert_eq!(plan.len(), 4);
        assert_eq!(plan.custom_id(2), "");
        for (ix, id) in ["a", "b", "c", "d"].iter().enumerate() {
            assert_eq!(plan.index_of(id), Some(ix as u64), "{id}");
        }
        assert_eq!(plan.index_of("e"), None);
    }

    #[test]
    fn equal_digests_of_different_ids_are_no_duplicates() {
        let ids = ["a", "b", "c", "b", "d", "c"];
        for keep in [true, false] {
            let mut b = if keep {
                builder(2, 10_000)
            } else {
                flat_builder(&ids)
            };
            // Every id has the same digest.
            b.ids.digest = |_| 7;
            let errors = push_all(&mut b, &ids);
            let dup = |value: &str, first_line| Problem::Duplicate {
                value: value.into(),
                first_line,
            };
            assert_eq!(
                errors,
                vec![(7, dup("b", 3)), (11, dup("c", 5))],
                "keep {keep}"
            );
            let plan = b.finish().expect("plan");
            for (ix, id) in ["a", "b", "c", "d"].iter().enumerate() {
                assert_eq!(plan.index_of(id), Some(ix as u64), "{id}, keep {keep}");
            }
            assert_eq!(plan.index_of("e"), None, "keep {keep}");
        }
    }

    #[test]
    fn an_id_that_cannot_be_read_back_counts_as_a_duplicate() {
        let mut b = builder(2, 10_000).without_ids(|_| None);
        b.ids.digest = |_| 7;
        let errors = push_all(&mut b, &["a", "b"]);
        assert_eq!(
            errors,
            vec![(
                3,
                Problem::Duplicate {
                    value: "b".into(),
                    first_line: 1
                }
            )]
        );
    }

    #[test]
    fn line_numbers_survive_gaps_and_the_table_grows() {
        let mut b = builder(50_000, 1 << 30).without_ids(|_| None);
        let mut line = Vec::new();
        // Lines 1..=3000, then 10 blank lines, then the rest: the table
        // grows past 1024 slots several times on the way.
        let line_of = |i: u64| if i < 3000 { i + 1 } else { i + 11 };
        for i in 0..5000u64 {
            b.push(line_of(i), &req(&format!("id-{i}"), 0), &mut line)
                .expect("push");
        }
        let err = b
            .push(9000, &req("id-4000", 0), &mut line)
            .expect_err("a repeat");
        assert_eq!(
            err.problem,
            Problem::Duplicate {
                value: "id-4000".into(),
                first_line: line_of(4000)
            }
        );
        let plan = b.finish().expect("plan");
        for i in [0u64, 1023, 2999, 3000, 4999] {
            assert_eq!(plan.index_of(&format!("id-{i}")), Some(i));
        }
    }

    #[test]
    fn the_digest_reads_the_ids_as_one_arena_with_or_without_them() {
        let ids = ["a", "bc", "", "def"];
        let ids = &ids[..];
        let long = "x".repeat(300);
        let ids: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|s| !s.is_empty())
            .chain([long.as_str()])
            .collect();
        let kept = {
            let mut b = builder(2, 100_000);
            assert!(push_all(&mut b, &ids).is_empty());
            b.finish().expect("plan")
        };
        let flat = {
            let mut b = flat_builder(&ids);
            assert!(push_all(&mut b, &ids).is_empty());
            b.finish().expect("plan")
        };
        // The definition: job id, endpoint, every id, every end offset,
        // then each shard's start, requests and bytes.
        let mut h = Fnv64::new();
        h.write(b"job");
        h.write(Endpoint::ChatCompletions.as_str().as_bytes());
        let mut end = 0u64;
        for id in &ids {
            h.write(id.as_bytes());
        }
        for id in &ids {
            end += id.len() as u64;
            h.write(&end.to_le_bytes());
        }
        for s in kept.shards() {
            h.write(&s.start.to_le_bytes());
            h.write(&s.requests.to_le_bytes());
            h.write(&s.bytes.to_le_bytes());
        }
        let want = PlanDigest {
            requests: ids.len() as u64,
            shards: kept.shards().len() as u64,
            hash: format!("{:016x}", h.finish()),
        };
        assert_eq!(kept.digest(), want);
        assert_eq!(flat.digest(), want);
    }

    #[test]
    fn empty_input_and_oversized_line_are_errors() {
        assert!(builder(2, 10).finish().is_err());
        let mut b = builder(2, 50);
        let mut line = Vec::new();
        let err = b.push(3, &req("x", 100), &mut line).expect_err("too big");
        assert_eq!(err.line, 3);
        assert!(matches!(err.problem, Problem::TooManyBytes { .. }), "{err}");
        assert!(line.is_empty());
    }

    #[test]
    fn digest_changes_with_ids_and_boundaries() {
        let plan = |ids: &[&str], max: u64| {
            let mut b = builder(max, 10_000);
            let mut line = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                b.push(i as u64 + 1, &req(id, 0), &mut line).expect("push");
            }
            b.finish().expect("plan").digest()
        };
        assert_eq!(plan(&["a", "b", "c"], 2), plan(&["a", "b", "c"], 2));
        assert_ne!(plan(&["a", "b", "c"], 2), plan(&["a", "b", "d"], 2));
        assert_ne!(plan(&["a", "b", "c"], 2), plan(&["a", "b", "c"], 3));
        assert_ne!(plan(&["ab", "c"], 2), plan(&["a", "bc"], 2));
    }
}
