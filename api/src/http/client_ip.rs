//! Which address a request comes from, and how many WebSockets each
//! address holds open.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

/// The client's address: the peer's, or, behind trusted proxies, the one
/// they recorded. Put in every request's extensions and GraphQL data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address given the peer and the number of proxies in front of
/// the server that append to X-Forwarded-For. Entries left of those the
/// trusted proxies wrote are the client's to forge, so they are not used.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_hops: usize) -> IpAddr {
    if trusted_hops == 0 {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    entries
        .len()
        .checked_sub(trusted_hops)
        .and_then(|i| entries[i].parse().ok())
        .unwrap_or(peer)
}

/// Middleware: records the [`ClientIp`] of every request.
pub async fn record(
    State(trusted_hops): State<usize>,
    mut request: Request,
    next: Next,
) -> Response {
    // Absent only when the router is served without connect info (tests
    // that call it directly); those requests share one anonymous address.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let ip = client_ip(peer, request.headers(), trusted_hops);
    request.extensions_mut().insert(ClientIp(ip));
    next.run(request).await
}

/// Open WebSockets per client address, in this process.
#[derive(Clone, Default)]
pub struct ConnectionCounts {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection; dropping it frees the place.
pub struct ConnectionSlot {
    counts: ConnectionCounts,
    ip: IpAddr,
}

impl ConnectionCounts {
    /// A place for one more connection from `ip`, unless it holds `max`.
    pub fn try_open(&self, ip: IpAddr, max: usize) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_addresses_are_trusted_only_as_far_as_configured() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let forged = headers(&["6.6.6.6, 203.0.113.7"]);
        assert_eq!(client_ip(peer, &forged, 0), peer, "no proxy: the peer");
        assert_eq!(
            client_ip(peer, &forged, 1),
            "203.0.113.7".parse::<IpAddr>().unwrap(),
            "one proxy: the address it appended, not the client's own claim"
        );
        assert_eq!(
            client_ip(peer, &headers(&["6.6.6.6", "203.0.113.7, 10.0.0.2"]), 2),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(peer, &headers(&[]), 1), peer, "no header");
        assert_eq!(client_ip(peer, &headers(&["junk"]), 1), peer);
        assert_eq!(
            client_ip(peer, &headers(&["1.2.3.4"]), 2),
            peer,
            "too short"
        );
    }

    #[test]
    fn connection_places_are_counted_per_address_and_freed() {
        let counts = ConnectionCounts::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = counts.try_open(a, 2).unwrap();
        let _second = counts.try_open(a, 2).unwrap();
        assert!(counts.try_open(a, 2).is_none());
        assert!(
            counts.try_open(b, 2).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert!(counts.try_open(a, 2).is_some());
    }
}
