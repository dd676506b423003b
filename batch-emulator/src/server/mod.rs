//! The HTTP surface: routes, the auth and fault layer, and the fallbacks.

mod batches;
pub(crate) mod content;
mod control;
mod files;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;

use crate::error::ApiError;
use crate::faults::{CommitFault, Route};
use crate::provider::ProviderMode;
use crate::state::{Shared, lock};
use crate::util::derived_hex_id;

pub(crate) type AppState = Arc<Shared>;

/// The `{id}` path segment; a malformed one answers 400 in the envelope.
pub(crate) struct Id(pub(crate) String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Id, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| Id(id))
            .map_err(|e| ApiError::invalid(format!("Invalid path: {e}")))
    }
}

/// Builds the whole application.
pub(crate) fn router(shared: AppState) -> Router {
    if shared.cfg.provider == ProviderMode::Anthropic {
        // Anthropic's Message Batches API instead of the Files and Batches
        // API; the private paths stay the same.
        return crate::anthropic::routes(shared.clone())
            .nest("/__emulator", control::router())
            .fallback(crate::anthropic::unknown_route)
            .layer(DefaultBodyLimit::disable())
            .with_state(shared);
    }
    let api = Router::new()
        .route("/files", post(files::create).get(files::list))
        .route(
            "/files/{file_id}",
            get(files::retrieve).delete(files::delete),
        )
        .route("/files/{file_id}/content", get(content::download))
        .route("/batches", post(batches::create).get(batches::list))
        .route("/batches/{batch_id}", get(batches::retrieve))
        .route("/batches/{batch_id}/cancel", post(batches::cancel))
        .route_layer(middleware::from_fn_with_state(shared.clone(), api_layer))
        .method_not_allowed_fallback(unknown_route);
    let mut app = Router::new();
    for prefix in shared.cfg.provider.prefixes() {
        app = app.nest(prefix, api.clone());
    }
    app.nest("/__emulator", control::router())
        .fallback(unknown_route)
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

fn route_of(method: &Method, path: &str) -> Option<Route> {
    // The same routes under every provider's prefix (`/openai/v1/files`,
    // `/openai/files`) are the `/v1` routes.
    let rest = path
        .strip_prefix("/openai/v1")
        .or_else(|| path.strip_prefix("/openai"))
        .or_else(|| path.strip_prefix("/v1"))
        .unwrap_or(path);
    let path = format!("/v1{rest}");
    let r = match (method.as_str(), path.as_str()) {
        ("POST", "/v1/files") => Route::FilesCreate,
        ("GET" | "HEAD", "/v1/files") => Route::FilesList,
        ("GET" | "HEAD", "/v1/files/{file_id}") => Route::FilesGet,
        ("DELETE", "/v1/files/{file_id}") => Route::FilesDelete,
        ("GET" | "HEAD", "/v1/files/{file_id}/content") => Route::FilesContent,
        ("POST", "/v1/batches") => Route::BatchesCreate,
        ("GET" | "HEAD", "/v1/batches") => Route::BatchesList,
        ("GET" | "HEAD", "/v1/batches/{batch_id}") => Route::BatchesGet,
        ("POST", "/v1/batches/{batch_id}/cancel") => Route::BatchesCancel,
        _ => return None,
    };
    Some(r)
}

/// 404 in the envelope for any unknown path or method.
async fn unknown_route(State(shared): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/v1/") || path == "/v1" || path.starts_with("/openai/") {
        shared.count(|c| {
            c.requests_total += 1;
            *c.requests.entry("unmatched".to_owned()).or_default() += 1;
            *c.responses.entry("404".to_owned()).or_default() += 1;
        });
    }
    ApiError::invalid_url(req.method().as_str(), &path).into_response()
}

/// Azure's answer to a bearer token it does not accept (missing, invalid
/// or expired): its gateway's shape, not the OpenAI error envelope.
fn entra_refused() -> Response {
    let body = serde_json::json!({
        "statusCode": 401,
        "message": "Unauthorized. Access token is missing, invalid, audience is incorrect \
                    (https://cognitiveservices.azure.com), or have expired.",
    });
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Checks Azure OpenAI's `api-key` header (or, with Entra ID tokens on,
/// `Authorization: Bearer` with a token the emulator issued), and
/// `api-version` on the dated API's paths (those under `/openai/` but not
/// `/openai/v1/`); `Some` is the answer that refuses it.
fn check_azure(shared: &Shared, req: &Request, matched: &str) -> Option<Response> {
    let dated = matched.starts_with("/openai/") && !matched.starts_with("/openai/v1/");
    let has_version = req.uri().query().unwrap_or_default().split('&').any(|p| {
        p.split_once('=')
            .is_some_and(|(k, v)| k == "api-version" && !v.is_empty())
    });
    if dated && !has_version {
        return Some(
            ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "Resource not found: the api-version query parameter is required on this path.",
            )
            .code("404")
            .into_response(),
        );
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let (Some(token), Some(_)) = (bearer, shared.cfg.entra_token_ttl) {
        return match crate::entra::check(shared, token.trim()) {
            crate::entra::Verdict::Valid => None,
            crate::entra::Verdict::Expired => {
                shared.count(|c| c.entra_tokens_expired += 1);
                Some(entra_refused())
            }
            crate::entra::Verdict::Unknown => Some(entra_refused()),
        };
    }
    let key = req
        .headers()
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let wrong = match &shared.cfg.api_key {
        Some(expected) => key != expected,
        None => key.is_empty(),
    };
    if wrong {
        return Some(
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to \
             provide a valid key for an active subscription and use a correct regional API \
             endpoint for your resource.",
            )
            .code("401")
            .into_response(),
        );
    }
    None
}

/// Checks the bearer token; `Err` is the 401 answer.
fn check_auth(shared: &Shared, req: &Request) -> Result<(), ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(value) = value else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You didn't provide an API key. You need to provide your API key in an Authorization \
             header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        ));
    };
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or_default();
    let wrong = match &shared.cfg.api_key {
        Some(expected) => token != expected,
        None => token.is_empty(),
    };
    if wrong {
        let chars: Vec<char> = token.chars().collect();
        let shown: String = if chars.len() > 8 {
            let head: String = chars[..3].iter().collect();
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("{head}****{tail}")
        } else {
            "****".to_owned()
        };
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            format!(
                "Incorrect API key provided: {shown}. You can find your API key at \
                 https://platform.openai.com/account/api-keys."
            ),
        )
        .code("invalid_api_key"));
    }
    Ok(())
}

/// What every provider's routes layer does around a route: advances the
/// clock by `step_per_request`, counts the request, answers `refuse`'s
/// refusal (the provider's auth check) or a request-level fault (shaped by
/// `status_fault`), else runs the route and, on a committing route's
/// success, the commit fault armed (a 500 shaped by `server_error`, or a
/// cut answer); then counts the answer's status. Returns the
/// answer and the request's number (for its request id).
pub(crate) async fn counted_route(
    shared: &Shared,
    req: Request,
    next: Next,
    route_of: fn(&Method, &str) -> Option<Route>,
    refuse: impl FnOnce(&Shared, &Request, &str) -> Option<Response>,
    status_fault: fn(u16, u64) -> Response,
    server_error: fn() -> Response,
) -> (Response, u64) {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let route = route_of(req.method(), &path);
    let route_name = route.map_or("unmatched", Route::as_str);
    if let Some(step) = shared.cfg.step_per_request {
        shared
            .clock
            .advance_ms(u64::try_from(step.as_millis()).unwrap_or(u64::MAX));
    }
    let request_no = {
        let mut c = lock(&shared.counters);
        c.requests_total += 1;
        *c.requests.entry(route_name.to_owned()).or_default() += 1;
        c.requests_total
    };
    let resp = match refuse(shared, &req, &path) {
        Some(refused) => {
            drain(req.into_body()).await;
            refused
        }
        None => {
            let fault = route.and_then(|r| lock(&shared.faults).on_request(r));
            match fault {
                Some(f) => {
                    shared.count(|c| c.fault(&f.name));
                    drain(req.into_body()).await;
                    status_fault(f.status, f.retry_after)
                }
                None => {
                    let resp = next.run(req).await;
                    match route {
                        Some(r) if r.commits() && resp.status().is_success() => {
                            apply_commit_fault(shared, r, resp, server_error).await
                        }
                        _ => resp,
                    }
                }
            }
        }
    };
    let status = resp.status().as_u16().to_string();
    shared.count(|c| *c.responses.entry(status).or_default() += 1);
    (resp, request_no)
}

/// Counting, auth, request-level faults and commit faults for `/v1` routes.
async fn api_layer(State(shared): State<AppState>, req: Request, next: Next) -> Response {
    let azure = shared.cfg.provider == ProviderMode::Azure;
    let (mut resp, request_no) = counted_route(
        &shared,
        req,
        next,
        route_of,
        |shared, req, path| {
            if azure {
                check_azure(shared, req, path)
            } else {
                check_auth(shared, req)
                    .err()
                    .map(IntoResponse::into_response)
            }
        },
        |status, retry_after| status_fault(status, retry_after).into_response(),
        || ApiError::server_error().into_response(),
    )
    .await;
    let rid = derived_hex_id(
        "req_",
        &["http", &shared.seed().to_string(), &request_no.to_string()],
    );
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Reads and drops a request body that the answer does not need. hyper
/// closes a connection whose request body is still unread when the answer
/// is sent, without saying so in the answer; a client that pools the
/// connection would then lose its next request on it. Reading the body
/// first keeps the connection usable, as a server that reads whole requests
/// does.
pub(crate) async fn drain(body: Body) {
    use futures_util::StreamExt;
    let mut data = body.into_data_stream();
    while let Some(Ok(_)) = data.next().await {}
}

fn status_fault(status: u16, retry_after: u64) -> ApiError {
    if status == 429 {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "requests",
            format!(
                "Rate limit reached for requests in organization org-emulator on requests per min \
                 (RPM): Limit 60, Used 60, Requested 1. Please try again in {retry_after}s."
            ),
        )
        .code("rate_limit_exceeded");
        e.retry_after = Some(retry_after);
        e
    } else {
        let mut e = ApiError::server_error();
        e.status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        e
    }
}

async fn apply_commit_fault(
    shared: &Shared,
    route: Route,
    resp: Response,
    server_error: fn() -> Response,
) -> Response {
    let fault = lock(&shared.faults).on_commit(route);
    match fault {
        None => resp,
        Some(CommitFault::Answer500) => {
            shared.count(|c| c.fault("commit-then-500"));
            server_error()
        }
        Some(CommitFault::Cut) => {
            shared.count(|c| c.fault("commit-then-cut"));
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            let mut resp = Response::from_parts(parts, cut_body(bytes.clone(), bytes.len() / 2));
            if let Ok(v) = HeaderValue::from_str(&bytes.len().to_string()) {
                resp.headers_mut().insert(header::CONTENT_LENGTH, v);
            }
            resp
        }
    }
}

/// A body that yields the first `keep` bytes, waits a moment so they reach
/// the socket, then fails, so the server aborts the connection with the
/// declared length unmet.
pub(crate) fn cut_body(bytes: Bytes, keep: usize) -> Body {
    let head = bytes.slice(..keep.min(bytes.len()));
    let stream = futures_util::stream::unfold(0u8, move |stage| {
        let head = head.clone();
        async move {
            match stage {
                0 => Some((Ok(head), 1)),
                1 => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionAborted,
                            "emulated connection cut",
                        )),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    Body::from_stream(stream)
}
