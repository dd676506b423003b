//! The plan of a job: which requests go into which shard.
//!
//! Shards are contiguous runs of the input, in input order, each under the
//! per-file limits (requests and bytes, and for `/v1/embeddings` the
//! embedding inputs of all its requests). Every request is known by its global
//! input index, so results can be placed by index (no sorting, no map from
//! ids to results). The ids themselves are kept in one compact arena with a
//! sorted permutation for lookup: about `len(id) + 8` bytes per request.

use std::cmp::Ordering;
use std::collections::HashMap;

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
#[derive(Debug)]
pub struct PlanBuilder {
    job_id: String,
    endpoint: Endpoint,
    limits: ShardLimits,
    source: String,
    encoder: ShardEncoder,
    /// Set for a Message Batches plan: it encodes and checks instead of `encoder`.
    anthropic: Option<crate::anthropic::RequestEncoder>,
    ids: String,
    ends: Vec<u64>,
    lines: Vec<u64>,
    shards: Vec<ShardPlan>,
    url_style: UrlStyle,
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
        let encoder = ShardEncoder::new(
            EncodeConfig::new(source.clone(), endpoint.clone())
                .max_requests(limits.max_requests)
                .max_bytes(limits.max_bytes)
                .max_inputs(limits.max_inputs),
        );
        PlanBuilder {
            job_id: job_id.into(),
            endpoint,
            limits,
            source,
            encoder,
            anthropic: None,
            ids: String::new(),
            ends: Vec::new(),
            lines: Vec::new(),
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

    /// Validates `req` (read from input line `line`), encodes it into
    /// `line_out` (cleared first: it receives exactly this request's JSONL
    /// line) and places it in a shard. When the placement says `new_shard`,
    /// the caller starts a new shard file before appending the line.
    ///
    /// # Errors
    /// An [`InputError`] naming the line and field, for an empty or repeated
    /// `custom_id`, a url that is not the plan's endpoint, a model that
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
            return Ok(self.place(&req.custom_id, line, bytes, 0, new_shard));
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
        Ok(self.place(&req.custom_id, line, bytes, inputs, new_shard))
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
        let index = self.ends.len() as u64;
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
        self.ids.push_str(custom_id);
        self.ends.push(self.ids.len() as u64);
        self.lines.push(line);
        Placement {
            index,
            shard: shard.index,
            new_shard,
        }
    }

    /// How many requests have been placed.
    pub fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    /// Whether no request has been placed.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Finishes the plan.
    ///
    /// # Errors
    /// Fails if the input was empty, or if a `custom_id` appears twice in the
    /// whole input (results are matched by `custom_id`, so ids must be unique
    /// across all shards); the error names the later line and the first one.
    pub fn finish(self) -> Result<JobPlan, InputError> {
        if self.ends.is_empty() {
            return Err(InputError::new(
                &self.source,
                0,
                "custom_id",
                Problem::Invalid("the input holds no requests".into()),
            ));
        }
        let ids = IdTable::new(self.ids, self.ends);
        if let Some((a, b)) = ids.first_duplicate() {
            let (first, later) = if a < b { (a, b) } else { (b, a) };
            let lines = &self.lines;
            return Err(InputError::new(
                &self.source,
                lines[usize::try_from(later).unwrap_or(0)],
                "custom_id",
                Problem::Duplicate {
                    value: ids.get(later).to_owned(),
                    first_line: lines[usize::try_from(first).unwrap_or(0)],
                },
            ));
        }
        Ok(JobPlan {
            job_id: self.job_id,
            endpoint: self.endpoint,
            ids,
            shards: self.shards,
            by_id: None,
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
            ids: IdTable {
                arena: String::new(),
                ends: Vec::new(),
                sorted: Vec::new(),
            },
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
        let ix = self.ids.len();
        open.index.insert(custom_id.into(), ix);
        self.ids.arena.push_str(custom_id);
        self.ids.ends.push(self.ids.arena.len() as u64);
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
    /// The `custom_id` of request `index`.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn custom_id(&self, index: u64) -> &str {
        self.ids.get(index)
    }
    /// The global index of `custom_id`, if the plan has it.
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
        h.write(self.job_id.as_bytes());
        h.write(self.endpoint.as_str().as_bytes());
        h.write(self.ids.arena.as_bytes());
        for e in &self.ids.ends {
            h.write(&e.to_le_bytes());
        }
        for s in &self.shards {
            h.write(&s.start.to_le_bytes());
            h.write(&s.requests.to_le_bytes());
            h.write(&s.bytes.to_le_bytes());
        }
        PlanDigest {
            requests: self.len(),
            shards: self.shards.len() as u64,
            hash: format!("{:016x}", h.finish()),
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

/// Every `custom_id` in one arena, with a sorted permutation for lookup.
#[derive(Clone, Debug)]
struct IdTable {
    arena: String,
    ends: Vec<u64>,
    sorted: Vec<u64>,
}

impl IdTable {
    fn new(arena: String, ends: Vec<u64>) -> Self {
        let mut t = IdTable {
            arena,
            ends,
            sorted: Vec::new(),
        };
        let mut sorted: Vec<u64> = (0..t.ends.len() as u64).collect();
        sorted.sort_unstable_by(|a, b| t.get(*a).cmp(t.get(*b)).then(a.cmp(b)));
        t.sorted = sorted;
        t
    }

    fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    fn get(&self, index: u64) -> &str {
        let i = usize::try_from(index).expect("index fits in memory");
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let (start, end) = (
            usize::try_from(start).unwrap_or(0),
            usize::try_from(self.ends[i]).unwrap_or(0),
        );
        &self.arena[start..end]
    }

    fn find(&self, id: &str) -> Option<u64> {
        let pos = self
            .sorted
            .binary_search_by(|probe| match self.get(*probe).cmp(id) {
                Ordering::Equal => Ordering::Equal,
                other => other,
            });
        pos.ok().map(|p| self.sorted[p])
    }

    /// Two indexes sharing an id, if any.
    fn first_duplicate(&self) -> Option<(u64, u64)> {
        self.sorted
            .windows(2)
            .find(|w| self.get(w[0]) == self.get(w[1]))
            .map(|w| (w[0], w[1]))
    }
}

/// FNV-1a, 64 bits: a stable, dependency-free hash for plan digests.
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
