//! `tracing` spans and events for a drive loop, behind the `tracing`
//! feature (without it, every call here is a no-op the compiler removes).
//!
//! - a `job` span around a drive loop: `job_id`, `shards`;
//! - an `exchange` span per request the job sends, a child of the job span:
//!   `id`, `shard`, `op`, `attempt`, `method`, `path`, then `status`,
//!   `bytes_sent` and `bytes_received` as they become known, closed with an
//!   `exchange ended`, `exchange failed` or `exchange dropped` event;
//! - a `job event` event for every [`JobEvent`] (its `Debug` form);
//! - a `credential asked` event when the job asks for a fresh credential,
//!   with its reason (never the token).
//!
//! The key never appears: no header is recorded, the path is recorded
//! without its query, no body and no transport message is recorded (a
//! failure records its kind only), and the job's events come with the key
//! already removed from any server words they quote.
//!
//! Both transports' drive loops call it the same way; a driver of a
//! [`Job`] of one's own can too.

use crate::api::Outgoing;
use crate::credential::RefreshReason;
use crate::job::{ExchangeId, Job, JobEvent, TransportFailure};

#[cfg(feature = "tracing")]
mod on {
    use std::collections::HashMap;

    use super::{ExchangeId, Job, JobEvent, Outgoing, RefreshReason, TransportFailure};
    use tracing::field::Empty;

    /// One exchange's span and byte counts.
    #[derive(Debug)]
    struct Traced {
        span: tracing::Span,
        sent: u64,
        received: u64,
    }

    /// The job's span and the spans of its exchanges in flight.
    #[derive(Debug)]
    pub struct Exchanges {
        job: tracing::Span,
        live: HashMap<ExchangeId, Traced>,
    }

    impl Exchanges {
        /// Opens the span of a drive loop over `job`.
        pub fn new(job: &Job) -> Exchanges {
            let span = tracing::info_span!(
                "job",
                job_id = job.plan().job_id(),
                shards = job.plan().shards().len()
            );
            Exchanges {
                job: span,
                live: HashMap::new(),
            }
        }

        /// Records one of the job's events.
        pub fn event(&self, ev: &JobEvent) {
            tracing::info!(parent: &self.job, event = ?ev, "job event");
        }

        /// Records that the job asked for a fresh credential, and why.
        pub fn credential(&self, reason: &RefreshReason) {
            tracing::info!(parent: &self.job, reason = ?reason, "credential asked");
        }

        /// Opens the span of exchange `id`, about to be sent.
        pub fn start(&mut self, job: &Job, id: ExchangeId, request: &http::Request<Outgoing>) {
            let ctx = job.exchange_context(id);
            let span = tracing::info_span!(
                parent: &self.job,
                "exchange",
                id = id.0,
                shard = ctx.map(|c| c.shard),
                op = ctx.map(|c| c.op),
                attempt = ctx.map(|c| c.attempt),
                method = %request.method(),
                path = request.uri().path(),
                status = Empty,
                bytes_sent = Empty,
                bytes_received = Empty,
            );
            self.live.insert(
                id,
                Traced {
                    span,
                    sent: 0,
                    received: 0,
                },
            );
        }

        /// `n` more bytes of the request body went out.
        pub fn sent(&mut self, id: ExchangeId, n: u64) {
            if let Some(t) = self.live.get_mut(&id) {
                t.sent += n;
            }
        }

        /// The response head arrived.
        pub fn head(&mut self, id: ExchangeId, head: &http::response::Parts) {
            if let Some(t) = self.live.get(&id) {
                t.span.record("status", head.status.as_u16());
            }
        }

        /// `n` more bytes of the response body arrived.
        pub fn received(&mut self, id: ExchangeId, n: usize) {
            if let Some(t) = self.live.get_mut(&id) {
                t.received += n as u64;
            }
        }

        /// The exchange ended well.
        pub fn end(&mut self, id: ExchangeId) {
            if let Some(t) = self.close(id) {
                tracing::debug!(parent: &t.span, "exchange ended");
            }
        }

        /// The exchange failed.
        pub fn failed(&mut self, id: ExchangeId, failure: &TransportFailure) {
            if let Some(t) = self.close(id) {
                tracing::warn!(parent: &t.span, kind = ?failure.kind, "exchange failed");
            }
        }

        /// The job dropped the exchange (a deadline, a stall, a size cap).
        pub fn dropped(&mut self, id: ExchangeId) {
            if let Some(t) = self.close(id) {
                tracing::warn!(parent: &t.span, "exchange dropped");
            }
        }

        fn close(&mut self, id: ExchangeId) -> Option<Traced> {
            let t = self.live.remove(&id)?;
            t.span.record("bytes_sent", t.sent);
            t.span.record("bytes_received", t.received);
            Some(t)
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod on {
    use super::{ExchangeId, Job, JobEvent, Outgoing, RefreshReason, TransportFailure};

    /// Nothing, without the `tracing` feature.
    #[derive(Debug)]
    pub struct Exchanges;

    impl Exchanges {
        /// Opens the span of a drive loop over a job.
        pub fn new(_: &Job) -> Exchanges {
            Exchanges
        }
        /// Records one of the job's events.
        pub fn event(&self, _: &JobEvent) {}
        /// Records that the job asked for a fresh credential, and why.
        pub fn credential(&self, _: &RefreshReason) {}
        /// Opens the span of an exchange, about to be sent.
        pub fn start(&mut self, _: &Job, _: ExchangeId, _: &http::Request<Outgoing>) {}
        /// More bytes of the request body went out.
        pub fn sent(&mut self, _: ExchangeId, _: u64) {}
        /// The response head arrived.
        pub fn head(&mut self, _: ExchangeId, _: &http::response::Parts) {}
        /// More bytes of the response body arrived.
        pub fn received(&mut self, _: ExchangeId, _: usize) {}
        /// The exchange ended well.
        pub fn end(&mut self, _: ExchangeId) {}
        /// The exchange failed.
        pub fn failed(&mut self, _: ExchangeId, _: &TransportFailure) {}
        /// The job dropped the exchange.
        pub fn dropped(&mut self, _: ExchangeId) {}
    }
}

pub use on::Exchanges;
