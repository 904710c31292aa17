//! The accept loop of the reference cloud: what `axum::serve` does, plus the limits a server
//! that `sponsorctl cloud serve` ships needs. A client gets [`HEADER_READ_TIMEOUT`] to start
//! sending a request, to finish its headers, and to send the next one on a kept-alive
//! connection (an idle connection is closed), and at most [`MAX_CONNECTIONS`] connections are
//! served at once (more are closed at once, so 300 idle sockets cannot starve the server).
//! Keep-alive stays on: a connection per request made a 100,000-row sync 30% slower. On shutdown the loop stops accepting
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
    // Tells every connection to finish: idle kept-alive ones close at once, a request being
    // answered completes first.
    let (closing, closed) = tokio::sync::watch::channel(false);
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
        // As axum::serve does: answers leave at once instead of waiting for Nagle's algorithm.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
        }
        let app = app.clone();
        let mut closed = closed.clone();
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
                .keep_alive(true)
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                ended = conn.as_mut() => ended,
                () = until_closed(&mut closed) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    let _ = closing.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

/// Resolves once the server shuts down (or its sender is gone).
async fn until_closed(closed: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if *closed.borrow_and_update() {
            return;
        }
        if closed.changed().await.is_err() {
            return;
        }
    }
}
