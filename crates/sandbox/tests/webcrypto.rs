//! `crypto.subtle` against Node, the reference: `tests/webcrypto/
//! conformance.js` runs unchanged in Node and in the sandbox, and every
//! known-answer result (digests, HMAC, HKDF, PBKDF2, Ed25519, X25519, ECDH,
//! RSA PKCS#1 v1.5 and PSS with salt 0, AES-GCM/CBC/CTR/KW, exported keys
//! in every format, wrapped keys) and the error name of every rejection
//! case must be the same. Randomized operations (ECDSA, RSA-PSS, RSA-OAEP,
//! generated keys) are checked across: each side verifies or decrypts what
//! the other produced.

use phalanx_sandbox::{HttpRequest, Limits, Sandbox};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const CONFORMANCE_JS: &str = include_str!("webcrypto/conformance.js");

fn request(path: &str, body: Option<Vec<u8>>) -> HttpRequest {
    HttpRequest { url: format!("https://agent.example{path}"), method: "POST".into(), headers: vec![], body }
}

/// Runs `main` (a module body using `conformance` and `crossVerify`) in Node.
fn node(main: &str) -> Value {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let script = dir.join(format!("webcrypto-{}.mjs", std::process::id()));
    std::fs::write(&script, format!("{CONFORMANCE_JS}\n{main}")).unwrap();
    let output = Command::new("node")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); scripts/test.sh installs Node.js"));
    let _ = std::fs::remove_file(&script);
    assert!(output.status.success(), "node failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("node prints JSON")
}

async fn sandbox() -> Sandbox {
    // Generous limits: the module runs hundreds of operations in one call.
    let limits =
        Limits { cpu_time_max: Duration::from_secs(60), wall_time_max: Duration::from_secs(120), ..Limits::default() };
    let mut sandbox = Sandbox::new(limits).await.unwrap();
    let source = format!(
        "{CONFORMANCE_JS}\nexport default {{ async fetch(request) {{\n\
         if (new URL(request.url).pathname === \"/verify\") return Response.json(await crossVerify(await request.json()));\n\
         return Response.json(await conformance()); }} }};"
    );
    sandbox.load("conformance.js", &source, "fetch").await.unwrap();
    sandbox
}

/// Node 20 names a non-extractable key's export failure
/// `InvalidAccessException`; the spec (and later Node) says `InvalidAccessError`.
fn spec_name(name: &str) -> &str {
    if name == "InvalidAccessException" { "InvalidAccessError" } else { name }
}

#[tokio::test]
async fn subtle_crypto_answers_like_node() {
    let reference = node("process.stdout.write(JSON.stringify(await conformance()));");
    let mut sandbox = sandbox().await;
    let fetched = sandbox.fetch(request("/", None), vec![]).await.unwrap();
    let body = String::from_utf8(fetched.response.body).unwrap();
    assert_eq!(fetched.response.status, 200, "the conformance module failed in the sandbox: {body}");
    let ours: Value = serde_json::from_str(&body).unwrap();

    let mut deviations = Vec::new();
    let (want, got) = (reference["results"].as_object().unwrap(), ours["results"].as_object().unwrap());
    assert!(want.len() >= 190, "the module computes its known answers");
    for (name, value) in want {
        match got.get(name) {
            Some(ours) if ours == value => {}
            other => deviations.push(format!("{name}: node {value}, sandbox {}", other.unwrap_or(&Value::Null))),
        }
    }
    let (want, got) = (reference["rejections"].as_object().unwrap(), ours["rejections"].as_object().unwrap());
    assert!(want.len() >= 70, "the module has its rejection cases");
    for (name, value) in want {
        let (node_name, ours) = (spec_name(value.as_str().unwrap()), got.get(name).and_then(Value::as_str));
        if ours != Some(node_name) {
            deviations.push(format!("rejection {name}: node {node_name}, sandbox {ours:?}"));
        }
    }
    assert!(deviations.is_empty(), "{} deviations from Node:\n{}", deviations.len(), deviations.join("\n"));

    // What each side made with fresh random keys, the other verifies.
    let ours_checked = node(&format!(
        "process.stdout.write(JSON.stringify(await crossVerify({})));",
        serde_json::to_string(&ours["crossCheck"]).unwrap()
    ));
    assert_eq!(ours_checked.as_array().unwrap().len(), 8);
    assert!(ours_checked.as_array().unwrap().iter().all(|v| v == &Value::Bool(true)), "node refused: {ours_checked}");
    let body = serde_json::to_vec(&reference["crossCheck"]).unwrap();
    let fetched = sandbox.fetch(request("/verify", Some(body)), vec![]).await.unwrap();
    let node_checked: Value = serde_json::from_slice(&fetched.response.body).unwrap();
    assert_eq!(node_checked.as_array().map(Vec::len), Some(8), "{node_checked}");
    assert!(
        node_checked.as_array().unwrap().iter().all(|v| v == &Value::Bool(true)),
        "the sandbox refused: {node_checked}"
    );
}

/// Records what an agent passes to `env.AGENTS` (the way agent-to-agent
/// calls leave an instance: as JSON).
#[derive(Debug, Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);

impl phalanx_sandbox::Binding for Recorder {
    fn methods(&self) -> Vec<String> {
        vec!["call".into()]
    }

    fn call(&self, _method: &str, arguments_json: String) -> phalanx_sandbox::BindingFuture {
        self.0.lock().unwrap().push(arguments_json);
        Box::pin(async { Ok("null".to_string()) })
    }
}

/// A key the agent never held: it unwraps it (AES-KW) as a non-extractable
/// HMAC key and tries every route to its bytes it has; none may appear in
/// anything the agent can send out.
#[tokio::test]
async fn a_non_extractable_key_never_reaches_javascript() {
    use phalanx_webcrypto::{Format, KeyData, Params, UsageList};
    let secret: Vec<u8> = (0..32u8).map(|i| 0xa0 ^ i.wrapping_mul(37)).collect();
    let kek = [0x11u8; 16];
    let usages = |names: &[&str]| UsageList::parse(names).unwrap();
    let wrapping = phalanx_webcrypto::import_key(
        Format::Raw,
        &KeyData::Bytes(kek.to_vec().into()),
        &Params::named("AES-KW"),
        false,
        &usages(&["wrapKey"]),
    )
    .unwrap();
    let hmac_params = Params { hash: Some("SHA-256".into()), ..Params::named("HMAC") };
    let key = phalanx_webcrypto::import_key(
        Format::Raw,
        &KeyData::Bytes(secret.clone().into()),
        &hmac_params,
        true,
        &usages(&["sign"]),
    )
    .unwrap();
    let wrapped = phalanx_webcrypto::wrap_key(Format::Raw, &key, &wrapping, &Params::named("AES-KW")).unwrap();
    let expected_mac = phalanx_webcrypto::sign(&Params::named("HMAC"), &key, b"probe").unwrap();

    let recorder = std::sync::Arc::new(Recorder::default());
    let mut sandbox = Sandbox::new(Limits::default()).await.unwrap();
    sandbox.bind("AGENTS", recorder.clone()).await.unwrap();
    let source = r#"
const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
export default { async fetch(request) {
  const { wrapped, kek } = await request.json();
  const unhex = (h) => Uint8Array.from(h.match(/../g), (x) => parseInt(x, 16));
  const kw = await crypto.subtle.importKey("raw", unhex(kek), "AES-KW", false, ["unwrapKey", "wrapKey"]);
  const key = await crypto.subtle.unwrapKey("raw", unhex(wrapped), kw, "AES-KW", { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const seen = {};
  const attempt = async (name, f) => {
    try { const v = await f(); seen[name] = v instanceof ArrayBuffer ? hex(v) : JSON.stringify(v) ?? String(v); }
    catch (e) { seen[name] = `${e?.name}: ${e?.message}`; }
  };
  await attempt("export raw", () => crypto.subtle.exportKey("raw", key));
  await attempt("export jwk", () => crypto.subtle.exportKey("jwk", key));
  await attempt("export pkcs8", () => crypto.subtle.exportKey("pkcs8", key));
  await attempt("json", () => JSON.stringify(key));
  await attempt("string", () => String(key) + Object.prototype.toString.call(key));
  await attempt("own keys", () => Reflect.ownKeys(key).map(String));
  await attempt("prototype keys", () => Reflect.ownKeys(Object.getPrototypeOf(key)).map(String));
  await attempt("descriptors", () => Object.getOwnPropertyDescriptors(key));
  await attempt("for in", () => { const out = []; for (const k in key) out.push(k); return out; });
  await attempt("assign", () => Object.assign({}, key));
  await attempt("spread", () => ({ ...key }));
  await attempt("structuredClone", () => structuredClone(key));
  await attempt("host object", () => typeof globalThis.__phalanxHost + typeof globalThis.__phalanxInternals);
  await attempt("wrap it", () => crypto.subtle.wrapKey("raw", key, kw, "AES-KW"));
  await attempt("wrap as jwk", () => crypto.subtle.wrapKey("jwk", key, kw, "AES-KW"));
  // Tampering with the prototype changes what JavaScript sees, not the host.
  Object.defineProperty(CryptoKey.prototype, "extractable", { get: () => true });
  Object.defineProperty(CryptoKey.prototype, "usages", { get: () => ["sign", "verify"] });
  await attempt("export after tampering", () => crypto.subtle.exportKey("raw", key));
  await attempt("a forged key", () => crypto.subtle.exportKey("raw", Object.create(CryptoKey.prototype)));
  await attempt("a look-alike", () => crypto.subtle.exportKey("raw", { type: "secret", extractable: true, algorithm: { name: "HMAC" }, usages: ["sign"] }));
  await attempt("a new CryptoKey", () => new CryptoKey());
  await attempt("to another agent", () => env_agents.call("other", { key, list: [key] }));
  const mac = hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode("probe")));
  return Response.json({ seen, mac });
} };
"#
    .replace("env_agents", "globalThis.__agents");
    // `env` is only in scope inside fetch; hand the binding over through a global.
    let source =
        source.replace("async fetch(request) {", "async fetch(request, env) { globalThis.__agents = env.AGENTS;");
    sandbox.load("hostile.js", &source, "fetch").await.unwrap();
    let body = serde_json::json!({ "wrapped": hex(&wrapped), "kek": hex(&kek) }).to_string().into_bytes();
    let fetched = sandbox.fetch(request("/", Some(body)), vec![]).await.unwrap();
    let text = String::from_utf8(fetched.response.body).unwrap();
    assert_eq!(fetched.response.status, 200, "{text}");
    let out: Value = serde_json::from_str(&text).unwrap();
    // The key works, so the bytes are there, on the host.
    assert_eq!(out["mac"], hex(&expected_mac));
    let seen = &out["seen"];
    for route in ["export raw", "export jwk", "export after tampering", "wrap it", "wrap as jwk"] {
        assert!(seen[route].as_str().unwrap().starts_with("InvalidAccessError"), "{route}: {}", seen[route]);
    }
    assert_eq!(seen["json"], "\"{}\"");
    assert_eq!(seen["own keys"], "[]");
    assert!(seen["structuredClone"].as_str().unwrap().starts_with("DataCloneError"), "{}", seen["structuredClone"]);
    assert_eq!(seen["host object"], "\"undefinedundefined\"");
    for route in ["a forged key", "a look-alike", "a new CryptoKey"] {
        assert!(seen[route].as_str().unwrap().starts_with("TypeError"), "{route}: {}", seen[route]);
    }
    // What left through env.AGENTS is JSON without the key.
    let sent = recorder.0.lock().unwrap().clone();
    assert_eq!(sent, vec![r#"["other",{"key":{},"list":[{}]}]"#.to_string()]);
    // And the bytes appear nowhere: not in hex, base64 or base64url.
    use base64ct::Encoding;
    let forms = [
        hex(&secret),
        base64ct::Base64::encode_string(&secret),
        base64ct::Base64UrlUnpadded::encode_string(&secret),
        hex(&secret[..8]),
    ];
    for form in &forms {
        assert!(!text.contains(form.as_str()), "the key's bytes leaked: {text}");
        assert!(!sent.iter().any(|s| s.contains(form.as_str())));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One call through a pool (which replaces an instance a limit ended):
/// its result and body, and how long it took.
async fn pooled(
    pool: &std::sync::Arc<phalanx_sandbox::Pool>,
    code: &phalanx_sandbox::AgentCode,
    path: &str,
) -> (Result<(), phalanx_sandbox::SandboxError>, Vec<u8>, Duration) {
    use phalanx_sandbox::{FetchPolicy, ResponsePart};
    let started = std::time::Instant::now();
    let mut lease = pool.lease("burn", code, Limits::default(), &FetchPolicy::default()).await.unwrap();
    let (sender, mut receiver) = tokio::sync::mpsc::channel(4);
    let collect = async {
        let mut body = Vec::new();
        while let Some(part) = receiver.recv().await {
            match part {
                ResponsePart::Complete(_, whole) => body = whole,
                ResponsePart::Body(chunk) => body.extend_from_slice(&chunk),
                ResponsePart::Head(_) => {}
            }
        }
        body
    };
    let ((result, _logs), body) = tokio::join!(lease.serve(request(path, None), &[], sender), collect);
    (result, body, started.elapsed())
}

/// PBKDF2 beyond its bound is refused; a loop of the largest allowed ends on
/// the CPU limit (even one that catches every error), as does a loop of
/// 4096-bit RSA key generations (which stop mid-search); the next call is
/// served.
#[tokio::test]
async fn crypto_work_ends_on_its_bounds_and_the_cpu_limit() {
    let code = phalanx_sandbox::AgentCode::compile(
        "burn.js",
        r#"export default { async fetch(request) {
          const what = new URL(request.url).pathname;
          const pbkdf2 = await crypto.subtle.importKey("raw", new Uint8Array(8), "PBKDF2", false, ["deriveBits"]);
          const params = (iterations) => ({ name: "PBKDF2", hash: "SHA-512", salt: new Uint8Array(8), iterations });
          if (what === "/huge") {
            try { await crypto.subtle.deriveBits(params(1e9), pbkdf2, 512); return new Response("derived"); }
            catch (e) { return new Response(e.name + ": " + e.message); }
          }
          if (what === "/pbkdf2-loop") for (;;) await crypto.subtle.deriveBits(params(100000), pbkdf2, 512);
          if (what === "/pbkdf2-catching") for (;;) try { await crypto.subtle.deriveBits(params(100000), pbkdf2, 512); } catch {}
          if (what === "/rsa-loop") for (;;) await crypto.subtle.generateKey({ name: "RSA-PSS", modulusLength: 4096, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, false, ["sign"]);
          return new Response("served");
        } };"#,
    )
    .unwrap();
    let pool = phalanx_sandbox::Pool::new(phalanx_sandbox::PoolConfig::default());
    let (result, body, _) = pooled(&pool, &code, "/huge").await;
    result.unwrap();
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with("NotSupportedError: PBKDF2: iteration counts above 100000"), "{text}");
    let limit = Limits::default().cpu_time_max;
    for path in ["/pbkdf2-loop", "/pbkdf2-catching", "/rsa-loop"] {
        let (result, _, took) = pooled(&pool, &code, path).await;
        assert!(matches!(result, Err(phalanx_sandbox::SandboxError::CpuTime { .. })), "{path}: {result:?}");
        // One operation's overshoot at most, on a shared machine.
        assert!(took < limit + Duration::from_millis(1500), "{path} took {took:?}");
        let (result, body, _) = pooled(&pool, &code, "/next").await;
        assert_eq!((result, body), (Ok(()), b"served".to_vec()), "after {path}");
    }
}

/// In `command()`, operations that need randomness throw; deterministic
/// ones give the same answer on every worker (here: two instances with
/// different seeds).
#[tokio::test]
async fn commands_get_deterministic_crypto_only() {
    const AGENT: &str = r#"
export default {
  async fetch() { return new Response("ok"); },
  async command(message) {
    const te = new TextEncoder(), s = crypto.subtle;
    const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
    const out = [];
    const mac = await s.importKey("raw", te.encode("k"), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    out.push("hmac " + hex(await s.sign("HMAC", mac, te.encode("m"))));
    const ed = await s.importKey("pkcs8", Uint8Array.from([48,46,2,1,0,48,5,6,3,43,101,112,4,34,4,32, ...new Uint8Array(32).fill(7)]), "Ed25519", false, ["sign"]);
    out.push("ed25519 " + hex(await s.sign("Ed25519", ed, te.encode("m"))));
    const hk = await s.importKey("raw", te.encode("ikm"), "HKDF", false, ["deriveBits"]);
    out.push("hkdf " + hex(await s.deriveBits({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(4), info: new Uint8Array(4) }, hk, 128)));
    const aes = await s.importKey("raw", new Uint8Array(16), "AES-GCM", false, ["encrypt"]);
    out.push("aes " + hex(await s.encrypt({ name: "AES-GCM", iv: new Uint8Array(12) }, aes, te.encode("m"))));
    const ec = await s.importKey("jwk", { kty: "EC", crv: "P-256", d: "isRp1sKEH8NH1CMNQPQYUGF0R0xCTt0LNWQ0RccmrSo", x: "SbvWHub0CDRDNLOs4LYVLnkMvReJHCPpNG5l7M-wUgo", y: "NJ1VybN8BLenoXorgMQREDM2UAJ_GnHj5MFAJ72AOzg" }, { name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
    for (const [name, f] of [
      ["generateKey", () => s.generateKey({ name: "AES-GCM", length: 128 }, false, ["encrypt"])],
      ["ecdsa", () => s.sign({ name: "ECDSA", hash: "SHA-256" }, ec, te.encode("m"))],
      ["getRandomValues", () => crypto.getRandomValues(new Uint8Array(4))],
    ]) {
      try { await f(); out.push(name + ": allowed"); } catch (e) { out.push(name + ": " + e.name + ": " + e.message); }
    }
    console.log(out.join("\n"));
  },
};
"#;
    let mut answers = Vec::new();
    for seed in [[1, 2, 3, 4], [9, 9, 9, 9]] {
        let limits = Limits { cpu_time_max: Duration::from_secs(20), ..Limits::default() };
        let mut sandbox = Sandbox::for_commands(limits, seed, 1_767_225_600_000, 1_000_000).await.unwrap();
        sandbox.load("agent.js", AGENT, "command").await.unwrap();
        let (result, logs) = sandbox.command(r#"{"seq":1,"data":{}}"#, &[]).await;
        result.unwrap();
        answers.push(logs.into_iter().map(|l| l.message).collect::<Vec<_>>().join("\n"));
    }
    assert_eq!(answers[0], answers[1], "commands must answer the same on every worker");
    let text = &answers[0];
    for refused in ["generateKey: TypeError", "ecdsa: TypeError", "getRandomValues: TypeError"] {
        assert!(text.contains(refused), "{refused} in {text}");
    }
    assert!(text.contains("not available in command()"), "{text}");
    assert!(text.contains("hmac ") && text.contains("ed25519 ") && text.contains("aes "), "{text}");
}

/// Keys' material lives outside the JavaScript heap limit, so an instance
/// holds at most 4096 live keys; past that, making one is a RangeError.
#[tokio::test]
async fn live_keys_are_bounded_per_instance() {
    let limits = Limits { cpu_time_max: Duration::from_secs(20), ..Limits::default() };
    let mut sandbox = Sandbox::new(limits).await.unwrap();
    sandbox
        .load(
            "hoard.js",
            r#"export default { async fetch() {
              const keys = [];
              try {
                for (let i = 0; i < 5000; i++) keys.push(await crypto.subtle.importKey("raw", new Uint8Array(16), "AES-GCM", false, ["encrypt"]));
                return new Response("no limit");
              } catch (e) { return new Response(`${keys.length} ${e.name}: ${e.message}`); }
            } };"#,
            "fetch",
        )
        .await
        .unwrap();
    let fetched = sandbox.fetch(request("/", None), vec![]).await.unwrap();
    let text = String::from_utf8(fetched.response.body).unwrap();
    assert_eq!(text, "4096 RangeError: at most 4096 CryptoKeys may be alive in one agent instance");
}
