//! The private control paths under `/__emulator` (no auth):
//!
//! * `GET  /__emulator/counters` → [`Counters`](crate::Counters) as JSON
//! * `POST /__emulator/reset-counters`
//! * `GET  /__emulator/faults` → `{"spec": "..."}`
//! * `POST /__emulator/faults` with a spec string, or `{"spec": "...", "seed": N}`
//! * `POST /__emulator/advance` with `{"seconds": N}`: jumps the virtual clock
//! * `GET  /__emulator/clock` → `{"now": secs, "speed": x}`
//! * `POST /__emulator/entra-token` → `{"accessToken": "...", "tokenType": "Bearer", "expires_on": secs}`

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::AppState;
use crate::error::{ApiError, ok_json};
use crate::faults::FaultConfig;
use crate::lifecycle::advance_all;
use crate::state::lock;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/counters", get(counters))
        .route("/reset-counters", post(reset_counters))
        .route("/faults", get(get_faults).post(set_faults))
        .route("/advance", post(advance))
        .route("/clock", get(clock))
        .route("/entra-token", post(entra_token))
}

/// A Microsoft Entra ID token the Azure mode accepts, in the shape of
/// `az account get-access-token` (`accessToken`, `expires_on`).
async fn entra_token(State(shared): State<AppState>) -> Response {
    let t = crate::entra::issue(&shared);
    ok_json(&json!({
        "accessToken": t.token,
        "tokenType": "Bearer",
        "expires_on": t.expires_on,
    }))
}

async fn counters(State(shared): State<AppState>) -> Response {
    let c = lock(&shared.counters).clone();
    ok_json(&c)
}

async fn reset_counters(State(shared): State<AppState>) -> Response {
    *lock(&shared.counters) = Default::default();
    ok_json(&json!({"reset": true}))
}

async fn get_faults(State(shared): State<AppState>) -> Response {
    let spec = lock(&shared.faults).config().to_string();
    ok_json(&json!({"spec": spec}))
}

async fn read_body(body: Body) -> Result<String, ApiError> {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::invalid("The request body is too large."))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::invalid("The body must be UTF-8."))
}

async fn set_faults(State(shared): State<AppState>, body: Body) -> Response {
    let result = async {
        let text = read_body(body).await?;
        let trimmed = text.trim();
        let mut config = if trimmed.starts_with('{') {
            let v: Value = serde_json::from_str(trimmed)
                .map_err(|e| ApiError::invalid(format!("Invalid JSON: {e}")))?;
            let spec = v.get("spec").and_then(Value::as_str).unwrap_or_default();
            let mut c = FaultConfig::parse(spec).map_err(|e| ApiError::invalid(e.to_string()))?;
            if let Some(seed) = v.get("seed").and_then(Value::as_u64) {
                c.seed = Some(seed);
            }
            c
        } else {
            FaultConfig::parse(trimmed).map_err(|e| ApiError::invalid(e.to_string()))?
        };
        let spec = config.to_string();
        shared.set_faults(std::mem::take(&mut config));
        Ok::<_, ApiError>(ok_json(&json!({"spec": spec})))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn advance(State(shared): State<AppState>, body: Body) -> Response {
    let result = async {
        let text = read_body(body).await?;
        let v: Value = serde_json::from_str(text.trim())
            .map_err(|e| ApiError::invalid(format!("Invalid JSON: {e}")))?;
        let seconds = v
            .get("seconds")
            .and_then(Value::as_f64)
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                ApiError::invalid("Expected {\"seconds\": N} with N >= 0.").param("seconds")
            })?;
        shared.clock.advance_ms((seconds * 1000.0) as u64);
        advance_all(&shared).await;
        Ok::<_, ApiError>(ok_json(&json!({"now": shared.clock.now_ms() / 1000})))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn clock(State(shared): State<AppState>) -> Response {
    ok_json(&json!({"now": shared.clock.now_ms() / 1000, "speed": shared.clock.speed()}))
}
