#!/usr/bin/env python3
"""A lean Python batch script, standard library only, for CPU comparisons.

It does what a typical script built on the official SDK does, minus the
SDK's own layers (httpx, pydantic): upload the input file, create a batch,
poll until it ends, download the output file whole, parse every line with
`json.loads`, and write one result per input line, in input order. The
official SDK cannot be installed everywhere; this script gives a Python
figure from the same machine, and a lower bound for the SDK script's (the
SDK only adds work).

    OPENAI_API_KEY=sk-dummy /usr/bin/time -v python3 docs/bench/python_baseline.py \\
        INPUT.jsonl OUT.jsonl http://127.0.0.1:18741/v1
"""

import http.client
import json
import os
import sys
import time
import urllib.parse
import uuid


def main():
    input_path, output_path, base_url = sys.argv[1], sys.argv[2], sys.argv[3]
    url = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=600)
    prefix = url.path.rstrip("/")
    auth = {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}

    def call(method, path, body=None, headers=None):
        conn.request(method, prefix + path, body=body, headers={**auth, **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {data[:200]!r}")
        return data

    with open(input_path, "rb") as f:
        content = f.read()
    boundary = uuid.uuid4().hex
    body = b"".join([
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n".encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"input.jsonl\"\r\n"
        "Content-Type: application/jsonl\r\n\r\n".encode(),
        content,
        f"\r\n--{boundary}--\r\n".encode(),
    ])
    upload = json.loads(call("POST", "/files", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}))
    endpoint = json.loads(content.split(b"\n", 1)[0])["url"]
    create = json.dumps({"input_file_id": upload["id"], "endpoint": endpoint, "completion_window": "24h"})
    batch = json.loads(call("POST", "/batches", create.encode(), {"Content-Type": "application/json"}))
    while batch["status"] not in ("completed", "failed", "expired", "cancelled"):
        time.sleep(0.2)
        batch = json.loads(call("GET", "/batches/" + batch["id"]))
    if batch["status"] != "completed" or not batch.get("output_file_id"):
        raise SystemExit(f"batch {batch['id']} ended {batch['status']}")

    text = call("GET", f"/files/{batch['output_file_id']}/content").decode()
    results = {}
    for line in text.splitlines():
        if line.strip():
            record = json.loads(line)
            results[record["custom_id"]] = record
    with open(output_path, "w") as out:
        for line in content.decode().splitlines():
            if line.strip():
                custom_id = json.loads(line)["custom_id"]
                out.write(json.dumps(results.get(custom_id)) + "\n")


if __name__ == "__main__":
    main()
