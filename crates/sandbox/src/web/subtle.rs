//! `crypto.subtle` on the host: the prelude's `SubtleCrypto` (in
//! `subtle.js`) normalizes arguments and calls these functions, which run
//! `phalanx-webcrypto`. A `CryptoKey` holds an opaque [`KeyHandle`]: a
//! JavaScript object of a host class whose only content is the host's
//! [`Key`], so key material never enters the JavaScript heap unless the key
//! is extractable and exported. Handles live in one instance's runtime and
//! are freed with it (or when the `CryptoKey` is collected); they mean
//! nothing anywhere else (another agent gets `{}` through JSON).
//!
//! Errors become JavaScript values the prelude turns into `DOMException`s
//! (or `TypeError`s) with the spec's names. Every function runs on the
//! agent's thread inside the call, so its time counts against the call's
//! CPU limit; PBKDF2 and RSA key sizes are bounded by `phalanx-webcrypto`,
//! and RSA key generation stops when the call's CPU budget is spent.

use super::Spent;
use phalanx_webcrypto::{self as webcrypto, Exported, Format, Generated, Key, KeyData, Params, UsageList};
use rquickjs::class::{JsClass, Readable, Trace, Tracer};
use rquickjs::function::Constructor;
use rquickjs::prelude::Func;
use rquickjs::{Array, Class, Ctx, Exception, IntoJs, JsLifetime, Object, TypedArray, Value};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use zeroize::Zeroizing;

/// Most `CryptoKey`s one instance may hold at once: their material lives
/// outside the JavaScript heap and its limit (a 4096-bit RSA private key is
/// a few KiB), so they are counted here.
pub(crate) const KEYS_LIVE_MAX: usize = 4096;

/// How many of an instance's keys are alive (handles not yet collected).
#[derive(Clone, Default)]
pub(crate) struct LiveKeys(Arc<AtomicUsize>);

/// Counts one live key until its handle is collected.
struct Alive(Arc<AtomicUsize>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A `CryptoKey`'s handle: the host's key, opaque to JavaScript.
pub(crate) struct KeyHandle {
    key: Arc<Key>,
    _alive: Alive,
}

impl<'js> Trace<'js> for KeyHandle {
    fn trace<'a>(&self, _tracer: Tracer<'a, 'js>) {}
}

// SAFETY: `KeyHandle` holds no JavaScript values, so it is the same type
// for every lifetime.
#[allow(unsafe_code)]
unsafe impl<'js> JsLifetime<'js> for KeyHandle {
    type Changed<'to> = KeyHandle;
}

impl<'js> JsClass<'js> for KeyHandle {
    const NAME: &'static str = "CryptoKeyHandle";
    type Mutable = Readable;

    fn constructor(_ctx: &Ctx<'js>) -> rquickjs::Result<Option<Constructor<'js>>> {
        Ok(None)
    }
}

/// Throws `error` as the prelude expects: an object with `name`, `message`
/// and `webcrypto: true`.
fn throw(ctx: &Ctx<'_>, error: webcrypto::Error) -> rquickjs::Error {
    let thrown = (|| {
        let object = Object::new(ctx.clone())?;
        object.set("name", error.name.as_str())?;
        object.set("message", error.message.as_str())?;
        object.set("webcrypto", true)?;
        Ok::<_, rquickjs::Error>(ctx.throw(object.into_value()))
    })();
    thrown.unwrap_or_else(|e| e)
}

fn bytes_of(array: &TypedArray<'_, u8>) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(super::bytes_of(array))
}

/// The key behind a handle the prelude passes (a `TypeError` for anything else).
fn key_of<'js>(ctx: &Ctx<'js>, value: &Value<'js>) -> rquickjs::Result<Arc<Key>> {
    let class =
        Class::<KeyHandle>::from_value(value).map_err(|_| Exception::throw_type(ctx, "expected a CryptoKey"))?;
    Ok(class.borrow().key.clone())
}

/// The algorithm dictionary the prelude normalized: `BufferSource`
/// members as `Uint8Array`s, `hash` as its name, `public` as a handle. The
/// prelude sets only the members given, so this reads only those.
fn params<'js>(ctx: &Ctx<'js>, object: &Object<'js>) -> rquickjs::Result<Params> {
    use rquickjs::FromJs;
    let mut params = Params::default();
    for member in object.props::<String, Value<'js>>() {
        let (name, value) = member?;
        let bytes = |value: Value<'js>| -> rquickjs::Result<Option<Vec<u8>>> {
            Ok(Some(super::bytes_of(&TypedArray::<u8>::from_value(value)?)))
        };
        match name.as_str() {
            "name" => params.name = String::from_js(ctx, value)?,
            "hash" => params.hash = Some(String::from_js(ctx, value)?),
            "namedCurve" => params.named_curve = Some(String::from_js(ctx, value)?),
            "length" => params.length = Some(u32::from_js(ctx, value)?),
            "modulusLength" => params.modulus_length = Some(u32::from_js(ctx, value)?),
            "tagLength" => params.tag_length = Some(u32::from_js(ctx, value)?),
            "iterations" => params.iterations = Some(u32::from_js(ctx, value)?),
            "saltLength" => params.salt_length = Some(u32::from_js(ctx, value)?),
            "publicExponent" => params.public_exponent = bytes(value)?,
            "iv" => params.iv = bytes(value)?,
            "counter" => params.counter = bytes(value)?,
            "additionalData" => params.additional_data = bytes(value)?,
            "label" => params.label = bytes(value)?,
            "salt" => params.salt = bytes(value)?,
            "info" => params.info = bytes(value)?,
            "public" => params.public = Some(key_of(ctx, &value)?),
            _ => {}
        }
    }
    Ok(params)
}

/// A new key as the prelude wraps it: `[handle, type, extractable,
/// algorithm, usages]`.
fn key_value<'js>(ctx: &Ctx<'js>, live: &LiveKeys, key: Key) -> rquickjs::Result<Value<'js>> {
    if live.0.fetch_add(1, Ordering::Relaxed) >= KEYS_LIVE_MAX {
        live.0.fetch_sub(1, Ordering::Relaxed);
        return Err(Exception::throw_range(
            ctx,
            &format!("at most {KEYS_LIVE_MAX} CryptoKeys may be alive in one agent instance"),
        ));
    }
    let alive = Alive(live.0.clone());
    let algorithm = Object::new(ctx.clone())?;
    let description = key.algorithm();
    algorithm.set("name", description.algorithm.name())?;
    if let Some(length) = description.length {
        algorithm.set("length", length)?;
    }
    if let Some(hash) = description.hash {
        let object = Object::new(ctx.clone())?;
        object.set("name", hash.name())?;
        algorithm.set("hash", object)?;
    }
    if let Some(curve) = description.named_curve {
        algorithm.set("namedCurve", curve.name())?;
    }
    if let Some(bits) = description.modulus_length {
        algorithm.set("modulusLength", bits)?;
    }
    if let Some(exponent) = &description.public_exponent {
        algorithm.set("publicExponent", TypedArray::<u8>::new(ctx.clone(), exponent.clone())?)?;
    }
    let (kind, extractable, usages) = (key.kind().as_str(), key.extractable(), key.usage_names().to_vec());
    let handle = Class::instance(ctx.clone(), KeyHandle { key: Arc::new(key), _alive: alive })?;
    let parts = Array::new(ctx.clone())?;
    parts.set(0, handle)?;
    parts.set(1, kind)?;
    parts.set(2, extractable)?;
    parts.set(3, algorithm)?;
    parts.set(4, usages)?;
    Ok(parts.into_value())
}

fn usages(ctx: &Ctx<'_>, names: Vec<String>) -> rquickjs::Result<UsageList> {
    UsageList::parse(&names).map_err(|e| throw(ctx, e))
}

fn format(ctx: &Ctx<'_>, name: &str) -> rquickjs::Result<Format> {
    Format::parse(name).map_err(|e| throw(ctx, e))
}

/// Bytes handed to JavaScript as an `ArrayBuffer` (the engine takes the
/// buffer, no copy).
fn bytes_value<'js>(ctx: &Ctx<'js>, bytes: Vec<u8>) -> rquickjs::Result<Value<'js>> {
    rquickjs::ArrayBuffer::new(ctx.clone(), bytes).map(rquickjs::ArrayBuffer::into_value)
}

/// The CPU-budget check every crypto call makes first: the interrupt
/// handler runs only every so many JavaScript operations, which a loop of
/// costly host calls takes long to reach, so each call checks the budget
/// and the loop ends within one operation of the CPU limit.
fn within_budget(ctx: &Ctx<'_>, spent: &Spent) -> rquickjs::Result<()> {
    if spent() {
        let message = "the call's CPU time is spent".to_string();
        return Err(throw(ctx, webcrypto::Error { name: webcrypto::ErrorName::Operation, message }));
    }
    Ok(())
}

fn import<'js>(
    ctx: Ctx<'js>,
    live: &LiveKeys,
    format_name: String,
    data: Value<'js>,
    algorithm: Object<'js>,
    extractable: bool,
    usage_names: Vec<String>,
) -> rquickjs::Result<Value<'js>> {
    let format = format(&ctx, &format_name)?;
    let key_data = match data.as_string() {
        Some(text) => KeyData::Jwk(Zeroizing::new(text.to_string()?)),
        None => match TypedArray::<u8>::from_value(data) {
            Ok(array) => KeyData::Bytes(bytes_of(&array)),
            Err(_) => {
                return Err(Exception::throw_type(&ctx, "importKey: key data must be a BufferSource or a JsonWebKey"));
            }
        },
    };
    let params = params(&ctx, &algorithm)?;
    let usages = usages(&ctx, usage_names)?;
    let key = webcrypto::import_key(format, &key_data, &params, extractable, &usages).map_err(|e| throw(&ctx, e))?;
    key_value(&ctx, live, key)
}

fn export<'js>(ctx: Ctx<'js>, format_name: String, handle: Value<'js>) -> rquickjs::Result<Value<'js>> {
    let format = format(&ctx, &format_name)?;
    let key = key_of(&ctx, &handle)?;
    match webcrypto::export_key(format, &key).map_err(|e| throw(&ctx, e))? {
        Exported::Bytes(bytes) => bytes_value(&ctx, bytes.to_vec()),
        Exported::Jwk(text) => text.as_str().into_js(&ctx),
    }
}

fn generate<'js>(
    ctx: Ctx<'js>,
    live: &LiveKeys,
    spent: &Spent,
    algorithm: Object<'js>,
    extractable: bool,
    usage_names: Vec<String>,
) -> rquickjs::Result<Value<'js>> {
    let params = params(&ctx, &algorithm)?;
    let usages = usages(&ctx, usage_names)?;
    let generated = webcrypto::generate_key_until(&params, extractable, &usages, &|| spent());
    match generated.map_err(|e| throw(&ctx, e))? {
        Generated::Secret(key) => key_value(&ctx, live, key),
        Generated::Pair { public, private } => {
            let pair = Object::new(ctx.clone())?;
            pair.set("publicKey", key_value(&ctx, live, public)?)?;
            pair.set("privateKey", key_value(&ctx, live, private)?)?;
            Ok(pair.into_value())
        }
    }
}

/// The operations of `cryptoOperate`, as the prelude numbers them.
const ENCRYPT: u8 = 0;
const DECRYPT: u8 = 1;
const SIGN: u8 = 2;
const VERIFY: u8 = 3;

/// `encrypt`, `decrypt`, `sign` and `verify` (`signature` only for `verify`).
fn operate<'js>(
    ctx: Ctx<'js>,
    spent: &Spent,
    operation: u8,
    algorithm: Object<'js>,
    handle: Value<'js>,
    data: TypedArray<'js, u8>,
    signature: Option<TypedArray<'js, u8>>,
) -> rquickjs::Result<Value<'js>> {
    within_budget(&ctx, spent)?;
    let params = params(&ctx, &algorithm)?;
    let key = key_of(&ctx, &handle)?;
    let failed = |e| throw(&ctx, e);
    // The operation reads the engine's buffers in place: it runs no
    // JavaScript, so nothing can change them meanwhile.
    let out = super::with_bytes(&data, |data| match operation {
        ENCRYPT => webcrypto::encrypt(&params, &key, data).map(Some),
        DECRYPT => webcrypto::decrypt(&params, &key, data).map(Some),
        SIGN => webcrypto::sign(&params, &key, data).map(Some),
        _ => Ok(None),
    });
    match out.map_err(failed)? {
        Some(out) => bytes_value(&ctx, out),
        None if operation == VERIFY => {
            let valid = match signature.as_ref() {
                Some(signature) => super::with_bytes(signature, |signature| {
                    super::with_bytes(&data, |data| webcrypto::verify(&params, &key, signature, data))
                }),
                None => webcrypto::verify(&params, &key, &[], &[]),
            };
            valid.map_err(failed)?.into_js(&ctx)
        }
        None => Err(Exception::throw_type(&ctx, &format!("unknown operation {operation}"))),
    }
}

fn derive_bits<'js>(
    ctx: Ctx<'js>,
    algorithm: Object<'js>,
    handle: Value<'js>,
    length: Option<u32>,
) -> rquickjs::Result<Value<'js>> {
    let params = params(&ctx, &algorithm)?;
    let key = key_of(&ctx, &handle)?;
    let bits = webcrypto::derive_bits(&params, &key, length).map_err(|e| throw(&ctx, e))?;
    bytes_value(&ctx, bits)
}

fn derive_key<'js>(
    ctx: Ctx<'js>,
    live: &LiveKeys,
    algorithm: Object<'js>,
    handle: Value<'js>,
    derived: Object<'js>,
    extractable: bool,
    usage_names: Vec<String>,
) -> rquickjs::Result<Value<'js>> {
    let (params, derived) = (params(&ctx, &algorithm)?, params(&ctx, &derived)?);
    let key = key_of(&ctx, &handle)?;
    let usages = usages(&ctx, usage_names)?;
    let derived = webcrypto::derive_key(&params, &key, &derived, extractable, &usages).map_err(|e| throw(&ctx, e))?;
    key_value(&ctx, live, derived)
}

fn wrap<'js>(
    ctx: Ctx<'js>,
    format_name: String,
    handle: Value<'js>,
    wrapping: Value<'js>,
    algorithm: Object<'js>,
) -> rquickjs::Result<Value<'js>> {
    let format = format(&ctx, &format_name)?;
    let (key, wrapping) = (key_of(&ctx, &handle)?, key_of(&ctx, &wrapping)?);
    let params = params(&ctx, &algorithm)?;
    let wrapped = webcrypto::wrap_key(format, &key, &wrapping, &params).map_err(|e| throw(&ctx, e))?;
    bytes_value(&ctx, wrapped)
}

/// `unwrapKey`; `key` is `{ extractable, usages }` of the unwrapped key.
#[allow(clippy::too_many_arguments)] // unwrapKey's own arguments, and the instance's keys
fn unwrap<'js>(
    ctx: Ctx<'js>,
    live: &LiveKeys,
    format_name: String,
    wrapped: TypedArray<'js, u8>,
    unwrapping: Value<'js>,
    algorithm: Object<'js>,
    import_algorithm: Object<'js>,
    key: Object<'js>,
) -> rquickjs::Result<Value<'js>> {
    let (extractable, usage_names): (bool, Vec<String>) = (key.get("extractable")?, key.get("usages")?);
    let format = format(&ctx, &format_name)?;
    let unwrapping = key_of(&ctx, &unwrapping)?;
    let (params, import_params) = (params(&ctx, &algorithm)?, params(&ctx, &import_algorithm)?);
    let usages = usages(&ctx, usage_names)?;
    let key =
        webcrypto::unwrap_key(format, &bytes_of(&wrapped), &unwrapping, &params, &import_params, extractable, &usages)
            .map_err(|e| throw(&ctx, e))?;
    key_value(&ctx, live, key)
}

/// `digest`: SHA-1, SHA-256, SHA-384 or SHA-512 of `data`.
fn digest<'js>(ctx: Ctx<'js>, algorithm: String, data: TypedArray<'js, u8>) -> rquickjs::Result<Value<'js>> {
    let hash = webcrypto::Hash::parse(&algorithm).map_err(|e| throw(&ctx, e))?;
    bytes_value(&ctx, super::with_bytes(&data, |data| hash.digest(data)))
}

/// `crypto.subtle.timingSafeEqual` (Workers): constant time in the length.
fn timing_safe_equal(ctx: Ctx<'_>, a: TypedArray<'_, u8>, b: TypedArray<'_, u8>) -> rquickjs::Result<bool> {
    use subtle::ConstantTimeEq;
    let (a, b) = (bytes_of(&a), bytes_of(&b));
    if a.len() != b.len() {
        return Err(Exception::throw_type(&ctx, "timingSafeEqual: the inputs must have the same length"));
    }
    Ok(bool::from(a.ct_eq(&b)))
}

/// Puts the functions on the prelude's host object.
pub(crate) fn install(host: &Object<'_>, spent: Spent) -> rquickjs::Result<()> {
    let live = LiveKeys::default();
    let keys = live.clone();
    host.set(
        "cryptoImport",
        Func::from(move |ctx, format, data, algorithm, extractable, usages| {
            import(ctx, &keys, format, data, algorithm, extractable, usages)
        }),
    )?;
    host.set("cryptoExport", Func::from(export))?;
    let budget = spent.clone();
    host.set("cryptoBudget", Func::from(move |ctx: Ctx<'_>| within_budget(&ctx, &budget)))?;
    let (keys, generating) = (live.clone(), spent.clone());
    host.set(
        "cryptoGenerate",
        Func::from(move |ctx, algorithm, extractable, usages| {
            generate(ctx, &keys, &generating, algorithm, extractable, usages)
        }),
    )?;
    let budget = spent.clone();
    host.set(
        "cryptoOperate",
        Func::from(move |ctx, operation, algorithm, handle, data, signature| {
            operate(ctx, &budget, operation, algorithm, handle, data, signature)
        }),
    )?;
    host.set("cryptoDeriveBits", Func::from(derive_bits))?;
    let keys = live.clone();
    host.set(
        "cryptoDeriveKey",
        Func::from(move |ctx, algorithm, handle, derived, extractable, usages| {
            derive_key(ctx, &keys, algorithm, handle, derived, extractable, usages)
        }),
    )?;
    host.set("cryptoWrap", Func::from(wrap))?;
    host.set(
        "cryptoUnwrap",
        Func::from(move |ctx, format, wrapped, unwrapping, algorithm, imported, key| {
            unwrap(ctx, &live, format, wrapped, unwrapping, algorithm, imported, key)
        }),
    )?;
    host.set("digest", Func::from(digest))?;
    host.set("timingSafeEqual", Func::from(timing_safe_equal))?;
    Ok(())
}
