//! Serves an emulator's router on a loopback listener, behind fault injection (applied before
//! routing, by request path) and request statistics (recorded after routing, by route template).
//!
//! Each connection is served with hyper directly rather than `axum::serve`, because a
//! "connection reset" fault must be able to drop the connection without any response.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::faults::{Fault, Faults, When};
use super::stats::Stats;

/// Which emulator a listener serves; decides error body formats and stats keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulator {
    Gitlab,
    Kube,
    Registry,
}

impl Emulator {
    pub fn name(self) -> &'static str {
        match self {
            Emulator::Gitlab => "gitlab",
            Emulator::Kube => "kube",
            Emulator::Registry => "registry",
        }
    }
}

/// The fault-injection decision dropped this connection on purpose.
#[derive(Debug, thiserror::Error)]
#[error("connection reset by fault injection")]
struct InjectedReset;

/// Serves `router` until `shutdown` (over TLS when `tls` is given); returns the accept loop's
/// task.
pub fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    emulator: Emulator,
    router: Router,
    stats: Arc<Stats>,
    faults: Arc<Faults>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let router = with_stats(router, emulator, stats.clone());
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
            };
            let _ = stream.set_nodelay(true);
            stats.record_connection(emulator.name());
            let (router, stats, faults, shutdown, tls) = (
                router.clone(),
                stats.clone(),
                faults.clone(),
                shutdown.clone(),
                tls.clone(),
            );
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        handle(
                            req.map(Body::new),
                            emulator,
                            router.clone(),
                            stats.clone(),
                            faults.clone(),
                        )
                    },
                );
                let builder = hyper::server::conn::http1::Builder::new();
                let served = async {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                };
                tokio::select! {
                    () = served => {}
                    () = shutdown.cancelled() => {}
                }
            });
        }
    })
}

async fn handle(
    req: Request,
    emulator: Emulator,
    router: Router,
    stats: Arc<Stats>,
    faults: Arc<Faults>,
) -> Result<Response, InjectedReset> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let decision = faults.decide(emulator.name(), &method, &path);
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let terminal = match decision.fault {
        Some(fault @ (Fault::Reset | Fault::Status { .. } | Fault::Hang)) => fault,
        Some(Fault::Latency { .. }) | None => return Ok(emulate(router, req).await),
    };
    let suffix = match decision.when {
        When::Before => "",
        // The request is carried out; only its answer is lost or replaced.
        When::After => {
            emulate(router, req).await;
            " after"
        }
    };
    match terminal {
        Fault::Status {
            status,
            retry_after,
        } => {
            let label = format!("{status}{suffix}");
            stats.record_fault(emulator.name(), &method, &path, &label);
            Ok(fault_response(emulator, status, retry_after))
        }
        Fault::Hang => {
            stats.record_fault(emulator.name(), &method, &path, &format!("hang{suffix}"));
            // Held until the connection is dropped: by the client, or at shutdown.
            std::future::pending().await
        }
        _ => {
            stats.record_fault(emulator.name(), &method, &path, &format!("reset{suffix}"));
            Err(InjectedReset)
        }
    }
}

/// The emulator's own answer.
async fn emulate(router: Router, req: Request) -> Response {
    let response: Result<Response, Infallible> = router.oneshot(req).await;
    response.unwrap_or_else(|never| match never {})
}

fn with_stats(router: Router, emulator: Emulator, stats: Arc<Stats>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        (emulator, stats),
        count,
    ))
}

async fn count(
    State((emulator, stats)): State<(Emulator, Arc<Stats>)>,
    req: Request,
    next: Next,
) -> Response {
    // Registry repository names hold slashes, so its routes are one wildcard: count those by
    // the endpoint the path names instead.
    let route = match emulator {
        Emulator::Registry => super::registry::route_template(req.uri().path()),
        Emulator::Gitlab | Emulator::Kube => req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
    }
    .unwrap_or("(unmatched)");
    let method = req.method().as_str();
    // A fleet cluster's requests count under the route a lone cluster would match, and again
    // under the cluster's name.
    match route.strip_prefix(super::kube::CLUSTER_PREFIX) {
        Some(route) if emulator == Emulator::Kube => {
            if let Some(cluster) = super::kube::cluster_of(req.uri().path()) {
                stats.record_cluster(cluster, method, route);
            }
            stats.record(emulator.name(), method, route);
        }
        _ => stats.record(emulator.name(), method, route),
    }
    next.run(req).await
}

/// An error answer in the emulated server's own format, with retry hints on 429 and 503.
fn fault_response(emulator: Emulator, status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = code.canonical_reason().unwrap_or("Error");
    let body = match emulator {
        Emulator::Gitlab => serde_json::json!({ "message": format!("{status} {reason}") }),
        Emulator::Kube => serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("injected fault: {reason}"),
            "reason": kube_reason(status),
            "details": retry_after.map_or(serde_json::json!({}), |s| serde_json::json!({"retryAfterSeconds": s})),
            "code": status,
        }),
        Emulator::Registry => serde_json::json!({
            "errors": [{ "code": registry_code(status), "message": reason, "detail": null }],
        }),
    };
    let mut response = (code, axum::Json(body)).into_response();
    if let Some(seconds) = retry_after {
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
            + seconds;
        headers.insert("ratelimit-reset", HeaderValue::from(reset));
        headers.insert("ratelimit-remaining", HeaderValue::from(0));
    }
    response
}

fn registry_code(status: u16) -> &'static str {
    match status {
        429 => "TOOMANYREQUESTS",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

fn kube_reason(status: u16) -> &'static str {
    match status {
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}
