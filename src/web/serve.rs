//! The HTTP server loop: connections from the [`LimitedListener`] served by hyper with
//! Prometheus's `--web.read-timeout`. A client has that long to send a request's headers
//! (which also closes keep-alive connections idle that long) and at most that long between
//! pieces of a body, so slow or idle clients cannot hold connections forever. On shutdown
//! the listener closes and open connections finish their requests.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use super::listener::LimitedListener;

/// How long shutdown waits for open connections to finish.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` until `shutdown` completes.
pub async fn serve(
    mut listener: LimitedListener,
    app: Router,
    read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(read_timeout)
        .keep_alive_timeout(Duration::from_secs(20))
        .enable_connect_protocol();
    let app = app.map_request(move |request: Request<Incoming>| {
        request.map(|body| Body::new(TimeoutBody::new(read_timeout, body)))
    });
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, _) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let service =
            TowerToHyperService::new(app.clone().map_err(|never: Infallible| match never {}));
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after {DRAIN:?}; closing them");
    }
}
