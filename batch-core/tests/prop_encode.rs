//! Properties of the request-line encoder: what is encoded parses back to the
//! same request, every line is one valid JSON line, a rejected request leaves
//! the output untouched, and the file limits hold exactly at the boundary.

use std::collections::HashSet;

use batch_core::input::{BatchRequest, Item, RequestTemplate, SystemPrompt};
use batch_core::jsonl::{
    EncodeConfig, Push, ShardEncoder, ShardLimit, encode_line, encoded_len, validate_all,
};
use batch_core::{Endpoint, InputError, Problem};
use proptest::prelude::*;
use serde_json::{Map, Value};

// ---------------------------------------------------------------------------
// Strategies

/// Characters that stress the encoder, mixed with arbitrary ones.
fn any_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => prop::char::range(' ', '~'),
        1 => prop::sample::select(vec![
            '"', '\\', '/', '\n', '\r', '\t', '\0', '\u{8}', '\u{c}', '\u{1f}', '\u{7f}',
            '\u{85}', '\u{2028}', '\u{2029}', '\u{feff}', 'é', '世', '😀',
        ]),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any_char(), 0..max).prop_map(String::from_iter)
}

fn non_empty_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any_char(), 1..max).prop_map(String::from_iter)
}

/// Floats whose shortest decimal form serde_json parses back exactly. (Its
/// default float parser is not exact for every `f64`; that is a property of
/// the parser, not of the encoder.)
fn float() -> impl Strategy<Value = f64> {
    (any::<i32>(), 0i32..7).prop_map(|(m, k)| f64::from(m) / 10f64.powi(k))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        float().prop_map(Value::from),
        text(12).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((text(8), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((text(10), json_value()), 0..6).prop_map(|kv| kv.into_iter().collect())
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![
        4 => prop::sample::select(Endpoint::KNOWN.to_vec()),
        // Never equal to a known endpoint, which would parse back as that one.
        // No `.` or `..` segment either: those are refused when read back.
        1 => non_empty_text(10)
            .prop_filter("no dot segment", |s| {
                let path = s.split(['?', '#']).next().unwrap_or("");
                !path.split(['/', '\\']).any(|seg| {
                    let seg = seg.to_ascii_lowercase().replace("%2e", ".");
                    seg == "." || seg == ".."
                })
            })
            .prop_map(|s| Endpoint::parse(&format!("/x/{s}"))),
    ]
}

fn raw_request() -> impl Strategy<Value = BatchRequest> {
    (non_empty_text(16), endpoint(), body())
        .prop_map(|(id, url, body)| BatchRequest::new(id, url, body))
}

/// Items for `/v1/chat/completions` whose extra fields never clash with what
/// the job or the item sets (those are errors, tested in the unit tests).
fn item() -> impl Strategy<Value = Item> {
    (
        non_empty_text(16),
        text(40),
        prop::option::of(float()),
        prop::option::of(any::<u32>()),
        prop::collection::vec((text(8), json_value()), 0..3),
    )
        .prop_map(|(id, message, temperature, max_tokens, extra)| {
            let mut item = Item::new(id, message);
            item.temperature = temperature;
            item.max_tokens = max_tokens;
            for (k, v) in extra {
                item = item.extra(format!("x-{k}"), v);
            }
            item
        })
}

fn system_prompt() -> impl Strategy<Value = SystemPrompt> {
    prop_oneof![
        Just(SystemPrompt::None),
        text(40).prop_map(SystemPrompt::Text)
    ]
}

// ---------------------------------------------------------------------------
// Helpers

fn encode(req: &BatchRequest) -> Vec<u8> {
    let mut out = Vec::new();
    encode_line(req, &mut out);
    out
}

/// Exactly one line: a single `\n`, at the end; no other line break any
/// common reader splits on; valid JSON; and `encoded_len` agrees.
fn assert_one_json_line(req: &BatchRequest, line: &[u8]) {
    assert_eq!(line.last(), Some(&b'\n'));
    let text = std::str::from_utf8(line).expect("UTF-8");
    let body = &text[..text.len() - 1];
    let breaks = [
        '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}',
    ];
    assert!(!body.contains(breaks), "a line break inside: {body:?}");
    serde_json::from_str::<Value>(body).expect("valid JSON");
    assert_eq!(encoded_len(req), line.len() as u64);
}

fn chat(id: &str, model: Option<&str>, pad: usize) -> BatchRequest {
    let mut body = Map::new();
    if let Some(model) = model {
        body.insert("model".into(), Value::from(model));
    }
    body.insert("messages".into(), Value::from("x".repeat(pad)));
    BatchRequest::new(id, Endpoint::ChatCompletions, body)
}

// ---------------------------------------------------------------------------
// Round trips and line shape

proptest! {
    #[test]
    fn raw_requests_round_trip(req in raw_request()) {
        let line = encode(&req);
        assert_one_json_line(&req, &line);
        let back = BatchRequest::parse_line("prop", 1, &line).expect("parses back");
        prop_assert_eq!(back, req);
    }

    #[test]
    fn items_round_trip(item in item(), system in system_prompt()) {
        let template = RequestTemplate::new(Endpoint::ChatCompletions, "model-x", &system);
        let req = template.request("items", 1, &item).expect("a valid item");
        let line = encode(&req);
        assert_one_json_line(&req, &line);
        let back = BatchRequest::parse_line("prop", 1, &line).expect("parses back");
        prop_assert_eq!(&back, &req);

        // The parsed line says what the item said, and nothing it did not.
        prop_assert_eq!(&back.custom_id, &item.custom_id);
        let messages = back.body["messages"].as_array().expect("messages");
        let user = messages.last().expect("a user message");
        prop_assert_eq!(&user["content"], &Value::from(item.message.as_str()));
        prop_assert_eq!(messages.len(), if system.compile().is_some() { 2 } else { 1 });
        prop_assert_eq!(back.body.get("temperature").and_then(Value::as_f64), item.temperature);
        prop_assert_eq!(
            back.body.get("max_tokens").and_then(Value::as_u64),
            item.max_tokens.map(u64::from)
        );
        for (k, v) in &item.extra {
            prop_assert_eq!(back.body.get(k), Some(v));
        }
        let set = 2 + usize::from(item.temperature.is_some())
            + usize::from(item.max_tokens.is_some()) + item.extra.len();
        prop_assert_eq!(back.body.len(), set);
    }

    #[test]
    fn serde_and_encode_line_agree_up_to_the_extra_escapes(req in raw_request()) {
        let line = encode(&req);
        let via_serde = serde_json::to_vec(&req).expect("serialize");
        let a: Value = serde_json::from_slice(&line).expect("valid");
        let b: Value = serde_json::from_slice(&via_serde).expect("valid");
        prop_assert_eq!(a, b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn huge_strings_round_trip(
        id in prop::collection::vec(any_char(), 1..2_000).prop_map(String::from_iter),
        big in prop::collection::vec(any_char(), 100_000..250_000).prop_map(String::from_iter),
    ) {
        let mut body = Map::new();
        body.insert("model".into(), Value::from("m"));
        body.insert(big.clone(), Value::from(big.as_str()));
        let req = BatchRequest::new(id, Endpoint::Responses, body);
        let line = encode(&req);
        assert_one_json_line(&req, &line);
        let back = BatchRequest::parse_line("prop", 1, &line).expect("parses back");
        prop_assert_eq!(back, req);
    }
}

// ---------------------------------------------------------------------------
// The encoder never writes a rejected request, and accepts exactly the
// requests a plain model of the rules accepts.

/// One pushed request, drawn from small pools so that duplicates, wrong
/// endpoints and mixed models are common.
#[derive(Clone, Debug)]
struct Step {
    id: usize,
    wrong_url: bool,
    model: usize,
    pad: usize,
}

const IDS: [&str; 6] = ["a", "b", "c", "d", "é\"\n", ""];
const MODELS: [Option<&str>; 4] = [Some("m"), Some("n"), None, Some("")];

fn step() -> impl Strategy<Value = Step> {
    (
        0..IDS.len(),
        prop::bool::weighted(0.1),
        0..MODELS.len(),
        0usize..300,
    )
        .prop_map(|(id, wrong_url, model, pad)| Step {
            id,
            wrong_url,
            model,
            pad,
        })
}

impl Step {
    fn request(&self) -> BatchRequest {
        let mut req = chat(IDS[self.id], MODELS[self.model], self.pad);
        if self.wrong_url {
            req.url = Endpoint::Responses;
        }
        req
    }
}

/// The rules, written plainly: what the encoder must reject.
#[derive(Default)]
struct Model {
    seen: HashSet<String>,
    model: Option<String>,
}

impl Model {
    fn rejects(&self, req: &BatchRequest, max_bytes: u64) -> Option<&'static str> {
        if req.custom_id.is_empty() || self.seen.contains(&req.custom_id) {
            return Some("custom_id");
        }
        if req.url != Endpoint::ChatCompletions {
            return Some("url");
        }
        match (req.model(), &self.model) {
            (None | Some(""), _) => return Some("body.model"),
            (Some(m), Some(first)) if m != first => return Some("body.model"),
            _ => {}
        }
        (encoded_len(req) > max_bytes).then_some("")
    }

    fn accept(&mut self, req: &BatchRequest) {
        self.seen.insert(req.custom_id.clone());
        self.model
            .get_or_insert_with(|| req.model().unwrap_or_default().to_owned());
    }
}

proptest! {
    #[test]
    fn rejected_requests_leave_the_output_untouched(
        steps in prop::collection::vec(step(), 1..40),
        max_requests in 1u64..5,
        max_bytes in 100u64..1_200,
    ) {
        let cfg = EncodeConfig::new("prop", Endpoint::ChatCompletions)
            .max_requests(max_requests)
            .max_bytes(max_bytes);
        let mut enc = ShardEncoder::new(cfg);
        let mut model = Model::default();
        let mut shards: Vec<Vec<u8>> = vec![Vec::new()];
        let mut accepted = Vec::new();
        for (n, step) in (1u64..).zip(&steps) {
            let req = step.request();
            let expect = model.rejects(&req, max_bytes);
            let mut retried = false;
            loop {
                let out = shards.last_mut().expect("a shard");
                let before = out.clone();
                let (lines, bytes) = (enc.lines(), enc.bytes());
                match enc.try_push(n, &req, out) {
                    Ok(Push::Written { bytes: len }) => {
                        prop_assert_eq!(expect, None);
                        let mut want = before;
                        encode_line(&req, &mut want);
                        prop_assert_eq!(&*out, &want);
                        prop_assert_eq!(len, encoded_len(&req));
                        prop_assert_eq!((enc.lines(), enc.bytes()), (lines + 1, bytes + len));
                        model.accept(&req);
                        accepted.push(req.clone());
                        break;
                    }
                    Ok(Push::Full(_)) => {
                        prop_assert_eq!(expect, None);
                        prop_assert_eq!(&*out, &before);
                        prop_assert!(!retried, "full again in an empty shard");
                        prop_assert!(lines > 0, "full with an empty shard");
                        enc.finish_shard();
                        shards.push(Vec::new());
                        retried = true;
                    }
                    Ok(other) => prop_assert!(false, "unexpected {:?}", other),
                    Err(e) => {
                        prop_assert_eq!(&*out, &before);
                        prop_assert_eq!((enc.lines(), enc.bytes()), (lines, bytes));
                        prop_assert_eq!(e.line, n);
                        prop_assert_eq!(Some(e.field.as_str()), expect);
                        break;
                    }
                }
            }
        }
        // Every shard keeps the limits, and the shards hold exactly the
        // accepted requests, in order.
        let mut parsed = Vec::new();
        for shard in &shards {
            prop_assert!(shard.len() as u64 <= max_bytes);
            let lines: Vec<&[u8]> = shard.split_inclusive(|&b| b == b'\n').collect();
            prop_assert!(lines.len() as u64 <= max_requests);
            for line in lines {
                parsed.push(BatchRequest::parse_line("shard", 1, line).expect("valid line"));
            }
        }
        prop_assert_eq!(parsed, accepted);
    }

    #[test]
    fn validate_all_agrees_with_the_encoder(
        steps in prop::collection::vec(step(), 0..40),
        max_requests in 1u64..5,
        max_bytes in 100u64..1_200,
    ) {
        let cfg = EncodeConfig::new("prop", Endpoint::ChatCompletions)
            .max_requests(max_requests)
            .max_bytes(max_bytes);
        let reqs: Vec<BatchRequest> = steps.iter().map(Step::request).collect();

        let mut enc = ShardEncoder::new(cfg.clone());
        let (mut errors, mut requests, mut bytes, mut shards) = (Vec::new(), 0, 0, 0);
        for (n, req) in (1u64..).zip(&reqs) {
            let mut sink = Vec::new();
            let mut push = enc.try_push(n, req, &mut sink);
            if let Ok(Push::Full(_)) = push {
                enc.finish_shard();
                shards += 1;
                push = enc.try_push(n, req, &mut sink);
            }
            match push {
                Ok(Push::Written { bytes: len }) => {
                    requests += 1;
                    bytes += len;
                }
                Ok(other) => prop_assert!(false, "unexpected {:?}", other),
                Err(e) => errors.push(e),
            }
        }
        if enc.lines() > 0 {
            shards += 1;
        }

        let report = validate_all(
            &cfg,
            (1u64..).zip(&reqs).map(|(n, r)| (n, Ok::<_, InputError>(r))),
            usize::MAX,
        );
        prop_assert_eq!(report.error_count, errors.len() as u64);
        prop_assert_eq!(report.errors, errors);
        prop_assert_eq!((report.requests, report.bytes, report.shards), (requests, bytes, shards));
    }
}

// ---------------------------------------------------------------------------
// Limits hold exactly at the boundary.

proptest! {
    #[test]
    fn byte_limit_is_exact(pads in prop::collection::vec(0usize..500, 2..12), pick in any::<prop::sample::Index>()) {
        let reqs: Vec<BatchRequest> = pads
            .iter()
            .enumerate()
            .map(|(i, &pad)| chat(&format!("id-{i}"), Some("m"), pad))
            .collect();
        let lens: Vec<u64> = reqs.iter().map(encoded_len).collect();
        // The first `k` lines fill the shard to the byte.
        let k = 1 + pick.index(reqs.len() - 1);
        let exact: u64 = lens[..k].iter().sum();

        for (max_bytes, fits) in [(exact, k), (exact - 1, k - 1)] {
            let cfg = EncodeConfig::new("prop", Endpoint::ChatCompletions).max_bytes(max_bytes);
            let mut enc = ShardEncoder::new(cfg);
            let mut out = Vec::new();
            for (n, req) in (1u64..).zip(&reqs[..fits]) {
                let push = enc.try_push(n, req, &mut out).expect("fits");
                prop_assert_eq!(push, Push::Written { bytes: encoded_len(req) });
            }
            let next = &reqs[fits];
            let before = out.clone();
            let push = enc.try_push(fits as u64 + 1, next, &mut out);
            let n = fits as u64 + 1;
            if lens[fits] > max_bytes {
                // Too big even for an empty shard: an error, never `Full`.
                prop_assert_eq!(
                    push,
                    Err(InputError::new("prop", n, "", Problem::TooManyBytes { max: max_bytes }))
                );
            } else {
                prop_assert!(fits > 0);
                prop_assert_eq!(push, Ok(Push::Full(ShardLimit::Bytes)));
            }
            prop_assert_eq!(enc.bytes(), lens[..fits].iter().sum::<u64>());
            prop_assert_eq!(out, before);
        }
    }

    #[test]
    fn request_limit_is_exact(max_requests in 1u64..20, extra in 1u64..5) {
        let cfg = EncodeConfig::new("prop", Endpoint::ChatCompletions).max_requests(max_requests);
        let mut enc = ShardEncoder::new(cfg);
        let mut out = Vec::new();
        for n in 1..=max_requests {
            let req = chat(&n.to_string(), Some("m"), 0);
            let push = enc.try_push(n, &req, &mut out).expect("fits");
            prop_assert_eq!(push, Push::Written { bytes: encoded_len(&req) });
        }
        prop_assert_eq!(enc.remaining_requests(), 0);
        for n in max_requests + 1..=max_requests + extra {
            let before = out.clone();
            let req = chat(&n.to_string(), Some("m"), 0);
            prop_assert_eq!(enc.try_push(n, &req, &mut out), Ok(Push::Full(ShardLimit::Requests)));
            prop_assert_eq!(
                enc.push(n, &req, &mut out),
                Err(InputError::new("prop", n, "", Problem::TooManyRequests { max: max_requests }))
            );
            prop_assert_eq!(&out, &before);
        }
        prop_assert_eq!(enc.lines(), max_requests);
    }
}
