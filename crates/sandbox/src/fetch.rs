//! `fetch` through the host: the only network access an agent has.
//!
//! Every request is checked against the [`FetchPolicy`] before it leaves:
//! scheme, host allow and deny lists, and the *resolved* addresses (a custom
//! DNS resolver drops loopback, private, link-local and other non-public
//! addresses unless the policy allows them, so a public name pointing at an
//! internal address is refused too). Bodies, counts and time are bounded.
//! Redirects are not followed: the agent sees the 3xx response.
//!
//! Response bodies stream: the agent's `Response.body` pulls chunks from the
//! host as it reads them, so a relayed LLM token stream is never buffered
//! whole. Open bodies are dropped when the call ends. The sockets all
//! agents of the process hold are bounded by [`crate::outgoing`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::outgoing::{self, ClientKey};

/// What an agent may reach and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchPolicy {
    /// If not empty, only these hosts (exact, or `*.example.com`) are reachable.
    pub allow_hosts: Vec<String>,
    /// These hosts are never reachable (same patterns).
    pub deny_hosts: Vec<String>,
    /// Whether loopback, private, link-local and other non-public addresses
    /// may be reached (dev mode only).
    pub allow_private_addresses: bool,
    /// Most `fetch` calls during one agent call.
    pub subrequests_per_call_max: u32,
    /// Largest request body, in bytes.
    pub request_body_bytes_max: usize,
    /// Largest response body, in bytes.
    pub response_body_bytes_max: usize,
    /// Time for one request, connect to last byte.
    pub timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_hosts: Vec::new(),
            deny_hosts: Vec::new(),
            allow_private_addresses: false,
            subrequests_per_call_max: 50,
            request_body_bytes_max: 1024 * 1024,
            response_body_bytes_max: 10 * 1024 * 1024,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Whether an address is on the public internet (not loopback, private,
/// link-local, shared, documentation, multicast, unspecified or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
                || (a == 198 && (b == 18 || b == 19)) // benchmarking (RFC 2544)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let first = segments[0];
            if (first, segments[1]) == (0x64, 0xff9b) && segments[2] == 1 {
                return false; // local-use NAT64 (RFC 8215): translates to any IPv4 the network chooses
            }
            // An IPv6 form that carries an IPv4 address reaches that address
            // (through a translator or a tunnel): it is public only if the
            // IPv4 address is.
            if let Some(v4) = embedded_ipv4(v6) {
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated, RFC 3879)
                || (first == 0x0100 && segments[1..4] == [0, 0, 0]) // discard-only (RFC 6666)
                || (first == 0x2001 && segments[1] < 0x0200) // IETF protocol assignments (RFC 2928), Teredo included
                || (first == 0x2001 && segments[1] == 0x0db8) // documentation
                || (first & 0xfff0) == 0x3ff0) // documentation (RFC 9637)
        }
    }
}

/// The IPv4 address an IPv6 address embeds, for every form that carries
/// one to a translator, a tunnel or a dual stack: IPv4-compatible `::a.b.c.d`,
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`
/// (RFC 2765), NAT64 `64:ff9b::/96` (RFC 6052), 6to4 `2002::/16`
/// (RFC 3056) and Teredo `2001::/32` (RFC 4380: the client's address,
/// inverted).
pub fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) {
        return Some(v4(s[6], s[7])); // compatible and mapped (`::` and `::1` give 0.0.0.0 and 0.0.0.1)
    }
    if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        return Some(v4(s[6], s[7])); // translated
    }
    if (s[0], s[1]) == (0x64, 0xff9b) && s[2..6] == [0; 4] {
        return Some(v4(s[6], s[7])); // NAT64, well-known prefix
    }
    if s[0] == 0x2002 {
        return Some(v4(s[1], s[2])); // 6to4
    }
    if (s[0], s[1]) == (0x2001, 0) {
        return Some(v4(!s[6], !s[7])); // Teredo client
    }
    None
}

fn host_matches(host: &str, pattern: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.ends_with(&format!(".{suffix}")),
        None => host == pattern,
    }
}

/// Resolves names and drops addresses the policy does not allow.
struct PolicyResolver {
    allow_private_addresses: bool,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private_addresses;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                addresses.into_iter().filter(|a| allow_private || is_public(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves only to non-public addresses, which agents may not reach").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A request an agent made.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// The response handed back to the agent; its body is read with
/// [`Fetcher::read`] under the id given here.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub status: u16,
    pub status_text: String,
    pub headers: Vec<(String, String)>,
    pub body: u32,
}

/// A response body the agent has not finished reading.
#[derive(Debug)]
struct OpenBody {
    response: reqwest::Response,
    received: usize,
    /// The request's share of the process's outgoing sockets.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// The host side of `fetch` for one sandbox.
#[derive(Debug)]
pub(crate) struct Fetcher {
    policy: FetchPolicy,
    calls: AtomicU32,
    next_body: AtomicU32,
    open: Mutex<HashMap<u32, OpenBody>>,
    /// Bytes sent out (request lines, headers, bodies) since [`Self::take_sent`].
    sent: AtomicU64,
}

impl Fetcher {
    pub(crate) fn new(policy: FetchPolicy) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Fetcher {
            policy,
            calls: AtomicU32::new(0),
            next_body: AtomicU32::new(0),
            open: Mutex::new(HashMap::new()),
            sent: AtomicU64::new(0),
        }))
    }

    fn open_bodies(&self) -> std::sync::MutexGuard<'_, HashMap<u32, OpenBody>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a new agent call: the subrequest count starts over and bodies
    /// left open by the previous call are dropped.
    pub(crate) fn reset(&self) {
        if self.calls.swap(0, Ordering::Relaxed) != 0 {
            self.open_bodies().clear();
        }
    }

    /// Bytes the agent's requests sent out since the last take (counted for
    /// every request that passed the policy checks, whether or not it was answered).
    pub(crate) fn take_sent(&self) -> u64 {
        self.sent.swap(0, Ordering::Relaxed)
    }

    /// The next chunk of an open response body; `None` at its end.
    pub(crate) async fn read(&self, id: u32) -> Result<Option<Vec<u8>>, String> {
        let Some(mut body) = self.open_bodies().remove(&id) else {
            return Err("the response body is closed".into());
        };
        match body.response.chunk().await.map_err(|e| describe(&e))? {
            None => Ok(None),
            Some(chunk) => {
                body.received += chunk.len();
                if body.received > self.policy.response_body_bytes_max {
                    return Err(format!("response body is larger than {} bytes", self.policy.response_body_bytes_max));
                }
                self.open_bodies().insert(id, body);
                Ok(Some(chunk.to_vec()))
            }
        }
    }

    /// Drops an open response body (the agent cancelled or discarded it).
    pub(crate) fn close(&self, id: u32) {
        self.open_bodies().remove(&id);
    }

    /// Checks the request against the policy, sends it, and reads a bounded body.
    pub(crate) async fn fetch(&self, outgoing: Outgoing) -> Result<Incoming, String> {
        let count = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if count > self.policy.subrequests_per_call_max {
            return Err(format!(
                "subrequest limit reached: at most {} fetch calls per request",
                self.policy.subrequests_per_call_max
            ));
        }
        let url = reqwest::Url::parse(&outgoing.url).map_err(|e| format!("invalid URL {}: {e}", outgoing.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme {} is not allowed: only http and https", url.scheme()));
        }
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_ascii_lowercase();
        if self.policy.deny_hosts.iter().any(|p| host_matches(&host, p))
            || (!self.policy.allow_hosts.is_empty() && !self.policy.allow_hosts.iter().any(|p| host_matches(&host, p)))
        {
            return Err(format!("host {host} is not allowed by this agent's fetch policy"));
        }
        // IP literals never reach the resolver: check them here.
        if let Ok(ip) = host.parse::<IpAddr>()
            && !self.policy.allow_private_addresses
            && !is_public(ip)
        {
            return Err(format!("address {ip} is not public; agents may not reach it"));
        }
        if outgoing.body.as_ref().is_some_and(|b| b.len() > self.policy.request_body_bytes_max) {
            return Err(format!("request body is larger than {} bytes", self.policy.request_body_bytes_max));
        }
        let method =
            reqwest::Method::from_bytes(outgoing.method.as_bytes()).map_err(|_| "invalid method".to_string())?;
        let sent = outgoing.method.len()
            + outgoing.url.len()
            + outgoing.headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum::<usize>()
            + outgoing.body.as_ref().map_or(0, Vec::len);
        let allow_private_addresses = self.policy.allow_private_addresses;
        let client = outgoing::client(
            ClientKey {
                allow_private_addresses,
                timeout: self.policy.timeout,
                origin: url.origin().ascii_serialization(),
            },
            |builder| {
                builder
                    .redirect(reqwest::redirect::Policy::none())
                    .dns_resolver(Arc::new(PolicyResolver { allow_private_addresses }))
                    .no_proxy()
            },
        )?;
        let permit = outgoing::take(self.policy.timeout).await?;
        self.sent.fetch_add(sent as u64, Ordering::Relaxed);
        let mut request = client.request(method, url);
        for (name, value) in outgoing.headers {
            request = request.header(name, value);
        }
        if let Some(body) = outgoing.body {
            request = request.body(body);
        }
        let response = request.send().await.map_err(|e| describe(&e))?;
        let status = response.status();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
            .collect();
        if response.content_length().is_some_and(|n| n > self.policy.response_body_bytes_max as u64) {
            return Err(format!("response body is larger than {} bytes", self.policy.response_body_bytes_max));
        }
        let id = self.next_body.fetch_add(1, Ordering::Relaxed);
        self.open_bodies().insert(id, OpenBody { response, received: 0, _permit: permit });
        Ok(Incoming {
            status: status.as_u16(),
            status_text: status.canonical_reason().unwrap_or_default().to_string(),
            headers,
            body: id,
        })
    }
}

/// The whole error chain (reqwest hides the useful part in sources).
fn describe(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "240.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private} must not be public");
        }
        for public in ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public} is public");
        }
        // IPv6 forms that embed an IPv4 address are as public as that address.
        for embedded in [
            "64:ff9b::7f00:1",    // NAT64 of 127.0.0.1
            "64:ff9b::a9fe:a9fe", // NAT64 of 169.254.169.254
            "64:ff9b:1::a00:1",   // local-use NAT64
            "2002:7f00:1::",      // 6to4 of 127.0.0.1
            "2002:c0a8:101::1",   // 6to4 of 192.168.1.1
            "::10.0.0.1",         // IPv4-compatible
            "::127.0.0.1",
            "::ffff:0:127.0.0.1", // IPv4-translated
            "::ffff:0:a00:1",
            "::ffff:10.0.0.1",                      // IPv4-mapped
            "2001:0:4136:e378:8000:63bf:80ff:fffe", // Teredo of 127.0.0.1
            "fec0::1",
            "100::1",
            "3fff::1",
        ] {
            assert!(!is_public(embedded.parse().unwrap()), "{embedded} must not be public");
        }
        for public in ["64:ff9b::101:101", "2002:808:808::1", "::ffff:8.8.8.8", "::ffff:0:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public} embeds a public address");
        }
        assert!(host_matches("api.openai.com", "*.openai.com"));
        assert!(!host_matches("openai.com.evil.net", "*.openai.com"));
        assert!(host_matches("example.com", "EXAMPLE.com"));
    }
}
