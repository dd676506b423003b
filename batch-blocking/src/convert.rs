//! Conversions between the core's `http` values and ureq's, and from ureq's
//! errors to the core's [`TransportFailure`].

use std::io::{self, Read};

use batch_core::api::Outgoing;
use batch_core::job::{FailureKind, JobIo, TransportFailure};

/// A streamed request body: the multipart envelope around a shard (the core
/// sets its exact `Content-Length`). Bodiless and in-memory bodies are sent
/// as they are by the callers.
pub(crate) fn body_reader(body: Outgoing, io: &mut impl JobIo) -> io::Result<Box<dyn Read + Send>> {
    Ok(match body {
        Outgoing::Multipart {
            head, shard, tail, ..
        } => {
            let file = io.open_shard(&shard)?;
            Box::new(
                io::Cursor::new(head)
                    .chain(file.take(shard.len))
                    .chain(io::Cursor::new(tail)),
            )
        }
        other => {
            return Err(io::Error::other(format!(
                "unsupported request body: {other:?}"
            )));
        }
    })
}

/// Classifies a ureq error raised before the response head.
pub(crate) fn failure_before_head(e: &ureq::Error) -> TransportFailure {
    let kind = match e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::BadUri(_) => {
            FailureKind::NotSent
        }
        ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => {
            FailureKind::NotSent
        }
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
            FailureKind::NotSent
        }
        _ => FailureKind::OutcomeUnknown,
    };
    TransportFailure::new(kind, e.to_string())
}

/// Classifies an error while reading the body.
pub(crate) fn failure_in_body(e: &io::Error) -> TransportFailure {
    TransportFailure::new(FailureKind::BodyInterrupted, e.to_string())
}
