//! The simulator's HTTP surface: `/api/proxy` as the reference describes it, with faults,
//! a call log and a concurrency gauge, and the connection loop that serves it. The `/__sim/`
//! admin routes are `admin.rs`'s; `mod.rs` puts the two together.
//!
//! Connections are served one hyper task each so that a fault can drop a connection
//! outright: the handler cancels its connection's token and the task closes the socket
//! without writing a byte.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::faults::FaultKind;
use super::ops::{self, SimError};
use super::{CallRecord, ConnInfo, Shared};

const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// `/api/proxy`: the provider API.
pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new().route("/api/proxy", any(api))
}

/// Accepts connections until `shutdown` is cancelled, serving `router` on each.
pub(super) async fn serve(listener: TcpListener, router: Router, shutdown: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "simulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kill = CancellationToken::new();
            let info = ConnInfo { peer, kill: kill.clone() };
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(info.clone());
                router.clone().oneshot(req)
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                () = kill.cancelled() => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// Counts one request in `counter` for as long as it lives, also when the client goes away
/// and the request's future is dropped mid-wait.
struct Counted<'a>(&'a AtomicU64);

impl<'a> Counted<'a> {
    /// The guard and the count with this request in it.
    fn enter(counter: &'a AtomicU64) -> (Self, u64) {
        let now = counter.fetch_add(1, Ordering::SeqCst) + 1;
        (Self(counter), now)
    }

    /// A request in flight, raising the peak.
    fn in_flight(shared: &'a Shared) -> Self {
        let (guard, now) = Counted::enter(&shared.in_flight);
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        guard
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn error_response(e: &SimError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(json!({ "ok": false, "error": e.message }))).into_response()
}

fn status_response(status: u16) -> Response {
    let message = match status {
        400 => "Bad request",
        401 => "Unauthorized",
        402 => "Insufficient balance",
        403 => "Forbidden",
        404 => "Subscription not found",
        409 => "Sold out, inactive plan/network, or invalid subscription state",
        429 => "Too many requests",
        _ => "Internal error",
    };
    error_response(&SimError { status, message })
}

/// Reads op and parameters from the query (GET) or the JSON body (POST).
fn parse_request(
    is_get: bool,
    query: &Map<String, Value>,
    body: &Bytes,
) -> (String, Result<Map<String, Value>, SimError>) {
    let parsed = if is_get {
        Ok(query.clone())
    } else {
        match serde_json::from_slice::<Value>(body) {
            Err(_) => Err(ops::BAD_JSON),
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(ops::NOT_OBJECT),
        }
    };
    let op = parsed.as_ref().ok().and_then(|m| m.get("op")).and_then(Value::as_str).unwrap_or_default().to_owned();
    (op, parsed)
}

async fn api(
    State(shared): State<Arc<Shared>>,
    Extension(conn): Extension<ConnInfo>,
    method: Method,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_get = match method {
        Method::GET => true,
        Method::POST => false,
        _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
    };
    let _in_flight = Counted::in_flight(&shared);
    let latency = shared.latency_ms();
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let query: Map<String, Value> = query.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    let (op, parsed) = parse_request(is_get, &query, &body);
    let params = parsed.as_ref().map(|m| Value::Object(m.clone())).unwrap_or(Value::Null);
    let key_ok = headers.get("x-api-key").is_some_and(|v| v.as_bytes() == shared.api_key.as_bytes());
    let mut call = CallRecord {
        seq: 0,
        at_ms: 0,
        method: method.to_string(),
        op: op.clone(),
        params,
        status: None,
        applied: false,
        fault: None,
        key_ok,
    };

    let mut fault = shared.take_fault(&op);
    if let Some(FaultKind::Latency { ms }) = fault {
        call.fault = Some(format!("latency {ms}ms"));
        tokio::time::sleep(Duration::from_millis(ms)).await;
        fault = None;
    }
    if let Some(FaultKind::Hold) = fault {
        call.fault = Some("hold".into());
        let held = Counted::enter(&shared.held).0;
        // The semaphore is never closed, so acquiring fails only if it were.
        if let Ok(permit) = shared.releases.acquire().await {
            permit.forget();
        }
        drop(held);
        fault = None;
    }
    if let Some(f) = &fault {
        call.fault = Some(f.describe());
    }
    if let Some(FaultKind::ApplyLate { ms }) = fault {
        let req = if key_ok { parsed.ok() } else { None };
        apply_late(shared.clone(), call, ms, is_get, op, req);
        return std::future::pending::<Response>().await;
    }
    if let Some(f) = fault.as_ref().filter(|f| !f.applies_first()) {
        return before_fault(&shared, call, f, &conn).await;
    }
    if fault.is_none() && key_ok && op == "subscriptions" && parsed.is_ok() && is_get {
        call.applied = true;
        call.status = Some(200);
        shared.record(call);
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], shared.subscriptions_body())
            .into_response();
    }
    let result = if key_ok {
        parsed.and_then(|req| shared.with_state(|state, now| ops::apply(state, now, is_get, &op, &req)))
    } else {
        Err(ops::UNAUTHORIZED)
    };
    call.applied = result.is_ok();
    let (status, response) = match (result, &fault) {
        (Ok(v), Some(f)) => return after_fault(&shared, call, f, v, &conn).await,
        (Ok(v), None) => (200, (StatusCode::OK, axum::Json(v)).into_response()),
        (Err(e), _) => (e.status, error_response(&e)),
    };
    call.status = Some(status);
    shared.record(call);
    response
}

async fn before_fault(shared: &Shared, mut call: CallRecord, f: &FaultKind, conn: &ConnInfo) -> Response {
    let response = match f {
        FaultKind::StatusBefore { status } => status_response(*status),
        FaultKind::Html502 => {
            (StatusCode::BAD_GATEWAY, [(header::CONTENT_TYPE, "text/html")], HTML_502).into_response()
        }
        FaultKind::Canned { status, body, headers } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            let mut r = (status, [(header::CONTENT_TYPE, "application/json")], body.clone()).into_response();
            for (name, value) in headers {
                if let (Ok(n), Ok(v)) =
                    (header::HeaderName::try_from(name.as_str()), header::HeaderValue::try_from(value.as_str()))
                {
                    r.headers_mut().insert(n, v);
                }
            }
            r
        }
        FaultKind::OkFalse => {
            (StatusCode::OK, axum::Json(json!({ "ok": false, "error": "Internal error" }))).into_response()
        }
        FaultKind::RateLimit { retry_after_secs } => {
            let mut r = status_response(429);
            r.headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs.to_string().parse().expect("digits are a header value"));
            r
        }
        _ => {
            shared.record(call);
            return drop_connection(conn).await;
        }
    };
    call.status = Some(response.status().as_u16());
    shared.record(call);
    response
}

async fn after_fault(shared: &Shared, mut call: CallRecord, f: &FaultKind, body: Value, conn: &ConnInfo) -> Response {
    match f {
        FaultKind::StatusAfter { status } => {
            call.status = Some(*status);
            shared.record(call);
            status_response(*status)
        }
        FaultKind::RawEntries { entries_hex } => {
            call.status = Some(200);
            shared.record(call);
            let mut out = b"{\"ok\":true,\"subscriptions\":[".to_vec();
            let real = body.get("subscriptions").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut entries: Vec<Vec<u8>> = real.iter().map(|v| v.to_string().into_bytes()).collect();
            entries.extend(entries_hex.iter().map(|h| hex_bytes(h)));
            out.extend(entries.join(&b","[..]));
            out.extend(b"]}");
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], out).into_response()
        }
        FaultKind::GarbageAfter => {
            call.status = Some(200);
            shared.record(call);
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"ok\": true, \"subscriptionId\": ")
                .into_response()
        }
        FaultKind::StallAfter { ms } => {
            call.status = Some(200);
            shared.record(call);
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        _ => {
            shared.record(call);
            drop_connection(conn).await
        }
    }
}

/// `"7b7d"` → `{}`; pairs that are not hex are skipped.
fn hex_bytes(hex: &str) -> Vec<u8> {
    let b = hex.as_bytes();
    b.chunks(2).filter_map(|p| std::str::from_utf8(p).ok().and_then(|s| u8::from_str_radix(s, 16).ok())).collect()
}

/// Applies `req` after `ms`, in a task of its own that outlives the client's connection,
/// and logs the call then; the caller is left waiting.
fn apply_late(
    shared: Arc<Shared>,
    mut call: CallRecord,
    ms: u64,
    is_get: bool,
    op: String,
    req: Option<Map<String, Value>>,
) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let result = req
            .ok_or(ops::UNAUTHORIZED)
            .and_then(|req| shared.with_state(|state, now| ops::apply(state, now, is_get, &op, &req)));
        call.applied = result.is_ok();
        shared.record(call);
    });
}

/// Closes the connection without answering; never returns.
async fn drop_connection(conn: &ConnInfo) -> Response {
    conn.kill.cancel();
    std::future::pending::<Response>().await
}
