//! Reading the input file: every line (a full request line or a short line)
//! becomes a [`BatchRequest`], is placed in a shard by the core's
//! [`PlanBuilder`], and is appended to that shard's file.
//!
//! The whole input is read before anything is sent: every bad line is
//! collected (the first [`MAX_SHOWN_ERRORS`] are kept, all are counted), and
//! a run with any bad line stops with exit code 2.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use batch_core::anthropic;
use batch_core::input::{BatchRequest, Item, RequestTemplate, SystemPrompt};
use batch_core::job::{JobPlan, PlanBuilder, ShardHash, ShardLimits, StoredShardFile};
use batch_core::provider::UrlStyle;
use batch_core::{Endpoint, InputError, Problem};
use serde_json::{Map, Value};

use crate::error::CliError;
use crate::interrupt::Interrupt;

/// How many input errors are printed; the rest are counted.
pub(crate) const MAX_SHOWN_ERRORS: usize = 20;

/// What turns short lines into requests, and how requests are split.
#[derive(Clone, Debug)]
pub(crate) struct PlanSpec {
    /// `--model`: the model of short lines that do not name one.
    pub(crate) model: Option<String>,
    /// `--system`: the system prompt of short lines.
    pub(crate) system: Option<String>,
    /// `--endpoint`, or the first full line's `url`, or chat completions.
    pub(crate) endpoint: Endpoint,
    /// Per-shard limits.
    pub(crate) limits: ShardLimits,
    /// How the shard lines write their `url` (`/chat/completions` for
    /// Azure OpenAI's dated API); input lines may use either form then.
    pub(crate) url_style: UrlStyle,
    /// `--max-tokens` (or its default): the `max_tokens` of short lines of a
    /// Message Batches job that set none.
    pub(crate) max_tokens: Option<u32>,
    /// Whether the job is an Anthropic Message Batches job: lines are
    /// Anthropic's own (`custom_id` and `params`) or short lines, turned
    /// into `params` (see `batch_core::anthropic`).
    pub(crate) anthropic: bool,
    /// Whether the lines are read back from the journal's shard files, where
    /// a Message Batch's lines after a shard's first start with `,`.
    pub(crate) shard_lines: bool,
}

/// A plan built from an input file.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) plan: JobPlan,
    /// The input's length in bytes and its FNV-1a 64 hash, in hex.
    pub(crate) input_len: u64,
    pub(crate) input_hash: String,
    /// The model of the first request, if it names one.
    pub(crate) model: Option<String>,
    /// The shard files written (named by file name alone), when asked to
    /// write them.
    pub(crate) shard_files: Vec<StoredShardFile>,
    /// How many short lines of a Message Batches job set no `max_tokens`
    /// and took the spec's.
    pub(crate) filled_max_tokens: u64,
}

/// Reads `input` and builds the plan of job `job_id`. With `shards_dir`, the
/// shard files are written there (`shard-00000.jsonl`, ...); without it,
/// the plan is only rebuilt (to resume a job whose shards exist).
///
/// # Errors
/// [`CliError::Input`] with every bad line; [`CliError::Failed`] if the
/// input cannot be read or a shard file cannot be written.
pub(crate) fn build_plan(
    input: &Path,
    source: &str,
    spec: &PlanSpec,
    job_id: &str,
    shards_dir: Option<&Path>,
    interrupt: &Interrupt,
) -> Result<Planned, CliError> {
    let file = File::open(input)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", input.display())))?;
    build_plan_from(
        file,
        &input.display().to_string(),
        Some(input),
        source,
        spec,
        job_id,
        shards_dir,
        interrupt,
    )
}

/// [`build_plan`] from any reader (`what` names it in read errors): the
/// journal's shard files rebuild the plan of a job this way. With
/// `read_back`, the file `input` reads, the plan keeps no ids and reads an
/// earlier line's id back from it when two ids' digests are equal.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_plan_from(
    input: impl io::Read,
    what: &str,
    read_back: Option<&Path>,
    source: &str,
    spec: &PlanSpec,
    job_id: &str,
    shards_dir: Option<&Path>,
    interrupt: &Interrupt,
) -> Result<Planned, CliError> {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut parser = LineParser::new(source, spec);
    let builder = if spec.anthropic {
        PlanBuilder::anthropic(job_id, spec.limits.clone(), source)
    } else {
        PlanBuilder::new(job_id, spec.endpoint.clone(), spec.limits.clone(), source)
            .url_style(spec.url_style)
    };
    let mut builder = match read_back {
        // The plan keeps no ids (they are in the shard files): it checks them
        // by digest, and reads an earlier line back when two digests are equal.
        Some(path) => {
            let mut earlier = LineReader::new(path);
            builder.without_ids(move |line| earlier.custom_id(line))
        }
        // Nothing to read back (the journal's own shard files, checked when
        // they were written): the plan keeps its ids.
        None => builder,
    };
    let mut errors = InputErrors::default();
    let mut shards = shards_dir.map(ShardWriter::new);
    let mut hasher = Fnv64::new();
    let mut input_len = 0u64;
    let mut model = None;
    let mut buf = Vec::new();
    let mut encoded = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| CliError::failed(format!("cannot read {what}: {e}")))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line_no.is_multiple_of(4096) && interrupt.is_set() {
            return Err(CliError::Interrupted);
        }
        hasher.write(&buf);
        input_len += n as u64;
        let line = trim_line_end(&buf);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let placed = parser.parse(line_no, line).and_then(|req| {
            let placed = builder.push(line_no, &req, &mut encoded)?;
            if model.is_none() {
                model = req.model().map(str::to_owned);
            }
            Ok(placed)
        });
        match placed {
            Ok(placement) => {
                if errors.total > 0 {
                    continue;
                }
                if let Some(w) = shards.as_mut() {
                    if placement.new_shard {
                        w.start(placement.shard)?;
                    }
                    w.write(&encoded)?;
                }
            }
            Err(e) => {
                errors.push(e);
                // A bad input writes no shards: they would be thrown away.
                shards = None;
            }
        }
    }
    let mut shard_files = Vec::new();
    if errors.total == 0
        && let Some(w) = shards.as_mut()
    {
        w.finish()?;
        shard_files = std::mem::take(&mut w.done);
    }
    if errors.total > 0 {
        return Err(errors.into_error());
    }
    let plan = builder.finish().map_err(|e| {
        errors.push(e);
        errors.into_error()
    })?;
    Ok(Planned {
        plan,
        input_len,
        input_hash: format!("{:016x}", hasher.finish()),
        model,
        shard_files,
        filled_max_tokens: parser.filled_max_tokens,
    })
}

/// The length of `input` and its FNV-1a 64 hash in hex, as [`Planned`]
/// records them: whether an input is still the one a job was planned from.
///
/// # Errors
/// A usage error if the file cannot be read.
pub(crate) fn input_digest(input: &Path) -> Result<(u64, String), CliError> {
    let fail = |e: io::Error| CliError::usage(format!("cannot read {}: {e}", input.display()));
    let mut file = File::open(input).map_err(fail)?;
    let mut hasher = Fnv64::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = io::Read::read(&mut file, &mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        hasher.write(&buf[..n]);
        len += n as u64;
    }
    Ok((len, format!("{:016x}", hasher.finish())))
}

/// Reads the `custom_id` of an earlier input line again, going forward from
/// the last line read (or from the start, for an earlier one).
struct LineReader {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    /// The number of the line the reader reads next.
    next: u64,
    buf: Vec<u8>,
}

impl LineReader {
    fn new(path: &Path) -> Self {
        LineReader {
            path: path.to_owned(),
            reader: None,
            next: 1,
            buf: Vec::new(),
        }
    }

    /// The `custom_id` of line `line` (1-based), if it can be read.
    fn custom_id(&mut self, line: u64) -> Option<String> {
        if self.reader.is_none() || self.next > line {
            self.reader = Some(BufReader::new(File::open(&self.path).ok()?));
            self.next = 1;
        }
        let reader = self.reader.as_mut()?;
        loop {
            self.buf.clear();
            if reader.read_until(b'\n', &mut self.buf).ok()? == 0 {
                return None;
            }
            self.next += 1;
            if self.next > line {
                let map: Map<String, Value> =
                    serde_json::from_slice(strip_bom(trim_line_end(&self.buf))).ok()?;
                return map.get("custom_id")?.as_str().map(str::to_owned);
            }
        }
    }
}

/// The endpoint of an input with no `--endpoint`: the `url` of its first
/// line if that line is a full request line, otherwise chat completions.
pub(crate) fn detect_endpoint(input: &Path) -> Result<Endpoint, CliError> {
    let file = File::open(input)
        .map_err(|e| CliError::usage(format!("cannot read {}: {e}", input.display())))?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| CliError::failed(format!("cannot read {}: {e}", input.display())))?;
        if n == 0 {
            return Ok(Endpoint::ChatCompletions);
        }
        let line = trim_line_end(&buf);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let url = serde_json::from_slice::<Map<String, Value>>(strip_bom(line))
            .ok()
            .and_then(|m| m.get("url").and_then(Value::as_str).map(Endpoint::parse));
        return Ok(url.unwrap_or(Endpoint::ChatCompletions));
    }
}

/// Parses `--endpoint`: a path (`/v1/embeddings`, `embeddings`) or a short
/// name (`chat`).
pub(crate) fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    let t = s.trim().trim_start_matches('/');
    let t = t.strip_prefix("v1/").unwrap_or(t);
    let path = match t {
        "chat" => "chat/completions",
        "images" => "images/generations",
        other => other,
    };
    let e = Endpoint::parse(&format!("/v1/{path}"));
    if e.is_known() {
        Ok(e)
    } else {
        Err(format!(
            "unknown endpoint {s:?}: use one of /v1/chat/completions, /v1/responses, \
             /v1/embeddings, /v1/completions, /v1/moderations, /v1/images/generations, \
             /v1/images/edits, /v1/videos"
        ))
    }
}

fn trim_line_end(buf: &[u8]) -> &[u8] {
    let line = buf.strip_suffix(b"\n").unwrap_or(buf);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn strip_bom(line: &[u8]) -> &[u8] {
    line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
}

/// The errors of an input: the first few, and how many in all.
#[derive(Debug, Default)]
struct InputErrors {
    shown: Vec<InputError>,
    total: u64,
}

impl InputErrors {
    fn push(&mut self, e: InputError) {
        self.total += 1;
        if self.shown.len() < MAX_SHOWN_ERRORS {
            self.shown.push(e);
        }
    }

    fn into_error(self) -> CliError {
        CliError::Input {
            errors: self.shown,
            total: self.total,
        }
    }
}

/// Writes one shard file after another, noting each one's length, line
/// count and hash for the journal.
struct ShardWriter {
    dir: PathBuf,
    current: Option<(BufWriter<File>, String, u64, u64, ShardHash)>,
    done: Vec<StoredShardFile>,
}

impl ShardWriter {
    fn new(dir: &Path) -> Self {
        ShardWriter {
            dir: dir.to_owned(),
            current: None,
            done: Vec::new(),
        }
    }

    fn start(&mut self, shard: u32) -> Result<(), CliError> {
        self.finish()?;
        let name = shard_file_name(shard);
        let path = self.dir.join(&name);
        let f = crate::journal::create_private_file(&path).map_err(|e| write_error(&path, &e))?;
        self.current = Some((
            BufWriter::with_capacity(1 << 20, f),
            name,
            0,
            0,
            ShardHash::new(),
        ));
        Ok(())
    }

    fn write(&mut self, line: &[u8]) -> Result<(), CliError> {
        match self.current.as_mut() {
            Some((w, _, bytes, lines, hash)) => {
                hash.update(line);
                *bytes += line.len() as u64;
                *lines += 1;
                w.write_all(line).map_err(|e| write_error(&self.dir, &e))
            }
            None => Err(CliError::failed("a request line came before its shard")),
        }
    }

    fn finish(&mut self) -> Result<(), CliError> {
        if let Some((w, name, bytes, lines, hash)) = self.current.take() {
            let f = w
                .into_inner()
                .map_err(|e| write_error(&self.dir, e.error()))?;
            f.sync_all().map_err(|e| write_error(&self.dir, &e))?;
            self.done
                .push(StoredShardFile::from_parts(name, bytes, lines, &hash));
        }
        Ok(())
    }
}

fn write_error(path: &Path, e: &io::Error) -> CliError {
    CliError::failed(format!("cannot write {}: {e}", path.display()))
}

/// The file name of shard `shard`.
pub(crate) fn shard_file_name(shard: u32) -> String {
    format!("shard-{shard:05}.jsonl")
}

/// Turns input lines into requests.
struct LineParser<'a> {
    source: &'a str,
    spec: &'a PlanSpec,
    system: SystemPrompt,
    templates: HashMap<String, RequestTemplate>,
    anthropic_templates: HashMap<String, anthropic::MessagesTemplate>,
    /// How many short lines of a Message Batches job took the spec's
    /// `max_tokens`.
    filled_max_tokens: u64,
}

/// The keys of a short line that are not copied into the body as they are.
const SHORT_KEYS: [&str; 6] = [
    "custom_id",
    "prompt",
    "messages",
    "model",
    "temperature",
    "max_tokens",
];

impl<'a> LineParser<'a> {
    fn new(source: &'a str, spec: &'a PlanSpec) -> Self {
        let system = match &spec.system {
            Some(s) => SystemPrompt::Text(s.clone()),
            None => SystemPrompt::None,
        };
        LineParser {
            source,
            spec,
            system,
            templates: HashMap::new(),
            anthropic_templates: HashMap::new(),
            filled_max_tokens: 0,
        }
    }

    fn parse(&mut self, line_no: u64, line: &[u8]) -> Result<BatchRequest, InputError> {
        if self.spec.anthropic {
            return self.parse_anthropic(line_no, line);
        }
        let Ok(map) = serde_json::from_slice::<Map<String, Value>>(strip_bom(line)) else {
            // Not a JSON object: the core's parser says exactly why.
            return BatchRequest::parse_line(self.source, line_no, line);
        };
        let is_full = ["url", "body", "method"]
            .iter()
            .any(|k| map.contains_key(*k));
        if is_full {
            let mut req = BatchRequest::parse_line(self.source, line_no, line)?;
            // `/chat/completions`, as Azure's dated API writes it, is the
            // plan's `/v1/chat/completions`.
            if self.spec.url_style.apply(self.spec.endpoint.as_str()) == req.url.as_str() {
                req.url = self.spec.endpoint.clone();
            }
            return Ok(req);
        }
        self.short(line_no, map)
    }

    /// A line of a Message Batches job: Anthropic's own request line
    /// (`custom_id` and `params`), or a short line turned into `params`.
    fn parse_anthropic(&mut self, line_no: u64, line: &[u8]) -> Result<BatchRequest, InputError> {
        let line = if self.spec.shard_lines {
            line.strip_prefix(b",").unwrap_or(line)
        } else {
            line
        };
        let Ok(map) = serde_json::from_slice::<Map<String, Value>>(strip_bom(line)) else {
            // Not a JSON object: the core's parser says exactly why.
            return anthropic::parse_request_line(self.source, line_no, line);
        };
        if map.contains_key("params") {
            return anthropic::parse_request_line(self.source, line_no, line);
        }
        if let Some(k) = ["url", "body", "method"]
            .into_iter()
            .find(|k| map.contains_key(*k))
        {
            return Err(self.invalid(
                line_no,
                k,
                "is a field of OpenAI's request lines: --provider anthropic takes Anthropic's \
                 lines (`custom_id` and `params`) or short lines (`prompt` or `messages`)",
            ));
        }
        self.short(line_no, map)
    }

    fn fail(&self, line: u64, field: &str, problem: Problem) -> InputError {
        InputError::new(self.source, line, field, problem)
    }

    fn short(
        &mut self,
        line: u64,
        mut map: Map<String, Value>,
    ) -> Result<BatchRequest, InputError> {
        let custom_id = match map.get("custom_id") {
            None => return Err(self.fail(line, "custom_id", Problem::Missing)),
            Some(Value::String(s)) if s.is_empty() => {
                return Err(self.fail(line, "custom_id", Problem::Empty));
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(self.invalid(line, "custom_id", "must be a string")),
        };
        let model = match map.get("model") {
            None => match &self.spec.model {
                Some(m) => m.clone(),
                None => {
                    return Err(self.invalid(
                        line,
                        "model",
                        "is missing: pass --model or give the line a \"model\"",
                    ));
                }
            },
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => return Err(self.invalid(line, "model", "must be a non-empty string")),
        };
        let temperature = match map.get("temperature") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(t) if t.is_finite() => Some(t),
                _ => return Err(self.invalid(line, "temperature", "must be a number")),
            },
        };
        let max_tokens = match map.get("max_tokens") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => Some(n),
                _ => {
                    return Err(self.invalid(line, "max_tokens", "must be a positive integer"));
                }
            },
        };
        let prompt = map.get("prompt").cloned();
        let messages = map.get("messages").cloned();
        for k in SHORT_KEYS {
            map.remove(k);
        }
        let extra = map;
        if self.spec.anthropic {
            return self.anthropic_short(
                line,
                custom_id,
                model,
                (prompt, messages),
                temperature,
                max_tokens,
                &extra,
            );
        }
        match (prompt, messages) {
            (Some(_), Some(_)) => Err(self.invalid(
                line,
                "messages",
                "give either `prompt` or `messages`, not both",
            )),
            (None, None) => Err(self.invalid(
                line,
                "prompt",
                "is missing: a short line needs `prompt` or `messages` \
                 (a full request line needs `url` and `body`)",
            )),
            (Some(Value::String(prompt)), None) => {
                let mut item = Item::new(custom_id, prompt);
                item.temperature = temperature;
                item.max_tokens = max_tokens;
                item.extra = extra;
                let endpoint = self.spec.endpoint.clone();
                let system = &self.system;
                let template = self
                    .templates
                    .entry(model.clone())
                    .or_insert_with(|| RequestTemplate::new(endpoint, model, system));
                template.request(self.source, line, &item)
            }
            (Some(_), None) => Err(self.invalid(line, "prompt", "must be a string")),
            (None, Some(messages)) => self.messages(
                line,
                custom_id,
                model,
                messages,
                temperature,
                max_tokens,
                extra,
            ),
        }
    }

    /// A short line of a Message Batches job: its `params` from the
    /// line's model (else `--model`), `--system`, and its `max_tokens`
    /// (else `--max-tokens`, which Anthropic requires).
    #[allow(clippy::too_many_arguments)]
    fn anthropic_short(
        &mut self,
        line: u64,
        custom_id: String,
        model: String,
        (prompt, messages): (Option<Value>, Option<Value>),
        temperature: Option<f64>,
        max_tokens: Option<u32>,
        extra: &Map<String, Value>,
    ) -> Result<BatchRequest, InputError> {
        if max_tokens.is_none() && self.spec.max_tokens.is_none() {
            return Err(self.invalid(
                line,
                "max_tokens",
                "is missing: Anthropic requires `max_tokens` on every request; pass \
                 --max-tokens N, or give the line a \"max_tokens\"",
            ));
        }
        if max_tokens.is_none() {
            self.filled_max_tokens += 1;
        }
        let system = &self.system;
        let max = self.spec.max_tokens;
        let template = self
            .anthropic_templates
            .entry(model.clone())
            .or_insert_with(|| anthropic::MessagesTemplate::new(model, system, max));
        match (prompt, messages) {
            (Some(_), Some(_)) => Err(InputError::new(
                self.source,
                line,
                "messages",
                Problem::Invalid("give either `prompt` or `messages`, not both".into()),
            )),
            (None, None) => Err(InputError::new(
                self.source,
                line,
                "prompt",
                Problem::Invalid(
                    "is missing: a short line needs `prompt` or `messages` (Anthropic's own \
                     request line needs `custom_id` and `params`)"
                        .into(),
                ),
            )),
            (Some(Value::String(prompt)), None) => {
                let mut item = Item::new(custom_id, prompt);
                item.temperature = temperature;
                item.max_tokens = max_tokens;
                item.extra = extra.clone();
                template.request(self.source, line, &item)
            }
            (Some(_), None) => Err(InputError::new(
                self.source,
                line,
                "prompt",
                Problem::Invalid("must be a string".into()),
            )),
            (None, Some(Value::Array(list))) => template.request_messages(
                self.source,
                line,
                &custom_id,
                list,
                temperature,
                max_tokens,
                extra,
            ),
            (None, Some(_)) => Err(InputError::new(
                self.source,
                line,
                "messages",
                Problem::Invalid("must be an array of message objects".into()),
            )),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn messages(
        &self,
        line: u64,
        custom_id: String,
        model: String,
        messages: Value,
        temperature: Option<f64>,
        max_tokens: Option<u32>,
        extra: Map<String, Value>,
    ) -> Result<BatchRequest, InputError> {
        let Value::Array(list) = messages else {
            return Err(self.invalid(line, "messages", "must be an array of message objects"));
        };
        if list.is_empty() {
            return Err(self.fail(line, "messages", Problem::Empty));
        }
        if let Some(i) = list
            .iter()
            .position(|m| !m.get("role").is_some_and(Value::is_string))
        {
            return Err(self.invalid(
                line,
                &format!("messages[{i}]"),
                "must be an object with a string `role`",
            ));
        }
        let endpoint = &self.spec.endpoint;
        let system = self.system.compile();
        let (message_key, system_key, tokens_key) = match endpoint {
            Endpoint::ChatCompletions => ("messages", None, "max_tokens"),
            Endpoint::Responses => ("input", Some("instructions"), "max_output_tokens"),
            other => {
                return Err(self.fail(
                    line,
                    "messages",
                    Problem::NotAccepted {
                        endpoint: other.as_str().to_owned(),
                    },
                ));
            }
        };
        let mut owned = vec!["model", message_key];
        if let (Some(k), Some(_)) = (system_key, &system) {
            owned.push(k);
        }
        if let Some(k) = owned.iter().find(|k| extra.contains_key(**k)) {
            return Err(self.fail(line, k, Problem::Overrides((*k).to_owned())));
        }
        if temperature.is_some() && extra.contains_key("temperature") {
            return Err(self.fail(
                line,
                "temperature",
                Problem::Conflicts("temperature".into()),
            ));
        }
        if max_tokens.is_some() && extra.contains_key(tokens_key) {
            return Err(self.fail(line, tokens_key, Problem::Conflicts("max_tokens".into())));
        }
        let mut body = Map::new();
        body.insert("model".into(), Value::String(model));
        match (system_key, system) {
            (None, Some(system)) => {
                let mut all = Vec::with_capacity(list.len() + 1);
                let mut m = Map::new();
                m.insert("role".into(), "system".into());
                m.insert("content".into(), Value::String(system));
                all.push(Value::Object(m));
                all.extend(list);
                body.insert(message_key.into(), Value::Array(all));
            }
            (Some(key), Some(system)) => {
                body.insert(key.into(), Value::String(system));
                body.insert(message_key.into(), Value::Array(list));
            }
            (_, None) => {
                body.insert(message_key.into(), Value::Array(list));
            }
        }
        if let Some(t) = temperature {
            body.insert("temperature".into(), Value::from(t));
        }
        if let Some(n) = max_tokens {
            body.insert(tokens_key.into(), Value::from(n));
        }
        body.extend(extra);
        Ok(BatchRequest::new(custom_id, endpoint.clone(), body))
    }

    fn invalid(&self, line: u64, field: &str, what: &str) -> InputError {
        self.fail(line, field, Problem::Invalid(what.to_owned()))
    }
}

/// FNV-1a, 64 bits: a stable hash of the input, to tell a changed input on resume.
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    pub(crate) fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub(crate) fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(endpoint: Endpoint, model: Option<&str>, system: Option<&str>) -> PlanSpec {
        PlanSpec {
            model: model.map(str::to_owned),
            system: system.map(str::to_owned),
            endpoint,
            limits: ShardLimits::default(),
            url_style: UrlStyle::Versioned,
            max_tokens: None,
            anthropic: false,
            shard_lines: false,
        }
    }

    fn parse(spec: &PlanSpec, line: &str) -> Result<BatchRequest, String> {
        let mut p = LineParser::new("in.jsonl", spec);
        p.parse(3, line.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn short_prompt_lines_use_model_and_system() {
        let s = spec(Endpoint::ChatCompletions, Some("m"), Some("Be brief."));
        let r = parse(
            &s,
            r#"{"custom_id":"a","prompt":"hi","temperature":0.5,"seed":7}"#,
        )
        .expect("valid");
        let body = Value::Object(r.body);
        assert_eq!(body["model"], "m");
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][1]["content"], "hi");
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["seed"], 7);
    }

    #[test]
    fn short_messages_lines_get_the_system_prompt_first() {
        let s = spec(Endpoint::ChatCompletions, Some("m"), Some("sys"));
        let r = parse(
            &s,
            r#"{"custom_id":"a","messages":[{"role":"user","content":"x"}],"max_tokens":9}"#,
        )
        .expect("valid");
        let body = Value::Object(r.body);
        assert_eq!(body["messages"][0]["content"], "sys");
        assert_eq!(body["messages"][1]["content"], "x");
        assert_eq!(body["max_tokens"], 9);
        let s = spec(Endpoint::Responses, Some("m"), Some("sys"));
        let r = parse(
            &s,
            r#"{"custom_id":"a","messages":[{"role":"user","content":"x"}]}"#,
        )
        .expect("valid");
        let body = Value::Object(r.body);
        assert_eq!(body["instructions"], "sys");
        assert_eq!(body["input"][0]["content"], "x");
    }

    #[test]
    fn errors_name_the_line_and_field() {
        let s = spec(Endpoint::ChatCompletions, None, None);
        assert_eq!(
            parse(&s, r#"{"custom_id":"a","prompt":"hi"}"#).expect_err("rejected"),
            "in.jsonl:3: field `model`: is missing: pass --model or give the line a \"model\""
        );
        let s = spec(Endpoint::ChatCompletions, Some("m"), None);
        assert!(
            parse(&s, r#"{"prompt":"hi"}"#)
                .expect_err("rejected")
                .contains("field `custom_id`: is missing")
        );
        assert!(
            parse(&s, r#"{"custom_id":"a","prompt":"hi","temperature":"hot"}"#)
                .expect_err("rejected")
                .contains("field `temperature`")
        );
        assert!(
            parse(&s, r#"{"custom_id":"a","messages":[{"content":"x"}]}"#)
                .expect_err("rejected")
                .contains("field `messages[0]`")
        );
        assert!(
            parse(&s, "{nope")
                .expect_err("rejected")
                .starts_with("in.jsonl:3: invalid JSON")
        );
        assert!(
            parse(&s, r#"{"custom_id":"a","url":"/v1/chat/completions"}"#)
                .expect_err("rejected")
                .contains("field `body`: is missing")
        );
    }

    #[test]
    fn endpoints_parse_from_paths_and_names() {
        assert_eq!(parse_endpoint("chat"), Ok(Endpoint::ChatCompletions));
        assert_eq!(parse_endpoint("/v1/embeddings"), Ok(Endpoint::Embeddings));
        assert_eq!(parse_endpoint("responses"), Ok(Endpoint::Responses));
        assert!(parse_endpoint("/v1/nope").is_err());
    }
}
