//! Progress: the job's events drawn as bars on a terminal, or as plain
//! lines in a pipe (on every status change, and a heartbeat when no line
//! came for [`PLAIN_EVERY`]), or nothing with `--quiet`.
//!
//! The heartbeat comes from a thread of its own, so it keeps coming while
//! the job waits for anything: a poll interval, a backoff, or a server that
//! takes long to answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use batch_blocking::{Clock, SystemClock};
use batch_core::UnixMillis;
use batch_core::job::{JobEvent, ShardPlan};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::term;

/// The longest a pipe goes without a progress line while a job runs.
pub(crate) const PLAIN_EVERY: Duration = Duration::from_secs(10);

/// What the heartbeat thread shares with the display.
#[derive(Debug)]
struct Beat {
    /// When the command started (lines show the seconds since).
    start: Instant,
    /// When the last plain line was printed.
    last: Instant,
    /// The line to repeat, while a round runs.
    line: Option<String>,
    /// The longest gap between lines.
    every: Duration,
}

impl Beat {
    fn print(&mut self, line: &str) {
        let secs = self.start.elapsed().as_secs();
        term::err(&format!("[{secs:>5}s] {line}"));
        self.last = Instant::now();
    }

    /// Prints the heartbeat line if it is due.
    fn due(&mut self) {
        if self.last.elapsed() >= self.every
            && let Some(line) = self.line.clone()
        {
            self.print(&line);
        }
    }
}

/// Locks `beat`, even if a panicking thread held it.
fn lock(beat: &Mutex<Beat>) -> std::sync::MutexGuard<'_, Beat> {
    beat.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts the thread that prints the heartbeat line when it is due; it ends
/// when `stop` is set.
fn start_heartbeat(beat: Arc<Mutex<Beat>>, stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("progress".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let every = lock(&beat).every;
                std::thread::sleep(
                    (every / 10).clamp(Duration::from_millis(20), Duration::from_secs(1)),
                );
                lock(&beat).due();
            }
        });
    // Without the thread, waits in the clock still tick the display.
    drop(spawned);
}

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Bars,
    Plain,
    Quiet,
}

#[derive(Debug, Default)]
struct ShardState {
    requests: u64,
    status: String,
    done: u64,
    failed: u64,
    finished: bool,
}

/// The progress display of a command.
pub(crate) struct Progress {
    mode: Mode,
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    bars: BTreeMap<u32, ProgressBar>,
    shards: BTreeMap<u32, ShardState>,
    requests: u64,
    label: String,
    beat: Arc<Mutex<Beat>>,
    stop: Arc<AtomicBool>,
}

impl Progress {
    pub(crate) fn new(mode: Mode) -> Self {
        let now = Instant::now();
        let beat = Arc::new(Mutex::new(Beat {
            start: now,
            last: now,
            line: None,
            every: PLAIN_EVERY,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        if mode == Mode::Plain {
            start_heartbeat(beat.clone(), stop.clone());
        }
        Progress {
            mode,
            multi: None,
            overall: None,
            bars: BTreeMap::new(),
            shards: BTreeMap::new(),
            requests: 0,
            label: String::new(),
            beat,
            stop,
        }
    }

    /// Sets the longest gap between plain lines ([`PLAIN_EVERY`] by default).
    pub(crate) fn set_heartbeat(&mut self, every: Duration) {
        lock(&self.beat).every = every;
    }

    /// Starts showing a round of `requests` requests in `shards`.
    pub(crate) fn start_round(&mut self, label: &str, requests: u64, shards: &[ShardPlan]) {
        self.finish();
        self.label = label.to_owned();
        self.requests = requests;
        self.shards = shards
            .iter()
            .map(|s| {
                (
                    s.index,
                    ShardState {
                        requests: s.requests,
                        status: "waiting".into(),
                        ..ShardState::default()
                    },
                )
            })
            .collect();
        if self.mode == Mode::Bars {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(requests));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            overall.set_prefix(label.to_owned());
            overall.enable_steady_tick(Duration::from_millis(200));
            self.overall = Some(overall);
            self.multi = Some(multi);
        }
        self.redraw_overall();
    }

    /// Prints a line (above the bars, if any). Nothing with `--quiet`.
    pub(crate) fn note(&self, line: &str) {
        match (&self.multi, self.mode) {
            (_, Mode::Quiet) => {}
            (Some(m), _) => {
                let _ = m.println(line);
            }
            (None, _) => term::err(line),
        }
    }

    fn plain(&mut self, line: &str) {
        if self.mode == Mode::Plain {
            lock(&self.beat).print(line);
        }
    }

    fn in_secs(at: UnixMillis) -> u64 {
        SystemClock.now().until(at).as_secs()
    }

    /// Shows one event of the job.
    pub(crate) fn event(&mut self, ev: &JobEvent) {
        if self.mode == Mode::Quiet {
            return;
        }
        match ev {
            JobEvent::Uploaded { shard, file_id } => {
                self.set_status(*shard, "uploaded", None);
                self.plain(&format!("shard {shard}: uploaded as {file_id}"));
            }
            JobEvent::Submitted { shard, batch_id } => {
                self.set_status(*shard, "submitted", None);
                self.plain(&format!("shard {shard}: batch {batch_id} created"));
            }
            JobEvent::Progress {
                shard,
                batch_id,
                status,
                counts,
            } => {
                let changed = self
                    .shards
                    .get(shard)
                    .is_none_or(|s| s.status != status.as_str());
                self.set_status(
                    *shard,
                    status.as_str(),
                    Some((
                        counts.completed + counts.failed,
                        counts.failed,
                        counts.total,
                    )),
                );
                if changed {
                    self.plain(&format!(
                        "shard {shard}: batch {batch_id} {} {}/{} ({} failed)",
                        status.as_str(),
                        counts.completed + counts.failed,
                        counts.total,
                        counts.failed
                    ));
                }
            }
            JobEvent::Retrying {
                shard,
                op,
                attempt,
                at,
                reason,
            } => self.note(&format!(
                "shard {shard}: {op} failed ({reason}); attempt {attempt} in {}s",
                Self::in_secs(*at)
            )),
            JobEvent::Requeued { shard, at, reason } => {
                self.set_status(*shard, "queue full", None);
                self.note(&format!(
                    "shard {shard}: the batch queue is full ({reason}); submitting again in {}s",
                    Self::in_secs(*at)
                ));
            }
            JobEvent::DownloadResumed {
                shard,
                file_id,
                offset,
            } => self.note(&format!(
                "shard {shard}: download of {file_id} cut off; continuing from byte {offset}"
            )),
            JobEvent::Warning { shard, message } => {
                self.note(&format!("warning: shard {shard}: {message}"));
            }
            JobEvent::ShardFinished { shard, summary } => {
                if let Some(s) = self.shards.get_mut(shard) {
                    s.finished = true;
                    s.done = s.requests;
                    s.status = "finished".into();
                }
                if let Some(bar) = self.bars.remove(shard) {
                    bar.finish_and_clear();
                    if let Some(m) = &self.multi {
                        m.remove(&bar);
                    }
                }
                let mut line = format!(
                    "shard {shard} finished{}: {} succeeded, {} failed, {} not processed",
                    summary
                        .batch_id
                        .as_deref()
                        .map(|b| format!(" ({b})"))
                        .unwrap_or_default(),
                    summary.succeeded,
                    summary.failed,
                    summary.not_processed
                );
                if let Some(error) = &summary.error {
                    line.push_str(&format!("; the batch failed: {error}"));
                }
                if self.mode == Mode::Plain {
                    self.plain(&line);
                } else {
                    self.note(&line);
                }
                self.redraw_overall();
            }
            _ => {}
        }
    }

    fn set_status(&mut self, shard: u32, status: &str, counts: Option<(u64, u64, u64)>) {
        let Some(s) = self.shards.get_mut(&shard) else {
            return;
        };
        if s.finished {
            return;
        }
        s.status = status.to_owned();
        if let Some((done, failed, total)) = counts {
            s.done = done;
            s.failed = failed;
            if total > 0 {
                s.requests = total;
            }
        }
        if let Some(multi) = &self.multi {
            let bar = self.bars.entry(shard).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(s.requests));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>10} {bar:30} {pos}/{len} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(format!("shard {shard}"));
                bar
            });
            bar.set_length(s.requests);
            bar.set_position(s.done);
            bar.set_message(if s.failed > 0 {
                format!("{} ({} failed)", s.status, s.failed)
            } else {
                s.status.clone()
            });
        }
        self.redraw_overall();
    }

    fn totals(&self) -> (u64, usize, usize) {
        let done = self.shards.values().map(|s| s.done).sum::<u64>();
        let finished = self.shards.values().filter(|s| s.finished).count();
        let running = self
            .shards
            .values()
            .filter(|s| !s.finished && s.status != "waiting")
            .count();
        (done.min(self.requests), running, finished)
    }

    /// The heartbeat line of the round in progress.
    fn summary_line(&self) -> String {
        let (done, running, finished) = self.totals();
        format!(
            "{}: {done}/{} requests processed; {running} shards running, {finished}/{} done",
            self.label,
            self.requests,
            self.shards.len()
        )
    }

    fn redraw_overall(&self) {
        if self.mode == Mode::Plain && !self.shards.is_empty() {
            lock(&self.beat).line = Some(self.summary_line());
        }
        if let Some(bar) = &self.overall {
            let (done, running, finished) = self.totals();
            bar.set_position(done);
            bar.set_message(format!(
                "requests · {running} running, {finished}/{} shards done",
                self.shards.len()
            ));
        }
    }

    /// Called during waits: a heartbeat line in a pipe, if one is due (the
    /// heartbeat thread prints it otherwise).
    pub(crate) fn tick(&mut self) {
        if self.mode == Mode::Plain {
            lock(&self.beat).due();
        }
    }

    /// Removes the bars, and stops the heartbeat until the next round.
    pub(crate) fn finish(&mut self) {
        lock(&self.beat).line = None;
        for (_, bar) in std::mem::take(&mut self.bars) {
            bar.finish_and_clear();
        }
        if let Some(bar) = self.overall.take() {
            bar.finish_and_clear();
        }
        if let Some(m) = self.multi.take() {
            let _ = m.clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
        self.stop.store(true, Ordering::SeqCst);
    }
}
