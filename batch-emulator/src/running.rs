//! Starting and stopping the emulator, from async or sync code.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{EmulatorConfig, Timings};
use crate::counters::Counters;
use crate::faults::FaultConfig;
use crate::lifecycle::advance_all;
use crate::server::router;
use crate::state::{Shared, lock};
use crate::webhooks::{self, WebhookConfig};

/// The emulator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data folder could not be prepared or its state read.
    #[error("cannot use data folder {path}")]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The background runtime of [`EmulatorHandle`] could not start.
    #[error("cannot start the emulator's runtime")]
    Runtime(#[source] io::Error),
}

/// Entry point: `Emulator::builder().speed(1000.0).start().await`.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// A builder with default settings (loopback, free port, speed 1, no faults).
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Builds an [`EmulatorConfig`] and starts the server.
#[derive(Clone, Debug, Default)]
pub struct EmulatorBuilder {
    config: EmulatorConfig,
}

impl EmulatorBuilder {
    /// Virtual seconds per real second.
    pub fn speed(mut self, speed: f64) -> Self {
        self.config.speed = speed;
        self
    }

    /// Faults active from the start.
    pub fn faults(mut self, faults: FaultConfig) -> Self {
        self.config.faults = faults;
        self
    }

    /// Seed for ids, output order and probabilistic faults.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// Virtual time at start-up, in Unix seconds (default: the wall clock).
    pub fn start_time(mut self, unix_secs: i64) -> Self {
        self.config.start_time = Some(unix_secs);
        self
    }

    /// Use a stepped clock that moves `step` before each `/v1` request and
    /// ignores real time; see [`EmulatorConfig::step_per_request`].
    pub fn step_per_request(mut self, step: Duration) -> Self {
        self.config.step_per_request = Some(step);
        self
    }

    /// Keep files and state in this folder (kept across restarts).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = Some(dir.into());
        self
    }

    /// Address to bind (default loopback).
    pub fn host(mut self, host: std::net::IpAddr) -> Self {
        self.config.host = host;
        self
    }

    /// Port to bind (default 0: any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// Accept only this bearer token.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_key = Some(key.into());
        self
    }

    /// Largest `purpose=batch` upload in bytes.
    pub fn max_batch_file_bytes(mut self, bytes: u64) -> Self {
        self.config.max_batch_file_bytes = bytes;
        self
    }

    /// Most requests in one batch input file.
    pub fn max_requests_per_batch(mut self, n: u64) -> Self {
        self.config.max_requests_per_batch = n;
        self
    }

    /// Most embedding inputs in one `/v1/embeddings` batch, summed over its
    /// requests.
    pub fn max_embedding_inputs(mut self, n: u64) -> Self {
        self.config.max_embedding_inputs = n;
        self
    }

    /// Accept model names the emulator does not know (by default a batch
    /// naming one fails validation with `model_not_found`).
    pub fn accept_any_model(mut self, yes: bool) -> Self {
        self.config.accept_any_model = yes;
        self
    }

    /// Deliver signed webhooks when batches end (see [`WebhookConfig`]).
    pub fn webhook(mut self, webhook: WebhookConfig) -> Self {
        self.config.webhook = Some(webhook);
        self
    }

    /// Answers as `mode` (see [`ProviderMode`](crate::ProviderMode)), with
    /// its requests-per-batch and bytes-per-batch limits (call
    /// [`max_requests_per_batch`](Self::max_requests_per_batch) or
    /// [`max_batch_file_bytes`](Self::max_batch_file_bytes) after this to
    /// change them). `ProviderMode::Anthropic` serves Anthropic's Message
    /// Batches API, and sets [`Timings::per_request`] to 100 ms, so a full
    /// batch of 100,000 requests ends in under 3 virtual hours, well within
    /// the 24 h window (call [`timings`](Self::timings) after this to
    /// change it).
    pub fn provider(mut self, mode: crate::ProviderMode) -> Self {
        self.config.provider = mode;
        self.config.max_requests_per_batch = mode.max_requests_per_batch();
        self.config.max_batch_file_bytes = mode.max_batch_bytes();
        if mode == crate::ProviderMode::Anthropic {
            self.config.timings.per_request = Duration::from_millis(100);
        }
        self
    }

    /// Sets the lifecycle durations.
    pub fn timings(mut self, timings: Timings) -> Self {
        self.config.timings = timings;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &EmulatorConfig {
        &self.config
    }

    /// Binds and starts serving on the current tokio runtime.
    ///
    /// # Errors
    /// Fails if the data folder is unusable or the address cannot be bound.
    pub async fn start(self) -> Result<RunningEmulator, StartError> {
        RunningEmulator::start(self.config).await
    }

    /// Starts on a runtime of its own, for sync code.
    ///
    /// # Errors
    /// As [`EmulatorBuilder::start`], or if the runtime cannot start.
    pub fn start_blocking(self) -> Result<EmulatorHandle, StartError> {
        EmulatorHandle::start_blocking(self.config)
    }
}

fn fresh_temp_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "batch-emulator-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ))
}

/// A running emulator on the current tokio runtime.
///
/// Dropping it stops the server without waiting; prefer
/// [`RunningEmulator::shutdown`].
#[derive(Debug)]
pub struct RunningEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<io::Result<()>>>,
    ticker: JoinHandle<()>,
    /// Webhook deliveries, if configured.
    webhooks: Option<JoinHandle<()>>,
    owned_dir: Option<PathBuf>,
}

impl RunningEmulator {
    async fn start(mut config: EmulatorConfig) -> Result<RunningEmulator, StartError> {
        let (dir, owned_dir) = match config.data_dir.clone() {
            Some(d) => (d, None),
            None => {
                let d = fresh_temp_dir();
                (d.clone(), Some(d))
            }
        };
        config.data_dir = Some(dir.clone());
        let addr = SocketAddr::new(config.host, config.port);
        let tick = config.tick.max(Duration::from_millis(1));
        let open_dir = dir.clone();
        let shared = tokio::task::spawn_blocking(move || Shared::open(config, open_dir))
            .await
            .map_err(|e| StartError::DataDir {
                path: dir.clone(),
                source: io::Error::other(e),
            })?
            .map_err(|source| StartError::DataDir {
                path: dir.clone(),
                source,
            })?;
        let shared = Arc::new(shared);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let _ = shared.origin.set(format!("http://{addr}"));
        let (stop, stop_rx) = oneshot::channel::<()>();
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        let ticker_shared = shared.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                advance_all(&ticker_shared).await;
            }
        });
        let webhooks = webhooks::start(&shared, tick);
        Ok(RunningEmulator {
            shared,
            addr,
            stop: Some(stop),
            server: Some(server),
            ticker,
            webhooks,
            owned_dir,
        })
    }

    /// The API base URL, e.g. `http://127.0.0.1:41234/v1`
    /// (`.../openai/v1` for the Azure and Groq modes; the bare
    /// `http://127.0.0.1:41234` for Anthropic, like `https://api.anthropic.com`).
    pub fn base_url(&self) -> String {
        base_url(self.addr, self.shared.cfg.provider)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The data folder in use.
    pub fn data_dir(&self) -> &Path {
        &self.shared.dir
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        *lock(&self.shared.counters) = Counters::default();
    }

    /// Replaces the fault configuration (and restarts its event counts).
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.set_faults(faults);
    }

    /// The current fault configuration.
    pub fn faults(&self) -> FaultConfig {
        lock(&self.shared.faults).config().clone()
    }

    /// The virtual clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        crate::model::secs(self.shared.clock.now_ms())
    }

    /// Jumps virtual time forward by `by` and applies every transition due.
    pub async fn advance(&self, by: Duration) {
        self.shared
            .clock
            .advance_ms(u64::try_from(by.as_millis()).unwrap_or(u64::MAX));
        advance_all(&self.shared).await;
    }

    /// Stops serving, writes the state, and removes a temporary data folder.
    ///
    /// # Errors
    /// Fails if the final state cannot be written.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.ticker.abort();
        if let Some(w) = &self.webhooks {
            w.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut server) = self.server.take() {
            // Open downloads may hold graceful shutdown; do not wait forever.
            if tokio::time::timeout(Duration::from_secs(2), &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
        let _guard = self.shared.advance_lock.lock().await;
        let persisted = self.shared.persist().await;
        if let Some(dir) = self.owned_dir.take() {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
        persisted
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.ticker.abort();
        if let Some(w) = &self.webhooks {
            w.abort();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        if let Some(dir) = self.owned_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn base_url(addr: SocketAddr, mode: crate::ProviderMode) -> String {
    format!("http://{addr}{}", mode.base_path())
}

/// A running emulator on a runtime of its own, for sync code (blocking
/// clients, a CLI). Dropping it shuts the emulator down and waits for it.
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl EmulatorHandle {
    /// Starts the emulator on a new thread with its own tokio runtime and
    /// returns once it is listening.
    ///
    /// # Errors
    /// As [`EmulatorBuilder::start`], or if the runtime cannot start.
    pub fn start_blocking(config: EmulatorConfig) -> Result<EmulatorHandle, StartError> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("batch-emulator".to_owned())
            .spawn(move || -> io::Result<()> {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StartError::Runtime(e)));
                        return Ok(());
                    }
                };
                let handle = rt.handle().clone();
                rt.block_on(async move {
                    let running = match RunningEmulator::start(config).await {
                        Ok(r) => r,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let _ = ready_tx.send(Ok((running.addr, running.shared.clone(), handle)));
                    let _ = stop_rx.await;
                    running.shutdown().await
                })
            })
            .map_err(StartError::Runtime)?;
        match ready_rx.recv() {
            Ok(Ok((addr, shared, runtime))) => Ok(EmulatorHandle {
                addr,
                shared,
                runtime,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StartError::Runtime(io::Error::other(
                    "the emulator thread stopped before it was ready",
                )))
            }
        }
    }

    /// The API base URL, e.g. `http://127.0.0.1:41234/v1`
    /// (`.../openai/v1` for the Azure and Groq modes; the bare
    /// `http://127.0.0.1:41234` for Anthropic, like `https://api.anthropic.com`).
    pub fn base_url(&self) -> String {
        base_url(self.addr, self.shared.cfg.provider)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The data folder in use.
    pub fn data_dir(&self) -> &Path {
        &self.shared.dir
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        lock(&self.shared.counters).clone()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&self) {
        *lock(&self.shared.counters) = Counters::default();
    }

    /// Replaces the fault configuration.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.set_faults(faults);
    }

    /// The virtual clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        crate::model::secs(self.shared.clock.now_ms())
    }

    /// Jumps virtual time forward and waits until every transition due has
    /// been applied.
    pub fn advance(&self, by: Duration) {
        let shared = self.shared.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        self.runtime.spawn(async move {
            shared
                .clock
                .advance_ms(u64::try_from(by.as_millis()).unwrap_or(u64::MAX));
            advance_all(&shared).await;
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(Duration::from_secs(60));
    }

    /// Stops the emulator and waits for its thread.
    ///
    /// # Errors
    /// Fails if the final state cannot be written.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the emulator thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
