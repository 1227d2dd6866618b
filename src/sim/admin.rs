//! The simulator's admin surface under `/__sim/`: state, balance, clock, faults, the call
//! log and load figures, for tests and people. It answers loopback peers only.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::faults::Fault;
use super::state::SimState;
use super::{ConnInfo, Shared};

/// Fault bodies may carry large canned answers (to test the client's size cap).
const MAX_FAULT_BODY: usize = 128 * 1024 * 1024;

/// Reads `{"<field>": <integer>}` from any body, whatever its content type.
fn integer_field(body: &Bytes, field: &str) -> Option<i64> {
    serde_json::from_slice::<Value>(body).ok()?.get(field)?.as_i64()
}

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/__sim/state", get(get_state).put(put_state))
        .route("/__sim/balance", post(set_balance))
        .route("/__sim/clock", post(set_clock))
        .route(
            "/__sim/faults",
            get(get_faults).post(add_faults).delete(clear_faults).layer(DefaultBodyLimit::max(MAX_FAULT_BODY)),
        )
        .route("/__sim/calls", get(get_calls).delete(clear_calls))
        .route("/__sim/stats", get(get_stats))
        .route("/__sim/release", post(release))
}

fn admin_denied(conn: &ConnInfo) -> Option<Response> {
    (!conn.peer.ip().is_loopback())
        .then(|| (StatusCode::FORBIDDEN, "the /__sim admin surface answers loopback peers only\n").into_response())
}

macro_rules! admin {
    ($conn:expr) => {
        if let Some(r) = admin_denied(&$conn) {
            return r;
        }
    };
}

async fn get_state(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>) -> Response {
    admin!(c);
    axum::Json(s.state()).into_response()
}

async fn put_state(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>, body: Bytes) -> Response {
    admin!(c);
    match serde_json::from_slice::<SimState>(&body).map_err(|e| e.to_string()).and_then(|st| st.validate().map(|()| st))
    {
        Ok(state) => {
            s.with_state(|st, _| *st = state);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("invalid simulator state: {e}\n")).into_response(),
    }
}

async fn set_balance(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>, body: Bytes) -> Response {
    admin!(c);
    let Some(cents) = integer_field(&body, "balance_cents") else {
        return (
            StatusCode::BAD_REQUEST,
            "expected {\"balance_cents\": N}
",
        )
            .into_response();
    };
    s.with_state(|st, _| st.balance_cents = cents);
    StatusCode::NO_CONTENT.into_response()
}

async fn set_clock(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>, body: Bytes) -> Response {
    admin!(c);
    let Some(offset) = integer_field(&body, "offset_ms") else {
        return (
            StatusCode::BAD_REQUEST,
            "expected {\"offset_ms\": N}
",
        )
            .into_response();
    };
    s.with_state(|st, _| st.settings.clock_offset_ms = offset);
    StatusCode::NO_CONTENT.into_response()
}

async fn get_faults(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>) -> Response {
    admin!(c);
    axum::Json(s.faults()).into_response()
}

async fn add_faults(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>, body: Bytes) -> Response {
    admin!(c);
    let faults = serde_json::from_slice::<Vec<Fault>>(&body)
        .or_else(|_| serde_json::from_slice::<Fault>(&body).map(|f| vec![f]));
    match faults.map_err(|e| e.to_string()).and_then(|fs| fs.iter().try_for_each(Fault::validate).map(|()| fs)) {
        Ok(fs) => {
            fs.into_iter().for_each(|f| s.add_fault(f));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("invalid fault: {e}\n")).into_response(),
    }
}

async fn clear_faults(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>) -> Response {
    admin!(c);
    s.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn get_calls(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>) -> Response {
    admin!(c);
    axum::Json(s.calls()).into_response()
}

async fn clear_calls(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>) -> Response {
    admin!(c);
    s.clear_calls();
    StatusCode::NO_CONTENT.into_response()
}

/// `{"count": N}` (default 1): lets N requests held by a `hold` fault go on.
async fn release(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>, body: Bytes) -> Response {
    admin!(c);
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Release {
        #[serde(default = "one")]
        count: u32,
    }
    fn one() -> u32 {
        1
    }
    let body = if body.iter().all(u8::is_ascii_whitespace) { Bytes::from_static(b"{}") } else { body };
    match serde_json::from_slice::<Release>(&body) {
        Ok(r) => {
            s.releases.add_permits(r.count as usize);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("invalid release: {e}; send {{\"count\": N}}\n")).into_response(),
    }
}

async fn get_stats(State(s): State<Arc<Shared>>, Extension(c): Extension<ConnInfo>) -> Response {
    admin!(c);
    axum::Json(s.stats()).into_response()
}
