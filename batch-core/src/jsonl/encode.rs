//! Encoding request lines: one compact JSON line per request, checked against
//! the batch's rules before anything is written.
//!
//! - [`encode_line`] appends one line to a caller-owned buffer. It checks
//!   nothing; it is the byte format.
//! - [`ShardEncoder`] checks each request against the batch (unique
//!   `custom_id`, one endpoint, one model, the file limits, and for
//!   `/v1/embeddings` the limit of inputs per batch) and writes it only if it
//!   passes. When a shard file is full it says so with
//!   [`Push::Full`], distinct from an input error, so a caller can start the
//!   next shard and push the same request again.
//! - [`validate_all`] runs the same checks over a whole input without writing
//!   anything and reports every bad line, not only the first.
//!
//! # The line format
//!
//! A line is the request's JSON, compact, then `\n`. Keys come in the order
//! `custom_id`, `method`, `url`, `body`; body keys are sorted at every depth
//! (see [`BatchRequest`]). Strings are escaped as JSON requires (`"`, `\`,
//! and control characters below U+0020, so no raw line break can appear
//! inside a line), and in addition U+0085, U+2028 and U+2029 are written as
//! `\u0085`, `\u2028` and `\u2029`: they are valid raw in JSON, but some line
//! readers (Python's `str.splitlines`, for one) break lines at them. Other
//! characters, emoji included, are written as UTF-8.
//!
//! ```
//! use batch_core::Endpoint;
//! use batch_core::input::BatchRequest;
//! use batch_core::jsonl::{EncodeConfig, Push, ShardEncoder};
//! use serde_json::json;
//!
//! let body = |m: &str| json!({"model": m, "input": "hi"}).as_object().cloned().unwrap_or_default();
//! let mut enc = ShardEncoder::new(EncodeConfig::new("requests.jsonl", Endpoint::Embeddings));
//! let mut out = Vec::new();
//! let push = enc.try_push(1, &BatchRequest::new("a", Endpoint::Embeddings, body("e-3")), &mut out)?;
//! assert_eq!(push, Push::Written { bytes: 93 });
//! assert_eq!(
//!     out,
//!     b"{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{\"input\":\"hi\",\"model\":\"e-3\"}}\n"
//! );
//! // A second model is an input error, and nothing is written.
//! let err = enc.try_push(2, &BatchRequest::new("b", Endpoint::Embeddings, body("e-4")), &mut out);
//! assert_eq!(err.map_err(|e| e.to_string()), Err(
//!     "requests.jsonl:2: field `body.model`: is \"e-4\" but earlier lines use \"e-3\" (one model per batch)".into()
//! ));
//! assert_eq!(out.len(), 93);
//! # Ok::<(), batch_core::InputError>(())
//! ```

use std::borrow::Borrow;
use std::collections::HashMap;
use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use crate::api::Endpoint;
use crate::error::{InputError, Problem};
use crate::input::BatchRequest;

/// Appends `req` to `out` as one compact JSON line ending in `\n`.
///
/// This is the byte format only: it checks nothing (an empty `custom_id` is
/// written as it is). Use [`ShardEncoder`] to check requests against a batch.
pub fn encode_line(req: &BatchRequest, out: &mut Vec<u8>) {
    // Serializing a `serde_json::Value` tree with string keys cannot fail, and
    // writing to a `Vec` cannot fail.
    write_line(req, out).expect("encoding a request line into memory cannot fail");
}

/// The number of bytes [`encode_line`] would append for `req`, newline
/// included. Encodes without allocating the line.
pub fn encoded_len(req: &BatchRequest) -> u64 {
    let mut counter = ByteCounter(0);
    write_line(req, &mut counter).expect("counting the bytes of a request line cannot fail");
    counter.0
}

fn write_line<W: Write>(req: &BatchRequest, w: W) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, LineFormatter);
    req.serialize(&mut ser)?;
    ser.into_inner().write_all(b"\n")
}

struct ByteCounter(u64);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// serde_json's compact format, plus escapes for the characters some line
/// readers take as line breaks (U+0085, U+2028, U+2029).
struct LineFormatter;

impl serde_json::ser::Formatter for LineFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let (mut written, mut from) = (0, 0);
        // U+0085 is C2 85; U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
        while let Some(offset) = memchr::memchr2(0xC2, 0xE2, &bytes[from..]) {
            let at = from + offset;
            let escape: Option<(&[u8], usize)> = match &bytes[at..] {
                [0xC2, 0x85, ..] => Some((b"\\u0085", 2)),
                [0xE2, 0x80, 0xA8, ..] => Some((b"\\u2028", 3)),
                [0xE2, 0x80, 0xA9, ..] => Some((b"\\u2029", 3)),
                _ => None,
            };
            from = at + 1;
            if let Some((escape, len)) = escape {
                w.write_all(&bytes[written..at])?;
                w.write_all(escape)?;
                written = at + len;
                from = written;
            }
        }
        w.write_all(&bytes[written..])
    }
}

/// How many embedding inputs `req` carries, as the API counts them against
/// its limit per batch ([`EncodeConfig::MAX_EMBEDDING_INPUTS`]).
///
/// An embeddings request's `input` is a string (one input), an array of
/// strings (one per element), a token array (an array of integers: one
/// input) or an array of token arrays (one per element); see "Create
/// embeddings" in OpenAI's API reference
/// (<https://platform.openai.com/docs/api-reference/embeddings/create>). Any
/// other array counts one input per element, any other value one input, and
/// a missing or null `input` none (the server rejects those lines itself).
///
/// ```
/// use batch_core::Endpoint;
/// use batch_core::input::BatchRequest;
/// use batch_core::jsonl::embedding_inputs;
/// use serde_json::json;
///
/// let count = |input: serde_json::Value| {
///     let body = json!({"model": "m", "input": input}).as_object().cloned().unwrap_or_default();
///     embedding_inputs(&BatchRequest::new("a", Endpoint::Embeddings, body))
/// };
/// assert_eq!(count(json!("hi")), 1);
/// assert_eq!(count(json!(["a", "b", "c"])), 3);
/// assert_eq!(count(json!([101, 7, 42])), 1);
/// assert_eq!(count(json!([[101, 7], [42]])), 2);
/// ```
pub fn embedding_inputs(req: &BatchRequest) -> u64 {
    match req.body.get("input") {
        None | Some(Value::Null) => 0,
        Some(Value::Array(items)) => {
            if !items.is_empty() && items.iter().all(Value::is_number) {
                1
            } else {
                items.len() as u64
            }
        }
        Some(_) => 1,
    }
}

// ---------------------------------------------------------------------------
// Configuration

/// The rules a batch input file must keep (API notes §4 and §6).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncodeConfig {
    /// The name of the input, used in every [`InputError`].
    pub source: String,
    /// The batch's endpoint; every request's `url` must be this.
    pub endpoint: Endpoint,
    /// The most requests per file. Default [`EncodeConfig::MAX_REQUESTS`].
    pub max_requests: u64,
    /// The most bytes per file, newlines included. Default
    /// [`EncodeConfig::MAX_BYTES`].
    pub max_bytes: u64,
    /// The most embedding inputs per file (see [`embedding_inputs`]),
    /// counted only when `endpoint` is `/v1/embeddings`. Default
    /// [`EncodeConfig::MAX_EMBEDDING_INPUTS`].
    pub max_inputs: u64,
}

impl EncodeConfig {
    /// The API's limit of requests per input file: 50,000.
    pub const MAX_REQUESTS: u64 = 50_000;

    /// The API's size limit per input file, "200 MB", read as
    /// 200 × 2^20 = 209,715,200 bytes.
    ///
    /// The documentation does not say whether its MB is 10^6 or 2^20 bytes;
    /// its other file limits (512 MB per upload) are written the same way. A
    /// caller who wants to be safe under either reading sets `max_bytes` to
    /// 200,000,000.
    pub const MAX_BYTES: u64 = 200 * 1024 * 1024;

    /// The API's limit of embedding inputs in one `/v1/embeddings` batch,
    /// over all its requests: 50,000 (API notes §4, `endpoint`; "Batch
    /// API" in OpenAI's API reference).
    pub const MAX_EMBEDDING_INPUTS: u64 = 50_000;

    /// The API's limits for `endpoint`, with errors naming `source`.
    pub fn new(source: impl Into<String>, endpoint: Endpoint) -> Self {
        EncodeConfig {
            source: source.into(),
            endpoint,
            max_requests: Self::MAX_REQUESTS,
            max_bytes: Self::MAX_BYTES,
            max_inputs: Self::MAX_EMBEDDING_INPUTS,
        }
    }

    /// Sets the most requests per file.
    pub fn max_requests(mut self, max_requests: u64) -> Self {
        self.max_requests = max_requests;
        self
    }

    /// Sets the most bytes per file.
    pub fn max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets the most embedding inputs per file (only counted for
    /// `/v1/embeddings`).
    pub fn max_inputs(mut self, max_inputs: u64) -> Self {
        self.max_inputs = max_inputs;
        self
    }

    /// Whether this batch counts embedding inputs: its endpoint is
    /// `/v1/embeddings`.
    pub fn counts_inputs(&self) -> bool {
        self.endpoint == Endpoint::Embeddings
    }
}

// ---------------------------------------------------------------------------
// The encoder

/// What became of a request handed to [`ShardEncoder::try_push`].
#[must_use = "a full shard did not take the request"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Push {
    /// The line was written; `bytes` is its length, newline included.
    Written {
        /// The length of the line.
        bytes: u64,
    },
    /// The current shard cannot take this request; nothing was written and
    /// nothing recorded. Call [`ShardEncoder::finish_shard`], then push the
    /// same request again into the next shard's output.
    ///
    /// Only returned for a request that fits in an empty shard (and so only
    /// when the current shard holds at least one line): the retry into the
    /// next shard never returns `Full` again.
    Full(ShardLimit),
}

/// The limit a full shard has reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShardLimit {
    /// [`EncodeConfig::max_requests`].
    Requests,
    /// [`EncodeConfig::max_bytes`].
    Bytes,
    /// [`EncodeConfig::max_inputs`] (`/v1/embeddings` only).
    Inputs,
}

/// The size of a finished shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardTotals {
    /// Requests written.
    pub lines: u64,
    /// Bytes written, newlines included.
    pub bytes: u64,
    /// Embedding inputs written (0 unless the endpoint is `/v1/embeddings`).
    pub inputs: u64,
}

/// An error from [`ShardEncoder::try_push_to`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The request breaks a rule of the batch; nothing was written.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The writer failed. What it holds of the line is unknown; the encoder
    /// did not count the line.
    #[error("writing the request line failed")]
    Io(#[from] io::Error),
}

/// Checks requests against a batch's rules and writes those that pass, one
/// shard file after another.
///
/// Each request is checked before anything is written, in this order, and
/// the first problem is an [`InputError`] naming the caller's line number
/// and the field:
///
/// 1. `custom_id` empty ([`Problem::Empty`]) or already used
///    ([`Problem::Duplicate`], naming the line it first appeared on);
/// 2. `url` not the batch's endpoint ([`Problem::EndpointMismatch`]);
/// 3. `body.model` missing where the endpoint takes a model
///    ([`Problem::Missing`]), empty, not a string, or different from the
///    first model seen ([`Problem::MixedModels`]);
/// 4. the file limits: a request that would take the current shard past
///    [`max_requests`](EncodeConfig::max_requests),
///    [`max_bytes`](EncodeConfig::max_bytes) or, for `/v1/embeddings`,
///    [`max_inputs`](EncodeConfig::max_inputs) (counted by
///    [`embedding_inputs`]) is not written. `try_push` reports it as
///    [`Push::Full`]; [`push`](ShardEncoder::push) as
///    [`Problem::TooManyRequests`], [`Problem::TooManyBytes`] or
///    [`Problem::TooManyInputs`]. A line longer than `max_bytes` on its own
///    (or any line, when `max_requests` is 0) can never be written, and is
///    an error from both, whatever the shard holds; so is an embeddings
///    request with more inputs than `max_inputs` on its own
///    ([`Problem::InputsOverLimit`], field `body.input`).
///
/// On any error or `Full`, the output is unchanged and the encoder's state
/// is as before the call. `custom_id`s and the model are tracked across
/// shards: they must be unique, and one, for the whole input, because
/// results are matched to requests by `custom_id`.
///
/// ```
/// # use batch_core::{Endpoint, InputError};
/// # use batch_core::input::BatchRequest;
/// # use batch_core::jsonl::{EncodeConfig, Push, ShardEncoder};
/// # fn requests() -> Vec<(u64, BatchRequest)> { Vec::new() }
/// let mut enc = ShardEncoder::new(EncodeConfig::new("in.jsonl", Endpoint::ChatCompletions));
/// let mut shards = vec![Vec::new()];
/// for (line, req) in requests() {
///     let mut out = shards.last_mut().expect("one shard");
///     if let Push::Full(_) = enc.try_push(line, &req, out)? {
///         enc.finish_shard();
///         shards.push(Vec::new());
///         out = shards.last_mut().expect("one shard");
///         let _written = enc.try_push(line, &req, out)?; // cannot be Full
///     }
/// }
/// # Ok::<(), InputError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ShardEncoder {
    cfg: EncodeConfig,
    /// Every `custom_id` written so far, with the line it came from.
    seen: HashMap<String, u64>,
    /// Whether `seen` is kept (see [`ShardEncoder::without_id_tracking`]).
    track_ids: bool,
    /// The first model seen.
    model: Option<String>,
    /// Lines, bytes and embedding inputs in the current shard.
    lines: u64,
    bytes: u64,
    inputs: u64,
    /// Holds a line for [`ShardEncoder::try_push_to`] before it is written.
    scratch: Vec<u8>,
}

impl ShardEncoder {
    /// An encoder for one input, starting with an empty shard.
    pub fn new(cfg: EncodeConfig) -> Self {
        ShardEncoder {
            cfg,
            seen: HashMap::new(),
            track_ids: true,
            model: None,
            lines: 0,
            bytes: 0,
            inputs: 0,
            scratch: Vec::new(),
        }
    }

    /// An encoder that does not check that `custom_id`s are unique: the
    /// caller does, in its own way. It keeps nothing per request then (the
    /// id map costs some 60 bytes a request beside the ids themselves);
    /// [`PlanBuilder`](crate::job::PlanBuilder) checks uniqueness in about
    /// 15 bytes a request.
    #[must_use]
    pub fn without_id_tracking(mut self) -> Self {
        self.track_ids = false;
        self.seen = HashMap::new();
        self
    }

    /// The configuration.
    pub fn config(&self) -> &EncodeConfig {
        &self.cfg
    }

    /// Checks `req`, the caller's line `line`, and appends it to `out` if it
    /// passes and fits in the current shard.
    ///
    /// # Errors
    ///
    /// An [`InputError`] for a request that breaks a rule of the batch (see
    /// [`ShardEncoder`]). `out` then holds the same bytes as before (its
    /// capacity may have grown).
    pub fn try_push(
        &mut self,
        line: u64,
        req: &BatchRequest,
        out: &mut Vec<u8>,
    ) -> Result<Push, InputError> {
        let start = out.len();
        encode_line(req, out);
        let len = (out.len() - start) as u64;
        let inputs = self.inputs_of(req);
        let decision = self.decide(line, req, len, inputs);
        if !matches!(decision, Ok(None)) {
            out.truncate(start);
        }
        Ok(match decision? {
            Some(limit) => Push::Full(limit),
            None => self.record(line, req, len, inputs),
        })
    }

    /// Like [`try_push`](ShardEncoder::try_push), for a file that must not
    /// be split: a full shard is an error too.
    ///
    /// Returns the length of the line written.
    ///
    /// # Errors
    ///
    /// An [`InputError`] for a request that breaks a rule of the batch,
    /// including [`Problem::TooManyRequests`], [`Problem::TooManyBytes`] and
    /// [`Problem::TooManyInputs`] (with no field) for the request that would
    /// cross a limit. `out` is then unchanged.
    pub fn push(
        &mut self,
        line: u64,
        req: &BatchRequest,
        out: &mut Vec<u8>,
    ) -> Result<u64, InputError> {
        match self.try_push(line, req, out)? {
            Push::Written { bytes } => Ok(bytes),
            Push::Full(limit) => Err(self.limit_error(line, limit)),
        }
    }

    /// Like [`try_push`](ShardEncoder::try_push), writing into any
    /// [`Write`]r. The line is encoded into a buffer the encoder keeps and
    /// then written with one `write_all`, so nothing reaches `w` unless the
    /// request passed.
    ///
    /// # Errors
    ///
    /// [`PushError::Input`] as `try_push`, with nothing written;
    /// [`PushError::Io`] if `w` fails, in which case the line is not counted
    /// and what `w` holds of it is unknown.
    pub fn try_push_to<W: Write + ?Sized>(
        &mut self,
        line: u64,
        req: &BatchRequest,
        w: &mut W,
    ) -> Result<Push, PushError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let result = self.try_push_buffered(line, req, &mut scratch, w);
        self.scratch = scratch;
        result
    }

    fn try_push_buffered<W: Write + ?Sized>(
        &mut self,
        line: u64,
        req: &BatchRequest,
        scratch: &mut Vec<u8>,
        w: &mut W,
    ) -> Result<Push, PushError> {
        encode_line(req, scratch);
        let len = scratch.len() as u64;
        let inputs = self.inputs_of(req);
        if let Some(limit) = self.decide(line, req, len, inputs)? {
            return Ok(Push::Full(limit));
        }
        w.write_all(scratch)?;
        Ok(self.record(line, req, len, inputs))
    }

    /// Ends the current shard and starts an empty one. Returns the finished
    /// shard's totals.
    ///
    /// `custom_id`s and the model stay recorded: they hold for the whole
    /// input.
    pub fn finish_shard(&mut self) -> ShardTotals {
        let totals = ShardTotals {
            lines: self.lines,
            bytes: self.bytes,
            inputs: self.inputs,
        };
        self.lines = 0;
        self.bytes = 0;
        self.inputs = 0;
        totals
    }

    /// Requests written to the current shard.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes written to the current shard, newlines included.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Embedding inputs written to the current shard (0 unless the endpoint
    /// is `/v1/embeddings`).
    pub fn inputs(&self) -> u64 {
        self.inputs
    }

    /// How many more requests the current shard can take.
    pub fn remaining_requests(&self) -> u64 {
        self.cfg.max_requests.saturating_sub(self.lines)
    }

    /// How many more bytes the current shard can take.
    pub fn remaining_bytes(&self) -> u64 {
        self.cfg.max_bytes.saturating_sub(self.bytes)
    }

    /// How many more embedding inputs the current shard can take
    /// (`/v1/embeddings` only; other endpoints are not limited by inputs).
    pub fn remaining_inputs(&self) -> u64 {
        if self.cfg.counts_inputs() {
            self.cfg.max_inputs.saturating_sub(self.inputs)
        } else {
            u64::MAX
        }
    }

    /// Whether `req` would fit in the current shard by the limits alone. Its
    /// other checks are not run. Encodes `req` to measure it.
    pub fn would_fit(&self, req: &BatchRequest) -> bool {
        self.remaining_requests() > 0
            && encoded_len(req) <= self.remaining_bytes()
            && self.inputs_of(req) <= self.remaining_inputs()
    }

    /// The inputs `req` counts against the batch's limit: its
    /// [`embedding_inputs`] for `/v1/embeddings`, else 0.
    fn inputs_of(&self, req: &BatchRequest) -> u64 {
        if self.cfg.counts_inputs() {
            embedding_inputs(req)
        } else {
            0
        }
    }

    /// The model of the requests so far (the first one seen), if any.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// Checks and records `req` as [`try_push`](ShardEncoder::try_push)
    /// would, without writing it anywhere.
    fn admit(&mut self, line: u64, req: &BatchRequest) -> Result<Push, InputError> {
        let len = encoded_len(req);
        let inputs = self.inputs_of(req);
        Ok(match self.decide(line, req, len, inputs)? {
            Some(limit) => Push::Full(limit),
            None => self.record(line, req, len, inputs),
        })
    }

    /// Whether `req`, encoded in `len` bytes and holding `inputs` embedding
    /// inputs, goes into the current shard: `None` if it does, the limit it
    /// reaches if the shard is full, an error if it breaks a rule.
    fn decide(
        &self,
        line: u64,
        req: &BatchRequest,
        len: u64,
        inputs: u64,
    ) -> Result<Option<ShardLimit>, InputError> {
        self.check(line, req)?;
        self.room(line, len, inputs)
    }

    /// The rules that hold whatever the shard: `custom_id`, `url`, model.
    fn check(&self, line: u64, req: &BatchRequest) -> Result<(), InputError> {
        let fail =
            |field: &str, problem| Err(InputError::new(&self.cfg.source, line, field, problem));
        if req.custom_id.is_empty() {
            return fail("custom_id", Problem::Empty);
        }
        if let Some(&first_line) = self.seen.get(&req.custom_id) {
            return fail(
                "custom_id",
                Problem::Duplicate {
                    value: req.custom_id.clone(),
                    first_line,
                },
            );
        }
        if req.url != self.cfg.endpoint {
            return fail(
                "url",
                Problem::EndpointMismatch {
                    expected: self.cfg.endpoint.as_str().into(),
                    found: req.url.as_str().into(),
                },
            );
        }
        match req.body.get("model") {
            None if self.cfg.endpoint.takes_model() => fail("body.model", Problem::Missing),
            None => Ok(()),
            Some(Value::String(model)) if model.is_empty() => fail("body.model", Problem::Empty),
            Some(Value::String(model)) => match &self.model {
                Some(expected) if expected != model => fail(
                    "body.model",
                    Problem::MixedModels {
                        expected: expected.clone(),
                        found: model.clone(),
                    },
                ),
                _ => Ok(()),
            },
            Some(_) => fail("body.model", Problem::Invalid("must be a string".into())),
        }
    }

    /// Whether a line of `len` bytes with `inputs` embedding inputs fits in
    /// the current shard: `None` if it does, the limit it reaches if not. An
    /// error if it could not fit even in an empty shard, so `Full` always
    /// means the next shard will take it.
    fn room(&self, line: u64, len: u64, inputs: u64) -> Result<Option<ShardLimit>, InputError> {
        if self.cfg.max_requests == 0 {
            return Err(self.limit_error(line, ShardLimit::Requests));
        }
        if len > self.cfg.max_bytes {
            return Err(self.limit_error(line, ShardLimit::Bytes));
        }
        let counts_inputs = self.cfg.counts_inputs();
        if counts_inputs && inputs > self.cfg.max_inputs {
            return Err(InputError::new(
                &self.cfg.source,
                line,
                "body.input",
                Problem::InputsOverLimit {
                    inputs,
                    max: self.cfg.max_inputs,
                },
            ));
        }
        Ok(if self.lines >= self.cfg.max_requests {
            Some(ShardLimit::Requests)
        } else if self.bytes.saturating_add(len) > self.cfg.max_bytes {
            Some(ShardLimit::Bytes)
        } else if counts_inputs && self.inputs.saturating_add(inputs) > self.cfg.max_inputs {
            Some(ShardLimit::Inputs)
        } else {
            None
        })
    }

    fn record(&mut self, line: u64, req: &BatchRequest, len: u64, inputs: u64) -> Push {
        if self.track_ids {
            self.seen.insert(req.custom_id.clone(), line);
        }
        if self.model.is_none() {
            self.model = req.model().map(str::to_owned);
        }
        self.lines += 1;
        self.bytes += len;
        self.inputs += inputs;
        Push::Written { bytes: len }
    }

    fn limit_error(&self, line: u64, limit: ShardLimit) -> InputError {
        let problem = match limit {
            ShardLimit::Requests => Problem::TooManyRequests {
                max: self.cfg.max_requests,
            },
            ShardLimit::Bytes => Problem::TooManyBytes {
                max: self.cfg.max_bytes,
            },
            ShardLimit::Inputs => Problem::TooManyInputs {
                max: self.cfg.max_inputs,
            },
        };
        InputError::new(&self.cfg.source, line, "", problem)
    }
}

// ---------------------------------------------------------------------------
// Validation without writing

/// What [`validate_all`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidationReport {
    /// The first errors, in input order, at most the cap given.
    pub errors: Vec<InputError>,
    /// How many errors there were in all (may exceed `errors.len()`).
    pub error_count: u64,
    /// How many requests passed.
    pub requests: u64,
    /// Their encoded size, newlines included.
    pub bytes: u64,
    /// Their embedding inputs (0 unless the endpoint is `/v1/embeddings`).
    pub inputs: u64,
    /// How many shard files they need under the configured limits.
    pub shards: u64,
}

impl ValidationReport {
    /// Whether no error was found.
    pub fn is_ok(&self) -> bool {
        self.error_count == 0
    }
}

/// Checks a whole input as a [`ShardEncoder`] would, writing nothing, and
/// reports every bad line instead of stopping at the first.
///
/// `lines` yields the caller's line number with either a request or the
/// error found earlier for that line (from
/// [`BatchRequest::parse_line`] or
/// [`RequestTemplate::request`](crate::input::RequestTemplate::request)),
/// which is reported in its place. At most `max_errors` errors are kept;
/// [`ValidationReport::error_count`] counts them all.
///
/// Full shards are not errors here: the report says how many shards the
/// valid requests need. A caller writing a single file checks that
/// [`ValidationReport::shards`] is at most 1. A bad line is not recorded, so
/// a later line reusing its `custom_id` is not reported as a duplicate.
///
/// ```
/// use batch_core::Endpoint;
/// use batch_core::input::BatchRequest;
/// use batch_core::jsonl::{EncodeConfig, validate_all};
///
/// let text = "{\"custom_id\":\"a\",\"url\":\"/v1/responses\",\"body\":{\"model\":\"m\"}}\n\
///             {\"custom_id\":\"a\",\"url\":\"/v1/responses\",\"body\":{\"model\":\"m\"}}\n\
///             not json\n";
/// let lines = (1u64..).zip(text.lines()).map(|(n, line)| {
///     (n, BatchRequest::parse_line("in.jsonl", n, line.as_bytes()))
/// });
/// let report = validate_all(&EncodeConfig::new("in.jsonl", Endpoint::Responses), lines, 10);
/// let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
/// assert_eq!(errors, [
///     "in.jsonl:2: field `custom_id`: duplicate value \"a\", first used on line 1",
///     "in.jsonl:3: invalid JSON: expected ident at column 2",
/// ]);
/// assert_eq!((report.requests, report.shards), (1, 1));
/// ```
pub fn validate_all<I, R>(cfg: &EncodeConfig, lines: I, max_errors: usize) -> ValidationReport
where
    I: IntoIterator<Item = (u64, Result<R, InputError>)>,
    R: Borrow<BatchRequest>,
{
    let mut enc = ShardEncoder::new(cfg.clone());
    let mut report = ValidationReport::default();
    for (line, request) in lines {
        let outcome = request.and_then(|req| {
            loop {
                match enc.admit(line, Borrow::<BatchRequest>::borrow(&req)) {
                    Ok(Push::Full(_)) => {
                        // `Full` only comes from a non-empty shard, so the retry
                        // into an empty one cannot be `Full` again.
                        report.inputs += enc.finish_shard().inputs;
                        report.shards += 1;
                    }
                    other => break other,
                }
            }
        });
        match outcome {
            Ok(Push::Written { bytes }) => {
                report.requests += 1;
                report.bytes += bytes;
            }
            Ok(Push::Full(_)) => {}
            Err(e) => {
                report.error_count += 1;
                if report.errors.len() < max_errors {
                    report.errors.push(e);
                }
            }
        }
    }
    if enc.lines() > 0 {
        report.shards += 1;
    }
    report.inputs += enc.inputs();
    report
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;

    const SRC: &str = "in.jsonl";

    fn req(id: &str, url: Endpoint, body: Value) -> BatchRequest {
        let body = match body {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        BatchRequest::new(id, url, body)
    }

    fn chat(id: &str, model: &str) -> BatchRequest {
        req(
            id,
            Endpoint::ChatCompletions,
            json!({"model": model, "messages": []}),
        )
    }

    fn encoder() -> ShardEncoder {
        ShardEncoder::new(EncodeConfig::new(SRC, Endpoint::ChatCompletions))
    }

    fn err(line: u64, field: &str, problem: Problem) -> InputError {
        InputError::new(SRC, line, field, problem)
    }

    /// Pushes `r` expecting an error; asserts `out` did not change.
    fn rejected(
        enc: &mut ShardEncoder,
        line: u64,
        r: &BatchRequest,
        out: &mut Vec<u8>,
    ) -> InputError {
        let before = out.clone();
        let (lines, bytes) = (enc.lines(), enc.bytes());
        let e = enc.try_push(line, r, out).expect_err("must be rejected");
        assert_eq!(*out, before, "output changed on error");
        assert_eq!(
            (enc.lines(), enc.bytes()),
            (lines, bytes),
            "counters changed on error"
        );
        e
    }

    fn written(push: Push) -> u64 {
        match push {
            Push::Written { bytes } => bytes,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn encode_line_is_compact_ordered_and_newline_terminated() {
        let mut out = b"prefix|".to_vec();
        encode_line(
            &req(
                "a",
                Endpoint::Embeddings,
                json!({"z": 1, "a": [true, null]}),
            ),
            &mut out,
        );
        assert_eq!(
            out,
            b"prefix|{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{\"a\":[true,null],\"z\":1}}\n"
        );
    }

    #[test]
    fn line_separators_are_escaped_and_other_multibyte_text_is_not() {
        let text = "a\u{85}b\u{2028}c\u{2029}d\u{2027}\u{2030}\u{c2}\u{e2}é😀";
        let mut out = Vec::new();
        encode_line(
            &req(text, Endpoint::Embeddings, json!({text: text})),
            &mut out,
        );
        let escaped = "a\\u0085b\\u2028c\\u2029d\u{2027}\u{2030}\u{c2}\u{e2}é😀";
        let want = format!(
            "{{\"custom_id\":\"{escaped}\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{{\"{escaped}\":\"{escaped}\"}}}}\n"
        );
        assert_eq!(String::from_utf8(out).expect("utf-8"), want);
    }

    #[test]
    fn encoded_len_matches_encode_line() {
        let r = req(
            "é",
            Endpoint::Embeddings,
            json!({"x": "\u{2028}\n\"", "n": 1.5}),
        );
        let mut out = Vec::new();
        encode_line(&r, &mut out);
        assert_eq!(encoded_len(&r), out.len() as u64);
    }

    #[test]
    fn writes_valid_requests_and_counts_them() {
        let mut enc = encoder();
        let mut out = Vec::new();
        let a = written(enc.try_push(1, &chat("a", "m"), &mut out).expect("valid"));
        let b = written(enc.try_push(2, &chat("b", "m"), &mut out).expect("valid"));
        assert_eq!(out.len() as u64, a + b);
        assert_eq!((enc.lines(), enc.bytes()), (2, a + b));
        assert_eq!(enc.model(), Some("m"));
        assert_eq!(enc.remaining_requests(), EncodeConfig::MAX_REQUESTS - 2);
        assert_eq!(enc.remaining_bytes(), EncodeConfig::MAX_BYTES - a - b);
    }

    #[test]
    fn empty_custom_id() {
        let mut out = Vec::new();
        let e = rejected(&mut encoder(), 3, &chat("", "m"), &mut out);
        assert_eq!(e, err(3, "custom_id", Problem::Empty));
    }

    #[test]
    fn duplicate_custom_id_names_the_first_line() {
        let mut enc = encoder();
        let mut out = Vec::new();
        let _ = written(enc.try_push(10, &chat("x", "m"), &mut out).expect("valid"));
        let _ = written(enc.try_push(11, &chat("y", "m"), &mut out).expect("valid"));
        let e = rejected(&mut enc, 14, &chat("x", "m"), &mut out);
        assert_eq!(
            e,
            err(
                14,
                "custom_id",
                Problem::Duplicate {
                    value: "x".into(),
                    first_line: 10
                }
            )
        );
    }

    #[test]
    fn duplicates_are_caught_across_shards() {
        let mut enc =
            ShardEncoder::new(EncodeConfig::new(SRC, Endpoint::ChatCompletions).max_requests(1));
        let mut out = Vec::new();
        let _ = written(enc.try_push(1, &chat("x", "m"), &mut out).expect("valid"));
        assert_eq!(enc.finish_shard().lines, 1);
        let e = rejected(&mut enc, 2, &chat("x", "m"), &mut Vec::new());
        assert_eq!(
            e,
            err(
                2,
                "custom_id",
                Problem::Duplicate {
                    value: "x".into(),
                    first_line: 1
                }
            )
        );
    }

    #[test]
    fn url_must_be_the_batch_endpoint() {
        let mut out = Vec::new();
        let r = req("a", Endpoint::Responses, json!({"model": "m"}));
        let e = rejected(&mut encoder(), 5, &r, &mut out);
        assert_eq!(
            e,
            err(
                5,
                "url",
                Problem::EndpointMismatch {
                    expected: "/v1/chat/completions".into(),
                    found: "/v1/responses".into()
                }
            )
        );
    }

    #[test]
    fn one_model_per_batch() {
        let mut enc = encoder();
        let mut out = Vec::new();
        let _ = written(enc.try_push(1, &chat("a", "m1"), &mut out).expect("valid"));
        let e = rejected(&mut enc, 2, &chat("b", "m2"), &mut out);
        assert_eq!(
            e,
            err(
                2,
                "body.model",
                Problem::MixedModels {
                    expected: "m1".into(),
                    found: "m2".into()
                }
            )
        );
    }

    #[test]
    fn model_missing_empty_or_not_a_string() {
        let mut out = Vec::new();
        let cases = [
            (json!({"messages": []}), Problem::Missing),
            (json!({"model": ""}), Problem::Empty),
            (
                json!({"model": 4}),
                Problem::Invalid("must be a string".into()),
            ),
        ];
        for (body, problem) in cases {
            let r = req("a", Endpoint::ChatCompletions, body);
            assert_eq!(
                rejected(&mut encoder(), 9, &r, &mut out),
                err(9, "body.model", problem)
            );
        }
    }

    #[test]
    fn endpoints_without_a_model_accept_lines_without_one() {
        let mut enc = ShardEncoder::new(EncodeConfig::new(SRC, Endpoint::Videos));
        let mut out = Vec::new();
        let no_model = req("a", Endpoint::Videos, json!({"prompt": "p"}));
        let _ = written(enc.try_push(1, &no_model, &mut out).expect("valid"));
        let with_model = req("b", Endpoint::Videos, json!({"prompt": "p", "model": "v1"}));
        let _ = written(enc.try_push(2, &with_model, &mut out).expect("valid"));
        let other = req("c", Endpoint::Videos, json!({"prompt": "p", "model": "v2"}));
        let e = rejected(&mut enc, 3, &other, &mut out);
        assert_eq!(
            e,
            err(
                3,
                "body.model",
                Problem::MixedModels {
                    expected: "v1".into(),
                    found: "v2".into()
                }
            )
        );
    }

    #[test]
    fn request_limit_is_full_then_error_for_push() {
        let mut enc =
            ShardEncoder::new(EncodeConfig::new(SRC, Endpoint::ChatCompletions).max_requests(2));
        let mut out = Vec::new();
        let _ = written(enc.try_push(1, &chat("a", "m"), &mut out).expect("valid"));
        let _ = written(enc.try_push(2, &chat("b", "m"), &mut out).expect("valid"));
        let before = out.clone();
        assert_eq!(
            enc.try_push(3, &chat("c", "m"), &mut out),
            Ok(Push::Full(ShardLimit::Requests))
        );
        assert_eq!(out, before);
        assert_eq!(
            enc.push(3, &chat("c", "m"), &mut out),
            Err(err(3, "", Problem::TooManyRequests { max: 2 }))
        );
        assert_eq!(out, before);
        // A full shard did not record the request: it goes into the next one.
        assert_eq!(
            enc.finish_shard(),
            ShardTotals {
                lines: 2,
                bytes: before.len() as u64,
                inputs: 0
            }
        );
        let mut next = Vec::new();
        let _ = written(enc.try_push(3, &chat("c", "m"), &mut next).expect("valid"));
        assert_eq!(enc.lines(), 1);
    }

    #[test]
    fn byte_limit_is_exact() {
        let line = encoded_len(&chat("a", "m"));
        // Room for exactly two lines of this size.
        let cfg = EncodeConfig::new(SRC, Endpoint::ChatCompletions).max_bytes(2 * line);
        let mut enc = ShardEncoder::new(cfg);
        let mut out = Vec::new();
        let _ = written(enc.try_push(1, &chat("a", "m"), &mut out).expect("fits"));
        let _ = written(
            enc.try_push(2, &chat("b", "m"), &mut out)
                .expect("fits exactly"),
        );
        assert_eq!(enc.remaining_bytes(), 0);
        assert!(!enc.would_fit(&chat("c", "m")));
        let before = out.clone();
        assert_eq!(
            enc.try_push(3, &chat("c", "m"), &mut out),
            Ok(Push::Full(ShardLimit::Bytes))
        );
        assert_eq!(out, before);
        assert_eq!(
            enc.push(3, &chat("c", "m"), &mut out),
            Err(err(3, "", Problem::TooManyBytes { max: 2 * line }))
        );
        assert_eq!(out, before);
    }

    #[test]
    fn a_line_too_big_for_any_shard_is_an_error() {
        let line = encoded_len(&chat("a", "m"));
        let mut enc = ShardEncoder::new(
            EncodeConfig::new(SRC, Endpoint::ChatCompletions).max_bytes(line - 1),
        );
        let mut out = b"keep".to_vec();
        let e = rejected(&mut enc, 1, &chat("a", "m"), &mut out);
        assert_eq!(e, err(1, "", Problem::TooManyBytes { max: line - 1 }));
        let mut none =
            ShardEncoder::new(EncodeConfig::new(SRC, Endpoint::ChatCompletions).max_requests(0));
        let e = rejected(&mut none, 1, &chat("a", "m"), &mut out);
        assert_eq!(e, err(1, "", Problem::TooManyRequests { max: 0 }));
    }

    #[test]
    fn a_line_too_big_for_any_shard_is_an_error_even_when_the_shard_is_full() {
        let small = encoded_len(&chat("a", "m"));
        let cfg = EncodeConfig::new(SRC, Endpoint::ChatCompletions)
            .max_requests(1)
            .max_bytes(small);
        let mut enc = ShardEncoder::new(cfg);
        let mut out = Vec::new();
        let _ = written(enc.try_push(1, &chat("a", "m"), &mut out).expect("fits"));
        // Reporting `Full` here would make the caller open a shard that the
        // line cannot go into either.
        let big = chat("b-with-a-much-longer-custom-id", "m");
        let e = rejected(&mut enc, 2, &big, &mut out);
        assert_eq!(e, err(2, "", Problem::TooManyBytes { max: small }));
    }

    #[test]
    fn input_errors_win_over_a_full_shard() {
        let mut enc =
            ShardEncoder::new(EncodeConfig::new(SRC, Endpoint::ChatCompletions).max_requests(1));
        let mut out = Vec::new();
        let _ = written(enc.try_push(1, &chat("a", "m"), &mut out).expect("valid"));
        let e = rejected(&mut enc, 2, &chat("a", "m"), &mut out);
        assert!(matches!(e.problem, Problem::Duplicate { .. }));
    }

    #[test]
    fn try_push_to_writes_the_same_bytes_with_one_write() {
        struct Writes(Vec<Vec<u8>>);
        impl Write for Writes {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.push(buf.to_vec());
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = Writes(Vec::new());
        let mut enc = encoder();
        let r = chat("a", "m");
        let bytes = written(enc.try_push_to(1, &r, &mut w).expect("valid"));
        let mut want = Vec::new();
        encode_line(&r, &mut want);
        assert_eq!(w.0, vec![want.clone()]);
        assert_eq!(bytes, want.len() as u64);
        // An input error writes nothing.
        assert!(matches!(
            enc.try_push_to(2, &r, &mut w),
            Err(PushError::Input(_))
        ));
        assert_eq!(w.0.len(), 1);
    }

    #[test]
    fn try_push_to_reports_io_errors_and_does_not_count_the_line() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut enc = encoder();
        let e = enc
            .try_push_to(1, &chat("a", "m"), &mut Broken)
            .expect_err("io error");
        assert!(matches!(e, PushError::Io(ref io) if io.to_string() == "disk full"));
        assert_eq!(e.to_string(), "writing the request line failed");
        assert_eq!((enc.lines(), enc.bytes()), (0, 0));
        // The id was not recorded, so the same request can be written again.
        let mut out = Vec::new();
        assert!(enc.try_push_to(1, &chat("a", "m"), &mut out).is_ok());
    }

    #[test]
    fn validate_all_reports_every_error_and_counts_shards() {
        let cfg = EncodeConfig::new(SRC, Endpoint::ChatCompletions).max_requests(2);
        let lines = vec![
            (1, Ok(chat("a", "m"))),
            (2, Ok(chat("a", "m"))),
            (3, Err(err(3, "", Problem::InvalidJson("x".into())))),
            (5, Ok(chat("b", "other"))),
            (6, Ok(chat("b", "m"))),
            (7, Ok(chat("c", "m"))),
            (8, Ok(chat("", "m"))),
        ];
        let report = validate_all(&cfg, lines, 10);
        assert_eq!(
            report.errors,
            vec![
                err(
                    2,
                    "custom_id",
                    Problem::Duplicate {
                        value: "a".into(),
                        first_line: 1
                    }
                ),
                err(3, "", Problem::InvalidJson("x".into())),
                err(
                    5,
                    "body.model",
                    Problem::MixedModels {
                        expected: "m".into(),
                        found: "other".into()
                    }
                ),
                err(8, "custom_id", Problem::Empty),
            ]
        );
        assert_eq!(report.error_count, 4);
        assert!(!report.is_ok());
        assert_eq!(report.requests, 3);
        assert_eq!(report.bytes, 3 * encoded_len(&chat("a", "m")));
        assert_eq!(report.shards, 2);
    }

    #[test]
    fn validate_all_caps_the_errors_it_keeps() {
        let cfg = EncodeConfig::new(SRC, Endpoint::ChatCompletions);
        let lines = (1..=5).map(|n| (n, Ok::<_, InputError>(chat("", "m"))));
        let report = validate_all(&cfg, lines, 2);
        assert_eq!(report.errors.len(), 2);
        assert_eq!(report.errors[1].line, 2);
        assert_eq!(report.error_count, 5);
        assert_eq!((report.requests, report.shards), (0, 0));
    }

    fn embed(id: &str, input: Value) -> BatchRequest {
        req(
            id,
            Endpoint::Embeddings,
            json!({"model": "e", "input": input}),
        )
    }

    #[test]
    fn embedding_inputs_count_strings_arrays_and_token_arrays() {
        assert_eq!(embedding_inputs(&embed("a", json!("one text"))), 1);
        assert_eq!(embedding_inputs(&embed("a", json!(["x", "y", "z"]))), 3);
        // A single token array is one input, however many tokens it has.
        assert_eq!(embedding_inputs(&embed("a", json!([1, 2, 3, 4, 5]))), 1);
        // An array of token arrays is one input per array.
        assert_eq!(embedding_inputs(&embed("a", json!([[1, 2], [3], [4]]))), 3);
        assert_eq!(embedding_inputs(&embed("a", json!([]))), 0);
        assert_eq!(embedding_inputs(&embed("a", Value::Null)), 0);
        let no_input = req("a", Endpoint::Embeddings, json!({"model": "e"}));
        assert_eq!(embedding_inputs(&no_input), 0);
    }

    #[test]
    fn embedding_inputs_fill_a_shard_before_requests_or_bytes_do() {
        let cfg = EncodeConfig::new(SRC, Endpoint::Embeddings).max_inputs(5);
        let mut enc = ShardEncoder::new(cfg);
        let mut out = Vec::new();
        let _ = written(
            enc.try_push(1, &embed("a", json!(["1", "2", "3"])), &mut out)
                .expect("3"),
        );
        let _ = written(
            enc.try_push(2, &embed("b", json!([7, 8, 9, 10])), &mut out)
                .expect("1"),
        );
        assert_eq!(enc.inputs(), 4);
        assert_eq!(enc.remaining_inputs(), 1);
        let two = embed("c", json!([[1], [2]]));
        assert!(!enc.would_fit(&two));
        let before = out.clone();
        assert_eq!(
            enc.try_push(3, &two, &mut out),
            Ok(Push::Full(ShardLimit::Inputs))
        );
        assert_eq!(out, before);
        assert_eq!(
            enc.push(3, &two, &mut out),
            Err(err(3, "", Problem::TooManyInputs { max: 5 }))
        );
        assert_eq!(enc.finish_shard().inputs, 4);
        let _ = written(enc.try_push(3, &two, &mut Vec::new()).expect("next shard"));
        assert_eq!(enc.inputs(), 2);
    }

    #[test]
    fn exactly_the_input_limit_fits() {
        let cfg = EncodeConfig::new(SRC, Endpoint::Embeddings).max_inputs(3);
        let mut enc = ShardEncoder::new(cfg);
        let mut out = Vec::new();
        let _ = written(
            enc.try_push(1, &embed("a", json!(["1", "2"])), &mut out)
                .expect("2"),
        );
        let _ = written(
            enc.try_push(2, &embed("b", json!("3")), &mut out)
                .expect("3"),
        );
        assert_eq!(enc.remaining_inputs(), 0);
    }

    #[test]
    fn one_request_over_the_input_limit_is_named() {
        let cfg = EncodeConfig::new(SRC, Endpoint::Embeddings).max_inputs(2);
        let mut enc = ShardEncoder::new(cfg);
        let mut out = Vec::new();
        let _ = written(
            enc.try_push(1, &embed("a", json!("x")), &mut out)
                .expect("fits"),
        );
        // Whatever the shard holds, three inputs can never fit in one batch.
        let e = rejected(&mut enc, 4, &embed("b", json!(["x", "y", "z"])), &mut out);
        assert_eq!(
            e,
            err(
                4,
                "body.input",
                Problem::InputsOverLimit { inputs: 3, max: 2 }
            )
        );
        assert_eq!(
            e.to_string(),
            "in.jsonl:4: field `body.input`: holds 3 embedding inputs, more than the 2 one batch may hold"
        );
    }

    #[test]
    fn the_default_input_limit_is_fifty_thousand_and_only_for_embeddings() {
        let cfg = EncodeConfig::new(SRC, Endpoint::Embeddings);
        assert_eq!(cfg.max_inputs, 50_000);
        let many: Vec<Value> = (0..20_000).map(|_| json!("t")).collect();
        let mut enc = ShardEncoder::new(cfg);
        let mut out = Vec::new();
        let _ = written(
            enc.try_push(1, &embed("a", json!(many)), &mut out)
                .expect("20k"),
        );
        let _ = written(
            enc.try_push(2, &embed("b", json!(many)), &mut out)
                .expect("40k"),
        );
        assert_eq!(
            enc.try_push(3, &embed("c", json!(many)), &mut out),
            Ok(Push::Full(ShardLimit::Inputs))
        );
        // Other endpoints do not count inputs, whatever their bodies hold.
        let mut chat_enc =
            ShardEncoder::new(EncodeConfig::new(SRC, Endpoint::ChatCompletions).max_inputs(1));
        let r = req(
            "a",
            Endpoint::ChatCompletions,
            json!({"model": "m", "messages": [], "input": ["x", "y"]}),
        );
        let _ = written(
            chat_enc
                .try_push(1, &r, &mut Vec::new())
                .expect("not counted"),
        );
        assert_eq!(chat_enc.inputs(), 0);
        assert_eq!(chat_enc.remaining_inputs(), u64::MAX);
    }

    #[test]
    fn validate_all_counts_shards_by_inputs() {
        let cfg = EncodeConfig::new(SRC, Endpoint::Embeddings).max_inputs(4);
        let lines = vec![
            (1, Ok(embed("a", json!(["1", "2", "3"])))),
            (2, Ok(embed("b", json!(["1", "2"])))),
            (3, Ok(embed("c", json!(["1", "2", "3", "4", "5"])))),
            (4, Ok(embed("d", json!([5, 6, 7])))),
        ];
        let report = validate_all(&cfg, lines, 10);
        assert_eq!(
            report.errors,
            vec![err(
                3,
                "body.input",
                Problem::InputsOverLimit { inputs: 5, max: 4 }
            )]
        );
        // a | b, d
        assert_eq!((report.requests, report.inputs, report.shards), (3, 6, 2));
    }

    #[test]
    fn validate_all_accepts_borrowed_requests() {
        let cfg = EncodeConfig::new(SRC, Endpoint::ChatCompletions);
        let reqs = [chat("a", "m"), chat("b", "m")];
        let report = validate_all(&cfg, (1..).zip(&reqs).map(|(n, r)| (n, Ok(r))), 1);
        assert!(report.is_ok());
        assert_eq!((report.requests, report.shards), (2, 1));
    }
}
