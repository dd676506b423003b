//! Conversions between the core's `http` values and reqwest's, and from
//! reqwest's errors to the core's [`TransportFailure`].

use std::io::{self, Read};

use batch_core::api::Outgoing;
use batch_core::job::{JobIo, TransportFailure};
use bytes::Bytes;

/// The size of the chunks an uploaded shard is read in.
const CHUNK: usize = 64 * 1024;

/// The request body reqwest sends: bytes, or a multipart envelope around a
/// streamed shard, whose every chunk is passed to `on_sent` as it goes.
pub(crate) fn body(
    body: Outgoing,
    io: &mut impl JobIo,
    on_sent: impl Fn(u64) + Send + Sync + 'static,
) -> io::Result<reqwest::Body> {
    Ok(match body {
        Outgoing::Empty => reqwest::Body::from(Bytes::new()),
        Outgoing::Json(bytes) => reqwest::Body::from(bytes),
        Outgoing::Multipart {
            head, shard, tail, ..
        } => {
            let file = io.open_shard(&shard)?;
            let reader: Box<dyn Read + Send> = Box::new(
                io::Cursor::new(head)
                    .chain(file.take(shard.len))
                    .chain(io::Cursor::new(tail)),
            );
            let on_sent = std::sync::Arc::new(on_sent);
            let chunks = futures_util::stream::unfold(reader, move |mut r| {
                let on_sent = std::sync::Arc::clone(&on_sent);
                async move {
                    let mut buf = vec![0u8; CHUNK];
                    match r.read(&mut buf) {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            on_sent(n as u64);
                            Some((Ok::<Bytes, io::Error>(Bytes::from(buf)), r))
                        }
                        Err(e) => Some((Err(e), r)),
                    }
                }
            });
            reqwest::Body::wrap_stream(chunks)
        }
        other => {
            return Err(io::Error::other(format!(
                "unsupported request body: {other:?}"
            )));
        }
    })
}

/// The response head as the core's `http` parts.
pub(crate) fn head(resp: &reqwest::Response) -> http::response::Parts {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = resp.status();
    parts.version = resp.version();
    parts.headers = resp.headers().clone();
    parts
}

/// Classifies a reqwest error raised before the response head (through the
/// core's one rule, [`TransportFailure::before_head`]).
pub(crate) fn failure_before_head(e: &reqwest::Error) -> TransportFailure {
    let not_connected = e.is_connect() || e.is_builder();
    TransportFailure::before_head(!not_connected, error_chain(e))
}

/// Classifies an error while reading the body.
pub(crate) fn failure_in_body(e: &reqwest::Error) -> TransportFailure {
    TransportFailure::in_body(error_chain(e))
}

fn error_chain(e: &reqwest::Error) -> String {
    // The URL is part of reqwest's message; it holds no secret (the key is a header).
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}
