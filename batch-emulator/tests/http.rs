//! The HTTP surface: auth, 404s, request validation, uploads, lists and
//! pagination, deletes, and Range requests on file content.

mod common;

use batch_emulator::{Emulator, RunningEmulator};
use common::{Api, KEY, chat_line};
use reqwest::header;
use serde_json::{Value, json};

async fn start() -> (RunningEmulator, Api) {
    let emu = Emulator::builder()
        .speed(2000.0)
        .max_batch_file_bytes(4096)
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    (emu, api)
}

fn assert_envelope(v: &Value) {
    let err = v.get("error").unwrap_or_else(|| panic!("no envelope: {v}"));
    assert!(err["message"].is_string(), "{v}");
    assert!(err["type"].is_string(), "{v}");
    assert!(
        err.get("param").is_some() && err.get("code").is_some(),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_and_checked() {
    let emu = Emulator::builder()
        .api_key(KEY)
        .start()
        .await
        .expect("start");
    let api = Api::new(&emu.base_url());
    let resp = api
        .http
        .get(api.url("/batches"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_envelope(&body);
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let resp = api
        .http
        .get(api.url("/batches"))
        .bearer_auth("sk-wrong-key-1234")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("wrong-key")
    );

    let resp = api
        .http
        .get(api.url("/files"))
        .header(header::AUTHORIZATION, "Basic abc")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);

    let (status, list) = api.get("/batches").await;
    assert_eq!(status, 200, "{list}");
    assert!(resp_has_no_side_effects(&emu));
    emu.shutdown().await.expect("shutdown");
}

fn resp_has_no_side_effects(emu: &RunningEmulator) -> bool {
    let c = emu.counters();
    c.files_uploaded == 0 && c.batches_created == 0 && c.responses.get("401") == Some(&3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ids_and_routes_are_404_envelopes() {
    let (emu, api) = start().await;
    let (status, body) = api.get("/batches/batch_nope").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {"message": "No batch found with id 'batch_nope'.", "type": "invalid_request_error", "param": null, "code": null}})
    );
    let (status, body) = api.post("/batches/batch_nope/cancel", &json!(null)).await;
    assert_eq!(status, 404);
    assert_envelope(&body);
    for path in ["/files/file-nope", "/files/file-nope/content"] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["message"], "No such File object: file-nope");
    }
    let (status, body) = api.send(api.http.delete(api.url("/files/file-nope"))).await;
    assert_eq!(status, 404);
    assert_envelope(&body);
    let (status, body) = api.get("/nothing/here").await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["message"],
        "Invalid URL (GET /v1/nothing/here)"
    );
    let (status, body) = api.send(api.http.put(api.url("/batches"))).await;
    assert_eq!(status, 404, "{body}");
    assert_envelope(&body);
    let resp = api
        .http
        .get(format!("{}/elsewhere", api.root()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 404);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_validated() {
    let (emu, api) = start().await;
    let line = chat_line("a", "x");

    let (status, file) = api
        .upload_with(
            "in.jsonl",
            common::jsonl(std::slice::from_ref(&line)),
            "batch",
        )
        .await;
    assert_eq!(status, 200, "{file}");
    for key in [
        "id",
        "object",
        "bytes",
        "created_at",
        "expires_at",
        "filename",
        "purpose",
        "status",
        "status_details",
    ] {
        assert!(file.get(key).is_some(), "missing {key}: {file}");
    }
    assert_eq!(file["object"], "file");
    assert_eq!(file["filename"], "in.jsonl");
    assert_eq!(file["purpose"], "batch");
    assert_eq!(file["status"], "processed");
    assert_eq!(file["status_details"], Value::Null);
    assert_eq!(file["bytes"], line.len() + 1);
    assert_eq!(
        file["expires_at"].as_i64().expect("expires")
            - file["created_at"].as_i64().expect("created"),
        30 * 24 * 3600
    );

    let (status, other) = api
        .upload_with("notes.txt", b"hello".to_vec(), "user_data")
        .await;
    assert_eq!(status, 200, "{other}");
    assert_eq!(other["expires_at"], Value::Null);

    let (status, body) = api.upload_with("in.jsonl", b"x".to_vec(), "nonsense").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["param"], "purpose");

    let (status, body) = api
        .upload_with(
            "in.csv",
            common::jsonl(std::slice::from_ref(&line)),
            "batch",
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Invalid file format for Batch API. Must be .jsonl"
    );

    let big = vec![b'{'; 5000];
    let (status, body) = api.upload_with("big.jsonl", big.clone(), "batch").await;
    // A 400 in the envelope, as the live API refuses it (not 413).
    assert_eq!(status, 400, "{body}");
    assert_envelope(&body);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("File is too large.") && m.contains("4096 bytes")),
        "{body}"
    );
    // The limit is for batch files only, and uploads are not capped at a
    // framework default.
    let (status, _) = api.upload_with("big.bin", big, "user_data").await;
    assert_eq!(status, 200);
    let (status, large) = api
        .upload_with("large.bin", vec![b'z'; 3 * 1024 * 1024], "user_data")
        .await;
    assert_eq!(status, 200, "{large}");
    assert_eq!(large["bytes"], 3 * 1024 * 1024);

    let form = reqwest::multipart::Form::new().text("purpose", "batch");
    let (status, body) = api
        .send(api.http.post(api.url("/files")).multipart(form))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "missing_required_parameter");
    let (status, body) = api
        .send(
            api.http
                .post(api.url("/files"))
                .json(&json!({"purpose": "batch"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_envelope(&body);

    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .text("expires_after[anchor]", "created_at")
        .text("expires_after[seconds]", "7200")
        .part(
            "file",
            reqwest::multipart::Part::bytes(common::jsonl(std::slice::from_ref(&line)))
                .file_name("e.jsonl"),
        );
    let (status, file) = api
        .send(api.http.post(api.url("/files")).multipart(form))
        .await;
    assert_eq!(status, 200, "{file}");
    assert_eq!(
        file["expires_at"].as_i64().expect("expires")
            - file["created_at"].as_i64().expect("created"),
        7200
    );
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .text("expires_after[anchor]", "created_at")
        .text("expires_after[seconds]", "60")
        .part(
            "file",
            reqwest::multipart::Part::bytes(common::jsonl(&[line])).file_name("e.jsonl"),
        );
    let (status, body) = api
        .send(api.http.post(api.url("/files")).multipart(form))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "integer_below_min_value");

    assert_eq!(emu.counters().files_uploaded, 5);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_creation_is_validated() {
    let (emu, api) = start().await;
    let file_id = api.upload(&[chat_line("a", "x")]).await;
    let (status, notes) = api
        .upload_with("notes.txt", b"hi".to_vec(), "user_data")
        .await;
    assert_eq!(status, 200);
    let good = json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let with = |key: &str, value: Value| {
        let mut b = good.clone();
        b[key] = value;
        b
    };
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases: Vec<(Value, &str)> = vec![
        (with("endpoint", json!("/v1/audio/speech")), "endpoint"),
        (with("endpoint", json!("/chat/completions")), "endpoint"),
        (with("completion_window", json!("48h")), "completion_window"),
        (
            with("input_file_id", json!("file-missing")),
            "input_file_id",
        ),
        (with("input_file_id", notes["id"].clone()), "input_file_id"),
        (with("input_file_id", json!(5)), "input_file_id"),
        (with("metadata", Value::Object(many)), "metadata"),
        (with("metadata", json!({"k".repeat(65): "v"})), "metadata"),
        (
            with("metadata", json!({"k": "v".repeat(513)})),
            "metadata.k",
        ),
        (with("metadata", json!({"k": 1})), "metadata.k"),
        (
            with(
                "output_expires_after",
                json!({"anchor": "created_at", "seconds": 10}),
            ),
            "output_expires_after.seconds",
        ),
        (
            with(
                "output_expires_after",
                json!({"anchor": "created_at", "seconds": 2_592_001}),
            ),
            "output_expires_after.seconds",
        ),
        (
            with(
                "output_expires_after",
                json!({"anchor": "now", "seconds": 3600}),
            ),
            "output_expires_after.anchor",
        ),
    ];
    for (body, param) in cases {
        let (status, err) = api.post("/batches", &body).await;
        assert_eq!(status, 400, "{body} -> {err}");
        assert_envelope(&err);
        assert_eq!(err["error"]["param"], param, "{body} -> {err}");
    }
    let mut missing = good.clone();
    missing.as_object_mut().expect("object").remove("endpoint");
    let (status, err) = api.post("/batches", &missing).await;
    assert_eq!(
        (status, &err["error"]["code"]),
        (400, &json!("missing_required_parameter"))
    );
    let (status, err) = api
        .send(
            api.http
                .post(api.url("/batches"))
                .header(header::CONTENT_TYPE, "application/json")
                .body("{oops"),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("We could not parse the JSON body")
    );
    assert_eq!(emu.counters().batches_created, 0);

    // Limits at their edges are accepted.
    let edge: serde_json::Map<String, Value> = (0..16)
        .map(|i| (format!("{i}{}", "k".repeat(60)), json!("v".repeat(512))))
        .collect();
    let mut ok = with("metadata", Value::Object(edge));
    ok["output_expires_after"] = json!({"anchor": "created_at", "seconds": 3600});
    let (status, batch) = api.post("/batches", &ok).await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(
        batch["metadata"].as_object().map(serde_json::Map::len),
        Some(16)
    );
    let (status, batch) = api.post("/batches", &with("metadata", Value::Null)).await;
    assert_eq!(status, 200);
    assert_eq!(batch["metadata"], Value::Null);
    assert_eq!(emu.counters().batches_created, 2);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_lists_paginate_newest_first() {
    let emu = Emulator::builder().start().await.expect("start");
    let api = Api::new(&emu.base_url());
    let file_id = api.upload(&[chat_line("a", "x")]).await;
    let mut created = Vec::new();
    for _ in 0..25 {
        let b = api.create_batch(&file_id, "/v1/chat/completions").await;
        created.push(b["id"].as_str().expect("id").to_owned());
    }
    created.reverse(); // newest first

    let (status, page) = api.get("/batches").await;
    assert_eq!(status, 200);
    assert_eq!(page["object"], "list");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(20));
    assert_eq!(page["has_more"], true);
    assert_eq!(page["first_id"], created[0].as_str());
    assert_eq!(page["last_id"], created[19].as_str());

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..20 {
        let path = match &after {
            Some(a) => format!("/batches?limit=7&after={a}"),
            None => "/batches?limit=7".to_owned(),
        };
        let (status, page) = api.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for b in page["data"].as_array().expect("data") {
            seen.push(b["id"].as_str().expect("id").to_owned());
        }
        if page["has_more"] == false {
            break;
        }
        after = page["last_id"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, created);

    for bad in ["0", "101", "abc", "-1"] {
        let (status, err) = api.get(&format!("/batches?limit={bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(err["error"]["param"], "limit");
    }
    let (_, last) = api.get(&format!("/batches?after={}", created[24])).await;
    assert_eq!(
        last,
        json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false})
    );
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_lists_filter_order_and_paginate_and_delete_works() {
    let (emu, api) = start().await;
    let mut batch_files = Vec::new();
    for i in 0..3 {
        batch_files.push(api.upload(&[chat_line(&format!("f{i}"), "x")]).await);
    }
    let (_, other) = api.upload_with("n.txt", b"n".to_vec(), "user_data").await;

    let (_, all) = api.get("/files").await;
    let ids: Vec<&str> = all["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [
            other["id"].as_str().expect("id"),
            &batch_files[2],
            &batch_files[1],
            &batch_files[0]
        ]
    );
    assert_eq!(all["has_more"], false);

    let (_, asc) = api.get("/files?purpose=batch&order=asc&limit=2").await;
    let ids: Vec<&str> = asc["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert_eq!(ids, [&batch_files[0], &batch_files[1]]);
    assert_eq!(asc["has_more"], true);
    let (_, rest) = api
        .get(&format!(
            "/files?purpose=batch&order=asc&limit=2&after={}",
            batch_files[1]
        ))
        .await;
    assert_eq!(rest["data"][0]["id"], batch_files[2].as_str());
    assert_eq!(rest["has_more"], false);
    let (status, _) = api.get("/files?order=sideways").await;
    assert_eq!(status, 400);

    let (status, deleted) = api
        .send(
            api.http
                .delete(api.url(&format!("/files/{}", batch_files[0]))),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        deleted,
        json!({"id": batch_files[0], "object": "file", "deleted": true})
    );
    let (status, _) = api.get(&format!("/files/{}", batch_files[0])).await;
    assert_eq!(status, 404);
    assert_eq!(emu.counters().files_deleted, 1);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_input_does_not_break_a_running_batch() {
    let (emu, api) = start().await;
    let file_id = api
        .upload(&[chat_line("a", "x"), chat_line("b", "y")])
        .await;
    let b = api.create_batch(&file_id, "/v1/chat/completions").await;
    let (status, _) = api
        .send(api.http.delete(api.url(&format!("/files/{file_id}"))))
        .await;
    assert_eq!(status, 200);
    let done = api
        .wait_terminal(
            b["id"].as_str().expect("id"),
            std::time::Duration::from_secs(15),
        )
        .await;
    assert_eq!(done["status"], "completed");
    assert_eq!(api.result_lines(&done["output_file_id"]).await.len(), 2);
    emu.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_supports_ranges() {
    let (emu, api) = start().await;
    let (status, file) = api
        .upload_with("r.txt", b"0123456789abcdefghij".to_vec(), "user_data")
        .await;
    assert_eq!(status, 200);
    let url = api.url(&format!(
        "/files/{}/content",
        file["id"].as_str().expect("id")
    ));
    let get = |range: Option<&str>, if_range: Option<&str>| {
        let mut req = api.http.get(&url).bearer_auth(KEY);
        if let Some(r) = range {
            req = req.header(header::RANGE, r);
        }
        if let Some(i) = if_range {
            req = req.header(header::IF_RANGE, i);
        }
        req.send()
    };
    let head = |r: &reqwest::Response, name: header::HeaderName| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };

    let full = get(None, None).await.expect("send");
    assert_eq!(full.status().as_u16(), 200);
    assert_eq!(head(&full, header::CONTENT_LENGTH).as_deref(), Some("20"));
    assert_eq!(head(&full, header::ACCEPT_RANGES).as_deref(), Some("bytes"));
    assert_eq!(
        head(&full, header::CONTENT_TYPE).as_deref(),
        Some("application/octet-stream")
    );
    let etag = head(&full, header::ETAG).expect("etag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong etag: {etag}"
    );
    let last_modified = head(&full, header::LAST_MODIFIED).expect("last-modified");
    assert_eq!(
        full.bytes().await.expect("body").as_ref(),
        b"0123456789abcdefghij"
    );

    let part = get(Some("bytes=5-9"), None).await.expect("send");
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        head(&part, header::CONTENT_RANGE).as_deref(),
        Some("bytes 5-9/20")
    );
    assert_eq!(head(&part, header::CONTENT_LENGTH).as_deref(), Some("5"));
    assert_eq!(part.bytes().await.expect("body").as_ref(), b"56789");

    let tail = get(Some("bytes=15-"), Some(&etag)).await.expect("send");
    assert_eq!(tail.status().as_u16(), 206);
    assert_eq!(tail.bytes().await.expect("body").as_ref(), b"fghij");

    let suffix = get(Some("bytes=-3"), Some(&last_modified))
        .await
        .expect("send");
    assert_eq!(suffix.status().as_u16(), 206);
    assert_eq!(
        head(&suffix, header::CONTENT_RANGE).as_deref(),
        Some("bytes 17-19/20")
    );
    assert_eq!(suffix.bytes().await.expect("body").as_ref(), b"hij");

    let stale = get(Some("bytes=15-"), Some("\"not-the-tag\""))
        .await
        .expect("send");
    assert_eq!(stale.status().as_u16(), 200);
    assert_eq!(stale.bytes().await.expect("body").len(), 20);

    let weak = get(Some("bytes=15-"), Some(&format!("W/{etag}")))
        .await
        .expect("send");
    assert_eq!(weak.status().as_u16(), 200);

    let beyond = get(Some("bytes=20-"), None).await.expect("send");
    assert_eq!(beyond.status().as_u16(), 416);
    assert_eq!(
        head(&beyond, header::CONTENT_RANGE).as_deref(),
        Some("bytes */20")
    );

    let multi = get(Some("bytes=0-1,4-5"), None).await.expect("send");
    assert_eq!(multi.status().as_u16(), 200);
    assert_eq!(multi.bytes().await.expect("body").len(), 20);

    let c = emu.counters();
    assert_eq!(c.bytes_served, 20 + 5 + 5 + 3 + 20 + 20 + 20);
    emu.shutdown().await.expect("shutdown");
}
