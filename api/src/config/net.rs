//! Addresses and URLs: trusted proxy ranges, the server's own origins, and
//! URLs with their credentials masked for logs.

use std::fmt;
use std::net::IpAddr;

/// An address range: an IP and how many leading bits must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn matches(a: &[u8], b: &[u8], prefix: u8) -> bool {
            let (bytes, bits) = ((prefix / 8) as usize, prefix % 8);
            a[..bytes] == b[..bytes] && (bits == 0 || (a[bytes] ^ b[bytes]) >> (8 - bits) == 0)
        }
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => matches(&net.octets(), &ip.octets(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => matches(&net.octets(), &ip.octets(), self.prefix),
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The origins a browser shows for pages this server serves itself.
pub fn own_origins(public_url: Option<&str>, listen_addr: &str) -> Vec<String> {
    if let Some(url) = public_url {
        let scheme_end = url.find("://").map_or(0, |i| i + 3);
        let end = url[scheme_end..]
            .find('/')
            .map_or(url.len(), |i| scheme_end + i);
        return vec![url[..end].to_ascii_lowercase()];
    }
    let Ok(addr) = listen_addr.parse::<std::net::SocketAddr>() else {
        return vec![format!("http://{listen_addr}")];
    };
    let port = addr.port();
    let mut origins = vec![format!("http://{addr}")];
    if addr.ip().is_loopback() || addr.ip().is_unspecified() {
        // Names of this machine that no other site can claim.
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            let origin = format!("http://{host}:{port}");
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
    }
    origins
}

/// A connection URL for logs: the password of `scheme://user:password@host`,
/// a bare token in the user part (`nats://TOKEN@host`: NATS reads it as a
/// token; database URLs put only the user name there), and the values of
/// query parameters that carry credentials (`?password=…`) masked.
pub(crate) fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let scheme = &base[..scheme_end];
            let creds = &base[scheme_end + 3..at];
            let masked = match creds.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None if matches!(scheme, "postgres" | "postgresql") => creds.to_owned(),
                None => "***".to_owned(),
            };
            format!("{scheme}://{masked}{}", &base[at..])
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_credential(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

fn is_credential(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["pass", "token", "secret", "auth", "key", "credential"]
        .iter()
        .any(|word| key.contains(word))
}

/// The database URL to connect with: a Postgres server on this host's
/// loopback interface is reached without TLS unless the URL asks for it
/// (`sslmode=…`). The driver's default (`prefer`) would encrypt traffic
/// that never leaves the machine, and that costs a tenth of the chat's
/// throughput on both ends; anyone who could read loopback traffic could
/// read the server's memory as well. Any other URL is used as it is.
pub fn database_connect_url(url: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let Ok(parsed) = url::Url::parse(url) else {
        return Cow::Borrowed(url);
    };
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Cow::Borrowed(url);
    }
    // Postgres URLs are not a scheme `url` knows, so their hosts are opaque
    // names, addresses included.
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    // A host or TLS choice in the query (libpq's forms) is the operator's.
    let chosen = parsed
        .query_pairs()
        .any(|(key, _)| matches!(key.as_ref(), "sslmode" | "host" | "hostaddr"));
    if !loopback || chosen || parsed.fragment().is_some() {
        return Cow::Borrowed(url);
    }
    let separator = if parsed.query().is_some() { '&' } else { '?' };
    Cow::Owned(format!("{url}{separator}sslmode=disable"))
}
