//! The accept loop: TCP connections in, HTTP/1.1 (and WebSocket upgrades)
//! served by hyper, with the limits a server on the internet needs.
//!
//! axum's own `serve` sets no timeouts and counts nothing: 1,100 idle TCP
//! connections used up the process's file descriptors and healthy clients
//! timed out. Here
//! - a connection that has not sent a whole request head within
//!   `HTTP_HEADER_TIMEOUT_SECS` is closed: a new one, and an idle
//!   keep-alive one waiting for its next request alike (hyper starts the
//!   timer whenever it starts reading a head);
//! - one client address holds at most `IP_MAX_CONNECTIONS` connections,
//!   HTTP and WebSocket together (a WebSocket keeps its TCP connection's
//!   place for its whole life); proxies named in `TRUSTED_PROXIES` are not
//!   counted here, their clients are counted per WebSocket by address;
//! - the descriptor limit is raised to the hard limit at start.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service as _;

use super::client_ip::{ConnectionCounts, ConnectionSlot};
use crate::config::IpNet;
use crate::error::ErrorCode;

/// What the accept loop enforces.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_per_address: usize,
    pub trusted_proxies: Vec<IpNet>,
}

/// Raises the soft limit on open files to the hard limit, so the
/// per-address cap, not the descriptor table, is what refuses clients.
pub fn raise_descriptor_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// Serves `router` on `listener` until `stop` resolves; then stops
/// accepting and lets every connection finish its request in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Turns every handler into its route once; a router called as it is
    // boxes its handlers again on every request (axum's own `serve` does
    // this too, in `into_make_service`).
    let router = router.with_state::<()>(());
    let counts = ConnectionCounts::default();
    let limits = Arc::new(limits);
    // Each connection holds a receiver; `closed()` below waits for them all.
    let (stopping, stop_seen) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            // Nagle held back the last small frame of a burst until the
            // client's delayed ACK (~40 ms for a resuming client).
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let ip = canonical(peer.ip());
        let slot = if limits.trusted_proxies.iter().any(|p| p.contains(ip)) {
            None
        } else {
            match counts.try_open(ip, limits.max_per_address) {
                Some(slot) => Some(slot),
                None => {
                    tokio::spawn(refuse(tcp, limits.max_per_address));
                    continue;
                }
            }
        };
        let io = TokioIo::new(Counted { tcp, _slot: slot });
        let peer = ConnectInfo(SocketAddr::new(ip, peer.port()));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(peer);
            router.clone().call(request)
        });
        let mut stop_seen = stop_seen.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder.serve_connection(io, service).with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let mut draining = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::trace!(error = %e, "connection ended");
                        }
                        break;
                    }
                    changed = stop_seen.changed(), if !draining => {
                        draining = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            drop(stop_seen);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(stop_seen);
    stopping.closed().await;
    Ok(())
}

/// An IPv4 peer on a dual-stack socket shows as `::ffff:a.b.c.d`; counted
/// and logged as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Answers a connection over the per-address cap with 429 and closes it,
/// without reading its request: the client learns why instead of seeing a
/// reset.
async fn refuse(mut tcp: TcpStream, max: usize) {
    let body = serde_json::json!({ "errors": [{
        "message": format!("at most {max} connections per client address (IP_MAX_CONNECTIONS)"),
        "extensions": { "code": ErrorCode::RateLimited.as_str() },
    }] })
    .to_string();
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        tcp.write_all(response.as_bytes()).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// A TCP stream that keeps its address's place while it lives, through a
/// WebSocket upgrade too (hyper hands the same stream on).
struct Counted {
    tcp: TcpStream,
    _slot: Option<ConnectionSlot>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
