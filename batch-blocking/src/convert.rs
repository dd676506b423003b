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
/// core's one rule, [`TransportFailure::before_head`]). A TLS handshake
/// that fails (an unknown issuer, a refused protocol version) sent nothing,
/// as `batch-async` classifies it.
///
/// The message names the server (`host:port` of `uri`, never its path or
/// query): ureq's own words (`io: Connection refused`, `host not found`)
/// do not say which.
pub(crate) fn failure_before_head(e: &ureq::Error, uri: &http::Uri) -> TransportFailure {
    let not_connected = matches!(
        e,
        ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::BadUri(_)
            | ureq::Error::InvalidProxyUrl
            | ureq::Error::ConnectProxyFailed(_)
            | ureq::Error::Tls(_)
            | ureq::Error::Rustls(_)
            | ureq::Error::Pem(_)
            | ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect)
    ) || matches!(e, ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused
        || is_handshake_failure(io));
    let detail = match uri.authority() {
        Some(to) => format!("{e} (to {to})"),
        None => e.to_string(),
    };
    TransportFailure::before_head(!not_connected, detail)
}

/// Whether `e` is rustls refusing the handshake: these errors come only
/// before the request is written (ureq completes the handshake on connect).
fn is_handshake_failure(e: &io::Error) -> bool {
    use rustls::{AlertDescription as A, Error as R};
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<R>()) else {
        return false;
    };
    matches!(
        tls,
        R::InvalidCertificate(_)
            | R::NoCertificatesPresented
            | R::PeerIncompatible(_)
            | R::UnsupportedNameType
            | R::InvalidCertRevocationList(_)
            | R::AlertReceived(
                A::HandshakeFailure
                    | A::ProtocolVersion
                    | A::InsufficientSecurity
                    | A::UnrecognisedName
                    | A::BadCertificate
                    | A::UnknownCA
                    | A::CertificateRequired
            )
    )
}

/// Classifies an error while reading the body.
pub(crate) fn failure_in_body(e: &impl std::fmt::Display) -> TransportFailure {
    TransportFailure::in_body(e.to_string())
}
