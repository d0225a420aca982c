//! Which address a request comes from, and how many WebSockets each
//! address holds open.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::config::IpNet;

/// The client's address: the peer's, or, behind trusted proxies, the one
/// they recorded. Put in every request's extensions and GraphQL data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// Which proxies' X-Forwarded-For the server believes.
#[derive(Clone, Debug, Default)]
pub struct ProxyTrust {
    /// Proxies named by address or range: only a peer among them is
    /// believed, so a client that reaches the server directly cannot
    /// forge its address.
    pub proxies: Vec<IpNet>,
    /// Without named proxies: how many proxies append to the header.
    pub hops: usize,
}

impl ProxyTrust {
    /// The client address given the peer. Entries left of those the
    /// trusted proxies wrote are the client's to forge, so they are not used.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.proxies.is_empty() && self.hops == 0 {
            return peer;
        }
        let entries: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if self.proxies.is_empty() {
            return entries
                .len()
                .checked_sub(self.hops)
                .and_then(|i| entries[i].parse().ok())
                .unwrap_or(peer);
        }
        let trusted = |ip: IpAddr| self.proxies.iter().any(|p| p.contains(ip));
        if !trusted(peer) {
            return peer;
        }
        // From the right: each trusted proxy wrote the address it got the
        // request from; the first address no trusted proxy has is the client.
        let mut client = peer;
        for entry in entries.iter().rev() {
            match entry.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        client
    }
}

/// Middleware: records the [`ClientIp`] of every request.
pub async fn record(
    State(trust): State<Arc<ProxyTrust>>,
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
    let ip = trust.client_ip(peer, request.headers());
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
        let client_ip = |peer, headers: &HeaderMap, hops| {
            ProxyTrust {
                proxies: vec![],
                hops,
            }
            .client_ip(peer, headers)
        };
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
    fn named_proxies_are_believed_and_no_one_else() {
        let trust = ProxyTrust {
            proxies: vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.1".parse().unwrap()],
            hops: 0,
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let forged = headers(&["6.6.6.6"]);
        assert_eq!(
            trust.client_ip(ip("203.0.113.9"), &forged),
            ip("203.0.113.9"),
            "a client that reaches the server directly cannot forge its address"
        );
        assert_eq!(
            trust.client_ip(ip("10.1.2.3"), &headers(&["6.6.6.6, 203.0.113.7"])),
            ip("203.0.113.7"),
            "the proxy's entry, not the client's claim left of it"
        );
        assert_eq!(
            trust.client_ip(
                ip("10.1.2.3"),
                &headers(&["6.6.6.6, 203.0.113.7, 192.0.2.1"])
            ),
            ip("203.0.113.7"),
            "through two trusted proxies"
        );
        assert_eq!(
            trust.client_ip(ip("::ffff:10.1.2.3"), &headers(&["203.0.113.7"])),
            ip("203.0.113.7"),
            "an IPv4-mapped peer"
        );
        assert_eq!(
            trust.client_ip(ip("10.1.2.3"), &headers(&[])),
            ip("10.1.2.3")
        );
        assert_eq!(
            trust.client_ip(ip("10.1.2.3"), &headers(&["junk, 203.0.113.7"])),
            ip("203.0.113.7")
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
