//! Protection against hostile or excessive traffic: security headers, URI and header size
//! limits, a bound on requests in flight, and a per-client rate limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::problem::Problem;

/// Longest request target accepted (414 above).
pub const MAX_URI_BYTES: usize = 2048;
/// Largest total size of request headers (431 above).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Requests handled at once per service; more are shed with 503 instead of queueing.
pub const MAX_IN_FLIGHT: usize = 1024;

const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
    // The API answers JSON; only the vendored Swagger UI at /docs loads scripts and
    // styles, all from this origin (its initialiser is inline).
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    ),
];

/// Middleware: rejects oversized request targets and headers, sheds load above
/// [`MAX_IN_FLIGHT`], and adds security headers to every response.
pub async fn guard(
    State(in_flight): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match check_sizes(&request) {
        Some(problem) => refuse(request, problem).await,
        None => match in_flight.try_acquire() {
            Ok(_permit) => next.run(request).await,
            Err(_) => {
                let problem = Problem::unavailable("The service is overloaded; retry shortly.", 1);
                refuse(request, problem).await
            }
        },
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers
            .entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// The most of a refused request's body that is read before the refusal is sent.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Answers `problem` to a request whose body no handler read, after reading that body.
///
/// Sent over an unread body, a response makes hyper close the connection right after it,
/// without a `Connection: close`. A proxy that has already put the connection back in
/// its pool (Traefik does, as soon as the response ends) sends the next request on it
/// and answers that one 500 "server closed idle connection": measured in the compose
/// walkthrough, one registration in about a hundred 429s. A body over [`DRAIN_LIMIT`]
/// is not read: the answer then says `Connection: close`, so no proxy reuses it.
async fn refuse(request: Request, problem: Problem) -> Response {
    let drained = axum::body::to_bytes(request.into_body(), DRAIN_LIMIT).await;
    let mut response = problem.into_response();
    if drained.is_err() {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    response
}

/// The semaphore behind the in-flight bound of one service.
pub fn in_flight_permits() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_IN_FLIGHT))
}

fn check_sizes(request: &Request) -> Option<Problem> {
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Some(Problem::new(
            StatusCode::URI_TOO_LONG,
            "The request target is too long.",
        ));
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (header_bytes > MAX_HEADER_BYTES).then(|| {
        Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "The request headers are too large.",
        )
    })
}

/// An IP network such as `10.0.0.0/8` or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = text.trim().split_once('/').unwrap_or((text.trim(), ""));
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}` has a bad prefix length"))?
        };
        Ok(Self { addr, prefix })
    }
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, ip, bits) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(u32::from(n)), u128::from(u32::from(i)), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let shift = bits - u32::from(self.prefix);
        shift >= bits || (net >> shift) == (ip >> shift)
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

/// Token buckets per client address.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    trusted: Arc<[IpNet]>,
    buckets: Arc<Mutex<HashMap<IpAddr, Bucket>>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets kept before idle (full) ones are dropped, so the map stays bounded.
const MAX_TRACKED_CLIENTS: usize = 10_000;

impl RateLimiter {
    /// `per_minute` requests per client with bursts of `burst`.
    pub fn new(per_minute: u32, burst: u32, trusted: Vec<IpNet>) -> Self {
        Self {
            per_second: f64::from(per_minute) / 60.0,
            burst: f64::from(burst.max(1)),
            trusted: trusted.into(),
            buckets: Arc::default(),
        }
    }

    /// Takes a token for `client`, or says how long until one is available.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() >= MAX_TRACKED_CLIENTS {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| {
                b.tokens + rate * now.duration_since(b.updated).as_secs_f64() < burst
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let refilled = self.per_second * now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + refilled).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

/// Middleware: 429 with `Retry-After` once a client exceeds its rate.
pub async fn rate_limit(
    State(limiter): State<RateLimiter>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0.ip());
    let client = client_ip(peer, request.headers(), &limiter.trusted);
    match limiter.check(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many registrations from this address; retry later.",
            );
            problem.retry_after(wait.as_secs().max(1));
            refuse(request, problem).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("net")).collect()
    }

    #[test]
    fn networks_match_their_addresses_only() {
        let net: IpNet = "10.1.0.0/16".parse().expect("net");
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        assert!(!net.contains("::1".parse().expect("ip")));
        assert!(
            "0.0.0.0/0"
                .parse::<IpNet>()
                .expect("net")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nonsense".parse::<IpNet>().is_err());
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 1.2.3.4, 10.0.0.9"),
        );
        let proxy: IpAddr = "10.0.0.2".parse().expect("ip");
        let stranger: IpAddr = "5.5.5.5".parse().expect("ip");
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            "1.2.3.4".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_ip(stranger, &headers, &trusted),
            stranger,
            "a spoofed header is ignored"
        );
        assert_eq!(
            client_ip(proxy, &headers, &[]),
            proxy,
            "no trusted proxies configured"
        );
    }

    #[test]
    fn a_client_gets_its_burst_then_waits_while_others_go_on() {
        let limiter = RateLimiter::new(60, 3, Vec::new());
        let a: IpAddr = "1.1.1.1".parse().expect("ip");
        let b: IpAddr = "2.2.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        let wait = limiter.check(a).expect_err("limited");
        assert!(wait <= Duration::from_secs(1));
        assert!(limiter.check(b).is_ok());
    }
}
