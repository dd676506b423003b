//! Fault injection: the spec string, its parsed form, and the seeded state
//! that decides, request by request, whether a fault fires.
//!
//! Spec syntax: comma-separated items, each `name`, `name=value`, optionally
//! followed by `@route` to restrict it to one route (see [`Route`]).
//!
//! | item | effect |
//! | --- | --- |
//! | `429-every=N` | every Nth API request answers 429 `rate_limit_exceeded` with `Retry-After` |
//! | `500-every=N` (any 500..=599) | every Nth API request answers that 5xx with a `server_error` envelope |
//! | `429-prob=P`, `503-prob=P` | the same, with seeded probability `P` (0..=1) per request |
//! | `retry-after=S` | the `Retry-After` seconds sent with 429 (default 1) |
//! | `commit-then-500-every=N` | every Nth successful create (file upload, batch create, cancel) is committed, then answered with 500 |
//! | `commit-then-cut-every=N` | the same, but the 200 answer is cut off half way and the connection aborted |
//! | `cut-content-every=N` | every Nth content download (Anthropic: results download) sends the full `Content-Length`, half the body, then aborts |
//! | `slow-body-ms=M` | content downloads pause M ms before each 8 KiB chunk |
//! | `garbage-line` / `garbage-line-every=N` | output files (all / every Nth) get one line that is not JSON |
//! | `stall-validating-ms=M` | new batches stay in `validating` M real milliseconds longer |
//! | `expire` / `expire-every=N` | new batches (all / every Nth) expire half way through processing |
//! | `token-limit` / `token-limit-every=N` | new batches (all / every Nth) fail validation with `token_limit_exceeded` |
//! | `seed=S` | the seed for `-prob` draws |

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::util::Rng;

/// A route of the emulated API, used to scope faults and to key counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Route {
    /// `POST /v1/files`
    FilesCreate,
    /// `GET /v1/files`
    FilesList,
    /// `GET /v1/files/{id}`
    FilesGet,
    /// `GET /v1/files/{id}/content`
    FilesContent,
    /// `DELETE /v1/files/{id}`
    FilesDelete,
    /// `POST /v1/batches`
    BatchesCreate,
    /// `GET /v1/batches`
    BatchesList,
    /// `GET /v1/batches/{id}`
    BatchesGet,
    /// `POST /v1/batches/{id}/cancel`
    BatchesCancel,
    /// `GET /v1/messages/batches/{id}/results` (Anthropic mode)
    BatchesResults,
    /// `DELETE /v1/messages/batches/{id}` (Anthropic mode)
    BatchesDelete,
}

impl Route {
    /// Every route. The Anthropic mode's routes share these names:
    /// `POST /v1/messages/batches` is `batches.create`, and so on.
    pub const ALL: [Route; 11] = [
        Route::FilesCreate,
        Route::FilesList,
        Route::FilesGet,
        Route::FilesContent,
        Route::FilesDelete,
        Route::BatchesCreate,
        Route::BatchesList,
        Route::BatchesGet,
        Route::BatchesCancel,
        Route::BatchesResults,
        Route::BatchesDelete,
    ];

    /// The short name used in fault specs and counters, e.g. `batches.create`.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::FilesCreate => "files.create",
            Route::FilesList => "files.list",
            Route::FilesGet => "files.get",
            Route::FilesContent => "files.content",
            Route::FilesDelete => "files.delete",
            Route::BatchesCreate => "batches.create",
            Route::BatchesList => "batches.list",
            Route::BatchesGet => "batches.get",
            Route::BatchesCancel => "batches.cancel",
            Route::BatchesResults => "batches.results",
            Route::BatchesDelete => "batches.delete",
        }
    }

    /// Parses a short name.
    pub fn parse(s: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a successful call creates or changes an object.
    pub fn commits(self) -> bool {
        matches!(
            self,
            Route::FilesCreate
                | Route::BatchesCreate
                | Route::BatchesCancel
                | Route::FilesDelete
                | Route::BatchesDelete
        )
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a counted fault fires.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Trigger {
    /// On the Nth, 2Nth, … matching event (N ≥ 1).
    Every(u64),
    /// On each matching event with this probability, drawn from the seeded PRNG.
    Probability(f64),
}

/// One fault of a [`FaultConfig`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer API requests with `status` (429 or 5xx) before the handler runs.
    Status {
        /// 429 or 500..=599.
        status: u16,
        /// When it fires.
        trigger: Trigger,
        /// Only this route, if set.
        route: Option<Route>,
    },
    /// `Retry-After` seconds for 429 answers.
    RetryAfter(u64),
    /// Commit a create, then answer 500.
    CommitThen500 {
        /// Every Nth successful commit.
        every: u64,
        /// Only this route, if set.
        route: Option<Route>,
    },
    /// Commit a create, then cut the 200 answer half way.
    CommitThenCut {
        /// Every Nth successful commit.
        every: u64,
        /// Only this route, if set.
        route: Option<Route>,
    },
    /// Cut every Nth content download half way.
    CutContent {
        /// N.
        every: u64,
    },
    /// Pause before each chunk of a content download.
    SlowBody {
        /// Milliseconds per chunk.
        ms: u64,
    },
    /// Put one garbage line into every Nth output file.
    GarbageLine {
        /// N (1 = every file).
        every: u64,
    },
    /// Keep new batches in `validating` longer, in real milliseconds.
    StallValidating {
        /// Real milliseconds.
        ms: u64,
    },
    /// Make every Nth new batch expire half way through processing.
    Expire {
        /// N (1 = every batch).
        every: u64,
    },
    /// Make every Nth new batch fail validation with `token_limit_exceeded`.
    TokenLimit {
        /// N (1 = every batch).
        every: u64,
    },
}

/// A parsed fault spec. `FaultConfig::default()` injects nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// The faults, in spec order.
    pub faults: Vec<Fault>,
    /// Seed for probability triggers; `None` uses the emulator's seed.
    pub seed: Option<u64>,
}

/// A fault spec that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad fault spec item `{item}`: {problem}")]
pub struct FaultSpecError {
    /// The offending item.
    pub item: String,
    /// What is wrong with it.
    pub problem: String,
}

impl FaultConfig {
    /// No faults.
    pub fn none() -> FaultConfig {
        FaultConfig::default()
    }

    /// Parses a spec string such as `429-every=7,cut-content-every=3`.
    ///
    /// # Errors
    /// Fails on an unknown item, a missing or malformed value, or an unknown route.
    pub fn parse(spec: &str) -> Result<FaultConfig, FaultSpecError> {
        let mut cfg = FaultConfig::default();
        for raw in spec.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                continue;
            }
            let err = |problem: &str| FaultSpecError {
                item: item.to_owned(),
                problem: problem.to_owned(),
            };
            let (body, route) = match item.split_once('@') {
                Some((b, r)) => (
                    b.trim(),
                    Some(Route::parse(r.trim()).ok_or_else(|| err("unknown route"))?),
                ),
                None => (item, None),
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (body, None),
            };
            let int = |v: Option<&str>| -> Result<u64, FaultSpecError> {
                v.ok_or_else(|| err("needs a value"))?
                    .parse::<u64>()
                    .map_err(|_| err("value must be a non-negative integer"))
            };
            let every = |v: Option<&str>| -> Result<u64, FaultSpecError> {
                let n = int(v)?;
                if n == 0 {
                    Err(err("N must be at least 1"))
                } else {
                    Ok(n)
                }
            };
            let no_route = |f: Fault| -> Result<Fault, FaultSpecError> {
                if route.is_some() {
                    Err(err("this fault takes no @route"))
                } else {
                    Ok(f)
                }
            };
            let fault = match name {
                "retry-after" => no_route(Fault::RetryAfter(int(value)?))?,
                "commit-then-500-every" => Fault::CommitThen500 {
                    every: every(value)?,
                    route,
                },
                "commit-then-cut-every" => Fault::CommitThenCut {
                    every: every(value)?,
                    route,
                },
                "cut-content-every" => no_route(Fault::CutContent {
                    every: every(value)?,
                })?,
                "slow-body-ms" => no_route(Fault::SlowBody { ms: int(value)? })?,
                "garbage-line" if value.is_none() => no_route(Fault::GarbageLine { every: 1 })?,
                "garbage-line-every" => no_route(Fault::GarbageLine {
                    every: every(value)?,
                })?,
                "stall-validating-ms" => no_route(Fault::StallValidating { ms: int(value)? })?,
                "expire" if value.is_none() => no_route(Fault::Expire { every: 1 })?,
                "expire-every" => no_route(Fault::Expire {
                    every: every(value)?,
                })?,
                "token-limit" if value.is_none() => no_route(Fault::TokenLimit { every: 1 })?,
                "token-limit-every" => no_route(Fault::TokenLimit {
                    every: every(value)?,
                })?,
                "seed" => {
                    cfg.seed = Some(int(value)?);
                    continue;
                }
                other => {
                    let (status, kind) =
                        other.split_once('-').ok_or_else(|| err("unknown fault"))?;
                    let status: u16 = status.parse().map_err(|_| err("unknown fault"))?;
                    if status != 429 && !(500..=599).contains(&status) {
                        return Err(err("status must be 429 or 500..=599"));
                    }
                    let trigger = match kind {
                        "every" => Trigger::Every(every(value)?),
                        "prob" => {
                            let p: f64 = value
                                .ok_or_else(|| err("needs a value"))?
                                .parse()
                                .map_err(|_| err("probability must be a number"))?;
                            if !(0.0..=1.0).contains(&p) {
                                return Err(err("probability must be within 0..=1"));
                            }
                            Trigger::Probability(p)
                        }
                        _ => return Err(err("unknown fault")),
                    };
                    Fault::Status {
                        status,
                        trigger,
                        route,
                    }
                }
            };
            cfg.faults.push(fault);
        }
        Ok(cfg)
    }

    /// Whether no fault is configured.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }
}

impl FromStr for FaultConfig {
    type Err = FaultSpecError;
    fn from_str(s: &str) -> Result<FaultConfig, FaultSpecError> {
        FaultConfig::parse(s)
    }
}

impl fmt::Display for FaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = Vec::new();
        let at = |r: &Option<Route>| r.map(|r| format!("@{r}")).unwrap_or_default();
        for fault in &self.faults {
            items.push(match fault {
                Fault::Status {
                    status,
                    trigger: Trigger::Every(n),
                    route,
                } => format!("{status}-every={n}{}", at(route)),
                Fault::Status {
                    status,
                    trigger: Trigger::Probability(p),
                    route,
                } => format!("{status}-prob={p}{}", at(route)),
                Fault::RetryAfter(s) => format!("retry-after={s}"),
                Fault::CommitThen500 { every, route } => {
                    format!("commit-then-500-every={every}{}", at(route))
                }
                Fault::CommitThenCut { every, route } => {
                    format!("commit-then-cut-every={every}{}", at(route))
                }
                Fault::CutContent { every } => format!("cut-content-every={every}"),
                Fault::SlowBody { ms } => format!("slow-body-ms={ms}"),
                Fault::GarbageLine { every: 1 } => "garbage-line".to_owned(),
                Fault::GarbageLine { every } => format!("garbage-line-every={every}"),
                Fault::StallValidating { ms } => format!("stall-validating-ms={ms}"),
                Fault::Expire { every: 1 } => "expire".to_owned(),
                Fault::Expire { every } => format!("expire-every={every}"),
                Fault::TokenLimit { every: 1 } => "token-limit".to_owned(),
                Fault::TokenLimit { every } => format!("token-limit-every={every}"),
            });
        }
        if let Some(seed) = self.seed {
            items.push(format!("seed={seed}"));
        }
        f.write_str(&items.join(","))
    }
}

/// What the fault layer decided for one API request, before the handler.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StatusFault {
    pub(crate) status: u16,
    pub(crate) retry_after: u64,
    pub(crate) name: String,
}

/// What to do with a successful commit's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CommitFault {
    Answer500,
    Cut,
}

/// Per-batch decisions, taken when the batch is created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchFaults {
    #[serde(default)]
    pub(crate) expire: bool,
    #[serde(default)]
    pub(crate) token_limit: bool,
    #[serde(default)]
    pub(crate) stall_real_ms: u64,
}

/// Faults applying to one content download.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ContentFaults {
    pub(crate) cut: bool,
    pub(crate) slow_ms: u64,
}

/// The live fault state: the config plus one event counter per fault.
#[derive(Debug)]
pub(crate) struct FaultState {
    config: FaultConfig,
    seen: Vec<u64>,
    rng: Rng,
}

impl FaultState {
    pub(crate) fn new(config: FaultConfig, default_seed: u64) -> FaultState {
        let seed = config.seed.unwrap_or(default_seed);
        FaultState {
            seen: vec![0; config.faults.len()],
            config,
            rng: Rng::new(seed ^ 0x5eed_fa17),
        }
    }

    pub(crate) fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Counts one event for fault `i` and says whether an `every` trigger fires.
    fn tick(&mut self, i: usize, every: u64) -> bool {
        self.seen[i] += 1;
        self.seen[i] % every == 0
    }

    fn retry_after(&self) -> u64 {
        self.config
            .faults
            .iter()
            .rev()
            .find_map(|f| match f {
                Fault::RetryAfter(s) => Some(*s),
                _ => None,
            })
            .unwrap_or(1)
    }

    /// Called once per authenticated API request before its handler.
    pub(crate) fn on_request(&mut self, route: Route) -> Option<StatusFault> {
        let mut fired = None;
        for i in 0..self.config.faults.len() {
            if let Fault::Status {
                status,
                trigger,
                route: scope,
            } = self.config.faults[i].clone()
            {
                if scope.is_some_and(|s| s != route) {
                    continue;
                }
                // Every matching counter advances, even when an earlier fault fired.
                let hit = match trigger {
                    Trigger::Every(n) => self.tick(i, n),
                    Trigger::Probability(p) => {
                        self.seen[i] += 1;
                        self.rng.unit() < p
                    }
                };
                if hit && fired.is_none() {
                    let name = match trigger {
                        Trigger::Every(_) => format!("{status}-every"),
                        Trigger::Probability(_) => format!("{status}-prob"),
                    };
                    fired = Some(StatusFault {
                        status,
                        retry_after: self.retry_after(),
                        name,
                    });
                }
            }
        }
        fired
    }

    /// Called after a successful commit on a committing route.
    pub(crate) fn on_commit(&mut self, route: Route) -> Option<CommitFault> {
        let mut fired = None;
        for i in 0..self.config.faults.len() {
            let (every, scope, kind) = match &self.config.faults[i] {
                Fault::CommitThen500 { every, route } => (*every, *route, CommitFault::Answer500),
                Fault::CommitThenCut { every, route } => (*every, *route, CommitFault::Cut),
                _ => continue,
            };
            if scope.is_some_and(|s| s != route) {
                continue;
            }
            if self.tick(i, every) && fired.is_none() {
                fired = Some(kind);
            }
        }
        fired
    }

    /// Called once per content download.
    pub(crate) fn on_content(&mut self) -> ContentFaults {
        let mut out = ContentFaults::default();
        for i in 0..self.config.faults.len() {
            match self.config.faults[i] {
                Fault::CutContent { every } => out.cut |= self.tick(i, every),
                Fault::SlowBody { ms } => out.slow_ms = out.slow_ms.max(ms),
                _ => {}
            }
        }
        out
    }

    /// Called once per batch create.
    pub(crate) fn on_batch_created(&mut self) -> BatchFaults {
        let mut out = BatchFaults::default();
        for i in 0..self.config.faults.len() {
            match self.config.faults[i] {
                Fault::Expire { every } => out.expire |= self.tick(i, every),
                Fault::TokenLimit { every } => out.token_limit |= self.tick(i, every),
                Fault::StallValidating { ms } => out.stall_real_ms = out.stall_real_ms.max(ms),
                _ => {}
            }
        }
        out
    }

    /// Called once per output file written.
    pub(crate) fn on_output_file(&mut self) -> bool {
        let mut hit = false;
        for i in 0..self.config.faults.len() {
            if let Fault::GarbageLine { every } = self.config.faults[i] {
                hit |= self.tick(i, every);
            }
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let spec = "429-every=7,500-every=11@batches.create,cut-content-every=3,slow-body-ms=5,\
                    garbage-line,stall-validating-ms=40,expire,token-limit-every=2,retry-after=3,\
                    503-prob=0.25,commit-then-500-every=1@files.create,commit-then-cut-every=2,seed=9";
        let cfg = FaultConfig::parse(spec).expect("parses");
        assert_eq!(cfg.faults.len(), 12);
        assert_eq!(cfg.seed, Some(9));
        let again = FaultConfig::parse(&cfg.to_string()).expect("reparses");
        assert_eq!(again, cfg);
    }

    #[test]
    fn rejects_bad_items() {
        for bad in [
            "nope",
            "429-every",
            "429-every=0",
            "404-every=2",
            "429-every=2@nowhere",
            "slow-body-ms=5@files.get",
            "503-prob=2",
            "expire=3",
        ] {
            assert!(FaultConfig::parse(bad).is_err(), "{bad} should not parse");
        }
        assert_eq!(
            FaultConfig::parse(" , ").expect("empty"),
            FaultConfig::none()
        );
    }

    #[test]
    fn every_n_fires_on_multiples_and_scopes() {
        let cfg = FaultConfig::parse("429-every=3@batches.get").expect("parses");
        let mut st = FaultState::new(cfg, 1);
        let fired: Vec<bool> = (0..6)
            .map(|_| st.on_request(Route::BatchesGet).is_some())
            .collect();
        assert_eq!(fired, [false, false, true, false, false, true]);
        assert!(st.on_request(Route::FilesGet).is_none());
    }

    #[test]
    fn batch_faults_every_n() {
        let cfg = FaultConfig::parse("token-limit-every=2,expire").expect("parses");
        let mut st = FaultState::new(cfg, 1);
        let a = st.on_batch_created();
        let b = st.on_batch_created();
        assert!(!a.token_limit && a.expire);
        assert!(b.token_limit && b.expire);
    }
}
