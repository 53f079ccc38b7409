//! The Web API surface of an agent: the JavaScript prelude (`prelude.js`:
//! console, TextEncoder/TextDecoder, URL, URLSearchParams, Headers, Request,
//! Response, timers, crypto, structuredClone) and the host functions it
//! delegates to where a standard must be matched exactly or a capability is
//! needed: WHATWG URL parsing and form encoding (`url` crate), sleeping
//! (tokio), randomness (getrandom) and SHA digests (RustCrypto).
//! Installed once per context, before agent code.

use crate::fetch::{Fetcher, Incoming, Outgoing};
use rquickjs::prelude::{Async, Func, Opt};
use rquickjs::{Ctx, Exception, Function, IntoJs, Object, TypedArray, Value};
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;

/// The prelude script.
const PRELUDE_JS: &str = include_str!("prelude.js");

/// Most pairs parsed from one form-encoded string.
const FORM_PAIRS_MAX: usize = 10_000;

/// Most bytes `crypto.getRandomValues` fills at once (the Web Crypto limit).
const RANDOM_BYTES_MAX: usize = 65_536;

/// Longest timer delay, in milliseconds (the wall-time limit ends calls long before).
const TIMER_DELAY_MS_MAX: f64 = 24.0 * 3600.0 * 1000.0;

/// Installs the Web API into `ctx`'s global object.
pub(crate) fn install(ctx: &Ctx<'_>, fetcher: Arc<Fetcher>) -> rquickjs::Result<()> {
    let host = Object::new(ctx.clone())?;
    host.set(
        "fetch",
        Function::new(
            ctx.clone(),
            Async(move |url: String, method: String, headers: Vec<Vec<String>>, body: Opt<Vec<u8>>| {
                let fetcher = fetcher.clone();
                async move {
                    let headers =
                        headers.into_iter().filter_map(|p| <[String; 2]>::try_from(p).ok()).map(|[k, v]| (k, v));
                    let outgoing = Outgoing { url, method, headers: headers.collect(), body: body.0 };
                    Ok::<_, rquickjs::Error>(FetchOutcome(fetcher.fetch(outgoing).await))
                }
            }),
        )?,
    )?;
    host.set("urlParse", Func::from(url_parse))?;
    host.set("urlSet", Func::from(url_set))?;
    host.set("formParse", Func::from(form_parse))?;
    host.set("formSerialize", Func::from(form_serialize))?;
    host.set("sleep", Function::new(ctx.clone(), Async(sleep))?)?;
    host.set("randomBytes", Func::from(random_bytes))?;
    host.set("digest", Func::from(digest))?;
    ctx.globals().set("__phalanxHost", host)?;
    ctx.eval::<(), _>(PRELUDE_JS)
}

/// The components of a URL, as the URL Standard's getters return them.
fn components<'js>(ctx: &Ctx<'js>, url: &url::Url) -> rquickjs::Result<Object<'js>> {
    use url::quirks;
    let parts = Object::new(ctx.clone())?;
    parts.set("href", quirks::href(url))?;
    parts.set("origin", quirks::origin(url))?;
    parts.set("protocol", quirks::protocol(url))?;
    parts.set("username", quirks::username(url))?;
    parts.set("password", quirks::password(url))?;
    parts.set("host", quirks::host(url))?;
    parts.set("hostname", quirks::hostname(url))?;
    parts.set("port", quirks::port(url))?;
    parts.set("pathname", quirks::pathname(url))?;
    parts.set("search", quirks::search(url))?;
    parts.set("hash", quirks::hash(url))?;
    Ok(parts)
}

fn url_parse<'js>(ctx: Ctx<'js>, input: String, base: Opt<String>) -> rquickjs::Result<Object<'js>> {
    let parsed = match base.0 {
        Some(base) => url::Url::parse(&base).and_then(|base| base.join(&input)),
        None => url::Url::parse(&input),
    };
    match parsed {
        Ok(url) => components(&ctx, &url),
        Err(error) => Err(Exception::throw_type(&ctx, &format!("Invalid URL {input:?}: {error}"))),
    }
}

/// Applies one setter. Invalid values are ignored, as the standard says.
fn url_set<'js>(ctx: Ctx<'js>, href: String, part: String, value: String) -> rquickjs::Result<Object<'js>> {
    use url::quirks;
    let mut url = url::Url::parse(&href).map_err(|e| Exception::throw_type(&ctx, &format!("Invalid URL: {e}")))?;
    let _ = match part.as_str() {
        "protocol" => quirks::set_protocol(&mut url, &value),
        "username" => quirks::set_username(&mut url, &value),
        "password" => quirks::set_password(&mut url, &value),
        "host" => quirks::set_host(&mut url, &value),
        "hostname" => quirks::set_hostname(&mut url, &value),
        "port" => quirks::set_port(&mut url, &value),
        "pathname" => {
            quirks::set_pathname(&mut url, &value);
            Ok(())
        }
        "search" => {
            quirks::set_search(&mut url, &value);
            Ok(())
        }
        "hash" => {
            quirks::set_hash(&mut url, &value);
            Ok(())
        }
        other => return Err(Exception::throw_type(&ctx, &format!("unknown URL component {other}"))),
    };
    components(&ctx, &url)
}

fn form_parse(input: String) -> Vec<Vec<String>> {
    url::form_urlencoded::parse(input.as_bytes())
        .take(FORM_PAIRS_MAX)
        .map(|(name, value)| vec![name.into_owned(), value.into_owned()])
        .collect()
}

fn form_serialize(pairs: Vec<Vec<String>>) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for pair in &pairs {
        if let [name, value] = pair.as_slice() {
            serializer.append_pair(name, value);
        }
    }
    serializer.finish()
}

/// Resolves after `delay_ms` (timers are built on it in the prelude).
async fn sleep(delay_ms: f64) -> rquickjs::Result<()> {
    let delay_ms = if delay_ms.is_finite() { delay_ms.clamp(0.0, TIMER_DELAY_MS_MAX) } else { 0.0 };
    tokio::time::sleep(Duration::from_secs_f64(delay_ms / 1000.0)).await;
    Ok(())
}

/// `count` bytes from the operating system's randomness.
fn random_bytes(ctx: Ctx<'_>, count: usize) -> rquickjs::Result<Vec<u8>> {
    if count > RANDOM_BYTES_MAX {
        return Err(Exception::throw_range(
            &ctx,
            &format!("getRandomValues: at most {RANDOM_BYTES_MAX} bytes at a time"),
        ));
    }
    let mut bytes = vec![0u8; count];
    getrandom::fill(&mut bytes).map_err(|e| Exception::throw_internal(&ctx, &format!("no randomness: {e}")))?;
    Ok(bytes)
}

/// `crypto.subtle.digest` for the SHA family.
fn digest(ctx: Ctx<'_>, algorithm: String, data: Vec<u8>) -> rquickjs::Result<Vec<u8>> {
    Ok(match algorithm.to_ascii_uppercase().as_str() {
        "SHA-1" => sha1::Sha1::digest(&data).to_vec(),
        "SHA-256" => sha2::Sha256::digest(&data).to_vec(),
        "SHA-384" => sha2::Sha384::digest(&data).to_vec(),
        "SHA-512" => sha2::Sha512::digest(&data).to_vec(),
        other => {
            return Err(Exception::throw_type(&ctx, &format!("digest: unsupported algorithm {other}")));
        }
    })
}

/// A host fetch result as the prelude reads it: `{ error }` or the response.
struct FetchOutcome(Result<Incoming, String>);

impl<'js> IntoJs<'js> for FetchOutcome {
    fn into_js(self, ctx: &Ctx<'js>) -> rquickjs::Result<Value<'js>> {
        let out = Object::new(ctx.clone())?;
        match self.0 {
            Err(error) => out.set("error", error)?,
            Ok(incoming) => {
                out.set("status", incoming.status)?;
                out.set("statusText", incoming.status_text)?;
                let headers: Vec<Vec<String>> = incoming.headers.into_iter().map(|(k, v)| vec![k, v]).collect();
                out.set("headers", headers)?;
                out.set("body", TypedArray::<u8>::new(ctx.clone(), incoming.body)?)?;
            }
        }
        Ok(out.into_value())
    }
}
