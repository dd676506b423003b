//! Conversions between the core's `http` values and ureq's, and from ureq's
//! errors to the core's [`TransportFailure`].

use std::io::{self, Read};

use batch_core::api::{Outgoing, ShardRef};
use batch_core::job::TransportFailure;

/// The request body, resolved through `io` so it can move to the thread
/// that sends it: none, bytes, or a multipart envelope around a streamed
/// shard.
pub(crate) enum Body {
    None,
    Reader(Box<dyn Read + Send>),
}

/// Resolves the core's body description; `open_shard` opens a shard to stream.
pub(crate) fn body(
    body: Outgoing,
    open_shard: impl FnOnce(&ShardRef) -> io::Result<Box<dyn Read + Send>>,
) -> io::Result<Body> {
    Ok(match body {
        Outgoing::Empty => Body::None,
        Outgoing::Json(bytes) | Outgoing::Bytes(bytes) => {
            Body::Reader(Box::new(io::Cursor::new(bytes)))
        }
        Outgoing::Multipart {
            head, shard, tail, ..
        } => {
            let file = open_shard(&shard)?;
            Body::Reader(Box::new(
                io::Cursor::new(head)
                    .chain(file.take(shard.len))
                    .chain(io::Cursor::new(tail)),
            ))
        }
        other => {
            return Err(io::Error::other(format!(
                "unsupported request body: {other:?}"
            )));
        }
    })
}

/// The body ureq sends. The core sets `Content-Length` on every request with
/// a body, so ureq never chunks one; a request without a body is sent as
/// none, or ureq would announce an empty chunked body (on a `GET` too).
pub(crate) fn send_body(body: Body) -> ureq::SendBody<'static> {
    match body {
        Body::None => ureq::SendBody::none(),
        Body::Reader(r) => ureq::SendBody::from_owned_reader(r),
    }
}

/// Classifies a ureq error raised before the response head (through the
/// core's one rule, [`TransportFailure::before_head`]).
pub(crate) fn failure_before_head(e: &ureq::Error) -> TransportFailure {
    let not_connected = matches!(
        e,
        ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::BadUri(_)
            | ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect)
    ) || matches!(e, ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused);
    TransportFailure::before_head(!not_connected, e.to_string())
}

/// Classifies an error while reading the body.
pub(crate) fn failure_in_body(e: &impl std::fmt::Display) -> TransportFailure {
    TransportFailure::in_body(e.to_string())
}
