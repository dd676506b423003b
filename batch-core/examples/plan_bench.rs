//! Planning memory: builds the plan of a million requests and prints the
//! process's peak memory and the bytes it took per request.
//!
//! Each request is made, encoded into the same reused line buffer (as the
//! CLI appends it to a shard file and forgets it) and placed by a
//! `PlanBuilder`, so what grows with the input is the plan's own memory.
//! The bench reads the peak resident size (`VmHWM` of `/proc/self/status`,
//! Linux) before and after; writing `5` to `/proc/self/clear_refs` resets
//! the peak between the two ways it plans. Nothing is asserted.
//!
//! ```sh
//! cargo run --release -p batch-core --example plan_bench -- [requests]
//! ```
#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::time::Instant;

use batch_core::Endpoint;
use batch_core::input::BatchRequest;
use batch_core::job::{PlanBuilder, ShardLimits};
use serde_json::json;

/// A field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak resident size to the current one (Linux 4.0 and later).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A chat request like the CLI's 1,000,000-line workload.
fn request(i: u64) -> BatchRequest {
    let body = json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": format!("Classify review {i}: the food was great.")}],
    });
    let body = body.as_object().cloned().unwrap_or_default();
    BatchRequest::new(format!("c{i}"), Endpoint::ChatCompletions, body)
}

/// Plans `n` requests; prints the time, the peak memory and its growth per
/// request.
fn plan(n: u64, keep_ids: bool) {
    let reset = reset_peak();
    let before = status_kib("VmRSS:").unwrap_or(0);
    let start = Instant::now();
    let mut builder = PlanBuilder::new(
        "bench",
        Endpoint::ChatCompletions,
        ShardLimits::default(),
        "bench.jsonl",
    );
    if !keep_ids {
        // The ids are all distinct: no line is ever read back.
        builder = builder.without_ids(|_| None);
    }
    let mut line = Vec::new();
    for i in 0..n {
        if let Err(e) = builder.push(i + 1, &request(i), &mut line) {
            eprintln!("plan_bench: {e}");
            return;
        }
    }
    let plan = match builder.finish() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("plan_bench: {e}");
            return;
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:").unwrap_or(0);
    // Look one id up, so the plan is alive until here.
    let found = plan.index_of(&format!("c{}", n / 2));
    let grew = peak.saturating_sub(before) * 1024;
    println!(
        "{:<14} {n} requests, {} shards in {secs:.2} s: peak {:.1} MB ({:.1} MB before), \
         {:.1} bytes per request{}{}",
        if keep_ids {
            "ids kept:"
        } else {
            "without ids:"
        },
        plan.shards().len(),
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
        grew as f64 / n as f64,
        if found == Some(n / 2) {
            ""
        } else {
            " (lookup failed)"
        },
        if reset {
            ""
        } else {
            " (peak not reset: bytes per request are an upper bound)"
        },
    );
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    plan(n, false);
    plan(n, true);
}
