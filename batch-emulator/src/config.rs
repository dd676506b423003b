//! Start-up configuration.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::faults::FaultConfig;
use crate::provider::ProviderMode;
use crate::webhooks::WebhookConfig;

/// Base durations of a batch's lifecycle, in virtual time (divided by the
/// speed factor to get real time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// Time spent in `validating`. Default 60 s.
    pub validating: Duration,
    /// Time to process one request while `in_progress`. Default 1 s.
    pub per_request: Duration,
    /// Time spent in `finalizing`. Default 30 s.
    pub finalizing: Duration,
    /// Time spent in `cancelling`. Default 60 s (the real API says up to 10 min).
    pub cancelling: Duration,
    /// The completion window: `expires_at = created_at + this`. Default 24 h.
    pub completion_window: Duration,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            validating: Duration::from_secs(60),
            per_request: Duration::from_secs(1),
            finalizing: Duration::from_secs(30),
            cancelling: Duration::from_secs(60),
            completion_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// Everything the emulator needs to start. Build it with
/// [`Emulator::builder`](crate::Emulator::builder) or fill it in directly.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Address to bind. Default `127.0.0.1`.
    pub host: IpAddr,
    /// Port to bind; 0 picks a free one. Default 0.
    pub port: u16,
    /// Folder for file bytes and the state file. `None` uses a fresh
    /// temporary folder that is removed on shutdown.
    pub data_dir: Option<PathBuf>,
    /// Virtual seconds per real second (`1000.0` makes a 60 s validation take
    /// 60 ms). Default 1.0.
    pub speed: f64,
    /// Seed for ids, output order and probabilistic faults. Default 0.
    pub seed: u64,
    /// Virtual time at start-up, in Unix seconds. Default: the wall clock.
    /// (A data folder whose state is later than this keeps its later time.)
    pub start_time: Option<i64>,
    /// Stepped clock: if set, virtual time does not follow real time at all
    /// (`speed` is ignored); it moves forward by this much before each `/v1`
    /// request, and by explicit advances. With a fixed `start_time` and
    /// `seed`, the same sequence of requests then gets byte-identical answers,
    /// timestamps included.
    pub step_per_request: Option<Duration>,
    /// Faults active from the start.
    pub faults: FaultConfig,
    /// If set, only `Authorization: Bearer <this>` is accepted; otherwise any
    /// non-empty bearer token is.
    pub api_key: Option<String>,
    /// Largest upload of any purpose. Default 512 MB.
    pub max_upload_bytes: u64,
    /// Largest `purpose=batch` upload. Default 209,715,200 bytes (200 MiB),
    /// the Batch API's limit; a larger upload is refused with a 400. In the
    /// Anthropic mode: the largest create body (256,000,000 bytes when set
    /// by [`EmulatorBuilder::provider`](crate::EmulatorBuilder::provider));
    /// a larger one is a 413 `request_too_large`.
    pub max_batch_file_bytes: u64,
    /// Most requests in one batch input file. Default 50,000; a batch over
    /// it fails validation with `too_many_tasks`. In the Anthropic mode: the
    /// most requests in one create body (100,000 when set by
    /// [`EmulatorBuilder::provider`](crate::EmulatorBuilder::provider)); more
    /// is a 400.
    pub max_requests_per_batch: u64,
    /// Most embedding inputs, summed over all requests of an
    /// `/v1/embeddings` batch (an `input` array counts each item). Default
    /// 50,000; a batch over it fails validation with `too_many_tasks`.
    pub max_embedding_inputs: u64,
    /// Accept any model name. By default a batch naming a model the
    /// emulator does not know fails validation with `model_not_found`, as
    /// the live API does; turn this on for tests with made-up model names.
    pub accept_any_model: bool,
    /// Lifecycle durations.
    pub timings: Timings,
    /// How often (real time) the lifecycle driver wakes up. Default 10 ms.
    pub tick: Duration,
    /// Deliver signed webhooks when batches end. Default: none.
    pub webhook: Option<WebhookConfig>,
    /// Which service to answer as (paths, auth header, windows, expiry).
    /// Default OpenAI. Setting it here does not change the limits above;
    /// [`EmulatorBuilder::provider`](crate::EmulatorBuilder::provider) sets
    /// them to the mode's own.
    pub provider: ProviderMode,
}

impl Default for EmulatorConfig {
    fn default() -> EmulatorConfig {
        EmulatorConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            data_dir: None,
            speed: 1.0,
            seed: 0,
            start_time: None,
            step_per_request: None,
            faults: FaultConfig::default(),
            api_key: None,
            max_upload_bytes: 512 * 1000 * 1000,
            max_batch_file_bytes: 200 * 1024 * 1024,
            max_requests_per_batch: 50_000,
            max_embedding_inputs: 50_000,
            accept_any_model: false,
            timings: Timings::default(),
            tick: Duration::from_millis(10),
            webhook: None,
            provider: ProviderMode::OpenAi,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_batch_api_limits() {
        let c = EmulatorConfig::default();
        // 200 MiB, 50,000 requests, 50,000 embedding inputs, known models only.
        assert_eq!(c.max_batch_file_bytes, 209_715_200);
        assert_eq!(c.max_requests_per_batch, 50_000);
        assert_eq!(c.max_embedding_inputs, 50_000);
        assert!(!c.accept_any_model);
    }
}
