//! The Web API surface of an agent: the JavaScript prelude (`prelude.js`:
//! console, TextEncoder/TextDecoder, URL, URLSearchParams, Headers, Request,
//! Response) and the host functions it delegates to where a standard must be
//! matched exactly: WHATWG URL parsing and setters, and form encoding, both
//! from the `url` crate. Installed once per context, before agent code.

use rquickjs::prelude::{Func, Opt};
use rquickjs::{Ctx, Exception, Object};

/// The prelude script.
const PRELUDE_JS: &str = include_str!("prelude.js");

/// Most pairs parsed from one form-encoded string.
const FORM_PAIRS_MAX: usize = 10_000;

/// Installs the Web API into `ctx`'s global object.
pub(crate) fn install(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    let host = Object::new(ctx.clone())?;
    host.set("urlParse", Func::from(url_parse))?;
    host.set("urlSet", Func::from(url_set))?;
    host.set("formParse", Func::from(form_parse))?;
    host.set("formSerialize", Func::from(form_serialize))?;
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
