//! The accept loop of the reference cloud: what `axum::serve` does, plus the limits a server
//! that `sponsorctl cloud serve` ships needs. A client gets [`HEADER_READ_TIMEOUT`] to start
//! and to finish sending a request's headers, a connection serves one request (no keep-alive,
//! so no connection idles between requests), and at most [`MAX_CONNECTIONS`] connections are
//! served at once (more are closed at once, so 300 idle sockets cannot starve the server). On shutdown the loop stops accepting
//! and lets the open connections finish for [`DRAIN_TIMEOUT`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// How long a client may take to send a request's headers, or stay idle between requests
/// (the default of [`EmulatorOptions::header_read_timeout`](crate::EmulatorOptions)).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (the default of
/// [`EmulatorOptions::max_connections`](crate::EmulatorOptions)).
pub const MAX_CONNECTIONS: usize = 256;

/// The limits of one server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header_read_timeout: Duration,
    pub(crate) max_connections: usize,
}
/// How long open connections may finish after a shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `shutdown` fires.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: oneshot::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                %peer,
                "connection refused: {} connections are open",
                limits.max_connections
            );
            drop(stream);
            continue;
        };
        let app = app.clone();
        connections.spawn(async move {
            // hyper's header timeout starts with the first byte: a client that sends nothing
            // is timed here.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(limits.header_read_timeout, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                tracing::debug!(%peer, "closing a connection that sent nothing");
                drop(permit);
                return;
            }
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(req)
                });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .keep_alive(false)
                .header_read_timeout(limits.header_read_timeout);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}
