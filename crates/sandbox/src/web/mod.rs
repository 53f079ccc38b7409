//! The Web API surface of an agent: the JavaScript prelude and the host
//! functions it delegates to where a standard must be matched exactly, a
//! capability is needed, or speed matters: WHATWG URL parsing and form
//! encoding (`url` crate), UTF-8 decoding, sleeping (tokio), randomness
//! (getrandom), `crypto.subtle` (`subtle.rs`), `fetch` (reqwest, under the
//! policy) and handing the response to the host ([`Call`]).
//!
//! The prelude is one ES module assembled from `core.js` (console,
//! encoding, Headers), `runtime.js` (timers, crypto) and `http.js` (Request,
//! Response, fetch, and the entry points the host calls). What most calls
//! never touch is a second module, loaded on first use of one of its
//! globals so an idle agent does not pay for it: `url.js` (URL,
//! URLSearchParams), `events.js` (structuredClone, events,
//! AbortController), `streams.js` (WHATWG streams) and `forms.js` (Blob,
//! File, FormData, bodies as streams), framed by `extras.js` and
//! `extras_end.js`. Both are compiled to bytecode once per process.

mod compression;
mod subtle;

use crate::bindings::Bound;
use crate::call::{Call, ResponseHead, Undeliverable};
use crate::fetch::{Fetcher, Incoming, Outgoing};
use rquickjs::prelude::{Async, Func, Opt};
use rquickjs::{Ctx, Exception, Function, IntoJs, Object, TypedArray, Value};
use std::sync::Arc;
use std::time::Duration;

/// The prelude module's source.
pub(crate) const PRELUDE_JS: &str =
    concat!(include_str!("core.js"), include_str!("runtime.js"), include_str!("http.js"));

/// The extras module's source: loaded on first use of one of its globals.
const EXTRAS_JS: &str = concat!(
    include_str!("extras.js"),
    include_str!("url.js"),
    include_str!("events.js"),
    include_str!("streams.js"),
    include_str!("forms.js"),
    include_str!("compression.js"),
    include_str!("subtle.js"),
    include_str!("extras_end.js"),
);

/// The extras module's bytecode, compiled once per process.
static EXTRAS_BYTECODE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// Loads and runs the extras module (the prelude calls this once, on first
/// use of a global it defines).
fn load_extras(ctx: Ctx<'_>) -> rquickjs::Result<()> {
    let bytecode = crate::engine::prelude_bytecode(&EXTRAS_BYTECODE, "phalanx:extras", EXTRAS_JS)
        .map_err(|e| Exception::throw_internal(&ctx, &format!("cannot compile the Web API extras: {e}")))?;
    let (_, evaluated) = crate::engine::load_bytecode(&ctx, bytecode)?.eval()?;
    match evaluated.result::<()>() {
        Some(Err(error)) => Err(error),
        _ => Ok(()),
    }
}

/// Most pairs parsed from one form-encoded string.
const FORM_PAIRS_MAX: usize = 10_000;

/// Most bytes `crypto.getRandomValues` fills at once (the Web Crypto limit).
const RANDOM_BYTES_MAX: usize = 65_536;

/// Longest timer delay, in milliseconds (the wall-time limit ends calls long before).
const TIMER_DELAY_MS_MAX: f64 = 24.0 * 3600.0 * 1000.0;

/// Pairs from a flat `[name, value, name, value, ...]` list.
fn pairs(flat: Vec<String>) -> Vec<(String, String)> {
    let mut flat = flat.into_iter();
    std::iter::from_fn(|| Some((flat.next()?, flat.next()?))).collect()
}

/// A flat `[name, value, ...]` list from pairs.
pub(crate) fn flatten(pairs: Vec<(String, String)>) -> Vec<String> {
    pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()
}

/// Runs `f` on the bytes of a typed array (empty if its buffer was detached).
fn with_bytes<T>(array: &TypedArray<'_, u8>, f: impl FnOnce(&[u8]) -> T) -> T {
    // SAFETY: the slice aliases the engine's buffer and is only valid while
    // no JavaScript runs. `f` is plain Rust that gets no `Ctx`, and the
    // slice does not outlive this call.
    #[allow(unsafe_code)]
    let bytes = unsafe { array.as_bytes() };
    f(bytes.unwrap_or_default())
}

fn bytes_of(array: &TypedArray<'_, u8>) -> Vec<u8> {
    with_bytes(array, <[u8]>::to_vec)
}

fn undeliverable(why: Undeliverable) -> &'static str {
    match why {
        Undeliverable::TooLarge => "the response body is larger than this agent may send",
        Undeliverable::Closed => "the client went away",
        Undeliverable::OutOfOrder => "the response was already sent",
    }
}

/// The result of an async host function as JavaScript sees it: a value, or
/// a `TypeError` thrown with the message.
enum Settled {
    Bytes(Vec<u8>),
    Text(String),
    Null,
    Undefined,
    Failed(String),
}

impl<'js> IntoJs<'js> for Settled {
    fn into_js(self, ctx: &Ctx<'js>) -> rquickjs::Result<Value<'js>> {
        match self {
            Settled::Bytes(bytes) => TypedArray::<u8>::new(ctx.clone(), bytes).map(TypedArray::into_value),
            Settled::Text(text) => text.into_js(ctx),
            Settled::Null => Ok(Value::new_null(ctx.clone())),
            Settled::Undefined => Ok(Value::new_undefined(ctx.clone())),
            Settled::Failed(message) => Err(Exception::throw_type(ctx, &message)),
        }
    }
}

/// Whether the running call has spent its CPU budget (checked by host
/// functions that can run long).
pub(crate) type Spent = Arc<dyn Fn() -> bool + Send + Sync>;

/// Puts the host functions where the prelude finds them (it removes them
/// from the global object before agent code runs).
pub(crate) fn install_host(
    ctx: &Ctx<'_>,
    fetcher: Arc<Fetcher>,
    call: Arc<Call>,
    bound: Arc<Bound>,
    spent: Spent,
) -> rquickjs::Result<()> {
    let host = Object::new(ctx.clone())?;
    host.set(
        "binding",
        Function::new(
            ctx.clone(),
            Async(move |index: usize, method: String, arguments: String| {
                let result = bound.call(index, &method, arguments);
                async move {
                    Ok::<_, rquickjs::Error>(match result.await {
                        Ok(json) => Settled::Text(json),
                        Err(message) => Settled::Failed(message),
                    })
                }
            }),
        )?,
    )?;
    let requests = fetcher.clone();
    host.set(
        "fetch",
        Function::new(
            ctx.clone(),
            Async(move |url: String, method: String, headers: Vec<String>, body: Option<TypedArray<'_, u8>>| {
                let fetcher = requests.clone();
                let outgoing = Outgoing { url, method, headers: pairs(headers), body: body.as_ref().map(bytes_of) };
                async move { Ok::<_, rquickjs::Error>(FetchOutcome(fetcher.fetch(outgoing).await)) }
            }),
        )?,
    )?;
    let reader = fetcher.clone();
    host.set(
        "fetchRead",
        Function::new(
            ctx.clone(),
            Async(move |id: u32| {
                let fetcher = reader.clone();
                async move {
                    Ok::<_, rquickjs::Error>(match fetcher.read(id).await {
                        Ok(Some(chunk)) => Settled::Bytes(chunk),
                        Ok(None) => Settled::Null,
                        Err(error) => Settled::Failed(error),
                    })
                }
            }),
        )?,
    )?;
    host.set("fetchClose", Func::from(move |id: u32| fetcher.close(id)))?;
    let responder = call.clone();
    host.set(
        "respond",
        Func::from(move |ctx: Ctx<'_>, status: u16, headers: Vec<String>, body: Option<TypedArray<'_, u8>>| {
            let head = ResponseHead { status, headers: pairs(headers) };
            responder
                .respond(head, body.as_ref().map(bytes_of))
                .map_err(|why| Exception::throw_type(&ctx, undeliverable(why)))
        }),
    )?;
    host.set(
        "write",
        Function::new(
            ctx.clone(),
            Async(move |chunk: TypedArray<'_, u8>| {
                let call = call.clone();
                let chunk = bytes_of(&chunk);
                async move {
                    Ok::<_, rquickjs::Error>(match call.write(chunk).await {
                        Ok(()) => Settled::Undefined,
                        Err(why) => Settled::Failed(undeliverable(why).to_string()),
                    })
                }
            }),
        )?,
    )?;
    host.set("loadExtras", Func::from(load_extras))?;
    host.set("urlParse", Func::from(url_parse))?;
    host.set("urlSet", Func::from(url_set))?;
    host.set("formParse", Func::from(form_parse))?;
    host.set("formSerialize", Func::from(form_serialize))?;
    host.set("utf8Decode", Func::from(utf8_decode))?;
    host.set("utf8Encode", Func::from(utf8_encode))?;
    host.set("sleep", Function::new(ctx.clone(), Async(sleep))?)?;
    host.set("randomBytes", Func::from(random_bytes))?;
    compression::install(&host)?;
    subtle::install(&host, spent)?;
    ctx.globals().set("__phalanxHost", host)
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

/// UTF-8 bytes of a well-formed string.
fn utf8_encode<'js>(ctx: Ctx<'js>, text: String) -> rquickjs::Result<TypedArray<'js, u8>> {
    TypedArray::new(ctx, text.into_bytes())
}

/// WHATWG UTF-8 decode: invalid sequences become U+FFFD (`null` if `fatal`).
fn utf8_decode(bytes: TypedArray<'_, u8>, fatal: bool) -> Option<String> {
    with_bytes(&bytes, |bytes| match std::str::from_utf8(bytes) {
        Ok(text) => Some(text.to_string()),
        Err(_) if fatal => None,
        Err(_) => Some(String::from_utf8_lossy(bytes).into_owned()),
    })
}

/// A host fetch result as the prelude reads it: `{ error }` or the response
/// head with the id of its body.
struct FetchOutcome(Result<Incoming, String>);

impl<'js> IntoJs<'js> for FetchOutcome {
    fn into_js(self, ctx: &Ctx<'js>) -> rquickjs::Result<Value<'js>> {
        let out = Object::new(ctx.clone())?;
        match self.0 {
            Err(error) => out.set("error", error)?,
            Ok(incoming) => {
                out.set("status", incoming.status)?;
                out.set("statusText", incoming.status_text)?;
                out.set("headers", flatten(incoming.headers))?;
                out.set("body", incoming.body)?;
            }
        }
        Ok(out.into_value())
    }
}
