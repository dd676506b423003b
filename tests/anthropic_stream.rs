//! Both transports run a Message Batches job unchanged: the create body is
//! streamed from the shard between `{"requests":[` and `]}`, with the
//! core's `Content-Type` and exact `Content-Length`, and the results are
//! read from the batch's `results_url`. Checked against a loopback server
//! that records each request and answers in Anthropic's shapes.

use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use batch_blocking::{Clock, SystemClock};
use batch_core::anthropic::MessagesTemplate;
use batch_core::api::ShardRef;
use batch_core::input::{Item, SystemPrompt};
use batch_core::job::{
    Checkpoint, ClientConfig, ClientSettings, Job, JobEvent, JobIo, JobOutcome, JobResult,
    JobSummary, PlanBuilder, ShardLimits,
};
use serde_json::{Value, json};

/// A request as the server saw it: its head lines, lowercased, and its body.
type Seen = (Vec<String>, Vec<u8>);

/// Serves a create and a results download on a loopback port.
fn server() -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let origin = url.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut ids: Vec<String> = Vec::new();
        for _ in 0..2 {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_ascii_lowercase());
            }
            let len = head
                .iter()
                .find_map(|h| h.strip_prefix("content-length: "))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            reader.read_exact(&mut body).expect("body");
            let (ctype, answer) = if head[0].starts_with("post /v1/messages/batches ") {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                ids = v["requests"]
                    .as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(|r| r["custom_id"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let batch = json!({
                    "id": "msgbatch_1", "type": "message_batch", "processing_status": "ended",
                    "request_counts": {"processing": 0, "succeeded": ids.len(), "errored": 0, "canceled": 0, "expired": 0},
                    "ended_at": "2026-01-01T00:00:01Z", "created_at": "2026-01-01T00:00:00Z",
                    "expires_at": "2026-01-02T00:00:00Z", "cancel_initiated_at": null, "archived_at": null,
                    "results_url": format!("{origin}/v1/messages/batches/msgbatch_1/results"),
                });
                ("application/json", batch.to_string())
            } else {
                let lines: String = ids
                    .iter()
                    .map(|id| {
                        let line = json!({"custom_id": id, "result": {"type": "succeeded", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-loop", "content": [{"type": "text", "text": format!("echo {id}")}], "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens": 3, "output_tokens": 2}}}});
                        format!("{line}\n")
                    })
                    .collect();
                ("application/x-jsonl", lines)
            };
            let mut stream = stream;
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            stream.write_all(reply.as_bytes()).expect("answer");
            tx.send((head, body)).expect("send");
        }
    });
    (url, rx)
}

struct Io {
    shards: Vec<Vec<u8>>,
    results: Vec<JobResult>,
    events: Vec<String>,
    checkpoint: Option<Checkpoint>,
}

impl JobIo for Io {
    fn persist(&mut self, checkpoint: &Checkpoint) -> io::Result<()> {
        self.checkpoint = Some(checkpoint.clone());
        Ok(())
    }
    fn result(&mut self, result: JobResult) -> io::Result<()> {
        self.results.push(result);
        Ok(())
    }
    fn event(&mut self, event: &JobEvent) -> io::Result<()> {
        self.events.push(format!("{event:?}"));
        Ok(())
    }
    fn open_shard(&mut self, shard: &ShardRef) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(Cursor::new(
            self.shards[shard.index as usize].clone(),
        )))
    }
}

#[test]
fn a_message_batch_is_created_from_the_streamed_shard_and_its_results_read() {
    for who in ["blocking", "async"] {
        let (url, rx) = server();
        let mut config = ClientConfig::anthropic("sk-ant-loop");
        config.api.base_url = url;

        let template = MessagesTemplate::new(
            "claude-loop",
            &SystemPrompt::Text("be brief".into()),
            Some(16),
        );
        let mut builder =
            PlanBuilder::anthropic("job-loop", ShardLimits::new(100, 1 << 20), "items");
        let mut shard = Vec::new();
        let mut line = Vec::new();
        for i in 0..3u64 {
            let req = template
                .request("items", i + 1, &Item::new(format!("r{i}"), format!("q{i}")))
                .expect("request");
            builder.push(i + 1, &req, &mut line).expect("placed");
            shard.extend_from_slice(&line);
        }
        let plan = builder.finish().expect("plan");
        let settings = ClientSettings::new(&config).expect("settings");
        let mut job = Job::new(settings.job_config(), plan, SystemClock.now());
        let mut io = Io {
            shards: vec![shard.clone()],
            results: Vec::new(),
            events: Vec::new(),
            checkpoint: None,
        };
        let summary = crate::common::run_on(who == "blocking", config, &mut job, &mut io);
        check(who, &summary, &io, &rx, &shard);
    }
}

/// What the server saw and what the job gave, the same on both transports.
fn check(who: &str, summary: &JobSummary, io: &Io, rx: &mpsc::Receiver<Seen>, shard: &[u8]) {
    assert!(summary.complete, "{who}: {summary:?} {:?}", io.events);
    assert_eq!(summary.succeeded, 3, "{who}");

    let (create_head, create_body) = rx.recv_timeout(Duration::from_secs(30)).expect("create");
    assert!(
        create_head[0].starts_with("post /v1/messages/batches "),
        "{who}: {create_head:?}"
    );
    let has = |p: &str| create_head.iter().any(|h| h == p);
    assert!(
        has("content-type: application/json"),
        "{who}: {create_head:?}"
    );
    assert!(
        has(&format!("content-length: {}", create_body.len())),
        "{who}"
    );
    assert!(has("x-api-key: sk-ant-loop"), "{who}");
    assert!(has("anthropic-version: 2023-06-01"), "{who}");
    assert!(
        !create_head
            .iter()
            .any(|h| h.starts_with("transfer-encoding")),
        "{who}"
    );
    let mut want = b"{\"requests\":[".to_vec();
    want.extend_from_slice(shard);
    want.extend_from_slice(b"]}");
    assert_eq!(
        create_body, want,
        "{who}: the body is the shard between head and tail"
    );
    let v: Value = serde_json::from_slice(&create_body).expect("one JSON document");
    assert_eq!(v["requests"][2]["custom_id"], "r2", "{who}");
    assert_eq!(v["requests"][0]["params"]["system"], "be brief", "{who}");
    assert_eq!(v["requests"][0]["params"]["max_tokens"], 16, "{who}");

    let (results_head, _) = rx.recv_timeout(Duration::from_secs(30)).expect("results");
    assert!(
        results_head[0].starts_with("get /v1/messages/batches/msgbatch_1/results "),
        "{who}: {results_head:?}"
    );
    let mut texts: Vec<(String, String)> = io
        .results
        .iter()
        .map(|r| match &r.outcome {
            JobOutcome::Succeeded(rec) => {
                (r.custom_id.clone(), rec.content().unwrap_or("").to_owned())
            }
            other => panic!("{who}: {other:?}"),
        })
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            ("r0".to_owned(), "echo r0".to_owned()),
            ("r1".to_owned(), "echo r1".to_owned()),
            ("r2".to_owned(), "echo r2".to_owned())
        ],
        "{who}"
    );
}
