//! `GET /files/{id}/content`: streamed from disk, with `ETag`,
//! `Last-Modified`, and single-range `Range`/`If-Range` (RFC 9110 §14).

use std::io::SeekFrom;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::files::file_not_found;
use super::{AppState, Id};
use crate::error::ApiError;
use crate::lifecycle::advance_all;
use crate::state::lock;
use crate::util::http_date;

const CHUNK: usize = 8 * 1024;

/// How to answer a request given its `Range` and `If-Range`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// 200 with the whole body.
    Full,
    /// 206 with bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// Decides per RFC 9110: a `Range` is honoured only for the `bytes` unit, a
/// single well-formed range, and (with `If-Range`) a strong ETag that matches
/// exactly or a date equal to `Last-Modified`. Anything else that is not
/// unsatisfiable gets the full body (a server may ignore `Range`).
pub(crate) fn decide(
    range: Option<&str>,
    if_range: Option<&str>,
    etag: &str,
    last_modified: &str,
    len: u64,
) -> RangeAnswer {
    let Some(range) = range else {
        return RangeAnswer::Full;
    };
    if let Some(cond) = if_range.map(str::trim) {
        let matches = if cond.starts_with('"') {
            cond == etag
        } else if cond.starts_with("W/") {
            false
        } else {
            cond == last_modified
        };
        if !matches {
            return RangeAnswer::Full;
        }
    }
    let Some((unit, set)) = range.trim().split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeAnswer::Full;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if specs.len() != 1 {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = specs[0].split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        if !digits(last) {
            return RangeAnswer::Full;
        }
        let Ok(n) = last.parse::<u64>() else {
            return RangeAnswer::Full;
        };
        if n == 0 || len == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        return RangeAnswer::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        };
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return RangeAnswer::Full;
    }
    let Ok(start) = first.parse::<u64>() else {
        // Too large to parse: beyond any length.
        return RangeAnswer::Unsatisfiable;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        last.parse::<u64>().unwrap_or(u64::MAX)
    };
    if end < start {
        return RangeAnswer::Full;
    }
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial {
        start,
        end: end.min(len - 1),
    }
}

/// `GET /files/{id}/content`.
pub(super) async fn download(
    State(shared): State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
) -> Response {
    advance_all(&shared).await;
    let Some(file) = lock(&shared.db).files.get(&id).cloned() else {
        return file_not_found(&id).into_response();
    };
    let last_modified = http_date(file.created_at);
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let answer = decide(
        header_str(header::RANGE),
        header_str(header::IF_RANGE),
        &file.etag,
        &last_modified,
        file.bytes,
    );
    let mut resp_headers = HeaderMap::new();
    let mut put = |name, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp_headers.insert(name, v);
        }
    };
    put(header::ETAG, file.etag.clone());
    put(header::LAST_MODIFIED, last_modified);
    put(header::ACCEPT_RANGES, "bytes".to_owned());
    let (status, start, len) = match answer {
        RangeAnswer::Unsatisfiable => {
            let mut resp = ApiError::invalid(format!(
                "The requested range is not satisfiable for a file of {} bytes.",
                file.bytes
            ))
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .into_response();
            resp.headers_mut().extend(resp_headers);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", file.bytes)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
        RangeAnswer::Full => (StatusCode::OK, 0, file.bytes),
        RangeAnswer::Partial { start, end } => {
            put(
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{}", file.bytes),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
    };
    let mut f = match tokio::fs::File::open(shared.file_path(&id)).await {
        Ok(f) => f,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    if start > 0 {
        if let Err(e) = f.seek(SeekFrom::Start(start)).await {
            return ApiError::internal(e).into_response();
        }
    }
    let body = faulted_body(&shared, f, len);
    let mut resp = (status, body).into_response();
    resp.headers_mut().extend(resp_headers);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        resp.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    resp
}

/// The body of a content download: `len` bytes of `f` from where it
/// stands, in `CHUNK`s, counted in `bytes_served`, under the content faults
/// armed (`slow-body` waits before each chunk; `cut-content` sends half the
/// bytes, then aborts the connection).
pub(crate) fn faulted_body(shared: &AppState, f: tokio::fs::File, len: u64) -> Body {
    let faults = lock(&shared.faults).on_content();
    if faults.cut {
        shared.count(|c| c.fault("cut-content"));
    }
    if faults.slow_ms > 0 {
        shared.count(|c| c.fault("slow-body"));
    }
    // The cut fault sends half of the declared length, then aborts.
    let send = if faults.cut { len / 2 } else { len };
    let counter = shared.clone();
    let slow = Duration::from_millis(faults.slow_ms);
    let stream = ReaderStream::with_capacity(f.take(send), CHUNK).then(move |chunk| {
        let counter = counter.clone();
        async move {
            if !slow.is_zero() {
                tokio::time::sleep(slow).await;
            }
            if let Ok(c) = &chunk {
                counter.count(|k| k.bytes_served += c.len() as u64);
            }
            chunk
        }
    });
    if faults.cut {
        let tail = futures_util::stream::once(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err::<Bytes, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "emulated connection cut",
            ))
        });
        Body::from_stream(stream.chain(tail))
    } else {
        Body::from_stream(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"abc-10\"";
    const LM: &str = "Thu, 01 Jan 1970 00:00:00 GMT";

    fn d(range: &str, len: u64) -> RangeAnswer {
        decide(Some(range), None, TAG, LM, len)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(
            d("bytes=0-9", 100),
            RangeAnswer::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            d("bytes=90-", 100),
            RangeAnswer::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            d("bytes=90-500", 100),
            RangeAnswer::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            d("bytes=-10", 100),
            RangeAnswer::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            d("bytes=-500", 100),
            RangeAnswer::Partial { start: 0, end: 99 }
        );
        assert_eq!(d("bytes=100-", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(d("bytes=-0", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(d("bytes=0-", 0), RangeAnswer::Unsatisfiable);
    }

    #[test]
    fn ignored_ranges_give_full() {
        assert_eq!(d("bytes=5-1", 100), RangeAnswer::Full);
        assert_eq!(d("items=0-1", 100), RangeAnswer::Full);
        assert_eq!(d("bytes=0-1,5-6", 100), RangeAnswer::Full);
        assert_eq!(d("bytes=a-b", 100), RangeAnswer::Full);
        assert_eq!(d("bytes", 100), RangeAnswer::Full);
        assert_eq!(decide(None, None, TAG, LM, 100), RangeAnswer::Full);
    }

    #[test]
    fn if_range() {
        let ok = RangeAnswer::Partial { start: 0, end: 0 };
        assert_eq!(decide(Some("bytes=0-0"), Some(TAG), TAG, LM, 10), ok);
        assert_eq!(
            decide(Some("bytes=0-0"), Some("\"other\""), TAG, LM, 10),
            RangeAnswer::Full
        );
        assert_eq!(
            decide(Some("bytes=0-0"), Some("W/\"abc-10\""), TAG, LM, 10),
            RangeAnswer::Full
        );
        assert_eq!(decide(Some("bytes=0-0"), Some(LM), TAG, LM, 10), ok);
        assert_eq!(
            decide(
                Some("bytes=0-0"),
                Some("Fri, 02 Jan 1970 00:00:00 GMT"),
                TAG,
                LM,
                10
            ),
            RangeAnswer::Full
        );
    }
}
