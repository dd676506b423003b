//! Conversions between the core's `http` values and ureq's, and from ureq's
//! errors to the core's [`TransportFailure`].

use std::io::{self, Read};

use batch_core::api::{Outgoing, ShardRef};
use batch_core::job::{FailureKind, TransportFailure};

/// Sends `request` with `agent`: no body at all for a bodiless request (a
/// reader of unknown length would make ureq send an empty chunked body, even
/// with a GET), the bytes with their length for an in-memory body, and the
/// multipart envelope around the shard that `open_shard` opens (the core sets
/// its exact `Content-Length`).
///
/// The outer error is local (the shard could not be opened); the inner one is
/// ureq's.
pub(crate) fn send(
    agent: &ureq::Agent,
    request: http::Request<Outgoing>,
    open_shard: impl FnOnce(&ShardRef) -> io::Result<Box<dyn Read + Send>>,
) -> io::Result<Result<http::Response<ureq::Body>, ureq::Error>> {
    let (parts, body) = request.into_parts();
    Ok(match body {
        Outgoing::Empty => agent.run(http::Request::from_parts(parts, ())),
        Outgoing::Json(bytes) | Outgoing::Bytes(bytes) => {
            agent.run(http::Request::from_parts(parts, &bytes[..]))
        }
        Outgoing::Multipart {
            head, shard, tail, ..
        } => {
            let file = open_shard(&shard)?;
            let reader = io::Cursor::new(head)
                .chain(file.take(shard.len))
                .chain(io::Cursor::new(tail));
            agent.run(http::Request::from_parts(
                parts,
                ureq::SendBody::from_owned_reader(reader),
            ))
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
